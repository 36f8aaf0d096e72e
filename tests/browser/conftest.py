"""A real Chromium (Debian's package) driven by Playwright against the live test server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, _make_people

CHROMIUM = Path("/usr/bin/chromium")
# No background traffic: hospital intranets, like this machine, have no route to Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module: Playwright's event loop must be gone before other tests run, or
    Django's sync/async bridge moves their queries to threads whose connections outlive the test."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread; Django's ORM in the same thread is
    # still synchronous and safe, which this flag tells Django.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


# Screenshots of every page a journey visits, kept as test artifacts under var/screenshots/.
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "var" / "screenshots")
)


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as SCREENSHOTS/NAME.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    """Sign in through the login form, as a person would, and wait for the home page."""
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


@pytest.fixture
def hospital(settings: Any, db: None, sqlite_warehouse: WarehouseTarget) -> People:
    """The demo hospital's people (DEMO_STAFF usernames, password tests.factories.PASSWORD) with the
    live server reading the seeded SQLite warehouse as of noon on its reference day."""
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()  # a flushing test before this one may have removed the shipped policy
    forget_catalogs()
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")
    return _make_people(sqlite_warehouse)
