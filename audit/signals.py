"""Sign-in, sign-out and failed sign-in, recorded from Django's auth signals (the views are Django's own)."""

from __future__ import annotations

from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from audit.models import EventKind, EventStatus
from audit.services import audit_record


class ClientDetails(TypedDict):
    client_addr: str
    user_agent: str


def client_details(request: HttpRequest | None) -> ClientDetails:
    """Where a request came from: `client_addr` and `user_agent` for `audit_record`, empty without one.

    REMOTE_ADDR is the application server's peer: behind a reverse proxy, the proxy's address.
    X-Forwarded-For is not read, since any client can send one; trusting the proxy's header is a
    deployment decision to make in one place (middleware), not here.
    """
    if request is None:
        return ClientDetails(client_addr="", user_agent="")
    return ClientDetails(
        client_addr=str(request.META.get("REMOTE_ADDR") or ""),
        user_agent=str(request.META.get("HTTP_USER_AGENT") or ""),
    )


@receiver(user_logged_in, dispatch_uid="audit.record_login")
def record_login(sender: Any, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    audit_record(user=user, kind=EventKind.LOGIN, status=EventStatus.OK, **client_details(request))


@receiver(user_logged_out, dispatch_uid="audit.record_logout")
def record_logout(
    sender: Any, request: HttpRequest | None, user: AbstractBaseUser | None, **kwargs: Any
) -> None:
    if user is None:  # an anonymous visitor "signing out" ended nothing
        return
    audit_record(user=user, kind=EventKind.LOGOUT, status=EventStatus.OK, **client_details(request))


@receiver(user_login_failed, dispatch_uid="audit.record_login_failed")
def record_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only the name tried: Django masks the password in `credentials`, and it is never read here.
    # The login form passes it as `username` whatever the user model's USERNAME_FIELD is.
    attempted = credentials.get("username") or credentials.get(get_user_model().USERNAME_FIELD)
    audit_record(
        user=None,
        kind=EventKind.LOGIN_FAILED,
        status=EventStatus.DENIED,
        username=str(attempted or ""),
        **client_details(request),
    )
