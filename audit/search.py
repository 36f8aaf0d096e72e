"""Reads of the audit trail for the security console: the search, one event, the chain's status.

Security officers only; every read, and every refusal, is itself an audit event (`audit_access_record`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Final

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.db.models.functions import Left

from audit.alerts import is_security_officer
from audit.models import AuditChainHead, AuditEvent, Checkpoint, EventStatus
from audit.reports import events_touching_patient
from audit.services import AuditReadError, ChainVerification, audit_access_record, chain_verification_last

# Enough of a question to recognise it in a list; the event page shows it whole (up to 100,000 chars).
QUESTION_PREVIEW_CHARS: Final = 120
# The columns a result row shows: a question can be 100 KB and a policy trace larger, so a page of
# fifty reads only these and the question's first characters.
_LISTED: Final = (
    "seq",
    "occurred_at",
    "username",
    "role",
    "kind",
    "status",
    "patients_touched_count",
    "breakglass_session_id",
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SearchCriteria:
    """What the officer asked for; every field narrows, none is required. Times are aware."""

    username: str = ""
    subject_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None  # excluded
    status: str = ""
    kind: str = ""
    breakglass_only: bool = False
    session_id: int | None = None

    def as_details(self) -> dict[str, Any]:
        """The criteria as the audit read records them: what was looked for, by whom is the event's own."""
        return {
            name: value.isoformat() if isinstance(value, dt.datetime) else value
            for name, value in dataclasses.asdict(self).items()
            if value not in ("", None, False)
        }


def _require_officer(
    user: User, what: str, details: dict[str, Any], client_addr: str, user_agent: str
) -> None:
    """Record the read, or the refusal, and raise for anyone but the privacy office."""
    allowed = is_security_officer(user)
    audit_access_record(
        user=user,
        status=EventStatus.OK if allowed else EventStatus.DENIED,
        what=what if allowed else f"refused: {what}",
        details=details if allowed else {**details, "code": "role"},
        client_addr=client_addr,
        user_agent=user_agent,
    )
    if not allowed:
        raise AuditReadError("Only the privacy office reads the audit trail.", code="role")


def audit_search(
    *, fetched_by: User, criteria: SearchCriteria, client_addr: str = "", user_agent: str = ""
) -> QuerySet[AuditEvent]:
    """The events matching every criterion, newest first, ready to be paged (50 to a page is cheap).

    Each row carries the listed columns and `question_start`, the question's first characters. Newest
    first is by time, then seq (the two agree: times are stamped under the append lock), so that the
    occurred_at index serves the order and a time range at once: the database walks it backwards and
    stops at the page (5 ms for a week in the middle of a million events on PostgreSQL, measured,
    where walking seq backwards to that week took 570 ms). Indexes also serve the session
    (breakglass_session_id) and, on PostgreSQL, the patient (GIN on patients_touched, jsonb
    containment); a username is matched by scanning until an index on it exists.
    """
    _require_officer(
        fetched_by,
        "audit trail searched",
        {"view": "search", "criteria": criteria.as_details()},
        client_addr,
        user_agent,
    )
    events = AuditEvent.objects.all()
    if criteria.username:
        events = events.filter(username=criteria.username)
    if criteria.since is not None:
        events = events.filter(occurred_at__gte=criteria.since)
    if criteria.until is not None:
        events = events.filter(occurred_at__lt=criteria.until)
    if criteria.status:
        events = events.filter(status=criteria.status)
    if criteria.kind:
        events = events.filter(kind=criteria.kind)
    if criteria.session_id is not None:
        events = events.filter(breakglass_session_id=criteria.session_id)
    elif criteria.breakglass_only:
        events = events.filter(breakglass_session_id__isnull=False)
    if criteria.subject_id is not None:
        events = events_touching_patient(events, criteria.subject_id)
    return (
        events.only(*_LISTED)
        .annotate(question_start=Left("question", QUESTION_PREVIEW_CHARS + 1))
        .order_by("-occurred_at", "-seq")
    )


def audit_event_detail(
    *, fetched_by: User, seq: int, client_addr: str = "", user_agent: str = ""
) -> AuditEvent:
    """One event in full (question, SQL, patients, policy trace): AuditReadError "not_found" if none."""
    _require_officer(
        fetched_by, f"audit event {seq} viewed", {"view": "event", "event": seq}, client_addr, user_agent
    )
    event = AuditEvent.objects.filter(seq=seq).first()
    if event is None:
        raise AuditReadError(f"There is no audit event {seq}.", code="not_found")
    return event


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ChainStatus:
    """Where the chain stands: its head, the newest signed checkpoint, and the last verification."""

    head_seq: int  # 0: no event yet
    checkpoints: int
    latest_checkpoint: Checkpoint | None
    unsigned: int  # events after the newest checkpoint: covered by the hash chain only
    last_verification: ChainVerification | None
    running: ChainVerification | None  # a verification asked for and not finished


def chain_status(*, fetched_by: User, client_addr: str = "", user_agent: str = "") -> ChainStatus:
    """The chain's head and checkpoints as stored now, and the outcome of the last verification."""
    _require_officer(fetched_by, "audit chain status viewed", {"view": "chain"}, client_addr, user_agent)
    head = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
    latest = Checkpoint.objects.order_by("-seq_to").first()
    last, running = chain_verification_last()
    return ChainStatus(
        head_seq=head,
        checkpoints=Checkpoint.objects.count(),
        latest_checkpoint=latest,
        unsigned=max(0, head - (latest.seq_to if latest is not None else 0)),
        last_verification=last,
        running=running,
    )
