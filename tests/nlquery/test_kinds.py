"""The kind of question a gold SQL answers, as reports group EHRSQL questions."""

from __future__ import annotations

import pytest

from nlquery.kinds import kind_of_sql


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("null", "unanswerable"),
        ("SELECT patients.gender FROM patients WHERE patients.subject_id = 10014078", "patient"),
        (
            "SELECT COUNT( DISTINCT admissions.subject_id ) FROM admissions "
            "WHERE admissions.dischtime is null",
            "count",
        ),
        (
            "SELECT DISTINCT prescriptions.route FROM prescriptions WHERE prescriptions.drug = 'amoxicillin'",
            "lookup",
        ),
        (
            "SELECT x FROM t WHERE c IN "
            "( SELECT T1.c FROM ( SELECT c, DENSE_RANK() OVER (ORDER BY COUNT(*)) ) )",
            "topk",
        ),
    ],
)
def test_kind_of_gold_sql(sql: str, kind: str) -> None:
    assert kind_of_sql(sql) == kind
