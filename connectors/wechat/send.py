"""Replies to a WeChat follower: customer-service messages, a template message outside the window.

Official account docs, "Customer service messages": the account may message a follower for
48 hours after the follower's last message; later the API answers 45015. An account that
set ``template_id`` (and ``template_fields``) then sends its template message instead.
Text goes first, then each image attachment (uploaded as temporary media, then sent); a
part WeChat accepted is remembered so a retry after a later part failed does not repeat it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from wechatpy.constants import WeChatErrorCode as Code

from connectors.delivery import Parts
from connectors.wechat.api import RATE_LIMITS, Client, Credentials, WeChatError, failure
from connectors.wechat.message import CHANNEL
from core.outbound import OutboundFile, Outgoing, PermanentFailure, SendContext, Sent

CUSTOM_SEND = "/cgi-bin/message/custom/send"
MEDIA_UPLOAD = "/cgi-bin/media/upload"
TEMPLATE_SEND = "/cgi-bin/message/template/send"
# "Temporary media": images are PNG, JPEG, JPG or GIF (BMP in older accounts), up to 10 MB.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/bmp"})
DEFAULT_TEMPLATE_FIELDS = {"content": "{text}"}


async def send(out: Outgoing, ctx: SendContext) -> Sent:
    """Send ``out`` to the follower ``out.to`` (an openid of ``out.account_id``)."""
    client = Client(ctx.redis, ctx.http, Credentials.from_settings(out.account_id, out.account_settings))
    images = _images(out.attachments)
    if not out.text.strip() and not images:
        raise PermanentFailure("empty", "the reply has neither text nor an image to send")
    parts = Parts(ctx.redis, CHANNEL, out.outbox_id)
    done = await parts.done()
    if "template" in done:
        return Sent(platform_id=done["template"])
    try:
        return await _customer_service(client, parts, done, out, images)
    except WeChatError as err:
        if err.errcode == Code.OUT_OF_RESPONSE_TIME_LIMIT and out.account_settings.get("template_id") and not done:
            return await _template(client, parts, out, err)
        raise failure(err) from None


def _images(files: tuple[OutboundFile, ...]) -> list[OutboundFile]:
    # The customer-service API sends text, image, voice, video, music, news and cards: a
    # document has no message type, so a reply carrying one cannot be delivered here as is.
    others = [f.filename for f in files if f.content_type.lower() not in IMAGE_TYPES]
    if others:
        raise PermanentFailure("unsupported_attachment",
                               f"WeChat customer-service messages carry images only, not {', '.join(others)}")
    return list(files)


async def _customer_service(client: Client, parts: Parts, done: dict[str, str], out: Outgoing,
                            images: list[OutboundFile]) -> Sent:
    ids = [done[p] for p in sorted(done) if done[p]]
    if out.text.strip() and "text" not in done:
        answer = await client.call(CUSTOM_SEND, body={"touser": out.to, "msgtype": "text",
                                                      "text": {"content": out.text}})
        ids.append(await _mark(parts, "text", answer))
    for n, image in enumerate(images):
        if f"image{n}" in done:
            continue
        media = await client.call(MEDIA_UPLOAD, upload=image, params={"type": "image"})
        answer = await client.call(CUSTOM_SEND, body={"touser": out.to, "msgtype": "image",
                                                      "image": {"media_id": str(media.get("media_id", ""))}})
        ids.append(await _mark(parts, f"image{n}", answer))
    return Sent(platform_id=",".join(i for i in ids if i))


async def _mark(parts: Parts, part: str, answer: Mapping[str, Any]) -> str:
    msgid = str(answer.get("msgid", ""))
    await parts.mark(part, msgid)
    return msgid


async def _template(client: Client, parts: Parts, out: Outgoing, window: WeChatError) -> Sent:
    settings = out.account_settings
    body: dict[str, Any] = {"touser": out.to, "template_id": str(settings["template_id"]),
                            "data": template_data(settings.get("template_fields") or DEFAULT_TEMPLATE_FIELDS, out)}
    if settings.get("template_url"):
        body["url"] = str(settings["template_url"])
    try:
        answer = await client.call(TEMPLATE_SEND, body=body)
    except WeChatError as err:
        if err.errcode in RATE_LIMITS:
            raise failure(err) from None
        raise PermanentFailure(str(err.errcode), f"{err.errmsg} (the template message, sent after "
                               f"{window.errcode} {window.errmsg})") from None
    return Sent(platform_id=await _mark(parts, "template", answer))


def template_data(fields: Mapping[str, str], out: Outgoing) -> dict[str, dict[str, str]]:
    """``{field: {"value": …}}`` from the account's ``template_fields`` (field -> format string)."""
    values = {"text": out.text, "subject": out.subject, "ticket_number": str(out.ticket_number),
              "to_name": out.to_name, "tenant": out.tenant}
    data = {}
    for field, pattern in fields.items():
        try:
            data[str(field)] = {"value": string.Formatter().vformat(str(pattern), (), values)}
        except (KeyError, IndexError, ValueError) as exc:
            raise PermanentFailure("template_fields", f"template field {field!r}: {pattern!r} uses an unknown "
                                   f"placeholder {exc} (known: {', '.join(sorted(values))})") from None
    return data
