"""Readable headings for answer columns: the SQL expression a warehouse names a column by, as staff say it.

Display only: the API, the CSV file and the audit trail keep the warehouse's own column names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Final

import sqlglot
from sqlglot import exp

from nlquery.semantic import semantic_layer

# Longer raw text than this is cut in a heading (the whole of it stays in the heading's title).
MAX_RAW: Final = 60

# SQLite's STRFTIME and PostgreSQL's TO_CHAR formats of a time bucket -> what one bucket is.
_BUCKETS: Final[dict[str, str]] = {
    "%Y-%m-%d": "Day",
    "%Y-%m": "Month",
    "%Y": "Year",
    "%H": "Hour",
    "%Y-%W": "Week",
    "%Y-%m-%d %H": "Hour",
    "%Y-%m-%d %H:00": "Hour",
    "%m": "Month of year",
    "%w": "Day of week",
    "YYYY-MM-DD": "Day",
    "YYYY-MM": "Month",
    "YYYY": "Year",
    "HH24": "Hour",
    "YYYY-MM-DD HH24": "Hour",
    "YYYY-MM-DD HH24:00": "Hour",
    "IYYY-IW": "Week",
    "YYYY-IW": "Week",
    "MM": "Month of year",
    "D": "Day of week",
}
# DATE_TRUNC units.
_UNITS: Final[dict[str, str]] = {
    "hour": "Hour",
    "day": "Day",
    "week": "Week",
    "month": "Month",
    "quarter": "Quarter",
    "year": "Year",
}
# What a distinct count of a key counts.
_DISTINCT: Final[dict[str, str]] = {
    "subject_id": "Patients",
    "hadm_id": "Admissions",
    "stay_id": "ICU stays",
    "transfer_id": "Transfers",
    "visit_id": "Visits",
    "note_id": "Notes",
    "staff_id": "Staff members",
}
_AGGREGATES: Final[dict[type[exp.Expr], str]] = {
    exp.Avg: "Average",
    exp.Min: "Minimum",
    exp.Max: "Maximum",
    exp.Sum: "Total",
}
# PostgreSQL names an unaliased expression by its outermost function, or "?column?": all it says.
_PG_DEFAULTS: Final[dict[str, str]] = {
    "count": "Count",
    "avg": "Average",
    "sum": "Total",
    "min": "Minimum",
    "max": "Maximum",
    "to_char": "Period",
    "date_trunc": "Period",
    "case": "Group",
    "round": "Value",
    "?column?": "Value",
}
# Warehouse (MIMIC-IV) column names the semantic layer gives no words for; the rest read well split
# on underscores.
_COLUMN_WORDS: Final[dict[str, str]] = {
    "long_title": "title",
    "valuenum": "value",
    "valueuom": "unit",
    "value": "value",
    "itemid": "item ID",
    "subject_id": "patient ID",
    "hadm_id": "admission ID",
    "stay_id": "ICU stay ID",
    "admittime": "admission time",
    "dischtime": "discharge time",
    "deathtime": "death time",
    "charttime": "chart time",
    "storetime": "result time",
    "starttime": "start time",
    "stoptime": "stop time",
    "endtime": "end time",
    "intime": "in time",
    "outtime": "out time",
    "chargetime": "charge time",
    "dob": "date of birth",
    "dod": "date of death",
    "careunit": "care unit",
    "first_careunit": "first care unit",
    "last_careunit": "last care unit",
    "eventtype": "event type",
    "spec_type_desc": "specimen type",
    "org_name": "organism",
    "dose_val_rx": "dose",
    "dose_unit_rx": "dose unit",
    "totalamount": "total amount",
    "totalamountuom": "total amount unit",
    "ref_range_lower": "reference range lower",
    "ref_range_upper": "reference range upper",
    "name": "name",
}
# Word pieces that are abbreviations or run-together words.
_WORDS: Final[dict[str, str]] = {
    "icu": "ICU",
    "ed": "ED",
    "id": "ID",
    "icd": "ICD",
    "mrn": "MRN",
    "loinc": "LOINC",
    "vip": "VIP",
    "uom": "unit",
    "careunit": "care unit",
    "hadm": "admission",
    "subject": "patient",
    "desc": "description",
}
# A plain name with none of these is an alias or a name already written for people.
_SQL_MARKS: Final = re.compile(r"[()'\".*|+/<>=,]")


def column_label(name: str) -> str:
    """The heading staff read for a column the warehouse named `name`; never raises."""
    try:
        return _label(name)
    except Exception:  # display only: any surprise shows the raw name, tidied
        return _tidy(name)


def column_labels(columns: Sequence[str], *, sql: str | None = None) -> list[str]:
    """Headings for an answer's columns, each distinct (a repeat gains " (2)", " (3)"...). With the SQL
    that answered (where the role may see it), columns PostgreSQL named only "count" or "avg" are read
    from their SELECT expression."""
    expressions = _select_list(sql, len(columns)) if sql else None
    labels = []
    for i, name in enumerate(columns):
        label = column_label(name)
        if expressions is not None and name.strip().lower() in _PG_DEFAULTS:
            with suppress(Exception):  # display only: a surprise keeps the plain label
                label = _expression_label(expressions[i]) or label
        labels.append(label)
    return _distinct(labels)


def _distinct(labels: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return unique


def _select_list(sql: str, width: int) -> list[exp.Expr] | None:
    for dialect in ("sqlite", "postgres"):
        try:
            tree = sqlglot.parse_one(sql, read=dialect)
        except Exception:  # noqa: S112  # the other dialect may read it
            continue
        if isinstance(tree, exp.Select) and len(tree.expressions) == width:
            return list(tree.expressions)
    return None


def _label(name: str) -> str:
    text = _clean(name)
    if not text:
        return ""
    if text.lower() in _PG_DEFAULTS:
        return _PG_DEFAULTS[text.lower()]
    if not _SQL_MARKS.search(text):
        if re.fullmatch(r"[a-z][a-z0-9_]*", text) and _known_column(text):
            return _heading(_column_phrase(None, text))
        return _tidy(text)  # an alias or a name written for people ("patients", "Admissions per day")
    try:
        tree = sqlglot.parse_one(text, read="sqlite")
    except Exception:
        return _tidy(text)
    return _expression_label(tree) or _tidy(text)


def _expression_label(node: exp.Expr) -> str | None:
    node = _bare(node)
    if isinstance(node, exp.Alias):
        return _label(node.alias)
    if isinstance(node, exp.Column) and node.name:
        if node.table and node.table not in semantic_layer().tables:
            return None  # not the warehouse's: shown as written
        return _heading(_column_phrase(node.table or None, node.name))
    bucket = _bucket(node)
    if bucket:
        return bucket
    if isinstance(node, exp.Count):
        return _count(node)
    for kind, word in _AGGREGATES.items():
        if isinstance(node, kind):
            return _aggregate(word, _bare(node.this))
    if isinstance(node, exp.Case):
        columns = {c.name for c in node.find_all(exp.Column)}
        if len(columns) == 1:
            return _heading(_column_phrase(None, columns.pop()) + " band")
    return None


def _bare(node: exp.Expr) -> exp.Expr:
    """Without what does not change what a column means: parentheses, casts, rounding, FILTER."""
    while True:
        if isinstance(node, exp.Paren | exp.Cast | exp.TryCast | exp.Round | exp.Filter | exp.Distinct):
            if isinstance(node, exp.Distinct):
                if len(node.expressions) != 1:
                    return node
                node = node.expressions[0]
            else:
                node = node.this
        elif isinstance(node, exp.TsOrDsToTimestamp | exp.TsOrDsToDate):
            node = node.this
        else:
            return node


def _bucket(node: exp.Expr) -> str | None:
    if isinstance(node, exp.TimeToStr | exp.ToChar) or (
        isinstance(node, exp.Anonymous) and str(node.this).upper() in ("STRFTIME", "TO_CHAR")
    ):
        fmt = node.args.get("format")
        if isinstance(node, exp.Anonymous):
            literals = [e for e in node.expressions if isinstance(e, exp.Literal) and e.is_string]
            fmt = literals[0] if literals else None
        if isinstance(fmt, exp.Literal):
            return _BUCKETS.get(fmt.this.strip())
        return None
    if isinstance(node, exp.DateTrunc | exp.TimestampTrunc):
        unit = node.args.get("unit")
        return _UNITS.get(unit.name.lower()) if unit is not None else None
    if isinstance(node, exp.DPipe | exp.Concat):
        # PostgreSQL has no '%W': the compiler writes the week number out as year || '-' || LPAD(...).
        extracted = {e.name.lower() for x in node.find_all(exp.Extract) for e in [x.this]}
        if "doy" in extracted or "week" in extracted:
            return "Week"
    return None


def _count(node: exp.Count) -> str:
    inner = node.this
    if isinstance(inner, exp.Distinct) and len(inner.expressions) == 1:
        target = _bare(inner.expressions[0])
        if isinstance(target, exp.Column):
            known = _DISTINCT.get(target.name)
            return known or _heading("distinct " + _column_phrase(target.table or None, target.name))
    return "Count"


def _aggregate(word: str, inner: exp.Expr) -> str:
    if isinstance(inner, exp.Column):
        return f"{word} {_column_phrase(inner.table or None, inner.name)}"
    duration = _duration(inner)
    if duration is not None:
        table, later, earlier, unit = duration
        about = _measured_duration(table, later, earlier)
        if about is None:
            about = f"time from {_column_phrase(table, earlier)} to {_column_phrase(table, later)}"
        return f"{word} {about} ({unit})"
    return word


def _duration(node: exp.Expr) -> tuple[str | None, str, str, str] | None:
    """(table, later column, earlier column, unit) of a difference of two times scaled by constants:
    JULIANDAY(b) - JULIANDAY(a) on SQLite, EXTRACT(EPOCH FROM (b - a)) / 86400.0 on PostgreSQL."""
    factor = 1.0
    node = _bare(node)
    while isinstance(node, exp.Mul | exp.Div):
        scale = node.expression if isinstance(node.expression, exp.Literal) else None
        if scale is None or scale.is_string:
            return None
        value = float(scale.this)
        if isinstance(node, exp.Mul):
            factor *= value
        elif value != 86400:  # seconds to days: the unit JULIANDAY differences are in
            return None
        node = _bare(node.this)
    if isinstance(node, exp.Extract) and node.this.name.lower() == "epoch":
        node = _bare(node.expression)
    if not isinstance(node, exp.Sub):
        return None
    later, earlier = _time_column(node.this), _time_column(node.expression)
    unit = {1.0: "days", 24.0: "hours", 1440.0: "minutes"}.get(factor)
    if later is None or earlier is None or unit is None:
        return None
    return (later.table or earlier.table or None, later.name, earlier.name, unit)


def _time_column(node: exp.Expr) -> exp.Column | None:
    node = _bare(node)
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "JULIANDAY" and node.expressions:
        node = _bare(node.expressions[0])
    return node if isinstance(node, exp.Column) else None


def _measured_duration(table: str | None, later: str, earlier: str) -> str | None:
    """What the semantic layer's measure of the same two times calls it ("hospital length of stay")."""
    for measure in semantic_layer().measures.values():
        if table is not None and measure.table != table:
            continue
        tree = _bare(sqlglot.parse_one(measure.expression, read="sqlite"))
        found = _duration(_bare(tree.this)) if isinstance(tree, exp.Avg) else None
        if found is not None and found[1:3] == (later, earlier):
            about = re.sub(r"^(average|mean)\s+", "", measure.description.strip(), flags=re.I)
            return re.sub(r",?\s+in (days|hours|minutes)$", "", about)
    return None


def _known_column(name: str) -> bool:
    return any(column.name == name for table in semantic_layer().tables.values() for column in table.columns)


def _column_phrase(table: str | None, name: str) -> str:
    """A column in words, lower case but for abbreviations: the semantic layer's description of it, or
    of the one way questions group by it; else the words above; else its name split on underscores."""
    layer = semantic_layer()
    tables = (
        [layer.tables[table]] if table is not None and table in layer.tables else list(layer.tables.values())
    )
    described = {c.description.strip() for t in tables for c in t.columns if c.name == name and c.description}
    if len(described) == 1:
        return _lower_first(described.pop())
    groupings = {
        _dimension_phrase(d.name, d.description)
        for d in layer.dimensions.values()
        if d.column == name and not d.bins and (d.words or table is not None) and (table in (None, d.table))
    }
    if len(groupings) == 1:
        return groupings.pop()
    if name in _COLUMN_WORDS:
        return _COLUMN_WORDS[name]
    return " ".join(_WORDS.get(piece, piece) for piece in name.lower().split("_") if piece) or name


def _dimension_phrase(name: str, description: str) -> str:
    # A short description is the better name ("lab test" over lab_item); a long one explains, not names.
    text = description.strip()
    if text and len(text.split()) <= 3 and not re.search(r"[(),;:]", text):
        return _lower_first(text)
    return " ".join(_WORDS.get(piece, piece) for piece in name.split("_") if piece)


def _lower_first(text: str) -> str:
    # "ICU unit" keeps its capitals; "Care unit" becomes "care unit" to sit inside "Average care unit".
    return text[:1].lower() + text[1:] if text[:2].istitle() or text[1:2].islower() else text


def _heading(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def _clean(name: object) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in str(name)).split())


def _tidy(name: object) -> str:
    try:
        text = _clean(name)
    except Exception:  # an object whose str() fails is still shown as something
        return "Column"
    return text if len(text) <= MAX_RAW else text[: MAX_RAW - 1].rstrip() + "\u2026"
