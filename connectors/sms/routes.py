"""``/sms/{account}/twilio|aliyun``: incoming texts, each answered in its provider's words once queued.

Account settings (channel ``sms``, address = ``{account}``): ``auth_token`` (Twilio; or
``shared_key`` for HMAC-SHA256 webhooks), ``public_url`` (the base URL Twilio calls, when behind
a proxy), ``token`` (the Aliyun push URL's secret, 16 characters or more), ``region`` (for
numbers without a country code, default CN), ``max_body``, ``max_batch`` (Aliyun).
"""

from __future__ import annotations

from aiohttp import web

from connectors.contact import FieldError
from connectors.push import (
    DEFAULT_MAX_BODY,
    Gateway,
    Reject,
    account_for,
    count,
    envelope,
    publish,
    push_route,
    read_body,
    setting_int,
)
from connectors.sms import aliyun, twilio
from connectors.sms.message import CHANNEL, STREAM
from core.accounts import Account

_SIGNATURE_PROBLEMS = {
    "missing_signature": f"{twilio.SIGNATURE} header is required",
    "bad_signature": "signature does not match the account's auth token and this URL",
}
_TOKEN_PROBLEMS = {
    "token_not_configured": f"this account has no push token of {aliyun.MIN_TOKEN} characters or more",
    "missing_token": "the push URL needs its ?token=",
    "bad_token": "token does not match the account's",
}


def _region(account: Account) -> str:
    return str(account.settings.get("region", "CN"))


def _bad(exc: FieldError) -> Reject:
    return Reject(413 if exc.reason == "too_many_messages" else 400, exc.reason, exc.message)


def _twiml() -> web.Response:
    return web.Response(text=twilio.EMPTY_TWIML, content_type="text/xml")


@push_route(CHANNEL)
async def post_twilio(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, CHANNEL, request.match_info["account"])
    body = await read_body(request, setting_int(account, "max_body", DEFAULT_MAX_BODY))
    try:
        params = twilio.form(body)
    except UnicodeDecodeError:
        raise Reject(400, "malformed", "body is not UTF-8 form data") from None
    if problem := twilio.verified(request, account.settings, params):
        raise Reject(401, problem, _SIGNATURE_PROBLEMS[problem])
    fields = dict(params)
    if twilio.is_status_callback(fields):
        # Delivery reports of messages we sent: acknowledged, nothing to file for an agent.
        count(CHANNEL, "ignored", "status_callback")
        return _twiml()
    try:
        twilio.check(fields)
    except FieldError as exc:
        raise _bad(exc) from None
    env = envelope(account, CHANNEL, body, "application/x-www-form-urlencoded", request, provider="twilio",
                   region=_region(account), verified="X-Twilio-Signature")
    await publish(gw, STREAM, env, CHANNEL)
    return _twiml()  # empty TwiML: Twilio sends no reply text


@push_route(CHANNEL)
async def post_aliyun(request: web.Request, gw: Gateway) -> web.StreamResponse:
    account = await account_for(gw, CHANNEL, request.match_info["account"])
    # The token is all that authenticates the push: checked before the body is read.
    if problem := aliyun.token_problem(account.settings, request.query.get("token", "")):
        raise Reject(401, problem, _TOKEN_PROBLEMS[problem])
    body = await read_body(request, setting_int(account, "max_body", aliyun.MAX_BODY))
    try:
        messages = aliyun.read(body, setting_int(account, "max_batch", aliyun.MAX_BATCH))
    except FieldError as exc:
        raise _bad(exc) from None
    if messages:
        env = envelope(account, CHANNEL, body, "application/json", request, provider="aliyun",
                       region=_region(account), messages=str(len(messages)), verified="token")
        await publish(gw, STREAM, env, CHANNEL)
    return web.json_response(aliyun.ANSWER)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/sms/{account}/twilio", post_twilio)
    app.router.add_post("/sms/{account}/aliyun", post_aliyun)
