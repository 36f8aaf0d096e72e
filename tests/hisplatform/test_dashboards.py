"""The administrator's dashboards: every figure equals the warehouse's own numbers with small groups shown
as <11, each query is one audit event, other roles are refused, and bad dates get a clear message."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults, policy_version_bump
from audit.models import AuditEvent
from hisplatform.dashboards import MAX_DAYS, Period
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, _make_people, rows_of

URL = "/dashboards/"
# Two years up to the reference day, by month: wide enough that the 200-patient hospital has groups of
# 11 patients or more in every figure, and small ones beside them.
START, END = dt.date(2024, 11, 26), dt.date(2026, 11, 25)
RANGE = {"start": START.isoformat(), "end": END.isoformat(), "by": "month"}
LOWER, UPPER = dt.datetime(2024, 11, 26), dt.datetime(2026, 11, 26)
NOW = NOON.replace(tzinfo=None)
FIGURE_KEYS = ["census", "flow", "los", "readmissions", "labs", "diagnoses"]
QUERIES_PER_VIEW = 7  # admissions and discharges are two queries of one figure


@pytest.fixture
def hospital(settings: SettingsWrapper, db: None, request: pytest.FixtureRequest) -> Hospital:
    """The seeded demo hospital (SQLite, or PostgreSQL when parametrized so) as of noon on its reference
    day, with its staff as accounts."""
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()  # a flushing test before this one may have removed the shipped policy
    forget_catalogs()
    name = getattr(request, "param", "sqlite_warehouse")
    target: WarehouseTarget = request.getfixturevalue(name)
    settings.WAREHOUSE_URL = target.url
    settings.NLQ_NOW = NOW.strftime("%Y-%m-%d %H:%M:%S")
    return Hospital(target, _make_people(target))


@dataclass
class Hospital:
    target: WarehouseTarget
    people: People

    def client_for(self, username: str) -> Client:
        client = Client()
        client.force_login(self.people[username])
        return client

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return rows_of(self.target)(sql)


# --- Reading the page as a person would -------------------------------------------------------------


@dataclass
class Shown:
    """One figure on the page: its table (row header first), notes, refusal and chart."""

    rows: list[list[str]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refusal: str = ""
    chart: dict[str, Any] | None = None
    canvas: bool = False


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, Shown] = {}
        self.current: Shown | None = None
        self.depth = 0
        self.text: list[str] | None = None
        self.target = ""
        self.row: list[str] | None = None
        self.section = ""
        self.chart_id = ""
        self.problems: list[str] = []
        self.shown_range = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("data-figure"):
            self.current = self.figures.setdefault(str(found["data-figure"]), Shown())
            self.depth = 0
        if tag == "section" and self.current is not None:
            self.depth += 1
        testid = found.get("data-testid") or ""
        if testid in ("range-problems", "range-shown"):
            self.target, self.text = testid, []
        if self.current is None:
            return
        if tag == "thead":
            self.section = "head"
        elif tag == "tbody":
            self.section = "body"
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.target, self.text = "cell", []
        elif testid in ("figure-note", "figure-refusal"):
            self.target, self.text = testid, []
        elif tag == "canvas":
            self.current.canvas = True
        elif testid == "chart-data":
            self.target, self.text = "chart", []

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        text = " ".join("".join(self.text or []).split())
        if tag == "section" and self.current is not None:
            self.depth -= 1
            if self.depth == 0:
                self.current = None
            return
        if self.target == "range-shown" and tag == "p":
            self.shown_range, self.text, self.target = text, None, ""
        elif self.target == "range-problems" and tag == "p":
            self.problems.append(text)
            self.text = []
        elif self.target == "range-problems" and tag == "div":
            self.text, self.target = None, ""
        if self.current is None:
            return
        if self.target == "cell" and tag in ("td", "th") and self.row is not None:
            self.row.append(text)
            self.text, self.target = None, ""
        elif tag == "tr" and self.row is not None:
            if self.section == "head":
                self.current.headers.extend(self.row)
            else:
                self.current.rows.append(self.row)
            self.row = None
        elif self.target == "figure-note" and tag == "p":
            self.current.notes.append(text)
            self.text, self.target = None, ""
        elif self.target == "figure-refusal" and tag == "p":
            self.current.refusal = text
            self.text, self.target = None, ""
        elif self.target == "chart" and tag == "div":
            self.current.chart = json.loads("".join(self.text or []))
            self.text, self.target = None, ""


def read_page(html: bytes) -> _Page:
    page = _Page()
    page.feed(html.decode())
    return page


def dashboard_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(details__channel="dashboard").order_by("seq"))


# --- The truth, worked out in Python from plain reads of the warehouse --------------------------------


def _moment(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


def _in_range(moment: dt.datetime | None) -> bool:
    return moment is not None and LOWER <= moment < UPPER


def _shown(patients: int, text: str) -> str:
    """What the aggregate lane shows: groups of 1 to 10 patients as <11."""
    return "<11" if 1 <= patients <= 10 else text


@dataclass
class Group:
    patients: set[int] = field(default_factory=set)
    count: int = 0
    values: list[float] = field(default_factory=list)
    others: set[int] = field(default_factory=set)  # a second source's patients (a LEFT JOIN's)
    other_count: set[int] = field(default_factory=set)

    def size(self) -> int:
        return min((n for n in (len(self.patients), len(self.others)) if n > 0), default=0)


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return sum(listed) / len(listed)


def expected_census(hospital: Hospital) -> list[list[str]]:
    units = sorted(str(row[0]) for row in hospital.rows("SELECT careunit FROM care_units"))
    present: dict[str, set[int]] = defaultdict(set)
    for careunit, subject, event, intime, outtime in hospital.rows(
        "SELECT careunit, subject_id, eventtype, intime, outtime FROM transfers"
    ):
        start, end = _moment(intime), _moment(outtime)
        if event != "discharge" and start is not None and start <= NOW and (end is None or end > NOW):
            present[str(careunit)].add(int(subject))
    return [[unit, _shown(len(present[unit]), str(len(present[unit])))] for unit in units]


def expected_flow(hospital: Hospital) -> list[list[str]]:
    months = Period(START, END, "month").buckets()
    series: list[dict[str, Group]] = [defaultdict(Group), defaultdict(Group)]
    for subject, admitted, discharged in hospital.rows(
        "SELECT subject_id, admittime, dischtime FROM admissions"
    ):
        for groups, moment in zip(series, (_moment(admitted), _moment(discharged)), strict=True):
            if _in_range(moment):
                assert moment is not None
                group = groups[moment.strftime("%Y-%m")]
                group.patients.add(int(subject))
                group.count += 1
    return [
        [month] + [_shown(len(groups[month].patients), f"{groups[month].count:,}") for groups in series]
        for month in months
    ]


def _admissions(hospital: Hospital) -> tuple[list[tuple[Any, ...]], dict[int, str]]:
    departments = dict(
        hospital.rows(
            "SELECT c.careunit, d.name FROM care_units c "
            "JOIN departments d ON d.department_id = c.department_id"
        )
    )
    admitted_to = {
        int(hadm): str(departments[unit])
        for hadm, unit in hospital.rows("SELECT hadm_id, careunit FROM transfers WHERE eventtype = 'admit'")
        if unit in departments
    }
    stays = hospital.rows(
        "SELECT hadm_id, subject_id, admittime, dischtime, discharge_location FROM admissions"
    )
    return stays, admitted_to


def expected_los(hospital: Hospital) -> list[list[str]]:
    stays, admitted_to = _admissions(hospital)
    groups: dict[str, Group] = defaultdict(Group)
    for hadm, subject, admitted, discharged, _ in stays:
        end, start = _moment(discharged), _moment(admitted)
        if _in_range(end) and int(hadm) in admitted_to:
            assert end is not None
            assert start is not None
            group = groups[admitted_to[int(hadm)]]
            group.patients.add(int(subject))
            group.count += 1
            group.values.append((end - start).total_seconds() / 86400)
    return [
        [name, _shown(len(g.patients), f"{g.count:,}"), _shown(len(g.patients), f"{_mean(g.values):,.1f}")]
        for name, g in sorted(groups.items())
    ]


def expected_readmissions(hospital: Hospital) -> list[list[str]]:
    stays, admitted_to = _admissions(hospital)
    by_patient: dict[int, list[tuple[int, dt.datetime]]] = defaultdict(list)
    for hadm, subject, admitted, *_ in stays:
        moment = _moment(admitted)
        assert moment is not None
        by_patient[int(subject)].append((int(hadm), moment))
    groups: dict[str, Group] = defaultdict(Group)
    readmitted: dict[str, set[int]] = defaultdict(set)
    for hadm, subject, _, discharged, location in stays:
        end = _moment(discharged)
        if not _in_range(end) or int(hadm) not in admitted_to or str(location or "").lower() == "died":
            continue
        assert end is not None
        name = admitted_to[int(hadm)]
        groups[name].patients.add(int(subject))
        groups[name].count += 1
        for other, start in by_patient[int(subject)]:
            if end < start <= end + dt.timedelta(days=30):
                readmitted[name].add(other)
                groups[name].others.add(int(subject))
    rows = []
    for name, g in sorted(groups.items()):
        size = g.size()
        back = len(readmitted[name])
        rate = f"{100 * back / g.count:.1f}%" if not 1 <= size <= 10 else "—"
        rows.append([name, _shown(size, f"{g.count:,}"), _shown(size, f"{back:,}"), rate])
    return rows


def expected_labs(hospital: Hospital) -> list[list[str]]:
    items = {int(i): (str(label), str(fluid or "")) for i, label, fluid in hospital.rows(
        "SELECT itemid, label, fluid FROM d_labitems"
    )}  # fmt: skip
    groups: dict[tuple[str, str], Group] = defaultdict(Group)
    for itemid, subject, charted, stored in hospital.rows(
        "SELECT itemid, subject_id, charttime, storetime FROM labevents "
        f"WHERE charttime >= '{LOWER}' AND charttime < '{UPPER}'"
    ):
        group = groups[items[int(itemid)]]
        group.patients.add(int(subject))
        group.count += 1
        start, end = _moment(charted), _moment(stored)
        if start is not None and end is not None:
            group.values.append((end - start).total_seconds() / 60)
    shown = [(key, g) for key, g in groups.items() if len(g.patients) >= 11]
    top = sorted(shown, key=lambda item: (-item[1].count, item[0]))[:15]
    return [[label, fluid, f"{g.count:,}", f"{_mean(g.values):,.1f}"] for (label, fluid), g in top]


def expected_diagnoses(hospital: Hospital) -> list[list[str]]:
    titles = dict(hospital.rows("SELECT icd_code, long_title FROM d_icd_diagnoses"))
    groups: dict[str, Group] = defaultdict(Group)
    stays: dict[str, set[int]] = defaultdict(set)
    for hadm, subject, code, charted in hospital.rows(
        "SELECT hadm_id, subject_id, icd_code, charttime FROM diagnoses_icd"
    ):
        if _in_range(_moment(charted)):
            title = str(titles[code])
            groups[title].patients.add(int(subject))
            stays[title].add(int(hadm))
    shown = [(title, len(stays[title])) for title, g in groups.items() if len(g.patients) >= 11]
    return [[title, f"{n:,}"] for title, n in sorted(shown, key=lambda item: (-item[1], item[0]))[:10]]


EXPECTED: dict[str, Callable[[Hospital], list[list[str]]]] = {
    "census": expected_census,
    "flow": expected_flow,
    "los": expected_los,
    "readmissions": expected_readmissions,
    "labs": expected_labs,
    "diagnoses": expected_diagnoses,
}


def _close(shown: list[list[str]], expected: list[list[str]]) -> None:
    """Equal, except that means may differ in the last digit (the databases' own date arithmetic)."""
    assert len(shown) == len(expected)
    for got, want in zip(shown, expected, strict=True):
        assert len(got) == len(want), (got, want)
        for a, b in zip(got, want, strict=True):
            if a != b and "." in a and "." in b:
                assert abs(float(a.replace(",", "")) - float(b.replace(",", ""))) <= 0.1, (got, want)
            else:
                assert a == b, (got, want)


# --- The tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hospital", ["sqlite_warehouse", "pg_warehouse"], indirect=True)
def test_every_figure_equals_the_warehouse_with_small_groups_shown_as_under_11(hospital: Hospital) -> None:
    response = hospital.client_for("admin.walsh").get(URL, RANGE)
    assert response.status_code == 200
    page = read_page(response.content)
    assert page.shown_range == (
        "Figures for 2024-11-26 to 2026-11-25, time series by month; census as of 2026-11-25 12:00 UTC."
    )
    assert list(page.figures) == FIGURE_KEYS
    for key, expected in EXPECTED.items():
        figure = page.figures[key]
        assert figure.refusal == "", key
        _close(figure.rows, expected(hospital))
    # The demo hospital has both: groups shown, and groups of 1 to 10 patients hidden.
    cells = [cell for key in ("census", "flow", "los") for row in page.figures[key].rows for cell in row[1:]]
    assert "<11" in cells
    assert any(cell.replace(",", "").isdigit() and int(cell.replace(",", "")) >= 11 for cell in cells)
    assert page.figures["flow"].headers == ["Month", "Admissions", "Discharges"]
    assert page.figures["labs"].headers == ["Test", "Specimen", "Results", "Mean turnaround (minutes)"]


def test_hidden_groups_are_counted_in_a_note_and_are_gaps_in_the_chart(hospital: Hospital) -> None:
    page = read_page(hospital.client_for("admin.walsh").get(URL, RANGE).content)
    los = page.figures["los"]
    expected = expected_los(hospital)
    small = sum(1 for row in expected if row[1] == "<11")
    assert 0 < small < len(expected)
    assert los.notes == [f"{small} groups under 11 patients hidden (shown as <11)."]
    assert los.canvas
    assert los.chart is not None
    assert los.chart["type"] == "bar"
    # Long labels are cut short on the chart; the table has them in full.
    assert los.chart["labels"] == [name if len(name) <= 40 else name[:39] + "…" for name, *_ in expected]
    means = [None if days == "<11" else round(float(days), 1) for *_, days in expected]
    assert [None if v is None else round(v, 1) for v in los.chart["datasets"][0]["data"]] == means
    flow = page.figures["flow"]
    assert flow.chart is not None
    assert flow.chart["type"] == "line"
    assert [d["label"] for d in flow.chart["datasets"]] == ["Admissions", "Discharges"]
    assert None in flow.chart["datasets"][0]["data"]
    # The census of the 200-patient hospital has nobody or a few in every unit: no chart of gaps and zeros.
    census = page.figures["census"]
    small = sum(1 for _, shown in expected_census(hospital) if shown == "<11")
    assert census.chart is None
    assert not census.canvas
    assert census.notes == [
        "Nothing to chart: every group is empty or hidden.",
        f"{small} groups under 11 patients hidden (shown as <11).",
    ]
    # Never a number from 1 to 10 in any table: a small group is shown as <11 or not at all.
    for figure in page.figures.values():
        for row in figure.rows:
            for cell in row[1:]:
                number = cell.replace(",", "")
                assert not (number.isdigit() and 1 <= int(number) <= 10), (row, cell)


def test_ranked_figures_leave_hidden_groups_out_and_say_how_many(hospital: Hospital) -> None:
    page = read_page(hospital.client_for("admin.walsh").get(URL, RANGE).content)
    titles = dict(hospital.rows("SELECT icd_code, long_title FROM d_icd_diagnoses"))
    patients: dict[str, set[int]] = defaultdict(set)
    for subject, code, charted in hospital.rows("SELECT subject_id, icd_code, charttime FROM diagnoses_icd"):
        if _in_range(_moment(charted)):
            patients[str(titles[code])].add(int(subject))
    small = sum(1 for group in patients.values() if len(group) < 11)
    assert page.figures["diagnoses"].notes == [f"{small} groups under 11 patients hidden (not ranked)."]
    assert len(page.figures["diagnoses"].rows) == 10
    assert len(page.figures["labs"].rows) == 15


def test_each_query_of_each_figure_is_one_audit_event_on_the_dashboard_channel(hospital: Hospital) -> None:
    before = len(dashboard_events())
    client = hospital.client_for("admin.walsh")
    client.get(URL, RANGE, HTTP_USER_AGENT="pytest-dashboards")
    events = dashboard_events()[before:]
    assert len(events) == QUERIES_PER_VIEW
    assert {event.username for event in events} == {"admin.walsh"}
    assert {event.status for event in events} == {"answered"}
    assert {event.role for event in events} == {"administrator"}
    assert {event.user_agent for event in events} == {"pytest-dashboards"}
    assert {event.purpose_of_use for event in events} == {"HOPERAT"}
    assert [event.question.split(".", 1)[0] for event in events] == [
        "Dashboard: Census by care unit",
        "Dashboard: Admissions and discharges",
        "Dashboard: Admissions and discharges (query 2)",
        "Dashboard: Length of stay by department",
        "Dashboard: 30-day readmissions",
        "Dashboard: Lab volume and turnaround",
        "Dashboard: Top diagnoses",
    ]
    assert "2024-11-26 to 2026-11-25" in events[3].question
    assert all(event.sql_executed for event in events)
    # A second view is audited again: nothing is served without the pipeline.
    client.get(URL, RANGE)
    assert len(dashboard_events()) == before + 2 * QUERIES_PER_VIEW


@pytest.mark.parametrize("username", ["dr.carter", "head.nguyen", "sec.ito", "res.garcia", "nurse.patel"])
def test_other_roles_get_the_not_allowed_page_and_nothing_is_queried(
    hospital: Hospital, username: str
) -> None:
    before = len(dashboard_events())
    response = hospital.client_for(username).get(URL, RANGE)
    assert response.status_code == 403
    assert b"<h1>Not allowed</h1>" in response.content
    assert b"data-figure" not in response.content
    assert len(dashboard_events()) == before


def test_anonymous_visitor_is_sent_to_sign_in(client: Client, db: None) -> None:
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/dashboards/"


def test_without_dates_the_last_30_days_up_to_now_are_shown(hospital: Hospital) -> None:
    response = hospital.client_for("admin.walsh").get(URL)
    page = read_page(response.content)
    assert page.problems == []
    assert page.shown_range == (
        "Figures for 2026-10-27 to 2026-11-25, time series by day; census as of 2026-11-25 12:00 UTC."
    )
    assert len(page.figures["flow"].rows) == 30
    assert page.figures["flow"].rows[0][0] == "2026-10-27"
    assert b'value="2026-10-27"' in response.content
    assert b'value="2026-11-25"' in response.content


_WRITE_AS = "is not a date: write it as YYYY-MM-DD, e.g. 2026-11-25."


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2026-13-01"}, f"The start date '2026-13-01' {_WRITE_AS}"),
        ({"end": "yesterday"}, f"The end date 'yesterday' {_WRITE_AS}"),
        ({"start": "x" * 5000}, f"The start date '{'x' * 20}…' {_WRITE_AS}"),
        ({"start": "2026-11-20", "end": "2026-11-01"},
         "The start date 2026-11-20 is after the end date 2026-11-01."),
        ({"start": "2023-01-01", "end": "2026-11-25"},
         f"The range 2023-01-01 to 2026-11-25 is longer than 2 years; choose at most {MAX_DAYS} days."),
        ({"end": "2027-01-01"},
         "The end date 2027-01-01 is after today (2026-11-25); the figures stop at today."),
        ({"by": "hour"}, "Group the time series by day, week or month."),
    ],
)  # fmt: skip
def test_bad_dates_get_a_clear_message_and_the_default_range(
    hospital: Hospital, query: dict[str, str], message: str
) -> None:
    response = hospital.client_for("admin.walsh").get(URL, query)
    assert response.status_code == 200
    page = read_page(response.content)
    assert page.problems == [message, "Showing the last 30 days instead."]
    assert page.shown_range.startswith("Figures for 2026-10-27 to 2026-11-25, time series by day;")
    assert list(page.figures) == FIGURE_KEYS


def test_a_range_of_exactly_two_years_is_accepted_and_weeks_start_on_monday(hospital: Hospital) -> None:
    start = END - dt.timedelta(days=MAX_DAYS - 1)
    page = read_page(
        hospital.client_for("admin.walsh")
        .get(URL, {"start": start.isoformat(), "end": END.isoformat(), "by": "week"})
        .content
    )
    assert page.problems == []
    weeks = [row[0] for row in page.figures["flow"].rows]
    assert weeks[0] == "2024-11-25"  # the Monday of the week holding 2024-11-25 (a Monday)
    assert all(dt.date.fromisoformat(week).weekday() == 0 for week in weeks)
    assert page.figures["flow"].headers[0] == "Week from"


def test_htmx_gets_the_figures_alone_and_a_plain_get_the_whole_page(hospital: Hospital) -> None:
    client = hospital.client_for("admin.walsh")
    swapped = client.get(URL, RANGE, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="figures")
    assert swapped.status_code == 200
    assert b"<html" not in swapped.content
    assert b'data-figure="census"' in swapped.content
    assert "HX-Request" in swapped["Vary"]
    assert "no-store" in swapped["Cache-Control"]
    restored = client.get(URL, RANGE, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert b"<html" in restored.content
    whole = client.get(URL, RANGE)
    assert b"<html" in whole.content
    assert (
        b'<form method="get" action="/dashboards/" hx-get="/dashboards/" hx-target="#figures"'
        in whole.content
    )
    assert b"vendor/chart.js-4.6.1/chart.umd.min.js" in whole.content
    assert b'<label for="range-start">From</label>' in whole.content


def test_a_figure_the_pipeline_refuses_shows_its_message_and_the_others_stay(hospital: Hospital) -> None:
    # Without the administrators' rule for organisational data (units, departments), the figures that
    # read those tables are refused by policy; the others are still answered.
    PolicyRule.objects.filter(role="administrator", data_class="organisational").delete()
    policy_version_bump()
    response = hospital.client_for("admin.walsh").get(URL, RANGE)
    assert response.status_code == 200
    page = read_page(response.content)
    refused = {key for key, figure in page.figures.items() if figure.refusal}
    assert refused == {"census", "los", "readmissions"}
    assert all(page.figures[key].rows == [] for key in refused)
    assert page.figures["census"].refusal == (
        "No policy lets an administrator see departments, units, staff roles "
        "for the purpose healthcare operations."
    )
    assert all(page.figures[key].rows for key in ("flow", "labs", "diagnoses"))
    events = dashboard_events()[-QUERIES_PER_VIEW:]
    assert [event.status for event in events].count("denied") == 3
