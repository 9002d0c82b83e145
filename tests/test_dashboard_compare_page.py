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
