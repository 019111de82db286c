"""Container health check: exit 0 when this container's role answers, 1 otherwise.

HTTP roles are asked for ``/healthz``; the SMTP role for its greeting; worker roles have
no port, so their heartbeat key in Redis must be fresh.
"""

from __future__ import annotations

import smtplib
import sys
import urllib.request

import redis

from core import keys
from core.settings import load


def check(role: str) -> bool:
    s = load()
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
    try:
        if role in ("api", "gateway", "run"):
            with urllib.request.urlopen(f"http://{host}:{s.http_port}/healthz", timeout=3) as r:
                return r.status == 200
        if role == "smtp":
            with smtplib.SMTP(host, s.smtp_port, timeout=3) as client:
                return client.noop()[0] == 250
        client = redis.Redis.from_url(s.redis_url, socket_timeout=3)
        return any(True for _ in client.scan_iter(match=keys.heartbeat_key(role, "*"), count=100))
    except (OSError, redis.RedisError, smtplib.SMTPException):
        return False


def main() -> int:
    # The role is the container's command: `switchboard <role>` is PID 1.
    role = sys.argv[1] if len(sys.argv) > 1 else open("/proc/1/cmdline", "rb").read().split(b"\0")[1].decode()
    return 0 if check(role) else 1


if __name__ == "__main__":
    sys.exit(main())
