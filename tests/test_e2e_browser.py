"""End to end in a real browser: ``driftboard serve`` on a loopback port, Debian's Chromium driven by Playwright.

Two real bundles (this machine, default settings and oneDNN off: real drift in
float32 LSTM cases) are uploaded through the Upload page, their comparison is
opened from there, and the verdict table and a Plotly chart must be on screen.
Screenshots go to ``artifacts/`` (gitignored) for people to look at.

A second test uploads synthetic bundles (no torch) whose label and note carry
HTML, JavaScript and Markdown, and checks in the live DOM of the Runs and
Compare pages that the text is shown as typed and nothing of it ran or
rendered: no ``window.__pwned``, no ``<img src=x>``, no injected script, bold
or link.

At 1280×800 (a laptop), the Runs table must show the verdict column and whole
run ids (as long as capture and import-env write them) without scrolling; the
grid is a canvas, so headers are found by hovering them for their help
tooltips. Ticking a row, its run page and a deletion are driven there too, and
an anonymous visitor sent from /upload must be told why.

Without Chromium (``apt-get install chromium``) or the ``playwright`` package
this skips locally, and fails under ``CI=true``, where both must be present.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hostile import MARK, hostile_directory
from serving import free_port, wait_healthy

from driftboard.core.processes import driftboard_command

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path(os.environ.get("DRIFTBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set DRIFTBOARD_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install playwright"
    return None


@pytest.fixture(scope="module")
def chromium() -> Path:
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)
    return CHROMIUM


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> list[Path]:
    """Two real captures of this machine: default settings, and oneDNN off."""
    out = tmp_path_factory.mktemp("bundles")
    paths = []
    for variant in ("default", "onednn-off"):
        path = out / f"{variant}.driftboard"
        subprocess.run([*driftboard_command(), "capture", "--variant", variant, "--label",
                        f"e2e {variant}", "-o", str(path), "-q"], check=True, timeout=300,
                       cwd=hostile_directory(out / "training-repo"), capture_output=True)
        paths.append(path)
    return paths


@contextmanager
def _serving(tmp_path: Path, *extra: str) -> Iterator[str]:
    """``driftboard serve`` on a free loopback port and a new database; always stopped at the end.

    It runs from a directory of look-alike ``core``/``db``/``dashboard``/``driftboard`` packages: every
    page a test opens proves the server imports only the installed driftboard.
    """
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DRIFTBOARD_DATABASE_URL", "DRIFTBOARD_AUTH_FILE")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*driftboard_command(), "serve", "--db", str(tmp_path / "e2e.sqlite"), "--port", str(port),
             *extra], cwd=hostile_directory(tmp_path / "training-repo"), env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        assert f"driftboard dashboard: {url}" in log.read_text()
        yield url
    finally:
        _stop(proc)
    assert MARK not in log.read_text(), log.read_text()


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    with _serving(tmp_path) as url:
        yield url


UPLOADER_TOKEN = "e2e-uploader-token-4b1f9c"


@pytest.fixture
def locked_server(tmp_path) -> Iterator[str]:
    """Served with an access file: viewing open, uploading for the one uploader token."""
    from driftboard.dashboard.auth import hash_token

    auth = tmp_path / "team-auth.toml"
    auth.write_text(f'mode = "tokens"\n[tokens]\nci = {{ role = "uploader", hash = "{hash_token(UPLOADER_TOKEN)}" }}\n')
    with _serving(tmp_path, "--auth", str(auth)) as url:
        yield url


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: nothing it started survives
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def _settle(page) -> None:
    """Wait until the script run the page started has finished, and the charts have drawn."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    page.wait_for_timeout(1000)


def _download(page, button: str, to: Path) -> str:
    """Click a download button (the file is built on the click) and return the text saved."""
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    info.value.save_as(str(to))
    return to.read_text(encoding="utf-8")


HOSTILE = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=1</script> **bold** [link](http://x)'
# Everything the hostile text would create if it were rendered rather than shown.
_INJECTED = """() => ({
    pwned: typeof window.__pwned,
    img: document.querySelectorAll('img[src="x"]').length,
    script: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length,
    bold: [...document.querySelectorAll('strong, b')].filter(e => e.textContent.trim() === 'bold').length,
    link: document.querySelectorAll('a[href="http://x"], a[href="http://x/"]').length,
})"""


def _assert_inert(page) -> None:
    found = page.evaluate(_INJECTED)
    assert found == {"pwned": "undefined", "img": 0, "script": 0, "bold": 0, "link": 0}, found


def _wait_done(page) -> None:
    """The page's script run has finished (no fixed sleep)."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")


def _tick_row(page, row: int) -> None:
    """Tick row ``row`` of the first table (its box in the row-marker column; the grid is a canvas)."""
    _wait_done(page)
    grid = page.locator("[data-testid='stDataFrame']").first
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + ROW_MARKER / 2, box["y"] + ROW_HEIGHT * (row + 1.5))
    _wait_done(page)


ROW_HEIGHT = 35  # st.dataframe's row (and header) height in pixels
ROW_MARKER = 34  # the width of its row-marker (tick box) column


def test_hostile_labels_and_notes_are_shown_as_text_and_never_run(chromium, server, tmp_path):
    from db_factory import write_bundle_file
    from playwright.sync_api import expect, sync_playwright

    plain = write_bundle_file(tmp_path, 9, 0, label="plain box")
    hostile = write_bundle_file(tmp_path, 9, 1, label=HOSTILE, note=HOSTILE, tags=("<b>t</b>",))
    plain_id, hostile_id = plain.stem, hostile.stem
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{server}/upload")
            page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files([str(plain),
                                                                                              str(hostile)])
            expect(page.locator("[data-testid='stAlertContentSuccess']")).to_have_count(2)
            _wait_done(page)
            _assert_inert(page)

            # Runs: tick the newest run (the hostile one); its note is printed as typed
            page.goto(f"{server}/runs")
            _tick_row(page, 0)
            expect(page.get_by_text(f"Note: {HOSTILE}", exact=True)).to_be_visible()
            _wait_done(page)
            _assert_inert(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-hostile-runs.png"))

            # its run page: the heading names it with the label, the note and the fingerprint shown literally
            page.get_by_role("link", name="Open the run page").click()
            expect(page.get_by_role("heading").filter(has_text=f"{hostile_id} · host-0009 · {HOSTILE}")).to_have_count(1)
            expect(page.get_by_text(f"Note: {HOSTILE}", exact=True)).to_be_visible()
            _wait_done(page)
            _assert_inert(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-hostile-run-page.png"))

            # Compare: the heading names both runs with the label, shown literally
            page.goto(f"{server}/compare?baseline={plain_id}&candidate={hostile_id}")
            heading = page.get_by_role("heading").filter(has_text=f"{hostile_id} ({HOSTILE})")
            expect(heading).to_have_count(1)
            expect(heading).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            _wait_done(page)
            _assert_inert(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-hostile-compare.png"))
        finally:
            browser.close()


def test_upload_two_bundles_and_open_their_comparison(chromium, bundles, server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 3400})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{server}/upload")
            page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
                [str(b) for b in bundles])
            stored = page.locator("[data-testid='stAlertContentSuccess']")
            expect(stored).to_have_count(2)
            expect(stored.first).to_contain_text("stored as run")
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-upload.png"))
            # the page tells a member's machine to push here over HTTP, at the address this browser used
            expect(page.get_by_text(f"--server {server} --token-file").first).to_be_visible()

            page.get_by_role("link", name="Compare the uploaded runs").click()
            expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
            # oneDNN off moves float32 LSTM outputs by a few ULPs: "≈ within tolerance" under the default policy
            expect(page.get_by_text(re.compile(r"^worst: (≈ within tolerance|✗ drift)$")).first).to_be_visible()
            expect(page.get_by_text(re.compile(r"^\d+ cases under policy default: ")).first).to_be_visible()
            tables = page.locator("[data-testid='stDataFrame']")
            expect(tables.nth(2)).to_be_visible()  # runs, likely causes, verdicts
            chart = page.locator("[data-testid='stPlotlyChart'] .main-svg").first
            chart.scroll_into_view_if_needed()
            expect(chart).to_be_visible()
            expect(page.get_by_text("ULP distance per element").first).to_be_visible()
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-compare.png"), full_page=True)
            report = _download(page, "Download the HTML report", ARTIFACTS / "e2e-report.html")
            assert report.startswith("<!DOCTYPE html>") and "e2e onednn-off" in report and "plotly" in report
            data = json.loads(_download(page, "Download its data (JSON)", ARTIFACTS / "e2e-report.json"))
            assert data["kind"] == "driftboard.comparison_report" and len(data["comparisons"]) == 1

            # the drift matrix: one row (the other run against the newest as baseline); a click opens Compare
            page.goto(f"{server}/matrix")
            _settle(page)
            cell = page.locator("[data-testid='stPlotlyChart'] .scatterlayer .point").nth(3)
            box = cell.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
            expect(page).to_have_url(re.compile(r"/compare\?baseline=.+&candidate=.+"))
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-matrix-click.png"))

            # the machine's audit: the oneDNN switch between its two runs is an event; export it
            page.goto(f"{server}/machines")
            _settle(page)
            expect(page.get_by_role("heading", name="Environment changes")).to_be_visible()
            audit = _download(page, "Download the HTML report", ARTIFACTS / "e2e-audit.html")
            assert audit.startswith("<!DOCTYPE html>") and "oneDNN" in audit
            page.screenshot(path=str(ARTIFACTS / "e2e-machines.png"))
        finally:
            browser.close()
    assert (ARTIFACTS / "e2e-compare.png").stat().st_size > 10_000


def test_a_token_unlocks_uploading_and_is_never_put_back_on_the_page(chromium, locked_server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{locked_server}/")
            box = page.get_by_label("Access token", exact=True).and_(page.locator("input"))
            expect(box).to_have_attribute("type", "password")
            nav = page.locator("[data-testid='stSidebarNav']")
            expect(nav.get_by_role("link", name="Compare", exact=True)).to_be_visible()
            expect(nav.get_by_role("link", name="Upload", exact=True)).to_have_count(0)

            box.fill("not-the-token")
            page.get_by_role("button", name="Unlock").click()
            expect(page.get_by_text("That token is not valid: the dashboard stays locked.")).to_be_visible()
            expect(nav.get_by_role("link", name="Upload", exact=True)).to_have_count(0)

            page.get_by_label("Access token", exact=True).and_(page.locator("input")).fill(UPLOADER_TOKEN)
            page.get_by_role("button", name="Unlock").click()
            expect(page.locator("[data-testid='stSidebar']").get_by_text("Unlocked as ci (uploader).")).to_be_visible()
            expect(nav.get_by_role("link", name="Upload", exact=True)).to_be_visible()
            expect(page.get_by_role("button", name="Lock", exact=True)).to_be_visible()
            expect(page.get_by_role("button", name="Unlock", exact=True)).to_have_count(0)
            expect(page.get_by_label("Access token", exact=True).and_(page.locator("input"))).to_have_count(0)
            _wait_done(page)
            assert page.evaluate("t => document.documentElement.outerHTML.includes(t)", UPLOADER_TOKEN) is False
            assert page.evaluate("() => [...document.querySelectorAll('input')].map(i => i.value)").count(
                UPLOADER_TOKEN) == 0
        finally:
            browser.close()


# ---------------------------------------------------------------- the Runs table at 1280×800

VERDICT_HELP = "The worst case verdict against the golden"
RUN_LINK_HELP = "Opens the run's page"
# Run ids as capture and import-env write them: the longest kinds there are.
E2E_IDS = {"golden": "20260105T090000Z-3f9a0c1b2d4e", "laptop": "20260105T100000Z-8c7d6e5f4a3b",
           "upgraded": "20260106T101500Z-0a1b2c3d4e5f", "gpu": "20260106T120000Z-5e4d3c2b1a09",
           "broken": "20260107T080000Z-77aa88bb99cc", "imported": "import-0123456789abcdef01234567"}


@pytest.fixture
def seeded_server(tmp_path) -> Iterator[str]:
    """Served on a database of six runs (a golden, drift, an upgrade, a GPU node, an error, an import)."""
    from datetime import timedelta

    from db_factory import BASE_TIME, make_bundle

    from driftboard.db.store import Store

    with Store(f"sqlite:///{tmp_path / 'e2e.sqlite'}") as store:
        for data in (
            make_bundle(0, 0, label="reference node", run_id=E2E_IDS["golden"]),
            make_bundle(1, 0, label="laptop", drift={"lstm_2layer": 2}, run_id=E2E_IDS["laptop"]),
            make_bundle(1, 1, label="laptop after the torch upgrade", torch_version="2.6.0",
                        drift={"lstm_2layer": 3}, run_id=E2E_IDS["upgraded"]),
            make_bundle(2, 0, label="gpu node", devices=("cpu", "cuda"), cuda="12.4", driver="550.54.15",
                        gpu="NVIDIA A100-SXM4-80GB", run_id=E2E_IDS["gpu"]),
            make_bundle(4, 0, label="broken", error_case="linear_10_5", run_id=E2E_IDS["broken"]),
            make_bundle(3, 0, label="from a bug report", imported=True, run_id=E2E_IDS["imported"],
                        created_at=BASE_TIME + timedelta(days=2)),  # the newest: the first row
        ):
            store.ingest(data, uploader="e2e")
        store.set_golden(E2E_IDS["golden"], set_by="e2e")
    with _serving(tmp_path) as url:
        yield url


def _header_under(page, x: float, y: float) -> tuple[str, float] | None:
    """The help tooltip of the table header under (x, y), and the x of that header's middle (its anchor)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.mouse.move(x, y)
    tip = page.locator("[data-testid='stDataFrameTooltipContent']")
    try:
        tip.first.wait_for(state="visible", timeout=800)
    except PlaywrightTimeout:
        return None  # a header without help, or no header there
    anchor = page.locator("[data-testid='stDataFrameTooltipTarget']").first.bounding_box()
    return (tip.first.text_content() or ""), anchor["x"]


def _find_header(page, help_text: str, y: float, start: float, stop: float, step: float = 15) -> float | None:
    x = start
    while x < stop:
        found = _header_under(page, x, y)
        if found and found[0].startswith(help_text):
            return found[1]
        x += step
    return None


_TEXT_WIDTH = """([text, font]) => {
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = font;
    return ctx.measureText(text).width;
}"""


def test_the_runs_table_shows_the_verdict_and_whole_run_ids_at_1280_by_800(chromium, seeded_server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{seeded_server}/runs")
            grid = page.locator("[data-testid='stDataFrame']").first
            expect(grid).to_be_visible()
            _wait_done(page)
            box = grid.bounding_box()
            assert box is not None
            header_y = box["y"] + ROW_HEIGHT / 2
            assert 0 < header_y < 800, "the table's header is below the fold"

            # the verdict header is in view: hovering it, inside the window, shows its help
            verdict_x = _find_header(page, VERDICT_HELP, header_y, box["x"] + ROW_MARKER + 4, 1280)
            assert verdict_x is not None and box["x"] < verdict_x < 1280, verdict_x
            # the run id column comes next, and holds the longest id whole, also in view
            id_x = _find_header(page, RUN_LINK_HELP, header_y, verdict_x, 1280)
            assert id_x is not None and verdict_x < id_x < 1280, id_x
            font = page.evaluate("""() => {
                const s = getComputedStyle(document.querySelector("[data-testid='stDataFrame'] .dvn-scroller")
                                           || document.querySelector("[data-testid='stDataFrame']"));
                return `${s.getPropertyValue('--gdg-base-font-style')} ${s.getPropertyValue('--gdg-font-family')}`;
            }""")
            longest = max(E2E_IDS.values(), key=len)
            needed = page.evaluate(_TEXT_WIDTH, [longest, font]) + 2 * 8  # glide's cell padding on each side
            edge = id_x + needed / 2 - 2  # inside the run id header only if the column is at least that wide
            assert edge < 1280, f"the run id column ends outside the window ({edge:.0f} px)"
            under = _header_under(page, edge, header_y)
            assert under is not None and under[0].startswith(RUN_LINK_HELP) and abs(under[1] - id_x) < 1, (
                f"run ids are cut: {longest!r} needs {needed:.0f} px")
            scrolled = page.evaluate("""() => [window.scrollX,
                ...[...document.querySelectorAll("[data-testid='stDataFrame'] .dvn-scroller")].map(e => e.scrollLeft)]""")
            assert set(scrolled) == {0}, scrolled
            page.mouse.move(1, 1)  # no tooltip in the picture
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "e2e-runs-1280x800.png"))

            # ticking a row offers its actions; its page opens in this session
            _tick_row(page, 0)
            expect(page.get_by_role("heading", name="1 run ticked")).to_be_visible()
            page.get_by_role("link", name="Open the run page").click()
            expect(page.get_by_role("heading", name="Fingerprint")).to_be_visible()
            expect(page).to_have_url(re.compile(r"/run\?run=" + re.escape(E2E_IDS["imported"]) + "$"))
            expect(page.get_by_text("This run has no cases")).to_be_visible()
            _wait_done(page)
            page.screenshot(path=str(ARTIFACTS / "e2e-run-page-1280x800.png"))

            # a deletion removes the run confirmed and leaves nothing ticked (the browser's ticks are cleared too)
            page.goto(f"{seeded_server}/runs")
            _tick_row(page, 2)  # newest first: the import, the upgrade, then the broken run
            expect(page.get_by_text(re.compile(r"^Deletes 1 run: " + re.escape(E2E_IDS["broken"])))).to_be_visible()
            page.get_by_text("Delete for good", exact=True).click()
            page.get_by_role("button", name="Delete 1 run").click()
            expect(page.get_by_text(f"Deleted run {E2E_IDS['broken']}")).to_be_visible()
            expect(page.get_by_role("heading", name="Tick runs to act on them")).to_be_visible()
            expect(page.get_by_text(re.compile(r"^5 runs · page 1 of 1"))).to_be_visible()
        finally:
            browser.close()


def test_an_anonymous_visitor_sent_from_upload_to_runs_is_told_why(chromium, locked_server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{locked_server}/upload")
            expect(page.get_by_role("heading", name="Runs")).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Upload is locked for this session: uploading runs needs the "
                                               r"uploader role"))).to_be_visible()
            expect(page.locator("[data-testid='stFileUploader']")).to_have_count(0)
            _wait_done(page)
        finally:
            browser.close()


JOURNEY_VIEWPORTS = [(1280, 800), (1920, 1080)]


@pytest.mark.parametrize(("width", "height"), JOURNEY_VIEWPORTS, ids=lambda v: str(v))
def test_a_new_user_journey_from_the_status_board_to_a_run_page(chromium, seeded_server, width, height):
    """Status board → Runs → Compare → drift matrix (a cell clicked) → Machines → a run's page, on a team
    database, with a screenshot of each page at a laptop's and a desktop's size."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    size = f"{width}x{height}"

    def shot(name: str) -> None:
        _settle(page)
        page.mouse.move(1, 1)  # no tooltip in the picture
        page.screenshot(path=str(ARTIFACTS / f"e2e-journey-{name}-{size}.png"))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)

            # the first page: do all our machines agree? one summary line, then one row per machine
            page.goto(f"{seeded_server}/")
            expect(page.get_by_role("heading", name="Team status")).to_be_visible()
            summary = page.get_by_text(re.compile(r"^5 machines: .*within tolerance.*environment only$"))
            expect(summary).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            shot("1-status")

            # the menu still has Runs
            page.get_by_role("link", name="Runs").first.click()
            expect(page.get_by_role("heading", name="Runs")).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            shot("2-runs")

            # the laptop after its upgrade against the golden
            page.goto(f"{seeded_server}/compare?baseline={E2E_IDS['golden']}&candidate={E2E_IDS['upgraded']}")
            expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
            expect(page.get_by_text(re.compile(r"^worst: ≈ within tolerance$")).first).to_be_visible()
            expect(page.get_by_text(re.compile("What was found in each case")).first).to_be_visible()
            shot("3-compare")

            # the drift matrix, grouped by machine; a click on a cell opens Compare for that pair
            page.goto(f"{seeded_server}/matrix")
            expect(page.get_by_role("heading", name="Drift matrix")).to_be_visible()
            chart = page.locator("[data-testid='stPlotlyChart'] .main-svg").first
            expect(chart).to_be_visible()
            expect(page.locator("[data-testid='stPlotlyChart']").first).to_contain_text("max ULP")
            shot("4-matrix")
            cell = page.locator("[data-testid='stPlotlyChart'] .scatterlayer .point").nth(3)
            cell.scroll_into_view_if_needed()
            box = cell.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
            expect(page).to_have_url(re.compile(r"/compare\?baseline=.+&candidate=.+"))

            # the laptop's history: its torch upgrade is an environment change
            page.goto(f"{seeded_server}/machines?machine=host-0001")
            expect(page.get_by_role("heading", name="Environment changes")).to_be_visible()
            expect(page.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible()
            expect(page.get_by_text("Each change with the drift before and after it, in full")).to_be_visible()
            shot("5-machines")

            # a run's page, as the run id links open it
            page.goto(f"{seeded_server}/run?run={E2E_IDS['upgraded']}")
            expect(page.get_by_role("heading", name="Fingerprint")).to_be_visible()
            shot("6-run")
        finally:
            browser.close()
    assert (ARTIFACTS / f"e2e-journey-1-status-{size}.png").stat().st_size > 10_000
