"""The EHRSQL 2024 reliability score, RS(c), as ../shared/benchmarks/ehrsql/README.md defines it.

A prediction is scored by executing it and the gold SQL on the benchmark database and comparing
their processed results: `current_time` replaced by the fixed now, vital-sign range placeholders by
their ranges, every number rounded to 3 decimals and every cell kept as text, rows sorted, the first
100 rows kept. Column order and duplicates count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import warehouse_target

ABSTAIN = "null"
ERROR = "error"
NOW = "2100-12-31 23:59:00"
# Normal ranges the gold SQL writes as <name>_lower / <name>_upper placeholders.
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (35.5, 38.1),
    "sao2": (95.0, 100.0),
    "heart_rate": (60.0, 100.0),
    "respiration": (12.0, 18.0),
    "systolic_bp": (90.0, 120.0),
    "diastolic_bp": (60.0, 90.0),
    "mean_bp": (60.0, 110.0),
}
_PLACEHOLDER = re.compile(r"\b(" + "|".join(VITAL_RANGES) + r")_(lower|upper)\b")
# Every row is needed before sorting; the answer keeps the first 100 of the sorted rows.
_ROW_CAP = 1_000_000


def prepare_sql(sql: str) -> str:
    """The SQL the scorer runs: one line, the fixed now, the vital ranges filled in."""
    sql = re.sub(r"\s+", " ", sql).strip()
    sql = re.sub(r"\bcurrent_time\b", f"'{NOW}'", sql)
    return _PLACEHOLDER.sub(lambda m: str(VITAL_RANGES[m.group(1)][0 if m.group(2) == "lower" else 1]), sql)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return str(round(value, 3))
    return str(value)


def process_rows(rows: Iterable[Sequence[object]]) -> str:
    """The comparable form of a result, as answer.json stores it."""
    return str(sorted([[_cell(c) for c in row] for row in rows])[:100])


def execute_answer(sql: str, db_path: Path) -> str:
    """The processed result of one SQL statement, "null" for an abstention, "error" when it fails."""
    if sql.strip() == ABSTAIN:
        return ABSTAIN
    target = warehouse_target(f"sqlite:///{db_path}")
    try:
        result = execute_readonly(prepare_sql(sql), target=target, row_cap=_ROW_CAP)
    except WarehouseError:
        return ERROR
    return process_rows(result.rows)


def score(gold: str, predicted: str) -> int:
    """+1 correct answer or correct abstention, 0 abstention on an answerable question, -1 otherwise."""
    if gold == ABSTAIN:
        return 1 if predicted == ABSTAIN else -1
    if predicted == ABSTAIN:
        return 0
    return 1 if predicted == gold else -1


def reliability(scores: Iterable[int], penalty: float) -> float:
    """RS(c) in percent: the mean score with every -1 weighted by the penalty c."""
    values = [penalty * -1 if s == -1 else s for s in scores]
    return 100.0 * sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class Report:
    scores: dict[str, int]

    def rs(self, penalty: float) -> float:
        return reliability(self.scores.values(), penalty)

    @property
    def rs_n(self) -> float:
        """RS(N): one wrong answer cancels every correct one (penalty = number of questions)."""
        return self.rs(len(self.scores))


def evaluate(gold_answers: Mapping[str, str], predictions: Mapping[str, str], db_path: Path) -> Report:
    """Score predicted SQL (id -> SQL or "null") against gold answers (id -> processed result or "null")."""
    scores = {
        key: score(gold, execute_answer(predictions.get(key, ABSTAIN), db_path))
        for key, gold in gold_answers.items()
    }
    return Report(scores)


def load_split(split: Path) -> tuple[list[dict[str, str]], dict[str, str], dict[str, str]]:
    """A split folder's questions, gold SQL and gold answers."""
    data = json.loads((split / "data.json").read_text())["data"]
    labels = json.loads((split / "label.json").read_text())
    answers = json.loads((split / "answer.json").read_text())
    return data, labels, answers
