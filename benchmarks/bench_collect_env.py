"""collect_env import speed and coverage over the real reports in ../shared/fixtures/collect_env/.

Target (issue 7): parsing a report <= 5 ms, median over the fixture set.
Also prints the share of report lines mapped to fingerprint keys (the README's figure).
Run: .venv/bin/python benchmarks/bench_collect_env.py [--repeats N] [--per-file]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _timing import median, table, time_call  # noqa: E402

from driftboard.core.collect_env import parse_report  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "collect_env"
TARGET_MS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=300, help="parses of each report (default 300)")
    parser.add_argument("--per-file", action="store_true", help="also print one row per report")
    args = parser.parse_args()
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("*.txt"))}
    if not texts:
        sys.exit(f"no reports in {FIXTURES}")

    reports = {name: parse_report(text) for name, text in texts.items()}  # warm up, and the coverage figures
    samples = {name: time_call(lambda t=text: parse_report(t), args.repeats) for name, text in texts.items()}
    every = [s for times in samples.values() for s in times]
    per_report = {name: median(times) for name, times in samples.items()}
    slowest = max(per_report, key=per_report.__getitem__)

    mapped = sum(r.mapped_lines for r in reports.values())
    total = sum(r.total_lines for r in reports.values())
    unknown = sum(len(r.unknown_lines) for r in reports.values())
    if args.per_file:
        rows = [
            (name, f"{per_report[name] * 1e3:.3f} ms", f"{r.mapped_lines}/{r.total_lines}", len(r.unknown_lines))
            for name, r in reports.items()
        ]
        print(table(rows, ("report", "median", "mapped lines", "unknown")), end="\n\n")

    ms = median(every) * 1e3
    rows = [
        ("parse, median over all reports", f"{ms:.3f} ms", f"<= {TARGET_MS:g} ms"),
        ("slowest report, its median", f"{per_report[slowest] * 1e3:.3f} ms ({slowest})", ""),
        ("slowest single parse", f"{max(every) * 1e3:.3f} ms", ""),
        ("lines mapped to fingerprint keys", f"{mapped}/{total} ({mapped / total:.1%})", ""),
        ("lines recognised (mapped or kept as info)", f"{total - unknown}/{total} ({1 - unknown / total:.1%})", ""),
    ]
    print(f"{len(texts)} reports x {args.repeats} parses each")
    print(table(rows, ("measure", "value", "target")))
    ok = ms <= TARGET_MS
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
