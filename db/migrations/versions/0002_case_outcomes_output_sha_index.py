"""Index case_outcomes.output_sha: deleting a run no longer scans every outcome.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

``case_outcomes.output_sha`` references ``arrays.sha256`` but had no index.
Deleting a run removes the arrays no other run uses: each deleted array row
made the database check ``case_outcomes`` for rows still referencing it (the
foreign key), and ``Store.delete_run`` asks the same of the outcomes it keeps,
both full scans of the outcomes table without this index (SQLite's foreign
key documentation asks for an index on every child key for this reason).
With 100,000 outcomes that was most of a second per deleted run. Every other
foreign key column already leads an index.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_case_outcomes_output_sha"), "case_outcomes", ["output_sha"])


def downgrade() -> None:
    op.drop_index(op.f("ix_case_outcomes_output_sha"), table_name="case_outcomes")
