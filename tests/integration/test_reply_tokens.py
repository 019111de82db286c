"""Signed reply tokens and threading precedence, through the normalizer on SQLite and PostgreSQL."""

import pytest
from support import SUPPORT, make_mail

from connectors.registry import capacity_classes
from ticket_service.store import reply_tokens

SECRET = "reply-token-secret"


@pytest.fixture
async def tokens(system):
    """The system with reply tokens on, and one ticket (#1) from zhang.wei already open."""
    system.settings = system.settings.replace(secret_key=SECRET)
    await system.publish(make_mail(subject="Refund for order 1042")[0])
    await system.drain()
    [system.ticket] = await system.tickets()
    system.reply = reply_tokens.issue(SECRET, system.tenant, system.ticket.id, SUPPORT)
    return system


async def _placed(system, raw: bytes) -> int | None:
    await system.publish(raw)
    await system.drain()
    return (await system.messages())[-1].ticket_id


async def test_issued_addresses_carry_one_signed_token(tokens):
    # Message-ID unique per outbound mail; reply-to is a plus-address; all hold the token.
    r, again = tokens.reply, reply_tokens.issue(SECRET, tokens.tenant, tokens.ticket.id, SUPPORT)
    assert r.token == again.token == reply_tokens.make_token(SECRET, tokens.tenant, tokens.ticket.id)
    assert r.message_id != again.message_id and r.message_id.endswith("@acme.test>")
    assert r.reply_to == f"help+{r.token}@acme.test" and r.marker == f"[ref:{r.token}]"
    assert reply_tokens.verified_ticket_ids(SECRET, tokens.tenant, [r.message_id, r.reply_to]) == [tokens.ticket.id]
    assert reply_tokens.verified_ticket_ids(SECRET, tokens.tenant + 1, [r.message_id]) == []  # other tenant


async def test_token_in_in_reply_to_threads_without_any_stored_message_id(tokens):
    # Our outbound Message-ID was never stored as a thread key: only the signature finds it.
    reply, _ = make_mail(subject="Re: your refund", sender="Zhang Wei <zhang.wei@example.cn>",
                         refs=[tokens.reply.message_id.strip("<>")])
    assert await _placed(tokens, reply) == tokens.ticket.id


async def test_token_in_the_plus_address_threads_a_reply_with_no_headers(tokens):
    # A client that drops In-Reply-To, answering to the reply-to address.
    reply, _ = make_mail(subject="another question", to=tokens.reply.reply_to)
    assert await _placed(tokens, reply) == tokens.ticket.id


async def test_token_in_the_body_marker_threads_a_forwarded_reply(tokens):
    # Headers lost in a forward; the quoted marker survives.
    reply, _ = make_mail(subject="Fwd: refund", sender="li.na@example.cn",
                         body=f"See below.\n> Your request {tokens.reply.marker} is being handled.")
    assert await _placed(tokens, reply) == tokens.ticket.id


async def test_forged_foreign_or_stale_tokens_are_ignored(tokens):
    # Each opens a ticket of its own instead of joining ticket 1.
    real = tokens.reply.token
    forged = real[:-4] + ("aaaa" if not real.endswith("aaaa") else "bbbb")
    other_tenant = reply_tokens.make_token(SECRET, tokens.tenant + 1, tokens.ticket.id)
    stale = reply_tokens.make_token("the-previous-secret", tokens.tenant, tokens.ticket.id)
    placed = [await _placed(tokens, make_mail(subject=f"try {t}", to=f"help+{t}@acme.test",
                                              sender="eve@evil.test")[0])
              for t in (forged, other_tenant, stale)]
    assert tokens.ticket.id not in placed and len(set(placed)) == 3


async def test_token_beats_references_and_references_beat_the_subject_number(tokens):
    # Precedence of ARCHITECTURE.md: token, then stored Message-IDs, then "[#n]" in the subject.
    second, second_id = make_mail(subject="Other issue", sender="zhang.wei@example.cn")
    ticket2 = await _placed(tokens, second)
    assert ticket2 != tokens.ticket.id
    both, _ = make_mail(subject="[#2] Re: both", refs=[second_id, tokens.reply.message_id.strip("<>")])
    assert await _placed(tokens, both) == tokens.ticket.id
    refs_and_number, _ = make_mail(subject="[#1] Re: other", refs=[second_id])
    assert await _placed(tokens, refs_and_number) == ticket2


async def test_reply_to_a_broadcast_by_another_sender_does_not_merge_into_someone_elses_ticket(tokens):
    # Two customers answer the same newsletter: each gets their own ticket.
    newsletter = "newsletter-2026-11@acme.test"
    a = await _placed(tokens, make_mail(subject="Re: November news", sender="ann@example.org", refs=[newsletter])[0])
    b = await _placed(tokens, make_mail(subject="Re: November news", sender="bob@example.net", refs=[newsletter])[0])
    assert a is not None and b is not None and a != b
    # A colleague answering Ann's own mail still joins Ann's ticket.
    ann_id = next(m.dedup_key for m in await tokens.messages() if m.sender == "ann@example.org")
    colleague = make_mail(subject="Re: November news", sender="carl@example.org", refs=[newsletter, ann_id])[0]
    assert await _placed(tokens, colleague) == a


async def test_api_hands_out_the_reply_address_of_an_email_ticket(tokens):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from ticket_service.api import setup_api
    from ticket_service.store import admin

    async with tokens.db.write() as conn:
        key = await admin.create_api_key(conn, tokens.tenant, "t")
    app = web.Application()
    setup_api(app, tokens.db, tokens.bus.blobs, capacity_classes(), secret_key=SECRET)
    async with TestClient(TestServer(app)) as http:
        headers = {"Authorization": f"Bearer {key}"}
        async with http.get(f"/api/v1/tickets/{tokens.ticket.id}/reply-address", headers=headers) as r:
            assert r.status == 200
            issued = await r.json()
        async with http.get("/api/v1/tickets/999/reply-address", headers=headers) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found")
    token = reply_tokens.make_token(SECRET, tokens.tenant, tokens.ticket.id)
    assert issued["ticket_id"] == tokens.ticket.id and issued["reply_to"] == f"help+{token}@acme.test"
    assert issued["message_id"].startswith(f"<{token}.") and issued["marker"] == f"[ref:{token}]"
    # A customer's answer to that Message-ID threads back by the token alone.
    reply, _ = make_mail(subject="Re: refund", refs=[issued["message_id"].strip("<>")])
    assert await _placed(tokens, reply) == tokens.ticket.id


async def test_api_without_a_secret_key_says_so(tokens):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from ticket_service.api import setup_api
    from ticket_service.store import admin

    async with tokens.db.write() as conn:
        key = await admin.create_api_key(conn, tokens.tenant, "t")
    app = web.Application()
    setup_api(app, tokens.db, tokens.bus.blobs, capacity_classes())
    async with TestClient(TestServer(app)) as http:
        async with http.get(f"/api/v1/tickets/{tokens.ticket.id}/reply-address",
                            headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 503
            assert (await r.json())["error"] == {"code": "not_configured",
                                                 "message": "reply tokens need SWITCHBOARD_SECRET_KEY"}
