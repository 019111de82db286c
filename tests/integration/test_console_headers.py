"""The console's and the status page's security headers, and the console's session cookie, over
real HTTP and real TLS against the api role's application: the CSP without 'unsafe-inline',
no framing, and a cookie that is HttpOnly, SameSite=Lax and Secure exactly when the request
came over TLS (or a trusted proxy says it did)."""

from __future__ import annotations

import ssl
from contextlib import asynccontextmanager
from http.cookies import Morsel, SimpleCookie

import aiohttp
from aiohttp.test_utils import TestServer
from console_support import csrf_of, person
from sqlalchemy import select
from support import make_mail
from tls_certs import make_certs

from console import render
from ops import roles
from ops.runtime import Runtime
from portal import pages
from ticket_service.store.tables import tickets

SECRET = "headers-test-secret-" + "h" * 16
PASSWORD = "long-password-1"
# Pinned here as well as compared with the modules' constants: a change to either policy is a
# change someone has to mean.
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PORTAL_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
              "frame-ancestors 'none'")


@asynccontextmanager
async def served(system, certs=None, **settings):
    """The api role's application on a real socket (over TLS with ``certs``), and a client that
    keeps no cookies of its own: each request says which it sends, as the browser would."""
    system.settings = system.settings.replace(secret_key=SECRET, smtp_relay="", **settings)
    rt = await Runtime(system.settings).start()
    server = TestServer(roles.http_app(rt, api=True, gateway=False))
    server_tls = client_tls = None
    if certs is not None:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(certs.cert, certs.key)
        client_tls = ssl.create_default_context(cafile=str(certs.ca))
    await server.start_server(ssl=server_tls)
    connector = aiohttp.TCPConnector(ssl=client_tls) if client_tls else aiohttp.TCPConnector()
    try:
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
            yield rt, server, http
    finally:
        await server.close()
        await rt.close()


def _cookie(resp: aiohttp.ClientResponse) -> Morsel:
    jar = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar["sb_console"]


def _flags(morsel: Morsel) -> dict:
    return {"httponly": morsel["httponly"] is True, "samesite": morsel["samesite"],
            "secure": morsel["secure"] is True, "path": morsel["path"]}


async def _sign_in(server: TestServer, http: aiohttp.ClientSession, headers: dict) -> tuple[Morsel, Morsel]:
    """The sign-in page's visitor cookie (it carries the form's CSRF token) and the session's."""
    async with http.get(server.make_url("/login"), headers=headers) as resp:
        assert resp.status == 200
        visitor, token = _cookie(resp), csrf_of(await resp.text())
    async with http.post(server.make_url("/login"), allow_redirects=False,
                         headers={**headers, "Cookie": f"sb_console={visitor.value}"},
                         data={"email": "mei@acme.test", "password": PASSWORD, "csrf": token}) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/")
        return visitor, _cookie(resp)


def _page_headers(resp: aiohttp.ClientResponse) -> tuple:
    return resp.status, resp.headers["Content-Security-Policy"], resp.headers["X-Frame-Options"]


async def test_every_console_answer_carries_the_csp_and_no_framing(system):
    # The sign-in page, the inbox, 404 pages (a missing ticket; the dashboard for an agent), a 403
    # (a form without its token) and a 401 (the event stream signed out) alike.
    assert render.CSP == CONSOLE_CSP and "'unsafe-inline'" not in CONSOLE_CSP and "unsafe-eval" not in CONSOLE_CSP
    await person(system, system.tenant, "mei@acme.test", "agent", "Mei", PASSWORD)
    async with served(system) as (_, server, http):
        _, session = await _sign_in(server, http, {})
        cookie = {"Cookie": f"sb_console={session.value}"}
        seen = []
        for method, path in (("GET", "/"), ("GET", "/tickets/999"), ("GET", "/dashboard"), ("POST", "/logout")):
            async with http.request(method, server.make_url(path), headers=cookie, allow_redirects=False) as resp:
                seen.append(_page_headers(resp))
        for path in ("/login", "/events"):  # signed out
            async with http.get(server.make_url(path), allow_redirects=False) as resp:
                seen.append(_page_headers(resp))
        assert seen == [(200, CONSOLE_CSP, "DENY"), (404, CONSOLE_CSP, "DENY"), (404, CONSOLE_CSP, "DENY"),
                        (403, CONSOLE_CSP, "DENY"), (200, CONSOLE_CSP, "DENY"), (401, CONSOLE_CSP, "DENY")]


async def test_the_session_cookie_is_httponly_lax_and_secure_over_tls_only(system, tmp_path):
    await person(system, system.tenant, "mei@acme.test", "agent", "Mei", PASSWORD)
    plain = {"httponly": True, "samesite": "Lax", "secure": False, "path": "/"}
    async with served(system) as (_, server, http):
        assert server.scheme == "http"
        visitor, session = await _sign_in(server, http, {})
        assert (_flags(visitor), _flags(session)) == (plain, plain)
        assert session["max-age"] == "43200"  # SWITCHBOARD_CONSOLE_SESSION_S
        # Not behind a trusted proxy: a client claiming https is not believed.
        visitor, session = await _sign_in(server, http, {"X-Forwarded-Proto": "https"})
        assert (_flags(visitor), _flags(session)) == (plain, plain)
    async with served(system, make_certs(tmp_path / "certs")) as (_, server, http):
        assert server.scheme == "https"
        visitor, session = await _sign_in(server, http, {})
        assert (_flags(visitor), _flags(session)) == ({**plain, "secure": True}, {**plain, "secure": True})


async def test_behind_a_trusted_proxy_the_cookie_is_secure_when_the_proxy_says_https(system):
    await person(system, system.tenant, "mei@acme.test", "agent", "Mei", PASSWORD)
    async with served(system, console_trust_proxy=True) as (_, server, http):
        secure = {}
        for proto in ("https", "HTTPS", "http", None):
            _, session = await _sign_in(server, http, {"X-Forwarded-Proto": proto} if proto else {})
            secure[proto] = _flags(session)
        assert secure == {
            "https": {"httponly": True, "samesite": "Lax", "secure": True, "path": "/"},
            "HTTPS": {"httponly": True, "samesite": "Lax", "secure": True, "path": "/"},
            "http": {"httponly": True, "samesite": "Lax", "secure": False, "path": "/"},
            None: {"httponly": True, "samesite": "Lax", "secure": False, "path": "/"},
        }


async def test_the_status_page_carries_its_own_csp_and_no_framing(system):
    assert pages.CSP == PORTAL_CSP and "'unsafe-inline'" not in PORTAL_CSP and "script-src" not in PORTAL_CSP
    await system.publish(make_mail(subject="订单 1042 未送达")[0])
    await system.drain()
    async with served(system) as (rt, server, http):
        async with system.db.read() as conn:
            row = (await conn.execute(select(tickets))).one()
        link = roles.portal_links(rt.settings).portal_link(system.tenant, row)
        path = link.split("://", 1)[1].partition("/")[2]
        async with http.get(server.make_url("/" + path)) as resp:
            assert "订单 1042 未送达" in await resp.text()
            assert _page_headers(resp) == (200, PORTAL_CSP, "DENY")
        async with http.get(server.make_url("/portal/not-a-token")) as resp:
            assert _page_headers(resp) == (404, PORTAL_CSP, "DENY")
