"""Signing in, failing to, and signing out are audit events, recorded from Django's own auth views."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import Client

from audit.chain import verify_chain
from audit.models import AuditEvent, EventKind, EventStatus

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
WRONG = "Tr0ub4dor&3-not-it"
ADDRESS, AGENT = "10.20.30.40", "Mozilla/5.0 (Ward PC 12)"


def _events() -> list[tuple[str, str, int | None, str, str, str, str]]:
    return list(
        AuditEvent.objects.order_by("seq").values_list(
            "kind", "status", "user_id", "username", "role", "client_addr", "user_agent"
        )
    )


def _post(client: Client, url: str, data: dict[str, str] | None = None) -> int:
    """Post from a ward PC, as its browser would; the response's status code."""
    return client.post(url, data or {}, REMOTE_ADDR=ADDRESS, headers={"User-Agent": AGENT}).status_code


@pytest.fixture
def carla(cardiology_clinician: User) -> User:
    cardiology_clinician.set_password(PASSWORD)
    cardiology_clinician.save()
    return cardiology_clinician


def test_a_wrong_password_a_sign_in_and_a_sign_out_are_recorded_in_order(client: Client, carla: User) -> None:
    refused = _post(client, "/login/", {"username": "carla.cardio", "password": WRONG})
    signed_in = _post(client, "/login/", {"username": "carla.cardio", "password": PASSWORD})
    signed_out = _post(client, "/logout/")

    assert (refused, signed_in, signed_out) == (200, 302, 302)
    where = (ADDRESS, AGENT)
    assert _events() == [
        (EventKind.LOGIN_FAILED, EventStatus.DENIED, None, "carla.cardio", "", *where),
        (EventKind.LOGIN, EventStatus.OK, carla.pk, "carla.cardio", "clinician", *where),
        (EventKind.LOGOUT, EventStatus.OK, carla.pk, "carla.cardio", "clinician", *where),
    ]
    assert AuditEvent.objects.get(kind=EventKind.LOGIN).attributes == {
        "department": "CARD",
        "staff_id": None,
        "projects": [],
    }
    assert verify_chain().intact


def test_no_password_is_ever_stored(client: Client, carla: User) -> None:
    _post(client, "/login/", {"username": "carla.cardio", "password": WRONG})
    _post(client, "/login/", {"username": "carla.cardio", "password": PASSWORD})

    stored = repr(list(AuditEvent.objects.values()))
    assert AuditEvent.objects.count() == 2
    assert WRONG not in stored
    assert PASSWORD not in stored
    assert "********" not in stored  # not even Django's masked placeholder: only the username is taken


def test_an_unknown_username_is_recorded_as_tried(client: Client, carla: User) -> None:
    client.post("/login/", {"username": "mallory", "password": WRONG}, REMOTE_ADDR="203.0.113.9")

    assert _events() == [(EventKind.LOGIN_FAILED, EventStatus.DENIED, None, "mallory", "", "203.0.113.9", "")]


def test_a_failure_outside_a_request_is_recorded_without_an_address(carla: User) -> None:
    assert authenticate(username="carla.cardio", password=WRONG) is None

    assert _events() == [(EventKind.LOGIN_FAILED, EventStatus.DENIED, None, "carla.cardio", "", "", "")]


def test_signing_out_when_not_signed_in_records_nothing(client: Client) -> None:
    assert client.post("/logout/").status_code == 302
    assert _events() == []
