"""seed_demo and demo_accounts: a newcomer's first run, and the messages bad arguments get."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from hisplatform.demo import DEMO_STAFF
from hisplatform.models import ResearchProject, StaffProfile


@pytest.fixture
def demo_settings(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"
    return tmp_path


def _accounts() -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("demo_accounts", "--json", stdout=out)
    accounts: list[dict[str, str]] = json.loads(out.getvalue())
    return accounts


def test_before_seeding_there_are_no_accounts(demo_settings: Path, db: None) -> None:
    assert _accounts() == []
    out = io.StringIO()
    call_command("demo_accounts", stdout=out)
    assert "run `python manage.py seed_demo` first" in out.getvalue()


@pytest.mark.slow
def test_seed_creates_the_hospital_and_an_account_for_every_role(demo_settings: Path, db: None) -> None:
    out = io.StringIO()
    call_command(
        "seed_demo", "--patients", "150", "--seed", "3", "--reference-date", "2026-11-25", stdout=out
    )
    assert "Loaded 150 patients" in out.getvalue()

    accounts = _accounts()
    assert [a["username"] for a in accounts] == [p.username for p in DEMO_STAFF]
    assert {a["role"] for a in accounts} == {
        "clinician",
        "nurse",
        "department_head",
        "researcher",
        "administrator",
        "security_officer",
    }
    assert len({a["department"] for a in accounts if a["role"] == "clinician"}) >= 2
    assert len({a["password"] for a in accounts}) == len(accounts)
    assert (demo_settings / "demo_accounts.json").stat().st_mode & 0o777 == 0o600

    # Every clinical account is linked to its warehouse staff record.
    warehouse = sqlite3.connect(demo_settings / "warehouse.sqlite3")
    staff = dict(
        warehouse.execute("SELECT username, staff_id FROM staff WHERE username IS NOT NULL").fetchall()
    )
    for profile in StaffProfile.objects.select_related("user"):
        assert profile.staff_id == staff[profile.user.username]

    researcher = next(a for a in accounts if a["role"] == "researcher")
    projects = ResearchProject.objects.filter(members__username=researcher["username"])
    active = [p.code for p in projects if p.is_active_on(dt.date(2026, 11, 25))]
    assert active == ["RP-2026-014"]

    # Separation of duties in Django admin: accounts for the administrator, the audit trail for the
    # security officer, neither for the other, and no superuser at all.
    by_role = {a["role"]: a for a in accounts}
    admin, officer = Client(), Client()
    assert admin.login(
        username=by_role["administrator"]["username"], password=by_role["administrator"]["password"]
    )
    assert officer.login(
        username=by_role["security_officer"]["username"], password=by_role["security_officer"]["password"]
    )
    assert admin.get("/admin/auth/user/").status_code == 200
    assert admin.get("/admin/audit/auditevent/").status_code == 403
    assert officer.get("/admin/audit/auditevent/").status_code == 200
    assert officer.get("/admin/auth/user/").status_code == 403
    assert not User.objects.filter(is_superuser=True).exists()

    client = Client()
    assert client.login(username=accounts[0]["username"], password=accounts[0]["password"])
    assert b'data-testid="department">Cardiology (CARD)<' in client.get("/").content


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference-date", "2026-13-01"], "expected a date as YYYY-MM-DD"),
        (["--patients", "ten"], "expected a whole number of patients"),
        (["--patients", "3"], "patients must be between 50 and 2,000,000"),
    ],
)
def test_bad_arguments_get_a_specific_message(
    demo_settings: Path, db: None, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args)
    assert not (demo_settings / "warehouse.sqlite3").exists()


def test_unreachable_postgres_warehouse_is_a_clear_error(
    settings: SettingsWrapper, demo_settings: Path, db: None
) -> None:
    settings.WAREHOUSE_URL = "postgresql://postgres@127.0.0.1:1/nowhere"
    with pytest.raises(
        CommandError, match=r"Cannot connect to PostgreSQL database nowhere on 127\.0\.0\.1:1"
    ):
        call_command("seed_demo", "--patients", "60")


def test_a_damaged_accounts_file_gets_a_clear_message(demo_settings: Path, db: None) -> None:
    (demo_settings / "demo_accounts.json").write_text("{not json")
    with pytest.raises(CommandError, match=r"cannot be read .* run `python manage\.py seed_demo`"):
        call_command("demo_accounts", "--json")


def test_an_unwritable_warehouse_folder_is_a_clear_error(
    settings: SettingsWrapper, demo_settings: Path, db: None
) -> None:
    blocker = demo_settings / "not-a-folder"
    blocker.write_text("a file where the warehouse folder should be")
    settings.WAREHOUSE_URL = f"sqlite:///{blocker / 'warehouse.sqlite3'}"
    with pytest.raises(CommandError, match="could not be"):
        call_command("seed_demo", "--patients", "60")
