"""Role x column class: the exact string each role sees for one patient's identifying columns.

Each case reads one warehouse column through the pipeline's own decide, read_policy, rewrite and
execute steps (what `_run_sql` does before the result is disclosed), on SQLite and on PostgreSQL, and
compares it with the raw value masked by hand: first 3 and last 4 of an ID, the first 3 characters
of a postcode, the year of a birth date, HMAC pseudonyms and date shifts recomputed here from the
project key's definition. What happens after the query (k-anonymity, scrubbing, "90+") is tested
through the whole pipeline in test_disclosure.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from accessctl.decision import DEFAULT_PURPOSE, decide
from accessctl.models import MaskingRule
from accessctl.pseudonyms import project_key
from accessctl.readpolicy import catalog_of, column_classes, read_policy
from accessctl.rewrite import inspect, rewrite
from accessctl.services import masking_rule_save
from accessctl.subjects import subject_for
from hisplatform.queries import answer_sql
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, rows_of

pytestmark = pytest.mark.django_db

PROJECT = "RP-2026-014"


def _key(project: str = PROJECT, generation: int = 1) -> bytes:
    secret = str(settings.PSEUDONYM_SECRET).encode()
    return hmac.new(secret, f"pseudonym-key:{project}:{generation}".encode(), hashlib.sha256).digest()


def _pseudonym(prefix: str, domain: str, value: object, key: bytes | None = None) -> str:
    digest = hmac.new(key or _key(), f"{domain}:{value}".encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:12]


def _shift_days(subject_id: int) -> int:
    digest = hmac.new(_key(), f"shift:{subject_id}".encode(), hashlib.sha256).digest()
    return (digest[0] * 256 + digest[1]) % 365 - 182


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _first3last4(value: object) -> str:
    text = str(value)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def _birth_year(value: object) -> str:
    born = dt.date.fromisoformat(str(value)[:10])
    today = dt.date.today()
    cutoff = today.replace(year=today.year - 90)
    year = (today.year - 90) if born < cutoff else born.year
    return f"{year}-01-01"


def _shifted(value: object, subject_id: int) -> str:
    moment = dt.datetime.fromisoformat(str(value))
    return (moment + dt.timedelta(days=_shift_days(subject_id))).strftime("%Y-%m-%d %H:%M:%S")


RAW = "raw"
NULL = "null"


@dataclass(frozen=True)
class Case:
    masking_class: str
    column: str  # table.column
    key: str  # the column identifying the patient's row in that table: subject_id or hadm_id
    clinician: str | Callable[[object, int], str | None]
    head: str | Callable[[object, int], str | None]
    researcher: str | Callable[[object, int], str | None]


CASES: tuple[Case, ...] = (
    Case("person_name", "patient_identity.given_name", "subject_id", RAW, RAW, NULL),
    Case("person_name", "patient_identity.family_name", "subject_id", RAW, RAW, NULL),
    Case("mrn", "patient_identity.mrn", "subject_id", RAW, RAW, NULL),
    Case("national_id", "patient_identity.national_id", "subject_id", lambda v, _: _first3last4(v), RAW,
         NULL),
    Case("phone", "patient_identity.phone", "subject_id", RAW, RAW, NULL),
    Case("email", "patient_identity.email", "subject_id", RAW, RAW, NULL),
    Case("address", "patient_identity.address", "subject_id", RAW, RAW, NULL),
    Case("city", "patient_identity.city", "subject_id", RAW, RAW, NULL),
    Case("postcode", "patient_identity.postcode", "subject_id", RAW, RAW, lambda v, _: str(v)[:3]),
    Case("birth_date", "patient_identity.birth_date", "subject_id", RAW, RAW, lambda v, _: _birth_year(v)),
    Case("birth_date", "patients.dob", "subject_id", RAW, RAW, lambda v, _: _birth_year(v) + " 00:00:00"),
    Case("age", "admissions.age", "hadm_id", RAW, RAW, lambda v, _: str(min(int(str(v)), 90))),
    Case("event_date", "admissions.admittime", "hadm_id", RAW, RAW, lambda v, p: _shifted(v, p)),
    Case("event_date", "labevents.charttime", "subject_id", RAW, RAW, lambda v, p: _shifted(v, p)),
    Case("patient_id", "patients.subject_id", "subject_id", RAW, RAW,
         lambda _, p: _pseudonym("P-", "patient", p)),
    Case("encounter_id", "admissions.hadm_id", "hadm_id", RAW, RAW,
         lambda v, _: _pseudonym("E-", "encounter", v)),
    Case("staff_id", "care_team.staff_id", "subject_id", RAW, RAW, lambda v, _: _pseudonym("S-", "staff", v)),
    Case("record_id", "labevents.row_id", "subject_id", RAW, RAW, NULL),
    Case("other_indirect", "patient_identity.vip_flag", "subject_id", RAW, RAW, NULL),
)  # fmt: skip

ROLES = {"clinician": "dr.carter", "head": "head.nguyen", "researcher": "res.garcia"}


def _patient(target: WarehouseTarget) -> tuple[int, int]:
    """A cardiology in-patient now (so in the clinician's and the head's scope), not VIP or staff,
    with a national ID, phone, e-mail and address; and their current admission."""
    rows = rows_of(target)(
        "SELECT MIN(t.subject_id) FROM transfers t JOIN care_units cu ON cu.careunit = t.careunit "
        "JOIN departments d ON d.department_id = cu.department_id JOIN patient_identity p "
        "ON p.subject_id = t.subject_id WHERE d.code = 'CARD' AND t.outtime IS NULL "
        "AND NOT p.vip_flag AND NOT p.employee_flag AND p.email IS NOT NULL AND p.phone IS NOT NULL "
        "AND t.subject_id IN (SELECT subject_id FROM care_team) "
        "AND t.subject_id IN (SELECT subject_id FROM labevents)"
    )
    subject_id = int(str(rows[0][0]))
    hadm = rows_of(target)(
        f"SELECT hadm_id FROM admissions WHERE subject_id = {subject_id} AND dischtime IS NULL"
    )
    return subject_id, int(str(hadm[0][0]))


def _through_views(user: User, sql: str, target: WarehouseTarget) -> list[tuple[object, ...]]:
    """The rows `sql` returns to `user` after decide, rewrite and execute (before disclosure)."""
    subject = subject_for(user=user, clock=NOON, data_now=NOON)
    catalog = catalog_of(target)
    inspected = inspect(sql, dialect=target.dialect, catalog=catalog.columns, known_tables=catalog.columns)
    classes = column_classes(inspected.columns)
    project = subject.projects[0] if subject.projects else ""
    decision = decide(
        subject=subject,
        purpose=str(DEFAULT_PURPOSE[subject.role]),  # type: ignore[index]
        data_classes=set(classes.values()),
        patient_rows=True,
        coded=False,
        project=project,
    )
    assert decision.allowed, decision.reason
    policy = read_policy(
        decision=decision,
        subject=subject,
        dialect=target.dialect,
        catalog=catalog,
        allowed_classes=set(classes.values()),
        only=inspected.tables,
    )
    key = project_key(project).key if project else None
    return execute_readonly(
        rewrite(inspected, policy).sql, target=target, pseudonym_key=key, row_cap=100_000
    ).rows


def _expected(how: str | Callable[[object, int], str | None], raw: object, subject_id: int) -> str | None:
    if how == RAW:
        return _text(raw)
    if how == NULL:
        return None
    assert callable(how)
    return how(raw, subject_id)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("case", CASES, ids=[case.column for case in CASES])
def test_each_role_sees_each_column_class_exactly_as_its_profile_says(
    case: Case, role: str, dialect: str, request: pytest.FixtureRequest
) -> None:
    target: WarehouseTarget = request.getfixturevalue(
        f"{'sqlite' if dialect == 'sqlite' else 'pg'}_warehouse"
    )
    people: People = request.getfixturevalue(f"{'sqlite' if dialect == 'sqlite' else 'pg'}_people")
    subject_id, hadm_id = _patient(target)
    table, column = case.column.split(".")
    row_key = subject_id if case.key == "subject_id" else hadm_id
    raw_rows = rows_of(target)(f"SELECT {column} FROM {table} WHERE {case.key} = {row_key} ORDER BY {column}")
    assert raw_rows, f"the seeded patient has no {case.column}"
    if role == "researcher":
        domain, prefix = ("patient", "P-") if case.key == "subject_id" else ("encounter", "E-")
        wanted_key: object = _pseudonym(prefix, domain, row_key)
        literal = f"'{wanted_key}'"
    else:
        wanted_key = row_key
        literal = str(row_key)
    sql = f"SELECT {case.key}, {column} FROM {table} WHERE {case.key} = {literal}"
    shown = _through_views(people[ROLES[role]], sql, target)
    mine = [_text(value) for key, value in shown if key == wanted_key]
    assert mine, f"{role} got no row of the patient from {table}"
    how = {"clinician": case.clinician, "head": case.head, "researcher": case.researcher}[role]
    expected = [_expected(how, raw, subject_id) for (raw,) in raw_rows]
    assert sorted(mine, key=str) == sorted(expected, key=str)


def test_a_project_line_lets_its_researchers_see_partial_national_ids(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget, administrator: User
) -> None:
    subject_id, _ = _patient(sqlite_warehouse)
    raw = rows_of(sqlite_warehouse)(
        f"SELECT national_id FROM patient_identity WHERE subject_id = {subject_id}"
    )
    sql = "SELECT subject_id, national_id FROM patient_identity"
    researcher = sqlite_people["res.garcia"]
    before: dict[object, object] = {
        row[0]: row[1] for row in _through_views(researcher, sql, sqlite_warehouse)
    }
    masking_rule_save(
        line=MaskingRule(
            role="researcher", project=PROJECT, masking_class="national_id", method="first3last4",
            reason="Linkage study approved by REC 26/EM/0147.",
        ),
        changed_by=administrator,
    )  # fmt: skip
    after: dict[object, object] = {
        row[0]: row[1] for row in _through_views(researcher, sql, sqlite_warehouse)
    }
    pseudonym = _pseudonym("P-", "patient", subject_id)
    assert before[pseudonym] is None
    assert after[pseudonym] == _first3last4(raw[0][0])
    assert len(str(after[pseudonym])) == 18
    assert str(after[pseudonym])[3:14] == "*" * 11


def test_administrators_get_no_rows_at_all(sqlite_people: People, sqlite_warehouse: WarehouseTarget) -> None:
    for sql in (
        "SELECT postcode FROM patient_identity",
        "SELECT subject_id, admittime FROM admissions",
        "SELECT * FROM labevents",
    ):
        answer = answer_sql(user=sqlite_people["admin.walsh"], sql=sql, now=NOON, target=sqlite_warehouse)
        assert (answer.status, answer.code, answer.rows) == ("denied", "aggregate_only", [])


def test_administrators_see_postcode_districts_in_their_groups(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    answer = answer_sql(
        user=sqlite_people["admin.walsh"],
        sql="SELECT postcode, COUNT(*) AS patients FROM patient_identity GROUP BY postcode ORDER BY postcode",
        now=NOON,
        target=sqlite_warehouse,
    )
    raw = rows_of(sqlite_warehouse)("SELECT postcode FROM patient_identity")
    districts = sorted({str(row[0])[:3] for row in raw})
    assert answer.status == "answered"
    assert [row[0] for row in answer.rows] == districts
    counts = {str(row[0])[:3]: 0 for row in raw}
    for row in raw:
        counts[str(row[0])[:3]] += 1
    assert [row[1] for row in answer.rows] == [n if n >= 11 else "<11" for _, n in sorted(counts.items())]
