"""Families that work the same way for every kind of event: values, aggregates, existence, counts,
times and names for one patient; patient counts, case counts and top-k for the population."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlglot import exp

from nlquery.families.base import (
    CompileError,
    Family,
    QueryPlan,
    Spec,
    event_of,
    event_rows,
    name_of,
    ordered_one,
    register,
    select,
    spoken_time,
)
from nlquery.semantic.loader import Event, SemanticLayer
from nlquery.sqlparts import Ctx, col, fmt, lit

# The matcher's value kinds and the semantic layer's event each names.
EVENT_OF_KIND = {
    "lab": "lab", "chart": "vital", "input": "input", "output": "output", "drug": "drug",
    "diagnosis": "diagnosis", "procedure": "procedure", "test": "microbiology", "specimen": "specimen",
    "careunit": "transfer",
}  # fmt: skip
KIND_OF_EVENT = {event: kind for kind, event in EVENT_OF_KIND.items()}
# How interpretations name one event of each kind.
event_nouns = {
    "lab": "lab test", "vital": "vital sign", "input": "intake", "output": "output", "drug": "drug",
    "diagnosis": "diagnosis", "procedure": "procedure", "microbiology": "microbiology test",
    "specimen": "specimen", "transfer": "care unit stay",
}  # fmt: skip
_AGGREGATE_WORDS = {"MIN": "minimum", "MAX": "maximum", "AVG": "average", "SUM": "total"}


def _values(plan: QueryPlan) -> tuple[str, ...]:
    return tuple(f.value for f in plan.filters)


def _rows(plan: QueryPlan, ctx: Ctx, event: Event) -> exp.Expr | None:
    return event_rows(ctx, event, subject=plan.subject_id, values=_values(plan), time=plan.time)


def _where(query: exp.Select, condition: exp.Expr | None) -> exp.Select:
    return query if condition is None else query.where(condition, copy=False)


def _named(event: Event) -> exp.Column:
    if event.name_column is None:
        raise CompileError(f"{event.name} events are coded, not named")
    return col(event.column(event.name_column))


def _code(event: Event) -> exp.Column:
    if event.code is None:
        raise CompileError(f"{event.name} events are named, not coded")
    return col(event.column(event.code))


def _when(plan: QueryPlan) -> str:
    return spoken_time(plan.time)


def _what(plan: QueryPlan, event: Event) -> str:
    return ", ".join(f.value for f in plan.filters) or f"any {event.noun}"


def _which(plan: QueryPlan) -> str:
    return plan.ordinals[0].which.replace("_", " ") if plan.ordinals else "first"


# --- One patient ---------------------------------------------------------------------------------


def _value(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    if event.value is None:
        raise CompileError(f"{event.name} events carry no value")
    time = col(event.column(event.time))
    query = _where(
        select(col(event.column(event.value))).from_(event.table, copy=False), _rows(plan, ctx, event)
    )
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, time)


def _aggregate(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    if event.value is None or not plan.aggregate:
        raise CompileError("an aggregate needs a value and a function")
    value: exp.Expr = exp.func(plan.aggregate, col(event.column(event.value)))
    query = _where(select(value).from_(event.table, copy=False), _rows(plan, ctx, event))
    if plan.period:
        pattern = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}.get(plan.period)
        if pattern is None:
            raise CompileError(f"no grouping by {plan.period}")
        period = fmt(ctx, col(event.column(event.time)), pattern)
        query = query.group_by(period, copy=False)
        if ctx.labels:
            query = select(exp.alias_(period.copy(), plan.period), value.copy()).from_(
                event.table, copy=False
            )
            query = (
                _where(query, _rows(plan, ctx, event))
                .group_by(period.copy(), copy=False)
                .order_by(plan.period, copy=False)
            )
    return query


def _exists(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    count = exp.GT(this=exp.Count(this=exp.Star()), expression=lit(0))
    return _where(select(count).from_(event.table, copy=False), _rows(plan, ctx, event))


def _count(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    return _where(select(exp.Count(this=exp.Star())).from_(event.table, copy=False), _rows(plan, ctx, event))


def _time(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    time = col(event.column(event.time))
    query = _where(select(time).from_(event.table, copy=False), _rows(plan, ctx, event))
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, time)


def _name(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Every distinct name recorded at the first (last...) time: simultaneous events are all named."""
    event = event_of(layer, plan.event)
    time = col(event.column(event.time))
    rows = _rows(plan, ctx, event)
    moment = ordered_one(
        _where(select(time.copy()).distinct(copy=False).from_(event.table, copy=False), rows),
        plan.ordinals[0] if plan.ordinals else None,
        time.copy(),
    )
    at_moment = exp.EQ(this=time.copy(), expression=moment.subquery())
    rows = at_moment if rows is None else exp.and_(rows.copy(), at_moment, copy=False)
    if event.name_column is not None:
        return (
            select(_named(event)).distinct(copy=False).from_(event.table, copy=False).where(rows, copy=False)
        )
    return name_of(
        event, select(_code(event)).from_(event.table, copy=False).where(rows, copy=False)
    ).distinct(copy=False)


# --- The population ------------------------------------------------------------------------------


def _count_patients(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    visits = _where(
        select(col(event.column("hadm_id"))).from_(event.table, copy=False), _rows(plan, ctx, event)
    )
    distinct = exp.Count(this=exp.Distinct(expressions=[col("admissions.subject_id")]))
    return (
        select(distinct)
        .from_("admissions", copy=False)
        .where(col("admissions.hadm_id").isin(query=visits), copy=False)
    )


def _topk(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    if plan.k is None or plan.k < 1:
        raise CompileError("top-k needs k")
    key = _named(event) if event.name_column is not None else _code(event)
    rank: exp.Expr = exp.Window(
        this=exp.func("DENSE_RANK"),
        order=exp.Order(expressions=[exp.Ordered(this=exp.Count(this=exp.Star()), desc=True)]),
    )
    conditions: exp.Expr | None = _rows(plan, ctx, event)
    if plan.age is not None:
        low, high = plan.age
        visits = select(col("admissions.hadm_id")).from_("admissions", copy=False)
        age = col("admissions.age")
        visits = visits.where(
            exp.GTE(this=age, expression=lit(low))
            if high is None
            else exp.Between(this=age, low=lit(low), high=lit(high)),
            copy=False,
        )
        in_age = col(event.column("hadm_id")).isin(query=visits, copy=False)
        conditions = in_age if conditions is None else exp.and_(conditions, in_age, copy=False)
    ranked = _where(
        select(key.copy(), exp.alias_(rank, "c1")).from_(event.table, copy=False), conditions
    ).group_by(key.copy(), copy=False)
    top = (
        select(exp.column(key.name, table="t1"))
        .from_(ranked.subquery("t1"), copy=False)
        .where(exp.LTE(this=exp.column("c1", table="t1"), expression=lit(plan.k)), copy=False)
    )
    if event.name_column is not None:
        return top
    return name_of(event, top)


def _cases(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    return _count(plan, ctx, layer)


# --- Interpretation ------------------------------------------------------------------------------


def _of(p: QueryPlan) -> str:
    return f"patient {p.subject_id}"


def _aged(p: QueryPlan) -> str:
    if p.age is None:
        return ""
    low, high = p.age
    return f" among patients aged {low}+" if high is None else f" among patients aged {low} to {high}"


def _describe(template: str, event: str) -> Callable[[QueryPlan], str]:
    """An interpretation from a template over the plan's slots (str.format names below)."""

    def describe(p: QueryPlan) -> str:
        value = p.filters[0].value if p.filters else ""
        return template.format(
            patient=_of(p),
            value=value,
            which=_which(p),
            when=_when(p),
            event=event,
            k=p.k,
            aged=_aged(p),
            what=", ".join(f.value for f in p.filters) or f"any {event}",
            agg=_AGGREGATE_WORDS.get(p.aggregate, p.aggregate.lower()),
            per=f" per {p.period}" if p.period else "",
            of_value=f" of {value}" if value else "",
        ).replace("  ", " ")

    return describe


# --- Registration --------------------------------------------------------------------------------

_VALUED = ("lab", "vital", "input", "output")
_ALL = ("lab", "vital", "input", "output", "drug", "diagnosis", "procedure", "microbiology", "specimen",
        "transfer")  # fmt: skip
_PATIENT = Spec(patient=True)

for _event in _VALUED:
    _kind = KIND_OF_EVENT[_event]
    _noun = event_nouns[_event]
    register(Family(
        f"value.{_event}", "patient", replace(_PATIENT, values=(_kind,), ordinal="required"), _value,
        _describe("Showing the {which} {value} value of {patient}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"aggregate.{_event}", "patient",
        replace(_PATIENT, values=(_kind,), patterns={"aggregate": "required", "period": "optional"}),
        _aggregate, _describe("Showing the {agg} {value}{per} of {patient}{when}.", _noun), event=_event,
    ))  # fmt: skip

for _event in _ALL:
    _kind = KIND_OF_EVENT[_event]
    _noun = event_nouns[_event]
    register(Family(
        f"exists.{_event}", "patient", replace(_PATIENT, optional_values=(_kind,)), _exists,
        _describe("Checking whether {patient} had {what}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"count.{_event}", "patient", replace(_PATIENT, optional_values=(_kind,)), _count,
        _describe("Counting the {event} records{of_value} of {patient}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"time.{_event}", "patient", replace(_PATIENT, optional_values=(_kind,), ordinal="required"), _time,
        _describe("Showing the {which} time {patient} had {what}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"name.{_event}", "patient", replace(_PATIENT, ordinal="required"), _name,
        _describe("Showing the {which} {event} of {patient}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"patients.{_event}", "count", Spec(patient=False, values=(_kind,)), _count_patients,
        _describe("Counting distinct patients with {value}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"cases.{_event}", "count", Spec(patient=False, values=(_kind,)), _cases,
        _describe("Counting the {event} records of {value}{when}.", _noun), event=_event,
    ))  # fmt: skip
    register(Family(
        f"topk.{_event}", "topk", Spec(patient=False, patterns={"rank": "required", "age": "optional"}),
        _topk,
        _describe("Listing the {k} most frequent {event} records{aged}{when}.", _noun), event=_event,
    ))  # fmt: skip
