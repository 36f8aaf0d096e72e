"""Statistical disclosure control on results: small-cell suppression for aggregates, k-anonymity for rows.

Pure functions over a result table (no Django, no database): the pipeline runs the query, then hands the
rows here before anyone sees them. Administrators get aggregates with small cells hidden; researchers get
rows generalised until every combination of identifying values is shared by at least k rows.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from itertools import combinations, product
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

# What a complementary (secondary) suppression shows; primary ones show f"<{threshold}".
COMPLEMENTARY: Final = "*"
# What the top of every generalisation hierarchy, and a sensitive cell failing l-diversity, shows.
HIDDEN: Final = "*"
# Class keys are built as mixed-radix integers; past this they are renumbered densely to stay in int64.
_KEY_LIMIT: Final = 2**62
# A row is "at risk" when its class gives a re-identification chance above this (classes of fewer than 5).
RISK_THRESHOLD: Final = 0.2


# --- Small-cell suppression -------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """An aggregate result and what the pipeline knows about its shape."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    dimensions: Sequence[int]  # indexes of group-key columns (may be empty: one-row result)
    measures: Sequence[int]  # indexes of measure columns (counts, sums, averages, shares ...)
    patients: Sequence[int]  # distinct patients behind each row (same length as rows)
    margins: bool  # the result carries totals or shares of a total, so a hidden cell could be derived
    total_rows: Sequence[int] = ()  # indexes of rows that are totals of other rows (e.g. ROLLUP rows)


@dataclass(frozen=True)
class Suppressed:
    """An aggregate made safe to show, and what was hidden."""

    rows: list[list[Any]]  # measure cells replaced by f"<{threshold}" (primary) or "*" (complementary)
    primary: list[int]  # row indexes hidden because 1..threshold-1 patients
    complementary: list[int]  # row indexes hidden so the primary ones cannot be derived
    notices: list[str]  # plain-English sentences for the person asking


def suppress_small_cells(table: Aggregate, *, threshold: int = 11) -> Suppressed:
    """Hide the measures of rows about 1..threshold-1 patients, and enough others that they cannot be derived.

    Complementary suppression runs only when the result carries margins (totals, or shares of a total):
    without them a hidden cell cannot be worked out from the visible ones.
    """
    _check_aggregate(table, threshold)
    patients = list(table.patients)
    primary = [i for i, count in enumerate(patients) if 0 < count < threshold]
    hidden = set(primary)
    if table.margins or table.total_rows:
        _hide_complements(table, hidden, threshold)
    complementary = sorted(hidden.difference(primary))

    rows = [list(row) for row in table.rows]
    marks = dict.fromkeys(primary, f"<{threshold}") | dict.fromkeys(complementary, COMPLEMENTARY)
    for i, mark in marks.items():
        for column in table.measures:
            rows[i][column] = mark
    notices = _suppression_notices(len(primary), len(complementary), threshold, bool(table.dimensions))
    return Suppressed(rows=rows, primary=primary, complementary=complementary, notices=notices)


def _check_aggregate(table: Aggregate, threshold: int) -> None:
    width = len(table.columns)
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, not {threshold}")
    if len(table.patients) != len(table.rows):
        raise ValueError(f"{len(table.patients)} patient counts for {len(table.rows)} rows")
    if any(len(row) != width for row in table.rows):
        raise ValueError(f"every row must have {width} cells, one per column")
    if any(count < 0 for count in table.patients):
        raise ValueError("a patient count cannot be negative")
    indexes = [*table.dimensions, *table.measures]
    if any(not 0 <= i < width for i in indexes):
        raise ValueError(f"dimension and measure indexes must be between 0 and {width - 1}")
    if len(set(indexes)) != len(indexes):
        raise ValueError("a column is listed twice among dimensions and measures")
    if any(not 0 <= i < len(table.rows) for i in table.total_rows):
        raise ValueError(f"total row indexes must be between 0 and {len(table.rows) - 1}")


def _hide_complements(table: Aggregate, hidden: set[int], threshold: int) -> None:
    """Grow `hidden` until no group (a line of the table along one dimension) gives a hidden cell away."""
    patients = table.patients
    totals = set(table.total_rows)
    cells = [i for i in range(len(table.rows)) if i not in totals]
    # Without dimensions all rows still form one group: treating them as derivable from a total is the
    # cautious reading of "margins" when the pipeline could not name the group keys.
    dims = list(table.dimensions)
    partitions = [[other for other in dims if other != d] for d in dims] if dims else [[]]
    lines: list[list[int]] = []
    for others in partitions:
        groups: dict[tuple[Hashable, ...], list[int]] = defaultdict(list)
        for i in cells:
            groups[tuple(_hashable(table.rows[i][j]) for j in others)].append(i)
        lines.extend(groups.values())

    changed = True
    while changed:  # a hide along one dimension can leave a lone hidden cell along another
        changed = False
        for members in lines:
            while True:
                shut = [i for i in members if i in hidden]
                if not shut or (len(shut) > 1 and sum(patients[i] for i in shut) >= threshold):
                    break
                # An empty row never protects anything: its zero is often known, and the hidden sum would
                # stay below the threshold anyway, so the next hide would be needed regardless.
                open_ = [i for i in members if i not in hidden and patients[i] > 0]
                if not open_:
                    break
                hidden.add(min(open_, key=lambda i: (patients[i], i)))
                changed = True


def _suppression_notices(primary: int, complementary: int, threshold: int, grouped: bool) -> list[str]:
    notices: list[str] = []
    small = "1 patient" if threshold == 2 else f"1 to {threshold - 1} patients"
    if primary and not grouped:
        notices.append(f"The result covers {small}, so its numbers are shown as <{threshold}.")
    elif primary:
        groups = _plural(primary, "group")
        verb = "is" if primary == 1 else "are"
        notices.append(f"{groups} of {small} {verb} shown as <{threshold}.")
    if complementary:
        more = _plural(complementary, "more group")
        verb = "is" if complementary == 1 else "are"
        ones = "small one" if primary == 1 else "small ones"
        notices.append(
            f"{more} {verb} shown as {COMPLEMENTARY} so that the {ones} cannot be worked out from totals."
        )
    return notices


# --- Generalisation hierarchies --------------------------------------------------------------------


class QI(StrEnum):
    """Kinds of quasi-identifier, each with its own generalisation hierarchy."""

    AGE = "age"
    DATE = "date"
    POSTCODE = "postcode"
    SEX = "sex"
    DIAGNOSIS = "diagnosis"
    CATEGORY = "category"


# Level i of a kind is described by LEVELS[kind][i]; level 0 is the value as it came, the last one "*".
LEVELS: Final[Mapping[QI, tuple[str, ...]]] = {
    QI.AGE: ("kept", "5-year bands", "10-year bands", "20-year bands", "hidden"),
    QI.DATE: ("kept", "day", "month", "quarter", "year", "hidden"),
    QI.POSTCODE: ("kept", "first 3 characters", "first 2 characters", "first character", "hidden"),
    QI.SEX: ("kept", "hidden"),
    QI.DIAGNOSIS: ("kept", "3-character category", "chapter letter", "hidden"),
    QI.CATEGORY: ("kept", "hidden"),
}

# The same levels as they read in a notice: "admittime by month".
_PHRASES: Final[Mapping[QI, tuple[str, ...]]] = {
    QI.AGE: ("as given", "in 5-year bands", "in 10-year bands", "in 20-year bands", "hidden"),
    QI.DATE: ("as given", "by day", "by month", "by quarter", "by year", "hidden"),
    QI.POSTCODE: (
        "as given",
        "by its first 3 characters",
        "by its first 2 characters",
        "by its first character",
        "hidden",
    ),
    QI.SEX: ("as given", "hidden"),
    QI.DIAGNOSIS: ("as given", "by its 3-character category", "by its chapter letter", "hidden"),
    QI.CATEGORY: ("as given", "hidden"),
}

_AGE_WIDTHS: Final = (5, 10, 20)
_AGE_TEXT: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(\+?)\s*")
_DATE_TEXT: Final = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})(?!\d)")
# "icd10:I25.10", and the warehouse's own "icd10|i2510" (EHRSQL's MIMIC-IV spelling), whose prefix
# the generalised values keep so they still read as codes of that system.
_ICD_PREFIX: Final = re.compile(r"\Aicd-?(?:9|10)\s*[:|]\s*", re.IGNORECASE)


def generalise(kind: QI, value: Any, level: int, *, top_age: int | None = None) -> Any:
    """`value` at `level` of `kind`'s hierarchy (0 = as given; len(LEVELS[kind]) - 1 = "*").

    None stays None at every level. A value that cannot be read as its kind (an age of "unknown") stays
    as it is below the top level: it is its own group, so k-anonymity still counts it.
    `top_age` is the lowest top-coded age in the column ("90+"): ages in or above the band that holds it
    are shown as one open band ("90+", or "80+" in 20-year bands), so top-coded and exact ages agree.
    """
    ladder = _ladder(QI(kind), top_age)(value)
    if not 0 <= level < len(ladder):
        raise ValueError(f"{kind} has levels 0 to {len(ladder) - 1}, not {level}")
    return ladder[level]


def age_top_code(values: Sequence[Any]) -> int | None:
    """The lowest top-coded age ("90+" -> 90) among `values`, or None when none is top-coded."""
    tops = [math.floor(parts[0]) for v in values if (parts := _age_parts(v)) is not None and parts[1]]
    return min(tops, default=None)


def _ladder(kind: QI, top_age: int | None) -> Callable[[Any], tuple[Any, ...]]:
    """A function from a value to its generalisations at every level of `kind`, parsed once."""
    if kind is QI.AGE:
        return lambda value: _age_ladder(value, top_age)
    return _LADDERS[kind]


def _age_parts(value: Any) -> tuple[float, bool] | None:
    """(age, top-coded) or None when `value` is not an age."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        age, plus = float(value), False
    elif isinstance(value, str) and (match := _AGE_TEXT.fullmatch(value)):
        age, plus = float(match[1]), bool(match[2])
    else:
        return None
    return (age, plus) if math.isfinite(age) and age >= 0 else None


def _age_ladder(value: Any, top_age: int | None) -> tuple[Any, ...]:
    if value is None:
        return (None,) * 5
    parts = _age_parts(value)
    if parts is None:
        return (value, value, value, value, HIDDEN)
    age, plus = parts
    top = top_age
    if plus:
        top = math.floor(age) if top is None else min(top, math.floor(age))
    bands: list[str] = []
    for width in _AGE_WIDTHS:
        start = None if top is None else top // width * width
        if start is not None and age >= start:
            bands.append(f"{start}+")
        else:
            low = math.floor(age) // width * width
            bands.append(f"{low}-{low + width - 1}")
    return (value, *bands, HIDDEN)


def _date_ladder(value: Any) -> tuple[Any, ...]:
    if value is None:
        return (None,) * 6
    day: dt.date | None = None
    if isinstance(value, dt.datetime):
        day = value.date()
    elif isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and (match := _DATE_TEXT.match(value)):
        try:
            day = dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            day = None
    if day is None:
        return (value, value, value, value, value, HIDDEN)
    quarter = (day.month - 1) // 3 + 1
    return (
        value,
        day.isoformat(),
        f"{day.year:04d}-{day.month:02d}",
        f"{day.year:04d}-Q{quarter}",
        f"{day.year:04d}",
        HIDDEN,
    )


def _postcode_ladder(value: Any) -> tuple[Any, ...]:
    if value is None:
        return (None,) * 5
    # Case and surrounding spaces do not make a different area; "N1 9GU"[:3] is "N1", not "N1 ".
    code = str(value).strip().upper()
    return (value, code[:3].rstrip(), code[:2].rstrip(), code[:1], HIDDEN)


def _diagnosis_ladder(value: Any) -> tuple[Any, ...]:
    if value is None:
        return (None,) * 4
    text = str(value).strip()
    prefix = _ICD_PREFIX.match(text)
    code = text[prefix.end() if prefix else 0 :].replace(".", "").replace(" ", "")
    if not code:
        return (value, value, value, HIDDEN)
    if prefix is not None and "|" in prefix.group(0):
        kept = prefix.group(0)
        return (value, kept + code[:3], kept + code[:1], HIDDEN)
    code = code.upper()
    return (value, code[:3], code[:1], HIDDEN)


def _kept_ladder(value: Any) -> tuple[Any, ...]:
    return (value, None if value is None else HIDDEN)


_LADDERS: Final[Mapping[QI, Callable[[Any], tuple[Any, ...]]]] = {
    QI.DATE: _date_ladder,
    QI.POSTCODE: _postcode_ladder,
    QI.SEX: _kept_ladder,
    QI.DIAGNOSIS: _diagnosis_ladder,
    QI.CATEGORY: _kept_ladder,
}


# --- k-anonymity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Risk:
    """Re-identification risk of the rows shown, from their equivalence classes."""

    highest: float  # prosecutor risk: 1 / smallest class size
    average: float  # number of classes / number of rows (the mean over rows of 1 / class size)
    at_risk: float  # share of rows in classes with risk above 0.2
    unit: str = "row"  # what a class size counts: "row", or "patient" when patients were given

    def describe(self) -> str:
        """One sentence for the person asking."""
        if self.highest == 0:
            return "No rows are shown, so no one can be recognised from them."
        smallest = round(1 / self.highest)
        if smallest == 1:
            first = (
                "At least one row is unique in its identifying columns, so its patient could be recognised"
            )
        else:
            others = _plural(smallest - 1, f"other {self.unit}")
            first = (
                f"Every row shares its identifying columns with at least {others}, "
                f"so the chance of recognising a patient is at most {_percent(self.highest)}"
            )
        limit = round(1 / RISK_THRESHOLD)
        if self.at_risk == 0:
            last = f"no row is in a group of fewer than {limit}"
        else:
            last = f"{_percent(self.at_risk)} of rows are in groups of fewer than {limit}"
        return f"{first} (on average {_percent(self.average)}); {last}."


@dataclass(frozen=True)
class Anonymised:
    """Rows made k-anonymous, and how."""

    rows: list[list[Any]]  # generalised rows, suppressed rows removed
    suppressed_rows: int
    levels: dict[str, str]  # quasi-identifier column -> what it was generalised to, in words
    k: int
    smallest_class: int  # rows (or patients) in the smallest class shown; 0 when no rows remain
    l_diversity: dict[str, int]  # sensitive column -> fewest distinct values in any class (before starring)
    l_violations: int  # classes where a sensitive column had fewer than l distinct values
    risk: Risk
    notices: list[str]


def k_anonymise(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    quasi: Mapping[int, QI],
    sensitive: Sequence[int] = (),
    k: int = 5,
    l: int = 2,  # noqa: E741 (the l of l-diversity)
    max_suppression: float = 0.05,
    subjects: Sequence[Hashable] | None = None,
) -> Anonymised:
    """Generalise the quasi-identifiers (one level per column for all rows) then withhold rows, so that
    every combination of quasi-identifier values shown is shared by at least k rows (or patients).

    The level vector is the one with the least information loss (the sum over columns of level / highest
    level) among those that need at most `max_suppression` of the rows withheld; ties go to
    fewer rows withheld, then to the lower levels in column order. When none does, every quasi-identifier
    is hidden and whatever rows still fall in classes smaller than k are withheld.
    Sensitive columns then get distinct l-diversity: within a class, a sensitive column with fewer than l
    distinct values is shown as "*".
    `subjects`, when given, is the patient behind each row: a class's size is then its number of distinct
    patients, so five admissions of one patient never make a crowd of five.
    """
    kinds = {index: QI(kind) for index, kind in quasi.items()}
    _check_rows(columns, rows, kinds, sensitive, k, l, max_suppression)
    if subjects is not None and len(subjects) != len(rows):
        raise ValueError(f"{len(subjects)} patients for {len(rows)} rows")
    qi_columns = sorted(kinds)
    tables = [_QIColumn.build(rows, index, kinds[index]) for index in qi_columns]
    total = len(rows)
    people = None if subjects is None else _dense([_hashable(s) for s in subjects])
    unit = "row" if people is None else "patient"
    # The epsilon absorbs float error: 0.29 * 100 is 28.999999999999996, and 29 rows are 29% of 100.
    budget = math.floor(max_suppression * total + 1e-9)

    best = _best_node(tables, total, k, budget, people)
    fell_back = best is None
    node = tuple(len(table.codes) - 1 for table in tables) if best is None else best
    key, _ = _class_keys(tables, node, total)
    classes, sizes = _row_classes(key, people)
    keep = np.flatnonzero(sizes >= k).tolist()
    keys = classes[keep].tolist()

    out: list[list[Any]] = []
    for r in keep:
        row = list(rows[r])
        for table, level in zip(tables, node, strict=True):
            row[table.index] = table.value(r, level)
        out.append(row)

    diversity, violations, starred = _l_diversify(out, keys, sensitive, l)
    kept_sizes = sizes[keep].tolist()
    risk = _risk(kept_sizes, unit)
    levels = {columns[t.index]: LEVELS[t.kind][level] for t, level in zip(tables, node, strict=True)}
    suppressed = total - len(keep)
    notices = _anonymity_notices(
        columns, tables, node, k, unit, total, suppressed, fell_back, max_suppression
    )
    notices.extend(
        f"{columns[column]} is shown as {HIDDEN} in {_plural(count, 'group')} of rows "
        f"where it had fewer than {l} different values."
        for column, count in starred.items()
        if count
    )
    return Anonymised(
        rows=out,
        suppressed_rows=suppressed,
        levels=levels,
        k=k,
        smallest_class=min(kept_sizes, default=0),
        l_diversity={columns[column]: diversity[column] for column in sensitive},
        l_violations=violations,
        risk=risk,
        notices=notices,
    )


def _check_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    kinds: Mapping[int, QI],
    sensitive: Sequence[int],
    k: int,
    l: int,  # noqa: E741
    max_suppression: float,
) -> None:
    width = len(columns)
    if k < 1 or l < 1:
        raise ValueError(f"k and l must be at least 1, not {k} and {l}")
    if not 0 <= max_suppression <= 1:
        raise ValueError(f"max_suppression is a share of the rows, between 0 and 1, not {max_suppression}")
    if any(len(row) != width for row in rows):
        raise ValueError(f"every row must have {width} cells, one per column")
    indexes = [*kinds, *sensitive]
    if any(not 0 <= i < width for i in indexes):
        raise ValueError(f"quasi-identifier and sensitive indexes must be between 0 and {width - 1}")
    if len(set(indexes)) != len(indexes):
        raise ValueError("a column is listed twice among quasi-identifiers and sensitive columns")


@dataclass(frozen=True)
class _QIColumn:
    """One quasi-identifier column, every level precomputed as integer codes per row."""

    index: int
    kind: QI
    ladders: list[tuple[Any, ...]]  # distinct raw value -> its value at each level
    raw: list[int]  # row -> its distinct raw value
    codes: list[NDArray[np.int64]]  # level -> row -> code of its value (equal values, equal codes)
    cards: list[int]  # level -> number of codes

    @classmethod
    def build(cls, rows: Sequence[Sequence[Any]], index: int, kind: QI) -> _QIColumn:
        values = [row[index] for row in rows]
        ladder = _ladder(kind, age_top_code(values) if kind is QI.AGE else None)
        distinct: dict[Hashable, int] = {}
        raw = [distinct.setdefault(_hashable(v), len(distinct)) for v in values]
        firsts: dict[int, Any] = {}
        for v, d in zip(values, raw, strict=True):
            firsts.setdefault(d, v)
        ladders = [ladder(firsts[d]) for d in range(len(distinct))]
        raw_array = np.asarray(raw, dtype=np.int64)
        codes: list[NDArray[np.int64]] = []
        cards: list[int] = []
        for level in range(len(LEVELS[kind])):
            numbering: dict[Hashable, int] = {}
            by_raw = [numbering.setdefault(_hashable(lad[level]), len(numbering)) for lad in ladders]
            codes.append(np.asarray(by_raw, dtype=np.int64)[raw_array])
            cards.append(max(len(numbering), 1))
        return cls(index=index, kind=kind, ladders=ladders, raw=raw, codes=codes, cards=cards)

    def value(self, row: int, level: int) -> Any:
        return self.ladders[self.raw[row]][level]


def _class_keys(tables: list[_QIColumn], node: tuple[int, ...], total: int) -> tuple[NDArray[np.int64], int]:
    """One integer per row, equal exactly when the rows fall in the same class at `node`, and their bound."""
    key = np.zeros(total, dtype=np.int64)
    card = 1
    for table, level in zip(tables, node, strict=True):
        radix = table.cards[level]
        if card * radix >= _KEY_LIMIT:
            _, inverse = np.unique(key, return_inverse=True)
            key = inverse.astype(np.int64).reshape(total)
            card = int(key.max()) + 1
        key = key * radix + table.codes[level]
        card *= radix
    return key, card


def _class_sizes(key: NDArray[np.int64], card: int) -> NDArray[np.int64]:
    """The size of every class in `key` (in no particular order)."""
    if card <= 4 * len(key) + 1024:
        counts = np.bincount(key, minlength=card)
        return counts[counts > 0]
    ordered = np.sort(key)
    edges = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1], [True])))
    return np.diff(edges)


def _withheld(key: NDArray[np.int64], card: int, k: int, people: NDArray[np.int64] | None) -> int:
    """Rows in classes smaller than k: of fewer than k rows, or of fewer than k distinct `people`."""
    if people is None:
        sizes = _class_sizes(key, card)
        return int(sizes[sizes < k].sum())
    width = int(people.max()) + 1 if len(people) else 1
    if card * width >= _KEY_LIMIT:
        _, inverse = np.unique(key, return_inverse=True)
        key = inverse.astype(np.int64).reshape(len(people))
    # One sort of (class, person) pairs: runs of equal class are classes, runs of equal pairs are people.
    pairs = np.sort(key * width + people)
    classes = pairs // width
    class_starts = np.flatnonzero(np.concatenate(([True], classes[1:] != classes[:-1])))
    new_person = np.concatenate(([True], pairs[1:] != pairs[:-1])).astype(np.int64)
    distinct = np.add.reduceat(new_person, class_starts) if len(pairs) else new_person
    rows = np.diff(np.concatenate((class_starts, [len(pairs)])))
    return int(rows[distinct < k].sum())


def _row_classes(
    key: NDArray[np.int64], people: NDArray[np.int64] | None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each row's class number (dense, in order of key) and its class's size in rows or distinct people."""
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(len(key)).astype(np.int64)
    if people is None:
        return inverse, counts[inverse]
    width = int(people.max()) + 1 if len(people) else 1
    pairs = np.unique(inverse * width + people)  # distinct (class, person)
    distinct = np.bincount(pairs // width, minlength=len(counts))
    return inverse, distinct[inverse]


def _dense(values: Sequence[Hashable]) -> NDArray[np.int64]:
    """Equal values as equal small integers, numbered in order of first appearance."""
    numbering: dict[Hashable, int] = {}
    return np.asarray([numbering.setdefault(v, len(numbering)) for v in values], dtype=np.int64)


def _best_node(
    tables: list[_QIColumn], total: int, k: int, budget: int, people: NDArray[np.int64] | None
) -> tuple[int, ...] | None:
    """The level vector of least loss withholding at most `budget` rows, or None when there is none.

    Withheld rows can only fall as a column is generalised further, so the nodes that work form an up-set
    of the lattice and the best one is among its minimal nodes. The column with the most levels is
    searched last: for each combination of the other columns' levels, taken in order of loss, a binary
    search finds its lowest working level. Bounds keep the evaluations few: what the combinations one
    step below found (a node above a working node is never minimal); the loss of the best node so far
    (nothing costlier is evaluated); and the columns taken alone, in pairs and in threes (a row in a small
    class on some columns is in a small class on all of them): one column rules out whole slices of the
    lattice before any search, and a pair or three veto a node before it is counted in full.
    """
    if total == 0:
        return tuple(0 for _ in tables)
    if not tables:
        return () if _withheld(np.zeros(total, dtype=np.int64), 1, k, people) <= budget else None

    memo: dict[tuple[int, ...], int] = {}

    def withheld(node: tuple[int, ...]) -> int:
        if node not in memo:
            memo[node] = _withheld(*_class_keys(tables, node, total), k, people)
        return memo[node]

    projections: dict[tuple[tuple[int, ...], tuple[int, ...]], bool] = {}

    def projection_works(subset: tuple[int, ...], node: tuple[int, ...]) -> bool:
        levels = tuple(node[i] for i in subset)
        if (subset, levels) not in projections:
            key, card = _class_keys([tables[i] for i in subset], levels, total)
            projections[subset, levels] = _withheld(key, card, k, people) <= budget
        return projections[subset, levels]

    # Incognito's subset property: one count over two or three columns vetoes every node at their levels.
    subsets = [s for size in (2, 3) if size < len(tables) for s in combinations(range(len(tables)), size)]

    def works(node: tuple[int, ...]) -> bool:
        return all(projection_works(s, node) for s in subsets) and withheld(node) <= budget

    lows: list[int] = []
    for table in tables:
        alone = (
            level
            for level, codes in enumerate(table.codes)
            if _withheld(codes, table.cards[level], k, people) <= budget
        )
        low = next(alone, None)
        if low is None:
            return None
        lows.append(low)

    tops = [len(table.codes) - 1 for table in tables]
    last = max(range(len(tables)), key=lambda i: (tops[i], i))
    others = [i for i in range(len(tables)) if i != last]
    never = tops[last] + 1  # "no level of the last column works"

    def loss(levels: Sequence[int], columns: Sequence[int]) -> Fraction:
        return sum((Fraction(levels[j], tops[i]) for j, i in enumerate(columns)), Fraction(0))

    def node_of(combo: tuple[int, ...], level: int) -> tuple[int, ...]:
        node = [0] * len(tables)
        for i, value in zip(others, combo, strict=True):
            node[i] = value
        node[last] = level
        return tuple(node)

    # Exact fractions: 1/5 + 2/5 must tie with 3/5.
    combos = sorted(
        ((loss(combo, others), combo) for combo in product(*(range(lows[i], tops[i] + 1) for i in others))),
    )
    lowest: dict[tuple[int, ...], int] = {}  # combination -> its lowest working level, or an upper bound
    minimal: list[tuple[int, ...]] = []
    best: Fraction | None = None
    # Each combination loses more than the ones one step below it, so they are settled before it.
    for base, combo in combos:
        below = [(*combo[:j], combo[j] - 1, *combo[j + 1 :]) for j in range(len(combo))]
        bound = min((lowest[b] for b in below if b in lowest), default=never)
        cap = bound - 1
        if best is not None:
            if base + Fraction(lows[last], tops[last]) > best:
                break
            cap = min(cap, math.floor((best - base) * tops[last]))
        left, right = lows[last], cap + 1
        while left < right:
            middle = (left + right) // 2
            if works(node_of(combo, middle)):
                right = middle
            else:
                left = middle + 1
        if left > cap:
            lowest[combo] = bound
            continue
        lowest[combo] = left
        minimal.append(node_of(combo, left))
        found = base + Fraction(left, tops[last])
        best = found if best is None else min(best, found)
    if not minimal:
        return None
    order = list(range(len(tables)))
    return min(minimal, key=lambda node: (loss(node, order), withheld(node), node))


def _l_diversify(
    rows: list[list[Any]],
    keys: list[int],
    sensitive: Sequence[int],
    l: int,  # noqa: E741
) -> tuple[dict[int, int], int, dict[int, int]]:
    """Star sensitive cells in classes with fewer than l distinct values.

    Returns the fewest distinct values per column, the classes with any violation, and per column how many.
    """
    members: dict[int, list[int]] = defaultdict(list)
    for r, key in enumerate(keys):
        members[key].append(r)
    fewest = dict.fromkeys(sensitive, 0)
    starred = dict.fromkeys(sensitive, 0)
    violating: set[int] = set()
    for column in sensitive:
        counts = [len({_hashable(rows[r][column]) for r in group}) for group in members.values()]
        fewest[column] = min(counts, default=0)
        for (key, group), distinct in zip(members.items(), counts, strict=True):
            if distinct < l:
                for r in group:
                    rows[r][column] = HIDDEN
                starred[column] += 1
                violating.add(key)
    return fewest, len(violating), starred


def _risk(sizes: list[int], unit: str) -> Risk:
    """Risk from each shown row's class size."""
    if not sizes:
        return Risk(highest=0.0, average=0.0, at_risk=0.0, unit=unit)
    risky = sum(1 for size in sizes if 1 / size > RISK_THRESHOLD)
    average = math.fsum(1 / size for size in sizes) / len(sizes)
    return Risk(highest=1 / min(sizes), average=average, at_risk=risky / len(sizes), unit=unit)


def _anonymity_notices(
    columns: Sequence[str],
    tables: list[_QIColumn],
    node: tuple[int, ...],
    k: int,
    unit: str,
    total: int,
    suppressed: int,
    fell_back: bool,
    max_suppression: float,
) -> list[str]:
    notices: list[str] = []
    units = f"{unit}s"
    if total and suppressed == total:
        if fell_back:
            reason = f"even with every identifying column hidden, fewer than {k} {units} match each other"
        else:
            reason = f"no row matches at least {k} {units}"
        return [f"No rows can be shown: {reason}."]
    if fell_back and tables:
        notices.append(
            f"Every identifying column is hidden: no coarser grouping kept at least {k} {units} together "
            f"without withholding more than {_percent(max_suppression)} of the rows."
        )
    else:
        changes = [
            f"{columns[t.index]} {_PHRASES[t.kind][level]}"
            for t, level in zip(tables, node, strict=True)
            if level
        ]
        if changes:
            notices.append(
                f"Shown less precisely so that each row matches at least {k} {units}: {_series(changes)}."
            )
    if suppressed:
        rows = _plural(suppressed, "row")
        was, them = ("was", "it") if suppressed == 1 else ("were", "them")
        notices.append(f"{rows} {was} withheld because fewer than {k} {units} matched {them}.")
    return notices


# --- Small helpers ---------------------------------------------------------------------------------


def _hashable(value: Any) -> Hashable:
    """`value` itself when it can key a dict (every SQL scalar), else a stand-in (PostgreSQL arrays)."""
    try:
        hash(value)
    except TypeError:
        return ("unhashable", type(value).__name__, repr(value))
    return value  # type: ignore[no-any-return]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _series(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _percent(share: float) -> str:
    if 0 < share < 0.01:
        return "under 1%"
    return f"{share:.0%}"
