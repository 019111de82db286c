"""One batch of entries worked through by a stage: tried whole, split to singles when that fails.

A stage shares work across the entries one XREADGROUP returned (one transaction, one
routing round). When the shared attempt fails for a bad entry, each entry is tried on its
own, so the bad one fails alone and the others succeed exactly once. A dependency outage
is told apart from a bad entry: the batch stops at the first one, the entries not tried
fail with ``NotAttempted``, and the consumer loop backs off and retries them all later
without counting those deliveries towards dead-lettering.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

import structlog

log = structlog.get_logger()
T = TypeVar("T")
R = TypeVar("R")


class NotAttempted(Exception):
    """An entry of a batch left alone because a dependency went down on an earlier one."""


class Result(StrEnum):
    """What became of one entry in the consumer loop; ``ok``, ``dead``, ``failed`` and
    ``outage`` are also the names of the worker's heartbeat counters."""

    OK = "ok"  # handled: acked
    DEAD = "dead"  # dead-lettered: acked
    GONE = "gone"  # deleted from the stream while pending, nothing left to do: acked
    FAILED = "failed"  # left pending; the delivery counts towards max_deliveries
    OUTAGE = "outage"  # left pending; a dependency was down, the delivery does not count

    @property
    def acked(self) -> bool:
        return self in (Result.OK, Result.DEAD, Result.GONE)


class Batch:
    """Per entry of a batch (by its index), None (done) or the exception it failed with."""

    def __init__(self, size: int, is_outage: Callable[[BaseException], bool], role: str = "worker") -> None:
        self.results: list[BaseException | None] = [None] * size
        self.is_outage = is_outage
        self.role = role
        self.down = False  # a dependency went down: nothing more is attempted

    def stops(self, error: BaseException | None) -> bool:
        """Whether ``error`` ends the batch: an outage, or an entry left because of one."""
        return error is not None and (isinstance(error, NotAttempted) or self.is_outage(error))

    def fail(self, indices: Iterable[int], error: BaseException) -> None:
        for i in indices:
            self.results[i] = error
        self.down = self.down or self.stops(error)

    async def run(self, entries: Mapping[int, T], single: Callable[[T], Awaitable[R]],
                  whole: Callable[[list[T]], Awaitable[Sequence[R]]] | None = None) -> dict[int, R]:
        """Values of the entries that succeeded, by index; the others' errors go to ``results``.

        ``whole`` (shared work, one value per entry, in order) is tried first when there
        is more than one entry; when it fails for anything but an outage, ``single`` is
        tried on each entry in turn.
        """
        if self.down:
            self.fail(entries, NotAttempted("not attempted"))
            return {}
        if whole is not None and len(entries) > 1:
            try:
                return dict(zip(entries, await whole(list(entries.values())), strict=True))
            except Exception as exc:
                if self.is_outage(exc):
                    first, *rest = entries
                    self.fail([first], exc)
                    self.fail(rest, NotAttempted("not attempted"))
                    return {}
                log.info(f"{self.role}.batch_split", error=f"{type(exc).__name__}: {exc}", size=len(entries))
        done: dict[int, R] = {}
        for i, item in entries.items():
            if self.down:
                self.fail([i], NotAttempted("not attempted"))
                continue
            try:
                done[i] = await single(item)
            except Exception as exc:
                self.fail([i], exc)
        return done
