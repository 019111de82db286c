"""The bench's baseline (raw bus and raw store) runs on a tiny size and reports each limit."""

from ops.bench import baseline


async def test_baseline_measures_bus_and_store():
    row = await baseline.run(n=300)
    assert (row["scenario"], row["n"]) == ("baseline", 300)
    rates = [row["xadd_per_s"], row["xreadgroup_xack_per_s"], row["ticket_message_rows_per_s"]]
    assert all(r > 0 for r in rates)
    assert row["limit_per_s"] == min(rates)
