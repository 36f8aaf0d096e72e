"""Families about one patient that put two things side by side or pick rows by a second condition.

Two measurements of one value (their change, which is greater), two periods of prescriptions (what
is new), two drugs given at the same time, a drug prescribed after a diagnosis or procedure, a
prescription's dose and route, the organism found in a microbiology test, and total volumes of
intake and output.

"Which measurement" is mirrored as EHRSQL asks it: every row at the chosen time,
`time = (SELECT DISTINCT time ... ORDER BY time LIMIT 1 [OFFSET 1])`, so ties are all kept.
Families with no value to match differ in the words that name what is asked: their `refine` reads
those words (outside the values' spans) and refuses the words of their siblings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from sqlglot import exp

from nlquery.families.base import (
    Build,
    CompileError,
    Family,
    Found,
    Need,
    QueryPlan,
    Refine,
    Spec,
    event_of,
    event_rows,
    ordered_one,
    ordinal_order,
    register,
    select,
    spoken_time,
)
from nlquery.families.core import KIND_OF_EVENT, event_nouns
from nlquery.semantic.loader import Event, SemanticLayer
from nlquery.sqlparts import Ctx, and_, col, eq, lit, window_condition
from nlquery.timeexpr import TimeConstraint

_TIMESTAMP: Final = re.compile(r"\b(\d{4}-\d{2}-\d{2})[ t](\d{2}:\d{2}(?::\d{2})?)\b")
_GREATER: Final = re.compile(r"\b(?:greater|higher|larger|bigger|more|above|exceed(?:s|ed|ing)?)\b")
_LESS: Final = re.compile(r"\b(?:less|lower|smaller|fewer|below)\b")
_CHANGE: Final = re.compile(r"\b(?:chang\w*|differ\w*|shift\w*|delta|variation)\b")
_COMPARING: Final = re.compile(r"\b(?:compared?|comparison|versus|vs\.?|than|relative to|against)\b")
_YES_NO_START: Final = re.compile(r"(?:^|[,;]\s*)(?:has|have|had|was|were|is|are|did|does|do)\b")
_YES_NO: Final = re.compile(r"^\s*(?:has|have|had|was|were|is|are|did|does|do)\b|\bany\b")
_SUM_WORDS: Final = re.compile(
    r"\b(?:total\w*|sum|how much|how many doses|amount|overall|aggregated?|accumulated|cumulative"
    r"|quantity|volume)\b"
)


# --- Reading words ------------------------------------------------------------------------------


def _words(found: Found) -> str:
    """The question in lower case with every value mention blanked: words inside a drug or lab name
    ("greater than 96 consecutive hours") must not be read as the question's own words."""
    text = list(found.text.lower())
    for span in found.spans:
        for match in span:
            text[match.start : match.end] = " " * (match.end - match.start)
    return "".join(text)


def _has(found: Found, pattern: re.Pattern[str] | str) -> bool:
    return re.search(pattern, _words(found)) is not None


def _stray_elapsed(found: Found) -> bool:
    """An elapsed-time unit found outside every time constraint: a real "how many days since" ask.

    The patterns module also reads "since 113 days ago" as an elapsed unit; inside a relative time
    constraint it only repeats that constraint, so those findings are tolerated (see `_patient`).
    """
    spans = [(t.start, t.end) for t in found.time if t.kind != "ordinal"]
    return any(
        not any(start <= f.start and f.end <= end for start, end in spans) for f in found.of("elapsed_unit")
    )


def _stray_rank(found: Found) -> bool:
    """A rank other than "the one" ("compared to the one prescribed yesterday" is no top-1)."""
    return any(found.text[f.start : f.end].lower() != "the one" for f in found.of("rank"))


# The matcher reads "medicine" as the Medicine care unit; in these families it is the drug noun.
_DRUG_NOUN_UNITS: Final = frozenset({"medicine"})


def _patient(
    values: tuple[str, ...] = (),
    optional_values: tuple[str, ...] = (),
    *,
    ordinal: Need = "no",
    max_ordinals: int = 1,
    time: Need = "optional",
    max_time: int = 1,
    window: Need = "no",
    patterns: dict[str, Need] | None = None,
) -> Spec:
    """A one-patient Spec that also takes the readings `_guarded` sets aside: an elapsed unit inside a
    relative time constraint, "the one" read as a rank, "medicine" read as a care unit."""
    return Spec(
        patient=True,
        values=values,
        optional_values=(*optional_values, "careunit"),
        ordinal=ordinal,
        max_ordinals=max_ordinals,
        time=time,
        max_time=max_time,
        window=window,
        patterns={"elapsed_unit": "optional", "rank": "optional", **(patterns or {})},
    )


def _guarded(refine: Refine) -> Refine:
    """The family's own refine, after setting aside the misreadings `_patient` lets through."""

    def guarded(plan: QueryPlan, found: Found) -> QueryPlan | None:
        if _stray_elapsed(found) or _stray_rank(found):
            return None
        units = [f for f in plan.filters if f.kind == "careunit"]
        if any(f.value.lower() not in _DRUG_NOUN_UNITS for f in units):
            return None
        kept = tuple(f for f in plan.filters if f.kind != "careunit")
        return refine(replace(plan, unit="", k=None, filters=kept), found)

    return guarded


# --- Building blocks ----------------------------------------------------------------------------


def _values(plan: QueryPlan) -> tuple[str, ...]:
    return tuple(f.value for f in plan.filters)


def _where(query: exp.Select, condition: exp.Expr | None) -> exp.Select:
    return query if condition is None else query.where(condition, copy=False)


def _at_ordinal(
    event: Event, rows: Callable[[], exp.Expr | None], ordinal: TimeConstraint | None
) -> exp.Expr:
    """time = the first, last, second... distinct time among the rows (every row at that time kept)."""
    time = col(event.column(event.time))
    inner = _where(select(time.copy()).distinct(copy=False).from_(event.table, copy=False), rows())
    order, offset = ordinal_order(ordinal, time.copy())
    inner = inner.order_by(order, copy=False).limit(1, copy=False)
    if offset:
        inner = inner.offset(offset, copy=False)
    return exp.EQ(this=time, expression=inner.subquery())


def _timestamp_literal(ctx: Ctx, text: str) -> exp.Expr:
    value = lit(text)
    return exp.Cast(this=value, to=exp.DataType.build("timestamp")) if ctx.pg else value


def _scalar(query: exp.Select) -> exp.Expr:
    # SQLite reads the first row of a scalar subquery; PostgreSQL needs it to return one row at most.
    return query.limit(1, copy=False).subquery()


def _sides(plan: QueryPlan) -> tuple[tuple[TimeConstraint, ...], tuple[TimeConstraint, ...]]:
    """Each side's time constraints: one each when two are named, else the same for both."""
    if len(plan.time) == 2 and _at_times(plan) is None:
        return (plan.time[0],), (plan.time[1],)
    return plan.time, plan.time


def _at_times(plan: QueryPlan) -> tuple[str, str] | None:
    parts = plan.option.split("|")
    return (parts[-2], parts[-1]) if len(parts) >= 3 else None


def _measured(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer, side: int) -> exp.Select:
    """One side's value: at the ordinal's time, or at the exact timestamp the question names."""
    event = event_of(layer, plan.event)
    if event.value is None:
        raise CompileError(f"{event.name} events carry no value")
    times = _sides(plan)[side]

    def rows() -> exp.Expr | None:
        return event_rows(ctx, event, subject=plan.subject_id, values=_values(plan), time=times)

    at = _at_times(plan)
    if at is not None:
        when: exp.Expr = eq(col(event.column(event.time)), _timestamp_literal(ctx, at[side]))
    else:
        if len(plan.ordinals) != 2:
            raise CompileError("a pair of measurements needs two ordinals")
        when = _at_ordinal(event, rows, plan.ordinals[side])
    return _where(select(col(event.column(event.value))).from_(event.table, copy=False), and_(rows(), when))


def _change(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    first, second = _measured(plan, ctx, layer, 0), _measured(plan, ctx, layer, 1)
    return select(exp.Sub(this=_scalar(first), expression=_scalar(second)))


def _compare(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    first, second = _scalar(_measured(plan, ctx, layer, 0)), _scalar(_measured(plan, ctx, layer, 1))
    op = plan.option.split("|")[0]
    compared = exp.GT(this=first, expression=second) if op == ">" else exp.LT(this=first, expression=second)
    return select(compared)


# --- Refinements of the pair families -----------------------------------------------------------


def _baseline_first(found: Found, first: int, second: int) -> bool:
    """Whether the side mentioned first (at offset `first`) is the baseline the other is set against.

    The baseline is the side after "than" ("is the last greater than the first"), else after
    "compared to" / "versus" ("compared to the first, is the last greater?"); with neither, "from A
    to B" makes A the baseline. Otherwise the question order holds: first side, then baseline.
    """
    words = _words(found)
    marker = re.search(r"\bthan\b", words) or _COMPARING.search(words)
    if marker is not None:
        after = [start for start in (first, second) if start >= marker.end()]
        return bool(after) and after[0] == first
    between = words[first:second]
    return re.search(r"\bfrom\b", words[:first]) is not None and re.search(r"\bto\b", between) is not None


def _one_value(plan: QueryPlan) -> QueryPlan | None:
    """One value, however often the question names it ("how much does the weight ... weight")."""
    if len({f.value for f in plan.filters}) != 1:
        return None
    return replace(plan, filters=plan.filters[:1])


def _by_ordinals(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """The two ordinals (and their time constraints, when each has its own) in (side, baseline) order."""
    single = _one_value(plan)
    if single is None or len(plan.ordinals) != 2:
        return None
    first, second = plan.ordinals
    if not _baseline_first(found, first.start, second.start):
        return single
    times = single.time[::-1] if len(single.time) == 2 else single.time
    return replace(single, ordinals=(second, first), time=times)


def _by_timestamps(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """The plan with the two exact timestamps ("measured at 2100-06-07 05:00:00") in `option`,
    in (side, baseline) order. The time reader sees only their dates: those constraints are dropped.
    """
    single = _one_value(plan)
    stamps = list(_TIMESTAMP.finditer(found.text.lower()))
    if single is None or len(stamps) != 2:
        return None
    kept: list[TimeConstraint] = []
    used = 0
    for constraint in single.time:
        inside = [m for m in stamps if constraint.start <= m.start(1) and m.end(1) <= constraint.end]
        if inside and constraint.kind == "abs":
            used += 1
        else:
            kept.append(constraint)
    if used != 2:
        return None
    if _baseline_first(found, stamps[0].start(), stamps[1].start()):
        stamps.reverse()

    def full(m: re.Match[str]) -> str:
        clock = m.group(2) if m.group(2).count(":") == 2 else m.group(2) + ":00"
        return f"{m.group(1)} {clock}"

    return replace(single, time=tuple(kept), option=f"{single.option}|{full(stamps[0])}|{full(stamps[1])}")


def _is_change(found: Found) -> bool:
    return _has(found, _CHANGE) and not _has(found, _GREATER) and not _has(found, _LESS)


def _refine_change(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return _by_ordinals(plan, found) if _is_change(found) else None


def _refine_change_at(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return _by_timestamps(plan, found) if _is_change(found) else None


def _direction(found: Found) -> str | None:
    if _has(found, _CHANGE) or _has(found, r"\bhow much\b"):
        return None
    greater, less = _has(found, _GREATER), _has(found, _LESS)
    if greater == less:
        return None
    return ">" if greater else "<"


def _refine_compare(plan: QueryPlan, found: Found) -> QueryPlan | None:
    op = _direction(found)
    return None if op is None else _by_ordinals(replace(plan, option=op), found)


def _refine_compare_at(plan: QueryPlan, found: Found) -> QueryPlan | None:
    op = _direction(found)
    return None if op is None else _by_timestamps(replace(plan, option=op), found)


# --- Prescriptions ------------------------------------------------------------------------------


def _drug(layer: SemanticLayer) -> Event:
    return event_of(layer, "drug")


def _route_filter(event: Event, plan: QueryPlan) -> exp.Expr | None:
    routes = [f.value for f in plan.filters if f.kind == "route"]
    return and_(*(eq(event.column("route"), route) for route in routes))


def _drug_rows(plan: QueryPlan, ctx: Ctx, event: Event) -> exp.Expr | None:
    """The patient's prescriptions of the plan's drugs, via its route, in its period."""
    drugs = tuple(f.value for f in plan.filters if f.kind == "drug")
    rows = event_rows(ctx, event, subject=plan.subject_id, values=drugs, time=plan.time)
    return and_(rows, _route_filter(event, plan))


def _dose(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """The dose of every prescription of the drug at its first, last... start time."""
    event = _drug(layer)
    if event.value is None:
        raise CompileError("prescriptions carry no dose")

    def rows() -> exp.Expr | None:
        return _drug_rows(plan, ctx, event)

    at = _at_ordinal(event, rows, plan.ordinals[0] if plan.ordinals else None)
    return _where(select(col(event.column(event.value))).from_(event.table, copy=False), and_(rows(), at))


def _total_dose(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = _drug(layer)
    if event.value is None:
        raise CompileError("prescriptions carry no dose")
    total = exp.Sum(this=col(event.column(event.value)))
    return _where(select(total).from_(event.table, copy=False), _drug_rows(plan, ctx, event))


def _route_name(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """The distinct drugs prescribed via the route at its first, last... start time."""
    event = _drug(layer)
    if event.name_column is None:
        raise CompileError("prescriptions are not named")

    def rows() -> exp.Expr | None:
        return _drug_rows(plan, ctx, event)

    at = _at_ordinal(event, rows, plan.ordinals[0] if plan.ordinals else None)
    name = col(event.column(event.name_column))
    return _where(select(name).distinct(copy=False).from_(event.table, copy=False), and_(rows(), at))


def _route_time(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = _drug(layer)
    time = col(event.column(event.time))
    query = _where(select(time).from_(event.table, copy=False), _drug_rows(plan, ctx, event))
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, time.copy())


def _any_of(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = _drug(layer)
    if event.name_column is None:
        raise CompileError("prescriptions are not named")
    rows = event_rows(ctx, event, subject=plan.subject_id, time=plan.time)
    named = col(event.column(event.name_column)).isin(*(lit(v) for v in _values(plan)), copy=False)
    count = exp.GT(this=exp.Count(this=exp.Star()), expression=lit(0))
    return select(count).from_(event.table, copy=False).where(and_(rows, named), copy=False)


def _new_drugs(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Drugs prescribed in the first period that were not prescribed in the baseline period."""
    event = _drug(layer)
    if event.name_column is None or len(plan.time) != 2:
        raise CompileError("new prescriptions need a drug name and two periods")
    name = col(event.column(event.name_column))

    def period(when: TimeConstraint) -> exp.Select:
        rows = event_rows(ctx, event, subject=plan.subject_id, time=(when,))
        return _where(select(name.copy()).from_(event.table, copy=False), rows)

    return exp.except_(period(plan.time[0]), period(plan.time[1]), distinct=True)


def _same_time(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """When both drugs were prescribed with the same start time (the first, last... such time)."""
    event = _drug(layer)
    if len(plan.filters) != 2 or plan.window is None:
        raise CompileError("two drugs and a same-time window are needed")
    subject, time = col(event.column("subject_id")), col(event.column(event.time))

    def side(value: str) -> exp.Select:
        rows = event_rows(ctx, event, subject=plan.subject_id, values=(value,), time=plan.time)
        return _where(select(subject.copy(), time.copy()).from_(event.table, copy=False), rows)

    t1_time = exp.column(event.time, table="t1")
    query = (
        select(t1_time)
        .from_(side(plan.filters[0].value).subquery("t1"), copy=False)
        .join(
            side(plan.filters[1].value).subquery("t2"),
            on=exp.EQ(
                this=exp.column("subject_id", table="t1"), expression=exp.column("subject_id", table="t2")
            ),
            copy=False,
        )
        .where(
            window_condition(ctx, plan.window, t1_time.copy(), exp.column(event.time, table="t2")), copy=False
        )
    )
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, t1_time.copy())


def _after(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Every prescription (one row per earlier event it follows) in the window after the event."""
    drug, before = _drug(layer), event_of(layer, plan.after_event)
    if plan.window is None or drug.name_column is None or not plan.after:
        raise CompileError("a drug after an event needs the event and a window")
    earlier = select(
        col(before.column("subject_id")), col(before.column(before.time)), col(before.column("hadm_id"))
    ).from_(before.table, copy=False)
    earlier = _where(
        earlier,
        event_rows(
            ctx, before, subject=plan.subject_id, values=tuple(f.value for f in plan.after), time=plan.time
        ),
    )
    later = select(
        col(drug.column("subject_id")),
        col(drug.column(drug.name_column)),
        col(drug.column(drug.time)),
        col(drug.column("hadm_id")),
    ).from_(drug.table, copy=False)
    later = _where(later, event_rows(ctx, drug, subject=plan.subject_id, time=plan.time))
    t1, t2 = exp.column(before.time, table="t1"), exp.column(drug.time, table="t2")
    condition = window_condition(ctx, plan.window, t1, t2)
    if plan.window.unit == "hospital":
        condition = exp.and_(
            condition,
            exp.EQ(this=exp.column("hadm_id", table="t1"), expression=exp.column("hadm_id", table="t2")),
            copy=False,
        )
    return (
        select(exp.column(drug.name_column, table="t2"))
        .from_(earlier.subquery("t1"), copy=False)
        .join(
            later.subquery("t2"),
            on=exp.EQ(
                this=exp.column("subject_id", table="t1"), expression=exp.column("subject_id", table="t2")
            ),
            copy=False,
        )
        .where(condition, copy=False)
    )


_NEW: Final = re.compile(r"\b(?:new|newly|added|change[sd]?|recently|additional)\b")
_DRUG_NOUN: Final = re.compile(r"\b(?:drugs?|medications?|medicines?|meds|prescri\w*|given|ordered)\b")
_DOSE: Final = re.compile(r"\b(?:dose|doses|dosage|dosages|how much|amount|quantity)\b")


def _refine_dose(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if _has(found, _YES_NO_START):
        return None
    return plan if _has(found, _DOSE) and not _has(found, r"\btotal\w*|\bsum\b|\bin total\b") else None


def _refine_total_dose(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if plan.aggregate not in ("", "SUM") or _has(found, _YES_NO_START) or _has(found, r"\btimes?\b"):
        return None
    # Without an ordinal, "the dose of X prescribed since 07/2100" is every dose in the period, summed.
    if not plan.aggregate and not _has(found, _SUM_WORDS) and not _has(found, _DOSE):
        return None
    return replace(plan, aggregate="SUM")


def _refine_new(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """The period after "compared to" (or "than", "versus"...) is the baseline; the other is new."""
    if not _has(found, _NEW) or not _has(found, _DRUG_NOUN) or len(plan.time) != 2:
        return None
    words = _words(found)
    comparing = _COMPARING.search(words)
    if comparing is None:
        return None
    after = [t for t in plan.time if t.start >= comparing.end()]
    if not after:
        return None
    baseline = after[0]
    new = next(t for t in plan.time if t is not baseline)
    return replace(plan, time=(new, baseline))


_ASKS_NAME: Final = re.compile(
    r"\b(?:what|which)\s+(?:\w+\s+){0,3}?(?:drugs?|medications?|medicines?|meds|prescriptions?|name|title)\b"
    r"|\bname\b"
)
_ASKS_TIME: Final = re.compile(r"\bwhen\b|\b(?:what|which)\s+(?:\w+\s+){0,3}?(?:time|date|day)\b")


def _asks(found: Found, pattern: re.Pattern[str]) -> bool:
    # "medicine" is blanked with the values (the matcher reads it as a care unit): read the raw text.
    return pattern.search(found.text.lower()) is not None


def _refine_route_name(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return plan if _asks(found, _ASKS_NAME) and not _asks(found, _ASKS_TIME) else None


def _refine_route_time(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return plan if _asks(found, _ASKS_TIME) and not _asks(found, _ASKS_NAME) else None


def _refine_any_of(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return plan if _has(found, r"\bor\b") and not _has(found, r"\band\b") else None


def _refine_same_time(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if plan.window is None or plan.window.unit != "same":
        return None
    return plan


def _refine_after(after_event: str) -> Refine:
    """Move the earlier event's value out of `filters`; the question must say the drug came after."""

    def refine(plan: QueryPlan, found: Found) -> QueryPlan | None:
        if plan.window is None or plan.window.unit == "same":
            return None
        value = plan.filters[0]
        before = found.text.lower()[: value.start]
        if not re.search(r"\b(?:after|following|post|since)\b", before):
            return None
        if not _has(found, _DRUG_NOUN):
            return None
        return replace(plan, filters=(), after_event=after_event, after=(value,))

    return refine


# --- Microbiology -------------------------------------------------------------------------------


def _organism_rows(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> tuple[Event, exp.Expr]:
    event = event_of(layer, "specimen")
    grown = exp.Not(this=exp.Is(this=col(event.column("org_name")), expression=exp.Null()))

    def rows() -> exp.Expr | None:
        return and_(
            event_rows(ctx, event, subject=plan.subject_id, values=_values(plan), time=plan.time),
            grown.copy(),
        )

    at = _at_ordinal(event, rows, plan.ordinals[0] if plan.ordinals else None)
    condition = and_(rows(), at)
    assert condition is not None
    return event, condition


def _organism(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """The distinct organisms found in the first, last... test of the specimen that grew one."""
    event, condition = _organism_rows(plan, ctx, layer)
    return (
        select(col(event.column("org_name")))
        .distinct(copy=False)
        .from_(event.table, copy=False)
        .where(condition, copy=False)
    )


def _organism_found(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event, condition = _organism_rows(plan, ctx, layer)
    count = exp.GT(this=exp.Count(this=exp.Star()), expression=lit(0))
    return select(count).from_(event.table, copy=False).where(condition, copy=False)


_ORGANISM: Final = re.compile(
    r"\b(?:organisms?|bacteria\w*|microbes?|microorganisms?|pathogens?|grew|growth)\b"
)


def _refine_organism(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if not _has(found, _ORGANISM) or _has(found, _YES_NO):
        return None
    return plan


def _refine_organism_found(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if not _has(found, _ORGANISM) or not _has(found, _YES_NO) or _has(found, r"\bname\b|\bwhat\b|\bwhich\b"):
        return None
    return plan


# --- Intake and output --------------------------------------------------------------------------


def _total(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Select:
    event = event_of(layer, plan.event)
    if event.value is None:
        raise CompileError(f"{event.name} events carry no value")
    rows = event_rows(ctx, event, subject=plan.subject_id, values=_values(plan), time=plan.time)
    return _where(select(exp.Sum(this=col(event.column(event.value)))).from_(event.table, copy=False), rows)


def _balance(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Total intake minus total output over the same period."""
    intake = _total(replace(plan, event="input", filters=()), ctx, layer)
    output = _total(replace(plan, event="output", filters=()), ctx, layer)
    return select(exp.Sub(this=intake.subquery(), expression=output.subquery()))


_INPUT_WORD: Final = re.compile(r"\b(?:inputs?|intakes?|infus\w*|fluids? (?:in|given|received))\b")
_OUTPUT_WORD: Final = re.compile(r"\b(?:outputs?|excret\w*|drain\w*)\b")


def _refine_total(event: str) -> Refine:
    mine, other = (_INPUT_WORD, _OUTPUT_WORD) if event == "input" else (_OUTPUT_WORD, _INPUT_WORD)

    def refine(plan: QueryPlan, found: Found) -> QueryPlan | None:
        if plan.aggregate not in ("", "SUM") or _has(found, _YES_NO_START):
            return None
        if not plan.aggregate and not _has(found, _SUM_WORDS) and not _has(found, mine):
            return None
        # With no item named, the question must say both "total" (or the like) and input or output.
        summed = bool(plan.aggregate) or _has(found, _SUM_WORDS)
        if not plan.filters and (not summed or not _has(found, mine) or _has(found, other)):
            return None
        if (
            _has(found, r"\bhow long\b|\btimes?\b|\bwhen\b")
            or _has(found, _CHANGE)
            or _has(found, r"\bbalance\b|\bnet\b")
        ):
            return None
        return replace(plan, aggregate="SUM")

    return refine


def _refine_balance(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if not (_has(found, _INPUT_WORD) and _has(found, _OUTPUT_WORD)):
        return None
    if not _has(found, r"\b(?:differ\w*|balance|net|minus|subtract\w*)\b"):
        return None
    return plan


# --- Interpretation ------------------------------------------------------------------------------


def _which(ordinal: TimeConstraint | None) -> str:
    return ordinal.which.replace("_", " ") if ordinal is not None else "first"


def _side(plan: QueryPlan, side: int) -> str:
    at = _at_times(plan)
    if at is not None:
        return f"the value measured at {at[side]}{spoken_time(plan.time)}"
    ordinal = plan.ordinals[side] if len(plan.ordinals) > side else None
    return f"the {_which(ordinal)} value{spoken_time(_sides(plan)[side])}"


def _describe_change(p: QueryPlan) -> str:
    value = p.filters[0].value if p.filters else ""
    return f"Showing the change in {value} of patient {p.subject_id}: {_side(p, 0)} minus {_side(p, 1)}."


def _describe_compare(p: QueryPlan) -> str:
    value = p.filters[0].value if p.filters else ""
    word = "greater" if p.option.startswith(">") else "less"
    return (
        f"Checking whether, for patient {p.subject_id}, {value} {_side(p, 0)} is {word} than {_side(p, 1)}."
    )


def _first_ordinal(p: QueryPlan) -> str:
    return _which(p.ordinals[0] if p.ordinals else None)


def _routes(p: QueryPlan) -> str:
    return ", ".join(f.value for f in p.filters if f.kind == "route")


def _drugs(p: QueryPlan) -> str:
    return ", ".join(f.value for f in p.filters if f.kind == "drug")


def _describe_after(p: QueryPlan) -> str:
    window = p.window.text.strip() if p.window is not None and p.window.text else "after"
    what = ", ".join(f.value for f in p.after)
    return (
        f"Listing the drugs prescribed to patient {p.subject_id} {window} after {what}{spoken_time(p.time)} "
        "(once for each earlier record they follow)."
    )


def _describe_total(noun: str) -> Callable[[QueryPlan], str]:
    def describe(p: QueryPlan) -> str:
        what = ", ".join(_values(p)) or f"all {noun}"
        return f"Showing the total volume of {what} of patient {p.subject_id}{spoken_time(p.time)}."

    return describe


# --- Registration --------------------------------------------------------------------------------


def _family(name: str, kind: str, spec: Spec, build: Build, describe: Callable[[QueryPlan], str],
            refine: Refine, event: str = "") -> None:  # fmt: skip
    register(Family(name, kind, spec, build, describe, event=event, refine=_guarded(refine)))


for _event in ("lab", "vital"):
    _kind = KIND_OF_EVENT[_event]
    _family(
        f"pair.change.{_event}", "patient",
        _patient((_kind,), (_kind,), ordinal="required", max_ordinals=2, max_time=2),
        _change, _describe_change, _refine_change, event=_event,
    )  # fmt: skip
    _family(
        f"pair.change_at.{_event}", "patient", _patient((_kind,), (_kind,), time="required", max_time=3),
        _change, _describe_change, _refine_change_at, event=_event,
    )  # fmt: skip
    _family(
        f"pair.compare.{_event}", "patient",
        _patient((_kind,), (_kind,), ordinal="required", max_ordinals=2, max_time=2),
        _compare, _describe_compare, _refine_compare, event=_event,
    )  # fmt: skip
    _family(
        f"pair.compare_at.{_event}", "patient", _patient((_kind,), (_kind,), time="required", max_time=3),
        _compare, _describe_compare, _refine_compare_at, event=_event,
    )  # fmt: skip

_family(
    "pair.dose.drug", "patient", _patient(values=("drug",), ordinal="required"), _dose,
    lambda p: f"Showing the dose of {_drugs(p)} that patient {p.subject_id} was {_first_ordinal(p)} "
    f"prescribed{spoken_time(p.time)} (every prescription at that time).",
    _refine_dose, event="drug",
)  # fmt: skip
_family(
    "pair.total_dose.drug", "patient", _patient(values=("drug",), patterns={"aggregate": "optional"}),
    _total_dose,
    lambda p: f"Showing the total dose of {_drugs(p)} prescribed to patient {p.subject_id}"
    f"{spoken_time(p.time)}.",
    _refine_total_dose, event="drug",
)  # fmt: skip
_family(
    "pair.new.drug", "patient", _patient(time="required", max_time=2), _new_drugs,
    lambda p: f"Listing the drugs prescribed to patient {p.subject_id} {p.time[0].text.strip()} that were "
    f"not prescribed {p.time[1].text.strip()}." if len(p.time) == 2 else "Listing new drugs.",
    _refine_new, event="drug",
)  # fmt: skip
_family(
    "pair.route_name.drug", "patient", _patient(values=("route",), ordinal="required"), _route_name,
    lambda p: f"Listing the drugs patient {p.subject_id} was {_first_ordinal(p)} prescribed via the "
    f"{_routes(p)} route{spoken_time(p.time)}.",
    _refine_route_name, event="drug",
)  # fmt: skip
_family(
    "pair.route_time.drug", "patient", _patient(values=("route",), ordinal="required"), _route_time,
    lambda p: f"Showing the {_first_ordinal(p)} time patient {p.subject_id} was prescribed a drug via the "
    f"{_routes(p)} route{spoken_time(p.time)}.",
    _refine_route_time, event="drug",
)  # fmt: skip
_family(
    "pair.any_of.drug", "patient", _patient(values=("drug", "drug"), optional_values=("drug",)), _any_of,
    lambda p: f"Checking whether patient {p.subject_id} was prescribed any of {_drugs(p)}"
    f"{spoken_time(p.time)}.",
    _refine_any_of, event="drug",
)  # fmt: skip
_family(
    "pair.same_time.drug", "patient",
    _patient(values=("drug", "drug"), ordinal="required", window="required"),
    _same_time,
    lambda p: f"Showing the {_first_ordinal(p)} time patient {p.subject_id} was prescribed {_drugs(p)} with "
    f"the same start time{spoken_time(p.time)}.",
    _refine_same_time, event="drug",
)  # fmt: skip
for _before in ("diagnosis", "procedure"):
    _family(
        f"pair.after.{_before}", "patient", _patient(values=(KIND_OF_EVENT[_before],), window="required"),
        _after, _describe_after, _refine_after(_before), event="drug",
    )  # fmt: skip

_family(
    "pair.organism.specimen", "patient", _patient(values=("specimen",), ordinal="required"), _organism,
    lambda p: f"Listing the organisms found in the {_first_ordinal(p)} {_values(p)[0]} test of patient "
    f"{p.subject_id} that grew an organism{spoken_time(p.time)}.",
    _refine_organism, event="specimen",
)  # fmt: skip
_family(
    "pair.organism_found.specimen", "patient", _patient(values=("specimen",), ordinal="required"),
    _organism_found,
    lambda p: f"Checking whether an organism was found in the {_first_ordinal(p)} {_values(p)[0]} test of "
    f"patient {p.subject_id} that grew one{spoken_time(p.time)}.",
    _refine_organism_found, event="specimen",
)  # fmt: skip

for _event in ("input", "output"):
    _family(
        f"pair.total.{_event}", "patient",
        _patient(optional_values=(KIND_OF_EVENT[_event],), patterns={"aggregate": "optional"}), _total,
        _describe_total(event_nouns[_event]),
        _refine_total(_event), event=_event,
    )  # fmt: skip
_family(
    "pair.balance.io", "patient", _patient(patterns={"aggregate": "optional"}), _balance,
    lambda p: f"Showing patient {p.subject_id}'s total intake minus total output{spoken_time(p.time)}.",
    _refine_balance, event="input",
)  # fmt: skip
