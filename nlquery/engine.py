"""Understand + compile behind one call: a question in, SQL in the warehouse's dialect or an abstention."""

from __future__ import annotations

from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from nlquery.compiler import CompileError, compile_plan, to_sql
from nlquery.matcher import value_matcher
from nlquery.plan import QueryPlan, Unanswerable
from nlquery.understand import understand


def plan_question(question: str, target: WarehouseTarget | None = None) -> QueryPlan | Unanswerable:
    return understand(question, value_matcher(target or warehouse_target()))


def predict_sql(question: str, target: WarehouseTarget | None = None) -> str | None:
    """SQL answering the question on the target's dialect, or None when the engine abstains."""
    target = target or warehouse_target()
    plan = plan_question(question, target)
    if isinstance(plan, Unanswerable):
        return None
    try:
        return to_sql(compile_plan(plan), target.dialect)
    except CompileError:
        return None
