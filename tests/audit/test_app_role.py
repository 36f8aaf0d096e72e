"""The application's login role uses its tables but cannot change the audit store, by privileges alone.

Each test makes a role of its own (names are cluster-wide) and drops it afterwards. Tests that
connect as the role are transactional: the role's connection must see the owner's committed grants.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, connection, transaction

from audit.chain import missing_guards, verify_chain
from audit.checkpoints import checkpoint_create, signing_key_create, verify_checkpoints
from audit.models import AuditChainHead, AuditEvent, EventKind, EventStatus
from audit.services import audit_record
from tests.audit.flush import AUDIT_TABLES

requires_postgresql = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL only")
PERMISSION_DENIED = r"permission denied for table"


def _create_app_role(role: str, *args: str) -> str:
    out = io.StringIO()
    call_command("create_app_role", "--role", role, *args, stdout=out)
    return out.getvalue()


def _sql(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    # Its own savepoint (when in a transaction), so that a refusal leaves the connection usable.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


@contextmanager
def _connected_as(role: str) -> Iterator[None]:
    """Django's connection logs in as `role` (trust on loopback) for the block, then as the owner again."""
    settings_dict = connection.settings_dict
    owner = settings_dict["USER"], settings_dict["PASSWORD"]
    connection.close()
    settings_dict["USER"], settings_dict["PASSWORD"] = role, ""
    try:
        yield
    finally:
        connection.close()
        settings_dict["USER"], settings_dict["PASSWORD"] = owner


@contextmanager
def _triggers_disabled_by_the_owner() -> Iterator[None]:
    """Committed, so that other connections run without the append-only triggers until the block ends."""
    for table in AUDIT_TABLES:
        _sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    try:
        yield
    finally:
        for table in AUDIT_TABLES:
            _sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture
def app_role() -> Iterator[str]:
    role = f"his_app_test_{uuid.uuid4().hex[:10]}"
    yield role
    if _sql("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
        _sql(f'DROP OWNED BY "{role}"')  # its grants in this database
        _sql(f'DROP ROLE "{role}"')


def _append_as(role: str, count: int) -> list[AuditEvent]:
    with _connected_as(role):
        return [
            audit_record(user=None, kind=EventKind.LOGIN, status=EventStatus.OK, username=f"user{n}")
            for n in range(count)
        ]


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_role_records_events_and_verifies_the_chain(app_role: str) -> None:
    _create_app_role(app_role)

    with _connected_as(app_role):
        assert _sql("SELECT current_user") == [(app_role,)]
        # The first append INSERTs the chain head, the next ones UPDATE it.
        events = [audit_record(user=None, kind=EventKind.LOGIN, status=EventStatus.OK) for _ in range(3)]
        report = verify_chain()

    assert [event.seq for event in events] == [1, 2, 3]
    assert (report.intact, report.events) == (True, 3)


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_role_signs_checkpoints_and_verifies_them(app_role: str, settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "audit-signing-key.pem")
    settings.AUDIT_VERIFY_KEY_FILE = ""
    signing_key_create()
    _create_app_role(app_role)
    _append_as(app_role, 3)

    with _connected_as(app_role):
        checkpoint = checkpoint_create()  # INSERT, and the id sequence
        report = verify_checkpoints()

    assert checkpoint is not None
    assert (checkpoint.seq_from, checkpoint.seq_to) == (1, 3)
    assert (report.intact, report.verified, report.covered_to) == (True, 1, 3)


@requires_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET status = 'denied' WHERE seq = 1",
        "DELETE FROM audit_event WHERE seq = 2",
        "TRUNCATE audit_event",
        "DELETE FROM audit_chain_head",
        "TRUNCATE audit_chain_head",
        "UPDATE audit_checkpoint SET root = repeat('0', 64)",
        "DELETE FROM audit_checkpoint",
        "TRUNCATE audit_checkpoint",
    ],
)
def test_privileges_alone_refuse_changing_the_store(app_role: str, statement: str) -> None:
    _create_app_role(app_role)
    events = _append_as(app_role, 2)

    with _triggers_disabled_by_the_owner():
        assert missing_guards() != []  # nothing but privileges stands in the way now
        with _connected_as(app_role), pytest.raises(ProgrammingError, match=PERMISSION_DENIED):
            _sql(statement)

    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "status", "hash")) == [
        (event.seq, "ok", event.hash) for event in events
    ]
    assert AuditChainHead.objects.values_list("seq", flat=True).get() == 2
    assert verify_chain().intact


@requires_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("ALTER TABLE audit_event DISABLE TRIGGER USER", "must be owner of table audit_event"),
        ("ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_guard", "must be owner of table"),
        (
            "DROP TRIGGER audit_event_append_only ON audit_event",
            "must be owner of (table|relation) audit_event",
        ),
        (
            "SET session_replication_role = replica",
            'permission denied to set parameter "session_replication_role"',
        ),
    ],
)
def test_the_role_cannot_lift_the_guards(app_role: str, statement: str, refusal: str) -> None:
    _create_app_role(app_role)
    with _connected_as(app_role), pytest.raises(ProgrammingError, match=refusal):
        _sql(statement)
    assert missing_guards() == []


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_role_does_the_rest_of_the_applications_work(app_role: str) -> None:
    _create_app_role(app_role)

    with _connected_as(app_role):
        nurse = User.objects.create_user("nina.nurse")  # INSERT, and the id sequence
        nurse.first_name = "Nina"
        nurse.save()
        User.objects.filter(pk=nurse.pk).delete()
        applied = _sql("SELECT count(*) FROM django_migrations")[0][0]
        with pytest.raises(ProgrammingError, match=PERMISSION_DENIED):  # migrations are the owner's
            _sql("DELETE FROM django_migrations")

    assert applied > 0
    assert not User.objects.filter(username="nina.nurse").exists()


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_table_added_by_a_later_migration_is_granted_by_running_it_again(app_role: str) -> None:
    _create_app_role(app_role)
    _sql("CREATE TABLE his_audit2_later (id bigserial PRIMARY KEY, note text)")
    try:
        with _connected_as(app_role), pytest.raises(ProgrammingError, match=PERMISSION_DENIED):
            _sql("INSERT INTO his_audit2_later (note) VALUES ('before')")

        _create_app_role(app_role)

        with _connected_as(app_role):
            _sql("INSERT INTO his_audit2_later (note) VALUES ('after')")
            assert _sql("SELECT note FROM his_audit2_later") == [("after",)]
    finally:
        _sql("DROP TABLE his_audit2_later")


@requires_postgresql
@pytest.mark.django_db
def test_the_role_is_made_and_rerunning_it_changes_nothing(app_role: str) -> None:
    created = _create_app_role(app_role)
    again = _create_app_role(app_role)

    assert created.splitlines()[:2] == [f"Role {app_role}: created.", "  created the role"]
    assert again.splitlines()[0] == f"Role {app_role}: already present."
    assert again.splitlines()[1].startswith("Granted SELECT, INSERT, UPDATE, DELETE on ")
    assert again.splitlines()[2:] == [
        "  audit_event: SELECT, INSERT only.",
        "  audit_chain_head: SELECT, INSERT, UPDATE only.",
        "  audit_checkpoint: SELECT, INSERT only.",
        "  django_migrations: SELECT only.",
    ]
    assert _role_attributes(app_role) == (True, False, False, False, False, False, False)
    assert _privileges(app_role, "audit_event") == ["INSERT", "SELECT"]
    assert _privileges(app_role, "audit_chain_head") == ["INSERT", "SELECT", "UPDATE"]
    assert _privileges(app_role, "audit_checkpoint") == ["INSERT", "SELECT"]
    assert _privileges(app_role, "auth_user") == ["DELETE", "INSERT", "SELECT", "UPDATE"]


def _role_attributes(role: str) -> tuple[Any, ...]:
    return _sql(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls "
        "FROM pg_roles WHERE rolname = %s",
        [role],
    )[0]


def _privileges(role: str, table: str) -> list[str]:
    held = _sql(
        "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', "
        "'TRIGGER']) p WHERE has_table_privilege(%s, %s, p) ORDER BY p",
        [role, table],
    )
    return [privilege for (privilege,) in held]


@requires_postgresql
@pytest.mark.django_db
def test_rerunning_repairs_a_role_that_was_given_too_much(app_role: str) -> None:
    _create_app_role(app_role)
    owner = connection.settings_dict["USER"]
    _sql(f'ALTER ROLE "{app_role}" SUPERUSER CREATEDB INHERIT')
    _sql(f'GRANT "{owner}" TO "{app_role}"')
    _sql(f'GRANT pg_write_all_data TO "{app_role}"')
    _sql(f'ALTER ROLE "{app_role}" SET session_replication_role = replica')
    _sql(f'GRANT UPDATE, DELETE, TRUNCATE, TRIGGER ON audit_event TO "{app_role}"')
    _sql("GRANT DELETE, TRUNCATE ON audit_chain_head TO PUBLIC")

    report = _create_app_role(app_role)

    assert report.splitlines()[:8] == [
        f"Role {app_role}: already present.",
        "  NOSUPERUSER",
        "  NOCREATEDB",
        "  NOINHERIT",
        "  revoked membership in pg_write_all_data",
        f"  revoked membership in {owner}",
        "  reset its settings",
        "  revoked DELETE, TRUNCATE on audit_chain_head from PUBLIC",
    ]
    assert report.splitlines()[8].startswith("Granted SELECT, INSERT, UPDATE, DELETE on ")
    assert _role_attributes(app_role) == (True, False, False, False, False, False, False)
    assert _sql(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
        [app_role],
    ) == [(0,)]
    assert _privileges(app_role, "audit_event") == ["INSERT", "SELECT"]
    assert _privileges(app_role, "audit_chain_head") == ["INSERT", "SELECT", "UPDATE"]


@requires_postgresql
@pytest.mark.django_db
def test_a_password_is_taken_from_the_environment_and_never_printed(
    app_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIS_APP_TEST_PASSWORD", "s3cret-app-password")
    report = _create_app_role(app_role, "--password-env", "HIS_APP_TEST_PASSWORD")

    assert "  set the password" in report.splitlines()
    assert "s3cret-app-password" not in report
    assert _sql("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", [app_role]) == [(True,)]
    monkeypatch.delenv("HIS_APP_TEST_PASSWORD")
    with pytest.raises(CommandError, match="HIS_APP_TEST_PASSWORD is unset or empty"):
        _create_app_role(app_role, "--password-env", "HIS_APP_TEST_PASSWORD")


@requires_postgresql
@pytest.mark.django_db
def test_an_owner_cannot_be_made_the_application_role(app_role: str) -> None:
    with pytest.raises(CommandError, match="is the role this command connects as"):
        _create_app_role(connection.settings_dict["USER"])

    _create_app_role(app_role)
    _sql(f'CREATE TABLE his_audit2_owned (id int); ALTER TABLE his_audit2_owned OWNER TO "{app_role}"')
    with pytest.raises(
        CommandError, match=f"{app_role} owns 1 relations in schema public: an owner can ALTER"
    ):
        _create_app_role(app_role)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Mixed-Case", "pg_app", "public", "x" * 64])
def test_an_unusable_role_name_is_refused(name: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with pytest.raises(CommandError, match="is not a usable role name"):
        _create_app_role(name)


@pytest.mark.django_db
def test_on_sqlite_there_is_no_role_to_make() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    assert "SQLite has no roles or privileges, so there is no role to create." in _create_app_role("his_app")
