"""Every Redis stream name and key prefix in one place."""

INGEST_PREFIX = "ingest."
TICKET_EVENTS = "ticket.events"
DEAD_PREFIX = "dead."

GROUP_NORMALIZER = "normalizer"
GROUP_ROUTER = "router"

_KEY = "sb:"


def ingest_stream(channel: str) -> str:
    return f"{INGEST_PREFIX}{channel}"


def dead_stream(stream: str) -> str:
    return f"{DEAD_PREFIX}{stream}"


def last_error_key(stream: str, group: str) -> str:
    """Hash of entry id -> last handler error, so a dead letter carries its reason."""
    return f"{_KEY}lasterror:{stream}:{group}"


def heartbeat_key(role: str, consumer: str) -> str:
    return f"{_KEY}heartbeat:{role}:{consumer}"


HEARTBEAT_PATTERN = f"{_KEY}heartbeat:*"
