"""Web security as a hospital's security team checks it: lockout, session expiry, CSRF, CSP, HTTPS
settings, `check --deploy`, and no patient data in the server's logs."""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults
from audit.models import AuditEvent, EventKind
from hisplatform.middleware import _SEEN, _SIGNED_IN
from hisplatform.queries import answer_sql
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, _make_people, rows_of
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"


def _sign_in(client: Client, username: str, password: str, addr: str = "10.0.0.5") -> int:
    response = client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=addr)
    return response.status_code


@pytest.mark.django_db
def test_five_failures_lock_the_username_at_that_address_even_for_the_right_password(
    cardiology_clinician: User,
) -> None:
    client = Client()
    for _ in range(4):
        assert _sign_in(client, "carla.cardio", "wrong password") == 200
    assert _sign_in(client, "carla.cardio", "wrong password") == 429
    locked = client.post(
        reverse("login"), {"username": "carla.cardio", "password": PASSWORD}, REMOTE_ADDR="10.0.0.5"
    )
    assert locked.status_code == 429
    assert b"Too many failed sign-ins for this username from this workstation" in locked.content
    assert "_auth_user_id" not in client.session
    # Every failure is in the audit trail, the refused right password too.
    assert AuditEvent.objects.filter(kind=EventKind.LOGIN_FAILED, username="carla.cardio").count() == 6

    # The same person at another workstation is not locked out by a guesser at this one.
    elsewhere = Client()
    assert _sign_in(elsewhere, "carla.cardio", PASSWORD, addr="10.0.0.99") == 302

    # After the cool-off the lock lifts.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time.replace(year=2000))
    assert _sign_in(client, "carla.cardio", PASSWORD) == 302


@pytest.mark.django_db
def test_a_success_before_the_limit_resets_the_count(cardiology_clinician: User) -> None:
    client = Client()
    for _ in range(4):
        _sign_in(client, "carla.cardio", "wrong password")
    assert _sign_in(client, "carla.cardio", PASSWORD) == 302
    client.post(reverse("logout"))
    for _ in range(4):
        _sign_in(client, "carla.cardio", "wrong password")
    assert _sign_in(client, "carla.cardio", PASSWORD) == 302


def _age_session(client: Client, key: str, seconds: float) -> None:
    session = client.session
    session[key] = time.time() - seconds
    session.save()


@pytest.mark.django_db
def test_an_idle_session_is_signed_out_with_the_reason(client: Client, cardiology_clinician: User) -> None:
    client.force_login(cardiology_clinician)
    assert client.get("/").status_code == 200
    _age_session(client, _SEEN, 31 * 60)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("login"))
    assert "You were signed out after 30 minutes without activity." in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_activity_keeps_a_session_but_not_past_a_shift(client: Client, cardiology_clinician: User) -> None:
    client.force_login(cardiology_clinician)
    client.get("/")
    _age_session(client, _SEEN, 29 * 60)
    assert client.get("/").status_code == 200
    _age_session(client, _SIGNED_IN, 8 * 3600 + 1)
    response = client.get("/", follow=True)
    assert "You were signed out at the end of your session; sign in again." in response.content.decode()


@pytest.mark.django_db
def test_forms_and_the_session_api_refuse_a_post_without_the_csrf_token(cardiology_clinician: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(cardiology_clinician)
    assert client.post(reverse("logout")).status_code == 403
    assert client.post(reverse("login"), {"username": "x", "password": "y"}).status_code == 403
    api = client.post(reverse("api-ask"), {"question": "how many patients?"}, content_type="application/json")
    assert api.status_code == 403
    assert api.json()["code"] == "forbidden"
    assert "CSRF" in api.json()["message"]


@pytest.mark.django_db
def test_every_page_carries_a_policy_without_inline_code(client: Client, cardiology_clinician: User) -> None:
    login_page = client.get(reverse("login"))
    policy = login_page["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in policy
    client.force_login(cardiology_clinician)
    assert client.get("/")["Content-Security-Policy"] == policy
    assert login_page["X-Frame-Options"] == "DENY"
    assert login_page["X-Content-Type-Options"] == "nosniff"
    assert login_page["Referrer-Policy"] == "same-origin"


# <script> with a body, inline event handlers, style attributes and <style> blocks: what CSP blocks.
_INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>\s*\S"
    r"|\son[a-z]+\s*=|\sstyle\s*=|<style[\s>]|javascript:|hx-on",
    re.IGNORECASE,
)


def test_no_template_of_ours_has_inline_script_or_style() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for match in _INLINE.finditer(path.read_text())
    ]
    assert found == []


def test_the_inline_code_scan_finds_what_csp_would_block() -> None:
    bad = ["<script>alert(1)</script>", '<a onclick="x()">', '<p style="color:red">', "<style>p{}</style>"]
    assert all(_INLINE.search(text) for text in bad)
    good = [
        '<script src="/static/a.js" defer></script>',
        '<script id="d" type="application/json">{}</script>',
    ]
    assert not any(_INLINE.search(text) for text in good)


@pytest.mark.django_db
def test_over_https_the_cookies_are_secure_and_hsts_is_sent(
    client: Client, cardiology_clinician: User
) -> None:
    response = client.post(reverse("login"), {"username": "carla.cardio", "password": PASSWORD}, secure=True)
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"]
    assert response.cookies["sessionid"]["httponly"]
    assert response.cookies["sessionid"]["samesite"] == "Lax"
    page = client.get("/", secure=True)
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert Client().get(reverse("login"), secure=True).cookies["csrftoken"]["secure"]


def _production_environment(**overrides: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(ROOT)),
        "DJANGO_SETTINGS_MODULE": "hisplatform.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "PSEUDONYM_SECRET": secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "his.hospital.example",
        "DATABASE_URL": "sqlite:////tmp/his-deploy-check.sqlite3",
        **overrides,
    }


def _check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_environment(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_under_production_settings(tmp_path: Path) -> None:
    clean = _check_deploy(HIS_VAR_DIR=str(tmp_path))
    assert clean.returncode == 0, clean.stderr
    assert "System check identified no issues" in clean.stdout
    # The check is real: turning HSTS off is caught.
    weakened = _check_deploy(HIS_VAR_DIR=str(tmp_path), SECURE_HSTS_SECONDS="0")
    assert weakened.returncode != 0
    assert "security.W004" in weakened.stderr


@pytest.fixture
def in_care_patient(sqlite_warehouse: WarehouseTarget) -> tuple[int, str, str, str]:
    """A plain patient in dr.carter's unit now, with their identity as the warehouse holds it."""
    rows = rows_of(sqlite_warehouse)(
        "SELECT t.subject_id, p.mrn, p.given_name, p.family_name FROM transfers t "
        "JOIN patient_identity p ON p.subject_id = t.subject_id "
        "JOIN care_units cu ON cu.careunit = t.careunit "
        "JOIN departments d ON d.department_id = cu.department_id "
        f"WHERE d.code = 'CARD' AND t.outtime IS NULL AND t.intime <= '{NOON:%Y-%m-%d %H:%M:%S}' "
        "AND p.vip_flag = FALSE AND p.employee_flag = FALSE ORDER BY t.subject_id LIMIT 1"
    )
    subject, mrn, given, family = rows[0]
    return int(str(subject)), str(mrn), str(given), str(family)


@pytest.fixture
def people(db: None, sqlite_warehouse: WarehouseTarget) -> People:
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()  # a flushing test before this one may have removed the shipped policy
    forget_catalogs()
    return _make_people(sqlite_warehouse)


def test_no_question_or_answer_reaches_the_server_logs(
    settings: object,
    people: People,
    sqlite_warehouse: WarehouseTarget,
    in_care_patient: tuple[int, str, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    subject, mrn, given, family = in_care_patient
    settings.WAREHOUSE_URL = sqlite_warehouse.url  # type: ignore[attr-defined]
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[attr-defined]
    question = f"what is the date of birth of patient {subject}?"
    client = Client()
    client.force_login(people["dr.carter"])
    with caplog.at_level(logging.DEBUG):
        answered = client.post(reverse("api-ask"), {"question": question}, content_type="application/json")
        named = answer_sql(
            user=people["dr.carter"],
            sql=f"SELECT mrn, given_name, family_name FROM patient_identity WHERE subject_id = {subject}",
            now=NOON,
            target=sqlite_warehouse,
        )
        refused = client.post(
            reverse("api-ask"),
            {"question": f"what is the gender of patient {mrn}?"},
            content_type="application/json",
        )
        broken = client.post(
            reverse("api-ask"), f'{{"question": "{given} {family}"', content_type="application/json"
        )
    assert answered.json()["status"] == "answered", answered.json()
    birth_date = str(answered.json()["rows"][0][0])
    assert named.status == "answered"
    assert refused.status_code == 200
    assert broken.status_code == 400
    logged = "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records)
    for secret in (question, birth_date, str(subject), mrn, given, family):
        assert secret not in logged, f"{secret!r} was logged"
