"""Plan families: what a question returns, composed with a patient, values, time and options.

A family declares what it needs (a `Spec`): whether it is about one patient, which kinds of values
it takes, which time constraints and rule findings it honours. `bind` turns what was found in a
question into a `QueryPlan` only when every need is met and nothing found is left unused, so a
plan never silently drops part of a question. `compile` turns a plan into a sqlglot SELECT for
either dialect, with time constraints compiled by nlquery.sqlparts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Final, Literal

import sqlglot
from sqlglot import exp

from nlquery.matcher import ValueMatch
from nlquery.patterns import Finding
from nlquery.semantic.loader import Event, SemanticLayer
from nlquery.sqlparts import Ctx, and_, col, eq, time_condition
from nlquery.timeexpr import TimeConstraint

Need = Literal["no", "optional", "required"]
PATTERN_KINDS: Final = (
    "aggregate", "comparison", "rank", "times", "age", "elapsed_unit", "period", "survival", "number",
)  # fmt: skip


class CompileError(Exception):
    """The plan asks for something this compiler cannot express; the engine abstains."""


@dataclass(frozen=True)
class Found:
    """Everything the rule readers found in one question, with spans."""

    text: str
    patients: tuple[int, ...] = ()
    spans: tuple[tuple[ValueMatch, ...], ...] = ()  # per mention, its alternative readings
    time: tuple[TimeConstraint, ...] = ()
    patterns: tuple[Finding, ...] = ()

    def of(self, kind: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.patterns if f.kind == kind)


@dataclass(frozen=True)
class Filter:
    """A value rows must match: `kind` is the matcher's kind (lab, drug, diagnosis...)."""

    kind: str
    value: str
    start: int = field(default=0, compare=False)


@dataclass(frozen=True)
class QueryPlan:
    """A composed plan. `family` names the compiler; the rest are its slots (unused ones stay empty)."""

    family: str
    kind: str  # patient | count | topk | aggregate | lookup | rate | trend | compare | operational
    event: str = ""  # the semantic layer's event the family reads
    subject_id: int | None = None
    filters: tuple[Filter, ...] = ()  # values of the main event (in question order)
    after_event: str = ""  # for "... after <event>": the earlier event
    after: tuple[Filter, ...] = ()  # its values
    window: TimeConstraint | None = None  # between the earlier and the later event
    time: tuple[TimeConstraint, ...] = ()  # calendar, relative and visit constraints, question order
    ordinals: tuple[TimeConstraint, ...] = ()  # which measurement: first, last, second...
    aggregate: str = ""  # MIN | MAX | AVG | SUM
    comparison: tuple[str, float] | None = None
    number: float | None = None  # a bare number the family reads (a lab value for a percentile)
    k: int | None = None
    age: tuple[int, int | None] | None = None
    times: tuple[str, int] | None = None
    unit: str = ""  # elapsed-time unit
    period: str = ""  # grouping period: day, week, month, year
    survival: str = ""  # "1-year", "6-month"
    option: str = ""  # a family-specific choice (the attribute asked, the sort order...)
    confidence: float = 0.0
    interpretation: str = ""


@dataclass(frozen=True)
class Spec:
    """What a family needs from a question; anything found outside it makes the family not apply."""

    patient: bool
    values: tuple[str, ...] = ()  # value kinds it requires, one mention each
    optional_values: tuple[str, ...] = ()  # value kinds it may take, at most one mention each
    ordinal: Need = "no"
    max_ordinals: int = 1
    time: Need = "optional"  # calendar, relative and visit constraints
    max_time: int = 1
    window: Need = "no"  # a between-events constraint
    patterns: dict[str, Need] = field(default_factory=dict)  # PATTERN_KINDS -> need; absent = "no"
    visit_only: bool = False  # the time constraint, if any, must be a hospital or ICU visit


Build = Callable[[QueryPlan, Ctx, SemanticLayer], exp.Query]
Refine = Callable[[QueryPlan, Found], QueryPlan | None]


@dataclass(frozen=True)
class Family:
    name: str  # e.g. "value.lab": the classifier's label
    kind: str
    spec: Spec
    build: Build
    describe: Callable[[QueryPlan], str]
    event: str = ""
    # A last check on the bound plan (e.g. an option read from words); None means it does not apply.
    refine: Refine | None = None

    def bind(self, found: Found) -> Iterator[QueryPlan]:
        """Every plan of this family that uses exactly what was found (several if values are ambiguous)."""
        spec = self.spec
        if spec.patient != (len(found.patients) == 1) or len(found.patients) > 1:
            return
        read = _sorted_out(found)
        ordinals, windows, times = read.ordinals, read.windows, read.times
        if not _fits(spec.ordinal, len(ordinals), spec.max_ordinals):
            return
        if not _fits(spec.window, len(windows), 1) or not _fits(spec.time, len(times), spec.max_time):
            return
        if spec.visit_only and any(t.kind != "visit" for t in times):
            return
        picked: dict[str, Finding] = {}
        for kind, hits in read.findings:
            if not _fits(spec.patterns.get(kind, "no"), len(hits), 1):
                return
            if hits:
                picked[kind] = hits[0]
        for filters in _assign(found.spans, spec.values, spec.optional_values):
            plan = _with_patterns(QueryPlan(
                family=self.name,
                kind=self.kind,
                event=self.event,
                subject_id=found.patients[0] if spec.patient else None,
                filters=filters,
                window=windows[0] if windows else None,
                time=times,
                ordinals=ordinals,
            ), picked)  # fmt: skip
            refined = self.refine(plan, found) if self.refine else plan
            if refined is not None:
                yield refined

    def compile(self, plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
        return self.build(plan, ctx, layer)


@dataclass(frozen=True)
class _SortedOut:
    ordinals: tuple[TimeConstraint, ...]
    windows: tuple[TimeConstraint, ...]
    times: tuple[TimeConstraint, ...]
    findings: tuple[tuple[str, tuple[Finding, ...]], ...]  # per PATTERN_KINDS


@lru_cache(maxsize=16)
def _sorted_out(found: Found) -> _SortedOut:
    """What every family's bind reads from a question, sorted once per question, not once per family."""
    findings = []
    for kind in PATTERN_KINDS:
        hits = found.of(kind)
        if len({h.value for h in hits}) == 1:
            hits = hits[:1]  # "the total intake minus the total output": one aggregate, said twice
        findings.append((kind, hits))
    return _SortedOut(
        tuple(t for t in found.time if t.kind == "ordinal"),
        tuple(t for t in found.time if t.kind == "within"),
        tuple(t for t in found.time if t.kind in ("abs", "rel", "visit")),
        tuple(findings),
    )


def _fits(need: Need, count: int, most: int) -> bool:
    if need == "no":
        return count == 0
    if need == "required":
        return 1 <= count <= most
    return count <= most


def _number(finding: Finding) -> float:
    value = finding.value
    if isinstance(value, tuple):
        raise TypeError(f"{finding.kind} holds a range, not a number")
    return float(value)


def _with_patterns(plan: QueryPlan, picked: dict[str, Finding]) -> QueryPlan:
    """The plan with each picked finding in its slot."""
    if "aggregate" in picked:
        plan = replace(plan, aggregate=str(picked["aggregate"].value))
    if "comparison" in picked:
        plan = replace(plan, comparison=(picked["comparison"].op, _number(picked["comparison"])))
    if "number" in picked:
        plan = replace(plan, number=_number(picked["number"]))
    if "rank" in picked:
        plan = replace(plan, k=int(_number(picked["rank"])))
    if "age" in picked:
        age = picked["age"].value
        if isinstance(age, tuple):
            plan = replace(plan, age=age)
    if "times" in picked:
        plan = replace(plan, times=(picked["times"].op, int(_number(picked["times"]))))
    if "elapsed_unit" in picked:
        plan = replace(plan, unit=str(picked["elapsed_unit"].value))
    if "period" in picked:
        plan = replace(plan, period=str(picked["period"].value))
    if "survival" in picked:
        plan = replace(plan, survival=str(picked["survival"].value))
    return plan


def _assign(
    spans: tuple[tuple[ValueMatch, ...], ...], required: tuple[str, ...], optional: tuple[str, ...]
) -> Iterator[tuple[Filter, ...]]:
    """Each way of reading every mention as one of the wanted kinds, all required kinds covered."""
    if len(spans) < len(required) or len(spans) > len(required) + len(optional):
        return
    wanted = required + optional
    seen: set[tuple[Filter, ...]] = set()
    for choice in itertools.product(*spans):
        kinds = [m.kind for m in choice]
        pool = list(wanted)
        ok = True
        for kind in kinds:
            if kind in pool:
                pool.remove(kind)
            else:
                ok = False
                break
        if not ok or any(kind in pool for kind in required if kinds.count(kind) < required.count(kind)):
            continue
        filters = tuple(Filter(m.kind, m.value, m.start) for m in choice)
        if filters not in seen:
            seen.add(filters)
            yield filters


# --- Building blocks shared by families ---------------------------------------------------------


def event_of(layer: SemanticLayer, name: str) -> Event:
    try:
        return layer.events[name]
    except KeyError:
        raise CompileError(f"the semantic layer has no event {name!r}") from None


def select(*expressions: exp.Expr | str) -> exp.Select:
    return sqlglot.select(*expressions)


def visits_of(subject: int, visit: TimeConstraint | None = None) -> exp.Select:
    """The patient's hospital visits (hadm_id), narrowed to the first, last or current one."""
    query = (
        select(col("admissions.hadm_id"))
        .from_("admissions", copy=False)
        .where(eq("admissions.subject_id", subject), copy=False)
    )
    if visit is None or visit.visit != "hospital":
        return query
    discharged = col("admissions.dischtime")
    if visit.which == "current":
        return query.where(exp.Is(this=discharged, expression=exp.Null()), copy=False)
    if visit.which not in ("first", "last"):
        raise CompileError(f"no {visit.which} hospital visit")
    return (
        query.where(exp.Not(this=exp.Is(this=discharged, expression=exp.Null())), copy=False)
        .order_by(exp.Ordered(this=col("admissions.admittime"), desc=visit.which == "last"), copy=False)
        .limit(1, copy=False)
    )


def stays_of(subject: int, visit: TimeConstraint | None = None) -> exp.Select:
    """The patient's ICU stays (stay_id), narrowed by a hospital or ICU visit constraint."""
    hospital = visit if visit is not None and visit.visit == "hospital" else None
    query = (
        select(col("icustays.stay_id"))
        .from_("icustays", copy=False)
        .where(col("icustays.hadm_id").isin(query=visits_of(subject, hospital)), copy=False)
    )
    if visit is None or visit.visit != "icu":
        return query
    out = col("icustays.outtime")
    if visit.which == "current":
        return query.where(exp.Is(this=out, expression=exp.Null()), copy=False)
    if visit.which not in ("first", "last"):
        raise CompileError(f"no {visit.which} ICU stay")
    return (
        query.where(exp.Not(this=exp.Is(this=out, expression=exp.Null())), copy=False)
        .order_by(exp.Ordered(this=col("icustays.intime"), desc=visit.which == "last"), copy=False)
        .limit(1, copy=False)
    )


def split_time(
    plan_time: tuple[TimeConstraint, ...],
) -> tuple[TimeConstraint | None, tuple[TimeConstraint, ...]]:
    """The (at most one) visit constraint and the calendar/relative ones."""
    visits = [t for t in plan_time if t.kind == "visit"]
    if len(visits) > 1:
        raise CompileError("more than one visit constraint")
    return (visits[0] if visits else None), tuple(t for t in plan_time if t.kind != "visit")


def patient_scope(event: Event, subject: int, visit: TimeConstraint | None) -> exp.Expr:
    """Rows of the event's table that belong to the patient (and the visit, if one is named)."""
    link = col(event.column(event.link))
    if event.link == "stay_id":
        return link.isin(query=stays_of(subject, visit), copy=False)
    if visit is not None and visit.visit == "icu":
        stays = stays_of(subject, visit)
        stays.set("expressions", [col("icustays.hadm_id")])
        return link.isin(query=stays, copy=False)
    if event.table == "admissions":
        return link.isin(query=visits_of(subject, visit), copy=False)
    return link.isin(query=visits_of(subject, visit), copy=False)


def value_condition(event: Event, value: str) -> exp.Expr:
    """Rows of the event named `value` (a drug name, a lab label, a diagnosis title...)."""
    if event.name_column is not None:
        return eq(event.column(event.name_column), value)
    if event.code is None or event.dictionary is None or event.label is None:
        raise CompileError(f"event {event.name} has no name")
    table, key = event.dictionary
    lookup = (
        select(col(f"{table}.{key}"))
        .from_(table, copy=False)
        .where(eq(f"{table}.{event.label}", value), copy=False)
    )
    for column, wanted in event.where:
        lookup = lookup.where(eq(f"{table}.{column}", wanted), copy=False)
    return col(event.column(event.code)).isin(query=lookup, copy=False)


def time_conditions(ctx: Ctx, constraints: tuple[TimeConstraint, ...], column: exp.Expr) -> exp.Expr | None:
    return and_(*(time_condition(ctx, c, column) for c in constraints))


def event_rows(
    ctx: Ctx,
    event: Event,
    *,
    subject: int | None,
    values: tuple[str, ...] = (),
    time: tuple[TimeConstraint, ...] = (),
) -> exp.Expr | None:
    """The WHERE condition for an event's rows: the patient (and visit), the value, the period."""
    visit, calendar = split_time(time)
    conditions: list[exp.Expr | None] = []
    if subject is not None:
        conditions.append(patient_scope(event, subject, visit))
    elif visit is not None:
        raise CompileError("a visit constraint needs a patient")
    for value in values:
        conditions.append(value_condition(event, value))
    conditions.append(time_conditions(ctx, calendar, col(event.column(event.time))))
    return and_(*conditions)


def name_of(event: Event, codes: exp.Select) -> exp.Select:
    """The names of the events whose code (or name) `codes` selects."""
    if event.name_column is not None:
        raise CompileError("named events are selected directly")
    if event.dictionary is None or event.label is None:
        raise CompileError(f"event {event.name} has no dictionary")
    table, key = event.dictionary
    query = (
        select(col(f"{table}.{event.label}"))
        .from_(table, copy=False)
        .where(col(f"{table}.{key}").isin(query=codes), copy=False)
    )
    for column, wanted in event.where:
        query = query.where(eq(f"{table}.{column}", wanted), copy=False)
    return query


def ordinal_order(ordinal: TimeConstraint | None, column: exp.Expr) -> tuple[exp.Ordered, int]:
    """ORDER BY and OFFSET for first, last, second and second-to-last (default: first)."""
    which = ordinal.which if ordinal is not None else "first"
    if which == "first":
        return exp.Ordered(this=column, desc=False), 0
    if which == "last":
        return exp.Ordered(this=column, desc=True), 0
    if which == "second":
        return exp.Ordered(this=column, desc=False), 1
    if which == "second_to_last":
        return exp.Ordered(this=column, desc=True), 1
    raise CompileError(f"no {which} measurement")


def ordered_one(query: exp.Select, ordinal: TimeConstraint | None, column: exp.Expr) -> exp.Select:
    order, offset = ordinal_order(ordinal, column)
    query = query.order_by(order, copy=False).limit(1, copy=False)
    return query.offset(offset, copy=False) if offset else query


# --- Registry -----------------------------------------------------------------------------------

FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name} is registered twice")
    FAMILIES[family.name] = family
    return family


def families_for(found: Found) -> list[Family]:
    """The families whose Spec can fit at all: one patient or none, and the value kinds named.

    A cheap sieve before `bind`, which checks everything; most families fall at it.
    """
    kinds = {m.kind for readings in found.spans for m in readings}
    one_patient = len(found.patients) == 1
    return [
        family
        for family in FAMILIES.values()
        if family.spec.patient == one_patient
        and (len(found.patients) <= 1)
        and all(kind in kinds for kind in family.spec.values)
    ]


def spoken_time(times: tuple[TimeConstraint, ...]) -> str:
    """The time phrases as the question said them, for an interpretation (" since 2100", or "")."""
    parts = [t.text.strip() for t in times if t.text]
    return (" " + " ".join(parts)) if parts else ""
