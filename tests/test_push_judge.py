"""``db.push.push_and_judge``: a push judged from the bundle in memory, against its golden kept by content.

The verdict answered to a push must be exactly the one ``Store.verdict`` computes cold from the
database, and which golden applies must be asked afresh at every push: a golden changed, or a
golden run deleted and another pushed under its run id, counts from the next push on.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from db_factory import make_bundle, make_run
from own_factory import chain, own_case

from driftboard.core.bundle import bundle_bytes
from driftboard.db.push import push_and_judge, push_files
from driftboard.db.store import Store

GOLDEN = "m0009-r00001-default"


def with_own(machine: int, bump: float = 0.0, **options: object) -> bytes:
    """A bundle of the reference suite and one case of the team's own model (``bump``: its drift)."""
    run, arrays = make_run(machine, 1, **options)
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    modules = chain(x, 6, {3: bump} if bump else None)
    case = own_case(arrays, "encoder", [("out", modules[-1][3])], modules)
    return bundle_bytes(replace(run, cases=(*run.cases, case)), arrays)


def judged(store: Store, data: bytes) -> tuple[str, str | None, str | None]:
    push = push_and_judge(store, "body", data, uploader="ci", address="127.0.0.1")
    assert push.outcome.result is not None, push.outcome.error
    return push.outcome.status, push.verdict, push.golden


def test_a_pushed_verdict_is_the_verdict_store_verdict_computes_cold(fresh_db, tmp_path):
    golden = with_own(9)
    candidates = {"m0001-r00001-default": with_own(1),  # the same numbers
                  "m0002-r00001-default": with_own(2, drift={"linear_1024": 1}),  # a reference case drifts
                  "m0003-r00001-default": with_own(3, 0.5),  # the own model drifts
                  "m0004-r00001-default": with_own(4, error_case="linear_1024")}  # a case failed
    cold_url = f"sqlite:///{tmp_path / 'cold.sqlite'}"
    with Store(fresh_db) as store, Store(cold_url) as cold:
        for each in (store, cold):
            push_files(each, [("golden", golden)])
            each.set_golden(GOLDEN)
        answers = {run_id: judged(store, data) for run_id, data in candidates.items()}
        push_files(cold, list(candidates.items()))
        for run_id in candidates:
            expected = cold.verdict(run_id)
            kept = store.verdict(run_id)
            assert expected is not None and kept is not None and not expected.cached
            assert answers[run_id] == ("stored", expected.worst, GOLDEN)
            assert kept.cached and (kept.worst, kept.counts) == (expected.worst, expected.counts)
    assert len({verdict for _, verdict, _ in answers.values()}) == 4  # four different verdicts, all agreed


def test_a_golden_changed_between_two_pushes_is_honoured_at_once(fresh_db):
    with Store(fresh_db) as store:
        push_files(store, [("g1", make_bundle(9, 1)), ("g2", make_bundle(8, 1, drift={"linear_1024": 2}))])
        store.set_golden(GOLDEN)
        assert judged(store, make_bundle(1, 1)) == ("stored", "identical", GOLDEN)
        store.set_golden("m0008-r00001-default")
        assert judged(store, make_bundle(2, 1)) == ("stored", "within tolerance", "m0008-r00001-default")
        # The run pushed before the change, pushed again: judged against the golden that applies now.
        assert judged(store, make_bundle(1, 1)) == ("already present", "within tolerance", "m0008-r00001-default")


def test_a_golden_run_replaced_under_the_same_run_id_is_judged_by_its_new_content(fresh_db):
    with Store(fresh_db) as store:
        push_files(store, [("g", make_bundle(9, 1)), ("other", make_bundle(8, 1))])
        store.set_golden(GOLDEN)
        assert judged(store, make_bundle(1, 1)) == ("stored", "identical", GOLDEN)  # the golden is kept now
        store.set_golden("m0008-r00001-default")
        store.delete_run(GOLDEN)
        push_files(store, [("g again", make_bundle(9, 1, drift={"linear_1024": 2}))])  # same run id, new numbers
        store.set_golden(GOLDEN)
        assert judged(store, make_bundle(2, 1)) == ("stored", "within tolerance", GOLDEN)


def test_a_run_without_a_golden_or_refused_has_no_verdict(fresh_db):
    with Store(fresh_db) as store:
        assert judged(store, make_bundle(1, 1)) == ("stored", None, None)
        bad = push_and_judge(store, "body", b"PK\x03\x04 not a zip")
        assert bad.outcome.status == "refused" and bad.verdict is None and "\n" not in bad.outcome.error
        assert store.stats().runs == 1
