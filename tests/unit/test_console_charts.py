"""The dashboard's chart geometry: round axis steps, bars scaled to the axis, gaps in lines."""

from console import charts


def test_axis_ticks_are_round_and_reach_the_top_value():
    assert charts.nice_ticks(3) == [0, 1, 2, 3]
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(3600) == [0, 1000, 2000, 3000, 4000]
    assert charts.nice_ticks(0) == [0.0, 1.0]


def test_columns_scale_to_the_axis_and_title_each_bar():
    c = charts.columns(["2026-11-20", "2026-11-21"], [charts.Series("Tickets", "s1", [2, 4])], lambda d: d[5:])
    tall, short = sorted(c["bars"], key=lambda b: -b["h"])
    assert tall["h"] == charts.PLOT_H and short["h"] == charts.PLOT_H / 2
    assert [b["title"] for b in c["bars"]] == ["2026-11-20 · Tickets: 2", "2026-11-21 · Tickets: 4"]
    assert [n["text"] for n in c["names"]] == ["11-20", "11-21"]
    assert [t["text"] for t in c["ticks"]] == ["0", "1", "2", "3", "4"]


def test_a_missing_value_breaks_the_line_and_has_no_dot():
    c = charts.lines(["a", "b", "c"], [charts.Series("p50", "s1", [1.0, None, 2.0])])
    [path] = c["paths"]
    assert len(path["runs"]) == 2 and [d["title"] for d in path["dots"]] == ["a · p50: 1", "c · p50: 2"]


def test_time_unit_and_gauge():
    assert charts.time_unit(90) == (1, "unit.s")
    assert charts.time_unit(3600) == (60, "unit.min")
    assert charts.time_unit(3 * 86_400) == (86_400, "unit.d")
    assert charts.gauge(3, 4) == {"load": 3, "capacity": 4, "w": 75.0, "css": "busy"}
    assert charts.gauge(5, 4)["w"] == 100.0 and charts.gauge(0, 0)["css"] == "none"
