"""Fingerprint speed: whole process against collect_env, and the collectors alone.

Targets (issue 2, section 5), timed in the same run on this machine:
  (a) `driftboard fingerprint --json`, whole process, no slower than
  (b) `python -m torch.utils.collect_env`, whole process (both pay the torch import);
  (c) `collect_fingerprint()` in-process after torch is imported: <= 100 ms.
(a) and (b) alternate run by run so that load from other processes hits both alike.
Run: .venv/bin/python benchmarks/bench_fingerprint.py [--repeats 7] [--calls 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import median, table, time_call, time_process  # noqa: E402

DRIFTBOARD = str(Path(sys.executable).with_name("driftboard"))
TARGET_COLLECT_S = 0.100


def _spread(times: list[float], scale: float = 1.0, unit: str = "s", digits: int = 2) -> str:
    return f"min {min(times) * scale:.{digits}f} / max {max(times) * scale:.{digits}f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="whole-process runs of each command")
    parser.add_argument("--calls", type=int, default=20, help="in-process collect_fingerprint() calls")
    args = parser.parse_args()

    ours, theirs = [], []
    for _ in range(args.repeats):
        ours += time_process([DRIFTBOARD, "fingerprint", "--json"], 1)
        theirs += time_process([sys.executable, "-m", "torch.utils.collect_env"], 1)

    import torch  # noqa: F401 - (c) is measured with torch already imported

    from driftboard.core.fingerprint import collect_fingerprint

    start = time.perf_counter()
    collect_fingerprint()
    first = time.perf_counter() - start
    calls = time_call(collect_fingerprint, args.calls)

    a, b, c = median(ours), median(theirs), median(calls)
    rows = [
        ("(a) driftboard fingerprint --json", f"{a:.2f} s", _spread(ours), "<= (b)"),
        ("(b) python -m torch.utils.collect_env", f"{b:.2f} s", _spread(theirs), ""),
        ("ratio a/b", f"{a / b:.2f}", "", "<= 1.00"),
        (
            "(c) collect_fingerprint(), torch imported",
            f"{c * 1e3:.1f} ms",
            _spread(calls, 1e3, "ms", 1),
            f"<= {TARGET_COLLECT_S * 1e3:.0f} ms",
        ),
        ("    its first call in the process", f"{first * 1e3:.1f} ms", "", ""),
    ]
    print(f"{args.repeats} whole-process runs each (alternating), {args.calls} in-process calls; medians")
    print(table(rows, ("measure", "median", "spread", "target")))
    ok = a <= b and c <= TARGET_COLLECT_S
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
