"""What several test modules share: free ports, waiting, and mails shaped like a real client's."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

SUPPORT = "help@acme.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def make_mail(subject="Where is my order?", body="Hello, order 1042 has not arrived.",
              sender="Zhang Wei <zhang.wei@example.cn>", to=SUPPORT, msgid=None, refs=(), headers=None,
              attachments=()) -> tuple[bytes, str]:
    """A real MIME message as a mail client would send it; returns (bytes, Message-ID)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    msg["Message-ID"] = msgid = msgid or make_msgid(domain="example.cn")
    if refs:
        msg["In-Reply-To"] = refs[-1]
        msg["References"] = " ".join(refs)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(), msgid


def role_env(data_dir, redis_url: str | None, database_url: str | None, **settings) -> dict[str, str]:
    """The environment for a `switchboard` subprocess: this one minus any SWITCHBOARD_*/URLs."""
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWITCHBOARD_") and k not in ("REDIS_URL", "DATABASE_URL", "DATABASE_READ_URL")}
    env["SWITCHBOARD_DATA_DIR"] = str(data_dir)
    env["SWITCHBOARD_LOG_FORMAT"] = "json"
    if redis_url:
        env["REDIS_URL"] = redis_url
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update({f"SWITCHBOARD_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def query(database_url: str, stmt) -> list:
    """Run one SELECT from a synchronous test body (one that drives processes): its own loop and engine."""
    import asyncio

    from ticket_service.store.db import Database

    async def run():
        db = Database(database_url)
        try:
            async with db.read() as conn:
                return (await conn.execute(stmt)).all()
        finally:
            await db.dispose()

    return asyncio.run(run())
