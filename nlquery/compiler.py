"""QueryPlan -> SQL as a sqlglot expression, rendered for the warehouse's dialect.

Values enter the tree as literals (exp.Literal), never pasted into SQL text.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from nlquery.plan import QueryPlan


class CompileError(Exception):
    """The plan asks for something the compiler cannot express yet; the engine abstains."""


def _col(dotted: str) -> exp.Column:
    table, column = dotted.split(".")
    return exp.column(column, table=table)


def _eq(dotted: str, value: str | int) -> exp.EQ:
    literal = exp.Literal.number(value) if isinstance(value, int) else exp.Literal.string(value)
    return exp.EQ(this=_col(dotted), expression=literal)


def compile_plan(plan: QueryPlan) -> exp.Select:
    if plan.family == "lookup.route":
        (drug,) = (f.value for f in plan.filters if f.kind == "drug")
        return (
            sqlglot.select(_col("prescriptions.route"))
            .distinct()
            .from_("prescriptions")
            .where(_eq("prescriptions.drug", drug))
        )
    if plan.family == "lookup.cost":
        (target,) = plan.filters
        if target.kind == "drug":
            events = (
                sqlglot.select(_col("prescriptions.row_id"))
                .from_("prescriptions")
                .where(_eq("prescriptions.drug", target.value))
            )
            event_type = "prescriptions"
        else:
            table = {"procedure": "procedures_icd", "diagnosis": "diagnoses_icd"}[target.kind]
            dictionary = {"procedure": "d_icd_procedures", "diagnosis": "d_icd_diagnoses"}[target.kind]
            code = (
                sqlglot.select(_col(f"{dictionary}.icd_code"))
                .from_(dictionary)
                .where(_eq(f"{dictionary}.long_title", target.value))
            )
            events = (
                sqlglot.select(_col(f"{table}.row_id"))
                .from_(table)
                .where(exp.EQ(this=_col(f"{table}.icd_code"), expression=exp.Subquery(this=code)))
            )
            event_type = table
        return (
            sqlglot.select(_col("cost.cost"))
            .distinct()
            .from_("cost")
            .where(_eq("cost.event_type", event_type))
            .where(_col("cost.event_id").isin(query=events))
        )
    if plan.family == "patient.attribute" and plan.subject_id is not None:
        table = plan.attribute.split(".")[0]
        query = (
            sqlglot.select(_col(plan.attribute))
            .from_(table)
            .where(_eq(f"{table}.subject_id", plan.subject_id))
        )
        if table == "patients":
            return query
        visits = [c for c in plan.time if c.kind == "visit" and c.visit == "hospital"]
        if table == "admissions" and len(visits) == 1:
            visit = visits[0]
            if visit.which == "current":
                return query.where(exp.Is(this=_col("admissions.dischtime"), expression=exp.Null()))
            return (
                query.where(exp.Not(this=exp.Is(this=_col("admissions.dischtime"), expression=exp.Null())))
                .order_by(exp.Ordered(this=_col("admissions.admittime"), desc=visit.which == "last"))
                .limit(1)
            )
    raise CompileError(f"no compilation for {plan.family} with these constraints yet")


def to_sql(expression: exp.Expression, dialect: str) -> str:
    return expression.sql(dialect=dialect)
