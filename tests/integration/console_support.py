"""The console over real HTTP for integration tests: an app on the test's Redis and database,
people with passwords, and a client that signs in through the sign-in form as a browser does."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.registry import capacity_classes
from console import ConsoleConfig, setup_console
from console.auth import hash_password
from ops import opspage
from ticket_service.store import agents as agents_store
from ticket_service.store import users

SECRET = "console-test-secret-" + "k" * 16
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_app(system) -> web.Application:
    """The console with the ops page, as ``ops.roles.http_app`` mounts them."""
    app = web.Application()
    setup_console(app, ConsoleConfig(secret_key=SECRET), system.db, system.bus.redis, system.bus.blobs, system.bus,
                  capacity_classes())
    opspage.setup_routes(app)
    return app


async def person(system, tenant: int, email: str, role: str, name: str, password: str = "long-password-1",
                 capacity: dict | None = None, status: str = "offline", skills: dict | None = None) -> int:
    """A console user; with ``capacity`` (and ``skills``) an agent the router may assign to first."""
    if capacity is not None:
        async with system.db.write() as conn:
            await conn.run_sync(agents_store.create_agent, tenant, name, email, status=status, capacity=capacity,
                                skills=skills)
    agent_id, _ = await system.db.run_write(users.set_user, tenant, email, role, hash_password(password), name)
    return agent_id


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class Client:
    """One browser: its own cookie jar, signed in as one person."""

    def __init__(self, server: TestServer, http: aiohttp.ClientSession) -> None:
        self.server, self.http = server, http

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def get(self, path: str) -> tuple[int, dict, bytes]:
        async with self.http.get(self.url(path), allow_redirects=False) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def page(self, path: str) -> str:
        status, _, body = await self.get(path)
        assert status == 200, (path, status)
        return body.decode()

    async def post(self, path: str, form: dict, csrf_from: str | None = None) -> tuple[int, dict, str]:
        """A form POST; with ``csrf_from`` the token of that page goes with it, as the form sends it."""
        if csrf_from is not None:
            form = {**form, "csrf": csrf_of(await self.page(csrf_from))}
        async with self.http.post(self.url(path), data=form, allow_redirects=False) as resp:
            return resp.status, dict(resp.headers), await resp.text()


@asynccontextmanager
async def signed_in(server: TestServer, email: str, password: str = "long-password-1"):
    # unsafe=True: the cookie jar keeps cookies for an IP address host (127.0.0.1).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = Client(server, http)
        async with http.get(client.url("/login")) as resp:
            token = csrf_of(await resp.text())
        status, headers, _ = await client.post("/login", {"email": email, "password": password, "csrf": token})
        assert (status, headers.get("Location")) == (303, "/"), status
        yield client
