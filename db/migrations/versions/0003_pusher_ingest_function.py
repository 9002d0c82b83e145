"""PostgreSQL: pushers add runs only through ``driftboard_push_run``, which cannot touch a stored run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

A security review found that the pushers' grants (INSERT on every table a run
has rows in, UPDATE on ``machines``) let a member add case results and tags to
the golden run, rename every machine, and record any name as the uploader.
Table grants cannot say "only rows of a run this transaction created", so
pushers now get no write privilege on any table (docs/DEPLOY.md) and call this
function instead. It runs with its owner's rights (SECURITY DEFINER) and can
only create: a new run row (a plain INSERT, so a run id or bundle already
stored is an error, never an overwrite), then the case results and tags of
that new run, outcomes and arrays that were not stored yet (content-addressed,
``ON CONFLICT DO NOTHING``) and the array links of the outcomes it created.
The uploader is the login that called it (``session_user``), so no one can
record another name. The machine row moves its dates and name with the new
run, as ``Store.ingest`` does for every writer.

``EXECUTE`` is revoked from PUBLIC (PostgreSQL grants it to everyone by
default); the deployment grants it to the pushers' role. Its ``search_path``
is fixed to the schema it was created in, then ``pg_temp`` last, so a caller's
temporary tables cannot stand in for the real ones.

SQLite has no roles: nothing changes there. Parameters: ``plan`` (jsonb, built
by ``db/store/ingest_pusher.py``), ``fingerprint`` (the environment's stored,
compressed fingerprint) and ``array_data`` (the new arrays' stored bytes, in
the order of ``plan->'arrays'``). Returns the new run's primary key.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SIGNATURE = "driftboard_push_run(jsonb, bytea, bytea[])"

BODY = """
DECLARE
    v_seen timestamptz := (p_plan #>> '{machine,seen}')::timestamptz;
    v_machine_key text := p_plan #>> '{machine,machine_key}';
    v_hostname text := p_plan #>> '{machine,hostname}';
    v_environment_key text := p_plan #>> '{environment,content_key}';
    v_machine integer;
    v_environment integer;
    v_run integer;
    v_count integer;
BEGIN
    IF jsonb_array_length(p_plan -> 'arrays') <> coalesce(array_length(p_array_data, 1), 0) THEN
        RAISE EXCEPTION 'driftboard_push_run: % array descriptions for % arrays',
            jsonb_array_length(p_plan -> 'arrays'), coalesce(array_length(p_array_data, 1), 0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_array_length(p_plan -> 'cases') <> (p_plan #>> '{run,case_count}')::integer THEN
        RAISE EXCEPTION 'driftboard_push_run: % cases for a case_count of %',
            jsonb_array_length(p_plan -> 'cases'), p_plan #>> '{run,case_count}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO machines (machine_key, hostname, first_seen, last_seen)
    VALUES (v_machine_key, v_hostname, v_seen, v_seen)
    ON CONFLICT (machine_key) DO NOTHING;
    SELECT id INTO STRICT v_machine FROM machines WHERE machine_key = v_machine_key;
    UPDATE machines SET first_seen = v_seen WHERE id = v_machine AND v_seen < first_seen;
    UPDATE machines SET last_seen = v_seen, hostname = v_hostname WHERE id = v_machine AND v_seen > last_seen;

    INSERT INTO environments (content_key, digest, fingerprint, torch_version, cuda, cudnn, driver,
                              gpu_model, cpu_model, cpu_capability)
    SELECT v_environment_key, e.digest, p_fingerprint, e.torch_version, e.cuda, e.cudnn, e.driver,
           e.gpu_model, e.cpu_model, e.cpu_capability
    FROM jsonb_to_record(p_plan -> 'environment') AS e(digest text, torch_version text, cuda text, cudnn text,
                                                       driver text, gpu_model text, cpu_model text,
                                                       cpu_capability text)
    ON CONFLICT (content_key) DO NOTHING;
    SELECT id INTO v_environment FROM environments WHERE content_key = v_environment_key;
    IF NOT FOUND THEN  -- deleted with its last run since the INSERT looked: the caller tries again
        RAISE EXCEPTION 'driftboard_push_run: environment removed by a concurrent change'
            USING ERRCODE = 'serialization_failure';
    END IF;

    -- A plain INSERT: a run id or bundle digest already stored raises unique_violation.
    INSERT INTO runs (run_id, bundle_digest, bundle_size, created_at, captured_at, uploaded_at, uploader, label,
                      tags, note, suite_id, suite_version, variant, device_class, settings, tool_version,
                      imported, case_count, machine_id, environment_id)
    SELECT r.run_id, r.bundle_digest, r.bundle_size, r.created_at, r.captured_at, now(), session_user, r.label,
           r.tags::json, r.note, r.suite_id, r.suite_version, r.variant, r.device_class, r.settings::json,
           r.tool_version, r.imported, r.case_count, v_machine, v_environment
    FROM jsonb_to_record(p_plan -> 'run') AS r(run_id text, bundle_digest text, bundle_size bigint,
                                               created_at text, captured_at timestamptz, label text, tags text,
                                               note text, suite_id text, suite_version integer, variant text,
                                               device_class text, settings text, tool_version text,
                                               imported boolean, case_count integer)
    RETURNING id INTO STRICT v_run;

    INSERT INTO arrays (sha256, nbytes, stored_bytes, codec, data)
    SELECT m.sha256, m.nbytes, octet_length(d.data), m.codec, d.data
    FROM ROWS FROM (jsonb_to_recordset(p_plan -> 'arrays') AS (sha256 text, nbytes bigint, codec text))
         WITH ORDINALITY AS m(sha256, nbytes, codec, ord)
    JOIN unnest(p_array_data) WITH ORDINALITY AS d(data, ord) ON d.ord = m.ord
    ORDER BY m.sha256
    ON CONFLICT (sha256) DO NOTHING;

    -- Links only for the outcomes this call created: an outcome stored before keeps exactly its links.
    WITH created AS (
        INSERT INTO case_outcomes (digest, case_id, device, dtype, input_digest, weight_digest, output_sha,
                                   output_dtype, output_shape, layers, time_axis, error)
        SELECT o.digest, o.case_id, o.device, o.dtype, o.input_digest, o.weight_digest, o.output_sha,
               o.output_dtype, o.output_shape::json, o.layers::json, o.time_axis, o.error
        FROM jsonb_to_recordset(p_plan -> 'outcomes') AS o(digest text, case_id text, device text, dtype text,
                                                           input_digest text, weight_digest text,
                                                           output_sha text, output_dtype text,
                                                           output_shape text, layers text, time_axis integer,
                                                           error text)
        ORDER BY o.digest
        ON CONFLICT (digest) DO NOTHING
        RETURNING id, digest
    )
    INSERT INTO outcome_arrays (outcome_id, array_sha)
    SELECT created.id, l.array_sha
    FROM created JOIN jsonb_to_recordset(p_plan -> 'links') AS l(digest text, array_sha text)
         ON l.digest = created.digest
    ORDER BY created.id, l.array_sha
    ON CONFLICT DO NOTHING;

    INSERT INTO case_results (run_pk, position, outcome_id, repeats, repeat_identical, seconds)
    SELECT v_run, c.position, o.id, c.repeats, c.repeat_identical, c.seconds::double precision
    FROM jsonb_to_recordset(p_plan -> 'cases') AS c(position integer, outcome text, repeats integer,
                                                    repeat_identical boolean, seconds text)
    JOIN case_outcomes o ON o.digest = c.outcome;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count <> jsonb_array_length(p_plan -> 'cases') THEN  -- an outcome named but not stored
        IF EXISTS (SELECT 1 FROM jsonb_to_recordset(p_plan -> 'cases') AS c(outcome text)
                   WHERE c.outcome NOT IN (SELECT o.digest
                                           FROM jsonb_to_recordset(p_plan -> 'outcomes') AS o(digest text))) THEN
            RAISE EXCEPTION 'driftboard_push_run: a case names an outcome the plan does not hold'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- deleted with the last run using it since the INSERT looked: the caller tries again
        RAISE EXCEPTION 'driftboard_push_run: % of % cases stored: an outcome was removed by a concurrent change',
            v_count, jsonb_array_length(p_plan -> 'cases') USING ERRCODE = 'serialization_failure';
    END IF;

    INSERT INTO run_tags (run_pk, tag)
    SELECT DISTINCT v_run, t.tag FROM jsonb_array_elements_text(p_plan -> 'tags') AS t(tag)
    ORDER BY 2;

    RETURN v_run;
END
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION driftboard_push_run(p_plan jsonb, p_fingerprint bytea, p_array_data bytea[])\n"
        "RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER\n"
        f"AS $driftboard$ {BODY} $driftboard$"
    )
    # The schema the tables were just created in, then pg_temp: pinned in SQL, so `alembic upgrade --sql` works too.
    op.execute(f"DO $driftboard$ BEGIN EXECUTE format('ALTER FUNCTION {SIGNATURE} SET search_path = %I, pg_temp', "
               "current_schema()); END $driftboard$")
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
