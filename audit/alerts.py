"""The privacy office's work on alerts: triage (state, assignee, notes), labels for training, notices."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Final

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mass_mail
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accessctl.models import BreakGlassSession, Notification
from accessctl.services import security_officers
from audit.models import Alert, AlertLabel, AlertNote, AlertState, AuditEvent, EventKind, EventStatus
from audit.services import audit_access_record, audit_record
from hisplatform.models import Role

logger = logging.getLogger(__name__)

# Where an alert may go from each state. Confirmed and false positive are conclusions (they become the
# label the next training reads); resolved closes a confirmed incident; a conclusion can be reopened.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    AlertState.NEW: frozenset({AlertState.INVESTIGATING, AlertState.CONFIRMED, AlertState.FALSE_POSITIVE}),
    AlertState.INVESTIGATING: frozenset({AlertState.CONFIRMED, AlertState.FALSE_POSITIVE}),
    AlertState.CONFIRMED: frozenset({AlertState.RESOLVED, AlertState.INVESTIGATING}),
    AlertState.FALSE_POSITIVE: frozenset({AlertState.INVESTIGATING}),
    AlertState.RESOLVED: frozenset({AlertState.INVESTIGATING}),
}
LABEL_OF: Final[dict[str, str]] = {
    AlertState.NEW: AlertLabel.NONE,
    AlertState.INVESTIGATING: AlertLabel.NONE,
    AlertState.CONFIRMED: AlertLabel.INCIDENT,
    AlertState.FALSE_POSITIVE: AlertLabel.BENIGN,
    AlertState.RESOLVED: AlertLabel.INCIDENT,
}
_NOTE_LIMIT: Final = 10_000


class AlertError(Exception):
    """A triage request the rules refuse; `code` is stable, `message` is for the person."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def is_security_officer(user: User) -> bool:
    profile = getattr(user, "profile", None)
    return bool(user.is_active and profile is not None and profile.role == Role.SECURITY_OFFICER)


def _about(alert: Alert, user: User) -> bool:
    """Whether the alert is about this person: by account, or by name (accounts can be renamed)."""
    return (alert.user_id is not None and alert.user_id == user.pk) or alert.username == user.get_username()


def alerts_visible_to(officer: User) -> models.QuerySet[Alert]:
    """Every alert but those about the officer: a suspected member of the privacy office must not read
    the case against them."""
    return Alert.objects.exclude(user_id=officer.pk).exclude(username=officer.get_username())


def alert_triage(
    *,
    officer: User,
    alert_id: int,
    state: str | None = None,
    note: str = "",
    assignee: str | None = None,
    now: dt.datetime | None = None,
) -> Alert:
    """Move an alert on, assign it, or add a note; every step is kept and audited, refusals too.

    `assignee` is a security officer's username ("" unassigns). Concluding (confirmed, false positive)
    needs a note saying why: it becomes the label the next baseline is trained with.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            alert, step = _triage(officer, alert_id, state, note, assignee, now)
            audit_record(
                user=officer,
                kind=EventKind.ALERT_TRIAGE,
                status=EventStatus.OK,
                message=f"alert {alert.pk} ({alert.username}, {alert.day}): {step}",
                details={
                    "alert": alert.pk,
                    "subject_user": alert.username,
                    "state": alert.state,
                    "assignee": alert.assignee.get_username() if alert.assignee else "",
                    "note": note.strip()[:_NOTE_LIMIT],
                },
            )
            return alert
    except AlertError as error:
        audit_record(
            user=officer,
            kind=EventKind.ALERT_TRIAGE,
            status=EventStatus.DENIED,
            message=error.message,
            details={"alert": alert_id, "code": error.code, "state": state or ""},
        )
        raise


def _triage(
    officer: User, alert_id: int, state: str | None, note: str, assignee: str | None, now: dt.datetime
) -> tuple[Alert, str]:
    if not is_security_officer(officer):
        raise AlertError("Only the privacy office triages alerts.", code="role")
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None:
        raise AlertError("There is no such alert.", code="not_found")
    if _about(alert, officer):
        raise AlertError("Nobody triages an alert about themself.", code="own_alert")
    note = note.strip()
    if len(note) > _NOTE_LIMIT:
        raise AlertError(f"A note holds at most {_NOTE_LIMIT:,} characters.", code="note_too_long")
    steps: list[str] = []
    before = alert.state
    if state is not None and state != alert.state:
        if state not in AlertState.values:
            raise AlertError(
                f"Unknown state {state[:30]!r}; one of {', '.join(AlertState.values)}.", code="state"
            )
        if state not in TRANSITIONS[alert.state]:
            allowed = ", ".join(sorted(TRANSITIONS[alert.state]))
            raise AlertError(
                f"An alert that is {AlertState(alert.state).label.lower()} can move to: {allowed}.",
                code="transition",
            )
        if state in (AlertState.CONFIRMED, AlertState.FALSE_POSITIVE) and not note:
            raise AlertError(
                "Say what the investigation found; the note is kept with the alert.", code="note"
            )
        alert.state = state
        alert.label = LABEL_OF[state]
        steps.append(f"{before} -> {state}")
    if assignee is not None:
        if assignee == "":
            alert.assignee = None
            steps.append("unassigned")
        else:
            person = User.objects.filter(username=assignee).select_related("profile").first()
            if person is None or not is_security_officer(person):
                raise AlertError(
                    "Alerts are assigned to members of the privacy office only.", code="assignee"
                )
            if _about(alert, person):
                raise AlertError("Nobody is assigned an alert about themself.", code="own_alert")
            alert.assignee = person
            steps.append(f"assigned to {person.get_username()}")
    if not steps and not note:
        raise AlertError("Nothing to do: give a new state, an assignee or a note.", code="empty")
    alert.updated_at = now
    alert.save(update_fields=["state", "label", "assignee", "updated_at"])
    AlertNote.objects.create(
        alert=alert,
        author=officer,
        author_name=officer.get_username(),
        created_at=now,
        text=note,
        state_from=before if alert.state != before else "",
        state_to=alert.state if alert.state != before else "",
    )
    return alert, "; ".join(steps) or "note added"


def alert_notify(*, alert_id: int) -> int:
    """Tell every security officer (but the alert's subject) about a new alert; returns how many."""
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return 0
    officers = [user for user in security_officers() if user.get_username() != alert.username]
    subject = f"Access alert: {alert.username} on {alert.day:%d %b %Y} (risk {alert.risk:.0f})"[:200]
    # No patient data in a notice that may leave the platform by mail: who, when, how risky, where to look.
    body = (
        f"An access alert was raised for {alert.username} ({alert.role.replace('_', ' ')}) on "
        f"{alert.day:%d %b %Y}, risk {alert.risk:.0f} of 100. Open alert {alert.pk} in the security "
        "console to see the reasons and the events behind it."
    )
    now = timezone.now()
    Notification.objects.bulk_create(
        Notification(user=user, subject=subject, body=body, created_at=now) for user in officers
    )
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email]) for user in officers if user.email]
    if messages:
        try:
            send_mass_mail(messages, fail_silently=False)
        except Exception:
            logger.exception(
                "Alert %s: e-mail notification failed (in-platform notices were made).", alert.pk
            )
    return len(officers)


# ------------------------------------------------------------------------------------- the work queue


@dataclasses.dataclass(frozen=True, slots=True)
class QueueItem:
    """One thing waiting for the privacy office: an open alert or a break-glass session to review."""

    kind: str  # "alert" or "breakglass"
    id: int
    username: str
    role: str
    when: dt.datetime
    risk: float | None
    state: str
    summary: str


def _read(
    officer: User, what: str, details: dict[str, object], *, client_addr: str = "", user_agent: str = ""
) -> None:
    """Refuse anyone but the privacy office, and record the read (or the refusal) either way."""
    allowed = is_security_officer(officer)
    audit_access_record(
        user=officer,
        status=EventStatus.OK if allowed else EventStatus.DENIED,
        what=what if allowed else f"refused: {what}",
        details=details,
        client_addr=client_addr,
        user_agent=user_agent,
    )
    if not allowed:
        raise AlertError("Only the privacy office reads alerts and break-glass reviews.", code="role")


OPEN_STATES: Final = (AlertState.NEW, AlertState.INVESTIGATING)
# The console's queue filter: the open alerts (the default), every alert, or one state.
QUEUE_FILTERS: Final[dict[str, str]] = {
    "open": "Open (new or investigating)",
    **{state.value: state.label for state in AlertState},
    "all": "All alerts",
}


def review_queue(*, fetched_by: User, limit: int = 50) -> list[QueueItem]:
    """Open alerts by risk, then break-glass sessions awaiting review (escalated first), oldest first."""
    _read(fetched_by, "review queue viewed", {"view": "queue"})
    alerts = alerts_visible_to(fetched_by).filter(state__in=OPEN_STATES)
    alerts = alerts.order_by("-risk", "created_at")
    items = [
        QueueItem("alert", a.pk, a.username, a.role, a.created_at, a.risk, a.state, a.summary)
        for a in alerts[:limit]
    ]
    now = timezone.now()
    sessions = (
        BreakGlassSession.objects.filter(review=BreakGlassSession.Review.PENDING)
        .filter(models.Q(ended_at__isnull=False) | models.Q(expires_at__lte=now))
        .order_by("-escalated", "opened_at")
    )
    for session in sessions[:limit]:
        what = f"patient {session.subject_id}" if session.subject_id is not None else session.careunit
        summary = (
            f"Break-glass for {what}, {session.reason_code.replace('_', ' ')}: {session.queries} questions"
            + (" (escalated: frequent use)" if session.escalated else "")
        )
        items.append(
            QueueItem(
                "breakglass", session.pk, session.username, "", session.opened_at, None, "pending", summary
            )
        )
    return items


def alert_queue(
    *, fetched_by: User, shown: str = "open", client_addr: str = "", user_agent: str = ""
) -> QuerySet[Alert]:
    """The alerts of one QUEUE_FILTERS entry (default: open), riskiest first, never those about the reader.

    For paging: the assignee comes with each alert. An unknown filter raises AlertError "filter".
    """
    if shown not in QUEUE_FILTERS:
        raise AlertError(f"Show one of: {', '.join(QUEUE_FILTERS)}.", code="filter")
    _read(
        fetched_by,
        "alert queue viewed",
        {"view": "alerts", "shown": shown},
        client_addr=client_addr,
        user_agent=user_agent,
    )
    alerts = alerts_visible_to(fetched_by).select_related("assignee")
    if shown == "open":
        alerts = alerts.filter(state__in=OPEN_STATES)
    elif shown != "all":
        alerts = alerts.filter(state=shown)
    return alerts.order_by("-risk", "created_at", "pk")


def alert_assignees(*, alert: Alert) -> list[User]:
    """Who an alert may be assigned to: the privacy office, but never someone the alert is about."""
    return [user for user in security_officers() if not _about(alert, user)]


def alert_detail(
    *, fetched_by: User, alert_id: int, client_addr: str = "", user_agent: str = ""
) -> tuple[Alert, list[AlertNote], list[AuditEvent]]:
    """The alert, its triage notes and the events behind it (question text included: officers only)."""
    _read(
        fetched_by,
        f"alert {alert_id} viewed",
        {"alert": alert_id},
        client_addr=client_addr,
        user_agent=user_agent,
    )
    alert = alerts_visible_to(fetched_by).select_related("assignee").filter(pk=alert_id).first()
    if alert is None:  # about the reader, or none: the two read alike
        raise AlertError("There is no such alert.", code="not_found")
    events = list(AuditEvent.objects.filter(seq__in=alert.event_seqs).order_by("seq"))
    return alert, list(alert.notes.all()), events
