"""The API's answers: JSON documents, and ``{"error": "<one line>"}`` for every refusal.

``ApiError`` carries a status and one line; route handlers raise it (or a
``DriftboardError``, mapped by ``error_for``) and ``guarded`` turns it into
the response, so no handler builds an error body itself.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftboard.core.errors import (
    BundleError,
    DriftboardError,
    NotFoundError,
    PolicyError,
    SchemaOutOfDateError,
)
from driftboard.dashboard.format import safe_text

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 600


class ApiError(Exception):
    """A refusal: its HTTP status, one line for the caller, and headers (``WWW-Authenticate``, ``Retry-After``)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def json_response(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"error": one_line(message)}, status, {"Cache-Control": "no-store", **(headers or {})})


def one_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return safe_text(lines[0] if lines else "error", MAX_ERROR_CHARS)


def error_for(exc: DriftboardError) -> ApiError:
    """The status of a library error: unknown run 404, bad policy 400, bad bundle 422, database down 503."""
    from driftboard.db.session import is_unavailable

    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc))
    if isinstance(exc, PolicyError):
        return ApiError(400, str(exc))
    if isinstance(exc, BundleError):
        return ApiError(422, str(exc))
    if isinstance(exc, SchemaOutOfDateError) or is_unavailable(exc):
        return ApiError(503, str(exc), {"Retry-After": "5"})
    return ApiError(400, str(exc))


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler) -> Handler:
    """``handler`` with every refusal as a one-line JSON error, and a bug as a 500 whose traceback is logged."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except DriftboardError as exc:
            found = error_for(exc)
            return error_response(found.status, found.message, found.headers)
        except Exception as exc:
            log.exception("api: unexpected error on %s %s", request.method, request.url.path)
            return error_response(500, f"unexpected error (a driftboard bug): {type(exc).__name__}")

    return run
