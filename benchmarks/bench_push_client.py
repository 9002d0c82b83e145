"""A pushing client's whole process: ``driftboard push --server URL bundle``, start to exit (target <= 0.5 s).

The server is a minimal HTTP server in this process that reads the body and
answers 201 at once, so the figure is the client's own cost: starting
Python, importing the CLI, reading the token, streaming a default-suite-sized
bundle (``tests/db_factory.make_bundle``, about 1.2 MB) and printing the
line. The server's own cost is ``bench_api.py``'s. The script also checks
that the pushing process never imports torch, numpy, SQLAlchemy or Streamlit.

    .venv/bin/python benchmarks/bench_push_client.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from _timing import median, time_process  # noqa: E402
from db_factory import write_bundle_file  # noqa: E402

from driftboard.core.processes import driftboard_command  # noqa: E402

TARGET = 0.5  # s, the whole client process
HEAVY = ("torch", "numpy", "sqlalchemy", "streamlit")


class _Accept(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"run_id": "m0001-r00000-default", "stored": True, "verdict": "identical",
                           "golden": "m0000-r00000-default"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    server = HTTPServer(("127.0.0.1", 0), _Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTBOARD_")} | {"DRIFTBOARD_TOKEN": "bench"}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle_file(Path(tmp), 1, 0)
        command = [*driftboard_command(), "push", str(bundle), "--server", url]
        time_process(command, 2, env)  # warm the file cache
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        times = time_process(command, args.repeats, env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / args.repeats
        probe = ("import sys\nfrom driftboard.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
                 f"    pass\nprint('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
        out = subprocess.run([sys.executable, "-P", "-c", probe, "push", str(bundle), "--server", url],
                             env=env, capture_output=True, text=True, check=True).stdout
        loaded = out.rsplit("heavy:", 1)[1].strip()
        size = bundle.stat().st_size
    server.shutdown()
    spent = median(times)
    print(f"bench_push_client: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, bundle {size:,} bytes")
    print(f"driftboard push --server, whole process, median of {args.repeats}: {spent * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; target <= {TARGET * 1000:.0f} ms: "
          f"{'met' if spent <= TARGET else 'MISSED'})")
    print(f"its CPU time (user + system), mean of {args.repeats}: {cpu * 1000:.0f} ms (what the machine's load "
          "does not change)")
    print(f"heavy modules imported by the pushing process: {loaded or 'none'}")


if __name__ == "__main__":
    main()
