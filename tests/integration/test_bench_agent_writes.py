"""`make bench` stays runnable: the agent_writes scenario on a tiny backlog."""

from ops.bench import agent_writes


async def test_agent_writes_scenario_times_the_api_changes_idle_and_while_a_backlog_is_stored():
    row = await agent_writes.run(n=400, agents=2, normalizers=1, connections=4, idle_s=0.5, pause_s=0.01)
    assert (row["scenario"], row["normalizers"], row["agents"], row["pause_s"], row["backlog"]) == (
        "agent_writes", 1, 2, 0.01, 400)
    assert row["stored_per_s"] > 0
    for phase in ("idle", "busy"):
        # Every agent wrote at least once in each phase, each PATCH answered 200 (else it raises).
        assert row[f"{phase}_writes"] >= 2
        assert 0 < row[f"{phase}_p50_ms"] <= row[f"{phase}_p99_ms"] <= row[f"{phase}_max_ms"]
