"""Database fixtures: ``sqlite_url``, ``postgres_url`` and ``fresh_db`` (both, schema created).

PostgreSQL is real: ``DRIFTBOARD_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each test gets its own
schema, selected through the connection's ``search_path`` so the URL alone
carries it (subprocesses included), and dropped afterwards. Without a server
the PostgreSQL tests skip, saying how to enable them; under ``CI=true`` they
fail instead, since CI starts the server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache

import pytest

POSTGRES_ENV = "DRIFTBOARD_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_base() -> str:
    return os.environ.get(POSTGRES_ENV) or POSTGRES_DEFAULT


@cache
def _postgres_problem() -> str | None:
    """Why the test server cannot be used, or None."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(_postgres_base(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        lines = [line.strip() for line in str(getattr(exc, "orig", exc)).splitlines() if line.strip()]
        return lines[0] if lines else type(exc).__name__
    return None


def _admin_execute(statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(_postgres_base(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'driftboard.sqlite'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty schema of the test PostgreSQL database, selected by the URL's search_path."""
    from sqlalchemy.engine import make_url

    problem = _postgres_problem()
    if problem is not None:
        message = (f"PostgreSQL not reachable at {make_url(_postgres_base()).render_as_string(hide_password=True)} "
                   f"({problem}); start a server (trust auth, database 'test') or point {POSTGRES_ENV} at one "
                   "to run these tests")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"test_{uuid.uuid4().hex[:16]}"
    _admin_execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(_postgres_base()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _admin_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_db(request) -> str:
    """The URL of an empty database at the current schema: SQLite, then PostgreSQL."""
    from driftboard.db.migrate import upgrade
    from driftboard.db.session import make_engine

    url = request.getfixturevalue(f"{request.param}_url")
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url
