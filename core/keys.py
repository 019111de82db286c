"""Every Redis stream name and key prefix in one place.

Redis Cluster: a Lua script or MULTI may only touch keys of one hash slot, and a key's slot
is CRC16 of its ``{tag}`` when it has one, else of the whole name. Streams keep their plain
names (each stream its own slot, so the channels spread over the masters); a key that must
be written together with a stream carries that stream's name as its tag (``on_stream``), which
puts it on the stream's slot without renaming the stream.
"""

INGEST_PREFIX = "ingest."
TICKET_EVENTS = "ticket.events"
DEAD_PREFIX = "dead."

GROUP_NORMALIZER = "normalizer"
GROUP_ROUTER = "router"

_KEY = "sb:"


def on_stream(stream: str) -> str:
    """``{stream}``: a hash tag that hashes exactly as the untagged stream name does."""
    return f"{{{stream}}}"


def ingest_stream(channel: str) -> str:
    return f"{INGEST_PREFIX}{channel}"


def dead_stream(stream: str) -> str:
    return f"{DEAD_PREFIX}{stream}"


def last_error_key(stream: str, group: str) -> str:
    """Hash of entry id -> last handler error, so a dead letter carries its reason (on the stream's slot)."""
    return f"{_KEY}lasterror:{on_stream(stream)}:{group}"


def heartbeat_key(role: str, consumer: str) -> str:
    return f"{_KEY}heartbeat:{role}:{consumer}"


HEARTBEAT_PATTERN = f"{_KEY}heartbeat:*"


def router_tick_key() -> str:
    """Held for one reconcile interval by the router instance doing the periodic pass."""
    return f"{_KEY}router:tick"


# IMAP: one lease, one checkpoint and one retry count per mailbox folder, on ingest.email's slot:
# one script checks the lease, XADDs the mail and moves the checkpoint (imap/mailbox.py).
DEAD_IMAP = f"{DEAD_PREFIX}imap"  # messages an IMAP poller could not fetch (with the UID)
IMAP_INSTANCES = f"{_KEY}imap:instances"  # sorted set: poller instance -> last seen (ms)


def imap_lease_key(account_id: int, folder: str) -> str:
    return f"{_KEY}imap:lease:{on_stream(ingest_stream('email'))}:{account_id}:{folder}"


def imap_checkpoint_key(account_id: int, folder: str) -> str:
    """Hash ``uidvalidity``, ``uid``: the last UID whose envelope is on the stream."""
    return f"{_KEY}imap:checkpoint:{on_stream(ingest_stream('email'))}:{account_id}:{folder}"


def imap_attempts_key(account_id: int, folder: str) -> str:
    """Hash UID -> failed fetch attempts, so one bad message is quarantined, not retried forever."""
    return f"{_KEY}imap:attempts:{on_stream(ingest_stream('email'))}:{account_id}:{folder}"


# Push gateway: receipts, SDK idempotency and uploads, rate-limit windows.
def receipt_key(receipt: str) -> str:
    """JSON {tenant_id, channel, dedup_key, envelope_id}: what a submitter's receipt token resolves through."""
    return f"{_KEY}receipt:{receipt}"


def sdk_message_key(account_id: int, client_id: str) -> str:
    """The receipt first given for an SDK client message uuid (a retry gets the same one)."""
    return f"{_KEY}sdk:msg:{account_id}:{client_id}"


def sdk_upload_key(account_id: int, upload_id: str) -> str:
    return f"{_KEY}sdk:upload:{account_id}:{upload_id}"


SDK_UPLOAD_PATTERN = f"{_KEY}sdk:upload:*"
BLOB_COLLECT_KEY = f"{_KEY}blobs:collect"  # held for one interval by the replica collecting orphans


def rate_key(scope: str, window: int) -> str:
    return f"{_KEY}rate:{scope}:{window}"


def push_nonce_key(account_id: int, timestamp: str, nonce: str) -> str:
    """sha256 of the body first pushed with this signed (timestamp, nonce), for the timestamp window."""
    return f"{_KEY}push:nonce:{account_id}:{timestamp}:{nonce}"


# Outbound replies: one stream per channel, read by the "sender" group; one relay at a time.
OUTBOUND_PREFIX = "outbound."
GROUP_SENDER = "sender"
OUTBOX_RELAY_KEY = f"{_KEY}outbox:relay"  # held by the sender replica relaying the outbox


def outbound_stream(channel: str) -> str:
    return f"{OUTBOUND_PREFIX}{channel}"


# Outbound: access tokens shared by every sender replica, and what part of a reply is out already.
def wechat_token_key(account_id: int) -> str:
    """A WeChat account's access_token, expiring before WeChat's own expires_in."""
    return f"{_KEY}wechat:token:{account_id}"


def wechat_token_lock_key(account_id: int) -> str:
    """Held by the one replica fetching a new access_token, so WeChat issues one at a time."""
    return f"{_KEY}wechat:token:lock:{account_id}"


def outbound_parts_key(channel: str, outbox_id: int) -> str:
    """Hash part -> platform id: the parts of a multi-part reply already accepted, skipped on retry."""
    return f"{_KEY}outbound:parts:{channel}:{outbox_id}"


# Console: failed sign-ins per email and per address (fixed windows), signed-out sessions,
# sessions of disabled agents.
def console_login_key(scope: str, who: str, window: int) -> str:
    """Failed sign-ins of one email (``scope`` email, ``who`` its sha256) or address in a window."""
    return f"{_KEY}console:login:{scope}:{who}:{window}"


def console_revoked_key(session_id: str) -> str:
    """Set on sign-out until the session would have expired, so its cookie is dead even if kept."""
    return f"{_KEY}console:revoked:{session_id}"


def console_ended_key(agent_id: int) -> str:
    """When the agent was disabled (ms), kept as long as a session lasts: a session signed in
    before stays ended after the agent is enabled again."""
    return f"{_KEY}console:ended:{agent_id}"
