"""Explanations: what ``driftboard explain`` found for a pair of runs, kept with the pair.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

One row per (baseline, candidate): the explanation's verdict and summary as
columns (lists show them without decoding), the whole ``driftboard.explanation``
document compressed. Both foreign keys cascade: deleting either run deletes
its explanations (the store's SQLite connections turn foreign keys on).

PostgreSQL: roles that may read runs may read explanations; roles that may
delete runs (the server, the owner) may write them, as with the verdict cache.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Roles that may read runs may read explanations; roles that may delete runs may write them.
COPY_GRANTS = runpy.run_path(str(Path(__file__).parents[1] / "grants.py"))["copy_grants"](
    "explanations", writers="DELETE", write="INSERT, DELETE")


def upgrade() -> None:
    op.create_table(
        "explanations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("baseline_run_pk", sa.Integer(), nullable=False),
        sa.Column("candidate_run_pk", sa.Integer(), nullable=False),
        sa.Column("this_machine", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["baseline_run_pk"], ["runs.id"], name=op.f("fk_explanations_baseline_run_pk_runs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["candidate_run_pk"], ["runs.id"], name=op.f("fk_explanations_candidate_run_pk_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_explanations")),
        sa.UniqueConstraint("baseline_run_pk", "candidate_run_pk",
                            name=op.f("uq_explanations_baseline_run_pk_candidate_run_pk")),
    )
    op.create_index(op.f("ix_explanations_candidate_run_pk"), "explanations", ["candidate_run_pk"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(COPY_GRANTS)


def downgrade() -> None:
    op.drop_index(op.f("ix_explanations_candidate_run_pk"), table_name="explanations")
    op.drop_table("explanations")
