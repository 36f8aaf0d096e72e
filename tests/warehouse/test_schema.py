"""The warehouse schema: EHRSQL's MIMIC-IV tables column for column, plus the live-extract tables."""

from __future__ import annotations

import sqlite3

import pytest

from hisplatform.warehouse import schema
from hisplatform.warehouse.targets import capabilities_of
from tests.conftest import SHARED

EHRSQL_DDL_FILE = SHARED / "benchmarks" / "ehrsql" / "mimic_iv.sql"
WIDENED = {
    ("transfers", "careunit"): "VARCHAR(100)",
    ("icustays", "first_careunit"): "VARCHAR(100)",
    ("icustays", "last_careunit"): "VARCHAR(100)",
    **{
        (table, "icd_code"): "VARCHAR(20)"
        for table in ("d_icd_diagnoses", "d_icd_procedures", "diagnoses_icd", "procedures_icd")
    },
}


def _ehrsql_columns() -> dict[str, tuple[schema.Column, ...]]:
    if not EHRSQL_DDL_FILE.exists():
        pytest.skip(f"EHRSQL schema not found at {EHRSQL_DDL_FILE} (../shared is absent)")
    return schema.parse_columns(EHRSQL_DDL_FILE.read_text())


def test_every_ehrsql_table_and_column_is_present_in_order_with_its_type() -> None:
    expected = _ehrsql_columns()
    ours = schema.tables()
    assert set(expected) == set(schema.EHRSQL_TABLES)
    for table, columns in expected.items():
        mine = ours[table].columns[: len(columns)]
        for theirs, my in zip(columns, mine, strict=True):
            assert (table, my.name) == (table, theirs.name)
            assert my.nullable == theirs.nullable, (table, theirs.name)
            assert my.type == WIDENED.get((table, theirs.name), theirs.type), (table, theirs.name)


def test_added_lab_columns_come_after_ehrsql_columns_and_are_nullable() -> None:
    lab = schema.tables()["labevents"]
    assert lab.column_names[:7] == (
        "row_id",
        "subject_id",
        "hadm_id",
        "itemid",
        "charttime",
        "valuenum",
        "valueuom",
    )
    extra = lab.columns[7:]
    assert {c.name for c in extra} >= {"storetime", "ref_range_lower", "ref_range_upper", "flag"}
    assert all(c.nullable for c in extra)


def test_live_extract_tables_exist() -> None:
    names = set(schema.tables())
    assert {"departments", "care_units", "staff", "patient_identity", "care_team", "notes", "visits"} <= names
    identity = {c.name for c in schema.tables()["patient_identity"].columns}
    assert {
        "mrn",
        "national_id",
        "given_name",
        "family_name",
        "birth_date",
        "phone",
        "email",
        "address",
        "postcode",
        "vip_flag",
        "employee_flag",
    } <= identity


def test_one_definition_creates_the_schema_on_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    for statement in schema.create_statements("sqlite") + schema.post_load_statements("sqlite"):
        conn.execute(statement)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(schema.tables()) <= tables


@pytest.mark.parametrize(
    ("present", "identity"),
    [(set(schema.EHRSQL_TABLES), False), (set(schema.tables()), True)],
)
def test_capabilities_tell_a_deidentified_source_from_an_identified_one(
    present: set[str], identity: bool
) -> None:
    capabilities = capabilities_of(present)
    assert capabilities.clinical_core
    assert capabilities.identity is identity
    assert ("no patient identity" in capabilities.describe()) is not identity
