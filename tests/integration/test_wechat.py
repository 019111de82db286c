"""WeChat official account pushes through the real gateway: verification, modes, bad input.

Pushes are built the way WeChat builds them, with wechatpy's own crypto as the client
(wechat_support); timestamp windows and replayed nonces are in test_wechat_replay.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from gateway_support import edge_gateway, running_gateway
from sqlalchemy import select, update
from wechat_support import (
    AES_KEY,
    APPID,
    OPENID,
    TOKEN,
    WeChat,
    _accounts,
    _entries,
    _msgids,
    _refused,
    event,
    signature,
    text_message,
    xml,
)

from ticket_service.store.tables import channel_accounts, customers, identities, tickets


@pytest.fixture
async def edge(sqlite_url, redis_url, tmp_path):
    async with edge_gateway(sqlite_url, redis_url, tmp_path) as gw:
        gw.wechat = await _accounts(gw)
        yield gw


# --- verification and modes --------------------------------------------------------------


async def test_url_verification_echoes_echostr(edge):
    q = edge.wechat["safe"].query(echostr="4ByGGj+sVCYcvGeQ")
    async with edge.http.get(edge.url("/wechat/acme-safe"), params=q) as resp:
        assert (resp.status, await resp.text()) == (200, "4ByGGj+sVCYcvGeQ")


async def test_url_verification_with_a_wrong_signature_is_401(edge):
    q = edge.wechat["safe"].query(echostr="abc")
    q["signature"] = "0" * 40
    async with edge.http.get(edge.url("/wechat/acme-safe"), params=q) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "bad_signature"


async def test_plaintext_push_is_on_the_stream_byte_for_byte(edge):
    body = text_message()
    assert await edge.wechat["plain"].post(body) == (200, "success")
    [env] = await _entries(edge)
    assert (env.tenant, env.channel, env.content_type) == ("acme", "wechat", "application/xml")
    assert env.payload == body.encode()
    assert (env.meta["verified"], env.meta["openid"]) == ("signature", OPENID)


async def test_safe_mode_push_is_verified_decrypted_and_queued(edge):
    plain = text_message("安全模式消息")
    assert await edge.wechat["safe"].post_safe(plain) == (200, "success")
    [env] = await _entries(edge)
    assert env.payload == plain.encode()
    assert (env.meta["encrypt_type"], env.meta["verified"]) == ("aes", "msg_signature")


async def test_compatible_mode_takes_both_plaintext_and_encrypted_pushes(edge):
    wc = edge.wechat["compat"]
    assert await wc.post(text_message("明文")) == (200, "success")
    assert await wc.post_safe(text_message("密文"), compatible=True) == (200, "success")
    assert [e.meta["encrypt_type"] for e in await _entries(edge)] == ["raw", "aes"]


async def test_template_send_job_finished_is_answered_and_not_queued(edge):
    body = event("TEMPLATESENDJOBFINISH", MsgID=200163836, Status="success")
    assert await edge.wechat["plain"].post(body) == (200, "success")
    assert await edge.xlen("wechat") == 0


async def test_published_sample_vector_verifies_and_decrypts():
    # The encrypted sample of WeChat's message-encryption guide (as kept in wechatpy's tests).
    from connectors.wechat.verify import Keys, check_signature, decrypt
    from connectors.wechat.xml import fields

    keys = Keys.from_settings({"token": "123456", "mode": "safe", "appid": "wx49f0ab532d5d035a",
                               "aes_key": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"})
    encrypt = (
        "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283d"
        "Gymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPw"
        "BiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/5"
        "4SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWH"
        "p91eBdCRxthuL0="
    )
    check_signature(keys, "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", encrypt)
    msg = fields(decrypt(keys, encrypt))
    assert (msg["Content"], msg["FromUserName"], msg["MsgType"]) == ("test", "messense", "text")


async def test_a_new_account_without_a_mode_is_safe_mode(edge):
    await edge.add_account("wechat", "acme-new", {"token": TOKEN, "aes_key": AES_KEY, "appid": APPID})
    wc = WeChat(edge, "acme-new")
    await _refused(edge, 400, "encryption_required", await wc.post(text_message("明文")))
    assert await wc.post_safe(text_message("密文")) == (200, "success")
    async with edge.db.read() as conn:
        row = (await conn.execute(select(channel_accounts.c.settings).where(
            channel_accounts.c.address == "acme-new"))).one()
    assert row.settings["mode"] == "safe"


# --- bad input: status, a body naming the problem, nothing queued --------------------------


async def test_unknown_account_is_404(edge):
    wc = edge.wechat["plain"]
    wc.account = "nobody"
    await _refused(edge, 404, "unknown_account", await wc.post(text_message()))


async def test_wrong_signature_is_401(edge):
    q = edge.wechat["plain"].query()
    q["signature"] = signature(q["timestamp"], q["nonce"], token="someone-else")
    await _refused(edge, 401, "bad_signature", await edge.wechat["plain"].post(text_message(), q))


async def test_wrong_msg_signature_is_401(edge):
    body, q = edge.wechat["safe"].encrypted(text_message())
    q["msg_signature"] = hashlib.sha1(b"forged").hexdigest()
    await _refused(edge, 401, "bad_signature", await edge.wechat["safe"].post(body, q))


async def test_message_encrypted_for_another_appid_is_401(edge):
    other = WeChat(edge, "acme-safe", appid="wx0000000000000000")
    await _refused(edge, 401, "wrong_appid", await other.post_safe(text_message()))


async def test_message_encrypted_with_another_key_is_400(edge):
    other = WeChat(edge, "acme-safe", aes_key="Z" * 43)
    await _refused(edge, 400, "undecryptable", await other.post_safe(text_message()))


async def test_plaintext_push_to_a_safe_mode_account_is_400(edge):
    await _refused(edge, 400, "encryption_required", await edge.wechat["safe"].post(text_message()))


async def test_encrypted_push_to_an_account_without_aes_key_is_400(edge):
    body, q = edge.wechat["safe"].encrypted(text_message())
    await _refused(edge, 400, "encryption_not_configured", await edge.wechat["plain"].post(body, q))


async def test_malformed_xml_is_400(edge):
    await _refused(edge, 400, "malformed", await edge.wechat["plain"].post("<xml><Content>unclosed</xml>"))
    gbk = '<?xml version="1.0" encoding="gbk"?><xml><Content>订单</Content></xml>'.encode("gbk")
    await _refused(edge, 400, "malformed", await edge.wechat["plain"].post(gbk))


async def test_encrypted_push_without_encrypt_element_is_400(edge):
    q = edge.wechat["safe"].query(encrypt_type="aes", msg_signature="0" * 40)
    await _refused(edge, 400, "malformed", await edge.wechat["safe"].post(text_message(), q))


async def test_entity_expansion_is_refused_unexpanded(edge):
    bomb = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            "<xml><Content>&c;</Content></xml>")
    await _refused(edge, 400, "malformed", await edge.wechat["plain"].post(bomb))


async def test_external_entity_is_refused(edge):
    xxe = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           "<xml><Content>&x;</Content></xml>")
    await _refused(edge, 400, "malformed", await edge.wechat["plain"].post(xxe))


async def test_message_without_msgid_is_400(edge):
    body = xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000000, MsgType="text", Content="hi")
    await _refused(edge, 400, "malformed", await edge.wechat["plain"].post(body))


async def test_oversized_push_is_413(edge):
    await _refused(edge, 413, "too_large", await edge.wechat["plain"].post(text_message("长" * 30_000)))


async def test_queue_down_is_503_so_wechat_retries(edge):
    await edge.redis.config_set("maxmemory", 1)
    await edge.redis.config_set("maxmemory-policy", "noeviction")
    try:
        status, body = await edge.wechat["plain"].post(text_message())
    finally:
        await edge.redis.config_set("maxmemory", 0)
    assert (status, body["error"]["code"]) == (503, "unavailable")
    assert await edge.xlen("wechat") == 0


# --- through the normalizer (SQLite and PostgreSQL) ----------------------------------------


@pytest.fixture
async def flow(system):
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        gw.wechat = await _accounts(gw)
        gw.system = system
        yield gw


async def test_retry_storm_of_one_message_makes_one_message(flow):
    # WeChat resends after 5 s without an answer, up to three times; here all at once, the
    # same request each time and once more under a fresh signed triple.
    plain = text_message("重复推送", msgid=6200000000099999999)
    body, q = flow.wechat["safe"].encrypted(plain)
    results = await asyncio.gather(*(flow.wechat["safe"].post(body, q) for _ in range(3)),
                                   flow.wechat["safe"].post_safe(plain))
    assert results == [(200, "success")] * 4
    await flow.system.drain()
    [message] = await flow.system.messages()
    assert (message.text, message.channel) == ("重复推送", "wechat")
    assert len(await flow.system.tickets()) == 1


async def test_every_message_type_joins_one_session_ticket_with_media_ids(flow):
    wc = flow.wechat["safe"]
    pushes = [
        text_message("你好"),
        xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000001, MsgType="image",
            PicUrl="http://mmbiz.qpic.cn/x.jpg", MediaId="img-media-1", MsgId=next(_msgids)),
        xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000002, MsgType="voice",
            MediaId="voice-media-1", Format="amr", Recognition="快递到哪里了", MsgId=next(_msgids)),
        xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000003, MsgType="video",
            MediaId="video-media-1", ThumbMediaId="thumb-1", MsgId=next(_msgids)),
        xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000004, MsgType="shortvideo",
            MediaId="short-media-1", ThumbMediaId="thumb-2", MsgId=next(_msgids)),
        xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000005, MsgType="location",
            Location_X="23.134521", Location_Y="113.358803", Scale=20, Label="广州市天河区", MsgId=next(_msgids)),
        xml(ToUserName="gh_acme", FromUserName=OPENID, CreateTime=1700000006, MsgType="link",
            Title="订单截图", Description="订单 1042", Url="https://example.cn/o/1042", MsgId=next(_msgids)),
    ]
    for push in pushes:
        assert await wc.post_safe(push) == (200, "success")
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    msgs = await flow.system.messages()
    assert [m.text for m in msgs] == [
        "你好", "[image]", "[voice] 快递到哪里了", "[video]", "[shortvideo]",
        "[location] 广州市天河区 (23.134521, 113.358803)", "[link] 订单截图\n订单 1042\nhttps://example.cn/o/1042",
    ]
    assert {m.ticket_id for m in msgs} == {ticket.id}
    media = [m.headers["wechat"].get("MediaId") for m in msgs]
    assert media == [None, "img-media-1", "voice-media-1", "video-media-1", "short-media-1", None, None]
    assert msgs[2].headers["wechat"]["Format"] == "amr" and msgs[3].headers["wechat"]["ThumbMediaId"] == "thumb-1"


async def test_events_are_recorded_deduped_and_only_a_menu_click_opens_a_ticket(flow):
    wc = flow.wechat["plain"]
    subscribe = event("subscribe", created=1700000100, EventKey="qrscene_123", Ticket="TICKET")
    for body in (subscribe, subscribe, event("VIEW", created=1700000101, EventKey="https://example.cn")):
        assert await wc.post(body) == (200, "success")
    await flow.system.drain()
    assert await flow.system.tickets() == []
    msgs = await flow.system.messages()
    assert [(m.text, m.auto_reason, m.ticket_id) for m in msgs] == [
        ("[event subscribe] qrscene_123", "wechat_subscribe", None),
        ("[event view] https://example.cn", "wechat_view", None),
    ]
    await wc.post(event("CLICK", created=1700000102, EventKey="CONTACT_SUPPORT"))
    await wc.post(event("SCAN", created=1700000103, EventKey="123"))
    await flow.system.drain()
    [ticket] = await flow.system.tickets()
    click, scan = (await flow.system.messages())[2:]
    assert (click.ticket_id, click.auto_reason) == (ticket.id, "")
    assert (scan.ticket_id, scan.auto_reason) == (ticket.id, "wechat_scan")  # recorded on the open session


async def test_a_message_after_the_session_window_opens_a_new_ticket(flow):
    wc = flow.wechat["plain"]
    await wc.post(text_message("第一次"))
    await flow.system.drain()
    await wc.post(text_message("同一会话"))
    await flow.system.drain()
    [first] = await flow.system.tickets()
    idle = flow.system.settings.session_window_s * 1000 + 60_000
    async with flow.system.db.write() as conn:
        await conn.execute(update(tickets).values(updated_at=tickets.c.updated_at - idle))
    await wc.post(text_message("一天以后"))
    await wc.post(text_message("接着说"))
    await flow.system.drain()
    old, new = await flow.system.tickets()
    assert old.id == first.id and new.customer_id == old.customer_id
    assert [m.ticket_id for m in await flow.system.messages()] == [old.id, old.id, new.id, new.id]


async def test_one_customer_per_openid_per_account_linked_by_unionid(flow):
    # The same openid string on two accounts is two people; a unionid says they are one.
    await flow.wechat["plain"].post(text_message("a"))
    await flow.wechat["compat"].post(text_message("b"))
    await flow.system.drain()
    async with flow.system.db.read() as conn:
        assert len((await conn.execute(select(customers))).all()) == 2
    await flow.wechat["plain"].post(text_message("c", openid="o-plain-2", UnionId="union-77"))
    await flow.wechat["safe"].post_safe(text_message("d", openid="o-safe-2", UnionId="union-77"))
    await flow.system.drain()
    c, d = (await flow.system.messages())[2:]
    assert c.customer_id == d.customer_id
    async with flow.system.db.read() as conn:
        kinds = sorted((i.kind, i.value) for i in (await conn.execute(
            select(identities).where(identities.c.customer_id == c.customer_id))).all())
    assert kinds == [("wechat", "o-plain-2"), ("wechat", "o-safe-2"), ("wechat_union", "union-77")]


async def test_two_normalizers_racing_on_sessions_make_one_ticket_per_fan(flow):
    # Five fans, four messages each, interleaved; two workers take them concurrently.
    from normalizer.worker import Normalizer

    for i in range(4):
        for fan in range(5):
            assert await flow.wechat["plain"].post(text_message(f"{fan}-{i}", openid=f"o-fan-{fan}")) == (200, "success")
    s = flow.system
    workers = [Normalizer(s.bus, s.settings.replace(batch_size=2), s.db, s.bus.blobs, consumer=f"n{i}") for i in (1, 2)]
    await asyncio.wait_for(asyncio.gather(*(w.run(drain=True) for w in workers)), 60)
    msgs = await s.messages()
    assert len(msgs) == 20 and len(await s.tickets()) == 5
    by_fan: dict[str, set[int]] = {}
    for m in msgs:
        by_fan.setdefault(m.sender, set()).add(m.ticket_id)
    assert all(len(t) == 1 for t in by_fan.values()) and len(by_fan) == 5
