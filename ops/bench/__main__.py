"""``python -m ops.bench`` (``make bench``): run the scenarios, print a table, write bench/results.json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import uvloop

from ops.bench import (
    agent_writes,
    baseline,
    calls,
    chat,
    email,
    fixed_rate,
    hostile,
    normalizer,
    outbound,
    router,
    sla,
    webhooks,
)
from ops.bench.harness import CPU_CAPS
from ops.pgcluster import Cluster

_TICKET = ["ingress_to_ticket_p50_ms", "ingress_to_ticket_p99_ms"]
_ASSIGNED = ["ingress_to_assigned_p50_ms", "ingress_to_assigned_p99_ms"]
COLUMNS = {
    "baseline": ["scenario", "n", "xadd_per_s", "xreadgroup_xack_per_s", "ticket_message_rows_per_s",
                 "limit_per_s"],
    "email": ["scenario", "normalizers", "routers", "mails", "tickets", "smtp_accept_per_s",
              "end_to_end_per_s", "pct_of_limit", *_TICKET, *_ASSIGNED, "seconds", "cpu_us_per_mail"],
    "router": ["scenario", "routers", "agents", "backlog", "decisions", "decisions_per_s",
               "decision_p50_ms", "decision_p99_ms", "decisions_per_round", "seconds"],
    "chat": ["scenario", "connections", "pushes", "fans", "tickets", "accepted_per_s", "http_p50_ms",
             "http_p99_ms", "end_to_end_per_s", "pct_of_limit", *_TICKET, *_ASSIGNED, "seconds"],
    "normalizer": ["scenario", "channel", "normalizers", "messages", "backlog", "tickets", "stored_per_s",
                   "pct_of_limit", "seconds", "cores_busy", "cpu_cap", "db_waits"],
    "wechat": ["scenario", "gateways", "connections", "pushes", "accepted_per_s", "pct_of_limit",
               "seconds"],
    "calls": ["scenario", "gateways", "normalizers", "connections", "records", "batch", "accepted_per_s",
              "stored_per_s", "pct_of_limit", "seconds"],
    "fixed_rate": ["scenario", "offered_per_s", "duration_s", "tickets", "achieved_per_s",
                   "pct_of_limit", "late", "http_p50_ms", "http_p99_ms", *_TICKET,
                   "ingress_to_ticket_max_ms", *_ASSIGNED, "ingress_to_assigned_max_ms",
                   "stored_per_s", "drain_s", "unfinished"],
    "outbound": ["scenario", "channel", "senders", "connections", "replies", "sent", "sent_per_s", "pct_of_limit",
                 "queued_to_sent_p50_ms", "queued_to_sent_p99_ms", "seconds"],
    "webhooks": ["scenario", "rules", "webhooks", "events", "delivered", "received", "deliveries_per_s",
                 "queued_to_delivered_p50_ms", "queued_to_delivered_p99_ms", "seconds"],
    # With DATABASE_URL on PostgreSQL: the store-bound figures against that server's limit.
    "postgres": ["scenario", "limit_per_s", "normalizer_1_per_s", "normalizer_1_pct", "normalizer_2_per_s",
                 "normalizer_2_pct", "normalizers_2_vs_1", "router_decisions_per_s", "router_pct",
                 "router_p99_ms"],
    "hostile": ["scenario", "hostile_clients", "duration_s", "probes", "hostile_answered", "hostile_statuses",
                "hostile_answer_p50_ms", "ticket_list_p50_ms", "ticket_list_p99_ms", "ticket_list_max_ms",
                "download_p50_ms", "download_p99_ms", "download_max_ms"],
    "sla": ["scenario", "open_clocks", "due_clocks", "spread_s", "warning_count", "warning_late_p50_ms",
            "warning_late_p99_ms", "warning_late_max_ms", "breach_count", "breach_late_p50_ms", "breach_late_p99_ms",
            "breach_late_max_ms", "still_running"],
    "agent_writes": ["scenario", "normalizers", "agents", "pause_s", "backlog", "stored_per_s", "seconds", "idle_writes",
                     "idle_p50_ms", "idle_p99_ms", "idle_max_ms", "busy_writes", "busy_p50_ms", "busy_p99_ms",
                     "busy_max_ms"],
    "median": ["scenario", "of", "channel", "normalizers", "routers", "offered_per_s", "runs", "figure", "median",
               "min", "max", "pct_median", "pct_min", "pct_max"],
}
# The figure of each scenario that is compared with the baseline's limit: for fixed_rate the
# load the gateway took, which its latencies belong to.
HEADLINE = {"email": "end_to_end_per_s", "chat": "end_to_end_per_s", "fixed_rate": "achieved_per_s",
            "normalizer": "stored_per_s",
            "wechat": "accepted_per_s", "calls": "stored_per_s", "outbound": "sent_per_s"}
SCENARIOS = ["baseline", "email", "router", "chat", "normalizer", "calls", "outbound", "webhooks", "fixed_rate",
             "agent_writes", "hostile", "sla"]


def against_limit(rows: list[dict]) -> None:
    """Add ``pct_of_limit``: each scenario's headline rate as a share of the raw bus/store limit."""
    limit = next((r["limit_per_s"] for r in rows if r["scenario"] == "baseline"), None)
    for row in rows:
        field = HEADLINE.get(row["scenario"])
        if limit and field and row.get(field) is not None:
            row["pct_of_limit"] = round(100 * row[field] / limit, 2)


def postgres_summary(rows: list[dict]) -> dict | None:
    """One ``postgres`` row: the normalizer (one and two replicas) and router figures as shares
    of the PostgreSQL limit the baseline measured in the same run; None without a baseline."""
    limit = next((r["limit_per_s"] for r in rows if r["scenario"] == "baseline"), None)
    if not limit:
        return None
    out: dict = {"scenario": "postgres", "limit_per_s": limit}
    for row in rows:
        if row["scenario"] == "normalizer" and row["normalizers"] in (1, 2):
            out[f"normalizer_{row['normalizers']}_per_s"] = row["stored_per_s"]
            out[f"normalizer_{row['normalizers']}_pct"] = round(100 * row["stored_per_s"] / limit, 2)
        elif row["scenario"] == "router":
            out["router_decisions_per_s"] = row["decisions_per_s"]
            out["router_pct"] = round(100 * row["decisions_per_s"] / limit, 2)
            out["router_p99_ms"] = row["decision_p99_ms"]
    if out.get("normalizer_1_per_s") and out.get("normalizer_2_per_s"):
        out["normalizers_2_vs_1"] = round(out["normalizer_2_per_s"] / out["normalizer_1_per_s"], 2)
    return out


def is_postgres(database_url: str | None) -> bool:
    return bool(database_url) and database_url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def table(rows: list[dict]) -> str:
    return "\n\n".join(_table(of, (["run"] if "run" in of[0] else []) + cols + _cpu_columns(of))
                        for name, cols in COLUMNS.items() if (of := [r for r in rows if r["scenario"] == name]))


# What ``--repeat`` sums up per scenario and replica count: the headline rate, its share of the
# limit of the same run, and for the ``postgres`` row what the second normalizer adds.
_SUMMED = {**HEADLINE, "baseline": "limit_per_s", "router": "decisions_per_s", "postgres": "normalizers_2_vs_1"}
_REPLICAS = ("channel", "normalizers", "routers", "offered_per_s")


def medians(rows: list[dict]) -> list[dict]:
    """One ``median`` row per scenario and replica count over the runs of ``--repeat``: this
    machine's figures move ±15 % between runs minutes apart (the limit as much as the rest)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["scenario"] in _SUMMED and row.get(_SUMMED[row["scenario"]]) is not None:
            key = (row["scenario"], *(row.get(k) for k in _REPLICAS))
            groups.setdefault(key, []).append(row)
    out = []
    for (scenario, *replicas), of in groups.items():
        figure = _SUMMED[scenario]
        values = sorted(r[figure] for r in of)
        summary = {"scenario": "median", "of": scenario,
                   **{k: v for k, v in zip(_REPLICAS, replicas, strict=True) if v is not None},
                   "runs": len(of), "figure": figure, "median": round(statistics.median(values), 2),
                   "min": values[0], "max": values[-1]}
        shares = sorted(r["pct_of_limit"] for r in of if r.get("pct_of_limit") is not None)
        if shares:
            summary.update(pct_median=round(statistics.median(shares), 2), pct_min=shares[0], pct_max=shares[-1])
        out.append(summary)
    return out


def _cpu_columns(rows: list[dict]) -> list[str]:
    """The ``cpu_us_per_msg_<role>`` (and ``db_statements_per_msg``) fields the scenario's rows carry."""
    return list(dict.fromkeys(k for r in rows for k in r if k.startswith(("cpu_us_per_msg_", "db_statements_"))))


def _table(rows: list[dict], cols: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[dict]:
    rows = []
    if "baseline" in args.scenarios:
        rows.append(await baseline.run(args.mails, os.environ.get("DATABASE_URL")))
    if "email" in args.scenarios:
        for normalizers in args.normalizers:
            rows.append(await email.run(args.mails, args.connections, normalizers, os.environ.get("DATABASE_URL")))
    if "router" in args.scenarios:
        for routers in args.routers:
            rows.append(await router.run(args.agents, args.backlog, routers, os.environ.get("DATABASE_URL")))
    if "chat" in args.scenarios or "wechat" in args.scenarios:
        rows.append(await chat.run(args.pushes, args.push_connections, os.environ.get("DATABASE_URL")))
    if "normalizer" in args.scenarios:
        for normalizers in args.normalizers:
            rows.append(await normalizer.run(args.pushes, args.push_connections, os.environ.get("DATABASE_URL"),
                                             normalizers))
    if "calls" in args.scenarios:
        rows.append(await calls.run(args.records, args.batch, args.call_connections, os.environ.get("DATABASE_URL")))
    if "outbound" in args.scenarios:
        rows.append(await outbound.run(args.replies, args.reply_connections, os.environ.get("DATABASE_URL")))
    if "webhooks" in args.scenarios:
        rows.append(await webhooks.run(args.webhook_events, args.webhooks, os.environ.get("DATABASE_URL")))
    if "fixed_rate" in args.scenarios:
        for rate in args.rate:
            rows.append(await fixed_rate.run(rate, args.duration, args.rate_clients,
                                             os.environ.get("DATABASE_URL"), args.drain_limit))
    if "agent_writes" in args.scenarios:
        for normalizers in args.normalizers:
            for pause in args.write_pause:
                rows.append(await agent_writes.run(args.write_backlog, args.writers, normalizers,
                                                   args.push_connections, os.environ.get("DATABASE_URL"),
                                                   pause_s=pause))
    if "hostile" in args.scenarios:
        rows.append(await hostile.run(args.hostile_duration, args.hostile_clients,
                                      database_url=os.environ.get("DATABASE_URL")))
    if "sla" in args.scenarios:
        rows.append(await sla.run(args.sla_due, args.sla_open, args.sla_spread, os.environ.get("DATABASE_URL")))
    against_limit(rows)
    if is_postgres(os.environ.get("DATABASE_URL")) and (summary := postgres_summary(rows)) is not None:
        rows.append(summary)
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__)
    p.add_argument("--mails", type=int, default=5000)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--normalizers", type=int, nargs="+", default=[1, 2],
                   help="email and normalizer scenarios: replica counts to compare")
    p.add_argument("--scenarios", nargs="+", choices=[*SCENARIOS, "wechat"], default=SCENARIOS,
                   help="wechat is the old name of chat")
    p.add_argument("--pushes", type=int, default=5000, help="chat and normalizer scenarios: safe-mode pushes")
    p.add_argument("--push-connections", type=int, default=16,
                   help="chat and normalizer scenarios: concurrent clients")
    p.add_argument("--rate", type=float, nargs="+", default=[1000],
                   help="fixed_rate scenario: msgs/s offered (one run per rate)")
    p.add_argument("--duration", type=float, default=30, help="fixed_rate scenario: seconds")
    p.add_argument("--rate-clients", type=int, default=8,
                   help="fixed_rate scenario: aiohttp client sessions")
    p.add_argument("--drain-limit", type=float, default=120,
                   help="fixed_rate scenario: seconds to wait for the pipeline after the last send")
    p.add_argument("--records", type=int, default=5_000, help="calls scenario: call records in all")
    p.add_argument("--batch", type=int, default=1000, help="calls scenario: records per bulk post")
    p.add_argument("--call-connections", type=int, default=4, help="calls scenario: concurrent clients")
    p.add_argument("--replies", type=int, default=2000, help="outbound scenario: replies queued through the API")
    p.add_argument("--reply-connections", type=int, default=8, help="outbound scenario: concurrent API clients")
    p.add_argument("--webhook-events", type=int, default=2000, help="webhooks scenario: events published")
    p.add_argument("--webhooks", type=int, default=2, help="webhooks scenario: webhooks subscribed to every event")
    p.add_argument("--agents", type=int, default=1000, help="router scenario: online agents")
    # 100,000 is the sizing figure (about 12 minutes here); the default keeps `make bench` short.
    p.add_argument("--backlog", type=int, default=10_000, help="router scenario: waiting tickets")
    p.add_argument("--routers", type=int, nargs="+", default=[2], help="router replica counts to compare")
    p.add_argument("--writers", type=int, default=4,
                   help="agent_writes scenario: agents changing their tickets through the API at once")
    p.add_argument("--write-pause", type=float, nargs="+", default=[0.0, 0.1],
                   help="agent_writes scenario: seconds each agent waits after an answer before its next change "
                        "(several allowed; 0: without pause, the worst case)")
    p.add_argument("--write-backlog", type=int, default=20_000,
                   help="agent_writes scenario: WeChat pushes the normalizers store while the agents write")
    p.add_argument("--hostile-duration", type=float, default=30,
                   help="hostile scenario: seconds of many-part form posts from one address")
    p.add_argument("--hostile-clients", type=int, default=8, help="hostile scenario: concurrent hostile posts")
    p.add_argument("--sla-due", type=int, default=2000, help="sla scenario: clocks falling due")
    p.add_argument("--sla-open", type=int, default=10_000, help="sla scenario: other open clocks")
    p.add_argument("--sla-spread", type=float, default=60, help="sla scenario: seconds the due clocks spread over")
    p.add_argument("--postgres", action="store_true",
                   help="on a throwaway PostgreSQL cluster started for the run (with pg_stat_statements, for "
                        "db_statements_per_msg) and removed after it, instead of SQLite or DATABASE_URL")
    p.add_argument("--cpu-cap", nargs="+", default=[], metavar="ROLE=CORES",
                   help="hold each replica of ROLE to CORES of CPU (a cgroup each; root): e.g. normalizer=0.4, "
                        "to see what replicas add when each has CPU of its own beside the database")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the scenarios this many times; adds a median row (and the range) per figure")
    p.add_argument("--out", default="bench/results.json")
    args = p.parse_args()
    for cap in args.cpu_cap:
        role, _, cores = cap.partition("=")
        try:
            CPU_CAPS[role] = float(cores)
        except ValueError:
            p.error(f"--cpu-cap wants ROLE=CORES, not {cap!r}")
    if CPU_CAPS and os.geteuid() != 0:
        p.error("--cpu-cap needs root (it makes a cgroup per replica)")
    cluster = None
    if args.postgres:
        cluster = Cluster(preload="pg_stat_statements")
        cluster.start()
        os.environ["DATABASE_URL"] = f"postgresql://postgres@{cluster.host}:{cluster.port}/postgres"
    try:
        # uvloop, as the roles run: the load generators share the cores they measure.
        results = []
        for run in range(1, args.repeat + 1):
            results += [{"run": run, **row} if args.repeat > 1 else row for row in uvloop.run(main(args))]
        if args.repeat > 1:
            results += medians(results)
    finally:
        if cluster is not None:
            cluster.remove()
    print(table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
