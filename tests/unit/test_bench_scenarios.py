"""`make bench` stays runnable: every routed scenario on a tiny size, read back from the store.

Real processes (redis-server, gateway, smtp, normalizer, router) on throwaway ports; the
figures are checked for being measured at all, never against a timing threshold.
"""

import asyncio

import pytest

from ops.bench import baseline, chat, email, fixed_rate, normalizer
from ops.bench.__main__ import COLUMNS, HEADLINE, against_limit, table

LATENCIES = ["ingress_to_ticket_p50_ms", "ingress_to_ticket_p99_ms",
             "ingress_to_assigned_p50_ms", "ingress_to_assigned_p99_ms"]


async def _tiny() -> dict[str, dict]:
    rows = [await baseline.run(n=200), await email.run(mails=40, connections=2),
            await chat.run(n=40, connections=4, fans=25),
            await normalizer.run(n=60, connections=4),
            await fixed_rate.run(rate=50, duration=1, clients=2)]
    return {row["scenario"]: row for row in rows}


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    return asyncio.run(_tiny())


def _positive(row: dict, fields: list[str]) -> None:
    for name in fields:
        assert isinstance(row[name], int | float) and row[name] > 0, (name, row[name])


def test_email_tickets_are_committed_and_assigned(rows):
    row = rows["email"]
    assert (row["mails"], row["routers"]) == (40, 1)
    # Replies thread into their tickets: fewer tickets than distinct mails, every one assigned.
    assert 0 < row["tickets"] <= row["distinct"] <= 40
    _positive(row, ["end_to_end_per_s", *LATENCIES])
    assert row["ingress_to_assigned_p50_ms"] <= row["ingress_to_assigned_p99_ms"]


def test_chat_threads_fans_into_sessions_and_assigns_them(rows):
    row = rows["chat"]
    # 40 pushes from 25 fans in turn: every push is a message row, every fan one ticket.
    assert (row["pushes"], row["messages"], row["tickets"]) == (40, 40, 25)
    assert row["measured"] == 40 - 10  # after the warm-up
    _positive(row, ["accepted_per_s", "end_to_end_per_s", "http_p50_ms", "http_p99_ms", *LATENCIES])
    assert row["http_p50_ms"] <= row["http_p99_ms"]


def test_normalizer_works_off_a_backlog_it_did_not_see_arrive(rows):
    row = rows["normalizer"]
    # Paused while the 60 pushes arrived: all of them waited on the stream, then became rows
    # threaded into one session ticket per fan (the warm-up's 20 fans among the 500).
    assert (row["messages"], row["backlog"], row["tickets"]) == (60, 60, 60 + normalizer.WARM)
    _positive(row, ["stored_per_s", "seconds"])


def test_fixed_rate_offers_every_message_and_measures_its_latency(rows):
    row = rows["fixed_rate"]
    assert (row["offered_per_s"], row["messages"], row["stored"]) == (50, 50, 50)
    assert (row["errors"], row["unfinished"]) == (0, 0)
    # 50 messages fewer than the 500 regulars: each one starts a ticket, as do the 20 warm-ups.
    assert row["tickets"] == 50 + fixed_rate.WARM
    assert 0 <= row["late"] <= 50
    _positive(row, ["achieved_per_s", "stored_per_s", "http_p50_ms", "http_p99_ms", *LATENCIES,
                    "ingress_to_ticket_max_ms", "ingress_to_assigned_max_ms"])
    assert row["ingress_to_assigned_p99_ms"] <= row["ingress_to_assigned_max_ms"]


def test_table_shows_every_column_and_the_share_of_the_limit(rows):
    listed = list(rows.values())
    against_limit(listed)
    text = table(listed)
    for name, row in rows.items():
        assert all(column in text for column in COLUMNS[name])
        if name in HEADLINE:
            assert row["pct_of_limit"] > 0
    starts = [next(i for i, line in enumerate(text.splitlines()) if line.startswith(f"{name} "))
              for name in ("baseline", "email", "chat", "normalizer", "fixed_rate")]
    assert starts == sorted(starts)
