"""Families about one patient's own record: demographics, hospital and ICU admissions, elapsed time
since an event on the current visit, when a value peaked or crossed a threshold, whether a vital
sign stayed normal, a lab value's percentile among patients of the same age, and procedures
received a given number of times.

Families with no value to match (gender, insurance, admission time...) differ only in the words
that name what is asked, so each `refine` requires those words and refuses words of its siblings.
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
    QueryPlan,
    Refine,
    Spec,
    event_of,
    event_rows,
    name_of,
    ordered_one,
    register,
    select,
    split_time,
    spoken_time,
    time_conditions,
    value_condition,
    visits_of,
)
from nlquery.families.core import KIND_OF_EVENT, event_nouns
from nlquery.semantic.loader import Event, SemanticLayer
from nlquery.sqlparts import Ctx, and_, col, days_between, elapsed, eq, lit
from nlquery.sqlparts import now as now_value
from nlquery.timeexpr import TimeConstraint

# Normal ranges of the vital signs (d_items labels) a clinician asks "was it normal" about.
NORMAL_RANGES: Final[dict[str, tuple[float, float]]] = {
    "temperature celsius": (35.5, 38.1),
    "o2 saturation pulseoxymetry": (95.0, 100.0),
    "heart rate": (60.0, 100.0),
    "respiratory rate": (12.0, 18.0),
    "arterial blood pressure systolic": (90.0, 120.0),
    "arterial blood pressure diastolic": (60.0, 90.0),
    "arterial blood pressure mean": (60.0, 110.0),
}

# MIMIC-IV's admissions.admission_location is a closed list; the value matcher has no kind for it,
# so it is read here from the text, with the everyday names of the emergency room.
ADMISSION_LOCATIONS: Final[dict[str, tuple[str, ...]]] = {
    "ambulatory surgery transfer": (),
    "clinic referral": (),
    "emergency room": ("emergency rooms", "er", "e.r.", "e.r"),
    "information not available": (),
    "internal transfer to or from psych": (),
    "pacu": (),
    "physician referral": (),
    "procedure site": (),
    "transfer from hospital": (),
    "transfer from skilled nursing facility": (),
    "walk-in/self referral": ("walk-in", "self referral", "self-referral"),
}
_LOCATION_PHRASES: Final = sorted(
    ((phrase, value) for value, more in ADMISSION_LOCATIONS.items() for phrase in (value, *more)),
    key=lambda pair: -len(pair[0]),
)


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _has(text: str, pattern: re.Pattern[str]) -> bool:
    return pattern.search(text) is not None


_ICU = _words(r"\b(icu|intensive care|critical care)\b")
_HOSPITAL = _words(
    r"\b(hospital\w*|admi(t|ss)\w*|visit\w*|encounter\w*|came|come|comes|coming|went|go|goes|gone|"
    r"enter\w*|checked|attend\w*|stay\w*|been)\b"
)
_WHEN = _words(r"\b(when|time|times|date|day|moment)\b")
_COUNTING = _words(r"\b(how many|how often|number|count(s|ed|ing)?|tally|total)\b")
_DISCHARGE = _words(r"\b(discharg\w*|depart(s|ed|ing|ure)?|leav(e|es|ing)|left|released?)\b")
_OTHER_EVENTS = _words(
    r"\b(lab\w*|tests?|diagnos\w*|prescri\w*|medication\w*|drugs?|intakes?|inputs?|outputs?|procedures?|"
    r"treatments?|careunits?|(?<!intensive )(?<!critical )care units?|vital\w*|measure\w*|microbiolog\w*|"
    r"specimens?|cultures?|surg\w*|operat\w*|therap\w*|scans?|exam\w*|appointments?)\b"
)
# Questions about the future (an appointment, the next visit) are not about the record.
_FUTURE = _words(
    r"\b(next|will|shall|should|scheduled|upcoming|going to|appointments?|plan(s|ned)?|follow-?ups?)\b"
)
# Ordinal words the time reader does not read: answering without them would drop them.
_UNREAD_ORDINALS = _words(r"\b(earliest|soonest|third|fourth|fifth)\b")
_ASKS_AMOUNT = _words(r"\b(how many|how long|how much|number|count)\b")
_ATTRIBUTES = _words(r"\b(gender|sex|birth|born|insur\w*|age|old|type|kind|length|duration|long)\b")


# --- Reading words -------------------------------------------------------------------------------


def _location(text: str) -> tuple[str, int, int] | None:
    """The admission location the question names (value, span), if any."""
    lowered = text.lower()
    for phrase, value in _LOCATION_PHRASES:
        for m in re.finditer(r"(?<![\w/])" + re.escape(phrase) + r"(?![\w/])", lowered):
            before = lowered[max(0, m.start() - 12) : m.start()]
            if re.search(r"\b(care ?unit|unit)\s*$", before):
                continue  # "careunit pacu" names a care unit, not where the admission came from
            return value, m.start(), m.end()
    return None


def _with_location(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """The plan with the admission location as its option; value mentions must lie inside it."""
    where = _location(found.text)
    if where is None:
        return plan if not plan.filters else None
    value, start, end = where
    if any(not start <= f.start < end for f in plan.filters):
        return None
    return replace(plan, filters=(), option=value)


# --- Building blocks -----------------------------------------------------------------------------


def _not_null(column: str) -> exp.Expr:
    return exp.Not(this=exp.Is(this=col(column), expression=exp.Null()))


def _is_null(column: str) -> exp.Expr:
    return exp.Is(this=col(column), expression=exp.Null())


def _which(plan: QueryPlan, visit: TimeConstraint | None) -> str:
    """first/last/second... from the ordinal, else from a first or last visit; "" for none."""
    ordinal = plan.ordinals[0].which if plan.ordinals else ""
    from_visit = visit.which if visit is not None and visit.which in ("first", "last") else ""
    if ordinal and from_visit and ordinal != from_visit:
        raise CompileError("the ordinal and the visit disagree")
    return ordinal or from_visit


def _ordinal(which: str) -> TimeConstraint:
    return TimeConstraint("ordinal", which=which)


def _admissions(
    plan: QueryPlan, ctx: Ctx, *columns: exp.Expr, order: str = "admissions.admittime"
) -> exp.Select:
    """The patient's admissions, narrowed by the period, the location, and one completed visit when
    an ordinal or a first/last visit names it (ordered by `order`)."""
    if plan.subject_id is None:
        raise CompileError("no patient")
    visit, calendar = split_time(plan.time)
    if visit is not None and visit.visit != "hospital":
        raise CompileError("an ICU visit does not narrow hospital admissions")
    query = (
        select(*columns)
        .from_("admissions", copy=False)
        .where(eq("admissions.subject_id", plan.subject_id), copy=False)
    )
    if plan.option:
        query = query.where(eq("admissions.admission_location", plan.option), copy=False)
    condition = time_conditions(ctx, calendar, col("admissions.admittime"))
    if condition is not None:
        query = query.where(condition, copy=False)
    if visit is not None and visit.which == "current":
        if plan.ordinals:
            raise CompileError("an ordinal within the current visit")
        return query.where(_is_null("admissions.dischtime"), copy=False)
    which = _which(plan, visit)
    if not which:
        return query
    return ordered_one(
        query.where(_not_null("admissions.dischtime"), copy=False), _ordinal(which), col(order)
    )


def _icu_stays(plan: QueryPlan, ctx: Ctx, *columns: exp.Expr) -> exp.Select:
    """The patient's ICU stays, in the hospital visit named (if any) and the period."""
    if plan.subject_id is None:
        raise CompileError("no patient")
    visit, calendar = split_time(plan.time)
    hospital = visit if visit is not None and visit.visit == "hospital" else None
    query = (
        select(*columns)
        .from_("icustays", copy=False)
        .where(col("icustays.hadm_id").isin(query=visits_of(plan.subject_id, hospital)), copy=False)
    )
    condition = time_conditions(ctx, calendar, col("icustays.intime"))
    return query if condition is None else query.where(condition, copy=False)


def _unit(plan: QueryPlan, default: str = "day") -> str:
    return plan.unit or default


def _elapsed(ctx: Ctx, later: exp.Expr, earlier: exp.Expr, unit: str) -> exp.Expr:
    try:
        return elapsed(ctx, later, earlier, unit)
    except ValueError as error:
        raise CompileError(str(error)) from None


def _rows(plan: QueryPlan, ctx: Ctx, event: Event) -> exp.Expr | None:
    return event_rows(
        ctx, event, subject=plan.subject_id, values=tuple(f.value for f in plan.filters), time=plan.time
    )


def _from(event: Event, plan: QueryPlan, ctx: Ctx, *columns: exp.Expr) -> exp.Select:
    query = select(*columns).from_(event.table, copy=False)
    condition = _rows(plan, ctx, event)
    return query if condition is None else query.where(condition, copy=False)


def _value_column(event: Event) -> exp.Column:
    if event.value is None:
        raise CompileError(f"{event.name} events carry no value")
    return col(event.column(event.value))


# --- Builders ------------------------------------------------------------------------------------


def _patient_column(column: str) -> Build:
    def build(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
        if plan.subject_id is None:
            raise CompileError("no patient")
        return (
            select(col(f"patients.{column}"))
            .from_("patients", copy=False)
            .where(eq("patients.subject_id", plan.subject_id), copy=False)
        )

    return build


def _admission_column(column: str, order: str = "admissions.admittime") -> Build:
    def build(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
        return _admissions(plan, ctx, col(f"admissions.{column}"), order=order)

    return build


def _count_visits(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if plan.time and split_time(plan.time)[0] is not None:
        raise CompileError("counting visits within a visit")
    distinct = exp.Count(this=exp.Distinct(expressions=[col("admissions.hadm_id")]))
    return _admissions(plan, ctx, distinct)


def _count_icu(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    visit, _ = split_time(plan.time)
    if visit is not None and visit.visit != "hospital":
        raise CompileError("counting ICU stays within an ICU stay")
    return _icu_stays(plan, ctx, exp.Count(this=exp.Distinct(expressions=[col("icustays.stay_id")])))


def _admitted(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Whether any admission matches; a named visit is one admission, checked as a whole."""
    if plan.subject_id is None:
        raise CompileError("no patient")
    visit, calendar = split_time(plan.time)
    if visit is not None and visit.visit != "hospital":
        raise CompileError("an ICU visit does not narrow hospital admissions")
    count = exp.GT(this=exp.Count(this=exp.Star()), expression=lit(0))
    query = select(count).from_("admissions", copy=False)
    if visit is None:
        query = query.where(eq("admissions.subject_id", plan.subject_id), copy=False)
    else:
        query = query.where(
            col("admissions.hadm_id").isin(query=visits_of(plan.subject_id, visit)), copy=False
        )
    if plan.option:
        query = query.where(eq("admissions.admission_location", plan.option), copy=False)
    condition = time_conditions(ctx, calendar, col("admissions.admittime"))
    return query if condition is None else query.where(condition, copy=False)


def _icu_length(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Length of one completed ICU stay: the ordinal, or a first/last ICU (or hospital) visit."""
    visit, _ = split_time(plan.time)
    if visit is not None and visit.which == "current":
        raise CompileError("the current ICU stay has no length yet")
    which = _which(plan, visit)
    if not which:
        raise CompileError("which ICU stay?")
    length = days_between(ctx, col("icustays.outtime"), col("icustays.intime"))
    if _unit(plan) == "hour":
        length = exp.Mul(this=lit(24), expression=exp.Paren(this=length))
    elif _unit(plan) != "day":
        raise CompileError(f"no length in {plan.unit}")
    query = _icu_stays(plan, ctx, length).where(_not_null("icustays.outtime"), copy=False)
    return ordered_one(query, _ordinal(which), col("icustays.intime"))


def _since_admission(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Time since the current hospital admission, or since the start of the current ICU stay."""
    if plan.subject_id is None:
        raise CompileError("no patient")
    visit, calendar = split_time(plan.time)
    if calendar or (visit is not None and visit.which != "current"):
        raise CompileError("time since an admission that is not the current one")
    unit = _unit(plan)
    if plan.option == "icu":
        hospital = visit if visit is not None and visit.visit == "hospital" else None
        return (
            select(_elapsed(ctx, now_value(ctx), col("icustays.intime"), unit))
            .from_("icustays", copy=False)
            .where(col("icustays.hadm_id").isin(query=visits_of(plan.subject_id, hospital)), copy=False)
            .where(_is_null("icustays.outtime"), copy=False)
        )
    if visit is not None and visit.visit != "hospital":
        raise CompileError("an ICU visit for a hospital admission")
    return (
        select(_elapsed(ctx, now_value(ctx), col("admissions.admittime"), unit))
        .from_("admissions", copy=False)
        .where(eq("admissions.subject_id", plan.subject_id), copy=False)
        .where(_is_null("admissions.dischtime"), copy=False)
    )


def _since_event(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    time = col(event.column(event.time))
    query = _from(event, plan, ctx, _elapsed(ctx, now_value(ctx), time, _unit(plan)))
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, time)


def _when_extreme(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """When the highest (lowest) value was measured; ties broken by the ordinal.

    Rows without a value are left out: SQLite sorts them first and PostgreSQL last, and neither is
    the lowest or highest value (the benchmark's database has none, so its answers are unchanged).
    """
    event = event_of(layer, plan.event)
    if plan.aggregate not in ("MAX", "MIN"):
        raise CompileError("highest or lowest only")
    time = col(event.column(event.time))
    value = _value_column(event)
    query = (
        _from(event, plan, ctx, time)
        .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())), copy=False)
        .order_by(exp.Ordered(this=value, desc=plan.aggregate == "MAX"), copy=False)
    )
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, time)


_COMPARE: Final[dict[str, type[exp.Binary]]] = {
    ">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE, "=": exp.EQ,
}  # fmt: skip


def _when_compared(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    if plan.comparison is None:
        raise CompileError("no comparison")
    op, number = plan.comparison
    time = col(event.column(event.time))
    compared = _COMPARE[op](this=_value_column(event), expression=lit(number))
    query = _from(event, plan, ctx, time).where(compared, copy=False)
    return ordered_one(query, plan.ordinals[0] if plan.ordinals else None, time)


def _vital_normal(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """True when no measurement of the vital sign falls outside its normal range."""
    event = event_of(layer, plan.event)
    bounds = NORMAL_RANGES.get(plan.filters[0].value) if plan.filters else None
    if bounds is None:
        raise CompileError("no normal range for this vital sign")
    low, high = bounds
    outside = exp.Not(this=exp.Between(this=_value_column(event), low=lit(low), high=lit(high)))
    none_outside = exp.EQ(this=exp.Count(this=exp.Star()), expression=lit(0))
    return _from(event, plan, ctx, none_outside).where(outside, copy=False)


def _percentile(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """PERCENT_RANK of a lab value among results of patients as old as the patient was on the visit."""
    event = event_of(layer, plan.event)
    if plan.number is None or plan.subject_id is None or not plan.filters:
        raise CompileError("a percentile needs a value, a lab test and a patient")
    visit, calendar = split_time(plan.time)
    if visit is None or visit.visit != "hospital" or calendar:
        raise CompileError("the patient's age needs one hospital visit")
    value = _value_column(event)
    age = (
        select(col("admissions.age"))
        .from_("admissions", copy=False)
        .where(eq("admissions.subject_id", plan.subject_id), copy=False)
    )
    if visit.which == "current":
        age = age.where(_is_null("admissions.dischtime"), copy=False)
    else:
        age = ordered_one(
            age.where(_not_null("admissions.dischtime"), copy=False),
            _ordinal(visit.which),
            col("admissions.admittime"),
        )
    same_age = (
        select(col("admissions.hadm_id"))
        .from_("admissions", copy=False)
        .where(col("admissions.age").isin(query=age), copy=False)
    )
    rank = exp.Window(
        this=exp.func("PERCENT_RANK"), order=exp.Order(expressions=[exp.Ordered(this=value.copy())])
    )
    conditions = and_(
        *(value_condition(event, f.value) for f in plan.filters),
        col(event.column("hadm_id")).isin(query=same_age, copy=False),
    )
    ranked = select(value.copy(), exp.alias_(rank, "c1")).from_(event.table, copy=False)
    if conditions is not None:
        ranked = ranked.where(conditions, copy=False)
    return (
        select(exp.column("c1", table="t1"))
        .distinct(copy=False)
        .from_(ranked.subquery("t1"), copy=False)
        .where(eq(exp.column(value.name, table="t1"), plan.number), copy=False)
    )


def _named_times(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    """Names of the events the patient had exactly (or at least) n times."""
    event = event_of(layer, plan.event)
    if plan.times is None or event.code is None:
        raise CompileError("a repeat count over coded events")
    op, n = plan.times
    code = col(event.column(event.code))
    counted = exp.Count(this=col(event.column(event.time)))
    grouped = _from(event, plan, ctx, code.copy(), exp.alias_(counted, "c1")).group_by(
        code.copy(), copy=False
    )
    compare = exp.GTE if op == ">=" else exp.EQ
    codes = (
        select(exp.column(code.name, table="t1"))
        .from_(grouped.subquery("t1"), copy=False)
        .where(compare(this=exp.column("c1", table="t1"), expression=lit(n)), copy=False)
    )
    return name_of(event, codes)


# --- Refining by words ---------------------------------------------------------------------------


def _needs(*required: re.Pattern[str], refuse: tuple[re.Pattern[str], ...] = ()) -> Refine:
    """Words the question must have, and words it must not have outside an admission location
    ("through procedure site" names where the admission came from, not a procedure)."""

    def refine(plan: QueryPlan, found: Found) -> QueryPlan | None:
        text = found.text
        where = _location(text)
        rest = text if where is None else text[: where[1]] + " " + text[where[2] :]
        if all(_has(text, p) for p in required) and not any(_has(rest, p) for p in refuse):
            return plan
        return None

    return refine


def _chain(*steps: Refine) -> Refine:
    def refine(plan: QueryPlan, found: Found) -> QueryPlan | None:
        current: QueryPlan | None = plan
        for step in steps:
            if current is None:
                return None
            current = step(current, found)
        return current

    return refine


def _hospital_visit_only(plan: QueryPlan, found: Found) -> QueryPlan | None:
    visit, _ = split_time(plan.time)
    return None if visit is not None and visit.visit != "hospital" else plan


def _no_visit(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return None if split_time(plan.time)[0] is not None else plan


def _since_option(plan: QueryPlan, found: Found) -> QueryPlan | None:
    text = found.text
    visit, _ = split_time(plan.time)
    if _has(text, _ICU) or (visit is not None and visit.visit == "icu"):
        return replace(plan, option="icu")
    return replace(plan, option="hospital") if _has(text, _words(r"\bhospital")) else None


def _normal_vital(plan: QueryPlan, found: Found) -> QueryPlan | None:
    if not plan.filters or plan.filters[0].value not in NORMAL_RANGES:
        return None
    return plan if _has(found.text, _words(r"\bnormal\b")) else None


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\w)")


def _lab_number(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """The lab value whose percentile is asked: the one number that is no id, date or name."""
    if not _has(found.text, _words(r"\bpercentile")) or not _has(found.text, _words(r"\bsame age\b")):
        return None
    taken = [(t.start, t.end) for t in found.time]
    taken += [(s[0].start, s[0].end) for s in found.spans if s]
    numbers: list[tuple[float, int, int]] = []
    for m in _NUMBER.finditer(found.text):
        if any(m.start() < end and start < m.end() for start, end in taken):
            continue
        if m.group(0).isdigit() and int(m.group(0)) in found.patients:
            continue
        numbers.append((float(m.group(0)), m.start(), m.end()))
    if len(numbers) != 1:
        return None
    number, start, end = numbers[0]
    # A rank ("the 38") or an equality read from the same number is that number, nothing more.
    for finding in found.patterns:
        if finding.kind in ("rank", "comparison") and not (finding.start < end and start < finding.end):
            return None
        if finding.kind == "comparison" and finding.op != "=":
            return None
    return replace(plan, number=number, k=None, comparison=None)


def _procedure_words(plan: QueryPlan, found: Found) -> QueryPlan | None:
    words = _words(r"\b(procedures?|treatments?|surger\w*|operations?|underw\w*|undergo\w*|performed)\b")
    return plan if _has(found.text, words) else None


_EXTREMES: Final = {
    "maximum": "MAX", "max": "MAX", "highest": "MAX", "peak": "MAX", "largest": "MAX",
    "minimum": "MIN", "min": "MIN", "lowest": "MIN", "smallest": "MIN",
}  # fmt: skip
_UNIT_AFTER_SINCE = _words(r"\b(?:since|elapsed|passed)\b[^?]*?\b(hours?|days?|minutes?)\b")


def _span_text(found: Found, start: int) -> str:
    for readings in found.spans:
        if readings and readings[0].start == start:
            return found.text[readings[0].start : readings[0].end]
    return ""


def _absorb(words: re.Pattern[str]) -> Refine:
    """Drop value mentions that are the question's own wording, not a value.

    The matcher reads "gender" and "admission type" as chart labels of the same name, and corrects
    "minimum" to the chart label "pminimum"; where the family asks exactly about those words, the
    mention is the family's wording.
    """

    def refine(plan: QueryPlan, found: Found) -> QueryPlan | None:
        kept = tuple(f for f in plan.filters if not words.fullmatch(_span_text(found, f.start).strip()))
        return replace(plan, filters=kept)

    return refine


def _no_values(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return None if plan.filters else plan


def _extreme_words(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """Highest or lowest, from the aggregate finding or from a mention absorbed as wording."""
    aggregate = plan.aggregate
    kept = []
    for f in plan.filters:
        word = _span_text(found, f.start).strip().lower()
        if word in _EXTREMES and not aggregate:
            aggregate = _EXTREMES[word]
        else:
            kept.append(f)
    if aggregate not in ("MAX", "MIN") or len(kept) != 1:
        return None
    return replace(plan, aggregate=aggregate, filters=tuple(kept))


def _units_in_time_only(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """An elapsed-time unit inside a time constraint ("since 141 days ago") is part of the period."""
    if any(not _in_time(found, f.start, f.end) for f in found.of("elapsed_unit")):
        return None
    return replace(plan, unit="")


def _in_time(found: Found, start: int, end: int) -> bool:
    return any(t.start <= start and end <= t.end for t in found.time)


def _unit_read(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """The unit of an elapsed time the question asks for ("how many hours ... since").

    A unit inside a period ("since 289 days ago") is not it. The unit is read again from the text
    when its finding spanned a value and was dropped ("Since the last diagnosis of ... with X, how
    many hours have passed?").
    """
    if not _has(found.text, _ASKS_AMOUNT):
        return None
    units = [f for f in found.of("elapsed_unit") if not _in_time(found, f.start, f.end)]
    if units:
        return replace(plan, unit=str(units[0].value))
    for match in _UNIT_AFTER_SINCE.finditer(found.text):
        if not _in_time(found, match.start(1), match.end(1)):
            return replace(plan, unit=match.group(1).lower().rstrip("s"))
    return None


def _length_unit(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """A length is in days unless the question asks for hours ("how many hours was ... in the ICU")."""
    match = _words(r"\b(hours?|days?)\b").search(found.text)
    unit = plan.unit or (match.group(1).lower().rstrip("s") if match else "day")
    return replace(plan, unit=unit)


def _total_as_count(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """A "total" in "the total number of ..." asks for a count (or an elapsed time), not a sum."""
    if not plan.aggregate:
        return plan
    if plan.aggregate == "SUM" and _has(found.text, _words(r"\btotal (number|count|amount of time)\b")):
        return replace(plan, aggregate="")
    return None


# --- Interpretation ------------------------------------------------------------------------------


def _when(p: QueryPlan) -> str:
    return spoken_time(p.time)


def _nth(p: QueryPlan, default: str = "") -> str:
    visit, _ = split_time(p.time)
    which = p.ordinals[0].which if p.ordinals else (visit.which if visit is not None else default)
    return which.replace("_", " ")


def _via(p: QueryPlan) -> str:
    return f" admitted via {p.option}" if p.option else ""


def _unit_words(p: QueryPlan) -> str:
    return f"{_unit(p)}s"


def _describe(text: Callable[[QueryPlan], str]) -> Callable[[QueryPlan], str]:
    def describe(p: QueryPlan) -> str:
        return " ".join(text(p).split())

    return describe


def _admission_phrase(p: QueryPlan) -> str:
    which = _nth(p)
    if which == "current":
        return "the current hospital visit"
    if which:
        return f"the {which} completed hospital visit{_via(p)}"
    return f"each hospital visit{_via(p)}{_when(p)}"


def _value(p: QueryPlan) -> str:
    return p.filters[0].value if p.filters else ""


def _since_text(noun: str) -> Callable[[QueryPlan], str]:
    def text(p: QueryPlan) -> str:
        return (
            f"Showing the {_unit_words(p)} since the {_nth(p)} {noun} {_value(p)} "
            f"of patient {p.subject_id}{_when(p)}."
        )

    return text


def _extreme_text(p: QueryPlan) -> str:
    extreme = "highest" if p.aggregate == "MAX" else "lowest"
    return f"Showing the {_nth(p)} time patient {p.subject_id} had their {extreme} {_value(p)}{_when(p)}."


def _compared_text(p: QueryPlan) -> str:
    op, number = p.comparison if p.comparison else ("?", 0.0)
    return (
        f"Showing the {_nth(p)} time the {_value(p)} of patient {p.subject_id} was {op} {number}{_when(p)}."
    )


def _normal_text(p: QueryPlan) -> str:
    low, high = NORMAL_RANGES.get(_value(p), (0.0, 0.0))
    return (
        f"Checking whether every {_value(p)} of patient {p.subject_id}{_when(p)} was within the normal "
        f"range {low:g} to {high:g} (no measurement outside it)."
    )


# --- Registration --------------------------------------------------------------------------------

_ONE: Final = Spec(patient=True, time="no")
_VISITS: Final = Spec(patient=True, ordinal="optional")
_VALUED: Final = ("lab", "vital", "input", "output")
_ALL: Final = ("lab", "vital", "input", "output", "drug", "diagnosis", "procedure", "microbiology",
               "specimen", "transfer")  # fmt: skip
_LOCATED: Final = ("careunit", "chart")  # matcher kinds words of an admission location can look like


def _add(
    name: str,
    spec: Spec,
    build: Build,
    text: Callable[[QueryPlan], str],
    *steps: Refine,
    event: str = "",
    units: Refine | None = None,
    total: bool = False,
) -> None:
    """Register a family; `units` reads its elapsed-time unit, else units inside a period are
    tolerated; `total` lets "the total number of" through as a count."""
    patterns = dict(spec.patterns)
    first: list[Refine] = []
    if units is not None:
        patterns["elapsed_unit"] = "optional"
        first.append(units)
    else:
        patterns.setdefault("elapsed_unit", "optional")
        first.append(_units_in_time_only)
    if total:
        patterns.setdefault("aggregate", "optional")
        first.append(_total_as_count)
    register(Family(
        name, "patient", replace(spec, patterns=patterns), build, _describe(text), event=event,
        refine=_chain(*first, *steps),
    ))  # fmt: skip


_add(
    "patient.gender", replace(_ONE, optional_values=("chart",)), _patient_column("gender"),
    lambda p: f"Showing the gender of patient {p.subject_id}.",
    _absorb(_words(r"gender|sex")), _no_values, _needs(_words(r"\b(gender|sex|male|female)\b")),
)  # fmt: skip
_add(
    "patient.dob", _ONE, _patient_column("dob"),
    lambda p: f"Showing the date of birth of patient {p.subject_id}.",
    _needs(_words(r"\b(birth\w*|born|dob)\b")),
)  # fmt: skip
_add(
    "patient.insurance", _VISITS, _admission_column("insurance"),
    lambda p: f"Showing the insurance of patient {p.subject_id} on {_admission_phrase(p)}.",
    _needs(_words(r"\b(insur\w*|payer|coverage)\b")), _hospital_visit_only,
)  # fmt: skip
_add(
    "patient.age", _VISITS, _admission_column("age"),
    lambda p: f"Showing the age of patient {p.subject_id} on {_admission_phrase(p)}.",
    _needs(_words(r"\b(age|how old|old)\b"), refuse=(_words(r"\b(percentile|same age|average)\b"),)),
    _hospital_visit_only,
)  # fmt: skip
_add(
    "patient.admission_type", replace(_VISITS, optional_values=("chart",)),
    _admission_column("admission_type"),
    lambda p: f"Showing the admission type of patient {p.subject_id} on {_admission_phrase(p)}.",
    _absorb(_words(r"admission types?")), _no_values,
    _needs(_words(r"\badmi(t|ss)\w*"), _words(r"\b(type|kind|category)\b"), refuse=(_FUTURE,)),
    _hospital_visit_only,
)  # fmt: skip
_add(
    "patient.admission_time", replace(_VISITS, optional_values=_LOCATED), _admission_column("admittime"),
    lambda p: f"Showing the admission time of patient {p.subject_id} for {_admission_phrase(p)}.",
    _needs(_WHEN, _HOSPITAL,
           refuse=(_DISCHARGE, _ICU, _ATTRIBUTES, _COUNTING, _OTHER_EVENTS, _FUTURE, _UNREAD_ORDINALS)),
    _hospital_visit_only, _with_location,
)  # fmt: skip
_add(
    "patient.discharge_time", _VISITS, _admission_column("dischtime", order="admissions.dischtime"),
    lambda p: f"Showing the discharge time of patient {p.subject_id} for {_admission_phrase(p)}.",
    _needs(_DISCHARGE, _WHEN, refuse=(_ICU, _COUNTING, _OTHER_EVENTS, _FUTURE, _UNREAD_ORDINALS,
                                      _words(r"\b(location|where)\b"))),
    _hospital_visit_only,
)  # fmt: skip
_add(
    "patient.icu_length", _VISITS, _icu_length,
    lambda p: f"Showing the length in {_unit_words(p)} of the {_nth(p)} completed ICU stay of patient "
              f"{p.subject_id}{_when(p)}.",
    _needs(_ICU, _words(r"\b(length|duration|how long|how many days|how many hours|days|hours)\b"),
           refuse=(_words(r"\b(since|ago|elapsed|passed)\b"),)),
    units=_length_unit,
)  # fmt: skip
_add(
    "patient.hospital_visits", Spec(patient=True), _count_visits,
    lambda p: f"Counting the hospital visits of patient {p.subject_id}{_when(p)}.",
    _needs(_COUNTING, _HOSPITAL, refuse=(_ICU, _OTHER_EVENTS, _FUTURE)), _no_visit,
    total=True,
)  # fmt: skip
_add(
    "patient.icu_visits", Spec(patient=True), _count_icu,
    lambda p: f"Counting the ICU stays of patient {p.subject_id}{_when(p)}.",
    _needs(_COUNTING, _ICU, refuse=(_OTHER_EVENTS, _FUTURE)), _hospital_visit_only,
    total=True,
)  # fmt: skip
_add(
    "patient.admitted", Spec(patient=True, optional_values=_LOCATED), _admitted,
    lambda p: f"Checking whether patient {p.subject_id} had a hospital admission"
              f"{' via the ' + p.option if p.option else ''}{_when(p)}.",
    _needs(
        _words(r"\b(has|have|had|was|were|did|is|ever)\b"),
        _words(
            r"\b(admi(t|ss)\w*|hospitali[sz]\w*|visit(s|ed)?|enter\w*|checked in\w*|"
            r"(to|into|in|at) (the |an |a )?(hospital|emergency|er\b|e\.r))"
        ),
        refuse=(_ICU, _COUNTING, _OTHER_EVENTS, _FUTURE, _words(r"\b(when|what|which|how)\b")),
    ),
    _hospital_visit_only, _with_location,
)  # fmt: skip
_add(
    "patient.since_admission", Spec(patient=True, visit_only=True), _since_admission,
    lambda p: f"Showing the {_unit_words(p)} since patient {p.subject_id} was admitted to the "
              f"{'ICU' if p.option == 'icu' else 'hospital'} on the current visit.",
    _needs(_words(r"\b(admi(t|ss)\w*|enter\w*|transferred|arriv\w*|stay\w*|in the icu)\b"),
           refuse=(_OTHER_EVENTS,)),
    _since_option,
    units=_unit_read, total=True,
)  # fmt: skip

# A question that says "lab test" means the lab reading of a name that is also a chart label.
_NOT_LAB: Final = _needs(refuse=(_words(r"\blab(oratory)?\b"),))


def _event_steps(event: str) -> tuple[Refine, ...]:
    return () if event == "lab" else (_NOT_LAB,)


for _event in _ALL:
    _add(
        f"patient.since.{_event}",
        Spec(patient=True, values=(KIND_OF_EVENT[_event],), ordinal="required"), _since_event,
        _since_text(event_nouns[_event]), *_event_steps(_event),
        event=_event, units=_unit_read, total=True,
    )  # fmt: skip

for _event in _VALUED:
    _kind = KIND_OF_EVENT[_event]
    # A second chart mention may be "minimum" read as the chart label "pminimum" (see _absorb).
    _add(
        f"patient.when_extreme.{_event}",
        Spec(patient=True, values=(_kind,), optional_values=("chart",), ordinal="required",
             patterns={"aggregate": "optional"}),
        _when_extreme, _extreme_text, _extreme_words, *_event_steps(_event),
        event=_event,
    )  # fmt: skip
    _add(
        f"patient.when_compared.{_event}",
        Spec(patient=True, values=(_kind,), ordinal="required", patterns={"comparison": "required"}),
        _when_compared, _compared_text, *_event_steps(_event),
        event=_event,
    )  # fmt: skip

_add(
    "patient.vital_normal", Spec(patient=True, values=("chart",)), _vital_normal, _normal_text,
    _normal_vital,
    event="vital",
)  # fmt: skip
_add(
    "patient.percentile",
    Spec(patient=True, values=("lab",), time="required", visit_only=True,
         patterns={"rank": "optional", "comparison": "optional"}),
    _percentile,
    lambda p: f"Showing the percentile of {_value(p)} = {p.number} among lab results of patients of the "
              f"age patient {p.subject_id} was on the {_nth(p)} hospital visit.",
    _lab_number,
    event="lab",
)  # fmt: skip
_add(
    "patient.procedure_times", Spec(patient=True, patterns={"times": "required"}), _named_times,
    lambda p: f"Listing the procedures patient {p.subject_id} received "
              f"{'at least ' if p.times and p.times[0] == '>=' else ''}{p.times[1] if p.times else ''} "
              f"times{_when(p)}.",
    _procedure_words,
    event="procedure",
)  # fmt: skip
