"""Memory of a locked `driftboard serve` under anonymous uploads (24 × 60 MiB to Streamlit's upload endpoint).

Before the upload guard these were kept in memory (881 → 2,321 MiB measured by
the security review); now each is refused (403) from its request line.

    .venv/bin/python benchmarks/bench_upload_memory.py
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from driftboard.core.processes import driftboard_command
from driftboard.dashboard.auth import hash_token

UPLOADS, MIB = 24, 60


def rss_mib(pid: int) -> float:
    group = subprocess.run(["pgrep", "-g", str(os.getpgid(pid))], capture_output=True, text=True).stdout.split()
    total = 0
    for p in {str(pid), *group}:
        with contextlib.suppress(OSError, StopIteration):  # a helper process may end meanwhile
            total += next(int(line.split()[1]) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                          if line.startswith("VmRSS:"))
    return total / 1024


def upload(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("PUT", f"/_stcore/upload_file/{uuid.uuid4()}/f", skip_accept_encoding=True)
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(MIB * 2**20))
    conn.endheaders()
    chunk = b"\0" * 2**20
    try:
        for _ in range(MIB):
            conn.send(chunk)
    except (TimeoutError, BrokenPipeError, ConnectionResetError):
        pass
    status = conn.getresponse().status
    conn.close()
    return status


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        auth = Path(tmp) / "auth.toml"
        auth.write_text(f'mode = "tokens"\n[tokens.ci]\nrole = "uploader"\nhash = "{hash_token("t0ken-ci-1234")}"\n')
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(driftboard_command("serve", "--db", f"{tmp}/m.sqlite", "--port", str(port),
                                                   "--auth", str(auth)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.25)
            time.sleep(1)
            before = rss_mib(proc.pid)
            start = time.perf_counter()
            statuses = [upload(port) for _ in range(UPLOADS)]
            seconds = time.perf_counter() - start
            time.sleep(2)
            after = rss_mib(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    print(f"{UPLOADS} anonymous uploads of {MIB} MiB: statuses {sorted(set(statuses))}, {seconds:.2f} s; "
          f"server RSS {before:.0f} MiB before, {after:.0f} MiB after (+{after - before:.0f} MiB)")
    sys.exit(0 if set(statuses) == {403} and after - before < 50 else 1)


if __name__ == "__main__":
    main()
