"""Grants for a table a revision adds, copied from the grants an upgraded deployment already has on ``runs``.

Not a revision (Alembic reads only ``versions/``): revisions load it by path
(``runpy.run_path``). Released revisions call it, so its SQL never changes;
a new kind of grant is a new function.
"""


def copy_grants(table: str, *, writers: str, write: str) -> str:
    """SQL granting SELECT on ``table`` to every role that may read ``runs``, and ``write`` (plus the id sequence)
    to every role holding ``writers`` on ``runs``; the owner is left out (it owns both)."""
    return f"""
DO $driftboard$
DECLARE
    grantee_name text;
BEGIN
    FOR grantee_name IN
        SELECT DISTINCT quote_ident(r.rolname) FROM pg_class c
        CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'runs'::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
    LOOP
        EXECUTE 'GRANT SELECT ON {table} TO ' || grantee_name;
    END LOOP;
    FOR grantee_name IN
        SELECT DISTINCT quote_ident(r.rolname) FROM pg_class c
        CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'runs'::regclass AND a.privilege_type = '{writers}' AND a.grantee <> c.relowner
    LOOP
        EXECUTE 'GRANT {write} ON {table} TO ' || grantee_name;
        EXECUTE 'GRANT USAGE ON SEQUENCE {table}_id_seq TO ' || grantee_name;
    END LOOP;
END
$driftboard$
"""
