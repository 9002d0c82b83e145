"""The ASGI app `driftboard serve` runs: the dashboard (``app.py``) behind driftboard's guards.

``streamlit run`` finds the ``st.App`` assigned to ``app`` here and serves it
with uvicorn, with the same ``--server.*`` flags as a plain script. The
middleware (``dashboard.guards``) runs before Streamlit's own on every request
and WebSocket: the Host allow-list ``serve`` hands over in
``$DRIFTBOARD_ALLOWED_HOSTS``, and the refusal of Streamlit's "Clear cache"
message, and the refusal of file uploads from sessions whose role may not upload.
"""

import streamlit as st
from starlette.middleware import Middleware

from driftboard.dashboard.guards import ClearCacheGuard, HostGuard, UploadGuard

app = st.App("app.py", middleware=[Middleware(HostGuard), Middleware(UploadGuard), Middleware(ClearCacheGuard)])
