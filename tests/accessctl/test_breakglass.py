"""Break-glass end to end: who may open it and how, what it widens, its expiry, escalation and review."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from accessctl import services
from accessctl.models import BreakGlassSession, Notification
from accessctl.services import (
    AccessError,
    breakglass_end,
    breakglass_expire_due,
    breakglass_open,
    breakglass_review,
)
from accessctl.tasks import expire_breakglass
from audit.models import AuditEvent
from hisplatform.models import Role, StaffProfile
from hisplatform.queries import Answer, answer_question
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, PASSWORD, People, rows_of
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CaptureCallbacks = Callable[..., Any]

JUSTIFICATION = "Found collapsed in the corridor, no history available."
# A cardiology inpatient at NOON (medicine/cardiology) with no tie to dr.okafor (neurology).
CARD_PATIENT = 13736961
# Another cardiology inpatient at NOON, also outside dr.okafor's care.
OTHER_CARD_PATIENT = 10594802
UNIT = "medicine/cardiology"
SEC_ITO_MAIL = "sec.ito@demo-hospital.example"


def _open(people: People, username: str, target: WarehouseTarget, **overrides: Any) -> BreakGlassSession:
    arguments: dict[str, Any] = {
        "reason": "unconscious",
        "justification": JUSTIFICATION,
        "password": PASSWORD,
        "scope": "patient",
        "subject_id": CARD_PATIENT,
        "now": NOON,
        "target": target,
    }
    arguments.update(overrides)
    return breakglass_open(user=people[username], **arguments)


def _gender(user: User, subject_id: int, target: WarehouseTarget, now: dt.datetime, **kw: Any) -> Answer:
    return answer_question(
        user=user, question=f"what is the gender of patient {subject_id}?", now=now, target=target, **kw
    )


def _last_event(kind: str) -> AuditEvent:
    event = AuditEvent.objects.filter(kind=kind).order_by("-seq").first()
    assert event is not None, f"no {kind} event"
    return event


def _event_of(answer: Answer) -> AuditEvent:
    assert answer.audit_event is not None
    return AuditEvent.objects.get(pk=answer.audit_event)


def _refused_message(subject_id: int) -> str:
    return (
        f"You may not see this: patient {subject_id} is outside your care relationships (or does not "
        "exist). Open break-glass access if this is an emergency."
    )


# --- Refusals -------------------------------------------------------------------------------------------

ROLE_MESSAGE = (
    "Break-glass is for clinical staff; researchers, administrators and the privacy office cannot open it."
)
SCOPE_PATIENT_MESSAGE = "Name exactly one patient for patient-scoped break-glass."


@pytest.mark.parametrize(
    ("username", "overrides", "code", "message"),
    [
        pytest.param(
            "dr.okafor",
            {"password": "not my password"},
            "password",
            "The password is not correct; break-glass needs your own password.",
            id="wrong-password",
        ),
        pytest.param("res.garcia", {}, "role", ROLE_MESSAGE, id="researcher"),
        pytest.param("admin.walsh", {}, "role", ROLE_MESSAGE, id="administrator"),
        pytest.param("sec.ito", {}, "role", ROLE_MESSAGE, id="security-officer"),
        pytest.param(
            "dr.okafor",
            {"reason": "hunch"},
            "reason",
            "Choose a reason from the list (cardiac_arrest, unconscious, emergency_admission, covering, "
            "other_emergency).",
            id="unknown-reason",
        ),
        pytest.param(
            "dr.okafor",
            # 19 characters once the padding is stripped: one short of what a reviewer needs.
            {"justification": "   patient collapsed!!   "},
            "justification",
            "Write at least 20 characters saying what the emergency is; a reviewer reads it.",
            id="short-justification",
        ),
        pytest.param(
            "dr.okafor", {"minutes": 0}, "minutes", "Break-glass lasts between 1 and 60 minutes.", id="0-min"
        ),
        pytest.param(
            "dr.okafor",
            {"minutes": 61},
            "minutes",
            "Break-glass lasts between 1 and 60 minutes.",
            id="61-min",
        ),
        pytest.param("dr.okafor", {"subject_id": None}, "scope", SCOPE_PATIENT_MESSAGE, id="no-patient"),
        pytest.param("dr.okafor", {"careunit": UNIT}, "scope", SCOPE_PATIENT_MESSAGE, id="patient-and-unit"),
        pytest.param(
            "dr.okafor",
            {"scope": "unit", "careunit": UNIT},
            "scope",
            "Name exactly one care unit for unit-scoped break-glass.",
            id="unit-and-patient",
        ),
        pytest.param(
            "dr.okafor",
            {"scope": "ward"},
            "scope",
            "Break-glass is scoped to one patient or one unit.",
            id="unknown-scope",
        ),
        pytest.param(
            "dr.okafor",
            {"subject_id": 99999999},
            "unknown_target",
            "There is no patient 99999999 in the warehouse.",
            id="unknown-patient",
        ),
        pytest.param(
            "dr.okafor",
            {"scope": "unit", "subject_id": None, "careunit": "rooftop helipad"},
            "unknown_target",
            "There is no unit 'rooftop helipad' in the warehouse.",
            id="unknown-unit",
        ),
    ],
)
def test_refused_openings_are_audited_and_open_nothing(
    sqlite_people: People,
    sqlite_warehouse: WarehouseTarget,
    django_capture_on_commit_callbacks: CaptureCallbacks,
    username: str,
    overrides: dict[str, Any],
    code: str,
    message: str,
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(AccessError) as refused:
        _open(sqlite_people, username, sqlite_warehouse, **overrides)

    assert (refused.value.code, refused.value.message) == (code, message)
    event = _last_event("breakglass_open")
    assert (event.status, event.username, event.message) == ("denied", username, message)
    assert event.details["code"] == code
    assert event.breakglass_session_id is None
    assert BreakGlassSession.objects.count() == 0
    assert Notification.objects.count() == 0
    assert mail.outbox == []


def test_five_wrong_passwords_lock_break_glass_even_for_the_right_one(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(5):
        with pytest.raises(AccessError) as wrong:
            _open(sqlite_people, "dr.okafor", sqlite_warehouse, password="guess")
        assert wrong.value.code == "password"
    with pytest.raises(AccessError) as locked:
        _open(sqlite_people, "dr.okafor", sqlite_warehouse)
    assert locked.value.code == "password_locked"
    assert locked.value.message.startswith(
        "Break-glass is locked for your account after 5 wrong passwords in 15"
    )
    assert _last_event("breakglass_open").details["code"] == "password_locked"
    assert BreakGlassSession.objects.count() == 0
    # Another clinician is not locked by them; and after the window the account may try again.
    assert _open(sqlite_people, "dr.carter", sqlite_warehouse, subject_id=OTHER_CARD_PATIENT).pk
    monkeypatch.setattr(services, "BREAKGLASS_PASSWORD_WINDOW", dt.timedelta(seconds=0))
    assert _open(sqlite_people, "dr.okafor", sqlite_warehouse).pk


def test_nobody_opens_break_glass_on_their_own_record(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    truth = rows_of(sqlite_warehouse)
    demo_staff_ids = [profile.staff_id for profile in StaffProfile.objects.exclude(staff_id=None)]
    employees = truth(
        "SELECT staff_id, subject_id FROM patient_identity WHERE staff_id IS NOT NULL ORDER BY staff_id"
    )
    # None of the demo accounts is a patient, so the case needs an account for a staff member who is.
    assert employees
    assert not {int(str(row[0])) for row in employees} & set(demo_staff_ids)
    staff_id, own_record = int(str(employees[0][0])), int(str(employees[0][1]))
    user = UserFactory.create(username="dr.patient")
    StaffProfile.objects.create(user=user, role=Role.CLINICIAN, department="CARD", staff_id=staff_id)

    with pytest.raises(AccessError) as refused:
        breakglass_open(
            user=user,
            reason="covering",
            justification=JUSTIFICATION,
            password=PASSWORD,
            scope="patient",
            subject_id=own_record,
            now=NOON,
            target=sqlite_warehouse,
        )

    assert (refused.value.code, refused.value.message) == ("self", "Break-glass cannot open your own record.")
    event = _last_event("breakglass_open")
    assert (event.status, event.username, event.details["subject_id"]) == ("denied", "dr.patient", own_record)
    # Anyone else's record opens for the same person.
    session = breakglass_open(
        user=user,
        reason="covering",
        justification=JUSTIFICATION,
        password=PASSWORD,
        scope="patient",
        subject_id=CARD_PATIENT,
        now=NOON,
        target=sqlite_warehouse,
    )
    assert session.subject_id == CARD_PATIENT


# --- Opening --------------------------------------------------------------------------------------------


def test_opening_records_notifies_and_mails_after_commit(
    sqlite_people: People,
    sqlite_warehouse: WarehouseTarget,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        session = _open(sqlite_people, "dr.okafor", sqlite_warehouse)
        # Nothing leaves the building before the session is committed.
        assert mail.outbox == []

    assert (session.opened_at, session.expires_at) == (NOON, NOON + dt.timedelta(minutes=30))
    assert (session.username, session.role, session.scope, session.subject_id, session.careunit) == (
        "dr.okafor",
        "clinician",
        "patient",
        CARD_PATIENT,
        "",
    )
    assert (session.reason_code, session.justification) == ("unconscious", JUSTIFICATION)
    assert (session.review, session.escalated, session.queries, session.ended_at) == (
        "pending",
        False,
        0,
        None,
    )

    event = _last_event("breakglass_open")
    assert (event.status, event.username, event.breakglass_session_id) == ("ok", "dr.okafor", session.pk)
    assert event.message == f"break-glass opened for patient {CARD_PATIENT} for 30 minutes"
    assert event.patients_touched == [CARD_PATIENT]
    assert event.details == {
        "reason": "unconscious",
        "justification": JUSTIFICATION,
        "scope": "patient",
        "careunit": "",
        "minutes": 30,
        "escalated": False,
        "uses_in_7_days": 1,
    }

    subject = f"Break-glass opened by dr.okafor (patient {CARD_PATIENT})"
    notices = list(Notification.objects.filter(breakglass=session))
    assert [(n.user.username, n.subject, n.created_at, n.read_at) for n in notices] == [
        ("sec.ito", subject, NOON, None)
    ]
    assert notices[0].body == (
        f"dr.okafor (Clinician) opened break-glass access to patient {CARD_PATIENT} at 2026-11-25 12:00 UTC "
        f"for 30 minutes.\nReason: Unconscious or unable to communicate\nJustification: {JUSTIFICATION}\n"
        f"Review it in the platform (break-glass session {session.pk}, audit event {event.pk})."
    )

    assert len(callbacks) == 1
    callbacks[0]()
    assert [(m.to, m.subject, m.body) for m in mail.outbox] == [([SEC_ITO_MAIL], subject, notices[0].body)]


def test_explicit_sixty_minutes_and_unit_scope(
    sqlite_people: People,
    sqlite_warehouse: WarehouseTarget,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        session = _open(
            sqlite_people,
            "nurse.patel",
            sqlite_warehouse,
            scope="unit",
            subject_id=None,
            careunit=UNIT,
            minutes=60,
            # The clock of a server in Berlin: the e-mail still says the time in UTC.
            now=NOON.astimezone(ZoneInfo("Europe/Berlin")),
        )

    assert (session.scope, session.subject_id, session.careunit) == ("unit", None, UNIT)
    assert session.expires_at == NOON + dt.timedelta(minutes=60)
    assert f"access to unit {UNIT} at 2026-11-25 12:00 UTC for 60 minutes." in mail.outbox[0].body
    event = _last_event("breakglass_open")
    assert event.message == f"break-glass opened for unit {UNIT} for 60 minutes"
    assert event.patients_touched == []
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([SEC_ITO_MAIL], f"Break-glass opened by nurse.patel (unit {UNIT})")
    ]


def test_a_long_username_and_unit_name_do_not_break_the_notification(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    longest_unit = "cardiac vascular intensive care unit (cvicu)"
    user = UserFactory.create(username="n" * 150)
    StaffProfile.objects.create(user=user, role=Role.NURSE, department="CARD")
    for day in (-3, -2, -1, 0):  # the fourth is escalated: the longest subject
        session = breakglass_open(
            user=user,
            reason="covering",
            justification=JUSTIFICATION,
            password=PASSWORD,
            scope="unit",
            careunit=longest_unit,
            now=NOON + dt.timedelta(days=day),
            target=sqlite_warehouse,
        )
    subject = Notification.objects.get(breakglass=session).subject
    # The column holds 200 characters (PostgreSQL refuses more, which would undo the whole opening).
    assert subject == f"ESCALATED: Break-glass opened by {'n' * 150} (unit {longest_unit})"[:200]
    assert len(subject) == 200


def test_a_second_opening_replaces_the_first(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    first = _open(sqlite_people, "dr.okafor", sqlite_warehouse)
    second = _open(
        sqlite_people,
        "dr.okafor",
        sqlite_warehouse,
        subject_id=OTHER_CARD_PATIENT,
        now=NOON + dt.timedelta(minutes=5),
    )

    first.refresh_from_db()
    assert (first.ended_at, first.end_reason) == (NOON + dt.timedelta(minutes=5), "ended")
    assert (second.ended_at, second.expires_at) == (None, NOON + dt.timedelta(minutes=35))
    close = _last_event("breakglass_close")
    assert (close.status, close.breakglass_session_id, close.message) == (
        "ok",
        first.pk,
        "break-glass ended (replaced by a new session)",
    )
    # The replaced session widens nothing any more; the new one does.
    later = NOON + dt.timedelta(minutes=6)
    user = sqlite_people["dr.okafor"]
    assert _gender(user, CARD_PATIENT, sqlite_warehouse, later).code == "out_of_scope"
    assert _gender(user, OTHER_CARD_PATIENT, sqlite_warehouse, later).status == "answered"
    assert Notification.objects.filter(user__username="sec.ito").count() == 2


def test_a_mail_failure_loses_nothing_recorded(
    sqlite_people: People,
    sqlite_warehouse: WarehouseTarget,
    django_capture_on_commit_callbacks: CaptureCallbacks,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.EMAIL_BACKEND = "tests.accessctl.no_such_module.Backend"
    with django_capture_on_commit_callbacks(execute=True):
        session = _open(sqlite_people, "dr.okafor", sqlite_warehouse)

    assert mail.outbox == []
    assert BreakGlassSession.objects.get().pk == session.pk
    assert Notification.objects.filter(breakglass=session).count() == 1
    assert f"e-mail notification failed for session {session.pk}" in caplog.text


# --- Under break-glass ----------------------------------------------------------------------------------


def _patient_scope_widens_one_patient(people: People, target: WarehouseTarget) -> None:
    okafor = people["dr.okafor"]
    truth = rows_of(target)
    gender = truth(f"SELECT gender FROM patients WHERE subject_id = {CARD_PATIENT}")
    assert gender == [("f",)]

    before = _gender(okafor, CARD_PATIENT, target, NOON)
    assert (before.status, before.code, before.message, before.rows, before.purpose) == (
        "denied",
        "out_of_scope",
        _refused_message(CARD_PATIENT),
        [],
        "TREAT",
    )
    assert _event_of(before).breakglass_session_id is None

    session = _open(people, "dr.okafor", target)
    during = NOON + dt.timedelta(minutes=1)
    answer = _gender(okafor, CARD_PATIENT, target, during)
    assert (answer.status, answer.purpose, answer.columns, answer.rows) == (
        "answered",
        "BTG",
        ["gender"],
        [list(row) for row in gender],
    )
    assert (
        "Break-glass access is open (patient scope) until 12:30 UTC; this query is flagged for review."
        in (answer.notices)
    )
    event = _event_of(answer)
    assert (event.status, event.purpose_of_use, event.breakglass_session_id) == (
        "answered",
        "BTG",
        session.pk,
    )
    assert event.details["breakglass"] == {"session": session.pk, "scope": "patient"}
    session.refresh_from_db()
    assert session.queries == 1

    other = _gender(okafor, OTHER_CARD_PATIENT, target, during)
    assert (other.status, other.code, other.message, other.purpose) == (
        "denied",
        "out_of_scope",
        _refused_message(OTHER_CARD_PATIENT),
        "BTG",
    )
    # A refused query under break-glass is flagged too.
    assert _event_of(other).breakglass_session_id == session.pk

    # Only emergency purposes use the widening; treatment stays within the care relationships.
    treat = _gender(okafor, CARD_PATIENT, target, during, purpose="TREAT")
    assert (treat.status, treat.code, treat.purpose) == ("denied", "out_of_scope", "TREAT")
    emergency = _gender(okafor, CARD_PATIENT, target, during, purpose="ETREAT")
    assert (emergency.status, emergency.purpose, emergency.rows) == ("answered", "ETREAT", [["f"]])
    session.refresh_from_db()
    assert session.queries == 4


def test_patient_scope_widens_one_patient_sqlite(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    _patient_scope_widens_one_patient(sqlite_people, sqlite_warehouse)


def test_patient_scope_widens_one_patient_postgres(pg_people: People, pg_warehouse: WarehouseTarget) -> None:
    _patient_scope_widens_one_patient(pg_people, pg_warehouse)


def test_unit_scope_shows_the_patients_now_in_the_unit(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    okafor = sqlite_people["dr.okafor"]
    truth = rows_of(sqlite_warehouse)
    at_noon = "'2026-11-25 12:00:00'"
    in_unit = sorted(
        int(str(row[0]))
        for row in truth(
            f"SELECT DISTINCT subject_id FROM transfers WHERE careunit = '{UNIT}' AND intime <= {at_noon} "
            f"AND (outtime IS NULL OR outtime > {at_noon})"
        )
    )
    assert len(in_unit) == 6
    # Was in the unit, is not now, and has nothing to do with neurology or dr.okafor's care team.
    left = int(
        str(
            truth(
                f"SELECT MIN(subject_id) FROM transfers WHERE careunit = '{UNIT}' AND outtime <= {at_noon} "
                f"AND subject_id NOT IN (SELECT subject_id FROM transfers WHERE careunit = '{UNIT}' "
                f"AND (outtime IS NULL OR outtime > {at_noon})) "
                "AND subject_id NOT IN (SELECT subject_id FROM transfers WHERE careunit LIKE 'neuro%') "
                "AND subject_id NOT IN (SELECT subject_id FROM care_team WHERE staff_id = 2)"
            )[0][0]
        )
    )
    elsewhere = 19552051  # in cardiac surgery at NOON: another cardiology unit
    assert truth(
        f"SELECT careunit FROM transfers WHERE subject_id = {elsewhere} AND careunit IS NOT NULL "
        f"AND intime <= {at_noon} AND (outtime IS NULL OR outtime > {at_noon})"
    ) == [("cardiac surgery",)]
    genders = {
        int(str(row[0])): str(row[1])
        for row in truth(
            f"SELECT subject_id, gender FROM patients WHERE subject_id IN ({', '.join(map(str, in_unit))})"
        )
    }
    for subject_id in [*in_unit, left, elsewhere]:
        assert _gender(okafor, subject_id, sqlite_warehouse, NOON).code == "out_of_scope", subject_id

    _open(sqlite_people, "dr.okafor", sqlite_warehouse, scope="unit", subject_id=None, careunit=UNIT)
    during = NOON + dt.timedelta(minutes=1)
    for subject_id in in_unit:
        answer = _gender(okafor, subject_id, sqlite_warehouse, during)
        assert (answer.status, answer.rows) == ("answered", [[genders[subject_id]]]), subject_id
    for subject_id in (left, elsewhere):
        assert _gender(okafor, subject_id, sqlite_warehouse, during).code == "out_of_scope", subject_id


# --- Expiry and ending early ----------------------------------------------------------------------------


def test_access_stops_at_expiry_and_the_expiry_is_recorded(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    okafor = sqlite_people["dr.okafor"]
    session = _open(sqlite_people, "dr.okafor", sqlite_warehouse)
    last_minute = _gender(okafor, CARD_PATIENT, sqlite_warehouse, NOON + dt.timedelta(minutes=29, seconds=59))
    assert (last_minute.status, last_minute.rows) == ("answered", [["f"]])

    expired = _gender(okafor, CARD_PATIENT, sqlite_warehouse, NOON + dt.timedelta(minutes=30))
    assert (expired.status, expired.code, expired.message, expired.rows, expired.purpose) == (
        "denied",
        "breakglass_expired",
        f"Your break-glass access to patient {CARD_PATIENT} ended at 12:30 UTC, so this is no longer shown. "
        "If the emergency continues, open break-glass again with a new justification.",
        [],
        "TREAT",
    )
    event = _event_of(expired)
    assert (event.status, event.breakglass_session_id) == ("denied", None)
    # Saying BTG after expiry does not bring the session back.
    insisted = _gender(okafor, CARD_PATIENT, sqlite_warehouse, NOON + dt.timedelta(minutes=30), purpose="BTG")
    assert (insisted.status, insisted.code, insisted.rows) == ("denied", "breakglass_expired", [])
    assert _event_of(insisted).status == "denied"

    # Expired but not yet recorded: ending it is refused, with a clear message and an audit record.
    with pytest.raises(AccessError) as refused:
        breakglass_end(user=okafor, session_id=session.pk, now=NOON + dt.timedelta(minutes=31))
    assert (refused.value.code, refused.value.message) == (
        "ended",
        "This break-glass session expired at 2026-11-25 12:30 UTC.",
    )
    denied = _last_event("breakglass_close")
    assert (denied.status, denied.breakglass_session_id, denied.details["code"]) == (
        "denied",
        session.pk,
        "ended",
    )

    assert breakglass_expire_due(now=NOON + dt.timedelta(minutes=29)) == 0
    assert breakglass_expire_due(now=NOON + dt.timedelta(minutes=45)) == 1
    session.refresh_from_db()
    assert (session.ended_at, session.end_reason, session.queries) == (
        NOON + dt.timedelta(minutes=30),
        "expired",
        1,
    )
    close = _last_event("breakglass_close")
    assert (close.status, close.username, close.breakglass_session_id, close.message, close.details) == (
        "ok",
        "dr.okafor",
        session.pk,
        "break-glass expired",
        {"queries": 1, "end_reason": "expired"},
    )
    assert breakglass_expire_due(now=NOON + dt.timedelta(minutes=46)) == 0


def test_ending_early_once_and_only_ones_own(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    okafor = sqlite_people["dr.okafor"]
    session = _open(sqlite_people, "dr.okafor", sqlite_warehouse)

    with pytest.raises(AccessError) as not_yours:
        breakglass_end(
            user=sqlite_people["dr.carter"], session_id=session.pk, now=NOON + dt.timedelta(minutes=5)
        )
    assert (not_yours.value.code, not_yours.value.message) == (
        "not_found",
        "There is no such break-glass session of yours.",
    )
    refusal = _last_event("breakglass_close")
    assert (refusal.status, refusal.username, refusal.breakglass_session_id) == (
        "denied",
        "dr.carter",
        session.pk,
    )

    ended = breakglass_end(user=okafor, session_id=session.pk, now=NOON + dt.timedelta(minutes=10))
    assert (ended.ended_at, ended.end_reason) == (NOON + dt.timedelta(minutes=10), "ended")
    close = _last_event("breakglass_close")
    assert (close.status, close.username, close.message) == ("ok", "dr.okafor", "break-glass ended")
    after = _gender(okafor, CARD_PATIENT, sqlite_warehouse, NOON + dt.timedelta(minutes=11))
    assert (after.code, after.rows) == ("breakglass_expired", [])
    assert "ended at 12:10 UTC" in after.message

    with pytest.raises(AccessError) as again:
        breakglass_end(user=okafor, session_id=session.pk, now=NOON + dt.timedelta(minutes=12))
    assert (again.value.code, again.value.message) == (
        "ended",
        "This break-glass session already ended at 2026-11-25 12:10 UTC.",
    )
    assert AuditEvent.objects.filter(kind="breakglass_close", status="denied").count() == 2
    # Already recorded as ended: the expiry run leaves it alone.
    assert breakglass_expire_due(now=NOON + dt.timedelta(hours=2)) == 0


# --- Escalation -----------------------------------------------------------------------------------------


def test_a_fourth_use_in_seven_days_is_escalated(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    days = [-6, -4, -2, 0]
    sessions = [
        _open(sqlite_people, "nurse.moreau", sqlite_warehouse, now=NOON + dt.timedelta(days=day))
        for day in days
    ]
    assert [s.escalated for s in sessions] == [False, False, False, True]
    subjects = [Notification.objects.get(breakglass=s).subject for s in sessions]
    plain = f"Break-glass opened by nurse.moreau (patient {CARD_PATIENT})"
    assert subjects == [plain, plain, plain, f"ESCALATED: {plain}"]
    fourth = Notification.objects.get(breakglass=sessions[3])
    assert "This is their use number 4 in 7 days (more than 3): escalated.\n" in fourth.body
    assert _last_event("breakglass_open").details["uses_in_7_days"] == 4

    # Eight days after the last one, the earlier uses are out of the window.
    later = _open(sqlite_people, "nurse.moreau", sqlite_warehouse, now=NOON + dt.timedelta(days=8))
    assert later.escalated is False
    assert Notification.objects.get(breakglass=later).subject == plain
    assert _last_event("breakglass_open").details["uses_in_7_days"] == 1
    # Someone else's uses do not count towards nurse.moreau's.
    assert _open(sqlite_people, "dr.okafor", sqlite_warehouse).escalated is False


# --- Review ---------------------------------------------------------------------------------------------


def _review_refused(officer: User, session_id: int, code: str, message: str, **kw: Any) -> None:
    arguments: dict[str, Any] = {"outcome": "appropriate", "notes": "Checked with the ward.", "now": NOON}
    arguments.update(kw)
    with pytest.raises(AccessError) as refused:
        breakglass_review(officer=officer, session_id=session_id, **arguments)
    assert (refused.value.code, refused.value.message) == (code, message)
    event = _last_event("breakglass_review")
    assert (event.status, event.username, event.breakglass_session_id, event.details["code"]) == (
        "denied",
        officer.get_username(),
        session_id,
        code,
    )


def test_review_by_a_security_officer_after_the_session_ended(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    ito = sqlite_people["sec.ito"]
    session = _open(sqlite_people, "dr.okafor", sqlite_warehouse)

    _review_refused(
        ito,
        session.pk,
        "open",
        "The session is still open; review it once it has ended.",
        now=NOON + dt.timedelta(minutes=5),
    )
    breakglass_end(
        user=sqlite_people["dr.okafor"], session_id=session.pk, now=NOON + dt.timedelta(minutes=10)
    )
    at = NOON + dt.timedelta(hours=1)
    for username in ("dr.okafor", "head.nguyen", "admin.walsh"):
        _review_refused(
            sqlite_people[username],
            session.pk,
            "role",
            "Only the privacy office reviews break-glass sessions.",
            now=at,
        )
    _review_refused(
        ito,
        session.pk,
        "notes",
        "Say what the review found; the note is kept with the session.",
        notes="   ",
        now=at,
    )
    _review_refused(
        ito, session.pk, "outcome", "The outcome is appropriate or inappropriate.", outcome="ok", now=at
    )
    _review_refused(ito, 999_999, "not_found", "There is no such break-glass session.", now=at)
    session.refresh_from_db()
    assert (session.review, session.reviewed_by, session.reviewed_at) == ("pending", "", None)

    reviewed = breakglass_review(
        officer=ito, session_id=session.pk, outcome="appropriate", notes="  Confirmed with ED.  ", now=at
    )
    assert (reviewed.review, reviewed.reviewed_by, reviewed.reviewed_at, reviewed.review_notes) == (
        "appropriate",
        "sec.ito",
        at,
        "Confirmed with ED.",
    )
    event = _last_event("breakglass_review")
    assert (event.status, event.username, event.breakglass_session_id, event.message, event.details) == (
        "ok",
        "sec.ito",
        session.pk,
        f"break-glass session {session.pk} reviewed: appropriate",
        {"outcome": "appropriate", "notes": "Confirmed with ED.", "user": "dr.okafor"},
    )
    _review_refused(
        ito,
        session.pk,
        "reviewed",
        "This session has already been reviewed.",
        outcome="inappropriate",
        now=at + dt.timedelta(minutes=1),
    )
    session.refresh_from_db()
    assert (session.review, session.review_notes) == ("appropriate", "Confirmed with ED.")


def test_an_expired_session_is_reviewed_inappropriate(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    session = _open(sqlite_people, "nurse.patel", sqlite_warehouse, minutes=15)
    # Time is up even before the expiry run has recorded it.
    reviewed = breakglass_review(
        officer=sqlite_people["sec.ito"],
        session_id=session.pk,
        outcome="inappropriate",
        notes="No emergency on record for this patient.",
        now=NOON + dt.timedelta(minutes=15),
    )
    assert (reviewed.review, reviewed.ended_at) == ("inappropriate", None)


def test_nobody_reviews_their_own_session(sqlite_people: People, sqlite_warehouse: WarehouseTarget) -> None:
    moreau = sqlite_people["nurse.moreau"]
    session = _open(sqlite_people, "nurse.moreau", sqlite_warehouse)
    breakglass_end(user=moreau, session_id=session.pk, now=NOON + dt.timedelta(minutes=5))
    # She has since moved to the privacy office.
    StaffProfile.objects.filter(user=moreau).update(role=Role.SECURITY_OFFICER, department="")

    _review_refused(
        moreau,
        session.pk,
        "own_session",
        "Nobody reviews their own break-glass session.",
        now=NOON + dt.timedelta(hours=1),
    )
    assert BreakGlassSession.objects.get(pk=session.pk).review == "pending"


# --- The periodic task ----------------------------------------------------------------------------------


def test_expire_task_runs_eagerly_and_returns_the_count(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    now = timezone.now()
    due = _open(sqlite_people, "dr.okafor", sqlite_warehouse, now=now - dt.timedelta(hours=2))
    running = _open(sqlite_people, "nurse.patel", sqlite_warehouse, now=now - dt.timedelta(minutes=10))

    assert expire_breakglass.name == "accessctl.expire_breakglass"
    result = expire_breakglass.delay()

    assert result.get(timeout=10) == 1
    due.refresh_from_db()
    running.refresh_from_db()
    assert (due.end_reason, due.ended_at) == ("expired", due.expires_at)
    assert (running.end_reason, running.ended_at) == ("", None)
    assert expire_breakglass.delay().get(timeout=10) == 0
