"""The ``/api/v1/`` routes: each checks access, calls one library function and answers its document.

Database work runs in Starlette's thread pool (the store is synchronous);
the body of a push is read asynchronously first (``body``), so a slow
client holds no thread. The store is the server's shared one
(``db.store.shared_store`` of ``$DRIFTBOARD_DATABASE_URL``, which
``driftboard serve`` sets), the same the dashboard's pages use.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from driftboard.core.errors import DriftboardError, NotFoundError
from driftboard.dashboard.api import PREFIX
from driftboard.dashboard.api.access import Caller, authorize
from driftboard.dashboard.api.body import BodyLimits, receive_to_file
from driftboard.dashboard.api.responses import ApiError, Handler, error_response, guarded, json_response
from driftboard.db.store import DEFAULT_GOLDEN, DEFAULT_POLICY, MAX_PER_PAGE, PER_PAGE, RunFilter, Store, shared_store

log = logging.getLogger(__name__)

OPENAPI = Path(__file__).with_name("openapi.json")
BUNDLE_TYPE = "application/octet-stream"


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
    baseline, candidate = _text(request, "baseline"), _text(request, "candidate")
    if not baseline or not candidate:
        raise ApiError(400, "give both query parameters: baseline (a run id, or golden) and candidate (a run id)")
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
    """A bundle as the body: 201 stored, 200 already stored, 4xx refused with nothing stored."""
    caller = await authorize(request, "upload")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != BUNDLE_TYPE:  # a browser cannot send this type to another site without asking first (CORS)
        raise ApiError(415, f"send the bundle as Content-Type: {BUNDLE_TYPE}")
    path = await receive_to_file(request, BodyLimits.from_env())
    try:
        answer = await run_in_threadpool(_push_file, path, caller)
    finally:
        path.unlink(missing_ok=True)
    return json_response(answer, 201 if answer["stored"] else 200)


def _push_file(path: Path, caller: Caller) -> dict[str, Any]:
    from driftboard.db.push import push_files

    s = store()
    # The store logs the push in the write log, in the transaction that stores it: who, "api", from where.
    (outcome,) = push_files(s, [("the request body", path)], uploader=caller.name, channel="api",
                            address=caller.address)
    if outcome.result is None:
        if outcome.retry:
            raise ApiError(503, f"not stored, the database is busy: {outcome.error}; push again later",
                           {"Retry-After": "5"})
        status = 500 if outcome.error.startswith("unexpected error") else 422
        raise ApiError(status, f"not stored: {outcome.error}")
    result = outcome.result
    verdict, golden = _verdict(s, result.run_id)
    return {"run_id": result.run_id, "stored": result.created, "verdict": verdict, "golden": golden}


def _verdict(s: Store, run_id: str) -> tuple[str | None, str | None]:
    """The run's worst verdict against its golden, and that golden; (None, None) when none applies or it failed."""
    try:
        found = s.verdict(run_id)
    except DriftboardError as exc:  # stored all the same: the client learns the verdict from compare
        log.warning("api: run %s stored, its verdict not computed: %s", run_id, exc)
        return None, None
    return (found.worst, found.golden_run_id) if found is not None else (None, None)


# path -> method -> handler: every operation of the API, as openapi.json describes them
OPERATIONS: dict[str, dict[str, Handler]] = {
    f"{PREFIX}/health": {"GET": health},
    f"{PREFIX}/openapi.json": {"GET": openapi},
    f"{PREFIX}/runs": {"GET": list_runs, "POST": push},
    f"{PREFIX}/runs/{{run_id}}": {"GET": show_run},
    f"{PREFIX}/runs/{{run_id}}/bundle": {"GET": download_bundle},
    f"{PREFIX}/compare": {"GET": compare},
    f"{PREFIX}/golden": {"GET": goldens},
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
