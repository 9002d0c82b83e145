"""The team server's JSON API under ``/api/v1/``, served by ``driftboard serve`` beside the dashboard.

``api_routes()`` is what ``dashboard/served.py`` hands to ``st.App``: one process,
one port, the same guards (Host allow-list) in front. Every route is thin: it
checks the caller's bearer token against the dashboard's access file
(``access``), reads a bundle body within the push limits (``body``) and calls
the library (``Store``, ``db.push.push_files``, ``db.documents``,
``core.compare``). Errors are ``{"error": "<one line>"}`` (``responses``).
``openapi.json`` describes every route; a test keeps the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

PREFIX = "/api/v1"


def api_routes() -> list[BaseRoute]:
    """The API's Starlette routes (imported lazily: ``served.py`` is the only caller)."""
    from driftboard.dashboard.api.routes import ROUTES

    return list(ROUTES)
