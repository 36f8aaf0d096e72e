"""The value matcher: warehouse values named in questions, on EHRSQL's MIMIC-IV and the demo hospital."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import pytest

from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from nlquery.matcher import ValueMatch, ValueMatcher, value_matcher
from nlquery.semantic import semantic_layer, value_dictionaries
from nlquery.semantic.values import ValueDictionaries
from tests.conftest import SHARED

EHRSQL = SHARED / "benchmarks" / "ehrsql"
MIMIC = EHRSQL / "mimic_iv.sqlite"

# annotated.json slot -> the kind the matcher must report for its value
SLOT_KINDS = {
    "drug_name": "drug",
    "drug_name1": "drug",
    "drug_name2": "drug",
    "drug_name3": "drug",
    "lab_name": "lab",
    "diagnosis_name": "diagnosis",
    "diagnosis_name1": "diagnosis",
    "diagnosis_name2": "diagnosis",
    "procedure_name": "procedure",
    "spec_name": "specimen",
    "careunit": "careunit",
    "drug_route": "route",
    "input_name": "input",
    "output_name": "output",
}


@pytest.fixture(scope="module")
def mimic() -> WarehouseTarget:
    if not MIMIC.exists():
        pytest.skip(f"the EHRSQL MIMIC-IV database is absent ({MIMIC})")
    return warehouse_target(f"sqlite:///{MIMIC}")


@pytest.fixture(scope="module")
def matcher(mimic: WarehouseTarget) -> ValueMatcher:
    return value_matcher(mimic)


def _found(matcher: ValueMatcher, question: str) -> list[tuple[str, str, str]]:
    return [(m.kind, m.value, question[m.start : m.end]) for m in matcher.find(question)]


def _valid_questions() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        (EHRSQL / "valid" / "annotated.json").read_text(encoding="utf-8")
    )
    return [item for item in items if isinstance(item.get("val_dict"), dict)]


# --- EHRSQL valid ---------------------------------------------------------------------------------


def test_finds_the_gold_values_of_valid_questions(matcher: ValueMatcher) -> None:
    hits, misses = 0, []
    for item in _valid_questions():
        found = matcher.find(item["question"])
        for slot, value in (item["val_dict"].get("val_placeholder") or {}).items():
            kind = SLOT_KINDS.get(slot)
            if kind is None:
                continue
            if any(m.kind == kind and m.value.lower() == str(value).lower() for m in found):
                hits += 1
            else:
                misses.append((slot, value, item["question"], _found(matcher, item["question"])))
    total = hits + len(misses)
    rate = hits / total
    print(f"\nvalue recall on EHRSQL valid: {hits}/{total} = {rate:.2%}")
    for miss in misses[:5]:
        print("  miss:", miss)
    assert total > 500
    assert rate >= 0.97


def test_find_is_fast_on_valid_questions(matcher: ValueMatcher) -> None:
    questions = [item["question"] for item in _valid_questions()]
    times = []
    for question in questions:
        started = time.perf_counter()
        matcher.find(question)
        times.append(time.perf_counter() - started)
    median = statistics.median(times) * 1000
    print(f"\nfind(): median {median:.3f} ms over {len(questions)} questions, max {max(times) * 1000:.3f} ms")
    assert median < 2


def test_build_time_on_mimic(mimic: WarehouseTarget) -> None:
    values, layer = value_dictionaries(mimic), semantic_layer()
    started = time.perf_counter()
    ValueMatcher(values, layer)
    elapsed = time.perf_counter() - started
    count = len(values.diagnoses) + len(values.procedures) + len(values.drugs) + len(values.chart_items)
    print(f"\nbuilt over ~{count} values in {elapsed:.2f} s")
    assert elapsed < 10  # ~1.2 s measured; generous for a loaded CI machine


def test_the_matcher_is_cached_per_target(mimic: WarehouseTarget, matcher: ValueMatcher) -> None:
    assert value_matcher(mimic) is matcher


# --- Exact behaviour ------------------------------------------------------------------------------


def test_case_and_punctuation_spacing_are_ignored(matcher: ValueMatcher) -> None:
    question = "How is POTASSIUM CHL 40 MEQ/1000 ML  D5NS given, and 5 % Dextrose (Excel Bag)?"
    found = matcher.find(question)
    assert [(m.kind, m.value, m.exact, m.score) for m in found] == [
        ("drug", "potassium chl 40 meq / 1000 ml d5ns", True, 1.0),
        ("drug", "5% dextrose (excel bag)", True, 1.0),
    ]
    assert question[found[0].start : found[0].end] == "POTASSIUM CHL 40 MEQ/1000 ML  D5NS"
    assert question[found[1].start : found[1].end] == "5 % Dextrose (Excel Bag)"  # the parenthesis included


def test_missing_punctuation_still_matches_but_not_exactly(matcher: ValueMatcher) -> None:
    question = "any stay in trauma sicu tsicu?"
    [match] = matcher.find(question)
    assert (match.kind, match.value, match.exact) == ("careunit", "trauma sicu (tsicu)", False)
    assert question[match.start : match.end] == "trauma sicu tsicu"


def test_a_typo_matches_the_nearest_label(matcher: ValueMatcher) -> None:
    [match] = matcher.find("was patient 10014078's potasium measured?")
    assert (match.kind, match.value, match.exact, match.score) == (
        "lab",
        "potassium, whole blood",
        False,
        0.8,
    )
    assert matcher.find("was patient 10014078's potassium chloride given?")[0].kind == "input"
    assert "heart rate" not in {m.value for m in matcher.find("a short word is not corrected: hart rate")}


def test_the_longest_match_wins(matcher: ValueMatcher) -> None:
    # "potassium" alone is a synonym of the potassium lab labels; the longer drug name wins.
    assert _found(matcher, "was potassium chloride (powder) prescribed?") == [
        ("drug", "potassium chloride (powder)", "potassium chloride (powder)")
    ]
    assert _found(matcher, "last potassium") == [("lab", "potassium, whole blood", "potassium")]


def test_synonyms_map_to_warehouse_labels(matcher: ValueMatcher) -> None:
    assert _found(matcher, "the last SpO2 of patient 10014078") == [
        ("chart", "o2 saturation pulseoxymetry", "SpO2")
    ]
    assert _found(matcher, "maximum pulse yesterday") == [("chart", "heart rate", "pulse")]
    [match] = matcher.find("K+ today")
    assert (match.value, match.start, match.end, match.exact, match.score) == (
        "potassium, whole blood",
        0,
        2,
        False,
        0.9,
    )


def test_no_match_inside_a_longer_word(matcher: ValueMatcher) -> None:
    assert matcher.find("heparinised, pulses, urinemia") == []
    assert _found(matcher, "urine") == [("specimen", "urine", "urine")]


def test_one_string_of_several_kinds_gives_one_match_per_kind(matcher: ValueMatcher) -> None:
    found = matcher.find("the last rapid plasma reagin test result")  # a lab label and a microbiology test
    assert len({(m.start, m.end) for m in found}) == 1
    assert sorted((m.kind, m.value) for m in found) == [
        ("lab", "rapid plasma reagin test"),
        ("test", "rapid plasma reagin test"),
    ]


def test_only_items_something_was_charted_for_are_values(matcher: ValueMatcher) -> None:
    # d_items also names fields such as "gender": they are no measurement a question can ask for.
    assert matcher.find("what is the gender of patient 10014078") == []


def test_matches_are_frozen_values() -> None:
    match = ValueMatch("lab", "potassium", 0, 9, True, 1.0)
    with pytest.raises(AttributeError):
        match.value = "sodium"  # type: ignore[misc]


# --- Demo hospital --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_on_the_demo_hospital(sqlite_warehouse: WarehouseTarget) -> None:
    matcher = value_matcher(sqlite_warehouse)
    assert ("lab", "potassium", "K+") in _found(matcher, "latest K+ of the patient")
    assert ("lab", "potassium", "potasium") in _found(matcher, "latest potasium of the patient")
    drug = sorted(value_dictionaries(sqlite_warehouse).drugs)[0]
    question = f"who was given {drug.upper()} last week?"
    assert ("drug", drug, drug.upper()) in _found(matcher, question)


def test_hostile_and_huge_questions_stay_fast() -> None:
    """A 100 KB run of letters, control characters and emoji: no match invented, no long stall."""
    values = ValueDictionaries(
        lab_items=frozenset({"potassium"}),
        chart_items={},
        drugs=frozenset({"potassium chloride"}),
        routes=frozenset(),
        diagnoses={},
        procedures={},
        care_units=frozenset(),
        specimen_types=frozenset(),
        test_names=frozenset(),
        organisms=frozenset(),
    )
    matcher = ValueMatcher(values)
    for question in (
        "x" * 100_000,
        "\x00\x01 potasium \u202e " + "🙂" * 50_000,
        "'; DROP TABLE patients; --",
    ):
        started = time.perf_counter()
        found = matcher.find(question)
        assert time.perf_counter() - started < 1.0
        assert {match.value for match in found} <= {"potassium"}
