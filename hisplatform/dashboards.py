"""The administrator's dashboards: hospital figures written here as SQL over the warehouse and run
through the one pipeline (`answer_sql`), so each is decided, rewritten, disclosed and audited like a
question, and the aggregate lane hides small cells exactly as it does for any administrator's question."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from hisplatform.models import Role, StaffProfile
from hisplatform.queries import ANSWERED, Answer, answer_sql
from hisplatform.warehouse.schema import Dialect
from hisplatform.warehouse.targets import WarehouseConfigError, WarehouseTarget, warehouse_target

CHANNEL: Final = "dashboard"
DASHBOARD_ROLES: Final = frozenset({Role.ADMINISTRATOR})
DEFAULT_DAYS: Final = 30
# Two years, both ends included (a leap day fits): per-day charts beyond that are unreadable, and the
# lab figure would scan years of results on every view.
MAX_DAYS: Final = 731
TOP_TESTS: Final = 15
TOP_DIAGNOSES: Final = 10
READMISSION_DAYS: Final = 30
BUCKETS: Final[Mapping[str, str]] = {"day": "Day", "week": "Week", "month": "Month"}
# What the aggregate lane shows when a policy names no minimum cell (the pipeline's own default).
_DEFAULT_MIN_CELL: Final = 11
_STAMP: Final = "%Y-%m-%d %H:%M:%S"
_CHART_LABEL_CHARS: Final = 40
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def may_view_dashboards(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Only administrators: the figures are operational statistics, their role's lane."""
    if not user.is_authenticated or user.pk is None:
        return False
    role = StaffProfile.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
    return role in DASHBOARD_ROLES


def data_now() -> dt.datetime:
    """The warehouse's "now", read as the pipeline reads it: NLQ_NOW (a frozen extract), else the clock."""
    if settings.NLQ_NOW:
        return dt.datetime.strptime(settings.NLQ_NOW, _STAMP).replace(tzinfo=dt.UTC)
    return timezone.now().astimezone(dt.UTC)


# --- The date range ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The days a dashboard covers, both included, and how its time series are grouped."""

    start: dt.date
    end: dt.date
    by: str = "day"

    @property
    def lower(self) -> str:
        return f"{self.start.isoformat()} 00:00:00"

    @property
    def upper(self) -> str:
        """The first moment after the range (the times compared are strictly below it)."""
        return f"{(self.end + dt.timedelta(days=1)).isoformat()} 00:00:00"

    def buckets(self) -> list[str]:
        """Every day, week (by its Monday) or month of the range, as the figure SQL labels them."""
        keys: list[str] = []
        day = self.start
        while day <= self.end:
            key = _bucket_of(day, self.by)
            if not keys or keys[-1] != key:
                keys.append(key)
            day += dt.timedelta(days=1)
        return keys


def _bucket_of(day: dt.date, by: str) -> str:
    if by == "week":
        return (day - dt.timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def default_period(today: dt.date) -> Period:
    return Period(today - dt.timedelta(days=DEFAULT_DAYS - 1), today, "day")


def period_from(params: Mapping[str, str], *, today: dt.date) -> tuple[Period, list[str]]:
    """The range asked for in `start`, `end` (YYYY-MM-DD) and `by`; on any problem, the messages
    saying what was wrong and the default range (the last 30 days) instead."""
    fallback = default_period(today)
    problems: list[str] = []
    dates: dict[str, dt.date] = {}
    for name, default in (("start", fallback.start), ("end", fallback.end)):
        raw = (params.get(name) or "").strip()
        if not raw:
            dates[name] = default
            continue
        try:
            # fromisoformat alone would also take 20261101 and 2026-W47-1.
            if not _ISO_DATE.fullmatch(raw):
                raise ValueError(raw)
            dates[name] = dt.date.fromisoformat(raw)
        except ValueError:
            shown = raw if len(raw) <= 20 else raw[:20] + "…"
            problems.append(f"The {name} date {shown!r} is not a date: write it as YYYY-MM-DD, e.g. {today}.")
    by = (params.get("by") or "day").strip()
    if by not in BUCKETS:
        problems.append("Group the time series by day, week or month.")
    if not problems:
        start, end = dates["start"], dates["end"]
        if start > end:
            problems.append(f"The start date {start} is after the end date {end}.")
        elif end > today:
            problems.append(f"The end date {end} is after today ({today}); the figures stop at today.")
        elif (end - start).days + 1 > MAX_DAYS:
            problems.append(
                f"The range {start} to {end} is longer than 2 years; choose at most {MAX_DAYS} days."
            )
    if problems:
        problems.append(f"Showing the last {DEFAULT_DAYS} days instead.")
        return fallback, problems
    return Period(dates["start"], dates["end"], by), []


# --- What a figure shows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False


@dataclass
class Figure:
    """One figure as the page shows it: a chart spec for app.js, the same numbers as a table, notes
    on what was hidden, or the pipeline's message when it refused or failed."""

    key: str
    title: str
    caption: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    chart: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    refusal: str = ""
    audit_events: list[int | None] = field(default_factory=list)

    @property
    def chart_id(self) -> str:
        return f"chart-{self.key}"

    @property
    def chart_json(self) -> str:
        """The chart for app.js, as the text of an element (the template escapes it, the browser reads
        it back as it was)."""
        return json.dumps(self.chart)

    @property
    def header_cells(self) -> list[Cell]:
        """The headers, aligned as their columns are (numbers to the right)."""
        first = self.rows[0] if self.rows else []
        return [Cell(text, i < len(first) and first[i].numeric) for i, text in enumerate(self.headers)]


@dataclass
class Dashboard:
    period: Period
    now: dt.datetime
    figures: list[Figure]
    problem: str = ""  # the warehouse could not be reached at all


def _number(cell: Any) -> float | None:
    """A shown number, or None for a hidden cell (a gap in the chart)."""
    if isinstance(cell, bool) or not isinstance(cell, int | float):
        return None
    return float(cell) if isinstance(cell, float) else int(cell)


def _groups(count: int) -> str:
    return "1 group" if count == 1 else f"{count} groups"


def _leading_number(text: str) -> int:
    digits = text.split(" ", 1)[0]
    return int(digits) if digits.isdigit() else 0


def _hidden_notes(answers: Sequence[Answer], *, ranked: bool = False) -> list[str]:
    """The notes on what the aggregate lane hid in these answers (the pipeline's own counts)."""
    min_cell = max(int(answer.disclosure.get("min_cell") or _DEFAULT_MIN_CELL) for answer in answers)
    rows = [row for answer in answers for row in answer.rows]
    small = sum(1 for row in rows if any(isinstance(c, str) and c.startswith("<") for c in row))
    derived = sum(1 for row in rows if "*" in row)
    withheld = 0
    notes: list[str] = []
    for answer in answers:
        for entry in answer.suppressed:
            what, why = str(entry.get("what", "")), str(entry.get("why", ""))
            if entry.get("shown_as") == "withheld" and why != "k-anonymity":
                withheld += _leading_number(what)
            elif why not in ("small cells", "complementary suppression"):
                notes.append(f"Hidden by policy: {what}.")
    if ranked and small + derived + withheld:
        hidden = f"{_groups(small + derived + withheld)} under {min_cell} patients hidden (not ranked)."
        return [hidden, *notes]
    head: list[str] = []
    if small:
        head.append(f"{_groups(small)} under {min_cell} patients hidden (shown as <{min_cell}).")
    if derived:
        head.append(
            f"{_groups(derived)} more hidden (shown as *) so that the small ones cannot be worked out."
        )
    if withheld:
        head.append(
            f"{_groups(withheld)} under {min_cell} patients left out altogether: their labels alone would "
            "single them out."
        )
    return head + notes


def _count(value: Any) -> Cell:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Cell(f"{round(value):,}", True)
    return Cell("—" if value is None else str(value), True)


def _decimal(value: Any, places: int = 1) -> Cell:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Cell(f"{value:,.{places}f}", True)
    return Cell("—" if value is None else str(value), True)


def _rounded(value: float | None, places: int = 1) -> float | None:
    return None if value is None else round(float(value), places)


def _chart_label(text: str) -> str:
    return text if len(text) <= _CHART_LABEL_CHARS else text[: _CHART_LABEL_CHARS - 1] + "…"


def _charted(chart: Mapping[str, Any]) -> bool:
    return any(value for dataset in chart["datasets"] for value in dataset["data"])


def _chart(
    kind: str, labels: Sequence[str], datasets: Sequence[tuple[str, Sequence[float | None]]], x: str, y: str
) -> dict[str, Any]:
    return {
        "type": kind,
        "labels": [_chart_label(label) for label in labels],
        "datasets": [{"label": name, "data": list(data)} for name, data in datasets],
        "x_label": x,
        "y_label": y,
    }


# --- The figures: SQL in the warehouse's dialect, and the shape of the answer ----------------------------


@dataclass(frozen=True)
class _Sql:
    """The few expressions SQLite and PostgreSQL write differently; everything else is common SQL."""

    dialect: Dialect

    def bucket(self, column: str, by: str) -> str:
        if self.dialect == "postgres":
            return {
                "day": f"CAST({column} AS DATE)",
                "week": f"CAST(DATE_TRUNC('week', {column}) AS DATE)",
                "month": f"TO_CHAR({column}, 'YYYY-MM')",
            }[by]
        return {
            "day": f"DATE({column})",
            # To the next Sunday (the same day if it is one), then back to that week's Monday.
            "week": f"DATE({column}, 'weekday 0', '-6 days')",
            "month": f"STRFTIME('%Y-%m', {column})",
        }[by]

    def days_between(self, first: str, last: str) -> str:
        if self.dialect == "postgres":
            return f"EXTRACT(EPOCH FROM {last} - {first}) / 86400.0"
        return f"JULIANDAY({last}) - JULIANDAY({first})"

    def minutes_between(self, first: str, last: str) -> str:
        if self.dialect == "postgres":
            return f"EXTRACT(EPOCH FROM {last} - {first}) / 60.0"
        return f"(JULIANDAY({last}) - JULIANDAY({first})) * 1440.0"

    def plus_days(self, column: str, days: int) -> str:
        if self.dialect == "postgres":
            return f"{column} + INTERVAL '{days} days'"
        return f"DATETIME({column}, '+{days} days')"


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(_STAMP)


@dataclass(frozen=True)
class _Spec:
    key: str
    title: str
    caption: Callable[[Period, dt.datetime], str]
    sql: Callable[[_Sql, Period, dt.datetime], list[str]]
    shape: Callable[[Figure, list[Answer], Period, dt.datetime], None]


def _census_sql(sql: _Sql, period: Period, now: dt.datetime) -> list[str]:
    # From the units, so that a unit with nobody in it shows 0 rather than being missing.
    moment = _stamp(now)
    return [
        "SELECT c.careunit AS careunit, COUNT(DISTINCT t.subject_id) AS patients "
        "FROM care_units c LEFT JOIN transfers t ON t.careunit = c.careunit "
        "AND t.eventtype <> 'discharge' "
        f"AND t.intime <= '{moment}' AND (t.outtime IS NULL OR t.outtime > '{moment}') "
        "GROUP BY c.careunit ORDER BY c.careunit"
    ]


def _census_shape(figure: Figure, answers: list[Answer], period: Period, now: dt.datetime) -> None:
    (answer,) = answers
    notes = _hidden_notes(answers)
    figure.headers = ["Care unit", "Patients now"]
    figure.rows = [[Cell(str(unit)), _count(patients)] for unit, patients in answer.rows]
    figure.chart = _chart(
        "bar",
        [str(row[0]) for row in answer.rows],
        [("Patients now", [_number(row[1]) for row in answer.rows])],
        "Care unit",
        "Patients",
    )
    figure.notes = notes


def _flow_sql(sql: _Sql, period: Period, now: dt.datetime) -> list[str]:
    # Two queries of one group column each: grouped by day and kind together, a small day would be
    # withheld outright (its label alone is rare) instead of shown as <11.
    queries: list[str] = []
    for column in ("a.admittime", "a.dischtime"):
        bucket = sql.bucket(column, period.by)
        queries.append(
            f"SELECT {bucket} AS period, COUNT(*) AS stays FROM admissions a "
            f"WHERE {column} >= '{period.lower}' AND {column} < '{period.upper}' "
            f"GROUP BY {bucket} ORDER BY {bucket}"
        )
    return queries


def _flow_shape(figure: Figure, answers: list[Answer], period: Period, now: dt.datetime) -> None:
    notes = _hidden_notes(answers)
    buckets = period.buckets()
    # A bucket with no row had no stays: one group column, so nothing is withheld, only shown as <11.
    series = [
        [found.get(key, 0) for key in buckets]
        for found in ({str(row[0]): row[1] for row in answer.rows} for answer in answers)
    ]
    figure.headers = ["Week from" if period.by == "week" else BUCKETS[period.by], "Admissions", "Discharges"]
    figure.rows = [[Cell(key), _count(series[0][i]), _count(series[1][i])] for i, key in enumerate(buckets)]
    figure.chart = _chart(
        "line",
        buckets,
        [
            ("Admissions", [_number(v) for v in series[0]]),
            ("Discharges", [_number(v) for v in series[1]]),
        ],
        BUCKETS[period.by],
        "Stays",
    )
    figure.notes = notes


_ADMITTING_DEPARTMENT: Final = (
    "JOIN transfers t ON t.hadm_id = a.hadm_id AND t.eventtype = 'admit' "
    "JOIN care_units c ON c.careunit = t.careunit "
    "JOIN departments d ON d.department_id = c.department_id "
)


def _los_sql(sql: _Sql, period: Period, now: dt.datetime) -> list[str]:
    return [
        "SELECT d.name AS department, COUNT(DISTINCT a.hadm_id) AS stays, "
        f"AVG({sql.days_between('a.admittime', 'a.dischtime')}) AS mean_days "
        f"FROM admissions a {_ADMITTING_DEPARTMENT}"
        f"WHERE a.dischtime >= '{period.lower}' AND a.dischtime < '{period.upper}' "
        "GROUP BY d.name ORDER BY d.name"
    ]


def _los_shape(figure: Figure, answers: list[Answer], period: Period, now: dt.datetime) -> None:
    (answer,) = answers
    notes = _hidden_notes(answers)
    figure.headers = ["Department", "Stays", "Mean length of stay (days)"]
    figure.rows = [[Cell(str(name)), _count(stays), _decimal(days)] for name, stays, days in answer.rows]
    figure.chart = _chart(
        "bar",
        [str(row[0]) for row in answer.rows],
        [("Mean length of stay (days)", [_rounded(_number(row[2])) for row in answer.rows])],
        "Department",
        "Days",
    )
    figure.notes = notes


def _readmission_sql(sql: _Sql, period: Period, now: dt.datetime) -> list[str]:
    # Readmissions are admissions that began within 30 days after a discharge of the department's;
    # stays that ended in death cannot be followed by one, so they are not counted as discharges.
    within = sql.plus_days("a.dischtime", READMISSION_DAYS)
    return [
        "SELECT d.name AS department, COUNT(DISTINCT a.hadm_id) AS discharges, "
        "COUNT(DISTINCT r.hadm_id) AS readmissions "
        f"FROM admissions a {_ADMITTING_DEPARTMENT}"
        "LEFT JOIN admissions r ON r.subject_id = a.subject_id AND r.admittime > a.dischtime "
        f"AND r.admittime <= {within} "
        f"WHERE a.dischtime >= '{period.lower}' AND a.dischtime < '{period.upper}' "
        "AND (a.discharge_location IS NULL OR LOWER(a.discharge_location) <> 'died') "
        "GROUP BY d.name ORDER BY d.name"
    ]


def _readmission_shape(figure: Figure, answers: list[Answer], period: Period, now: dt.datetime) -> None:
    (answer,) = answers
    notes = _hidden_notes(answers)
    rates: list[float | None] = []
    figure.headers = ["Department", "Discharges", f"Readmitted within {READMISSION_DAYS} days", "Rate"]
    figure.rows = []
    for name, discharges, readmissions in answer.rows:
        shown, back = _number(discharges), _number(readmissions)
        # A rate beside a hidden count would give the count away: hidden with it.
        rate = round(100 * back / shown, 1) if shown and back is not None else None
        rates.append(rate)
        rate_cell = Cell(f"{rate:.1f}%", True) if rate is not None else Cell("—", True)
        figure.rows.append([Cell(str(name)), _count(discharges), _count(readmissions), rate_cell])
    figure.chart = _chart(
        "bar",
        [str(row[0]) for row in answer.rows],
        [(f"Readmitted within {READMISSION_DAYS} days (%)", rates)],
        "Department",
        "% of discharges",
    )
    figure.notes = notes
    if (now.date() - period.end).days < READMISSION_DAYS:
        figure.notes.append(
            f"Discharges in the last {READMISSION_DAYS} days of the range may still be followed by a "
            "readmission; their rate can only rise."
        )


def _lab_sql(sql: _Sql, period: Period, now: dt.datetime) -> list[str]:
    # Turnaround: from the specimen's collection (charttime) to the result's release (storetime).
    return [
        "SELECT i.label AS test, i.fluid AS specimen, COUNT(*) AS results, "
        f"AVG({sql.minutes_between('l.charttime', 'l.storetime')}) AS mean_minutes "
        "FROM labevents l JOIN d_labitems i ON i.itemid = l.itemid "
        f"WHERE l.charttime >= '{period.lower}' AND l.charttime < '{period.upper}' "
        "GROUP BY i.label, i.fluid ORDER BY i.label, i.fluid"
    ]


def _lab_shape(figure: Figure, answers: list[Answer], period: Period, now: dt.datetime) -> None:
    (answer,) = answers
    notes = _hidden_notes(answers, ranked=True)
    # Ranked here: the lane refuses ORDER BY a count, which would rank the hidden groups too.
    shown = [row for row in answer.rows if _number(row[2]) is not None]
    top = sorted(shown, key=lambda row: (-row[2], str(row[0]), str(row[1])))[:TOP_TESTS]
    names = [f"{row[0]} ({row[1]})" if row[1] else str(row[0]) for row in top]
    figure.headers = ["Test", "Specimen", "Results", "Mean turnaround (minutes)"]
    figure.rows = [
        [Cell(str(row[0])), Cell(str(row[1] or "")), _count(row[2]), _decimal(row[3])] for row in top
    ]
    figure.chart = _chart("bar", names, [("Results", [_number(row[2]) for row in top])], "Test", "Results")
    figure.notes = notes


def _diagnoses_sql(sql: _Sql, period: Period, now: dt.datetime) -> list[str]:
    return [
        "SELECT dd.long_title AS diagnosis, COUNT(DISTINCT di.hadm_id) AS stays "
        "FROM diagnoses_icd di JOIN d_icd_diagnoses dd ON dd.icd_code = di.icd_code "
        f"WHERE di.charttime >= '{period.lower}' AND di.charttime < '{period.upper}' "
        "GROUP BY dd.long_title ORDER BY dd.long_title"
    ]


def _diagnoses_shape(figure: Figure, answers: list[Answer], period: Period, now: dt.datetime) -> None:
    (answer,) = answers
    notes = _hidden_notes(answers, ranked=True)
    shown = [row for row in answer.rows if _number(row[1]) is not None]
    top = sorted(shown, key=lambda row: (-row[1], str(row[0])))[:TOP_DIAGNOSES]
    figure.headers = ["Diagnosis (ICD title)", "Stays"]
    figure.rows = [[Cell(str(row[0])), _count(row[1])] for row in top]
    figure.chart = _chart(
        "bar",
        [str(row[0]) for row in top],
        [("Stays", [_number(row[1]) for row in top])],
        "Diagnosis",
        "Stays",
    )
    figure.notes = notes


def _range_text(period: Period) -> str:
    return f"{period.start} to {period.end}"


FIGURES: Final[tuple[_Spec, ...]] = (
    _Spec(
        "census",
        "Census by care unit",
        lambda period, now: f"Patients in each care unit now ({_stamp(now)[:16]} UTC).",
        _census_sql,
        _census_shape,
    ),
    _Spec(
        "flow",
        "Admissions and discharges",
        lambda period, now: f"Stays admitted and discharged per {period.by}, {_range_text(period)}.",
        _flow_sql,
        _flow_shape,
    ),
    _Spec(
        "los",
        "Length of stay by department",
        lambda period, now: (
            f"Stays discharged {_range_text(period)}, by the department of the admitting unit: "
            "mean length of stay in days."
        ),
        _los_sql,
        _los_shape,
    ),
    _Spec(
        "readmissions",
        f"{READMISSION_DAYS}-day readmissions",
        lambda period, now: (
            f"Discharges alive {_range_text(period)} by the department of the admitting unit, and "
            f"admissions of the same patients within {READMISSION_DAYS} days after them."
        ),
        _readmission_sql,
        _readmission_shape,
    ),
    _Spec(
        "labs",
        "Lab volume and turnaround",
        lambda period, now: (
            f"The {TOP_TESTS} tests with the most results collected {_range_text(period)}; turnaround "
            "from collection to result."
        ),
        _lab_sql,
        _lab_shape,
    ),
    _Spec(
        "diagnoses",
        "Top diagnoses",
        lambda period, now: (
            f"The {TOP_DIAGNOSES} diagnoses recorded on the most stays, {_range_text(period)}."
        ),
        _diagnoses_sql,
        _diagnoses_shape,
    ),
)


def dashboard_for(
    *,
    fetched_by: AbstractBaseUser | AnonymousUser,
    period: Period,
    target: WarehouseTarget | None = None,
    client_addr: str = "",
    user_agent: str = "",
) -> Dashboard:
    """Every figure for `period`, each through the pipeline as `fetched_by` (one audit event each,
    channel "dashboard"). Raises PermissionDenied for anyone but an administrator."""
    if not may_view_dashboards(fetched_by):
        raise PermissionDenied("The dashboards are for administrators.")
    now = data_now()
    try:
        target = target or warehouse_target()
    except WarehouseConfigError as error:
        return Dashboard(period, now, [], problem=f"The warehouse cannot be reached: {error}")
    sql = _Sql(target.dialect)
    figures: list[Figure] = []
    for spec in FIGURES:
        figure = Figure(spec.key, spec.title, spec.caption(period, now))
        answers: list[Answer] = []
        for number, query in enumerate(spec.sql(sql, period, now), start=1):
            part = f" (query {number})" if number > 1 else ""
            answer = answer_sql(
                user=fetched_by,
                sql=query,
                target=target,
                channel=CHANNEL,
                label=f"Dashboard: {spec.title}{part}. {figure.caption}",
                client_addr=client_addr,
                user_agent=user_agent,
            )
            figure.audit_events.append(answer.audit_event)
            if answer.status != ANSWERED:
                # The first refusal stands for the figure: its other queries are not run.
                figure.refusal = answer.message
                break
            answers.append(answer)
        if not figure.refusal:
            spec.shape(figure, answers, period, now)
            if not figure.rows:
                figure.chart = None
                figure.notes.insert(0, "Nothing to show for this range.")
            elif figure.chart is not None and not _charted(figure.chart):
                # Axes over gaps and zeros say nothing; the table says which groups are hidden.
                figure.chart = None
                figure.notes.insert(0, "Nothing to chart: every group is empty or hidden.")
        figures.append(figure)
    return Dashboard(period, now, figures)
