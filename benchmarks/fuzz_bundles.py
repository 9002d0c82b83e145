"""The long fuzzing campaign on the bundle reader (and, when the database tests exist, the upload path).

CI runs each fuzz property with a few hundred examples; this runs them with
many more and prints how many inputs were tried. Any exception other than a
named BundleError fails the run and hypothesis prints the smallest input.
Run: .venv/bin/python benchmarks/fuzz_bundles.py [--examples N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS = re.compile(r"- (\d+) passing, (\d+) failing")
FUZZ_TESTS = ["tests/test_fuzz_bundle.py", "tests/test_fuzz_upload.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=5000, help="examples per fuzz property")
    args = parser.parse_args()
    tests = [t for t in FUZZ_TESTS if (ROOT / t).exists()]
    env = {**os.environ, "DRIFTBOARD_FUZZ_EXAMPLES": str(args.examples)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--hypothesis-show-statistics", *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    tried = sum(int(passing) + int(failing) for passing, failing in STATS.findall(done.stdout))
    print(done.stdout[-3000:] if done.returncode else done.stdout.splitlines()[-1])
    print(f"fuzz campaign: {tried} inputs tried across {', '.join(tests)} in {time.perf_counter() - start:.0f} s; "
          f"{'no crash' if done.returncode == 0 else 'FAILED'}")
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
