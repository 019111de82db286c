"""WeChat safe-mode (AES) pushes as WeChat sends them, and the gateway they go to.

``pushes`` builds the encrypted requests; ``start`` brings up a system with a safe-mode
account and a ``gateway`` (plus, for the ``chat`` and ``fixed_rate`` scenarios, a
``normalizer`` and a ``router`` with agents). ``run`` is the ingress-only measurement
(verify msg_signature, decrypt, parse, XADD, answer) of one gateway replica; ``make bench``
runs the end-to-end ``chat`` scenario instead (``ops.bench.chat``).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time

import aiohttp
import redis.asyncio as aioredis
from wechatpy.crypto import WeChatCrypto

from ops.bench.harness import System, free_port
from ticket_service.store import admin
from ticket_service.store.db import Database

TOKEN, APPID = "bench-token", "wxbench0000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PATH = "/wechat/bench"


def pushes(n: int, fans: int = 500, new_fans: float = 0.0, seed: int = 7,
           first: int = 0) -> list[tuple[str, dict]]:
    """(body, query) of N distinct encrypted text messages, built with wechatpy as WeChat would.

    Message ``i`` comes from a fan never seen before with probability ``new_fans``, else from
    the next of ``fans`` regulars in turn (whose messages thread into their open session).
    ``first`` offsets the message ids and nonces, so separate batches stay distinct: the
    gateway refuses a signed (timestamp, nonce) used for another body. Each is signed with the
    time it was built, so it must be sent within ``push_max_skew_s`` (see ``start``).
    """
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    rng = random.Random(seed)
    out, regular = [], 0
    for i in range(first, first + n):
        if new_fans and rng.random() < new_fans:
            fan = f"o-new-{i}"
        else:
            fan, regular = f"o-fan-{regular % fans}", regular + 1
        ts, nonce = str(int(time.time())), str(100000 + i)
        plain = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{fan}]]>"
                 f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[订单 {i} 什么时候发货？]]></Content>"
                 f"<MsgId>{7_000_000_000 + i}</MsgId></xml>")
        wrapped = crypto.encrypt_message(plain, nonce, ts)
        encrypt = wrapped.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        signature = wrapped.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        body = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
        out.append((body, {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes",
                           "msg_signature": signature, "signature": "-", "openid": fan}))
    return out


async def start(system: System, pipeline: bool, max_skew_s: int = 300) -> str:
    """Start the system with a safe-mode account and a gateway; returns the push URL.

    ``pipeline``: also seed agents and run one ``normalizer`` and one ``router``.
    ``max_skew_s``: the gateway's ``push_max_skew_s``; longer than the time from building the
    pushes to sending the last one, or the late ones are refused as stale.
    """
    await system.start()
    db = Database(system.database_url)
    try:
        async with db.write() as conn:
            tenant = await admin.tenant_id(conn, "bench")
            await admin.add_account(conn, tenant, "wechat", "bench",
                                    {"token": TOKEN, "mode": "safe", "aes_key": AES_KEY, "appid": APPID})
    finally:
        await db.dispose()
    port = free_port()
    system.role("gateway", http_port=port, push_max_skew_s=max_skew_s)
    if pipeline:
        await system.seed_agents()
        system.role("normalizer", batch_size=128)
        system.role("router", batch_size=64)
    system.wait_port(port)
    return f"http://127.0.0.1:{port}{PATH}"


async def post(http: aiohttp.ClientSession, url: str, push: tuple[str, dict]) -> bool:
    """One push; True when the gateway answered 200 ``success``."""
    body, query = push
    async with http.post(url, params=query, data=body) as resp:
        return resp.status == 200 and await resp.text() == "success"


async def _client(http: aiohttp.ClientSession, url: str, work: list[tuple[str, dict]],
                  answers: list[float] | None) -> int:
    ok = 0
    for push in work:
        sent = time.perf_counter()
        ok += await post(http, url, push)
        if answers is not None:
            answers.append((time.perf_counter() - sent) * 1000)
    return ok


async def send(http: aiohttp.ClientSession, url: str, work: list[tuple[str, dict]], connections: int,
               answers: list[float] | None = None) -> int:
    """The pushes from ``connections`` concurrent clients, each posting its share in turn;
    returns how many were answered ``success``. ``answers`` collects each answer time (ms)."""
    shares = [work[i::connections] for i in range(connections)]
    return sum(await asyncio.gather(*(_client(http, url, share, answers) for share in shares)))


async def send_backlog(http: aiohttp.ClientSession, url: str, work: list[tuple[str, dict]], connections: int,
                       paused: list[subprocess.Popen]) -> None:
    """The pushes while the ``paused`` processes (the normalizers) are stopped (SIGSTOP), so
    all of them wait in ``ingest.wechat``; raises unless every one was answered success. The
    processes stay stopped: the caller resumes them (SIGCONT) when its clock starts."""
    for proc in paused:
        proc.send_signal(signal.SIGSTOP)
    ok = await send(http, url, work, connections)
    if ok != len(work):
        raise RuntimeError(f"{ok} of {len(work)} pushes answered success")


def resume(paused: list[subprocess.Popen]) -> None:
    for proc in paused:
        proc.send_signal(signal.SIGCONT)


async def run(n: int = 5000, connections: int = 16, database_url: str | None = None) -> dict:
    """Ingress only: one gateway, no normalizer; every push must reach ``ingest.wechat``."""
    system = System(database_url)
    try:
        url = await start(system, pipeline=False)
        work = pushes(n)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
            await send(http, url, work[:20], 1)  # warm the account cache and connections
            started = time.perf_counter()
            ok = await send(http, url, work[20:], connections)
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
