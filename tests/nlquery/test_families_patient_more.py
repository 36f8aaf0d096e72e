"""patient_more families: EHRSQL questions they answer, and PostgreSQL SQL that parses back."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlglot

from nlquery.ehrsql import NOW
from nlquery.families import FAMILIES, Filter, QueryPlan
from nlquery.semantic import semantic_layer
from nlquery.sqlparts import Ctx
from nlquery.timeexpr import TimeConstraint
from tests.conftest import SHARED
from tests.nlquery.ehrsql_families import (
    assert_answers_own_question,
    assert_answers_training_questions,
    needs_ehrsql,
)

EHRSQL = SHARED / "benchmarks" / "ehrsql"
PREFIX = ("patient.",)
MINE = sorted(name for name in FAMILIES if name.startswith(PREFIX))

# Training questions whose gold answer each family reproduces.
TRAINED: dict[str, tuple[str, ...]] = {
    "patient.gender": (
        "8521d760a18e114ce1c608b3",  # What is patient 10039997's gender?
        "a96ef9e34778c695552e52c6",  # What is the sex of patient 10010471?
        "5f4091b20b6ccfd4e72a8f1f",  # Please tell me the sex of patient 10018328.
    ),
    "patient.age": (
        "0653e85d090882590ea6b4ce",  # Can you tell me about patient 10022880's age on the last hospital e ...
        "53fca8bfc5f88cb4209eec38",  # Can you tell me how old patient 10035185 was on the first hospital ...
    ),
    "patient.insurance": (
        "0d0dfd8344c44ef1ba5abcc4",  # What was the name of patient 10014078's insurance in the last hospi ...
        "3fa74c4fb1defa83dd97682b",  # What was an insurance plan for patient 10005866 in their last hospi ...
    ),
    "patient.admission_type": (
        "42fb2b34ffcff69466b09384",  # What was the admission type during patient 10007795's last entry in ...
        "949e6e0fe8bdf465a1964e73",  # How was patient 10005348 first admitted to the hospital in terms of ...
    ),
    "patient.discharge_time": (
        "f548e5423305443cc9bd89c3",  # When did patient 10005909 first depart from the hospital?
        "eb9fcf1a569a58fe71b1b257",  # When was the last time patient 10040025 was discharged from hospital?
    ),
    "patient.icu_length": (
        "329d0bb92a0e71548c78f544",  # Can you tell me how many days patient 10007818 stayed in the ICU du ...
        "d557347f082c26133868efb1",  # Tell me the length in days of the last stay for patient 10016150 in ...
    ),
    "patient.hospital_visits": (
        "97516d1ecb3c025c618fb0ef",  # Please count the hospital visits made by patient 10002930 in this year.
        "b4cddff0a459aeb457378e32",  # Gather the total number of times patient 10007795 visited the hospital.
    ),
    "patient.icu_visits": (
        "122180d2410c37fb1d467316",  # Provide the count of ICU visits for patient 10020740 since 1 year ago.
        "7d6cd973b881473d4b309a26",  # Provide the count of ICU visits for patient 10022017 last year.
    ),
    "patient.admitted": (
        "e69db8778c92e5eec552f1eb",  # Has there been a hospital admission for patient 10005817 in 2100?
        "109bdf00fc8e0bc665794600",  # Has patient 10022880 entered the hospital since 1 year ago?
        "061afbb7908a8ff0d6a68a50",  # Has patient 10005866 been admitted into an emergency room since 1 y ...
        "21725d6a5831671fc4d0dc87",  # Has patient 10016742 come to the ER?
    ),
    "patient.since.transfer": (
        "6eab05aa70724d26ebe7e7c1",  # How many days is it since patient 10021487 last stayed in the careu ...
        "7809b76d2d7b213240cd949c",  # How many hours have passed since the first time that patient 100047 ...
    ),
    "patient.since.diagnosis": (
        "dae5f9c47a5e0608624786d7",  # On the current hospital visit, how many days passed since the last ...
        "66c02202fa82b6035ee4845c",  # Since the last diagnosis of patient 10004733 with ..., how many hou ...
    ),
    "patient.since.lab": (
        "3d45d365e05eb1ff7b926005",  # How many hours elapsed since patient 10018081 received his chloride ...
        "d2d6e834bd7830831783fa05",  # What is the total number of days that have passed since patient 100 ...
    ),
    "patient.when_extreme.lab": (
        "ce9d557587a02ef7b5b69000",  # When did last patient 10005348 have the minimum value of calculated ...
        "d080d1e38919b6a529de708c",  # When did patient 10015931 first have the minimum amount of ph in 12 ...
    ),
    "patient.when_extreme.vital": (
        "9d3fa7a1702389bcc1a4904b",  # When did the first time patient 10016742 had the maximum value of r ...
        "70419e78d304638558059cf9",  # When was the first time patient 10005817, since 12/02/2100, had the ...
    ),
    "patient.when_compared.vital": (
        "82922424bd771f502216cfe8",  # When was the first time patient 10020187 was measured mean blood pr ...
        "f06393ab8b048f69f34b0dd2",  # When was the last time since 141 days ago patient 10010471's SpO2 w ...
    ),
    "patient.percentile": (
        "9811bdd8dd976caed209c6a2",  # What percentile is the value of the mcv of 80.0 among patients of t ...
        "b84f8bef2656a98e1a21f179",  # What is the percentile of 42.0 in the laboratory test with platelet ...
    ),
    "patient.procedure_times": (
        "13bee07976257e0b38f5e9b3",  # What was the procedure conducted on patient 10020740 two or more ti ...
        "cece63fb84d3cf5a6e97cb83",  # What is the name of the treatment given to patient 10007795 two tim ...
    ),
}

# Families whose question template has no training question: questions of our own, answered by SQL
# written the way the benchmark writes it.
OWN: tuple[tuple[str, str, str], ...] = (
    (
        "patient.dob",
        "What is patient 10004235's date of birth?",
        "SELECT patients.dob FROM patients WHERE patients.subject_id = 10004235",
    ),
    (
        "patient.admission_time",
        "When was patient 10007795 first admitted to the hospital?",
        "SELECT admissions.admittime FROM admissions WHERE admissions.subject_id = 10007795 "
        "AND admissions.dischtime IS NOT NULL ORDER BY admissions.admittime ASC LIMIT 1",
    ),
    (
        "patient.admission_time",
        "When did patient 10020740 last come to the hospital through emergency room?",
        "SELECT admissions.admittime FROM admissions WHERE admissions.subject_id = 10020740 "
        "AND admissions.admission_location = 'emergency room' AND admissions.dischtime IS NOT NULL "
        "ORDER BY admissions.admittime DESC LIMIT 1",
    ),
    (
        "patient.admission_time",
        "List the hospital admission times of patient 10007795 in 2100.",
        "SELECT admissions.admittime FROM admissions WHERE admissions.subject_id = 10007795 "
        "AND strftime('%Y',admissions.admittime) = '2100'",
    ),
    (
        "patient.since_admission",
        "How many hours have passed since patient 10018081 was admitted to the ICU?",
        "SELECT 24 * ( strftime('%J',current_time) - strftime('%J', icustays.intime) ) FROM icustays "
        "WHERE icustays.hadm_id IN ( SELECT admissions.hadm_id FROM admissions "
        "WHERE admissions.subject_id = 10018081 ) AND icustays.outtime IS NULL",
    ),
    (
        "patient.since.input",
        "How many hours have passed since patient 10039831's first dextrose 5% intake on the current "
        "ICU visit?",
        "SELECT 24 * ( strftime('%J',current_time) - strftime('%J', inputevents.starttime) ) "
        "FROM inputevents WHERE inputevents.stay_id IN ( SELECT icustays.stay_id FROM icustays "
        "WHERE icustays.hadm_id IN "
        "( SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id = 10039831 ) "
        "AND icustays.outtime IS NULL ) AND inputevents.itemid IN ( SELECT d_items.itemid FROM d_items "
        "WHERE d_items.label = 'dextrose 5%' AND d_items.linksto = 'inputevents' ) "
        "ORDER BY inputevents.starttime ASC LIMIT 1",
    ),
    (
        "patient.since.drug",
        "How many days have passed since patient 10004733 was last prescribed vancomycin on the current "
        "hospital visit?",
        "SELECT 1 * ( strftime('%J',current_time) - strftime('%J', prescriptions.starttime) ) "
        "FROM prescriptions WHERE prescriptions.hadm_id IN ( SELECT admissions.hadm_id FROM admissions "
        "WHERE admissions.subject_id = 10004733 AND admissions.dischtime IS NULL ) "
        "AND prescriptions.drug = 'vancomycin' ORDER BY prescriptions.starttime DESC LIMIT 1",
    ),
    (
        "patient.vital_normal",
        "Was the heart rate of patient 10018081 normal on the current ICU visit?",
        "SELECT 1 - COUNT(*)>0 FROM chartevents WHERE chartevents.stay_id IN ( SELECT icustays.stay_id "
        "FROM icustays WHERE icustays.hadm_id IN ( SELECT admissions.hadm_id FROM admissions "
        "WHERE admissions.subject_id = 10018081 ) AND icustays.outtime IS NULL ) AND chartevents.itemid IN "
        "( SELECT d_items.itemid FROM d_items WHERE d_items.label = 'heart rate' "
        "AND d_items.linksto = 'chartevents' ) AND chartevents.valuenum NOT BETWEEN heart_rate_lower "
        "AND heart_rate_upper",
    ),
    (
        "patient.when_compared.lab",
        "When was the first time that the hematocrit of patient 10007795 was less than 25.0?",
        "SELECT labevents.charttime FROM labevents WHERE labevents.hadm_id IN ( SELECT admissions.hadm_id "
        "FROM admissions WHERE admissions.subject_id = 10007795 ) AND labevents.itemid IN "
        "( SELECT d_labitems.itemid FROM d_labitems WHERE d_labitems.label = 'hematocrit' ) "
        "AND labevents.valuenum < 25.0 ORDER BY labevents.charttime ASC LIMIT 1",
    ),
)


@needs_ehrsql
@pytest.mark.parametrize("family", sorted(TRAINED))
def test_family_answers_its_training_questions(family: str) -> None:
    assert_answers_training_questions(family, TRAINED[family], PREFIX[0])


@needs_ehrsql
@pytest.mark.parametrize(("family", "question", "sql"), OWN, ids=[f"{f}:{q[:40]}" for f, q, _ in OWN])
def test_family_answers_questions_of_templates_train_lacks(family: str, question: str, sql: str) -> None:
    assert_answers_own_question(family, question, sql, PREFIX[0])


@needs_ehrsql
def test_every_family_is_checked_against_answers() -> None:
    checked = set(TRAINED) | {family for family, _, _ in OWN}
    unchecked = {
        name
        for name in MINE
        if not name.startswith(("patient.since.", "patient.when_extreme.", "patient.when_compared."))
    } - checked
    assert not unchecked


# --- PostgreSQL: every family's plan compiles and parses back -----------------------------------

_VISIT_FIRST = TimeConstraint("visit", visit="hospital", which="first", text="first hospital visit")
_ICU_CURRENT = TimeConstraint("visit", visit="icu", which="current", text="current ICU visit")
_SINCE = TimeConstraint("rel", op="since", amount=1, unit="year", text="since 1 year ago")
_LAST = TimeConstraint("ordinal", which="last", text="last")
_VALUES = {
    "lab": Filter("lab", "hematocrit"), "vital": Filter("chart", "heart rate"),
    "input": Filter("input", "dextrose 5%"), "output": Filter("output", "foley"),
    "drug": Filter("drug", "vancomycin"),
    "diagnosis": Filter("diagnosis", "unspecified essential hypertension"),
    "procedure": Filter("procedure", "venous catheterization, not elsewhere classified"),
    "microbiology": Filter("test", "blood culture"), "specimen": Filter("specimen", "blood culture"),
    "transfer": Filter("careunit", "medicine"),
}  # fmt: skip


def _plan(name: str) -> QueryPlan:
    """A plan with every slot the family reads filled."""
    family = FAMILIES[name]
    plan = QueryPlan(family=name, kind=family.kind, event=family.event, subject_id=10007795)
    event = name.rsplit(".", 1)[-1]
    if name.startswith(("patient.since.", "patient.when_")):
        plan = QueryPlan(
            family=name, kind=family.kind, event=family.event, subject_id=10007795,
            filters=(_VALUES[event],), ordinals=(_LAST,), time=(_SINCE,), unit="hour", aggregate="MAX",
            comparison=(">", 100.0),
        )  # fmt: skip
        if name.startswith("patient.since."):
            plan = replace(plan, time=(_ICU_CURRENT,))
        return plan
    slots: dict[str, QueryPlan] = {
        "patient.percentile": QueryPlan(
            family=name, kind="patient", event="lab", subject_id=10007795, filters=(_VALUES["lab"],),
            time=(_VISIT_FIRST,), number=30.0,
        ),
        "patient.vital_normal": QueryPlan(
            family=name, kind="patient", event="vital", subject_id=10007795, filters=(_VALUES["vital"],),
            time=(_SINCE,),
        ),
        "patient.procedure_times": QueryPlan(
            family=name, kind="patient", event="procedure", subject_id=10007795, times=(">=", 2),
            time=(_SINCE,),
        ),
        "patient.since_admission": QueryPlan(
            family=name, kind="patient", subject_id=10007795, unit="hour", option="icu"
        ),
        "patient.icu_length": QueryPlan(
            family=name, kind="patient", subject_id=10007795, ordinals=(_LAST,), unit="day"
        ),
        "patient.admission_time": QueryPlan(
            family=name, kind="patient", subject_id=10007795, ordinals=(_LAST,), option="emergency room"
        ),
        "patient.admitted": QueryPlan(
            family=name, kind="patient", subject_id=10007795, time=(_VISIT_FIRST,), option="emergency room"
        ),
    }  # fmt: skip
    if name in slots:
        return slots[name]
    if name in ("patient.hospital_visits", "patient.icu_visits"):
        return QueryPlan(family=name, kind="patient", subject_id=10007795, time=(_SINCE,))
    return QueryPlan(family=name, kind="patient", subject_id=10007795, time=(_VISIT_FIRST,))


@pytest.mark.parametrize("name", MINE)
def test_family_compiles_to_postgres_sql_that_parses(name: str) -> None:
    plan = _plan(name)
    for dialect in ("postgres", "sqlite"):
        sql = FAMILIES[name].compile(plan, Ctx(dialect, NOW), semantic_layer()).sql(dialect=dialect)
        assert sqlglot.parse_one(sql, read=dialect) is not None
    assert FAMILIES[name].describe(plan).endswith(".")


def test_the_elapsed_time_on_postgres_uses_epoch_seconds_not_julian_days() -> None:
    plan = _plan("patient.since.lab")
    sql = FAMILIES["patient.since.lab"].compile(plan, Ctx("postgres", NOW), semantic_layer()).sql("postgres")
    assert "EPOCH" in sql.upper()
    assert "JULIANDAY" not in sql.upper()
