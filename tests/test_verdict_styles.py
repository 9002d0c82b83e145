"""One look per verdict: word, meaning, colour and icon defined beside ``Verdict``, and every shell shows them.

Each shell is rendered for real (the ``compare`` and ``runs`` commands on a
colour terminal, the dashboard's verdict tables and chip, the HTML report) on
a comparison that reaches every verdict, and each verdict's colour is found
on its word.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from db_factory import write_bundle_file
from runs_factory import EVERY_VERDICT_POLICY, every_verdict
from streamlit.testing.v1 import AppTest

from driftboard.cli import cli, main
from driftboard.core.bundle import write_bundle
from driftboard.core.compare import RunComparison, compare_runs, parse_policy
from driftboard.core.compare.verdict import VERDICT_STYLES, Verdict, VerdictStyle, text_colour_on
from driftboard.core.run import MemoryArrays
from driftboard.dashboard import html_report, tables
from driftboard.dashboard.format import verdict_label
from driftboard.db.store import Store

HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


def rgb(colour: str) -> str:
    """``#D55E00`` as the ``213;94;0`` of a 24-bit ANSI colour code."""
    return ";".join(str(int(colour[i : i + 2], 16)) for i in (1, 3, 5))


def ansi_pattern(style: VerdictStyle, text: str) -> re.Pattern[str]:
    """``text`` right after the escape codes that set the verdict's fill colour (bold, text colour around it)."""
    return re.compile(rf"48;2;{rgb(style.colour)}m(?:\x1b\[[0-9;]*m)*{re.escape(text)}")


@pytest.fixture(scope="module")
def comparison() -> RunComparison:
    arrays = MemoryArrays()
    baseline, candidate = every_verdict(arrays)
    result = compare_runs(baseline, arrays, candidate, arrays, parse_policy(EVERY_VERDICT_POLICY))
    assert {c.verdict for c in result.cases} == set(Verdict)
    return result


@pytest.fixture(scope="module")
def bundle_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("every_verdict")
    arrays = MemoryArrays()
    baseline, candidate = every_verdict(arrays)
    return write_bundle(root / "baseline.driftboard", baseline, arrays), write_bundle(
        root / "candidate.driftboard", candidate, arrays)


# ---------------------------------------------------------------- the definition


def test_every_verdict_has_a_word_meaning_colour_and_icon() -> None:
    assert set(VERDICT_STYLES) == set(Verdict)
    for verdict in Verdict:
        style = verdict.style
        assert style is VERDICT_STYLES[verdict]
        assert style.word == verdict.value == str(verdict)
        assert style.meaning and "\n" not in style.meaning and len(style.meaning) <= 80, verdict
        assert HEX.match(style.colour), style.colour
        assert style.icon.strip() and len(style.icon) <= 2, verdict
        assert style.label == f"{style.icon} {style.word}"
        assert style.text_colour == text_colour_on(style.colour) in ("#000000", "#ffffff")
    assert len({s.colour.lower() for s in VERDICT_STYLES.values()}) == len(Verdict)  # colour alone tells them apart
    assert len({s.meaning for s in VERDICT_STYLES.values()}) == len(Verdict)


def test_text_colour_contrasts_with_the_fill() -> None:
    assert text_colour_on("#ffffff") == "#000000" and text_colour_on("#000000") == "#ffffff"
    assert Verdict.INPUTS_DIFFER.style.text_colour == "#000000"  # yellow fill: black text
    assert Verdict.SHAPE_MISMATCH.style.text_colour == "#ffffff"  # indigo fill: white text


# ---------------------------------------------------------------- the command line


def test_compare_table_shows_each_verdict_word_in_its_colour(bundle_pair, capsys, monkeypatch) -> None:
    for name, value in {"FORCE_COLOR": "1", "COLORTERM": "truecolor", "TERM": "xterm-256color", "COLUMNS": "200"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_COLOR", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["compare", *map(str, bundle_pair), "--policy", EVERY_VERDICT_POLICY])
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    for verdict in Verdict:
        word = verdict.value + (" !" if verdict.crosses("drift") else "")
        assert ansi_pattern(verdict.style, word).search(out), f"{word!r} not shown in {verdict.style.colour}"
    assert ansi_pattern(Verdict.ERROR.style, "error").search(out.split("\n", 1)[0])  # the worst, in the heading


def test_compare_without_a_terminal_prints_words_only(bundle_pair, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["compare", *map(str, bundle_pair), "--policy", EVERY_VERDICT_POLICY])
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert all(verdict.value in out for verdict in Verdict)


def test_runs_table_colours_the_verdict_column(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    files = [write_bundle_file(tmp_path, 1, 1, label="drift"), write_bundle_file(tmp_path, 2, 1, drift={"linear_1024": 1})]
    runner = CliRunner()
    assert runner.invoke(cli, ["push", "-q", *map(str, files), "--db", db]).exit_code == 0
    with Store(db) as store:
        store.set_golden("m0001-r00001-default", set_by="test")
    coloured = runner.invoke(cli, ["runs", "--db", db, "--policy", "bitwise"], color=True)
    assert coloured.exit_code == 0, coloured.output
    lines = coloured.output.splitlines()
    assert ansi_pattern(Verdict.DRIFT.style, "drift").search(lines[1])  # m0002 drifts from the golden
    assert ansi_pattern(Verdict.IDENTICAL.style, "identical").search(lines[2])  # the golden itself
    assert lines[2].count("48;2;") == 1  # its label "drift" is not a verdict: only the verdict cell is coloured
    plain = runner.invoke(cli, ["runs", "--db", db, "--policy", "bitwise"])
    assert "\x1b[" not in plain.output
    assert [line.rsplit("  ", 1)[-1].strip() for line in plain.output.splitlines()[1:3]] == ["drift", "identical"]


# ---------------------------------------------------------------- the dashboard


def _cell_styles(styler_html: str) -> dict[str, str]:
    """Cell text -> its CSS declarations, from a pandas Styler's HTML."""
    rules: dict[str, str] = {}
    for selectors, body in re.findall(r"((?:#T_\w+\s*,?\s*)+)\{([^{}]*)\}", styler_html.split("</style>")[0]):
        for cell_id in re.findall(r"#(T_\w+)", selectors):
            rules[cell_id] = " ".join(body.split())
    cells = re.findall(r"<td id=\"([^\"]+)\"[^>]*>([^<]*)</td>", styler_html)
    return {text.strip(): rules.get(cell_id, "") for cell_id, text in cells}


def test_dashboard_tables_fill_each_verdict_cell_with_its_colour(comparison: RunComparison) -> None:
    frame = tables.verdict_frame(comparison)
    assert set(frame[tables.VERDICT]) == {verdict_label(v) for v in Verdict}
    styles = _cell_styles(tables.styled(frame).to_html())
    for verdict in Verdict:
        css = styles[verdict.style.label]  # icon and word
        assert f"background-color: {verdict.style.colour}" in css and f"color: {verdict.style.text_colour}" in css


def _badges() -> None:
    from driftboard.core.compare.verdict import Verdict
    from driftboard.dashboard import ui

    for verdict in Verdict:
        ui.verdict_badge(verdict, "worst: ")


def test_dashboard_chip_carries_colour_icon_word_and_meaning() -> None:
    at = AppTest.from_function(_badges).run()
    assert not at.exception, [e.value for e in at.exception]
    chips = [m.value for m in at.markdown]
    assert len(chips) == len(Verdict)
    for verdict, chip in zip(Verdict, chips, strict=True):
        style = verdict.style
        assert f"background:{style.colour};color:{style.text_colour}" in chip
        assert f">worst: {style.label}</span>" in chip and html.escape(style.meaning, quote=True) in chip


def test_html_report_chips_use_each_verdicts_colour_and_meaning(comparison: RunComparison) -> None:
    page = html_report.comparison_report_html([comparison], generated_at="2026-01-05T09:00:00+00:00")
    for verdict in Verdict:
        style = verdict.style
        chip = (f"background:{style.colour};color:{style.text_colour}' title='{html.escape(style.meaning, quote=True)}'"
                f">{html.escape(style.label)}</span>")
        assert chip in page, verdict


def test_the_dashboard_format_module_reads_the_core_definition() -> None:
    from driftboard.dashboard import format as fmt

    assert fmt.VERDICT_STYLES is VERDICT_STYLES
    assert fmt.verdict_style("drift") is Verdict.DRIFT.style and fmt.verdict_colour("DRIFT") == Verdict.DRIFT.style.colour
