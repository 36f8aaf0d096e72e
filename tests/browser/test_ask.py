"""The Ask page in a real browser: asking from the keyboard, answers swapped in place, charts drawn, pages
of an answer, the CSV file, refusals, abstentions and the compliance prompt, and the page without
JavaScript; no script or style the policy forbids."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import PASSWORD, People
from tests.accessctl.test_matrix import _patients
from tests.browser.conftest import shot, sign_in

DAILY = "admissions per day in the last 30 days"
TURNAROUND = "average turnaround time per lab test in minutes"
# Every chart drawn: Chart.js holds a chart for the canvas, and the canvas has pixels that are not blank.
_DRAWN = """() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const chart = window.Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  return Boolean(chart) && canvas.width > 0 && pixels.some((value) => value !== 0);
})"""
_ROWS = "[data-testid=answer-table] tbody tr"
# The first question a server process answers loads the language model: seconds on a busy machine.
FIRST_ANSWER_MS = 30_000


@pytest.fixture
def watched(page: Page) -> tuple[Page, list[str]]:
    """The page, and every Content Security Policy violation its console reports."""
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return page, violations


def _open_ask(page: Page, base: str, username: str) -> None:
    sign_in(page, base, username, PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Ask").click()
    page.wait_for_url(f"{base}/ask/")
    expect(page.get_by_label("Your question")).to_be_focused()  # autofocus: type straight away


def _first_column(page: Page) -> list[str]:
    return [text.strip() for text in page.locator(f"{_ROWS} td:first-child").all_inner_texts()]


def test_a_clinician_asks_from_the_keyboard_pages_through_and_downloads_the_answer(
    watched: tuple[Page, list[str]], live_server: LiveServer, hospital: People
) -> None:
    page, violations = watched
    base = live_server.url
    _open_ask(page, base, "dr.carter")
    shot(page, "ask-clinician-empty")
    page.evaluate("() => { window.stillHere = true; }")  # kept only if the page is not reloaded
    page.keyboard.type(DAILY)
    page.keyboard.press("Control+Enter")
    results = page.locator("#results")
    expect(results.get_by_test_id("interpretation")).to_have_text(
        "Read as: Showing the number of hospital admissions per day, in the last 30 days.",
        timeout=FIRST_ANSWER_MS,
    )
    assert page.evaluate("() => window.stillHere") is True
    page.wait_for_url(f"{base}/ask/jobs/*/")  # the answer's own address, for reloading and going back
    expect(page.locator(_ROWS)).to_have_count(8)
    headings = page.locator("[data-testid=answer-table] thead th")
    expect(headings).to_have_text(["Day", "Admissions"])
    expect(headings.last).to_have_attribute("title", "COUNT(DISTINCT admissions.hadm_id)")
    page.wait_for_function(f"() => ({_DRAWN})().length === 1 && ({_DRAWN})().every(Boolean)")
    page.get_by_text("The SQL that answered it").click()
    expect(page.locator("pre.sql")).to_contain_text("SELECT")
    shot(page, "ask-clinician-line-chart")

    page.get_by_label("Your question").fill(TURNAROUND)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(results.locator("caption")).to_have_text("Rows 1 to 25 of 54")
    first_page = _first_column(page)
    assert len(first_page) == 25
    expect(page.locator("canvas[data-chart]")).to_have_count(0)  # 54 categories: no chart
    page.get_by_role("link", name="Next page").click()
    expect(results.locator("caption")).to_have_text("Rows 26 to 50 of 54")
    second_page = _first_column(page)
    assert page.evaluate("() => window.stillHere") is True
    assert page.url.endswith("?page=2")
    shot(page, "ask-clinician-page-2")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = download.value
    assert saved.suggested_filename.startswith("answer-")
    rows = list(csv.reader(io.StringIO(Path(saved.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 1 + 54
    assert [row[0] for row in rows[1:51]] == first_page + second_page
    # The history beside the form has both questions, newest first, one click each.
    history = page.get_by_test_id("history").get_by_role("button")
    expect(history).to_have_text([TURNAROUND, DAILY])
    assert violations == []


def test_a_refusal_offers_break_glass_and_an_abstention_offers_questions_to_click(
    watched: tuple[Page, list[str]],
    live_server: LiveServer,
    hospital: People,
    sqlite_warehouse: WarehouseTarget,
) -> None:
    page, violations = watched
    other = _patients(sqlite_warehouse)["other"]
    _open_ask(page, live_server.url, "dr.carter")
    page.keyboard.type(f"what is the gender of patient {other}?")
    page.keyboard.press("Control+Enter")
    refusal = page.get_by_role("alert")
    expect(refusal).to_be_visible(timeout=FIRST_ANSWER_MS)
    expect(refusal).to_have_text(
        f"You may not see this: patient {other} is outside your care relationships (or does not exist). "
        "Open break-glass access if this is an emergency."
    )
    link = page.get_by_role("link", name="Emergency? Open break-glass")
    expect(link).to_have_attribute("href", f"/breakglass/?patient={other}")
    shot(page, "ask-clinician-refused")

    page.get_by_label("Your question").fill("what is the weather today")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("abstained")).to_have_text(
        "Not answered. No kind of question the warehouse answers fits everything this question names."
    )
    shot(page, "ask-clinician-abstained")
    page.get_by_test_id("suggestions").get_by_role(
        "button", name="What are the 3 most frequently prescribed drugs?"
    ).click()
    expect(page.get_by_test_id("interpretation")).to_have_text(
        "Read as: Listing the 3 most frequent drug records."
    )
    expect(page.get_by_label("Your question")).to_have_value(
        "What are the 3 most frequently prescribed drugs?"
    )
    shot(page, "ask-clinician-suggestion-answered")
    assert violations == []


def test_special_categories_are_shown_once_the_purpose_is_confirmed(
    watched: tuple[Page, list[str]],
    live_server: LiveServer,
    hospital: People,
    sqlite_warehouse: WarehouseTarget,
) -> None:
    page, violations = watched
    special = _patients(sqlite_warehouse)["special"]
    _open_ask(page, live_server.url, "dr.carter")
    page.keyboard.type(f"what was the name of the diagnosis that patient {special} received last?")
    page.get_by_role("button", name="Ask", exact=True).click()
    prompt = page.get_by_test_id("confirm-prompt")
    expect(prompt).to_be_visible(timeout=FIRST_ANSWER_MS)
    expect(prompt.get_by_test_id("category")).to_have_text(
        ["genetics", "HIV", "psychiatry", "reproductive health", "substance use"]
    )
    expect(page.locator(_ROWS)).to_have_count(0)
    expect(prompt.get_by_label("The purpose you confirm")).to_have_value("TREAT")
    shot(page, "ask-clinician-confirm-purpose")
    prompt.get_by_role("button", name="Confirm and show the answer").click()
    expect(page.locator(_ROWS).first).to_be_visible()
    expect(page.get_by_test_id("confirm-prompt")).to_have_count(0)
    expect(page.get_by_test_id("interpretation")).to_have_text(
        f"Read as: Showing the last diagnosis of patient {special}."
    )
    shot(page, "ask-clinician-confirmed")
    assert violations == []


@pytest.mark.parametrize(
    ("username", "example", "check"),
    [
        ("admin.walsh", "admissions per month this year", "administrator"),
        ("res.garcia", "average age by gender", "researcher"),
    ],
)
def test_an_example_question_is_answered_as_the_role_may_see_it(
    watched: tuple[Page, list[str]],
    live_server: LiveServer,
    hospital: People,
    username: str,
    example: str,
    check: str,
) -> None:
    page, violations = watched
    _open_ask(page, live_server.url, username)
    page.get_by_test_id("examples").get_by_role("button", name=example, exact=True).click()
    expect(page.get_by_label("Your question")).to_have_value(example)
    expect(page.locator(_ROWS).first).to_be_visible(timeout=FIRST_ANSWER_MS)
    page.wait_for_function(f"() => ({_DRAWN})().length === 1 && ({_DRAWN})().every(Boolean)")
    checks: dict[str, Callable[[], None]] = {
        "administrator": lambda: _administrator(page),
        "researcher": lambda: _researcher(page),
    }
    checks[check]()
    shot(page, f"ask-{check}-{example.replace(' ', '-')}")
    assert violations == []


def _administrator(page: Page) -> None:
    expect(page.get_by_test_id("suppressed")).to_have_text(
        "Withheld: 7 groups of 1 to 10 patients (small cells), shown as “<11”."
    )
    expect(page.locator(f"{_ROWS} td", has_text="<11")).to_have_count(7)
    expect(page.get_by_test_id("sql")).to_have_count(0)  # administrators are not shown the SQL


def _researcher(page: Page) -> None:
    expect(page.get_by_test_id("answer-facts")).to_contain_text("Research project: RP-2026-014.")
    expect(page.locator(_ROWS)).to_have_count(2)
    expect(page.get_by_label("Fresh pseudonyms for this file")).not_to_be_checked()


def test_the_page_works_without_javascript(
    browser: Browser, live_server: LiveServer, hospital: People
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "dr.carter", PASSWORD)
        page.goto(f"{live_server.url}/ask/")
        page.get_by_label("Your question").fill(TURNAROUND)
        page.get_by_role("button", name="Ask", exact=True).click()
        page.wait_for_url(f"{live_server.url}/ask/jobs/*/", timeout=FIRST_ANSWER_MS)
        expect(page.locator("caption")).to_have_text("Rows 1 to 25 of 54")
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url("**/?page=2")
        expect(page.locator("caption")).to_have_text("Rows 26 to 50 of 54")
        expect(page.get_by_label("Your question")).to_have_value(TURNAROUND)
        shot(page, "ask-no-javascript-page-2")
        page.get_by_test_id("history").get_by_role("button", name=TURNAROUND).click()
        page.wait_for_url(f"{live_server.url}/ask/jobs/*/")
        expect(page.locator("caption")).to_have_text("Rows 1 to 25 of 54")
    finally:
        context.close()


@pytest.mark.parametrize("username", ["nurse.patel", "head.nguyen"])
def test_a_nurse_and_a_department_head_ask_about_their_ward(
    watched: tuple[Page, list[str]], live_server: LiveServer, hospital: People, username: str
) -> None:
    page, violations = watched
    _open_ask(page, live_server.url, username)
    page.get_by_label("Your question").fill("how many patients are currently admitted?")
    page.keyboard.press("Control+Enter")
    expect(page.locator(_ROWS)).to_have_count(1, timeout=FIRST_ANSWER_MS)
    count = int(_first_column(page)[0])
    assert count > 0
    expect(page.get_by_test_id("sql")).to_have_count(1)  # clinical roles see the SQL that answered
    shot(page, f"ask-{username}-census")
    assert violations == []
