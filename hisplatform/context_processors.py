"""What every page's frame shows: the pages this role may open, and an open break-glass session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accessctl.models import BreakGlassSession
from accessctl.services import BREAKGLASS_ROLES
from hisplatform.asking import ASKING_ROLES
from hisplatform.models import Role, StaffProfile

_DASHBOARD_ROLES: Final = frozenset({Role.ADMINISTRATOR})


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool


def nav_items(path: str, role: str) -> list[NavItem]:
    """The links of the header for this role; a link the role cannot use is not offered."""
    entries: list[tuple[str, str, bool]] = [
        ("Ask", "ask:page", role in ASKING_ROLES),
        ("Dashboards", "dashboards:page", role in _DASHBOARD_ROLES),
        ("Break-glass", "breakglass:page", role in BREAKGLASS_ROLES),
        ("Security console", "security:page", role == Role.SECURITY_OFFICER),
        ("API tokens", "tokens:page", bool(role)),
    ]
    items = []
    for label, name, allowed in entries:
        if allowed:
            url = reverse(name)
            items.append(NavItem(label, url, path.startswith(url)))
    return items


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    profile = StaffProfile.objects.filter(user_id=user.pk).only("role").first()
    role = profile.role if profile else ""
    now = timezone.now()
    # The newest open session: the banner counts down to its expiry on every page while it lasts.
    session = (
        BreakGlassSession.objects.filter(user_id=user.pk, ended_at__isnull=True, expires_at__gt=now)
        .order_by("-opened_at")
        .first()
        if role in BREAKGLASS_ROLES
        else None
    )
    return {
        "nav": nav_items(request.path, role),
        "role": role,
        "breakglass_session": session,
        "breakglass_seconds_left": int((session.expires_at - now).total_seconds()) if session else 0,
    }
