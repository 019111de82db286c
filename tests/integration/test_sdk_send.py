"""SDK reply pushes to a real HTTP server standing in for the app's backend."""

from __future__ import annotations

import base64

import pytest
from outbound_support import outgoing, send_context
from sdk_standin import start_app_server
from support import free_port

from connectors.sdk.send import send
from core.outbound import OutboundFile, PermanentFailure, Sent, TemporaryFailure

USER = "u-1001"
HANDLE = "sb-reply-7f3a9c"


def reply(app_settings: dict, **fields):
    fields.setdefault("references", ("c-1",))
    return outgoing("sdk", app_settings, USER, handle=HANDLE, **fields)


async def test_push_is_signed_with_the_app_secret_and_carries_the_reply(redis_url):
    # The SDK's own verifier accepts the signature; the body names the handle, conversation and user.
    receipt = OutboundFile("receipt.png", "image/png", b"\x89PNG-bytes")
    async with start_app_server() as app, send_context(redis_url) as ctx:
        settings = {"secret": app.secret, "push_url": app.push_url}
        assert await send(reply(settings, attachments=(receipt,)), ctx) == Sent(platform_id=HANDLE)
        (push,) = app.pushes
        assert push.verified == "ok"
        assert push.headers["Content-Type"] == "application/json; charset=utf-8"
        sent_at = push.body.pop("sent_at")
        assert sent_at.endswith("Z") and sent_at[:2] == "20"
        assert push.body == {
            "id": HANDLE, "conversation": "c-1", "user": {"id": USER},
            "text": "Your parcel left the depot today.",
            "attachments": [{"filename": "receipt.png", "content_type": "image/png", "size": 10,
                             "data": base64.b64encode(b"\x89PNG-bytes").decode()}]}


async def test_push_signed_with_another_secret_is_refused_by_the_verifier(redis_url):
    async with start_app_server() as app, send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(reply({"secret": "not-the-app-secret", "push_url": app.push_url}), ctx)
        assert [p.verified for p in app.pushes] == ["bad_signature"]
        assert failed.value.code == "http_401"


async def test_server_error_is_temporary_with_the_same_id_on_retry(redis_url):
    async with start_app_server(answer_status=500, answer_body='{"error": "db down"}') as app, \
            send_context(redis_url) as ctx:
        settings = {"secret": app.secret, "push_url": app.push_url}
        with pytest.raises(TemporaryFailure) as failed:
            await send(reply(settings), ctx)
        assert (failed.value.code, failed.value.message) == (
            "http_500", "the app's push_url answered HTTP 500: {\"error\": \"db down\"}")
        app.answer_status = 200
        assert await send(reply(settings, attempt=2), ctx) == Sent(platform_id=HANDLE)
        assert [p.body["id"] for p in app.pushes] == [HANDLE, HANDLE]


async def test_client_error_is_permanent_with_the_apps_status_and_body(redis_url):
    async with start_app_server(answer_status=400, answer_body='{"error": "unknown conversation"}') as app, \
            send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(reply({"secret": app.secret, "push_url": app.push_url}), ctx)
        assert (failed.value.code, failed.value.message) == (
            "http_400", "the app's push_url answered HTTP 400: {\"error\": \"unknown conversation\"}")


async def test_unreachable_push_url_is_temporary(redis_url):
    async with send_context(redis_url) as ctx:
        settings = {"secret": "s", "push_url": f"http://127.0.0.1:{free_port()}/replies"}
        with pytest.raises(TemporaryFailure) as failed:
            await send(reply(settings), ctx)
        assert failed.value.code == "network"


async def test_without_push_url_the_reply_waits_in_the_conversation(redis_url):
    async with send_context(redis_url) as ctx:
        assert await send(reply({"secret": "s"}), ctx) == Sent(platform_id="conversation", status="sent")


async def test_a_reply_without_a_conversation_fails_permanently(redis_url):
    async with start_app_server() as app, send_context(redis_url) as ctx:
        with pytest.raises(PermanentFailure) as failed:
            await send(reply({"secret": app.secret, "push_url": app.push_url}, references=()), ctx)
        assert failed.value.code == "no_conversation"
        assert app.pushes == []
