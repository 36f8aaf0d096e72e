"""The hospital question set (nlquery/questions/hospital.json): well formed, gold SQL runs on the demo."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.hospital_eval import evaluate_hospital, load_questions

QUESTIONS = Path(__file__).resolve().parents[2] / "nlquery" / "questions" / "hospital.json"
NOW = "'2026-11-25 00:00:00'"
KINDS = {
    "patient",
    "count",
    "topk",
    "aggregate",
    "lookup",
    "rate",
    "trend",
    "compare",
    "operational",
    "unanswerable",
}
TIMES = {"none", "absolute", "relative", "visit", "between"}
MIN_ITEMS = 250
MIN_UNANSWERABLE = 25
MIN_NON_EMPTY_RATE = 0.85
CURRENT_TIME = re.compile(r"\bcurrent_time\b", re.IGNORECASE)


def load_items() -> list[dict[str, Any]]:
    doc = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = doc["items"]
    return items


def with_now(sql: str) -> str:
    return CURRENT_TIME.sub(NOW, sql)


def answerable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["sql"] != "null"]


def test_schema() -> None:
    items = load_items()
    assert len(items) >= MIN_ITEMS
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for item in items:
        assert set(item) <= {"id", "question", "sql", "kind", "time", "notes"}, item["id"]
        assert isinstance(item["question"], str), item["id"]
        assert item["question"].strip(), item["id"]
        assert isinstance(item["sql"], str), item["id"]
        assert item["sql"].strip(), item["id"]
        assert item["kind"] in KINDS, item["id"]
        assert item["time"] in TIMES, item["id"]
        assert (item["sql"] == "null") == (item["kind"] == "unanswerable"), item["id"]
        assert isinstance(item.get("notes", ""), str), item["id"]
    kinds = Counter(item["kind"] for item in items)
    assert set(kinds) == KINDS, f"missing kinds: {KINDS - set(kinds)}"
    assert kinds["unanswerable"] >= MIN_UNANSWERABLE
    assert set(Counter(item["time"] for item in answerable(items))) == TIMES


def test_gold_sql_transpiles_to_postgres() -> None:
    """sqlglot reads every gold query as SQLite and writes it as PostgreSQL.

    Only the transpilation is checked: SQLite idioms that have no PostgreSQL twin (datetime()
    modifiers, strftime('%J', ...)) are left for the SQL compiler, so the output is not executed.
    """
    failures = []
    for item in answerable(load_items()):
        try:
            statements = sqlglot.transpile(with_now(item["sql"]), read="sqlite", write="postgres")
        except sqlglot.errors.SqlglotError as exc:
            failures.append(f"{item['id']}: {exc}")
            continue
        if len(statements) != 1 or not statements[0].strip():
            failures.append(f"{item['id']}: transpiled to {len(statements)} statements")
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_gold_sql_runs_on_demo_hospital(sqlite_warehouse: WarehouseTarget) -> None:
    items = answerable(load_items())
    errors: list[str] = []
    empty: list[str] = []
    for item in items:
        try:
            result = execute_readonly(with_now(item["sql"]), target=sqlite_warehouse, row_cap=100000)
        except Exception as exc:
            errors.append(f"{item['id']}: {exc}")
            continue
        if not result.rows or all(cell is None for row in result.rows for cell in row):
            empty.append(f"{item['id']}: {item['question']}")
    for line in empty:
        print("empty result:", line)
    assert not errors, "\n".join(errors)
    rate = 1 - len(empty) / len(items)
    print(f"non-empty rate: {rate:.1%} of {len(items)} answerable questions")
    assert rate >= MIN_NON_EMPTY_RATE


# Floors measured when this test was written; README has the current figures.
HOSPITAL_CORRECT_FLOOR = 0.37
HOSPITAL_WRONG_CEILING = 0.03


@pytest.mark.django_db
def test_the_engine_on_the_hospital_questions(sqlite_warehouse: WarehouseTarget) -> None:
    now, items = load_questions()
    report = evaluate_hospital(items, sqlite_warehouse, now)
    print("\n".join(report.lines()))
    assert len(report.outcomes) == len(items)
    assert report.share("correct") >= HOSPITAL_CORRECT_FLOOR
    assert report.share("wrong") <= HOSPITAL_WRONG_CEILING
