"""The administrator's dashboards in a real browser: charts drawn, the range changed from the keyboard
and the figures swapped in place, no script or style the policy forbids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.accessctl.conftest import PASSWORD, People
from tests.browser.conftest import shot, sign_in

# Every chart drawn: Chart.js holds a chart for the canvas, and the canvas has pixels that are not blank.
_DRAWN = """() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const chart = window.Chart.getChart(canvas);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  return Boolean(chart) && canvas.width > 0 && pixels.some((value) => value !== 0);
})"""


@pytest.fixture
def us_page(browser: Browser) -> Iterator[Page]:
    """A page whose date inputs read month/day/year, as the keyboard steps below type them."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_administrator_sees_the_charts_and_changes_the_range_from_the_keyboard(
    us_page: Page, live_server: LiveServer, hospital: People
) -> None:
    page = us_page
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, live_server.url, "admin.walsh", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboards").click()
    page.wait_for_url(f"{live_server.url}/dashboards/")
    expect(page.get_by_role("heading", name="Dashboards", level=1)).to_be_visible()
    expect(page.get_by_test_id("range-shown")).to_contain_text("2026-10-27 to 2026-11-25, time series by day")
    # A chart for each figure with something to draw (the census of this small hospital has not).
    charts = page.locator("canvas[data-chart]")
    expect(page.locator("section[data-figure=census]")).to_contain_text("Nothing to chart")
    expect(page.locator("section[data-figure=census]")).to_contain_text("under 11 patients hidden")
    assert charts.count() >= 1
    assert page.evaluate(_DRAWN) == [True] * charts.count()
    shot(page, "dashboards-last-30-days")

    # A marker the page keeps only if it is not reloaded: the figures are swapped in place.
    page.evaluate("() => { window.stillHere = true; }")
    page.get_by_label("From").focus()
    page.keyboard.type("11262024")
    # On through "To" (left as it is; each part of a date is a stop of its own) to the select.
    by = page.get_by_label("Time series by")
    for _ in range(6):
        page.keyboard.press("Tab")
        if by.evaluate("(element) => element === document.activeElement"):
            break
    expect(by).to_be_focused()
    page.keyboard.press("End")  # the last choice: Month
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Show figures")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("range-shown")).to_contain_text(
        "2024-11-26 to 2026-11-25, time series by month"
    )
    assert page.evaluate("() => window.stillHere") is True
    assert page.url == f"{live_server.url}/dashboards/?start=2024-11-26&end=2026-11-25&by=month"
    expect(page.locator("section[data-figure=flow] table th").first).to_have_text("Month")
    expect(page.locator("section[data-figure] canvas[data-chart]")).to_have_count(4)
    for key in ("flow", "los", "labs", "diagnoses"):
        expect(page.locator(f"section[data-figure={key}] canvas[data-chart]")).to_have_count(1)
    # app.js draws the swapped-in charts once htmx has settled them.
    page.wait_for_function(f"() => ({_DRAWN})().every(Boolean)")
    assert page.evaluate(_DRAWN) == [True] * 4
    expect(page.get_by_role("button", name="Show figures")).to_be_focused()
    shot(page, "dashboards-two-years-by-month")
    assert violations == []
