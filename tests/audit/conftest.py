"""Audit test fixtures: an attacker who can lift the guards, and a clinician asking questions.

(The audit tables are made flushable for transactional tests by tests/conftest.py, for the whole run.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from django.db import connection
from django.db.backends.utils import CursorWrapper

from audit.models import AuditEvent, EventKind, EventStatus
from audit.services import audit_record
from tests.audit.flush import AUDIT_TABLES


@contextmanager
def _guards_lifted() -> Iterator[CursorWrapper]:
    """An attacker who owns the database switches the append-only triggers off, tampers, and
    switches them back on, so that only the chain can tell. Runs inside the test's transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            yield cursor
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s, %s)",
                list(AUDIT_TABLES),
            )
            triggers = cursor.fetchall()
            for name, _ in triggers:
                cursor.execute(f"DROP TRIGGER {name}")
            yield cursor
            for _, sql in triggers:
                cursor.execute(sql)


@pytest.fixture
def guards_lifted() -> Callable[[], AbstractContextManager[CursorWrapper]]:
    return _guards_lifted


@pytest.fixture
def record_questions(cardiology_clinician: Any) -> Callable[[int], list[AuditEvent]]:
    """Carla the cardiology clinician asks `n` questions; returns their events."""

    def record(n: int) -> list[AuditEvent]:
        return [
            audit_record(
                user=cardiology_clinician,
                kind=EventKind.QUESTION,
                status=EventStatus.ANSWERED,
                purpose_of_use="TREAT",
                question=f"How many patients are in cardiology today? ({index})",
                sql_executed="SELECT count(*) FROM transfers WHERE careunit = 'Cardiology'",
                decision="allow",
                row_count=1,
                patients_touched=[10000032 + index],
            )
            for index in range(n)
        ]

    return record
