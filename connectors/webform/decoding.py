"""Form bodies are decoded on a few threads of their own, with a bound on the work waiting.

Not asyncio's default pool: the blob store reads and writes attachments there, and a
flood of form bodies queued in front of those would stall every download (measured by the
``hostile`` scenario of ``make bench``). When the pool and its queue are full the form
answers 503 with Retry-After instead of queueing more.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
WORKERS, QUEUED = 2, 8


class Saturated(Exception):
    """Every decoding thread is busy and the queue is full."""


class Decoder:
    """``await decoder.run(fn, *args)``: ``fn`` on the pool, or ``Saturated`` at once."""

    def __init__(self, workers: int = WORKERS, queued: int = QUEUED) -> None:
        self.limit = workers + queued
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="form-decode")
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not finished; a cancelled caller's job still counts

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._pending >= self.limit:
                raise Saturated(f"{self._pending} form bodies are being decoded")
            self._pending += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
