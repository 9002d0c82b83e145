"""Initial schema: machines, environments, runs, tags, arrays, case outcomes and results, goldens, verdicts.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Plain SQLAlchemy types only: a migration must keep meaning what it meant when
it was written, whatever ``db.models`` later becomes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SHA = sa.String(64)
NAME = sa.String(128)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "arrays",
        sa.Column("sha256", SHA, nullable=False),
        sa.Column("nbytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("codec IN ('deflate')", name=op.f("ck_arrays_codec_known")),
        sa.CheckConstraint("nbytes >= 0", name=op.f("ck_arrays_nbytes_nonneg")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_arrays")),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_key", SHA, nullable=False),
        sa.Column("digest", SHA, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("torch_version", NAME, nullable=True),
        sa.Column("cuda", NAME, nullable=True),
        sa.Column("cudnn", NAME, nullable=True),
        sa.Column("driver", NAME, nullable=True),
        sa.Column("gpu_model", sa.String(200), nullable=True),
        sa.Column("cpu_model", sa.String(200), nullable=True),
        sa.Column("cpu_capability", NAME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("content_key", name=op.f("uq_environments_content_key")),
    )
    for column in ("torch_version", "cuda", "cudnn", "driver", "gpu_model", "cpu_model", "cpu_capability"):
        op.create_index(op.f(f"ix_environments_{column}"), "environments", [column])

    op.create_table(
        "machines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("machine_key", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("first_seen", WHEN, nullable=False),
        sa.Column("last_seen", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machines")),
        sa.UniqueConstraint("machine_key", name=op.f("uq_machines_machine_key")),
    )
    op.create_table(
        "case_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", SHA, nullable=False),
        sa.Column("case_id", NAME, nullable=False),
        sa.Column("device", NAME, nullable=False),
        sa.Column("dtype", NAME, nullable=False),
        sa.Column("input_digest", SHA, nullable=False),
        sa.Column("weight_digest", SHA, nullable=False),
        sa.Column("output_sha", SHA, nullable=True),
        sa.Column("output_dtype", sa.String(16), nullable=True),
        sa.Column("output_shape", sa.JSON(), nullable=True),
        sa.Column("layers", sa.JSON(), nullable=False),
        sa.Column("time_axis", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["output_sha"], ["arrays.sha256"], name=op.f("fk_case_outcomes_output_sha_arrays"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_outcomes")),
        sa.UniqueConstraint("digest", name=op.f("uq_case_outcomes_digest")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("bundle_digest", SHA, nullable=False),
        sa.Column("bundle_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.String(64), nullable=False),
        sa.Column("captured_at", WHEN, nullable=False),
        sa.Column("uploaded_at", WHEN, nullable=False),
        sa.Column("uploader", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("suite_id", NAME, nullable=False),
        sa.Column("suite_version", sa.Integer(), nullable=False),
        sa.Column("variant", NAME, nullable=False),
        sa.Column("device_class", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("tool_version", sa.String(64), nullable=False),
        sa.Column("imported", sa.Boolean(), nullable=False),
        sa.Column("case_count", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.CheckConstraint("case_count >= 0", name=op.f("ck_runs_case_count_nonneg")),
        sa.ForeignKeyConstraint(
            ["environment_id"], ["environments.id"], name=op.f("fk_runs_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machines.id"], name=op.f("fk_runs_machine_id_machines"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("bundle_digest", name=op.f("uq_runs_bundle_digest")),
        sa.UniqueConstraint("run_id", name=op.f("uq_runs_run_id")),
    )
    op.create_index(op.f("ix_runs_captured_at"), "runs", ["captured_at"])
    op.create_index(op.f("ix_runs_environment_id"), "runs", ["environment_id"])
    op.create_index("ix_runs_machine_id_captured_at", "runs", ["machine_id", "captured_at"])

    op.create_table(
        "case_results",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("outcome_id", sa.Integer(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("repeat_identical", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outcome_id"], ["case_outcomes.id"], name=op.f("fk_case_results_outcome_id_case_outcomes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.id"], name=op.f("fk_case_results_run_pk_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_pk", "position", name=op.f("pk_case_results")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_case_results_outcome_id"), "case_results", ["outcome_id"])

    op.create_table(
        "goldens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("suite_id", NAME, nullable=False),
        sa.Column("suite_version", sa.Integer(), nullable=False),
        sa.Column("device_class", sa.String(32), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("set_at", WHEN, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.id"], name=op.f("fk_goldens_run_pk_runs"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goldens")),
        sa.UniqueConstraint(
            "name", "suite_id", "suite_version", "device_class",
            name=op.f("uq_goldens_name_suite_id_suite_version_device_class"),
        ),
    )
    op.create_index(op.f("ix_goldens_run_pk"), "goldens", ["run_pk"])

    op.create_table(
        "outcome_arrays",
        sa.Column("outcome_id", sa.Integer(), nullable=False),
        sa.Column("array_sha", SHA, nullable=False),
        sa.ForeignKeyConstraint(
            ["array_sha"], ["arrays.sha256"], name=op.f("fk_outcome_arrays_array_sha_arrays"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["outcome_id"], ["case_outcomes.id"], name=op.f("fk_outcome_arrays_outcome_id_case_outcomes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outcome_id", "array_sha", name=op.f("pk_outcome_arrays")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_outcome_arrays_array_sha"), "outcome_arrays", ["array_sha"])

    op.create_table(
        "run_tags",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.id"], name=op.f("fk_run_tags_run_pk_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_pk", "tag", name=op.f("pk_run_tags")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_run_tags_tag"), "run_tags", ["tag"])

    op.create_table(
        "verdicts",
        sa.Column("golden_run_pk", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("worst", sa.String(32), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("computed_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_run_pk"], ["runs.id"], name=op.f("fk_verdicts_golden_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.id"], name=op.f("fk_verdicts_run_pk_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("golden_run_pk", "run_pk", "policy", name=op.f("pk_verdicts")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_verdicts_run_pk"), "verdicts", ["run_pk"])
    op.create_index(op.f("ix_verdicts_worst"), "verdicts", ["worst"])


def downgrade() -> None:
    for table in ("verdicts", "run_tags", "outcome_arrays", "goldens", "case_results", "runs",
                  "case_outcomes", "machines", "environments", "arrays"):
        op.drop_table(table)
