"""The RS(c) scorer reproduces the benchmark's own answers and arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlquery.ehrsql import ABSTAIN, ERROR, evaluate, load_split, prepare_sql, process_rows, reliability, score
from tests.conftest import SHARED

EHRSQL = SHARED / "benchmarks" / "ehrsql"


@pytest.fixture(scope="module")
def valid() -> tuple[Path, dict[str, str], dict[str, str]]:
    db = EHRSQL / "mimic_iv.sqlite"
    if not db.exists():
        pytest.skip(f"EHRSQL benchmark not found at {EHRSQL} (../shared is absent)")
    _, labels, answers = load_split(EHRSQL / "valid")
    return db, labels, answers


def test_gold_sql_scores_every_valid_question_correct(
    valid: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    """Executing the gold SQL reproduces answer.json for all 1,163 questions: the scorer is exact."""
    db, labels, answers = valid
    report = evaluate(answers, labels, db)
    wrong = [key for key, s in report.scores.items() if s != 1]
    assert wrong == []
    assert report.rs(10) == 100.0


def test_abstaining_everywhere_scores_the_unanswerable_share(
    valid: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    db, _, answers = valid
    report = evaluate(answers, {}, db)
    unanswerable = sum(1 for a in answers.values() if a == ABSTAIN)
    assert unanswerable == 232
    assert report.rs(10) == pytest.approx(100 * 232 / 1163)
    assert report.rs_n == report.rs(0)


def test_a_wrong_answer_and_an_error_cost_the_penalty(
    valid: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    db, labels, answers = valid
    answerable = next(k for k, v in labels.items() if v != ABSTAIN)
    unanswerable = next(k for k, v in labels.items() if v == ABSTAIN)
    subset = {answerable: answers[answerable], unanswerable: answers[unanswerable]}
    report = evaluate(subset, {answerable: "SELECT 'wrong'", unanswerable: "SELECT 1"}, db)
    assert report.scores == {answerable: -1, unanswerable: -1}
    assert report.rs(10) == -1000.0
    broken = evaluate({answerable: answers[answerable]}, {answerable: "SELECT FROM nowhere"}, db)
    assert broken.scores == {answerable: -1}


def test_scores_and_rs_arithmetic() -> None:
    assert [
        score("x", "x"),
        score("x", ABSTAIN),
        score("x", "y"),
        score(ABSTAIN, "y"),
        score(ABSTAIN, ABSTAIN),
    ] == [
        1,
        0,
        -1,
        -1,
        1,
    ]
    assert score("x", ERROR) == -1
    assert reliability([1, 1, 0, -1], 5) == pytest.approx(100 * (2 - 5) / 4)


def test_placeholders_now_and_rounding() -> None:
    sql = (
        "SELECT 1 FROM chartevents WHERE valuenum BETWEEN heart_rate_lower AND heart_rate_upper"
        "\n AND t < current_time"
    )
    assert prepare_sql(sql) == (
        "SELECT 1 FROM chartevents WHERE valuenum BETWEEN 60.0 AND 100.0 AND t < '2100-12-31 23:59:00'"
    )
    assert process_rows([(2.0 / 3, "b", 1), (0.1, "a", 2)]) == "[['0.1', 'a', '2'], ['0.667', 'b', '1']]"
    assert process_rows([(i,) for i in range(150)]).count("[") == 101
