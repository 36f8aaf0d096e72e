"""Population families: questions about all patients rather than one.

Routes and costs of a drug, procedure or diagnosis; total hospital costs of the visits involving one;
per-period counts of diagnosed visits; current and discharged patients; patients who had a procedure
n times; patients or events that followed an earlier event within a window; survival after a
diagnosis and the diagnoses with the highest mortality.

Each family mirrors the EHRSQL gold SQL of its template (what is counted, DISTINCT, ties kept by
DENSE_RANK, the time filter applied to both events of an "after" question...) with dialect-aware
date arithmetic from nlquery.sqlparts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from sqlglot import exp

from nlquery.families.base import (
    CompileError,
    Family,
    Filter,
    Found,
    QueryPlan,
    Spec,
    event_of,
    name_of,
    register,
    select,
    spoken_time,
    time_conditions,
    value_condition,
)
from nlquery.families.core import KIND_OF_EVENT, event_nouns
from nlquery.matcher import SCORE_TYPO, ValueMatch
from nlquery.patterns import Finding, find_patterns, number
from nlquery.semantic.loader import Event, SemanticLayer
from nlquery.sqlparts import Ctx, and_, col, days_between, eq, fmt, lit, now, window_condition
from nlquery.timeexpr import TimeConstraint

_AGGREGATE_WORDS = {"MIN": "minimum", "MAX": "maximum", "AVG": "average"}
_PERIOD_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
# The event tables whose rows the cost table charges (cost.event_type names the table).
_COSTED = ("drug", "procedure", "diagnosis", "lab")

# --- Reading the question --------------------------------------------------------------------------

# "total number of patients" asks for a count: its "total" is not a SUM.
_TOTAL_COUNT = r"\btotal (?:number|count)\b|\bin total\b|(?<=count the )total\b|(?<=the )total(?= of\b)"
# "after first being diagnosed with": the gold SQL counts any earlier diagnosis, not only the first.
_FIRST_EARLIER = (
    r"\bfirst (?=(?:being |been |getting |having been )?(?:diagnos|receiv|prescrib|given|underw|treat))"
)


_WHICH_RANK = re.compile(
    r"\bwhich (two|three|four|five|six|seven|eight|nine|ten|\d{1,2})\b"
    r"(?= (?:\w+ ){0,2}(?:diagnos|procedure|drug|medication|lab|test|specimen))",
    re.IGNORECASE,
)


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _typo_only(group: tuple[ValueMatch, ...]) -> bool:
    return all(not m.exact and m.score <= SCORE_TYPO for m in group)


def _noun_phrase(text: str, group: tuple[ValueMatch, ...], spans: list[tuple[ValueMatch, ...]]) -> bool:
    """A value reading of an ordinary word of the question's phrasing."""
    if not group:
        return False
    start, end = group[0].start, group[0].end
    word = text[start:end]
    if word == "I" or (word.lower() == "referred" and re.match(r"\s+to as\b", text[end:], re.I)):
        return True
    if word.lower() in ("medicine", "medication"):
        # Followed by another value ("the medicine named heparin"): the word introduces it.
        lead = re.compile(r"\s*(?:(?:named|called|known as|referred to as)\s+)?", re.I).match(text, end)
        after = lead.end() if lead else end
        return any(g and g[0].start == after for g in spans)
    return False


def _prepared(found: Found, absorb: str) -> Found:
    """The findings this family reads: words its meaning absorbs removed, typo spans given back.

    A value read through a one-letter typo ("What's minimum" read as the chart label "pminimum")
    loses to the closed-vocabulary word it hides (an aggregate, a period...): the span is dropped
    and the finding restored. Findings inside a phrase that `absorb` matches are part of what the
    family means ("total" in "total hospital cost", "rate" in "mortality rate") and are removed.
    """
    spans = list(found.spans)
    patterns = list(found.patterns)
    for finding in find_patterns(found.text):
        if finding.kind == "patient" or finding in patterns:
            continue
        hidden = [g for g in spans if g and g[0].start < finding.end and finding.start < g[0].end]
        if hidden and all(_typo_only(g) for g in hidden):
            spans = [g for g in spans if g not in hidden]
            patterns.append(finding)
    # "which four diagnoses have the highest ...": a rank the rank pattern does not read.
    if not any(f.kind == "rank" for f in patterns):
        for m in _WHICH_RANK.finditer(found.text):
            patterns.append(Finding("rank", number(m.group(1)), m.start(), m.end()))
    # "within the same day after having been ...": the day is the window's, not an elapsed-time unit.
    windows = [(t.start, t.end) for t in found.time]
    patterns = [f for f in patterns if not (f.kind == "elapsed_unit" and _inside(f.start, f.end, windows))]
    # "in the 60 or above" is an age group, not a top-60 rank.
    ages = [(f.start, f.end) for f in patterns if f.kind == "age"]
    patterns = [
        f for f in patterns if not (f.kind == "rank" and any(f.start < e and s < f.end for s, e in ages))
    ]
    # The pronoun "I" ("How much am I expected to pay") is not the lab test named "i", "referred to
    # as" is not the lab test "referred", and "the medicine named heparin" names a drug, not the
    # medicine care unit.
    spans = [g for g in spans if not _noun_phrase(found.text, g, spans)]
    if absorb:
        taken = [(m.start(), m.end()) for m in re.finditer(absorb, found.text, re.IGNORECASE)]
        spans = [g for g in spans if not (g and _inside(g[0].start, g[0].end, taken))]
        patterns = [f for f in patterns if not _inside(f.start, f.end, taken)]
        time = tuple(t for t in found.time if not _inside(t.start, t.end, taken))
    else:
        time = found.time
    return replace(
        found, spans=tuple(spans), patterns=tuple(sorted(patterns, key=lambda f: f.start)), time=time
    )


@dataclass(frozen=True)
class PopFamily(Family):
    """A family that also needs words in the question and reads some phrases as its own meaning."""

    words: tuple[str, ...] = ()  # patterns the question must each contain (what the family asks about)
    refuse: str = ""  # a pattern the question must not contain (what another family asks about)
    absorb: str = ""  # phrases whose findings belong to the family's meaning

    def bind(self, found: Found) -> Iterator[QueryPlan]:
        # Words inside a value ("total esophagectomy") say nothing about what is asked.
        text = found.text
        for group in found.spans:
            if group:
                text = text[: group[0].start] + " " * (group[0].end - group[0].start) + text[group[0].end :]
        if not all(re.search(w, text, re.IGNORECASE) for w in self.words):
            return
        if self.refuse and re.search(self.refuse, text, re.IGNORECASE):
            return
        yield from super().bind(_prepared(found, self.absorb))


def _calendar_only(plan: QueryPlan) -> bool:
    """Population questions take calendar and relative periods; a visit needs a patient."""
    return all(t.kind in ("abs", "rel") for t in plan.time)


def _calendar(plan: QueryPlan, found: Found) -> QueryPlan | None:
    return plan if _calendar_only(plan) else None


# Which of two mentions is the earlier event, by the question's wording: the mention that follows
# "after", "following", "previously"...; or the one before "then", "followed by", "prior to".
_AFTER_CUE = re.compile(r"\b(?:after|following|subsequent to|previously|previous|first|afterwards?)\b", re.I)
_THEN_CUE = re.compile(r"\b(?:then|followed by|prior to|before)\b", re.I)
_KIND_WORDS = {
    "diagnosis": r"diagnos[a-z]*",
    "procedure": r"procedures?|surgery|operation|treatment",
    "drug": r"prescriptions?|medications?|drugs?",
}


def earlier_mention(found: Found, filters: tuple[Filter, ...]) -> int | None:
    """The index in `filters` of the earlier event, or None when the wording does not say."""
    blocked = [(g[0].start, g[0].end) for g in found.spans if g]
    blocked += [(t.start, t.end) for t in found.time]
    text = found.text
    chosen: set[int] = set()
    for cue in _AFTER_CUE.finditer(text):
        if _inside(cue.start(), cue.end(), blocked):
            continue
        following = [i for i, f in enumerate(filters) if f.start >= cue.end()]
        if following:
            chosen.add(min(following, key=lambda i: filters[i].start))
            continue
        # "prescribed insulin after the diagnosis": the cue names the kind of the earlier event.
        rest = text[cue.end() :]
        for i, f in enumerate(filters):
            words = _KIND_WORDS.get(f.kind)
            if words and re.match(rf"\s+(?:the |their |a |an )?(?:{words})\b", rest, re.I):
                chosen.add(i)
    for cue in _THEN_CUE.finditer(text):
        if _inside(cue.start(), cue.end(), blocked):
            continue
        preceding = [i for i, f in enumerate(filters) if f.start < cue.start()]
        if preceding:
            chosen.add(max(preceding, key=lambda i: filters[i].start))
    return chosen.pop() if len(chosen) == 1 else None


def _split_after(earlier_kind: str) -> Callable[[QueryPlan, Found], QueryPlan | None]:
    """Move the earlier event's mention from `filters` to `after`, as the wording says."""

    def refine(plan: QueryPlan, found: Found) -> QueryPlan | None:
        if not _calendar_only(plan):
            return None
        if len(plan.filters) == 1:
            earlier = 0  # the question names only the earlier event; the later one is what it asks
        else:
            index = earlier_mention(found, plan.filters)
            if index is None:
                return None
            earlier = index
        if plan.filters[earlier].kind != earlier_kind:
            return None
        later = tuple(f for i, f in enumerate(plan.filters) if i != earlier)
        return replace(plan, filters=later, after=(plan.filters[earlier],))

    return refine


# --- SQL building blocks ---------------------------------------------------------------------------


def _joined(event: Event, *columns: exp.Expr) -> exp.Select:
    """The event's rows with their admission (for the subject and the age)."""
    hadm = col(event.column("hadm_id"))
    return (
        select(*columns)
        .from_(event.table, copy=False)
        .join("admissions", on=exp.EQ(this=hadm, expression=col("admissions.hadm_id")), copy=False)
    )


def _where(query: exp.Select, *conditions: exp.Expr | None) -> exp.Select:
    condition = and_(*conditions)
    return query if condition is None else query.where(condition, copy=False)


def _values(event: Event, filters: tuple[Filter, ...]) -> exp.Expr | None:
    return and_(*(value_condition(event, f.value) for f in filters))


def _period(ctx: Ctx, plan: QueryPlan, event: Event, column: str | None = None) -> exp.Expr | None:
    return time_conditions(ctx, plan.time, col(column or event.column(event.time)))


def _age(plan: QueryPlan) -> exp.Expr | None:
    if plan.age is None:
        return None
    low, high = plan.age
    age = col("admissions.age")
    if high is None:
        return exp.GTE(this=age, expression=lit(low))
    return exp.Between(this=age, low=lit(low), high=lit(high))


def _key(event: Event) -> str:
    """The column naming (or coding) the event: what top-k lists group by."""
    column = event.name_column or event.code
    if column is None:
        raise CompileError(f"{event.name} events have no name")
    return column


def _ref(table: str, column: str) -> exp.Column:
    return exp.column(column, table=table)


def _as(expression: exp.Expr, alias: str) -> exp.Expr:
    return exp.alias_(expression, alias)


def _side(
    ctx: Ctx, plan: QueryPlan, event: Event, filters: tuple[Filter, ...], *, key: bool, age: bool
) -> exp.Select:
    """One side of an "after" join: subject, time and visit of each event row (and its name)."""
    columns = [
        _as(col("admissions.subject_id"), "subject_id"),
        _as(col(event.column(event.time)), "event_time"),
        _as(col("admissions.hadm_id"), "hadm_id"),
    ]
    if key:
        columns.append(_as(col(event.column(_key(event))), "event_key"))
    return _where(
        _joined(event, *columns),
        _values(event, filters),
        _period(ctx, plan, event),
        _age(plan) if age else None,
    )


def _between(ctx: Ctx, window: TimeConstraint | None) -> exp.Expr:
    """The later event (t2) within the window after the earlier one (t1)."""
    if window is None:
        raise CompileError("an event after another needs a window")
    earlier, later = _ref("t1", "event_time"), _ref("t2", "event_time")
    condition = window_condition(ctx, window, earlier, later)
    if window.unit == "hospital":
        same_visit = exp.EQ(this=_ref("t1", "hadm_id"), expression=_ref("t2", "hadm_id"))
        condition = exp.and_(condition, same_visit, copy=False)
    return condition


def _pair(ctx: Ctx, plan: QueryPlan, layer: SemanticLayer, *, key: bool) -> exp.Select:
    """Earlier events (t1) joined with the same patients' later events (t2) within the window."""
    earlier = event_of(layer, plan.after_event)
    later = event_of(layer, plan.event)
    t1 = _side(ctx, plan, earlier, plan.after, key=False, age=False)
    # The age group, like the gold SQL, is that of the later event's admission.
    t2 = _side(ctx, plan, later, plan.filters, key=key, age=True)
    on = exp.EQ(this=_ref("t1", "subject_id"), expression=_ref("t2", "subject_id"))
    return (
        select()
        .from_(t1.subquery("t1"), copy=False)
        .join(t2.subquery("t2"), on=on, copy=False)
        .where(_between(ctx, plan.window), copy=False)
    )


def _survival_days(plan: QueryPlan) -> int:
    """The gold SQL's period in days: 365 per year, 365 * months / 12 (integer) per month."""
    match = re.fullmatch(r"(\d+)-(month|year)", plan.survival)
    if match is None:
        raise CompileError(f"no survival period {plan.survival!r}")
    amount = int(match.group(1))
    return 365 * amount if match.group(2) == "year" else 365 * amount // 12


def _survived(ctx: Ctx, start: exp.Expr, days: int) -> exp.Expr:
    """1 when the patient did not die within `days` of `start` (no date of death counts as alive)."""
    died = exp.LT(this=days_between(ctx, col("patients.dod"), start), expression=lit(days))
    return exp.Case(ifs=[exp.If(this=died, true=lit(0))], default=lit(1))


def _old_enough(ctx: Ctx, column: exp.Expr, days: int) -> exp.Expr:
    """The event happened at least `days` before now, so the whole period can be observed."""
    return exp.GTE(this=days_between(ctx, now(ctx), column), expression=lit(days))


def _count_distinct(column: exp.Expr) -> exp.Expr:
    return exp.Count(this=exp.Distinct(expressions=[column]))


# --- Builders --------------------------------------------------------------------------------------


def _route(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    drug = event_of(layer, "drug")
    query = select(col("prescriptions.route")).distinct(copy=False).from_(drug.table, copy=False)
    return _where(query, _values(drug, plan.filters))


def _cost(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    rows = _where(
        select(col(event.column("row_id"))).from_(event.table, copy=False), _values(event, plan.filters)
    )
    charged = exp.and_(eq("cost.event_type", event.table), col("cost.event_id").isin(query=rows), copy=False)
    if plan.aggregate:
        # "the average expense for X": the aggregate over its charges.
        if plan.aggregate not in _AGGREGATE_WORDS:
            raise CompileError("the cost of an event is summarised by a minimum, maximum or average")
        return (
            select(exp.func(plan.aggregate, col("cost.cost")))
            .from_("cost", copy=False)
            .where(charged, copy=False)
        )
    return select(col("cost.cost")).distinct(copy=False).from_("cost", copy=False).where(charged, copy=False)


def _total_cost(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    if plan.aggregate not in _AGGREGATE_WORDS:
        raise CompileError("the total cost is summarised by a minimum, maximum or average")
    visits = _where(
        select(col(event.column("hadm_id"))).from_(event.table, copy=False), _values(event, plan.filters)
    )
    per_visit = _where(
        select(_as(exp.Sum(this=col("cost.cost")), "c1")).from_("cost", copy=False),
        col("cost.hadm_id").isin(query=visits, copy=False),
        _period(ctx, plan, event, "cost.chargetime"),
    ).group_by(col("cost.hadm_id"), copy=False)
    return select(exp.func(plan.aggregate, _ref("t1", "c1"))).from_(per_visit.subquery("t1"), copy=False)


def _records(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    pattern = _PERIOD_FORMATS.get(plan.period)
    if pattern is None or plan.aggregate not in _AGGREGATE_WORDS:
        raise CompileError("records per period need a day, month or year and an aggregate")
    per_period = _where(
        select(_as(_count_distinct(col(event.column("hadm_id"))), "c1")).from_(event.table, copy=False),
        _values(event, plan.filters),
        _period(ctx, plan, event),
    ).group_by(fmt(ctx, col(event.column(event.time)), pattern), copy=False)
    return select(exp.func(plan.aggregate, _ref("t1", "c1"))).from_(per_period.subquery("t1"), copy=False)


def _current(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    in_hospital = exp.Is(this=col("admissions.dischtime"), expression=exp.Null())
    query = select(_count_distinct(col("admissions.subject_id"))).from_("admissions", copy=False)
    return _where(query, in_hospital, _age(plan))


def _discharged(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    left = exp.Not(this=exp.Is(this=col("admissions.dischtime"), expression=exp.Null()))
    query = select(_count_distinct(col("admissions.subject_id"))).from_("admissions", copy=False)
    return _where(query, left, time_conditions(ctx, plan.time, col("admissions.dischtime")))


def _times(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    event = event_of(layer, plan.event)
    if plan.times is None:
        raise CompileError("a repeat count is needed")
    op, n = plan.times
    per_patient = _where(
        _joined(
            event, _as(col("admissions.subject_id"), "subject_id"), _as(exp.Count(this=exp.Star()), "c1")
        ),
        _values(event, plan.filters),
        _period(ctx, plan, event),
    ).group_by(col("admissions.subject_id"), copy=False)
    compare = exp.GTE if op == ">=" else exp.EQ
    return (
        select(exp.Count(this=_ref("t1", "subject_id")))
        .from_(per_patient.subquery("t1"), copy=False)
        .where(compare(this=_ref("t1", "c1"), expression=lit(n)), copy=False)
    )


def _count_after(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    return _pair(ctx, plan, layer, key=False).select(_count_distinct(_ref("t1", "subject_id")))


def _topk_after(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if plan.k is None or plan.k < 1:
        raise CompileError("top-k needs k")
    later = event_of(layer, plan.event)
    rank = exp.Window(
        this=exp.func("DENSE_RANK"),
        order=exp.Order(expressions=[exp.Ordered(this=exp.Count(this=exp.Star()), desc=True)]),
    )
    ranked = (
        _pair(ctx, plan, layer, key=True)
        .select(_as(_ref("t2", "event_key"), "event_key"), _as(rank, "c1"))
        .group_by(_ref("t2", "event_key"), copy=False)
    )
    top = (
        select(_ref("t3", "event_key"))
        .from_(ranked.subquery("t3"), copy=False)
        .where(exp.LTE(this=_ref("t3", "c1"), expression=lit(plan.k)), copy=False)
    )
    return top if later.name_column is not None else name_of(later, top)


def _survival(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    earlier = event_of(layer, plan.after_event)
    later = event_of(layer, plan.event)
    days = _survival_days(plan)
    subject = _as(col("admissions.subject_id"), "subject_id")
    # Each patient's first earlier event old enough to observe the period, and last later event.
    first_time = col(earlier.column(earlier.time))
    t1 = _where(
        _joined(earlier, subject, _as(exp.Min(this=first_time), "event_time")),
        _values(earlier, plan.after),
        _old_enough(ctx, first_time.copy(), days),
    ).group_by(col("admissions.subject_id"), copy=False)
    t2 = _where(
        _joined(later, subject.copy(), _as(exp.Max(this=col(later.column(later.time))), "event_time")),
        _values(later, plan.filters),
    ).group_by(col("admissions.subject_id"), copy=False)
    on = exp.EQ(this=_ref("t1", "subject_id"), expression=_ref("t2", "subject_id"))
    t3 = (
        select(_ref("t1", "subject_id"), _ref("t1", "event_time"))
        .from_(t1.subquery("t1"), copy=False)
        .join(t2.subquery("t2"), on=on, copy=False)
        .where(exp.LT(this=_ref("t1", "event_time"), expression=_ref("t2", "event_time")), copy=False)
    )
    survived = (
        select(_as(_survived(ctx, _ref("t3", "event_time"), days), "c1"))
        .from_(t3.subquery("t3"), copy=False)
        .join(
            "patients",
            on=exp.EQ(this=_ref("t3", "subject_id"), expression=col("patients.subject_id")),
            copy=False,
        )
    )
    return select(exp.Avg(this=_ref("t4", "c1"))).from_(survived.subquery("t4"), copy=False)


def _mortality(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if plan.k is None or plan.k < 1:
        raise CompileError("top-k needs k")
    event = event_of(layer, plan.event)
    days = _survival_days(plan)
    code = _key(event)
    first_time = col(event.column(event.time))
    # Each patient's first diagnosis of each kind, old enough to observe the period.
    t1 = _where(
        _joined(
            event,
            _as(col("admissions.subject_id"), "subject_id"),
            _as(col(event.column(code)), "event_key"),
            _as(exp.Min(this=first_time), "event_time"),
        ),
        _old_enough(ctx, first_time.copy(), days),
    ).group_by(col("admissions.subject_id"), col(event.column(code)), copy=False)
    t2 = (
        select(_ref("t1", "event_key"), _as(_survived(ctx, _ref("t1", "event_time"), days), "c1"))
        .from_(t1.subquery("t1"), copy=False)
        .join(
            "patients",
            on=exp.EQ(this=_ref("t1", "subject_id"), expression=col("patients.subject_id")),
            copy=False,
        )
    )
    # Highest mortality = lowest survival first; the option says which end the question asks for.
    rank = exp.Window(
        this=exp.func("DENSE_RANK"),
        order=exp.Order(
            expressions=[exp.Ordered(this=exp.Avg(this=_ref("t2", "c1")), desc=plan.option == "lowest")]
        ),
    )
    ranked = (
        select(_ref("t2", "event_key"), _as(rank, "c3"))
        .from_(t2.subquery("t2"), copy=False)
        .group_by(_ref("t2", "event_key"), copy=False)
    )
    top = (
        select(_ref("t3", "event_key"))
        .from_(ranked.subquery("t3"), copy=False)
        .where(exp.LTE(this=_ref("t3", "c3"), expression=lit(plan.k)), copy=False)
    )
    return top if event.name_column is not None else name_of(event, top)


# --- Refinements ----------------------------------------------------------------------------------


def _summary(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """A minimum, maximum or average (never a sum) over calendar periods only."""
    return plan if plan.aggregate in _AGGREGATE_WORDS and _calendar_only(plan) else None


def _no_sum(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """A charge's minimum, maximum or average; a total would need a scope the question lacks."""
    return plan if plan.aggregate in ("", *_AGGREGATE_WORDS) else None


def _now_only(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """'currently in the hospital' is the family's own meaning; no other time constraint."""
    ok = all(t.kind == "visit" and t.visit == "hospital" and t.which == "current" for t in plan.time)
    return replace(plan, time=()) if ok else None


def _mortality_end(plan: QueryPlan, found: Found) -> QueryPlan | None:
    """Which end of the ranking: highest mortality (= lowest survival) or the reverse."""
    mortality = re.search(r"\b(?:mortality|death|die)", found.text, re.I) is not None
    if plan.aggregate == "MAX":
        highest_mortality = mortality
    elif plan.aggregate == "MIN":
        highest_mortality = not mortality
    elif plan.aggregate == "" and mortality:
        highest_mortality = True  # "top three diagnoses by mortality"
    else:
        return None
    return replace(plan, aggregate="", option="highest" if highest_mortality else "lowest")


def _with_event(
    after_event: str, refine: Callable[[QueryPlan, Found], QueryPlan | None]
) -> Callable[[QueryPlan, Found], QueryPlan | None]:
    def with_event(plan: QueryPlan, found: Found) -> QueryPlan | None:
        refined = refine(plan, found)
        return None if refined is None else replace(refined, after_event=after_event)

    return with_event


# --- Interpretation -------------------------------------------------------------------------------


def _when(p: QueryPlan) -> str:
    return spoken_time(p.time)


def _aged(p: QueryPlan) -> str:
    if p.age is None:
        return ""
    low, high = p.age
    return f" aged {low}+" if high is None else f" aged {low} to {high}"


def _window(p: QueryPlan) -> str:
    if p.window is None:
        return ""
    w = p.window
    if w.unit == "hospital":
        return " in the same hospital visit"
    if w.unit == "same":
        return " at the same time"
    if w.amount is None:
        return f" in the same {w.unit}"
    return f" within {w.amount} {w.unit}{'s' if w.amount != 1 else ''}"


def _first(p: QueryPlan) -> str:
    return p.filters[0].value if p.filters else ""


def _earlier(p: QueryPlan) -> str:
    return p.after[0].value if p.after else ""


def _noun(event: str) -> str:
    return event_nouns.get(event, event)


def _describe_route(p: QueryPlan) -> str:
    return f"Listing the routes by which {_first(p)} is given."


def _describe_cost(p: QueryPlan) -> str:
    if p.aggregate:
        agg = _AGGREGATE_WORDS.get(p.aggregate, p.aggregate.lower())
        return f"Showing the {agg} charge recorded for the {_noun(p.event)} {_first(p)}."
    return f"Listing the distinct charges recorded for the {_noun(p.event)} {_first(p)}."


def _describe_total_cost(p: QueryPlan) -> str:
    agg = _AGGREGATE_WORDS.get(p.aggregate, p.aggregate.lower())
    return (
        f"Showing the {agg}, over hospital visits with the {_noun(p.event)} {_first(p)}, of each visit's"
        f" total charges{_when(p)}."
    )


def _describe_records(p: QueryPlan) -> str:
    agg = _AGGREGATE_WORDS.get(p.aggregate, p.aggregate.lower())
    return f"Showing the {agg} number per {p.period} of hospital visits diagnosed with {_first(p)}{_when(p)}."


def _describe_current(p: QueryPlan) -> str:
    return f"Counting distinct patients{_aged(p)} currently in hospital (not yet discharged)."


def _describe_discharged(p: QueryPlan) -> str:
    return f"Counting distinct patients discharged from hospital{_when(p)}."


def _describe_times(p: QueryPlan) -> str:
    op, n = p.times or ("=", 0)
    how = f"{n} or more times" if op == ">=" else f"exactly {n} times"
    return f"Counting patients who had the procedure {_first(p)} {how}{_when(p)}."


_PLURALS = {
    "diagnosis": "diagnoses", "procedure": "procedures", "drug": "drugs", "lab": "lab tests",
    "specimen": "specimens", "microbiology": "microbiology tests",
}  # fmt: skip


def _both(p: QueryPlan) -> str:
    return f" (both{_when(p)})" if p.time else ""


def _describe_count_after(p: QueryPlan) -> str:
    return f"Counting distinct patients with {_first(p)}{_window(p)} after {_earlier(p)}{_both(p)}."


def _describe_topk_after(p: QueryPlan) -> str:
    return (
        f"Listing the {p.k} most frequent {_PLURALS.get(p.event, p.event)} (ties kept) of patients{_aged(p)}"
        f"{_window(p)} after {_earlier(p)}{_both(p)}."
    )


def _period_words(survival: str) -> str:
    amount, unit = survival.split("-", 1)
    return f"{amount} {unit}{'' if amount == '1' else 's'}"


def _describe_survival(p: QueryPlan) -> str:
    period = _period_words(p.survival)
    return (
        f"Showing the share of patients alive {period} after their first diagnosis of {_earlier(p)}"
        f" (made at least {period} ago) among those prescribed {_first(p)} after it."
    )


def _describe_mortality(p: QueryPlan) -> str:
    period = _period_words(p.survival)
    end = "highest" if p.option == "highest" else "lowest"
    return (
        f"Listing the {p.k} diagnoses (ties kept) with the {end} rate of death within {period} of a"
        f" patient's first such diagnosis (made at least {period} ago)."
    )


# --- Registration ---------------------------------------------------------------------------------

_POPULATION = Spec(patient=False)
_COUNTING = r"\b(?:how many|number|count\w*|total|tally|calculate)\b"
_PEOPLE = r"\b(?:patients?|people|persons?|individuals|inpatients?|admitted|hospitali[sz]ed)\b"
# A hospital visit's total cost, as opposed to the charge for one event.
_VISIT_COST = r"\b(?:total|overall|hospitals?|visits?|encounters?|admissions?|stays?)\b"
_COST_WORDS = (
    r"\bhow much\b"
    r"|\b(?:costs?|price[sd]?|pricing|pay|paid|charge[sd]?|expenses?|expensive|fees?|bill(?:ed)?)\b"
)
_TOTAL_COST = r"\b(?:costs?|prices?|bills?|expenses?|expenditures?|charges?|spend\w*)\b"
_ROUTE_WORDS = (
    r"\b(?:routes?|methods?|ways?|how (?:is|are|do|does|should|can|was|were)|administ\w*|ingest\w*"
    r"|consum\w*|intake|deliver\w*|taken|take)\b"
)

register(PopFamily(
    "pop.route", "lookup", replace(_POPULATION, values=("drug",), time="no"), _route, _describe_route,
    event="drug", words=(_ROUTE_WORDS,), refuse=_COUNTING,
))  # fmt: skip

for _event in ("drug", "procedure", "diagnosis"):
    register(PopFamily(
        f"pop.cost.{_event}", "lookup",
        replace(_POPULATION, values=(KIND_OF_EVENT[_event],), time="no", patterns={"aggregate": "optional"}),
        _cost, _describe_cost, event=_event, words=(_COST_WORDS,), refuse=_VISIT_COST, refine=_no_sum,
    ))  # fmt: skip

for _event in _COSTED:
    register(PopFamily(
        f"pop.total_cost.{_event}", "aggregate",
        replace(_POPULATION, values=(KIND_OF_EVENT[_event],), patterns={"aggregate": "required"}),
        _total_cost, _describe_total_cost, event=_event, refine=_summary, words=(_TOTAL_COST, _VISIT_COST),
        # "total" in "the average total hospital cost" is the per-visit sum, not the question's aggregate.
        absorb=rf"\btotal\b(?=[^?.]*{_TOTAL_COST})",
    ))  # fmt: skip

register(PopFamily(
    "pop.records.diagnosis", "aggregate",
    replace(_POPULATION, values=("diagnosis",), patterns={"aggregate": "required", "period": "required"}),
    _records, _describe_records, event="diagnosis", refine=_summary,
    words=(r"\b(?:number|records?|cases|count|admissions|visits)\b",),
))  # fmt: skip

register(PopFamily(
    "pop.current", "count", replace(_POPULATION, patterns={"age": "optional"}), _current, _describe_current,
    event="admission", refine=_now_only, absorb=_TOTAL_COUNT,
    words=(r"\b(?:current|currently|now|presently|at present|still)\b", _COUNTING, _PEOPLE),
))  # fmt: skip

register(PopFamily(
    "pop.discharged", "count", _POPULATION, _discharged, _describe_discharged, event="admission",
    refine=_calendar, absorb=_TOTAL_COUNT,
    words=(r"\b(?:discharg\w*|released|let go|left (?:the )?hospitals?|leave (?:the )?hospitals?)\b",
           _COUNTING, _PEOPLE),
))  # fmt: skip

register(PopFamily(
    "pop.times.procedure", "count",
    replace(_POPULATION, values=("procedure",), patterns={"times": "required"}), _times, _describe_times,
    event="procedure", refine=_calendar, absorb=_TOTAL_COUNT,
))  # fmt: skip

# Patients with one event after another (wording decides which mention is the earlier one).
_PAIR_EVENTS = ("diagnosis", "procedure", "drug")
for _later in _PAIR_EVENTS:
    for _before in _PAIR_EVENTS:
        register(PopFamily(
            f"pop.after.{_later}.{_before}", "count",
            replace(_POPULATION, values=(KIND_OF_EVENT[_later], KIND_OF_EVENT[_before]), window="required"),
            _count_after, _describe_count_after, event=_later,
            refine=_with_event(_before, _split_after(KIND_OF_EVENT[_before])),
            absorb=f"{_TOTAL_COUNT}|{_FIRST_EARLIER}",
        ))  # fmt: skip

# The most frequent later events of patients after an earlier one.
for _later in ("diagnosis", "procedure", "drug", "lab", "specimen", "microbiology"):
    for _before in _PAIR_EVENTS:
        register(PopFamily(
            f"pop.topk_after.{_later}.{_before}", "topk",
            replace(
                _POPULATION, values=(KIND_OF_EVENT[_before],), window="required",
                patterns={"rank": "required", "age": "optional"},
            ),
            _topk_after, _describe_topk_after, event=_later,
            refine=_with_event(_before, _split_after(KIND_OF_EVENT[_before])), absorb=_FIRST_EARLIER,
        ))  # fmt: skip

register(PopFamily(
    "pop.survival.drug.diagnosis", "rate",
    replace(_POPULATION, values=("drug", "diagnosis"), time="no", patterns={"survival": "required"}),
    _survival, _describe_survival, event="drug",
    refine=_with_event("diagnosis", _split_after("diagnosis")),
    words=(r"\bsurviv",), absorb=r"(?<=survival )rate\b",
))  # fmt: skip

register(PopFamily(
    "pop.mortality.diagnosis", "topk",
    replace(
        _POPULATION, time="no", patterns={"rank": "required", "survival": "required", "aggregate": "optional"}
    ),
    _mortality, _describe_mortality, event="diagnosis", refine=_mortality_end,
    words=(r"\b(?:mortality|surviv\w*|death|die)\b",), absorb=r"(?<=mortality )rate\b|(?<=survival )rate\b",
))  # fmt: skip

__all__ = ["PopFamily", "earlier_mention"]
