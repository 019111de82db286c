"""The bench table compares each scenario's headline rate with the baseline's limit."""

from ops.bench.__main__ import against_limit, table


def test_scenarios_are_a_share_of_the_baseline_limit():
    rows = [{"scenario": "baseline", "n": 10, "xadd_per_s": 4000.0, "xreadgroup_xack_per_s": 8000.0,
             "ticket_message_rows_per_s": 5000.0, "limit_per_s": 4000.0},
            {"scenario": "email", "normalizers": 1, "end_to_end_per_s": 160.0},
            {"scenario": "calls", "stored_per_s": 200.0},
            {"scenario": "router", "decisions_per_s": 150.0}]
    against_limit(rows)
    assert [r.get("pct_of_limit") for r in rows] == [None, 4.0, 5.0, None]
    text = table(rows)
    assert "limit_per_s" in text and "pct_of_limit" in text
    assert text.index("baseline") < text.index("email") < text.index("router")
