"""The whole email corpus through the normalizer, in order: tickets, threading and no dead letters."""

from corpus_email import expected, own_files, shared_files

from ticket_service.store import admin

SALES = "sales@acme.test"


async def test_corpus_threads_as_expected_through_the_normalizer(system):
    # Each mail lands as its expectations say: a new ticket, another mail's ticket, or none.
    want = expected()
    async with system.db.write() as conn:
        sales = await admin.add_account(conn, system.tenant, "email", SALES)
    accounts = {"support@acme.test": system.account, SALES: sales}
    envelope_of = {}
    for path in own_files():
        raw = path.read_bytes()
        for mailbox in want[path.name].get("mailboxes", ["support@acme.test"]):
            env = await system.publish(raw, account=accounts[mailbox])
            envelope_of.setdefault(path.name, env.id)
    await system.drain()
    assert await system.bus.redis.xlen("dead.ingest.email") == 0

    by_envelope = {m.envelope_id: m for m in await system.messages()}
    ticket_of = {}
    for path in own_files():
        name, rule = path.name, want[path.name]["thread"]
        message = by_envelope[envelope_of[name]]
        ticket_of[name[:2]] = message.ticket_id
        if rule == "new":
            assert message.ticket_id not in [t for n, t in ticket_of.items() if n != name[:2]], name
            assert message.ticket_id is not None, name
        elif rule == "none":
            assert message.ticket_id is None, name
        else:
            assert message.ticket_id == ticket_of[rule.split()[1]], name
        assert message.auto_reason == want[name]["auto"], name
    opened = sum(1 for w in want.values() if w["thread"] == "new")
    assert len(await system.tickets()) == opened
    # Bulk mail that opened a ticket (the digest) marked it auto, with its reason.
    auto = {t.id: t.auto_reason for t in await system.tickets() if t.auto}
    assert auto == {ticket_of[n[:2]]: w["auto"] for n, w in want.items() if w["thread"] == "new" and w["auto"]}
    assert len(await system.messages()) == len(want)  # the To + Cc mail is stored once


async def test_shared_corpus_runs_through_the_normalizer_without_stalling(system):
    # Mails with no expectations: each is stored or dead-lettered with a reason, none is stuck.
    files = shared_files()
    for path in files:
        await system.publish(path.read_bytes())
    await system.drain()
    stored = len(await system.messages())
    dead = await system.bus.redis.xlen("dead.ingest.email")
    assert stored + dead >= len(files)
    assert (await system.bus.redis.xpending("ingest.email", "normalizer"))["pending"] == 0
