"""Score the engine on the hospital's own questions (nlquery/questions/hospital.json) by executed results.

Each question's gold SQL (SQLite, `current_time` for now) and the engine's SQL run on the same demo
warehouse; an answer is correct when the processed results are equal, as EHRSQL scores them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.ehrsql import process_rows
from nlquery.engine import compile_sql, plan_question
from nlquery.families import CompileError
from nlquery.plan import Unanswerable

QUESTIONS: Final = Path(__file__).resolve().parent / "questions" / "hospital.json"
_CURRENT_TIME = re.compile(r"\bcurrent_time\b", re.IGNORECASE)
_ROW_CAP: Final = 100_000


def load_questions(path: Path = QUESTIONS) -> tuple[str, list[dict[str, Any]]]:
    """The file's "now" and its items."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return str(doc["now"]), list(doc["items"])


@dataclass
class HospitalReport:
    outcomes: dict[str, str] = field(default_factory=dict)  # id -> correct | abstained | wrong
    kinds: dict[str, str] = field(default_factory=dict)

    def share(self, outcome: str, kind: str | None = None) -> float:
        keys = [k for k in self.outcomes if kind is None or self.kinds[k] == kind]
        return sum(1 for k in keys if self.outcomes[k] == outcome) / len(keys) if keys else 0.0

    def lines(self) -> list[str]:
        total = len(self.outcomes)
        out = [
            f"{total} hospital questions: correct {self.share('correct'):.1%}, "
            f"abstained {self.share('abstained'):.1%}, wrong {self.share('wrong'):.1%}",
            "  kind          questions  correct  abstained  wrong",
        ]
        for kind, n in Counter(self.kinds.values()).most_common():
            out.append(
                f"  {kind:13} {n:9}  {self.share('correct', kind):7.1%}  "
                f"{self.share('abstained', kind):9.1%}  {self.share('wrong', kind):5.1%}"
            )
        return out


def _result(sql: str, target: WarehouseTarget) -> str | None:
    try:
        return process_rows(execute_readonly(sql, target=target, row_cap=_ROW_CAP).rows)
    except WarehouseError:
        return None


def evaluate_hospital(items: list[dict[str, Any]], target: WarehouseTarget, now: str) -> HospitalReport:
    """Ask every question of the warehouse and compare with the gold result."""
    report = HospitalReport()
    for item in items:
        key = item["id"]
        report.kinds[key] = item["kind"]
        plan = plan_question(item["question"], target)
        if isinstance(plan, Unanswerable):
            report.outcomes[key] = "correct" if item["sql"] == "null" else "abstained"
            continue
        if item["sql"] == "null":
            report.outcomes[key] = "wrong"
            continue
        try:
            predicted = _result(compile_sql(plan, target.dialect, now), target)
        except CompileError:
            report.outcomes[key] = "abstained"
            continue
        gold = _result(_CURRENT_TIME.sub(f"'{now}'", item["sql"]), target)
        report.outcomes[key] = "correct" if predicted is not None and predicted == gold else "wrong"
    return report
