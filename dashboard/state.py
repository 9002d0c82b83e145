"""The dashboard's database and what it may cache: the Streamlit glue the pages share.

- The database URL comes from ``$DRIFTBOARD_DATABASE_URL`` (``driftboard serve``
  sets it), else the default SQLite file: ``db.session.database_url``.
- One ``Store`` per URL for the whole server (``db.store.shared_store``): the
  engine and its connection pool are shared by every session, and closed when
  evicted or at exit.
- Only results that cannot go stale are cached (``st.cache_data``): a comparison
  is keyed by the bundle digests of its two runs, so a run deleted and stored
  again with other content is never answered from the cache. Lists of runs,
  goldens and machines are read fresh on every rerun (they are milliseconds).
- A ``DriftboardError`` (bad URL, out-of-date schema, unknown run) becomes one
  ``st.error`` line and stops the page; anything else is a bug and keeps its
  traceback.
- Access (``dashboard.auth``): the policy comes from ``$DRIFTBOARD_AUTH_FILE``
  (``driftboard serve --auth`` sets it), read once per server. A session's role
  is derived on every rerun: in ``tokens`` mode from the member the session
  unlocked (kept as an ``Unlocked`` object, which no message from a browser can
  forge: widget values are plain data), in ``oidc`` mode from ``st.user``'s
  e-mail (above viewer only when the provider vouches for it). Pages ask
  ``allowed(action)`` before showing a control and again in the callback that
  acts, so a hidden control is also a refused one.
- Wrong tokens are counted per client address and overall by one
  ``AttemptLimiter`` for the whole process (a module global, so neither a new
  session nor a cleared Streamlit cache resets it).
- Clearing the caches is an admin's action (``clear_caches``); Streamlit's own
  "Clear cache" message is refused before it reaches the app
  (``dashboard.guards``, installed by ``driftboard serve``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import streamlit as st

from driftboard.core.compare import RunComparison
from driftboard.core.errors import DriftboardError
from driftboard.dashboard import access_file, auth, data
from driftboard.dashboard.auth import AccessPolicy, Role
from driftboard.dashboard.format import safe_text
from driftboard.dashboard.throttle import TOKEN_ATTEMPTS
from driftboard.db.session import database_url
from driftboard.db.store import Store, shared_store


def fail(exc: DriftboardError) -> NoReturn:
    st.error(str(exc), icon=":material/error:")
    st.stop()


@contextmanager
def guard() -> Iterator[None]:
    """Run a block; a user-caused error is shown as one line and stops the page."""
    try:
        yield
    except DriftboardError as exc:
        fail(exc)


def current_url() -> str:
    with guard():
        return database_url(None)
    raise AssertionError("unreachable")  # guard() stops the page on error


def store() -> Store:
    """The shared ``Store`` of this server's database (created on first use if it is an empty SQLite file)."""
    with guard():
        return shared_store(current_url())
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- content-keyed caches


@st.cache_data(show_spinner="Comparing…", max_entries=512)
def comparison(url: str, baseline: str, baseline_digest: str, candidate: str, candidate_digest: str,
               policy: str) -> RunComparison:
    """``Store.compare``; the digests are part of the key so a changed run is never answered from the cache."""
    return shared_store(url).compare(baseline, candidate, None if policy == "default" else policy)


@st.cache_data(show_spinner="Comparing every run with the baseline…", max_entries=32)
def matrix(url: str, baseline: str, baseline_digest: str, runs: tuple[tuple[str, str, str], ...],
           policy: str) -> data.MatrixData:
    """Verdict of every (run, case) against the baseline; ``runs`` are (run id, bundle digest, row label)."""
    return data.matrix_data(shared_store(url), baseline, [(run_id, label) for run_id, _, label in runs], policy)


def compare(baseline: str, candidate: str, policy: str = "default") -> RunComparison:
    """Two stored runs compared (cached by content)."""
    s = store()
    with guard():
        b, c = s.run(baseline), s.run(candidate)
        return comparison(s.url, b.run_id, b.bundle_digest, c.run_id, c.bundle_digest, policy)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- access control

ACCESS_KEY = "_driftboard_unlocked"  # session state: the Unlocked member of this browser session
ACTION_WORDS = {"view": "view runs", "upload": "upload runs", "golden": "mark or clear goldens",
                "delete": "delete runs"}


@dataclass(frozen=True)
class Unlocked:
    """The member a session unlocked with a token: their name only (never the token)."""

    name: str


@st.cache_resource(show_spinner=False)
def _policy(path: str) -> AccessPolicy:
    return access_file.load_policy(path) if path else auth.OPEN


def policy() -> AccessPolicy:
    """This server's access policy (``$DRIFTBOARD_AUTH_FILE``, else open); a bad file stops every page."""
    with guard():
        return _policy(os.environ.get(auth.ENV_VAR, ""))
    raise AssertionError("unreachable")


def oidc_ready() -> bool:
    """Whether ``st.login`` can work: an ``[auth]`` section in secrets.toml and Authlib installed."""
    try:
        configured = "auth" in st.secrets
    except Exception:  # no secrets.toml at all: Streamlit raises its own not-found error
        configured = False
    return configured and importlib.util.find_spec("authlib") is not None


def oidc_user_role(access: AccessPolicy, user: Mapping[str, Any]) -> Role:
    """The role of an ``st.user``: by e-mail, above viewer only when the e-mail is verified."""
    return access.oidc_user_role(user)


def member_role(access: AccessPolicy, unlocked: object) -> Role:
    """The role of the member a session unlocked, read from the policy (not from the session)."""
    if not isinstance(unlocked, Unlocked):
        return Role.ANONYMOUS
    return next((m.role for m in access.members if m.name == unlocked.name), Role.ANONYMOUS)


def role() -> Role:
    """This session's role (open mode: every action is allowed whatever it is)."""
    access = policy()
    if access.mode == "tokens":
        return member_role(access, st.session_state.get(ACCESS_KEY))
    if access.mode == "oidc":
        return oidc_user_role(access, st.user) if oidc_ready() else Role.ANONYMOUS
    return Role.ADMIN


def who() -> str:
    """Who this session is, for the record (set_by, uploader): a member name or e-mail, else empty."""
    access = policy()
    name = ""
    if access.mode == "tokens":
        unlocked = st.session_state.get(ACCESS_KEY)
        name = unlocked.name if isinstance(unlocked, Unlocked) else ""
    elif access.mode == "oidc" and oidc_ready() and st.user.get("is_logged_in"):
        name = str(st.user.get("email") or "")
    return safe_text(name, 160)  # the columns that record it hold 200 characters


def allowed(action: str) -> bool:
    return policy().allows(role(), action)


def refusal(action: str) -> str:
    access = policy()
    need = access.needs[action].word
    how = "log in with an account that has it" if access.mode == "oidc" else "unlock with a token that has it"
    return f"Your role ({role().word}) may not {ACTION_WORDS[action]}: that needs {need}; {how}."


def require(action: str) -> None:
    """Stop the page unless this session may do ``action`` (the server-side check behind every hidden control)."""
    if not allowed(action):
        st.error(refusal(action), icon=":material/lock:")
        st.stop()


# ---------------------------------------------------------------- unlock attempts and caches

UNLOCK_ATTEMPTS = TOKEN_ATTEMPTS  # one per server process: every session's (and the API's) wrong tokens count together


def client_address() -> str:
    """The address this session's connection came from, for the limiter and the log ("loopback" locally).

    Behind a proxy on this machine, uvicorn takes it from X-Forwarded-For (it trusts
    that header from 127.0.0.1 only), so the proxy must set it: see docs/DEPLOY.md.
    """
    try:
        address = st.context.ip_address  # None for 127.0.0.1 and ::1, and outside a browser session
    except RuntimeError:  # no Streamlit runtime (a bare script): the address is unknown
        address = None
    return address if isinstance(address, str) and address else "loopback"  # AppTest's stand-in answers a mock


def is_admin() -> bool:
    """Whether this session has the admin role (everyone has it in open mode)."""
    return role() >= Role.ADMIN


def clear_caches() -> bool:
    """Empty the comparison and matrix caches, for an admin only; the Store and the policy stay."""
    if not is_admin():
        return False
    st.cache_data.clear()
    return True

