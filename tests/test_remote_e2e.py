"""End to end: the CLI's ``--server`` against a real ``driftboard serve`` with tokens, on SQLite.

A CI runner's day: push a bundle with its own token, gate a fresh bundle
against the team golden with JUnit output, with nothing but the URL and
``DRIFTBOARD_TOKEN``. The write log then names the runner, the API channel
and its address; a wrong token is one line and stores nothing.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_server import serving
from db_factory import write_bundle_file

from driftboard.core.processes import driftboard_command
from driftboard.dashboard.auth import hash_token
from driftboard.db.store import Store

CI_TOKEN = "ci-runner-token-4f9a"
GOLDEN = "m0001-r00000-default"


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, str]]:
    """(URL, database URL) of ``driftboard serve`` with a token for the CI runner (uploader)."""
    access = tmp_path / "team-auth.toml"
    access.write_text(f'[tokens.ci-gpu-1]\nrole = "uploader"\nhash = "{hash_token(CI_TOKEN)}"\n')
    db = f"sqlite:///{tmp_path / 'team.sqlite'}"
    with serving(db, tmp_path, access_file=access) as server:
        yield f"http://127.0.0.1:{server.port}", db


def driftboard(*argv: str, token: str | None = CI_TOKEN, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTBOARD_")}
    if token is not None:
        env["DRIFTBOARD_TOKEN"] = token
    return subprocess.run([*driftboard_command(), *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_a_ci_runner_pushes_and_gates_against_the_team_golden_over_http(served, tmp_path):
    url, db = served
    golden = write_bundle_file(tmp_path, 1, 0, label="reference node")
    new = write_bundle_file(tmp_path, 2, 0, label="ci", drift={"linear_1024": 3, "lstm_2layer": 1})

    pushed = driftboard("push", str(golden), "--server", url, cwd=tmp_path)
    assert pushed.returncode == 0 and f"stored run {GOLDEN} on {url} (no golden applies)" in pushed.stdout
    with Store(db) as store:  # an admin marks it, on the server's database
        store.set_golden(GOLDEN, set_by="admin")

    wrong = driftboard("push", str(new), "--server", url, token="not-the-token", cwd=tmp_path)
    assert wrong.returncode == 2 and "(HTTP 401 from" in wrong.stderr and "not-the-token" not in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 2  # the file's line and the summary

    junit = tmp_path / "drift.xml"
    gate = driftboard("compare", "--server", url, "golden", str(new), "--junit", str(junit), "--policy", "bitwise",
                      cwd=tmp_path)
    assert gate.returncode == 1 and "FAIL" in gate.stdout, gate.stderr
    failing = [c.get("name") for c in ET.parse(junit).iter("testcase") if c.find("failure") is not None]
    assert failing and all(name.split("[")[0] in ("linear_1024", "lstm_2layer") for name in failing)
    passing = driftboard("compare", "--server", url, "golden", str(new), "--fail-on", "never", cwd=tmp_path)
    assert passing.returncode == 0

    again = driftboard("push", str(new), str(new), "--server", url, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.splitlines()[1] == (f"{new}: already stored as run m0002-r00000-default on {url}, "
                                            "nothing written")
    listed = driftboard("runs", "--server", url, cwd=tmp_path)
    assert listed.returncode == 0 and "m0002-r00000-default" in listed.stdout and "page 1 of 1, 2 runs" in listed.stdout

    with Store(db) as store:
        log = [(e.action, e.actor, e.channel, e.run_id) for e in reversed(store.write_log())]
        assert store.runs().total == 2
    assert log == [("push", "ci-gpu-1", "api", GOLDEN), ("golden-set", "admin", "cli", GOLDEN),
                   ("push", "ci-gpu-1", "api", "m0002-r00000-default")]
