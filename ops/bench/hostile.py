"""Hostile scenario: one address floods the web form with many-part bodies; agents keep working.

One ``switchboard run`` process (gateway, API, normalizer and router together, the
single-machine deployment) serves a web form whose per-address rate limit is raised so the
hostile posts are decoded rather than rate limited. A few real submissions with a file open
tickets first. Then ``hostile`` concurrent clients from one address (a process of their
own, so their sending does not delay the agent's client) post multipart bodies of 20,000
and 100,000 tiny file parts (2.2 MB and 11 MB, under the form's size limit), one after
another, for ``duration`` seconds, while an agent's client asks for the ticket list
(``GET /api/v1/tickets``) and downloads an attachment (``GET /api/v1/attachments/{id}``)
every ``probe_every_s``.

Reported: p50/p99/max of both agent requests during the flood (target: ticket list p99
under 100 ms), how many hostile posts were answered and with which statuses, and the p50
of a hostile answer.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
import time
from collections import Counter

import aiohttp
from sqlalchemy import select

from ops.bench import latency
from ops.bench.harness import System, free_port
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import attachments

FORM = "hostile"
BOUNDARY = "hostile-boundary-0123456789"
PARTS = (20_000, 100_000)
SEED = 5  # real submissions, each with one file: the tickets and attachments agents read


def many_parts(parts: int) -> bytes:
    """A multipart body of ``parts`` tiny file parts (what a form with no file limit would parse)."""
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\nx\r\n").encode()
    return part * parts + f"--{BOUNDARY}--\r\n".encode()


def _submission(i: int) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("email", f"customer{i}@example.com")
    form.add_field("message", f"Order {i} arrived broken, photo attached.")
    form.add_field("photo", b"\x89PNG" + bytes(range(256)) * 64, filename=f"photo{i}.png",
                   content_type="image/png")
    return form


async def _setup(system: System) -> tuple[str, str, int]:
    """Start ``switchboard run`` with the form, seed tickets; returns (base URL, API key, attachment id)."""
    await system.start()
    db = Database(system.database_url)
    try:
        async with db.write() as conn:
            tenant = await admin.tenant_id(conn, "bench")
            # Raised far over the default (10 a minute) so the flood is decoded, not refused at the door.
            await admin.add_account(conn, tenant, "webform", FORM, {"rate_per_ip": 1_000_000,
                                                                    "rate_per_form": 1_000_000})
            key = await admin.create_api_key(conn, tenant, "bench")
        port = free_port()
        system.role("run", http_port=port)
        system.wait_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for i in range(SEED):
                async with http.post(f"{base}/forms/{FORM}", data=_submission(i)) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"seed submission answered {resp.status}: {await resp.text()}")
        await latency.wait_stored(db, SEED, 60, check=system.check)
        async with db.read() as conn:
            attachment = (await conn.execute(select(attachments.c.id).limit(1))).scalar_one()
    finally:
        await db.dispose()
    return base, key, attachment


class _Flood:
    """Hostile clients from one address: many-part bodies posted back to back until stopped."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        self.url, self.bodies = url, bodies
        self.statuses: Counter[str] = Counter()
        self.answers: list[float] = []
        self.stop = asyncio.Event()

    async def client(self, http: aiohttp.ClientSession, i: int) -> None:
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        while not self.stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += 1
            sent = time.perf_counter()
            try:
                async with http.post(self.url, data=io.BytesIO(body), headers=headers) as resp:
                    await resp.read()
                    self.statuses[str(resp.status)] += 1
            except (TimeoutError, aiohttp.ClientError):
                self.statuses["error"] += 1
            self.answers.append((time.perf_counter() - sent) * 1000)


async def _probe(http: aiohttp.ClientSession, url: str, key: str, out: list[float], failures: Counter) -> None:
    sent = time.perf_counter()
    async with http.get(url, headers={"Authorization": f"Bearer {key}"}) as resp:
        await resp.read()
        if resp.status != 200:
            failures[str(resp.status)] += 1
    out.append((time.perf_counter() - sent) * 1000)


async def _flood_main(url: str, clients: int, parts: list[int]) -> None:
    """The hostile process: says ``ready``, floods until SIGTERM, then prints what it saw as JSON."""
    flood = _Flood(url, [many_parts(n) for n in parts])
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, flood.stop.set)
    print("ready", flush=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        tasks = [asyncio.create_task(flood.client(http, i)) for i in range(clients)]
        await flood.stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"statuses": flood.statuses, "answers": flood.answers}))


async def _probe_loop(base: str, key: str, attachment: int, duration: float, every_s: float,
                      check) -> tuple[list[float], list[float]]:
    tickets_ms: list[float] = []
    download_ms: list[float] = []
    failures: Counter[str] = Counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as agent:
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            check()
            await asyncio.gather(
                _probe(agent, f"{base}/api/v1/tickets", key, tickets_ms, failures),
                _probe(agent, f"{base}/api/v1/attachments/{attachment}", key, download_ms, failures))
            await asyncio.sleep(every_s)
    if failures:
        raise RuntimeError(f"agent requests failed during the flood: {dict(failures)}")
    return tickets_ms, download_ms


async def run(duration: float = 30, hostile: int = 8, probe_every_s: float = 0.05,
              database_url: str | None = None, parts: tuple[int, ...] = PARTS) -> dict:
    system = System(database_url)
    try:
        base, key, attachment = await _setup(system)
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.bench.hostile", f"{base}/forms/{FORM}", str(hostile), *map(str, parts),
            stdout=asyncio.subprocess.PIPE)
        try:
            # A SIGTERM before its handler is in place would end it with nothing printed; its
            # imports alone take seconds on a loaded machine, longer than a short run.
            await asyncio.wait_for(flood.stdout.readline(), 60)
            await asyncio.sleep(0.5)  # the first hostile bodies are on their way
            tickets_ms, download_ms = await _probe_loop(base, key, attachment, duration, probe_every_s,
                                                        system.check)
        finally:
            flood.send_signal(signal.SIGTERM)
            out, _ = await flood.communicate()
        seen = json.loads(out)
        return {
            "scenario": "hostile", "hostile_clients": hostile, "parts": list(parts), "duration_s": duration,
            "probes": len(tickets_ms), "hostile_answered": sum(seen["statuses"].values()),
            "hostile_statuses": dict(sorted(seen["statuses"].items())),
            **latency.summary("hostile_answer", seen["answers"], ("p50",)),
            **latency.summary("ticket_list", tickets_ms, ("p50", "p99", "max")),
            **latency.summary("download", download_ms, ("p50", "p99", "max")),
        }
    finally:
        system.stop()


if __name__ == "__main__":
    asyncio.run(_flood_main(sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3:]]))
