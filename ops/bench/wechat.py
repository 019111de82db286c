"""WeChat scenario: N safe-mode (AES) pushes from concurrent clients into one gateway process.

Measures ingress only (verify msg_signature, decrypt, parse, XADD, answer), which is what
one ``switchboard gateway`` replica adds to the system's capacity.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import redis.asyncio as aioredis
from wechatpy.crypto import WeChatCrypto

from ops.bench.harness import System, free_port
from ticket_service.store import admin
from ticket_service.store.db import Database

TOKEN, APPID = "bench-token", "wxbench0000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def pushes(n: int) -> list[tuple[str, dict]]:
    """(body, query) of N distinct encrypted text messages, built with wechatpy as WeChat would."""
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    out = []
    for i in range(n):
        ts, nonce = str(int(time.time())), str(100000 + i)
        plain = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[o-fan-{i % 500}]]>"
                 f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[订单 {i} 什么时候发货？]]></Content><MsgId>{7_000_000_000 + i}</MsgId></xml>")
        wrapped = crypto.encrypt_message(plain, nonce, ts)
        encrypt = wrapped.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        signature = wrapped.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        out.append((body, {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes", "msg_signature": signature,
                           "signature": "-", "openid": f"o-fan-{i % 500}"}))
    return out


async def _client(http: aiohttp.ClientSession, url: str, work: list[tuple[str, dict]]) -> int:
    ok = 0
    for body, query in work:
        async with http.post(url, params=query, data=body) as resp:
            ok += resp.status == 200 and await resp.text() == "success"
    return ok


async def run(n: int = 5000, connections: int = 16, database_url: str | None = None) -> dict:
    system = System(database_url)
    try:
        await system.start()
        db = Database(system.database_url)
        async with db.write() as conn:
            tenant = await admin.tenant_id(conn, "bench")
            await admin.add_account(conn, tenant, "wechat", "bench",
                                    {"token": TOKEN, "mode": "safe", "aes_key": AES_KEY, "appid": APPID})
        await db.dispose()
        port = free_port()
        system.role("gateway", http_port=port)
        system.wait_port(port)
        work = pushes(n)
        url = f"http://127.0.0.1:{port}/wechat/bench"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
            await _client(http, url, work[:20])  # warm the account cache and connections
            started = time.perf_counter()
            shares = [work[20:][i::connections] for i in range(connections)]
            ok = sum(await asyncio.gather(*(_client(http, url, s) for s in shares)))
            took = time.perf_counter() - started
        client = aioredis.Redis.from_url(system.redis_url)
        queued = await client.xlen("ingest.wechat")
        await client.aclose()
        if ok != n - 20 or queued != n:
            raise RuntimeError(f"{ok} of {n - 20} pushes answered success, {queued} of {n} on the stream")
        return {"scenario": "wechat", "pushes": n, "connections": connections, "gateways": 1,
                "accepted_per_s": round(ok / took, 1), "seconds": round(took, 2)}
    finally:
        system.stop()
