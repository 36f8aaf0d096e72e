"""Who is asking, as access control sees them: role, department, staff record, projects, break-glass."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q
from django.utils import timezone

from accessctl.models import BreakGlassSession
from accessctl.policy import Context
from hisplatform.models import ResearchProject, StaffProfile


@dataclass(frozen=True)
class Grant:
    """An open break-glass session's widening: one patient or one unit, until it expires."""

    session_id: int
    scope: str  # "patient" | "unit"
    subject_id: int | None
    careunit: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Subject:
    user_id: int | None
    username: str
    role: str  # "" for an account without a staff profile: it may do nothing
    department: str
    staff_id: int | None
    projects: tuple[str, ...]  # approved, unexpired projects the user belongs to
    lapsed_projects: tuple[str, ...]  # projects the user belongs to that are not (or no longer) approved
    breakglass: Grant | None
    clock: dt.datetime  # the real time: break-glass expiry, project dates, time-of-day rules
    data_now: dt.datetime  # the warehouse's "now": what a current stay or a recent discharge means
    # The user's last break-glass session if it ended within the last shift: a refusal can then say
    # that the emergency access has ended rather than leave them guessing.
    lapsed_breakglass: Grant | None = None

    def context(self) -> Context:
        # Hours and weekdays in policy rules are the hospital's local time (TIME_ZONE).
        local = timezone.localtime(self.clock) if timezone.is_aware(self.clock) else self.clock
        return Context(
            breakglass=self.breakglass is not None,
            project=bool(self.projects),
            hour=local.hour,
            weekday=local.weekday() < 5,
        )

    def attributes(self) -> dict[str, object]:
        """The snapshot the audit event keeps."""
        return {
            "department": self.department,
            "staff_id": self.staff_id,
            "projects": list(self.projects),
            "breakglass_session": self.breakglass.session_id if self.breakglass else None,
        }


# A break-glass session that ended longer ago than this is history, not news to the person asking.
_LAPSED_NOTICE = dt.timedelta(hours=12)


def grants(user_id: int, clock: dt.datetime) -> tuple[Grant | None, Grant | None]:
    """(the open session's grant, the last session's if it has ended within _LAPSED_NOTICE), one query."""
    rows = (
        BreakGlassSession.objects.filter(user_id=user_id, opened_at__lte=clock)
        .filter(Q(ended_at__isnull=True, expires_at__gt=clock) | Q(opened_at__gt=clock - _LAPSED_NOTICE))
        .order_by("-opened_at")
        .values_list("pk", "scope", "subject_id", "careunit", "expires_at", "ended_at")[:5]
    )
    sessions = list(rows)
    for pk, scope, subject_id, careunit, expires_at, ended_at in sessions:
        if ended_at is None and expires_at > clock:
            return Grant(pk, scope, subject_id, careunit, expires_at), None
    if not sessions:
        return None, None
    pk, scope, subject_id, careunit, expires_at, ended_at = sessions[0]
    ended = min(expires_at, ended_at or expires_at)
    return None, Grant(pk, scope, subject_id, careunit, ended) if ended <= clock else None


def subject_for(
    *, user: AbstractBaseUser | AnonymousUser, clock: dt.datetime, data_now: dt.datetime
) -> Subject:
    if not user.is_authenticated or user.pk is None:
        return Subject(None, "", "", "", None, (), (), None, clock, data_now)
    profile = StaffProfile.objects.filter(user_id=user.pk).first()
    projects = list(ResearchProject.objects.filter(members__pk=user.pk).order_by("code"))
    day = clock.date()
    open_now, lapsed = grants(int(user.pk), clock) if profile else (None, None)
    return Subject(
        user_id=int(user.pk),
        username=user.get_username(),
        role=profile.role if profile else "",
        department=profile.department if profile else "",
        staff_id=profile.staff_id if profile else None,
        projects=tuple(p.code for p in projects if p.is_active_on(day)),
        lapsed_projects=tuple(p.code for p in projects if not p.is_active_on(day)),
        breakglass=open_now,
        clock=clock,
        data_now=data_now,
        lapsed_breakglass=lapsed,
    )
