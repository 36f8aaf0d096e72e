"""What a question was understood to ask (a QueryPlan), or why it cannot be answered (Unanswerable)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nlquery.timeexpr import TimeConstraint


@dataclass(frozen=True)
class Filter:
    """A value the rows must match: `kind` is the value matcher's kind (drug, lab, diagnosis...)."""

    kind: str
    value: str


@dataclass(frozen=True)
class QueryPlan:
    """A composed plan: the family says what is returned; patient, filters and time narrow it."""

    kind: str  # patient | count | topk | aggregate | lookup | rate | trend | compare | operational
    family: str  # e.g. "patient.attribute", "lookup.route", "lookup.cost"
    subject_id: int | None = None
    attribute: str = ""  # the returned column as "table.column", for attribute families
    filters: tuple[Filter, ...] = ()
    time: tuple[TimeConstraint, ...] = ()
    confidence: float = 0.0
    interpretation: str = ""


@dataclass(frozen=True)
class Unanswerable:
    """An honest abstention: what was understood, what was not, and questions of that kind we can answer."""

    reason: str
    understood: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = field(default_factory=tuple)
