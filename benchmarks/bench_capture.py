"""Capture speed and bundle size: `driftboard capture` of the default suite on CPU, whole process.

Target (issue 2): <= 10 s whole process, bundle <= 2 MB.
Run: .venv/bin/python benchmarks/bench_capture.py [--repeats N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import median, table, time_process  # noqa: E402

DRIFTBOARD = str(Path(sys.executable).with_name("driftboard"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.driftboard"
        times = time_process([DRIFTBOARD, "capture", "--quiet", "-o", str(out)], args.repeats)
        size = out.stat().st_size
    rows = [
        ("capture, whole process", f"{median(times):.2f} s", f"min {min(times):.2f} / max {max(times):.2f}", "<= 10 s"),
        ("bundle size", f"{size / 1e6:.2f} MB", "", "<= 2 MB"),
    ]
    print(table(rows, ("measure", "median", "spread", "target")))
    ok = median(times) <= 10 and size <= 2e6
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
