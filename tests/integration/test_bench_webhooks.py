"""`make bench` stays runnable: the webhooks scenario on a few events."""

from ops.bench import webhooks


async def test_webhooks_scenario_delivers_every_event_to_every_webhook_and_reports_its_figures():
    row = await webhooks.run(events_n=30, webhooks=2)
    assert (row["scenario"], row["events"], row["webhooks"], row["delivered"], row["received"]) == (
        "webhooks", 30, 2, 60, 60)
    assert row["deliveries_per_s"] > 0
    assert 0 <= row["queued_to_delivered_p50_ms"] <= row["queued_to_delivered_p99_ms"]
