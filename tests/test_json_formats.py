"""Every JSON document driftboard writes is enveloped (``format``, ``schema_version``) and matches its shipped schema.

Real output only: the commands run on real bundles (a comparison reaching
every verdict, the database fixtures of ``db_factory``) and a real SQLite
database, and what they print or write is validated with ``jsonschema``
against ``core/schemas/<name>.schema.json`` (the manifest: core/bundle.schema.json).
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from db_factory import write_bundle_file
from runs_factory import EVERY_VERDICT_POLICY, every_verdict

from driftboard.cli import cli
from driftboard.core import documents
from driftboard.core.bundle import FORMAT as MANIFEST_FORMAT
from driftboard.core.bundle import MANIFEST, write_bundle
from driftboard.core.compare.tiers import TIER_GATES
from driftboard.core.compare.verdict import FAIL_ON, Verdict
from driftboard.core.run import MemoryArrays
from driftboard.db.store import Store

jsonschema = pytest.importorskip("jsonschema")

WORDS = [v.value for v in Verdict]
# format -> the command that writes it
COMMANDS = {
    "driftboard.compare": "compare --json",
    "driftboard.comparison_report": "report --json",
    "driftboard.runs": "runs --json",
    "driftboard.fingerprint": "fingerprint --json",
    "driftboard.goldens": "golden list --json",
    MANIFEST_FORMAT: "show --json",
}


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (args, result.output, result.exception)
    return result.output


def schema(format_name: str) -> dict[str, Any]:
    return json.loads(documents.schema_path(format_name).read_text(encoding="utf-8"))


def errors(doc: Any, format_name: str | None = None) -> list[str]:
    """Why ``doc`` does not match the schema of its format (or of ``format_name``); empty when it does."""
    validator = jsonschema.Draft202012Validator(schema(format_name or doc["format"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(doc)]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """format -> a document the command writing it really wrote."""
    root = tmp_path_factory.mktemp("json_formats")
    arrays = MemoryArrays()
    baseline_run, candidate_run = every_verdict(arrays)
    baseline = str(write_bundle(root / "baseline.driftboard", baseline_run, arrays))
    candidate = str(write_bundle(root / "candidate.driftboard", candidate_run, arrays))
    docs: dict[str, Any] = {}

    # every verdict, a --case report with its worst elements, and a second candidate
    docs["driftboard.compare"] = json.loads(invoke("compare", baseline, candidate, baseline, "--json", "--policy",
                                                   EVERY_VERDICT_POLICY, "--case", "c_drift", code=1))
    report = root / "report.json"
    invoke("report", baseline, candidate, "-o", str(root / "report.html"), "--json", str(report), "--policy",
           EVERY_VERDICT_POLICY)
    docs["driftboard.comparison_report"] = json.loads(report.read_text(encoding="utf-8"))
    docs["embedded report"] = _embedded((root / "report.html").read_text(encoding="utf-8"))

    db = f"sqlite:///{root / 'runs.sqlite'}"
    stored = [write_bundle_file(root, 1, 1, label="laptop", tags=("nightly",)),
              write_bundle_file(root, 2, 1, label="ci", drift={"linear_1024": 1}),
              write_bundle_file(root, 3, 1, label="gpu", devices=("cpu", "cuda"), cuda="12.4", driver="550.54.15",
                                gpu="NVIDIA A100-SXM4-80GB")]
    invoke("push", "-q", *map(str, stored), "--db", db)
    with Store(db) as store:
        store.set_golden("m0001-r00001-default", set_by="test")
    docs["driftboard.runs"] = json.loads(invoke("runs", "--db", db, "--json", "--policy", "bitwise"))
    docs["driftboard.goldens"] = json.loads(invoke("golden", "list", "--db", db, "--json"))

    docs[MANIFEST_FORMAT] = json.loads(invoke("show", candidate, "--json"))
    docs["manifest in the bundle"] = json.loads(zipfile.ZipFile(candidate).read(MANIFEST))
    docs["driftboard.fingerprint"] = json.loads(invoke("fingerprint", "--json", "--label", "box", "--tag", "a"))
    return docs


def _embedded(page: str) -> Any:
    match = re.search(r"<script type='application/json' id='driftboard-data'>(.*?)</script>", page, re.S)
    assert match, "no embedded data"
    return json.loads(match.group(1))


# ---------------------------------------------------------------- real output matches its schema


@pytest.mark.parametrize("format_name", list(COMMANDS))
def test_real_output_is_enveloped_and_matches_its_schema(outputs, format_name: str) -> None:
    doc = outputs[format_name]
    assert list(doc)[:2] == ["format", "schema_version"] or format_name == MANIFEST_FORMAT  # show sorts its keys
    assert doc["format"] == format_name, COMMANDS[format_name]
    assert doc["schema_version"] == documents.FORMATS[format_name]
    assert errors(doc) == []


def test_compare_keeps_every_key_ci_pipelines_parse(outputs) -> None:
    doc = outputs["driftboard.compare"]
    assert set(doc) == {"format", "schema_version", "policy", "fail_on", "failed", "comparisons"}
    assert doc["failed"] is True and doc["fail_on"] == "drift" and doc["policy"]["text"] == EVERY_VERDICT_POLICY
    first, second = doc["comparisons"]
    assert {c["verdict"] for c in first["cases"]} == set(WORDS) and first["worst"] == "error"
    assert second["worst"] == "identical" and second["failing"] == []
    (report,) = first["case_reports"]
    assert report["case"] == ["c_drift", "cpu", "float32"] and report["worst_elements"][0]["ulp"] == 4


def test_report_json_is_the_data_the_html_embeds(outputs) -> None:
    doc = outputs["driftboard.comparison_report"]
    assert doc["kind"] == "driftboard.comparison_report" and doc["report_version"] == 1  # kept for older readers
    embedded = outputs["embedded report"]
    assert errors(embedded, "driftboard.comparison_report") == []
    assert {k: v for k, v in embedded.items() if k != "generated_at"} == {
        k: v for k, v in doc.items() if k != "generated_at"}


def test_runs_json_carries_verdict_words(outputs) -> None:
    doc = outputs["driftboard.runs"]
    assert doc["total"] == 3 and doc["page"] == doc["pages"] == 1
    verdicts = {run["run_id"]: run["verdict"] for run in doc["runs"]}
    assert verdicts == {"m0001-r00001-default": "identical", "m0002-r00001-default": "drift",
                        "m0003-r00001-default": None}  # no golden for the GPU run


def test_show_prints_the_manifest_unchanged(outputs) -> None:
    """The manifest had its envelope (format driftboard-run, the bundle's schema_version) before core.documents."""
    assert outputs[MANIFEST_FORMAT] == outputs["manifest in the bundle"]
    assert documents.schema_path(MANIFEST_FORMAT).name == "bundle.schema.json"


def test_fingerprint_json_keeps_its_sections(outputs) -> None:
    doc = outputs["driftboard.fingerprint"]
    assert doc["fingerprint_version"] >= 1 and doc["identity"]["label"] == "box" and doc["identity"]["tags"] == ["a"]
    assert {"os", "python", "torch", "cpu", "gpu", "numerics", "env", "identity"} <= set(doc)


# ---------------------------------------------------------------- the schemas themselves


@pytest.mark.parametrize("format_name", list(documents.FORMATS))
def test_every_registered_format_ships_a_valid_schema_for_its_name_and_version(format_name: str) -> None:
    found = schema(format_name)
    jsonschema.Draft202012Validator.check_schema(found)
    assert found["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert found["properties"]["format"] == {"const": format_name}
    assert found["properties"]["schema_version"] == {"const": documents.FORMATS[format_name]}
    assert {"format", "schema_version"} <= set(found["required"])


def test_every_written_format_is_registered() -> None:
    assert set(COMMANDS) <= set(documents.FORMATS)


@pytest.mark.parametrize("format_name", ["driftboard.compare", "driftboard.comparison_report", "driftboard.runs"])
def test_verdict_enums_are_the_verdict_words(format_name: str) -> None:
    defs = schema(format_name)["$defs"]
    assert defs["verdict"]["enum"] == WORDS
    if "counts" in defs:
        assert defs["counts"]["required"] == WORDS
        assert defs["case"]["properties"]["severity"]["maximum"] == Verdict.ERROR.severity == len(WORDS) - 1


def test_compare_and_report_describe_a_comparison_alike() -> None:
    """Both hold ``RunComparison.to_json()``: their shared definitions may not drift apart."""
    compare, report = schema("driftboard.compare")["$defs"], schema("driftboard.comparison_report")["$defs"]
    assert set(report) <= set(compare)
    assert {name: compare[name] for name in report} == report
    pattern = re.compile(schema("driftboard.compare")["properties"]["fail_on"]["pattern"])
    for gate in (*FAIL_ON, *TIER_GATES, "drift,tier:processes"):
        assert pattern.fullmatch(gate), gate
    assert not pattern.fullmatch("never,drift") and not pattern.fullmatch("tier:bogus")


# ---------------------------------------------------------------- the check can fail


def _broken(doc: dict[str, Any], path: tuple[Any, ...], value: Any = KeyError) -> dict[str, Any]:
    """A copy of ``doc`` with the key at ``path`` removed (``value`` KeyError) or set to ``value``."""
    out = copy.deepcopy(doc)
    node = out
    for part in path[:-1]:
        node = node[part]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


BROKEN = [
    ("driftboard.compare", ("format",), "driftboard.runs"),
    ("driftboard.compare", ("schema_version",), 2),
    ("driftboard.compare", ("failed",), KeyError),
    ("driftboard.compare", ("comparisons", 0, "cases", 0, "verdict"), "sideways"),
    ("driftboard.compare", ("comparisons", 0, "counts", "drift"), KeyError),
    ("driftboard.compare", ("comparisons", 0, "case_reports"), KeyError),
    ("driftboard.compare", ("comparisons", 0, "cases", 0, "metrics", "ulp", "max"), "4"),
    ("driftboard.comparison_report", ("format",), "driftboard.compare"),
    ("driftboard.comparison_report", ("comparisons", 0, "worst"), "bad"),
    ("driftboard.comparison_report", ("generated_at",), KeyError),
    ("driftboard.runs", ("format",), "runs"),
    ("driftboard.runs", ("runs", 0, "verdict"), "drifted"),
    ("driftboard.runs", ("runs", 0, "environment"), KeyError),
    ("driftboard.runs", ("total",), "3"),
    ("driftboard.goldens", ("goldens", 0, "run_id"), KeyError),
    ("driftboard.goldens", ("goldens", 0, "suite_version"), "1"),
    ("driftboard.fingerprint", ("format",), "driftboard.fingerprints"),
    ("driftboard.fingerprint", ("identity",), KeyError),
    ("driftboard.fingerprint", ("identity", "tags"), "a"),
    (MANIFEST_FORMAT, ("format",), "driftboard.manifest"),
    (MANIFEST_FORMAT, ("cases",), KeyError),
]


@pytest.mark.parametrize("format_name,path,value", BROKEN, ids=lambda x: str(x))
def test_a_wrong_name_missing_key_or_wrong_value_is_rejected(outputs, format_name: str, path: tuple[Any, ...],
                                                             value: Any) -> None:
    assert errors(outputs[format_name]) == []
    assert errors(_broken(outputs[format_name], path, value), format_name), f"{path} = {value!r} was accepted"


def test_an_added_key_keeps_the_version(outputs) -> None:
    """Adding a key does not change a format's version, so a schema accepts keys it does not know."""
    for format_name in ("driftboard.compare", "driftboard.comparison_report", "driftboard.runs",
                        "driftboard.fingerprint"):
        assert errors({**outputs[format_name], "added_later": 1}) == []


def test_document_puts_the_envelope_first() -> None:
    assert list(documents.document("driftboard.runs", {"total": 0})) == ["format", "schema_version", "total"]
    with pytest.raises(KeyError):
        documents.document("driftboard.nope", {})


def test_docs_describe_every_written_format() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "JSON.md").read_text(encoding="utf-8")
    sections = {part.split("`")[1]: part for part in text.split("\n## ")[1:]}
    for format_name, command in COMMANDS.items():
        name, flag = command.rsplit(" ", 1)  # "golden list --json": the command has two words
        assert f"driftboard {name}" in sections[format_name] and flag in sections[format_name], format_name
    assert set(sections) == set(documents.FORMATS)


def test_golden_list_json_names_each_golden(outputs) -> None:
    (golden,) = outputs["driftboard.goldens"]["goldens"]
    assert golden["run_id"] == "m0001-r00001-default" and golden["name"] == "default" and golden["set_by"] == "test"
