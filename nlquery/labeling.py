"""Label questions with the plan families that answer them, by executing every plan that fits.

A question's label is each family whose plan, compiled and run on the benchmark database, gives the
gold answer. No hand labelling: the gold answers of the training split decide, so the classifier
learns exactly the families the compiler can honour.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.ehrsql import ABSTAIN, ERROR, NOW, process_rows
from nlquery.families import CompileError, QueryPlan
from nlquery.families.base import families_for
from nlquery.matcher import ValueMatcher
from nlquery.reading import read_question
from nlquery.semantic.loader import SemanticLayer
from nlquery.sqlparts import Ctx, TimeCompileError

_ROW_CAP = 1_000_000
_TABLE = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    plan: QueryPlan
    sql: str


def candidates(
    question: str, matcher: ValueMatcher, layer: SemanticLayer, ctx: Ctx, prefixes: tuple[str, ...] = ()
) -> Iterator[Candidate]:
    """Every plan of every family (named with one of `prefixes`, if any) that fits the question."""
    found = read_question(question, matcher)
    for family in families_for(found):
        if prefixes and not family.name.startswith(prefixes):
            continue
        for plan in family.bind(found):
            try:
                sql = family.compile(plan, ctx, layer).sql(dialect=ctx.dialect, copy=False)
            except (CompileError, TimeCompileError):
                continue
            yield Candidate(plan, sql)


def tables_of(sql: str) -> frozenset[str]:
    """The tables a query reads (every FROM and JOIN), lower case."""
    return frozenset(m.lower() for m in _TABLE.findall(sql))


@dataclass(frozen=True)
class _Job:
    matcher: ValueMatcher
    layer: SemanticLayer
    target: WarehouseTarget
    ctx: Ctx
    prefixes: tuple[str, ...]


# Set in the parent before worker processes fork, so each worker inherits the matcher instead of
# rebuilding it (a process pool pickles arguments; a matcher is tens of megabytes).
_JOB: _Job | None = None


def _label_one(item: tuple[str, str, str, str]) -> tuple[str, list[str]]:
    assert _JOB is not None
    job = _JOB
    key, question, gold, gold_sql = item
    if gold == ABSTAIN:
        return key, ["unanswerable"]
    matched: list[str] = []
    read: dict[str, frozenset[str]] = {}
    results: dict[str, str] = {}  # families often compile to the same SQL: run it once
    for candidate in candidates(question, job.matcher, job.layer, job.ctx, job.prefixes):
        if candidate.plan.family in matched:
            continue
        if candidate.sql not in results:
            try:
                rows = execute_readonly(candidate.sql, target=job.target, row_cap=_ROW_CAP).rows
            except WarehouseError:
                rows = None
            results[candidate.sql] = ERROR if rows is None else process_rows(rows)
        if results[candidate.sql] == gold:
            matched.append(candidate.plan.family)
            read[candidate.plan.family] = tables_of(candidate.sql)
    if len(matched) > 1:
        wanted = tables_of(gold_sql)
        overlap = {f: len(read[f] & wanted) / len(read[f] | wanted) for f in matched}
        best = max(overlap.values())
        matched = [f for f in matched if overlap[f] == best]
    return key, matched


def label_questions(
    items: Iterable[tuple[str, str, str, str]],
    matcher: ValueMatcher,
    layer: SemanticLayer,
    target: WarehouseTarget,
    now: str = NOW,
    prefixes: tuple[str, ...] = (),
    workers: int = 1,
) -> dict[str, list[str]]:
    """id -> the families whose plan gives the gold answer, for (id, question, answer, SQL) items.

    When several families give the answer (a yes/no any event table can give), those reading the
    same tables as the gold SQL are kept: the classifier should learn "diagnosis" from a question
    about diagnoses, not whichever table happened to agree. `workers` > 1 labels in that many
    forked processes.
    """
    global _JOB
    _JOB = _Job(matcher, layer, target, Ctx(target.dialect, now, labels=False), prefixes)
    try:
        if workers <= 1:
            return dict(_label_one(item) for item in items)
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return dict(pool.imap(_label_one, list(items), chunksize=16))
    finally:
        _JOB = None


def sqlite_target(db: Path) -> WarehouseTarget:
    from hisplatform.warehouse.targets import warehouse_target

    return warehouse_target(f"sqlite:///{db}")
