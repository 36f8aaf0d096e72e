"""The REST API: every endpoint for every role and credential, one error body, pagination, throttling,
and the tokens page that mints the credentials (password again, secret shown once, revocation)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.utils import timezone
from knox.models import AuthToken
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults
from audit.models import Alert, AlertState, AuditEvent, EventKind, EventStatus
from hisplatform.api import BAD_TOKEN
from hisplatform.api_errors import exception_handler, server_error
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, _make_people
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

CURRENT = "how many patients are currently admitted?"


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    """Throttle counters live in the cache: each test starts with none used."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def people(settings: SettingsWrapper, sqlite_warehouse: WarehouseTarget) -> People:
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()
    forget_catalogs()
    settings.WAREHOUSE_URL = sqlite_warehouse.url
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")
    return _make_people(sqlite_warehouse)


def _token(user: User, **kwargs: Any) -> str:
    return str(AuthToken.objects.create(user=user, **kwargs)[1])


def _with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _alert(username: str, *, risk: float, state: str = AlertState.NEW, day: int = 0) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        username=username, role="clinician", day=NOON.date() - dt.timedelta(days=day), created_at=now,
        updated_at=now, risk=risk, summary=f"{username}: many records outside the ward", first_event_at=now,
        last_event_at=now, state=state,
        reasons=[{"code": "vip", "kind": "rule", "text": "Opened a VIP record.", "patients": [10001]}],
    )  # fmt: skip


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error body: JSON, a stable code and a message for the person."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


# ---------------------------------------------------------------- role x endpoint x credential matrix

STAFF = {
    "clinician": "dr.carter",
    "nurse": "nurse.patel",
    "department_head": "head.nguyen",
    "researcher": "res.garcia",
    "administrator": "admin.walsh",
    "security_officer": "sec.ito",
}
NO_CREDENTIAL = ("anonymous", "bad_token", "expired_token", "revoked_token")
# What each caller gets from each endpoint: HTTP status, then the answer's status or the error's code.
ASK = {"security_officer": (200, "denied")} | {
    role: (200, "answered") for role in STAFF if role != "security_officer"
}
OFFICERS_ONLY = {"security_officer": (200, "")} | {
    role: (403, "role") for role in STAFF if role != "security_officer"
}
EVERYONE = dict.fromkeys(STAFF, (200, ""))
MATRIX: dict[str, tuple[str, str, dict[str, tuple[int, str]]]] = {
    "ask": ("post", "/api/v1/ask", ASK),
    "questions": ("get", "/api/v1/questions", EVERYONE),
    "alerts": ("get", "/api/v1/alerts", OFFICERS_ONLY),
    "alert": ("get", "/api/v1/alerts/{alert}", OFFICERS_ONLY),
    "triage": ("post", "/api/v1/alerts/{alert}/triage", OFFICERS_ONLY),
    "schema": ("get", "/api/schema/", EVERYONE),
    "logout": ("delete", "/api/v1/tokens/current", dict.fromkeys(STAFF, (204, ""))),
}
BODIES = {"ask": {"question": CURRENT}, "triage": {"note": "Checked the rota: on duty that night."}}


def _caller(people: People, who: str) -> APIClient:
    if who in STAFF:
        return _with_token(_token(people[STAFF[who]]))
    if who == "anonymous":
        return APIClient()
    if who == "bad_token":
        return _with_token("0" * 64)
    if who == "expired_token":
        return _with_token(_token(people["dr.carter"], expiry=dt.timedelta(seconds=-1)))
    token, secret = AuthToken.objects.create(user=people["dr.carter"])
    token.delete()  # revoked
    return _with_token(secret)


@pytest.mark.parametrize("endpoint", MATRIX)
@pytest.mark.parametrize("who", [*STAFF, *NO_CREDENTIAL])
def test_each_caller_gets_what_its_role_allows_from_each_endpoint(
    people: People, endpoint: str, who: str
) -> None:
    method, path, expected = MATRIX[endpoint]
    alert = _alert("dr.okafor", risk=80)
    client = _caller(people, who)
    response = getattr(client, method)(path.format(alert=alert.pk), BODIES.get(endpoint), format="json")
    if who in NO_CREDENTIAL:
        code = "not_authenticated" if who == "anonymous" else "authentication_failed"
        body = _error(response, 401, code)
        assert response["WWW-Authenticate"] == "Token"
        if who != "anonymous":
            assert body["message"] == BAD_TOKEN
        return
    status, outcome = expected[who]
    assert response.status_code == status, response.content
    if status >= 400:
        assert _error(response, status, outcome)["message"] == (
            "Only the privacy office triages alerts."
            if endpoint == "triage"
            else "Only the privacy office reads alerts and break-glass reviews."
        )
    elif endpoint == "ask":
        assert response.json()["status"] == outcome


def test_every_role_is_answered_within_its_own_scope(people: People) -> None:
    counts = {}
    for role, username in STAFF.items():
        answer = _with_token(_token(people[username])).post(
            "/api/v1/ask", {"question": CURRENT}, format="json"
        )
        counts[role] = answer.json()["rows"]
    # Own patients for clinicians and nurses, the department for its head, the hospital in aggregate.
    assert counts == {
        "clinician": [[7]],
        "nurse": [[5]],
        "department_head": [[5]],
        "researcher": [[32]],
        "administrator": [[32]],
        "security_officer": [],
    }


def test_a_session_works_too_but_unsafe_methods_need_its_csrf_token(people: People) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(people["dr.carter"])
    assert browser.get("/api/v1/questions").status_code == 200
    refused = browser.post("/api/v1/ask", {"question": CURRENT}, format="json")
    assert _error(refused, 403, "forbidden")["message"].startswith("CSRF Failed")
    logout = APIClient()
    logout.force_login(people["dr.carter"])
    body = _error(logout.delete("/api/v1/tokens/current"), 400, "no_token")
    assert "Log out" in body["message"]


# ----------------------------------------------------------------------------------- the error body


@pytest.fixture
def carter(people: People) -> APIClient:
    return _with_token(_token(people["dr.carter"]))


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{", "malformed_request", "The body is not valid JSON (JSONDecodeError)."),
        (b"[" * 100_000, "malformed_request", "The body is not valid JSON (RecursionError)."),
        (b'{"question": NaN}', "malformed_request", "The body is not valid JSON (ValueError)."),
        (b'{"question": "\xff"}', "malformed_request", "The body is not valid JSON (UnicodeDecodeError)."),
        (b"[1]", "invalid_request",
         "The request is not valid: non_field_errors: Invalid data. Expected a dictionary, but got list."),
        (b'{"question": null}', "invalid_request",
         "The request is not valid: question: This field may not be null."),
        (b'{"question": "a\\u0000b"}', "invalid_request",
         "The request is not valid: question: Null characters are not allowed."),
        (b'{"question": "\\ud800"}', "invalid_request",
         "The request is not valid: question: Surrogate characters are not allowed: U+D800."),
        (b'{"question": "x", "purpose": "SPYING"}', "invalid_request",
         'The request is not valid: purpose: "SPYING" is not a valid choice.'),
        (b"{}", "invalid_request", "The request is not valid: question: This field is required."),
        # Only the JSON type the schema names: no number for a string, no string for a boolean.
        (b'{"question": 5}', "invalid_request", "The request is not valid: question: Not a valid string."),
        (b'{"question": "x", "confirm": "true"}', "invalid_request",
         "The request is not valid: confirm: Must be a valid boolean."),
        (b'{"question": "x", "purpose": 1}', "invalid_request",
         'The request is not valid: purpose: "1" is not a valid choice.'),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_that_says_what_is_wrong(
    carter: APIClient, body: bytes, code: str, message: str
) -> None:
    response = carter.post("/api/v1/ask", body, content_type="application/json")
    assert _error(response, 400, code)["message"] == message


def test_a_defect_is_a_500_in_the_same_body_without_its_details() -> None:
    response = exception_handler(RuntimeError("secret detail"), {"view": None, "request": None})
    assert response.status_code == 500
    assert response.data == {
        "code": "server_error",
        "message": "Something went wrong on our side; it has been logged.",
    }


def test_the_500_handler_answers_the_api_in_its_body_and_pages_with_the_page(rf: RequestFactory) -> None:
    api = server_error(rf.get("/api/v1/ask"))
    assert (api.status_code, json.loads(api.content)["code"]) == (500, "server_error")
    page = server_error(rf.get("/ask/"))
    assert (page.status_code, page["Content-Type"]) == (500, "text/html; charset=utf-8")


def test_an_invalid_question_is_refused_and_audited(carter: APIClient) -> None:
    body = _error(carter.post("/api/v1/ask", {"question": None}, format="json"), 400, "invalid_request")
    assert body["details"] == {"question": ["This field may not be null."]}
    event = AuditEvent.objects.get(seq=body["audit_event"])
    assert (event.kind, event.status, event.username) == (EventKind.QUESTION, EventStatus.ERROR, "dr.carter")


def test_a_body_larger_than_the_limit_is_a_413_before_it_is_parsed(carter: APIClient) -> None:
    huge = b'{"question": "' + b"x" * 3_000_000 + b'"}'
    body = _error(carter.post("/api/v1/ask", huge, content_type="application/json"), 413, "too_large")
    assert body["message"] == "The request body is larger than 2,621,440 bytes."


def test_a_question_in_any_alphabet_is_answered_or_abstained_never_a_500(carter: APIClient) -> None:
    for question in [
        "Wie viele Patienten sind aufgenommen? 🏥",
        "كم عدد المرضى",
        "患者は何人ですか",
        "",
        " " * 5000,
    ]:
        response = carter.post("/api/v1/ask", {"question": question}, format="json")
        assert response.status_code == 200, (question, response.content)
        assert response.json()["status"] in ("abstained", "answered")


def test_wrong_content_type_method_and_address_each_have_their_code(carter: APIClient) -> None:
    form = carter.post("/api/v1/ask", "question=x", content_type="application/x-www-form-urlencoded")
    assert _error(form, 415, "unsupported_media_type")["message"] == (
        'Unsupported media type "application/x-www-form-urlencoded" in request.'
    )
    assert _error(carter.get("/api/v1/ask"), 405, "method_not_allowed")["message"] == (
        "This address does not accept GET."
    )
    assert _error(carter.put("/api/v1/questions"), 405, "method_not_allowed")["message"] == (
        "This address does not accept PUT."
    )
    for path in ("/api/v1/nothing", "/api/v2/ask", "/api/v1/alerts/1234567890123456789", "/api/v1/alerts/x"):
        assert _error(carter.get(path), 404, "not_found")["message"] == "There is nothing at this address."
    _error(carter.post("/api/v1/nothing", {}, format="json"), 404, "not_found")  # not a CSRF page
    assert carter.get("/api/docs")["Location"] == "/api/docs/"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Token \xe9\xe9", BAD_TOKEN),
        ("Token abc", BAD_TOKEN),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
        ("Token", "Invalid token header. No credentials provided."),
    ],
)
def test_a_malformed_token_header_is_a_401(people: People, header: str, message: str) -> None:
    response = APIClient().get("/api/v1/questions", HTTP_AUTHORIZATION=header)
    assert _error(response, 401, "authentication_failed")["message"] == message


def test_an_inactive_account_s_token_stops_working(people: People) -> None:
    client = _with_token(_token(people["dr.carter"]))
    people["dr.carter"].is_active = False
    people["dr.carter"].save()
    body = _error(client.get("/api/v1/questions"), 401, "authentication_failed")
    assert body["message"] == "User inactive or deleted."


# ---------------------------------------------------------------------------------------- throttling


def test_questions_over_the_ask_rate_are_a_429_with_retry_after(
    carter: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DRF's throttles read their rates once, at import: the documented way is to patch the class's.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100/minute", "user": "100/minute",
                                                                "ask": "2/minute"})  # fmt: skip
    for _ in range(2):
        assert carter.post("/api/v1/ask", {"question": CURRENT}, format="json").status_code == 200
    refused = carter.post("/api/v1/ask", {"question": CURRENT}, format="json")
    body = _error(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert body["retry_after_seconds"] == int(refused["Retry-After"])
    assert body["message"].startswith("Request was throttled.")
    # The ask limit is the questions': reading your history is still allowed.
    assert carter.get("/api/v1/questions").status_code == 200


def test_anonymous_callers_are_throttled_by_address(people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/minute", "user": "100/minute",
                                                                "ask": "100/minute"})  # fmt: skip
    codes = [APIClient().get("/api/v1/questions").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


# ---------------------------------------------------------------------------------------- pagination


def test_question_history_is_yours_newest_first_in_pages(people: People) -> None:
    carter = _with_token(_token(people["dr.carter"]))
    asked = [f"{CURRENT} ({n})" for n in range(3)]
    for question in asked:
        carter.post("/api/v1/ask", {"question": question}, format="json")
    _with_token(_token(people["nurse.patel"])).post("/api/v1/ask", {"question": "nurse's own"}, format="json")

    first = carter.get("/api/v1/questions?page_size=2").json()
    assert first["count"] == 3
    assert first["next"] == "http://testserver/api/v1/questions?page=2&page_size=2"
    assert first["previous"] is None
    assert [row["question"] for row in first["results"]] == [asked[2], asked[1]]
    assert set(first["results"][0]) == {"audit_event", "asked_at", "question", "status", "purpose"}
    assert first["results"][0]["status"] == "answered"
    second = carter.get(first["next"]).json()
    assert ([row["question"] for row in second["results"]], second["next"]) == ([asked[0]], None)
    assert second["previous"] == "http://testserver/api/v1/questions?page_size=2"
    assert _error(carter.get("/api/v1/questions?page=9"), 404, "not_found")["message"] == "Invalid page."
    assert len(carter.get("/api/v1/questions?page_size=200").json()["results"]) == 3
    for size in ("0", "201", "abc", "-1", "2.0", "\u00b2"):
        body = _error(carter.get(f"/api/v1/questions?page_size={size}"), 400, "invalid_request")
        assert body["details"] == {"page_size": ["A whole number from 1 to 200."]}
    for page in ("0", "last", "1e3", "9" * 40):
        body = _error(carter.get(f"/api/v1/questions?page={page}"), 400, "invalid_request")
        assert body["details"] == {"page": ["A whole number from 1."]}


# -------------------------------------------------------------------------------------------- alerts


@pytest.fixture
def ito(people: People) -> APIClient:
    return _with_token(_token(people["sec.ito"]))


def _reads(username: str, status: str = EventStatus.OK) -> int:
    return AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS, username=username, status=status).count()


def test_open_alerts_by_risk_leave_out_closed_ones_and_those_about_the_reader(
    people: People, ito: APIClient
) -> None:
    low = _alert("dr.carter", risk=55)
    high = _alert("nurse.patel", risk=91)
    mid = _alert("dr.okafor", risk=70, state=AlertState.INVESTIGATING)
    _alert("head.nguyen", risk=99, state=AlertState.FALSE_POSITIVE)
    _alert("sec.ito", risk=98)

    page = ito.get("/api/v1/alerts?page_size=2").json()
    assert page["count"] == 3
    assert [row["id"] for row in page["results"]] == [high.pk, mid.pk]
    assert page["results"][0] == page["results"][0] | {
        "username": "nurse.patel", "risk": 91.0, "state": "new", "assignee": "", "label": "",
        "summary": "nurse.patel: many records outside the ward",
    }  # fmt: skip
    rest = ito.get(page["next"]).json()
    assert [row["id"] for row in rest["results"]] == [low.pk]
    assert _reads("sec.ito") == 2  # each page read is one audited read, of the officer's own alerts none

    everything = ito.get("/api/v1/alerts?state=all").json()
    assert [row["username"] for row in everything["results"]] == ["head.nguyen", "nurse.patel", "dr.okafor",
                                                                  "dr.carter"]  # fmt: skip
    closed = ito.get("/api/v1/alerts?state=false_positive").json()
    assert [row["username"] for row in closed["results"]] == ["head.nguyen"]
    assert _error(ito.get("/api/v1/alerts?state=closed"), 400, "filter")["message"].startswith(
        "Show one of: open,"
    )

    refused = _with_token(_token(people["dr.carter"])).get("/api/v1/alerts")
    _error(refused, 403, "role")
    assert _reads("dr.carter", EventStatus.DENIED) == 1


def test_an_alert_in_detail_with_reasons_notes_and_events(ito: APIClient) -> None:
    alert = _alert("dr.carter", risk=88)
    step = {"state": "investigating", "note": "Asked the ward."}
    assert ito.post(f"/api/v1/alerts/{alert.pk}/triage", step, format="json").status_code == 200
    before = _reads("sec.ito")
    detail = ito.get(f"/api/v1/alerts/{alert.pk}").json()
    assert _reads("sec.ito") == before + 1  # one read, recorded once
    assert detail["reasons"] == [
        {"code": "vip", "kind": "rule", "text": "Opened a VIP record.", "patients": [10001]}
    ]
    assert [(n["author_name"], n["text"], n["state_from"], n["state_to"]) for n in detail["notes"]] == [
        ("sec.ito", "Asked the ward.", "new", "investigating")
    ]
    assert (detail["state"], detail["events"]) == ("investigating", [])


def test_an_alert_about_the_officer_reads_as_no_alert(ito: APIClient) -> None:
    own = _alert("sec.ito", risk=97)
    for response in (
        ito.get(f"/api/v1/alerts/{own.pk}"),
        ito.get(f"/api/v1/alerts/{own.pk + 1000}"),
        ito.post(f"/api/v1/alerts/{own.pk}/triage", {"note": "Nothing to see."}, format="json"),
    ):
        assert _error(response, 404, "not_found")["message"] == "There is no such alert."
    assert Alert.objects.get(pk=own.pk).notes.count() == 0


def test_triage_refusals_carry_the_rule_s_code(people: People, ito: APIClient) -> None:
    alert = _alert("dr.carter", risk=88)
    url = f"/api/v1/alerts/{alert.pk}/triage"
    assert _error(ito.post(url, {"state": "confirmed"}, format="json"), 400, "note")["message"] == (
        "Say what the investigation found; the note is kept with the alert."
    )
    assert _error(ito.post(url, {"state": "resolved"}, format="json"), 409, "transition")["message"] == (
        "An alert that is new can move to: confirmed, false_positive, investigating."
    )
    assert _error(ito.post(url, {}, format="json"), 400, "empty")["message"] == (
        "Nothing to do: give a new state, an assignee or a note."
    )
    assert _error(ito.post(url, {"assignee": "dr.okafor"}, format="json"), 400, "assignee")["message"] == (
        "Alerts are assigned to members of the privacy office only."
    )
    body = _error(ito.post(url, {"state": "closed"}, format="json"), 400, "invalid_request")
    assert body["details"] == {"state": ['"closed" is not a valid choice.']}
    done = ito.post(url, {"state": "confirmed", "note": "Confirmed with the ward manager."}, format="json")
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["label"]) == ("confirmed", "incident")


# ---------------------------------------------------------------------------------------- the schema


def test_the_schema_documents_every_endpoint_its_errors_and_token_auth(people: People) -> None:
    schema = _with_token(_token(people["dr.carter"])).get("/api/schema/?format=json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    assert sorted(document["paths"]) == [
        "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/triage", "/api/v1/ask",
        "/api/v1/breakglass", "/api/v1/breakglass/{session_id}/end", "/api/v1/breakglass/{session_id}/review",
        "/api/v1/export", "/api/v1/questions", "/api/v1/tokens/current",
    ]  # fmt: skip
    assert document["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": 'A personal token from /account/tokens/, sent as "Token <token>".',
    }  # fmt: skip
    ask = document["paths"]["/api/v1/ask"]["post"]["responses"]
    assert sorted(ask) == ["200", "400", "401", "403", "413", "415", "429", "503"]
    assert ask["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    alerts = document["paths"]["/api/v1/alerts"]["get"]["responses"]
    assert sorted(alerts) == ["200", "400", "401", "403", "404", "429"]
    assert [(p["name"], p["schema"]) for p in document["paths"]["/api/v1/alerts"]["get"]["parameters"]] == [
        ("page", {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}),
        ("page_size", {"type": "integer", "minimum": 1, "maximum": 200}),
        ("state", {"type": "string", "default": "open", "enum": [
            "all", "confirmed", "false_positive", "investigating", "new", "open", "resolved"]}),
    ]  # fmt: skip
    assert alerts["200"]["content"]["application/json"]["schema"]["$ref"] == (
        "#/components/schemas/PaginatedAlertOutputList"
    )
    _error(APIClient().get("/api/schema/"), 401, "not_authenticated")


def test_the_interactive_docs_are_for_signed_in_users_and_load_no_inline_script(people: People) -> None:
    anonymous = Client().get("/api/docs/")
    assert (anonymous.status_code, anonymous["Location"]) == (302, "/login/?next=/api/docs/")
    browser = Client()
    browser.force_login(people["dr.carter"])
    page = browser.get("/api/docs/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "cdn." not in html
    assert (
        '<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"></script>' in html
    )
    assert '<script src="/api/docs/?script="></script>' in html
    assert "<script>" not in html
    # Its one inline <style> is allowed by its hash, on this page only; scripts stay 'self' alone.
    policy = page["Content-Security-Policy"]
    assert re.search(r"style-src 'self' 'sha256-[A-Za-z0-9+/]+=*'", policy), policy
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert "'sha256-" not in browser.get("/account/tokens/")["Content-Security-Policy"]
    script = browser.get("/api/docs/?script=")
    assert script["Content-Type"] == "application/javascript"
    assert '"/api/schema/"' in script.content.decode()


# ------------------------------------------------------------------------------------ the tokens page


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _create(client: Client, name: str, password: str = PASSWORD) -> Any:
    """Fill in the form as shown (it carries a one-time value) and send it."""
    once = client.get("/account/tokens/").context["once"]
    return client.post("/account/tokens/", {"name": name, "password": password, "once": once})


def test_a_token_needs_the_password_is_shown_once_and_works(people: People) -> None:
    carter = _signed_in(people["dr.carter"])
    empty = carter.get("/account/tokens/")
    assert (empty.status_code, empty["Cache-Control"]) == (
        200,
        "max-age=0, no-cache, no-store, must-revalidate, private",
    )
    assert "You hold no tokens." in empty.content.decode()

    wrong = _create(carter, "ward laptop script", "not it")
    assert wrong.status_code == 400
    assert "The password is not correct; a token needs your own password." in wrong.content.decode()
    assert AuthToken.objects.count() == 0
    failed = AuditEvent.objects.get(kind=EventKind.LOGIN_FAILED, username="dr.carter")
    assert (failed.status, failed.details["code"]) == (EventStatus.DENIED, "password")

    made = _create(carter, "ward laptop script")
    assert made.status_code == 200
    token = AuthToken.objects.get(user=people["dr.carter"])
    secret = made.context["secret"]
    html = made.content.decode()
    assert f'value="{secret}"' in html
    assert secret.startswith(token.token_key)
    assert "Copy it now: it is shown only this once" in html
    created = AuditEvent.objects.get(
        kind=EventKind.API_TOKEN, username="dr.carter", details__token=token.token_key
    )
    assert created.message == "API token created: ward laptop script"

    again = carter.get("/account/tokens/").content.decode()
    assert secret not in again
    assert "ward laptop script" in again
    assert token.token_key in again
    assert _with_token(secret).get("/api/v1/questions").status_code == 200


def test_sending_the_form_again_makes_no_second_token(people: People) -> None:
    carter = _signed_in(people["dr.carter"])
    once = carter.get("/account/tokens/").context["once"]
    form = {"name": "ward laptop script", "password": PASSWORD, "once": once}
    assert carter.post("/account/tokens/", form).status_code == 200
    again = carter.post("/account/tokens/", form)  # the browser's reload of the result
    assert again.status_code == 400
    assert "This form was already sent (a reload?), so no token was made." in again.content.decode()
    assert AuthToken.objects.count() == 1
    assert carter.post("/account/tokens/", {**form, "once": ""}).status_code == 400
    assert AuthToken.objects.count() == 1


def test_revoking_a_token_on_the_page_stops_it_at_once(people: People) -> None:
    carter = _signed_in(people["dr.carter"])
    _create(carter, "night audit")
    token = AuthToken.objects.get(user=people["dr.carter"])
    secret = _create(carter, "spare").context["secret"]
    other = AuthToken.objects.exclude(pk=token.pk).get()

    # Someone else's token reads as none, and stays.
    assert (
        "You hold no such token"
        in _signed_in(people["nurse.patel"])
        .post(f"/account/tokens/{token.token_key}/revoke", follow=True)
        .content.decode()
    )
    revoked = carter.post(f"/account/tokens/{other.token_key}/revoke", follow=True)
    assert "Token \u201cspare\u201d revoked; it no longer works." in revoked.content.decode()
    assert list(AuthToken.objects.values_list("token_key", flat=True)) == [token.token_key]
    _error(_with_token(secret).get("/api/v1/questions"), 401, "authentication_failed")
    event = AuditEvent.objects.get(kind=EventKind.API_TOKEN, username="dr.carter", details__action="revoke")
    assert (event.message, event.details["channel"]) == ("API token revoked: spare", "web")
    assert carter.get(f"/account/tokens/{token.token_key}/revoke").status_code == 405


def test_a_script_signs_out_by_revoking_its_own_token(people: People) -> None:
    secret = _token(people["nurse.patel"])
    kept = _token(people["nurse.patel"])
    assert _with_token(secret).delete("/api/v1/tokens/current").status_code == 204
    _error(_with_token(secret).get("/api/v1/questions"), 401, "authentication_failed")
    assert _with_token(kept).get("/api/v1/questions").status_code == 200
    event = AuditEvent.objects.get(kind=EventKind.API_TOKEN, username="nurse.patel", details__action="revoke")
    assert (event.details["token"], event.details["channel"]) == (secret[:15], "api")


def test_the_page_refuses_a_sixth_token_a_blank_name_and_a_guesser(people: People) -> None:
    carter = _signed_in(people["dr.carter"])
    for n in range(5):
        assert _create(carter, f"script {n}").status_code == 200
    sixth = _create(carter, "one more")
    assert sixth.status_code == 400
    assert "You already hold 5 tokens, the most allowed; revoke one first." in sixth.content.decode()
    assert AuthToken.objects.count() == 5
    blank = _create(carter, "   ")
    assert "This field is required." in blank.content.decode()
    control = _create(carter, "bad\x07name")
    assert "Give the token a name of 1 to 60 printable characters" in control.content.decode()

    nurse = _signed_in(people["nurse.moreau"])
    for _ in range(5):
        _create(nurse, "guess", "wrong")
    locked = _create(nurse, "guess")
    assert "Too many wrong passwords; try again in 15 minutes." in locked.content.decode()
    assert not AuthToken.objects.filter(user=people["nurse.moreau"]).exists()


def test_the_page_is_for_signed_in_staff(people: People) -> None:
    assert Client().get("/account/tokens/")["Location"] == "/login/?next=/account/tokens/"
    stranger = UserFactory.create(username="no.profile")
    page = _signed_in(stranger).get("/account/tokens/")
    assert page.status_code == 403
    assert "Your account has no staff profile yet" in page.content.decode()
