"""The bench table compares each scenario's headline rate with the baseline's limit."""

import os
import subprocess
import sys
import time

from ops.bench.__main__ import COLUMNS, against_limit, medians, table
from ops.bench.harness import cpu_per_item_us, process_cpu_seconds, server_cpu_seconds


def _first_line(text: str, scenario: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if line.split()[:1] == [scenario])


def test_scenarios_are_a_share_of_the_baseline_limit():
    rows = [{"scenario": "baseline", "n": 10, "xadd_per_s": 4000.0, "xreadgroup_xack_per_s": 8000.0,
             "ticket_message_rows_per_s": 5000.0, "limit_per_s": 4000.0},
            {"scenario": "email", "normalizers": 1, "end_to_end_per_s": 160.0},
            {"scenario": "calls", "stored_per_s": 200.0},
            {"scenario": "router", "decisions_per_s": 150.0},
            {"scenario": "chat", "accepted_per_s": 2000.0, "end_to_end_per_s": 400.0},
            {"scenario": "fixed_rate", "offered_per_s": 1000, "achieved_per_s": 1000.0}]
    against_limit(rows)
    assert [r.get("pct_of_limit") for r in rows] == [None, 4.0, 5.0, None, 10.0, 25.0]
    text = table(rows)
    assert "limit_per_s" in text and "pct_of_limit" in text
    order = [_first_line(text, s) for s in ("baseline", "email", "router", "chat", "calls", "fixed_rate")]
    assert order == sorted(order)


def test_routed_scenarios_show_ingress_to_assigned():
    for scenario in ("email", "chat", "fixed_rate"):
        assert {"ingress_to_assigned_p50_ms", "ingress_to_assigned_p99_ms",
                "ingress_to_ticket_p50_ms", "ingress_to_ticket_p99_ms"} <= set(COLUMNS[scenario])
    assert {"http_p50_ms", "http_p99_ms", "late", "offered_per_s", "achieved_per_s",
            "ingress_to_assigned_max_ms"} <= set(COLUMNS["fixed_rate"])


def test_cpu_per_mail_is_the_difference_of_two_readings_per_role():
    before = {"smtp": 1.0, "normalizer": 2.0, "redis": 0.5}
    after = {"smtp": 1.5, "normalizer": 4.0, "redis": 0.6, "client": 0.25}
    assert cpu_per_item_us(before, after, 500) == {"smtp": 1000, "normalizer": 4000, "redis": 200, "client": 500}


def test_a_process_cpu_reading_follows_the_process_own_clock():
    # /proc/self/stat counts in clock ticks: within a few ticks of the interpreter's own figure.
    sum(i * i for i in range(300_000))
    assert abs(process_cpu_seconds(os.getpid()) - time.process_time()) < 0.1
    assert process_cpu_seconds(2 ** 22 + 1) == 0.0  # no such process


def test_a_server_reading_counts_its_live_and_exited_children():
    # This process stands for a postmaster: one child burns 0.4 s of CPU and exits (waited for),
    # the other burns 0.4 s and stays alive while the server is read. Read as a difference:
    # the test session's other children (servers the fixtures started) count in both readings.
    def children() -> float:
        return server_cpu_seconds(os.getpid()) - process_cpu_seconds(os.getpid())

    before = children()
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    subprocess.run([sys.executable, "-c", burn], check=True)
    live = subprocess.Popen([sys.executable, "-c", burn + "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        while process_cpu_seconds(live.pid) < 0.4:
            time.sleep(0.05)
        assert 0.8 <= children() - before < 2.0
    finally:
        live.communicate(b"")
    assert server_cpu_seconds(2 ** 22 + 1) == 0.0  # no such server


def test_repeated_runs_sum_up_as_the_median_and_range_per_scenario_and_replica_count():
    runs = []
    for run, (limit, one, two, ratio) in enumerate([(20000.0, 8000.0, 9000.0, 1.1), (25000.0, 7000.0, 11000.0, 1.6),
                                                     (21000.0, 9000.0, 10000.0, 1.2)], start=1):
        rows = [{"scenario": "baseline", "limit_per_s": limit},
                {"scenario": "normalizer", "channel": "wechat", "normalizers": 1, "stored_per_s": one},
                {"scenario": "normalizer", "channel": "wechat", "normalizers": 2, "stored_per_s": two},
                {"scenario": "postgres", "normalizers_2_vs_1": ratio}]
        against_limit(rows)
        runs += [{"run": run, **row} for row in rows]
    summary = {(r["of"], r.get("normalizers")): r for r in medians(runs)}
    assert summary[("baseline", None)] == {
        "scenario": "median", "of": "baseline", "runs": 3, "figure": "limit_per_s", "median": 21000.0,
        "min": 20000.0, "max": 25000.0}
    one = summary[("normalizer", 1)]
    # Each share against its own run's limit: 40 %, 28 %, 42.86 %.
    assert (one["median"], one["min"], one["max"]) == (8000.0, 7000.0, 9000.0)
    assert (one["pct_median"], one["pct_min"], one["pct_max"]) == (40.0, 28.0, 42.86)
    assert one["channel"] == "wechat" and one["runs"] == 3
    assert summary[("normalizer", 2)]["pct_median"] == 45.0
    assert (summary[("postgres", None)]["median"], summary[("postgres", None)]["max"]) == (1.2, 1.6)
    text = table(runs + medians(runs))
    assert text.splitlines()[0].split()[:2] == ["run", "scenario"]
    assert "pct_median" in text.splitlines()[_first_line(text, "median") - 1]
