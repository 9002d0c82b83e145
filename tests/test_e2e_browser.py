"""End to end in a real browser: ``driftboard serve`` on a loopback port, Debian's Chromium driven by Playwright.

Two real bundles (this machine, default settings and oneDNN off: real drift in
float32 LSTM cases) are uploaded through the Upload page, their comparison is
opened from there, and the verdict table and a Plotly chart must be on screen.
Screenshots go to ``artifacts/`` (gitignored) for people to look at.

Without Chromium (``apt-get install chromium``) or the ``playwright`` package
this skips locally, and fails under ``CI=true``, where both must be present.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

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
        subprocess.run([sys.executable, "-m", "core.cli", "capture", "--variant", variant, "--label",
                        f"e2e {variant}", "-o", str(path), "-q"], check=True, cwd=ROOT, timeout=300,
                       capture_output=True)
        paths.append(path)
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"driftboard serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"driftboard serve not healthy after {seconds} s:\n{log.read_text()}")


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    """``driftboard serve`` on a free loopback port and a new database; always stopped at the end."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "DRIFTBOARD_DATABASE_URL"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve", "--db", str(tmp_path / "e2e.sqlite"), "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        assert f"driftboard dashboard: {url}" in log.read_text()
        yield url
    finally:
        _stop(proc)


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
