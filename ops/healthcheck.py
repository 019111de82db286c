"""``switchboard ops check ROLE``: exit 0 when this container's role is ready, 1 otherwise.

HTTP roles are asked for ``/readyz`` on their port; smtp, normalizer and router for
``/readyz`` on the metrics port when one is set. Without one, the SMTP role must answer
NOOP and a worker role's heartbeat key in Redis must be fresh (it has a TTL).
"""

from __future__ import annotations

import smtplib
import urllib.error
import urllib.request

import redis

from core import keys
from core.redis import EmbeddedRedis, connect_sync
from core.settings import Settings

HTTP_ROLES = ("api", "gateway", "run")


def _ready(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=3) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def check(role: str, s: Settings) -> bool:
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
    try:
        if role in HTTP_ROLES:
            return _ready(host, s.http_port)
        if s.metrics_port:
            return _ready(host, s.metrics_port)
        if role == "smtp":
            with smtplib.SMTP(host, s.smtp_port, timeout=3) as client:
                return client.noop()[0] == 250
        url = s.redis_url or EmbeddedRedis(s.data_dir).url
        client = connect_sync(url, socket_timeout=3)
        try:
            return any(True for _ in client.scan_iter(match=keys.heartbeat_key(role, "*"), count=100))
        finally:
            client.close()
    except (OSError, redis.RedisError, smtplib.SMTPException):
        return False
