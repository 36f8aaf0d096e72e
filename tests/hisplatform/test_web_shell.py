"""The web shell: sign in, see who you are and what your role allows, sign out."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.conftest import SHARED
from tests.factories import PASSWORD, UserFactory


def test_anonymous_visitor_is_sent_to_sign_in(client: Client, db: None) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_wrong_password_shows_a_clear_message_not_an_error(
    client: Client, cardiology_clinician: User
) -> None:
    response = client.post("/login/", {"username": "carla.cardio", "password": "wrong"})
    assert response.status_code == 200
    assert b"did not match" in response.content


@pytest.mark.parametrize(
    ("persona", "role_text", "promise"),
    [
        ("cardiology_clinician", "Clinician", b"care relationship"),
        ("icu_nurse", "Nurse", b"patients in your care"),
        ("researcher", "Researcher", b"de-identified rows only"),
        ("administrator", "Administrator", b"aggregates only"),
        ("security_officer", "Security officer", b"No clinical questions"),
    ],
)
def test_home_page_tells_each_role_what_it_may_do(
    client: Client, request: pytest.FixtureRequest, persona: str, role_text: str, promise: bytes
) -> None:
    user: User = request.getfixturevalue(persona)
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get("/")
    assert response.status_code == 200
    assert f'data-testid="role">{role_text}<'.encode() in response.content
    assert promise in response.content


def test_account_without_profile_is_told_it_sees_nothing(client: Client, db: None) -> None:
    user = UserFactory.create(username="nobody")
    client.force_login(user)
    response = client.get("/")
    assert b'data-testid="no-profile"' in response.content


def test_sign_out_needs_a_post_and_ends_the_session(client: Client, cardiology_clinician: User) -> None:
    client.force_login(cardiology_clinician)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_admin_is_for_staff_accounts_only(client: Client, cardiology_clinician: User) -> None:
    client.force_login(cardiology_clinician)
    assert client.get("/admin/").status_code == 302
    cardiology_clinician.is_staff = True
    cardiology_clinician.is_superuser = True
    cardiology_clinician.save()
    response = client.get("/admin/hisplatform/researchproject/")
    assert response.status_code == 200


def test_unknown_page_is_a_plain_404(client: Client, cardiology_clinician: User) -> None:
    client.force_login(cardiology_clinician)
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert b"Traceback" not in response.content


def test_home_page_says_when_the_warehouse_is_not_loaded(
    client: Client, cardiology_clinician: User, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'missing.sqlite3'}"
    client.force_login(cardiology_clinician)
    response = client.get("/")
    assert response.status_code == 200
    assert b"does not exist" in response.content
    assert not (tmp_path / "missing.sqlite3").exists()


def test_home_page_says_a_mimic_source_has_no_identity_tables(
    client: Client, cardiology_clinician: User, settings: SettingsWrapper
) -> None:
    mimic = SHARED / "benchmarks" / "ehrsql" / "mimic_iv.sqlite"
    if not mimic.exists():
        pytest.skip(f"MIMIC-IV demo database not found at {mimic} (../shared is absent)")
    settings.WAREHOUSE_URL = f"sqlite:///{mimic}"
    client.force_login(cardiology_clinician)
    response = client.get("/")
    assert b"de-identified extract (such as MIMIC-IV)" in response.content
