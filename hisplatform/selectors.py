"""Reads about people, each taking the user who asks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils import timezone

from hisplatform.models import ROLE_CAPABILITIES, ResearchProject, StaffProfile


def home_context_for(*, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """What the home page shows this user about themselves: role, department, projects, rights."""
    if not user.is_authenticated or user.pk is None:
        return {"profile": None, "capabilities": [], "projects": []}
    profile = StaffProfile.objects.filter(user_id=user.pk).first()
    today: dt.date = timezone.localdate()
    projects = list(ResearchProject.objects.filter(members__pk=user.pk).order_by("code"))
    return {
        "profile": profile,
        "capabilities": ROLE_CAPABILITIES.get(profile.role, []) if profile else [],
        "projects": [(project, project.is_active_on(today)) for project in projects],
    }
