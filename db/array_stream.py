"""Stored arrays inflated a chunk at a time: a 64 MiB array charted without ever being whole in memory.

``StreamedArrays`` is an ``ArraySource`` (``load``) that can also hand out an
array as consecutive flat chunks (``chunks``), inflated from the stored deflate
stream as they are asked for, so a pass over two arrays holds two chunks and
the two compressed rows, never the decoded arrays. Nothing is cached: a second
pass inflates again (deflate runs at hundreds of MB/s; a 64 MiB array of
mostly zeros takes a few tens of ms).

The digest is checked as in ``db.store.arrays.decompress`` (same codec, same
size bound, same one-line ``StoreError``), but only once the last chunk has
been inflated: a consumer must treat what it computed from the chunks as
unusable when the iteration raises, which the chart builders do by letting the
error propagate.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlalchemy import select

from driftboard.core.errors import NotFoundError, StoreError
from driftboard.core.run import DTYPES, ArrayRef
from driftboard.db.models import ArrayRow
from driftboard.db.session import transaction
from driftboard.db.store.arrays import CODEC


def inflate_chunks(sha: str, codec: str, nbytes: int, stored: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """The array's ``nbytes`` bytes, ``chunk_bytes`` at a time (the last may be shorter); inflates at most
    ``nbytes`` (+1 to notice more) and raises ``StoreError`` after the last chunk when the sha256 differs."""
    if codec != CODEC:
        raise StoreError(f"array {sha[:12]}… uses unknown codec {codec!r}")
    inflater = zlib.decompressobj(-15)
    digest = hashlib.sha256()
    tail, seen = stored, 0
    try:
        while seen < nbytes:
            out = inflater.decompress(tail, min(chunk_bytes, nbytes - seen))
            tail = inflater.unconsumed_tail
            if not out:
                break  # the stream ended (or its bytes ran out) before nbytes
            digest.update(out)
            seen += len(out)
            yield out
        more = inflater.decompress(tail, 1) if seen == nbytes else b""
    except zlib.error as exc:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database ({exc})") from None
    if seen != nbytes or more or digest.hexdigest() != sha:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database (content does not match its sha256)")


class StreamedArrays:
    """An ``ArraySource`` reading arrays from the database, whole (``load``) or in flat chunks (``chunks``)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def _row(self, ref: ArrayRef) -> tuple[str, int, bytes]:
        with transaction(self._engine) as session:
            row = session.execute(
                select(ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data).where(ArrayRow.sha256 == ref.sha256)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"array {ref.sha256[:12]}… is not in the database")
        codec, nbytes, stored = row
        if nbytes != ref.nbytes:
            raise StoreError(f"array {ref.sha256[:12]}… holds {nbytes} bytes, its reference needs {ref.nbytes}")
        return codec, nbytes, stored

    def chunks(self, ref: ArrayRef, elements: int) -> Iterator[np.ndarray]:
        """The array flattened in C order, ``elements`` at a time, as its storage dtype (bfloat16: uint16)."""
        dtype = DTYPES[ref.dtype]
        codec, nbytes, stored = self._row(ref)
        for data in inflate_chunks(ref.sha256, codec, nbytes, stored, max(1, elements) * dtype.itemsize):
            yield np.frombuffer(data, dtype=dtype)

    def load(self, ref: ArrayRef) -> np.ndarray:
        """The whole array, inflated into one buffer of its size (no second, joined copy)."""
        dtype = DTYPES[ref.dtype]
        codec, nbytes, stored = self._row(ref)
        out = np.empty(nbytes, dtype=np.uint8)
        at = 0
        for data in inflate_chunks(ref.sha256, codec, nbytes, stored, 1 << 20):
            out[at : at + len(data)] = np.frombuffer(data, dtype=np.uint8)
            at += len(data)
        return out.view(dtype).reshape(ref.shape)
