"""The security console through Django's test client: every page and action for the privacy office,
refused for every other role, each view recorded as an audit read, bad input answered plainly.

The world: Carla (cardiology clinician) and Ivan (ICU nurse, under break-glass) asked questions in the
week of Monday 16 November 2026; alerts about four people and about Sofia, the officer reading.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.backends.utils import CursorWrapper
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from accessctl.models import BreakGlassSession
from audit.checkpoints import checkpoint_create, signing_key_create
from audit.models import Alert, AlertNote, AuditEvent, EventKind, EventStatus
from audit.reports import previous_week_start
from audit.services import VERIFICATION_RUNNING_KEY, ChainVerification, audit_chain_check, audit_record
from hisplatform.celery import app as celery_app
from hisplatform.models import Role
from tests.factories import StaffProfileFactory

pytestmark = pytest.mark.django_db

ADDR, AGENT = "10.20.30.40", "ConsoleTest/1.0"
UTC = dt.UTC
CaptureCallbacks = Callable[..., Any]
GuardsLifted = Callable[[], AbstractContextManager[CursorWrapper]]
VIP_REASON = "Opened a VIP patient's record (patient 1001) with no care-team link"
JUSTIFICATION = "Patient collapsed on the ward, history needed now."


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _person(username: str, role: str, department: str = "") -> User:
    return StaffProfileFactory.create(user__username=username, role=role, department=department).user


@dataclasses.dataclass
class World:
    carla: User
    ivan: User
    rita: User
    adam: User
    hana: User
    sofia: User
    oscar: User
    events: dict[str, AuditEvent]
    alerts: dict[str, Alert]
    sessions: dict[str, BreakGlassSession]


def _record(moment: dt.datetime, **fields: Any) -> AuditEvent:
    with mock.patch.object(timezone, "now", return_value=moment):
        return audit_record(**fields)


def _ask(moment: dt.datetime, user: User, question: str, patients: list[int], **fields: Any) -> AuditEvent:
    fields.setdefault("status", EventStatus.ANSWERED)
    return _record(
        moment,
        user=user,
        kind=fields.pop("kind", EventKind.QUESTION),
        question=question,
        sql_executed="SELECT valuenum FROM labevents WHERE subject_id = 1001",
        tables_touched=["labevents"],
        columns_touched=["labevents.valuenum"],
        patients_touched=patients,
        purpose_of_use=fields.pop("purpose", "TREAT"),
        **fields,
    )


def _session(user: User, opened: dt.datetime, **fields: Any) -> BreakGlassSession:
    values: dict[str, Any] = {
        "user": user,
        "username": user.get_username(),
        "role": Role.CLINICIAN if user.profile.role == Role.SECURITY_OFFICER else user.profile.role,
        "reason_code": "cardiac_arrest",
        "justification": JUSTIFICATION,
        "scope": "patient",
        "subject_id": 10010,
        "opened_at": opened,
        "expires_at": opened + dt.timedelta(minutes=30),
        "ended_at": opened + dt.timedelta(minutes=30),
        "end_reason": "expired",
        **fields,
    }
    return BreakGlassSession.objects.create(**values)


def _alert(user: User, day: int, risk: float, reasons: list[str], state: str = "new", **fields: Any) -> Alert:
    moment = at(day, 23, 0)
    return Alert.objects.create(
        username=user.get_username(),
        user_id=user.pk,
        role=user.profile.role,
        day=moment.date(),
        created_at=moment,
        updated_at=moment,
        risk=risk,
        reasons=[{"code": "r", "text": text, "value": 1, "peer_median": 0, "weight": 1} for text in reasons],
        summary=reasons[0],
        first_event_at=moment,
        last_event_at=moment,
        state=state,
        **fields,
    )


@pytest.fixture(autouse=True)
def _no_verification_left_over() -> Iterator[None]:
    cache.clear()  # the last verification lives in the cache (locmem in tests, shared by the run)
    yield
    cache.clear()


@pytest.fixture
def world(
    cardiology_clinician: User,
    icu_nurse: User,
    researcher: User,
    administrator: User,
    security_officer: User,
) -> World:
    carla, ivan, rita, adam, sofia = (
        cardiology_clinician,
        icu_nurse,
        researcher,
        administrator,
        security_officer,
    )
    hana = _person("hana.head", Role.DEPARTMENT_HEAD, "CARD")
    oscar = _person("oscar.officer", Role.SECURITY_OFFICER)
    glass = _session(ivan, at(17, 8), escalated=True, queries=2)
    covering = _session(carla, at(16, 7), reason_code="covering", subject_id=1001)
    reviewed = _session(carla, at(15, 7), review="appropriate", reviewed_by="oscar.officer")
    now = timezone.now()
    still_open = _session(
        carla,
        now - dt.timedelta(minutes=5),
        expires_at=now + dt.timedelta(minutes=25),
        ended_at=None,
        end_reason="",
    )
    events = {
        "carla_1001": _ask(at(16, 9), carla, "What is the potassium of patient 1001?", [1001]),
        "carla_two": _ask(at(16, 10), carla, "Sodium of patients 10010 and 2002", [10010, 2002]),
        "ivan_glass": _ask(
            at(17, 8, 5),
            ivan,
            "Allergies of patient 10010",
            [10010],
            purpose="ETREAT",
            breakglass_session_id=glass.pk,
        ),
        "ivan_export": _ask(
            at(17, 8, 10),
            ivan,
            "Export the labs of patient 10010",
            [],
            kind=EventKind.EXPORT,
            status=EventStatus.DENIED,
            purpose="ETREAT",
            breakglass_session_id=glass.pk,
        ),
        "rita": _ask(at(18, 9), rita, "Sepsis outcomes by age band", [], status=EventStatus.ABSTAINED),
        "mallory": _record(
            at(18, 12), user=None, kind=EventKind.LOGIN_FAILED, status="denied", username="mallory"
        ),
    }
    alerts = {
        "carla": _alert(carla, 16, 92.0, [VIP_REASON, "Asked 14 questions; peers ask 3"]),
        "ivan": _alert(ivan, 17, 61.0, ["Asked 2 questions between 22:00 and 06:00"]),
        "rita": _alert(rita, 18, 35.0, ["Asked 40 questions; peers ask 6"], state="investigating"),
        "adam": _alert(adam, 18, 80.0, ["Exported 9 reports"], state="false_positive", label="benign"),
        "sofia": _alert(sofia, 18, 99.0, ["Read 400 audit events"]),
    }
    Alert.objects.filter(pk=alerts["carla"].pk).update(
        event_seqs=[events["carla_1001"].seq, events["carla_two"].seq]
    )
    alerts["carla"].refresh_from_db()
    sessions = {"glass": glass, "covering": covering, "reviewed": reviewed, "open": still_open}
    return World(carla, ivan, rita, adam, hana, sofia, oscar, events, alerts, sessions)


def _client(user: User | None) -> Client:
    client = Client(REMOTE_ADDR=ADDR, HTTP_USER_AGENT=AGENT)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def officer(world: World) -> Client:
    return _client(world.sofia)


def _reads(after: int = 0) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=EventKind.AUDIT_ACCESS, seq__gt=after).order_by("seq"))


def _head() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _words(fragment: str) -> str:
    """HTML as a person reads it: inline tags gone, others a space, whitespace collapsed, entities decoded."""
    fragment = re.sub(r"</?(a|strong|em|span|code|abbr)\b[^>]*>", "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _text(response: Any) -> str:
    return _words(re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S))


def _rows(response: Any, testid: str) -> list[list[str]]:
    """The body rows of the table marked data-testid=TESTID, as cell texts."""
    body = response.content.decode()
    table = re.search(rf'<table[^>]*data-testid="{testid}".*?</table>', body, flags=re.S)
    assert table is not None, f"no table {testid}"
    tbody = re.search(r"<tbody>(.*?)</tbody>", table.group(0), flags=re.S)
    assert tbody is not None
    rows = re.findall(r"<tr>(.*?)</tr>", tbody.group(1), flags=re.S)
    return [
        [_words(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)] for row in rows
    ]


# ------------------------------------------------------------------------------------- who may come in

Url = Callable[[World], str]
PAGES: dict[str, Url] = {
    "alerts": lambda w: reverse("security:page"),
    "alert": lambda w: reverse("security:alert", args=[w.alerts["carla"].pk]),
    "search": lambda w: reverse("security:search"),
    "search_by_user": lambda w: reverse("security:search") + "?user=carla.cardio",
    "event": lambda w: reverse("security:event", args=[w.events["carla_1001"].seq]),
    "breakglass": lambda w: reverse("security:breakglass"),
    "chain": lambda w: reverse("security:chain"),
    "reports": lambda w: reverse("security:reports"),
    "report_week": lambda w: reverse("security:reports") + "?week=2026-11-18",
    "report_download": lambda w: reverse("security:weekly_download") + "?week=2026-11-18",
    "disclosures": lambda w: reverse("security:disclosures"),
    "disclosures_patient": lambda w: reverse("security:disclosures") + "?subject=10010",
    "disclosures_csv": lambda w: reverse("security:disclosures_download") + "?subject=10010",
}
ACTIONS: dict[str, tuple[Url, dict[str, str]]] = {
    "triage": (
        lambda w: reverse("security:alert", args=[w.alerts["carla"].pk]),
        {"state": "false_positive", "note": "fine"},
    ),
    "review": (
        lambda w: reverse("security:breakglass_review", args=[w.sessions["glass"].pk]),
        {"outcome": "appropriate", "notes": "fine"},
    ),
    "verify": (lambda w: reverse("security:chain_verify"), {}),
}
OTHERS = ["carla.cardio", "ivan.icu", "hana.head", "rita.research", "adam.admin"]


def _user(world: World, username: str) -> User:
    return User.objects.get(username=username)


@pytest.mark.parametrize("name", [*PAGES, *ACTIONS])
def test_anonymous_visitors_are_sent_to_sign_in(world: World, name: str) -> None:
    client = _client(None)
    if name in PAGES:
        url = PAGES[name](world)
        response = client.get(url)
    else:
        url = ACTIONS[name][0](world)
        response = client.post(url, ACTIONS[name][1])
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("username", OTHERS)
@pytest.mark.parametrize("name", [*PAGES, *ACTIONS])
def test_every_other_role_gets_the_403_page_and_the_attempt_is_recorded(
    world: World, username: str, name: str
) -> None:
    client = _client(_user(world, username))
    before = _head()
    if name in PAGES:
        url = PAGES[name](world)
        response = client.get(url)
    else:
        url, data = ACTIONS[name][0](world), ACTIONS[name][1]
        response = client.post(url, data)
    assert response.status_code == 403
    assert "You do not have access to this page." in _text(response)
    assert VIP_REASON not in _text(response)
    [refusal] = _reads(before)
    assert (refusal.username, refusal.status, refusal.client_addr, refusal.user_agent) == (
        username,
        "denied",
        ADDR,
        AGENT,
    )
    assert refusal.message.startswith("refused: security console ")
    assert refusal.details == {"path": url.split("?")[0], "code": "role"}
    # Nothing was done: the alert and the session are as they were.
    assert Alert.objects.get(pk=world.alerts["carla"].pk).state == "new"
    assert BreakGlassSession.objects.get(pk=world.sessions["glass"].pk).review == "pending"


@pytest.mark.parametrize("name", PAGES)
def test_each_page_view_of_the_officer_is_one_audit_read_with_address_and_browser(
    officer: Client, world: World, name: str
) -> None:
    before = _head()
    response = officer.get(PAGES[name](world))
    assert response.status_code == 200
    [read] = _reads(before)
    assert (read.username, read.role, read.status, read.client_addr, read.user_agent) == (
        "sofia.security",
        "security_officer",
        "ok",
        ADDR,
        AGENT,
    )


@pytest.mark.parametrize(
    ("name", "current"),
    [
        ("alerts", "Alerts"),
        ("alert", "Alerts"),
        ("search", "Audit search"),
        ("event", "Audit search"),
        ("breakglass", "Break-glass reviews"),
        ("chain", "Chain"),
        ("reports", "Reports"),
        ("disclosures", "Disclosures"),
    ],
)
def test_the_console_navigation_marks_the_current_section(
    officer: Client, world: World, name: str, current: str
) -> None:
    body = officer.get(PAGES[name](world)).content.decode()
    nav = re.search(r'<nav class="subnav" aria-label="Security console">(.*?)</nav>', body, flags=re.S)
    assert nav is not None
    links = re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav.group(1))
    assert [label for _, _, label in links] == [
        "Alerts",
        "Audit search",
        "Break-glass reviews",
        "Chain",
        "Reports",
        "Disclosures",
    ]
    assert [label for _, marked, label in links if marked] == [current]


# ---------------------------------------------------------------------------------------------- alerts


def test_the_queue_lists_open_alerts_by_risk_with_their_reasons_never_the_officers_own(
    officer: Client, world: World
) -> None:
    response = officer.get(reverse("security:page"))
    assert _rows(response, "alert-queue") == [
        ["risk 92", "carla.cardio", "clinician", "2026-11-16", "New",
         f"{VIP_REASON} Asked 14 questions; peers ask 3", "nobody"],
        ["risk 61", "ivan.icu", "nurse", "2026-11-17", "New",
         "Asked 2 questions between 22:00 and 06:00", "nobody"],
        ["risk 35", "rita.research", "researcher", "2026-11-18", "Investigating",
         "Asked 40 questions; peers ask 6", "nobody"],
    ]  # fmt: skip
    body = response.content.decode()
    assert '<span class="badge high" title="Risk, 0 to 100">risk 92</span>' in body
    assert '<span class="badge medium" title="Risk, 0 to 100">risk 61</span>' in body
    assert '<span class="badge" title="Risk, 0 to 100">risk 35</span>' in body
    assert "Read 400 audit events" not in body  # the alert about Sofia herself
    assert "3 alerts" in _text(response)
    # Another officer does see the alert about Sofia.
    other = _client(world.oscar).get(reverse("security:page"))
    assert [row[1] for row in _rows(other, "alert-queue")] == [
        "sofia.security",
        "carla.cardio",
        "ivan.icu",
        "rita.research",
    ]


def test_the_queue_filters_by_state_and_says_so_for_an_unknown_filter(officer: Client, world: World) -> None:
    closed = officer.get(reverse("security:page"), {"shown": "false_positive"})
    assert [row[1] for row in _rows(closed, "alert-queue")] == ["adam.admin"]
    everything = officer.get(reverse("security:page"), {"shown": "all"})
    assert [row[1] for row in _rows(everything, "alert-queue")] == [
        "carla.cardio",
        "adam.admin",
        "ivan.icu",
        "rita.research",
    ]
    unknown = officer.get(reverse("security:page"), {"shown": "<script>"})
    assert unknown.status_code == 200
    assert "There is no filter '<script>'; showing the open alerts." in _text(unknown)
    assert "<script>" not in unknown.content.decode()
    assert len(_rows(unknown, "alert-queue")) == 3


def test_the_queue_is_paged_25_at_a_time(officer: Client, world: World) -> None:
    for index in range(27):
        person = _person(f"user.{index:02d}", Role.CLINICIAN, "CARD")
        _alert(person, 19, 50.0 - index, [f"reason {index}"])
    first = officer.get(reverse("security:page"))
    second = officer.get(reverse("security:page"), {"page": "2"})
    beyond = officer.get(reverse("security:page"), {"page": "99"})
    assert len(_rows(first, "alert-queue")) == 25
    assert [row[1] for row in _rows(second, "alert-queue")] == [
        "user.22",
        "user.23",
        "user.24",
        "user.25",
        "user.26",
    ]
    assert "30 alerts" in _text(first)
    assert "Page 1 of 2" in _text(first)
    assert "Page 2 of 2" in _text(second)
    assert _rows(beyond, "alert-queue") == _rows(second, "alert-queue")  # past the end: the last page


def test_an_alert_shows_its_reasons_events_and_notes(officer: Client, world: World) -> None:
    alert = world.alerts["carla"]
    AlertNote.objects.create(
        alert=alert, author_name="oscar.officer", created_at=at(19, 9), text="Asked the ward."
    )
    response = officer.get(reverse("security:alert", args=[alert.pk]))
    text = _text(response)
    assert f"Alert {alert.pk}: carla.cardio on 2026-11-16" in text
    assert f"Why {VIP_REASON} Asked 14 questions; peers ask 3" in text
    first, second = world.events["carla_1001"].seq, world.events["carla_two"].seq
    assert _rows(response, "alert-events") == [
        [f"#{first}", "09:00:00", "Question", "Answered", "What is the potassium of patient 1001?", "1"],
        [f"#{second}", "10:00:00", "Question", "Answered", "Sodium of patients 10010 and 2002", "2"],
    ]
    assert "oscar.officer, 2026-11-19 09:00: Asked the ward." in text
    # The form offers exactly the moves the state machine allows from "new".
    body = response.content.decode()
    offered = re.findall(
        r'<option value="([a-z_]*)"', body.split('id="triage-state"')[1].split("</select>")[0]
    )
    assert offered == ["", "confirmed", "false_positive", "investigating"]
    assignees = body.split('id="triage-assignee"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([a-z._]*)"', assignees) == ["", "oscar.officer", "sofia.security"]


@pytest.mark.parametrize("which", ["sofia", "missing", "huge"])
def test_an_alert_about_the_officer_or_none_at_all_is_not_found(
    officer: Client, world: World, which: str
) -> None:
    alert_id = {"sofia": world.alerts["sofia"].pk, "missing": 999_999, "huge": 10**19 - 1}[which]
    response = officer.get(f"/security/alerts/{alert_id}/")
    assert response.status_code == 404
    assert "Read 400 audit events" not in _text(response)
    assert officer.get("/security/alerts/99999999999999999999999/").status_code == 404  # too long: no route


def test_triage_moves_assigns_and_notes_the_alert(officer: Client, world: World) -> None:
    alert = world.alerts["carla"]
    url = reverse("security:alert", args=[alert.pk])
    response = officer.post(
        url,
        {
            "state": "investigating",
            "assignee": "oscar.officer",
            "assignee_was": "",
            "note": "Looking into it.",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == url
    alert.refresh_from_db()
    assert (alert.state, alert.assignee, alert.label) == ("investigating", world.oscar, "")
    page = officer.get(url)
    text = _text(page)
    assert f"Alert {alert.pk} is investigating, assigned to oscar.officer." in text
    assert "sofia.security, " in text
    assert "(new → investigating): Looking into it." in text
    # Concluding with the assignee left as shown: no reassignment, the note becomes the label's reason.
    officer.post(
        url,
        {
            "state": "false_positive",
            "assignee": "oscar.officer",
            "assignee_was": "oscar.officer",
            "note": "Ward round.",
        },
    )
    alert.refresh_from_db()
    assert (alert.state, alert.label, alert.assignee) == ("false_positive", "benign", world.oscar)
    steps = AuditEvent.objects.filter(kind=EventKind.ALERT_TRIAGE).order_by("seq")
    assert [(e.username, e.status, e.details["state"]) for e in steps] == [
        ("sofia.security", "ok", "investigating"),
        ("sofia.security", "ok", "false_positive"),
    ]
    assert [row[1] for row in _rows(officer.get(reverse("security:page")), "alert-queue")] == [
        "ivan.icu",
        "rita.research",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"state": "confirmed", "note": ""},
         "Say what the investigation found; the note is kept with the alert."),
        ({"state": "resolved", "note": "done"},
         "An alert that is new can move to: confirmed, false_positive, investigating."),
        ({"state": "bogus"},
         "Unknown state 'bogus'; one of new, investigating, confirmed, false_positive, resolved."),
        ({"assignee": "carla.cardio", "assignee_was": ""},
         "Alerts are assigned to members of the privacy office only."),
        ({}, "Nothing to do: give a new state, an assignee or a note."),
        ({"note": "x" * 10_001}, "A note holds at most 10,000 characters."),
    ],
)  # fmt: skip
def test_a_refused_triage_is_shown_plainly_and_changes_nothing(
    officer: Client, world: World, data: dict[str, str], message: str
) -> None:
    alert = world.alerts["carla"]
    response = officer.post(reverse("security:alert", args=[alert.pk]), data)
    assert response.status_code == 400
    error = re.search(
        r'<p class="refusal" role="alert" data-testid="triage-error">(.*?)</p>', response.content.decode()
    )
    assert error is not None
    assert html.unescape(error.group(1)) == message
    alert.refresh_from_db()
    assert (alert.state, alert.assignee, alert.notes.count()) == ("new", None, 0)
    refused = AuditEvent.objects.filter(kind=EventKind.ALERT_TRIAGE).get()
    assert (refused.status, refused.message) == ("denied", message)


def test_triage_of_an_alert_about_oneself_is_not_found(officer: Client, world: World) -> None:
    response = officer.post(
        reverse("security:alert", args=[world.alerts["sofia"].pk]),
        {"state": "false_positive", "note": "mine"},
    )
    assert response.status_code == 404
    assert Alert.objects.get(pk=world.alerts["sofia"].pk).state == "new"


# ---------------------------------------------------------------------------------------------- search


def _search(client: Client, **query: str) -> Any:
    return client.get(reverse("security:search"), query)


def _seqs(response: Any) -> list[int]:
    if 'data-testid="search-results"' not in response.content.decode():
        assert "No event matches." in _text(response)
        return []
    return [int(row[0].lstrip("#")) for row in _rows(response, "search-results")]


def test_the_search_starts_with_the_newest_events(officer: Client, world: World) -> None:
    response = _search(officer)
    rows = _rows(response, "search-results")
    newest = list(AuditEvent.objects.order_by("-seq").values_list("seq", flat=True))
    # The officer's own read of this page is recorded before the page is read, so it leads.
    assert _seqs(response) == newest
    glass = world.sessions["glass"].pk
    ivan = world.events["ivan_glass"].seq
    assert [f"#{ivan}", "2026-11-17 08:05:00", "ivan.icu", "nurse", "Question", "Answered",
            "Allergies of patient 10010", "1", f"#{glass}"] in rows  # fmt: skip
    assert f"{len(newest)} events" in _text(response)


def test_search_by_user_patient_time_status_kind_and_break_glass(officer: Client, world: World) -> None:
    e = {name: event.seq for name, event in world.events.items()}
    assert _seqs(_search(officer, user="carla.cardio", kind="question")) == [e["carla_two"], e["carla_1001"]]
    # Whole subject ids: 1001 is not 10010, and 10010 is in two events.
    assert _seqs(_search(officer, patient="1001")) == [e["carla_1001"]]
    assert _seqs(_search(officer, patient="10010")) == [e["ivan_glass"], e["carla_two"]]
    assert _seqs(_search(officer, since="2026-11-17T00:00", until="2026-11-18T09:00")) == [
        e["ivan_export"],
        e["ivan_glass"],
    ]
    assert _seqs(_search(officer, since="2026-11-18T09:00", until="2026-11-18T12:00")) == [
        e["rita"]
    ]  # to: excluded
    assert _seqs(_search(officer, status="denied", kind="login_failed")) == [e["mallory"]]
    assert _seqs(_search(officer, breakglass="on")) == [e["ivan_export"], e["ivan_glass"]]
    assert _seqs(_search(officer, session=str(world.sessions["glass"].pk))) == [
        e["ivan_export"],
        e["ivan_glass"],
    ]
    assert _seqs(_search(officer, session="999999")) == []
    assert "No event matches." in _text(_search(officer, user="nobody.at.all"))
    read = _reads()[-1]
    assert read.details == {"view": "search", "criteria": {"username": "nobody.at.all"}}


def test_the_search_pages_50_at_a_time_newest_first(officer: Client, world: World) -> None:
    for index in range(120):
        _record(at(20, 9) + dt.timedelta(seconds=index), user=world.carla, kind="question", status="answered",
                question=f"q{index}")  # fmt: skip
    first = _search(officer, user="carla.cardio")
    third = _search(officer, user="carla.cardio", page="3")
    assert len(_rows(first, "search-results")) == 50
    assert [row[6] for row in _rows(first, "search-results")[:2]] == ["q119", "q118"]
    assert [row[6] for row in _rows(third, "search-results")] == [
        *(f"q{index}" for index in range(19, -1, -1)),
        "Sodium of patients 10010 and 2002",
        "What is the potassium of patient 1001?",
    ]
    assert "122 events" in _text(first)
    assert "Page 3 of 3" in _text(third)
    assert 'href="?user=carla.cardio&amp;page=2" rel="next"' in first.content.decode()


def test_the_count_stops_at_the_cap(officer: Client, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.web.SEARCH_COUNT_CAP", 5)
    response = _search(officer)
    assert "At least 5 events" in _text(response)
    assert "Counting stops at 5; narrow the search to see how many match." in _text(response)
    assert len(_rows(response, "search-results")) == 5


def test_a_long_question_is_cut_in_the_list_and_whole_on_its_page(officer: Client, world: World) -> None:
    long = _ask(at(20, 10), world.carla, "Potassium " * 500, [1001])
    row = next(
        r for r in _rows(_search(officer, user="carla.cardio"), "search-results") if r[0] == f"#{long.seq}"
    )
    assert row[6] == ("Potassium " * 12)[:119] + "…"
    page = officer.get(reverse("security:event", args=[long.seq]))
    assert ("Potassium " * 500).strip() in _text(page)


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"patient": "ten"}, ["A patient is named by a subject id: a whole number such as 10001."]),
        ({"patient": "0"}, ["A subject id is a whole number from 1 to 2147483647."]),
        ({"patient": "99999999999999999999"}, ["A subject id is a whole number from 1 to 2147483647."]),
        ({"since": "yesterday"}, ["From: enter a date and time, such as 2026-11-25 14:30."]),
        ({"until": "2026-13-45T99:99"}, ["To: enter a date and time, such as 2026-11-25 18:00."]),
        ({"since": "0001-01-01T00:00"},
         ["From: choose a date between 1900 and 9998; the audit holds no other."]),
        ({"since": "2026-11-20T10:00", "until": "2026-11-16T10:00"},
         ["The range is empty: From (2026-11-20 10:00) is after To (2026-11-16 10:00)."]),
        ({"status": "maybe", "kind": "x"},
         ["Status: choose one from the list.", "Kind: choose one from the list."]),
        ({"session": "-3"}, ["Ensure this value is greater than or equal to 1."]),
        ({"user": "u" * 151}, ["Ensure this value has at most 150 characters (it has 151)."]),
    ],
)  # fmt: skip
def test_bad_search_input_gets_a_clear_message_and_no_results(
    officer: Client, world: World, query: dict[str, str], errors: list[str]
) -> None:
    before = _head()
    response = _search(officer, **query)
    assert response.status_code == 400
    listed = re.search(r'data-testid="search-errors">(.*?)</div>', response.content.decode(), flags=re.S)
    assert listed is not None
    assert [html.unescape(item) for item in re.findall(r"<li>(.*?)</li>", listed.group(1))] == errors
    assert 'data-testid="search-results"' not in response.content.decode()
    [read] = _reads(before)
    assert (read.status, read.details["code"], read.details["errors"]) == ("denied", "bad_input", errors)


def test_an_event_page_shows_everything_recorded(officer: Client, world: World) -> None:
    event = world.events["ivan_glass"]
    response = officer.get(reverse("security:event", args=[event.seq]))
    text = _text(response)
    assert f"Audit event #{event.seq}" in text
    assert "Allergies of patient 10010" in text
    assert "SELECT valuenum FROM labevents WHERE subject_id = 1001" in text
    assert f"Break-glass session #{world.sessions['glass'].pk}" in text
    assert "Purpose of use ETREAT" in text
    assert "Patients 1: 10010" in text
    assert event.hash in text
    assert officer.get(reverse("security:event", args=[999_999])).status_code == 404


# ----------------------------------------------------------------------------------------- break-glass


def _review_items(response: Any) -> list[str]:
    return re.findall(r'<h2 id="session-\d+">(.*?)</h2>', response.content.decode())


def test_the_review_queue_lists_ended_sessions_escalated_first(officer: Client, world: World) -> None:
    response = officer.get(reverse("security:breakglass"))
    glass, covering = world.sessions["glass"].pk, world.sessions["covering"].pk
    assert _review_items(response) == [
        f'Session #{glass}: ivan.icu, patient 10010 <span class="badge high">escalated</span>',
        f"Session #{covering}: carla.cardio, patient 1001",
    ]
    text = _text(response)
    assert "2 sessions awaiting review." in text
    assert f"Justification {JUSTIFICATION}" in text
    assert "Scope One patient: patient 10010" in text
    assert (
        f'href="/security/search/?session={glass}">2 queries under this session</a>'
        in response.content.decode()
    )
    # The link finds exactly the session's two events.
    listed = _search(officer, session=str(glass))
    assert _seqs(listed) == [world.events["ivan_export"].seq, world.events["ivan_glass"].seq]


def test_a_review_closes_the_session_and_leaves_the_queue(officer: Client, world: World) -> None:
    glass = world.sessions["glass"]
    response = officer.post(
        reverse("security:breakglass_review", args=[glass.pk]),
        {"outcome": "appropriate", "notes": "Cardiac arrest on the ward, confirmed by the rota."},
    )
    assert response.status_code == 302
    glass.refresh_from_db()
    assert (glass.review, glass.reviewed_by, glass.review_notes) == (
        "appropriate",
        "sofia.security",
        "Cardiac arrest on the ward, confirmed by the rota.",
    )
    after = officer.get(reverse("security:breakglass"))
    assert f"Break-glass session {glass.pk} by ivan.icu reviewed as appropriate." in _text(after)
    assert "1 session awaiting review." in _text(after)
    recorded = AuditEvent.objects.get(kind=EventKind.BREAKGLASS_REVIEW)
    assert (recorded.username, recorded.status, recorded.breakglass_session_id) == (
        "sofia.security",
        "ok",
        glass.pk,
    )


@pytest.mark.parametrize(
    ("which", "data", "message"),
    [
        ("glass", {"outcome": "appropriate", "notes": "  "},
         "Say what the review found; the note is kept with the session."),
        ("glass", {"outcome": "fine", "notes": "ok"}, "The outcome is appropriate or inappropriate."),
        ("own", {"outcome": "appropriate", "notes": "I was covering."},
         "Nobody reviews their own break-glass session."),
        ("reviewed", {"outcome": "inappropriate", "notes": "again"},
         "This session has already been reviewed."),
        ("open", {"outcome": "appropriate", "notes": "early"},
         "The session is still open; review it once it has ended."),
        ("missing", {"outcome": "appropriate", "notes": "who"}, "There is no such break-glass session."),
    ],
)  # fmt: skip
def test_a_refused_review_is_shown_plainly(
    officer: Client, world: World, which: str, data: dict[str, str], message: str
) -> None:
    if which == "own":
        session_id = _session(world.sofia, at(12, 7)).pk
    elif which == "missing":
        session_id = 999_999
    else:
        session_id = world.sessions[which].pk
    response = officer.post(reverse("security:breakglass_review", args=[session_id]), data)
    assert response.status_code == 400
    error = re.search(r'data-testid="review-error">(.*?)</p>', response.content.decode())
    assert error is not None
    assert error.group(1) == f"Session {session_id}: {message}"
    refused = AuditEvent.objects.get(kind=EventKind.BREAKGLASS_REVIEW)
    assert (refused.status, refused.message) == ("denied", message)
    assert not BreakGlassSession.objects.filter(reviewed_by="sofia.security").exists()


# ----------------------------------------------------------------------------------------------- chain


def _verify(client: Client, capture: CaptureCallbacks) -> Any:
    with capture(execute=True):
        response = client.post(reverse("security:chain_verify"))
    assert response.status_code == 302
    return client.get(reverse("security:chain"))


def _verdict(response: Any) -> str:
    found = re.search(
        r'<(p|div) [^>]*data-testid="chain-verdict">(.*?)</\1>', response.content.decode(), flags=re.S
    )
    assert found is not None
    return _words(found.group(2))


def test_verification_shows_ok_then_broken_after_tampering(
    officer: Client,
    world: World,
    django_capture_on_commit_callbacks: CaptureCallbacks,
    guards_lifted: GuardsLifted,
) -> None:
    first = officer.get(reverse("security:chain"))
    assert _verdict(first) == "Not verified from the console yet."
    assert "Verify now" in _text(first)
    intact = _verify(officer, django_capture_on_commit_callbacks)
    checked = AuditEvent.objects.filter(
        kind=EventKind.AUDIT_ACCESS, message__startswith="audit chain verified"
    ).get()
    walked = checked.seq - 1  # every event before the verification's own record
    assert _verdict(intact) == (
        f"INTACT. Audit chain intact: {walked} events, head "
        f"{AuditEvent.objects.get(seq=walked).hash[:16]} (seq {walked})."
    )
    assert "Checkpoints: no signed checkpoints yet; the events are covered by the hash chain only." in _text(
        intact
    )
    assert "asked for by sofia.security." in _text(intact)
    assert (checked.username, checked.client_addr, checked.user_agent) == ("sofia.security", ADDR, AGENT)
    assert checked.details["verification"] == {
        "ok": True,
        "problem": "",
        "first_bad_seq": None,
        "events": walked,
    }

    tampered = world.events["carla_two"].seq
    with guards_lifted() as cursor:
        cursor.execute("UPDATE audit_event SET question = 'nothing to see' WHERE seq = %s", [tampered])
    broken = _verify(officer, django_capture_on_commit_callbacks)
    assert _verdict(broken) == (
        f"BROKEN at event {tampered}. Audit chain BROKEN at event seq {tampered} (edited): "
        f"event {tampered} was "
        f"edited: its contents no longer match its hash. {tampered - 1} events verified before it. "
        f"Look at event #{tampered}"
    )
    assert 'class="refusal" role="alert" data-testid="chain-verdict"' in broken.content.decode()
    last = AuditEvent.objects.filter(message__startswith="audit chain verified").order_by("-seq").first()
    assert last is not None
    assert last.details["verification"]["first_bad_seq"] == tampered


def test_the_latest_signed_checkpoint_is_shown_and_verified(
    officer: Client,
    world: World,
    settings: SettingsWrapper,
    tmp_path: Path,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "keys" / "audit-signing-key.pem")
    settings.AUDIT_VERIFY_KEY_FILE = ""
    settings.AUDIT_CHECKPOINT_LOG = str(tmp_path / "log" / "audit-checkpoints.log")
    key = signing_key_create()
    made = checkpoint_create()
    assert made is not None
    page = officer.get(reverse("security:chain"))
    text = _text(page)
    assert f"Signed checkpoints 1 Latest checkpoint events 1 to {made.seq_to}, signed " in text
    assert f"Key id {key.key_id}" in text
    assert f"Merkle root {made.root}" in text
    verified = _verify(officer, django_capture_on_commit_callbacks)
    checked = AuditEvent.objects.get(message__startswith="audit chain verified")
    assert checked.seq - 1 == made.seq_to + 1  # one event since the checkpoint: the chain page's read
    assert (
        f"Checkpoints: 1 signed checkpoint verifies, covering events 1-{made.seq_to}; "
        "1 newer event is covered by the hash chain only." in _text(verified)
    )
    assert _verdict(verified).startswith("INTACT.")


def test_one_verification_at_a_time(officer: Client, world: World) -> None:
    running = ChainVerification(requested_by="oscar.officer", requested_at=at(26, 14, 5))
    cache.set(VERIFICATION_RUNNING_KEY, running.as_cache(), timeout=60)
    page = officer.get(reverse("security:chain"))
    assert "A verification asked for by oscar.officer at 2026-11-26 14:05:00 is running." in _text(page)
    assert "Verify now" not in _text(page)
    refused = officer.post(reverse("security:chain_verify"), follow=True)
    assert (
        "A verification asked for by oscar.officer at 2026-11-26 14:05 UTC is still running; "
        "its outcome will show here when it ends." in _text(refused)
    )


# --------------------------------------------------------------------------------------------- reports


def test_the_weekly_report_of_a_chosen_week(officer: Client, world: World) -> None:
    before = _head()
    response = officer.get(reverse("security:reports"), {"week": "2026-11-18"})
    assert "Week of Mon 16 Nov 2026 (UTC)" in _text(response)
    headlines = {row[0]: row[1:] for row in _rows(response, "report-headlines")}
    assert headlines["Questions"] == ["4", "0", "+4"]
    assert headlines["Exports"] == ["1", "0", "+1"]
    assert headlines["Denied (questions and exports)"] == ["1", "0", "+1"]
    assert headlines["Failed logins"] == ["1", "0", "+1"]
    assert headlines["Break-glass sessions opened"] == ["2", "1", "+1"]
    assert "Privacy office weekly report: Mon 16 Nov 2026 to Sun 22 Nov 2026 (UTC)" in _text(response)
    assert "What is the potassium" not in _text(response)
    [read] = _reads(before)
    assert (read.message, read.details["channel"], read.client_addr) == (
        "weekly report for the week of 2026-11-16",
        "web",
        ADDR,
    )


def test_the_weekly_report_defaults_to_last_week_and_downloads_as_text(officer: Client, world: World) -> None:
    monday = previous_week_start()
    default = officer.get(reverse("security:reports"))
    assert f"Week of {monday:%a} {monday.day} {monday:%b %Y} (UTC)" in _text(default)
    # The date picker shows the week it reports on (it takes ISO dates only, whatever the language).
    assert f'type="date" name="week" value="{monday.isoformat()}"' in default.content.decode()
    download = officer.get(reverse("security:weekly_download"), {"week": "2026-11-16"})
    assert download["Content-Type"] == "text/plain; charset=utf-8"
    assert download["Content-Disposition"] == 'attachment; filename="privacy-weekly-report-2026-11-16.txt"'
    text = download.content.decode()
    assert text.startswith("Privacy office weekly report: Mon 16 Nov 2026 to Sun 22 Nov 2026 (UTC)\n")
    assert f"{'Questions':42}{4:>10}{0:>10}{4:>+8}\n" in text


@pytest.mark.parametrize(
    ("week", "message"),
    [
        ("2099-01-07", "The week of 2099-01-05 has not begun; choose this week or an earlier one."),
        ("last tuesday", "Enter a date, such as 2026-11-16."),
        ("", "Choose a day of the week to report on."),
        ("0001-01-01", "Week: choose a date between 1900 and 9998; the audit holds no other."),
    ],
)
def test_a_bad_week_gets_a_clear_message(officer: Client, world: World, week: str, message: str) -> None:
    for name in ("security:reports", "security:weekly_download"):
        before = _head()
        response = officer.get(reverse(name), {"week": week})
        assert response.status_code == 400
        error = re.search(r'data-testid="report-error">(.*?)</p>', response.content.decode())
        assert error is not None
        assert error.group(1) == message
        [read] = _reads(before)
        assert read.status == "denied"


# ----------------------------------------------------------------------------------------- disclosures


def test_the_accounting_of_disclosures_for_a_patient(officer: Client, world: World) -> None:
    blank = officer.get(reverse("security:disclosures"))
    assert 'data-testid="disclosures"' not in blank.content.decode()
    assert _reads()[-1].message == "accounting of disclosures form viewed"
    before = _head()
    response = officer.get(reverse("security:disclosures"), {"subject": "10010"})
    assert "2 disclosures of patient 10010" in _text(response)
    glass = world.sessions["glass"].pk
    assert _rows(response, "disclosures") == [
        [f"#{world.events['ivan_glass'].seq}", "2026-11-17 08:05:00", "question", "ivan.icu", "nurse",
         "CRITC",
         "ETREAT", f"#{glass}", "labevents", "labevents.valuenum"],
        [f"#{world.events['carla_two'].seq}", "2026-11-16 10:00:00", "question", "carla.cardio", "clinician",
         "CARD", "TREAT", "", "labevents", "labevents.valuenum"],
    ]  # fmt: skip
    assert "Allergies" not in _text(response)  # what they asked is not part of the accounting
    [read] = _reads(before)
    assert (read.message, read.details["subject_id"], read.details["disclosures"]) == (
        "accounting of disclosures for patient 10010",
        10010,
        2,
    )
    ranged = officer.get(
        reverse("security:disclosures"), {"subject": "10010", "since": "2026-11-17", "until": "2026-11-17"}
    )
    assert "1 disclosure of patient 10010" in _text(ranged)
    none = officer.get(reverse("security:disclosures"), {"subject": "77"})
    assert "No disclosure of this patient is recorded." in _text(none)


def test_the_accounting_downloads_as_csv(officer: Client, world: World) -> None:
    response = officer.get(reverse("security:disclosures_download"), {"subject": "10010"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="disclosures-patient-10010.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["seq", "occurred_at", "kind", "username", "role", "department", "purpose_of_use",
                       "breakglass_session_id", "tables", "columns"]  # fmt: skip
    assert [(row[0], row[3]) for row in rows[1:]] == [
        (str(world.events["ivan_glass"].seq), "ivan.icu"),
        (str(world.events["carla_two"].seq), "carla.cardio"),
    ]
    reads = AuditEvent.objects.filter(
        kind=EventKind.AUDIT_ACCESS, message__startswith="accounting of disclosures"
    )
    assert reads.count() == 1  # the download is one read, recorded once


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"subject": "abc"}, "A patient is named by a subject id: a whole number such as 10001."),
        ({"subject": "-4"}, "A subject id is a whole number from 1 to 2147483647."),
        ({"subject": ""}, "Give the patient's subject id."),
        ({"subject": "10010", "since": "soon"}, "Since: enter a date, such as 2026-11-01."),
        ({"subject": "10010", "since": "2026-11-20", "until": "2026-11-10"},
         "The range is empty: since 2026-11-20 is after until 2026-11-10."),
        ({"subject": "10010", "since": "0500-01-01"}, "0500-01-01 is not a date the audit can hold."),
    ],
)  # fmt: skip
def test_bad_disclosure_input_gets_a_clear_message(
    officer: Client, world: World, query: dict[str, str], message: str
) -> None:
    for name in ("security:disclosures", "security:disclosures_download"):
        before = _head()
        response = officer.get(reverse(name), query)
        assert response.status_code == 400
        error = re.search(r'data-testid="disclosures-error">(.*?)</p>', response.content.decode())
        assert error is not None
        assert html.unescape(error.group(1)) == message
        [read] = _reads(before)
        assert read.status == "denied"


def test_an_inactive_officer_is_refused(world: World) -> None:
    client = _client(world.oscar)
    world.oscar.is_active = False
    world.oscar.save()
    response = client.get(reverse("security:page"))  # an inactive account's session no longer signs in
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/security/"


@pytest.fixture
def queue_down(settings: SettingsWrapper) -> Iterator[None]:
    """A Redis broker nobody listens on, as when Redis is down (the pattern of test_pipeline.py)."""
    conf = celery_app.conf
    saved = (conf.CELERY_TASK_ALWAYS_EAGER, conf.CELERY_BROKER_URL)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf.CELERY_TASK_ALWAYS_EAGER = False
    conf.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    # Both pools are made for the broker in use when first needed: an earlier test's producer pool would
    # still publish to its broker (the in-memory one), and the verification would seem queued.
    setattr(celery_app, "_pool", None)  # noqa: B010
    if "amqp" in celery_app.__dict__:
        setattr(celery_app.amqp, "_producer_pool", None)  # noqa: B010
    try:
        yield
    finally:
        conf.CELERY_TASK_ALWAYS_EAGER, conf.CELERY_BROKER_URL = saved
        setattr(celery_app, "_pool", None)  # noqa: B010
        if "amqp" in celery_app.__dict__:
            setattr(celery_app.amqp, "_producer_pool", None)  # noqa: B010


def test_a_verification_that_cannot_be_queued_says_so(
    officer: Client, world: World, queue_down: None, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    page = _verify(officer, django_capture_on_commit_callbacks)
    assert _verdict(page).startswith("NOT VERIFIED. The verification could not be run (")
    assert _verdict(page).endswith(
        "the task queue or the database did not answer. Try again, or run manage.py audit_verify on the "
        "server."
    )
    assert "Verify now" in _text(page)  # no verification is left marked as running
    assert not AuditEvent.objects.filter(message__startswith="audit chain verified").exists()


def test_when_the_read_cannot_be_recorded_nothing_is_shown(
    officer: Client, world: World, guards_lifted: GuardsLifted
) -> None:
    with guards_lifted() as cursor:
        cursor.execute("DELETE FROM audit_chain_head")
    response = officer.get(reverse("security:page"))
    assert response.status_code == 503
    assert "The audit trail cannot be written" in _text(response)
    assert VIP_REASON not in _text(response)


def _audit_verify() -> list[str]:
    """What `manage.py audit_verify` says: its lines when intact, its one error line otherwise."""
    out = io.StringIO()
    try:
        call_command("audit_verify", stdout=out)
    except CommandError as error:
        return [str(error)]
    return out.getvalue().strip().splitlines()


def test_the_console_concludes_what_audit_verify_concludes(
    world: World, settings: SettingsWrapper, tmp_path: Path, guards_lifted: GuardsLifted
) -> None:
    def said() -> list[str]:
        check = audit_chain_check()
        return [check.verdict, *check.lines] if check.ok else [check.verdict]

    assert said() == _audit_verify()
    assert (
        said()[1] == "Checkpoints: no signed checkpoints yet; the events are covered by the hash chain only."
    )
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "audit-signing-key.pem")
    settings.AUDIT_VERIFY_KEY_FILE = ""
    settings.AUDIT_CHECKPOINT_LOG = ""
    signing_key_create()
    first = checkpoint_create()
    _record(at(20, 9), user=world.carla, kind="login", status="ok")
    second = checkpoint_create()
    assert first is not None
    assert second is not None
    assert said() == _audit_verify()
    assert said()[1] == f"Checkpoints: 2 signed checkpoints verify, covering events 1-{second.seq_to}."
    first.delete()  # a checkpoint row is not append-only: deleting one leaves a gap
    assert said() == _audit_verify()
    assert said()[0].startswith(
        f"Audit checkpoints FAIL at checkpoint #{second.seq_from}-#{second.seq_to} (gap)"
    )
    with guards_lifted() as cursor:
        cursor.execute("UPDATE audit_event SET question = 'nothing to see' WHERE seq = 3")
    assert said() == _audit_verify()
    assert said()[0].startswith("Audit chain BROKEN at event seq 3 (edited)")
