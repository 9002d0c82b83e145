"""``driftboard explain``: re-run the differing cases on this machine under each numerics knob.

Each setting is one ``driftboard capture`` child process (``core/variant_process``,
the machinery ``capture --sweep`` uses) that runs every differing case once,
two processes at a time: the reference suite's, and the team's own models'
that this machine declares (``own.py``). This machine's own recorded settings,
which must reproduce its own outputs, and each knob toggled alone; then, unless one knob
already reproduces every case bit for bit, pairs of the knobs that moved
something. Each re-run is matched with the OTHER run's recorded outputs. A
budget bounds the wall time: a setting that does not fit is not started, and a
running one is stopped at the deadline.

This module starts processes and reads bundles; the children import torch.
It does too only to find the own cases this machine declares, when one of them
differs (``own.py`` imports the cases file).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from driftboard.core.bundle import Bundle, read_bundle
from driftboard.core.compare.policy import Policy
from driftboard.core.compare.runs import compare_runs
from driftboard.core.errors import DriftboardError
from driftboard.core.explain.conclude import conclude
from driftboard.core.explain.knobs import Plan, Setting, Trial, plan
from driftboard.core.explain.match import built_digests, match_cases, output_digests
from driftboard.core.explain.own import OwnCases, OwnPlan, plan_own
from driftboard.core.explain.result import CaseKey, Explanation, KnobStatus, TrialResult
from driftboard.core.run import ArraySource, Run
from driftboard.core.variant_process import VariantTimeout, capture_variant

SIDES = ("baseline", "candidate")
WORKERS = max(1, min(2, os.cpu_count() or 1))  # child processes at once: most of each is torch's import
# progress(done, total, label): called before each setting starts and once at the end
Progress = Callable[[int, int, str], None]


def check_pair(baseline: Run, candidate: Run) -> None:
    """One-line errors for a pair that cannot be explained by re-running cases."""
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if run.imported:
            raise DriftboardError(f"the {side} {run.run_id} is an environment imported from a collect_env report: "
                                  "it has no outputs to reproduce")
    if (baseline.suite_id, baseline.suite_version) != (candidate.suite_id, candidate.suite_version):
        raise DriftboardError(f"the runs are of different suites (baseline {baseline.suite_id} v{baseline.suite_version}, "
                              f"candidate {candidate.suite_id} v{candidate.suite_version}): no case can be matched")


def this_machine(baseline: Run, candidate: Run) -> str:
    """Which run this machine recorded, by the machine id in its fingerprint (the baseline when both)."""
    from driftboard.core.fingerprint.system import machine_id

    here = machine_id()
    mine = [side for side, run in zip(SIDES, (baseline, candidate), strict=True) if _machine_id(run) == here]
    if not mine:
        raise DriftboardError("neither run was recorded on this machine (machine ids differ): pass --this-machine "
                              "baseline or candidate to re-run as that run's machine")
    return mine[0]


def _machine_id(run: Run) -> object:
    identity = run.fingerprint.get("identity") if isinstance(run.fingerprint, dict) else None
    return identity.get("machine_id") if isinstance(identity, dict) else None


def explain_runs(baseline: Run, baseline_arrays: ArraySource, candidate: Run, candidate_arrays: ArraySource, *,
                 this_side: str, policy: Policy | None = None, budget: float | None = None,
                 progress: Progress | None = None, workdir: Path | None = None,
                 own: OwnCases = OwnCases()) -> Explanation:
    """Re-run the cases that differ between the two runs on this machine, knob by knob, and explain.

    ``own``: how this machine declares the team's own cases (as ``capture`` takes them).
    """
    if this_side not in SIDES:
        raise DriftboardError(f"this machine must be baseline or candidate, not {this_side!r}")
    check_pair(baseline, candidate)
    start = time.monotonic()
    comparison = compare_runs(baseline, baseline_arrays, candidate, candidate_arrays, policy)
    changed = [c for c in comparison.cases if c.verdict.changed]
    sides = {"baseline": (baseline, baseline_arrays), "candidate": (candidate, candidate_arrays)}
    this, this_arrays = sides[this_side]
    other, other_arrays = sides["candidate" if this_side == "baseline" else "baseline"]
    recorded = {c.key: c for c in this.cases}
    own_plan = plan_own([recorded[c.key] for c in changed if c.kind != "suite" and c.key in recorded], own)
    differing = [c.key for c in changed if c.kind == "suite" or c.key in own_plan.keys]
    the_plan = plan(this, other)
    if not differing:
        knobs = [KnobStatus(k.knob, "not_applicable" if k.not_applicable else "not_needed",
                            k.not_applicable or "nothing differs") for k in the_plan.knobs]
        return conclude(comparison, this_side, differing, [], knobs, skipped=own_plan.skipped, budget=budget,
                        seconds=time.monotonic() - start)
    args = _child_args(this, [k for k in differing if k not in own_plan.keys], own_plan)
    runner = _Runner(differing, other, other_arrays, built_digests(this, differing), comparison.policy, budget, start,
                     progress, workdir, args)
    try:
        return _explain(runner, the_plan, comparison, this_side, this, this_arrays, differing, own_plan, budget, start)
    finally:
        runner.close()


def _child_args(this: Run, suite_keys: Sequence[CaseKey], own: OwnPlan) -> list[str]:
    """What each child captures: the differing cases only, once each, no float64 truth.

    A re-run is evidence, not a bundle worth keeping. Own cases record no
    module calls (their outputs come from the plain forward either way), and
    training cases follow the recipe this machine recorded (steps, seed).
    """
    which = "all" if suite_keys and own.keys else "own" if own.keys else "reference"
    case_ids = [*dict.fromkeys(k[0] for k in suite_keys), *own.names]
    devices = dict.fromkeys(k[1] for k in (*suite_keys, *own.keys))
    args = ["--repeats", "1", "--suite", which, "--no-truth", "--label", "driftboard explain",
            *(f"--case={c}" for c in case_ids), *(f"--device={d}" for d in devices)]
    if own.keys:
        args += ["--layers", "none", *own.args]
    settings = this.settings or {}
    training, seeding = settings.get("training"), settings.get("seeding")
    steps = training.get("steps") if isinstance(training, dict) else None
    if isinstance(steps, int) and not isinstance(steps, bool):
        args += ["--steps", str(steps)]
    seed = seeding.get("seed", 0) if isinstance(seeding, dict) else 0
    if seed is None:
        args.append("--no-seed")
    elif isinstance(seed, int) and not isinstance(seed, bool):
        args += ["--seed", str(seed)]
    return args


def _explain(runner: _Runner, the_plan: Plan, comparison: object, this_side: str, this: Run, this_arrays: ArraySource,
             differing: list[CaseKey], own: OwnPlan, budget: float | None, start: float) -> Explanation:
    singles = the_plan.singles()
    runner.total = 1 + len(singles)
    # The unmodified re-run and every single knob at once (two processes at a time): the unmodified one
    # almost always reproduces, and when it does not the singles are dropped unread.
    first = runner.run_all([the_plan.unmodified, *singles])
    unmodified_run = first[0]
    not_reproduced: list[CaseKey] = []
    if unmodified_run.bundle is not None:
        again = match_cases(differing, this, this_arrays, unmodified_run.bundle.run, unmodified_run.bundle.arrays,
                            runner.policy, here=runner.here)
        not_reproduced = [m.key for m in again if m.match != "bitwise"]
    unmodified = runner.result(unmodified_run, None)
    trials = [unmodified]
    if unmodified_run.bundle is not None and not not_reproduced:
        reference = output_digests(unmodified_run.bundle.run, differing)
        single_results = [runner.result(done, reference) for done in first[1:]]
        trials += single_results
        explained = any(t.count("bitwise") == len(differing) for t in single_results)
        moved = [t.settings[0] for t in single_results if t.status == "done" and t.moved]
        pairs = [] if explained else the_plan.pairs(moved)  # a single knob that explains all needs no pair
        runner.total += len(pairs)
        trials += [runner.result(done, reference) for done in runner.run_all(pairs)]
    else:
        why = "the budget ran out" if unmodified.status == "not_run" else "the unmodified re-run did not reproduce"
        trials += [TrialResult(t.variant, t.settings, "not_run", error=why) for t in singles]
    runner.finish()
    knobs = _knob_statuses(the_plan, trials)
    return conclude(comparison, this_side, differing, trials, knobs, not_reproduced=not_reproduced,  # type: ignore[arg-type]
                    skipped=own.skipped, budget=budget, seconds=time.monotonic() - start, own=own.sources)


def _knob_statuses(the_plan: Plan, trials: Sequence[TrialResult]) -> list[KnobStatus]:
    out = []
    for knob in the_plan.knobs:
        if knob.not_applicable:
            out.append(KnobStatus(knob.knob, "not_applicable", knob.not_applicable))
            continue
        mine = [t for t in trials if t.knobs == (knob.knob,)]
        if any(t.status == "not_run" and "budget" in (t.error or "") for t in mine):
            out.append(KnobStatus(knob.knob, "not_run", "the budget ran out"))
        elif any(t.status in ("done", "failed") for t in mine):
            failed = [t.error for t in mine if t.status == "failed"]
            out.append(KnobStatus(knob.knob, "tested", "; ".join(e for e in failed if e)))
        else:
            out.append(KnobStatus(knob.knob, "not_run", "the unmodified re-run did not reproduce this machine's run"))
    return out


@dataclass
class _Ran:
    """One setting's child process: its bundle, or why there is none."""

    trial: Trial
    status: str = "not_run"
    seconds: float = 0.0
    bundle: Bundle | None = None
    error: str | None = None


class _Runner:
    """Runs settings in fresh processes, ``WORKERS`` at a time, inside the budget, reporting progress."""

    def __init__(self, differing: list[CaseKey], other: Run, other_arrays: ArraySource,
                 here: dict[CaseKey, tuple[str, str]], policy: Policy, budget: float | None, start: float,
                 progress: Progress | None, workdir: Path | None, args: list[str]) -> None:
        self.differing, self.other, self.other_arrays, self.policy = differing, other, other_arrays, policy
        self.here, self.args = here, args  # this machine's recorded weights and inputs; the children's options
        self.deadline = None if budget is None else start + budget
        self.progress, self.done, self.total = progress, 0, 0
        self.durations: list[float] = []
        self.lock = threading.Lock()
        self.directory = Path(tempfile.mkdtemp(prefix="driftboard-explain-", dir=workdir))

    def run_all(self, trials: Sequence[Trial]) -> list[_Ran]:
        if not trials:
            return []
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(trials))) as pool:
            return list(pool.map(self._run, trials))

    def _run(self, trial: Trial) -> _Ran:
        with self.lock:
            if self.progress:
                self.progress(self.done, self.total, trial.label)
            expected = sorted(self.durations)[len(self.durations) // 2] if self.durations else 0.0
        timeout = None
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0 or left < expected:
                return self._count(_Ran(trial, error="the budget ran out"))
            timeout = left
        began = time.monotonic()
        try:
            path = capture_variant(trial.variant, self.directory, self.args,
                                   env={"ATEN_CPU_CAPABILITY": None}, timeout=timeout)
            bundle = read_bundle(path)
        except VariantTimeout:
            return self._count(_Ran(trial, "not_run", time.monotonic() - began, error="stopped at the budget"))
        except DriftboardError as exc:
            return self._count(_Ran(trial, "failed", time.monotonic() - began, error=str(exc)))
        seconds = time.monotonic() - began
        with self.lock:
            self.durations.append(seconds)
        return self._count(_Ran(trial, "done", seconds, bundle))

    def _count(self, ran: _Ran) -> _Ran:
        with self.lock:
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total, ran.trial.label)
        return ran

    def result(self, ran: _Ran, reference: dict[CaseKey, str | None] | None) -> TrialResult:
        """The run matched with the other run's outputs (``moved``: against ``reference``)."""
        if ran.bundle is None:
            return TrialResult(ran.trial.variant, ran.trial.settings, ran.status, ran.seconds, error=ran.error)  # type: ignore[arg-type]
        cases = match_cases(self.differing, self.other, self.other_arrays, ran.bundle.run, ran.bundle.arrays,
                            self.policy, reference, self.here)
        return TrialResult(ran.trial.variant, ran.trial.settings, "done", ran.seconds, cases)

    def finish(self) -> None:
        if self.progress:
            self.progress(self.done, max(self.total, self.done), "done")

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


__all__ = ["SIDES", "OwnCases", "Setting", "check_pair", "explain_runs", "this_machine"]
