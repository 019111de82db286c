"""Email scenario: N realistic mails over SMTP from concurrent connections to committed tickets."""

from __future__ import annotations

import asyncio
import random
import smtplib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid

import redis.asyncio as aioredis
from sqlalchemy import func, select

from core import keys
from core.envelope import Envelope
from ops.bench.harness import SUPPORT, System
from ticket_service.events import read_event
from ticket_service.store.db import Database
from ticket_service.store.tables import messages

_ZH = "您好，我上周下的订单到现在还没有发货，物流信息也查不到，请帮忙看一下是什么情况。谢谢！"


def mail_mix(n: int, seed: int = 7) -> tuple[list[bytes], int]:
    """Plain, HTML, attachment and GBK/UTF-8 Chinese mails; 20 % replies, 1 % duplicates.

    Returns the mails in send order and how many distinct messages they hold.
    """
    rng = random.Random(seed)
    roots: list[str] = []
    mails: list[bytes] = []
    for i in range(n):
        if mails and rng.random() < 0.01:
            mails.append(rng.choice(mails))  # the same bytes delivered twice
            continue
        msg = EmailMessage()
        msg["From"] = f"Customer {i % 500} <c{i % 500}@example.cn>"
        msg["To"] = SUPPORT
        msg["Message-ID"] = msgid = make_msgid(domain="example.cn")
        if roots and rng.random() < 0.2:
            root = rng.choice(roots)
            msg["Subject"], msg["In-Reply-To"], msg["References"] = "Re: order", root, root
        else:
            msg["Subject"] = f"订单 {i} 问题" if i % 3 == 0 else f"Order {i} question"
            roots.append(msgid)
        kind = i % 4
        if kind == 0:
            msg.set_content(f"Hello, order {i} has not arrived.\n" * 5)
        elif kind == 1:
            msg.set_content(_ZH, charset="gbk" if i % 8 == 1 else "utf-8")
        elif kind == 2:
            msg.set_content("See the HTML part.")
            msg.add_alternative(f"<p>Order <b>{i}</b> is <i>late</i>.</p>", subtype="html")
        else:
            msg.set_content("Invoice attached.")
            msg.add_attachment(rng.randbytes(20_000), maintype="application", subtype="pdf", filename=f"inv{i}.pdf")
        mails.append(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))  # as sent on the wire
    return mails, len(set(mails))


def _send(port: int, mails: list[bytes]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for raw in mails:
            client.sendmail("customer@example.cn", [SUPPORT], raw)


async def _stored(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count(messages.c.id)))).scalar_one()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def ingress_to_ticket_ms(redis_url: str) -> list[float]:
    """Latency per ticket event: the event's stream time minus the envelope's ingress time."""
    client = aioredis.Redis.from_url(redis_url)
    entries = await client.xrange(keys.TICKET_EVENTS)
    await client.aclose()
    out = []
    for entry_id, fields in entries:
        event = read_event(Envelope.unpack(fields[b"e"]))
        out.append(int(entry_id.split(b"-")[0]) - event["received_at"])
    return out


async def run(mails: int = 5000, connections: int = 8, normalizers: int = 1,
              database_url: str | None = None) -> dict:
    system = System(database_url)
    try:
        await system.start()
        system.role("smtp")
        for _ in range(normalizers):
            system.role("normalizer", batch_size=128)
        system.wait_port(system.smtp_port)
        batch, distinct = mail_mix(mails)
        shares = [batch[i::connections] for i in range(connections)]
        db = Database(system.database_url)
        started = time.perf_counter()
        with ThreadPoolExecutor(connections) as pool:
            await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(pool, _send, system.smtp_port, s)
                                   for s in shares))
        accepted = time.perf_counter() - started
        while await _stored(db) < distinct:
            if time.perf_counter() - started > 600:
                raise RuntimeError("tickets not committed within 10 minutes")
            await asyncio.sleep(0.05)
        done = time.perf_counter() - started
        await db.dispose()
        latencies = await ingress_to_ticket_ms(system.redis_url)
        return {
            "scenario": "email", "mails": mails, "distinct": distinct, "connections": connections,
            "normalizers": normalizers, "smtp_accept_per_s": round(mails / accepted, 1),
            "end_to_end_per_s": round(mails / done, 1), "seconds": round(done, 2),
            "ingress_to_ticket_p50_ms": round(percentile(latencies, 50), 1),
            "ingress_to_ticket_p99_ms": round(percentile(latencies, 99), 1),
        }
    finally:
        system.stop()
