"""Reads of access control for the privacy office: the break-glass sessions awaiting review."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone

from accessctl.models import BreakGlassSession
from accessctl.services import AccessError
from audit.models import EventStatus
from audit.services import audit_access_record
from hisplatform.models import Role, StaffProfile


def breakglass_reviews_pending(
    *, fetched_by: User, now: dt.datetime | None = None, client_addr: str = "", user_agent: str = ""
) -> QuerySet[BreakGlassSession]:
    """Sessions that have ended (or expired) and await review: escalated ones first, then the oldest.

    Security officers only. The read is recorded as an audit read (the sessions' justifications and
    patients are part of the trail), and so is a refusal, before AccessError "role" is raised.
    """
    now = now or timezone.now()
    allowed = StaffProfile.objects.filter(
        user=fetched_by, user__is_active=True, role=Role.SECURITY_OFFICER
    ).exists()
    audit_access_record(
        user=fetched_by,
        status=EventStatus.OK if allowed else EventStatus.DENIED,
        what="break-glass review queue viewed" if allowed else "refused: break-glass review queue viewed",
        details={"view": "breakglass_reviews"} if allowed else {"view": "breakglass_reviews", "code": "role"},
        client_addr=client_addr,
        user_agent=user_agent,
    )
    if not allowed:
        raise AccessError("Only the privacy office reviews break-glass sessions.", code="role")
    # An expired session the expiry task has not closed yet has ended all the same.
    ended = Q(ended_at__isnull=False) | Q(expires_at__lte=now)
    return BreakGlassSession.objects.filter(ended, review=BreakGlassSession.Review.PENDING).order_by(
        "-escalated", "opened_at", "pk"
    )
