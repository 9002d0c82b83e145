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
    """A stored array's bytes, checked against its sha256; inflates at most ``nbytes`` (+1 to notice more).

    Reading tolerates bytes after the end of the stream (they cannot change what it inflates to);
    ``stored_problem`` does not, and ``driftboard db repair`` rewrites such rows.
    """
    if codec != CODEC:
        raise StoreError(f"array {sha[:12]}… uses unknown codec {codec!r}")
    try:
        data = zlib.decompressobj(-15).decompress(stored, nbytes + 1)
    except zlib.error as exc:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database ({exc})") from None
    if len(data) != nbytes or hashlib.sha256(data).hexdigest() != sha:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database (content does not match its sha256)")
    return data


def stored_problem(sha: str, codec: str, nbytes: int, stored: bytes) -> str | None:
    """What is wrong with a stored array, or None when it inflates to exactly its bytes and ends there.

    The only form the store writes: its own compression, or a bundle's stream the bundle reader has
    checked the same way (``core.bundle.read_bundle(..., streams=True)``).
    """
    if codec != CODEC:
        return f"unknown codec {codec!r}"
    inflater = zlib.decompressobj(-15)
    try:
        data = inflater.decompress(stored, nbytes + 1)
    except zlib.error as exc:
        return f"its stored bytes do not inflate ({exc})"
    if len(data) > nbytes:
        return f"its stored bytes inflate to more than its {nbytes} bytes"
    if len(data) < nbytes or not inflater.eof:
        return f"its stored bytes are cut short ({len(data)} of {nbytes} bytes)"
    if hashlib.sha256(data).hexdigest() != sha:
        return "its stored bytes do not match its sha256"
    if inflater.unused_data:
        return f"{len(inflater.unused_data)} bytes follow the end of its stored stream"
    return None


def salvage(sha: str, nbytes: int, stored: bytes) -> bytes | None:
    """The array's bytes when the first ``nbytes`` its stored form inflates to are the array, else None.

    The digest proves them right wherever they come from: a stream with bytes after the array (or
    after its end) still holds the array.
    """
    try:
        data = zlib.decompressobj(-15).decompress(stored, nbytes)
    except zlib.error:
        return None
    return data if len(data) == nbytes and hashlib.sha256(data).hexdigest() == sha else None


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
