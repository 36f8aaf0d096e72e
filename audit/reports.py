"""The privacy office's reports: the weekly report and the accounting of disclosures for one patient.

Both are selectors for security officers only (separation of duties), and every read, allowed or
refused, is itself an audit event of kind `audit_access`. Neither report shows what people asked:
question text can hold health information, and an accounting of disclosures lists who saw a patient's
data, when, why and which columns, not the words they typed.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import logging
import statistics
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import send_mass_mail
from django.db import connection, transaction
from django.db.models import BooleanField, Count, Max, Min, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.utils import timezone

from accessctl.models import BreakGlassSession, Notification
from accessctl.services import security_officers
from audit.alerts import is_security_officer
from audit.models import Alert, AlertState, AuditEvent, EventKind, EventStatus
from audit.services import audit_access_record

logger = logging.getLogger(__name__)

# What an accounting of disclosures lists: data that was shown, i.e. answered questions and exports.
DISCLOSING_KINDS: Final = (EventKind.QUESTION, EventKind.EXPORT)
TOP_USERS: Final = 10
TOP_FAILED_LOGINS: Final = 5
TOP_ALERT_REASONS: Final = 5
# Week arithmetic (the previous week, local midnights) and both databases' timestamps need a sane year.
_EARLIEST_YEAR: Final = 1900
# The mail and notice subject; Notification.subject holds 200 characters.
_SUBJECT_CHARS: Final = Notification._meta.get_field("subject").max_length or 200
# A cell a spreadsheet would read as a formula (CSV injection): written with a leading apostrophe.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
SYSTEM_READER: Final = "system"


class ReportError(Exception):
    """A report request that is refused; `code` is stable, `message` is for the person."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- Weekly report ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WeekCounts:
    """The headline counts of one week; the report holds this week's and the previous week's."""

    questions: int
    exports: int
    answered: int  # questions and exports whose answer was shown
    denied: int  # questions and exports refused
    active_users: int  # distinct users who asked a question or made an export
    patients: int  # distinct patients whose data an answered question or export showed
    failed_logins: int
    breakglass_opened: int
    breakglass_queries: int  # questions and exports under a break-glass session
    alerts_raised: int
    audit_reads: int  # reads of the audit trail itself, reports included


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Volume:
    """Questions (or exports) of the week: how many, how they ended, who asked."""

    total: int
    by_status: dict[str, int]
    by_role: dict[str, int]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Denial:
    kind: str
    code: str  # the refusal's stable code (details["code"]); "" when the event carries none
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TopUser:
    username: str
    role: str
    questions: int
    exports: int
    patients: int  # distinct patients whose data their answers showed


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class NamedCount:
    name: str
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FailedLogins:
    count: int
    top_usernames: list[NamedCount]  # the names tried, as typed


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class BreakGlassWeek:
    """Sessions opened this week and where their reviews stand now, plus the whole review backlog."""

    opened: int
    by_reason: dict[str, int]
    pending_review: int
    appropriate: int
    inappropriate: int
    escalated: int
    queries: int  # questions and exports run under break-glass this week
    pending_review_all: int  # every session opened before the week's end still awaiting review


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AlertWeek:
    """Alerts raised this week by where triage has taken them, and the open backlog."""

    raised: int
    by_state: dict[str, int]  # every state, zeros included
    by_reason: dict[str, int]  # by each alert's strongest reason code; the most frequent first
    median_seconds_to_first_triage: float | None  # over this week's alerts with a triage note
    untriaged: int  # this week's alerts without any triage note yet
    still_new_all: int  # every alert raised before the week's end still in state "new"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WeeklyReport:
    """The privacy office's week: [week_start, week_end) in `time_zone`; counts only, no patient ids."""

    week_start: dt.date  # a Monday
    week_end: dt.date  # the next Monday, excluded
    time_zone: str
    generated_at: dt.datetime
    counts: WeekCounts
    previous: WeekCounts  # the week before, for comparison
    volumes: dict[str, Volume]  # "question" and "export"
    denials: list[Denial]
    top_users: list[TopUser]
    failed_logins: FailedLogins
    breakglass: BreakGlassWeek
    alerts: AlertWeek

    def change(self) -> dict[str, int]:
        """This week's counts minus the previous week's."""
        now, before = dataclasses.asdict(self.counts), dataclasses.asdict(self.previous)
        return {name: now[name] - before[name] for name in now}

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["week_start"] = self.week_start.isoformat()
        data["week_end"] = self.week_end.isoformat()
        data["generated_at"] = self.generated_at.isoformat()
        data["change"] = self.change()
        return data


@contextmanager
def _refusal_recorded(
    user: User, asked: Mapping[str, Any], client_addr: str, user_agent: str
) -> Iterator[None]:
    """A report refused inside (ReportError) is recorded as a refused read of the audit, then raised."""
    try:
        yield
    except ReportError as error:
        audit_access_record(
            user=user,
            status=EventStatus.DENIED,
            what=error.message,
            details={**asked, "code": error.code},
            client_addr=client_addr,
            user_agent=user_agent,
        )
        raise


def previous_week_start(*, today: dt.date | None = None) -> dt.date:
    """The Monday of the week before the one `today` (default: today, locally) falls in."""
    today = today or timezone.localdate()
    return today - dt.timedelta(days=today.weekday() + 7)


def weekly_report(
    *,
    fetched_by: User,
    week_start: dt.date,
    channel: str = "",
    client_addr: str = "",
    user_agent: str = "",
) -> WeeklyReport:
    """The report of the ISO week holding `week_start` (any day of it names the week).

    Security officers only; the read is recorded (status ok), and so is a refusal (status denied,
    with its code), before ReportError is raised.
    """
    asked = {"report": "weekly", "week_start": _iso(week_start), "channel": channel}
    with _refusal_recorded(fetched_by, asked, client_addr, user_agent):
        if not is_security_officer(fetched_by):
            raise ReportError("Only the privacy office reads the audit reports.", code="role")
        monday = _week_monday(week_start)
        report = _build_weekly(monday)
    audit_access_record(
        user=fetched_by,
        what=f"weekly report for the week of {monday.isoformat()}",
        details={**asked, "week_start": monday.isoformat(), "week_end": report.week_end.isoformat()},
        client_addr=client_addr,
        user_agent=user_agent,
    )
    return report


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WeeklyReportDelivery:
    report: WeeklyReport
    recipients: list[str]  # usernames of the officers notified
    mailed: int  # of them, how many have an e-mail address


def weekly_report_send(*, week_start: dt.date | None = None) -> WeeklyReportDelivery:
    """Build a week's report (default: last week) as the system and send it to every security officer.

    Each officer gets an in-platform notice; those with an e-mail address also get it by mail, after
    commit, so a mail server failure loses nothing recorded. The text holds counts and usernames only.
    """
    monday = _week_monday(previous_week_start() if week_start is None else week_start)
    officers = security_officers()
    # Built before the transaction: on SQLite an open write transaction holds every audit append back.
    report = _build_weekly(monday)
    with transaction.atomic():
        audit_access_record(
            user=None,
            username=SYSTEM_READER,
            what=f"weekly report for the week of {monday.isoformat()} sent to the privacy office",
            details={
                "report": "weekly",
                "week_start": monday.isoformat(),
                "week_end": report.week_end.isoformat(),
                "channel": "task",
                "recipients": [officer.get_username() for officer in officers],
            },
        )
        subject = f"Privacy office weekly report: week of {monday:%d %b %Y}"[:_SUBJECT_CHARS]
        body = weekly_report_text(report)
        now = timezone.now()
        Notification.objects.bulk_create(
            Notification(user=officer, subject=subject, body=body, created_at=now) for officer in officers
        )
        messages = [
            (subject, body, settings.DEFAULT_FROM_EMAIL, [officer.email])
            for officer in officers
            if officer.email
        ]
        if messages:
            transaction.on_commit(lambda: _mail(messages, monday))
    return WeeklyReportDelivery(
        report=report, recipients=[officer.get_username() for officer in officers], mailed=len(messages)
    )


def _mail(messages: list[tuple[str, str, str, list[str]]], monday: dt.date) -> None:
    try:
        send_mass_mail(messages, fail_silently=False)
    except Exception:
        logger.exception("Weekly report of %s: e-mail failed (in-platform notices were made).", monday)


def _week_monday(day: dt.date) -> dt.date:
    if isinstance(day, dt.datetime):
        day = timezone.localtime(day).date() if timezone.is_aware(day) else day.date()
    monday = day - dt.timedelta(days=day.weekday())
    if monday.year < _EARLIEST_YEAR:
        raise ReportError(f"There is no audit before {_EARLIEST_YEAR}; choose a later week.", code="bad_week")
    if monday > timezone.localdate():
        raise ReportError(
            f"The week of {monday.isoformat()} has not begun; choose this week or an earlier one.",
            code="future_week",
        )
    return monday


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def _build_weekly(monday: dt.date) -> WeeklyReport:
    start, end = _local_midnight(monday), _local_midnight(monday + dt.timedelta(days=7))
    before = _local_midnight(monday - dt.timedelta(days=7))
    week = _events(start, end)
    counts = _counts(start, end)
    return WeeklyReport(
        week_start=monday,
        week_end=monday + dt.timedelta(days=7),
        time_zone=settings.TIME_ZONE,
        generated_at=timezone.now(),
        counts=counts,
        previous=_counts(before, start),
        volumes=_volumes(week),
        denials=_denials(week),
        top_users=_top_users(week),
        failed_logins=_failed_logins(week, counts.failed_logins),
        breakglass=_breakglass(start, end, counts.breakglass_queries),
        alerts=_alerts(start, end),
    )


def _events(start: dt.datetime, end: dt.datetime) -> QuerySet[AuditEvent]:
    # The occurred_at index bounds every aggregate below to the week's events.
    return AuditEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end).order_by()


def _disclosed(events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    return events.filter(kind__in=DISCLOSING_KINDS, status=EventStatus.ANSWERED)


def _counts(start: dt.datetime, end: dt.datetime) -> WeekCounts:
    events = _events(start, end)
    asked = Q(kind__in=DISCLOSING_KINDS)
    # One pass over the week's events for every event count.
    totals = events.aggregate(
        questions=Count("seq", filter=Q(kind=EventKind.QUESTION)),
        exports=Count("seq", filter=Q(kind=EventKind.EXPORT)),
        answered=Count("seq", filter=asked & Q(status=EventStatus.ANSWERED)),
        denied=Count("seq", filter=asked & Q(status=EventStatus.DENIED)),
        active_users=Count("username", distinct=True, filter=asked & ~Q(username="")),
        failed_logins=Count("seq", filter=Q(kind=EventKind.LOGIN_FAILED)),
        breakglass_queries=Count("seq", filter=asked & Q(breakglass_session_id__isnull=False)),
        audit_reads=Count("seq", filter=Q(kind=EventKind.AUDIT_ACCESS, status=EventStatus.OK)),
    )
    return WeekCounts(
        **totals,
        patients=_distinct_patients(_disclosed(events))[""],
        breakglass_opened=BreakGlassSession.objects.filter(opened_at__gte=start, opened_at__lt=end).count(),
        alerts_raised=Alert.objects.filter(created_at__gte=start, created_at__lt=end).count(),
    )


def _distinct_patients(events: QuerySet[AuditEvent], *, per_user: bool = False) -> dict[str, int]:
    """Distinct subject_ids in the events' patients_touched, in all ("" key) or per username.

    Exact, and computed in the database: the lists are unnested (jsonb_array_elements, json_each) and
    counted distinct there, so nothing but the counts reaches Python. The cost grows with the week's
    listed patients (the occurred_at index bounds it to the week): measured on PostgreSQL, a week of
    250,000 answers listing 540,000 patient ids takes 0.5 s. It grows linearly; should it ever be too
    slow, a HyperLogLog sketch (postgresql-hll) is the bounded-memory replacement, at ~1% error.
    """
    inner, params = events.values("username", "patients_touched").query.sql_with_params()
    if connection.vendor == "postgresql":
        # Compared as bigint, not jsonb: five times faster on a week of 250,000 answers (measured).
        unnest, value = (
            "CROSS JOIN LATERAL jsonb_array_elements_text(e.patients_touched) AS p",
            "p.value::bigint",
        )
    elif connection.vendor == "sqlite":
        unnest, value = "CROSS JOIN json_each(e.patients_touched) AS p", "p.value"
    else:
        raise ImproperlyConfigured(f"The audit reports do not support {connection.vendor}.")
    if per_user:
        sql = f"SELECT e.username, COUNT(DISTINCT {value}) FROM ({inner}) AS e {unnest} GROUP BY e.username"
    else:
        sql = f"SELECT '', COUNT(DISTINCT {value}) FROM ({inner}) AS e {unnest}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = {str(name): int(count) for name, count in cursor.fetchall()}
    return counts if per_user else {"": counts.get("", 0)}


def _ranked(counts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Most frequent first, then by name: the same week always reads the same."""
    return dict(sorted(counts, key=lambda item: (-item[1], item[0])))


def _volumes(events: QuerySet[AuditEvent]) -> dict[str, Volume]:
    asked = events.filter(kind__in=DISCLOSING_KINDS)
    by_status: dict[str, dict[str, int]] = {kind: {} for kind in DISCLOSING_KINDS}
    by_role: dict[str, dict[str, int]] = {kind: {} for kind in DISCLOSING_KINDS}
    for row in asked.values("kind", "status").annotate(n=Count("seq")):
        by_status[row["kind"]][row["status"]] = row["n"]
    for row in asked.values("kind", "role").annotate(n=Count("seq")):
        by_role[row["kind"]][row["role"]] = row["n"]
    return {
        str(kind): Volume(
            total=sum(by_status[kind].values()),
            by_status=_ranked(by_status[kind].items()),
            by_role=_ranked(by_role[kind].items()),
        )
        for kind in DISCLOSING_KINDS
    }


def _denials(events: QuerySet[AuditEvent]) -> list[Denial]:
    # Failed logins have their own section; everything else refused is here, audit reads included.
    rows = (
        events.filter(status=EventStatus.DENIED)
        .exclude(kind=EventKind.LOGIN_FAILED)
        .annotate(code=KT("details__code"))
        .values("kind", "code")
        .annotate(n=Count("seq"))
    )
    denials = [Denial(kind=row["kind"], code=str(row["code"] or ""), count=row["n"]) for row in rows]
    return sorted(denials, key=lambda denial: (-denial.count, denial.kind, denial.code))


def _top_users(events: QuerySet[AuditEvent]) -> list[TopUser]:
    asked = events.filter(kind__in=DISCLOSING_KINDS).exclude(username="")
    rows = list(
        asked.values("username")
        .annotate(
            total=Count("seq"),
            questions=Count("seq", filter=Q(kind=EventKind.QUESTION)),
            exports=Count("seq", filter=Q(kind=EventKind.EXPORT)),
            # A role changed mid-week shows as the later one alphabetically; rare, and the name is enough.
            role=Max("role"),
        )
        .order_by("-total", "username")[:TOP_USERS]
    )
    names = [row["username"] for row in rows]
    patients = (
        _distinct_patients(_disclosed(asked).filter(username__in=names), per_user=True) if names else {}
    )
    return [
        TopUser(
            username=row["username"],
            role=row["role"] or "",
            questions=row["questions"],
            exports=row["exports"],
            patients=patients.get(row["username"], 0),
        )
        for row in rows
    ]


def _failed_logins(events: QuerySet[AuditEvent], count: int) -> FailedLogins:
    failed = events.filter(kind=EventKind.LOGIN_FAILED)
    rows = failed.values("username").annotate(n=Count("seq")).order_by("-n", "username")
    top = [NamedCount(name=row["username"], count=row["n"]) for row in rows[:TOP_FAILED_LOGINS]]
    return FailedLogins(count=count, top_usernames=top)


def _breakglass(start: dt.datetime, end: dt.datetime, queries: int) -> BreakGlassWeek:
    sessions = BreakGlassSession.objects.filter(opened_at__gte=start, opened_at__lt=end).order_by()
    review = BreakGlassSession.Review
    totals = sessions.aggregate(
        opened=Count("pk"),
        pending_review=Count("pk", filter=Q(review=review.PENDING)),
        appropriate=Count("pk", filter=Q(review=review.APPROPRIATE)),
        inappropriate=Count("pk", filter=Q(review=review.INAPPROPRIATE)),
        escalated=Count("pk", filter=Q(escalated=True)),
    )
    reasons = sessions.values("reason_code").annotate(n=Count("pk"))
    return BreakGlassWeek(
        **totals,
        by_reason=_ranked((row["reason_code"], row["n"]) for row in reasons),
        queries=queries,
        pending_review_all=BreakGlassSession.objects.filter(opened_at__lt=end, review=review.PENDING).count(),
    )


def _alerts(start: dt.datetime, end: dt.datetime) -> AlertWeek:
    alerts = Alert.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    states = dict.fromkeys(AlertState.values, 0)
    for row in alerts.values("state").annotate(n=Count("pk")):
        states[row["state"]] = row["n"]
    reasons = (
        alerts.annotate(top_reason=KT("reasons__0__code"))
        .values("top_reason")
        .annotate(n=Count("pk"))
        .order_by("-n", "top_reason")[:TOP_ALERT_REASONS]
    )
    # Alerts are few by design (a budget per 1,000 user-days), so the week's triage delays fit in memory.
    firsts = list(
        alerts.annotate(first_note=Min("notes__created_at")).values_list("created_at", "first_note")
    )
    delays = [(noted - created).total_seconds() for created, noted in firsts if noted is not None]
    return AlertWeek(
        raised=sum(states.values()),
        by_state=states,
        by_reason={str(row["top_reason"] or ""): row["n"] for row in reasons},
        median_seconds_to_first_triage=statistics.median(delays) if delays else None,
        untriaged=sum(1 for _, noted in firsts if noted is None),
        still_new_all=Alert.objects.filter(created_at__lt=end, state=AlertState.NEW).count(),
    )


# --- Accounting of disclosures ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Disclosure:
    """One answer that showed the patient's data: who, when, why, under which grant, which columns."""

    seq: int
    occurred_at: dt.datetime
    kind: str
    username: str
    role: str
    department: str
    purpose_of_use: str
    breakglass_session_id: int | None
    tables: list[str]
    columns: list[str]

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["occurred_at"] = self.occurred_at.isoformat()
        return data


DISCLOSURE_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Disclosure))


def disclosures_for_patient(
    *,
    fetched_by: User,
    subject_id: int,
    since: dt.date | None = None,
    until: dt.date | None = None,
    channel: str = "",
    client_addr: str = "",
    user_agent: str = "",
) -> list[Disclosure]:
    """Every answered question and export that showed this patient's data, newest first.

    `since` and `until` are local days, both included. Security officers only; the read is recorded
    with the patient and the range (status ok), and so is a refusal (status denied, with its code).
    """
    asked: dict[str, Any] = {
        "report": "disclosures",
        "subject_id": subject_id,
        "since": _iso(since),
        "until": _iso(until),
        "channel": channel,
    }
    with _refusal_recorded(fetched_by, asked, client_addr, user_agent):
        if not is_security_officer(fetched_by):
            raise ReportError("Only the privacy office reads the audit reports.", code="role")
        disclosures = _disclosures(subject_id, since, until)
    audit_access_record(
        user=fetched_by,
        what=f"accounting of disclosures for patient {subject_id}",
        details={**asked, "disclosures": len(disclosures)},
        client_addr=client_addr,
        user_agent=user_agent,
    )
    return disclosures


def _disclosures(subject_id: int, since: dt.date | None, until: dt.date | None) -> list[Disclosure]:
    if isinstance(subject_id, bool) or not isinstance(subject_id, int) or subject_id < 1:
        raise ReportError("A patient is named by a positive subject_id.", code="bad_patient")
    if since is not None and until is not None and since > until:
        raise ReportError(
            f"The range is empty: since {since.isoformat()} is after until {until.isoformat()}.",
            code="bad_range",
        )
    for day in (since, until):
        if day is not None and not _EARLIEST_YEAR <= day.year < dt.MAXYEAR:
            raise ReportError(f"{day.isoformat()} is not a date the audit can hold.", code="bad_range")
    events = _disclosed(events_touching_patient(AuditEvent.objects.all(), subject_id))
    if since is not None:
        events = events.filter(occurred_at__gte=_local_midnight(since))
    if until is not None:
        events = events.filter(occurred_at__lt=_local_midnight(until + dt.timedelta(days=1)))
    # Only these columns are read: the question and the SQL never leave the database here.
    # Seq order is time order as recorded; the time leads, so that the list reads newest first anyway.
    rows = events.order_by("-occurred_at", "-seq").values_list(
        "seq",
        "occurred_at",
        "kind",
        "username",
        "role",
        "attributes",
        "purpose_of_use",
        "breakglass_session_id",
        "tables_touched",
        "columns_touched",
    )
    return [
        Disclosure(
            seq=seq,
            occurred_at=occurred_at,
            kind=kind,
            username=username,
            role=role,
            department=str(attributes.get("department") or "") if isinstance(attributes, dict) else "",
            purpose_of_use=purpose,
            breakglass_session_id=session,
            tables=list(tables or []),
            columns=list(columns or []),
        )
        for seq, occurred_at, kind, username, role, attributes, purpose, session, tables, columns in rows
    ]


def events_touching_patient(events: QuerySet[AuditEvent], subject_id: int) -> QuerySet[AuditEvent]:
    """The events whose patients_touched lists this subject_id: element equality, never text matching.

    PostgreSQL: jsonb containment (`patients_touched @> '[N]'`), which a GIN index on the column
    (jsonb_path_ops) serves. SQLite has no containment for JSON: json_each tests the elements, a full
    scan of the events in range (0.3 s for 500,000 events, measured; the embedded default is small).
    """
    if connection.vendor == "postgresql":
        return events.filter(patients_touched__contains=[subject_id])
    if connection.vendor == "sqlite":
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        # The SQL is constant but for the model's own table name; the subject_id is a bound parameter.
        # instr() on the JSON text is only a cheap first cut (it halves the time on 500,000 events);
        # json_each decides, so 1001 never matches 10010.
        listed = RawSQL(  # noqa: S611
            f"instr({table}.patients_touched, %s) > 0 AND EXISTS "
            f"(SELECT 1 FROM json_each({table}.patients_touched) WHERE json_each.value = %s)",
            [str(subject_id), subject_id],
            output_field=BooleanField(),
        )
        return events.filter(listed)
    raise ImproperlyConfigured(f"The audit reports do not support {connection.vendor}.")


def disclosures_csv(disclosures: Iterable[Disclosure]) -> str:
    """The accounting as CSV (RFC 4180), every cell safe to open in a spreadsheet."""

    def cell(value: Any) -> Any:
        if isinstance(value, list):
            value = "; ".join(value)
        elif isinstance(value, dt.datetime):
            value = timezone.localtime(value).isoformat()
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            return "'" + value
        return "" if value is None else value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DISCLOSURE_FIELDS)
    for disclosure in disclosures:
        writer.writerow([cell(getattr(disclosure, name)) for name in DISCLOSURE_FIELDS])
    return out.getvalue()


# --- Recording reads -------------------------------------------------------------------------------------


def report_refuse_unknown_reader(*, username: str, details: Mapping[str, Any]) -> None:
    """Record a report asked for in the name of no active account (e.g. a mistyped --user)."""
    audit_access_record(
        user=None,
        username=username,
        status=EventStatus.DENIED,
        what="no such active user",
        details={**details, "code": "unknown_user"},
    )


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


# --- Text ------------------------------------------------------------------------------------------------


def _listing(counts: Mapping[str, int], blank: str = "(none)") -> str:
    return ", ".join(f"{name or blank} {count}" for name, count in counts.items()) or "none"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "no triage yet"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)


_HEADLINES: Final = (
    ("questions", "Questions"),
    ("exports", "Exports"),
    ("answered", "Answered (questions and exports)"),
    ("denied", "Denied (questions and exports)"),
    ("active_users", "Active users"),
    ("patients", "Distinct patients whose data was shown"),
    ("failed_logins", "Failed logins"),
    ("breakglass_opened", "Break-glass sessions opened"),
    ("breakglass_queries", "Queries under break-glass"),
    ("alerts_raised", "Alerts raised"),
    ("audit_reads", "Audit trail reads"),
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Headline:
    label: str
    this_week: int
    previous: int
    change: int


def weekly_report_headlines(report: WeeklyReport) -> list[Headline]:
    """The headline counts, this week beside the previous one, in the order the text report lists them."""
    now, before = dataclasses.asdict(report.counts), dataclasses.asdict(report.previous)
    return [
        Headline(label=label, this_week=now[name], previous=before[name], change=now[name] - before[name])
        for name, label in _HEADLINES
    ]


def weekly_report_text(report: WeeklyReport) -> str:
    """The report as plain text, for the terminal and the mail: counts and usernames, no patient ids."""
    last_day = report.week_end - dt.timedelta(days=1)
    lines = [
        f"Privacy office weekly report: {report.week_start:%a %d %b %Y} to {last_day:%a %d %b %Y} "
        f"({report.time_zone})",
        "",
        f"{'':42}{'this week':>10}{'previous':>10}{'change':>8}",
    ]
    for line in weekly_report_headlines(report):
        lines.append(f"{line.label:42}{line.this_week:>10}{line.previous:>10}{line.change:>+8}")
    lines.append("")
    for kind, volume in report.volumes.items():
        noun = "Questions" if kind == EventKind.QUESTION else "Exports"
        lines.append(f"{noun}: {volume.total}; by status: {_listing(volume.by_status)}")
        lines.append(f"{noun} by role: {_listing(volume.by_role, '(no role)')}")
    denials = ", ".join(f"{d.kind}/{d.code or '(no code)'} {d.count}" for d in report.denials) or "none"
    lines.append(f"Denials by reason: {denials}")
    lines.append("")
    lines.append(f"Top users (of {report.counts.active_users} active):")
    for user in report.top_users:
        lines.append(
            f"  {user.username} ({user.role or 'no role'}): {_count(user.questions, 'question')}, "
            f"{_count(user.exports, 'export')}, {_count(user.patients, 'patient')}"
        )
    if not report.top_users:
        lines.append("  none")
    failed = report.failed_logins
    names = ", ".join(f"{entry.name or '(blank)'} {entry.count}" for entry in failed.top_usernames)
    lines.append(f"Failed logins: {failed.count}" + (f" (most tried: {names})" if names else ""))
    lines.append("")
    glass = report.breakglass
    lines.append(f"Break-glass: {glass.opened} sessions opened; by reason: {_listing(glass.by_reason)}")
    lines.append(
        f"  of these: {glass.pending_review} awaiting review, {glass.appropriate} appropriate, "
        f"{glass.inappropriate} inappropriate, {glass.escalated} escalated"
    )
    lines.append(
        f"  {glass.queries} queries under break-glass; {glass.pending_review_all} sessions awaiting review "
        "in all"
    )
    alerts = report.alerts
    lines.append(f"Alerts: {alerts.raised} raised; by state: {_listing(alerts.by_state)}")
    lines.append(f"  by strongest reason: {_listing(alerts.by_reason)}")
    lines.append(
        f"  median time to first triage: {_duration(alerts.median_seconds_to_first_triage)}; "
        f"{alerts.untriaged} not triaged yet; {alerts.still_new_all} alerts still new in all"
    )
    return "\n".join(lines) + "\n"


def disclosures_text(subject_id: int, disclosures: list[Disclosure]) -> str:
    """The accounting as plain text, one disclosure a line, newest first."""
    if not disclosures:
        return f"No disclosures of patient {subject_id} are recorded.\n"
    noun = "disclosure" if len(disclosures) == 1 else "disclosures"
    lines = [f"Accounting of disclosures for patient {subject_id}: {len(disclosures)} {noun}, newest first."]
    for item in disclosures:
        glass = f" break-glass #{item.breakglass_session_id}" if item.breakglass_session_id else ""
        lines.append(
            f"#{item.seq} {timezone.localtime(item.occurred_at):%Y-%m-%d %H:%M:%S} {item.username} "
            f"({item.role or 'no role'}, {item.department or 'no department'}) {item.kind} "
            f"purpose {item.purpose_of_use or 'none'}{glass}: tables {', '.join(item.tables) or 'none'}; "
            f"columns {', '.join(item.columns) or 'none'}"
        )
    return "\n".join(lines) + "\n"
