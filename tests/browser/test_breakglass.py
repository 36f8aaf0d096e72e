"""Break-glass in a real browser: refused, opened with the keyboard, the banner counting down on every
page, ended early with its button; expiry reloading the page; a wrong password; a researcher's 403."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from accessctl.models import BreakGlassSession
from hisplatform.queries import answer_question
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, PASSWORD, People, rows_of
from tests.browser.conftest import shot, sign_in

# In neurology at NOON, never in a cardiology unit nor on dr.carter's care team: outside his care.
NEURO_PATIENT = 11119654
QUESTION = f"what is the gender of patient {NEURO_PATIENT}?"
JUSTIFICATION = "Collapsed on the stairs outside neurology; I am the nearest physician."
COUNTDOWN = re.compile(r"^\d{1,2}:\d{2}$")


def _watch_csp(page: Page) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return violations


def _ask(page: Page, base: str) -> Locator:
    """Ask QUESTION on the Ask page, as a person would, and return the answer shown."""
    page.goto(f"{base}/ask/")
    page.get_by_role("textbox", name="Your question").fill(QUESTION)
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.get_by_test_id("answer")
    expect(answer).to_be_visible(timeout=20_000)
    return answer


def _banner(page: Page) -> Locator:
    return page.get_by_role("region", name="Break-glass access")


def _tab_to(page: Page, locator: Locator, presses: int = 20) -> None:
    """Press Tab until `locator` has the focus, as someone without a mouse would."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if locator.evaluate("element => element === document.activeElement"):
            return
    pytest.fail(f"{locator} is not reachable with Tab")


def _seconds(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


def test_a_clinician_breaks_glass_with_the_keyboard_and_ends_it_early(
    page: Page, live_server: LiveServer, hospital: People, sqlite_warehouse: WarehouseTarget
) -> None:
    base = live_server.url
    violations = _watch_csp(page)
    # The case: a neurology inpatient, outside a cardiologist's care relationships.
    assert (
        answer_question(user=hospital["dr.carter"], question=QUESTION, now=NOON, target=sqlite_warehouse).code
        == "out_of_scope"
    )
    gender = str(
        rows_of(sqlite_warehouse)(f"SELECT gender FROM patients WHERE subject_id = {NEURO_PATIENT}")[0][0]
    )
    sign_in(page, base, "dr.carter", PASSWORD)

    refused = _ask(page, base)
    expect(refused.get_by_test_id("refusal")).to_have_text(
        f"You may not see this: patient {NEURO_PATIENT} is outside your care relationships (or does not "
        "exist). Open break-glass access if this is an emergency."
    )
    shot(page, "breakglass-ask-refused")

    # The refusal links here, with the patient filled in.
    refused.get_by_role("link", name="Emergency? Open break-glass").click()
    page.wait_for_url(f"{base}/breakglass/?patient={NEURO_PATIENT}")
    expect(page.get_by_role("heading", name="Break-glass: emergency access")).to_be_visible()
    expect(page.get_by_text("Every query you make under break-glass is flagged and reviewed")).to_be_visible()
    expect(page.get_by_label("Patient id (subject id)")).to_have_value(str(NEURO_PATIENT))
    expect(page.get_by_label("One patient")).to_be_checked()
    # Only the chosen scope's field shows.
    expect(page.get_by_label("Care unit", exact=True)).to_be_hidden()
    shot(page, "breakglass-form")

    _tab_to(page, page.get_by_label("Reason"))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("Reason")).to_have_value("unconscious")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Justification")).to_be_focused()
    page.keyboard.type(JUSTIFICATION)
    page.keyboard.press("Tab")
    expect(page.get_by_label("One patient")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Patient id (subject id)")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Minutes")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("15")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Your password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    shot(page, "breakglass-form-filled")
    page.keyboard.press("Enter")

    page.wait_for_url(f"{base}/ask/")
    session = BreakGlassSession.objects.get()
    assert (session.username, session.subject_id, session.reason_code, session.justification) == (
        "dr.carter",
        NEURO_PATIENT,
        "unconscious",
        JUSTIFICATION,
    )
    assert session.expires_at - session.opened_at == dt.timedelta(minutes=15)
    until = f"{timezone.localtime(session.expires_at):%H:%M}"

    expect(page.get_by_role("status").filter(has_text="Break-glass is open for")).to_have_text(
        f"Break-glass is open for patient {NEURO_PATIENT} until {until} UTC (15 minutes). "
        "Every question you ask now is flagged and reviewed by the privacy office."
    )
    # The banner on every page while it is open, counting down.
    for path, name in (
        ("/ask/", "ask"),
        ("/", "home"),
        ("/no-such-page", "not-found"),
        ("/breakglass/", "page"),
    ):
        if path != "/ask/":
            page.goto(f"{base}{path}")
        banner = _banner(page)
        expect(banner).to_contain_text(f"Break-glass is open for patient {NEURO_PATIENT} until {until} UTC")
        countdown = banner.locator("[data-countdown]")
        expect(countdown).to_have_text(COUNTDOWN)
        first = _seconds(countdown.inner_text())
        assert 14 * 60 < first <= 15 * 60 + 1
        if name == "ask":  # counting down: once is proof enough
            page.wait_for_timeout(2_100)
            assert _seconds(countdown.inner_text()) < first
        shot(page, f"breakglass-banner-{name}")
    expect(page.get_by_test_id("sessions").locator("tbody tr")).to_have_count(1)

    answered = _ask(page, base)
    expect(answered).to_have_attribute("data-status", "answered")
    expect(answered.locator("table tbody td")).to_have_text([gender])
    expect(answered.get_by_test_id("notice")).to_contain_text(
        [f"Break-glass access is open (patient scope) until {until} UTC; this query is flagged for review."]
    )
    expect(answered.get_by_test_id("answer-facts")).to_contain_text("Purpose of use: BTG.")
    expect(_banner(page)).to_be_visible()
    shot(page, "breakglass-ask-answered")

    # End it with the banner's button, from the keyboard: it is the first control after the skip link.
    page.goto(f"{base}/?from=banner")
    end = page.get_by_role("button", name="End break-glass now")
    _tab_to(page, end, presses=2)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/?from=banner")
    expect(_banner(page)).to_have_count(0)
    session.refresh_from_db()
    assert session.end_reason == "ended"
    assert session.ended_at is not None
    expect(page.get_by_role("status").filter(has_text="ended at")).to_have_text(
        f"Break-glass for patient {NEURO_PATIENT} ended at {timezone.localtime(session.ended_at):%H:%M} UTC. "
        "1 question was asked under it; the privacy office reviews the session."
    )
    shot(page, "breakglass-ended")

    after = _ask(page, base)
    expect(after.get_by_test_id("refusal")).to_have_text(
        f"Your break-glass access to patient {NEURO_PATIENT} ended at "
        f"{timezone.localtime(session.ended_at):%H:%M} UTC, so this is no longer shown. If the emergency "
        "continues, open break-glass again with a new justification."
    )
    expect(after.locator("table")).to_have_count(0)
    page.goto(f"{base}/breakglass/")
    expect(page.get_by_test_id("sessions").locator("tbody tr").first).to_contain_text("Ended by you at")
    shot(page, "breakglass-sessions")
    assert violations == []


def test_at_expiry_the_page_reloads_without_the_banner_and_the_patient_is_refused_again(
    page: Page, live_server: LiveServer, hospital: People
) -> None:
    base = live_server.url
    violations = _watch_csp(page)
    sign_in(page, base, "dr.carter", PASSWORD)
    page.goto(f"{base}/breakglass/?patient={NEURO_PATIENT}")
    page.get_by_label("Reason").select_option("cardiac_arrest")
    page.get_by_label("Justification").fill(JUSTIFICATION)
    page.get_by_label("Minutes").fill("1")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Open break-glass").click()
    page.wait_for_url(f"{base}/ask/")
    expect(_ask(page, base)).to_have_attribute("data-status", "answered")

    # A minute is long for a test: the session is moved to end five seconds from now.
    session = BreakGlassSession.objects.get()
    BreakGlassSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() + dt.timedelta(seconds=5)
    )
    page.goto(f"{base}/")
    countdown = _banner(page).locator("[data-countdown]")
    expect(countdown).to_have_text(re.compile(r"^0:0[0-6]$"))
    shot(page, "breakglass-countdown")
    page.evaluate("window.beforeExpiry = true")

    # app.js reloads the page when the countdown reaches zero; the server no longer shows the banner.
    expect(_banner(page)).to_have_count(0, timeout=15_000)
    assert page.evaluate("window.beforeExpiry === undefined")
    expect(page.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()
    shot(page, "breakglass-expired")

    refused = _ask(page, base)
    expect(refused.get_by_test_id("refusal")).to_contain_text(
        f"Your break-glass access to patient {NEURO_PATIENT} ended at"
    )
    expect(refused.locator("table")).to_have_count(0)
    shot(page, "breakglass-expired-ask-refused")
    page.goto(f"{base}/breakglass/")
    expect(page.get_by_test_id("sessions").locator("tbody tr").first).to_contain_text("Expired at")
    assert violations == []


def test_a_wrong_password_is_refused_and_the_form_kept(
    page: Page, live_server: LiveServer, hospital: People
) -> None:
    base = live_server.url
    violations = _watch_csp(page)
    sign_in(page, base, "nurse.moreau", PASSWORD)
    page.goto(f"{base}/breakglass/")
    page.get_by_label("Reason").select_option("emergency_admission")
    page.get_by_label("Justification").fill(JUSTIFICATION)
    page.get_by_label("One care unit").check()
    expect(page.get_by_label("Patient id (subject id)")).to_be_hidden()
    page.get_by_label("Care unit", exact=True).select_option("neurology")
    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Open break-glass").click()

    expect(page.get_by_role("alert")).to_have_text(
        "Break-glass was not opened. The password is not correct; break-glass needs your own password."
    )
    expect(page.get_by_label("Reason")).to_have_value("emergency_admission")
    expect(page.get_by_label("Justification")).to_have_value(JUSTIFICATION)
    expect(page.get_by_label("One care unit")).to_be_checked()
    expect(page.get_by_label("Care unit", exact=True)).to_have_value("neurology")
    expect(page.get_by_label("Your password")).to_have_value("")
    expect(_banner(page)).to_have_count(0)
    shot(page, "breakglass-refused-password")
    assert BreakGlassSession.objects.count() == 0
    assert violations == []


def test_a_researcher_is_told_break_glass_is_for_clinical_staff(
    page: Page, live_server: LiveServer, hospital: People
) -> None:
    base = live_server.url
    violations = _watch_csp(page)
    sign_in(page, base, "res.garcia", PASSWORD)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Break-glass")).to_have_count(
        0
    )

    response = page.goto(f"{base}/breakglass/")

    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Break-glass is for clinical staff")).to_be_visible()
    expect(page.get_by_test_id("explanation")).to_contain_text(
        "Researchers, administrators and the privacy office cannot open it"
    )
    expect(page.get_by_label("Your password")).to_have_count(0)
    shot(page, "breakglass-researcher-403")
    assert violations == []
