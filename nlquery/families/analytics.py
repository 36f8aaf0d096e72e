"""Families for the hospital's own operational and analytic questions (not EHRSQL templates).

- ops.metric: a measure of the semantic layer (admissions, length of stay, lab turnaround, charges...)
  x up to two dimensions (a layer dimension reached through many-to-one joins, or a calendar bucket of
  the measure's own time column) x an optional period x an optional value (a lab test, a drug...).
- ops.census: patients in each care unit (or one unit, or per another dimension of the unit) at an
  instant, per the hospital's census convention; bed occupancy as an option.
- ops.readmissions: readmissions within N days of a discharge (count, rate, patients, list),
  optionally by a dimension of the index admission and in a period of its discharge.
- ops.compare: one measure in two periods (side by side, or which is larger), or for two named values
  side by side ("heparin vs insulin prescriptions").

Measures and dimensions, and the words staff use for them, come from the semantic layer (see the
comments above `measures:` in nlquery/semantic/default.yaml): a hospital adds one in YAML. Every word
of a question must be understood (a measure, a dimension after "by"/"per", a period, a value, a unit,
or a word that carries no meaning of its own); anything else makes the family refuse the question.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache, lru_cache
from typing import Final

import sqlglot
from sqlglot import exp

from hisplatform.warehouse.schema import EHRSQL_DDL, EXTRACT_DDL
from nlquery.families.base import (
    CompileError,
    Family,
    Filter,
    Found,
    QueryPlan,
    Spec,
    register,
    select,
    value_condition,
)
from nlquery.families.core import KIND_OF_EVENT
from nlquery.patterns import Finding, number
from nlquery.semantic.loader import Dimension, Event, Measure, SemanticLayer, semantic_layer
from nlquery.sqlparts import Ctx, and_, col, days_between, fmt, fn, lit, time_condition
from nlquery.timeexpr import TimeConstraint

_MONTHS: Final = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9,
    "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip
_MONTH_NAMES: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip

# --- Words ---------------------------------------------------------------------------------------

_TOKEN: Final = re.compile(r"[a-z0-9]+|[%#&+/<>]")


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int


def _tokenise(text: str) -> list[_Tok]:
    # Hyphens, apostrophes and brackets separate words: "30-day" is "30 day", "no-show" is "no show".
    return [_Tok(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text.lower())]


def _one_edit(a: str, b: str) -> bool:
    """a and b differ by one insertion, deletion, substitution or adjacent transposition."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


_TYPO_LENGTH: Final = 6  # words this long may carry one typo ("admissons")


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    prefix: bool  # the last word may have any ending
    label: str  # "m:<measure>", "d:<dimension>", "t:<bucket>", "cue", "unit:<unit>", ...


def _phrase(text: str, label: str) -> _Phrase | None:
    words = tuple(t.text for t in _tokenise(text.rstrip("*")))
    return _Phrase(words, text.endswith("*"), label) if words else None


@dataclass(frozen=True)
class _Hit:
    first: int  # token index
    last: int  # exclusive
    label: str
    typo: bool


def _matches(phrase: _Phrase, toks: list[_Tok], i: int) -> _Hit | None:
    n = len(phrase.words)
    if i + n > len(toks):
        return None
    typo = False
    for k, word in enumerate(phrase.words):
        tok = toks[i + k].text
        if tok == word or (k == n - 1 and phrase.prefix and tok.startswith(word)):
            continue
        if len(word) >= _TYPO_LENGTH and len(tok) >= _TYPO_LENGTH - 1 and _one_edit(tok, word):
            typo = True
            continue
        return None
    return _Hit(i, i + n, phrase.label, typo)


@dataclass(frozen=True)
class _Index:
    """Phrases by their first word, those whose first word may be misspelt or end freely apart."""

    first: dict[str, tuple[_Phrase, ...]]
    loose: dict[str, tuple[_Phrase, ...]]


@cache
def _index(phrases: tuple[_Phrase, ...]) -> _Index:
    first: dict[str, list[_Phrase]] = {}
    loose: dict[str, list[_Phrase]] = {}
    for phrase in phrases:
        word = phrase.words[0]
        free = len(word) >= _TYPO_LENGTH or (phrase.prefix and len(phrase.words) == 1)
        (loose if free else first).setdefault(word, []).append(phrase)
    return _Index({w: tuple(g) for w, g in first.items()}, {w: tuple(g) for w, g in loose.items()})


@lru_cache(maxsize=65536)  # the same few hundred words meet the same lexicon in every question
def _near(token: str, word: str) -> bool:
    return token.startswith(word) or (abs(len(token) - len(word)) <= 1 and _one_edit(token, word))


def _all_hits(phrases: tuple[_Phrase, ...], toks: list[_Tok], blocked: set[int]) -> list[_Hit]:
    index = _index(phrases)
    hits = []
    for i, tok in enumerate(toks):
        candidates = list(index.first.get(tok.text, ()))
        for word, group in index.loose.items():
            if _near(tok.text, word):
                candidates.extend(group)
        for phrase in candidates:
            hit = _matches(phrase, toks, i)
            if hit is not None and not blocked.intersection(range(hit.first, hit.last)):
                hits.append(hit)
    return hits


def _greedy(hits: list[_Hit], taken: set[int]) -> list[_Hit]:
    """Longest first, then leftmost, then without a typo; never overlapping what is taken."""
    chosen = []
    for hit in sorted(hits, key=lambda h: (h.first - h.last, h.first, h.typo)):
        span = set(range(hit.first, hit.last))
        if span & taken:
            continue
        taken |= span
        chosen.append(hit)
    return sorted(chosen, key=lambda h: h.first)


def _phrases(pairs: list[tuple[str, str]]) -> tuple[_Phrase, ...]:
    return tuple(p for text, label in pairs if (p := _phrase(text, label)) is not None)


def _labelled(*groups: tuple[str, str]) -> tuple[_Phrase, ...]:
    """Phrases from (label, "one|two words|three*") groups."""
    return _phrases([(text, label) for label, texts in groups for text in texts.split("|")])


# Words that say how a question asks rather than what: they carry no meaning of their own here.
def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEUTRAL: Final = _word_set(
    """
    what whats s is are was were be been being the a an of for in on at to from during over within all
    overall number numbers no count counts counted how many much show shows me give get list display tell
    please pls plz can could would you i we our us there do does did have has had hospital hospitals
    whole entire hospitalwide wide trend trends trending stats statistic statistics figure figures data
    report summary summarise summarize patients patient pts pt people persons individuals results result
    values value recorded seen documented happened occurred made ordered performed done sent run taken
    admitted written our my it its so far # total totals volume amount
    """
)
_CUE_PHRASES: Final = (
    "by", "per", "each", "every", "for each", "in each", "for every", "by each", "per each", "across",
    "across all", "split by", "broken down by", "break down by", "breakdown by", "grouped by", "group by",
    "according to", "in every", "for all", "at each",
)  # fmt: skip
_AFTER_CUE: Final = frozenset({"the", "each", "every", "a", "individual", "their", "its"})
_SPLIT_WORDS: Final = ("split", "breakdown", "break down", "distribution", "mix", "wise", "breakup")
# Calendar buckets of a measure's time column; nouns only count after a cue ("per month").
_BUCKET_NOUNS: Final = {
    "day": ("day", "days", "date", "dates", "calendar day"),
    "week": ("week", "weeks", "wk", "wks", "calendar week"),
    "month": ("month", "months", "mo", "mos", "mth", "mths", "calendar month"),
    "quarter": ("quarter", "quarters", "qtr", "qtrs"),
    "year": ("year", "years", "yr", "yrs", "calendar year"),
    "hour": ("hour of day", "hour of the day", "hour"),
    "weekday": ("day of week", "day of the week", "weekday"),
}
_BUCKET_ADJECTIVES: Final = {
    "day": ("daily", "per day", "a day", "each day", "every day", "day by day"),
    "week": ("weekly", "per week", "a week", "each week", "every week", "per wk", "week by week"),
    "month": ("monthly", "per month", "a month", "each month", "every month", "per mo", "per mth",
              "month by month", "month on month", "month over month", "mom"),
    "quarter": ("quarterly", "per quarter", "each quarter", "per qtr"),
    "year": ("yearly", "annual", "annually", "per year", "a year", "each year", "every year", "per yr",
             "year by year", "year on year", "year over year", "yoy"),
    "daytype": ("weekday vs weekend", "weekend vs weekday", "weekdays vs weekends", "weekends vs weekdays",
                "weekend vs weekday split", "weekday vs weekend split"),
}  # fmt: skip
# "by month of discharge": the bucket of a named time column, which must be the measure's own.
_OF_TIME: Final = {"discharge": "dischtime", "admission": "admittime", "death": "dod"}
_UNIT_WORDS: Final = {
    "minutes": ("minutes", "minute", "mins", "in minutes", "in mins"),  # "min" is a minimum
    "hours": ("hours", "hour", "hrs", "hr", "h", "in hours", "in hrs"),
    "days": ("days", "day", "in days", "d"),
}
_UNIT_FACTORS: Final = {"days": 1.0, "hours": 24.0, "minutes": 1440.0}
_PERCENT_WORDS: Final = ("%", "percent", "percentage", "pct", "rate", "share", "as a percentage", "in %")
_RATIO_WORDS: Final = ("fraction", "proportion", "ratio", "as a fraction", "as a proportion")


# --- Time --------------------------------------------------------------------------------------

_NUM: Final = r"(\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNITS_RX: Final = r"(days?|d|wks?|weeks?|months?|mos?|mths?|years?|yrs?)"
_MONTH_RX: Final = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_RX: Final = (
    r"(\d{4})-(\d{2})-(\d{2})"
    r"|(\d{1,2})(?:st|nd|rd|th)? " + _MONTH_RX + r",? (\d{4})"
    r"|" + _MONTH_RX + r" (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})"
    r"|(\d{1,2})/(\d{1,2})/(\d{4})"
)
_LEAD: Final = r"(?:(?:in|over|during|for|within|from|of) )?(?:the )?"


def _unit(word: str) -> str:
    word = word.lower()
    if word.startswith(("w",)):
        return "week"
    if word.startswith("m"):
        return "month"
    if word.startswith("y"):
        return "year"
    return "day"


def _date(groups: tuple[str | None, ...]) -> tuple[int, int, int] | None:
    """(year, month, day) from the groups of _DATE_RX, or None when it is no calendar date."""
    g = groups
    if g[0] is not None:
        year, month, day = int(g[0]), int(g[1] or 0), int(g[2] or 0)
    elif g[3] is not None:
        year, month, day = int(g[5] or 0), _MONTHS[str(g[4])], int(g[3])
    elif g[6] is not None:
        year, month, day = int(g[8] or 0), _MONTHS[str(g[6])], int(g[7] or 0)
    else:
        year, month, day = int(g[11] or 0), int(g[9] or 0), int(g[10] or 0)
    return (year, month, day) if 1 <= month <= 12 and 1 <= day <= 31 else None


# Phrases this module reads itself, before the shared time reader's readings: each wins the span.
_LOCAL_TIME: Final[list[tuple[str, re.Pattern[str]]]] = [
    ("week_of", re.compile(
        r"\b" + _LEAD + r"week (?:of|starting|beginning|commencing) (?:the )?(?:" + _DATE_RX + ")"
    )),
    ("date", re.compile(r"\b(?:(?:on|for|as of|at) )?(?:" + _DATE_RX + r")\b")),
    ("last_week", re.compile(
        r"\b" + _LEAD + r"(?:last|past|previous|prior|this|current) (?:1 |one )?(?:wk|week)\b"
    )),
    ("last_n", re.compile(r"\b" + _LEAD + r"(?:last|past|previous|prior) " + _NUM + " " + _UNITS_RX + r"\b")),
    # "over the last year" is the last twelve months; a bare "last year" stays the calendar year.
    ("rolling", re.compile(
        r"\b(?:(?:over|within) the (?:last|past)|(?:in|during|for) the past|the past|past)"
        r" (year|month|yr|mo)\b"
    )),
    ("last_quarter", re.compile(r"\b" + _LEAD + r"(?:last|past|previous|prior) (?:quarter|qtr)\b")),
    ("this_abbrev", re.compile(r"\b" + _LEAD + r"(this|current|last|previous|prior) (yr|mo|mth)\b")),
    ("ytd", re.compile(r"\b(?:ytd|year to date|so far this year|this year so far)\b")),
    ("today", re.compile(r"\btoday\b")),
    ("year", re.compile(r"(?<![\w/-])(?:(?:in|for|during) )?((?:19|20)\d{2})(?![\w/-])")),
]  # fmt: skip


@dataclass(frozen=True)
class _Time:
    constraints: tuple[TimeConstraint, ...]
    spans: tuple[tuple[int, int], ...]  # every span read as time
    ordinals: bool  # a reading of "first"/"last" the shared reader made that nothing explains
    windows: tuple[TimeConstraint, ...]
    visits: bool


def _local_time(name: str, m: re.Match[str], census: bool) -> TimeConstraint | None:
    g = m.groups()
    if name == "week_of":
        ymd = _date(g)
        return (
            None if ymd is None else TimeConstraint("abs", op="week", year=ymd[0], month=ymd[1], day=ymd[2])
        )
    if name == "date":
        ymd = _date(g)
        return None if ymd is None else TimeConstraint("abs", op="in", year=ymd[0], month=ymd[1], day=ymd[2])
    if name == "last_week":
        return TimeConstraint("rel", op="since", amount=7, unit="day")
    if name == "last_n":
        return TimeConstraint("rel", op="since", amount=number(g[0]), unit=_unit(g[1]))
    if name == "rolling":
        return TimeConstraint("rel", op="since", amount=1, unit=_unit(g[0]))
    if name == "last_quarter":
        return TimeConstraint("rel", op="since", amount=3, unit="month")
    if name == "this_abbrev":
        return TimeConstraint(
            "rel", op="in", amount=0 if g[0] in ("this", "current") else 1, unit=_unit(g[1])
        )
    if name == "ytd":
        return TimeConstraint("rel", op="in", amount=0, unit="year")
    if name == "today":
        # The extract ends at midnight: "today" has no data yet, so it is read as the last complete
        # day (hospital.json's convention); a census "today" is the census now.
        return None if census else TimeConstraint("rel", op="in", amount=1, unit="day")
    if name == "year":
        return TimeConstraint("abs", op="in", year=int(g[0]))
    raise AssertionError(name)


def _read_time(found: Found, *, census: bool = False) -> _Time:
    text = found.text.lower()
    taken: list[tuple[int, int]] = []
    local: list[TimeConstraint] = []
    for name, pattern in _LOCAL_TIME:
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            if name == "year" and any(t.start < m.end() and m.start() < t.end for t in found.time):
                continue  # "since 2024", "11/2025": the shared reader has the whole phrase
            built = _local_time(name, m, census)
            if built is None:
                continue
            taken.append((m.start(), m.end()))
            local.append(replace(built, start=m.start(), end=m.end(), text=m.group(0).strip()))
    kept: list[TimeConstraint] = []
    ordinals = visits = False
    windows: list[TimeConstraint] = []
    for t in found.time:
        if any(t.start < e and s < t.end for s, e in taken):
            continue  # read here, better
        if t.kind == "ordinal":
            ordinals = True
        elif t.kind == "visit":
            visits = True
        elif t.kind == "within":
            windows.append(t)
        elif census and t.kind == "rel" and t.unit == "day" and t.amount == 0:
            continue  # a census "today" is now
        else:
            kept.append(t)
    spans = [(t.start, t.end) for t in (*kept, *windows)] + taken
    constraints = tuple(sorted((*kept, *local), key=lambda t: t.start))
    return _Time(constraints, tuple(spans), ordinals, tuple(windows), visits)


def _when(t: TimeConstraint) -> str:
    """A constraint as a clinician reads it back."""
    if t.kind == "abs":
        if t.relative_year is not None or t.relative_month is not None:
            return t.text
        if t.op == "week" and t.year and t.month and t.day:
            return f"in the week starting {t.year:04d}-{t.month:02d}-{t.day:02d}"
        if t.month is None:
            when = f"{t.year}"
        elif t.day is None:
            when = f"{_MONTH_NAMES[t.month - 1]} {t.year}"
        else:
            when = f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
        lead = {"since": "since", "before": "before"}.get(t.op, "on" if t.day else "in")
        return f"{lead} {when}"
    if t.kind == "rel":
        if t.op == "since":
            unit = t.unit if t.amount == 1 else f"{t.unit}s"
            return f"in the last {t.amount} {unit}"
        if t.unit == "day":
            return "today" if t.amount == 0 else "yesterday (the last complete day)"
        return f"{'this' if t.amount == 0 else 'last'} {t.unit}"
    return t.text


def _time_sql(ctx: Ctx, t: TimeConstraint, column: exp.Expr) -> exp.Expr:
    if t.kind == "abs" and t.op == "week" and t.year and t.month and t.day:
        first = f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
        last = _add_days(first, 6)
        return exp.Between(this=fmt(ctx, column, "%Y-%m-%d"), low=lit(first), high=lit(last))
    return time_condition(ctx, t, column)


def _add_days(iso: str, days: int) -> str:
    return (date.fromisoformat(iso) + timedelta(days=days)).isoformat()


# --- Measures ------------------------------------------------------------------------------------

_DURATION_SUFFIXES: Final = {"_days": "days", "_hours": "hours", "_minutes": "minutes"}
# A birth date is when a person was born, not when anything counted happened.
_BIRTH_COLUMNS: Final = frozenset({"dob", "birth_date"})
_SQLITE_ONLY: Final = frozenset({"JULIANDAY", "STRFTIME", "DATETIME", "DATE", "TIME"})


@dataclass(frozen=True)
class _MeasureInfo:
    measure: Measure
    condition: str  # the rows it is about (its FILTER), SQLite SQL over its table, or ""
    time: str  # the column placing it in time, or "" when timeless
    top: str  # the outer aggregate: AVG, SUM, COUNT, MIN, MAX, or "" for a composite (a rate)
    unit: str  # days | hours | minutes for a duration
    percent: bool
    needs: str  # the matcher kind of the value it needs ("lab" for AVG(labevents.valuenum)), or ""


def _lifted(expression: str) -> tuple[exp.Expr, exp.Expr | None]:
    """The measure without its FILTER clauses, and their (single, shared) condition."""
    tree = sqlglot.parse_one(expression, read="sqlite")
    filters = list(tree.find_all(exp.Filter))
    if not filters:
        return tree, None
    conditions = {f.expression.this.sql("sqlite") for f in filters}
    if len(conditions) != 1:
        raise CompileError("a measure's aggregates filter different rows")
    for agg in tree.find_all(exp.AggFunc):
        if agg.find_ancestor(exp.Filter) is None:
            raise CompileError("a measure filters some aggregates and not others")
    condition = filters[0].expression.this.copy()
    if isinstance(tree, exp.Filter):
        tree = tree.this
    for f in list(tree.find_all(exp.Filter)):
        f.replace(f.this)
    return tree, condition


def _not_null_columns(condition: exp.Expr | None) -> list[str]:
    """Columns the condition requires to be known (`x IS NOT NULL`), in order."""
    if condition is None:
        return []
    names = []
    for node in condition.find_all(exp.Not):
        inner = node.this
        if (
            isinstance(inner, exp.Is)
            and isinstance(inner.expression, exp.Null)
            and isinstance(inner.this, exp.Column)
        ):
            names.append(inner.this.name)
    return names


def _top(tree: exp.Expr) -> str:
    for kind, name in ((exp.Avg, "AVG"), (exp.Sum, "SUM"), (exp.Count, "COUNT"), (exp.Min, "MIN"),
                       (exp.Max, "MAX")):  # fmt: skip
        if isinstance(tree, kind):
            return name
    return ""


@cache
def _info(measure: Measure, events: tuple[Event, ...], time_columns: tuple[str, ...]) -> _MeasureInfo:
    tree, condition = _lifted(measure.expression)
    known = [c for c in _not_null_columns(condition) if c in time_columns]
    time = known[0] if known else (time_columns[0] if time_columns else "")
    if time in _BIRTH_COLUMNS:
        time = ""
    unit = next((u for suffix, u in _DURATION_SUFFIXES.items() if measure.name.endswith(suffix)), "")
    needs = ""
    top = _top(tree)
    if top == "AVG":
        used = {c.name for c in tree.find_all(exp.Column)}
        for event in events:
            if event.table == measure.table and event.value in used and event.name in KIND_OF_EVENT:
                needs = KIND_OF_EVENT[event.name]
    return _MeasureInfo(
        measure,
        condition.sql("sqlite") if condition is not None else "",
        time,
        top,
        unit,
        measure.name.endswith("_percent"),
        needs,
    )


def measure_info(layer: SemanticLayer, name: str) -> _MeasureInfo:
    try:
        measure = layer.measures[name]
    except KeyError:
        raise CompileError(f"the semantic layer has no measure {name!r}") from None
    table = layer.tables.get(measure.table)
    columns = table.time_columns if table is not None else ()
    return _info(measure, tuple(layer.events.values()), columns)


# --- Joins to a dimension ------------------------------------------------------------------------

# hospital.json's convention: an admission's department is the department of the care unit of its
# transfers row with eventtype 'admit'. Admissions reach departments (only) through that row.
_ADMIT_TABLE: Final = "transfers"
_ADMIT_COLUMN: Final = "eventtype"
_ADMIT_VALUE: Final = "admit"
_ADMIT_FOR: Final = "departments"


@cache
def _unique_columns() -> frozenset[tuple[str, str]]:
    """(table, column) pairs holding one row per value: primary keys and UNIQUE columns."""
    unique: set[tuple[str, str]] = set()
    for stmt in sqlglot.parse(EHRSQL_DDL + EXTRACT_DDL, read="postgres"):
        if not isinstance(stmt, exp.Create) or not isinstance(stmt.this, exp.Schema):
            continue
        table = stmt.this.this.name
        for item in stmt.this.expressions:
            if isinstance(item, exp.ColumnDef) and any(
                isinstance(c.kind, (exp.PrimaryKeyColumnConstraint, exp.UniqueColumnConstraint))
                for c in item.constraints
            ):
                unique.add((table, item.name))
    return frozenset(unique)


@dataclass(frozen=True)
class _Hop:
    table: str
    on: tuple[tuple[str, str], ...]  # (column of an earlier table "t.c", column of `table`)
    where: tuple[tuple[str, str], ...] = ()  # (column of `table`, value) the join also requires


def _edges(layer: SemanticLayer, table: str, target: str) -> Iterator[_Hop]:
    """Many-to-one steps from `table`: each row meets at most one row of the next table."""
    if table == "admissions" and target == _ADMIT_FOR:
        yield _Hop(_ADMIT_TABLE, (("admissions.hadm_id", "hadm_id"),), ((_ADMIT_COLUMN, _ADMIT_VALUE),))
        return  # the convention is the only way an admission has a department
    unique = _unique_columns()
    for join in layer.joins:
        for (a, ac), (b, bc) in (
            ((join.left_table, join.left_column), (join.right_table, join.right_column)),
            ((join.right_table, join.right_column), (join.left_table, join.left_column)),
        ):
            if a == table and b != table and (b, bc) in unique:
                yield _Hop(b, ((f"{a}.{ac}", bc),))
    # Rows of one patient (stay, admission) meet that patient's (stay's, admission's) own row.
    mine = layer.tables[table].patient_keys if table in layer.tables else ()
    for key in mine:
        for other, meta in layer.tables.items():
            if other != table and key in meta.patient_keys and (other, key) in unique:
                yield _Hop(other, ((f"{table}.{key}", key),))


def _passable(layer: SemanticLayer, table: str) -> bool:
    """Whether a path may go through the table: not through who someone is (a patient's identity
    links to the staff record of a patient who is an employee, which says nothing about care)."""
    meta = layer.tables.get(table)
    return meta is not None and not any(c.sensitivity == "identifier_direct" for c in meta.columns)


_paths: dict[tuple[int, str, str], tuple[SemanticLayer, tuple[_Hop, ...] | None]] = {}


def join_path(layer: SemanticLayer, start: str, target: str) -> tuple[_Hop, ...] | None:
    """The shortest chain of many-to-one joins from `start` to `target` (None when there is none)."""
    key = (id(layer), start, target)
    hit = _paths.get(key)
    if hit is not None and hit[0] is layer:
        return hit[1]
    if len(_paths) > 4096:
        _paths.clear()
    path = _join_path(layer, start, target)
    _paths[key] = (layer, path)
    return path


def _join_path(layer: SemanticLayer, start: str, target: str) -> tuple[_Hop, ...] | None:
    if start == target:
        return ()
    frontier: list[tuple[str, tuple[_Hop, ...]]] = [(start, ())]
    seen = {start}
    while frontier:
        following: list[tuple[str, tuple[_Hop, ...]]] = []
        for table, path in frontier:
            for hop in _edges(layer, table, target):
                if hop.table in seen:
                    continue
                if hop.table == target:
                    return (*path, hop)
                seen.add(hop.table)
                if not _passable(layer, hop.table):
                    continue
                following.append((hop.table, (*path, hop)))
        frontier = following
    return None


# --- Plans ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpsPlan(QueryPlan):
    """A plan of this module's families: QueryPlan's slots and the analytic ones."""

    measure: str = ""
    dimensions: tuple[str, ...] = ()  # layer dimension names, or "@<bucket>" of the measure's time
    ratio: bool = False  # a percentage asked as a fraction
    instant: str = ""  # census: "YYYY-MM-DD HH:MM:SS", "" for now
    days: int = 0  # readmission window


def _bucket(ctx: Ctx, column: exp.Expr, unit: str) -> exp.Expr:
    """A calendar bucket of a timestamp as text ("2026-11", "2026-Q4", "2026-47"), in either dialect."""
    if unit in ("day", "month", "year"):
        return fmt(ctx, column, {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[unit])
    year = fmt(ctx, column, "%Y")
    if unit == "quarter":
        if ctx.pg:
            quarter: exp.Expr = fn("to_char", column, lit("Q"))
        else:
            month = exp.Cast(this=fn("strftime", lit("%m"), column), to=exp.DataType.build("int"))
            # Integer division: months 1-3 are quarter 1.
            quarter = exp.Div(
                this=exp.Paren(this=exp.Add(this=month, expression=lit(2))), expression=lit(3), typed=True
            )
        return exp.DPipe(this=exp.DPipe(this=year, expression=lit("-Q")), expression=exp.Paren(this=quarter))
    if unit == "week":
        # SQLite's %W: weeks starting on Monday, the days before the year's first Monday in week 00.
        if not ctx.pg:
            return fn("strftime", lit("%Y-%W"), column)
        doy = exp.Cast(this=exp.Extract(this=exp.var("DOY"), expression=column), to=exp.DataType.build("int"))
        dow = exp.Cast(this=exp.Extract(this=exp.var("DOW"), expression=column), to=exp.DataType.build("int"))
        monday = exp.Mod(this=exp.Paren(this=exp.Add(this=dow, expression=lit(6))), expression=lit(7))
        week = exp.Div(
            this=exp.Paren(this=exp.Sub(this=exp.Add(this=doy, expression=lit(6)), expression=monday)),
            expression=lit(7),
            typed=True,
        )
        padded = fn("lpad", exp.Cast(this=week, to=exp.DataType.build("text")), lit(2), lit("0"))
        return exp.DPipe(this=exp.DPipe(this=year, expression=lit("-")), expression=padded)
    if unit == "hour":
        return fn("to_char", column, lit("HH24")) if ctx.pg else fn("strftime", lit("%H"), column)
    if unit in ("weekday", "daytype"):
        # 0 = Sunday ... 6 = Saturday in both dialects.
        day = (
            exp.Cast(this=exp.Extract(this=exp.var("DOW"), expression=column), to=exp.DataType.build("text"))
            if ctx.pg
            else fn("strftime", lit("%w"), column)
        )
        if unit == "weekday":
            return day
        weekend = exp.In(this=day, expressions=[lit("0"), lit("6")])
        return exp.Case(ifs=[exp.If(this=weekend, true=lit("weekend"))], default=lit("weekday"))
    raise CompileError(f"no calendar bucket {unit!r}")


def _dimension_sql(dimension: Dimension) -> exp.Expr:
    column = col(f"{dimension.table}.{dimension.column}")
    if not dimension.bins:
        return column
    # The band is named by its lower bound: 60 for ages 60 to 69 when bins go by tens.
    ifs = [
        exp.If(this=exp.GTE(this=column.copy(), expression=lit(low)), true=lit(low))
        for low in reversed(dimension.bins)
    ]
    return exp.Case(ifs=ifs)


def _event_kinds(layer: SemanticLayer) -> dict[str, list[Event]]:
    """The matcher's value kinds and the layer events whose rows they name."""
    kinds: dict[str, list[Event]] = {}
    for event in layer.events.values():
        kind = KIND_OF_EVENT.get(event.name)
        if kind is None and event.name_column is not None and event.name_column.endswith("careunit"):
            kind = "careunit"  # ICU stays are named by their (first) care unit column, as transfers are
        if kind is not None:
            kinds.setdefault(kind, []).append(event)
    return kinds


def _value_filter(layer: SemanticLayer, table: str, f: Filter) -> exp.Expr | None:
    """Rows of `table` that the value names: its own event's rows, or rows of the visits that had it."""
    events = _event_kinds(layer).get(f.kind, [])
    for event in events:
        if event.table == table:
            return value_condition(event, f.value)
    visit_tables = {e.table for e in layer.events.values() if e.name in _VISIT_EVENTS}
    if table in visit_tables and f.kind in _VISIT_VALUE_KINDS:
        for event in events:
            link = event.column("hadm_id")
            if (
                "hadm_id" in layer.tables[table].patient_keys
                and "hadm_id" in layer.tables[event.table].patient_keys
            ):
                inner = select(col(link)).from_(event.table).where(value_condition(event, f.value))
                return col(f"{table}.hadm_id").isin(query=inner)
    return None


# Admissions and ICU stays are visits: "admissions with sepsis" are those that had the diagnosis.
_VISIT_EVENTS: Final = ("admission", "icustay")
_VISIT_VALUE_KINDS: Final = ("diagnosis", "procedure", "drug")


def _measure_sql(ctx: Ctx, layer: SemanticLayer, plan: OpsPlan) -> tuple[exp.Expr, exp.Expr | None]:
    """The measure's value expression for the plan (its function, unit and scale) and its row filter."""
    info = measure_info(layer, plan.measure)
    tree, condition = _lifted(info.measure.expression)
    for node in [tree, *([condition] if condition is not None else [])]:
        for column in node.find_all(exp.Column):
            if not column.table:
                column.set("table", exp.to_identifier(info.measure.table))
    for sub in list(tree.find_all(exp.Sub)):
        left, right = sub.this, sub.expression
        if _julian(left) and _julian(right):
            sub.replace(days_between(ctx, left.expressions[0].copy(), right.expressions[0].copy()))
    if ctx.pg:
        for part in (tree, condition):
            if part is not None and any(a.name.upper() in _SQLITE_ONLY for a in part.find_all(exp.Anonymous)):
                raise CompileError(f"measure {info.measure.name} uses SQLite date functions")
    if plan.aggregate and plan.aggregate != info.top and info.top == "AVG":
        tree = exp.func(plan.aggregate, tree.this)
    if plan.unit and info.unit and plan.unit != info.unit:
        factor = _UNIT_FACTORS[plan.unit] / _UNIT_FACTORS[info.unit]
        if not isinstance(tree, (exp.Avg, exp.Sum, exp.Min, exp.Max)):
            raise CompileError("a duration in other units needs an aggregate of one value")
        arg = (
            tree.this
            if isinstance(tree.this, (exp.Paren, exp.Column, exp.Mul))
            else exp.Paren(this=tree.this)
        )
        scaled = (
            exp.Mul(this=arg.copy(), expression=lit(int(factor) if factor == int(factor) else factor))
            if factor >= 1
            else exp.Div(this=arg.copy(), expression=lit(float(round(1 / factor))))
        )
        tree.set("this", scaled)
    if plan.ratio:
        tree = exp.Div(this=tree, expression=lit(100.0))
    if ctx.pg and _fractional(tree):
        # PostgreSQL averages and divides in NUMERIC: a float keeps both dialects' answers alike.
        tree = exp.Cast(this=tree, to=exp.DataType.build("double"))
    return tree, condition


def _julian(node: exp.Expr) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.upper() == "JULIANDAY" and len(node.expressions) == 1


def _fractional(tree: exp.Expr) -> bool:
    if tree.find(exp.Avg, exp.Div, exp.Extract) is not None:
        return True
    return any(not lit_.is_string and "." in lit_.name for lit_ in tree.find_all(exp.Literal))


def _joins(layer: SemanticLayer, table: str, targets: list[str]) -> list[_Hop]:
    """The joins reaching every target table, each table joined once."""
    hops: dict[str, _Hop] = {}
    for target in targets:
        path = join_path(layer, table, target)
        if path is None:
            raise CompileError(f"no many-to-one join from {table} to {target}")
        for hop in path:
            if hop.table in hops and hops[hop.table] != hop:
                raise CompileError(f"{hop.table} is reached two ways")
            hops[hop.table] = hop
    return list(hops.values())


def _with_joins(query: exp.Select, hops: list[_Hop]) -> exp.Select:
    for hop in hops:
        conditions: list[exp.Expr] = [
            exp.EQ(this=col(f"{hop.table}.{mine}"), expression=col(theirs)) for theirs, mine in hop.on
        ]
        conditions += [exp.EQ(this=col(f"{hop.table}.{c}"), expression=lit(v)) for c, v in hop.where]
        query = query.join(hop.table, on=exp.and_(*conditions))
    return query


def _group_exprs(
    ctx: Ctx, layer: SemanticLayer, plan: OpsPlan, time_column: exp.Expr | None
) -> list[exp.Expr]:
    exprs: list[exp.Expr] = []
    for name in plan.dimensions:
        if name.startswith("@"):
            if time_column is None:
                raise CompileError("a timeless measure has no calendar buckets")
            exprs.append(_bucket(ctx, time_column.copy(), name[1:]))
        else:
            exprs.append(_dimension_sql(layer.dimensions[name]))
    return exprs


def _metric_select(
    plan: OpsPlan, ctx: Ctx, layer: SemanticLayer, time: tuple[TimeConstraint, ...]
) -> exp.Select:
    info = measure_info(layer, plan.measure)
    table = info.measure.table
    value, condition = _measure_sql(ctx, layer, plan)
    time_column = col(f"{table}.{info.time}") if info.time else None
    groups = _group_exprs(ctx, layer, plan, time_column)
    targets = [layer.dimensions[d].table for d in plan.dimensions if not d.startswith("@")]
    query = _with_joins(
        select(*[g.copy() for g in groups], value).from_(table), _joins(layer, table, targets)
    )
    conditions: list[exp.Expr | None] = [condition]
    if plan.option == "groups":
        # Two named groups side by side ("heparin vs enoxaparin"): the rows of either, by group.
        if len(groups) != 1:
            raise CompileError("groups are compared on one dimension")
        conditions.append(exp.In(this=groups[0].copy(), expressions=[lit(f.value) for f in plan.filters]))
    else:
        for f in plan.filters:
            wanted = _value_filter(layer, table, f)
            if wanted is None:
                raise CompileError(f"{f.kind} {f.value} does not apply to {info.measure.name}")
            conditions.append(wanted)
    if time and time_column is None:
        raise CompileError("a timeless measure takes no period")
    for t in time:
        if time_column is not None:
            conditions.append(_time_sql(ctx, t, time_column.copy()))
    where = and_(*conditions)
    if where is not None:
        query = query.where(where)
    if groups:
        query = query.group_by(*[g.copy() for g in groups]).order_by(*[g.copy() for g in groups])
    return query


def _build_metric(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if not isinstance(plan, OpsPlan):
        raise CompileError("not an analytics plan")
    return _metric_select(plan, ctx, layer, plan.time)


# --- Reading a question --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexicon:
    cues: tuple[_Phrase, ...]
    adjectives: tuple[_Phrase, ...]  # "t:<bucket>" anywhere ("monthly", "per day")
    nouns: tuple[_Phrase, ...]  # "t:<bucket>" and "d:<dimension>" after a cue
    splits: tuple[_Phrase, ...]
    measures: tuple[_Phrase, ...]  # "m:<measure>"
    units: tuple[_Phrase, ...]  # "unit:<unit>"
    percent: tuple[_Phrase, ...]
    ratio: tuple[_Phrase, ...]
    of_time: tuple[_Phrase, ...]  # "of:<column>" after a bucket noun


_lexicons: dict[int, tuple[SemanticLayer, _Lexicon]] = {}


def _lexicon(layer: SemanticLayer) -> _Lexicon:
    hit = _lexicons.get(id(layer))
    if hit is not None and hit[0] is layer:
        return hit[1]
    nouns = [(w, f"t:{unit}") for unit, words in _BUCKET_NOUNS.items() for w in words]
    nouns += [(w, f"d:{d.name}") for d in layer.dimensions.values() for w in d.words]
    lexicon = _Lexicon(
        cues=_phrases([(w, "cue") for w in _CUE_PHRASES]),
        adjectives=_phrases([(w, f"a:{unit}") for unit, words in _BUCKET_ADJECTIVES.items() for w in words]),
        nouns=_phrases(nouns),
        splits=_phrases([(w, "split") for w in _SPLIT_WORDS]),
        measures=_phrases([(w, f"m:{m.name}") for m in layer.measures.values() for w in m.words]),
        units=_phrases([(w, f"unit:{unit}") for unit, words in _UNIT_WORDS.items() for w in words]),
        percent=_phrases([(w, "percent") for w in _PERCENT_WORDS]),
        ratio=_phrases([(w, "ratio") for w in _RATIO_WORDS]),
        of_time=_phrases([(f"of {w}", f"of:{c}") for w, c in _OF_TIME.items()]
                         + [(f"of the {w}", f"of:{c}") for w, c in _OF_TIME.items()]),
    )  # fmt: skip
    if len(_lexicons) > 8:
        _lexicons.clear()
    _lexicons[id(layer)] = (layer, lexicon)
    return lexicon


@dataclass
class _Parse:
    """What the words of a question were read as."""

    labels: list[tuple[str, int]] = field(default_factory=list)  # (label, first token) in question order
    spans: list[tuple[str, int, int]] = field(default_factory=list)  # (label, start, end) in the text
    groups: list[tuple[str, ...]] = field(default_factory=list)  # dimension choices per mention
    values: list[tuple[int, tuple[Filter, ...]]] = field(default_factory=list)  # readings per mention
    aggregate: str = ""

    def of(self, prefix: str) -> list[str]:
        return [label[len(prefix) :] for label, _ in self.labels if label.startswith(prefix)]


def _read_words(
    found: Found,
    time: _Time,
    lexicon: _Lexicon,
    extra: tuple[_Phrase, ...] = (),
    neutral: frozenset[str] = _NEUTRAL,
    measures: bool = True,
) -> _Parse | None:
    """Explain every word of the question, or None when a word (or a cue) is left unexplained."""
    toks = _tokenise(found.text)

    def covering(start: int, end: int) -> set[int]:
        return {i for i, t in enumerate(toks) if t.start < end and start < t.end}

    timed: set[int] = set()
    for start, end in time.spans:
        timed |= covering(start, end)
    agg_hits = [
        _Hit(min(s), max(s) + 1, "unit:minutes" if _minutes(found.text, f) else f"agg:{f.value}", False)
        for f in found.of("aggregate")
        if (s := covering(f.start, f.end))
    ]
    free = [*lexicon.cues, *lexicon.adjectives, *lexicon.nouns, *lexicon.splits, *lexicon.units,
            *lexicon.percent, *lexicon.ratio, *lexicon.of_time, *extra]  # fmt: skip
    if measures:
        free += list(lexicon.measures)
    hits = _all_hits(tuple(free), toks, timed) + [
        h for h in agg_hits if not timed & set(range(h.first, h.last))
    ]
    # A value inside a longer phrase of ours is part of it ("emergency department visits").
    parse = _Parse()
    blocked: set[int] = set()
    for group in found.spans:
        span = covering(group[0].start, group[0].end)
        inside = (
            any(
                h.first <= min(span)
                and max(span) < h.last
                and h.last - h.first > len(span)
                and not h.label.startswith("agg")
                for h in hits
            )
            if span
            else True
        )
        if inside:
            continue
        blocked |= span
        parse.values.append((min(span), tuple(Filter(m.kind, m.value, m.start) for m in group)))
    hits = [h for h in hits if not blocked & set(range(h.first, h.last))]
    taken = timed | blocked

    def starting(position: int, kinds: tuple[str, ...]) -> list[_Hit]:
        return [h for h in hits if h.first == position and h.label.startswith(kinds)]

    def take(hit: _Hit) -> None:
        taken.update(range(hit.first, hit.last))
        parse.labels.append((hit.label, hit.first))
        parse.spans.append((hit.label, toks[hit.first].start, toks[hit.last - 1].end))

    # Cues and calendar adjectives first: "per day" is a bucket, "by" announces a dimension.
    led = _greedy([h for h in hits if h.label == "cue" or h.label.startswith("a:")], set(taken))
    for hit in led:
        if taken & set(range(hit.first, hit.last)):
            continue
        if hit.label != "cue":
            take(replace(hit, label="t:" + hit.label[2:]))
            continue
        position = hit.last
        while position < len(toks) and toks[position].text in _AFTER_CUE and position not in taken:
            position += 1
        options = [h for h in starting(position, ("d:", "t:")) if not taken & set(range(h.first, h.last))]
        if not options:
            return None  # "per admission", "by nurses": a grouping we cannot honour
        longest = max(h.last for h in options)
        chosen = [h for h in options if h.last == longest]
        taken.update(range(hit.first, position))
        _take_dimension(chosen, parse, taken, toks)
        after = [h for h in starting(longest, ("of:",)) if not taken & set(range(h.first, h.last))]
        if after and chosen[0].label.startswith("t:"):
            take(after[0])
    # "gender split", "department-wise"; and "male vs female" anywhere.
    for hit in sorted((h for h in hits if h.label == "split"), key=lambda h: h.first):
        if taken & set(range(hit.first, hit.last)):
            continue
        before = [
            h
            for h in hits
            if h.last == hit.first and h.label.startswith("d:") and not taken & set(range(h.first, h.last))
        ]
        if before:
            earliest = min(h.first for h in before)
            _take_dimension([h for h in before if h.first == earliest], parse, taken, toks)
            take(hit)
    versus = [h for h in hits if h.label.startswith("d:") and _versus(toks, h)]
    for hit in _greedy(versus, set(taken)):
        _take_dimension([h for h in versus if (h.first, h.last) == (hit.first, hit.last)], parse, taken, toks)
    # Then measures, the family's own words, functions, units: longest first.
    rest = [h for h in hits if h.label.startswith(("m:", "agg:", "unit:", "percent", "ratio", "x:"))]
    for hit in _greedy(rest, set(taken)):
        take(hit)
        if hit.label.startswith("agg:"):
            if parse.aggregate and parse.aggregate != hit.label[4:]:
                return None
            parse.aggregate = hit.label[4:]
    for i, tok in enumerate(toks):
        if i not in taken and tok.text not in neutral:
            return None
    parse.labels.sort(key=lambda item: item[1])
    return parse


def _minutes(text: str, f: Finding) -> bool:
    """ "TAT (min)", "in min": the abbreviation of minutes, not a minimum."""
    if text[f.start : f.end].lower() != "min":
        return False
    bracketed = text[max(0, f.start - 1) : f.start] == "(" and text[f.end : f.end + 1] == ")"
    return bracketed or text[max(0, f.start - 3) : f.start].lower() == "in "


def _versus(toks: list[_Tok], hit: _Hit) -> bool:
    return any(t.text in ("vs", "versus", "/") for t in toks[hit.first : hit.last])


def _take_dimension(chosen: list[_Hit], parse: _Parse, taken: set[int], toks: list[_Tok]) -> None:
    hit = chosen[0]
    taken.update(range(hit.first, hit.last))
    parse.spans.append((hit.label, toks[hit.first].start, toks[hit.last - 1].end))
    if hit.label.startswith("t:"):
        parse.labels.append((hit.label, hit.first))
        return
    names = tuple(dict.fromkeys(h.label[2:] for h in chosen if h.label.startswith("d:")))
    parse.groups.append(names)
    parse.labels.append(("dim", hit.first))


def _dimensions(layer: SemanticLayer, table: str, parse: _Parse) -> list[str] | None:
    """Each mentioned dimension reachable from the measure's table (the nearest, when words are shared)."""
    chosen: list[str] = []
    for names in parse.groups:
        reachable = [
            (len(p), n)
            for n in names
            if (p := join_path(layer, table, layer.dimensions[n].table)) is not None
        ]
        if not reachable:
            return None
        best = min(d for d, _ in reachable)
        nearest = [n for d, n in reachable if d == best]
        if len(nearest) != 1:
            return None
        chosen.append(nearest[0])
    return chosen


def _ordered_dimensions(parse: _Parse, dimensions: list[str]) -> tuple[str, ...]:
    """Dimensions and buckets in the order the question names them."""
    out: list[str] = []
    dims = iter(dimensions)
    for label, _ in parse.labels:
        if label == "dim":
            out.append(next(dims))
        elif label.startswith("t:"):
            out.append("@" + label[2:])
    return tuple(dict.fromkeys(out))


def _filter_readings(
    layer: SemanticLayer, table: str, parse: _Parse, needs: str
) -> Iterator[tuple[Filter, ...]]:
    """Every reading of the named values that applies to the measure's table (and gives what it needs)."""
    options: list[list[Filter]] = []
    for _, readings in parse.values:
        fits = [f for f in readings if _value_filter(layer, table, f) is not None]
        if not fits:
            return
        options.append(fits)
    for combo in itertools.product(*options):
        kinds = [f.kind for f in combo]
        if needs and kinds.count(needs) != 1:
            continue
        if len(set(kinds)) != len(kinds):
            continue  # two values of one kind: "potassium and sodium" is two questions
        yield tuple(combo)


# --- ops.metric ----------------------------------------------------------------------------------

# Findings no analytics family honours: a top-k, a threshold on values, an age group, survival.
_REFUSED: Final = ("comparison", "rank", "times", "age", "survival", "number")
_AGG_WORDS: Final = {"MIN": "minimum", "MAX": "maximum", "AVG": "average", "SUM": "total"}


@dataclass(frozen=True)
class _OpsFamily(Family):
    """A family that reads the question's words itself against the semantic layer."""

    reader: Callable[[_OpsFamily, Found, SemanticLayer], Iterator[OpsPlan]] | None = None

    def bind(self, found: Found) -> Iterator[QueryPlan]:
        if self.reader is not None:
            yield from self.reader(self, found, semantic_layer())


def _findings_ok(found: Found, parse: _Parse, time: _Time, refused: tuple[str, ...] = _REFUSED) -> bool:
    """Findings of the shared readers are all explained by this reading."""
    if any(found.of(kind) for kind in refused):
        return False

    def read_as(f: Finding, prefixes: tuple[str, ...]) -> bool:
        return any(label.startswith(prefixes) and s < f.end and f.start < e for label, s, e in parse.spans)

    def timed(f: Finding) -> bool:
        return any(s <= f.start and f.end <= e for s, e in time.spans)

    buckets = set(parse.of("t:"))
    if any(f.value not in buckets or not read_as(f, ("t:",)) for f in found.of("period")):
        return False
    return all(timed(f) or read_as(f, ("t:", "unit:")) for f in found.of("elapsed_unit"))


def _measure_name(layer: SemanticLayer, parse: _Parse) -> str | None:
    """The one measure the question names, or the value measure a function over a value asks for."""
    names = list(dict.fromkeys(parse.of("m:")))
    if len(names) == 2:
        # "average age of patients admitted": a count of the same rows only says whose average it is.
        infos = sorted((measure_info(layer, n) for n in names), key=lambda i: i.top != "AVG")
        mean, count = infos
        same_rows = count.condition in ("", mean.condition)
        if (
            mean.top == "AVG"
            and count.top == "COUNT"
            and mean.measure.table == count.measure.table
            and same_rows
        ):
            return mean.measure.name
    if len(names) > 1:
        return None
    if names:
        return names[0]
    if not parse.aggregate:
        return None
    kinds = {f.kind for _, readings in parse.values for f in readings}
    implicit = [
        m.name
        for m in layer.measures.values()
        if (info := measure_info(layer, m.name)).needs in kinds and info.top == "AVG" and m.words
    ]
    return implicit[0] if len(implicit) == 1 else None


def _function(info: _MeasureInfo, asked: str) -> str | None:
    """The aggregate to apply instead of the measure's own ("" for its own), None when it cannot be."""
    if not asked or asked == info.top:
        return ""
    if info.top == "AVG" and asked in ("MIN", "MAX", "SUM"):
        return asked
    if asked == "SUM" and info.top in ("COUNT", "SUM"):
        return ""  # "total admissions" counts them
    return None


def _metric_plans(
    family: Family,
    found: Found,
    layer: SemanticLayer,
    parse: _Parse,
    time: _Time,
    kind: str = "",
    measure: str = "",
) -> Iterator[OpsPlan]:
    name = measure or _measure_name(layer, parse)
    if name is None or not _findings_ok(found, parse, time):
        return
    info = measure_info(layer, name)
    function = _function(info, parse.aggregate)
    if function is None:
        return
    units = set(parse.of("unit:"))
    if len(units) > 1 or (units and not info.unit):
        return
    ratio = bool(parse.of("ratio"))
    if (ratio or parse.of("percent")) and not info.percent:
        return
    if parse.of("x:") and not kind:
        return
    buckets = parse.of("t:")
    if (buckets or time.constraints) and not info.time:
        return
    if any(column != info.time for column in parse.of("of:")):
        return  # "LOS by month of admission": the measure is placed in time by its discharge
    dimensions = _dimensions(layer, info.measure.table, parse)
    if dimensions is None:
        return
    ordered = _ordered_dimensions(parse, dimensions)
    if (
        len(ordered) > 2
        or sum(d.startswith("@") for d in ordered) > 1
        or len(ordered) != len(dimensions) + len(buckets)
    ):
        return
    bucket = next((d[1:] for d in ordered if d.startswith("@")), "")
    shape = kind or (
        "trend"
        if bucket
        else "rate"
        if info.percent
        else "aggregate"
        if ordered
        else "count"
        if info.top == "COUNT"
        else "aggregate"
    )
    # Two compared values are the groups: they give what a value measure needs.
    needs = "" if measure else info.needs
    for filters in _filter_readings(layer, info.measure.table, parse, needs):
        yield OpsPlan(
            family=family.name,
            kind=shape,
            measure=name,
            dimensions=ordered,
            filters=filters,
            time=time.constraints,
            aggregate=function,
            unit=next(iter(units), ""),
            ratio=ratio,
            period=bucket,
        )


def _read_metric(family: _OpsFamily, found: Found, layer: SemanticLayer) -> Iterator[OpsPlan]:
    if found.patients:
        return
    time = _read_time(found)
    if time.ordinals or time.visits or time.windows or len(time.constraints) > 1:
        return
    parse = _read_words(found, time, _lexicon(layer))
    if parse is not None:
        yield from _metric_plans(family, found, layer, parse, time)


def _measure_words(plan: OpsPlan, layer: SemanticLayer) -> str:
    info = measure_info(layer, plan.measure)
    text = info.measure.description or plan.measure.replace("_", " ")
    if plan.aggregate and text.startswith("average "):
        text = f"{_AGG_WORDS[plan.aggregate]} {text[len('average ') :]}"
    if plan.unit and info.unit and plan.unit != info.unit:
        text = text.replace(f"in {info.unit}", f"in {plan.unit}")
    if plan.ratio:
        text = text.replace("percentage", "fraction", 1)
    return text


def _by(plan: OpsPlan, layer: SemanticLayer) -> str:
    parts = []
    for name in plan.dimensions:
        if name.startswith("@"):
            bucket = name[1:]
            parts.append({"daytype": "weekday or weekend", "weekday": "day of the week",
                          "hour": "hour of the day"}.get(bucket, bucket))  # fmt: skip
        else:
            dimension = layer.dimensions[name]
            parts.append(dimension.description or name.replace("_", " "))
    return (" per " + " and ".join(parts)) if parts else ""


def _of_values(plan: QueryPlan) -> str:
    return "".join(f" for {f.value}" for f in plan.filters)


def _whens(plan: QueryPlan) -> str:
    return "".join(f", {_when(t)}" for t in plan.time)


def _describe_metric(plan: QueryPlan) -> str:
    if not isinstance(plan, OpsPlan):
        return ""
    layer = semantic_layer()
    return f"Showing the {_measure_words(plan, layer)}{_of_values(plan)}{_by(plan, layer)}{_whens(plan)}."


# --- ops.census ----------------------------------------------------------------------------------

# hospital.json's census convention: patients in a unit at an instant t are its transfers rows with
# intime <= t and (outtime IS NULL or outtime > t), eventtype <> 'discharge'. Occupancy divides by
# the unit's beds.
_CENSUS_EVENT: Final = "transfer"
_OUT: Final = "outtime"
_EVENTTYPE: Final = "eventtype"
_DISCHARGE: Final = "discharge"
_UNITS_TABLE: Final = "care_units"
_BEDS: Final = "beds"

_CENSUS_PHRASES: Final = _labelled(
    ("x:census", "census|midnight census|bed census|bed state|who s in|who is in|whos in|who s|who is|whos"
                 "|in house|beds occupied|occupied beds|occupied|bed status|inpatient census|ward census"
                 "|unit census"),
    ("x:occupancy", "occupancy|bed occupancy|occupancy rate|occupancy %|% occupied|percent occupied|% full"
                    "|how full|percent full|occupancy percent|occupancy percentage|% occupancy"
                    "|% bed occupancy"),
    ("x:now", "now|right now|currently|current|at present|presently|today|tonight|at midnight|midnight"
              "|as of now|at the moment|as we speak|at this moment|as of today"),
    ("cue", "which|in which|in what|what"),
)  # fmt: skip
_CENSUS_NEUTRAL: Final = _NEUTRAL | frozenset(
    {"ward", "unit", "bed", "beds", "in", "inpatients", "now", "house"}
)


def _read_census(family: _OpsFamily, found: Found, layer: SemanticLayer) -> Iterator[OpsPlan]:
    event = layer.events.get(_CENSUS_EVENT)
    if found.patients or event is None or event.name_column is None:
        return
    time = _read_time(found, census=True)
    if time.ordinals or time.visits or time.windows or len(time.constraints) > 1:
        return
    instant = ""
    if time.constraints:
        t = time.constraints[0]
        if t.kind != "abs" or t.op != "in" or t.year is None or t.month is None or t.day is None:
            return  # a census is taken at an instant, not over a period
        instant = f"{t.year:04d}-{t.month:02d}-{t.day:02d} 00:00:00"
    parse = _read_words(found, time, _lexicon(layer), _CENSUS_PHRASES, _CENSUS_NEUTRAL, measures=False)
    if parse is None or parse.of("t:") or parse.of("unit:") or parse.of("ratio") or parse.aggregate:
        return
    if not _findings_ok(found, parse, time, (*_REFUSED, "period", "elapsed_unit")):
        return
    words = set(parse.of("x:"))
    occupancy = "occupancy" in words or bool(parse.of("percent"))
    dimensions = _dimensions(layer, event.table, parse)
    if dimensions is None or len(dimensions) > 1 or len(parse.values) > 1 or (dimensions and parse.values):
        return
    units = [f for _, readings in parse.values for f in readings if f.kind == "careunit"]
    if parse.values and not units:
        return
    named = "census" in words or occupancy
    if not named and not (("now" in words or instant) and (units or dimensions)):
        return  # "patients in the micu" without "now" or a date asks about stays, not a census
    unit_dimension = [
        d.name for d in layer.dimensions.values() if (d.table, d.column) == (event.table, event.name_column)
    ]
    if occupancy and dimensions and dimensions[0] not in unit_dimension:
        return  # beds are counted per unit
    if not dimensions and not units and occupancy:
        return
    choices: list[Filter | None] = [*units] or [None]
    for unit in choices:
        yield OpsPlan(
            family=family.name,
            kind="operational",
            event=_CENSUS_EVENT,
            filters=(unit,) if unit is not None else (),
            dimensions=tuple(dimensions),
            instant=instant,
            time=time.constraints,
            option="occupancy" if occupancy else "census",
        )


def _instant(ctx: Ctx, plan: OpsPlan) -> exp.Expr:
    text = plan.instant or ctx.now
    if ctx.pg:
        return exp.Cast(this=lit(text), to=exp.DataType.build("timestamp"))
    return lit(text)


def _build_census(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if not isinstance(plan, OpsPlan):
        raise CompileError("not an analytics plan")
    event = layer.events.get(_CENSUS_EVENT)
    if event is None or event.name_column is None:
        raise CompileError("the semantic layer has no care unit stays")
    table = event.table
    unit = col(event.column(event.name_column))
    at = _instant(ctx, plan)
    out = col(event.column(_OUT))
    conditions: list[exp.Expr] = [
        exp.Not(this=exp.Is(this=unit.copy(), expression=exp.Null())),
        exp.NEQ(this=col(event.column(_EVENTTYPE)), expression=lit(_DISCHARGE)),
        exp.LTE(this=col(event.column(event.time)), expression=at.copy()),
        exp.Paren(
            this=exp.or_(exp.Is(this=out.copy(), expression=exp.Null()), exp.GT(this=out, expression=at))
        ),
    ]
    for f in plan.filters:
        conditions.append(value_condition(event, f.value))
    count: exp.Expr = exp.Count(this=exp.Distinct(expressions=[col(event.column("subject_id"))]))
    groups = [_dimension_sql(layer.dimensions[d]) for d in plan.dimensions]
    hops = _joins(layer, table, [layer.dimensions[d].table for d in plan.dimensions])
    if plan.option == "occupancy" and plan.filters and not groups:
        # One unit: its beds from the units table, so an empty unit reads 0%.
        units = select(col(f"{_UNITS_TABLE}.{_BEDS}")).from_(_UNITS_TABLE)
        units = units.where(
            exp.EQ(this=col(f"{_UNITS_TABLE}.{event.name_column}"), expression=lit(plan.filters[0].value))
        )
        share: exp.Expr = exp.Div(
            this=exp.Mul(this=lit(100.0), expression=count), expression=units.subquery()
        )
        if ctx.pg:
            share = exp.Cast(this=share, to=exp.DataType.build("double"))
        return select(share).from_(table).where(exp.and_(*conditions))
    if plan.option == "occupancy":
        beds = col(f"{_UNITS_TABLE}.{_BEDS}")
        if not any(h.table == _UNITS_TABLE for h in hops):
            path = join_path(layer, table, _UNITS_TABLE)
            if path is None:
                raise CompileError("care units have no beds to divide by")
            hops += [h for h in path if h.table not in {x.table for x in hops}]
        value: exp.Expr = exp.Div(this=exp.Mul(this=lit(100.0), expression=count), expression=beds.copy())
        if ctx.pg:
            value = exp.Cast(this=value, to=exp.DataType.build("double"))
        query = _with_joins(select(*[g.copy() for g in groups], value).from_(table), hops)
        query = query.where(exp.and_(*conditions)).group_by(*[g.copy() for g in groups], beds)
        return query.order_by(*[g.copy() for g in groups]) if groups else query
    query = _with_joins(select(*[g.copy() for g in groups], count).from_(table), hops).where(
        exp.and_(*conditions)
    )
    if groups:
        query = query.group_by(*[g.copy() for g in groups]).order_by(*[g.copy() for g in groups])
    return query


def _describe_census(plan: QueryPlan) -> str:
    if not isinstance(plan, OpsPlan):
        return ""
    layer = semantic_layer()
    at = f"at {plan.instant[:10]} 00:00" if plan.instant else "now"
    where = f" in {plan.filters[0].value}" if plan.filters else _by(plan, layer)
    if plan.option == "occupancy":
        return f"Showing bed occupancy (% of beds with a patient){where} {at}."
    return f"Counting patients in care{where} {at} (stays begun and not ended, discharges excluded)."


# --- ops.readmissions ----------------------------------------------------------------------------

# Readmission: a later admission of the same patient that starts within N days of an admission's
# discharge (hospital.json: a2.admittime > a1.dischtime and julianday(a2) - julianday(a1) <= N).
_ADMISSION_EVENT: Final = "admission"
_DISCHTIME: Final = "dischtime"
_DEFAULT_DAYS: Final = 30

_READMISSION_PHRASES: Final = _labelled(
    ("x:readmit", "readmission*|readmit*|re admission*|re admit*|bounce back*|bouncebacks|bounceback*"
                  "|returned within|came back within|return within|readmision*|readmisson*|readmissoin*"),
    ("x:rate", "rate|rates|%|percent|percentage|pct|proportion|fraction|share"),
    ("x:list", "list|which patients|which pts|who|who was|who were|show the patients|names|ids|subject ids"
               "|patient ids"),
    ("x:patients", "how many patients|how many pts|number of patients|number of pts|count of patients"
                   "|unique patients|distinct patients|patient count|no of patients|no of pts"),
    ("x:discharge", "of discharge|after discharge|post discharge|from discharge|following discharge"
                    "|of being discharged|discharge"),
)  # fmt: skip
_DAYS_RX: Final = re.compile(
    r"\b(\d{1,3}|seven|fourteen|thirty|ninety|sixty)[ -]?(?:days?|d|dy)\b", re.IGNORECASE
)
_DAY_WORDS: Final = {"seven": 7, "fourteen": 14, "thirty": 30, "sixty": 60, "ninety": 90}


def _read_readmissions(family: _OpsFamily, found: Found, layer: SemanticLayer) -> Iterator[OpsPlan]:
    if found.patients or found.spans or _ADMISSION_EVENT not in layer.events:
        return
    time = _read_time(found)
    if time.ordinals or time.visits or len(time.windows) > 1 or len(time.constraints) > 1:
        return
    days = 0
    spans = list(time.spans)
    for window in time.windows:
        if window.amount is None or window.unit not in ("day", "week"):
            return
        days = window.amount * (7 if window.unit == "week" else 1)
    for m in _DAYS_RX.finditer(found.text):
        if any(m.start() < e and s < m.end() for s, e in spans):
            continue
        token = m.group(1).lower()
        found_days = _DAY_WORDS.get(token) or int(token)
        if days and found_days != days:
            return
        days = found_days
        spans.append((m.start(), m.end()))
    time = replace(time, spans=tuple(spans))
    parse = _read_words(found, time, _lexicon(layer), _READMISSION_PHRASES, measures=False)
    if parse is None or parse.of("unit:") or parse.of("ratio") or parse.aggregate:
        return
    if not _findings_ok(found, parse, time, (*_REFUSED, "aggregate")):
        return
    words = set(parse.of("x:"))
    if "readmit" not in words:
        return
    output = (
        "list"
        if "list" in words
        else "rate"
        if "rate" in words or parse.of("percent")
        else ("patients" if "patients" in words else "count")
    )
    dimensions = _dimensions(layer, layer.events[_ADMISSION_EVENT].table, parse)
    if dimensions is None:
        return
    ordered = _ordered_dimensions(parse, dimensions)
    if len(ordered) > 2 or sum(d.startswith("@") for d in ordered) > 1 or (output == "list" and ordered):
        return
    yield OpsPlan(
        family=family.name,
        kind="operational",
        event=_ADMISSION_EVENT,
        dimensions=ordered,
        time=time.constraints,
        days=days or _DEFAULT_DAYS,
        option=output,
        period=next((d[1:] for d in ordered if d.startswith("@")), ""),
    )


def _readmitted(ctx: Ctx, table: str, admit: str, days: int) -> exp.Expr:
    """EXISTS a later admission of the same patient starting within `days` of this one's discharge."""
    later = exp.Table(this=exp.to_identifier(table), alias=exp.TableAlias(this=exp.to_identifier("a2")))
    start = exp.column(admit, table="a2")
    discharged = col(f"{table}.{_DISCHTIME}")
    inner = (
        select(lit(1))
        .from_(later)
        .where(
            exp.and_(
                exp.EQ(this=exp.column("subject_id", table="a2"), expression=col(f"{table}.subject_id")),
                exp.GT(this=start.copy(), expression=discharged.copy()),
                exp.LTE(this=days_between(ctx, start.copy(), discharged.copy()), expression=lit(days)),
            )
        )
    )
    return exp.Exists(this=inner)


def _build_readmissions(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if not isinstance(plan, OpsPlan):
        raise CompileError("not an analytics plan")
    event = layer.events.get(_ADMISSION_EVENT)
    if event is None:
        raise CompileError("the semantic layer has no admissions")
    table = event.table
    discharged = col(f"{table}.{_DISCHTIME}")
    readmitted = _readmitted(ctx, table, event.time, plan.days)
    groups = _group_exprs(ctx, layer, plan, discharged)
    hops = _joins(layer, table, [layer.dimensions[d].table for d in plan.dimensions if not d.startswith("@")])
    conditions: list[exp.Expr] = [exp.Not(this=exp.Is(this=discharged.copy(), expression=exp.Null()))]
    conditions += [_time_sql(ctx, t, discharged.copy()) for t in plan.time]
    value: exp.Expr
    if plan.option == "rate":
        flag = exp.Case(ifs=[exp.If(this=readmitted, true=lit(1))], default=lit(0))
        value = exp.Div(
            this=exp.Mul(this=lit(100.0), expression=exp.Sum(this=flag)),
            expression=exp.Count(this=exp.Star()),
        )
        if ctx.pg:
            value = exp.Cast(this=value, to=exp.DataType.build("double"))
    else:
        conditions.append(readmitted)
        if plan.option == "list":
            query = select(col(f"{table}.subject_id")).distinct().from_(table).where(exp.and_(*conditions))
            return query.order_by(col(f"{table}.subject_id"))
        value = (
            exp.Count(this=exp.Distinct(expressions=[col(f"{table}.subject_id")]))
            if plan.option == "patients"
            else exp.Count(this=exp.Star())
        )
    query = _with_joins(select(*[g.copy() for g in groups], value).from_(table), hops).where(
        exp.and_(*conditions)
    )
    if groups:
        query = query.group_by(*[g.copy() for g in groups]).order_by(*[g.copy() for g in groups])
    return query


def _describe_readmissions(plan: QueryPlan) -> str:
    if not isinstance(plan, OpsPlan):
        return ""
    layer = semantic_layer()
    what = {
        "rate": "the percentage of discharged admissions followed by a readmission",
        "patients": "patients with a readmission",
        "list": "the patients with a readmission",
        "count": "discharged admissions followed by a readmission",
    }[plan.option]
    verb = "Listing" if plan.option == "list" else "Showing" if plan.option == "rate" else "Counting"
    when = "".join(f", discharged {_when(t)}" for t in plan.time)
    return f"{verb} {what} within {plan.days} days of discharge{_by(plan, layer)}{when}."


# --- ops.compare ---------------------------------------------------------------------------------

_COMPARE_PHRASES: Final = _labelled(
    ("x:vs", "vs|versus|v|compared to|compared with|compare|comparison|against|than|and|or|to"),
    ("x:more", "more|higher|greater|bigger|larger|increase|increased|up"),
    ("x:less", "fewer|less|lower|smaller|decrease|decreased|down"),
)


def _read_compare(family: _OpsFamily, found: Found, layer: SemanticLayer) -> Iterator[OpsPlan]:
    if found.patients:
        return
    time = _read_time(found)
    if time.ordinals or time.visits or time.windows or len(time.constraints) > 2:
        return
    parse = _read_words(found, time, _lexicon(layer), _COMPARE_PHRASES)
    if parse is None or "vs" not in parse.of("x:") or parse.groups or parse.of("t:"):
        return
    if len(time.constraints) < 2:
        yield from _compare_groups(family, found, layer, parse, time)
        return
    words = set(parse.of("x:"))
    if "more" in words and "less" in words:
        return
    option = "more" if "more" in words else "less" if "less" in words else "both"
    if option != "both" and "than" not in found.text.lower().split():
        return
    for plan in _metric_plans(family, found, layer, parse, time, kind="compare"):
        yield replace(plan, option=option)


def _group_dimension(layer: SemanticLayer, table: str, kind: str) -> str | None:
    """The dimension naming values of a kind (drug names, lab labels) nearest the measure's table."""
    columns: set[tuple[str, str]] = set()
    for event in _event_kinds(layer).get(kind, []):
        if event.name_column is not None:
            columns.add((event.table, event.name_column))
        if event.dictionary is not None and event.label is not None:
            columns.add((event.dictionary[0], event.label))
    reachable = [
        (len(path), d.name)
        for d in layer.dimensions.values()
        if (d.table, d.column) in columns
        and not d.bins
        and (path := join_path(layer, table, d.table)) is not None
    ]
    if not reachable:
        return None
    best = min(reachable)[0]
    nearest = [name for length, name in reachable if length == best]
    return nearest[0] if len(nearest) == 1 else None


def _compare_groups(
    family: _OpsFamily, found: Found, layer: SemanticLayer, parse: _Parse, time: _Time
) -> Iterator[OpsPlan]:
    """One measure for two named values of a kind, side by side: "heparin vs enoxaparin orders"."""
    if len(parse.values) != 2 or set(parse.of("x:")) - {"vs"}:
        return
    (first, left), (_, right) = parse.values
    kinds = {f.kind for f in left} & {f.kind for f in right}
    for kind in sorted(kinds):
        pair = (next(f for f in left if f.kind == kind), next(f for f in right if f.kind == kind))
        if pair[0].value == pair[1].value:
            continue
        grouped = _Parse(labels=[*parse.labels, ("dim", first)], spans=parse.spans, aggregate=parse.aggregate)
        name = _measure_name(layer, _with_values(parse, grouped))
        if name is None:
            continue
        info = measure_info(layer, name)
        if info.needs and info.needs != kind:
            continue  # "mean potassium for heparin vs enoxaparin" is no comparison of two groups
        dimension = _group_dimension(layer, info.measure.table, kind)
        if dimension is None:
            continue
        grouped.groups = [(dimension,)]
        for plan in _metric_plans(family, found, layer, grouped, time, kind="compare", measure=name):
            yield replace(plan, filters=pair, option="groups")


def _with_values(parse: _Parse, grouped: _Parse) -> _Parse:
    """The grouped reading, with the original values for choosing an implicit value measure."""
    return _Parse(
        labels=grouped.labels, spans=grouped.spans, values=parse.values, aggregate=grouped.aggregate
    )


def _build_compare(plan: QueryPlan, ctx: Ctx, layer: SemanticLayer) -> exp.Query:
    if isinstance(plan, OpsPlan) and plan.option == "groups":
        return _metric_select(plan, ctx, layer, plan.time)
    if not isinstance(plan, OpsPlan) or len(plan.time) != 2:
        raise CompileError("a comparison needs two periods")
    first, second = (_metric_select(plan, ctx, layer, (t,)).subquery() for t in plan.time)
    if plan.option == "both":
        return select(first, second)
    op = exp.GT if plan.option == "more" else exp.LT
    # 1 or 0 in both dialects (PostgreSQL would answer a boolean).
    return select(exp.Case(ifs=[exp.If(this=op(this=first, expression=second), true=lit(1))], default=lit(0)))


def _describe_compare(plan: QueryPlan) -> str:
    if not isinstance(plan, OpsPlan):
        return ""
    layer = semantic_layer()
    if plan.option == "groups":
        groups = " and ".join(f.value for f in plan.filters)
        return f"Showing the {_measure_words(plan, layer)} for {groups}, side by side{_whens(plan)}."
    if len(plan.time) != 2:
        return ""
    what = f"the {_measure_words(plan, layer)}{_of_values(plan)}"
    first, second = (_when(t) for t in plan.time)
    if plan.option == "both":
        return f"Showing {what} {first}, then {second}."
    word = "greater" if plan.option == "more" else "smaller"
    return f"Checking whether {what} {first} is {word} than {second}."


# --- Registration --------------------------------------------------------------------------------

# The Specs say what each family takes; binding is done by the readers above, which read the words
# of the question against the semantic layer and refuse anything they cannot honour.
_ANY_VALUE: Final = ("lab", "chart", "drug", "diagnosis", "procedure", "careunit", "specimen", "test")
_SPEC: Final = Spec(
    patient=False, optional_values=_ANY_VALUE, patterns={"aggregate": "optional", "period": "optional"}
)

register(_OpsFamily("ops.metric", "aggregate", _SPEC, _build_metric, _describe_metric, reader=_read_metric))
register(_OpsFamily(
    "ops.census", "operational", Spec(patient=False, optional_values=("careunit",)), _build_census,
    _describe_census, reader=_read_census,
))  # fmt: skip
register(_OpsFamily(
    "ops.readmissions", "operational",
    Spec(patient=False, window="optional", patterns={"period": "optional"}), _build_readmissions,
    _describe_readmissions, reader=_read_readmissions,
))  # fmt: skip
register(_OpsFamily(
    "ops.compare", "compare", replace(_SPEC, max_time=2), _build_compare, _describe_compare,
    reader=_read_compare,
))  # fmt: skip
