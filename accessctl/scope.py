"""Row scope as SQL over the warehouse itself: which patients a subject may see, decided at query time.

Scope is never a stored list. It is a query over transfers and care-team assignments evaluated with
the question, so when a patient moves, access follows at once: the new unit's staff see them, the
old unit's keep them for the care window after the stay ends, then lose them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot import exp

from accessctl.subjects import Subject
from hisplatform.warehouse.organisation import CARE_UNITS

SCOPE_CTE: Final = "__scope"
_STAMP: Final = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class ScopeSpec:
    kinds: frozenset[str]  # care, department, breakglass, all
    # Protected kinds of patient (vip, employee) reachable only through the care team or break-glass,
    # and those not reachable at all.
    team_only: frozenset[str]
    excluded: frozenset[str]
    window_days: int
    identities: bool  # patient_identity is readable: VIP, staff and own-record filters can apply
    care_team: bool  # care_team is readable
    unit_tables: bool  # care_units and departments are readable (else the shipped unit list is used)


def _lit(value: str) -> str:
    return exp.Literal.string(value).sql()


def _stamp(moment: dt.datetime) -> str:
    # In UTC, as the warehouse's times are; to the minute, so the same scope SQL (and its parsed
    # tree, scope_query) serves a whole minute.
    utc = moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment
    return _lit(utc.replace(second=0, microsecond=0).strftime(_STAMP))


def _units(subject: Subject, spec: ScopeSpec) -> str:
    if spec.unit_tables:
        return (
            "SELECT cu.careunit FROM care_units AS cu JOIN departments AS d "
            f"ON d.department_id = cu.department_id WHERE d.code = {_lit(subject.department)}"
        )
    units = [unit.careunit for unit in CARE_UNITS if unit.department_code == subject.department]
    return ", ".join(_lit(unit) for unit in units) or "NULL"


def _flags(kinds: Iterable[str]) -> str:
    columns = {"vip": "vip_flag", "employee": "employee_flag"}
    return " OR ".join(f"{columns[kind]} = TRUE" for kind in sorted(kinds))


def scope_sql(subject: Subject, spec: ScopeSpec) -> str:
    """SELECT subject_id ... : the patients this subject may see now (empty when nothing grants any)."""
    if "all" in spec.kinds:
        # Every patient, for de-identified and aggregate answers (less any kind policy excludes).
        if spec.identities and spec.excluded:
            return (
                "SELECT subject_id FROM patients WHERE subject_id NOT IN "
                f"(SELECT subject_id FROM patient_identity WHERE {_flags(spec.excluded)})"
            )
        return "SELECT subject_id FROM patients"
    now = _stamp(subject.data_now)
    since = _stamp(subject.data_now - dt.timedelta(days=spec.window_days))
    by_unit: list[str] = []
    by_relation: list[str] = []
    if "care" in spec.kinds and subject.department:
        by_unit.append(
            f"SELECT subject_id FROM transfers WHERE careunit IN ({_units(subject, spec)}) "
            f"AND intime <= {now} AND (outtime IS NULL OR outtime >= {since})"
        )
    if "department" in spec.kinds and subject.department:
        by_unit.append(
            f"SELECT subject_id FROM transfers WHERE careunit IN ({_units(subject, spec)}) "
            f"AND intime <= {now}"
        )
    if {"care", "department"} & spec.kinds and spec.care_team and subject.staff_id is not None:
        by_relation.append(
            f"SELECT subject_id FROM care_team WHERE staff_id = {int(subject.staff_id)} "
            f"AND starttime <= {now} AND (endtime IS NULL OR endtime >= {since})"
        )
    grant = subject.breakglass
    if "breakglass" in spec.kinds and grant is not None:
        if grant.scope == "patient" and grant.subject_id is not None:
            by_relation.append(f"SELECT subject_id FROM patients WHERE subject_id = {int(grant.subject_id)}")
        elif grant.scope == "unit":
            by_relation.append(
                f"SELECT subject_id FROM transfers WHERE careunit = {_lit(grant.careunit)} "
                f"AND intime <= {now} AND (outtime IS NULL OR outtime > {now})"
            )
    never: list[str] = []
    if spec.identities:
        if subject.staff_id is not None:
            # Nobody reads their own record here: staff see it through the patient portal.
            never.append(f"staff_id = {int(subject.staff_id)}")
        if spec.excluded:
            never.append(_flags(spec.excluded))
    unit_only = _flags(spec.team_only - spec.excluded) if spec.identities and spec.team_only else ""
    parts: list[str] = []
    if by_unit:
        units = " UNION ".join(by_unit)
        if unit_only:
            units = (
                f"SELECT subject_id FROM ({units}) AS u WHERE subject_id NOT IN "
                f"(SELECT subject_id FROM patient_identity WHERE {unit_only})"
            )
        parts.append(units)
    parts.extend(by_relation)
    if not parts:
        return "SELECT subject_id FROM patients WHERE 1 = 0"
    union = " UNION ".join(parts)
    if never:
        return (
            f"SELECT subject_id FROM ({union}) AS s WHERE subject_id NOT IN "
            f"(SELECT subject_id FROM patient_identity WHERE {' OR '.join(never)})"
        )
    return f"SELECT subject_id FROM ({union}) AS s"


def scope_query(subject: Subject, spec: ScopeSpec, dialect: str) -> exp.Query:
    """The scope as a tree; shared between calls, so callers copy before changing it."""
    return _parsed(scope_sql(subject, spec), dialect)


@functools.lru_cache(maxsize=1024)
def _parsed(sql: str, dialect: str) -> exp.Query:
    tree = sqlglot.parse_one(sql, read=dialect)
    assert isinstance(tree, exp.Query)
    return tree


def in_scope() -> exp.Expr:
    """The row predicate of every table that carries patients."""
    return exp.condition(f"subject_id IN (SELECT subject_id FROM {SCOPE_CTE})")
