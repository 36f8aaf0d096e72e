"""What the warehouse says about people: who treats whom, who is related to whom, who is protected.

The anomaly features and the relationship rules ask, for an access by a member of staff to a patient at
a moment: was the user on the patient's care team, was the patient in the user's department then, do they
share a surname or an address, is the patient a VIP, an employee, the user themself, deceased? Answering
that per event from the warehouse would cost a query each; instead the facts are read once into memory
(a few hundred bytes a patient) and kept for a while.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import re
import threading
import time
from collections.abc import Sequence
from typing import Final

from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target

# Relationship levels, strongest last.
NONE: Final = 0
RECENT: Final = 1  # a stay in the user's department that ended within RECENT_DAYS
UNIT: Final = 2  # in the user's department at the time (a current stay or visit)
TEAM: Final = 3  # on the patient's care team at the time
RELATION_NAMES: Final = {NONE: "none", RECENT: "recent stay", UNIT: "in the department", TEAM: "care team"}

DAY: Final = 86_400.0
# The policy's own window: clinicians see their department's patients discharged in the last 30 days.
RECENT_DAYS: Final = 30
# A care-team assignment is written when the work starts; results arrive and letters are written after.
TEAM_GRACE_DAYS: Final = 7
# The facts are re-read after this long: new admissions and assignments are seen within 10 minutes.
CACHE_SECONDS: Final = 600.0
_ROW_CAP: Final = 100_000_000
_MAX_BYTES: Final = 10**11


@dataclasses.dataclass(frozen=True, slots=True)
class PatientFacts:
    family_name: str  # lower case, "" when unknown
    address: str  # normalised (lower case, single spaces), "" when unknown
    vip: bool
    employee: bool
    staff_id: int | None  # the staff record of a patient who works here
    died_at: float | None  # epoch seconds
    diagnoses: frozenset[str]  # icd codes, as the warehouse writes them


@dataclasses.dataclass(frozen=True, slots=True)
class StaffFacts:
    username: str
    family_name: str
    address: str
    role: str
    department: str  # departments.code, "" for staff without one


def normalise_address(value: object) -> str:
    return re.sub(r"\s+", " ", str(value or "")).strip().lower()


def epoch(value: object) -> float | None:
    """Seconds since 1970 of a warehouse timestamp (a datetime, or ISO text from SQLite); naive is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    return None


@dataclasses.dataclass(slots=True)
class Relations:
    """The warehouse's people and relationships, indexed for per-access questions."""

    patients: dict[int, PatientFacts]
    staff: dict[int, StaffFacts]
    # subject -> department -> sorted (start, end) intervals of stays and visits (end inf while open).
    stays: dict[int, dict[str, list[tuple[float, float]]]]
    # subject -> staff_id -> (start, end) care-team intervals.
    team: dict[int, dict[int, list[tuple[float, float]]]]
    loaded_at: float = 0.0

    def relation(self, staff_id: int | None, department: str, subject_id: int, at: float) -> int:
        """How the user at `at` (epoch seconds, warehouse time) is placed to be treating the patient."""
        if staff_id is not None:
            links = self.team.get(subject_id, {}).get(staff_id)
            if links and any(start - DAY <= at <= end + TEAM_GRACE_DAYS * DAY for start, end in links):
                return TEAM
        if not department:
            return NONE
        intervals = self.stays.get(subject_id, {}).get(department)
        if not intervals:
            return NONE
        # The last stay that started by `at` (plus a day: records are opened ahead of arrival).
        index = bisect.bisect_right(intervals, (at + DAY, float("inf"))) - 1
        best = NONE
        while index >= 0:
            end = intervals[index][1]
            if end >= at - DAY:
                return UNIT
            if end >= at - RECENT_DAYS * DAY:
                best = RECENT
            else:
                break
            index -= 1
        return best

    def stayed_in(self, subject_id: int, department: str, at: float, days: int) -> bool:
        """Whether the patient had a stay in the department that ended within `days` before `at`."""
        intervals = self.stays.get(subject_id, {}).get(department, ())
        return any(start <= at + DAY and end >= at - days * DAY for start, end in intervals)

    def departments_of(self, subject_id: int, at: float) -> set[str]:
        """The departments the patient was in within RECENT_DAYS before `at` (their care context)."""
        found: set[str] = set()
        for department, intervals in self.stays.get(subject_id, {}).items():
            if any(start <= at + DAY and end >= at - RECENT_DAYS * DAY for start, end in intervals):
                found.add(department)
        return found

    def in_cohort(self, subject_id: int, prefixes: Sequence[str]) -> bool:
        """Whether the patient has a diagnosis whose code starts with one of the prefixes."""
        facts = self.patients.get(subject_id)
        if facts is None:
            return False
        return any(code.startswith(prefix) for code in facts.diagnoses for prefix in prefixes)


def load_relations(target: WarehouseTarget | None = None) -> Relations:
    """Read the facts from the warehouse (several queries, each a full scan of a small table)."""
    target = target or warehouse_target()

    def rows(sql: str) -> list[tuple[object, ...]]:
        return execute_readonly(sql, target=target, row_cap=_ROW_CAP, max_result_bytes=_MAX_BYTES).rows

    departments = {row[0]: str(row[1]) for row in rows("SELECT department_id, code FROM departments")}
    unit_department = {
        str(row[0]): departments.get(row[1], "")
        for row in rows("SELECT careunit, department_id FROM care_units")
    }
    staff = {
        int(str(row[0])): StaffFacts(
            username=str(row[1] or ""),
            family_name=str(row[2] or "").strip().lower(),
            address=normalise_address(row[3]),
            role=str(row[4] or ""),
            department=departments.get(row[5], ""),
        )
        for row in rows("SELECT staff_id, username, family_name, address, role, department_id FROM staff")
    }
    diagnoses: dict[int, set[str]] = {}
    for subject, code in rows("SELECT DISTINCT subject_id, icd_code FROM diagnoses_icd"):
        diagnoses.setdefault(int(str(subject)), set()).add(str(code))
    died = {int(str(row[0])): epoch(row[1]) for row in rows("SELECT subject_id, dod FROM patients")}
    patients: dict[int, PatientFacts] = {}
    identity = rows(
        "SELECT subject_id, family_name, address, vip_flag, employee_flag, staff_id FROM patient_identity"
    )
    for subject_raw, family, address, vip, employee, staff_id in identity:
        subject = int(str(subject_raw))
        patients[subject] = PatientFacts(
            family_name=str(family or "").strip().lower(),
            address=normalise_address(address),
            vip=bool(vip),
            employee=bool(employee),
            staff_id=int(str(staff_id)) if staff_id is not None else None,
            died_at=died.get(subject),
            diagnoses=frozenset(diagnoses.get(subject, ())),
        )
    for subject, died_at in died.items():
        if subject not in patients:
            patients[subject] = PatientFacts(
                "", "", False, False, None, died_at, frozenset(diagnoses.get(subject, ()))
            )
    stays: dict[int, dict[str, list[tuple[float, float]]]] = {}

    def add_stay(subject: object, department: str, start: object, end: object, *, open_for: float) -> None:
        begin = epoch(start)
        if not department or begin is None:
            return
        finish = epoch(end)
        if finish is None and open_for < float("inf"):
            finish = begin + open_for
        stays.setdefault(int(str(subject)), {}).setdefault(department, []).append(
            (begin, float("inf") if finish is None else finish)
        )

    for subject, unit, start, end in rows("SELECT subject_id, careunit, intime, outtime FROM transfers"):
        add_stay(subject, unit_department.get(str(unit), ""), start, end, open_for=float("inf"))
    for subject, department_id, start, end in rows(
        "SELECT subject_id, department_id, starttime, endtime FROM visits"
    ):
        # A visit without an end is a no-show or an attendance never closed, not a stay that goes on:
        # it counts for the day it began.
        add_stay(subject, departments.get(department_id, ""), start, end, open_for=DAY)
    for by_department in stays.values():
        for intervals in by_department.values():
            intervals.sort()
    team: dict[int, dict[int, list[tuple[float, float]]]] = {}
    for subject, staff_id, start, end in rows(
        "SELECT subject_id, staff_id, starttime, endtime FROM care_team"
    ):
        begin = epoch(start)
        if begin is None:
            continue
        finish = epoch(end)
        team.setdefault(int(str(subject)), {}).setdefault(int(str(staff_id)), []).append(
            (begin, float("inf") if finish is None else finish)
        )
    return Relations(patients=patients, staff=staff, stays=stays, team=team, loaded_at=time.monotonic())


_CACHE: dict[str, Relations] = {}
_CACHE_LOCK = threading.Lock()


def current_relations(target: WarehouseTarget | None = None) -> Relations:
    """The facts of the configured warehouse, read at most every CACHE_SECONDS per process."""
    target = target or warehouse_target()
    with _CACHE_LOCK:
        cached = _CACHE.get(target.url)
    if cached is not None and time.monotonic() - cached.loaded_at < CACHE_SECONDS:
        return cached
    fresh = load_relations(target)
    with _CACHE_LOCK:
        _CACHE[target.url] = fresh
    return fresh


def forget_relations() -> None:
    """Drop the cached facts (after a warehouse reload, and between tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def family_members(relations: Relations, staff_id: int) -> list[int]:
    """Patients sharing the member of staff's surname or address (themself excluded)."""
    member = relations.staff.get(staff_id)
    if member is None:
        return []
    return sorted(
        subject
        for subject, facts in relations.patients.items()
        if facts.staff_id != staff_id
        and (
            (member.family_name and facts.family_name == member.family_name)
            or (member.address and facts.address == member.address)
        )
    )
