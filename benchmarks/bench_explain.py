"""`driftboard explain` speed: the default suite on CPU, a candidate captured with oneDNN off, whole process.

Target: <= 60 s (issue 14) on the 2-core CPU machine. Only the differing cases re-run, every setting in a fresh
process that runs all of them once. The two captures are set up first and not timed.
Run: .venv/bin/python benchmarks/bench_explain.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import median, table  # noqa: E402

from driftboard.core.variant_process import capture_variant  # noqa: E402

DRIFTBOARD = str(Path(sys.executable).with_name("driftboard"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times, found = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"ATEN_CPU_CAPABILITY": None}
        baseline = capture_variant("default", Path(tmp), env=env)
        candidate = capture_variant("onednn-off", Path(tmp), env=env)
        for _ in range(args.repeats):
            start = time.perf_counter()
            done = subprocess.run([DRIFTBOARD, "explain", str(baseline), str(candidate), "--this-machine", "baseline",
                                   "--db", f"sqlite:///{Path(tmp) / 'absent.sqlite'}", "--json"],
                                  check=True, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            found = json.loads(done.stdout)
    ran = sum(t["status"] == "done" for t in found["trials"])
    rows = [
        ("explain, whole process", f"{median(times):.1f} s", f"min {min(times):.1f} / max {max(times):.1f}", "<= 60 s"),
        ("  differing cases re-run", str(len(found["differing"])), "", ""),
        ("  settings run (fresh processes)", str(ran), f"of {len(found['trials'])}", ""),
        ("  finding", found["verdict"], found["summary"][:90], ""),
    ]
    print(table(rows, ("measure", "median", "detail", "target")))
    ok = median(times) <= 60 and found["verdict"] == "explained"
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
