"""What a question was understood to ask (a QueryPlan), or why it cannot be answered (Unanswerable)."""

from __future__ import annotations

from dataclasses import dataclass

from nlquery.families.base import Filter, QueryPlan

__all__ = ["Filter", "QueryPlan", "Unanswerable"]


@dataclass(frozen=True)
class Unanswerable:
    """An honest abstention: what was understood, what was not, and questions of that kind we can answer."""

    reason: str
    understood: tuple[str, ...] = ()
    not_understood: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    confidence: float = 0.0
    code: str = "not_understood"  # stable, for the API: not_understood, bad_date, empty_question, ...
