"""The ``/api/v1/`` routes: each checks access, calls one library function and answers its document.

Database work runs in Starlette's thread pool (the store is synchronous);
the body of a push is read asynchronously first (``body``), so a slow
client holds no thread, then validated, stored and judged in a worker
process (``db.push_workers``). The store is the server's shared one
(``db.store.shared_store`` of ``$DRIFTBOARD_DATABASE_URL``, which
``driftboard serve`` sets), the same the dashboard's pages use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from driftboard.core.errors import NotFoundError
from driftboard.dashboard.api import PREFIX
from driftboard.dashboard.api.access import Caller, authorize
from driftboard.dashboard.api.body import BodyLimits, receive_to_file
from driftboard.dashboard.api.responses import ApiError, Handler, error_response, guarded, json_response
from driftboard.db.push import JudgedPush
from driftboard.db.store import DEFAULT_GOLDEN, DEFAULT_POLICY, MAX_PER_PAGE, PER_PAGE, RunFilter, Store, shared_store

OPENAPI = Path(__file__).with_name("openapi.json")
BUNDLE_TYPE = "application/octet-stream"
JSON_TYPE = "application/json"
RUN_ID_CHARS = 64  # the runs.run_id column


def store() -> Store:
    return shared_store()  # $DRIFTBOARD_DATABASE_URL, resolved by shared_store


# ---------------------------------------------------------------- query parameters


def _text(request: Request, name: str, default: str | None = None, *, max_chars: int = 200) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ApiError(400, f"query parameter {name!r} is given {len(values)} times: give it once")
    if not values or values[0] == "":
        return default
    if len(values[0]) > max_chars:
        raise ApiError(400, f"query parameter {name!r} is longer than {max_chars} characters")
    return values[0]


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = _text(request, name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, f"query parameter {name!r} must be a whole number from {low} to {high}")
    return int(text)


VERSION_FILTERS = ("torch", "cuda", "cudnn", "driver", "gpu", "cpu_capability")  # as `driftboard runs` takes them


def _when(request: Request, name: str) -> date | datetime | None:
    """A date (YYYY-MM-DD) or an ISO 8601 time (UTC unless it says), as ``driftboard runs --since/--until``."""
    text = _text(request, name)
    if text is None:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _pair(request: Request, wanted: str) -> tuple[str, str]:
    """The ``baseline`` and ``candidate`` query parameters, both required."""
    baseline, candidate = _text(request, "baseline"), _text(request, "candidate")
    if not baseline or not candidate:
        raise ApiError(400, f"give both query parameters: {wanted}")
    return baseline, candidate


def _fail_on(request: Request) -> str:
    from driftboard.core.compare import FAIL_ON

    found = _text(request, "fail_on", "drift")
    if found not in FAIL_ON:
        raise ApiError(400, f"query parameter 'fail_on' must be one of {', '.join(FAIL_ON)}")
    return str(found)


def _verdict_word(request: Request) -> str | None:
    from driftboard.core.compare import Verdict

    found = _text(request, "verdict")
    if found is not None and found not in {v.value for v in Verdict}:
        raise ApiError(400, f"query parameter 'verdict' is not a verdict word: {found!r}")
    return found


def _policy_text(request: Request) -> str:
    from driftboard.core.compare import parse_policy

    text = _text(request, "policy", DEFAULT_POLICY) or DEFAULT_POLICY
    parse_policy(text)  # a PolicyError is a 400 naming what is wrong
    return text


# ---------------------------------------------------------------- handlers


@guarded
async def health(request: Request) -> Response:
    """Open to everyone (a load balancer's probe): the version and schema, once the database opened."""
    from driftboard.core.version import __version__
    from driftboard.db.migrate import head_revision

    await run_in_threadpool(store)
    return json_response({"status": "ok", "version": __version__, "schema": head_revision()})


@guarded
async def openapi(request: Request) -> Response:
    return Response(OPENAPI.read_bytes(), media_type="application/json")


@guarded
async def list_runs(request: Request) -> Response:
    from driftboard.db.documents import runs_document, runs_page

    await authorize(request, "view")
    tags = tuple(request.query_params.getlist("tag"))
    if any(not tag or len(tag) > 200 for tag in tags):
        raise ApiError(400, "query parameter 'tag' must be 1 to 200 characters")
    filters = RunFilter(machine=_text(request, "machine"), label=_text(request, "label"), tags=tags,
                        since=_when(request, "since"), until=_when(request, "until"),
                        **{name: _text(request, name) for name in VERSION_FILTERS},
                        variant=_text(request, "variant"), verdict=_verdict_word(request),
                        golden=_text(request, "golden", DEFAULT_GOLDEN) or DEFAULT_GOLDEN,
                        policy=_policy_text(request))
    page = _integer(request, "page", 1, 1, 10**9)
    per_page = _integer(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    result = await run_in_threadpool(lambda: runs_page(store(), filters, page=page, per_page=per_page))
    return json_response(runs_document(result))


@guarded
async def show_run(request: Request) -> Response:
    from driftboard.db.documents import stored_run_document

    await authorize(request, "view")
    golden = _text(request, "golden", DEFAULT_GOLDEN) or DEFAULT_GOLDEN
    run_id, policy = request.path_params["run_id"], _policy_text(request)
    doc = await run_in_threadpool(lambda: stored_run_document(store(), run_id, golden=golden, policy=policy))
    return json_response(doc)


@guarded
async def download_bundle(request: Request) -> Response:
    """The run as a bundle, rebuilt from the store (the same manifest, so the same digest as the one pushed)."""
    await authorize(request, "view")
    run_id, data = await run_in_threadpool(_bundle_of, request.path_params["run_id"])
    return Response(data, media_type=BUNDLE_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{run_id}.driftboard"'})


def _bundle_of(run_id: str) -> tuple[str, bytes]:
    from driftboard.core.bundle import bundle_bytes

    run, arrays = store().load_run(run_id)
    return run.run_id, bundle_bytes(run, arrays)


@guarded
async def compare(request: Request) -> Response:
    """``compare --json`` of two stored runs; ``baseline=golden`` is the golden that applies to the candidate."""
    await authorize(request, "view")
    baseline, candidate = _pair(request, "baseline (a run id, or golden) and candidate (a run id)")
    doc = await run_in_threadpool(_compare_document, baseline, candidate, _policy_text(request),
                                  _fail_on(request), _text(request, "golden", DEFAULT_GOLDEN) or DEFAULT_GOLDEN)
    return json_response(doc)


def _compare_document(baseline: str, candidate: str, policy: str, fail_on: str, golden: str) -> dict[str, Any]:
    from driftboard.core.compare import parse_policy
    from driftboard.core.compare.document import compare_document

    s = store()
    if baseline == "golden":
        baseline = _golden_of(s, candidate, golden)
    return compare_document([s.compare(baseline, candidate, policy)], parse_policy(policy), fail_on)


def _golden_of(s: Store, candidate: str, name: str) -> str:
    from driftboard.db.store.goldens import no_golden_text

    mark = s.golden_for(candidate, name=name)
    if mark is None:
        run = s.run(candidate)
        raise NotFoundError(no_golden_text(run.run_id, case_count=run.case_count, imported=run.imported, name=name))
    return mark.run_id


@guarded
async def goldens(request: Request) -> Response:
    from driftboard.db.documents import goldens_document

    await authorize(request, "view")
    marks = await run_in_threadpool(lambda: store().goldens())
    return json_response(goldens_document(marks))


@guarded
async def push(request: Request) -> Response:
    """A bundle as the body: 201 stored, 200 already stored, 4xx refused with nothing stored.

    The bundle is validated, stored and judged in one of the server's push worker processes
    (``db.push_workers``), so this process, which serves the pages too, only receives it.
    """
    from driftboard.db.push_workers import BrokenProcessPool, push_workers

    caller = await authorize(request, "upload")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != BUNDLE_TYPE:  # a browser cannot send this type to another site without asking first (CORS)
        raise ApiError(415, f"send the bundle as Content-Type: {BUNDLE_TYPE}")
    path = await receive_to_file(request, BodyLimits.from_env())
    try:
        workers = push_workers((await run_in_threadpool(store)).url)
        # The store logs the push in the write log, in the transaction that stores it: who, "api", from where.
        judged = await asyncio.wrap_future(workers.submit(path, name="the request body", uploader=caller.name,
                                                          channel="api", address=caller.address))
    except BrokenProcessPool:
        raise ApiError(503, "the push was interrupted: the server's worker process stopped; push again later "
                            "(a bundle already stored is answered 200)", {"Retry-After": "5"}) from None
    finally:
        path.unlink(missing_ok=True)
    return json_response(_push_answer(judged), 201 if judged.outcome.status == "stored" else 200)


def _push_answer(judged: JudgedPush) -> dict[str, Any]:
    outcome = judged.outcome
    if outcome.result is None:
        if outcome.retry:
            raise ApiError(503, f"not stored, the database is busy: {outcome.error}; push again later",
                           {"Retry-After": "5"})
        status = 500 if outcome.error.startswith("unexpected error") else 422
        raise ApiError(status, f"not stored: {outcome.error}")
    result = outcome.result
    return {"run_id": result.run_id, "stored": result.created, "verdict": judged.verdict, "golden": judged.golden}


@guarded
async def save_explanation(request: Request) -> Response:
    """A ``driftboard.explanation`` document as the body, kept with its pair of stored runs (an older one replaced).

    An uploader's action, like a push: a member who may push runs may keep what ``driftboard explain``
    found for them. The body is checked in full before anything is stored; the write log records it.
    """
    from driftboard.db.store.explanations import MAX_DOCUMENT

    caller = await authorize(request, "upload")
    data = await _json_bytes(request, MAX_DOCUMENT, "explanation", "an explanation")
    return json_response(await run_in_threadpool(_keep_explanation, data, caller), 201)


def _keep_explanation(data: bytes, caller: Caller) -> dict[str, Any]:
    from driftboard.core.errors import ExplanationError
    from driftboard.db.store.explanations import read_explanation

    try:
        found = read_explanation(data)
    except ExplanationError as exc:
        raise ApiError(422, f"not stored: {exc}") from None
    s = store()
    for side, run_id in (("baseline", found.baseline), ("candidate", found.candidate)):
        if _stored_id(s, run_id) != run_id:  # a prefix finds a run, but the document must name it in full
            raise NotFoundError(f"not stored: no run {run_id[:64]!r} (the explanation's {side}) on this server: "
                                "push it first")
    s.save_explanation(found, actor=caller.name, channel="api", address=caller.address)
    return {"baseline": found.baseline, "candidate": found.candidate, "verdict": found.verdict}


def _stored_id(s: Store, run_id: str) -> str | None:
    try:
        return s.run(run_id).run_id if len(run_id) <= RUN_ID_CHARS else None
    except NotFoundError:
        return None


@guarded
async def show_explanation(request: Request) -> Response:
    """The explanation kept for a pair of stored runs, as ``driftboard explain --json`` printed it."""
    from driftboard.db.remote import NO_EXPLANATION

    await authorize(request, "view")
    baseline, candidate = _pair(request, "baseline and candidate (run ids)")
    found = await run_in_threadpool(lambda: store().explanation(baseline, candidate))
    if found is None:
        raise ApiError(404, f"{NO_EXPLANATION} {baseline} (baseline) and {candidate} (candidate): "
                            f"run driftboard explain --server URL {baseline} {candidate}")
    return json_response(found.to_json())


@guarded
async def set_golden(request: Request) -> Response:
    """``{"run_id", "name", "reason"}`` as the body: make that run a golden. An admin's action (``golden``);
    the store logs it (who, "api", from where) in the transaction that marks it. Answers the golden's entry."""
    from driftboard.db.documents import golden_json
    caller = await authorize(request, "golden")
    fields = await _json_body(request, GOLDEN_FIELDS, "a golden")
    run_id, name, reason = fields["run_id"], fields.get("name", DEFAULT_GOLDEN), fields.get("reason", "")
    mark = await run_in_threadpool(lambda: store().set_golden(run_id, name=name, set_by=caller.name, reason=reason,
                                                              channel="api", address=caller.address))
    return json_response(golden_json(mark))


@guarded
async def clear_golden(request: Request) -> Response:
    """Remove the golden ``name`` that applies to ``run_id`` (as ``driftboard golden clear``); admin, logged."""
    caller = await authorize(request, "golden")
    run_id = _text(request, "run_id", max_chars=RUN_ID_CHARS)
    if not run_id:
        raise ApiError(400, "give the query parameter run_id: the golden that applies to that run is cleared")
    name = _text(request, "name", DEFAULT_GOLDEN, max_chars=64) or DEFAULT_GOLDEN
    return json_response(await run_in_threadpool(_clear_golden, run_id, name, caller))


def _clear_golden(run_id: str, name: str, caller: Caller) -> dict[str, Any]:
    from driftboard.db.documents import golden_json

    s = store()
    mark = s.golden_for(run_id, name=name)
    if mark is None or not s.clear_golden(mark.key, actor=caller.name, channel="api", address=caller.address):
        _golden_of(s, run_id, name)  # raises the 404 that says why there is none
        raise NotFoundError(f"no golden {name!r} applies to run {run_id}")
    return {"cleared": golden_json(mark)}


@guarded
async def delete_run(request: Request) -> Response:
    """Delete a run named by its full id (never a prefix: a delete must not guess); admin, logged."""
    caller = await authorize(request, "delete")
    run_id = request.path_params["run_id"]
    return json_response(await run_in_threadpool(_delete_run, run_id, caller))


def _delete_run(run_id: str, caller: Caller) -> dict[str, Any]:
    s = store()
    if _stored_id(s, run_id) != run_id:
        raise NotFoundError(f"no run {run_id[:RUN_ID_CHARS]!r} on this server (give the full run id to delete)")
    result = s.delete_run(run_id, actor=caller.name, channel="api", address=caller.address)
    return dataclasses.asdict(result)  # run_id, arrays_removed, bytes_freed


async def _json_bytes(request: Request, most: int, name: str, what: str) -> bytes:
    """A JSON body of at most ``most`` bytes, read whole (``name``/``what`` word its errors); 415 for another type."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != JSON_TYPE:  # a browser cannot send this type to another site without asking first (CORS)
        raise ApiError(415, f"send {what} as Content-Type: {JSON_TYPE}")
    path = await receive_to_file(request, BodyLimits.from_env().sized(most, name, what))
    try:
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


GOLDEN_FIELDS = {"run_id": RUN_ID_CHARS, "name": 64, "reason": 1000}  # field -> most characters
MAX_ADMIN_BODY = 4096


async def _json_body(request: Request, fields: dict[str, int], what: str) -> dict[str, str]:
    """A small JSON object of text fields (``run_id`` required), checked in full before anything is done."""
    data = await _json_bytes(request, MAX_ADMIN_BODY, what, what)
    try:
        found = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, f"the body is not JSON: send {what} as a JSON object") from None
    if not isinstance(found, dict):
        raise ApiError(400, f"the body must be a JSON object with {', '.join(fields)}")
    unknown = sorted(set(found) - set(fields))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (the fields are {', '.join(fields)})")
    for field, value in found.items():
        if not isinstance(value, str) or len(value) > fields[field]:
            raise ApiError(400, f"field {field!r} must be text of at most {fields[field]} characters")
    if not found.get("run_id"):
        raise ApiError(400, "field 'run_id' is required")
    return found


# path -> method -> handler: every operation of the API, as openapi.json describes them
OPERATIONS: dict[str, dict[str, Handler]] = {
    f"{PREFIX}/health": {"GET": health},
    f"{PREFIX}/openapi.json": {"GET": openapi},
    f"{PREFIX}/runs": {"GET": list_runs, "POST": push},
    f"{PREFIX}/runs/{{run_id}}": {"GET": show_run, "DELETE": delete_run},
    f"{PREFIX}/runs/{{run_id}}/bundle": {"GET": download_bundle},
    f"{PREFIX}/compare": {"GET": compare},
    f"{PREFIX}/golden": {"GET": goldens, "PUT": set_golden, "DELETE": clear_golden},
    f"{PREFIX}/explanations": {"GET": show_explanation, "POST": save_explanation},
}


def _dispatch(by_method: dict[str, Handler]) -> Handler:
    """One route per path, so a method the path does not take is a JSON 405 naming those it does."""
    allowed = ", ".join(sorted({*by_method, "HEAD"} if "GET" in by_method else by_method))

    async def run(request: Request) -> Response:
        handler = by_method.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            return error_response(405, f"{request.method} is not allowed here (allowed: {allowed})",
                                  {"Allow": allowed})
        return await handler(request)

    return run


async def not_found(request: Request) -> Response:
    return error_response(404, f"no API route {request.url.path} (see {PREFIX}/openapi.json)")


EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # a function route takes GET only
ROUTES: list[Route] = [
    *(Route(path, _dispatch(by_method), methods=EVERY_METHOD) for path, by_method in OPERATIONS.items()),
    Route("/api/{rest:path}", not_found, methods=EVERY_METHOD),  # under /api/, never the dashboard's page
]


def described_operations() -> set[tuple[str, str]]:
    """(path, method) of every operation in ``openapi.json``, for the test that keeps it and the routes in step."""
    doc = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item
            if method in ("get", "post", "put", "delete", "patch")}


def served_operations() -> set[tuple[str, str]]:
    return {(path, method) for path, by_method in OPERATIONS.items() for method in by_method}
