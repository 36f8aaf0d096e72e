"""A token made on the page works from a script at once and stops when revoked; the API's docs render."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.accessctl.conftest import PASSWORD, People
from tests.browser.conftest import shot, sign_in


def _ask(base: str, token: str, question: str) -> tuple[int, dict[str, Any]]:
    """What a hospital script does: one POST with the token, JSON in and out."""
    request = urllib.request.Request(  # noqa: S310 (http to the live test server)
        f"{base}/api/v1/ask",
        data=json.dumps({"question": question}).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the live test server)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _csp_violations(page: Page) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return violations


def test_a_token_made_on_the_page_answers_a_script_until_revoked(
    page: Page, live_server: LiveServer, hospital: People
) -> None:
    violations = _csp_violations(page)
    base = live_server.url
    sign_in(page, base, "dr.carter", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    expect(page.get_by_test_id("no-tokens")).to_have_text("You hold no tokens.")
    shot(page, "tokens-empty")

    page.get_by_label("Name").fill("ward laptop script")
    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#password-error")).to_have_text(
        "The password is not correct; a token needs your own password."
    )
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    shot(page, "tokens-wrong-password")

    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Your new token \u201cward laptop script\u201d")).to_be_visible()
    token = page.get_by_test_id("new-token").input_value()
    assert len(token) == 64
    expect(page.get_by_test_id("tokens").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("tokens").locator("tbody tr td").first).to_have_text("ward laptop script")
    shot(page, "tokens-created")

    status, answer = _ask(base, token, "how many patients are currently admitted?")
    assert (status, answer["status"], answer["rows"]) == (200, "answered", [[7]])

    page.goto(f"{base}/account/tokens/")  # shown once: the page no longer carries it
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    page.get_by_role("button", name="Revoke ward laptop script").click()
    expect(page.get_by_role("status").first).to_have_text(
        "Token \u201cward laptop script\u201d revoked; it no longer works."
    )
    expect(page.get_by_test_id("no-tokens")).to_be_visible()
    shot(page, "tokens-revoked")
    status, refused = _ask(base, token, "how many patients are currently admitted?")
    assert (status, refused["code"]) == (401, "authentication_failed")
    assert violations == []


def test_the_api_docs_render_from_our_own_files(
    page: Page, live_server: LiveServer, hospital: People
) -> None:
    violations = _csp_violations(page)
    foreign: list[str] = []
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(live_server.url) else None)
    sign_in(page, live_server.url, "dr.carter", PASSWORD)
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hospital analytics platform API")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/ask")).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/alerts/{alert_id}/triage")).to_be_visible()
    shot(page, "api-docs")
    assert violations == []
    assert foreign == []
