"""The ASGI app `driftboard serve` runs: the dashboard (``app.py``) behind driftboard's guards.

``streamlit run`` finds the ``st.App`` assigned to ``app`` here and serves it
with uvicorn, with the same ``--server.*`` flags as a plain script. The
middleware (``dashboard.guards``) runs before Streamlit's own on every request
and WebSocket: the Host allow-list ``serve`` hands over in
``$DRIFTBOARD_ALLOWED_HOSTS``, and the refusal of Streamlit's "Clear cache"
message, and the refusal of file uploads from sessions whose role may not upload.
The team API (``dashboard.api``: ``/api/v1/...``) is served by the same app,
behind the same guards. Streamlit has bound the listening socket when uvicorn
imports this file; ``dashboard.nodelay`` turns Nagle's algorithm off on it, so
no answer waits 40 ms for the client's delayed ACK.
"""

import streamlit as st
from starlette.middleware import Middleware

from driftboard.dashboard.api import api_routes
from driftboard.dashboard.guards import ClearCacheGuard, HostGuard, UploadGuard
from driftboard.dashboard.nodelay import send_small_writes_at_once

send_small_writes_at_once(int(st.get_option("server.port")))

app = st.App("app.py", routes=api_routes(),
             middleware=[Middleware(HostGuard), Middleware(UploadGuard), Middleware(ClearCacheGuard)])
