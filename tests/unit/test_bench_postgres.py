"""The bench's ``postgres`` row: the store-bound figures as shares of the measured PostgreSQL limit."""

from ops.bench.__main__ import is_postgres, postgres_summary


def test_postgres_row_gives_each_figure_as_a_share_of_the_baseline_limit():
    # Two normalizer rows (one and two replicas) and a router row against a limit of 4,000/s.
    rows = [
        {"scenario": "baseline", "limit_per_s": 4000.0},
        {"scenario": "normalizer", "normalizers": 1, "stored_per_s": 1000.0},
        {"scenario": "normalizer", "normalizers": 2, "stored_per_s": 1700.0},
        {"scenario": "router", "decisions_per_s": 500.0, "decision_p99_ms": 31.5},
    ]
    assert postgres_summary(rows) == {
        "scenario": "postgres", "limit_per_s": 4000.0,
        "normalizer_1_per_s": 1000.0, "normalizer_1_pct": 25.0,
        "normalizer_2_per_s": 1700.0, "normalizer_2_pct": 42.5, "normalizers_2_vs_1": 1.7,
        "router_decisions_per_s": 500.0, "router_pct": 12.5, "router_p99_ms": 31.5,
    }


def test_no_postgres_row_without_a_baseline_and_only_for_postgresql_urls():
    assert postgres_summary([{"scenario": "normalizer", "normalizers": 1, "stored_per_s": 10.0}]) is None
    assert [is_postgres(u) for u in ("postgresql://h/db", "postgresql+asyncpg://h/db", "postgres://h/db",
                                     "sqlite:///x.db", None)] == [True, True, True, False, False]
