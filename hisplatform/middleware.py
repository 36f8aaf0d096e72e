"""Session expiry: a session ends after a spell without requests and a fixed time after sign-in."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

_SIGNED_IN: Final = "his_signed_in_at"
_SEEN: Final = "his_last_seen_at"
# The last-seen time is written at most this often: a session write on every request would cost a
# database write per page and per poll of a running question.
_TOUCH_EVERY_SECONDS: Final = 60


class SessionExpiryMiddleware:
    """Signs out a session idle for SESSION_IDLE_SECONDS, or older than SESSION_COOKIE_AGE.

    Django's own expiry is the cookie's age, renewed whenever the session changes; an unattended
    workstation on a ward must lock sooner than that, and a session must not live for ever by polling.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            signed_in = session.setdefault(_SIGNED_IN, now)
            seen = session.get(_SEEN, now)
            idle = now - float(seen) > settings.SESSION_IDLE_SECONDS
            if idle or now - float(signed_in) > settings.SESSION_COOKIE_AGE:
                logout(request)
                minutes = settings.SESSION_IDLE_SECONDS // 60
                messages.info(
                    request,
                    f"You were signed out after {minutes} minutes without activity."
                    if idle
                    else "You were signed out at the end of your session; sign in again.",
                )
            elif now - float(seen) >= _TOUCH_EVERY_SECONDS or _SEEN not in session:
                session[_SEEN] = now
        return self.get_response(request)
