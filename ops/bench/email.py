"""Email scenario: N realistic mails over SMTP from concurrent connections to assigned tickets.

Runs ``smtp``, ``normalizers`` × ``normalizer`` and one ``router`` with 50 online agents in
the bench tenant (room for every ticket, so none waits in the queue). ``end_to_end_per_s``
and ``seconds`` run until every distinct mail is committed; the run then also waits until
every ticket is assigned and reports ingress→ticket and ingress→assigned (see
``ops.bench.latency``). The clock starts when the SMTP port answers and every normalizer
and the router keep a heartbeat. ``cpu_us_per_mail`` is the CPU each role process (all
replicas together), Redis and the sending client (this process: ``smtp_client``
connections and the waits) used per mail from the first send until every ticket was
assigned.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from email.message import EmailMessage
from email.utils import make_msgid

from ops.bench import latency, smtp_client
from ops.bench.harness import SUPPORT, System, cpu_per_item_us
from ops.bench.latency import ingress_to_ticket_ms, percentile  # noqa: F401 (re-exported)
from ticket_service.store.db import Database

_ZH = "您好，我上周下的订单到现在还没有发货，物流信息也查不到，请帮忙看一下是什么情况。谢谢！"


@functools.lru_cache(maxsize=2)  # built once per run: each replica count sends the same mails
def mail_mix(n: int, seed: int = 7) -> tuple[tuple[bytes, ...], int]:
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
    return tuple(mails), len(set(mails))


async def run(mails: int = 5000, connections: int = 8, normalizers: int = 1,
              database_url: str | None = None) -> dict:
    system = System(database_url)
    try:
        await system.start()
        await system.seed_agents()
        system.role("smtp")
        for _ in range(normalizers):
            system.role("normalizer", batch_size=128)
        system.role("router", batch_size=64)
        system.wait_port(system.smtp_port)
        # The clock starts once every worker beats: what they spend from then on is mail, not
        # Python compiling its imports (a second or more of CPU per process without .pyc files).
        system.wait_workers("normalizer", normalizers)
        system.wait_workers("router", 1)
        batch, distinct = mail_mix(mails)
        wire = [smtp_client.wire_data(raw) for raw in batch]
        shares = [wire[i::connections] for i in range(connections)]
        db = Database(system.database_url)
        try:
            cpu_before = {**system.cpu_seconds(), "client": time.process_time()}
            started = time.perf_counter()
            await asyncio.gather(*(smtp_client.send(system.smtp_port, "customer@example.cn", SUPPORT, s)
                                   for s in shares))
            accepted = time.perf_counter() - started
            done = await latency.wait_stored(db, distinct, check=system.check) - started
            tickets, _ = await latency.wait_assigned(db, check=system.check)
            cpu = cpu_per_item_us(cpu_before, {**system.cpu_seconds(), "client": time.process_time()}, mails)
            to_assigned = await latency.ingress_to_assigned_ms(db)
        finally:
            await db.dispose()
        to_ticket = await ingress_to_ticket_ms(system.redis_url)
        return {
            "scenario": "email", "mails": mails, "distinct": distinct, "connections": connections,
            "normalizers": normalizers, "routers": 1, "tickets": tickets,
            "smtp_accept_per_s": round(mails / accepted, 1),
            "end_to_end_per_s": round(mails / done, 1), "seconds": round(done, 2),
            **latency.summary("ingress_to_ticket", to_ticket),
            **latency.summary("ingress_to_assigned", to_assigned),
            "cpu_us_per_mail": cpu,
        }
    finally:
        system.stop()
