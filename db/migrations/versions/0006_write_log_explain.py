"""The write log records explanations kept with their pair of runs: action ``explain``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Storing an explanation (``driftboard explain``, or ``POST /api/v1/explanations``
of the team server) is a write like a push, so it is logged in its own
transaction. ``write_log.action`` is checked against the known actions
(0004): the check is replaced by one that knows ``explain`` too. SQLite cannot
alter a constraint, so the table is rebuilt (batch mode, rows, indexes and
the other check kept); PostgreSQL alters it in place, keeping its grants.
Downgrading removes the ``explain`` entries first: the older check refuses them.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD = ("push", "delete", "golden-set", "golden-clear")
NEW = (*OLD, "explain")


def _check(actions: tuple[str, ...]) -> None:
    condition = "action IN (" + ", ".join(f"'{a}'" for a in actions) + ")"
    with op.batch_alter_table("write_log") as batch:
        batch.drop_constraint(op.f("ck_write_log_action_known"), type_="check")
        batch.create_check_constraint(op.f("ck_write_log_action_known"), condition)


def upgrade() -> None:
    _check(NEW)


def downgrade() -> None:
    op.execute("DELETE FROM write_log WHERE action = 'explain'")
    _check(OLD)
