"""`make bench` stays runnable: the bulk call-records scenario on a tiny record count."""

import json

from ops.bench import calls


async def test_calls_scenario_accepts_and_stores_every_record():
    row = await calls.run(records=300, batch=100, connections=2)
    assert (row["scenario"], row["records"], row["batch"], row["gateways"]) == ("calls", 300, 100, 1)
    assert row["accepted_per_s"] > 0 and row["stored_per_s"] > 0


def test_posts_are_batches_of_distinct_calls():
    bodies = [json.loads(b)["records"] for b in calls.posts(250, 100)]
    assert [len(b) for b in bodies] == [100, 100, 50]
    assert len({r["id"] for b in bodies for r in b}) == 250
