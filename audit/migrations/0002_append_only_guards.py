"""Make the audit store append-only in the database itself, whoever connects and however.

PostgreSQL: row triggers refuse UPDATE and DELETE of events, statement triggers refuse TRUNCATE.
Triggers fire for the table owner and superusers too; only someone who can ALTER the table (or
set session_replication_role) can switch them off, which is what the hash chain and `audit_verify`
are there to catch. The REVOKEs from PUBLIC below take back nothing PostgreSQL grants by default:
they only undo an earlier GRANT ... TO PUBLIC. The privileges that refuse the application itself
come from `manage.py create_app_role`, run by the owner after every migrate: the application logs
in as that role, which holds only SELECT, INSERT on audit_event and SELECT, INSERT, UPDATE on
audit_chain_head, and owns nothing, so it cannot ALTER the tables either.

SQLite: the same refusals with RAISE(ABORT). Anyone who can write the file can drop them; again
the chain is what shows it.

The chain head may only move forward, onto an event that exists: deleting the newest events then
also requires rewriting the head past these triggers.

The SQL is written out here, not imported, so this migration means the same thing forever.
"""

from django.db import migrations

POSTGRESQL_INSTALL = [
    """
    CREATE FUNCTION audit_event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
        FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change()
    """,
    """
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
        FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change()
    """,
    """
    CREATE FUNCTION audit_chain_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
            RAISE EXCEPTION 'the audit chain head cannot be removed: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.seq <= OLD.seq THEN
            RAISE EXCEPTION 'the audit chain head only moves forward: % to % refused', OLD.seq, NEW.seq
                USING ERRCODE = 'restrict_violation';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM audit_event WHERE seq = NEW.seq AND hash = NEW.hash) THEN
            RAISE EXCEPTION 'the audit chain head must name an existing event: seq % refused', NEW.seq
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_chain_head_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_chain_head
        FOR EACH ROW EXECUTE FUNCTION audit_chain_head_guard()
    """,
    """
    CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
        FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_guard()
    """,
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM PUBLIC",
    "REVOKE DELETE, TRUNCATE ON audit_chain_head FROM PUBLIC",
]

POSTGRESQL_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_chain_head_no_truncate ON audit_chain_head",
    "DROP TRIGGER IF EXISTS audit_chain_head_guard ON audit_chain_head",
    "DROP FUNCTION IF EXISTS audit_chain_head_guard()",
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_refuse_change()",
]

SQLITE_INSTALL = [
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on audit_event refused'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE on audit_event refused'); END
    """,
    """
    CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    BEGIN SELECT RAISE(ABORT, 'the audit chain head cannot be removed: DELETE refused'); END
    """,
    """
    CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE ON audit_chain_head
    WHEN NEW.seq <= OLD.seq
        OR NOT EXISTS (SELECT 1 FROM audit_event WHERE seq = NEW.seq AND hash = NEW.hash)
    BEGIN
        SELECT RAISE(ABORT, 'the audit chain head only moves forward, onto an existing event: UPDATE refused');
    END
    """,
    """
    CREATE TRIGGER audit_chain_head_insert_check BEFORE INSERT ON audit_chain_head
    WHEN NOT EXISTS (SELECT 1 FROM audit_event WHERE seq = NEW.seq AND hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'the audit chain head must name an existing event: INSERT refused'); END
    """,
]

SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_chain_head_insert_check",
    "DROP TRIGGER IF EXISTS audit_chain_head_forward_only",
    "DROP TRIGGER IF EXISTS audit_chain_head_no_delete",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    "DROP TRIGGER IF EXISTS audit_event_no_update",
]

STATEMENTS = {
    "postgresql": (POSTGRESQL_INSTALL, POSTGRESQL_REMOVE),
    "sqlite": (SQLITE_INSTALL, SQLITE_REMOVE),
}


def _run(schema_editor, index):
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise RuntimeError(f"The audit store's append-only guards are not written for {vendor}.")
    for sql in STATEMENTS[vendor][index]:
        schema_editor.execute(sql, params=None)


def install(apps, schema_editor):
    _run(schema_editor, 0)


def remove(apps, schema_editor):
    _run(schema_editor, 1)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
