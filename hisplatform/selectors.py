"""Reads about people, each taking the user who asks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from accessctl.models import Notification
from audit.models import AuditEvent, EventKind
from hisplatform.models import ROLE_CAPABILITIES, ResearchProject, StaffProfile
from hisplatform.warehouse.executor import WarehouseError
from hisplatform.warehouse.organisation import DEPARTMENT_BY_CODE
from hisplatform.warehouse.targets import warehouse_capabilities


def warehouse_status() -> tuple[bool, str]:
    """(usable, what to tell users) about the configured warehouse, never raising."""
    try:
        capabilities = warehouse_capabilities()
    except WarehouseError as error:
        return False, error.message
    return capabilities.clinical_core, capabilities.describe()


def home_context_for(*, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """What the home page shows this user about themselves: role, department, projects, rights."""
    if not user.is_authenticated or user.pk is None:
        return {"profile": None, "capabilities": [], "projects": [], "notifications": []}
    profile = StaffProfile.objects.filter(user_id=user.pk).first()
    today: dt.date = timezone.localdate()
    projects = list(ResearchProject.objects.filter(members__pk=user.pk).order_by("code"))
    usable, status = warehouse_status()
    return {
        "warehouse_usable": usable,
        "warehouse_status": status,
        "profile": profile,
        "department_name": _department_name(profile.department if profile else ""),
        "capabilities": ROLE_CAPABILITIES.get(profile.role, []) if profile else [],
        "projects": [(project, project.is_active_on(today)) for project in projects],
        # Unread first, newest first: a security officer sees break-glass openings on sign-in.
        "notifications": list(
            Notification.objects.filter(user_id=user.pk, read_at__isnull=True).order_by("-created_at")[:20]
        ),
    }


def _department_name(code: str) -> str:
    department = DEPARTMENT_BY_CODE.get(code)
    return f"{department.name} ({code})" if department else code


# Questions asked through these channels are a person's own history; dashboards and hand-written SQL
# (tests, benchmarks) are recorded too, but nobody typed them.
HISTORY_CHANNELS: Final = ("web", "api", "cli")


@dataclass(frozen=True)
class PastQuestion:
    audit_event: int
    asked_at: dt.datetime
    question: str
    status: str
    purpose: str


def question_history(*, fetched_by: AbstractBaseUser | AnonymousUser, limit: int = 20) -> list[PastQuestion]:
    """The questions this user asked, newest first: their own words and what became of them, no answers."""
    if not fetched_by.is_authenticated or fetched_by.pk is None:
        return []
    events = (
        AuditEvent.objects.filter(
            user_id=fetched_by.pk, kind=EventKind.QUESTION, details__channel__in=HISTORY_CHANNELS
        )
        .order_by("-seq")
        .values_list("seq", "occurred_at", "question", "status", "purpose_of_use")[:limit]
    )
    return [PastQuestion(*row) for row in events]


def question_history_events(*, fetched_by: AbstractBaseUser | AnonymousUser) -> QuerySet[AuditEvent]:
    """question_history's events, newest first, as a lazy queryset: for paging through all of them."""
    if not fetched_by.is_authenticated or fetched_by.pk is None:
        return AuditEvent.objects.none()
    return (
        AuditEvent.objects.filter(
            user_id=fetched_by.pk, kind=EventKind.QUESTION, details__channel__in=HISTORY_CHANNELS
        )
        .order_by("-seq")
        .only("seq", "occurred_at", "question", "status", "purpose_of_use")
    )
