"""Arrays in the database: how they are compressed, and an ``ArraySource`` that reads them on demand."""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import select

from driftboard.core.errors import NotFoundError, StoreError
from driftboard.core.run import ArrayRef, decode_array
from driftboard.db.models import ArrayRow
from driftboard.db.session import transaction

CODEC = "deflate"  # raw deflate (zlib, wbits=-15): what a bundle's zip entries already hold
_ZLIB_LEVEL = 1  # arrays are float noise: level 6 gains ~0.5% and costs more time


def compress(raw: bytes) -> bytes:
    """An array's bytes in the stored form (``CODEC``)."""
    compressor = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(raw) + compressor.flush()


def decompress(sha: str, codec: str, nbytes: int, stored: bytes) -> bytes:
    """A stored array's bytes, checked against its sha256; inflates at most ``nbytes`` (+1 to notice more)."""
    if codec != CODEC:
        raise StoreError(f"array {sha[:12]}… uses unknown codec {codec!r}")
    try:
        data = zlib.decompressobj(-15).decompress(stored, nbytes + 1)
    except zlib.error as exc:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database ({exc})") from None
    if len(data) != nbytes or hashlib.sha256(data).hexdigest() != sha:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database (content does not match its sha256)")
    return data


class DbArrays:
    """An ``ArraySource`` reading arrays from the database when asked, checking their digests."""

    def __init__(self, engine: Any, cache_items: int = 128) -> None:
        self._engine = engine
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_items = cache_items
        self._lock = threading.Lock()

    def load(self, ref: ArrayRef) -> np.ndarray:
        data = self.raw(ref.sha256)
        if len(data) != ref.nbytes:
            raise StoreError(f"array {ref.sha256[:12]}… holds {len(data)} bytes, its reference needs {ref.nbytes}")
        return decode_array(ref, data)

    def raw(self, sha256: str) -> bytes:
        with self._lock:
            data = self._cache.get(sha256)
            if data is not None:
                self._cache.move_to_end(sha256)
                return data
        self.prefetch([sha256])
        with self._lock:
            data = self._cache.get(sha256)
        if data is None:
            raise NotFoundError(f"array {sha256[:12]}… is not in the database")
        return data

    def prefetch(self, shas: Iterable[str]) -> None:
        """Read many arrays in one query (and keep them in the cache)."""
        wanted = sorted(set(shas) - self._cache.keys())
        if not wanted:
            return
        with transaction(self._engine) as session:
            rows = session.execute(
                select(ArrayRow.sha256, ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data).where(ArrayRow.sha256.in_(wanted))
            ).all()
        for sha, codec, nbytes, stored in rows:
            data = decompress(sha, codec, nbytes, stored)
            with self._lock:
                self._cache[sha] = data
                while len(self._cache) > self._cache_items:
                    self._cache.popitem(last=False)
