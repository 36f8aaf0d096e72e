"""Signing in and out in a real browser, as a clinician and as a security officer would."""

from __future__ import annotations

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.factories import PASSWORD


def _sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_clinician_signs_in_sees_role_and_signs_out(
    page: Page, live_server: LiveServer, cardiology_clinician: User
) -> None:
    _sign_in(page, live_server.url, "carla.cardio", PASSWORD)
    expect(page.get_by_test_id("role")).to_have_text("Clinician")
    expect(page.get_by_test_id("department")).to_have_text("Cardiology (CARD)")
    expect(page.get_by_text("care relationship").first).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_wrong_password_is_told_plainly(page: Page, live_server: LiveServer, security_officer: User) -> None:
    _sign_in(page, live_server.url, "sofia.security", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text(
        "Your username and password did not match. Please try again."
    )
    _sign_in(page, live_server.url, "sofia.security", PASSWORD)
    expect(page.get_by_test_id("role")).to_have_text("Security officer")
    expect(page.get_by_text("No clinical questions")).to_be_visible()
