"""Orphan blobs against a real blob folder, real rows, real Redis and the real `ops collect-blobs`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

import aiohttp
from gateway_support import running_gateway
from support import role_env

from core import keys
from core.envelope import Envelope
from ops.blobs import collect

SECRET = "app-secret-blobs"
GRACE_S = 48 * 3600


def blob_key(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"sha256/{digest[:2]}/{digest}"


def age(system, key: str, hours: float) -> None:
    when = time.time() - hours * 3600
    os.utime(system.bus.blobs.root / key, (when, when))


async def _ingress(system) -> None:
    """A form with a file (becomes an attachment row) and an SDK upload not sent yet."""
    async with running_gateway(system.bus, system.db, system.tenant) as gw:
        await gw.add_account("webform", "contact", {"rate_per_ip": 100})
        await gw.add_account("sdk", "app", {"secret": SECRET})
        form = aiohttp.FormData()
        form.add_field("message", "see the file")
        form.add_field("file", b"attached bytes", filename="a.txt", content_type="text/plain")
        async with gw.http.post(gw.url("/forms/contact"), data=form) as resp:
            assert resp.status == 202
        data, ts = b"uploaded, not sent yet", str(int(time.time()))
        sig = hmac.new(SECRET.encode(), ts.encode() + b"." + data, hashlib.sha256).hexdigest()
        async with gw.http.post(gw.url("/sdk/v1/apps/app/uploads"), data=data,
                                headers={"X-SB-Timestamp": ts, "X-SB-Signature": sig}) as resp:
            assert resp.status == 201
    await system.drain()


def _cli(system, tmp_path, *args: str) -> dict:
    env = role_env(system.settings.data_dir, system.settings.redis_url, system.settings.database_url)
    done = subprocess.run([sys.executable, "-m", "ops.cli", "ops", "collect-blobs", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_only_old_blobs_nothing_refers_to_are_collected(system, tmp_path):
    # Referenced blobs are kept however old; an orphan is kept until the grace period ends.
    await _ingress(system)
    blobs = system.bus.blobs
    dead = Envelope(tenant="acme", channel="webform", account="1", payload=b"d" * (system.settings.blob_threshold + 1))
    await system.bus.publish(keys.dead_stream("ingest.webform"), dead)  # may be replayed later
    young, old = await blobs.put(b"young orphan"), await blobs.put(b"old orphan")
    kept = [blob_key(b"attached bytes"), blob_key(b"uploaded, not sent yet"), blob_key(dead.payload), young]
    assert all((blobs.root / key).exists() for key in kept)
    for key in kept[:3] + [old]:
        age(system, key, 72)
    age(system, young, 47)

    preview = _cli(system, tmp_path, "--dry-run")
    assert (preview["old"], preview["removed"], preview["keys"], preview["dry_run"]) == (4, 1, [old], True)
    assert (blobs.root / old).exists()

    run = await collect(blobs, system.db, system.bus.redis, GRACE_S)
    assert (run.old, run.removed, run.freed) == (4, [old], len(b"old orphan"))
    assert not (blobs.root / old).exists()
    assert all((blobs.root / key).exists() for key in kept)
    assert _cli(system, tmp_path)["removed"] == 0


async def test_storing_old_bytes_again_restarts_their_grace_period(system):
    blobs = system.bus.blobs
    key = await blobs.put(b"sent twice")
    age(system, key, 72)
    assert await blobs.put(b"sent twice") == key
    run = await collect(blobs, system.db, system.bus.redis, GRACE_S)
    assert (run.old, run.removed) == (0, [])
    assert (blobs.root / key).exists()
