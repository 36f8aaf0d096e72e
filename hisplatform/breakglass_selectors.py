"""Reads for the break-glass page: the care units one may name, and one's own past sessions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from accessctl.models import BreakGlassSession
from accessctl.services import BREAKGLASS_ROLES
from hisplatform.models import StaffProfile
from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget

# Units that ever had a patient: the ones break-glass accepts (accessctl.services checks transfers).
# care_units is small and transfers is indexed on careunit, so each EXISTS is one index probe.
_UNITS_BY_DEPARTMENT: Final = (
    "SELECT d.name, c.careunit FROM care_units c JOIN departments d ON d.department_id = c.department_id "
    "WHERE EXISTS (SELECT 1 FROM transfers t WHERE t.careunit = c.careunit) ORDER BY d.name, c.careunit"
)
# A de-identified extract such as MIMIC-IV has no organisation tables: its units, ungrouped.
_UNITS_OF_TRANSFERS: Final = (
    "SELECT DISTINCT careunit FROM transfers WHERE careunit IS NOT NULL ORDER BY careunit"
)
# Far above the 30 units of the demo hospital; a warehouse with more still lists them all.
_UNIT_CAP: Final = 2_000


@dataclass(frozen=True)
class UnitGroup:
    department: str  # empty when the warehouse has no departments
    units: list[str]


@dataclass(frozen=True)
class PastSession:
    """One of the user's own break-glass sessions, as the page lists it."""

    pk: int
    opened_at: dt.datetime
    reason: str
    target: str
    minutes: int
    state: str  # open | ended | expired
    closes_at: dt.datetime  # when it ended, or ends
    queries: int
    review: str
    escalated: bool


def _may_break_glass(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or user.pk is None:
        return False
    role = StaffProfile.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
    return role in BREAKGLASS_ROLES


def breakglass_care_units(
    *, fetched_by: AbstractBaseUser | AnonymousUser, target: WarehouseTarget | None = None
) -> list[UnitGroup]:
    """The care units break-glass can name, grouped by department; empty for roles that cannot open
    it and when the warehouse cannot be read (the page then says so)."""
    if not _may_break_glass(fetched_by):
        return []
    try:
        rows = execute_readonly(_UNITS_BY_DEPARTMENT, target=target, row_cap=_UNIT_CAP).rows
    except WarehouseError:
        try:
            rows = [("", row[0]) for row in execute_readonly(_UNITS_OF_TRANSFERS, target=target).rows]
        except WarehouseError:
            return []
    groups: dict[str, list[str]] = {}
    for department, unit in rows:
        groups.setdefault(str(department or ""), []).append(str(unit))
    return [UnitGroup(department, units) for department, units in groups.items()]


def breakglass_sessions_of(
    *, fetched_by: AbstractBaseUser | AnonymousUser, limit: int = 10, now: dt.datetime | None = None
) -> list[PastSession]:
    """The user's own break-glass sessions, newest first, with how each ended and its review."""
    if not fetched_by.is_authenticated or fetched_by.pk is None:
        return []
    now = now or timezone.now()
    sessions = BreakGlassSession.objects.filter(user_id=fetched_by.pk).order_by("-opened_at", "-pk")[:limit]
    return [_past(session, now) for session in sessions]


def _past(session: BreakGlassSession, now: dt.datetime) -> PastSession:
    if session.ended_at is not None:
        # A session past its expiry is "expired" whether or not the expiry run has recorded it yet.
        state = "expired" if session.end_reason == BreakGlassSession.EndReason.EXPIRED else "ended"
        closes_at = session.ended_at
    elif session.expires_at > now:
        state, closes_at = "open", session.expires_at
    else:
        state, closes_at = "expired", session.expires_at
    return PastSession(
        pk=session.pk,
        opened_at=session.opened_at,
        reason=session.get_reason_code_display(),
        target=session.target(),
        minutes=round((session.expires_at - session.opened_at).total_seconds() / 60),
        state=state,
        closes_at=closes_at,
        queries=session.queries,
        review=session.get_review_display(),
        escalated=session.escalated,
    )
