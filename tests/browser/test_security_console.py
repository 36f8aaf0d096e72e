"""The privacy officer's journey through the security console in a real browser, the triage form by
keyboard alone, and a clinician turned away."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.cache import cache
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from accessctl.models import BreakGlassSession
from audit.models import Alert, AuditEvent, EventKind, EventStatus
from audit.reports import previous_week_start
from audit.services import audit_record
from tests.accessctl.conftest import PASSWORD, People
from tests.browser.conftest import shot, sign_in

REASON = "Opened a VIP patient's record (patient 10023) with no care-team link"


@pytest.fixture
def cases(hospital: People) -> dict[str, int]:
    """An alert about dr.carter over two of her questions, and nurse.patel's ended break-glass session."""
    cache.clear()  # no verification left over from another test in this process
    carter, patel = hospital["dr.carter"], hospital["nurse.patel"]
    now = dt.datetime.now(dt.UTC)
    opened = now - dt.timedelta(hours=3)
    session = BreakGlassSession.objects.create(
        user=patel, username="nurse.patel", role="nurse", reason_code="unconscious",
        justification="Brought in unresponsive, no history available.", scope="patient", subject_id=10023,
        opened_at=opened, expires_at=opened + dt.timedelta(minutes=30),
        ended_at=opened + dt.timedelta(minutes=20), end_reason="ended", queries=1,
    )  # fmt: skip
    seqs = [
        audit_record(
            user=carter, kind=EventKind.QUESTION, status=EventStatus.ANSWERED, purpose_of_use="TREAT",
            question=question, patients_touched=[10023], tables_touched=["patients"],
        ).seq
        for question in ("What is the date of birth of patient 10023?", "Which ward is patient 10023 on?")
    ]  # fmt: skip
    audit_record(
        user=patel, kind=EventKind.QUESTION, status=EventStatus.ANSWERED, purpose_of_use="ETREAT",
        question="Allergies of patient 10023", patients_touched=[10023], breakglass_session_id=session.pk,
    )  # fmt: skip
    alert = Alert.objects.create(
        username="dr.carter", user_id=carter.pk, role="clinician", day=now.date(), created_at=now,
        updated_at=now, risk=96.0, summary=REASON,
        reasons=[{"code": "vip", "text": REASON, "value": 1, "peer_median": 0, "weight": 1}],
        first_event_at=now, last_event_at=now, event_seqs=seqs,
    )  # fmt: skip
    return {"alert": alert.pk, "session": session.pk}


def test_the_officer_works_through_every_page_of_the_console(
    page: Page, live_server: LiveServer, cases: dict[str, int]
) -> None:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, live_server.url, "sec.ito", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security console").click()
    console = page.get_by_role("navigation", name="Security console")
    expect(console.get_by_role("link", name="Alerts")).to_have_attribute("aria-current", "page")
    queue = page.get_by_test_id("alert-queue")
    expect(queue.locator("tbody tr")).to_have_count(1)
    expect(queue).to_contain_text(REASON)
    expect(queue).to_contain_text("risk 96")
    shot(page, "security-alerts")

    # The alert, triaged by keyboard alone: choose a move, an assignee, write the note, submit.
    queue.get_by_role("link", name="dr.carter").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alert")
    expect(page.get_by_test_id("alert-events").locator("tbody tr")).to_have_count(2)
    shot(page, "security-alert")
    page.get_by_label("Move to").focus()
    page.keyboard.type("Inv")  # a closed select takes type-ahead: "Investigating (acknowledge, or reopen)"
    page.keyboard.press("Tab")
    expect(page.get_by_label("Assign to")).to_be_focused()
    page.keyboard.type("Kenji")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Note", exact=True)).to_be_focused()
    page.keyboard.type("Checking the ward rota for a consult request.")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Save triage")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="is investigating")).to_have_text(
        f"Alert {cases['alert']} is investigating, assigned to sec.ito."
    )
    expect(page.get_by_test_id("alert-state")).to_have_text("Investigating")
    expect(page.get_by_test_id("alert-notes")).to_contain_text(
        "Checking the ward rota for a consult request."
    )
    # A conclusion without a note is refused, and the page says why.
    page.get_by_label("Move to").select_option("false_positive")
    page.get_by_role("button", name="Save triage").click()
    expect(page.get_by_test_id("triage-error")).to_have_text(
        "Say what the investigation found; the note is kept with the alert."
    )
    shot(page, "security-alert-triage-refused")

    # The audit search, by user, then one event.
    console.get_by_role("link", name="Audit search").click()
    page.get_by_label("Username").fill("dr.carter")
    page.get_by_label("Kind").select_option("question")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("result-count")).to_have_text("2 events")
    shot(page, "security-search")
    page.get_by_test_id("search-results").get_by_role("link").first.click()
    expect(page.get_by_test_id("event-question")).to_have_text("Which ward is patient 10023 on?")
    shot(page, "security-event")

    # Break-glass review: the session's queries, then the review.
    console.get_by_role("link", name="Break-glass reviews").click()
    item = page.get_by_test_id("review-item")
    expect(item).to_contain_text("Brought in unresponsive, no history available.")
    shot(page, "security-breakglass")
    item.get_by_role("link", name="1 query under this session").click()
    expect(page.get_by_test_id("result-count")).to_have_text("1 event")
    page.go_back()
    item.get_by_label("Appropriate", exact=True).check()
    item.get_by_label("What the review found").fill("Admitted unconscious from the emergency department.")
    item.get_by_role("button", name=re.compile("Record review")).click()
    expect(page.get_by_role("status").filter(has_text="reviewed as")).to_have_text(
        f"Break-glass session {cases['session']} by nurse.patel reviewed as appropriate."
    )
    expect(page.get_by_test_id("review-count")).to_have_text("0 sessions awaiting review.")
    shot(page, "security-breakglass-reviewed")

    # The chain: verify now.
    console.get_by_role("link", name="Chain").click()
    expect(page.get_by_test_id("chain-verdict")).to_have_text("Not verified from the console yet.")
    page.get_by_role("button", name="Verify now").click()
    expect(page.get_by_test_id("chain-verdict")).to_contain_text("INTACT. Audit chain intact:")
    expect(page.get_by_test_id("chain-verified-by")).to_contain_text("asked for by sec.ito.")
    shot(page, "security-chain")

    # Reports: last week by default, downloadable as text.
    console.get_by_role("link", name="Reports").click()
    monday = previous_week_start()
    expect(page.get_by_role("heading", level=2)).to_have_text(
        f"Week of {monday:%a} {monday.day} {monday:%b %Y} (UTC)"
    )
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as text").click()
    assert download.value.suggested_filename == f"privacy-weekly-report-{monday.isoformat()}.txt"
    shot(page, "security-reports")

    # Disclosures for the patient: three answers showed their data.
    console.get_by_role("link", name="Disclosures").click()
    page.get_by_label("Patient (subject id)").fill("10023")
    page.get_by_role("button", name="Show disclosures").click()
    expect(page.get_by_test_id("disclosures-count")).to_have_text("3 disclosures of patient 10023")
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="Download as CSV").click()
    assert csv_download.value.suggested_filename == "disclosures-patient-10023.csv"
    shot(page, "security-disclosures")
    page.get_by_label("Since (optional)").fill("2026-11-20")
    page.get_by_label("Until (optional, included)").fill("2026-11-10")
    page.get_by_role("button", name="Show disclosures").click()
    expect(page.get_by_test_id("disclosures-error")).to_have_text(
        "The range is empty: since 2026-11-20 is after until 2026-11-10."
    )

    assert violations == []
    reads = AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS, username="sec.ito")
    assert reads.filter(status="ok").count() >= 12
    assert set(reads.values_list("user_agent", flat=True)) != {""}


def test_a_clinician_is_turned_away(page: Page, live_server: LiveServer, hospital: People) -> None:
    sign_in(page, live_server.url, "dr.carter", PASSWORD)
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Security console")
    ).to_have_count(0)
    response = page.goto(f"{live_server.url}/security/search/?user=sec.ito")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("navigation", name="Security console")).to_have_count(0)
    shot(page, "security-refused-clinician")
    refused = AuditEvent.objects.get(kind=EventKind.AUDIT_ACCESS, username="dr.carter")
    assert (refused.status, refused.message) == ("denied", "refused: security console audit search")
