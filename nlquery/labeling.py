"""Label questions with the plan families that answer them, by executing every plan that fits.

A question's label is each family whose plan, compiled and run on the benchmark database, gives the
gold answer. No hand labelling: the gold answers of the training split decide, so the classifier
learns exactly the families the compiler can honour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.ehrsql import ABSTAIN, NOW, process_rows
from nlquery.families import FAMILIES, CompileError, QueryPlan
from nlquery.matcher import ValueMatcher
from nlquery.reading import read_question
from nlquery.semantic.loader import SemanticLayer
from nlquery.sqlparts import Ctx, TimeCompileError

_ROW_CAP = 1_000_000


@dataclass(frozen=True)
class Candidate:
    plan: QueryPlan
    sql: str


def candidates(
    question: str, matcher: ValueMatcher, layer: SemanticLayer, ctx: Ctx, prefixes: tuple[str, ...] = ()
) -> Iterator[Candidate]:
    """Every plan of every family (named with one of `prefixes`, if any) that fits the question."""
    found = read_question(question, matcher)
    for family in FAMILIES.values():
        if prefixes and not family.name.startswith(prefixes):
            continue
        for plan in family.bind(found):
            try:
                sql = family.compile(plan, ctx, layer).sql(dialect=ctx.dialect)
            except (CompileError, TimeCompileError):
                continue
            yield Candidate(plan, sql)


def label_questions(
    items: Iterable[tuple[str, str, str]],
    matcher: ValueMatcher,
    layer: SemanticLayer,
    target: WarehouseTarget,
    now: str = NOW,
    prefixes: tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """id -> the families whose plan gives the gold answer, for (id, question, gold answer) items."""
    ctx = Ctx(target.dialect, now)
    labels: dict[str, list[str]] = {}
    for key, question, gold in items:
        if gold == ABSTAIN:
            labels[key] = ["unanswerable"]
            continue
        matched: list[str] = []
        for candidate in candidates(question, matcher, layer, ctx, prefixes):
            if candidate.plan.family in matched:
                continue
            try:
                result = execute_readonly(candidate.sql, target=target, row_cap=_ROW_CAP)
            except WarehouseError:
                continue
            if process_rows(result.rows) == gold:
                matched.append(candidate.plan.family)
        labels[key] = matched
    return labels


def sqlite_target(db: Path) -> WarehouseTarget:
    from hisplatform.warehouse.targets import warehouse_target

    return warehouse_target(f"sqlite:///{db}")
