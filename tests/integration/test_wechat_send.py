"""WeChat replies against the local API stand-in, with the access token shared through real Redis."""

from __future__ import annotations

import asyncio

import pytest
from outbound_support import outgoing, send_context
from support import free_port
from wechat_standin import start_wechat_standin

from connectors.wechat.send import send
from core import keys
from core.outbound import OutboundFile, PermanentFailure, Sent, TemporaryFailure

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
CUSTOM = "/cgi-bin/message/custom/send"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def settings(wx, **extra) -> dict:
    return {"appid": wx.appid, "app_secret": wx.secret, "api_base": wx.base_url, **extra}


def text_body(text="Your parcel left the depot today.") -> dict:
    return {"touser": OPENID, "msgtype": "text", "text": {"content": text}}


async def test_text_reply_lands_as_a_customer_service_text(redis_url):
    # One token fetch with the account's credentials, then the documented text message JSON.
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        sent = await send(outgoing("wechat", settings(wx), OPENID, text="您好，包裹已发出"), ctx)
        assert sent == Sent(platform_id="", status="sent")
        assert wx.sent() == [text_body("您好，包裹已发出")]
        fetch = wx.requests[0]
        assert (fetch.path, fetch.query) == ("/cgi-bin/token", {
            "grant_type": "client_credential", "appid": wx.appid, "secret": wx.secret})
        assert wx.requests[1].query == {"access_token": wx.tokens_issued[0]}
        assert (await ctx.redis.get(keys.wechat_token_key(3))).decode() == wx.tokens_issued[0]
        assert 0 < await ctx.redis.ttl(keys.wechat_token_key(3)) <= 6480  # 90 % of expires_in 7200


async def test_two_replicas_share_one_token_fetch(redis_url):
    # Two senders with their own sessions and Redis clients start at once: WeChat issues one token.
    async with start_wechat_standin(token_delay_s=0.3) as wx, \
            send_context(redis_url) as one, send_context(redis_url) as two:
        results = await asyncio.gather(
            send(outgoing("wechat", settings(wx), OPENID, outbox_id=1, text="first"), one),
            send(outgoing("wechat", settings(wx), OPENID, outbox_id=2, text="second"), two))
        assert results == [Sent(), Sent()]
        assert wx.token_fetches == 1
        calls = [r for r in wx.requests if r.path == CUSTOM]
        assert [r.query["access_token"] for r in calls] == [wx.tokens_issued[0]] * 2
        assert sorted(b["text"]["content"] for b in wx.sent()) == ["first", "second"]


async def test_expired_token_is_fetched_again_and_the_send_retried(redis_url):
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        await send(outgoing("wechat", settings(wx), OPENID, outbox_id=1), ctx)
        wx.expire_tokens()
        assert await send(outgoing("wechat", settings(wx), OPENID, outbox_id=2, text="again"), ctx) == Sent()
        assert wx.token_fetches == 2
        calls = [r.query["access_token"] for r in wx.requests if r.path == CUSTOM]
        assert calls == [wx.tokens_issued[0], wx.tokens_issued[0], wx.tokens_issued[1]]
        assert wx.sent() == [text_body(), text_body("again")]


async def test_outside_the_48_hour_window_fails_permanently_in_wechats_words(redis_url):
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        wx.last_message_older_than_48h(OPENID)
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("wechat", settings(wx), OPENID), ctx)
        assert (failed.value.code, failed.value.message) == (
            "45015", "response out of time limit or subscription is canceled")
        assert wx.sent() == []


async def test_outside_the_window_the_configured_template_is_sent(redis_url):
    fields = {"first": "Reply on ticket #{ticket_number}", "remark": "{text}"}
    async with start_wechat_standin(templates=frozenset({"TPL-reply"})) as wx, send_context(redis_url) as ctx:
        wx.last_message_older_than_48h(OPENID)
        out = outgoing("wechat", settings(wx, template_id="TPL-reply", template_fields=fields,
                                          template_url="https://acme.example/t/1042"), OPENID)
        assert await send(out, ctx) == Sent(platform_id="200228332")
        assert wx.sent("/cgi-bin/message/template/send") == [{
            "touser": OPENID, "template_id": "TPL-reply", "url": "https://acme.example/t/1042",
            "data": {"first": {"value": "Reply on ticket #1042"},
                     "remark": {"value": "Your parcel left the depot today."}}}]
        assert wx.sent() == []


async def test_an_unknown_template_fails_with_both_reasons(redis_url):
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        wx.last_message_older_than_48h(OPENID)
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("wechat", settings(wx, template_id="gone"), OPENID), ctx)
        assert failed.value.code == "40037"
        assert failed.value.message == ("invalid template_id (the template message, sent after 45015 "
                                        "response out of time limit or subscription is canceled)")


async def test_rate_limit_is_a_temporary_failure_and_the_retry_succeeds(redis_url):
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        wx.limit_next(1, 45009)
        with pytest.raises(TemporaryFailure) as failed:
            await send(outgoing("wechat", settings(wx), OPENID), ctx)
        assert (failed.value.code, failed.value.message, failed.value.retry_after_s) == (
            "45009", "reach max api daily quota limit", 60.0)
        assert await send(outgoing("wechat", settings(wx), OPENID), ctx) == Sent()
        assert wx.sent() == [text_body()]


async def test_image_attachment_is_uploaded_then_sent_as_an_image(redis_url):
    image = OutboundFile("parcel.png", "image/png", PNG)
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        await send(outgoing("wechat", settings(wx), OPENID, attachments=(image,)), ctx)
        upload = next(r for r in wx.requests if r.path == "/cgi-bin/media/upload")
        assert upload.query == {"access_token": wx.tokens_issued[0], "type": "image"}
        assert upload.files == [("media", "parcel.png", "image/png", PNG)]
        (media_id,) = wx.media
        assert wx.sent() == [text_body(), {"touser": OPENID, "msgtype": "image", "image": {"media_id": media_id}}]


async def test_a_retry_after_a_failed_image_does_not_repeat_the_text(redis_url):
    image = OutboundFile("parcel.png", "image/png", PNG)
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        wx.limit_next(1, -1, msgtype="image")
        with pytest.raises(TemporaryFailure) as failed:
            await send(outgoing("wechat", settings(wx), OPENID, attachments=(image,)), ctx)
        assert (failed.value.code, failed.value.message) == ("-1", "system error")
        await send(outgoing("wechat", settings(wx), OPENID, attachments=(image,)), ctx)
        assert [b["msgtype"] for b in wx.sent()] == ["text", "image"]


async def test_a_document_attachment_is_refused_before_anything_is_sent(redis_url):
    pdf = OutboundFile("invoice.pdf", "application/pdf", b"%PDF-1.7")
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("wechat", settings(wx), OPENID, attachments=(pdf,)), ctx)
        assert failed.value.code == "unsupported_attachment"
        assert "invoice.pdf" in failed.value.message
        assert wx.requests == []


async def test_a_wrong_app_secret_fails_permanently_with_wechats_code(redis_url):
    async with start_wechat_standin() as wx, send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("wechat", settings(wx, app_secret="wrong"), OPENID), ctx)
        assert (failed.value.code, failed.value.message) == ("40125", "invalid appsecret")
        assert await ctx.redis.get(keys.wechat_token_key(3)) is None


async def test_an_unreachable_api_is_a_temporary_failure(redis_url):
    async with send_context(redis_url) as ctx:
        out = outgoing("wechat", {"appid": "wx1", "app_secret": "s", "api_base": f"http://127.0.0.1:{free_port()}"},
                       OPENID)
        with pytest.raises(TemporaryFailure) as failed:
            await send(out, ctx)
        assert failed.value.code == "network"
