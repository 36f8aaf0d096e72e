"""Disclosure control on results: small cells hidden with their complements, and rows made k-anonymous
(with l-diversity) by the least generalisation that works, checked on tables worked out by hand and on
random tables against an exhaustive search."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from fractions import Fraction
from itertools import product
from typing import Any

import numpy as np
import pytest

from accessctl.sdc import (
    LEVELS,
    QI,
    Aggregate,
    Risk,
    age_top_code,
    generalise,
    k_anonymise,
    suppress_small_cells,
)
from accessctl.sdc import _withheld as _withheld_rows

# --- Small-cell suppression -------------------------------------------------------------------------

BY_DEPARTMENT = ["department", "patients", "share_pct"]


def _one_dimension(counts: dict[str | None, int], *, margins: bool = True) -> Aggregate:
    total = sum(counts.values())
    rows = [[name, n, round(100 * n / total, 1)] for name, n in counts.items()]
    return Aggregate(
        columns=BY_DEPARTMENT,
        rows=rows,
        dimensions=[0],
        measures=[1, 2],
        patients=list(counts.values()),
        margins=margins,
    )


def test_no_small_cells_leaves_the_table_as_it_was() -> None:
    table = _one_dimension({"Cardiology": 40, "ICU": 11, "Oncology": 25})

    result = suppress_small_cells(table)

    assert result.rows == [["Cardiology", 40, 52.6], ["ICU", 11, 14.5], ["Oncology", 25, 32.9]]
    assert (result.primary, result.complementary, result.notices) == ([], [], [])


def test_one_dimension_with_percentages_hides_the_small_group_and_the_next_smallest() -> None:
    table = _one_dimension({"Cardiology": 5, "ICU": 12, "Oncology": 40, "Surgery": 83})

    result = suppress_small_cells(table)

    assert result.rows == [
        ["Cardiology", "<11", "<11"],
        ["ICU", "*", "*"],
        ["Oncology", 40, 28.6],
        ["Surgery", 83, 59.3],
    ]
    assert result.primary == [0]
    assert result.complementary == [1]
    assert result.notices == [
        "1 group of 1 to 10 patients is shown as <11.",
        "1 more group is shown as * so that the small one cannot be worked out from totals.",
    ]


def test_without_margins_only_the_small_groups_are_hidden() -> None:
    table = _one_dimension({"Cardiology": 5, "ICU": 12, "Oncology": 3}, margins=False)

    result = suppress_small_cells(table)

    assert result.rows == [["Cardiology", "<11", "<11"], ["ICU", 12, 60.0], ["Oncology", "<11", "<11"]]
    assert (result.primary, result.complementary) == ([0, 2], [])
    assert result.notices == ["2 groups of 1 to 10 patients are shown as <11."]


def test_two_small_groups_that_add_up_to_under_the_threshold_need_a_third() -> None:
    table = _one_dimension({"A": 3, "B": 4, "C": 30, "D": 50})

    result = suppress_small_cells(table)

    # 3 + 4 = 7 patients hidden: the total would still pin both down to a handful of patients.
    assert (result.primary, result.complementary) == ([0, 1], [2])
    assert [row[1] for row in result.rows] == ["<11", "<11", "*", 50]
    assert result.notices == [
        "2 groups of 1 to 10 patients are shown as <11.",
        "1 more group is shown as * so that the small ones cannot be worked out from totals.",
    ]


def test_groups_that_are_all_small_hide_nothing_more() -> None:
    result = suppress_small_cells(_one_dimension({"A": 3, "B": 4, "C": 2}))

    assert (result.primary, result.complementary) == ([0, 1, 2], [])
    assert [row[1:] for row in result.rows] == [["<11", "<11"]] * 3


def test_a_complement_is_never_an_empty_group() -> None:
    table = _one_dimension({"A": 5, "B": 0, "C": 30, "D": 40})

    result = suppress_small_cells(table)

    # Hiding B's 0 would protect nothing (5 + 0 is still under 11): C is the complement, B stays as it is.
    assert (result.primary, result.complementary) == ([0], [2])
    assert [row[1] for row in result.rows] == ["<11", 0, "*", 40]


def test_ties_go_to_the_lowest_row() -> None:
    result = suppress_small_cells(_one_dimension({"A": 5, "B": 20, "C": 20, "D": 20}))

    assert result.complementary == [1]


def _cross_tab(
    cells: dict[tuple[str, str | None], int], *, totals: dict[str, int] | None = None
) -> Aggregate:
    rows: list[list[Any]] = [[dept, month, n, n * 3] for (dept, month), n in cells.items()]
    patients = list(cells.values())
    total_rows: list[int] = []
    for dept, n in (totals or {}).items():
        total_rows.append(len(rows))
        rows.append([dept, None, n, n * 3])
        patients.append(n)
    return Aggregate(
        columns=["department", "month", "patients", "admissions"],
        rows=rows,
        dimensions=[0, 1],
        measures=[2, 3],
        patients=patients,
        margins=True,
        total_rows=total_rows,
    )


def test_cross_tab_hides_a_complement_along_both_dimensions() -> None:
    #        Jan  Feb  Mar
    # ICU      3   20   30
    # Ward    25   22   40
    # Theatre 30    5   50
    months = ["Jan", "Feb", "Mar"]
    counts = {"ICU": [3, 20, 30], "Ward": [25, 22, 40], "Theatre": [30, 5, 50]}
    table = _cross_tab({(d, m): n for d, ns in counts.items() for m, n in zip(months, ns, strict=True)})

    result = suppress_small_cells(table)

    # By month: Jan's lone 3 takes Ward-Jan (25), Feb's lone 5 takes ICU-Feb (20). By department:
    # Ward's lone Jan takes Ward-Feb (22), Theatre's lone Feb takes Theatre-Jan (30). Mar stays whole.
    assert result.primary == [0, 7]
    assert result.complementary == [1, 3, 4, 6]
    assert result.rows == [
        ["ICU", "Jan", "<11", "<11"],
        ["ICU", "Feb", "*", "*"],
        ["ICU", "Mar", 30, 90],
        ["Ward", "Jan", "*", "*"],
        ["Ward", "Feb", "*", "*"],
        ["Ward", "Mar", 40, 120],
        ["Theatre", "Jan", "*", "*"],
        ["Theatre", "Feb", "<11", "<11"],
        ["Theatre", "Mar", 50, 150],
    ]
    assert result.notices == [
        "2 groups of 1 to 10 patients are shown as <11.",
        "4 more groups are shown as * so that the small ones cannot be worked out from totals.",
    ]


def test_a_hide_along_one_dimension_can_need_another_along_the_first() -> None:
    #       Jan  Feb  Mar
    # ICU     3   50   45
    # Ward   40   30   35
    months = ["Jan", "Feb", "Mar"]
    counts = {"ICU": [3, 50, 45], "Ward": [40, 30, 35]}
    table = _cross_tab({(d, m): n for d, ns in counts.items() for m, n in zip(months, ns, strict=True)})

    result = suppress_small_cells(table)

    # First pass: Jan takes Ward-Jan; ICU takes ICU-Mar (45 < 50); Ward takes Ward-Feb (30 < 35). That
    # leaves Feb and Mar each with one hidden cell, so the second pass takes ICU-Feb and Ward-Mar.
    assert result.primary == [0]
    assert result.complementary == [1, 2, 3, 4, 5]


def test_total_rows_are_kept_and_stay_out_of_the_groups() -> None:
    table = _cross_tab(
        {("ICU", "Jan"): 4, ("ICU", "Feb"): 30, ("Ward", "Jan"): 25, ("Ward", "Feb"): 35},
        totals={"ICU": 34, "Ward": 60},
    )

    result = suppress_small_cells(table)

    assert result.primary == [0]
    assert result.complementary == [1, 2, 3]
    assert result.rows[4:] == [["ICU", None, 34, 102], ["Ward", None, 60, 180]]


def test_a_small_total_row_is_hidden_like_any_small_row() -> None:
    table = _cross_tab({("ICU", "Jan"): 4, ("ICU", "Feb"): 3}, totals={"ICU": 7})

    result = suppress_small_cells(table)

    assert (result.primary, result.complementary) == ([0, 1, 2], [])
    assert result.rows[2] == ["ICU", None, "<11", "<11"]


def test_total_rows_alone_turn_on_complementary_suppression() -> None:
    rows = [["ICU", 4], ["Ward", 30], ["Theatre", 12], ["All", 46]]
    table = Aggregate(
        columns=["department", "patients"],
        rows=rows,
        dimensions=[0],
        measures=[1],
        patients=[4, 30, 12, 46],
        margins=False,
        total_rows=[3],
    )

    result = suppress_small_cells(table)

    assert result.rows == [["ICU", "<11"], ["Ward", 30], ["Theatre", "*"], ["All", 46]]


def test_none_is_a_group_of_its_own_and_a_hidden_none_is_hidden_too() -> None:
    table = Aggregate(
        columns=["department", "patients", "mean_stay_days"],
        rows=[[None, 4, None], ["ICU", 30, 4.5], ["Ward", 12, None]],
        dimensions=[0],
        measures=[1, 2],
        patients=[4, 30, 12],
        margins=True,
    )

    result = suppress_small_cells(table)

    assert result.rows == [[None, "<11", "<11"], ["ICU", 30, 4.5], ["Ward", "*", "*"]]


def test_cross_tab_groups_a_missing_month_as_a_month() -> None:
    table = _cross_tab({("ICU", "Jan"): 4, ("Ward", "Jan"): 30, ("ICU", None): 25, ("Ward", None): 40})

    result = suppress_small_cells(table)

    # Jan takes Ward-Jan; ICU takes ICU-None; then the None month has a lone hidden cell and takes Ward-None.
    assert (result.primary, result.complementary) == ([0], [1, 2, 3])


def test_a_single_row_result_is_hidden_when_small() -> None:
    table = Aggregate(
        columns=["patients", "mean_age"],
        rows=[[7, 61.3]],
        dimensions=[],
        measures=[0, 1],
        patients=[7],
        margins=True,
    )

    result = suppress_small_cells(table)

    assert result.rows == [["<11", "<11"]]
    assert (result.primary, result.complementary) == ([0], [])
    assert result.notices == ["The result covers 1 to 10 patients, so its numbers are shown as <11."]


def test_zero_patients_are_shown() -> None:
    table = Aggregate(
        columns=["patients", "mean_age"],
        rows=[[0, None]],
        dimensions=[],
        measures=[0, 1],
        patients=[0],
        margins=False,
    )

    result = suppress_small_cells(table)

    assert result.rows == [[0, None]]
    assert result.notices == []


def test_the_threshold_is_the_callers() -> None:
    result = suppress_small_cells(_one_dimension({"A": 4, "B": 5}, margins=False), threshold=5)

    assert result.rows == [["A", "<5", "<5"], ["B", 5, 55.6]]
    assert result.notices == ["1 group of 1 to 4 patients is shown as <5."]


def test_the_input_table_is_not_changed() -> None:
    table = _one_dimension({"A": 4, "B": 50})
    before = [list(row) for row in table.rows]

    suppress_small_cells(table)

    assert [list(row) for row in table.rows] == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patients": [1]}, "1 patient counts for 2 rows"),
        ({"patients": [-1, 3]}, "a patient count cannot be negative"),
        ({"measures": [1, 2, 5]}, "dimension and measure indexes must be between 0 and 2"),
        ({"measures": [0, 1]}, "a column is listed twice among dimensions and measures"),
        ({"rows": [["A", 1], ["B", 2, 3]]}, "every row must have 3 cells, one per column"),
        ({"total_rows": [2]}, "total row indexes must be between 0 and 1"),
    ],
)
def test_malformed_tables_are_refused(change: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "columns": BY_DEPARTMENT,
        "rows": [["A", 1, 50.0], ["B", 1, 50.0]],
        "dimensions": [0],
        "measures": [1, 2],
        "patients": [1, 1],
        "margins": True,
    } | change

    with pytest.raises(ValueError, match=message):
        suppress_small_cells(Aggregate(**fields))


def _random_cross_tab(rng: random.Random) -> Aggregate:
    departments = [f"D{i}" for i in range(rng.randint(1, 5))]
    months = [f"M{i}" for i in range(rng.randint(1, 6))]
    cells = [(d, m) for d in departments for m in months if rng.random() < 0.9]
    patients = [rng.choice([0, 1, 3, 7, 10, 11, 15, 40, 90]) for _ in cells]
    return Aggregate(
        columns=["department", "month", "patients"],
        rows=[[d, m, n] for (d, m), n in zip(cells, patients, strict=True)],
        dimensions=[0, 1],
        measures=[2],
        patients=patients,
        margins=True,
    )


@pytest.mark.parametrize("seed", range(200))
def test_random_cross_tabs_leave_no_line_that_gives_a_cell_away(seed: int) -> None:
    table = _random_cross_tab(random.Random(seed))

    result = suppress_small_cells(table)

    hidden = set(result.primary) | set(result.complementary)
    assert result.primary == [i for i, n in enumerate(table.patients) if 0 < n < 11]
    assert all(table.patients[i] > 0 for i in result.complementary)
    for d in (0, 1):
        lines: dict[Any, list[int]] = defaultdict(list)
        for i, row in enumerate(table.rows):
            lines[row[1 - d]].append(i)
        for members in lines.values():
            shut = [i for i in members if i in hidden]
            still_open = [i for i in members if i not in hidden and table.patients[i] > 0]
            safe = not shut or (len(shut) > 1 and sum(table.patients[i] for i in shut) >= 11)
            assert safe or not still_open, (members, shut)
    for i, row in enumerate(result.rows):
        expected = "<11" if i in result.primary else "*" if i in hidden else table.rows[i][2]
        assert row == [*table.rows[i][:2], expected]


# --- Generalisation hierarchies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "ladder"),
    [
        (QI.AGE, 42, [42, "40-44", "40-49", "40-59", "*"]),
        (QI.AGE, "47", ["47", "45-49", "40-49", "40-59", "*"]),
        (QI.AGE, 59.9, [59.9, "55-59", "50-59", "40-59", "*"]),
        (QI.AGE, 0, [0, "0-4", "0-9", "0-19", "*"]),
        (QI.AGE, "90+", ["90+", "90+", "90+", "80+", "*"]),
        (QI.AGE, "unknown", ["unknown", "unknown", "unknown", "unknown", "*"]),
        (QI.AGE, -3, [-3, -3, -3, -3, "*"]),
        (QI.AGE, None, [None] * 5),
        (QI.DATE, dt.datetime(2024, 5, 17, 13, 45), [dt.datetime(2024, 5, 17, 13, 45), "2024-05-17"]),
        (
            QI.DATE,
            "2024-05-17 13:45:00",
            ["2024-05-17 13:45:00", "2024-05-17", "2024-05", "2024-Q2", "2024", "*"],
        ),
        (
            QI.DATE,
            "2024-11-30T08:00:00",
            ["2024-11-30T08:00:00", "2024-11-30", "2024-11", "2024-Q4", "2024", "*"],
        ),
        (
            QI.DATE,
            dt.date(2023, 1, 1),
            [dt.date(2023, 1, 1), "2023-01-01", "2023-01", "2023-Q1", "2023", "*"],
        ),
        (QI.DATE, "2024-02-30", ["2024-02-30"] * 5 + ["*"]),
        (QI.DATE, None, [None] * 6),
        (QI.POSTCODE, "SW1A 1AA", ["SW1A 1AA", "SW1", "SW", "S", "*"]),
        (QI.POSTCODE, "n1 9gu", ["n1 9gu", "N1", "N1", "N", "*"]),
        (QI.POSTCODE, 210008, [210008, "210", "21", "2", "*"]),
        (QI.POSTCODE, None, [None] * 5),
        (QI.SEX, "F", ["F", "*"]),
        (QI.SEX, None, [None, None]),
        (QI.DIAGNOSIS, "I21.4", ["I21.4", "I21", "I", "*"]),
        (QI.DIAGNOSIS, "icd10:e11.9", ["icd10:e11.9", "E11", "E", "*"]),
        (QI.DIAGNOSIS, "ICD10: F32", ["ICD10: F32", "F32", "F", "*"]),
        (QI.DIAGNOSIS, None, [None] * 4),
        (QI.CATEGORY, "emergency", ["emergency", "*"]),
    ],
)
def test_each_level_of_each_hierarchy(kind: QI, value: Any, ladder: list[Any]) -> None:
    assert [generalise(kind, value, level) for level in range(len(ladder))] == ladder


@pytest.mark.parametrize(
    ("value", "ladder"),
    [
        (95, [95, "90+", "90+", "80+", "*"]),
        (89, [89, "85-89", "80-89", "80+", "*"]),
        (79, [79, "75-79", "70-79", "60-79", "*"]),
        ("90+", ["90+", "90+", "90+", "80+", "*"]),
    ],
)
def test_ages_at_or_past_a_top_code_join_it(value: Any, ladder: list[Any]) -> None:
    assert [generalise(QI.AGE, value, level, top_age=90) for level in range(5)] == ladder


def test_the_top_code_is_the_lowest_in_the_column() -> None:
    assert age_top_code([40, "90+", " 85 +", None, "x"]) == 85
    assert age_top_code([40, 95]) is None


def test_a_level_past_the_top_is_refused() -> None:
    with pytest.raises(ValueError, match="sex has levels 0 to 1, not 2"):
        generalise(QI.SEX, "F", 2)


# --- k-anonymity: tables worked out by hand --------------------------------------------------------

PEOPLE = ["age", "sex", "diagnosis"]
SIX = [
    [41, "F", "I21"],
    [43, "F", "E11"],
    [47, "F", "J45"],
    [48, "F", "I10"],
    [52, "M", "C50"],
    [55, "M", "K35"],
]


def test_ages_in_10_year_bands_when_nothing_may_be_withheld() -> None:
    # 5-year bands leave 50-54 and 55-59 with one man each; 10-year bands give 4 women and 2 men.
    result = k_anonymise(PEOPLE, SIX, quasi={0: QI.AGE, 1: QI.SEX}, sensitive=[2], k=2, max_suppression=0)

    assert result.rows == [
        ["40-49", "F", "I21"],
        ["40-49", "F", "E11"],
        ["40-49", "F", "J45"],
        ["40-49", "F", "I10"],
        ["50-59", "M", "C50"],
        ["50-59", "M", "K35"],
    ]
    assert result.levels == {"age": "10-year bands", "sex": "kept"}
    assert (result.suppressed_rows, result.k, result.smallest_class) == (0, 2, 2)
    assert (result.l_diversity, result.l_violations) == ({"diagnosis": 2}, 0)
    assert result.risk == Risk(highest=0.5, average=2 / 6, at_risk=1.0)
    assert result.notices == [
        "Shown less precisely so that each row matches at least 2 rows: age in 10-year bands."
    ]


def test_ages_in_5_year_bands_when_two_rows_may_be_withheld() -> None:
    result = k_anonymise(PEOPLE, SIX, quasi={0: QI.AGE, 1: QI.SEX}, sensitive=[2], k=2, max_suppression=1 / 3)

    assert result.rows == [
        ["40-44", "F", "I21"],
        ["40-44", "F", "E11"],
        ["45-49", "F", "J45"],
        ["45-49", "F", "I10"],
    ]
    assert result.levels == {"age": "5-year bands", "sex": "kept"}
    assert (result.suppressed_rows, result.smallest_class) == (2, 2)
    assert result.risk == Risk(highest=0.5, average=0.5, at_risk=1.0)
    assert result.notices == [
        "Shown less precisely so that each row matches at least 2 rows: age in 5-year bands.",
        "2 rows were withheld because fewer than 2 rows matched them.",
    ]


def test_the_allowance_is_exact_however_floats_round() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; 29 rows are still 29% of 100.
    rows = [["common"]] * 71 + [[f"rare {i}"] for i in range(29)]

    result = k_anonymise(["category"], rows, quasi={0: QI.CATEGORY}, k=2, max_suppression=0.29)

    assert result.levels == {"category": "kept"}
    assert result.suppressed_rows == 29
    assert result.rows == [["common"]] * 71


def test_equal_loss_goes_to_the_node_that_withholds_fewer_rows() -> None:
    rows = [[30, "F"], [30, "M"], [50, "F"], [50, "M"], [70, "F"]]

    result = k_anonymise(["age", "sex"], rows, quasi={0: QI.AGE, 1: QI.SEX}, k=2, max_suppression=0.2)

    # Hiding sex (loss 1) withholds the one 70-year-old; hiding age (loss 4/4 = 1) withholds no one.
    assert result.levels == {"age": "hidden", "sex": "kept"}
    assert result.rows == [["*", "F"], ["*", "M"], ["*", "F"], ["*", "M"], ["*", "F"]]
    assert result.suppressed_rows == 0
    assert result.notices == ["Shown less precisely so that each row matches at least 2 rows: age hidden."]


ADMISSIONS = ["admitted", "postcode", "diagnosis", "cost"]
SIX_ADMISSIONS = [
    ["2024-01-03 08:00:00", "SW1A 1AA", "I21.4", 100],
    ["2024-01-17 09:30:00", "SW1A 2BB", "I10", 200],
    ["2024-01-29 23:10:00", "SW1P 3CC", "I21.4", 300],
    ["2024-02-02 10:00:00", "E14 5AB", "J45", 400],
    ["2024-02-14 11:00:00", "E14 9ZZ", "J45", 500],
    ["2024-02-20 12:00:00", "E1 6AN", "J45", 600],
]


def test_dates_by_month_postcodes_by_two_characters_and_one_class_without_diversity() -> None:
    # First 3 characters leave "E1" alone; quarters or years do not help it. Month + 2 characters
    # (loss 2/5 + 2/4) is the cheapest node that keeps 3 rows together.
    result = k_anonymise(
        ADMISSIONS, SIX_ADMISSIONS, quasi={0: QI.DATE, 1: QI.POSTCODE}, sensitive=[2], k=3, max_suppression=0
    )

    assert result.rows == [
        ["2024-01", "SW", "I21.4", 100],
        ["2024-01", "SW", "I10", 200],
        ["2024-01", "SW", "I21.4", 300],
        ["2024-02", "E1", "*", 400],
        ["2024-02", "E1", "*", 500],
        ["2024-02", "E1", "*", 600],
    ]
    assert result.levels == {"admitted": "month", "postcode": "first 2 characters"}
    assert (result.l_diversity, result.l_violations) == ({"diagnosis": 1}, 1)
    assert result.notices == [
        "Shown less precisely so that each row matches at least 3 rows: admitted by month and postcode by "
        "its first 2 characters.",
        "diagnosis is shown as * in 1 group of rows where it had fewer than 2 different values.",
    ]
    assert result.risk.describe() == (
        "Every row shares its identifying columns with at least 2 other rows, so the chance of recognising "
        "a patient is at most 33% (on average 33%); 100% of rows are in groups of fewer than 5."
    )


def test_several_rows_of_one_patient_are_not_a_crowd() -> None:
    rows = [[41, "F", "home"], [41, "F", "home"], [41, "F", "died"], [47, "F", "home"], [47, "F", "home"]]
    rows.append([48, "F", "transfer"])
    subjects = [101, 101, 101, 102, 103, 104]

    columns = ["age", "sex", "discharged_to"]
    by_rows = k_anonymise(columns, rows, quasi={0: QI.AGE, 1: QI.SEX}, k=3, max_suppression=0)
    by_patients = k_anonymise(
        columns, rows, quasi={0: QI.AGE, 1: QI.SEX}, k=3, max_suppression=0, subjects=subjects
    )

    # Counting rows, 5-year bands give classes of 3 and 3. Counting patients, 40-44 holds one patient:
    # only 10-year bands put 4 patients together.
    assert by_rows.levels == {"age": "5-year bands", "sex": "kept"}
    assert by_patients.levels == {"age": "10-year bands", "sex": "kept"}
    assert [row[0] for row in by_patients.rows] == ["40-49"] * 6
    assert by_patients.smallest_class == 4
    assert by_patients.risk == Risk(highest=0.25, average=0.25, at_risk=1.0, unit="patient")
    assert by_patients.notices == [
        "Shown less precisely so that each row matches at least 3 patients: age in 10-year bands."
    ]
    assert by_patients.risk.describe() == (
        "Every row shares its identifying columns with at least 3 other patients, so the chance of "
        "recognising a patient is at most 25% (on average 25%); 100% of rows are in groups of fewer than 5."
    )


def test_a_patient_for_every_row() -> None:
    with pytest.raises(ValueError, match="2 patients for 6 rows"):
        k_anonymise(PEOPLE, SIX, quasi={0: QI.AGE}, subjects=[1, 2])


def test_exact_ages_past_a_top_code_join_it() -> None:
    rows: list[list[Any]] = [["90+"], [88], [93], ["90+"], [86], [97], [85]]

    result = k_anonymise(["age"], rows, quasi={0: QI.AGE}, k=3, max_suppression=0)

    assert result.rows == [["90+"], ["85-89"], ["90+"], ["90+"], ["85-89"], ["90+"], ["85-89"]]
    assert result.levels == {"age": "5-year bands"}


def test_diagnoses_by_category_whatever_their_spelling() -> None:
    rows = [["I21.4"], ["icd10:I21.9"], ["I210"], ["E11.9"], ["E119"], ["icd10:e11.65"]]

    result = k_anonymise(["diagnosis"], rows, quasi={0: QI.DIAGNOSIS}, k=3, max_suppression=0)

    assert result.rows == [["I21"], ["I21"], ["I21"], ["E11"], ["E11"], ["E11"]]
    assert result.levels == {"diagnosis": "3-character category"}


def test_none_is_its_own_value_at_every_level() -> None:
    rows: list[list[Any]] = [[None, "a"], [41, "b"], [None, "c"], [42, "d"], [None, "e"], [43, "f"]]

    result = k_anonymise(["age", "note"], rows, quasi={0: QI.AGE}, k=3, max_suppression=0)

    assert result.rows == [
        [None, "a"],
        ["40-44", "b"],
        [None, "c"],
        ["40-44", "d"],
        [None, "e"],
        ["40-44", "f"],
    ]


def test_unreadable_values_are_their_own_group() -> None:
    rows: list[list[Any]] = [["unknown"], ["unknown"], [41], [44], [2]]

    result = k_anonymise(["age"], rows, quasi={0: QI.AGE}, k=2, max_suppression=0.2)

    assert result.rows == [["unknown"], ["unknown"], ["40-44"], ["40-44"]]
    assert result.suppressed_rows == 1


def test_too_few_rows_gives_no_rows() -> None:
    result = k_anonymise(PEOPLE, SIX[:3], quasi={0: QI.AGE, 1: QI.SEX}, sensitive=[2], k=5)

    assert result.rows == []
    assert (result.suppressed_rows, result.smallest_class) == (3, 0)
    assert result.levels == {"age": "hidden", "sex": "hidden"}
    assert result.l_diversity == {"diagnosis": 0}
    assert result.risk == Risk(highest=0.0, average=0.0, at_risk=0.0)
    assert result.risk.describe() == "No rows are shown, so no one can be recognised from them."
    assert result.notices == [
        "No rows can be shown: even with every identifying column hidden, fewer than 5 rows match each other."
    ]


def test_when_no_node_is_within_the_budget_everything_is_hidden_and_the_rest_withheld() -> None:
    rows: list[list[Any]] = [["F", 1], ["F", 2], ["F", 3], [None, 4], ["F", 5], ["F", 6], ["F", 7]]

    result = k_anonymise(["sex", "id"], rows, quasi={0: QI.SEX}, k=5, max_suppression=0)

    assert result.rows == [["*", 1], ["*", 2], ["*", 3], ["*", 5], ["*", 6], ["*", 7]]
    assert result.levels == {"sex": "hidden"}
    assert result.notices == [
        "Every identifying column is hidden: no coarser grouping kept at least 5 rows together without "
        "withholding more than 0% of the rows.",
        "1 row was withheld because fewer than 5 rows matched it.",
    ]


@pytest.mark.parametrize("one_patient_a_row", [False, True])
def test_many_wide_columns_do_not_run_classes_together(one_patient_a_row: bool) -> None:
    # 4,096 values in the first column and 2,048 in six more: 2**78 combinations, past what an int64
    # class key holds. Every row is unique, and each column alone is 2-anonymous. A key that wrapped
    # around would keep only the first column's lowest bits and see classes of 4 rows everywhere.
    def row(r: int) -> list[int]:
        quarter = (r // 512 + r // 4096) % 4
        return [r % 4096, *[r % 512 + 512 * quarter] * 6]

    rows = [row(r) for r in range(8192)]
    columns = [f"c{j}" for j in range(7)]

    subjects = list(range(8192)) if one_patient_a_row else None

    result = k_anonymise(columns, rows, quasi=dict.fromkeys(range(7), QI.CATEGORY), k=2, subjects=subjects)

    assert result.levels == {"c0": "hidden"} | dict.fromkeys(columns[1:], "kept")
    assert (result.suppressed_rows, result.smallest_class) == (0, 4)


def test_patient_counts_stay_exact_past_int64() -> None:
    # The (class, patient) pairs are packed into one int64; classes 0 and 2**62 must not wrap into one.
    # No table small enough for a test reaches this past the pair and triple vetoes, hence the helper.
    key = np.array([0, 2**62, 5, 5], dtype=np.int64)
    people = np.array([0, 1, 2, 3], dtype=np.int64)

    assert _withheld_rows(key, 2**62 + 1, 2, people) == 2


def test_no_generalisation_needed_keeps_every_value() -> None:
    rows = [["F", "x"]] * 3 + [["M", "y"]] * 3

    result = k_anonymise(["sex", "diagnosis"], rows, quasi={0: QI.SEX}, sensitive=[1], k=3, l=1)

    assert result.rows == [list(row) for row in rows]
    assert result.levels == {"sex": "kept"}
    assert result.notices == []
    assert result.l_diversity == {"diagnosis": 1}
    assert result.l_violations == 0


def test_without_quasi_identifiers_the_rows_are_one_group() -> None:
    rows = [[1, "a"], [2, "b"], [3, "a"]]

    shown = k_anonymise(["id", "diagnosis"], rows, quasi={}, sensitive=[1], k=3)
    withheld = k_anonymise(["id", "diagnosis"], rows, quasi={}, k=4)

    assert shown.rows == [[1, "a"], [2, "b"], [3, "a"]]
    assert (shown.levels, shown.l_diversity, shown.smallest_class) == ({}, {"diagnosis": 2}, 3)
    assert withheld.rows == []
    assert withheld.notices == [
        "No rows can be shown: even with every identifying column hidden, fewer than 4 rows match each other."
    ]


def test_no_rows_in_no_rows_out() -> None:
    result = k_anonymise(PEOPLE, [], quasi={0: QI.AGE}, sensitive=[2])

    assert result.rows == []
    assert (result.suppressed_rows, result.smallest_class, result.notices) == (0, 0, [])
    assert result.levels == {"age": "kept"}


def test_risk_sentences() -> None:
    assert Risk(highest=1.0, average=0.5, at_risk=0.25).describe() == (
        "At least one row is unique in its identifying columns, so its patient could be recognised "
        "(on average 50%); 25% of rows are in groups of fewer than 5."
    )
    assert Risk(highest=0.1, average=0.004, at_risk=0.0).describe() == (
        "Every row shares its identifying columns with at least 9 other rows, so the chance of recognising "
        "a patient is at most 10% (on average under 1%); no row is in a group of fewer than 5."
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quasi": {0: QI.AGE}, "sensitive": [0]}, "a column is listed twice"),
        ({"quasi": {3: QI.AGE}}, "indexes must be between 0 and 2"),
        ({"quasi": {0: QI.AGE}, "k": 0}, "k and l must be at least 1, not 0 and 2"),
        ({"quasi": {0: QI.AGE}, "max_suppression": 1.5}, "between 0 and 1, not 1.5"),
        ({"quasi": {0: "eye colour"}}, "'eye colour' is not a valid QI"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        k_anonymise(PEOPLE, SIX, **kwargs)


# --- k-anonymity: random tables against an exhaustive search ---------------------------------------

KINDS = list(QI)


def _random_value(kind: QI, rng: random.Random, missing: float) -> Any:
    if rng.random() < missing:
        return None
    if kind is QI.AGE:
        age = min(99, max(0, round(rng.gauss(55, 18))))
        return rng.choice([age, age, str(age), "90+" if age >= 90 else age])
    if kind is QI.DATE:
        day = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(400))
        return rng.choice([day, day.isoformat(), dt.datetime.combine(day, dt.time(rng.randrange(24)))])
    if kind is QI.POSTCODE:
        area = rng.choice(["SW1A", "SW1P", "SW2", "SE1", "SE15", "E14", "E1", "N1", "N19"])
        return f"{area} {rng.randint(1, 3)}{rng.choice('AB')}"
    if kind is QI.SEX:
        return rng.choice("FM")
    if kind is QI.DIAGNOSIS:
        return rng.choice(["I21.4", "I21.9", "I10", "E11.9", "icd10:E11.65", "J45.0", "J44.1", "C50.9"])
    return rng.choice(["emergency", "elective", "urgent"])


def _random_table(rng: random.Random) -> tuple[list[str], list[list[Any]], dict[int, QI], list[int]]:
    kinds = rng.sample(KINDS, rng.randint(1, 5))
    # Larger lattices get smaller tables: the exhaustive search below is what costs.
    n = rng.choice([0, 1, 5, 30, 80, 200, 400] if len(kinds) <= 3 else [0, 5, 30, 80, 150])
    missing = rng.choice([0.0, 0.0, 0.02])
    columns = ["id", *(kind.value for kind in kinds), "outcome", "length_of_stay"]
    rows = [
        [
            i,
            *(_random_value(kind, rng, missing) for kind in kinds),
            rng.choice(["home", "home", "home", "transfer", "died", None]),
            rng.randint(0, 30),
        ]
        for i in range(n)
    ]
    return columns, rows, {1 + j: kind for j, kind in enumerate(kinds)}, [len(kinds) + 1]


def _ladders(rows: Sequence[Sequence[Any]], quasi: dict[int, QI]) -> dict[int, list[list[Any]]]:
    """Column -> row -> its value at every level, through the public `generalise`."""
    ladders: dict[int, list[list[Any]]] = {}
    for c, kind in quasi.items():
        top = age_top_code([row[c] for row in rows]) if kind is QI.AGE else None
        levels = range(len(LEVELS[kind]))
        ladders[c] = [[generalise(kind, row[c], level, top_age=top) for level in levels] for row in rows]
    return ladders


def _generalised(ladders: dict[int, list[list[Any]]], node: dict[int, int], n: int) -> list[tuple[Any, ...]]:
    return [tuple(ladders[c][r][node[c]] for c in sorted(node)) for r in range(n)]


def _sizes(keys: list[tuple[Any, ...]], subjects: list[int] | None) -> dict[tuple[Any, ...], int]:
    """Class -> its rows, or its distinct patients."""
    if subjects is None:
        return dict(Counter(keys))
    people: dict[tuple[Any, ...], set[int]] = defaultdict(set)
    for key, subject in zip(keys, subjects, strict=True):
        people[key].add(subject)
    return {key: len(members) for key, members in people.items()}


def _withheld(keys: list[tuple[Any, ...]], k: int, subjects: list[int] | None) -> int:
    sizes = _sizes(keys, subjects)
    return sum(1 for key in keys if sizes[key] < k)


@pytest.mark.parametrize("seed", range(200))
def test_random_tables_are_k_anonymous_l_diverse_and_optimally_generalised(seed: int) -> None:
    rng = random.Random(seed)
    columns, rows, quasi, sensitive = _random_table(rng)
    k, diversity, share = rng.randint(1, 8), rng.randint(1, 3), rng.choice([0.0, 0.05, 0.2])
    # Half the tables have several rows per patient, and k counts patients.
    subjects = [rng.randrange(max(1, len(rows) // 3)) for _ in rows] if rng.random() < 0.5 else None

    result = k_anonymise(
        columns,
        rows,
        quasi=quasi,
        sensitive=sensitive,
        k=k,
        l=diversity,
        max_suppression=share,
        subjects=subjects,
    )

    n, qi = len(rows), sorted(quasi)
    chosen = {c: LEVELS[quasi[c]].index(result.levels[columns[c]]) for c in qi}
    everything_hidden = all(level == len(LEVELS[quasi[c]]) - 1 for c, level in chosen.items())
    assert len(result.rows) + result.suppressed_rows == n
    assert all(len(row) == len(columns) for row in result.rows)
    if not everything_hidden:
        assert result.suppressed_rows <= share * n + 1e-9

    # Every shown row is its input row generalised at the chosen levels, other columns untouched.
    ladders = _ladders(rows, quasi)
    expected = dict(zip((row[0] for row in rows), _generalised(ladders, chosen, n), strict=True))
    for row in result.rows:
        source = rows[row[0]]
        assert tuple(row[c] for c in qi) == expected[row[0]]
        assert row[-1] == source[-1]
        assert row[sensitive[0]] in (source[sensitive[0]], "*")

    classes: dict[tuple[Any, ...], list[list[Any]]] = defaultdict(list)
    for row in result.rows:
        classes[tuple(row[c] for c in qi)].append(row)
    shown_keys = [tuple(row[c] for c in qi) for row in result.rows]
    shown_sizes = _sizes(shown_keys, None if subjects is None else [subjects[row[0]] for row in result.rows])
    assert all(size >= k for size in shown_sizes.values())
    assert result.smallest_class == min(shown_sizes.values(), default=0)
    violations = 0
    for members in classes.values():
        shown = {row[sensitive[0]] for row in members}
        if shown == {"*"}:
            violations += 1
            assert len({rows[row[0]][sensitive[0]] for row in members}) < diversity
        else:
            assert len(shown) >= diversity
    assert result.l_violations == violations
    if result.rows:
        assert result.risk.highest == pytest.approx(1 / result.smallest_class)
        per_row = [1 / shown_sizes[key] for key in shown_keys]
        assert result.risk.average == pytest.approx(sum(per_row) / len(per_row))
        if subjects is None:
            assert result.risk.average == pytest.approx(len(classes) / len(result.rows))

    # The chosen node is the cheapest that withholds at most the allowance: exhaustive search.
    budget = int(share * n + 1e-9)
    best: tuple[Fraction, int, tuple[int, ...]] | None = None
    for levels in product(*(range(len(LEVELS[quasi[c]])) for c in qi)):
        node = dict(zip(qi, levels, strict=True))
        withheld = _withheld(_generalised(ladders, node, n), k, subjects)
        if withheld <= budget:
            loss = sum((Fraction(lv, len(LEVELS[quasi[c]]) - 1) for c, lv in node.items()), Fraction(0))
            best = min(best or (loss, withheld, levels), (loss, withheld, levels))
    if best is None:
        assert everything_hidden
    else:
        assert tuple(chosen[c] for c in qi) == best[2]
        assert result.suppressed_rows == best[1]


def test_ten_thousand_rows_with_four_quasi_identifiers() -> None:
    rng = random.Random(2026)
    areas = ["SW1A", "SW1P", "SE1", "E14", "E1", "N1", "N19", "W1A", "NW3", "EC1A"]
    rows = [
        [
            rng.randint(0, 99),
            dt.datetime(2023, 1, 1) + dt.timedelta(minutes=rng.randrange(3 * 365 * 24 * 60)),
            f"{rng.choice(areas)} {rng.randint(1, 9)}{rng.choice('ABD')}{rng.choice('AB')}",
            rng.choice("FM"),
            rng.choice(["I21.4", "E11.9", "J45.0", "C50.9", "F32.1"]),
        ]
        for _ in range(10_000)
    ]
    result = k_anonymise(
        ["age", "admitted", "postcode", "sex", "diagnosis"],
        rows,
        quasi={0: QI.AGE, 1: QI.DATE, 2: QI.POSTCODE, 3: QI.SEX},
        sensitive=[4],
    )

    assert result.smallest_class >= 5
    assert result.suppressed_rows <= 500
    assert result.levels == {
        "age": "5-year bands",
        "admitted": "year",
        "postcode": "first 3 characters",
        "sex": "kept",
    }
