"""Rule patterns for what questions say with small closed vocabularies.

Patient identifiers, comparisons with a number, aggregate functions, top-k ranks, repeat counts,
age groups, elapsed-time units, grouping periods and survival periods. Like time constraints, each
finding keeps its span so the interpretation can show what was understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "fifty": 50, "hundred": 100,
}  # fmt: skip
_COUNT = r"(\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|fifty|hundred)"


def number(token: str) -> int:
    """A count written in digits or in words ("five")."""
    return _NUMBER_WORDS.get(token.lower()) or int(token)


@dataclass(frozen=True)
class Finding:
    """One understood piece: `kind` names what, `value` its normalised value, span in the question."""

    kind: str
    value: str | int | float | tuple[int, int | None]
    start: int
    end: int
    op: str = ""


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("".join(parts), re.IGNORECASE)


_PATIENT = _rx(
    r"\b(?:patient|pt|subject|mrn|patient id|subject id|subject_id)",
    r"(?:\s*(?:id|number|no\.?|#))?\s*:?\s*#?(\d{4,10})\b",
)
_COMPARISONS: list[tuple[str, str]] = [
    (r"greater than or equal to|at least|no less than|not less than|>=|≥", ">="),
    (r"less than or equal to|at most|no more than|not more than|<=|≤", "<="),
    (r"greater than|more than|higher than|larger than|above|over|exceed(?:s|ed|ing)?|>", ">"),
    (r"less than|lower than|smaller than|below|under|<", "<"),
    (r"equal to|equals|exactly|=", "="),
]
_COMPARISON = [(_rx(r"(?<![\w>=<])(", words, r")\s*(-?\d+(?:\.\d+)?)\b"), op) for words, op in _COMPARISONS]
_AGGREGATES = {
    "maximum": "MAX", "max": "MAX", "highest": "MAX", "peak": "MAX", "largest": "MAX",
    "minimum": "MIN", "min": "MIN", "lowest": "MIN", "smallest": "MIN",
    "average": "AVG", "mean": "AVG", "avg": "AVG",
    "total": "SUM", "sum": "SUM", "cumulative": "SUM",
}  # fmt: skip
_COUNTING = _rx(r"\s+(?:number|count|amount of times)\b")
_AGGREGATE = _rx(r"\b(", "|".join(_AGGREGATES), r")\b")
_RANK = _rx(
    r"\b(?:top|the(?!\s+(?:one|a|an)\b)|which|most (?:common|frequent|often)|highest|leading|first|"
    r"ranked (?:at|in the top)?)\s*",
    _COUNT,
    r"\b(?![\s-]*(?:day|week|month|year|hour|time)s?\b)"
    r"|\b",
    _COUNT,
    r"\s+(?:of the\s+)?(?:most|top|leading|highest|commonest)\b",
)
_TIMES = _rx(
    r"\b",
    _COUNT,
    r"\s+(?:or more\s+)?times?\b|\b(?:at least|more than)\s+",
    _COUNT,
    r"\s+times?\b",
    r"|\b(once|twice|thrice)(\s+or more)?\b",
)
_AGE_DECADE = _rx(r"\b(?:in (?:their|the) )?(\d)0s\b|\baged? (\d)0-(\d)9\b")
_ADVERB_TIMES = {"once": 1, "twice": 2, "thrice": 3}
_AGE_ABOVE = _rx(
    r"\b(?:aged? |age )?(\d{1,3})\s*(?:years? old )?",
    r"(?:or (?:above|older|over|more)|and (?:above|older|over)|\+)",
)
_ELAPSED = _rx(
    r"\b(hours?|days?|minutes?|weeks?)\b(?=[^?]*\b(?:since|elapsed|passed|ago|been)\b)"
    r"|\b(?:since|elapsed|passed)\b[^?]*\b(hours?|days?)\b"
)
_PERIOD_UNITS = {
    "daily": "day", "per day": "day", "by day": "day",
    "weekly": "week", "per week": "week", "by week": "week",
    "monthly": "month", "per month": "month", "by month": "month",
    "yearly": "year", "annual": "year", "annually": "year", "per year": "year", "by year": "year",
}  # fmt: skip
_PERIOD = _rx(r"\b(", "|".join(sorted(_PERIOD_UNITS, key=len, reverse=True)), r")\b")
_SURVIVAL = _rx(r"\b(\d{1,2}|one|two|three|six)[- ](month|year)\b")


def find_patterns(question: str) -> list[Finding]:
    """Every closed-vocabulary finding in the question, in order of appearance."""
    return list(_find_patterns(question))


# Families read the same question's findings many times while binding: remember the last ones.
@lru_cache(maxsize=256)
def _find_patterns(question: str) -> tuple[Finding, ...]:
    found: list[Finding] = []
    for m in _PATIENT.finditer(question):
        found.append(Finding("patient", int(m.group(1)), m.start(), m.end()))
    taken: list[tuple[int, int]] = []
    for pattern, op in _COMPARISON:
        for m in pattern.finditer(question):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            found.append(Finding("comparison", float(m.group(2)), m.start(), m.end(), op=op))
    for m in _AGGREGATE.finditer(question):
        if _COUNTING.match(question, m.end()):
            continue  # "the total number of visits" counts; it sums nothing
        previous = found[-1] if found else None
        value = _AGGREGATES[m.group(1).lower()]
        if (
            previous is not None
            and previous.kind == "aggregate"
            and previous.value == value
            and not question[previous.end : m.start()].strip()
        ):
            # "sum total", "total sum": one aggregate said twice.
            found[-1] = Finding("aggregate", value, previous.start, m.end())
            continue
        found.append(Finding("aggregate", _AGGREGATES[m.group(1).lower()], m.start(), m.end()))
    for m in _RANK.finditer(question):
        token = m.group(1) or m.group(2)
        found.append(Finding("rank", number(token), m.start(), m.end()))
    for m in _TIMES.finditer(question):
        token = m.group(1) or m.group(2) or str(_ADVERB_TIMES[m.group(3).lower()])
        at_least = "or more" in m.group(0).lower() or m.group(2) is not None
        found.append(Finding("times", number(token), m.start(), m.end(), op=">=" if at_least else "="))
    for m in _AGE_DECADE.finditer(question):
        decade = int(m.group(1) or m.group(2)) * 10
        found.append(Finding("age", (decade, decade + 9), m.start(), m.end()))
    for m in _AGE_ABOVE.finditer(question):
        found.append(Finding("age", (int(m.group(1)), None), m.start(), m.end()))
    for m in _ELAPSED.finditer(question):
        group = 1 if m.group(1) else 2
        unit = m.group(group).lower().rstrip("s")
        # Only the unit word is the finding's span: the words before it may name a value.
        found.append(Finding("elapsed_unit", unit, m.start(group), m.end(group)))
    for m in _PERIOD.finditer(question):
        found.append(Finding("period", _PERIOD_UNITS[m.group(1).lower()], m.start(), m.end()))
    for m in _SURVIVAL.finditer(question):
        if re.search(r"surviv|mortality|death|die", question, re.IGNORECASE):
            found.append(
                Finding("survival", f"{number(m.group(1))}-{m.group(2).lower()}", m.start(), m.end())
            )
    # "2 or more procedures" counts procedures: an age group is at least 10 or says "age"/"old".
    found = [
        f
        for f in found
        if f.kind != "age"
        or not isinstance(f.value, tuple)
        or f.value[0] >= 10
        or re.search(r"\bage|\bold\b", question[f.start : f.end], re.IGNORECASE)
    ]
    ages = [(f.start, f.end) for f in found if f.kind == "age"]
    times = [(f.start, f.end) for f in found if f.kind == "times"]
    # "the 60 or above" is an age group, not a top 60; "at least 2 times" a repeat, not a comparison.
    found = [
        f
        for f in found
        if not (f.kind == "rank" and any(f.start < e and s < f.end for s, e in ages))
        and not (f.kind == "comparison" and any(f.start < e and s < f.end for s, e in times))
    ]
    return tuple(sorted(found, key=lambda f: (f.start, f.kind)))


def first(findings: list[Finding], kind: str) -> Finding | None:
    return next((f for f in findings if f.kind == kind), None)
