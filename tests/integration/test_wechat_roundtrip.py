"""A WeChat conversation end to end: a safe-mode push through the real gateway, the ticket, an
agent's reply through the API, the sender calling the WeChat API stand-in (the only stand-in:
the real API cannot run here) — through a token expiry and into the 48-hour window's end."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from gateway_support import running_gateway
from outbox_support import SECRET, Outbound
from wechat_standin import start_wechat_standin
from wechat_support import AES_KEY, OPENID, TOKEN, WeChat, text_message

from connectors.registry import capacity_classes
from ticket_service.api import setup_api
from ticket_service.store import admin

ACCOUNT = "acme-service"


@pytest.fixture
async def chat(system):
    """A ticket opened by a signed, encrypted push; the API and the WeChat API stand-in running."""
    system.settings = system.settings.replace(secret_key=SECRET, send_backoff_base_s=0.001,
                                              send_backoff_cap_s=0.002)
    async with start_wechat_standin() as wx, \
            running_gateway(system.bus, system.db, system.tenant, secret_key=SECRET) as gw:
        async with system.db.write() as conn:
            await admin.add_account(conn, system.tenant, "wechat", ACCOUNT, {
                "token": TOKEN, "mode": "safe", "aes_key": AES_KEY, "appid": wx.appid,
                "app_secret": wx.secret, "api_base": wx.base_url}, secret_key=SECRET)
            key = await admin.create_api_key(conn, system.tenant)
        follower = WeChat(gw, ACCOUNT, appid=wx.appid)
        assert await follower.post_safe(text_message("我的订单还没到")) == (200, "success")
        await system.drain()
        [ticket] = await system.tickets()
        app = web.Application()
        setup_api(app, system.db, system.bus.blobs, capacity_classes(), secret_key=SECRET, reply_limit=256 * 1024)
        http = TestClient(TestServer(app))
        await http.start_server()
        try:
            world = Outbound(system, http, key, "", ticket.id)
            world.wx = wx
            yield world
        finally:
            await http.close()


async def test_a_reply_reaches_the_follower_again_after_a_token_expiry_then_fails_past_48_hours(chat):
    # Sent as a customer-service text to the follower's openid; a refetched token after expiry;
    # 45015 past the window fails the reply in WeChat's words and announces it.
    wx = chat.wx
    assert (await chat.post({"text": "包裹今天已发出"}))[0] == 201
    await chat.send_all()
    assert wx.sent() == [{"touser": OPENID, "msgtype": "text", "text": {"content": "包裹今天已发出"}}]
    wx.expire_tokens()
    assert (await chat.post({"text": "快递单号 SF1042"}))[0] == 201
    await chat.send_all()
    assert [b["text"]["content"] for b in wx.sent()] == ["包裹今天已发出", "快递单号 SF1042"]
    assert wx.token_fetches == 2 and len(wx.tokens_issued) == 2
    wx.last_message_older_than_48h(OPENID)
    status, late = await chat.post({"text": "还有问题吗？"})
    assert status == 201
    await chat.send_all()
    assert len(wx.sent()) == 2
    messages = (await chat.ticket())["messages"]
    assert [m["delivery"]["status"] for m in messages[1:]] == ["sent", "sent", "failed"]
    assert messages[-1]["id"] == late["id"]
    assert messages[-1]["delivery"]["error"] == {
        "code": "45015", "message": "response out of time limit or subscription is canceled"}
    [failed] = await chat.events("message.failed")
    assert (failed["message_id"], failed["ticket_id"], failed["channel"], failed["code"]) == (
        late["id"], chat.ticket_id, "wechat", "45015")
    assert len(await chat.events("message.sent")) == 2
