"""The settings reference in docs/operations.md, generated from :class:`core.settings.Settings`.

``python -m ops.docs`` prints the table; ``python -m ops.docs --write`` puts it between the
``settings:begin``/``settings:end`` markers of docs/operations.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from core.settings import BARE_ENV, PREFIX, Settings

OPERATIONS_MD = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"

# One line per setting; a unit test fails when a field of Settings has none.
HELP: dict[str, str] = {
    "data_dir": "Data folder: blobs (attachments, large payloads), and the embedded Redis and "
    "SQLite database when `REDIS_URL` / `DATABASE_URL` are unset.",
    "host": "Address the SMTP, HTTP and metrics listeners bind to (`0.0.0.0` in containers).",
    "http_port": "HTTP port of `api`, `gateway` and `run` (REST API, push routes, health, metrics).",
    "smtp_port": "Port the `smtp` role (and `run`) accepts mail on.",
    "metrics_port": "Port for `/metrics`, `/healthz` and `/readyz` on roles without an HTTP "
    "port (`smtp`, `normalizer`, `router`); `0` serves none.",
    "redis_url": "Redis server, e.g. `redis://redis:6379/0`, or any node of a Redis Cluster as "
    "`redis+cluster://host:6379` (see Redis Cluster below). Empty: an embedded Redis under "
    "the data folder, living as long as the process that started it.",
    "redis_wait_replicas": "Replicas that must have an entry (Redis `WAIT`) before an ingress "
    "acknowledges it or a stage counts its XADD as done; 0: the master's reply is enough. "
    "Fewer within `redis_wait_timeout_ms`: HTTP 503, SMTP 451 4.3.0.",
    "redis_wait_timeout_ms": "How long `WAIT` may block for `redis_wait_replicas` (ms).",
    "database_read_url": "A read-only streaming replica of `DATABASE_URL` (PostgreSQL): the "
    "API's lists, searches and ticket reads go there. Empty: every read goes to the primary.",
    "database_url": "Database, e.g. `postgresql://user:pass@host/db`. Empty: SQLite (WAL) "
    "at `<data_dir>/switchboard.db`.",
    "secret_key": "Secret for HMAC-signed email reply tokens and status-page links (per-tenant "
    "keys are derived from it) and the key that encrypts stored channel credentials (IMAP passwords). Keep it "
    "stable: changing it invalidates reply tokens and stored passwords.",
    "max_message_size": "Largest accepted message in bytes (25 MiB): announced in SMTP "
    "`EHLO SIZE` and refused with 552 above it; also the HTTP body limit.",
    "smtp_hostname": "Name the SMTP server gives in its greeting and `EHLO` reply.",
    "smtp_tls_cert": "PEM certificate chain (leaf first) for SMTP `STARTTLS` (RFC 3207); set "
    "with `smtp_tls_key` and the server offers `STARTTLS`. Unreadable files stop the role at start.",
    "smtp_tls_key": "PEM private key of `smtp_tls_cert` (unencrypted; keep it readable by the "
    "role only).",
    "smtp_require_tls": "Answer `MAIL` before `STARTTLS` with 530 (RFC 3207 §4): no mail in plain "
    "text. Needs `smtp_tls_cert`; senders without TLS cannot deliver at all.",
    "smtp_idle_timeout_s": "Seconds an SMTP session may wait for the next command (and a DATA "
    "transfer may take) before it is closed; RFC 5321 asks for at least 5 minutes.",
    "smtp_max_recipients": "Distinct recipients accepted in one mail; more get `452 4.5.3 Too "
    "many recipients` (RFC 5321 asks servers to take at least 100).",
    "smtp_max_unknown_recipients": "Unknown recipients (550) one SMTP session may try before it "
    "is answered 421 and closed (address harvesting).",
    "smtp_max_connections_per_ip": "Open SMTP connections from one address; more are answered "
    "`421 4.7.0 Too many connections from your address`. `0`: no cap.",
    "smtp_relay": "Where email replies go: `smtp://user:pass@host:587?starttls=true`, "
    "`smtp://host:25` (STARTTLS when offered) or `smtps://host:465` (TLS from the start); "
    "user and password percent-encoded, `ca=/path.pem` trusts an extra CA. Empty: replies are "
    "written to the Maildir `<data_dir>/outbox/` instead of being sent.",
    "smtp_relay_timeout_s": "Seconds each step of a conversation with the relay may take; a "
    "timeout is a temporary failure and the reply is retried.",
    "http_header_timeout_s": "Seconds a new HTTP connection has to send its request line and "
    "headers; a slower one is answered 408 and closed.",
    "http_idle_timeout_s": "Seconds an HTTP keep-alive connection may sit idle (or half-sent) "
    "before it is closed.",
    "http_max_connections_per_ip": "Open HTTP connections from one address; more are answered "
    "429 and closed. `0`: no cap (set it behind a proxy, where every client has the proxy's address).",
    "max_connections": "Open connections per listener (SMTP, HTTP); more are answered 421 / 503 "
    "and closed. `0`: no cap.",
    "imap_timeout_s": "Seconds any one IMAP network step (connect, login, search, fetch, IDLE "
    "exit) may take before the poller drops the connection and reconnects.",
    "imap_poll_interval_s": "Seconds between polls of a mailbox whose server lacks IDLE.",
    "imap_idle_s": "Seconds an IDLE is held before it is re-issued (servers drop IDLE after "
    "30 minutes, RFC 2177).",
    "imap_lease_ms": "Lease on a mailbox held by one poller instance, renewed every third of it; "
    "a dead poller's mailboxes are taken over within this time.",
    "imap_refresh_s": "How often a poller re-reads the IMAP accounts and rebalances mailboxes "
    "with the other pollers.",
    "imap_backoff_max_s": "Ceiling of the exponential reconnect backoff after an IMAP failure.",
    "imap_max_attempts": "Failed fetches of one message (UID) before it is quarantined in "
    "`dead.imap` and the mailbox moves on.",
    "imap_batch": "Messages (UIDs) fetched per round from one mailbox.",
    "imap_tls_ca": "PEM file of CA certificates the IMAP poller trusts besides the system's, "
    "e.g. a company CA that signed the mail server's certificate.",
    "blob_threshold": "Payloads larger than this many bytes go to the blob store; the stream "
    "entry carries the reference (claim check).",
    "blob_grace_s": "A blob no attachment, SDK upload or stream entry refers to is removed once "
    "it is this old (seconds since it was last stored); see Orphan blobs.",
    "blob_collect_interval_s": "How often one normalizer replica collects orphan blobs "
    "(`switchboard ops collect-blobs` does it on demand); `0` turns the periodic run off.",
    "batch_size": "Entries a worker reads per `XREADGROUP` and reclaims per `XAUTOCLAIM`.",
    "block_ms": "How long a worker's `XREADGROUP` waits for new entries.",
    "visibility_timeout_ms": "An entry pending this long on one consumer is taken over by "
    "another (`XAUTOCLAIM`); longer than the slowest expected handle.",
    "reclaim_interval_ms": "How often each worker looks for entries to take over.",
    "max_deliveries": "Deliveries after which a failing entry goes to `dead.<stream>`.",
    "heartbeat_interval_ms": "How often a worker writes its heartbeat key (TTL three "
    "intervals); `switchboard ops check` reads it.",
    "reopen_window_s": "A follow-up within this many seconds of a ticket closing reopens it; "
    "later ones open a new linked ticket.",
    "session_window_s": "Chat channels (WeChat, Weibo, mobile SDK) and phone calls: a message within this many "
    "seconds of the last one in the same session joins the same ticket.",
    "account_cache_s": "Seconds a channel account lookup (recipient address → tenant) is cached "
    "per process.",
    "normalizer_concurrency": "Batches one `normalizer` has in hand at once: the next is read and parsed "
    "while the last waits on the database. Batches that share a conversation (sender, conversation or "
    "session key, dedup key) are stored one after the other (`normalizer/order.py`); `1` handles one "
    "batch at a time.",
    "push_max_skew_s": "WeChat and Weibo pushes whose signed timestamp is further than this many "
    "seconds from the gateway's clock are refused (401 `stale_timestamp`); a signed timestamp and "
    "nonce are remembered this long on either side, so a second use with another body is refused "
    "(409 `replayed`). Keep the gateways' clocks in sync (NTP).",
    "router_aging_s": "Queue order: each VIP tier a ticket's customer has counts as this many "
    "seconds of waiting (each point of rule priority as a tenth of it).",
    "router_reconcile_ms": "How often one router replica (the others skip that round) escalates "
    "overdue tickets, corrects agent load, pulls queued tickets for agents with room and "
    "refreshes the queue-depth gauge.",
    "router_queue_scan": "Waiting tickets, per channel class, an agent with free capacity looks "
    "at when pulling from the queue.",
    "reply_max_body": "Largest body `POST /api/v1/tickets/{id}/messages` takes, base64 "
    "attachments included (413 above it); the other API routes keep their 64 KiB.",
    "send_concurrency": "Replies one `sender` has in flight at once (each waits on its platform, "
    "not on the others); mind the relay's connection limit per client.",
    "send_max_attempts": "Sends of one reply (the first included) before it is `failed` with the "
    "platform's last error.",
    "send_max_attempts_by_channel": "Per-channel attempt limits over `send_max_attempts`, "
    "`CHANNEL=N` pairs separated by commas, e.g. `wechat=3,email=12`.",
    "send_backoff_base_s": "Wait after a reply's first temporary failure; doubled after each "
    "further one, with jitter (a platform's Retry-After, when longer, wins).",
    "send_backoff_cap_s": "The longest wait between two sends of one reply.",
    "outbox_relay_interval_ms": "How often the relay (one sender replica at a time) puts due "
    "replies on `outbound.<channel>`.",
    "public_url": "Base URL customers reach this deployment's HTTP port at, e.g. "
    "`https://help.example.com`; the signed status-page links in replies start with it. "
    "Empty: `http://127.0.0.1:<http_port>`.",
    "portal_link_ttl_s": "How long a status-page link opens its ticket's page after it was "
    "issued (30 days); revoking a ticket's links ends them at once.",
    "portal_max_attachment": "Largest file, in bytes, a customer may add to a message on the "
    "status page (413 above it).",
    "portal_posts_per_hour": "Messages one ticket's status page accepts per hour, from every "
    "link of that ticket together (429 past it).",
    "webhook_timeout_s": "One webhook delivery attempt, from connecting to the last byte read; "
    "longer is a failed attempt (docs/webhooks.md).",
    "webhook_retry_base_s": "Wait before a failed webhook delivery's first retry (jittered down to "
    "half); doubled after each further failure.",
    "webhook_retry_cap_s": "The longest wait between two attempts of one webhook delivery.",
    "webhook_retry_window_s": "How long a webhook delivery is retried from its first attempt; "
    "then it is `dead` with its last error (a replay starts a new window).",
    "webhook_concurrency": "Webhook deliveries one `rules` process has in flight at once.",
    "webhook_per_target": "Of those, how many go to one webhook at once, so a slow receiver holds "
    "only its own slots.",
    "webhook_poll_ms": "How often an idle `rules` process looks for due webhook deliveries.",
    "webhook_cache_s": "How long the `rules` fan-out keeps a tenant's webhooks before reading "
    "them again (a new webhook receives events from then on).",
    "log_level": "`debug`, `info`, `warning` or `error`.",
    "log_format": "`auto` (console on a TTY, else JSON), `json` or `console`.",
    "console_trust_proxy": "Believe `X-Forwarded-Proto` (session cookie `Secure` on https) and the last "
    "`X-Forwarded-For` hop (sign-in limits per address) from the proxy in front of the console. "
    "Leave off when clients reach the server directly: they could forge both.",
    "console_session_s": "How long a console sign-in lasts (signed session cookie).",
    "console_login_limit": "Failed console sign-ins per email address within the window; past it "
    "that address is refused (even with the right password) until the window ends.",
    "console_login_limit_addr": "Failed console sign-ins per client address within the window.",
    "console_login_window_s": "The window of the console sign-in limits.",
    "demo": "`switchboard run` creates a demo tenant, mailbox, API key and console sign-ins "
    "(an agent and a supervisor) on first start.",
}


class MissingHelp(LookupError):
    pass


def env_names(name: str) -> list[str]:
    """Environment variables that set a field, the conventional bare name first."""
    bare = [env for env, field in BARE_ENV.items() if field == name]
    return [*bare, PREFIX + name.upper()]


def _default(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Path) and not value.is_absolute():
        text = f"./{value.as_posix()}"
    elif value == "":
        text = '""'
    else:
        text = str(value)
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The settings reference as a Markdown table, one row per field of Settings."""
    fields = dataclasses.fields(Settings)
    missing = [f.name for f in fields if f.name not in HELP]
    if missing:
        raise MissingHelp(f"no help text in ops/docs.py for: {', '.join(missing)}")
    rows = [
        "| environment variable | TOML key | type | default | description |",
        "|---|---|---|---|---|",
    ]
    for f in fields:
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        envs = ", ".join(f"`{e}`" for e in env_names(f.name))
        rows.append(
            f"| {envs} | `{f.name}` | {kind} | {_cell(_default(f.default))} | {_cell(HELP[f.name])} |"
        )
    return "\n".join(rows) + "\n"


def splice(document: str, table: str) -> str:
    """``document`` with the text between the markers replaced by ``table``."""
    head, sep, rest = document.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{BEGIN} … {END} markers not found")
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def section(document: str) -> str:
    """The text between the markers, as ``splice`` writes it."""
    rest = document.partition(BEGIN)[2]
    return rest.partition(END)[0].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.docs", description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"rewrite the settings section of {OPERATIONS_MD}")
    args = p.parse_args(argv)
    try:
        table = render()
    except MissingHelp as exc:
        print(exc, file=sys.stderr)
        return 1
    if not args.write:
        sys.stdout.write(table)
        return 0
    OPERATIONS_MD.write_text(splice(OPERATIONS_MD.read_text(encoding="utf-8"), table), encoding="utf-8")
    print(f"wrote the settings reference to {OPERATIONS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
