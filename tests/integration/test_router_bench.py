"""`make bench` stays runnable: the router scenario end to end on a tiny backlog."""

from ops.bench import router


async def test_router_scenario_drains_the_whole_backlog():
    row = await router.run(agents=20, backlog=300, routers=1, limit_s=100)
    assert (row["scenario"], row["agents"], row["backlog"], row["routers"]) == ("router", 20, 300, 1)
    # Every waiting ticket is assigned exactly once while the backlog drains.
    assert row["decisions"] == 300
    assert row["decisions_per_s"] > 0 and 0 < row["decision_p50_ms"] <= row["decision_p99_ms"]
