"""The warehouse schema: EHRSQL's MIMIC-IV tables column for column, plus the live-extract tables."""

from __future__ import annotations

import sqlite3

import pytest
import sqlglot
from sqlglot import exp

from hisplatform.warehouse import schema
from hisplatform.warehouse.targets import capabilities_of
from tests.conftest import SHARED

EHRSQL_DDL_FILE = SHARED / "benchmarks" / "ehrsql" / "mimic_iv.sql"
WIDENED = {("transfers", "careunit"), ("icustays", "first_careunit"), ("icustays", "last_careunit")}


def _ehrsql_columns() -> dict[str, list[tuple[str, str, bool]]]:
    if not EHRSQL_DDL_FILE.exists():
        pytest.skip(f"EHRSQL schema not found at {EHRSQL_DDL_FILE} (../shared is absent)")
    result: dict[str, list[tuple[str, str, bool]]] = {}
    for stmt in sqlglot.parse(EHRSQL_DDL_FILE.read_text(), read="postgres"):
        if isinstance(stmt, exp.Create):
            result[stmt.this.this.name] = [
                (
                    col.name,
                    col.args["kind"].sql("postgres"),
                    not any(
                        isinstance(c.kind, (exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint))
                        for c in col.constraints
                    ),
                )
                for col in stmt.this.expressions
                if isinstance(col, exp.ColumnDef)
            ]
    return result


def test_every_ehrsql_table_and_column_is_present_in_order_with_its_type() -> None:
    expected = _ehrsql_columns()
    ours = schema.tables()
    assert set(expected) == set(schema.EHRSQL_TABLES)
    for table, columns in expected.items():
        mine = [(c.name, c.type, c.nullable) for c in ours[table].columns][: len(columns)]
        for (name, type_, nullable), (my_name, my_type, my_nullable) in zip(columns, mine, strict=True):
            assert (table, my_name) == (table, name)
            assert my_nullable == nullable, (table, name)
            if (table, name) in WIDENED:
                assert my_type == "VARCHAR(100)"
            else:
                assert my_type == type_, (table, name)


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
