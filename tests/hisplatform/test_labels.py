"""Headings of answer columns in words: the column names the demo hospital's answers carry on SQLite and
PostgreSQL, read as staff say them; any other text shown tidied, never an error."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from pytest_django.fixtures import Settings as SettingsWrapper

from accessctl.models import MaskingRule, PolicyRule
from accessctl.readpolicy import forget_catalogs
from accessctl.services import policy_load_defaults
from hisplatform.labels import MAX_RAW, column_label, column_labels
from hisplatform.queries import answer_question
from tests.accessctl.conftest import NOON, _make_people

# Column names taken from answers on the demo hospital (the Ask page's examples and tests), SQLite's
# names for unaliased expressions -> the heading shown.
SQLITE_NAMES = [
    ("COUNT(DISTINCT admissions.subject_id)", "Patients"),
    ("COUNT(DISTINCT patients.subject_id)", "Patients"),
    ("COUNT(DISTINCT admissions.hadm_id)", "Admissions"),
    ("COUNT(DISTINCT icustays.stay_id)", "ICU stays"),
    ("COUNT(*)", "Count"),
    ("STRFTIME('%Y-%m-%d', admissions.admittime)", "Day"),
    ("STRFTIME('%Y-%m-%d', labevents.charttime)", "Day"),
    ("STRFTIME('%Y-%m-%d', visits.starttime)", "Day"),
    ("STRFTIME('%Y-%m', admissions.admittime)", "Month"),
    ("STRFTIME('%Y', admissions.admittime)", "Year"),
    ("STRFTIME('%Y', patients.dod)", "Year"),
    ("STRFTIME('%Y-%W', admissions.admittime)", "Week"),
    ("STRFTIME('%H', admissions.admittime)", "Hour"),
    ("AVG(labevents.valuenum)", "Average value"),
    ("AVG(chartevents.valuenum)", "Average value"),
    ("MAX(labevents.valuenum)", "Maximum value"),
    ("AVG(admissions.age)", "Average age"),
    ("SUM(cost.cost)", "Total cost"),
    ("SUM(care_units.beds)", "Total beds"),
    (
        "AVG(JULIANDAY(admissions.dischtime) - JULIANDAY(admissions.admittime))",
        "Average hospital length of stay (days)",
    ),
    (
        "AVG((JULIANDAY(labevents.storetime) - JULIANDAY(labevents.charttime)) * 24 * 60)",
        "Average time from sample to result (minutes)",
    ),
    (
        "CASE WHEN admissions.age >= 80 THEN 80 WHEN admissions.age >= 65 THEN 65 WHEN admissions.age >= 40 "
        "THEN 40 WHEN admissions.age >= 18 THEN 18 WHEN admissions.age >= 0 THEN 0 END",
        "Age band",
    ),
    ("gender", "Gender"),
    ("drug", "Drug prescribed"),
    ("long_title", "Title"),
    ("label", "Lab test"),
    ("insurance", "Insurance"),
    ("first_careunit", "ICU unit"),
    ("event_type", "Charge type"),
    ("name", "Department"),
]
# PostgreSQL's names for the same expressions say only the outermost function...
POSTGRES_NAMES = [
    ("count", "Count"),
    ("avg", "Average"),
    ("sum", "Total"),
    ("max", "Maximum"),
    ("min", "Minimum"),
    ("to_char", "Period"),
    ("?column?", "Value"),
    ("case", "Group"),
]
# ... so where the role may see the SQL, the SELECT expression names them (PostgreSQL's SQL).
POSTGRES_SQL = [
    (
        ["to_char", "count"],
        "SELECT TO_CHAR(admissions.admittime, 'YYYY-MM-DD'), COUNT(DISTINCT admissions.hadm_id) "
        "FROM admissions GROUP BY TO_CHAR(admissions.admittime, 'YYYY-MM-DD')",
        ["Day", "Admissions"],
    ),
    (
        ["?column?", "count"],
        "SELECT TO_CHAR(admissions.admittime, 'YYYY') || '-' || LPAD(CAST((CAST(EXTRACT(DOY FROM "
        "admissions.admittime) AS INT) + 6 - (CAST(EXTRACT(DOW FROM admissions.admittime) AS INT) + 6) % 7) "
        "/ 7 AS TEXT), 2, '0'), COUNT(DISTINCT admissions.hadm_id) FROM admissions GROUP BY 1",
        ["Week", "Admissions"],
    ),
    (
        ["label", "avg"],
        "SELECT d_labitems.label, CAST(AVG((CAST(EXTRACT(EPOCH FROM "
        "(labevents.storetime - labevents.charttime)) AS DOUBLE PRECISION) / 86400.0) * 24 * 60) "
        "AS DOUBLE PRECISION) FROM labevents JOIN d_labitems ON d_labitems.itemid = labevents.itemid "
        "GROUP BY d_labitems.label",
        ["Lab test", "Average time from sample to result (minutes)"],
    ),
    (
        ["gender", "avg"],
        "SELECT patients.gender, CAST(AVG(admissions.age) AS DOUBLE PRECISION) FROM admissions "
        "JOIN patients ON patients.subject_id = admissions.subject_id GROUP BY patients.gender",
        ["Gender", "Average age"],
    ),
    (
        ["case", "avg"],
        "SELECT CASE WHEN admissions.age >= 80 THEN 80 WHEN admissions.age >= 0 THEN 0 END, "
        "AVG(labevents.valuenum) FROM labevents JOIN admissions ON admissions.hadm_id = labevents.hadm_id "
        "GROUP BY 1",
        ["Age band", "Average value"],
    ),
]
OTHER_NAMES = [
    # PostgreSQL's time buckets, rounding and casts, read alike.
    ("TO_CHAR(admissions.admittime, 'YYYY-MM')", "Month"),
    ("TO_CHAR(admissions.admittime, 'HH24')", "Hour"),
    ("DATE_TRUNC('week', admissions.admittime)", "Week"),
    ("DATE_TRUNC('month', admissions.admittime)", "Month"),
    ("ROUND(AVG(admissions.age), 1)", "Average age"),
    ("CAST(MIN(labevents.valuenum) AS DOUBLE PRECISION)", "Minimum value"),
    (
        "AVG(JULIANDAY(icustays.outtime) - JULIANDAY(icustays.intime))",
        "Average intensive care length of stay (days)",
    ),
    ("COUNT(DISTINCT labevents.itemid)", "Distinct item ID"),
    ("COUNT(prescriptions.drug)", "Count"),
    ("admissions.admittime", "Admission time"),
    ("labevents.valuenum", "Value"),
    ("transfers.careunit", "Care unit"),
    ("careunit", "Care unit"),
    ("d_icd_diagnoses.long_title", "Diagnosis title"),
    ("subject_id", "Patient ID"),
    ("ref_range_lower", "Reference range lower"),
    # Names already written for people, and aliases, stay as they are.
    ("patients", "patients"),
    ("Admissions", "Admissions"),
    ("Lab results per day", "Lab results per day"),
    ("n", "n"),
]


@pytest.mark.parametrize(("name", "label"), SQLITE_NAMES + POSTGRES_NAMES + OTHER_NAMES)
def test_a_column_name_reads_as_its_heading(name: str, label: str) -> None:
    assert column_label(name) == label


@pytest.mark.parametrize(("columns", "sql", "labels"), POSTGRES_SQL)
def test_postgresql_names_are_read_from_the_sql_where_it_is_shown(
    columns: list[str], sql: str, labels: list[str]
) -> None:
    assert column_labels(columns, sql=sql) == labels
    assert column_labels(columns) == [column_label(c) for c in columns]  # no SQL: the plain reading


def test_labels_of_one_answer_are_distinct_and_sql_that_does_not_fit_is_ignored() -> None:
    assert column_labels(["count", "count", "avg"]) == ["Count", "Count (2)", "Average"]
    assert column_labels(["AVG(labevents.valuenum)", "AVG(chartevents.valuenum)"]) == [
        "Average value",
        "Average value (2)",
    ]
    # A select list of another width, or no SELECT at all, names nothing.
    assert column_labels(["count"], sql="SELECT a, COUNT(*) FROM t GROUP BY a") == ["Count"]
    assert column_labels(["count"], sql="DROP TABLE patients") == ["Count"]
    assert column_labels(["count"], sql="SELECT ((((") == ["Count"]


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("", ""),
        ("   ", ""),
        ("(((", "((("),
        ("STRFTIME('%Y", "STRFTIME('%Y"),
        ("SELECT 1 FROM", "SELECT 1 FROM"),
        ("'; DROP TABLE patients; --", "'; DROP TABLE patients; --"),
        ("COUNT(  DISTINCT\n x )", "Distinct x"),
        ("weird\x00name\x07", "weird name"),
        ("AVG(x) + MAX(y)", "AVG(x) + MAX(y)"),
        ("\u202egnp.exe", "gnp.exe"),
        ("SUM(" * 400, "SUM(" * 14 + "SUM\u2026"),
    ],
)
def test_garbage_is_shown_tidied_and_never_raises(name: str, label: str) -> None:
    assert column_label(name) == label
    assert len(column_label(name)) <= MAX_RAW


def test_any_text_at_all_gets_a_heading() -> None:
    for name in [
        "x" * 10_000,
        "é\u0301" * 50,
        "COUNT(DISTINCT",
        "\ufeff",
        "1e999",
        "-- comment",
        "/*",
        "''''",
    ]:
        assert isinstance(column_label(name), str)
        assert len(column_label(name)) <= MAX_RAW


# The examples' answers on both warehouses, as dr.carter (who sees the SQL) and admin.walsh (who does not).
ANSWERED = [
    ("dr.carter", "admissions per day in the last 30 days", ["Day", "Admissions"], ["Day", "Admissions"]),
    ("dr.carter", "how many patients are currently admitted?", ["Patients"], ["Patients"]),
    ("dr.carter", "mean Hb by gender", ["Gender", "Average value"], ["Gender", "Average value"]),
    ("dr.carter", "lab volume by day this month", ["Day", "Count"], ["Day", "Count"]),
    ("admin.walsh", "admissions per month this year", ["Month", "Admissions"], ["Period", "Count"]),
    ("admin.walsh", "beds per department", ["Department", "Total beds"], ["Department", "Total"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize("warehouse", ["sqlite_warehouse", "pg_warehouse"])
def test_the_examples_answers_on_both_warehouses_have_readable_headings(
    request: pytest.FixtureRequest, settings: SettingsWrapper, warehouse: str
) -> None:
    target = request.getfixturevalue(warehouse)
    if not PolicyRule.objects.exists() or not MaskingRule.objects.exists():
        policy_load_defaults()
    forget_catalogs()
    settings.WAREHOUSE_URL = target.url
    cache.clear()
    people = _make_people(target)
    for username, question, on_sqlite, on_postgres in ANSWERED:
        answer = answer_question(user=people[username], question=question, now=NOON, target=target)
        assert answer.status == "answered", (username, question)
        expected = on_sqlite if warehouse == "sqlite_warehouse" else on_postgres
        assert (question, column_labels(answer.columns, sql=answer.sql)) == (question, expected)
