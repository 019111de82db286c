"""A whole batch stored set-based (``batch_writer.store_jobs``), on SQLite and PostgreSQL.

These call ``store_jobs`` directly: through the worker a failing batch would be stored
again entry by entry and the tests would pass without the set-based path.
"""

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from support import make_mail

from connectors.registry import CHANNELS
from core.envelope import Envelope
from normalizer.batch_writer import store_jobs
from normalizer.ingest import Job, Kind, Windows
from ticket_service.store.directory import AccountDirectory
from ticket_service.store.tables import (
    customers,
    identities,
    messages,
    tenants,
    ticket_threads,
    tickets,
)

WINDOWS = Windows(reopen_ms=7 * 24 * 3600 * 1000)


async def _jobs(system, raws: list[bytes]) -> list[Job]:
    account = await AccountDirectory(system.db, 60).by_id(system.account, secrets=False)
    channel = CHANNELS["email"]
    jobs = []
    for raw in raws:
        env = Envelope(tenant="acme", channel="email", account=str(system.account), payload=raw,
                       content_type="message/rfc822")
        jobs.append(Job(account, env, [(inbound, []) for inbound in channel.parse(env)], channel))
    return jobs


async def _rows(system, table):
    async with system.db.read() as conn:
        return (await conn.execute(select(table).order_by(table.c.id))).all()


async def test_two_messages_of_one_new_conversation_in_one_batch_make_one_ticket(system):
    # The reply's In-Reply-To names a mail of the same batch, not yet written when it is threaded.
    first, root = make_mail(subject="订单 1042")
    reply, _ = make_mail(subject="Re: 订单 1042", body="还没到", refs=[root])
    other, _ = make_mail(subject="Invoice", sender="Li Na <li.na@example.cn>")
    outcomes = await system.db.run_write(store_jobs, await _jobs(system, [first, reply, other]), WINDOWS)
    assert [[o.kind for o in each] for each in outcomes] == [[Kind.CREATED], [Kind.APPENDED], [Kind.CREATED]]
    rows = await _rows(system, tickets)
    assert [(t.number, t.subject) for t in rows] == [(1, "订单 1042"), (2, "Invoice")]
    stored = await _rows(system, messages)
    assert [m.ticket_id for m in stored] == [rows[0].id, rows[0].id, rows[1].id]
    assert [o.message_id for each in outcomes for o in each] == [m.id for m in stored]
    assert [o.ticket_id for each in outcomes for o in each] == [rows[0].id, rows[0].id, rows[1].id]
    assert [m.thread_rule for m in stored] == ["new_ticket", "reference", "new_ticket"]
    # One customer per sender, each identity once; the counter holds the last number given.
    assert [c.id for c in await _rows(system, customers)] == [o.customer_id for o in
                                                               (outcomes[0][0], outcomes[2][0])]
    assert sorted(i.value for i in await _rows(system, identities)) == ["li.na@example.cn", "zhang.wei@example.cn"]
    assert [t.next_ticket_number for t in await _rows(system, tenants)] == [2]
    assert {k.ticket_id for k in await _rows(system, ticket_threads)} == {rows[0].id, rows[1].id}


async def test_a_repeat_in_the_batch_and_in_a_later_batch_is_a_redelivery(system):
    raw, _ = make_mail()
    [job] = await _jobs(system, [raw])
    outcomes = await system.db.run_write(store_jobs, [job, job], WINDOWS)
    assert [each[0].kind for each in outcomes] == [Kind.CREATED, Kind.REDELIVERED]
    assert outcomes[0][0].message_id == outcomes[1][0].message_id
    again = await system.db.run_write(store_jobs, [job], WINDOWS)
    assert (again[0][0].kind, again[0][0].message_id) == (Kind.REDELIVERED, outcomes[0][0].message_id)
    assert len(await _rows(system, messages)) == 1


async def test_a_batch_costs_the_same_statements_whatever_its_size(system):
    # Set-based: each table is read once and written once per batch, not once per message.
    counted: list[str] = []

    def count(conn, cursor, statement, *args):
        counted.append(statement)

    def store_counted(conn, jobs, windows):
        # SQLite's batch statements run on the sqlite3 cursor, past SQLAlchemy's events:
        # the driver's own trace sees every statement SQLite runs.
        driver = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        if driver is not None:
            driver.set_trace_callback(counted.append)
        try:
            return store_jobs(conn, jobs, windows)
        finally:
            if driver is not None:
                driver.set_trace_callback(None)

    # PostgreSQL: every statement SQLAlchemy sends.
    on_sqlite = system.db.url.startswith("sqlite")
    if not on_sqlite:
        event.listen(Engine, "before_cursor_execute", count)
    try:
        sizes = []
        for n, size in enumerate((4, 40)):
            raws = [make_mail(subject=f"case {n}-{i}", sender=f"c{n}-{i}@example.cn")[0] for i in range(size)]
            jobs = await _jobs(system, raws)
            counted.clear()
            outcomes = await system.db.run_write(store_counted, jobs, WINDOWS)
            assert [each[0].kind for each in outcomes] == [Kind.CREATED] * size
            sizes.append(len(counted))
    finally:
        if not on_sqlite:
            event.remove(Engine, "before_cursor_execute", count)
    assert 6 <= sizes[0] == sizes[1] <= 12
    assert len(await _rows(system, tickets)) == 44
