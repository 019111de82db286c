"""``switchboard ops ...``: the operator's view of the bus. Tables by default, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from core.blobs import BlobStore
from core.bus import Bus
from core.redis import EmbeddedRedis, connect
from core.settings import Settings
from ops import blobs
from ops import streams as ops
from ops.healthcheck import check
from ticket_service.store import admin, unplaced
from ticket_service.store.db import Database


def add_parser(sub: argparse._SubParsersAction, roles: list[str]) -> None:
    p = sub.add_parser("ops", help="operate the bus: streams, dead letters, consumers, replay, trim")
    cmds = p.add_subparsers(dest="ops_command", required=True, metavar="OPS_COMMAND")

    def cmd(name: str, help_text: str, parent=cmds) -> argparse.ArgumentParser:
        c = parent.add_parser(name, help=help_text)
        c.add_argument("--json", action="store_true", help="machine-readable output")
        return c

    c = cmds.add_parser("check", help="exit 0 when ROLE in this container is ready, 1 otherwise")
    c.add_argument("role", choices=roles)
    cmd("streams", "length, lag, pending, consumers and oldest pending age per stream and group")

    dead = cmds.add_parser("dead", help="dead letters").add_subparsers(dest="dead_command", required=True)
    c = cmd("list", "list dead letters (all dead.* streams, or one)", dead)
    c.add_argument("stream", nargs="?", help="source stream (ingest.email) or dead stream")
    c.add_argument("--limit", type=int, default=100)
    c = cmd("show", "one dead letter in full, with a payload preview", dead)
    c.add_argument("stream")
    c.add_argument("id", help="the dead letter's id in the dead stream")
    for name, help_text in (("replay", "put dead letters back on their source stream"),
                            ("drop", "delete dead letters for good")):
        c = cmd(name, help_text, dead)
        c.add_argument("stream")
        c.add_argument("ids", nargs="*", metavar="ID")
        c.add_argument("--all", action="store_true", help="every dead letter of the stream")

    c = cmd("replay", "re-add stored envelopes between two ids so they are parsed again (dedup keeps it safe)")
    c.add_argument("stream")
    c.add_argument("--from", dest="start", required=True, metavar="ID")
    c.add_argument("--to", dest="end", default="+", metavar="ID")

    consumers = cmds.add_parser("consumers", help="consumer maintenance").add_subparsers(
        dest="consumers_command", required=True)
    c = cmd("prune", "remove consumers without a heartbeat after handing over their pending entries", consumers)
    c.add_argument("--idle-ms", type=int, default=None, help="minimum idle time (default: visibility timeout)")
    c.add_argument("--dry-run", action="store_true")

    c = cmd("bounces", "bounces of mail we do not know (no ticket holds them): the count and the newest")
    c.add_argument("--tenant", help="one tenant's (slug); default every tenant's")
    c.add_argument("--limit", type=int, default=10, help="how many of the newest to show (default 10)")

    c = cmd("collect-blobs", "remove blobs nothing refers to (attachment, SDK upload, stream entry) "
            "once older than the grace period")
    c.add_argument("--grace-hours", type=float, default=None, help="default: blob_grace_s")
    c.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")

    c = cmd("trim", "trim streams safely: only entries every group has acked")
    c.add_argument("streams", nargs="*", metavar="STREAM")
    c.add_argument("--older-than", type=int, default=None, metavar="SECONDS", help="keep entries newer than this")


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _streams_rows(data: list[dict]) -> list[dict]:
    rows = []
    for s in data:
        if not s["groups"]:
            rows.append({"stream": s["stream"], "length": s["length"]})
        for g in s["groups"]:
            rows.append({
                "stream": s["stream"], "length": s["length"], "group": g["group"], "lag": g["lag"],
                "pending": g["pending"], "consumers": g["consumers"],
                "oldest_pending_s": g["oldest_pending_age_s"],
            })
    return rows


async def _run(settings: Settings, args: argparse.Namespace) -> tuple[Any, str]:
    """Returns (data for --json, text for humans)."""
    url = settings.redis_url or EmbeddedRedis(settings.data_dir).url
    redis = connect(url)
    try:
        command = args.ops_command
        if command == "streams":
            data = await ops.streams(redis)
            return data, table(_streams_rows(data), ["stream", "length", "group", "lag", "pending",
                                                     "consumers", "oldest_pending_s"])
        if command == "dead":
            sub = args.dead_command
            if sub == "list":
                data = await ops.dead_list(redis, args.stream, args.limit)
                return data, table(data, ["dead_stream", "id", "source", "tenant", "channel", "deliveries",
                                          "error"])
            if sub == "show":
                data = await ops.dead_show(redis, args.stream, args.id)
                return data, "\n".join(f"{k:>16}: {v}" for k, v in data.items())
            if not args.ids and not args.all:
                raise ops.OpsError("name dead letter ids, or --all")
            if sub == "replay":
                data = await ops.dead_replay(redis, args.stream, args.ids, args.all)
                return data, f"replayed {len(data)} dead letter(s)\n" + table(data, ["dead_id", "stream", "new_id"])
            dropped = await ops.dead_drop(redis, args.stream, args.ids, args.all)
            return {"dropped": dropped}, f"dropped {dropped} dead letter(s)"
        if command == "replay":
            count = await ops.replay(redis, args.stream, args.start, args.end,
                                     _progress if sys.stderr.isatty() and not args.json else None)
            return {"stream": args.stream, "replayed": count}, f"replayed {count} entries of {args.stream}"
        if command == "consumers":
            idle = args.idle_ms if args.idle_ms is not None else settings.visibility_timeout_ms
            data = await ops.prune_consumers(redis, idle, args.dry_run)
            verb = "would prune" if args.dry_run else "pruned"
            return data, f"{verb} {len(data)} consumer(s)\n" + table(
                data, ["stream", "group", "consumer", "pending", "moved", "idle_s"])
        if command == "collect-blobs":
            return await _collect_blobs(settings, redis, args)
        if command == "trim":
            bus = Bus(redis, BlobStore(settings.blob_dir), settings.blob_threshold)
            data = await ops.trim(bus, args.streams or None, args.older_than)
            return data, table([{"stream": k, "trimmed": v} for k, v in data.items()], ["stream", "trimmed"])
        raise AssertionError(command)
    finally:
        await redis.aclose()


async def _bounces(settings: Settings, args: argparse.Namespace) -> tuple[Any, str]:
    """The store's view, not the bus's: bounces the normalizer could not put on a ticket."""
    db = Database(settings.effective_database_url)
    try:
        async with db.read() as conn:
            tenant = None
            if args.tenant:
                try:
                    tenant = await admin.tenant_id(conn, args.tenant)
                except admin.NotFound as exc:
                    raise ops.OpsError(str(exc)) from None
            total = (await conn.execute(unplaced.count("bounce", tenant))).scalar_one()
            rows = (await conn.execute(unplaced.listing("bounce", tenant).limit(max(args.limit, 0)))).all()
    except SQLAlchemyError as exc:
        raise ops.OpsError(f"database: {type(exc).__name__}: {exc}") from exc
    finally:
        await db.dispose()
    newest = [{"id": r.id, "tenant": r.tenant, "account": r.account, "received_at": r.created_at,
               "from": r.sender, "subject": r.subject, **(unplaced.report(r.headers) or {})} for r in rows]
    text = f"{total} bounce(s) of unknown mail\n" + table(
        newest, ["id", "tenant", "account", "from", "recipient", "status", "subject"])
    return {"count": total, "newest": newest}, text


async def _collect_blobs(settings: Settings, redis, args: argparse.Namespace) -> tuple[Any, str]:
    grace_s = settings.blob_grace_s if args.grace_hours is None else args.grace_hours * 3600
    db = Database(settings.effective_database_url)
    try:
        run = await blobs.collect(BlobStore(settings.blob_dir), db, redis, grace_s, args.dry_run)
    finally:
        await db.dispose()
    verb = "would remove" if args.dry_run else "removed"
    return run.as_dict(), (f"{verb} {len(run.removed)} of {run.old} blob(s) older than {grace_s / 3600:g} h "
                           f"({run.freed} bytes)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.ops_command == "check":
        return 0 if check(args.role, settings) else 1
    try:
        run = _bounces if args.ops_command == "bounces" else _run
        data, text = asyncio.run(run(settings, args))
    except (ops.OpsError, RedisError, OSError) as exc:
        if isinstance(exc, (RedisError, OSError)):
            exc = ops.OpsError(f"Redis unreachable: {exc}")
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"switchboard ops: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2, default=str) if args.json else text)
    return 0
