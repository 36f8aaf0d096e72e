"""The frame every page shares: the links a role is offered, and no script or style from elsewhere."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.accessctl.conftest import PASSWORD, People
from tests.browser.conftest import shot, sign_in

NAV = {
    "dr.carter": ["Ask", "Break-glass", "API tokens"],
    "nurse.patel": ["Ask", "Break-glass", "API tokens"],
    "head.nguyen": ["Ask", "Break-glass", "API tokens"],
    "res.garcia": ["Ask", "API tokens"],
    "admin.walsh": ["Ask", "Dashboards", "API tokens"],
    "sec.ito": ["Security console", "API tokens"],
}


@pytest.mark.parametrize(("username", "links"), NAV.items())
def test_each_role_is_offered_its_pages_and_no_others(
    page: Page, live_server: LiveServer, hospital: People, username: str, links: list[str]
) -> None:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, live_server.url, username, PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(links)
    shot(page, f"home-{username}")
    assert violations == []


def test_keyboard_reaches_skip_link_then_navigation(
    page: Page, live_server: LiveServer, hospital: People
) -> None:
    sign_in(page, live_server.url, "dr.carter", PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Hospital analytics")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Ask")).to_be_focused()
