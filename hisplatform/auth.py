"""Sign-in: django-axes refuses a locked-out username and address before the password is checked."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check, for sign-ins that come with a request (the login page, admin).

    A sign-in without one (a script in the server's own shell) has no address to throttle by; axes
    would raise, breaking it, while the failure is still recorded in the audit trail as before.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]
