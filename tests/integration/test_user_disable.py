"""`switchboard user disable|enable`: a disabled user cannot sign in (the wrong-password answer),
its sessions and open event stream end, the router assigns it nothing and hands back what it
had not started, and its status cannot be set online until it is enabled again."""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import subprocess
import sys

import aiohttp
from aiohttp.test_utils import TestServer
from console_support import console_app, csrf_of, person, signed_in
from rules_support import rules_world
from sqlalchemy import select
from support import make_mail, role_env

from connectors.registry import capacity_classes
from console import events as console_events
from ops import usercli
from ops.runtime import Runtime
from router.worker import Router
from ticket_service.store import agents as agents_store
from ticket_service.store.tables import routing_decisions, routing_queue

PASSWORD = "long-password-1"


def _cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)


async def _switch(system, email: str, action: str) -> str:
    """``switchboard user disable|enable EMAIL --tenant acme`` as the CLI runs it, on the test's servers."""
    async with Runtime(system.settings) as rt:
        return await usercli.set_enabled(rt, argparse.Namespace(email=email, tenant="acme", action=action))


async def _status(system, agent_id: int) -> str:
    async with system.db.read() as conn:
        return (await conn.run_sync(agents_store.get_agent, system.tenant, agent_id)).status


def _normalized(html: str) -> str:
    """A sign-in page without its CSRF token, to compare two answers."""
    return re.sub(r'name="csrf" value="[^"]+"', 'name="csrf" value=""', html)


async def _try_sign_in(server: TestServer, email: str, password: str) -> tuple[int, str, str | None]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(server.make_url("/login")) as resp:
            token = csrf_of(await resp.text())
        async with http.post(server.make_url("/login"), data={"email": email, "password": password, "csrf": token},
                             allow_redirects=False) as resp:
            return resp.status, _normalized(await resp.text()), resp.headers.get("Location")


def test_cli_disables_and_enables_by_email_and_refuses_what_it_cannot_do(tmp_path):
    env = role_env(tmp_path / "data", None, f"sqlite:///{tmp_path / 'sb.db'}", secret_key="k" * 32)
    assert _cli(env, "tenant", "create", "acme").returncode == 0
    assert _cli(env, "user", "add", "mei@acme.test", "--tenant", "acme", "--role", "agent", "--password-stdin",
                stdin=PASSWORD + "\n").returncode == 0

    def status() -> str:
        with sqlite3.connect(tmp_path / "sb.db") as db:
            return db.execute("SELECT status FROM agents WHERE email = 'mei@acme.test'").fetchone()[0]

    done = _cli(env, "user", "disable", "Mei@Acme.test", "--tenant", "acme")
    assert (done.returncode, done.stdout.strip(), status()) == (
        0, "user mei@acme.test of acme disabled (agent id 1)", "disabled")
    done = _cli(env, "user", "disable", "mei@acme.test", "--tenant", "acme")
    assert (done.returncode, done.stdout.strip()) == (0, "user mei@acme.test of acme is already disabled")
    # Neither setting the status nor a new password lifts it.
    done = _cli(env, "agent", "status", "1", "online", "--tenant", "acme")
    assert done.returncode == 1 and "agent 1 is disabled (switchboard user enable lifts it)" in done.stderr
    assert _cli(env, "user", "add", "mei@acme.test", "--tenant", "acme", "--role", "supervisor",
                "--password-stdin", stdin="another-pass-2\n").returncode == 0
    assert status() == "disabled"
    done = _cli(env, "user", "enable", "mei@acme.test", "--tenant", "acme")
    assert (done.returncode, done.stdout.strip(), status()) == (
        0, "user mei@acme.test of acme enabled (offline) (agent id 1)", "offline")
    assert _cli(env, "agent", "status", "1", "online", "--tenant", "acme").returncode == 0
    assert status() == "online"
    done = _cli(env, "user", "disable", "nobody@acme.test", "--tenant", "acme")
    assert done.returncode == 1 and "no user nobody@acme.test in tenant acme" in done.stderr
    done = _cli(env, "user", "enable", "mei@acme.test", "--tenant", "nope")
    assert done.returncode == 1 and "no tenant 'nope'" in done.stderr


async def test_a_disabled_user_is_refused_as_a_wrong_password_is_and_signs_in_again_once_enabled(system):
    mei = await person(system, system.tenant, "mei@acme.test", "agent", "Mei", PASSWORD)
    async with TestServer(console_app(system)) as server:
        wrong = await _try_sign_in(server, "mei@acme.test", "not-the-password")
        assert wrong[0] == 401 and "Wrong email or password." in wrong[1]
        assert await _switch(system, "mei@acme.test", "disable") == (
            f"user mei@acme.test of acme disabled (agent id {mei})")
        # The right password: the same 401 page, word for word, as the wrong one.
        assert await _try_sign_in(server, "mei@acme.test", PASSWORD) == wrong
        await _switch(system, "mei@acme.test", "enable")
        status, _, location = await _try_sign_in(server, "mei@acme.test", PASSWORD)
        assert (status, location) == (303, "/")


async def test_a_signed_in_users_session_ends_at_its_next_request_once_disabled(system):
    await person(system, system.tenant, "mei@acme.test", "agent", "Mei", PASSWORD)
    await system.publish(make_mail()[0])
    await system.drain()
    async with TestServer(console_app(system)) as server, signed_in(server, "mei@acme.test") as mei:
        assert (await mei.get("/"))[0] == 200
        form = await mei.page("/tickets/1")
        await _switch(system, "mei@acme.test", "disable")
        status, headers, _ = await mei.get("/")
        assert (status, headers["Location"]) == (303, "/login?next=/")
        assert (await mei.get("/tickets/1"))[0] == 303
        assert (await mei.get("/events"))[0] == 401
        status, _, html = await mei.post("/tickets/1/status", {"status": "solved", "csrf": csrf_of(form)})
        assert status == 401 and "Sign in" in html
        [ticket] = await system.tickets()
        assert ticket.status == "new"
        # Enabled again, the old session stays ended: a new sign-in is needed, and works.
        await _switch(system, "mei@acme.test", "enable")
        assert (await mei.get("/"))[0] == 303
    async with TestServer(console_app(system)) as server, signed_in(server, "mei@acme.test") as mei:
        assert (await mei.get("/"))[0] == 200


async def test_an_open_event_stream_ends_once_the_user_is_disabled(system, monkeypatch):
    monkeypatch.setattr(console_events, "RECHECK_S", 0.2)
    await person(system, system.tenant, "mei@acme.test", "agent", "Mei", PASSWORD)
    async with TestServer(console_app(system)) as server, signed_in(server, "mei@acme.test") as mei:
        async with mei.http.get(mei.url("/events")) as resp:
            assert (resp.status, await resp.content.readline()) == (200, b"retry: 3000\n")
            await _switch(system, "mei@acme.test", "disable")
            # The server ends the stream at its next check (events until then may still come).
            rest = await asyncio.wait_for(resp.content.read(), 10)
            assert resp.content.at_eof() and rest.count(b"event: ticket") <= 1


async def _route(system) -> None:
    await asyncio.wait_for(Router(system.bus, system.settings, system.db, capacity_classes()).run(drain=True), 60)


async def test_the_router_assigns_a_disabled_agent_nothing_and_hands_back_what_it_had_not_started(system):
    ann = await person(system, system.tenant, "ann@acme.test", "agent", "Ann", PASSWORD, capacity={"email": 3},
                       status="online")
    await system.publish(make_mail(subject="first", sender="a@example.com")[0])
    await system.drain()
    await _route(system)
    [first] = await system.tickets()
    assert first.assignee_id == ann
    assert (await _switch(system, "ann@acme.test", "disable")).startswith("user ann@acme.test of acme disabled")
    assert [(e["type"], e["agent_id"], e["status"]) for e in await system.events()
            if e["type"] == "agent.changed"] == [("agent.changed", ann, "disabled")]
    await system.publish(make_mail(subject="second", sender="b@example.com")[0])
    await system.drain()
    await _route(system)
    tickets = await system.tickets()
    assert [(t.subject, t.assignee_id) for t in tickets] == [("first", None), ("second", None)]
    async with system.db.read() as conn:
        waiting = sorted(r.ticket_id for r in await conn.execute(select(routing_queue)))
        decisions = [(d.ticket_id, d.outcome, d.agent_id, (d.detail or {}).get("reason"))
                     for d in await conn.execute(select(routing_decisions).order_by(routing_decisions.c.id))]
    assert waiting == [t.id for t in tickets]
    assert (first.id, "requeued", ann, "agent disabled") in decisions
    assert [d for d in decisions if d[1] == "assigned"] == [(first.id, "assigned", ann, None)]
    async with system.db.read() as conn:  # its load went back with the ticket
        assert (await conn.run_sync(agents_store.get_agent, system.tenant, ann)).load_email == 0
    # Even asked directly, the claim refuses a disabled agent.
    assert await system.db.run_write(agents_store.take_capacity, ann, "email", 1) is False


async def test_the_api_will_not_set_a_disabled_agents_status(system):
    async with rules_world(system) as api:
        ann = await person(system, system.tenant, "ann@acme.test", "agent", "Ann", PASSWORD, capacity={"email": 1})
        await _switch(system, "ann@acme.test", "disable")
        status, body = await api.call("PUT", f"/agents/{ann}/status", {"status": "online"})
        assert (status, body["error"]["code"]) == (409, "agent_disabled")
        assert await _status(system, ann) == "disabled"
        status, agents = await api.call("GET", "/agents")
        assert [(a["id"], a["status"]) for a in agents["items"]] == [(ann, "disabled")]
        await _switch(system, "ann@acme.test", "enable")
        status, body = await api.call("PUT", f"/agents/{ann}/status", {"status": "online"})
        assert (status, body["status"]) == (200, "online")

