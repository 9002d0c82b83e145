"""The per-module chart and layer table of an own model, for models of 200 to 20,000 module calls.

    .venv/bin/python benchmarks/bench_module_chart.py [--repeats 5]

Two statistics-mode runs of a chain of Linear+Tanh calls (``tests/own_factory``), the candidate moved
from the middle call on, compared by ``compare_runs``; then, medians: ``charts.module_divergence``
(build), its Plotly JSON (size and time: what Streamlit and the HTML report ship) and
``tables.module_frame``. No target: the figures say what a model at the recording budget
(20,000 calls) costs the Compare page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

import numpy as np  # noqa: E402
from _timing import median, table, time_call  # noqa: E402
from own_factory import chain, own_case  # noqa: E402
from runs_factory import make_run  # noqa: E402

from driftboard.core.compare import compare_runs  # noqa: E402
from driftboard.core.run import MemoryArrays  # noqa: E402
from driftboard.dashboard import charts, tables  # noqa: E402

SIZES = (200, 5000, 20000)


def own_comparison(calls: int):  # type: ignore[no-untyped-def]
    x = np.random.RandomState(0).uniform(-1, 1, (2, 8)).astype(np.float32)
    arrays = MemoryArrays()
    before, after = chain(x, calls), chain(x, calls, bump={calls // 2: 1e-3})
    base = make_run([own_case(arrays, "m", [("", before[-1][3])], before)], run_id="base")
    cand = make_run([own_case(arrays, "m", [("", after[-1][3])], after)], run_id="cand")
    return compare_runs(base, arrays, cand, arrays).cases[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    charts.module_divergence(own_comparison(10).modules)  # warm Plotly's validators
    rows = []
    for n in SIZES:
        case = own_comparison(n)
        first = case.first_divergent_module
        fig = charts.module_divergence(case.modules, first)
        build = median(time_call(lambda: charts.module_divergence(case.modules, first), args.repeats))  # noqa: B023
        to_json = median(time_call(fig.to_json, args.repeats))
        frame = median(time_call(lambda: tables.module_frame(case.modules, first), args.repeats))  # noqa: B023
        rows.append((f"{n:,}", f"{build * 1000:.0f} ms", f"{to_json * 1000:.0f} ms",
                     f"{len(fig.to_json()) / 1e6:.2f} MB", f"{len(fig.data)} ({type(fig.data[0]).__name__})",
                     f"{frame * 1000:.0f} ms"))
    print(table(rows, ("module calls", "chart build", "to_json", "JSON", "traces", "layer table")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
