"""Read a question: patients, values, time constraints and rule findings, with overlaps resolved."""

from __future__ import annotations

from nlquery.families.base import Found
from nlquery.matcher import ValueMatch, ValueMatcher
from nlquery.patterns import find_patterns
from nlquery.timeexpr import find_time_constraints


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def read_question(question: str, matcher: ValueMatcher) -> Found:
    """Everything the rule readers find; a value's span wins over time words and findings inside it."""
    patterns = find_patterns(question)
    # "pt 10018081" names a patient, not the prothrombin-time lab: identifiers win their span.
    patient_spans = [(f.start, f.end) for f in patterns if f.kind == "patient"]
    values = [v for v in matcher.find(question) if not _overlaps(v.start, v.end, patient_spans)]
    grouped: dict[tuple[int, int], list[ValueMatch]] = {}
    for v in values:
        grouped.setdefault((v.start, v.end), []).append(v)
    value_spans = list(grouped)
    time = tuple(t for t in find_time_constraints(question) if not _overlaps(t.start, t.end, value_spans))
    # A finding inside a value or a time phrase is part of it ("since 141 days ago" is no elapsed unit).
    time_spans = [(t.start, t.end) for t in time]
    others = tuple(
        f
        for f in patterns
        if f.kind != "patient"
        and not _overlaps(f.start, f.end, value_spans)
        and not (f.kind != "comparison" and _inside(f.start, f.end, time_spans))
    )
    patients = tuple(sorted({f.value for f in patterns if f.kind == "patient" and isinstance(f.value, int)}))
    return Found(
        text=question,
        patients=patients,
        spans=tuple(tuple(grouped[key]) for key in sorted(grouped)),
        time=time,
        patterns=others,
    )
