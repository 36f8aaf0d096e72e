"""Time constraints in a question: absolute, relative to now, relative to visits, and between events.

Rule patterns over the question's text. Each constraint keeps the span it was read from, so the
interpretation can say what was understood and the parser can tell what is left unexplained.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Final

from nlquery.patterns import number

_NUM = r"(\d{1,4}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT = r"(day|week|month|year)s?"
_MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
         ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
         ("october", "oct"), ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}  # fmt: skip


@dataclass(frozen=True)
class TimeConstraint:
    """One understood time constraint.

    kind is one of:
    - "abs": a calendar period; `op` is "in" or "since"; `year`, `month`, `day` (any may be None;
      `relative_year`/`relative_month` of 0 or -1 mean this/last year or month, for "11/this year").
    - "rel": relative to now; `op` "since" (the last N units: `amount`, `unit`) or "in" (this or the
      previous `unit`: `amount` 0 or 1).
    - "visit": relative to a visit; `visit` "hospital" or "icu", `which` "first", "last" or "current".
    - "within": between two events; `unit` "hospital" (same visit), "day", "month", "same" (same
      time) with `amount` None, or a window of `amount` `unit`s after the first event.
    - "ordinal": which measurement; `which` "first", "last", "second", "second_to_last".
    """

    kind: str
    start: int = 0
    end: int = 0
    op: str = ""
    year: int | None = None
    month: int | None = None
    day: int | None = None
    relative_year: int | None = None
    relative_month: int | None = None
    amount: int | None = None
    unit: str = ""
    visit: str = ""
    which: str = ""
    text: str = field(default="", compare=False)


_VISIT_NOUN = r"(?:visit|stay|encounter|admission|hospitali[sz]ation|episode)s?"
_HOSPITAL_STAY = r"(?:hospital (?:visit|stay|encounter|admission)|admission|visit|hospitali[sz]ation)"
_PREP = r"(since|in|on|during|from|after|throughout)?\s*"
_ORDINALS = (
    r"second to last|second-to-last|penultimate|first|second|last|latest|most recent|final|initial|earliest"
)


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("".join(parts))


# Patterns in priority order: a span matched by one is not read again by a later one.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # Between events.
    ("within_hosp", _rx(r"\b(?:within|during|in|on) the same ", _HOSPITAL_STAY, r"\b")),
    ("within_same_time", _rx(r"\bat the same time\b|\bsimultaneously\b")),
    ("within_same_unit", _rx(r"\b(?:within|during|in|on) the same (day|month)\b")),
    ("within_n", _rx(r"\bwithin (?:the (?:next|following) )?", _NUM, " ", _UNIT, r"\b")),
    # Mixed: a day or month in this/last year or month ("06/13/this year", "11/last year", "this month/27").
    ("mix_md_year", _rx(r"\b(\d{1,2})/(\d{1,2})/(this|last) year\b")),
    ("mix_m_year", _rx(r"\b(\d{1,2})/(this|last) year\b")),
    ("mix_d_month", _rx(r"\b(this|last) month/(\d{1,2})\b")),
    # Absolute dates.
    ("abs_mdy", _rx(r"\b", _PREP, r"(\d{1,2})/(\d{1,2})/(\d{4})\b")),
    ("abs_iso", _rx(r"\b", _PREP, r"(\d{4})-(\d{2})-(\d{2})\b")),
    ("abs_my", _rx(r"\b", _PREP, r"(\d{1,2})/(\d{4})\b")),
    ("abs_month_name", _rx(r"\b", _PREP, "(", "|".join(_MONTHS), r")\.? (?:of )?(\d{4})\b")),
    ("abs_year", _rx(r"\b(since|in|during|from|after|throughout)(?: the year| year)? (\d{4})\b")),
    # Relative to now.
    (
        "rel_since",
        _rx(
            r"\b(?:since|from|after|starting) ", _NUM, " ", _UNIT, r" ago\b",
            r"|\b(?:in|over|during|within) the (?:last|past|previous) ", _NUM, " ", _UNIT, r"\b",
        ),
    ),
    ("rel_bare_since", _rx(r"\b", _NUM, " ", _UNIT, r" ago\b")),
    ("rel_this", _rx(r"\b(?:during |in |for |over )?(?:the )?(?:this|current|present) (year|month)\b")),
    ("rel_last", _rx(r"\b(?:during |in |for |over )?(?:the )?(?:last|previous|past|prior) (year|month)\b")),
    ("rel_today", _rx(r"\btoday\b")),
    ("rel_yesterday", _rx(r"\byesterday\b")),
    # Relative to visits.
    (
        "visit",
        _rx(
            r"\b(first|1st|last|latest|final|most recent|previous|current|this|present|ongoing)\s+",
            r"(hospital|icu|intensive care unit|intensive care)\s+", _VISIT_NOUN, r"\b",
        ),
    ),
    ("visit_current_plain", _rx(r"\b(?:currently|still) (?:in|admitted to) (?:the )?(hospital|icu)\b")),
    # "the current admission", "their first hospitalization": a hospital visit without the word hospital.
    (
        "visit_admission",
        _rx(
            r"\b(first|1st|last|latest|final|most recent|previous|current|this|present|ongoing)\s+",
            r"(admission|hospitali[sz]ation|inpatient stay|encounter)\b",
        ),
    ),
    # Which measurement.
    ("ordinal", _rx(r"\b(", _ORDINALS, r")\b")),
]  # fmt: skip

_WHICH = {
    "first": "first", "1st": "first", "initial": "first", "earliest": "first",
    "last": "last", "latest": "last", "most recent": "last", "final": "last", "previous": "last",
    "current": "current", "this": "current", "present": "current", "ongoing": "current",
    "second": "second", "second to last": "second_to_last", "second-to-last": "second_to_last",
    "penultimate": "second_to_last",
}  # fmt: skip


def _op(word: str | None) -> str:
    return "since" if word in ("since", "from", "after") else "in"


def _build(name: str, m: re.Match[str]) -> TimeConstraint | None:
    g = m.groups()
    if name == "within_hosp":
        return TimeConstraint("within", unit="hospital")
    if name == "within_same_time":
        return TimeConstraint("within", unit="same")
    if name == "within_same_unit":
        return TimeConstraint("within", unit=g[0])
    if name == "within_n":
        return TimeConstraint("within", amount=number(g[0]), unit=g[1])
    if name == "mix_md_year":
        month, day = int(g[0]), int(g[1])
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        rel = 0 if g[2] == "this" else -1
        return TimeConstraint("abs", op="in", month=month, day=day, relative_year=rel)
    if name == "mix_m_year":
        month = int(g[0])
        if not 1 <= month <= 12:
            return None
        rel = 0 if g[1] == "this" else -1
        return TimeConstraint("abs", op="in", month=month, relative_year=rel)
    if name == "mix_d_month":
        day = int(g[1])
        if not 1 <= day <= 31:
            return None
        rel = 0 if g[0] == "this" else -1
        return TimeConstraint("abs", op="in", day=day, relative_month=rel)
    if name in ("abs_mdy", "abs_iso"):
        if name == "abs_mdy":
            month, day, year = int(g[1]), int(g[2]), int(g[3])
        else:
            year, month, day = int(g[1]), int(g[2]), int(g[3])
        if not _real_date(year, month, day):
            return None
        return TimeConstraint("abs", op=_op(g[0]), year=year, month=month, day=day)
    if name == "abs_my":
        month, year = int(g[1]), int(g[2])
        if not 1 <= month <= 12:
            return None
        return TimeConstraint("abs", op=_op(g[0]), year=year, month=month)
    if name == "abs_month_name":
        return TimeConstraint("abs", op=_op(g[0]), year=int(g[2]), month=_MONTHS[g[1]])
    if name == "abs_year":
        return TimeConstraint("abs", op=_op(g[0]), year=int(g[1]))
    if name in ("rel_since", "rel_bare_since"):
        amount, unit = (g[0], g[1]) if g[0] is not None else (g[2], g[3])
        return TimeConstraint("rel", op="since", amount=number(amount), unit=unit)
    if name == "rel_this":
        return TimeConstraint("rel", op="in", amount=0, unit=g[0])
    if name == "rel_last":
        return TimeConstraint("rel", op="in", amount=1, unit=g[0])
    if name == "rel_today":
        return TimeConstraint("rel", op="in", amount=0, unit="day")
    if name == "rel_yesterday":
        return TimeConstraint("rel", op="in", amount=1, unit="day")
    if name == "visit":
        visit = "hospital" if g[1] == "hospital" else "icu"
        return TimeConstraint("visit", visit=visit, which=_WHICH[g[0]])
    if name == "visit_admission":
        return TimeConstraint("visit", visit="hospital", which=_WHICH[g[0]])
    if name == "visit_current_plain":
        return TimeConstraint("visit", visit="hospital" if g[0] == "hospital" else "icu", which="current")
    if name == "ordinal":
        return TimeConstraint("ordinal", which=_WHICH[g[0]])
    raise AssertionError(name)


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


_DATE_LIKE: Final = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b|\b(\d{1,2})/(\d{1,2})/(\d{4})\b")


def impossible_dates(question: str) -> list[str]:
    """Dates written in full (2026-02-30, 02/30/2026) that no calendar has."""
    found: list[str] = []
    for match in _DATE_LIKE.finditer(question):
        if match[1]:
            year, month, day = int(match[1]), int(match[2]), int(match[3])
        else:
            month, day, year = int(match[4]), int(match[5]), int(match[6])
        if not _real_date(year, month, day):
            found.append(match[0])
    return found


def find_time_constraints(question: str) -> list[TimeConstraint]:
    """Every time constraint in the question, in the order they appear; spans never overlap."""
    text = question.lower()
    taken: list[tuple[int, int]] = []
    found: list[TimeConstraint] = []
    for name, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            built = _build(name, match)
            if built is None:
                continue
            constraint = replace(built, start=match.start(), end=match.end(), text=match.group(0))
            taken.append((match.start(), match.end()))
            found.append(constraint)
    return sorted(found, key=lambda c: c.start)
