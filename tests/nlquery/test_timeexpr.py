"""Time constraints: unit cases, and agreement with EHRSQL's annotated time slots on valid."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from nlquery.timeexpr import TimeConstraint, find_time_constraints
from tests.conftest import SHARED


def _one(question: str) -> TimeConstraint:
    found = [c for c in find_time_constraints(question) if c.kind != "ordinal"]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("patients admitted in 2100", {"kind": "abs", "op": "in", "year": 2100}),
        ("prescribed since 12/2100", {"kind": "abs", "op": "since", "year": 2100, "month": 12}),
        ("input on 07/02/2100", {"kind": "abs", "op": "in", "year": 2100, "month": 7, "day": 2}),
        ("charted in March 2100", {"kind": "abs", "op": "in", "year": 2100, "month": 3}),
        ("since 3 months ago", {"kind": "rel", "op": "since", "amount": 3, "unit": "month"}),
        ("in the last 30 days", {"kind": "rel", "op": "since", "amount": 30, "unit": "day"}),
        ("over the past two years", {"kind": "rel", "op": "since", "amount": 2, "unit": "year"}),
        ("this year", {"kind": "rel", "op": "in", "amount": 0, "unit": "year"}),
        ("during the previous month", {"kind": "rel", "op": "in", "amount": 1, "unit": "month"}),
        ("yesterday", {"kind": "rel", "op": "in", "amount": 1, "unit": "day"}),
        ("in 11/this year", {"kind": "abs", "month": 11, "relative_year": 0}),
        ("on 12/24/last year", {"kind": "abs", "month": 12, "day": 24, "relative_year": -1}),
        ("on last month/27", {"kind": "abs", "day": 27, "relative_month": -1}),
        ("on the first hospital visit", {"kind": "visit", "visit": "hospital", "which": "first"}),
        ("during their most recent icu stay", {"kind": "visit", "visit": "icu", "which": "last"}),
        ("on the current hospital encounter", {"kind": "visit", "visit": "hospital", "which": "current"}),
        ("within 2 months after the diagnosis", {"kind": "within", "amount": 2, "unit": "month"}),
        ("within the same hospital visit", {"kind": "within", "unit": "hospital"}),
        ("at the same time", {"kind": "within", "unit": "same"}),
    ],
)
def test_time_expressions(question: str, expected: dict[str, object]) -> None:
    constraint = _one(question)
    for key, value in expected.items():
        assert getattr(constraint, key) == value, (key, constraint)


def test_impossible_dates_are_not_read_as_dates() -> None:
    assert find_time_constraints("on 13/45/2100") == []


def test_spans_point_at_the_words_read() -> None:
    question = "What was the last potassium of patient 10018081 since 3 months ago?"
    spans = [question[c.start : c.end] for c in find_time_constraints(question)]
    assert spans == ["last", "since 3 months ago"]


def ehrsql_type(c: TimeConstraint) -> str | None:
    """Our constraint in the vocabulary of EHRSQL's annotation (valid/annotated.json)."""
    if c.kind == "visit":
        return (
            f"rel-{'hosp' if c.visit == 'hospital' else 'icu'}-{'cur' if c.which == 'current' else c.which}"
        )
    if c.kind == "within":
        if c.amount is not None:
            return f"within-n_{c.unit}"
        return "within-hosp" if c.unit == "hospital" else f"within-{c.unit}"
    if c.kind == "rel":
        return f"rel-{c.unit}-{'since' if c.op == 'since' else ('this' if c.amount == 0 else 'last')}"
    if c.kind == "abs":
        if c.relative_year is not None:
            which = "this_year" if c.relative_year == 0 else "last_year"
            return f"mix-{'day' if c.day else 'month'}-{which}"
        if c.relative_month is not None:
            return f"mix-day-{'this_month' if c.relative_month == 0 else 'last_month'}"
        grain = "day" if c.day else "month" if c.month else "year"
        return f"abs-{grain}-{c.op}"
    return None


def test_agreement_with_ehrsql_valid_annotations() -> None:
    """Share of annotated (non-ordinal) time slots in valid that we read with the same type."""
    path = SHARED / "benchmarks" / "ehrsql" / "valid" / "annotated.json"
    if not path.exists():
        pytest.skip(f"EHRSQL annotations not found at {path} (../shared is absent)")
    agree, total = 0, 0
    misses: Counter[str] = Counter()
    for item in json.loads(path.read_text()):
        slots = item["val_dict"]["time_placeholder"] if isinstance(item.get("val_dict"), dict) else {}
        gold = sorted(
            v["type"]
            for v in slots.values()
            if v["type"] not in ("null", "exact-default") and not v["type"].startswith("exact-")
        )
        if not gold:
            continue
        ours = sorted(t for c in find_time_constraints(item["question"]) if (t := ehrsql_type(c)))
        # The same slot can be written twice in a template (global1 and global2); compare as sets.
        total += 1
        if set(ours) == set(gold):
            agree += 1
        else:
            misses[f"{sorted(set(gold))} vs {sorted(set(ours))}"] += 1
    rate = agree / total
    print(
        f"time constraints agree on {agree}/{total} = {rate:.1%}; most common misses: {misses.most_common(8)}"
    )
    assert rate >= 0.9
