"""The Ask page, through Django's test client on the seeded demo hospital (200 patients, seed 7), as of
noon on its reference day: what each role sees, pages of a kept answer, charts, the compliance prompt,
refusals and abstentions, CSV export, and questions run as Celery tasks (eager here, as in the demo)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Protocol

import pytest
import redis
from django.core.cache import cache
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from accessctl.models import MaskingRule, PolicyRule, PurposeConfirmation
from accessctl.readpolicy import forget_catalogs
from accessctl.services import breakglass_end, breakglass_open, policy_load_defaults
from audit.models import AuditEvent, EventKind
from hisplatform.asking import Job, asker_for, job_for
from hisplatform.celery import app as platform_app
from hisplatform.charts import chart_spec
from hisplatform.models import ProjectMembership, ResearchProject
from hisplatform.queries import answer_question, answer_sql
from hisplatform.tasks import answer_question_task
from hisplatform.warehouse.targets import WarehouseTarget
from hisplatform.web.ask import _presented
from nlquery.suggest import example_questions
from tests.accessctl.conftest import NOON, People, _make_people
from tests.accessctl.test_matrix import _patients
from tests.conftest import REFERENCE_DATE
from tests.factories import PASSWORD, UserFactory

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

ASK = "/ask/"
# A Redis database of the running server that no other test uses: a broker with no worker on it.
BROKER = os.environ.get("ASK_TEST_BROKER", "redis://127.0.0.1:6379/15")
TURNAROUND = "average turnaround time per lab test in minutes"  # 54 lab tests for dr.carter: 3 pages
DAILY = "admissions per day in the last 30 days"  # dates and counts: a line chart
MONTHLY = "admissions per month this year"  # the administrator's months, small ones shown as <11
CLINICAL_EXAMPLES = [
    "how many patients are currently admitted?",
    "admissions per day in the last 30 days",
    "lab volume by day this month",
    "top 10 drugs prescribed",
    "mean Hb by gender",
    "how many icu stays this month",
]
OPERATIONAL_EXAMPLES = [
    "how many patients are currently admitted?",
    "admissions per month this year",
    "average length of stay by department",
    "average turnaround time per lab test in minutes",
    "ED visits per day last week",
    "beds per department",
]
COHORT_EXAMPLES = [
    "average age by gender",
    "avg LOS male vs female",
    "mean Hb by gender",
    "average creatinine by age band",
    "admissions by insurance type",
    "number of deaths per year",
]


def _configure(settings: SettingsWrapper, target: WarehouseTarget) -> None:
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()  # a flushing test before this one may have removed the shipped policy
    forget_catalogs()
    settings.WAREHOUSE_URL = target.url
    settings.NLQ_NOW = NOON.strftime("%Y-%m-%d %H:%M:%S")
    cache.clear()


@pytest.fixture
def people(settings: SettingsWrapper, sqlite_warehouse: WarehouseTarget) -> People:
    _configure(settings, sqlite_warehouse)
    return _make_people(sqlite_warehouse)


@pytest.fixture
def patients(sqlite_warehouse: WarehouseTarget) -> dict[str, int]:
    return _patients(sqlite_warehouse)


def _client(people: People, username: str) -> Client:
    client = Client()
    client.force_login(people[username])
    return client


def _ask(client: Client, question: str, **fields: str) -> TestResponse:
    return client.post(ASK, {"question": question, **fields}, follow=True)


def _job_url(response: TestResponse) -> str:
    chain = response.redirect_chain
    assert chain, "asking redirects to the answer's page"
    url, status = chain[-1]
    assert status == 303
    assert re.fullmatch(r"/ask/jobs/[A-Za-z0-9_-]{32}/", url)
    return str(url)


def _questions() -> int:
    return AuditEvent.objects.filter(kind=EventKind.QUESTION).count()


class Response(Protocol):
    content: bytes


class Page(HTMLParser):
    """What a person reads on a page: text by data-testid, the answer table's cells, button values."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
    )

    def __init__(self, response: Response | str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = response if isinstance(response, str) else response.content.decode()
        self.plain = html.unescape(self.html)  # the page's source with entities as the characters shown
        self.texts: dict[str, list[str]] = defaultdict(list)
        self.buttons: dict[str, list[str]] = defaultdict(list)  # name -> values, in page order
        self.links: dict[str, str] = {}  # link text -> href
        self._open: list[tuple[str, str | None, list[str]]] = []
        self._link: tuple[str, list[str]] | None = None
        self.cells: list[list[str]] = []
        self._in_body = False
        self.feed(self.html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "button" and found.get("name"):
            self.buttons[str(found["name"])].append(str(found.get("value") or ""))
        if tag == "a":
            self._link = (str(found.get("href") or ""), [])
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_body:
            self.cells.append([])
        if tag not in self.VOID:
            self._open.append((tag, found.get("data-testid"), []))
        if tag == "td" and self._in_body:
            self._open[-1] = ("td", "@cell", [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        if tag == "a" and self._link is not None:
            self.links[" ".join("".join(self._link[1]).split())] = self._link[0]
            self._link = None
        while self._open:
            opened, testid, parts = self._open.pop()
            text = " ".join("".join(parts).split())
            if testid == "@cell":
                self.cells[-1].append(text)
            elif testid:
                self.texts[testid].append(text)
            if self._open:
                self._open[-1][2].extend(parts)
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)
        if self._link is not None:
            self._link[1].append(data)

    def text(self, testid: str) -> str:
        found = self.texts.get(testid, [])
        assert len(found) == 1, f"{testid}: {found}"
        return found[0]

    def chart(self) -> Any:
        found = re.search(
            r'<script id="answer-chart" type="application/json">(.*?)</script>', self.html, re.S
        )
        return None if found is None else json.loads(html.unescape(found.group(1)))


def _shown(rows: list[list[Any]]) -> list[list[str]]:
    return [["" if v is None else str(v) for v in row] for row in rows]


# --- who may use the page ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, db: None) -> None:
    for response in (
        client.get(ASK),
        client.get("/ask/jobs/" + "a" * 32 + "/"),
        client.post("/ask/export/", {"question": "x"}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=/ask/")


def test_security_officers_and_people_without_a_role_are_refused(people: People) -> None:
    nobody = UserFactory.create(username="no.profile")
    for user in (people["sec.ito"], nobody):
        client = Client()
        client.force_login(user)
        for response in (
            client.get(ASK),
            client.post(ASK, {"question": "how many patients are currently admitted?"}),
            client.get("/ask/jobs/" + "a" * 32 + "/"),
            client.post("/ask/export/", {"question": "how many patients are currently admitted?"}),
        ):
            assert response.status_code == 403
            assert b"You do not have access to this page." in response.content
    assert _questions() == 0


@pytest.mark.parametrize(
    ("username", "purpose", "title", "examples"),
    [
        ("dr.carter", "TREAT", "Questions about your patients", CLINICAL_EXAMPLES),
        ("nurse.patel", "TREAT", "Questions about your patients", CLINICAL_EXAMPLES),
        ("admin.walsh", "HOPERAT", "Operational questions", OPERATIONAL_EXAMPLES),
        ("res.garcia", "HRESCH", "Cohort questions", COHORT_EXAMPLES),
    ],
)
def test_the_page_offers_a_labelled_box_the_roles_purpose_and_its_examples(
    people: People, username: str, purpose: str, title: str, examples: list[str]
) -> None:
    response = _client(people, username).get(ASK)
    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    content = response.content.decode()
    assert '<label for="question">Your question</label>' in content
    assert re.search(r'<textarea id="question" name="question"[^>]* required autofocus', content)
    assert '<label for="purpose">Purpose of use</label>' in content
    selected = re.findall(r'<option value="(\w+)" selected>', content)
    assert selected == [purpose]
    assert re.findall(r'<option value="(\w+)"', content) == ["TREAT", "ETREAT", "HRESCH", "HOPERAT", "BTG"]
    assert 'id="project"' not in content  # one project at most: nothing to choose
    assert 'id="results" aria-live="polite"' in content
    page = Page(response)
    assert f'<h2 id="examples-heading">{title}</h2>' in content
    assert page.buttons["ask_again"] == examples
    assert page.text("history") == (
        "Your recent questions Questions you ask appear here, each one click to ask again."
    )


def test_every_example_is_answered_for_the_roles_it_is_offered_to(
    people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    for username in ("dr.carter", "nurse.moreau", "head.nguyen", "res.garcia", "admin.walsh"):
        user = people[username]
        role = user.profile.role
        for example in example_questions(role):
            answer = answer_question(user=user, question=example.question, now=NOON, target=sqlite_warehouse)
            assert (answer.status, username, example.question) == ("answered", username, example.question)
            assert example.about


def test_history_lists_each_question_once_newest_first_and_asks_again_in_one_click(people: People) -> None:
    client = _client(people, "dr.carter")
    _ask(client, DAILY)
    _ask(client, "mean Hb by gender")
    _ask(client, DAILY)
    page = Page(client.get(ASK))
    assert page.buttons["ask_again"][len(CLINICAL_EXAMPLES) :] == [DAILY, "mean Hb by gender"]
    assert _questions() == 3
    again = Page(client.post(ASK, {"question": "", "ask_again": "mean Hb by gender"}, follow=True))
    assert again.text("interpretation") == (
        "Read as: Showing the average lab result value for hemoglobin per sex of the patient."
    )
    assert _questions() == 4


# --- answers --------------------------------------------------------------------------------------


def test_a_clinician_sees_the_interpretation_table_line_chart_and_sql(
    people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    client = _client(people, "dr.carter")
    response = _ask(client, DAILY)
    _job_url(response)
    page = Page(response)
    truth = answer_question(user=people["dr.carter"], question=DAILY, now=NOON, target=sqlite_warehouse)
    assert len(truth.rows) == 8
    assert page.text("interpretation") == (
        "Read as: Showing the number of hospital admissions per day, in the last 30 days."
    )
    assert page.cells == _shown(truth.rows)
    assert "Rows 1 to 8 of 8" in page.html
    assert page.chart() == {
        "type": "line",
        "labels": [row[0] for row in truth.rows],
        "datasets": [{"label": "Admissions", "data": [row[1] for row in truth.rows]}],
        "x_label": "Day",
        "y_label": "Admissions",
    }
    # Headings in words; the column's own name, as the API and the CSV file give it, is its title.
    assert page.texts["heading"] == ["Day", "Admissions"]
    assert truth.columns == [
        "STRFTIME('%Y-%m-%d', admissions.admittime)",
        "COUNT(DISTINCT admissions.hadm_id)",
    ]
    assert '<th scope="col" title="STRFTIME(&#x27;%Y-%m-%d&#x27;, admissions.admittime)"' in page.html
    assert '<th scope="col" class="num" title="COUNT(DISTINCT admissions.hadm_id)"' in page.html
    assert '<canvas data-chart="answer-chart" role="img"' in page.html
    assert truth.sql is not None
    assert page.text("sql") == "The SQL that answered it " + " ".join(truth.sql.split())
    assert page.texts["notice"] == [
        "Only patients you may see are included: patients with a current stay, or one ended in the last "
        "30 days, in your department's units; patients whose care team you are on."
    ]
    assert 'aria-label="Next page"' not in page.html  # one page only
    assert page.text("answer-facts").startswith("Purpose of use: TREAT. Recorded as audit event ")


def test_pages_of_an_answer_come_from_the_kept_answer_without_asking_again(people: People) -> None:
    client = _client(people, "dr.carter")
    first = _ask(client, TURNAROUND)
    url = _job_url(first)
    job = job_for(job_id=url.split("/")[-2], fetched_by=people["dr.carter"])
    assert job is not None
    assert job.answer is not None
    rows = job.answer.rows
    assert len(rows) == 54
    one = Page(first)
    assert [row[0] for row in one.cells] == [row[0] for row in rows[:25]]
    assert "Rows 1 to 25 of 54" in one.html
    assert f'<a href="{url}?page=2" hx-get="{url}?page=2"' in one.html
    assert 'aria-label="Next page"' in one.html
    assert 'aria-label="Previous page"' not in one.html
    assert one.chart() is None  # 54 categories: more than a bar chart can label
    two = Page(client.get(url, {"page": "2"}))
    assert [row[0] for row in two.cells] == [row[0] for row in rows[25:50]]
    assert "Rows 26 to 50 of 54" in two.html
    assert "Page 2 of 3" in two.html
    assert 'aria-label="Previous page"' in two.html
    three = Page(client.get(url, {"page": "3"}, HTTP_HX_REQUEST="true"))
    assert [row[0] for row in three.cells] == [row[0] for row in rows[50:]]
    assert "<html" not in three.html  # the results region only, for htmx
    assert 'aria-label="Next page"' not in three.html
    # A page past the end is the last page, and a page that is no number the first.
    assert Page(client.get(url, {"page": "99"})).cells == three.cells
    assert Page(client.get(url, {"page": "two"})).cells == one.cells
    assert _questions() == 1


def test_an_administrator_sees_small_cells_suppressed_in_table_and_chart_and_no_sql(
    people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    page = Page(_ask(_client(people, "admin.walsh"), MONTHLY))
    truth = answer_question(user=people["admin.walsh"], question=MONTHLY, now=NOON, target=sqlite_warehouse)
    assert page.cells == _shown(truth.rows)
    assert ["2026-01", "<11"] in page.cells
    assert page.texts["suppressed"] == [
        "Withheld: 7 groups of 1 to 10 patients (small cells), shown as “<11”."
    ]
    assert page.texts["notice"] == ["7 groups of 1 to 10 patients are shown as <11."]
    chart = page.chart()
    assert chart["type"] == "line"
    assert (chart["x_label"], chart["y_label"]) == ("Month", "Admissions")
    assert page.texts["heading"] == ["Month", "Admissions"]
    assert chart["datasets"][0]["data"] == [None if value == "<11" else value for _, value in truth.rows]
    assert None in chart["datasets"][0]["data"]
    assert 'data-testid="sql"' not in page.html
    assert "SELECT" not in page.html


def test_a_category_and_a_number_make_a_bar_chart(people: People, sqlite_warehouse: WarehouseTarget) -> None:
    question = "average length of stay by department"
    page = Page(_ask(_client(people, "admin.walsh"), question))
    truth = answer_question(user=people["admin.walsh"], question=question, now=NOON, target=sqlite_warehouse)
    chart = page.chart()
    assert chart["type"] == "bar"
    assert page.texts["heading"] == ["Department", "Average hospital length of stay (days)"]
    assert [d["label"] for d in chart["datasets"]] == ["Average hospital length of stay (days)"]
    assert chart["labels"] == [row[0] for row in truth.rows]
    assert chart["datasets"][0]["data"] == [None if row[1] == "<11" else row[1] for row in truth.rows]
    # Lengths of stay are rounded for reading; the cell's title and the CSV keep the whole number.
    cardiology = next(row for row in truth.rows if row[0] == "Cardiology")
    assert isinstance(cardiology[1], float)
    assert ["Cardiology", f"{cardiology[1]:.2f}"] in page.cells
    assert f'title="{cardiology[1]!r}"' in page.html


def test_an_answer_cut_off_at_the_row_limit_says_so(people: People, settings: SettingsWrapper) -> None:
    settings.WAREHOUSE_ROW_CAP = 20
    page = Page(_ask(_client(people, "dr.carter"), TURNAROUND))
    assert len(page.cells) == 20
    assert page.text("truncated") == (
        "This answer is incomplete: the warehouse stopped at 20 rows. Narrow the question to see the rest."
    )
    assert "Only the first 20 rows are shown." in page.texts["notice"]


def test_masked_columns_are_said_plainly(
    people: People, patients: dict[str, int], sqlite_warehouse: WarehouseTarget
) -> None:
    """No question reaches a masked column yet (identity numbers are asked for in SQL): how the page
    shows a masked answer of the same pipeline."""
    in_care = patients["in_care"]
    user = people["dr.carter"]
    answer = answer_sql(
        user=user,
        sql=f"SELECT mrn, national_id FROM patient_identity WHERE subject_id = {in_care}",
        now=NOON,
        target=sqlite_warehouse,
    )
    assert answer.status == "answered"
    asker = asker_for(user=user)
    job = Job(None, "the identity numbers of my patient", "", "", False, timezone.now(), answer)
    page = Page(
        render_to_string("hisplatform/ask_region.html", {"asker": asker, **_presented(asker, job, 1)})
    )
    assert page.texts["masked"] == ["Masked: national_id, first 3 and last 4 characters shown."]
    national_id = str(answer.rows[0][1])
    assert page.cells == [[str(answer.rows[0][0]), national_id]]
    assert national_id[3:-4] == "*" * 11


def test_chart_shapes() -> None:
    hidden = {"<11"}
    assert chart_spec(["day", "n"], [["2026-11-01", 3], ["2026-11-02", "<11"]], hidden=hidden) == {
        "type": "line",
        "labels": ["2026-11-01", "2026-11-02"],
        "datasets": [{"label": "n", "data": [3, None]}],
        "x_label": "day",
        "y_label": "n",
    }
    weeks = chart_spec(["week", "a", "b"], [["2026-43", 1, 2.5], ["2026-44", 2, 3.5]])
    assert weeks is not None
    assert weeks["type"] == "line"
    assert weeks["y_label"] == ""
    assert [d["label"] for d in weeks["datasets"]] == ["a", "b"]
    assert chart_spec(["unit", "n"], [[f"unit {i}", i] for i in range(50)])["type"] == "bar"  # type: ignore[index]
    assert chart_spec(["unit", "n"], [[f"unit {i}", i] for i in range(51)]) is None
    assert chart_spec(["unit", "a", "b"], [["x", 1, 2], ["y", 3, 4]]) is None  # bars take one number
    assert chart_spec(["n"], [[1], [2]]) is None
    assert chart_spec(["unit", "name"], [["x", "a"], ["y", "b"]]) is None
    assert chart_spec(["unit", "n"], [["x", "<11"], ["y", "<11"]], hidden=hidden) is None  # nothing to draw
    assert chart_spec(["unit", "n"], [["x", 1]]) is None
    assert chart_spec(["unit", "flag"], [["x", True], ["y", False]]) is None
    # The warehouse's column names are drawn as headings, unless the caller names them.
    named = chart_spec(["STRFTIME('%Y', patients.dod)", "COUNT(*)"], [["2025", 3], ["2026", 4]])
    assert named is not None
    assert (named["x_label"], named["y_label"], named["datasets"][0]["label"]) == ("Year", "Count", "Count")
    deaths = chart_spec(["to_char", "count"], [["2025", 3], ["2026", 4]], labels=["Year", "Deaths"])
    assert deaths is not None
    assert (deaths["x_label"], deaths["y_label"]) == ("Year", "Deaths")


def test_a_researcher_sees_de_identified_rows_under_the_project(people: People) -> None:
    client = _client(people, "res.garcia")
    page = Page(_ask(client, "top 5 most common diagnoses"))
    assert page.text("interpretation") == "Read as: Listing the 5 most frequent diagnosis records."
    assert len(page.cells) == 5
    assert page.texts["notice"] == [
        "Every row shares its identifying columns with at least 4 other rows, so the chance of recognising "
        "a patient is at most 20% (on average 20%); no row is in a group of fewer than 5."
    ]
    assert page.text("answer-facts").startswith("Purpose of use: HRESCH. Research project: RP-2026-014.")
    assert 'name="fresh_pseudonyms"' in page.html


def test_a_researcher_in_several_projects_chooses_one(people: People) -> None:
    second = ResearchProject.objects.create(
        code="RP-2026-020",
        title="Heart failure readmissions",
        purpose="Retrospective cohort study.",
        ethics_reference="REC 26/EM/0200",
        approved_on=REFERENCE_DATE - dt.timedelta(days=10),
        expires_on=REFERENCE_DATE + dt.timedelta(days=100),
    )
    ProjectMembership.objects.create(project=second, user=people["res.garcia"])
    client = _client(people, "res.garcia")
    content = client.get(ASK).content.decode()
    assert '<label for="project">Research project</label>' in content
    assert re.findall(r'<option value="(RP-[\d-]+)"', content) == ["RP-2026-014", "RP-2026-020"]
    unsaid = Page(_ask(client, "average age by gender"))
    assert unsaid.text("refusal").startswith(
        "You belong to several research projects (RP-2026-014, RP-2026-020); say which one this question is "
        "for"
    )
    chosen = Page(_ask(client, "average age by gender", project="RP-2026-020"))
    assert len(chosen.cells) == 2
    assert "Research project: RP-2026-020." in chosen.text("answer-facts")
    assert 'value="RP-2026-020" selected' in chosen.html


@pytest.mark.parametrize(
    ("username", "fields", "testid", "said"),
    [
        ("dr.carter", {"question": ""}, "abstained", "Not answered. The question is empty."),
        (
            "dr.carter",
            {"question": "how many patients " * 100},
            "abstained",
            "Not answered. The question is 1,799 characters long; ask it in at most 1,000.",
        ),
        (
            "dr.carter",
            {"question": DAILY, "purpose": "NOPE"},
            "refusal",
            "'NOPE' is not a purpose of use; use one of TREAT, ETREAT, HRESCH, HOPERAT, BTG.",
        ),
        (
            "res.garcia",
            {"question": "average age by gender", "project": "RP-9999"},
            "refusal",
            "'RP-9999' is not an approved, unexpired project of yours (yours: RP-2026-014).",
        ),
    ],
)
def test_bad_input_gets_a_specific_message_and_an_audit_event(
    people: People, username: str, fields: dict[str, str], testid: str, said: str
) -> None:
    response = _client(people, username).post(ASK, fields, follow=True)
    assert response.status_code == 200
    assert Page(response).text(testid) == said
    assert _questions() == 1


# --- abstentions, refusals, the compliance prompt ------------------------------------------------------


def test_an_abstention_says_why_and_its_suggestions_ask_in_one_click(people: People) -> None:
    client = _client(people, "dr.carter")
    page = Page(_ask(client, "what is the weather today"))
    assert page.text("abstained") == (
        "Not answered. No kind of question the warehouse answers fits everything this question names."
    )
    suggestions = [
        "What are the top 5 most frequent diagnoses since 1 year ago?",
        "What are the 3 most frequently prescribed drugs?",
        "What are the top 4 most common lab tests?",
    ]
    assert page.buttons["ask_again"][: len(suggestions)] == suggestions
    assert 'form="ask-form" formnovalidate name="ask_again"' in page.html
    asked = Page(
        client.post(ASK, {"question": "what is the weather today", "ask_again": suggestions[1]}, follow=True)
    )
    assert asked.text("interpretation") == "Read as: Listing the 3 most frequent drug records."
    assert "You asked: “What are the 3 most frequently prescribed drugs?”" in asked.plain


def test_a_refusal_about_a_patient_outside_care_offers_break_glass_for_that_patient(
    people: People, patients: dict[str, int]
) -> None:
    other = patients["other"]
    page = Page(_ask(_client(people, "dr.carter"), f"what is the gender of patient {other}?"))
    assert page.text("refusal") == (
        f"You may not see this: patient {other} is outside your care relationships (or does not exist). "
        "Open break-glass access if this is an emergency."
    )
    assert '<div class="refusal" role="alert" data-testid="refusal">' in page.html
    assert page.links["Emergency? Open break-glass"] == f"/breakglass/?patient={other}"
    assert page.cells == []
    assert 'data-testid="export"' not in page.html


def test_a_kept_answer_given_under_break_glass_is_withdrawn_when_the_session_ends(
    people: People, patients: dict[str, int], sqlite_warehouse: WarehouseTarget
) -> None:
    other = patients["other"]
    session = breakglass_open(
        user=people["dr.carter"],
        reason="unconscious",
        justification="Found collapsed in the corridor, no history available.",
        password=PASSWORD,
        scope="patient",
        subject_id=other,
        target=sqlite_warehouse,
    )
    client = _client(people, "dr.carter")
    asked = _ask(client, f"what is the gender of patient {other}?")
    url = _job_url(asked)
    assert Page(asked).cells != []
    breakglass_end(user=people["dr.carter"], session_id=session.pk)

    page = Page(client.get(url))
    assert page.text("refusal").startswith(f"Your break-glass access to patient {other} ended at ")
    assert "so this answer, given under it, is no longer shown." in page.text("refusal")
    assert page.cells == []
    assert Page(client.get(url + "?page=2")).cells == []


@pytest.mark.parametrize("username", ["admin.walsh", "res.garcia"])
def test_refusals_of_roles_without_break_glass_offer_none(
    people: People, patients: dict[str, int], username: str
) -> None:
    page = Page(_ask(_client(people, username), f"what is the gender of patient {patients['in_care']}?"))
    assert page.text("refusal")
    assert "Emergency? Open break-glass" not in page.links


def test_special_categories_need_the_purpose_confirmed_first(
    people: People, patients: dict[str, int], sqlite_warehouse: WarehouseTarget
) -> None:
    client = _client(people, "dr.carter")
    question = f"what was the name of the diagnosis that patient {patients['special']} received last?"
    prompt = Page(_ask(client, question))
    assert prompt.text("confirm-message") == (
        "This answer may include special-category information (genetics, HIV, psychiatry, reproductive "
        "health and substance use). Confirm that you need it for treatment to see it; the confirmation is "
        "recorded."
    )
    assert prompt.texts["category"] == [
        "genetics",
        "HIV",
        "psychiatry",
        "reproductive health",
        "substance use",
    ]
    assert '<label for="confirm-purpose">The purpose you confirm</label>' in prompt.html
    assert prompt.cells == []
    assert not PurposeConfirmation.objects.exists()
    confirmed = _ask(client, question, confirm="1", purpose="TREAT")
    page = Page(confirmed)
    assert (
        page.text("interpretation")
        == f"Read as: Showing the last diagnosis of patient {patients['special']}."
    )
    job = job_for(job_id=_job_url(confirmed).split("/")[-2], fetched_by=people["dr.carter"])
    assert job is not None
    assert job.answer is not None
    confirmation = PurposeConfirmation.objects.get()
    assert (confirmation.username, confirmation.purpose) == ("dr.carter", "TREAT")
    assert confirmation.audit_event_seq == job.answer.audit_event
    # The CSV of a confirmed answer is asked with the confirmation too.
    assert '<input type="hidden" name="confirm" value="1">' in page.html
    truth = answer_question(
        user=people["dr.carter"], question=question, confirm_special=True, now=NOON, target=sqlite_warehouse
    )
    assert page.cells == _shown(truth.rows)
    assert page.cells


# --- CSV export ---------------------------------------------------------------------------------------


def test_the_csv_file_is_the_answer_and_is_audited_as_an_export(people: People) -> None:
    client = _client(people, "dr.carter")
    url = _job_url(_ask(client, TURNAROUND))
    job = job_for(job_id=url.split("/")[-2], fetched_by=people["dr.carter"])
    assert job is not None
    assert job.answer is not None
    exported = client.post("/ask/export/", {"question": TURNAROUND, "purpose": "", "project": ""})
    assert exported.status_code == 200
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    assert exported["Content-Disposition"].startswith('attachment; filename="answer-')
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0] == job.answer.columns
    assert rows[1:] == _shown(job.answer.rows)
    event = AuditEvent.objects.get(kind=EventKind.EXPORT)
    assert (event.username, event.status, event.details["channel"]) == ("dr.carter", "answered", "web")
    assert event.details["export"]["rows"] == 54


def test_a_refused_export_says_why_on_the_page(people: People, patients: dict[str, int]) -> None:
    question = f"what is the gender of patient {patients['in_care']}?"
    response = _client(people, "admin.walsh").post("/ask/export/", {"question": question})
    assert response.status_code == 403
    page = Page(response)
    assert page.text("export-refused").startswith("The CSV file was not made. ")
    assert "Content-Disposition" not in response
    event = AuditEvent.objects.get(kind=EventKind.EXPORT)
    assert (event.status, event.details["channel"]) == ("denied", "web")
    assert f">{html.escape(question)}</textarea>" in page.html  # the question stays in the box


# --- jobs: ownership, the task, the queue and the cache -------------------------------------------------


def test_another_users_job_is_not_found(people: People) -> None:
    url = _job_url(_ask(_client(people, "dr.carter"), DAILY))
    nurse = _client(people, "nurse.moreau")
    assert nurse.get(url).status_code == 404
    assert nurse.get(url, HTTP_HX_REQUEST="true").status_code == 404
    assert nurse.get("/ask/jobs/" + "A" * 32 + "/").status_code == 404
    assert nurse.get("/ask/jobs/not-a-job/").status_code == 404
    assert _client(people, "dr.carter").get(url).status_code == 200


def test_an_htmx_question_answers_into_the_results_region_and_pushes_its_url(people: People) -> None:
    response = _client(people, "dr.carter").post(ASK, {"question": DAILY}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert re.fullmatch(r"/ask/jobs/[A-Za-z0-9_-]{32}/", response["HX-Push-Url"])
    assert "HX-Request" in response["Vary"]
    page = Page(response)
    assert "<html" not in page.html
    assert len(page.cells) == 8


@contextmanager
def _broker(url: str) -> Iterator[None]:
    """Celery sending to a real broker at `url` with no worker (not running tasks in-process)."""
    app: Any = platform_app  # its pools are private attributes, untyped
    conf, amqp = app.conf, app.amqp
    eager, broker = conf.task_always_eager, conf.broker_url
    pools = (app._pool, amqp._producer_pool)
    # Settings come from Django's under the CELERY_ namespace: changed under those names. The pools of
    # connections and producers are made for the broker in use when first needed: made afresh.
    conf.update(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=url)
    app._pool, amqp._producer_pool = None, None
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        conf.update(CELERY_TASK_ALWAYS_EAGER=eager, CELERY_BROKER_URL=broker)
        app._pool, amqp._producer_pool = pools


def test_a_question_queued_for_a_worker_is_polled_until_the_worker_answers_it(people: People) -> None:
    client = _client(people, "dr.carter")
    queue: Any = redis.Redis.from_url(BROKER)
    with _broker(BROKER):
        response = client.post(
            ASK,
            {"question": DAILY},
            HTTP_HX_REQUEST="true",
            HTTP_USER_AGENT="Ward 4 PC",
            REMOTE_ADDR="10.4.0.7",
        )
    job_id = response["HX-Push-Url"].split("/")[-2]
    url = f"/ask/jobs/{job_id}/"
    try:
        # The broker holds the job's id and nothing else: Celery logs arguments, questions name patients.
        messages = [json.loads(raw) for raw in queue.lrange("celery", 0, -1)]
        mine = [m for m in messages if m["headers"]["task"] == "hisplatform.answer_question"]
        assert [m["headers"]["argsrepr"] for m in mine] == [repr((job_id,))]
        assert json.loads(base64.b64decode(mine[0]["body"]))[:2] == [[job_id], {}]
        assert not any(DAILY in json.dumps(m) for m in mine)
    finally:
        for raw in queue.lrange("celery", 0, -1):
            if job_id in raw.decode():
                queue.lrem("celery", 0, raw)
        if not queue.llen("celery"):
            queue.delete("_kombu.binding.celery")  # the queue's declaration, left by the producer
    waiting = Page(response)
    assert waiting.text("pending") == (
        "Working on it… Your question is being answered; the answer appears here when it is ready. Refresh"
    )
    assert f'hx-get="{url}" hx-trigger="every 1s" hx-swap="outerHTML"' in waiting.html
    assert waiting.links["Refresh"] == url  # without JavaScript: a link to reload, no meta refresh
    whole = client.get(url).content.decode()
    assert "Working on it…" in html.unescape(whole)
    assert "http-equiv" not in whole
    assert Page(client.get(url, HTTP_HX_REQUEST="true")).texts["pending"]
    assert _questions() == 0

    answer_question_task.apply(args=(job_id,))  # what the worker does with the message
    done = Page(client.get(url, HTTP_HX_REQUEST="true"))
    assert done.text("interpretation") == (
        "Read as: Showing the number of hospital admissions per day, in the last 30 days."
    )
    assert len(done.cells) == 8
    assert "hx-trigger" not in done.html  # the polling stopped
    assert 'data-testid="history" hx-swap-oob="true"' in done.html
    event = AuditEvent.objects.get(kind=EventKind.QUESTION)
    assert (event.username, event.question, event.details["channel"]) == ("dr.carter", DAILY, "web")
    assert (event.client_addr, event.user_agent) == ("10.4.0.7", "Ward 4 PC")  # the asker's, not the worker's
    # A task delivered again (its worker died before acknowledging) finds the job answered.
    answer_question_task.apply(args=(job_id,))
    assert _questions() == 1


def test_with_the_broker_down_the_question_is_answered_in_the_request(
    people: People, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(people, "dr.carter")
    caplog.set_level(logging.DEBUG)
    with _broker("redis://127.0.0.1:1/0"):  # nothing listens on port 1
        response = _ask(client, TURNAROUND)
    url = _job_url(response)
    page = Page(response)
    assert len(page.cells) == 25  # answered, kept, and paged as usual, with nothing alarming said
    assert "Rows 1 to 25 of 54" in page.html
    assert "refusal" not in page.texts
    assert len(Page(client.get(url, {"page": "3"})).cells) == 4
    assert _questions() == 1
    assert "Ask: the task queue is unavailable (OperationalError); answering in the request." in caplog.text
    assert TURNAROUND not in caplog.text
    assert "SELECT" not in caplog.text


def test_with_the_cache_down_the_answer_is_shown_whole_without_pages(
    people: People, settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(people, "dr.carter")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    caplog.set_level(logging.DEBUG)
    response = client.post(ASK, {"question": TURNAROUND})
    assert response.status_code == 200  # no redirect: there is no kept answer to go to
    page = Page(response)
    assert len(page.cells) == 54
    assert "54 rows" in page.html
    assert 'aria-label="Next page"' not in page.html
    assert "Ask: answers cannot be kept (ConnectionError); answering in the request." in caplog.text
    assert TURNAROUND not in caplog.text
    unavailable = client.get("/ask/jobs/" + "a" * 32 + "/")
    assert unavailable.status_code == 503
    assert "Kept answers cannot be read right now" in unavailable.content.decode()
    # A page polling for an answer is told too (htmx swaps in no error response, so this one is 200).
    polled = client.get("/ask/jobs/" + "a" * 32 + "/", HTTP_HX_REQUEST="true")
    assert polled.status_code == 200
    assert Page(polled).text("unavailable") == (
        "Kept answers cannot be read right now, so this page of the answer cannot be shown. Ask the question "
        "again."
    )
    # Asked from the page with htmx: the whole answer swapped into the results region.
    inline = Page(client.post(ASK, {"question": DAILY}, HTTP_HX_REQUEST="true"))
    assert "<html" not in inline.html
    assert len(inline.cells) == 8
    assert _questions() == 2  # each question asked once, answered in its request


def test_the_page_reads_the_postgresql_warehouse_alike(
    settings: SettingsWrapper, pg_warehouse: WarehouseTarget, sqlite_warehouse: WarehouseTarget
) -> None:
    _configure(settings, pg_warehouse)
    people = _make_people(pg_warehouse)
    on_pg = Page(_ask(_client(people, "dr.carter"), DAILY))
    truth = answer_question(user=people["dr.carter"], question=DAILY, now=NOON, target=sqlite_warehouse)
    assert on_pg.cells == _shown(truth.rows)
    assert on_pg.chart()["type"] == "line"
    # PostgreSQL names the columns "to_char" and "count"; the SQL dr.carter may see names them better.
    assert on_pg.texts["heading"] == ["Day", "Admissions"]
    assert on_pg.chart()["x_label"] == "Day"
