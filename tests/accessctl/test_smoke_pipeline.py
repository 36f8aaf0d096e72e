"""A first look at the pipeline on the seeded hospital (the matrix test covers it in full)."""

from __future__ import annotations

import pytest

from hisplatform.queries import answer_question, answer_sql
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People

pytestmark = pytest.mark.django_db


def test_clinician_counts_only_patients_in_care(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    answer = answer_question(
        user=sqlite_people["dr.carter"],
        question="how many patients are currently admitted?",
        now=NOON,
        target=sqlite_warehouse,
    )
    assert answer.status == "answered", answer
    print(answer.as_dict())


def test_masked_national_id(sqlite_people: People, sqlite_warehouse: WarehouseTarget) -> None:
    answer = answer_sql(
        user=sqlite_people["dr.carter"],
        sql="SELECT subject_id, national_id, given_name FROM patient_identity ORDER BY subject_id",
        now=NOON,
        target=sqlite_warehouse,
    )
    print(answer.as_dict())
    assert answer.status == "answered"
