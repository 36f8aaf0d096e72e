"""The access matrix: role x data class x scope x purpose x break-glass state -> what the user gets.

Every case runs through the real pipeline (`answer_question`, or `answer_sql` for data classes no
question reaches yet: direct identifiers, notes, charges) on the seeded demo hospital, at noon on
its reference day. Patients are picked from the warehouse by what they are to the asker (in their
unit now, discharged last week, discharged months ago, in another department, a VIP on their care
team), so the cases hold whatever patients the seed produces.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from accessctl.models import BreakGlassSession, PurposeConfirmation
from audit.models import AuditEvent
from hisplatform.queries import Answer, answer_question, answer_sql
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, rows_of
from tests.factories import StaffProfileFactory

pytestmark = pytest.mark.django_db

_STAMP = "%Y-%m-%d %H:%M:%S"
_NOW = NOON.strftime(_STAMP)
_WINDOW_START = (NOON - dt.timedelta(days=30)).strftime(_STAMP)


def _units(department: str) -> str:
    return (
        "SELECT cu.careunit FROM care_units cu JOIN departments d ON d.department_id = cu.department_id "
        f"WHERE d.code = '{department}'"
    )


def _current(department: str) -> str:
    return (
        f"SELECT subject_id FROM transfers WHERE careunit IN ({_units(department)}) "
        f"AND intime <= '{_NOW}' AND outtime IS NULL"
    )


def _ever(department: str) -> str:
    return f"SELECT subject_id FROM transfers WHERE careunit IN ({_units(department)})"


def _team(username: str) -> str:
    return (
        "SELECT ct.subject_id FROM care_team ct JOIN staff s ON s.staff_id = ct.staff_id "
        f"WHERE s.username = '{username}' AND ct.starttime <= '{_NOW}' "
        f"AND (ct.endtime IS NULL OR ct.endtime >= '{_WINDOW_START}')"
    )


_PLAIN = "SELECT subject_id FROM patient_identity WHERE vip_flag = FALSE AND employee_flag = FALSE"
_SPECIAL = (
    "SELECT subject_id FROM diagnoses_icd WHERE icd_code LIKE 'icd10|f3%' OR icd_code LIKE 'icd10|b20%' "
    "OR icd_code LIKE 'icd10|f1%' OR icd_code LIKE 'icd10|z21%'"
)
_PROTECTED = "SELECT subject_id FROM patient_identity WHERE vip_flag = TRUE OR employee_flag = TRUE"
_ADMITTED = "SELECT subject_id FROM admissions WHERE dischtime IS NOT NULL"


def _first(rows: Callable[[str], list[tuple[object, ...]]], sql: str) -> int:
    found = rows(f"SELECT MIN(subject_id) FROM ({sql}) AS picked")
    assert found, sql
    assert found[0][0] is not None, f"the seeded hospital has no patient for: {sql}"
    return int(str(found[0][0]))


@pytest.fixture
def patients(sqlite_warehouse: WarehouseTarget) -> dict[str, int]:
    return _patients(sqlite_warehouse)


_PICKED: dict[str, dict[str, int]] = {}


def _patients(target: WarehouseTarget) -> dict[str, int]:
    """Patients by what they are to the cardiology staff, at noon on the reference day (the two
    warehouses are seeded alike, so they agree; computed once per warehouse)."""
    if target.url in _PICKED:
        return _PICKED[target.url]
    rows = rows_of(target)
    recent_card = (
        f"SELECT subject_id FROM transfers WHERE careunit IN ({_units('CARD')}) "
        f"AND outtime BETWEEN '{(NOON - dt.timedelta(days=25)):%Y-%m-%d} 00:00:00' "
        f"AND '{(NOON - dt.timedelta(days=5)):%Y-%m-%d} 00:00:00'"
    )
    card_since = (
        f"SELECT subject_id FROM transfers WHERE careunit IN ({_units('CARD')}) "
        f"AND (outtime IS NULL OR outtime >= '{(NOON - dt.timedelta(days=40)):%Y-%m-%d} 00:00:00')"
    )
    picked = _PICKED[target.url] = {
        "in_care": _first(
            rows,
            f"{_current('CARD')} AND subject_id IN ({_PLAIN}) AND subject_id NOT IN ({_SPECIAL}) "
            f"AND subject_id IN ({_ADMITTED})",
        ),
        "recent": _first(
            rows,
            f"{recent_card} AND subject_id NOT IN ({_current('CARD')}) AND subject_id IN ({_PLAIN}) "
            f"AND subject_id NOT IN ({_SPECIAL})",
        ),
        "old": _first(
            rows,
            f"{_ever('CARD')} AND subject_id NOT IN ({card_since}) AND subject_id NOT IN ({_team('dr.carter')}) "
            f"AND subject_id IN ({_PLAIN}) AND subject_id NOT IN ({_SPECIAL})",
        ),
        "other": _first(
            rows,
            f"{_current('NEURO')} AND subject_id NOT IN ({_ever('CARD')}) AND subject_id IN ({_PLAIN}) "
            f"AND subject_id NOT IN ({_SPECIAL})",
        ),
        "protected": _first(
            rows,
            f"{_current('CARD')} AND subject_id IN ({_PROTECTED}) AND subject_id IN ({_team('dr.carter')}) "
            f"AND subject_id NOT IN ({_team('head.nguyen')})",
        ),
        "special": _first(
            rows, f"{_current('CARD')} AND subject_id IN ({_PLAIN}) AND subject_id IN ({_SPECIAL})"
        ),
    }
    return picked


@dataclass(frozen=True)
class Case:
    name: str
    user: str
    data_class: str
    patient: str  # a key of `patients`, or "" for a question about no one patient
    ask: str  # a question ("{p}" is the patient), or "sql:" and SQL
    expect: str  # answered | denied | abstained
    code: str = ""
    purpose: str | None = None
    breakglass: str = "none"  # none | open | expired
    confirm: bool = False


GENDER = "what is the gender of patient {p}?"
DRUG = "what was the first drug prescribed to patient {p}?"
DOB = "what is the date of birth of patient {p}?"
DIAGNOSIS = "what was the name of the diagnosis that patient {p} received last?"
TOP_LABS = "what are the top 3 most frequent lab tests?"
CENSUS = "how many patients are currently admitted?"
IDENTITIES = "sql:SELECT mrn, national_id, given_name, family_name, postcode FROM patient_identity"
IDENTITY = "sql:SELECT mrn, national_id, given_name, family_name FROM patient_identity WHERE subject_id = {p}"
NOTES = "sql:SELECT note_type, charttime, text FROM notes WHERE subject_id = {p} ORDER BY charttime"
COST = "sql:SELECT SUM(cost) FROM cost WHERE subject_id = {p}"
UNITS = "sql:SELECT careunit, beds FROM care_units ORDER BY careunit"
BY_MRN = "sql:SELECT given_name, family_name FROM patient_identity WHERE mrn = '{mrn}'"

CASES: tuple[Case, ...] = (
    # Clinician: scope is the care relationship.
    Case("clinician demographic in care", "dr.carter", "demographic", "in_care", GENDER, "answered"),
    Case("clinician demographic recent discharge", "dr.carter", "demographic", "recent", GENDER, "answered"),
    Case("clinician demographic old stay", "dr.carter", "demographic", "old", GENDER, "denied", "out_of_scope"),
    Case("clinician demographic other dept", "dr.carter", "demographic", "other", GENDER, "denied", "out_of_scope"),
    Case("clinician clinical in care", "dr.carter", "clinical", "in_care", DRUG, "answered"),
    Case("clinician clinical other dept", "dr.carter", "clinical", "other", DRUG, "denied", "out_of_scope"),
    Case("clinician dates in care", "dr.carter", "identifier_indirect", "in_care", DOB, "answered"),
    Case("clinician identity masked", "dr.carter", "identifier_direct", "in_care", IDENTITY, "answered"),
    Case("clinician identity other", "dr.carter", "identifier_direct", "other", IDENTITY, "denied", "out_of_scope"),
    Case("clinician by mrn in care", "dr.carter", "identifier_direct", "in_care", BY_MRN, "answered"),
    Case("clinician by mrn other", "dr.carter", "identifier_direct", "other", BY_MRN, "denied", "out_of_scope"),
    Case("clinician notes in care", "dr.carter", "free_text", "in_care", NOTES, "answered"),
    Case("clinician charges", "dr.carter", "financial", "in_care", COST, "denied", "policy_denied"),
    Case("clinician organisation", "dr.carter", "organisational", "", UNITS, "answered"),
    Case("clinician population", "dr.carter", "reference", "", TOP_LABS, "answered"),
    Case("clinician protected on own team", "dr.carter", "patient:vip", "protected", GENDER, "answered"),
    Case("clinician protected not on team", "dr.new", "patient:vip", "protected", GENDER, "denied", "out_of_scope"),
    Case("clinician without team in care", "dr.new", "demographic", "in_care", GENDER, "answered"),
    Case("clinician special unconfirmed", "dr.carter", "special", "special", DIAGNOSIS, "denied", "confirmation_required"),
    Case("clinician special confirmed", "dr.carter", "special", "special", DIAGNOSIS, "answered", confirm=True),
    Case("clinician research purpose", "dr.carter", "demographic", "in_care", GENDER, "denied", "policy_denied", "HRESCH"),
    Case("clinician operations purpose", "dr.carter", "demographic", "in_care", GENDER, "denied", "isolating_query", "HOPERAT"),
    Case("clinician operations counts", "dr.carter", "demographic", "", CENSUS, "answered", "", "HOPERAT"),
    Case("clinician emergency purpose no glass", "dr.carter", "demographic", "in_care", GENDER, "denied", "policy_denied", "ETREAT"),
    Case("clinician btg purpose no glass", "dr.carter", "demographic", "in_care", GENDER, "denied", "policy_denied", "BTG"),
    # Nurse: the same scope; protected patients only through the care team.
    Case("nurse demographic in care", "nurse.moreau", "demographic", "in_care", GENDER, "answered"),
    Case("nurse other dept", "nurse.moreau", "clinical", "other", DRUG, "denied", "out_of_scope"),
    # Department head: the whole department, any time; full ID numbers.
    Case("head old stay", "head.nguyen", "demographic", "old", GENDER, "answered"),
    Case("head identity full", "head.nguyen", "identifier_direct", "in_care", IDENTITY, "answered"),
    Case("head other dept", "head.nguyen", "demographic", "other", GENDER, "denied", "out_of_scope"),
    Case("head protected not on team", "head.nguyen", "patient:vip", "protected", GENDER, "denied", "out_of_scope"),
    # Another department's clinician, and break-glass.
    Case("neuro clinician own patient", "dr.okafor", "demographic", "other", GENDER, "answered"),
    Case("neuro clinician card patient", "dr.okafor", "demographic", "in_care", GENDER, "denied", "out_of_scope"),
    Case("neuro glass open", "dr.okafor", "demographic", "in_care", GENDER, "answered", breakglass="open"),
    Case("neuro glass open identity", "dr.okafor", "identifier_direct", "in_care", IDENTITY, "answered", breakglass="open"),
    Case("neuro glass other patient", "dr.okafor", "demographic", "recent", GENDER, "denied", "out_of_scope", breakglass="open"),
    Case("neuro glass treat purpose", "dr.okafor", "demographic", "in_care", GENDER, "denied", "out_of_scope", "TREAT", "open"),
    Case("neuro glass expired", "dr.okafor", "demographic", "in_care", GENDER, "denied", "breakglass_expired", breakglass="expired"),
    # Researcher: the de-identified lane; patients only by project pseudonym.
    Case("researcher demographic", "res.garcia", "demographic", "in_care", GENDER, "denied", "isolating_query"),
    Case("researcher population", "res.garcia", "reference", "", TOP_LABS, "answered"),
    Case("researcher identity", "res.garcia", "identifier_direct", "in_care", IDENTITY, "denied", "isolating_query"),
    Case("researcher identity cohort", "res.garcia", "identifier_direct", "", IDENTITIES, "answered"),
    Case("researcher treat purpose", "res.garcia", "demographic", "in_care", GENDER, "denied", "policy_denied", "TREAT"),
    Case("lapsed researcher", "res.lapsed", "demographic", "in_care", GENDER, "denied", "policy_denied"),
    # Administrator: the aggregate lane only.
    Case("admin population", "admin.walsh", "reference", "", TOP_LABS, "denied", "aggregate_only"),
    Case("admin counts", "admin.walsh", "demographic", "", CENSUS, "answered"),
    Case("admin demographic", "admin.walsh", "demographic", "in_care", GENDER, "denied", "isolating_query"),
    Case("admin notes", "admin.walsh", "free_text", "in_care", NOTES, "denied", "policy_denied"),
    Case("admin charges", "admin.walsh", "financial", "in_care", COST, "denied", "isolating_query"),
    # Security officer: no clinical data at all.
    Case("security demographic", "sec.ito", "demographic", "in_care", GENDER, "denied", "policy_denied"),
    Case("security population", "sec.ito", "reference", "", TOP_LABS, "denied", "policy_denied"),
    Case("security organisation", "sec.ito", "organisational", "", UNITS, "denied", "policy_denied"),
)  # fmt: skip


def _open_glass(user: User, subject_id: int, state: str) -> None:
    opened = NOON - dt.timedelta(minutes=10) if state == "open" else NOON - dt.timedelta(minutes=40)
    BreakGlassSession.objects.create(
        user=user,
        username=user.get_username(),
        role="clinician",
        reason_code="unconscious",
        justification="Unconscious patient brought to the neurology ward, history needed.",
        scope="patient",
        subject_id=subject_id,
        opened_at=opened,
        expires_at=opened + dt.timedelta(minutes=30),
    )


def _run(case: Case, user: User, patients: dict[str, int], target: WarehouseTarget) -> Answer:
    subject = patients.get(case.patient, 0)
    mrn = rows_of(target)(f"SELECT mrn FROM patient_identity WHERE subject_id = {subject}") if subject else []
    if case.breakglass != "none":
        _open_glass(user, patients["in_care"], case.breakglass)
    if case.ask.startswith("sql:"):
        return answer_sql(
            user=user, sql=case.ask[4:].format(p=subject, mrn=mrn[0][0] if mrn else ""), purpose=case.purpose, confirm_special=case.confirm,
            now=NOON, target=target,
        )  # fmt: skip
    return answer_question(
        user=user, question=case.ask.format(p=subject), purpose=case.purpose, confirm_special=case.confirm,
        now=NOON, target=target,
    )  # fmt: skip


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_access_matrix(
    case: Case, dialect: str, expired_researcher: User, request: pytest.FixtureRequest
) -> None:
    target: WarehouseTarget = request.getfixturevalue(
        f"{'sqlite' if dialect == 'sqlite' else 'pg'}_warehouse"
    )
    hospital: People = request.getfixturevalue(f"{'sqlite' if dialect == 'sqlite' else 'pg'}_people")
    newcomer = StaffProfileFactory.create(user__username="dr.new", role="clinician", department="CARD").user
    people = dict(hospital, **{"res.lapsed": expired_researcher, "dr.new": newcomer})
    answer = _run(case, people[case.user], _patients(target), target)
    assert (answer.status, answer.code) == (case.expect, case.code), answer.message
    event = AuditEvent.objects.get(seq=answer.audit_event or 0)
    assert event.username == case.user
    assert event.status == case.expect
    assert event.decision == ("allow" if case.expect == "answered" else "deny")
    assert event.policy_trace == answer.policy
    if case.expect == "answered":
        assert answer.rows is not None
        assert (event.sql_executed and "__scope" in event.sql_executed) or case.patient == ""
    else:
        assert answer.rows == []
        assert answer.columns == []
        assert answer.message
    if case.data_class.startswith("special") and case.confirm:
        assert PurposeConfirmation.objects.filter(
            user=people[case.user], audit_event_seq=answer.audit_event
        ).exists()


def test_refusal_says_you_may_not_see_this(
    sqlite_people: People, patients: dict[str, int], sqlite_warehouse: WarehouseTarget
) -> None:
    answer = answer_question(
        user=sqlite_people["dr.carter"],
        question=GENDER.format(p=patients["other"]),
        now=NOON,
        target=sqlite_warehouse,
    )
    assert answer.message.startswith("You may not see this: patient ")
    assert answer.rows == []


def test_answers_match_the_warehouse(
    sqlite_people: People, patients: dict[str, int], sqlite_warehouse: WarehouseTarget
) -> None:
    rows = rows_of(sqlite_warehouse)
    in_care = patients["in_care"]
    gender = answer_question(
        user=sqlite_people["dr.carter"], question=GENDER.format(p=in_care), now=NOON, target=sqlite_warehouse
    )
    assert gender.rows == [[rows(f"SELECT gender FROM patients WHERE subject_id = {in_care}")[0][0]]]
    mrn, national_id, given, family = rows(
        f"SELECT mrn, national_id, given_name, family_name FROM patient_identity WHERE subject_id = {in_care}"
    )[0]
    assert isinstance(national_id, str)
    assert len(national_id) == 18
    clinician = answer_sql(
        user=sqlite_people["dr.carter"], sql=IDENTITY[4:].format(p=in_care), now=NOON, target=sqlite_warehouse
    )
    assert clinician.rows == [[mrn, national_id[:3] + "*" * 11 + national_id[-4:], given, family]]
    assert clinician.masked == {"national_id": "first 3 and last 4 characters shown"}
    head = answer_sql(
        user=sqlite_people["head.nguyen"],
        sql=IDENTITY[4:].format(p=in_care),
        now=NOON,
        target=sqlite_warehouse,
    )
    assert head.rows == [[mrn, national_id, given, family]]
    assert head.masked == {}


def test_special_category_confirmation_is_recorded(
    sqlite_people: People, patients: dict[str, int], sqlite_warehouse: WarehouseTarget
) -> None:
    question = DIAGNOSIS.format(p=patients["special"])
    first = answer_question(
        user=sqlite_people["dr.carter"], question=question, now=NOON, target=sqlite_warehouse
    )
    assert (first.status, first.code) == ("denied", "confirmation_required")
    assert first.confirm_required
    assert "Confirm" in first.message
    assert not PurposeConfirmation.objects.exists()
    second = answer_question(
        user=sqlite_people["dr.carter"],
        question=question,
        confirm_special=True,
        now=NOON,
        target=sqlite_warehouse,
    )
    assert second.status == "answered"
    assert second.rows
    confirmation = PurposeConfirmation.objects.get()
    assert (confirmation.username, confirmation.purpose, confirmation.audit_event_seq) == (
        "dr.carter",
        "TREAT",
        second.audit_event,
    )
    assert AuditEvent.objects.get(seq=second.audit_event or 0).details["purpose_confirmed"]


def test_population_answers_count_only_patients_in_scope(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    rows = rows_of(sqlite_warehouse)
    answer = answer_question(
        user=sqlite_people["dr.carter"],
        question="how many patients are currently admitted?",
        now=NOON,
        target=sqlite_warehouse,
    )
    everyone = rows("SELECT COUNT(DISTINCT subject_id) FROM admissions WHERE dischtime IS NULL")[0][0]
    by_unit = (
        f"SELECT subject_id FROM transfers WHERE careunit IN ({_units('CARD')}) AND intime <= '{_NOW}' "
        f"AND (outtime IS NULL OR outtime >= '{_WINDOW_START}') "
        f"AND subject_id NOT IN ({_PROTECTED})"
    )
    own_record = "SELECT subject_id FROM patient_identity pi JOIN staff s ON s.staff_id = pi.staff_id"
    mine = rows(
        "SELECT COUNT(DISTINCT subject_id) FROM admissions WHERE dischtime IS NULL AND subject_id IN "
        f"({by_unit} UNION {_team('dr.carter')}) AND subject_id NOT IN ({own_record} WHERE s.username = 'dr.carter')"
    )[0][0]
    assert isinstance(everyone, int)
    assert isinstance(mine, int)
    assert 0 < mine < everyone
    assert answer.status == "answered"
    assert answer.rows == [[mine]]
    assert answer.notices[0].startswith("Only patients you may see are included")
