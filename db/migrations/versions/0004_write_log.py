"""The write log: every push, delete, golden set and golden clear, with who, when, from where and how.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

``write_log`` is append-only: the store inserts one row in the same
transaction as the write it records, so a write and its entry land together
or not at all. ``run_id`` is plain text, not a foreign key: the entry of a
deleted run outlives the run.

PostgreSQL: a pusher writes through ``driftboard_push_run`` (0003) and holds
no INSERT on any table, so the function now writes the entry itself, with
the caller's login (``session_user``) as the actor: a pusher cannot log a push
under another name, nor push without it being logged. The channel and the
address come from the plan (``plan->'log'``), the address else from the
connection (``inet_client_addr()``). ``CREATE OR REPLACE`` keeps the function's
owner and grants; its ``search_path`` setting is set again (replacing a
function resets it). The body is 0003's with one INSERT before ``RETURN``.

An upgraded deployment already has its grants: the new table gets SELECT for
every role that may read ``runs`` and INSERT (no UPDATE or DELETE: the log is
append-only) for every role that may insert runs, so the dashboard keeps
working after ``driftboard db upgrade`` without running the grants again.
"""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
SIGNATURE = "driftboard_push_run(jsonb, bytea, bytea[])"

LOG_ENTRY = """
    INSERT INTO write_log (at, action, actor, channel, address, run_id, detail)
    VALUES (now(), 'push', session_user,
            CASE WHEN p_plan #>> '{log,channel}' IN ('cli', 'page', 'api') THEN p_plan #>> '{log,channel}'
                 ELSE 'cli' END,
            left(coalesce(p_plan #>> '{log,address}', host(inet_client_addr())), 255),
            p_plan #>> '{run,run_id}',
            (p_plan #>> '{run,case_count}') || ' cases, bundle ' || left(p_plan #>> '{run,bundle_digest}', 12));

    RETURN v_run;"""


def _body_0003() -> str:
    """0003's function body, read from that migration (migrations never change once released)."""
    path = Path(__file__).with_name("0003_pusher_ingest_function.py")
    spec = importlib.util.spec_from_file_location("driftboard_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BODY


def _create_function(body: str) -> None:
    op.execute(
        "CREATE OR REPLACE FUNCTION driftboard_push_run(p_plan jsonb, p_fingerprint bytea, p_array_data bytea[])\n"
        "RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER\n"
        f"AS $driftboard$ {body} $driftboard$"
    )
    op.execute(f"DO $driftboard$ BEGIN EXECUTE format('ALTER FUNCTION {SIGNATURE} SET search_path = %I, pg_temp', "
               "current_schema()); END $driftboard$")
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


# Roles that may read runs may read the log; roles that may insert runs may append to it (nothing more).
COPY_GRANTS = runpy.run_path(str(Path(__file__).parents[1] / "grants.py"))["copy_grants"](
    "write_log", writers="INSERT", write="INSERT")


def upgrade() -> None:
    op.create_table(
        "write_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.CheckConstraint("action IN ('push', 'delete', 'golden-set', 'golden-clear')",
                           name=op.f("ck_write_log_action_known")),
        sa.CheckConstraint("channel IN ('cli', 'page', 'api')", name=op.f("ck_write_log_channel_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_write_log")),
    )
    op.create_index(op.f("ix_write_log_at"), "write_log", ["at"])
    op.create_index(op.f("ix_write_log_action"), "write_log", ["action"])
    op.create_index(op.f("ix_write_log_actor"), "write_log", ["actor"])
    if op.get_bind().dialect.name != "postgresql":
        return
    body = _body_0003()
    anchor = "\n    RETURN v_run;"
    assert body.count(anchor) == 1, "0003's function body changed: 0004 cannot add its log entry"
    _create_function(body.replace(anchor, LOG_ENTRY))
    op.execute(COPY_GRANTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _create_function(_body_0003())
    op.drop_index(op.f("ix_write_log_actor"), table_name="write_log")
    op.drop_index(op.f("ix_write_log_action"), table_name="write_log")
    op.drop_index(op.f("ix_write_log_at"), table_name="write_log")
    op.drop_table("write_log")
