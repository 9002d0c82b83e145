"""Capture speed and bundle size: `driftboard capture` of the default suite on CPU, whole process.

Targets: <= 10 s whole process, bundle <= 2 MB (issue 2); the float64 truth costs <= +50 % of the capture
without it (issue 14: the same capture with --no-truth, runs interleaved so both see the same machine load).
Run: .venv/bin/python benchmarks/bench_capture.py [--repeats N] [--case CASE_ID ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import median, table, time_process  # noqa: E402

from driftboard.core.bundle import read_bundle  # noqa: E402

DRIFTBOARD = str(Path(sys.executable).with_name("driftboard"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case", dest="cases", action="append", default=[],
                        help="only this case (repeatable), e.g. the forward cases without the training ones")
    args = parser.parse_args()
    only = [f"--case={c}" for c in args.cases]
    times, plain, shares = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.driftboard"
        for _ in range(args.repeats):  # interleaved: with and without the truth under the same load
            times += time_process([DRIFTBOARD, "capture", "--quiet", *only, "-o", str(out)], 1)
            plain += time_process([DRIFTBOARD, "capture", "--quiet", *only, "--no-truth", "-o", str(Path(tmp) / "p")],
                                  1)
            truth_seconds = sum(c.truth.seconds for c in read_bundle(out).run.cases if c.truth is not None)
            shares.append(truth_seconds / (times[-1] - truth_seconds))  # within one process: robust to load
        size = out.stat().st_size
    cost = median(times) / median(plain) - 1
    rows = [
        ("capture, whole process", f"{median(times):.2f} s", f"min {min(times):.2f} / max {max(times):.2f}", "<= 10 s"),
        ("  the same with --no-truth", f"{median(plain):.2f} s", f"min {min(plain):.2f} / max {max(plain):.2f}", ""),
        ("  float64 truth, added", f"{cost:+.0%}", "whole processes, with against --no-truth", "<= +50 %"),
        ("  float64 passes, added", f"{median(shares):+.0%}", f"of the rest of the same process; min {min(shares):+.0%} "
         f"/ max {max(shares):+.0%}", "<= +50 %"),
        ("bundle size", f"{size / 1e6:.2f} MB", "", "<= 2 MB"),
    ]
    print(table(rows, ("measure", "median", "spread", "target")))
    ok = median(times) <= 10 and size <= 2e6 and cost <= 0.5 and median(shares) <= 0.5
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
