"""The team server's HTTP API from a client: push bundles, list runs, fetch bundles and goldens, keep explanations;
with an admin's token, mark and clear goldens and delete runs.

``driftboard push --server URL`` and the ``--server`` option of ``runs``,
``compare``, ``report``, ``golden list``/``set``/``clear`` and ``explain`` use ``TeamServer``. It needs only
the standard library (``http.client``), so a pushing process starts fast and
never imports torch, numpy or SQLAlchemy; comparing loads the fetched bundles
with the library as if they were local files.

- The token comes from ``$DRIFTBOARD_TOKEN`` or a file (``read_token``), never
  from the command line, where any user of the machine can read it in the
  process list. It is sent only in the ``Authorization`` header and never
  appears in a message: any text that contained it is redacted first.
- Every error is a ``DriftboardError`` with one line: the server's own
  ``{"error": ...}`` line and the HTTP status, or why the server could not be
  reached.
- Connection errors, 5xx and 429 are retried with exponential backoff (429 and
  503 wait the ``Retry-After`` the server asks for, bounded). A 4xx is never
  retried: the same request would be refused again. Retrying a push is safe:
  the server stores a bundle by its run id and content digest, so a push whose
  answer was lost stores nothing twice, and answers "already stored" the
  second time; an explanation replaces the one of its pair, so keeping it twice
  keeps it once; marking a golden twice leaves it marked. A delete whose answer
  was lost is answered 404 when retried: the run is gone either way.
- Uploads stream from the file (a 64 MiB bundle is never held in memory);
  downloads are bounded by the bundle size limit.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from driftboard.core.errors import DriftboardError, NotFoundError

if TYPE_CHECKING:
    from driftboard.core.explain.result import Explanation
    from driftboard.core.run import ArraySource, Run
    from driftboard.db.store.results import Golden, RunPage

TOKEN_ENV = "DRIFTBOARD_TOKEN"
API = "/api/v1/"
MAX_BUNDLE_BYTES = 64 * 2**20  # core.bundle.DEFAULT_LIMITS.file_bytes (not imported: it would load numpy)
MAX_JSON_BYTES = 64 * 2**20
MAX_EXPLANATION_BYTES = 4 * 2**20  # db.store.explanations.MAX_DOCUMENT (not imported: it would load SQLAlchemy)
NO_EXPLANATION = "no explanation stored for"  # how the server's 404 for a pair without one begins
TOKEN_FILE_BYTES = 4096
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_CHUNK = 256 * 1024


class ServerError(DriftboardError):
    """The team server refused a request, or could not be reached; ``status`` is 0 when no answer came."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


def read_token(token_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the file's first line when ``token_file`` is given, else ``$DRIFTBOARD_TOKEN``, else None.

    A file that cannot be read, is empty or is too large is one line naming the file (never its content).
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            with path.open("rb") as handle:
                raw = handle.read(TOKEN_FILE_BYTES + 1)
        except OSError as exc:
            raise DriftboardError(f"cannot read token file {path}: {exc.strerror or type(exc).__name__}") from None
        if len(raw) > TOKEN_FILE_BYTES:
            raise DriftboardError(f"token file {path} is larger than {TOKEN_FILE_BYTES} bytes: not a token")
        try:
            lines = raw.decode("utf-8").strip().splitlines()
        except UnicodeDecodeError:
            raise DriftboardError(f"token file {path} is not UTF-8 text") from None
        if not lines or not lines[0].strip():
            raise DriftboardError(f"token file {path} is empty")
        return _checked(lines[0].strip(), f"token file {path}")
    value = (environ if environ is not None else os.environ).get(TOKEN_ENV, "").strip()
    return _checked(value, f"${TOKEN_ENV}") if value else None


def _checked(token: str, where: str) -> str:
    if any(ord(c) < 33 or ord(c) > 126 for c in token):
        raise DriftboardError(f"{where} holds characters a token never has (spaces, control or non-ASCII)")
    return token


@dataclass(frozen=True)
class PushReply:
    """The server's answer to one push: ``stored`` False when the bundle was already there."""

    run_id: str
    stored: bool
    verdict: str | None  # worst verdict against the golden, None when no golden applies
    golden: str | None  # the golden run judged against
    document: dict[str, Any]


@dataclass(frozen=True)
class Retry:
    """How hard to try: ``attempts`` in all, waits of ``backoff`` × 2**n seconds (jittered), none above ``max_wait``."""

    attempts: int = 4
    backoff: float = 0.5
    max_wait: float = 30.0


class TeamServer:
    """One driftboard team server (``driftboard serve``), by its base URL: ``https://drift.example.com``."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0, retry: Retry = Retry(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(url.strip())
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise DriftboardError(f"not a server URL: {_shown_url(url)} (its port is not a number)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DriftboardError(f"not a server URL: {_shown_url(url)} (expected http://host:port or https://host)")
        if parts.username or parts.password:
            raise DriftboardError(f"server URL {_shown_url(url)} holds a user name or password: give the token "
                                  f"in ${TOKEN_ENV} or with --token-file instead")
        if parts.query or parts.fragment:
            raise DriftboardError(f"server URL {_shown_url(url)} has a query or fragment: give the base URL only")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/") + API
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._token = token
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"TeamServer({self.url!r})"  # never the token

    # ------------------------------------------------------------ the API

    def health(self) -> dict[str, Any]:
        return self._json("GET", "health")

    def push(self, path: str | Path) -> PushReply:
        """Upload one bundle file (streamed); retried safely, since the server dedupes by run id and content."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DriftboardError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        if not path.is_file():
            raise DriftboardError(f"not a bundle file: {path}")
        if size > MAX_BUNDLE_BYTES:
            raise DriftboardError(f"invalid bundle: file: {size} bytes exceeds the limit of {MAX_BUNDLE_BYTES}")

        def body() -> IO[bytes]:
            try:
                return path.open("rb")
            except OSError as exc:
                raise DriftboardError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None

        status, data = self._request("POST", "runs", body=body, length=size,
                                     content_type="application/octet-stream", limit=MAX_JSON_BYTES)
        doc = self._parse(data, status)
        run_id = doc.get("run_id")
        if not isinstance(run_id, str):
            raise ServerError(f"{self.url} answered the push without a run id (HTTP {status})", status)
        verdict, golden = doc.get("verdict"), doc.get("golden")
        return PushReply(run_id, bool(doc.get("stored", status == 201)), _worst(verdict), _golden_run(golden), doc)

    def runs(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``driftboard.runs`` document of one page: filters as ``driftboard runs`` names them (None: any)."""
        return self._json("GET", "runs", _query(filters or {}))

    def run(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"runs/{quote(run_id, safe='')}")

    def bundle(self, run_id: str) -> bytes:
        """A stored run's bundle bytes (at most the bundle size limit)."""
        _, data = self._request("GET", f"runs/{quote(run_id, safe='')}/bundle", limit=MAX_BUNDLE_BYTES)
        return data

    def compare(self, baseline: str, candidate: str, policy: str | None = None) -> dict[str, Any]:
        """The server's ``driftboard.compare`` document; ``baseline`` may be ``golden``."""
        params = {"baseline": baseline, "candidate": candidate, **({"policy": policy} if policy else {})}
        return self._json("GET", "compare", urlencode(params))

    def goldens(self) -> dict[str, Any]:
        """The ``driftboard.goldens`` document."""
        return self._json("GET", "golden")

    def set_golden(self, run_id: str, *, name: str = "default", reason: str = "") -> dict[str, Any]:
        """Make ``run_id`` the golden ``name`` on the server (an admin token); its ``golden list --json`` entry.
        Retried safely: marking the same run twice leaves it the golden."""
        body = json.dumps({"run_id": run_id, "name": name, "reason": reason}).encode()
        status, data = self._request("PUT", "golden", body=lambda: io.BytesIO(body), length=len(body),
                                     content_type="application/json", limit=MAX_JSON_BYTES)
        return self._parse(data, status)

    def clear_golden(self, run_id: str, *, name: str = "default") -> dict[str, Any]:
        """Remove the golden ``name`` that applies to ``run_id`` (an admin token); ``{"cleared": entry}``."""
        return self._json("DELETE", "golden", urlencode({"run_id": run_id, "name": name}))

    def delete_run(self, run_id: str) -> dict[str, Any]:
        """Delete the run with exactly this id (an admin token); ``{"run_id", "arrays_removed", "bytes_freed"}``."""
        return self._json("DELETE", f"runs/{quote(run_id, safe='')}")

    def save_explanation(self, explanation: Explanation) -> dict[str, Any]:
        """Keep ``explanation`` with its pair of runs on the server (both stored there), replacing an older one;
        the server's answer: ``{"baseline", "candidate", "verdict"}``. Retried safely: saving twice keeps one."""
        body = json.dumps(explanation.to_json(), allow_nan=False, separators=(",", ":")).encode()
        if len(body) > MAX_EXPLANATION_BYTES:
            raise DriftboardError(f"the explanation is over the {MAX_EXPLANATION_BYTES // 2**20} MiB limit of "
                                  "a document: not sent")
        status, data = self._request("POST", "explanations", body=lambda: io.BytesIO(body), length=len(body),
                                     content_type="application/json", limit=MAX_JSON_BYTES)
        return self._parse(data, status)

    def explanation(self, baseline: str, candidate: str) -> Explanation | None:
        """The explanation kept on the server for (baseline, candidate), or None; unknown runs raise."""
        from driftboard.core.explain.result import Explanation

        try:
            doc = self._json("GET", "explanations", urlencode({"baseline": baseline, "candidate": candidate}))
        except ServerError as exc:
            if exc.status == 404 and str(exc).startswith(NO_EXPLANATION):
                return None
            raise
        try:
            return Explanation.from_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError(f"{self.url} answered an explanation driftboard cannot read: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]}") from None

    # ------------------------------------------------------------ runs for the comparing commands

    def load_run(self, run_id: str) -> tuple[Run, ArraySource]:
        """A stored run as its bundle, fetched and validated like a local file."""
        from driftboard.core.bundle import read_bundle

        bundle = read_bundle(self.bundle(run_id))
        return bundle.run, bundle.arrays

    def golden_run_id(self, run: Run, name: str = "default") -> str:
        """The run id of the golden ``name`` that applies to ``run`` (same suite version and device class)."""
        from driftboard.core.run import device_class

        want = (name, run.suite_id, run.suite_version, device_class(run))
        for entry in golden_entries(self.goldens()):
            if (entry["name"], entry["suite_id"], entry["suite_version"], entry["device_class"]) == want:
                return str(entry["run_id"])
        raise NotFoundError(f"no golden {name!r} on {self.url} for {run.suite_id} v{run.suite_version} on "
                            f"{want[3]}: set one there first (driftboard golden set, or the Runs page)")

    # ------------------------------------------------------------ HTTP

    def _json(self, method: str, path: str, query: str = "") -> dict[str, Any]:
        status, data = self._request(method, path + (f"?{query}" if query else ""), limit=MAX_JSON_BYTES)
        return self._parse(data, status)

    def _parse(self, data: bytes, status: int) -> dict[str, Any]:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ServerError(f"{self.url} answered HTTP {status} with something that is not JSON: is it a "
                              "driftboard server?", status) from None
        if not isinstance(doc, dict):
            raise ServerError(f"{self.url} answered HTTP {status} with JSON that is not an object", status)
        return doc

    def _request(self, method: str, path: str, *, body: Callable[[], IO[bytes]] | None = None, length: int = 0,
                 content_type: str | None = None, limit: int) -> tuple[int, bytes]:
        """(status, body) of a 2xx answer, after the retries; anything else raises ``ServerError``."""
        retry = self._retry
        last = ""
        for attempt in range(1, retry.attempts + 1):
            try:
                status, headers, data = self._once(method, path, body, length, content_type, limit)
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut short
                last = f"cannot reach {self.url}: {_reason(exc)}"
                wait = None
                status = 0
            else:
                if 200 <= status < 300:
                    return status, data
                message = self._error_line(status, headers, data)
                if status not in RETRY_STATUSES:
                    raise ServerError(self._redacted(message), status)
                last = message
                wait = _retry_after(headers.get("retry-after"))
            if attempt == retry.attempts:
                break
            backoff = retry.backoff * 2 ** (attempt - 1) * random.uniform(0.75, 1.0)
            self._sleep(min(retry.max_wait, wait if wait is not None else backoff))
        tried = f"tried {retry.attempts} times" if retry.attempts > 1 else "tried once"
        raise ServerError(self._redacted(f"{last} ({tried})"), status)

    def _once(self, method: str, path: str, body: Callable[[], IO[bytes]] | None, length: int,
              content_type: str | None, limit: int) -> tuple[int, Mapping[str, str], bytes]:
        conn = self._connection()
        stream = body() if body is not None else None
        try:
            headers = {"Accept": "application/json", "User-Agent": _user_agent()}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            if stream is not None:
                headers["Content-Type"] = content_type or "application/octet-stream"
                headers["Content-Length"] = str(length)
            try:
                conn.request(method, self._prefix + path, body=stream, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The server answered before reading the whole body (413, 401) and closed: read that answer.
                if conn.sock is None:
                    raise
            response = conn.getresponse()
            data = response.read(limit + 1)
            if len(data) > limit:
                raise ServerError(f"{self.url} answered with more than {limit} bytes: refused", response.status)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            if stream is not None:
                stream.close()
            conn.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            import ssl  # only for https: a push over plain HTTP on loopback does not pay for it

            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=ssl.create_default_context(), blocksize=_CHUNK)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout, blocksize=_CHUNK)

    def _error_line(self, status: int, headers: Mapping[str, str], data: bytes) -> str:
        """The server's one-line ``{"error": ...}``, else the status and its reason (a proxy's HTML page)."""
        text = ""
        try:
            doc = json.loads(data)
            if isinstance(doc, dict) and isinstance(doc.get("error"), str):
                text = doc["error"]
        except (ValueError, UnicodeDecodeError):
            pass
        text = " ".join(text.split())[:500]
        reason = http.client.responses.get(status, "error")
        hint = ""
        if 300 <= status < 400 and headers.get("location"):  # a proxy sending http:// to https://, say
            hint = f"; it redirects to {_shown_url(headers['location'])[:200]}: give --server that address"
        if status == 401 and not self._token:
            hint = f"; no token was given: set ${TOKEN_ENV} or use --token-file PATH"
        return f"{text or reason} (HTTP {status} from {self.url}{hint})"

    def _redacted(self, message: str) -> str:
        return message.replace(self._token, "***") if self._token else message


@dataclass(frozen=True)
class RemoteOutcome:
    """What happened to one file pushed to a server: its reply, or the one-line error."""

    name: str
    reply: PushReply | None
    error: str = ""


def push_many(server: TeamServer, paths: Sequence[str | Path],
              report: Callable[[RemoteOutcome], None] | None = None) -> list[RemoteOutcome]:
    """Push each file on its own, in order, like ``db.push.push_files``: a refused file never stops the others.

    Except a refused token (401, 403): every later file would be refused the same way (and count
    against the server's limit of wrong tokens), so they are reported as not tried.
    """
    outcomes: list[RemoteOutcome] = []

    def done(outcome: RemoteOutcome) -> None:
        outcomes.append(outcome)
        if report is not None:
            report(outcome)

    for i, path in enumerate(paths):
        try:
            done(RemoteOutcome(str(path), server.push(path)))
        except ServerError as exc:
            done(RemoteOutcome(str(path), None, f"not stored: {exc}"))
            if exc.status in (401, 403):
                for rest in paths[i + 1:]:
                    done(RemoteOutcome(str(rest), None, "not tried: the server refused the token"))
                break
        except DriftboardError as exc:
            done(RemoteOutcome(str(path), None, f"not stored: {exc}"))
    return outcomes


def golden_entries(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The goldens of a ``driftboard.goldens`` document, each checked to hold what a comparison needs."""
    entries = doc.get("goldens")
    if not isinstance(entries, list):
        raise ServerError("the server's golden list has no 'goldens' list: is it a driftboard server?")
    keys = ("name", "suite_id", "suite_version", "device_class", "run_id")
    return [entry for entry in entries if isinstance(entry, dict) and all(k in entry for k in keys)]


def run_page(doc: Mapping[str, Any]) -> RunPage:
    """A ``driftboard.runs`` document read back into the ``RunPage`` it was made from (the table prints it)."""
    from dataclasses import fields
    from datetime import datetime

    from driftboard.db.store.results import EnvironmentSummary, RunPage, RunSummary

    summary_fields = {f.name for f in fields(RunSummary)}
    env_fields = [f.name for f in fields(EnvironmentSummary)]
    try:
        runs = []
        for item in doc["runs"]:
            values = {key: value for key, value in item.items() if key in summary_fields}
            values["captured_at"] = datetime.fromisoformat(item["captured_at"])
            values["uploaded_at"] = datetime.fromisoformat(item["uploaded_at"])
            values["tags"] = tuple(item.get("tags") or ())
            values["environment"] = EnvironmentSummary(**{k: item["environment"].get(k) for k in env_fields})
            runs.append(RunSummary(**values))
        return RunPage(tuple(runs), int(doc["total"]), int(doc["page"]), int(doc["per_page"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DriftboardError(f"not a driftboard.runs document the table can show: {type(exc).__name__}: "
                              f"{exc}") from None


def golden_marks(doc: Mapping[str, Any]) -> list[Golden]:
    """A ``driftboard.goldens`` document read back into ``Golden`` marks (``golden list`` prints them)."""
    from datetime import datetime

    from driftboard.db.store.results import Golden, GoldenKey

    try:
        return [Golden(GoldenKey(e["name"], e["suite_id"], int(e["suite_version"]), e["device_class"]), e["run_id"],
                       e.get("set_by", ""), datetime.fromisoformat(e["set_at"]), e.get("reason", ""))
                for e in golden_entries(doc)]
    except (KeyError, TypeError, ValueError) as exc:
        raise DriftboardError(f"not a driftboard.goldens document: {type(exc).__name__}: {exc}") from None


def _query(filters: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in filters.items():
        if value is None or value == () or value == []:
            continue
        values: Iterable[Any] = value if isinstance(value, (list, tuple)) else (value,)
        pairs += [(key, v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in values]
    return urlencode(pairs)


def _worst(verdict: Any) -> str | None:
    if isinstance(verdict, dict):
        verdict = verdict.get("worst")
    return verdict if isinstance(verdict, str) else None


def _golden_run(golden: Any) -> str | None:
    if isinstance(golden, dict):
        golden = golden.get("run_id")
    return golden if isinstance(golden, str) else None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if type(exc).__module__ == "ssl":  # ssl.SSLError and its kinds, without importing ssl for plain HTTP
        return f"TLS: {getattr(exc, 'reason', None) or exc}"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]


def _shown_url(url: str) -> str:
    """A URL for a message: any user name or password in it hidden."""
    parts = urlsplit(url.strip())
    if "@" in parts.netloc:
        return f"{parts.scheme}://***@{parts.netloc.rsplit('@', 1)[1]}{parts.path}"
    return url.strip()[:300]


def _user_agent() -> str:
    from driftboard.core.version import __version__

    return f"driftboard/{__version__}"
