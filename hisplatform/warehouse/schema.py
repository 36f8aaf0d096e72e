"""The one definition of the warehouse schema, rendered for SQLite and PostgreSQL through sqlglot.

The clinical core is the EHRSQL MIMIC-IV schema (benchmarks/ehrsql/mimic_iv.sql) column for column,
so gold EHRSQL SQL runs unchanged. A live hospital extract also carries identity and organisation;
those tables and the extra lab columns are added after the core and are all nullable or new, so no
EHRSQL query notices them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import sqlglot
from sqlglot import exp

Dialect = Literal["sqlite", "postgres"]

# Verbatim from EHRSQL's mimic_iv.sql, with three deliberate changes:
# - careunit, first_careunit and last_careunit are VARCHAR(100), not VARCHAR(20): MIMIC-IV's own unit
#   names ("medical/surgical intensive care unit (micu/sicu)", 48 characters) do not fit in 20, which
#   SQLite ignores but PostgreSQL enforces.
# - icd_code is VARCHAR(20), not VARCHAR(10): EHRSQL's own codes ("icd10|0bh17ez", 13 characters) are
#   longer than 10, for the same reason.
# - cost.event_id carries no foreign key: it points at diagnoses_icd, procedures_icd, labevents or
#   prescriptions depending on event_type, which no foreign key can say (PostgreSQL would demand the
#   id exist in all four tables at once).
EHRSQL_DDL = """
CREATE TABLE patients (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL UNIQUE,
    gender VARCHAR(5) NOT NULL,
    dob TIMESTAMP(0) NOT NULL,
    dod TIMESTAMP(0)
);
CREATE TABLE admissions (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL UNIQUE,
    admittime TIMESTAMP(0) NOT NULL,
    dischtime TIMESTAMP(0),
    admission_type VARCHAR(50) NOT NULL,
    admission_location VARCHAR(50) NOT NULL,
    discharge_location VARCHAR(50),
    insurance VARCHAR(255) NOT NULL,
    language VARCHAR(10),
    marital_status VARCHAR(50),
    age INT NOT NULL,
    FOREIGN KEY(subject_id) REFERENCES patients(subject_id)
);
CREATE TABLE d_icd_diagnoses (
    row_id INT NOT NULL PRIMARY KEY,
    icd_code VARCHAR(20) NOT NULL UNIQUE,
    long_title VARCHAR(255) NOT NULL
);
CREATE TABLE d_icd_procedures (
    row_id INT NOT NULL PRIMARY KEY,
    icd_code VARCHAR(20) NOT NULL UNIQUE,
    long_title VARCHAR(255) NOT NULL
);
CREATE TABLE d_labitems (
    row_id INT NOT NULL PRIMARY KEY,
    itemid INT NOT NULL UNIQUE,
    label VARCHAR(200)
);
CREATE TABLE d_items (
    row_id INT NOT NULL PRIMARY KEY,
    itemid INT NOT NULL UNIQUE,
    label VARCHAR(200) NOT NULL,
    abbreviation VARCHAR(200) NOT NULL,
    linksto VARCHAR(50) NOT NULL
);
CREATE TABLE diagnoses_icd (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    icd_code VARCHAR(20) NOT NULL,
    charttime TIMESTAMP(0) NOT NULL,
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(icd_code) REFERENCES d_icd_diagnoses(icd_code)
);
CREATE TABLE procedures_icd (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    icd_code VARCHAR(20) NOT NULL,
    charttime TIMESTAMP(0) NOT NULL,
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(icd_code) REFERENCES d_icd_procedures(icd_code)
);
CREATE TABLE labevents (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    itemid INT NOT NULL,
    charttime TIMESTAMP(0),
    valuenum DOUBLE PRECISION,
    valueuom VARCHAR(20),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(itemid) REFERENCES d_labitems(itemid)
);
CREATE TABLE prescriptions (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    starttime TIMESTAMP(0) NOT NULL,
    stoptime TIMESTAMP(0),
    drug VARCHAR(255) NOT NULL,
    dose_val_rx VARCHAR(100) NOT NULL,
    dose_unit_rx VARCHAR(50) NOT NULL,
    route VARCHAR(50) NOT NULL,
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id)
);
CREATE TABLE cost (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    event_type VARCHAR(20) NOT NULL,
    event_id INT NOT NULL,
    chargetime TIMESTAMP(0) NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id)
);
CREATE TABLE chartevents (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    stay_id INT NOT NULL,
    itemid INT NOT NULL,
    charttime TIMESTAMP(0) NOT NULL,
    valuenum DOUBLE PRECISION,
    valueuom VARCHAR(50),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(stay_id) REFERENCES icustays(stay_id),
    FOREIGN KEY(itemid) REFERENCES d_items(itemid)
);
CREATE TABLE inputevents (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    stay_id INT NOT NULL,
    starttime TIMESTAMP(0) NOT NULL,
    itemid INT NOT NULL,
    totalamount DOUBLE PRECISION,
    totalamountuom VARCHAR(50),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(stay_id) REFERENCES icustays(stay_id),
    FOREIGN KEY(itemid) REFERENCES d_items(itemid)
);
CREATE TABLE outputevents (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    stay_id INT NOT NULL,
    charttime TIMESTAMP(0) NOT NULL,
    itemid INT NOT NULL,
    value DOUBLE PRECISION,
    valueuom VARCHAR(50),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(stay_id) REFERENCES icustays(stay_id),
    FOREIGN KEY(itemid) REFERENCES d_items(itemid)
);
CREATE TABLE microbiologyevents (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    charttime TIMESTAMP(0) NOT NULL,
    spec_type_desc VARCHAR(100),
    test_name VARCHAR(100),
    org_name VARCHAR(100),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id)
);
CREATE TABLE icustays (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    stay_id INT NOT NULL UNIQUE,
    first_careunit VARCHAR(100) NOT NULL,
    last_careunit VARCHAR(100) NOT NULL,
    intime TIMESTAMP(0) NOT NULL,
    outtime TIMESTAMP(0),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id)
);
CREATE TABLE transfers (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    transfer_id INT NOT NULL,
    eventtype VARCHAR(20) NOT NULL,
    careunit VARCHAR(100),
    intime TIMESTAMP(0) NOT NULL,
    outtime TIMESTAMP(0),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id)
);
"""

# What a live HIS/LIS extract carries beyond MIMIC-IV: organisation, identity, care teams, notes.
EXTRACT_DDL = """
CREATE TABLE departments (
    department_id INT NOT NULL PRIMARY KEY,
    code VARCHAR(20) NOT NULL UNIQUE,
    name VARCHAR(100) NOT NULL
);
CREATE TABLE care_units (
    careunit VARCHAR(100) NOT NULL PRIMARY KEY,
    department_id INT NOT NULL,
    unit_type VARCHAR(20) NOT NULL,
    beds INT NOT NULL,
    FOREIGN KEY(department_id) REFERENCES departments(department_id)
);
CREATE TABLE staff (
    staff_id INT NOT NULL PRIMARY KEY,
    username VARCHAR(150) UNIQUE,
    given_name VARCHAR(100) NOT NULL,
    family_name VARCHAR(100) NOT NULL,
    role VARCHAR(30) NOT NULL,
    department_id INT,
    phone VARCHAR(30),
    email VARCHAR(254),
    address VARCHAR(255),
    postcode VARCHAR(10),
    active BOOLEAN NOT NULL,
    FOREIGN KEY(department_id) REFERENCES departments(department_id)
);
CREATE TABLE patient_identity (
    subject_id INT NOT NULL PRIMARY KEY,
    mrn VARCHAR(20) NOT NULL UNIQUE,
    national_id VARCHAR(20) NOT NULL UNIQUE,
    given_name VARCHAR(100) NOT NULL,
    family_name VARCHAR(100) NOT NULL,
    birth_date DATE NOT NULL,
    phone VARCHAR(30),
    email VARCHAR(254),
    address VARCHAR(255),
    city VARCHAR(100),
    postcode VARCHAR(10),
    vip_flag BOOLEAN NOT NULL,
    employee_flag BOOLEAN NOT NULL,
    staff_id INT,
    FOREIGN KEY(subject_id) REFERENCES patients(subject_id),
    FOREIGN KEY(staff_id) REFERENCES staff(staff_id)
);
CREATE TABLE patient_contacts (
    contact_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    full_name VARCHAR(200) NOT NULL,
    relationship VARCHAR(30) NOT NULL,
    phone VARCHAR(30),
    FOREIGN KEY(subject_id) REFERENCES patients(subject_id)
);
CREATE TABLE visits (
    visit_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    visit_type VARCHAR(20) NOT NULL,
    department_id INT NOT NULL,
    careunit VARCHAR(100),
    starttime TIMESTAMP(0) NOT NULL,
    endtime TIMESTAMP(0),
    disposition VARCHAR(30),
    hadm_id INT,
    FOREIGN KEY(subject_id) REFERENCES patients(subject_id),
    FOREIGN KEY(department_id) REFERENCES departments(department_id)
);
CREATE TABLE care_team (
    row_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT NOT NULL,
    staff_id INT NOT NULL,
    team_role VARCHAR(30) NOT NULL,
    starttime TIMESTAMP(0) NOT NULL,
    endtime TIMESTAMP(0),
    FOREIGN KEY(hadm_id) REFERENCES admissions(hadm_id),
    FOREIGN KEY(staff_id) REFERENCES staff(staff_id)
);
CREATE TABLE notes (
    note_id INT NOT NULL PRIMARY KEY,
    subject_id INT NOT NULL,
    hadm_id INT,
    author_staff_id INT,
    charttime TIMESTAMP(0) NOT NULL,
    note_type VARCHAR(50) NOT NULL,
    text TEXT NOT NULL,
    FOREIGN KEY(subject_id) REFERENCES patients(subject_id),
    FOREIGN KEY(author_staff_id) REFERENCES staff(staff_id)
);
"""

# Columns a LIS adds to labevents and d_labitems; appended after EHRSQL's so its SQL is untouched.
EXTRA_COLUMNS: dict[str, list[str]] = {
    "labevents": [
        "specimen_id INT",
        "storetime TIMESTAMP(0)",
        "ref_range_lower DOUBLE PRECISION",
        "ref_range_upper DOUBLE PRECISION",
        "flag VARCHAR(10)",
        "priority VARCHAR(10)",
    ],
    "d_labitems": ["fluid VARCHAR(50)", "category VARCHAR(50)", "loinc_code VARCHAR(10)"],
}

# Created after a bulk load: building an index once is far cheaper than maintaining it per row.
INDEXES: list[tuple[str, tuple[str, ...]]] = [
    ("patients", ("subject_id",)),
    ("admissions", ("subject_id",)),
    ("admissions", ("admittime",)),
    ("diagnoses_icd", ("subject_id",)),
    ("diagnoses_icd", ("hadm_id",)),
    ("diagnoses_icd", ("icd_code",)),
    ("procedures_icd", ("subject_id",)),
    ("procedures_icd", ("hadm_id",)),
    ("procedures_icd", ("icd_code",)),
    ("labevents", ("subject_id", "charttime")),
    ("labevents", ("hadm_id",)),
    ("labevents", ("itemid", "charttime")),
    ("prescriptions", ("subject_id",)),
    ("prescriptions", ("hadm_id",)),
    ("prescriptions", ("drug",)),
    ("cost", ("subject_id",)),
    ("cost", ("hadm_id",)),
    ("chartevents", ("subject_id", "charttime")),
    ("chartevents", ("stay_id",)),
    ("chartevents", ("itemid",)),
    ("inputevents", ("subject_id",)),
    ("inputevents", ("stay_id",)),
    ("outputevents", ("subject_id",)),
    ("outputevents", ("stay_id",)),
    ("microbiologyevents", ("subject_id",)),
    ("microbiologyevents", ("hadm_id",)),
    ("icustays", ("subject_id",)),
    ("icustays", ("hadm_id",)),
    ("transfers", ("subject_id",)),
    ("transfers", ("hadm_id",)),
    ("transfers", ("careunit", "intime")),
    ("patient_contacts", ("subject_id",)),
    ("visits", ("subject_id",)),
    ("visits", ("starttime",)),
    ("care_team", ("subject_id",)),
    ("care_team", ("staff_id",)),
    ("care_team", ("hadm_id",)),
    ("notes", ("subject_id",)),
    ("notes", ("hadm_id",)),
]

EHRSQL_TABLES: tuple[str, ...] = tuple(
    stmt.this.this.name for stmt in sqlglot.parse(EHRSQL_DDL, read="postgres") if isinstance(stmt, exp.Create)
)
# The tables only a live, identified extract has; their absence marks a de-identified source.
IDENTITY_TABLES: tuple[str, ...] = ("patient_identity", "patient_contacts", "staff", "care_team", "notes")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[exp.ForeignKey, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _extra_column(definition: str) -> exp.ColumnDef:
    column = sqlglot.parse_one(f"CREATE TABLE t ({definition})", read="postgres").this.expressions[0]
    assert isinstance(column, exp.ColumnDef)
    return column


@cache
def _create_expressions() -> dict[str, exp.Create]:
    """Each table's CREATE as a sqlglot tree, extra columns placed before the table constraints."""
    creates: dict[str, exp.Create] = {}
    for stmt in sqlglot.parse(EHRSQL_DDL + EXTRACT_DDL, read="postgres"):
        if not isinstance(stmt, exp.Create):
            continue
        schema = stmt.this
        defs = list(schema.expressions)
        for extra in EXTRA_COLUMNS.get(schema.this.name, []):
            # SQLite requires table constraints after every column.
            position = next((i for i, e in enumerate(defs) if not isinstance(e, exp.ColumnDef)), len(defs))
            defs.insert(position, _extra_column(extra))
        schema.set("expressions", defs)
        creates[schema.this.name] = stmt
    return creates


def _columns(create: exp.Create) -> tuple[Column, ...]:
    return tuple(
        Column(
            item.name,
            item.args["kind"].sql("postgres"),
            not any(
                isinstance(c.kind, (exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint))
                for c in item.constraints
            ),
        )
        for item in create.this.expressions
        if isinstance(item, exp.ColumnDef)
    )


def parse_columns(ddl: str) -> dict[str, tuple[Column, ...]]:
    """Each table's columns in a DDL script, read the same way as our own definition."""
    return {
        stmt.this.this.name: _columns(stmt)
        for stmt in sqlglot.parse(ddl, read="postgres")
        if isinstance(stmt, exp.Create)
    }


@cache
def tables() -> dict[str, Table]:
    """Every warehouse table by name, in creation (and load) order."""
    return {
        name: Table(
            name,
            _columns(create),
            tuple(item for item in create.this.expressions if isinstance(item, exp.ForeignKey)),
        )
        for name, create in _create_expressions().items()
    }


def _create_statement(table: Table, dialect: Dialect, *, with_foreign_keys: bool) -> str:
    create = _create_expressions()[table.name].copy()
    if not with_foreign_keys:
        create.this.set(
            "expressions", [e for e in create.this.expressions if not isinstance(e, exp.ForeignKey)]
        )
    return create.sql(dialect)


def create_statements(dialect: Dialect) -> list[str]:
    """CREATE TABLE statements. SQLite gets its foreign keys inline (it cannot add them later)."""
    return [
        _create_statement(table, dialect, with_foreign_keys=dialect == "sqlite")
        for table in tables().values()
    ]


def post_load_statements(dialect: Dialect) -> list[str]:
    """Indexes, and on PostgreSQL the foreign keys, validated once over the loaded rows."""
    statements = [
        f"CREATE INDEX IF NOT EXISTS ix_{table}_{'_'.join(cols)} ON {table} ({', '.join(cols)})"
        for table, cols in INDEXES
    ]
    if dialect == "postgres":
        for table in tables().values():
            for number, fk in enumerate(table.foreign_keys):
                statements.append(
                    f"ALTER TABLE {table.name} ADD CONSTRAINT fk_{table.name}_{number} {fk.sql('postgres')}"
                )
    statements.append("ANALYZE")
    return statements


def drop_statements(dialect: Dialect) -> list[str]:
    cascade = " CASCADE" if dialect == "postgres" else ""
    return [f"DROP TABLE IF EXISTS {name}{cascade}" for name in reversed(list(tables()))]
