"""What the training cases (suite version 2) add to the default CPU capture: target <= 5 s (issue 15).

The default capture against the same capture of the forward cases only, whole
processes, interleaved so both see the same machine load; the difference of the
medians is what a user waits for. Beside it, the training runs' own time inside
each default capture (repeats × the recorded seconds per case), which does not
move with the load of other processes as much.
Run: .venv/bin/python benchmarks/bench_training.py [--repeats N] [--steps N]
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
TARGET = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    from driftboard.core import suite  # imports torch: only to list the forward cases

    forward = [f"--case={c.case_id}" for c in suite.CASES]
    full, plain, inside = [], [], []
    with tempfile.TemporaryDirectory() as tmp:  # an empty directory: no cases file of the team's own is found
        out = Path(tmp) / "run.driftboard"
        common = ["capture", "--quiet", "--suite", "reference", "--device", "cpu", "--steps", str(args.steps)]
        for _ in range(args.repeats):
            full += time_process([DRIFTBOARD, *common, "-o", str(out)], 1)
            plain += time_process([DRIFTBOARD, *common, *forward, "-o", str(Path(tmp) / "forward")], 1)
            run = read_bundle(out).run
            inside.append(sum(c.seconds * c.repeats for c in run.cases if c.training is not None))
            cases = sum(c.training is not None for c in run.cases)
    added = median(full) - median(plain)
    rows = [
        ("default capture, whole process", f"{median(full):.2f} s", f"min {min(full):.2f} / max {max(full):.2f}", ""),
        ("  forward cases only", f"{median(plain):.2f} s", f"min {min(plain):.2f} / max {max(plain):.2f}", ""),
        ("  training cases, added", f"{added:+.2f} s", f"{cases} cases × {args.steps} steps, difference of medians",
         f"<= {TARGET:g} s"),
        ("  training runs inside the capture", f"{median(inside):.2f} s",
         f"min {min(inside):.2f} / max {max(inside):.2f} (repeats × recorded seconds)", ""),
    ]
    print(table(rows, ("measure", "median", "spread", "target")))
    ok = added <= TARGET
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
