"""First start on an empty data folder: a demo tenant with an account per channel and an API key."""

from __future__ import annotations

import base64
import json
import os
import secrets

from console.auth import hash_password
from core.ids import now_ms
from ops.runtime import Runtime
from rules import definitions
from ticket_service.store import admin, triggers, users
from ticket_service.store import agents as agents_store

DEMO_TENANT = "demo"
DEMO_ADDRESS = "support@example.com"
DEMO_PUSH = "demo-shop"  # the {account} of /wechat/… and /weibo/…
DEMO_FORM = "contact"
DEMO_APP = "demo-app"
DEMO_CALLS = "demo-callcenter"  # the {account} of /voice/…/records|twilio|freeswitch
DEMO_SMS = "demo-sms"  # the {account} of /sms/…/twilio|aliyun
# Console sign-ins; both offline, so the router leaves demo tickets in the queue for them to take.
DEMO_PEOPLE = {"agent": ("agent@example.com", "Demo Agent"), "supervisor": ("supervisor@example.com", "Demo Supervisor")}
# The demo agent takes every channel class (her *Queue* lists the tickets she may take, and
# set online she is routed to); the supervisor takes none and sees every waiting ticket.
DEMO_CAPACITY = {"agent": {"email": 5, "chat": 5, "voice": 1}}
# The acknowledgement helpdesks send: a mail that opens a ticket (not bulk or machine-made
# mail: RFC 3834 §2) is answered with its number and the signed link to its status page
# (which every reply also carries under its signature).
ACKNOWLEDGEMENT = {
    "name": "demo: acknowledge mail",
    "on": ["ticket.created"],
    "if": {"all": [{"field": "channel", "op": "is", "value": "email"}, {"field": "auto", "op": "absent"}]},
    "then": [{"type": "reply", "template": (
        "Thank you for writing to us. Your request is ticket #{{ ticket.number }}; an agent will answer "
        "you by mail.\n您的来信已收到，工单号 #{{ ticket.number }}，客服会通过邮件回复您。\n\n"
        "{{ ticket.status_url }}\n")}],
}


def _push_channels() -> dict:
    """Settings of the demo's push accounts, with fresh secrets."""
    return {
        # Compatible, not the safe default: README's curl example posts a plaintext push.
        "wechat": {"account": DEMO_PUSH, "token": secrets.token_hex(8), "mode": "compatible",
                   # EncodingAESKey: 43 characters of base64 for a 32-byte key.
                   "aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
                   "appid": "wx" + secrets.token_hex(8)},
        "weibo": {"account": DEMO_PUSH, "app_secret": secrets.token_hex(16)},
        "webform": {"form": DEMO_FORM, "honeypot": "website", "custom": ["order_id"],
                    "cors_origins": ["http://localhost:8080", "http://127.0.0.1:8080"]},
        "sdk": {"app": DEMO_APP, "secret": secrets.token_urlsafe(24)},
        "voice": {"account": DEMO_CALLS, "secret": secrets.token_urlsafe(24), "auth_token": secrets.token_hex(16),
                  "username": "freeswitch", "password": secrets.token_urlsafe(12), "region": "CN",
                  "answer": "voicemail"},
        "sms": {"account": DEMO_SMS, "auth_token": secrets.token_hex(16), "token": secrets.token_urlsafe(24),
                "region": "CN"},
    }


async def _add_push_accounts(conn, tenant: int, secret_key: str, skip: frozenset[str] = frozenset()) -> dict:
    channels = {c: doc for c, doc in _push_channels().items() if c not in skip}
    for channel, doc in channels.items():
        address = doc.get("account") or doc.get("form") or doc["app"]
        settings = {k: v for k, v in doc.items() if k not in ("account", "form", "app")}
        await admin.add_account(conn, tenant, channel, address, settings, secret_key=secret_key)
    return channels


async def _add_people(rt: Runtime, slug: str) -> dict:
    """The demo's console users, with fresh random passwords."""
    s = rt.settings
    people: dict = {"url": f"http://{s.host}:{s.http_port}/"}
    async with rt.db.read() as conn:
        tenant = await admin.tenant_id(conn, slug)
    for role, (email, name) in DEMO_PEOPLE.items():
        password = secrets.token_urlsafe(12)
        if role in DEMO_CAPACITY:
            await rt.db.run_write(agents_store.create_agent, tenant, name, email, capacity=DEMO_CAPACITY[role])
        await rt.db.run_write(users.set_user, tenant, email, role, hash_password(password), name)
        people[role] = {"email": email, "password": password}
    return people


async def _add_acknowledgement(rt: Runtime, slug: str) -> int:
    """The demo's acknowledgement trigger (its id): added unless the tenant has one of that name,
    so a start that stopped before writing ``demo.json`` does not add a second one."""
    async with rt.db.read() as conn:
        tenant = await admin.tenant_id(conn, slug)
    values = definitions.definition(ACKNOWLEDGEMENT, "trigger")

    def add(conn) -> int:
        for row in triggers.listed(conn, "trigger", tenant):
            if row.name == ACKNOWLEDGEMENT["name"]:
                return row.id
        return triggers.add(conn, "trigger", tenant, now_ms(), definitions.LIMITS["trigger"], **values)

    return await rt.db.run_write(add)


async def ensure_demo(rt: Runtime) -> dict:
    """Create the demo tenant once and remember it in ``<data>/demo.json``; what later versions
    add to the demo (``sms``, ``console``, ``acknowledgement``) is added to an older folder once.
    A trigger deleted by hand stays deleted: ``demo.json`` remembers it was made."""
    path = rt.settings.data_dir / "demo.json"
    if path.exists():
        demo = json.loads(path.read_text())
        if "sms" in demo and "console" in demo and "acknowledgement" in demo:
            return demo
        if "sms" not in demo:
            async with rt.db.write() as conn:  # a data folder from before some push channels
                demo.update(await _add_push_accounts(conn, await admin.tenant_id(conn, demo["tenant"]),
                                                     rt.settings.secret_key, skip=frozenset(demo)))
    else:
        async with rt.db.write() as conn:
            tenant = await admin.create_tenant(conn, DEMO_TENANT, "Demo shop")
            await admin.add_account(conn, tenant, "email", DEMO_ADDRESS)
            key = await admin.create_api_key(conn, tenant, "demo")
            demo = {"tenant": DEMO_TENANT, "api_key": key, "email": DEMO_ADDRESS,
                    **await _add_push_accounts(conn, tenant, rt.settings.secret_key)}
    if "console" not in demo:
        demo["console"] = await _add_people(rt, demo["tenant"])
    if "acknowledgement" not in demo:
        demo["acknowledgement"] = {"trigger_id": await _add_acknowledgement(rt, demo["tenant"])}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(demo, indent=2) + "\n")
    os.chmod(tmp, 0o600)  # it holds a live API key and channel secrets
    tmp.replace(path)
    return demo
