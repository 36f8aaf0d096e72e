"""Personal API tokens: made with the account password, listed, revoked; every step is audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from typing import Final

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import knox_settings

from audit.models import AuditEvent, EventKind, EventStatus
from audit.services import audit_record
from hisplatform.models import StaffProfile

NAME_MAX: Final = 60


class TokenError(Exception):
    """A token request refused; `code` is stable, `message` is for the person."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclasses.dataclass(frozen=True, slots=True)
class TokenRow:
    """A token as its owner sees it: never the secret, only the first characters that identify it."""

    key: str
    name: str
    created: dt.datetime
    expiry: dt.datetime | None


def token_list(*, fetched_by: User, now: dt.datetime | None = None) -> list[TokenRow]:
    """The user's tokens that still work, newest first."""
    now = now or timezone.now()
    tokens = list(
        AuthToken.objects.filter(user_id=fetched_by.pk)
        .filter(Q(expiry__isnull=True) | Q(expiry__gt=now))
        .order_by("-created")
    )
    # Knox's token table has no name: the name given at creation is kept in the creation's audit event.
    names = {
        str(details.get("token")): str(details.get("name", ""))
        for details in AuditEvent.objects.filter(
            user_id=fetched_by.pk,
            kind=EventKind.API_TOKEN,
            status=EventStatus.OK,
            details__action="create",
            details__token__in=[token.token_key for token in tokens],
        ).values_list("details", flat=True)
        if isinstance(details, dict)
    }
    return [TokenRow(t.token_key, names.get(t.token_key, ""), t.created, t.expiry) for t in tokens]


def token_create(
    *,
    user: User,
    name: str,
    password: str,
    now: dt.datetime | None = None,
    client_addr: str = "",
    user_agent: str = "",
) -> tuple[TokenRow, str]:
    """A new token for the user and its secret, which is shown once and kept nowhere (knox keeps a hash).

    The password is asked again even within a signed-in session: whoever reaches an unlocked screen must
    not leave with a credential that outlives the session by weeks. Wrong passwords count towards the
    same lockout as sign-in (AXES_FAILURE_LIMIT within AXES_COOLOFF_TIME).
    """
    now = now or timezone.now()

    def refuse(message: str, code: str, kind: str = EventKind.API_TOKEN) -> TokenError:
        audit_record(
            user=user,
            kind=kind,
            status=EventStatus.DENIED,
            message=f"API token refused: {message}",
            details={"action": "create", "code": code, "token_name": name[:NAME_MAX]},
            client_addr=client_addr,
            user_agent=user_agent,
        )
        return TokenError(message, code=code)

    name = name.strip()
    if not StaffProfile.objects.filter(user_id=user.pk).exists():
        raise TokenError(
            "Your account has no staff profile, so a token could see nothing.", code="no_profile"
        )
    if not name or len(name) > NAME_MAX or any(unicodedata.category(c).startswith("C") for c in name):
        raise TokenError(
            f"Give the token a name of 1 to {NAME_MAX} printable characters, "
            "e.g. \u201cward laptop script\u201d.",
            code="name",
        )
    failures = AuditEvent.objects.filter(
        kind=EventKind.LOGIN_FAILED,
        username=user.get_username(),
        occurred_at__gte=now - settings.AXES_COOLOFF_TIME,
    ).count()
    if failures >= settings.AXES_FAILURE_LIMIT:
        minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        raise refuse(f"Too many wrong passwords; try again in {minutes} minutes.", "locked")
    if not user.check_password(password):
        raise refuse("The password is not correct; a token needs your own password.", "password",
                     kind=EventKind.LOGIN_FAILED)  # fmt: skip
    limit = knox_settings.TOKEN_LIMIT_PER_USER
    with transaction.atomic():
        # Expired tokens no longer count, and nothing should keep them.
        AuthToken.objects.filter(user_id=user.pk, expiry__lte=now).delete()
        held = AuthToken.objects.filter(user_id=user.pk).count()
        if limit is None or held < limit:
            token, secret = AuthToken.objects.create(user=user)
            audit_record(
                user=user,
                kind=EventKind.API_TOKEN,
                status=EventStatus.OK,
                message=f"API token created: {name}",
                details={
                    "action": "create",
                    "token": token.token_key,
                    "name": name,
                    "expiry": token.expiry.isoformat() if token.expiry else None,
                },
                client_addr=client_addr,
                user_agent=user_agent,
            )
    if limit is not None and held >= limit:  # refused outside the transaction: the refusal's event stays
        raise refuse(f"You already hold {limit} tokens, the most allowed; revoke one first.", "limit")
    return TokenRow(token.token_key, name, token.created, token.expiry), secret


def token_revoke(
    *, user: User, key: str, channel: str = "web", client_addr: str = "", user_agent: str = ""
) -> TokenRow:
    """Revoke one of the user's own tokens by its first characters; someone else's reads as none."""
    with transaction.atomic():
        rows = [row for row in token_list(fetched_by=user) if row.key == key]
        if not rows:
            raise TokenError("You hold no such token; it may have expired or been revoked already.",
                             code="not_found")  # fmt: skip
        AuthToken.objects.filter(user_id=user.pk, token_key=key).delete()
        audit_record(
            user=user,
            kind=EventKind.API_TOKEN,
            status=EventStatus.OK,
            message=f"API token revoked: {rows[0].name or key}",
            details={"action": "revoke", "token": key, "name": rows[0].name, "channel": channel},
            client_addr=client_addr,
            user_agent=user_agent,
        )
    return rows[0]
