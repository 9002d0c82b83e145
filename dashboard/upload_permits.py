"""Which browser sessions may send files: the app says so on every run, the upload guard asks.

Streamlit's upload endpoint (``/_stcore/upload_file/{session_id}/{file_id}``)
takes a file from any session, even one the page never offers an uploader,
and keeps it in memory. The app records per session whether its role may
upload (``grant``); ``guards.UploadGuard`` refuses the request before a byte
of its body is read when the session has no such grant. The record is
in-process (the guard and the app run in one server) and bounded: the oldest
sessions are forgotten first, and a forgotten session is refused until its
next rerun grants it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_SESSIONS = 10_000

_lock = threading.Lock()
_granted: OrderedDict[str, bool] = OrderedDict()


def grant(session_id: str, may_upload: bool) -> None:
    """Record whether ``session_id`` may upload (called by the app on every run)."""
    with _lock:
        _granted[session_id] = may_upload
        _granted.move_to_end(session_id)
        while len(_granted) > MAX_SESSIONS:
            _granted.popitem(last=False)


def may_upload(session_id: str) -> bool:
    with _lock:
        return _granted.get(session_id, False)
