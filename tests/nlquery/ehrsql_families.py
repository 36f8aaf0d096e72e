"""What the family test files share: the EHRSQL benchmark, its train split, and answer checks by label."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import pytest

from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.ehrsql import load_split, prepare_sql, process_rows
from nlquery.labeling import label_questions, sqlite_target
from nlquery.matcher import ValueMatcher, value_matcher
from nlquery.semantic import semantic_layer
from tests.conftest import SHARED

EHRSQL = SHARED / "benchmarks" / "ehrsql"
EMPTY_ANSWERS = ("[]", "[['None']]")

needs_ehrsql = pytest.mark.skipif(
    not (EHRSQL / "train").exists(), reason=f"EHRSQL train split not found at {EHRSQL} (../shared is absent)"
)


@cache
def benchmark() -> tuple[WarehouseTarget, ValueMatcher]:
    target = sqlite_target(EHRSQL / "mimic_iv.sqlite")
    return target, value_matcher(target)


@cache
def train_split() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Questions, gold SQL and gold answers of the train split, by id."""
    data, gold_sql, answers = load_split(EHRSQL / "train")
    return {d["id"]: d["question"] for d in data}, gold_sql, answers


def assert_answers_training_questions(family: str, keys: Iterable[str], prefix: str) -> None:
    """The family's plan gives the gold answer of each training question."""
    questions, gold_sql, answers = train_split()
    target, matcher = benchmark()
    keys = list(keys)
    items = [(key, questions[key], answers[key], gold_sql[key]) for key in keys]
    labels = label_questions(items, matcher, semantic_layer(), target, prefixes=(prefix,))
    for key in keys:
        assert family in labels[key], (questions[key], labels[key])


def assert_answers_own_question(
    family: str, question: str, sql: str, prefix: str, empty: tuple[str, ...] = EMPTY_ANSWERS
) -> None:
    """The family's plan gives the answer of gold SQL we wrote for a question the train split lacks."""
    target, matcher = benchmark()
    gold = process_rows(execute_readonly(prepare_sql(sql), target=target).rows)
    assert gold not in empty, "the check needs a question with an answer"
    labels = label_questions(
        [("own", question, gold, sql)], matcher, semantic_layer(), target, prefixes=(prefix,)
    )
    assert family in labels["own"], labels["own"]
