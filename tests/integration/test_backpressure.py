"""Redis full (maxmemory reached): every ingress refuses with a temporary error, then recovers.

What cannot be stored is not accepted: SMTP answers 451 (the sending MTA retries), HTTP
answers 503 with Retry-After (WeChat, Weibo, forms and SDK clients retry). Nothing is
half-written, and once memory is free the same input is accepted.
"""

import asyncio
import smtplib

import pytest
import redis.asyncio as aioredis
from gateway_support import edge_gateway
from redis.exceptions import ConnectionError, OutOfMemoryError
from support import SUPPORT, free_port, make_mail

from connectors.email import smtp
from core.redis import redis_binary
from ticket_service.store.directory import AccountDirectory


@pytest.fixture
async def small_redis(tmp_path):
    """A real redis-server with no eviction: writes fail with OOM once memory is over maxmemory."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
        "--appendonly", "no", "--maxmemory-policy", "noeviction",
        stdout=asyncio.subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = aioredis.Redis.from_url(url)
    for _ in range(100):
        try:
            await client.ping()
            break
        except ConnectionError:
            await asyncio.sleep(0.05)
    yield url, client
    await client.aclose()
    proc.terminate()
    await proc.wait()


async def _fill(client) -> None:
    """Memory above maxmemory (no eviction): every write that needs memory is refused."""
    await client.set("ballast", b"x" * 1024 * 1024)
    used = (await client.info("memory"))["used_memory"]
    await client.config_set("maxmemory", used // 2)
    with pytest.raises(OutOfMemoryError):
        await client.xadd("probe", {"x": "1"})


async def test_full_redis_gets_451_over_smtp_then_mail_flows_again(small_redis, tmp_path):
    url, client = small_redis
    async with edge_gateway(f"sqlite:///{tmp_path / 'db.sqlite'}", url, tmp_path) as gw:
        await gw.add_account("email", SUPPORT, {})
        port = free_port()
        server = await smtp.serve(gw.bus, AccountDirectory(gw.db), "127.0.0.1", port, max_size=1 << 20,
                                  hostname="mx.test")
        raw = make_mail()[0].replace(b"\n", b"\r\n")

        def send():
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                return c.sendmail("a@example.cn", [SUPPORT], raw)

        try:
            await _fill(client)
            with pytest.raises(smtplib.SMTPDataError) as err:
                await asyncio.to_thread(send)
            assert err.value.smtp_code == 451 and b"try again later" in err.value.smtp_error
            assert await client.exists("ingest.email") == 0
            await client.config_set("maxmemory", 0)
            assert await asyncio.to_thread(send) == {}
            assert await gw.xlen("email") == 1
        finally:
            server.close()
            await server.wait_closed()


async def test_full_redis_gets_503_with_retry_after_over_http_then_posts_flow_again(small_redis, tmp_path):
    url, client = small_redis
    async with edge_gateway(f"sqlite:///{tmp_path / 'db.sqlite'}", url, tmp_path) as gw:
        await gw.add_account("webform", "contact", {})
        form = {"message": "My parcel is late", "email": "li.na@example.cn"}
        await _fill(client)
        async with gw.http.post(gw.url("/forms/contact"), data=form) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "5"
            assert await r.json() == {"error": {"code": "unavailable", "message": "try again later"}}
        assert await client.exists("ingest.webform") == 0
        await client.config_set("maxmemory", 0)
        async with gw.http.post(gw.url("/forms/contact"), data=form) as r:
            assert r.status == 202, await r.text()
        assert await gw.xlen("webform") == 1
