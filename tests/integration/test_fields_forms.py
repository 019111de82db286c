"""Custom fields from the command line, and filled from web forms and app messages through an
account's ``field_map`` by the normalizer (a value that does not fit is kept, never fails)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from urllib.parse import urlencode

from sqlalchemy import select
from support import role_env

from connectors.webform.spec import FormSpec
from core import keys
from core.envelope import Envelope
from ticket_service.field_schema import definition
from ticket_service.store import account_settings, admin
from ticket_service.store import fields as fields_store
from ticket_service.store.tables import messages, tickets

FIELD_MAP = {"order": "order_no", "total": "amount", "subjects": "topics", "when": "due", "colour": "paint"}


def _switchboard(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


async def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(_switchboard, env, *args)


async def _define_fields(env: dict) -> None:
    for args in (("order_no", "text", "--label", "订单号"), ("amount", "number", "--required"), ("due", "date"),
                 ("topics", "multi_choice", "--choices", "refund,delivery,invoice")):
        done = await _cli(env, "field", "add", *args, "--tenant", "acme")
        assert done.returncode == 0, done.stderr


async def test_field_commands_add_list_and_remove(system, redis_url, tmp_path):
    env = role_env(tmp_path / "data", redis_url, system.settings.database_url)
    await _define_fields(env)
    listed = await _cli(env, "field", "list", "--tenant", "acme")
    assert listed.returncode == 0
    assert json.loads(listed.stdout)[0] == {"name": "order_no", "type": "text", "label": "订单号", "required": False,
                                            "choices": None}
    assert [f["name"] for f in json.loads(listed.stdout)] == ["order_no", "amount", "due", "topics"]
    for args, error in [
        (("add", "Order", "text"), "name must be a slug"),
        (("add", "kind", "choice"), "choices must be a list of 1 to 100 strings"),
        (("add", "amount", "number"), "a field named amount exists"),
        (("remove", "nothing"), "no field 'nothing'"),
    ]:
        refused = await _cli(env, "field", *args, "--tenant", "acme")
        assert refused.returncode == 1 and refused.stderr.startswith(f"switchboard: {error}"), (args, refused.stderr)
    removed = await _cli(env, "field", "remove", "due", "--tenant", "acme")
    assert (removed.returncode, json.loads(removed.stdout)) == (0, {"removed": "due"})
    async with system.db.read() as conn:
        assert list(await conn.run_sync(fields_store.definitions, system.tenant)) == ["order_no", "amount", "topics"]


async def _account(system, channel: str, address: str, settings: dict) -> int:
    async with system.db.write() as conn:
        return await admin.add_account(conn, system.tenant, channel, address, settings)


async def _publish(system, channel: str, account: int, payload: bytes, content_type: str, **meta) -> None:
    env = Envelope(tenant="acme", channel=channel, account=str(account), payload=payload, content_type=content_type,
                   meta=meta)
    await system.bus.publish(keys.ingest_stream(channel), env)


async def _ticket_fields(system) -> list[dict]:
    async with system.db.read() as conn:
        return [dict(r.fields or {}) for r in (await conn.execute(select(tickets.c.fields).order_by(tickets.c.id)))]


async def test_a_form_fills_mapped_fields_and_keeps_values_that_do_not_fit(system, redis_url, tmp_path):
    # `account set field_map=...`; good values are set, a bad number and an unknown target are only kept.
    env = role_env(tmp_path / "data", redis_url, system.settings.database_url)
    await _define_fields(env)
    form = await _account(system, "webform", "contact", {"custom": list(FIELD_MAP)})
    done = await _cli(env, "account", "set", "contact", "--channel", "webform", f"field_map={json.dumps(FIELD_MAP)}")
    assert done.returncode == 0, done.stderr
    refused = await _cli(env, "account", "set", "contact", "--channel", "webform", 'field_map={"order": "Order No"}')
    assert refused.returncode == 1 and "field_map must be a JSON object" in refused.stderr
    async with system.db.read() as conn:
        spec = FormSpec.from_settings((await admin.get_account(conn, form)).settings)
    good = {"message": "退款", "email": "li@example.cn", "order": "A-1042", "total": "12.50",
            "subjects": "refund, invoice", "when": "2026-12-01", "colour": "red"}
    bad = {"message": "again", "email": "wu@example.cn", "order": "B-7", "total": "twelve", "when": "2026-02-30"}
    for fields in (good, bad):
        await _publish(system, "webform", form, urlencode(fields).encode(), "application/x-www-form-urlencoded",
                       form=spec.to_meta())
    await system.drain()
    assert await _ticket_fields(system) == [
        {"order_no": "A-1042", "amount": 12.5, "topics": ["refund", "invoice"], "due": "2026-12-01"},
        {"order_no": "B-7"},
    ]
    async with system.db.read() as conn:
        kept = (await conn.execute(select(messages.c.text, messages.c.headers).order_by(messages.c.id))).all()
    assert kept[1].headers["form"]["custom"]["total"] == "twelve" and "total: twelve" in kept[1].text


async def test_an_app_message_fills_mapped_fields(system):
    # The SDK message's own "fields" (text or numbers), mapped by the app's account.
    app = await _account(system, "sdk", "acme-ios", {"secret": "s" * 32})
    async with system.db.write() as conn:
        for body in ({"name": "order_no", "type": "text"}, {"name": "amount", "type": "number"}):
            await conn.run_sync(fields_store.add_field, system.tenant, definition(body), 1)
        await account_settings.set_settings(conn, "sdk", "acme-ios", {"field_map": json.dumps(
            {"order": "order_no", "total": "amount"})})
    doc = {"id": str(uuid.uuid4()), "conversation": "c-1", "user": {"id": "u-1"}, "text": "退款",
           "fields": {"order": "A-9", "total": 30, "device": "iPhone"}}
    await _publish(system, "sdk", app, json.dumps(doc).encode(), "application/json")
    await system.drain()
    assert await _ticket_fields(system) == [{"order_no": "A-9", "amount": 30}]
