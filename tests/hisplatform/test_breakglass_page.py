"""The break-glass page, its banner and ending it early, through Django's test client on the demo hospital."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from typing import Any

import pytest
from django.http.response import HttpResponseBase
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from accessctl.models import BreakGlassSession, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import breakglass_end, policy_load_defaults
from audit.models import AuditEvent
from hisplatform.breakglass_selectors import breakglass_care_units
from hisplatform.models import Role, StaffProfile
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from tests.accessctl.conftest import NOON, PASSWORD, People, _make_people, rows_of
from tests.conftest import SHARED
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# In neurology at NOON, never in a cardiology unit nor on dr.carter's care team: outside his care.
NEURO_PATIENT = 11119654
JUSTIFICATION = "Collapsed on the stairs outside neurology; I am the nearest physician."
URL = "/breakglass/"
END_URL = "/breakglass/end/"
WARNING = "Every query you make under break-glass is flagged and reviewed by the privacy office."
BANNER = 'role="region" aria-label="Break-glass access"'


@pytest.fixture
def people(settings: SettingsWrapper, sqlite_warehouse: WarehouseTarget) -> People:
    """The demo staff, with the site reading the SQLite demo hospital as of noon on its reference day
    (break-glass itself runs on the clock: it opens now and expires in real minutes)."""
    if not PolicyRule.objects.exists():
        policy_load_defaults()
    forget_catalogs()
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")
    return _make_people(sqlite_warehouse)


def _client(people: People, username: str) -> Client:
    client = Client(HTTP_USER_AGENT="pytest-browser/1.0")
    client.force_login(people[username])
    return client


def _form(**overrides: str) -> dict[str, str]:
    data = {
        "reason": "unconscious",
        "justification": JUSTIFICATION,
        "scope": "patient",
        "subject_id": str(NEURO_PATIENT),
        "careunit": "",
        "minutes": "30",
        "password": PASSWORD,
    }
    data.update(overrides)
    return data


def _text(response: HttpResponseBase) -> str:
    content: bytes = getattr(response, "content", b"")
    return html.unescape(content.decode())


def _hhmm(moment: dt.datetime) -> str:
    return f"{timezone.localtime(moment):%H:%M}"


def _refusal(response: Any) -> str:
    found = re.search(
        r'<div class="refusal" role="alert" data-testid="refusal">(.*?)</div>', _text(response), re.S
    )
    assert found, "no refusal box"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def _field_errors(response: Any) -> dict[str, str]:
    return dict(re.findall(r'<p class="error" id="id_(\w+)_error">(.*?)</p>', _text(response)))


def _ask(client: Client, subject_id: int) -> dict[str, Any]:
    response = client.post(
        "/api/v1/ask",
        {"question": f"what is the gender of patient {subject_id}?"},
        content_type="application/json",
    )
    body: dict[str, Any] = response.json()
    return body


def _open(client: Client, **overrides: str) -> BreakGlassSession:
    response = client.post(URL, _form(**overrides))
    assert response.status_code == 302, _text(response)
    session = BreakGlassSession.objects.order_by("-pk").first()
    assert session is not None
    return session


# --- The form -------------------------------------------------------------------------------------------


def test_a_clinician_is_shown_the_warning_and_the_form(
    people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    response = _client(people, "dr.carter").get(URL)

    assert response.status_code == 200
    page = _text(response)
    assert WARNING in page
    assert "more than 3 uses in 7 days are escalated" in page
    assert re.findall(r'<option value="(\w+)"', page.split('id="id_reason"')[1].split("</select>")[0]) == [
        "cardiac_arrest",
        "unconscious",
        "emergency_admission",
        "covering",
        "other_emergency",
    ]
    assert '<option value="cardiac_arrest">Cardiac or respiratory arrest</option>' in page
    assert "At least 20 characters: what the emergency is and why you need these data." in page
    assert (
        '<input type="radio" name="scope" value="patient" id="id_scope_patient" data-scope-choice checked>'
        in page
    )
    assert '<label for="id_subject_id">Patient id (subject id)</label>' in page
    # Every unit the warehouse's transfers know, grouped by department.
    units = re.findall(r'<option value="([^"]+)"', page.split('id="id_careunit"')[1].split("</select>")[0])
    truth = rows_of(sqlite_warehouse)("SELECT DISTINCT careunit FROM transfers WHERE careunit IS NOT NULL")
    assert len(units) == len(truth) == 30
    assert set(units) == {str(row[0]) for row in truth}
    assert '<optgroup label="Cardiology"><option value="cardiac surgery">cardiac surgery</option>' in page
    assert 'name="minutes" min="1" max="60" step="1" required value="30"' in page
    assert "30 unless you change it, at most 60." in page
    assert '<input type="password" id="id_password" name="password" autocomplete="current-password"' in page
    assert "You have not opened break-glass." in page
    assert 'data-testid="refusal"' not in page


def test_the_ask_page_link_fills_in_the_patient(people: People) -> None:
    client = _client(people, "nurse.moreau")
    page = _text(client.get(f"{URL}?patient={NEURO_PATIENT}"))
    assert f'name="subject_id" inputmode="numeric" autocomplete="off" value="{NEURO_PATIENT}"' in page
    # Anything but a number is ignored, not echoed.
    page = _text(client.get(f"{URL}?patient=%3Cscript%3E"))
    assert 'autocomplete="off" value=""' in page
    assert "<script>" not in page


@pytest.mark.parametrize("username", ["res.garcia", "admin.walsh", "sec.ito"])
def test_other_roles_are_told_break_glass_is_for_clinical_staff(people: People, username: str) -> None:
    client = _client(people, username)
    response = client.get(URL)
    assert response.status_code == 403
    page = _text(response)
    assert "<h1>Break-glass is for clinical staff</h1>" in page
    assert "Researchers, administrators and the privacy office cannot open it" in page
    assert 'href="/breakglass/"' not in page  # the navigation does not offer it
    assert 'name="password"' not in page

    # A posted attempt is refused by the service and recorded.
    response = client.post(URL, _form())
    assert response.status_code == 403
    assert _refusal(response) == (
        "Break-glass was not opened. Break-glass is for clinical staff; researchers, administrators and "
        "the privacy office cannot open it."
    )
    event = AuditEvent.objects.filter(kind="breakglass_open").get()
    assert (event.status, event.username, event.details["code"]) == ("denied", username, "role")
    assert event.details["subject_id"] == NEURO_PATIENT
    assert BreakGlassSession.objects.count() == 0


def test_the_security_officer_is_pointed_to_the_reviews(people: People) -> None:
    assert 'the <a href="/security/">security console</a>' in _text(_client(people, "sec.ito").get(URL))


def test_an_account_without_a_profile_cannot_open_it(people: People) -> None:
    client = Client()
    client.force_login(UserFactory.create(username="no.profile"))
    assert client.get(URL).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(people: People) -> None:
    response = Client().get(URL)
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/breakglass/")
    assert Client().post(END_URL, {"session": "1"}).status_code == 302


# --- Opening --------------------------------------------------------------------------------------------


def test_opening_goes_to_the_ask_page_saying_what_is_open_until_when(
    people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    gender = rows_of(sqlite_warehouse)(f"SELECT gender FROM patients WHERE subject_id = {NEURO_PATIENT}")
    client = _client(people, "dr.carter")
    before = _ask(client, NEURO_PATIENT)
    assert (before["status"], before["code"]) == ("denied", "out_of_scope")

    response = client.post(URL, _form(minutes="20"))

    assert (response.status_code, response["Location"]) == (302, "/ask/")
    session = BreakGlassSession.objects.get()
    assert (session.username, session.scope, session.subject_id, session.careunit, session.reason_code) == (
        "dr.carter",
        "patient",
        NEURO_PATIENT,
        "",
        "unconscious",
    )
    assert session.expires_at - session.opened_at == dt.timedelta(minutes=20)
    event = AuditEvent.objects.get(kind="breakglass_open")
    assert (event.status, event.client_addr, event.user_agent) == ("ok", "127.0.0.1", "pytest-browser/1.0")

    home = _text(client.get("/"))
    assert (
        f"Break-glass is open for patient {NEURO_PATIENT} until {_hhmm(session.expires_at)} UTC "
        "(20 minutes). Every question you ask now is flagged and reviewed by the privacy office."
    ) in home
    during = _ask(client, NEURO_PATIENT)
    assert (during["status"], during["purpose"], during["rows"]) == ("answered", "BTG", [list(gender[0])])
    session.refresh_from_db()
    assert session.queries == 1


def test_unit_scope_names_a_unit_and_ignores_the_patient_field(people: People) -> None:
    client = _client(people, "nurse.patel")
    response = client.post(URL, _form(scope="unit", careunit="medicine/cardiology", minutes="60"))
    assert response.status_code == 302
    session = BreakGlassSession.objects.get()
    assert (session.scope, session.careunit, session.subject_id) == ("unit", "medicine/cardiology", None)
    assert "Break-glass is open for unit medicine/cardiology until" in _text(client.get("/"))


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        pytest.param(
            {"password": "not my password"},
            403,
            "The password is not correct; break-glass needs your own password.",
            id="wrong-password",
        ),
        pytest.param(
            {"justification": "   patient collapsed!!   "},
            400,
            "Write at least 20 characters saying what the emergency is; a reviewer reads it.",
            id="short-justification",
        ),
        pytest.param(
            {"scope": "ward", "careunit": "neurology"},
            400,
            "Break-glass is scoped to one patient or one unit.",
            id="bad-scope",
        ),
        pytest.param(
            {"subject_id": "99999999"},
            400,
            "There is no patient 99999999 in the warehouse.",
            id="unknown-patient",
        ),
        pytest.param(
            {"scope": "unit", "careunit": "rooftop helipad"},
            400,
            "There is no unit 'rooftop helipad' in the warehouse.",
            id="unknown-unit",
        ),
        pytest.param(
            {"reason": "hunch"},
            400,
            "Choose a reason from the list (cardiac_arrest, unconscious, emergency_admission, covering, "
            "other_emergency).",
            id="unknown-reason",
        ),
        pytest.param({"minutes": "61"}, 400, "Break-glass lasts between 1 and 60 minutes.", id="61-minutes"),
        pytest.param({"minutes": "0"}, 400, "Break-glass lasts between 1 and 60 minutes.", id="0-minutes"),
    ],
)
def test_a_refusal_shows_the_services_message_and_keeps_the_form(
    people: People, overrides: dict[str, str], status: int, message: str
) -> None:
    response = _client(people, "dr.carter").post(URL, _form(**overrides))

    assert response.status_code == status
    assert _refusal(response) == f"Break-glass was not opened. {message}"
    page = _text(response)
    data = _form(**overrides)
    assert f">{data['justification']}</textarea>" in page
    assert f'autocomplete="off" value="{data["subject_id"]}"' in page
    assert f'name="minutes" min="1" max="60" step="1" required value="{data["minutes"]}"' in page
    if data["reason"] == "unconscious":
        assert '<option value="unconscious" selected>' in page
    if data["scope"] in ("patient", "unit"):
        assert f'value="{data["scope"]}" id="id_scope_{data["scope"]}" data-scope-choice checked>' in page
    # The password is never sent back.
    assert data["password"] not in page
    assert PASSWORD not in page
    assert BreakGlassSession.objects.count() == 0
    event = AuditEvent.objects.get(kind="breakglass_open")
    assert (event.status, event.message) == ("denied", message)


def test_nobody_opens_break_glass_on_their_own_record(
    people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    staff_id, own_record = (
        int(str(value))
        for value in rows_of(sqlite_warehouse)(
            "SELECT staff_id, subject_id FROM patient_identity WHERE staff_id IS NOT NULL ORDER BY staff_id"
        )[0]
    )
    user = UserFactory.create(username="dr.patient")
    StaffProfile.objects.create(user=user, role=Role.CLINICIAN, department="CARD", staff_id=staff_id)
    client = Client()
    client.force_login(user)

    response = client.post(URL, _form(subject_id=str(own_record)))

    assert response.status_code == 403
    assert _refusal(response) == "Break-glass was not opened. Break-glass cannot open your own record."
    assert BreakGlassSession.objects.count() == 0


def test_missing_and_malformed_fields_get_field_messages(people: People) -> None:
    client = _client(people, "dr.carter")
    response = client.post(URL, {"scope": "patient", "subject_id": "12ab", "minutes": "half an hour"})

    assert response.status_code == 400
    assert "Break-glass was not opened: correct the 5 fields marked below." in _text(response)
    assert _field_errors(response) == {
        "reason": "Choose the reason for break-glass.",
        "justification": "Say what the emergency is; a reviewer reads it.",
        "subject_id": "A patient id is a positive whole number: the patient's subject id.",
        "minutes": "The duration is a whole number of minutes (1 to 60).",
        "password": "Enter your password: break-glass asks for it again.",
    }
    page = _text(response)
    assert (
        'autocomplete="off" value="12ab" aria-invalid="true" aria-describedby="id_subject_id_error"' in page
    )

    response = client.post(URL, _form(subject_id=""))
    assert _field_errors(response) == {
        "subject_id": "Enter the patient's id (subject id) for one-patient break-glass."
    }
    response = client.post(URL, _form(scope="unit", careunit=""))
    assert _field_errors(response) == {"careunit": "Choose the care unit for unit break-glass."}
    response = client.post(URL, _form(scope="", subject_id="-5", minutes=""))
    assert _field_errors(response) == {
        "scope": "Choose one patient or one care unit.",
        "subject_id": "A patient id is a positive whole number: the patient's subject id.",
        "minutes": "Say for how many minutes (1 to 60).",
    }
    response = client.post(URL, _form(subject_id="9" * 5000, justification="x" * 4001))
    assert response.status_code == 400
    assert _field_errors(response) == {
        "subject_id": "A patient id is a positive whole number: the patient's subject id.",
        "justification": "Keep the justification under 4,000 characters.",
    }
    # A form that is not complete is not an attempt: nothing reached the service.
    assert AuditEvent.objects.filter(kind="breakglass_open").count() == 0
    assert BreakGlassSession.objects.count() == 0


# --- The banner, the list, ending early -----------------------------------------------------------------


def test_the_banner_is_on_every_page_while_open(people: People) -> None:
    client = _client(people, "dr.carter")
    assert BANNER not in _text(client.get("/"))
    session = _open(client)

    for path in ("/", URL, "/no-such-page"):
        page = _text(client.get(path))
        assert BANNER in page, path
        banner = page.split(BANNER)[1].split("</div>")[0]
        assert (
            f"<strong>Break-glass is open</strong> for patient {NEURO_PATIENT} until "
            f"{_hhmm(session.expires_at)} UTC; time left:"
        ) in banner
        left = re.search(r'time left: <span data-countdown="(\d+)">(\d+)\s+minutes</span>\.', banner)
        assert left, banner
        # 30 minutes less the moments since opening; one second more, so the reload lands after expiry.
        assert 1790 <= int(left.group(1)) <= 1801
        assert left.group(2) in ("29", "30")
        assert f'<input type="hidden" name="session" value="{session.pk}">' in banner
        assert f'<input type="hidden" name="next" value="{path}">' in banner
        assert '<button type="submit">End break-glass now</button>' in banner
        assert 'name="csrfmiddlewaretoken"' in banner

    page = _text(client.get(URL))
    assert f"Break-glass is already open for patient {NEURO_PATIENT} until" in page
    row = page.split('data-testid="sessions"')[1].split("</tr>")[1]
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells == [
        f"{timezone.localtime(session.opened_at):%Y-%m-%d %H:%M} UTC",
        "Unconscious or unable to communicate",
        f"patient {NEURO_PATIENT}",
        "30",
        f"Open until {_hhmm(session.expires_at)} UTC",
        "0",
        "Awaiting review",
    ]


def test_the_last_minute_is_counted_in_seconds(people: People) -> None:
    client = _client(people, "dr.carter")
    session = _open(client)
    BreakGlassSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() + dt.timedelta(seconds=40)
    )
    banner = _text(client.get("/")).split(BANNER)[1]
    left = re.search(r'time left: <span data-countdown="(\d+)">(\d+) seconds</span>\.', banner)
    assert left
    assert 38 <= int(left.group(2)) <= 40
    assert int(left.group(1)) == int(left.group(2)) + 1


def test_ending_early_goes_back_to_the_page_and_removes_the_banner(people: People) -> None:
    client = _client(people, "dr.carter")
    session = _open(client)
    assert _ask(client, NEURO_PATIENT)["status"] == "answered"

    response = client.post(END_URL, {"session": str(session.pk), "next": "/?from=banner"})

    assert (response.status_code, response["Location"]) == (302, "/?from=banner")
    session.refresh_from_db()
    assert session.ended_at is not None
    assert session.end_reason == "ended"
    page = _text(client.get("/?from=banner"))
    assert BANNER not in page
    assert (
        f"Break-glass for patient {NEURO_PATIENT} ended at {_hhmm(session.ended_at)} UTC. "
        "1 question was asked under it; the privacy office reviews the session."
    ) in page
    after = _ask(client, NEURO_PATIENT)
    assert (after["status"], after["code"], after["rows"]) == ("denied", "breakglass_expired", [])
    row = _text(client.get(URL)).split('data-testid="sessions"')[1].split("</tr>")[1]
    assert f"Ended by you at {_hhmm(session.ended_at)} UTC" in row
    assert '<td class="num">1</td>' in row

    # Pressed again from a page loaded before: said plainly, nothing happens.
    response = client.post(END_URL, {"session": str(session.pk), "next": "/"}, follow=True)
    assert f"This break-glass session already ended at {session.ended_at:%Y-%m-%d %H:%M} UTC." in _text(
        response
    )


def test_nobody_ends_someone_elses_session(people: People) -> None:
    session = _open(_client(people, "dr.carter"))
    other = _client(people, "dr.okafor")

    response = other.post(END_URL, {"session": str(session.pk), "next": "/"})

    assert response.status_code == 404
    assert _refusal(response) == "There is no such break-glass session of yours."
    session.refresh_from_db()
    assert session.ended_at is None
    event = AuditEvent.objects.filter(kind="breakglass_close").get()
    assert (event.status, event.username, event.breakglass_session_id) == ("denied", "dr.okafor", session.pk)
    for garbage in ("", "abc", "-1", "9" * 40):
        assert other.post(END_URL, {"session": garbage}).status_code == 404, garbage
    assert other.get(END_URL).status_code == 405


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        ("/ask/?q=gender", "/ask/?q=gender"),
        ("https://evil.example/phish", URL),
        ("//evil.example/phish", URL),
        ("http://testserver.evil.example/", URL),
        ("javascript:alert(1)", URL),
        ("", URL),
    ],
)
def test_ending_returns_only_to_a_page_of_this_site(people: People, next_url: str, location: str) -> None:
    client = _client(people, "dr.carter")
    session = _open(client)
    response = client.post(END_URL, {"session": str(session.pk), "next": next_url})
    assert (response.status_code, response["Location"]) == (302, location)


# --- Expiry ---------------------------------------------------------------------------------------------


def _expire(session: BreakGlassSession) -> None:
    """Move the session into the past, as if its minutes had run out."""
    now = timezone.now()
    BreakGlassSession.objects.filter(pk=session.pk).update(
        opened_at=now - dt.timedelta(minutes=31), expires_at=now - dt.timedelta(seconds=1)
    )


def test_at_expiry_the_banner_and_the_widened_access_are_gone(people: People) -> None:
    client = _client(people, "dr.carter")
    session = _open(client)
    assert _ask(client, NEURO_PATIENT)["status"] == "answered"

    _expire(session)

    page = _text(client.get("/"))
    assert BANNER not in page
    refused = _ask(client, NEURO_PATIENT)
    assert (refused["status"], refused["code"], refused["rows"]) == ("denied", "breakglass_expired", [])
    session.refresh_from_db()
    assert refused["message"] == (
        f"Your break-glass access to patient {NEURO_PATIENT} ended at {_hhmm(session.expires_at)} UTC, "
        "so this is no longer shown. If the emergency continues, open break-glass again with a new "
        "justification."
    )
    row = _text(client.get(URL)).split('data-testid="sessions"')[1].split("</tr>")[1]
    assert f"Expired at {_hhmm(session.expires_at)} UTC" in row
    # The banner of a page loaded before expiry: ending it now is refused plainly.
    response = client.post(END_URL, {"session": str(session.pk), "next": "/"}, follow=True)
    assert (
        f"This break-glass session expired at {timezone.localtime(session.expires_at):%Y-%m-%d %H:%M} UTC."
        in _text(response)
    )


def test_the_list_shows_only_ones_own_sessions_newest_first(people: People) -> None:
    carter = _client(people, "dr.carter")
    first = _open(carter)
    breakglass_end(user=people["dr.carter"], session_id=first.pk)
    second = _open(carter, scope="unit", careunit="neurology", reason="covering")
    _open(_client(people, "dr.okafor"), subject_id="13736961")

    table = _text(carter.get(URL)).split('data-testid="sessions"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", table, re.S)
    assert [(reason, scope) for _, reason, scope in rows] == [
        ("Covering for an absent colleague in an emergency", "unit neurology"),
        ("Unconscious or unable to communicate", f"patient {NEURO_PATIENT}"),
    ]
    assert second.pk != first.pk
    assert "13736961" not in table


# --- The care units offered -----------------------------------------------------------------------------


def test_units_are_offered_only_to_those_who_may_break_glass(people: People) -> None:
    groups = breakglass_care_units(fetched_by=people["nurse.patel"])
    assert [group.department for group in groups] == [
        "Cardiology",
        "Critical Care",
        "Emergency Medicine",
        "Hematology and Oncology",
        "Internal Medicine",
        "Neurology and Neurosurgery",
        "Obstetrics and Gynecology",
        "Pediatrics",
        "Psychiatry",
        "Surgery",
    ]
    assert groups[5].units == [
        "neuro intermediate",
        "neuro stepdown",
        "neuro surgical intensive care unit (neuro sicu)",
        "neurology",
    ]
    for username in ("res.garcia", "admin.walsh", "sec.ito"):
        assert breakglass_care_units(fetched_by=people[username]) == [], username


def test_a_warehouse_that_cannot_be_read_leaves_one_patient_scope(
    people: People, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'missing.sqlite3'}"
    response = _client(people, "dr.carter").get(URL)
    assert response.status_code == 200
    assert (
        "The warehouse's care units cannot be read now, so unit break-glass is not available; "
        "one patient still is."
    ) in _text(response)
    assert 'name="careunit"' not in _text(response)


def test_a_mimic_warehouse_offers_its_units_ungrouped(people: People, settings: SettingsWrapper) -> None:
    mimic = SHARED / "benchmarks" / "ehrsql" / "mimic_iv.sqlite"
    if not mimic.exists():
        pytest.skip(f"MIMIC-IV demo database not found at {mimic} (../shared is absent)")
    settings.WAREHOUSE_URL = f"sqlite:///{mimic}"
    groups = breakglass_care_units(fetched_by=people["dr.carter"])
    assert [group.department for group in groups] == [""]
    truth = execute_readonly(
        "SELECT DISTINCT careunit FROM transfers WHERE careunit IS NOT NULL ORDER BY careunit",
        target=warehouse_target(f"sqlite:///{mimic}"),
    ).rows
    assert groups[0].units == [str(row[0]) for row in truth]
    assert len(groups[0].units) > 10
    page = _text(_client(people, "dr.carter").get(URL))
    assert "<optgroup" not in page
