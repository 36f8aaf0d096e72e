"""Regressions for what a security review of the pipeline found: each was a way to see more than the
policy allows, and each must stay closed."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from accessctl.models import PolicyRule, PolicyState
from accessctl.readpolicy import forget_catalogs
from hisplatform.queries import answer_question, answer_sql
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from tests.accessctl.conftest import NOON, People, rows_of

pytestmark = pytest.mark.django_db

RAW_ID = re.compile(r"(?<![0-9*])320[0-9]{14}[0-9X](?![0-9*])")


def _in_scope_with_notes(target: WarehouseTarget, people: People) -> int:
    seen = answer_sql(
        user=people["dr.carter"],
        sql="SELECT DISTINCT subject_id FROM notes WHERE text LIKE '%National ID: %' ORDER BY subject_id",
        confirm_special=True,  # notes of patients with special-category diagnoses need it
        now=NOON,
        target=target,
    )
    assert seen.status == "answered", seen.message
    assert seen.rows
    return int(seen.rows[0][0])


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_national_ids_in_note_text_are_masked_inside_the_query(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    prefix = "sqlite" if dialect == "sqlite" else "pg"
    target: WarehouseTarget = request.getfixturevalue(f"{prefix}_warehouse")
    people: People = request.getfixturevalue(f"{prefix}_people")
    find = "instr(text, 'National ID: ')" if dialect == "sqlite" else "strpos(text, 'National ID: ')"
    cut = f"substr(text, {find} + 13, 18)"
    extracted = answer_sql(
        user=people["dr.carter"],
        sql=f"SELECT subject_id, 'x' || {cut} || 'x' FROM notes WHERE text LIKE '%National ID: %'",
        confirm_special=True,
        now=NOON,
        target=target,
    )
    assert extracted.status == "answered"
    assert extracted.rows
    assert all(re.fullmatch(r"x320\*{11}[0-9]{3}[0-9X]x", str(row[1])) for row in extracted.rows)
    # A filter on the text sees the masked text too: the real number cannot be probed for.
    subject = _in_scope_with_notes(target, people)
    real = rows_of(target)(f"SELECT national_id FROM patient_identity WHERE subject_id = {subject}")[0][0]
    probe = answer_sql(
        user=people["dr.carter"],
        sql=f"SELECT COUNT(*) FROM notes WHERE text LIKE '%{real}%'",
        confirm_special=True,
        now=NOON,
        target=target,
    )
    assert probe.rows == [[0]]
    head = answer_sql(
        user=people["head.nguyen"],
        sql=f"SELECT COUNT(*) FROM notes WHERE subject_id = {subject} AND text LIKE '%{real}%'",
        confirm_special=True,
        now=NOON,
        target=target,
    )
    assert head.rows[0][0] > 0  # the department head sees ID numbers whole, in the column and the text


def test_a_masked_column_is_not_looked_up_to_refuse(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    subject = _in_scope_with_notes(sqlite_warehouse, sqlite_people)
    real = str(
        rows_of(sqlite_warehouse)(f"SELECT national_id FROM patient_identity WHERE subject_id = {subject}")[
            0
        ][0]
    )
    candidates = [real[:-1] + str(d) for d in range(10)]
    assert real in candidates
    listed = ", ".join(f"'{c}'" for c in candidates)
    answer = answer_sql(
        user=sqlite_people["dr.carter"],
        sql=f"SELECT subject_id FROM patient_identity WHERE national_id IN ({listed})",
        now=NOON,
        target=sqlite_warehouse,
    )
    # The column is masked for a clinician: the query reads the masked values and finds none; the
    # refusal message that would list all candidates but the real one is not produced.
    assert (answer.status, answer.rows) == ("answered", [])
    assert real not in answer.message


def test_notes_of_special_category_patients_need_a_confirmed_purpose(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    sql = "SELECT subject_id, note_type, text FROM notes ORDER BY subject_id, charttime"
    unconfirmed = answer_sql(user=sqlite_people["head.nguyen"], sql=sql, now=NOON, target=sqlite_warehouse)
    assert (unconfirmed.status, unconfirmed.code) == ("denied", "confirmation_required"), unconfirmed.message
    # The prompt names what the policy protects, not what this answer holds.
    assert unconfirmed.confirm_required == ["genetic", "hiv", "psychiatry", "reproductive", "substance_use"]
    confirmed = answer_sql(
        user=sqlite_people["head.nguyen"], sql=sql, confirm_special=True, now=NOON, target=sqlite_warehouse
    )
    assert confirmed.status == "answered"
    assert len(confirmed.rows) > 0


def test_scopes_of_several_classes_narrow_never_widen(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    def count() -> int:
        answer = answer_sql(
            user=sqlite_people["dr.carter"],
            sql="SELECT COUNT(*) FROM patients WHERE EXISTS (SELECT 1 FROM d_icd_diagnoses)",
            now=NOON,
            target=sqlite_warehouse,
        )
        assert answer.status == "answered", answer.message
        return int(answer.rows[0][0])

    before = count()
    # A wider scope on a class with no patients (the code dictionaries) must not widen the rows.
    PolicyRule.objects.filter(role="clinician", data_class="reference", purposes="TREAT").update(
        obligations="scope:department,lane:identified"
    )
    PolicyState.objects.update(version=31337)
    assert count() == before


def _without(warehouse: WarehouseTarget, table: str, folder: Path) -> WarehouseTarget:
    """A copy of the warehouse with one table gone (as if the reader role could not read it)."""
    copy = folder / "warehouse.sqlite3"
    assert warehouse.sqlite_path is not None
    shutil.copy(warehouse.sqlite_path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute(f"DROP TABLE {table}")
    forget_catalogs()
    return warehouse_target(f"sqlite:///{copy}")


def test_an_unreadable_identity_table_refuses_rather_than_drops_protections(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget, tmp_path: Path
) -> None:
    partial = _without(sqlite_warehouse, "patient_identity", tmp_path)
    answer = answer_sql(
        user=sqlite_people["head.nguyen"], sql="SELECT subject_id FROM patients", now=NOON, target=partial
    )
    assert (answer.status, answer.code) == ("denied", "protections_unavailable")


def test_missing_organisation_tables_keep_the_protections(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget, tmp_path: Path
) -> None:
    protected = {
        int(str(row[0]))
        for row in rows_of(sqlite_warehouse)(
            "SELECT subject_id FROM patient_identity WHERE vip_flag OR employee_flag"
        )
    }
    partial = _without(sqlite_warehouse, "departments", tmp_path)
    answer = answer_sql(
        user=sqlite_people["head.nguyen"], sql="SELECT subject_id FROM patients", now=NOON, target=partial
    )
    assert answer.status == "answered"
    assert answer.rows
    assert not {row[0] for row in answer.rows} & protected


def test_now_in_another_time_zone_or_without_one(
    sqlite_people: People, sqlite_warehouse: WarehouseTarget
) -> None:
    question = "how many patients are currently admitted?"
    utc = answer_question(
        user=sqlite_people["dr.carter"], question=question, now=NOON, target=sqlite_warehouse
    )
    elsewhere = NOON.astimezone(dt.timezone(dt.timedelta(hours=-11)))
    shifted = answer_question(
        user=sqlite_people["dr.carter"], question=question, now=elsewhere, target=sqlite_warehouse
    )
    naive = answer_question(
        user=sqlite_people["dr.carter"],
        question=question,
        now=NOON.replace(tzinfo=None),
        target=sqlite_warehouse,
    )
    assert utc.rows == shifted.rows == naive.rows
    assert utc.status == "answered"
