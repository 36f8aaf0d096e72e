"""The database itself refuses to change or remove audit events, and to fork or rewind the chain."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from audit.chain import GENESIS_HASH, missing_guards
from audit.models import AuditChainHead, AuditEvent, EventStatus

pytestmark = pytest.mark.django_db

REFUSED = "audit events are append-only"
requires_postgresql = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL only")


def _raw(sql: str, params: list[Any] | None = None) -> None:
    # Its own savepoint, so that the refusal leaves the test's transaction usable on PostgreSQL.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE audit_event SET status = 'ok' WHERE seq = 2", f"{REFUSED}: UPDATE on audit_event"),
        ("UPDATE audit_event SET seq = seq + 10", f"{REFUSED}: UPDATE on audit_event"),
        ("DELETE FROM audit_event WHERE seq = 3", f"{REFUSED}: DELETE on audit_event"),
        ("DELETE FROM audit_event", f"{REFUSED}: DELETE on audit_event"),
    ],
)
def test_raw_sql_cannot_change_or_remove_an_event(record_questions, statement: str, refusal: str) -> None:
    events = record_questions(3)
    with pytest.raises(IntegrityError, match=refusal):
        _raw(statement)
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", "status", "hash")) == [
        (event.seq, "answered", event.hash) for event in events
    ]


@requires_postgresql
def test_truncate_is_refused(record_questions) -> None:
    record_questions(2)
    with pytest.raises(IntegrityError, match="append-only: TRUNCATE on audit_event refused"):
        _raw("TRUNCATE audit_event")
    with pytest.raises(IntegrityError, match="the audit chain head cannot be removed: TRUNCATE refused"):
        _raw("TRUNCATE audit_chain_head")
    assert AuditEvent.objects.count() == 2


@requires_postgresql
def test_truncate_is_refused_even_when_the_store_is_empty() -> None:
    with pytest.raises(IntegrityError, match="TRUNCATE on audit_event refused"):
        _raw("TRUNCATE audit_event")


def test_the_orm_cannot_change_or_remove_an_event_either(record_questions) -> None:
    event = record_questions(1)[0]
    event.status = EventStatus.ERROR
    with pytest.raises(IntegrityError, match="append-only: UPDATE"), transaction.atomic():
        event.save()
    with pytest.raises(IntegrityError, match="append-only: UPDATE"), transaction.atomic():
        AuditEvent.objects.update(message="nothing to see")
    with pytest.raises(IntegrityError, match="append-only: DELETE"), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get().status == EventStatus.ANSWERED


def test_two_events_cannot_claim_the_same_predecessor(record_questions) -> None:
    first = record_questions(1)[0]
    columns = "seq, prev_hash, hash, occurred_at, kind, status, username, role, attributes, client_addr"
    rest = "user_agent, purpose_of_use, question, sql_generated, sql_executed, decision, obligations"
    more = "policy_trace, tables_touched, columns_touched, patients_touched, patients_touched_count"
    tail = "message, details"
    sql = (
        f"INSERT INTO audit_event ({columns}, {rest}, {more}, {tail}) VALUES "
        "(%s, %s, %s, %s, 'question', 'answered', 'mallory', '', '{}', '', '', '', '', '', '', 'none', "
        "'{}', '{}', '[]', '[]', '[]', 0, '', '{}')"
    )
    with pytest.raises(IntegrityError, match=r"(?i)unique"):  # a fork: event 1's predecessor again
        _raw(sql, [2, GENESIS_HASH, "f" * 64, first.occurred_at])
    with pytest.raises(IntegrityError, match=r"(?i)unique|duplicate key"):  # event 1's position again
        _raw(sql, [1, "e" * 64, "f" * 64, first.occurred_at])
    _raw(sql, [2, first.hash, "f" * 64, first.occurred_at])  # the same row, linked properly, is accepted
    assert AuditEvent.objects.count() == 2


def test_the_chain_head_cannot_be_removed_rewound_or_pointed_at_nothing(record_questions) -> None:
    events = record_questions(3)
    with pytest.raises(IntegrityError, match="the audit chain head cannot be removed"):
        _raw("DELETE FROM audit_chain_head")
    with pytest.raises(IntegrityError, match="only moves forward"):
        _raw("UPDATE audit_chain_head SET seq = 2, hash = %s", [events[1].hash])
    with pytest.raises(IntegrityError, match="existing event"):
        _raw("UPDATE audit_chain_head SET seq = 4, hash = %s", ["a" * 64])
    with pytest.raises(IntegrityError, match=r"(?i)check constraint"):  # a second head row
        _raw("INSERT INTO audit_chain_head (id, seq, hash) VALUES (2, 3, %s)", [events[2].hash])
    assert AuditChainHead.objects.values_list("seq", "hash").get() == (3, events[2].hash)


@pytest.mark.django_db(transaction=True)
def test_manage_py_flush_cannot_wipe_the_store(record_questions) -> None:
    record_questions(2)
    ops_class = type(connection.ops)
    with pytest.MonkeyPatch.context() as patch:
        unhooked = ops_class.sql_flush.__wrapped__  # type: ignore[attr-defined]  # kept by functools.wraps
        patch.setattr(ops_class, "sql_flush", unhooked)
        with pytest.raises(CommandError, match="couldn't be flushed"):
            call_command("flush", interactive=False, verbosity=0)
    assert AuditEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_tests_flush_hook_empties_the_store_and_keeps_the_guards(record_questions) -> None:
    record_questions(2)
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    assert not AuditChainHead.objects.exists()
    assert missing_guards() == []
    assert record_questions(1)[0].seq == 1
