"""The port the sender and its relay use to read and write the outbox (the store implements it).

The sender lives with the channels, which may import only ``core``; ``ops/roles.py`` hands it
the store's implementation (``ticket_service.store.outbox.StoreOutbox``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from core.outbound import Outgoing, Sent

QUEUED, SENT, DELIVERED, FAILED = "queued", "sent", "delivered", "failed"
STATUSES = (QUEUED, SENT, DELIVERED, FAILED)


class AttemptInProgress(Exception):
    """Another sender holds this reply for an attempt that has not ended (nor timed out) yet."""


@dataclass(frozen=True, slots=True)
class Due:
    """An outbox row to put on ``outbound.<channel>``."""

    outbox_id: int
    tenant: str
    channel: str
    attempts: int = 0  # attempts the row had when it was found due


@dataclass(frozen=True, slots=True)
class Relayed:
    """An outbox row marked as on the stream, with the entry it was put there as."""

    outbox_id: int
    channel: str
    entry_id: str
    attempts: int | None = None  # mark it only if it still has these attempts (None: whatever it has)


class Outbox(Protocol):
    async def begin_attempt(self, outbox_id: int, lease_ms: int) -> Outgoing | None:
        """Claim the row for one send attempt (attempts + 1) and build what to send.

        None: nothing to send (unknown row, or it already ended sent/delivered/failed).
        Raises ``AttemptInProgress`` while another attempt holds the row.
        """

    async def record_sent(self, out: Outgoing, sent: Sent) -> None:
        """The platform accepted it: status sent/delivered, event ``message.sent``."""

    async def record_retry(self, out: Outgoing, code: str, message: str, delay_ms: int) -> None:
        """A temporary failure: due again in ``delay_ms``, for the relay to put back on the stream."""

    async def record_failed(self, out: Outgoing, code: str, message: str) -> None:
        """Given up: status failed with the platform's code and words, event ``message.failed``."""

    async def due(self, now_ms: int, limit: int) -> list[Due]:
        """Queued rows not on a stream and due now, oldest first."""

    async def mark_relayed(self, entries: list[Relayed]) -> None:
        """These rows are on their streams as these entries, each unless an attempt began on
        it since it was found due (a sender can take the entry before it is marked)."""

    async def relayed_unsent(self, limit: int) -> list[Relayed]:
        """Queued rows marked as on a stream (the relay checks that their entries still exist)."""

    async def unrelay(self, outbox_ids: list[int]) -> None:
        """Their stream entries are gone without a result: relay them again."""


def backoff_ms(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> int:
    """Exponential backoff with full jitter over the upper half: base·2^(attempt-1), capped."""
    ceiling = min(cap_s, base_s * 2 ** max(attempt - 1, 0))
    return int(1000 * ceiling * (0.5 + 0.5 * (rng or random).random()))
