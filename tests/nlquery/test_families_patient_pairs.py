"""patient_pairs families: EHRSQL questions they answer, and PostgreSQL SQL that parses back."""

from __future__ import annotations

import re

import pytest
import sqlglot

from nlquery.ehrsql import NOW
from nlquery.families import FAMILIES, QueryPlan
from nlquery.matcher import ValueMatch
from nlquery.reading import read_question
from nlquery.semantic import semantic_layer
from nlquery.sqlparts import Ctx
from tests.conftest import SHARED
from tests.nlquery.ehrsql_families import (
    assert_answers_own_question,
    assert_answers_training_questions,
    needs_ehrsql,
)

EHRSQL = SHARED / "benchmarks" / "ehrsql"
PREFIX = ("pair.",)
MINE = sorted(name for name in FAMILIES if name.startswith(PREFIX))

# Training questions whose gold answer each family reproduces.
TRAINED: dict[str, tuple[str, ...]] = {
    "pair.change.lab": (
        "cd5489d01e1749510fc86424",
        "91a1b7d722fd22c60cb7f9c7",
    ),
    "pair.change.vital": (
        "446ee7d9f8e891fa807c4f29",  # How much of a difference is there in patient 10004720's weight last ...
        "cc8811490b346c0fe68bf66b",  # How much does patient 10027602's weight differ from the second valu ...
    ),
    "pair.change_at.vital": (
        "0e87f2737511d219196c8409",  # What's the weight difference of patient 10038999's body measured at ...
        "09b0a7c875a861f6dca89576",  # What is patient 10011398's difference in heart rate from the value ...
    ),
    "pair.compare.lab": (
        "97d179e16fffa9fb76504042",  # Are patient 10009035's bicarbonate levels second measured ... less ...
        "16836caa5b38e5fa22166c1a",  # Is the pt level of patient 10027445 last measured ... greater than ...
    ),
    "pair.compare.vital": ("75dcf661ef83b60c79a0aa34", "909212b3de8ea34ca2c96475"),
    "pair.compare_at.lab": (
        "47bcce86f3ab85e1c0edd92a",  # Is the anion gap value ... on the at 2100-04-02 05:22:00 measuremen ...
        "1adba3ceaf529ef2a8dda81a",  # Was the phosphate reading ... measured at 2100-02-10 05:25:00 less ...
    ),
    "pair.compare_at.vital": (
        "0d22f4703425e474ebd63580",  # Compared to measured at 2100-03-10 23:00:00 , is the heart rate ... ...
        "39a0e7eaffab936c1439a5fa",  # Is the respiratory rate level ... measured at ... less than measure ...
    ),
    "pair.dose.drug": (
        "b8e9b90e80a785175600b2ff",  # What was the last dose of tobramycin sulfate that patient 10007818 ...
        "c3b9775f6f9f3f0a14d7ec29",  # For the first time in 08/this year, how much scopolamine patch ...
    ),
    "pair.total_dose.drug": (
        "ec87b2a66e1ee117d0c97694",  # What was the total of 0.9% sodium chloride that patient 10018423 ...
        "d1fc20ee02b9ce89df2bb4e6",  # What was the total dosage of vitamin e prescribed to patient 10020944?
    ),
    "pair.new.drug": (
        "5c86eada276c78a8735e0dfb",  # What are the new drugs prescribed to patient 10039831 today compare ...
        "86f9f9f4d49dd3a3f7c9fedf",  # ... today compared to the one prescribed yesterday? ("the one" is n ...
    ),
    "pair.route_name.drug": (
        "12fb8402b00499381bd3ff8c",  # What was the drug patient 10008287 was prescribed for the first tim ...
        "bf9ce789f4d2ca8fc80ad3e1",  # Can you tell which medicine ... ("medicine" is no care unit)
    ),
    "pair.route_time.drug": (
        "c205b51f6231b94810bd8849",  # In 05/this year, when did patient 10018328 receive their last ...
        "e1a987c52eaba2b8697dbc00",  # What was the first time in 04/this year patient 10012853 was ...
    ),
    "pair.any_of.drug": (
        "675c3bb58c7f84d6c7abcb76",  # Has patient 10016742 been ordered sw, sodium chloride 0.9%, or hepa ...
        "00beff4406c2ee10ac9621fe",  # Did patient 10040025 get a prescription for clonidine patch ...
    ),
    "pair.same_time.drug": (
        "cbf4196ee5e84e090f100adc",  # When was the last time in 03/2100 that patient 10004235 was ...
        "34c3cfba23a6aea2edea8258",  # This month, when was the first time patient 10011398 was prescribed ...
    ),
    "pair.after.procedure": (
        "c4471eff3bf652c6fbb2e1bc",  # ... within the same hospital visit after receiving excision of ...
        "ba8c72ac9d84398bbde60168",  # ... within the same day after having received a open and other ...
        "28b035f667b552adb72ed601",  # ... within the same day post procedure of procedure on single vesse ...
    ),
    "pair.organism.specimen": ("a6fc04dbbe1e0ba75ba30f18", "2ddc5aa70252d046606081e2"),
    "pair.organism_found.specimen": ("c87fdda7e48ed877eae86d9a", "f2d594c951cd6c02275e0a17"),
    "pair.total.input": (
        "0abf006890a1a4993c0e275b",  # Give me patient 10023239's total d5lr input since 230 days ago.
        "99266f3b67eb6112916a4b55",  # Tell me the total volume of input that patient 10021487 was given ...
    ),
    "pair.total.output": (
        "ad2310914d9164e853dba7ed",
        "19dd65ead0ee8862ebf01011",  # What was the accumulated output for patient 10039831 since 10/26/2100?
    ),
}

# Families whose question template has no training question: questions of our own, answered by SQL
# written the way the benchmark writes it.
OWN: tuple[tuple[str, str, str], ...] = (
    (
        "pair.change_at.lab",
        "What is the change in the anion gap of patient 10014729 measured at 2100-03-26 06:10:00 compared to "
        "the value measured at 2100-03-10 08:10:00?",
        "SELECT ( SELECT labevents.valuenum FROM labevents WHERE labevents.hadm_id IN ( SELECT "
        "admissions.hadm_id FROM admissions WHERE admissions.subject_id = 10014729 ) AND labevents.itemid IN "
        "( SELECT d_labitems.itemid FROM d_labitems WHERE d_labitems.label = 'anion gap' ) AND "
        "labevents.charttime = '2100-03-26 06:10:00' ) - ( SELECT labevents.valuenum FROM labevents WHERE "
        "labevents.hadm_id IN ( SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id = "
        "10014729 ) AND labevents.itemid IN ( SELECT d_labitems.itemid FROM d_labitems WHERE "
        "d_labitems.label = 'anion gap' ) AND labevents.charttime = '2100-03-10 08:10:00' )",
    ),
    (
        "pair.after.diagnosis",
        "What was the name of the drug that patient 10018081 was prescribed within the same day after having "
        "been diagnosed with other and unspecified hyperlipidemia in 2100?",
        "SELECT T2.drug FROM ( SELECT diagnoses_icd.subject_id, diagnoses_icd.charttime FROM diagnoses_icd "
        "WHERE diagnoses_icd.hadm_id IN ( SELECT admissions.hadm_id FROM admissions WHERE "
        "admissions.subject_id = 10018081 ) AND diagnoses_icd.icd_code = ( SELECT d_icd_diagnoses.icd_code "
        "FROM d_icd_diagnoses WHERE d_icd_diagnoses.long_title = 'other and unspecified hyperlipidemia' ) "
        "AND strftime('%Y',diagnoses_icd.charttime) = '2100' ) AS T1 JOIN ( SELECT prescriptions.subject_id, "
        "prescriptions.drug, prescriptions.starttime FROM prescriptions WHERE prescriptions.hadm_id IN ( "
        "SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id = 10018081 ) AND "
        "strftime('%Y',prescriptions.starttime) = '2100' ) AS T2 ON T1.subject_id = T2.subject_id WHERE "
        "T1.charttime < T2.starttime AND datetime(T1.charttime,'start of day') = "
        "datetime(T2.starttime,'start of day')",
    ),
    (
        "pair.balance.io",
        "What is the difference between the total volume of intake and output of patient 10020944 in "
        "03/2100?",
        "SELECT ( SELECT SUM(inputevents.totalamount) FROM inputevents WHERE inputevents.stay_id IN ( "
        "SELECT icustays.stay_id FROM icustays WHERE icustays.hadm_id IN ( SELECT admissions.hadm_id FROM "
        "admissions WHERE admissions.subject_id = 10020944 ) ) AND "
        "strftime('%Y-%m',inputevents.starttime) = '2100-03' ) - ( SELECT SUM(outputevents.value) FROM "
        "outputevents WHERE outputevents.stay_id IN ( SELECT icustays.stay_id FROM icustays WHERE "
        "icustays.hadm_id IN ( SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id = "
        "10020944 ) ) AND strftime('%Y-%m',outputevents.charttime) = '2100-03' )",
    ),
)


@needs_ehrsql
@pytest.mark.parametrize("family", sorted(TRAINED))
def test_family_answers_its_training_questions(family: str) -> None:
    assert_answers_training_questions(family, TRAINED[family], PREFIX[0])


@needs_ehrsql
@pytest.mark.parametrize(("family", "question", "sql"), OWN, ids=[f for f, _, _ in OWN])
def test_family_answers_questions_of_templates_train_lacks(family: str, question: str, sql: str) -> None:
    assert_answers_own_question(family, question, sql, PREFIX[0])


def test_every_family_is_checked_against_answers() -> None:
    assert set(MINE) == set(TRAINED) | {family for family, _, _ in OWN}


# --- Binding and PostgreSQL, without the benchmark: a stub matcher names the values --------------


class _Matcher:
    """Finds the given (text, kind, value) mentions, as the warehouse matcher would."""

    def __init__(self, *values: tuple[str, str, str]) -> None:
        self.values = values

    def find(self, question: str) -> list[ValueMatch]:
        found = []
        for text, kind, value in self.values:
            for m in re.finditer(re.escape(text), question, re.IGNORECASE):
                found.append(ValueMatch(kind, value, m.start(), m.end(), True, 1.0))
        return sorted(found, key=lambda v: v.start)


_HR = ("heart rate", "chart", "heart rate")
_LAB = ("anion gap", "lab", "anion gap")
_DRUG = ("insulin", "drug", "insulin")
# For each family, a question it binds to and the values the stub matcher finds in it.
QUESTIONS: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "pair.change.lab": (
        "What is the change in the anion gap of patient 10014729 from the last value measured on the first "
        "hospital visit compared to the first value measured on the first hospital visit?",
        (_LAB,),
    ),
    "pair.change.vital": (
        "How much was the difference in heart rate of patient 10005817 from the second-to-last value "
        "measured to the last value measured during the last ICU visit?",
        (_HR,),
    ),
    "pair.change_at.lab": (
        "What is the change in anion gap of patient 10014729 measured at 2100-03-26 06:10:00 compared to the "
        "value measured at 2100-03-10 08:10:00?",
        (_LAB,),
    ),
    "pair.change_at.vital": (
        "What is the change in heart rate of patient 10011398 measured at 2100-12-27 10:00:00 compared to "
        "the value measured at 2100-12-27 09:00:00?",
        (_HR,),
    ),
    "pair.compare.lab": (
        "Is the anion gap of patient 10014729 second measured on the current hospital visit greater than "
        "the first value measured on the current hospital visit?",
        (_LAB,),
    ),
    "pair.compare.vital": (
        "Compared to first measured on the first ICU visit, is the heart rate of patient 10010471 last "
        "measured on the first ICU visit greater?",
        (_HR,),
    ),
    "pair.compare_at.lab": (
        "Was the anion gap of patient 10014729 measured at 2100-03-26 06:10:00 less than the value measured "
        "at 2100-03-10 08:10:00?",
        (_LAB,),
    ),
    "pair.compare_at.vital": (
        "Is the heart rate of patient 10011398 measured at 2100-12-27 10:00:00 greater than the value "
        "measured at 2100-12-27 09:00:00?",
        (_HR,),
    ),
    "pair.dose.drug": (
        "What was the last dose of insulin prescribed to patient 10014729 in 03/2100?",
        (_DRUG,),
    ),
    "pair.total_dose.drug": (
        "What was the total dose of insulin that patient 10014729 was prescribed since 2 months ago?",
        (_DRUG,),
    ),
    "pair.new.drug": ("Compared to yesterday, what new drugs were prescribed to patient 10018081 today?", ()),
    "pair.route_name.drug": (
        "What was the name of the drug that patient 10008287 was first prescribed via po route in 06/2100?",
        (("po", "route", "po"),),
    ),
    "pair.route_time.drug": (
        "When was the last time that patient 10008287 was prescribed a medication via po route this month?",
        (("po", "route", "po"),),
    ),
    "pair.any_of.drug": (
        "Has patient 10016742 been prescribed insulin, heparin, or senna on the first hospital visit?",
        (_DRUG, ("heparin", "drug", "heparin"), ("senna", "drug", "senna")),
    ),
    "pair.same_time.drug": (
        "When was the first time patient 10004235 was prescribed insulin and heparin at the same time "
        "since 1 year ago?",
        (_DRUG, ("heparin", "drug", "heparin")),
    ),
    "pair.after.diagnosis": (
        "What was the name of the drug that patient 10018081 was prescribed within 2 days after having been "
        "diagnosed with hyperlipidemia on the current hospital visit?",
        (("hyperlipidemia", "diagnosis", "other and unspecified hyperlipidemia"),),
    ),
    "pair.after.procedure": (
        "What was the name of the drug that patient 10019172 was prescribed within the same hospital visit "
        "after having received a spinal tap procedure in 2100?",
        (("spinal tap", "procedure", "spinal tap"),),
    ),
    "pair.organism.specimen": (
        "What was the organism name found in the first urine microbiology test of patient 10031757 since "
        "10/2100?",
        (("urine", "specimen", "urine"),),
    ),
    "pair.organism_found.specimen": (
        "Has there been any organism found in the last sputum microbiology test of patient 10020944 on the "
        "first hospital visit?",
        (("sputum", "specimen", "sputum"),),
    ),
    "pair.total.input": (
        "What was the total volume of intake that patient 10021487 received since 12/14/2100?",
        (),
    ),
    "pair.total.output": (
        "What was the total volume of foley output that patient 10021487 had since 113 days ago?",
        (("foley", "output", "foley"),),
    ),
    "pair.balance.io": (
        "What is the difference between the total volume of intake and output of patient 10020944 today?",
        (),
    ),
}


def _bound(name: str) -> list[QueryPlan]:
    question, values = QUESTIONS[name]
    found = read_question(question, _Matcher(*values))  # type: ignore[arg-type]
    return list(FAMILIES[name].bind(found))


def test_every_family_has_a_question_it_binds_to() -> None:
    assert set(QUESTIONS) == set(MINE)


@pytest.mark.parametrize("name", MINE)
def test_family_compiles_to_postgres_sql_that_parses(name: str) -> None:
    plans = _bound(name)
    assert len(plans) == 1, plans
    for dialect in ("postgres", "sqlite"):
        sql = FAMILIES[name].compile(plans[0], Ctx(dialect, NOW), semantic_layer()).sql(dialect=dialect)
        assert sqlglot.parse_one(sql, read=dialect) is not None
    assert FAMILIES[name].describe(plans[0]).endswith(".")


def test_the_side_after_than_or_compared_to_is_the_baseline() -> None:
    (compared,) = _bound("pair.compare.vital")  # "Compared to first ..., is ... last ... greater?"
    assert [o.which for o in compared.ordinals] == ["last", "first"]
    assert compared.option == ">"
    (from_to,) = _bound("pair.change.vital")  # "from the second-to-last ... to the last": last minus it
    assert [o.which for o in from_to.ordinals] == ["last", "second_to_last"]
    (new,) = _bound("pair.new.drug")  # "Compared to yesterday, ... today": today's minus yesterday's
    assert [t.amount for t in new.time] == [0, 1]


def test_exact_timestamps_replace_the_dates_the_time_reader_saw() -> None:
    (plan,) = _bound("pair.compare_at.lab")
    assert plan.time == ()
    assert plan.option == "<|2100-03-26 06:10:00|2100-03-10 08:10:00"
    sql = (
        FAMILIES["pair.compare_at.lab"].compile(plan, Ctx("postgres", NOW), semantic_layer()).sql("postgres")
    )
    assert "CAST('2100-03-26 06:10:00' AS TIMESTAMP)" in sql


def test_siblings_refuse_each_others_questions() -> None:
    question, values = QUESTIONS["pair.route_time.drug"]
    found = read_question(question, _Matcher(*values))  # type: ignore[arg-type]
    assert list(FAMILIES["pair.route_name.drug"].bind(found)) == []
    question, values = QUESTIONS["pair.organism_found.specimen"]
    found = read_question(question, _Matcher(*values))  # type: ignore[arg-type]
    assert list(FAMILIES["pair.organism.specimen"].bind(found)) == []
    found = read_question(
        "Did patient 10005817 have an input of kcl (bolus) on this month/25?",
        _Matcher(("kcl (bolus)", "input", "kcl (bolus)")),  # type: ignore[arg-type]
    )
    assert list(FAMILIES["pair.total.input"].bind(found)) == []
    found = read_question(
        "How many days have passed since patient 10021487 had foley output?",
        _Matcher(("foley", "output", "foley")),  # type: ignore[arg-type]
    )
    assert list(FAMILIES["pair.total.output"].bind(found)) == []
