"""Settings from ``SWITCHBOARD_*`` environment variables and an optional TOML file.

Precedence: environment over file over defaults. Unknown keys in either place are an
error, so a misspelt setting never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "SWITCHBOARD_"
# Read under their conventional names, without the prefix.
BARE_ENV = {"REDIS_URL": "redis_url", "DATABASE_URL": "database_url", "DATABASE_READ_URL": "database_read_url"}
# Names under the prefix that are not settings themselves.
META_ENV = {"SWITCHBOARD_CONFIG"}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    http_port: int = 8080
    smtp_port: int = 2525
    metrics_port: int = 0
    redis_url: str = ""  # redis://host:port (one server) or redis+cluster://host:port (any node of a cluster)
    # Ingress (and every stage's XADD) counts as done only once this many replicas have the
    # entry (WAIT); fewer within redis_wait_timeout_ms: 503 / SMTP 451 and the sender retries.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    database_url: str = ""
    database_read_url: str = ""  # a PostgreSQL streaming replica for the API's reads
    secret_key: str = ""
    # Email
    max_message_size: int = 25 * 1024 * 1024
    smtp_hostname: str = "switchboard.local"
    smtp_tls_cert: str = ""  # PEM certificate chain; with smtp_tls_key, SMTP offers STARTTLS
    smtp_tls_key: str = ""
    smtp_require_tls: bool = False  # refuse MAIL before STARTTLS (530), RFC 3207 §4
    smtp_idle_timeout_s: float = 300.0  # RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes
    smtp_max_recipients: int = 100  # unique RCPTs per mail; RFC 5321 §4.5.3.1.8: at least 100
    smtp_max_unknown_recipients: int = 20  # 550s in one session before 421 and close
    smtp_max_connections_per_ip: int = 50  # as Postfix's smtpd_client_connection_count_limit
    smtp_relay: str = ""  # replies go out here (smtp://, smtps://); empty: <data_dir>/outbox Maildir
    smtp_relay_timeout_s: float = 60.0  # each step of a relay conversation
    # HTTP
    http_header_timeout_s: float = 10.0  # a new connection's request line and headers
    http_idle_timeout_s: float = 60.0  # keep-alive: an idle (or half-sent) connection is closed
    http_max_connections_per_ip: int = 256  # an office of agents may share one address
    max_connections: int = 1000  # open connections per listener (SMTP, HTTP); 0: no cap
    # IMAP pollers (`switchboard connector imap`)
    imap_timeout_s: float = 30.0  # every network step; a hung server cannot hang the poller
    imap_poll_interval_s: float = 60.0  # servers without IDLE
    imap_idle_s: float = 25 * 60.0  # re-issue IDLE before the 30-minute server limit (RFC 2177)
    imap_lease_ms: int = 30_000  # a dead poller's mailboxes are taken over after this
    imap_refresh_s: float = 10.0  # re-read accounts and rebalance mailboxes between pollers
    imap_backoff_max_s: float = 60.0  # reconnect backoff ceiling
    imap_max_attempts: int = 3  # failed fetches of one UID before it is quarantined
    imap_batch: int = 50  # UIDs fetched per round
    imap_tls_ca: str = ""  # extra CA certificates (PEM) the poller trusts besides the system's
    # Wire
    blob_threshold: int = 256 * 1024
    blob_grace_s: int = 48 * 3600  # an unreferenced blob younger than this is kept
    blob_collect_interval_s: int = 6 * 3600  # normalizers collect orphan blobs this often; 0: never
    # Consumer loop
    batch_size: int = 64
    block_ms: int = 1000
    visibility_timeout_ms: int = 60_000
    reclaim_interval_ms: int = 5_000
    max_deliveries: int = 5
    heartbeat_interval_ms: int = 5_000
    # Tickets
    reopen_window_s: int = 7 * 24 * 3600
    session_window_s: int = 24 * 3600
    account_cache_s: float = 30.0
    normalizer_concurrency: int = 2  # batches one normalizer has in hand at once (parse one, store another)
    # Push gateway (WeChat, Weibo): a signed timestamp further than this from now is refused
    push_max_skew_s: int = 300
    # Routing
    router_aging_s: int = 600  # waiting this long counts as one VIP tier
    router_reconcile_ms: int = 5_000  # load drift, escalations and queue pulls
    router_queue_scan: int = 200  # waiting tickets an agent with room looks at
    # Outbound replies (`switchboard sender`)
    reply_max_body: int = 10 * 1024 * 1024  # POST /tickets/{id}/messages, attachments as base64 included
    send_max_attempts: int = 8  # sends of one reply before it is failed
    send_max_attempts_by_channel: str = ""  # per channel, e.g. "wechat=3,email=12"
    send_backoff_base_s: float = 2.0  # wait after the first temporary failure; doubles each time
    send_backoff_cap_s: float = 900.0
    send_concurrency: int = 16  # replies one sender has in flight at once
    outbox_relay_interval_ms: int = 200  # how often the relay looks for replies to put on the streams
    # Console (the agents' web pages, mounted by `api` and `run`)
    console_trust_proxy: bool = False  # X-Forwarded-Proto/-For from a TLS-terminating proxy are believed
    console_session_s: int = 12 * 3600  # a sign-in lasts this long
    console_login_limit: int = 5  # failed sign-ins per email per window, then refused
    console_login_limit_addr: int = 20  # failed sign-ins per client address per window
    console_login_window_s: int = 900
    # Customer status page (`/portal/{token}`, served by `api` and `run`)
    public_url: str = ""  # base of the links customers get; empty: http://127.0.0.1:<http_port>
    portal_link_ttl_s: int = 30 * 24 * 3600  # a status link opens the page this long after it was issued
    portal_max_attachment: int = 10 * 1024 * 1024  # bytes of the one file a customer may add to a message
    portal_posts_per_hour: int = 20  # messages one ticket's page takes per hour (429 past it)
    # Webhooks out (`switchboard rules`)
    webhook_timeout_s: float = 10.0  # one attempt, connect to the last byte read
    webhook_retry_base_s: float = 10.0  # the first retry comes within this; each later wait doubles
    webhook_retry_cap_s: float = 3600.0  # the longest wait between two attempts
    webhook_retry_window_s: float = 24 * 3600.0  # retries stop this long after the first attempt: dead
    webhook_concurrency: int = 32  # attempts one rules process has in flight
    webhook_per_target: int = 4  # of those, to one webhook: a slow receiver holds no more slots
    webhook_poll_ms: int = 500  # an idle deliverer looks for due deliveries this often
    webhook_cache_s: float = 5.0  # the fan-out re-reads a tenant's webhooks this often
    # Logs
    log_level: str = "info"
    log_format: str = "auto"  # auto | json | console
    demo: bool = True

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, else SQLite (WAL) under the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'switchboard.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        """``public_url``, else this machine's own HTTP port on loopback."""
        return (self.public_url or f"http://127.0.0.1:{self.http_port}").rstrip("/")

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def max_attempts(self, channel: str) -> int:
        """``send_max_attempts_by_channel``'s figure for ``channel``, else ``send_max_attempts``."""
        for pair in filter(None, (p.strip() for p in self.send_max_attempts_by_channel.split(","))):
            name, _, value = pair.partition("=")
            if name.strip() == channel:
                return int(value)
        return self.send_max_attempts

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = _FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name}: {raw!r} is not a valid {kind}") from None


def known_env_names() -> set[str]:
    """Every environment variable the settings read (used by the compose-file test)."""
    return {PREFIX + n.upper() for n in _FIELDS} | set(BARE_ENV) | META_ENV


def load(env: Mapping[str, str] | None = None, path: str | Path | None = None) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = path or env.get("SWITCHBOARD_CONFIG")
    if path:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        for key, raw in doc.items():
            if key not in _FIELDS:
                raise SettingsError(f"unknown setting {key!r} in {path}")
            values[key] = _coerce(key, raw)
    for name, raw in env.items():
        if name in BARE_ENV:
            values[BARE_ENV[name]] = raw
        elif name.startswith(PREFIX) and name not in META_ENV:
            key = name[len(PREFIX):].lower()
            if key not in _FIELDS:
                raise SettingsError(f"unknown setting {name}")
            values[key] = _coerce(key, raw)
    _check_attempts(values.get("send_max_attempts_by_channel", ""))
    return Settings(**values)


def _check_attempts(spec: str) -> None:
    """``channel=N,...`` with N a positive integer, or a SettingsError naming the bad pair."""
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise SettingsError(f"setting send_max_attempts_by_channel: {pair!r} is not CHANNEL=ATTEMPTS")
