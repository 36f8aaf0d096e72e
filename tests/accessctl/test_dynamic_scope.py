"""Access follows the patient: a transfer (as the generator wrote it) moves who may see them, with no
policy edited. The receiving unit's staff gain access at the transfer; the sending unit's keep it for
the care window after the stay ends, then lose it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User

from hisplatform.queries import answer_question
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import rows_of
from tests.factories import StaffProfileFactory

pytestmark = pytest.mark.django_db

_STAMP = "%Y-%m-%d %H:%M:%S"
_WINDOW = dt.timedelta(days=30)
_DEPARTMENT_UNITS = (
    "SELECT cu.careunit FROM care_units cu JOIN departments d ON d.department_id = cu.department_id "
    "WHERE d.code = '{}'"
)


def _visible(rows: object, subject_id: int, department: str, moment: dt.datetime) -> bool:
    """Ground truth from the transfers table alone: a stay in the department's units in the window."""
    assert callable(rows)
    found = rows(
        f"SELECT 1 FROM transfers WHERE subject_id = {subject_id} "
        f"AND careunit IN ({_DEPARTMENT_UNITS.format(department)}) AND intime <= '{moment:{_STAMP}}' "
        f"AND (outtime IS NULL OR outtime >= '{moment - _WINDOW:{_STAMP}}')"
    )
    return bool(found)


def _transfer(target: WarehouseTarget) -> tuple[int, str, str, dt.datetime, dt.datetime]:
    """A plain patient moved from a cardiology unit to another department's unit, with the three moments
    (just before, just after, a window after leaving cardiology) telling the two departments apart."""
    rows = rows_of(target)
    candidates = rows(
        "SELECT a.subject_id, d2.code, a.outtime FROM transfers a "
        "JOIN transfers b ON b.hadm_id = a.hadm_id AND b.intime = a.outtime "
        "JOIN care_units c1 ON c1.careunit = a.careunit "
        "JOIN departments d1 ON d1.department_id = c1.department_id "
        "JOIN care_units c2 ON c2.careunit = b.careunit "
        "JOIN departments d2 ON d2.department_id = c2.department_id "
        "JOIN patient_identity p ON p.subject_id = a.subject_id "
        "WHERE d1.code = 'CARD' AND d2.code <> 'CARD' AND NOT p.vip_flag AND NOT p.employee_flag "
        "ORDER BY a.outtime DESC"
    )
    for subject_id, department, moved_text in candidates:
        moved = dt.datetime.strptime(str(moved_text), _STAMP).replace(tzinfo=dt.UTC)
        before, after = moved - dt.timedelta(minutes=1), moved + dt.timedelta(minutes=1)
        later = moved + _WINDOW + dt.timedelta(days=1)
        subject = int(str(subject_id))
        pattern = [
            (_visible(rows, subject, "CARD", t), _visible(rows, subject, str(department), t))
            for t in (before, after, later)
        ]
        if pattern[0] == (True, False) and pattern[1] == (True, True) and pattern[2][0] is False:
            return subject, str(department), "CARD", moved, later
    pytest.fail("the seeded hospital has no transfer out of cardiology to test with")


def _clinician(username: str, department: str) -> User:
    # No staff record, hence no care-team links: only unit stays give this clinician access.
    return StaffProfileFactory.create(user__username=username, role="clinician", department=department).user


def test_access_follows_a_transfer(default_policy: None, sqlite_warehouse: WarehouseTarget) -> None:
    subject_id, new_department, old_department, moved, later = _transfer(sqlite_warehouse)
    sending = _clinician("sending.unit", old_department)
    receiving = _clinician("receiving.unit", new_department)
    question = f"what is the gender of patient {subject_id}?"

    def status(user: User, moment: dt.datetime) -> str:
        return answer_question(user=user, question=question, now=moment, target=sqlite_warehouse).status

    before, after = moved - dt.timedelta(minutes=1), moved + dt.timedelta(minutes=1)
    assert [status(sending, t) for t in (before, after, later)] == ["answered", "answered", "denied"]
    assert [status(receiving, t) for t in (before, after)] == ["denied", "answered"]
