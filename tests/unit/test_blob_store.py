"""The blob store on a real folder: whole files under their sha256, private, no temporaries left."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat

from core.blobs import BlobStore


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_blobs_are_stored_whole_under_their_digest_and_private(tmp_path):
    store = BlobStore(tmp_path)
    data = os.urandom(300_000)  # more than one write may take
    key = await store.put(data)
    digest = hashlib.sha256(data).hexdigest()
    assert key == f"sha256/{digest[:2]}/{digest}"
    assert await store.get(key) == data
    assert _files(tmp_path) == [key]
    assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600


async def test_storing_the_same_bytes_again_touches_the_one_file(tmp_path):
    store = BlobStore(tmp_path)
    key = await store.put(b"invoice")
    os.utime(tmp_path / key, (1_000_000, 1_000_000))
    assert await store.put_many([b"invoice", b"receipt"]) == [key, BlobStore.key_of(b"receipt")]
    assert (tmp_path / key).stat().st_mtime > 1_000_000  # the orphan grace period starts again
    assert len(_files(tmp_path)) == 2


async def test_a_folder_removed_behind_the_store_is_made_again(tmp_path):
    store = BlobStore(tmp_path)
    first = await store.put(b"one")
    shutil.rmtree(tmp_path / "sha256")
    # Same two hex digits: the folder the store made before, now gone.
    again = await store.put(b"one")
    assert again == first and await store.get(again) == b"one"
    assert _files(tmp_path) == [first]
