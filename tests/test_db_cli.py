"""``driftboard db upgrade``, ``push`` and ``runs``: output, help, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from db_factory import write_bundle_file

from driftboard.cli import main
from driftboard.core.processes import driftboard_command
from driftboard.db.migrate import head_revision
from driftboard.db.store import Store

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bundles(tmp_path) -> list[Path]:
    return [
        write_bundle_file(tmp_path, 1, 1, label="laptop", tags=("nightly",)),
        write_bundle_file(tmp_path, 2, 1, label="ci runner", drift={"linear_1024": 1}),
        write_bundle_file(tmp_path, 3, 1, label="gpu node", devices=("cpu", "cuda"), cuda="12.4",
                          driver="550.54.15", gpu="NVIDIA A100-SXM4-80GB"),
    ]


def test_push_stores_each_bundle_reports_bad_ones_and_exits_2(capsys, fresh_db, bundles, tmp_path):
    bad = tmp_path / "bad.driftboard"
    bad.write_bytes(b"not a bundle")
    code, out, err = run_cli(capsys, "push", str(bundles[0]), str(bad), *map(str, bundles[1:]), "--db", fresh_db,
                             "--uploader", "alice")
    assert code == 2
    assert out.count(": stored run ") == 3
    assert "m0001-r00001-default.driftboard: stored run m0001-r00001-default (18 cases, 32 new arrays" in out
    assert err.splitlines() == [
        f"{bad}: not stored: invalid bundle: file: not a driftboard bundle (expected a zip archive holding "
        "manifest.json)",
        "driftboard: error: 1 of 4 bundles not stored",
    ]
    code, out, err = run_cli(capsys, "push", str(bundles[0]), "--db", fresh_db)
    assert code == 0 and err == ""
    assert out.strip() == (f"{bundles[0]}: already stored as run m0001-r00001-default "
                           f"(same bundle {out.split('same bundle ')[1][:12]}), nothing written")
    with Store(fresh_db) as store:
        assert store.stats().runs == 3
        assert store.run("m0001-r00001-default").uploader == "alice"


def test_runs_lists_filters_and_prints_json(capsys, fresh_db, bundles):
    assert run_cli(capsys, "push", "-q", *map(str, bundles), "--db", fresh_db)[:2] == (0, "")
    code, out, _ = run_cli(capsys, "runs", "--db", fresh_db)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["RUN", "CAPTURED", "(UTC)"]
    assert [line.split()[0] for line in lines[1:4]] == ["m0003-r00001-default", "m0002-r00001-default",
                                                          "m0001-r00001-default"]
    assert "NVIDIA A100-SXM4-80GB" in lines[1] and lines[-1] == "page 1 of 1, 3 runs"
    code, out, _ = run_cli(capsys, "runs", "--db", fresh_db, "--json", "--gpu", "a100")
    page = json.loads(out)
    assert page["total"] == 1 and page["runs"][0]["environment"]["driver"] == "550.54.15"
    code, out, _ = run_cli(capsys, "runs", "--db", fresh_db, "--tag", "nightly", "--since", "2026-01-05",
                           "--until", "2026-01-05", "--json")
    assert [r["run_id"] for r in json.loads(out)["runs"]] == ["m0001-r00001-default"]
    assert run_cli(capsys, "runs", "--db", fresh_db, "--machine", "nowhere")[1].strip() == "no runs"


def test_runs_shows_and_filters_verdicts_against_the_golden(capsys, fresh_db, bundles):
    run_cli(capsys, "push", "-q", *map(str, bundles), "--db", fresh_db)
    with Store(fresh_db) as store:
        store.set_golden("m0001-r00001-default", set_by="alice")
    code, out, _ = run_cli(capsys, "runs", "--db", fresh_db)
    verdicts = {line.split()[0]: line.rsplit("  ", 1)[-1].strip() for line in out.splitlines()[1:4]}
    assert verdicts == {"m0001-r00001-default": "identical", "m0002-r00001-default": "within tolerance",
                        "m0003-r00001-default": "-"}  # no golden for the GPU run
    code, out, _ = run_cli(capsys, "runs", "--db", fresh_db, "--verdict", "drift", "--policy", "bitwise", "--json")
    assert [r["run_id"] for r in json.loads(out)["runs"]] == ["m0002-r00001-default"]
    code, _, err = run_cli(capsys, "runs", "--db", fresh_db, "--verdict", "sideways")
    assert code == 2 and err.startswith("driftboard: error: unknown verdict 'sideways'") and err.count("\n") == 1


@pytest.mark.postgres
def test_an_empty_postgres_database_needs_db_upgrade_first(capsys, postgres_url):
    code, out, err = run_cli(capsys, "runs", "--db", postgres_url)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.strip().endswith(f"create it with: driftboard db upgrade --db '{postgres_url}'")
    code, out, _ = run_cli(capsys, "db", "upgrade", "--db", postgres_url)
    assert code == 0 and out.strip().endswith(f"upgraded: schema revision none -> {head_revision()}")
    code, out, _ = run_cli(capsys, "db", "upgrade", "--db", postgres_url)
    assert out.strip().endswith(f"is up to date (schema revision {head_revision()})")
    assert run_cli(capsys, "runs", "--db", postgres_url)[:2] == (0, "no runs\n")


def test_db_upgrade_and_status_on_a_sqlite_file(capsys, tmp_path):
    path = tmp_path / "team.sqlite"
    code, out, _ = run_cli(capsys, "db", "upgrade", "--db", str(path))  # a plain path means a SQLite file
    assert code == 0 and out.strip() == f"database sqlite:///{path} upgraded: schema revision none -> {head_revision()}"
    code, out, _ = run_cli(capsys, "db", "status", "--db", str(path))
    assert code == 0 and f"schema revision {head_revision()} (current)" in out and "0 runs from 0 machines" in out


def test_bad_database_urls_are_one_line_errors(capsys, tmp_path):
    for url, expected in [("mysql://u@h/db", "unsupported database 'mysql'"),
                          ("postgresql+psycopg://x@127.0.0.1:1/db?connect_timeout=2", "127.0.0.1")]:
        code, out, err = run_cli(capsys, "runs", "--db", url)
        assert code == 2 and out == "" and err.count("\n") == 1 and expected in err


@pytest.mark.parametrize("command", [("db",), ("db", "upgrade"), ("db", "status"), ("push",), ("runs",)])
def test_every_command_has_help_with_an_example_and_the_default_database(capsys, command):
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0 and "Example" in out
    if command != ("db",):
        assert "DRIFTBOARD_DATABASE_URL" in out and "driftboard.sqlite" in out


def test_the_commands_are_listed_in_driftboard_help(capsys):
    _, out, _ = run_cli(capsys, "--help")
    for name in ("db", "push", "runs"):
        assert f"  {name} " in out


def test_push_exit_status_from_a_real_process(tmp_path):
    bad = tmp_path / "bad.driftboard"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = subprocess.run([*driftboard_command(), "push", str(bad), "--db", str(tmp_path / "x.sqlite")],
                            cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "driftboard: error: 1 of 1 bundle not stored"


def test_runs_never_cuts_a_run_id_and_shows_the_variant(capsys, fresh_db, tmp_path):
    import dataclasses

    from runs_factory import default_suite, make_run

    from driftboard.core.bundle import write_bundle
    from driftboard.core.run import MemoryArrays

    arrays = MemoryArrays()
    long_id = "20261130T120000Z-0123456789ab-with-a-long-name"
    run = dataclasses.replace(make_run(default_suite(arrays), run_id=long_id), variant="threads-1")
    path = write_bundle(tmp_path / "long.driftboard", run, arrays)
    assert run_cli(capsys, "push", "-q", str(path), "--db", fresh_db)[0] == 0
    code, out, _ = run_cli(capsys, "runs", "--db", fresh_db)
    header, row = out.splitlines()[:2]
    assert code == 0 and "VARIANT" in header.split()
    assert row.split()[0] == long_id and "threads-1" in row.split()
    code, out, _ = run_cli(capsys, "compare", long_id[:20], long_id[:20], "--db", fresh_db, "--fail-on", "never")
    assert code == 0, out  # a unique prefix names the run, as `runs --help` says
    assert "unique prefix" in run_cli(capsys, "runs", "--help")[1]
