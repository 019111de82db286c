"""Weibo fan service replies against the local API stand-in."""

from __future__ import annotations

import pytest
from outbound_support import outgoing, send_context
from weibo_standin import start_weibo_standin

from connectors.weibo.send import chunks, send
from core.outbound import OutboundFile, PermanentFailure, Sent, TemporaryFailure

FAN = "1905739501"


def settings(wb, **extra) -> dict:
    return {"access_token": wb.token, "api_base": wb.base_url, **extra}


async def test_text_reply_is_posted_as_the_documented_form(redis_url):
    async with start_weibo_standin() as wb, send_context(redis_url) as ctx:
        sent = await send(outgoing("weibo", settings(wb), FAN, text="您好，包裹已发出"), ctx)
        assert sent == Sent(platform_id="4013001000000001")
        (reply,) = wb.replies
        assert reply.form == {"access_token": wb.token, "type": "text", "receiver_id": FAN,
                              "data": '{"text": "您好，包裹已发出"}', "save_sender_box": "1"}
        assert reply.accepted


async def test_a_long_reply_goes_in_parts_under_the_text_limit(redis_url):
    text = " ".join(["parcel"] * 120)  # 839 characters
    async with start_weibo_standin() as wb, send_context(redis_url) as ctx:
        sent = await send(outgoing("weibo", settings(wb, save_sender_box=0), FAN, text=text), ctx)
        assert sent.platform_id == "4013001000000001,4013001000000002,4013001000000003"
        texts = [d["text"] for d in wb.accepted()]
        assert " ".join(texts) == text
        assert max(len(t) for t in texts) <= 300
        assert {r.form["save_sender_box"] for r in wb.replies} == {"0"}


def test_chunks_cut_at_spaces_and_keep_every_character():
    assert chunks("ab cd ef", limit=5) == ["ab cd", "ef"]
    assert chunks("x" * 12, limit=5) == ["xxxxx", "xxxxx", "xx"]
    assert chunks("  ") == []


async def test_expired_token_fails_permanently_asking_to_renew_it(redis_url):
    async with start_weibo_standin() as wb, send_context(redis_url) as ctx:
        wb.expire_token()
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("weibo", settings(wb), FAN), ctx)
        assert (failed.value.code, failed.value.message) == (
            "21327", "expired_token: renew the account's access_token setting (fan service platform, developer mode)")


async def test_rate_limit_is_temporary_and_a_retry_sends_only_the_rest(redis_url):
    text = "a" * 250 + " " + "b" * 250
    async with start_weibo_standin() as wb, send_context(redis_url) as ctx:
        out = outgoing("weibo", settings(wb), FAN, text=text)
        wb.limit_next(1, after=1)  # the first part goes out, the second meets the rate limit
        with pytest.raises(TemporaryFailure) as failed:
            await send(out, ctx)
        assert (failed.value.code, failed.value.message, failed.value.retry_after_s) == (
            "10023", "User requests out of rate limit!", 300.0)
        assert (await send(out, ctx)).platform_id == "4013001000000001,4013001000000002"
        assert wb.accepted() == [{"text": "a" * 250}, {"text": "b" * 250}]
        assert len(wb.replies) == 3


async def test_unknown_receiver_fails_permanently_in_weibos_words(redis_url):
    async with start_weibo_standin() as wb, send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("weibo", settings(wb), "1000000001"), ctx)
        assert (failed.value.code, failed.value.message) == ("20003", "User does not exists!")


async def test_attachments_and_a_missing_token_are_refused_before_calling_weibo(redis_url):
    async with start_weibo_standin() as wb, send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("weibo", settings(wb), FAN,
                                attachments=(OutboundFile("a.png", "image/png", b"x"),)), ctx)
        assert failed.value.code == "unsupported_attachment"
        with pytest.raises(PermanentFailure) as failed:
            await send(outgoing("weibo", {"api_base": wb.base_url}, FAN), ctx)
        assert failed.value.code == "not_configured"
        assert wb.replies == []
