"""The Compare page: tabs named by label and host; a cleared candidate list stays cleared."""

from __future__ import annotations

from test_dashboard_pages import GOLDEN, LAPTOP, UPGRADED, db_url, open_page, said, seeded_file  # noqa: F401


def test_tabs_are_named_by_label_and_host(db_url: str) -> None:  # noqa: F811
    at = open_page("compare", baseline=GOLDEN, candidate=[LAPTOP, UPGRADED])
    labels = [str(t.label) for t in at.tabs]
    assert len(labels) == 2
    assert labels[0].startswith("vs laptop · ") and labels[1].startswith("vs laptop after upgrade · ")
    assert all(LAPTOP not in label and UPGRADED not in label for label in labels)


def test_clearing_every_candidate_does_not_bring_one_back(db_url: str) -> None:  # noqa: F811
    at = open_page("compare", baseline=GOLDEN, candidate=LAPTOP)
    at.multiselect(key="compare_candidates").set_value([]).run()
    assert not at.exception
    assert at.multiselect(key="compare_candidates").value == []
    assert said(at, "Choose at least one candidate run")


def test_explanation_is_shown_next_to_the_likely_causes(db_url: str) -> None:  # noqa: F811
    from driftboard.core.explain import CauseMark, Explanation
    from driftboard.db.store import Store

    at = open_page("compare", baseline=GOLDEN, candidate=LAPTOP)
    assert said(at, "No explanation is stored for this pair")
    assert any(f"driftboard explain {GOLDEN} {LAPTOP}" in str(c.value) for c in at.code)
    found = Explanation(GOLDEN, LAPTOP, "baseline", "default", (("linear_10_5", "cpu", "float32"),), "explained",
                        "with `torch.backends.mkldnn.enabled=False`, this machine reproduces the candidate bit for "
                        "bit in 1 of 1 differing cases",
                        causes=(CauseMark("onednn", "oneDNN setting or version changed", "confirmed", "1 of 1"),),
                        created_at="2026-11-30T19:00:00+00:00", own=((("encoder", "cpu", "float32"), "cases.py:encoder"),),
                        skipped=("decoder/cpu/float32: an own-model case not declared here",))
    with Store(db_url) as store:
        store.save_explanation(found)
    at = open_page("compare", baseline=GOLDEN, candidate=LAPTOP)
    assert said(at, "this machine reproduces the candidate bit for bit in 1 of 1 differing cases")
    explained = [f for f in (df.value for df in at.dataframe) if "re-runs" in f.columns]
    assert explained and list(explained[0]["re-runs"]) == ["confirmed"]
    assert said(at, "own-model cases re-run: encoder/cpu/float32")
    assert said(at, "not re-run: decoder/cpu/float32: an own-model case not declared here")
