"""Content-addressed blob store on a local folder (attachments, large payloads)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

_KEY = re.compile(r"^sha256/[0-9a-f]{2}/[0-9a-f]{64}$")


class BlobStore:
    """Blobs are named by their sha256, so writing the same bytes twice is harmless."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._folders: set[Path] = set()  # sha256/xx folders known to exist (none is ever removed)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key

    @staticmethod
    def key_of(data: bytes) -> str:
        """The key ``put`` stores ``data`` under, without storing it."""
        digest = hashlib.sha256(data).hexdigest()
        return f"sha256/{digest[:2]}/{digest}"

    def put_unsafe_blocking(self, data: bytes) -> str:
        """Store bytes and return their key; blocks on disk I/O (call via ``put``)."""
        return self.put_keyed_unsafe_blocking(self.key_of(data), data)

    def put_keyed_unsafe_blocking(self, key: str, data: bytes) -> str:
        """``put_unsafe_blocking`` under a key the caller took from ``key_of(data)``: unsafe,
        the key is not checked against the bytes."""
        path = self._path(key)
        try:
            # A new reference to old bytes: the orphan grace period counts from the last put.
            os.utime(path)
            return key
        except FileNotFoundError:
            pass
        folder = path.parent
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        # Written under a temporary name and renamed, so a blob is whole or absent. With plain
        # os calls: mkstemp, a buffered file and an mkdir of a folder that exists took 4 more
        # system calls a blob (fstat, ioctl, lseek, a failing mkdir), each slow where the file
        # system is (the bench's 20 KB attachment: 94-111 µs a blob to 60-68, and 1,468 to 774
        # on a VM whose directory operations cost ~0.3-1 ms each).
        tmp = folder / f".tmp-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # the folder went since (removed by hand)
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        return key

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self.put_unsafe_blocking, data)

    async def put_many(self, blobs: list[bytes]) -> list[str]:
        """``put`` each, in one trip to a worker thread: handing bytes to a thread and back
        costs more CPU than writing a mail attachment to the page cache (py-spy of the
        normalizer over the bench's mail mix: a third of its time went to the hand-overs)."""
        return await self.put_many_keyed_unsafe([(self.key_of(data), data) for data in blobs])

    async def put_many_keyed_unsafe(self, blobs: list[tuple[str, bytes]]) -> list[str]:
        """``put_many`` of (``key_of(data)``, data) pairs whose keys the caller already took:
        the normalizer names each attachment's row before storing it, and hashing the bytes
        again cost 16 µs of CPU for the bench's 20 KB attachment (a quarter of its mails).
        Unsafe: a key is not checked against its bytes."""
        if not blobs:
            return []
        return await asyncio.to_thread(lambda: [self.put_keyed_unsafe_blocking(key, data) for key, data in blobs])

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    def older_than_unsafe_blocking(self, cutoff_s: float) -> Iterator[tuple[str, int]]:
        """(key, size) of every blob last put before ``cutoff_s`` (epoch seconds); walks the folder."""
        for path in self.root.glob("sha256/??/*"):
            key = path.relative_to(self.root).as_posix()
            if not _KEY.match(key):
                continue  # a temporary file of a put in progress
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if stat.st_mtime < cutoff_s:
                yield key, stat.st_size

    def remove_if_older_unsafe_blocking(self, key: str, cutoff_s: float) -> int:
        """Delete a blob unless a put touched it since ``cutoff_s``; returns the bytes freed."""
        path = self._path(key)
        try:
            stat = path.stat()
            if stat.st_mtime >= cutoff_s:
                return 0
            path.unlink()
        except FileNotFoundError:
            return 0
        return stat.st_size
