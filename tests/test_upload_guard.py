"""Streamlit's upload endpoint refuses sessions that may not upload, before reading the body.

Anonymous uploads to a locked dashboard used to be kept in the server's memory
(24 × 60 MiB took it from 881 to 2,321 MiB). ``guards.UploadGuard`` answers 403
from the request line, so no byte of such a body is held.
"""

from __future__ import annotations

import http.client
import uuid

from test_guards import exchange, served  # noqa: F401  (the fixture: a real `driftboard serve`)

from driftboard.dashboard import upload_permits
from driftboard.dashboard.guards import UploadGuard


def _upload_scope(session_id: str, method: str = "PUT") -> dict:
    return {"type": "http", "method": method, "path": f"/_stcore/upload_file/{session_id}/file-1",
            "headers": [(b"host", b"127.0.0.1")], "client": ("203.0.113.9", 40000)}


def test_a_session_without_the_grant_is_refused_before_the_app_reads_a_byte(caplog) -> None:
    session = f"s-{uuid.uuid4()}"
    refused = exchange(UploadGuard, _upload_scope(session), [{"type": "http.request", "body": b"x" * 10}])
    assert not refused.app_called and refused.sent[0]["status"] == 403
    assert "refused a file upload from 203.0.113.9" in caplog.text
    upload_permits.grant(session, False)
    assert not exchange(UploadGuard, _upload_scope(session), [{"type": "http.request"}]).app_called
    upload_permits.grant(session, True)
    assert exchange(UploadGuard, _upload_scope(session), [{"type": "http.request"}]).app_called
    for scope in (_upload_scope("other", "OPTIONS"), {**_upload_scope("other"), "path": "/_stcore/health"}):
        assert exchange(UploadGuard, scope, [{"type": "http.request"}]).app_called


def test_the_permits_are_bounded() -> None:
    for i in range(upload_permits.MAX_SESSIONS + 5):
        upload_permits.grant(f"bulk-{i}", True)
    assert len(upload_permits._granted) == upload_permits.MAX_SESSIONS
    assert not upload_permits.may_upload("bulk-0") and upload_permits.may_upload(f"bulk-{upload_permits.MAX_SESSIONS}")


def test_a_real_server_refuses_an_anonymous_60_mib_upload_without_holding_it(served) -> None:  # noqa: F811
    chunk = b"\0" * 2**20
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
        conn.putrequest("PUT", f"/_stcore/upload_file/{uuid.uuid4()}/file-1", skip_accept_encoding=True)
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(60 * 2**20))
        conn.endheaders()
        try:
            for _ in range(8):
                conn.send(chunk)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest
        assert conn.getresponse().status == 403
        conn.close()
    assert "refused a file upload from 127.0.0.1" in served.text()
