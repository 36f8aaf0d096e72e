"""The privacy office's reports: exact counts of a built week, the accounting of disclosures, refusals,
the audit of every read, the commands, and the weekly mail.

The week under report is Monday 16 to Sunday 22 November 2026; the previous week is 9 to 15 November.
Events are recorded through `audit_record` with the clock set to the moment each one happens.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accessctl.models import BreakGlassSession, Notification
from audit.models import Alert, AlertNote, AuditEvent, EventKind, EventStatus
from audit.reports import (
    ReportError,
    WeekCounts,
    disclosures_for_patient,
    weekly_report,
    weekly_report_send,
    weekly_report_text,
)
from audit.services import audit_record
from audit.tasks import weekly_report_task
from hisplatform.models import Role
from tests.factories import StaffProfileFactory

UTC = dt.UTC
WEEK = dt.date(2026, 11, 16)  # a Monday
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # the Wednesday after: the report is read then
# Patient ids chosen so that text matching would confuse them: 1001 is a prefix of 10010.
P1001, P10010, P2002, P3003 = 1001, 10010, 2002, 3003
ALL_PATIENTS = (P1001, P10010, P2002, P3003)
SECRET_QUESTION = "Is Jane Roe (born 1961) HIV positive?"
CaptureCallbacks = Callable[..., Any]


class Clock:
    """The time `timezone.now()` returns; audit_record stamps events with it."""

    def __init__(self) -> None:
        self.now = NOW

    def at(self, moment: dt.datetime) -> None:
        self.now = moment


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    current = Clock()
    monkeypatch.setattr(timezone, "now", lambda: current.now)
    return current


def at(day: int, hour: int = 9, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class Week:
    """The built week: who is who, the break-glass session the nurse worked under, the events by name."""

    carla: User
    ivan: User
    rita: User
    adam: User
    sofia: User
    session: BreakGlassSession
    events: dict[str, AuditEvent]


def _ask(
    clock: Clock,
    moment: dt.datetime,
    user: User,
    status: str,
    *,
    kind: str = EventKind.QUESTION,
    patients: tuple[int, ...] = (),
    code: str = "",
    purpose: str = "TREAT",
    session: int | None = None,
) -> AuditEvent:
    clock.at(moment)
    return audit_record(
        user=user,
        kind=kind,
        status=status,
        purpose_of_use=purpose,
        breakglass_session_id=session,
        question=SECRET_QUESTION,
        sql_executed="SELECT 1",
        tables_touched=["patients", "labevents"],
        columns_touched=["patients.subject_id", "labevents.valuenum"],
        patients_touched=patients,
        details={"code": code} if code else {},
    )


def _session(
    user: User, opened: dt.datetime, reason: str, *, review: str = "pending", escalated: bool = False
) -> BreakGlassSession:
    return BreakGlassSession.objects.create(
        user=user,
        username=user.get_username(),
        role=user.profile.role,
        reason_code=reason,
        justification="Patient collapsed on the ward, history needed now.",
        scope="patient",
        subject_id=P10010,
        opened_at=opened,
        expires_at=opened + dt.timedelta(minutes=30),
        ended_at=opened + dt.timedelta(minutes=30),
        end_reason="expired",
        escalated=escalated,
        review=review,
        reviewed_by="" if review == "pending" else "sofia.security",
        reviewed_at=None if review == "pending" else opened + dt.timedelta(days=1),
    )


def _alert(username: str, created: dt.datetime, state: str, reasons: list[str]) -> Alert:
    return Alert.objects.create(
        username=username,
        role="clinician",
        day=created.date(),
        created_at=created,
        updated_at=created,
        risk=80.0,
        reasons=[{"code": code, "text": code, "value": 1, "peer_median": 0, "weight": 1} for code in reasons],
        summary="unusual access",
        first_event_at=created,
        last_event_at=created,
        state=state,
    )


def _note(alert: Alert, created: dt.datetime) -> None:
    AlertNote.objects.create(alert=alert, author_name="sofia.security", created_at=created, text="looked")


@pytest.fixture
def week(
    clock: Clock,
    cardiology_clinician: User,
    icu_nurse: User,
    researcher: User,
    administrator: User,
    security_officer: User,
) -> Week:
    carla, ivan, rita, adam, sofia = (
        cardiology_clinician,
        icu_nurse,
        researcher,
        administrator,
        security_officer,
    )
    answered, denied = EventStatus.ANSWERED, EventStatus.DENIED
    events: dict[str, AuditEvent] = {}

    # The previous week: two answered questions about 1001, a failed login, a session, an alert.
    events["prev_1"] = _ask(clock, at(10), carla, answered, patients=(P1001,))
    events["prev_2"] = _ask(clock, at(11), carla, answered, patients=(P1001,))
    clock.at(at(12))
    audit_record(user=None, kind=EventKind.LOGIN_FAILED, status=denied, username="bob")
    _session(carla, at(13), "unconscious")
    _alert("adam.admin", at(14), "new", ["volume"])

    # The week itself.
    glass = _session(ivan, at(16, 8), "cardiac_arrest", escalated=True)
    _session(carla, at(17, 8), "covering", review="appropriate")
    _session(ivan, at(18, 8), "cardiac_arrest", review="inappropriate")
    clock.at(at(16, 8))
    # A break-glass opening lists its patient, but opening is not a disclosure.
    audit_record(
        user=ivan,
        kind=EventKind.BREAKGLASS_OPEN,
        status=EventStatus.OK,
        breakglass_session_id=glass.pk,
        patients_touched=[P10010],
        details={"reason": "cardiac_arrest"},
    )
    events["ivan_1"] = _ask(
        clock, at(16, 8, 5), ivan, answered, patients=(P10010,), purpose="ETREAT", session=glass.pk
    )
    events["ivan_2"] = _ask(
        clock, at(16, 8, 10), ivan, answered, patients=(P3003,), purpose="ETREAT", session=glass.pk
    )
    events["carla_1"] = _ask(clock, at(16, 9), carla, answered, patients=(P1001, P10010))
    events["carla_2"] = _ask(clock, at(16, 10), carla, answered, patients=(P1001,))
    events["carla_3"] = _ask(clock, at(17, 9), carla, answered, patients=(P2002,))
    # Refused: a denied answer showed nothing, whatever patient it named.
    events["carla_denied"] = _ask(clock, at(17, 10), carla, denied, patients=(P1001,), code="out_of_scope")
    events["carla_export"] = _ask(clock, at(18, 9), carla, answered, kind=EventKind.EXPORT, patients=(P1001,))
    _ask(clock, at(19, 9), ivan, denied, code="out_of_scope")
    _ask(clock, at(19, 10), ivan, denied, code="confirmation_required")
    _ask(clock, at(20, 9), rita, EventStatus.ABSTAINED, code="cannot_compile", purpose="HRESCH")
    _ask(clock, at(20, 10), adam, answered, purpose="HOPERAT")
    _ask(clock, at(20, 11), adam, denied, kind=EventKind.EXPORT, code="aggregate_only", purpose="HOPERAT")
    clock.at(at(21, 3))
    for name in ("mallory", "mallory", "mallory", "carla.cardio"):
        audit_record(user=None, kind=EventKind.LOGIN_FAILED, status=denied, username=name)
    audit_record(user=carla, kind=EventKind.LOGIN, status=EventStatus.OK)
    audit_record(user=rita, kind=EventKind.BREAKGLASS_OPEN, status=denied, details={"code": "role"})
    audit_record(user=sofia, kind=EventKind.AUDIT_ACCESS, status=EventStatus.OK, details={"path": "/admin/"})
    # Sunday 23:59:59 is still the week; Monday 00:00 is not.
    events["carla_sunday"] = _ask(clock, dt.datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC), carla, answered)
    events["after"] = _ask(clock, at(23, 0, 0), carla, answered, patients=(P1001,))
    _session(carla, at(24), "covering")

    first = _alert("carla.cardio", at(17, 9), "new", ["volume", "after_hours"])
    second = _alert("ivan.icu", at(18, 10), "false_positive", ["after_hours", "volume"])
    third = _alert("rita.research", at(19, 8), "investigating", ["volume"])
    _note(second, at(18, 12))  # 2 h
    _note(second, at(20, 12))
    _note(third, at(19, 12))  # 4 h
    assert first.notes.count() == 0
    _alert("carla.cardio", at(24), "new", ["volume"])  # after the week
    clock.at(NOW)
    return Week(carla, ivan, rita, adam, sofia, glass, events)


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


# --- The weekly report ------------------------------------------------------------------------------------

THIS_WEEK = WeekCounts(
    questions=11,
    exports=2,
    answered=8,
    denied=4,
    active_users=4,
    patients=4,
    failed_logins=4,
    breakglass_opened=3,
    breakglass_queries=2,
    alerts_raised=3,
    audit_reads=1,
)
PREVIOUS_WEEK = WeekCounts(
    questions=2,
    exports=0,
    answered=2,
    denied=0,
    active_users=1,
    patients=1,
    failed_logins=1,
    breakglass_opened=1,
    breakglass_queries=0,
    alerts_raised=1,
    audit_reads=0,
)


def test_the_weekly_report_counts_the_week_exactly(week: Week) -> None:
    report = weekly_report(fetched_by=week.sofia, week_start=WEEK)

    assert (report.week_start, report.week_end, report.time_zone) == (WEEK, dt.date(2026, 11, 23), "UTC")
    assert report.counts == THIS_WEEK
    assert report.previous == PREVIOUS_WEEK
    assert report.change()["questions"] == 9
    assert report.change()["alerts_raised"] == 2
    question, export = report.volumes["question"], report.volumes["export"]
    assert question.total == 11
    assert question.by_status == {"answered": 7, "denied": 3, "abstained": 1}
    assert question.by_role == {"clinician": 5, "nurse": 4, "administrator": 1, "researcher": 1}
    assert (export.total, export.by_status, export.by_role) == (
        2,
        {"answered": 1, "denied": 1},
        {"administrator": 1, "clinician": 1},
    )
    assert [(d.kind, d.code, d.count) for d in report.denials] == [
        ("question", "out_of_scope", 2),
        ("breakglass_open", "role", 1),
        ("export", "aggregate_only", 1),
        ("question", "confirmation_required", 1),
    ]
    assert [(u.username, u.role, u.questions, u.exports, u.patients) for u in report.top_users] == [
        ("carla.cardio", "clinician", 5, 1, 3),
        ("ivan.icu", "nurse", 4, 0, 2),
        ("adam.admin", "administrator", 1, 1, 0),
        ("rita.research", "researcher", 1, 0, 0),
    ]
    assert report.failed_logins.count == 4
    assert [(n.name, n.count) for n in report.failed_logins.top_usernames] == [
        ("mallory", 3),
        ("carla.cardio", 1),
    ]
    glass = report.breakglass
    assert (glass.opened, glass.by_reason) == (3, {"cardiac_arrest": 2, "covering": 1})
    assert (glass.pending_review, glass.appropriate, glass.inappropriate, glass.escalated) == (1, 1, 1, 1)
    assert (glass.queries, glass.pending_review_all) == (2, 2)
    alerts = report.alerts
    assert alerts.raised == 3
    assert alerts.by_state == {
        "new": 1,
        "investigating": 1,
        "confirmed": 0,
        "false_positive": 1,
        "resolved": 0,
    }
    assert alerts.by_reason == {"volume": 2, "after_hours": 1}
    assert alerts.median_seconds_to_first_triage == 3 * 3600.0  # the median of 2 h and 4 h
    assert (alerts.untriaged, alerts.still_new_all) == (1, 2)


def test_any_day_names_its_week_and_the_report_is_json(week: Week) -> None:
    report = weekly_report(fetched_by=week.sofia, week_start=dt.date(2026, 11, 22))  # a Sunday
    data = json.loads(json.dumps(report.as_dict()))

    assert data["week_start"] == "2026-11-16"
    assert data["week_end"] == "2026-11-23"
    assert data["counts"]["questions"] == 11
    assert data["previous"]["questions"] == 2
    assert data["change"]["failed_logins"] == 3
    assert data["top_users"][0] == {
        "username": "carla.cardio",
        "role": "clinician",
        "questions": 5,
        "exports": 1,
        "patients": 3,
    }
    assert data["alerts"]["median_seconds_to_first_triage"] == 10800.0


def test_the_report_holds_no_patient_id_and_no_question(week: Week) -> None:
    report = weekly_report(fetched_by=week.sofia, week_start=WEEK)
    text = weekly_report_text(report) + json.dumps(report.as_dict())

    assert not [patient for patient in ALL_PATIENTS if str(patient) in text]
    assert "Jane Roe" not in text


def test_the_week_is_the_local_week(week: Week, settings: Any, clock: Clock) -> None:
    # 23:30 UTC on Sunday 15 November is 00:30 on Monday 16 November in Berlin.
    clock.at(dt.datetime(2026, 11, 15, 23, 30, tzinfo=UTC))
    audit_record(user=None, kind=EventKind.LOGIN_FAILED, status=EventStatus.DENIED, username="eve")
    clock.at(NOW)

    utc = weekly_report(fetched_by=week.sofia, week_start=WEEK)
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = weekly_report(fetched_by=week.sofia, week_start=WEEK)

    assert (utc.counts.failed_logins, utc.previous.failed_logins) == (4, 2)
    # Berlin's week also starts an hour earlier, so Sunday 22 November 23:59:59 UTC falls outside it.
    assert (berlin.counts.failed_logins, berlin.previous.failed_logins) == (5, 1)
    assert (berlin.counts.questions, utc.counts.questions) == (10, 11)
    assert berlin.time_zone == "Europe/Berlin"


def test_the_report_costs_the_same_queries_however_many_events(week: Week, clock: Clock) -> None:
    with CaptureQueriesContext(connection) as before:
        weekly_report(fetched_by=week.sofia, week_start=WEEK)
    for hour in range(12):
        _ask(clock, at(19, hour), week.carla, EventStatus.ANSWERED, patients=(5000 + hour,))
        _ask(clock, at(19, hour, 30), week.ivan, EventStatus.DENIED, code="out_of_scope")
    clock.at(NOW)
    with CaptureQueriesContext(connection) as after:
        report = weekly_report(fetched_by=week.sofia, week_start=WEEK)

    assert report.counts.patients == 4 + 12
    assert len(after.captured_queries) == len(before.captured_queries)
    # 21 for the report, 6 to record the read.
    assert len(before.captured_queries) == 27


def test_an_empty_week_is_all_zeros(week: Week) -> None:
    report = weekly_report(fetched_by=week.sofia, week_start=dt.date(2026, 10, 5))

    assert report.counts == WeekCounts(**{field.name: 0 for field in dataclasses.fields(WeekCounts)})
    assert report.top_users == []
    assert report.alerts.median_seconds_to_first_triage is None
    assert report.alerts.by_reason == {}
    assert "median time to first triage: no triage yet" in weekly_report_text(report)


def test_the_weekly_report_read_is_audited(week: Week) -> None:
    weekly_report(fetched_by=week.sofia, week_start=dt.date(2026, 11, 18), channel="cli")
    event = _last_event()

    assert (event.kind, event.status, event.username, event.role) == (
        "audit_access",
        "ok",
        "sofia.security",
        "security_officer",
    )
    assert event.details == {
        "report": "weekly",
        "week_start": "2026-11-16",
        "week_end": "2026-11-23",
        "channel": "cli",
    }


@pytest.mark.parametrize("persona", ["cardiology_clinician", "icu_nurse", "researcher", "administrator"])
def test_only_security_officers_read_reports_and_refusals_are_audited(
    week: Week, persona: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(persona)
    with pytest.raises(ReportError) as weekly:
        weekly_report(fetched_by=user, week_start=WEEK)
    refused_weekly = _last_event()
    with pytest.raises(ReportError) as disclosures:
        disclosures_for_patient(fetched_by=user, subject_id=P1001)
    refused_disclosures = _last_event()

    assert (weekly.value.code, disclosures.value.code) == ("role", "role")
    assert weekly.value.message == "Only the privacy office reads the audit reports."
    for event in (refused_weekly, refused_disclosures):
        assert (event.kind, event.status, event.username) == ("audit_access", "denied", user.get_username())
    assert refused_weekly.details == {
        "report": "weekly",
        "week_start": "2026-11-16",
        "channel": "",
        "code": "role",
    }
    assert refused_disclosures.details == {
        "report": "disclosures",
        "subject_id": P1001,
        "since": None,
        "until": None,
        "channel": "",
        "code": "role",
    }


def test_an_inactive_security_officer_is_refused(week: Week) -> None:
    week.sofia.is_active = False
    week.sofia.save()

    with pytest.raises(ReportError, match="Only the privacy office"):
        weekly_report(fetched_by=week.sofia, week_start=WEEK)
    assert (_last_event().status, _last_event().details["code"]) == ("denied", "role")


def test_a_week_that_has_not_begun_is_refused_and_audited(week: Week) -> None:
    with pytest.raises(ReportError) as error:
        weekly_report(fetched_by=week.sofia, week_start=dt.date(2026, 11, 30))

    assert error.value.code == "future_week"
    assert error.value.message == (
        "The week of 2026-11-30 has not begun; choose this week or an earlier one."
    )
    assert _last_event().details == {
        "report": "weekly",
        "week_start": "2026-11-30",
        "channel": "",
        "code": "future_week",
    }


# --- The accounting of disclosures ------------------------------------------------------------------------


def _seqs(week: Week, *names: str) -> list[int]:
    return [week.events[name].seq for name in names]


def test_disclosures_list_exactly_the_answers_that_showed_the_patient_newest_first(week: Week) -> None:
    found = disclosures_for_patient(fetched_by=week.sofia, subject_id=P1001)

    assert [item.seq for item in found] == _seqs(
        week, "after", "carla_export", "carla_2", "carla_1", "prev_2", "prev_1"
    )
    newest = found[1]
    assert newest.as_dict() == {
        "seq": week.events["carla_export"].seq,
        "occurred_at": "2026-11-18T09:00:00+00:00",
        "kind": "export",
        "username": "carla.cardio",
        "role": "clinician",
        "department": "CARD",
        "purpose_of_use": "TREAT",
        "breakglass_session_id": None,
        "tables": ["labevents", "patients"],
        "columns": ["labevents.valuenum", "patients.subject_id"],
    }


def test_disclosures_match_whole_ids_never_text(week: Week) -> None:
    ten_ten = disclosures_for_patient(fetched_by=week.sofia, subject_id=P10010)

    assert [item.seq for item in ten_ten] == _seqs(week, "carla_1", "ivan_1")
    under_glass = ten_ten[1]
    assert (under_glass.username, under_glass.department, under_glass.purpose_of_use) == (
        "ivan.icu",
        "CRITC",
        "ETREAT",
    )
    assert under_glass.breakglass_session_id == week.session.pk
    # Prefixes and substrings of listed ids are other patients, seen by nobody.
    for other in (1, 10, 100, 101, 1010, 100100, 2, 3, 303):
        assert disclosures_for_patient(fetched_by=week.sofia, subject_id=other) == []


def test_disclosures_within_a_range_of_local_days(week: Week) -> None:
    found = disclosures_for_patient(
        fetched_by=week.sofia, subject_id=P1001, since=dt.date(2026, 11, 16), until=dt.date(2026, 11, 18)
    )
    assert [item.seq for item in found] == _seqs(week, "carla_export", "carla_2", "carla_1")
    since_only = disclosures_for_patient(fetched_by=week.sofia, subject_id=P1001, since=dt.date(2026, 11, 23))
    assert [item.seq for item in since_only] == _seqs(week, "after")
    until_only = disclosures_for_patient(fetched_by=week.sofia, subject_id=P1001, until=dt.date(2026, 11, 15))
    assert [item.seq for item in until_only] == _seqs(week, "prev_2", "prev_1")


def test_the_disclosures_read_is_audited_with_patient_and_range(week: Week) -> None:
    disclosures_for_patient(
        fetched_by=week.sofia, subject_id=P1001, since=dt.date(2026, 11, 16), until=dt.date(2026, 11, 22)
    )
    event = _last_event()

    assert (event.kind, event.status, event.username) == ("audit_access", "ok", "sofia.security")
    assert event.message == "accounting of disclosures for patient 1001"
    assert event.details == {
        "report": "disclosures",
        "subject_id": P1001,
        "since": "2026-11-16",
        "until": "2026-11-22",
        "channel": "",
        "disclosures": 3,
    }


@pytest.mark.parametrize(
    ("subject_id", "since", "until", "code"),
    [
        (0, None, None, "bad_patient"),
        (-5, None, None, "bad_patient"),
        (P1001, dt.date(2026, 11, 20), dt.date(2026, 11, 19), "bad_range"),
        (P1001, dt.date(1, 1, 1), None, "bad_range"),
    ],
)
def test_bad_disclosure_requests_are_refused_and_audited(
    week: Week, subject_id: int, since: dt.date | None, until: dt.date | None, code: str
) -> None:
    with pytest.raises(ReportError) as error:
        disclosures_for_patient(fetched_by=week.sofia, subject_id=subject_id, since=since, until=until)

    assert error.value.code == code
    event = _last_event()
    assert (event.kind, event.status, event.details["code"]) == ("audit_access", "denied", code)


def test_disclosures_are_found_through_the_vendors_json_containment(week: Week) -> None:
    with CaptureQueriesContext(connection) as queries:
        disclosures_for_patient(fetched_by=week.sofia, subject_id=P1001)
    sql = next(query["sql"] for query in queries.captured_queries if "purpose_of_use" in query["sql"])

    if connection.vendor == "postgresql":
        assert '"patients_touched" @> ' in sql
    else:
        assert "json_each" in sql
    assert "question" not in sql.split("FROM")[0]


def test_the_gin_index_of_migration_0004_serves_the_postgresql_lookup(week: Week) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("jsonb containment and GIN indexes are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT seq FROM audit_event WHERE patients_touched @> %s::jsonb", ["[1001]"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "audit_event_patients_gin" in plan


# --- Commands ---------------------------------------------------------------------------------------------


def _run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_audit_report_prints_last_week_by_default(week: Week) -> None:
    text = _run("audit_report", "--user", "sofia.security")

    assert text.startswith(
        "Privacy office weekly report: Mon 16 Nov 2026 to Sun 22 Nov 2026 (UTC)\n\n"
        f"{'':42}{'this week':>10}{'previous':>10}{'change':>8}\n"
        f"{'Questions':42}{11:>10}{2:>10}{'+9':>8}\n"
    )
    assert f"{'Alerts raised':42}{3:>10}{1:>10}{'+2':>8}\n" in text
    assert "Questions: 11; by status: answered 7, denied 3, abstained 1\n" in text
    assert "  carla.cardio (clinician): 5 questions, 1 export, 3 patients\n" in text
    assert "Failed logins: 4 (most tried: mallory 3, carla.cardio 1)\n" in text
    assert "Break-glass: 3 sessions opened; by reason: cardiac_arrest 2, covering 1\n" in text
    assert "  median time to first triage: 3 h 0 min; 1 not triaged yet; 2 alerts still new in all\n" in text
    assert _last_event().details["channel"] == "cli"


def test_audit_report_json_for_a_chosen_week(week: Week) -> None:
    data = json.loads(_run("audit_report", "--user", "sofia.security", "--week", "2026-11-09", "--json"))

    assert data["week_start"] == "2026-11-09"
    assert data["counts"]["questions"] == 2
    assert data["counts"]["patients"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "carla.cardio"], "Only the privacy office reads the audit reports. (role)"),
        (["--user", "nobody.here"], "There is no active user 'nobody.here'."),
        (
            ["--user", "sofia.security", "--week", "2026-13-01"],
            "--week must be a date like 2026-11-23, not '2026-13-01'.",
        ),
        (
            ["--user", "sofia.security", "--week", "2027-01-04"],
            "The week of 2027-01-04 has not begun; choose this week or an earlier one. (future_week)",
        ),
    ],
)
def test_audit_report_errors(week: Week, args: list[str], message: str) -> None:
    before = _last_event().seq
    with pytest.raises(CommandError) as error:
        _run("audit_report", *args)

    assert str(error.value) == message
    if "--week must be" in message:
        assert _last_event().seq == before  # nothing was read: the argument was not even a date
    else:
        event = _last_event()
        assert (event.kind, event.status, event.username) == ("audit_access", "denied", args[1])


def test_unknown_user_is_audited_with_what_they_asked_for(week: Week) -> None:
    with pytest.raises(CommandError):
        _run("audit_disclosures", "--user", "nobody.here", "--patient", "1001", "--since", "2026-11-01")
    event = _last_event()

    assert (event.user_id, event.username, event.status) == (None, "nobody.here", "denied")
    assert event.details == {
        "report": "disclosures",
        "subject_id": P1001,
        "since": "2026-11-01",
        "until": None,
        "channel": "cli",
        "code": "unknown_user",
    }


def test_audit_disclosures_json_has_no_question_text(week: Week) -> None:
    out = _run("audit_disclosures", "--user", "sofia.security", "--patient", "10010", "--json")
    data = json.loads(out)

    assert [item["seq"] for item in data] == _seqs(week, "carla_1", "ivan_1")
    assert data[1]["breakglass_session_id"] == week.session.pk
    assert "question" not in data[0]
    assert "Jane Roe" not in out


def test_audit_disclosures_text(week: Week) -> None:
    text = _run(
        "audit_disclosures", "--user", "sofia.security", "--patient", "10010", "--until", "2026-11-16"
    )
    carla, ivan = _seqs(week, "carla_1", "ivan_1")

    assert text == (
        "Accounting of disclosures for patient 10010: 2 disclosures, newest first.\n"
        f"#{carla} 2026-11-16 09:00:00 carla.cardio (clinician, CARD) question purpose TREAT: "
        "tables labevents, patients; columns labevents.valuenum, patients.subject_id\n"
        f"#{ivan} 2026-11-16 08:05:00 ivan.icu (nurse, CRITC) question purpose ETREAT "
        f"break-glass #{week.session.pk}: tables labevents, patients; columns labevents.valuenum, "
        "patients.subject_id\n"
    )
    assert _run("audit_disclosures", "--user", "sofia.security", "--patient", "100") == (
        "No disclosures of patient 100 are recorded.\n"
    )


def test_audit_disclosures_csv(week: Week, tmp_path: Path) -> None:
    path = tmp_path / "disclosures.csv"
    out = _run("audit_disclosures", "--user", "sofia.security", "--patient", "1001", "--csv", str(path))

    assert out == f"Wrote 6 disclosures of patient 1001 to {path}.\n"
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == [
        "seq",
        "occurred_at",
        "kind",
        "username",
        "role",
        "department",
        "purpose_of_use",
        "breakglass_session_id",
        "tables",
        "columns",
    ]
    assert rows[1] == [
        str(week.events["after"].seq),
        "2026-11-23T00:00:00+00:00",
        "question",
        "carla.cardio",
        "clinician",
        "CARD",
        "TREAT",
        "",
        "labevents; patients",
        "labevents.valuenum; patients.subject_id",
    ]
    assert len(rows) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--user", "ivan.icu", "--patient", "1001"],
            "Only the privacy office reads the audit reports. (role)",
        ),
        (
            ["--user", "sofia.security", "--patient", "1001", "--since", "16/11/2026"],
            "--since must be a date like 2026-11-23, not '16/11/2026'.",
        ),
        (
            [
                "--user",
                "sofia.security",
                "--patient",
                "1001",
                "--since",
                "2026-11-20",
                "--until",
                "2026-11-19",
            ],
            "The range is empty: since 2026-11-20 is after until 2026-11-19. (bad_range)",
        ),
        (
            ["--user", "sofia.security", "--patient", "0"],
            "A patient is named by a positive subject_id. (bad_patient)",
        ),
    ],
)
def test_audit_disclosures_errors(week: Week, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        _run("audit_disclosures", *args)
    assert str(error.value) == message


def test_audit_disclosures_csv_to_an_unwritable_place(week: Week, tmp_path: Path) -> None:
    with pytest.raises(
        CommandError, match=r"^Could not write .*missing/out\.csv: No such file or directory\.$"
    ):
        _run(
            "audit_disclosures",
            "--user",
            "sofia.security",
            "--patient",
            "1001",
            "--csv",
            str(tmp_path / "missing" / "out.csv"),
        )


# --- The weekly mail --------------------------------------------------------------------------------------


@pytest.fixture
def officers(week: Week) -> list[User]:
    week.sofia.email = "sofia@hospital.test"
    week.sofia.save()
    week.carla.email = "carla@hospital.test"  # a clinician with an address: never sent the report
    week.carla.save()
    otto = StaffProfileFactory.create(user__username="otto.officer", role=Role.SECURITY_OFFICER).user
    gone = StaffProfileFactory.create(user__username="ines.gone", role=Role.SECURITY_OFFICER).user
    gone.email = "ines@hospital.test"
    gone.is_active = False
    gone.save()
    return [week.sofia, otto]


def test_the_weekly_mail_goes_to_active_officers_only_without_patient_ids(
    week: Week, officers: list[User], django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        delivery = weekly_report_send()

    assert delivery.report.week_start == WEEK
    assert (delivery.recipients, delivery.mailed) == (["otto.officer", "sofia.security"], 1)
    assert [message.to for message in mail.outbox] == [["sofia@hospital.test"]]
    message = mail.outbox[0]
    assert message.subject == "Privacy office weekly report: week of 16 Nov 2026"
    assert message.body == weekly_report_text(delivery.report)
    assert f"{'Questions':42}{11:>10}{2:>10}{'+9':>8}\n" in message.body
    sent = f"{message.subject}\n{message.body}"
    assert not [patient for patient in ALL_PATIENTS if str(patient) in sent]
    assert "Jane Roe" not in message.body
    notices = Notification.objects.order_by("user__username")
    assert [(n.user.get_username(), n.subject) for n in notices] == [
        ("otto.officer", message.subject),
        ("sofia.security", message.subject),
    ]
    event = _last_event()
    assert (event.kind, event.status, event.user_id, event.username) == ("audit_access", "ok", None, "system")
    assert event.details == {
        "report": "weekly",
        "week_start": "2026-11-16",
        "week_end": "2026-11-23",
        "channel": "task",
        "recipients": ["otto.officer", "sofia.security"],
    }


def test_the_weekly_task_is_registered_for_beat_and_sends(
    week: Week, officers: list[User], django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    from hisplatform.celery import app

    assert app.tasks["audit.weekly_report"].name == "audit.weekly_report"
    with django_capture_on_commit_callbacks(execute=True):
        result = weekly_report_task.delay("2026-11-09").get()

    assert result == {
        "week_start": "2026-11-09",
        "recipients": ["otto.officer", "sofia.security"],
        "mailed": 1,
    }
    assert f"{'Questions':42}{2:>10}{0:>10}{'+2':>8}\n" in mail.outbox[0].body
