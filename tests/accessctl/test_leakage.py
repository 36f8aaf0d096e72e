"""Leakage: a broad set of questions and SQL asked as the researcher and the administrator, and not
one value of the identity tables, nor one count of 1 to 10, in any answer.

The questions are the hospital evaluation set (315 questions typed as staff type them, each also as
its gold SQL) plus probes written to extract identities: every identity column, notes, joins back to
identities, searches by name. Every answer is searched as a whole (rows, messages, notices, what was
masked or suppressed), except the SQL the asker wrote or the compiler wrote from their words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from django.contrib.auth.models import User
from django.db import connection

from hisplatform.queries import Answer, answer_question, answer_sql
from hisplatform.warehouse.catalog import notes as note_phrases
from hisplatform.warehouse.targets import WarehouseTarget
from tests.accessctl.conftest import NOON, People, rows_of

pytestmark = [
    pytest.mark.django_db,
    # The application database plays no part in what reaches an answer: run once per suite.
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="runs in the PostgreSQL application-database pass"
    ),
]

QUESTIONS = json.loads(
    (Path(__file__).resolve().parents[2] / "nlquery" / "questions" / "hospital.json").read_text()
)["items"]

PROBES = (
    "SELECT * FROM patient_identity",
    "SELECT * FROM patient_contacts",
    "SELECT * FROM staff",
    "SELECT given_name || ' ' || family_name AS name, mrn, national_id, phone, email, address "
    "FROM patient_identity",
    "SELECT p.subject_id, pi.family_name, pi.birth_date, a.admittime FROM patients p "
    "JOIN patient_identity pi ON pi.subject_id = p.subject_id "
    "JOIN admissions a ON a.subject_id = p.subject_id",
    "SELECT subject_id, note_type, charttime, text FROM notes",
    "SELECT n.text, s.family_name FROM notes n JOIN staff s ON s.staff_id = n.author_staff_id",
    "SELECT family_name, COUNT(*) FROM patient_identity GROUP BY family_name",
    "SELECT postcode, COUNT(*) FROM patient_identity GROUP BY postcode",
    "SELECT COUNT(*) FROM patient_identity WHERE family_name LIKE 'A%'",
    "SELECT relationship, COUNT(*) FROM patient_contacts GROUP BY relationship",
    "SELECT upper(given_name), lower(email) FROM patient_identity",
    "SELECT substr(national_id, 1, 6), COUNT(*) FROM patient_identity GROUP BY substr(national_id, 1, 6)",
    "SELECT careunit, COUNT(*) FROM transfers GROUP BY careunit",
    "SELECT gender, COUNT(DISTINCT subject_id) FROM patients GROUP BY gender",
    "SELECT d.long_title, COUNT(DISTINCT di.subject_id) FROM diagnoses_icd di "
    "JOIN d_icd_diagnoses d ON d.icd_code = di.icd_code GROUP BY d.long_title",
    "SELECT strftime('%Y-%m', admittime) AS month, admission_type, COUNT(*) FROM admissions "
    "GROUP BY strftime('%Y-%m', admittime), admission_type",
    "SELECT vip_flag, employee_flag, COUNT(*) FROM patient_identity GROUP BY vip_flag, employee_flag",
)


def _public_words(target: WarehouseTarget) -> set[str]:
    """Words that appear in text nobody's identity put there (code lists, unit names, note phrases):
    a surname like Bell is also in "Bell's palsy"."""
    rows = rows_of(target)
    text: list[str] = []
    for sql in (
        "SELECT long_title FROM d_icd_diagnoses",
        "SELECT long_title FROM d_icd_procedures",
        "SELECT label FROM d_labitems",
        "SELECT label FROM d_items",
        "SELECT DISTINCT drug FROM prescriptions",
        "SELECT name FROM departments",
        "SELECT careunit FROM care_units",
    ):
        text.extend(str(row[0]) for row in rows(sql))

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, tuple | list):
            for item in value:
                yield from strings(item)

    for name in dir(note_phrases):
        text.extend(strings(getattr(note_phrases, name)))
    return {word for chunk in text for word in re.findall(r"[A-Za-z][A-Za-z'-]+", chunk)}


def _identity_values(target: WarehouseTarget) -> tuple[set[str], set[str]]:
    """(names, other identifiers) from the identity tables."""
    rows = rows_of(target)
    names: set[str] = set()
    for sql in (
        "SELECT given_name, family_name FROM patient_identity",
        "SELECT given_name, family_name FROM staff",
        "SELECT full_name FROM patient_contacts",
    ):
        for row in rows(sql):
            for value in row:
                names.update(str(value).split())
    others: set[str] = set()
    for sql in (
        "SELECT mrn, national_id, phone, email, address FROM patient_identity",
        "SELECT phone, email, address, username FROM staff",
        "SELECT phone FROM patient_contacts",
    ):
        for row in rows(sql):
            others.update(str(value) for value in row if value is not None)
    return names, others


def _dialect(sql: str, target: WarehouseTarget) -> str:
    """The gold SQL is SQLite's (EHRSQL's style); PostgreSQL gets it translated."""
    if target.dialect == "sqlite" or sql == "null":
        return sql
    try:
        return sqlglot.transpile(sql, read="sqlite", write="postgres")[0]
    except sqlglot.errors.SqlglotError:
        return sql


def _answers(user: User, target: WarehouseTarget, *, questions: bool) -> Iterator[tuple[str, Answer]]:
    for item in QUESTIONS:
        if questions:
            yield (
                item["question"],
                answer_question(user=user, question=item["question"], now=NOON, target=target),
            )
        sql = _dialect(item["sql"], target)
        yield sql, answer_sql(user=user, sql=sql, now=NOON, target=target)
    for probe in PROBES:
        sql = _dialect(probe, target)
        yield sql, answer_sql(user=user, sql=sql, now=NOON, target=target)


def _shown(answer: Answer) -> dict[str, Any]:
    shown = answer.as_dict()
    shown.pop("sql")  # the asker's own words or the SQL compiled from them
    shown.pop("policy")  # rule texts
    return shown


# A column holding a count: COUNT(...) as the database names it, or a probe's alias for one.
_COUNT = re.compile(r"count\((distinct )?[\w.*]+\)|count|patients|n")


def _check(
    user: User, target: WarehouseTarget, *, questions: bool, role: str
) -> tuple[int, int, dict[str, int]]:
    names, others = _identity_values(target)
    public = _public_words(target)
    private_names = {n for n in names if len(n) >= 3 and n not in public}
    assert len(private_names) > 300
    name_pattern = re.compile(
        r"\b(" + "|".join(sorted(map(re.escape, private_names), key=len, reverse=True)) + r")\b"
    )
    answered = 0
    cells = 0
    codes: dict[str, int] = {}
    for asked, answer in _answers(user, target, questions=questions):
        codes[answer.code or answer.status] = codes.get(answer.code or answer.status, 0) + 1
        if answer.status != "answered":
            assert answer.rows == [], asked
            continue
        answered += 1
        text = json.dumps(_shown(answer), ensure_ascii=False, default=str)
        leaked = name_pattern.search(text)
        assert leaked is None, f"{role} saw the name {leaked.group(0)!r} asking {asked!r}"
        for value in others:
            assert value not in text, f"{role} saw {value!r} asking {asked!r}"
        for index, column in enumerate(answer.columns):
            if not _COUNT.fullmatch(column.lower()):
                continue
            for row in answer.rows:
                cells += 1
                value = row[index]
                assert not (isinstance(value, int | float) and 1 <= value <= 10), (
                    f"{role} saw a count of {value} asking {asked!r}"
                )
    return answered, cells, codes


@pytest.mark.slow
@pytest.mark.parametrize("username", ["res.garcia", "admin.walsh"])
def test_no_identity_and_no_small_count_reaches_research_or_administration_on_sqlite(
    username: str, sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    answered, cells, codes = _check(sqlite_people[username], sqlite_warehouse, questions=True, role=username)
    # The check must have had something to look at: many answers, many counts (the aggregate lane
    # refuses much of the gold SQL, which asks about single patients).
    assert answered >= 100, codes
    assert cells >= 100, codes


@pytest.mark.slow
@pytest.mark.parametrize("username", ["res.garcia", "admin.walsh"])
def test_no_identity_and_no_small_count_reaches_research_or_administration_on_postgres(
    username: str, pg_people: People, pg_warehouse: WarehouseTarget
) -> None:
    answered, cells, codes = _check(pg_people[username], pg_warehouse, questions=False, role=username)
    assert answered >= 35, codes
    assert cells >= 50, codes
