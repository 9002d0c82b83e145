"""Alembic environment for driftboard's schema.

Run programmatically by ``db.migrate`` (which passes a connection it opened
with the write lock), or by the ``alembic`` command with ``-c db/alembic.ini``
for developers writing a new revision::

    DRIFTBOARD_DATABASE_URL=sqlite:///scratch.sqlite .venv/bin/alembic -c db/alembic.ini \
        revision --autogenerate -m "what changed"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from driftboard.db.models import Base

# SQLite cannot ALTER most things: batch mode rebuilds a table instead.
_OPTIONS = {"target_metadata": Base.metadata, "compare_type": True}
# Serialises concurrent upgrades of one PostgreSQL database (any constant works).
_PG_LOCK_KEY = 0x44524654


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, render_as_batch=connection.dialect.name == "sqlite", **_OPTIONS
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        context.run_migrations()


def _online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from driftboard.db.migrate import upgrade_connection
    from driftboard.db.session import database_url, make_engine

    engine = make_engine(database_url(context.config.get_main_option("sqlalchemy.url") or None))
    with engine.connect() as conn, upgrade_connection(conn):
        _run(conn)


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
else:
    _online()
