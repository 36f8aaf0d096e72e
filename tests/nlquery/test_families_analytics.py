"""Analytics families (ops.*) on the demo hospital: hand-checked answers, both dialects, strict binding."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
import sqlglot
from django.test import override_settings

from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.families import FAMILIES, QueryPlan
from nlquery.matcher import ValueMatcher, value_matcher
from nlquery.reading import read_question
from nlquery.semantic import semantic_layer
from nlquery.semantic.loader import SemanticLayerError, load_semantic_layer
from nlquery.sqlparts import Ctx

NOW = "2026-11-25 00:00:00"
TRAINING = Path(__file__).resolve().parents[2] / "nlquery" / "questions" / "training.json"
MINE = sorted(name for name in FAMILIES if name.startswith("ops."))
Row = tuple[object, ...]


def training_items() -> list[dict[str, str]]:
    items: list[dict[str, str]] = json.loads(TRAINING.read_text(encoding="utf-8"))["items"]
    return items


@pytest.fixture(scope="module")
def matcher(sqlite_warehouse: WarehouseTarget) -> ValueMatcher:
    return value_matcher(sqlite_warehouse)


def plans(question: str, matcher: ValueMatcher, prefix: str = "ops.") -> list[QueryPlan]:
    found = read_question(question, matcher)
    return [
        plan for name, family in FAMILIES.items() if name.startswith(prefix) for plan in family.bind(found)
    ]


def only_plan(question: str, matcher: ValueMatcher, family: str) -> QueryPlan:
    bound = plans(question, matcher)
    assert [p.family for p in bound] == [family], f"{question!r} bound {[p.family for p in bound]}"
    return bound[0]


def sql_of(plan: QueryPlan, dialect: str) -> str:
    return FAMILIES[plan.family].compile(plan, Ctx(dialect, NOW), semantic_layer()).sql(dialect=dialect)


def run(plan: QueryPlan, target: WarehouseTarget) -> list[Row]:
    return [tuple(row) for row in execute_readonly(sql_of(plan, target.dialect), target=target).rows]


def query(sql: str, target: WarehouseTarget) -> list[Row]:
    return [tuple(row) for row in execute_readonly(sql, target=target).rows]


def _cell(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    return value


def _key(row: Row) -> tuple[tuple[int, str], ...]:
    return tuple(
        (0, "") if c is None else (1, f"{c:.4f}") if isinstance(c, float) else (2, str(c)) for c in row
    )


def same_rows(left: Sequence[Row], right: Sequence[Row]) -> bool:
    """Equal as multisets of rows, numbers compared to a relative 1e-6 (julianday vs epoch arithmetic)."""
    a = sorted(([_cell(c) for c in row] for row in left), key=lambda r: _key(tuple(r)))
    b = sorted(([_cell(c) for c in row] for row in right), key=lambda r: _key(tuple(r)))
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y):
            return False
        for p, q in zip(x, y, strict=True):
            if isinstance(p, (int, float)) and isinstance(q, (int, float)):
                if not math.isclose(p, q, rel_tol=1e-6, abs_tol=1e-9):
                    return False
            elif p != q:
                return False
    return True


# --- Training questions --------------------------------------------------------------------------


def test_training_file_is_well_formed() -> None:
    items = training_items()
    questions = [item["question"] for item in items]
    assert len(questions) == len(set(questions)), "duplicate questions"
    families = {item["family"] for item in items}
    assert families <= {*MINE, "unanswerable"}
    assert sum(item["family"].startswith("ops.") for item in items) >= 150
    assert sum(item["family"] == "unanswerable" for item in items) >= 35
    held_out = json.loads((TRAINING.parent / "hospital.json").read_text(encoding="utf-8"))["items"]
    assert not {q.lower().strip(" ?") for q in questions} & {
        i["question"].lower().strip(" ?") for i in held_out
    }


def test_every_training_question_binds_to_its_family(matcher: ValueMatcher) -> None:
    wrong = []
    for item in training_items():
        bound = {p.family for p in plans(item["question"], matcher)}
        expected = set() if item["family"] == "unanswerable" else {item["family"]}
        if bound != expected:
            wrong.append(f"{item['question']!r}: {item['family']} but bound {sorted(bound)}")
    assert not wrong, "\n".join(wrong)


def test_every_training_plan_runs_and_says_what_it_does(
    matcher: ValueMatcher, sqlite_warehouse: WarehouseTarget
) -> None:
    for item in training_items():
        for plan in plans(item["question"], matcher):
            assert FAMILIES[plan.family].describe(plan).endswith("."), item["question"]
            run(plan, sqlite_warehouse)


# --- Hand-checked answers ------------------------------------------------------------------------

ADMIT_DEPARTMENT = (
    "JOIN transfers t ON t.hadm_id = a.hadm_id AND t.eventtype = 'admit' "
    "JOIN care_units u ON u.careunit = t.careunit JOIN departments d ON d.department_id = u.department_id"
)


@pytest.mark.parametrize(
    ("question", "family", "expected"),
    [
        (
            "admits per day over the past week",
            "ops.metric",
            "SELECT substr(admittime, 1, 10), COUNT(*) FROM admissions "
            "WHERE admittime >= '2026-11-18 00:00:00' GROUP BY 1",
        ),
        (
            "mean LOS by dept for 2025",
            "ops.metric",
            "SELECT d.name, AVG(julianday(a.dischtime) - julianday(a.admittime)) FROM admissions a "
            f"{ADMIT_DEPARTMENT} WHERE a.dischtime LIKE '2025%' GROUP BY d.name",
        ),
        (
            "average hemoglobin by sex",
            "ops.metric",
            "SELECT p.gender, AVG(l.valuenum) FROM labevents l "
            "JOIN patients p ON p.subject_id = l.subject_id JOIN d_labitems i ON i.itemid = l.itemid "
            "WHERE i.label = 'hemoglobin' GROUP BY p.gender",
        ),
        (
            "turnaround per test in mins",
            "ops.metric",
            "SELECT i.label, AVG((julianday(l.storetime) - julianday(l.charttime)) * 1440) FROM labevents l "
            "JOIN d_labitems i ON i.itemid = l.itemid GROUP BY i.label",
        ),
        (
            "abnormal rate per test in 2026",
            "ops.metric",
            "SELECT i.label, 100.0 * SUM(CASE WHEN l.flag = 'abnormal' THEN 1 ELSE 0 END) / COUNT(*) "
            "FROM labevents l "
            "JOIN d_labitems i ON i.itemid = l.itemid WHERE l.charttime LIKE '2026%' GROUP BY i.label",
        ),
        (
            "quarterly admissions since 2025",
            "ops.metric",
            "SELECT substr(admittime, 1, 4) || '-Q' || ((CAST(substr(admittime, 6, 2) AS INT) + 2) / 3), "
            "COUNT(*) FROM admissions WHERE substr(admittime, 1, 4) >= '2025' GROUP BY 1",
        ),
        (
            "discharges yesterday",
            "ops.metric",
            "SELECT COUNT(*) FROM admissions WHERE dischtime LIKE '2026-11-24%'",
        ),
        (
            "census per unit on 2026-11-20",
            "ops.census",
            "SELECT careunit, COUNT(DISTINCT subject_id) FROM transfers WHERE careunit IS NOT NULL "
            "AND eventtype != 'discharge' AND intime <= '2026-11-20 00:00:00' "
            "AND (outtime IS NULL OR outtime > '2026-11-20 00:00:00') GROUP BY careunit",
        ),
        (
            "bed occupancy per ward right now",
            "ops.census",
            "SELECT t.careunit, 100.0 * COUNT(DISTINCT t.subject_id) / u.beds FROM transfers t "
            "JOIN care_units u ON u.careunit = t.careunit WHERE t.eventtype != 'discharge' "
            "AND t.intime <= '2026-11-25 00:00:00' "
            "AND (t.outtime IS NULL OR t.outtime > '2026-11-25 00:00:00') GROUP BY t.careunit",
        ),
        (
            "30-day readmit rate per department",
            "ops.readmissions",
            "SELECT d.name, 100.0 * SUM(EXISTS (SELECT 1 FROM admissions b WHERE b.subject_id = a.subject_id "
            "AND b.admittime > a.dischtime AND julianday(b.admittime) - julianday(a.dischtime) <= 30)) "
            f"/ COUNT(*) FROM admissions a {ADMIT_DEPARTMENT} WHERE a.dischtime IS NOT NULL GROUP BY d.name",
        ),
        (
            "how many patients were readmitted within 7 days in 2026",
            "ops.readmissions",
            "SELECT COUNT(DISTINCT a.subject_id) FROM admissions a WHERE a.dischtime LIKE '2026%' AND EXISTS "
            "(SELECT 1 FROM admissions b WHERE b.subject_id = a.subject_id AND b.admittime > a.dischtime "
            "AND julianday(b.admittime) - julianday(a.dischtime) <= 7)",
        ),
        (
            "heparin vs insulin prescriptions in 2026",
            "ops.compare",
            "SELECT drug, COUNT(*) FROM prescriptions WHERE drug IN ('heparin', 'insulin') "
            "AND starttime LIKE '2026%' GROUP BY drug",
        ),
        (
            "were there more discharges in 2025 than in 2024",
            "ops.compare",
            "SELECT (SELECT COUNT(*) FROM admissions WHERE dischtime LIKE '2025%') "
            "> (SELECT COUNT(*) FROM admissions WHERE dischtime LIKE '2024%')",
        ),
        (
            "admissions this month vs last month",
            "ops.compare",
            "SELECT (SELECT COUNT(*) FROM admissions WHERE admittime LIKE '2026-11%'), "
            "(SELECT COUNT(*) FROM admissions WHERE admittime LIKE '2026-10%')",
        ),
    ],
)
def test_hand_checked_answers(
    question: str, family: str, expected: str, matcher: ValueMatcher, sqlite_warehouse: WarehouseTarget
) -> None:
    plan = only_plan(question, matcher, family)
    gold = query(expected, sqlite_warehouse)
    assert gold, "the check itself should find rows"
    assert same_rows(run(plan, sqlite_warehouse), gold)


def test_weeks_are_sqlite_weeks(matcher: ValueMatcher, sqlite_warehouse: WarehouseTarget) -> None:
    plan = only_plan("weekly admissions since 2024", matcher, "ops.metric")
    gold = query(
        "SELECT strftime('%Y-%W', admittime), COUNT(*) FROM admissions "
        "WHERE substr(admittime, 1, 4) >= '2024' GROUP BY 1",
        sqlite_warehouse,
    )
    assert same_rows(run(plan, sqlite_warehouse), gold)


# --- Both dialects -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sqlite_and_postgresql_give_the_same_rows(
    matcher: ValueMatcher, sqlite_warehouse: WarehouseTarget, pg_warehouse: WarehouseTarget
) -> None:
    questions = [item["question"] for item in training_items() if item["family"] != "unanswerable"]
    questions += [
        "weekly admissions since 2024",
        "admissions weekday vs weekend in 2025",
        "admissions by hour of day",
    ]
    differ = []
    for question in questions:
        for plan in plans(question, matcher):
            if not same_rows(run(plan, sqlite_warehouse), run(plan, pg_warehouse)):
                differ.append(question)
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("family", MINE)
def test_postgres_sql_parses_back(family: str, matcher: ValueMatcher) -> None:
    questions = [item["question"] for item in training_items() if item["family"] == family]
    assert questions
    for question in questions[:10]:
        for plan in plans(question, matcher, family):
            sqlglot.parse_one(sql_of(plan, "postgres"), read="postgres")


# --- Strictness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "avg LOS cardiology this year",  # a department value the family cannot filter on
        "median length of stay by department",  # no median
        "admissions by nurse",  # no such grouping
        "average number of meds per admission",  # a per-admission aggregate
        "admissions and discharges yesterday",  # two measures
        "how many stat labs took over 60 min to result",  # a threshold on the measure
        "LOS by month of admission",  # length of stay is placed in time by discharge
        "top 5 drugs this year",
        "last potassium of patient 16354268",
        "how many admissions will we have next week",
        "number of beds in 2025",  # beds have no time
        "avg potassium of icu patients",  # two measures of different rows
        "census for march 2026",  # a census is at an instant
    ],
)
def test_refuses_what_it_cannot_honour(question: str, matcher: ValueMatcher) -> None:
    assert plans(question, matcher) == []


def test_interpretations(matcher: ValueMatcher) -> None:
    plan = only_plan("admissions per day last week", matcher, "ops.metric")
    assert FAMILIES[plan.family].describe(plan) == (
        "Showing the number of hospital admissions per day, in the last 7 days."
    )
    plan = only_plan("max TAT for troponin this month in minutes", matcher, "ops.metric")
    assert FAMILIES[plan.family].describe(plan) == (
        "Showing the maximum time from sample to result, in minutes for troponin t, this month."
    )


# --- The semantic layer drives the family ---------------------------------------------------------


def test_a_measure_and_a_dimension_added_in_yaml_are_understood(
    tmp_path: Path, sqlite_warehouse: WarehouseTarget
) -> None:
    extra = tmp_path / "hospital.yaml"
    extra.write_text(
        """
measures:
  transfer_count:
    description: number of transfers between care units
    table: transfers
    expression: COUNT(*) FILTER (WHERE eventtype = 'transfer')
    words: [unit transfers, ward transfers, internal transfers]
dimensions:
  transfer_kind: {description: kind of row, table: transfers, column: eventtype, words: [event type]}
""",
        encoding="utf-8",
    )
    with override_settings(NLQ_SEMANTIC_EXTRA=[str(extra)]):
        local = value_matcher(sqlite_warehouse)
        plan = only_plan("ward transfers per month in 2026", local, "ops.metric")
        rows = run(plan, sqlite_warehouse)
        gold = query(
            "SELECT substr(intime, 1, 7), COUNT(*) FROM transfers WHERE eventtype = 'transfer' "
            "AND intime LIKE '2026%' GROUP BY 1",
            sqlite_warehouse,
        )
        assert same_rows(rows, gold)
        assert only_plan("ward transfers by event type", local, "ops.metric").family == "ops.metric"


def test_measure_words_are_checked(tmp_path: Path) -> None:
    extra = tmp_path / "broken.yaml"
    extra.write_text(
        "measures:\n  m: {table: cost, expression: SUM(cost), words: [sp*end]}\n", encoding="utf-8"
    )
    with pytest.raises(SemanticLayerError) as error:
        load_semantic_layer([extra])
    assert error.value.key == "measures.m.words[0]"
