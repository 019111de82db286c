"""``python -m ops.bench`` (``make bench``): run the scenarios, print a table, write bench/results.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from ops.bench import email


def table(rows: list[dict]) -> str:
    cols = ["scenario", "normalizers", "mails", "smtp_accept_per_s", "end_to_end_per_s",
            "ingress_to_ticket_p50_ms", "ingress_to_ticket_p99_ms", "seconds"]
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[dict]:
    rows = []
    for normalizers in args.normalizers:
        rows.append(await email.run(args.mails, args.connections, normalizers, os.environ.get("DATABASE_URL")))
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m ops.bench", description=__doc__)
    p.add_argument("--mails", type=int, default=5000)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--normalizers", type=int, nargs="+", default=[1, 2], help="replica counts to compare")
    p.add_argument("--out", default="bench/results.json")
    args = p.parse_args()
    results = asyncio.run(main(args))
    print(table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
