"""A pushed bundle's body, streamed to a temporary file within the push limits and a read timeout.

The bundle limit is ``core.bundle.DEFAULT_LIMITS.file_bytes``, the one
``driftboard push`` and the Upload page apply; another body (an explanation)
names its own limit and what it is (``BodyLimits.sized``). A ``Content-Length`` over it
is refused (413) before a byte is read; a body without one (chunked) is
refused as soon as it passes the limit. Memory stays one chunk whatever the
size. A body that stalls is abandoned: no chunk for ``idle`` seconds, or not
all of it within ``total`` seconds, is 408, so a slow or stuck client holds
neither memory nor a thread (the read is asynchronous) nor the request for
ever. A client that disconnects mid-body leaves nothing behind: the
temporary file is removed whatever happens before the caller takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from starlette.requests import ClientDisconnect, Request

from driftboard.core.bundle import DEFAULT_LIMITS
from driftboard.core.units import fmt_bytes
from driftboard.dashboard.api.responses import ApiError

IDLE_ENV = "DRIFTBOARD_API_IDLE_SECONDS"
TOTAL_ENV = "DRIFTBOARD_API_BODY_SECONDS"
CLOSE = {"Connection": "close"}  # the rest of the body is not read: the connection cannot carry another request


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int = DEFAULT_LIMITS.file_bytes
    idle: float = 30.0  # seconds without a byte
    total: float = 600.0  # seconds for the whole body (64 MiB at ~110 kB/s)
    what: str = "bundle"  # what the body is, in messages
    upload: str = "a push"

    @classmethod
    def from_env(cls) -> BodyLimits:
        """The defaults, or shorter timeouts named in the environment (tests, a small deployment)."""
        return cls(idle=_seconds(IDLE_ENV, cls.idle), total=_seconds(TOTAL_ENV, cls.total))

    def sized(self, max_bytes: int, what: str, upload: str) -> BodyLimits:
        """These timeouts for another kind of body: its own size limit and names."""
        return replace(self, max_bytes=max_bytes, what=what, upload=upload)


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if 0 < value <= default else default


async def receive_to_file(request: Request, limits: BodyLimits) -> Path:
    """The body in a new temporary file (the caller removes it), or an ``ApiError`` with nothing left behind."""
    declared = _declared_length(request)
    if declared is not None and declared > limits.max_bytes:
        raise ApiError(413, f"the {limits.what} is {fmt_bytes(declared)}, over the {fmt_bytes(limits.max_bytes)} "
                            f"limit of {limits.upload}", CLOSE)
    fd, name = tempfile.mkstemp(prefix="driftboard-api-", suffix=".driftboard")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = await _copy(request, out, limits)
        if size == 0:
            raise ApiError(422, f"the request body is empty: send the {limits.what}")
        if declared is not None and size != declared:
            raise ApiError(400, f"the body ended after {size} of {declared} bytes: the upload was cut off")
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _copy(request: Request, out: object, limits: BodyLimits) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.total
    chunks = request.stream().__aiter__()
    size = 0
    try:
        while True:
            wait = min(limits.idle, deadline - loop.time())
            try:
                if wait <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(chunks.__anext__(), wait)
            except StopAsyncIteration:
                return size
            except TimeoutError:
                raise ApiError(408, f"the body was not sent in time (nothing for {limits.idle:g} s, or not all "
                                    f"within {limits.total:g} s): send it again", CLOSE) from None
            except ClientDisconnect:
                raise ApiError(400, f"the client disconnected before the whole {limits.what} was sent", CLOSE) from None
            size += len(chunk)
            if size > limits.max_bytes:
                raise ApiError(413, f"the {limits.what} is over the {fmt_bytes(limits.max_bytes)} limit of {limits.upload}",
                               CLOSE)
            out.write(chunk)  # type: ignore[attr-defined]
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]


def _declared_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not text.strip().isdigit():
        raise ApiError(400, "Content-Length is not a number", CLOSE)
    return int(text)
