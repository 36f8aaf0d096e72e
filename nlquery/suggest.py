"""Example questions for the Ask page, suited to a role and drawn from the measures of the semantic layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from nlquery.semantic import semantic_layer


@dataclass(frozen=True)
class Example:
    question: str
    about: str  # what the measure counts, from the semantic layer ("number of hospital admissions")


# Each example names the semantic-layer measure it asks about: a hospital whose layer drops
# that measure no longer sees the example. Every one is answered on the demo hospital for its roles
# (tests/hisplatform/test_ask_page.py); none names a patient, so none needs a look-up to offer.
_CLINICAL: Final = (
    ("how many patients are currently admitted?", "admitted_patient_count"),
    ("admissions per day in the last 30 days", "admission_count"),
    ("lab volume by day this month", "lab_test_count"),
    ("top 10 drugs prescribed", "prescription_count"),
    ("mean Hb by gender", "lab_result_value"),
    ("how many icu stays this month", "icu_stay_count"),
)
_EXAMPLES: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    # Clinical staff ask about the patients in their care: population questions are scoped to them.
    "clinician": _CLINICAL,
    "nurse": _CLINICAL,
    "department_head": _CLINICAL,
    # Researchers ask about cohorts; answers are de-identified statistics.
    "researcher": (
        ("average age by gender", "average_age"),
        ("avg LOS male vs female", "length_of_stay_days"),
        ("mean Hb by gender", "lab_result_value"),
        ("average creatinine by age band", "lab_result_value"),
        ("admissions by insurance type", "admission_count"),
        ("number of deaths per year", "death_count"),
    ),
    # Administrators ask operational questions; answers are aggregates with small cells suppressed.
    "administrator": (
        ("how many patients are currently admitted?", "admitted_patient_count"),
        ("admissions per month this year", "admission_count"),
        ("average length of stay by department", "length_of_stay_days"),
        ("average turnaround time per lab test in minutes", "lab_turnaround_hours"),
        ("ED visits per day last week", "ed_visit_count"),
        ("beds per department", "bed_count"),
    ),
}


def example_questions(role: str) -> tuple[Example, ...]:
    """Questions this role typically asks and the platform answers; none for a role that asks none."""
    measures = semantic_layer().measures
    return tuple(
        Example(question, measures[measure].description)
        for question, measure in _EXAMPLES.get(role, ())
        if measure in measures
    )
