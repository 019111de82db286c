"""`make bench` stays runnable: the outbound scenario on a tiny reply count."""

from ops.bench import outbound
from ops.bench.__main__ import against_limit


async def test_outbound_scenario_sends_every_reply_and_reports_its_figures():
    row = await outbound.run(replies=40, connections=2)
    assert (row["scenario"], row["channel"], row["replies"], row["sent"], row["senders"]) == (
        "outbound", "email", 40, 40, 1)
    assert row["sent_per_s"] > 0 and 0 <= row["queued_to_sent_p50_ms"] <= row["queued_to_sent_p99_ms"]
    rows = [{"scenario": "baseline", "limit_per_s": 1000.0}, row]
    against_limit(rows)
    assert rows[1]["pct_of_limit"] == round(100 * row["sent_per_s"] / 1000.0, 2)
