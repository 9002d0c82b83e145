"""The team API and its committed OpenAPI document agree: the same operations, and real answers that match it.

Property-based: schemathesis generates requests from ``dashboard/api/openapi.json``
(valid and invalid query values, random run ids and bodies) against a real
``driftboard serve`` and checks each answer against the document: no 5xx, a
documented status, the documented content type and a body matching its schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from api_server import Server, serving
from db_factory import make_bundle
from explanation_factory import explanation

from driftboard.dashboard.api import routes as api_routes

EXPLANATION = explanation("m0001-r00001-default", "m0002-r00001-default")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402


@pytest.fixture(scope="module")
def open_server(tmp_path_factory) -> Iterator[Server]:
    """A server without an access file (every action open), holding two runs, one of them the golden.

    Open means schemathesis may delete too: a delete takes a run's full id (never a prefix), which its
    random ids do not hit, so the runs the other checks use stay."""
    directory = tmp_path_factory.mktemp("api-openapi")
    with serving(f"sqlite:///{directory / 'team.sqlite'}", directory,
                 env={"DRIFTBOARD_API_IDLE_SECONDS": "2", "DRIFTBOARD_API_BODY_SECONDS": "4"}) as server:
        for machine in (1, 2):
            assert server.push(make_bundle(machine, 1)).status == 201
        from driftboard.db.store import Store

        with Store(server.url) as store:
            store.set_golden("m0001-r00001-default", set_by="test")
            store.save_explanation(explanation("m0001-r00001-default", "m0002-r00001-default"))
        yield server


def test_every_served_operation_is_described_and_every_described_one_is_served() -> None:
    assert api_routes.served_operations() == api_routes.described_operations()


def test_the_document_is_valid_openapi_3_1_and_served_as_committed(open_server: Server) -> None:
    doc = json.loads(api_routes.OPENAPI.read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(doc)  # raises on a document it cannot use
    served = open_server.get("/api/v1/openapi.json")
    assert served.status == 200 and served.json() == doc


def test_every_documented_operation_answers_as_documented(open_server: Server) -> None:
    base = f"http://127.0.0.1:{open_server.port}"
    for path, method in sorted(api_routes.described_operations()):
        concrete = path.replace("{run_id}", "m0002-r00001-default")
        if path.endswith("/compare"):
            concrete += "?baseline=golden&candidate=m0002-r00001-default"
        body, kind = (make_bundle(3, 1) if method == "POST" else None), "application/octet-stream"
        if path.endswith("/explanations"):
            concrete += "?baseline=m0001-r00001-default&candidate=m0002-r00001-default"
            body, kind = (json.dumps(EXPLANATION.to_json()).encode() if method == "POST" else None), "application/json"
        if method == "DELETE" and path.endswith("{run_id}"):  # the run POST pushed, not one the checks use
            concrete = path.replace("{run_id}", "m0003-r00001-default")
        if path.endswith("/golden") and method != "GET":  # cleared, then set again as the fixture had it
            concrete += "?run_id=m0002-r00001-default" if method == "DELETE" else ""
            body, kind = json.dumps({"run_id": "m0001-r00001-default"}).encode(), "application/json"
        answer = open_server.request(method, concrete, body, {"Content-Type": kind})
        assert answer.status in (200, 201), (base, method, concrete, answer.body[:200])
    assert open_server.get("/api/v1/runs/m0003-r00001-default").status == 404
    assert [g["run_id"] for g in open_server.get("/api/v1/golden").json()["goldens"]] == ["m0001-r00001-default"]


def test_answers_match_the_document(open_server: Server) -> None:
    """Each operation under generated requests (schemathesis's strategies, driven by hypothesis here: its pytest
    plugin does not load under this pytest)."""
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{open_server.port}/api/v1/openapi.json")
    checked = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_documented(case) -> None:
            # Any bytes are a schema-valid body, but only a real bundle is: refusing the rest (422) is right;
            # a valid golden or delete request names a run this server may not have (404).
            excluded = [positive_data_acceptance] if case.method in ("POST", "PUT", "DELETE") else []
            case.call_and_validate(excluded_checks=excluded)

        answers_as_documented()
        checked.append(operation.label)
    described = {f"{method} {path}" for path, method in api_routes.described_operations()}
    assert set(checked) == described - {"GET /api/v1/openapi.json"}  # schemathesis leaves the document itself out
