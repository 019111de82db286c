"""Account settings an admin changes after the fact (``switchboard account set``): each key
says which channels it applies to and which values it takes; any other key is refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ticket_service.field_schema import NAME
from ticket_service.store.admin import NotFound
from ticket_service.store.tables import channel_accounts, tenants

# What a mailbox does with bulk and machine-made mail (newsletters, alerts, notifications):
# ticket: open a ticket marked auto, not routed, not acknowledged (a notification is often
# real work); attach: only join a ticket its thread already has, else keep it without one;
# drop: do not store it at all (counted, logged).
AUTO_MAIL = ("ticket", "attach", "drop")
AUTO_MAIL_DEFAULT = "ticket"


@dataclass(frozen=True, slots=True)
class Setting:
    channels: tuple[str, ...]
    values: tuple[str, ...]
    help: str
    parse: Callable[[str], object] | None = None  # a value that is not one of ``values`` (JSON)


MAX_FIELD_MAP = 50


def field_map(raw: str) -> dict[str, str]:
    """``{"form field": "custom_field"}``: which submitted value fills which custom ticket field."""
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or len(doc) > MAX_FIELD_MAP or not all(
            isinstance(k, str) and 0 < len(k) <= 100 and isinstance(v, str) and NAME.fullmatch(v)
            for k, v in doc.items()):
        raise ValueError(f"field_map must be a JSON object of at most {MAX_FIELD_MAP} form field names, each "
                         'mapped to a custom field name, e.g. {"order": "order_no"}')
    return doc


SETTABLE: dict[str, Setting] = {
    "auto_mail": Setting(("email",), AUTO_MAIL, "bulk/auto-generated mail: ticket (marked auto), attach or drop"),
    # WeChat's message modes; safe is the only one whose signature covers the message.
    "mode": Setting(("wechat",), ("safe", "compatible", "plaintext"), "WeChat message mode: safe, compatible or plaintext"),
    "field_map": Setting(("webform", "sdk"), (), 'custom ticket fields filled from submitted fields, '
                         'JSON {"form field": "custom_field"}', parse=field_map),
}


def auto_mail(settings: Mapping[str, object]) -> str:
    """The mailbox's choice for bulk mail; an unknown stored value falls back to the default."""
    value = settings.get("auto_mail", AUTO_MAIL_DEFAULT)
    return value if value in AUTO_MAIL else AUTO_MAIL_DEFAULT


def check(channel: str, key: str, value: str) -> object:
    """The value to store for ``key``, or ValueError saying what it takes."""
    setting = SETTABLE.get(key)
    if setting is None:
        raise ValueError(f"{key!r} is not a setting `account set` changes (known: {', '.join(sorted(SETTABLE))})")
    if channel not in setting.channels:
        raise ValueError(f"{key} applies to {', '.join(setting.channels)} accounts, not {channel}")
    if setting.parse is not None:
        return setting.parse(value)
    if value not in setting.values:
        raise ValueError(f"{key} must be one of {'|'.join(setting.values)}, not {value!r}")
    return value


async def set_settings(conn: AsyncConnection, channel: str, address: str, values: Mapping[str, str],
                       tenant_slug: str | None = None) -> dict:
    """Change settings of the account ``address``; returns its settings as stored now."""
    if channel == "email":
        address = address.strip().lower()
    row = (await conn.execute(
        select(channel_accounts.c.id, channel_accounts.c.settings, tenants.c.slug)
        .join(tenants, tenants.c.id == channel_accounts.c.tenant_id)
        .where(channel_accounts.c.channel == channel, channel_accounts.c.address == address)
    )).first()
    if row is None or (tenant_slug is not None and row.slug != tenant_slug):
        raise NotFound(f"no {channel} account {address!r}" + (f" of tenant {tenant_slug!r}" if tenant_slug else ""))
    checked = {key: check(channel, key, value) for key, value in values.items()}
    settings = {**(row.settings or {}), **checked}
    await conn.execute(update(channel_accounts).where(channel_accounts.c.id == row.id).values(settings=settings))
    return settings
