"""The chart an answer's shape suits, as app.js draws it: a line over time, bars over categories, or none."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any, Final, TypedDict

from hisplatform.labels import column_labels

# Bars for more categories than this are too thin to read or label; the table says it better.
MAX_BARS: Final = 50
# Years, months, ISO weeks and days as the warehouse's date functions write them, with an optional time.
_WHEN: Final = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?")


class Dataset(TypedDict):
    label: str
    data: list[float | int | None]


class ChartSpec(TypedDict):
    type: str
    labels: list[str]
    datasets: list[Dataset]
    x_label: str
    y_label: str


def chart_spec(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    hidden: Collection[str] = (),
    labels: Sequence[str] | None = None,
) -> ChartSpec | None:
    """A line chart when the first column is dates (years, months, weeks, days) and every other column
    is numeric; a bar chart for one category column and one numeric column with at most MAX_BARS rows;
    otherwise None. `hidden` are the texts suppressed cells are shown as ("<11"): drawn as gaps (null),
    never as a number. Axes and datasets are named by `labels` (the columns' headings), by default
    hisplatform.labels' reading of the column names."""
    if len(columns) < 2 or len(rows) < 2 or any(len(row) != len(columns) for row in rows):
        return None
    if labels is None or len(labels) != len(columns):
        labels = column_labels(columns)
    firsts = [row[0] for row in rows]
    measures = list(range(1, len(columns)))
    if all(numeric_columns(rows, len(columns), hidden)[1:]):
        if all(isinstance(value, str) and _WHEN.fullmatch(value) for value in firsts):
            return _spec("line", labels, rows, measures)
        if len(columns) == 2 and len(rows) <= MAX_BARS and all(_category(value) for value in firsts):
            return _spec("bar", labels, rows, measures)
    return None


def _spec(kind: str, labels: Sequence[str], rows: Sequence[Sequence[Any]], measures: list[int]) -> ChartSpec:
    return {
        "type": kind,
        "labels": [str(row[0]) for row in rows],
        "datasets": [
            {"label": labels[i], "data": [row[i] if _is_number(row[i]) else None for row in rows]}
            for i in measures
        ],
        "x_label": labels[0],
        "y_label": labels[measures[0]] if len(measures) == 1 else "",
    }


def _is_number(value: Any) -> bool:
    # bool is an int to Python, but a yes/no answer is not a quantity to draw.
    return isinstance(value, int | float) and not isinstance(value, bool)


def numeric_columns(rows: Sequence[Sequence[Any]], width: int, hidden: Collection[str] = ()) -> list[bool]:
    """For each column, whether it holds numbers: numbers, gaps and suppressed cells only, and at least
    one number (tables align such columns to the right; charts draw them)."""
    return [
        any(_is_number(row[i]) for row in rows)
        and all(
            row[i] is None or _is_number(row[i]) or (isinstance(row[i], str) and row[i] in hidden)
            for row in rows
        )
        for i in range(width)
    ]


def _category(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""
