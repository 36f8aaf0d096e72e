"""The PostgreSQL role the application logs in as: it uses every table, but only reads and appends audit rows.

The migrating owner creates the tables and can ALTER them (and so switch the append-only triggers
off); the application must not be that owner. `ensure_app_role` makes a role that owns nothing and
holds exactly: SELECT, INSERT, UPDATE, DELETE on the schema's tables and USAGE, SELECT, UPDATE on
its sequences, except the tables in RESTRICTED_TABLES. Then UPDATE, DELETE and TRUNCATE of events
are refused by privileges as well as by triggers, signed checkpoints can only be added, and the role
cannot ALTER a table at all.

Grants name the tables that exist now. Run it after every `migrate` (it is idempotent and also
repairs the role): default privileges (ALTER DEFAULT PRIVILEGES) are not used on purpose, since
they would give UPDATE and DELETE on every future table, a future append-only one included.
"""

from __future__ import annotations

import dataclasses
import re

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from psycopg import sql as pg_sql

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
# Tables the role may use only partly. The chain head moves forward by UPDATE; nothing of the audit
# store is ever deleted, signed checkpoints included (a deleted one would leave a gap). Migrations are
# recorded by the owner who runs them; the application only reads.
RESTRICTED_TABLES: dict[str, tuple[str, ...]] = {
    "audit_event": ("SELECT", "INSERT"),
    "audit_chain_head": ("SELECT", "INSERT", "UPDATE"),
    "audit_checkpoint": ("SELECT", "INSERT"),
    "django_migrations": ("SELECT",),
}
# Privileges on the audit tables that would let someone other than the owner change what was recorded.
_AUDIT_FORBIDDEN = {
    "audit_event": ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"),
    "audit_chain_head": ("DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"),
    "audit_checkpoint": ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"),
}
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = frozenset({"public", "none", "current_user", "current_role", "session_user", "all"})
# (attribute, wanted): the role may log in and nothing else; NOINHERIT so that a membership granted
# later by mistake does not silently lend it another role's rights (memberships are revoked anyway).
_ATTRIBUTES = (
    ("rolsuper", "SUPERUSER", False),
    ("rolcreatedb", "CREATEDB", False),
    ("rolcreaterole", "CREATEROLE", False),
    ("rolinherit", "INHERIT", False),
    ("rolreplication", "REPLICATION", False),
    ("rolbypassrls", "BYPASSRLS", False),
    ("rolcanlogin", "LOGIN", True),
)


class AppRoleError(RuntimeError):
    """The role cannot be made safe as asked; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class AppRoleReport:
    role: str
    schema: str
    created: bool
    changes: list[str]
    tables: list[str]
    restricted: dict[str, tuple[str, ...]]
    sequences: list[str]
    notes: list[str]


def ensure_app_role(
    connection: BaseDatabaseWrapper, role: str, *, password: str | None = None
) -> AppRoleReport:
    """Create or repair the application's login role and grant it exactly its privileges; idempotent.

    Runs in one transaction on `connection`, which must be the tables' owner with CREATEROLE (or a
    superuser). Raises AppRoleError, changing nothing, for a name that is unsafe to use: the
    connecting role itself, a role that owns objects in the schema or the database, a reserved name.
    """
    if connection.vendor != "postgresql":
        raise AppRoleError(f"Database roles are a PostgreSQL matter; this database is {connection.vendor}.")
    if not _ROLE_NAME.fullmatch(role) or role in _RESERVED or role.startswith("pg_"):
        raise AppRoleError(
            f"{role!r} is not a usable role name: lower-case letters, digits and _, at most 63, "
            "not starting with pg_ and not a reserved word."
        )
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_schema(), current_database()")
        row = cursor.fetchone()
        if row is None or row[1] is None:
            raise AppRoleError("The connection has no current schema (check search_path).")
        owner, schema, database = str(row[0]), str(row[1]), str(row[2])
        if role == owner:
            raise AppRoleError(
                f"{role} is the role this command connects as (the owner that migrates): the application "
                "needs a different role, or it could switch the audit triggers off."
            )
        _refuse_an_owner(cursor, role, schema)
        created, changes = _ensure_role(cursor, role, password)
        notes = _ensure_access(cursor, role, schema, database)
        tables, sequences = _grant(cursor, role, schema)
        changes.extend(_revoke_public_audit_privileges(cursor, schema))
        _check_audit_privileges(cursor, role, schema)
    restricted = {table: grants for table, grants in RESTRICTED_TABLES.items() if table in tables}
    return AppRoleReport(
        role=role,
        schema=schema,
        created=created,
        changes=changes,
        tables=[table for table in tables if table not in restricted],
        restricted=restricted,
        sequences=sequences,
        notes=notes,
    )


def _q(template: str, *names: str) -> str:
    """SQL with identifiers quoted by psycopg (never by hand): `{}` placeholders, names in order."""
    return pg_sql.SQL(template).format(*(pg_sql.Identifier(name) for name in names)).as_string(None)


def _refuse_an_owner(cursor: CursorWrapper, role: str, schema: str) -> None:
    cursor.execute(
        "SELECT "
        "(SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        " WHERE r.rolname = %s AND c.relnamespace = to_regnamespace(%s)), "
        "EXISTS (SELECT 1 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
        " WHERE r.rolname = %s AND d.datname = current_database()), "
        "EXISTS (SELECT 1 FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
        " WHERE r.rolname = %s AND n.nspname = %s)",
        [role, schema, role, role, schema],
    )
    owned, owns_database, owns_schema = cursor.fetchone()
    if owned or owns_database or owns_schema:
        what = f"{owned} relations in schema {schema}" if owned else "the database or its schema"
        raise AppRoleError(
            f"{role} owns {what}: an owner can ALTER its tables and switch the audit triggers off, so it "
            "cannot be the application's role. Choose another name."
        )


def _ensure_role(cursor: CursorWrapper, role: str, password: str | None) -> tuple[bool, list[str]]:
    """The role exists, may log in, and has no other power: attributes, memberships, settings."""
    columns = ", ".join(column for column, _, _ in _ATTRIBUTES)
    cursor.execute(f"SELECT {columns} FROM pg_roles WHERE rolname = %s", [role])
    row = cursor.fetchone()
    changes: list[str] = []
    if row is None:
        keywords = " ".join(keyword if want else f"NO{keyword}" for _, keyword, want in _ATTRIBUTES)
        cursor.execute(_q(f"CREATE ROLE {{}} {keywords}", role))
        changes.append("created the role")
    else:
        # Only what differs is altered: a CREATEROLE owner that is not a superuser may not even
        # mention SUPERUSER.
        for (_, keyword, want), have in zip(_ATTRIBUTES, row, strict=True):
            if bool(have) != want:
                setting = keyword if want else f"NO{keyword}"
                cursor.execute(_q(f"ALTER ROLE {{}} {setting}", role))
                changes.append(setting)
        cursor.execute(
            "SELECT m.roleid::regrole::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "WHERE r.rolname = %s ORDER BY 1",
            [role],
        )
        for (granted,) in cursor.fetchall():
            # A member can SET ROLE to what it belongs to (the owner, pg_write_all_data...) even when
            # NOINHERIT.
            cursor.execute(_q("REVOKE {} FROM {}", str(granted), role))
            changes.append(f"revoked membership in {granted}")
        # Per-role settings: a superuser could have given it session_replication_role = replica,
        # under which the chain head's forward-only trigger does not fire.
        cursor.execute(
            "SELECT d.datname FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s",
            [role],
        )
        for (in_database,) in cursor.fetchall():
            if in_database is None:
                cursor.execute(_q("ALTER ROLE {} RESET ALL", role))
            else:
                cursor.execute(_q("ALTER ROLE {} IN DATABASE {} RESET ALL", role, str(in_database)))
            changes.append(
                f"reset its settings{'' if in_database is None else f' in database {in_database}'}"
            )
    if password is not None:
        # Straight to the driver: Django's debug cursor would log the statement, password and all.
        cursor.cursor.execute(
            pg_sql.SQL("ALTER ROLE {} PASSWORD {}").format(pg_sql.Identifier(role), pg_sql.Literal(password))
        )
        changes.append("set the password")
    return row is None, changes


def _ensure_access(cursor: CursorWrapper, role: str, schema: str, database: str) -> list[str]:
    """The role can connect and see the schema, and nothing more of them; returns what to know."""
    cursor.execute(
        "SELECT has_database_privilege(%s, current_database(), 'CONNECT'), "
        "has_schema_privilege(%s, %s, 'USAGE')",
        [role, role, schema],
    )
    can_connect, has_usage = cursor.fetchone()
    if not can_connect:
        cursor.execute(_q("GRANT CONNECT ON DATABASE {} TO {}", database, role))
    if not has_usage:
        cursor.execute(_q("GRANT USAGE ON SCHEMA {} TO {}", schema, role))
    cursor.execute(_q("REVOKE CREATE ON SCHEMA {} FROM {}", schema, role))
    cursor.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", [role, schema])
    (may_create,) = cursor.fetchone()
    if may_create:
        # The default before PostgreSQL 15, for everyone: not the audit store's concern (a new table
        # cannot touch it), and not this command's to change for every other role.
        return [
            f"{role} may CREATE in schema {schema} through PUBLIC (the default before PostgreSQL 15); "
            f"consider REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC."
        ]
    return []


def _grant(cursor: CursorWrapper, role: str, schema: str) -> tuple[list[str], list[str]]:
    """Exactly these privileges on the schema's tables and sequences: everything else is revoked first."""
    cursor.execute(
        "SELECT c.relname, c.relkind = 'S' FROM pg_class c "
        "WHERE c.relnamespace = to_regnamespace(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
        "ORDER BY c.relname",
        [schema],
    )
    relations = cursor.fetchall()
    tables = [str(name) for name, is_sequence in relations if not is_sequence]
    sequences = [str(name) for name, is_sequence in relations if is_sequence]
    missing = [table for table in _AUDIT_FORBIDDEN if table not in tables]
    if missing:
        raise AppRoleError(
            f"Table {', '.join(missing)} not found in schema {schema}: run `manage.py migrate` first."
        )
    cursor.execute(_q("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}", schema, role))
    cursor.execute(_q("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}", schema, role))
    for table in tables:
        privileges = ", ".join(RESTRICTED_TABLES.get(table, TABLE_PRIVILEGES))
        cursor.execute(_q(f"GRANT {privileges} ON TABLE {{}}.{{}} TO {{}}", schema, table, role))
    if sequences:
        privileges = ", ".join(SEQUENCE_PRIVILEGES)
        cursor.execute(_q(f"GRANT {privileges} ON ALL SEQUENCES IN SCHEMA {{}} TO {{}}", schema, role))
    return tables, sequences


def _revoke_public_audit_privileges(cursor: CursorWrapper, schema: str) -> list[str]:
    """Take back from PUBLIC whatever would let any role change the audit store (none, by default)."""
    changes = []
    for table, forbidden in _AUDIT_FORBIDDEN.items():
        cursor.execute(
            "SELECT a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.relnamespace = to_regnamespace(%s) AND c.relname = %s AND a.grantee = 0 "
            "AND a.privilege_type = ANY(%s) ORDER BY 1",
            [schema, table, list(forbidden)],
        )
        granted = [str(privilege) for (privilege,) in cursor.fetchall()]
        if granted:
            cursor.execute(_q(f"REVOKE {', '.join(granted)} ON TABLE {{}}.{{}} FROM PUBLIC", schema, table))
            changes.append(f"revoked {', '.join(granted)} on {table} from PUBLIC")
    return changes


def _check_audit_privileges(cursor: CursorWrapper, role: str, schema: str) -> None:
    """Ask PostgreSQL, which counts PUBLIC and memberships too, that the role cannot change audit rows."""
    for table, forbidden in _AUDIT_FORBIDDEN.items():
        qualified = _q("{}.{}", schema, table)
        held = []
        for privilege in forbidden:
            cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [role, qualified, privilege])
            row = cursor.fetchone()
            if row is not None and row[0]:
                held.append(privilege)
        if held:
            raise AppRoleError(
                f"{role} still holds {', '.join(held)} on {table} after the grants; nothing was changed."
            )
