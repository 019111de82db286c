"""One normalizer with two batches in hand (``normalizer_concurrency``), on SQLite and
PostgreSQL: batches that share a conversation are stored one after the other, the others
together, and every conversation still ends on one ticket."""

import asyncio

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs
from support import make_mail

from normalizer.order import KeyGate
from normalizer.worker import Normalizer
from ticket_service.store.tables import messages


class Watched(Normalizer):
    """Records how many batches were in hand at once and how often the gate made one wait."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.most_in_hand = 0
        self.waits = 0
        gate_hold = self.gate.hold

        def hold(keys, arrival=None):
            self.waits += any(k in self.gate._held for k in keys)
            return gate_hold(keys, arrival)
        self.gate.hold = hold

    async def _process_batch(self, stream, entries):
        self.most_in_hand = max(self.most_in_hand, len(self._batches))
        await super()._process_batch(stream, entries)

    async def _store(self, *args):
        # A slow database: the next batch is read and parsed while this one holds the gate,
        # whatever the machine's speed (without it, a fast store could end before the next
        # batch reached the gate, and nothing would show the gate working).
        await asyncio.sleep(0.05)
        return await super()._store(*args)


async def test_batches_sharing_a_conversation_wait_and_each_conversation_is_one_ticket(system):
    # Six customers write in turn, eight mails each: batches of four, so each batch shares
    # two conversations with the one before it.
    system.settings = system.settings.replace(batch_size=4, normalizer_concurrency=2)
    roots: dict[int, str] = {}
    for i in range(48):
        who = i % 6
        raw, msgid = make_mail(subject=f"Order {who}", body=f"message {i}", sender=f"C{who} <c{who}@example.cn>",
                               refs=[roots[who]] if who in roots else ())
        roots.setdefault(who, msgid)
        await system.publish(raw)
    worker = Watched(system.bus, system.settings, system.db, system.bus.blobs)
    with capture_logs() as logs:
        await asyncio.wait_for(worker.run(drain=True), 60)
    assert worker.most_in_hand == 2 and worker.waits > 0
    # No batch raced the other one of this process (it would have been stored again mail by mail).
    assert [e for e in logs if e["event"] in ("normalizer.batch_split", "ingest.race_retry")] == []
    assert len(await system.tickets()) == 6
    async with system.db.read() as conn:
        sizes = (await conn.execute(select(func.count()).select_from(messages).group_by(messages.c.ticket_id))).all()
    assert sorted(n for (n,) in sizes) == [8] * 6
    created = [e for e in await system.events() if e["type"] == "ticket.created"]
    assert len(created) == 6


async def test_the_gate_lets_disjoint_batches_in_together_and_holds_a_shared_key():
    gate, order = KeyGate(), []

    async def batch(name: str, keys: set, hold_s: float) -> None:
        async with gate.hold(keys):
            order.append(f"{name} in")
            await asyncio.sleep(hold_s)
            order.append(f"{name} out")
    await asyncio.gather(batch("a", {1, 2}, 0.05), batch("b", {3}, 0.01), batch("c", {2, 4}, 0.01))
    # b shares nothing and runs beside a; c shares key 2 with a and waits for it.
    assert order == ["a in", "b in", "b out", "a out", "c in", "c out"]


async def test_two_normalizers_racing_for_a_new_conversation_retry_the_batch_whole(system):
    # Two replicas each hold a batch opening the same six conversations: the one that commits
    # second finds the keys taken, and runs its batch again instead of mail by mail.
    if system.db.is_sqlite:
        pytest.skip("SQLite has one writer at a time: no race between replicas to retry")
    raws = [make_mail(subject=f"Order {i}", sender=f"C{i} <c{i}@example.cn>", msgid=f"<o{i}@example.cn>")[0]
            for i in range(6)]
    replies = [make_mail(subject=f"Re: Order {i}", sender=f"C{i} <c{i}@example.cn>", refs=[f"<o{i}@example.cn>"])[0]
               for i in range(6)]
    envs = [[system_env(system, raw) for raw in batch] for batch in (raws, replies)]
    one, two = (Normalizer(system.bus, system.settings, system.db, system.bus.blobs) for _ in range(2))
    with capture_logs() as logs:
        results = await asyncio.gather(one.handle_batch(envs[0]), two.handle_batch(envs[1]))
    assert results == [[None] * 6, [None] * 6]
    events = [e["event"] for e in logs]
    # Most runs race (the second commit meets the first's keys); none may fall back to single mails.
    assert "normalizer.batch_split" not in events
    assert len(await system.tickets()) == 6
    async with system.db.read() as conn:
        sizes = (await conn.execute(select(func.count()).select_from(messages).group_by(messages.c.ticket_id))).all()
    assert sorted(n for (n,) in sizes) == [2] * 6


def system_env(system, raw: bytes):
    from core.envelope import Envelope
    return Envelope(tenant="acme", channel="email", account=str(system.account), payload=raw,
                    content_type="message/rfc822")


class SlowFiles(Normalizer):
    """Writing a batch's attachments takes a while (a slow disk): a batch without any, read
    after it, reaches the gate first."""

    async def _store_files(self, batch, jobs):
        if any(inbound.attachments for job in jobs.values() for inbound, _ in job.messages):
            await asyncio.sleep(0.2)
        return await super()._store_files(batch, jobs)


async def test_a_customers_messages_read_in_two_batches_are_stored_in_the_order_read(system):
    first, root = make_mail(subject="Broken kettle", body="Photo attached.",
                            attachments=[("kettle.jpg", "image/jpeg", b"\xff\xd8" + b"k" * 4000)])
    second, _ = make_mail(subject="Re: Broken kettle", body="Any news?", refs=[root])
    worker = SlowFiles(system.bus, system.settings.replace(normalizer_concurrency=2), system.db, system.bus.blobs)
    # Two batches in hand at once, read in this order: the first waits on its file longer.
    results = await asyncio.gather(worker.handle_batch([system_env(system, first)]),
                                   worker.handle_batch([system_env(system, second)]))
    assert results == [[None], [None]]
    [ticket] = await system.tickets()
    assert ticket.subject == "Broken kettle"
    async with system.db.read() as conn:
        subjects = (await conn.execute(select(messages.c.subject).order_by(messages.c.id))).scalars().all()
    assert subjects == ["Broken kettle", "Re: Broken kettle"]


async def test_a_batch_that_fails_before_the_gate_keeps_the_order_of_those_after_it():
    gate, order = KeyGate(), []

    async def batch(name: str, keys: set, before_s: float, fail: bool = False) -> None:
        arrival = gate.arrive()
        try:
            await asyncio.sleep(before_s)
            if fail:
                raise RuntimeError("parse failed")
            async with gate.hold(keys, arrival):
                order.append(name)
        finally:
            arrival.leave()

    results = await asyncio.gather(batch("a", {1}, 0.1), batch("b", set(), 0.05, fail=True),
                                   batch("c", {1}, 0.0), return_exceptions=True)
    assert isinstance(results[1], RuntimeError)
    # c came last and was ready first: it still waits for a, which came before it.
    assert order == ["a", "c"]
