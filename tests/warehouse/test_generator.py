"""The demo hospital: deterministic, identical on SQLite and PostgreSQL, consistent, realistic, and
carrying every case the privacy work is tested on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hisplatform.demo import DEMO_STAFF
from hisplatform.warehouse.generator import NOTE_TYPES, DemoHospital, NoteContext, generate_note
from hisplatform.warehouse.loader import LoadReport, load_demo
from hisplatform.warehouse.schema import tables
from hisplatform.warehouse.targets import WarehouseConfigError, warehouse_target
from tests.conftest import PG_SERVER, SHARED

PATIENTS = 200
SEED = 11
REFERENCE = dt.date(2025, 6, 15)
CUTOFF = "2025-06-15 00:00:00"
EHRSQL = SHARED / "benchmarks" / "ehrsql"
VITALS = {
    220045: "heart rate",
    220277: "o2 saturation pulseoxymetry",
    220210: "respiratory rate",
    223762: "temperature celsius",
    220050: "arterial blood pressure systolic",
    220051: "arterial blood pressure diastolic",
    220052: "arterial blood pressure mean",
}
CLINICAL_DEMO = [s for s in DEMO_STAFF if s.role.value in ("clinician", "nurse")]


# ----------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sqlite_load(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadReport]:
    path = tmp_path_factory.mktemp("generator") / "hospital.sqlite3"
    report = load_demo(
        warehouse_target(f"sqlite:///{path}"), patients=PATIENTS, seed=SEED, reference_date=REFERENCE
    )
    return path, report


@pytest.fixture(scope="module")
def db(sqlite_load: tuple[Path, LoadReport]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{sqlite_load[0]}?mode=ro", uri=True)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    name = f"his_gen_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{PG_SERVER}/{name}"
        load_demo(warehouse_target(url), patients=PATIENTS, seed=SEED, reference_date=REFERENCE)
        yield url
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _one(db: sqlite3.Connection, sql: str, *params: object) -> Any:
    return db.execute(sql, params).fetchone()[0]


def _normal(value: object) -> object:
    """One spelling for a value read from either engine: timestamps as EHRSQL text, booleans as 0/1."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, Decimal)):
        return round(float(value), 6)
    return value


def _table_digests(fetch: dict[str, list[tuple[object, ...]]]) -> dict[str, str]:
    return {
        name: hashlib.sha256(repr([tuple(_normal(v) for v in row) for row in rows]).encode()).hexdigest()
        for name, rows in fetch.items()
    }


def _ordered(table: str) -> str:
    columns = tables()[table].column_names
    return f"SELECT {', '.join(columns)} FROM {table} ORDER BY {columns[0]}"


# ------------------------------------------------------------------------------------- determinism

_DIGEST_SCRIPT = """
import datetime, hashlib, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
django.setup()
from hisplatform.warehouse.generator import DemoHospital, table_names
hospital = DemoHospital(patients=int(sys.argv[1]), seed=int(sys.argv[2]),
                        reference_date=datetime.date.fromisoformat(sys.argv[3]))
digests = {t: hashlib.sha256(repr(list(hospital.rows(t))).encode()).hexdigest() for t in table_names()}
print(json.dumps(digests))
"""


def _digests_in_subprocess(seed: int, hash_seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", _DIGEST_SCRIPT, "120", str(seed), REFERENCE.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    digests: dict[str, str] = json.loads(out)
    return digests


def test_same_seed_gives_identical_tables_in_separate_processes_and_another_seed_does_not() -> None:
    # Different hash seeds: any dependence on set or dict-of-str iteration order would show here.
    first = _digests_in_subprocess(5, "1")
    again = _digests_in_subprocess(5, "2")
    other = _digests_in_subprocess(6, "1")
    assert first == again
    assert set(first) == set(tables())
    fixed = {"d_icd_diagnoses", "d_icd_procedures", "d_labitems", "d_items", "departments", "care_units"}
    for table in set(tables()) - fixed:
        assert first[table] != other[table], f"{table} does not depend on the seed"


def test_report_counts_every_table(db: sqlite3.Connection, sqlite_load: tuple[Path, LoadReport]) -> None:
    report = sqlite_load[1]
    assert report.patients == PATIENTS
    assert set(report.row_counts) == set(tables())
    for table, count in report.row_counts.items():
        assert _one(db, f"SELECT count(*) FROM {table}") == count, table
    assert report.row_counts["labevents"] > 80 * PATIENTS


def test_sqlite_and_postgresql_hold_the_same_rows(db: sqlite3.Connection, pg_url: str) -> None:
    lite = {t: db.execute(_ordered(t)).fetchall() for t in tables()}
    with psycopg.connect(warehouse_target(pg_url).conninfo) as pg:
        post = {t: pg.execute(_ordered(t)).fetchall() for t in tables()}
    assert {t: len(r) for t, r in lite.items()} == {t: len(r) for t, r in post.items()}
    assert _table_digests(lite) == _table_digests(post)


def test_a_reload_replaces_the_warehouse_but_never_a_file_holding_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.sqlite3"
    target = warehouse_target(f"sqlite:///{path}")
    load_demo(target, patients=50, seed=1, reference_date=REFERENCE)
    messages: list[str] = []
    report = load_demo(target, patients=60, seed=2, reference_date=REFERENCE, progress=messages.append)
    with closing(sqlite3.connect(path)) as conn:
        assert _one(conn, "SELECT count(*) FROM patients") == report.row_counts["patients"] == 60
    assert any(m.startswith("labevents: ") for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.sqlite3"]

    app = tmp_path / "app.sqlite3"
    with closing(sqlite3.connect(app)) as conn:
        conn.execute("CREATE TABLE auth_user (id INTEGER PRIMARY KEY)")
    with pytest.raises(WarehouseConfigError, match="auth_user"):
        load_demo(warehouse_target(f"sqlite:///{app}"), patients=50, seed=1, reference_date=REFERENCE)
    with closing(sqlite3.connect(app)) as conn:
        assert _one(conn, "SELECT count(*) FROM sqlite_master WHERE name = 'auth_user'") == 1
    assert not (tmp_path / "app.sqlite3.loading").exists()


# ----------------------------------------------------------------------------- referential integrity


def test_foreign_keys_hold(db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    for table in (
        "transfers",
        "icustays",
        "labevents",
        "prescriptions",
        "cost",
        "chartevents",
        "inputevents",
        "outputevents",
        "microbiologyevents",
        "diagnoses_icd",
        "procedures_icd",
        "care_team",
    ):
        orphans = _one(
            db, f"SELECT count(*) FROM {table} WHERE hadm_id NOT IN (SELECT hadm_id FROM admissions)"
        )
        assert orphans == 0, table
        mismatched = _one(
            db,
            f"SELECT count(*) FROM {table} t JOIN admissions a USING (hadm_id) "
            "WHERE t.subject_id != a.subject_id",
        )
        assert mismatched == 0, table
    for table in ("chartevents", "inputevents", "outputevents"):
        assert (
            _one(db, f"SELECT count(*) FROM {table} WHERE stay_id NOT IN (SELECT stay_id FROM icustays)") == 0
        )
    assert (
        _one(
            db,
            "SELECT count(*) FROM visits WHERE hadm_id IS NOT NULL AND hadm_id NOT IN "
            "(SELECT hadm_id FROM admissions)",
        )
        == 0
    )
    for event_type, source in (
        ("diagnoses_icd", "diagnoses_icd"),
        ("procedures_icd", "procedures_icd"),
        ("labevents", "labevents"),
        ("prescriptions", "prescriptions"),
    ):
        time_column = "starttime" if source == "prescriptions" else "charttime"
        unmatched = _one(
            db,
            f"SELECT count(*) FROM cost c LEFT JOIN {source} e ON e.row_id = c.event_id "
            f"WHERE c.event_type = ? AND (e.row_id IS NULL OR e.hadm_id != c.hadm_id "
            f"OR e.{time_column} != c.chargetime)",
            event_type,
        )
        assert unmatched == 0, event_type
        assert _one(db, "SELECT count(*) FROM cost WHERE event_type = ?", event_type) == _one(
            db, f"SELECT count(*) FROM {source}"
        )


def test_every_code_is_in_its_dictionary(db: sqlite3.Connection) -> None:
    assert _one(db, "SELECT count(*) FROM d_icd_diagnoses") > 70_000
    assert _one(db, "SELECT count(*) FROM d_icd_procedures") > 60_000
    assert (
        _one(
            db,
            "SELECT count(*) FROM diagnoses_icd WHERE icd_code NOT IN (SELECT icd_code FROM d_icd_diagnoses)",
        )
        == 0
    )
    assert (
        _one(
            db,
            "SELECT count(*) FROM procedures_icd WHERE icd_code NOT IN "
            "(SELECT icd_code FROM d_icd_procedures)",
        )
        == 0
    )
    assert _one(db, "SELECT long_title FROM d_icd_diagnoses WHERE icd_code = 'icd10|i10'") == (
        "essential (primary) hypertension"
    )
    assert _one(db, "SELECT long_title FROM d_icd_procedures WHERE icd_code = 'icd10|0bh17ez'") == (
        "insertion of endotracheal airway into trachea, via natural or artificial opening"
    )
    assert (
        _one(
            db,
            "SELECT count(*) FROM d_icd_diagnoses WHERE icd_code != lower(icd_code) OR icd_code LIKE '%.%'",
        )
        == 0
    )


# ---------------------------------------------------------------------------- stays and the census


def test_nothing_happens_at_or_after_the_cutoff(db: sqlite3.Connection) -> None:
    checks = {
        "admissions": ("admittime", "dischtime"),
        "transfers": ("intime", "outtime"),
        "icustays": ("intime", "outtime"),
        "labevents": ("charttime", "storetime"),
        "prescriptions": ("starttime", "stoptime"),
        "chartevents": ("charttime",),
        "microbiologyevents": ("charttime",),
        "visits": ("starttime", "endtime"),
        "care_team": ("starttime", "endtime"),
        "notes": ("charttime",),
    }
    for table, columns in checks.items():
        for column in columns:
            assert _one(db, f"SELECT count(*) FROM {table} WHERE {column} >= ?", CUTOFF) == 0, (table, column)
    assert _one(db, "SELECT count(*) FROM patients WHERE dod >= ?", CUTOFF) == 0
    assert _one(db, "SELECT min(admittime) FROM admissions") >= "2022-06-14"


def test_stays_are_consistent(db: sqlite3.Connection) -> None:
    assert _one(db, "SELECT count(*) FROM admissions WHERE dischtime <= admittime") == 0
    assert _one(db, "SELECT count(*) FROM transfers WHERE outtime < intime") == 0
    # Unit stays of an admission follow one another without gap, admit first, discharge at dischtime.
    rows = db.execute(
        "SELECT hadm_id, eventtype, careunit, intime, outtime FROM transfers ORDER BY hadm_id, intime, row_id"
    ).fetchall()
    admissions = {h: (a, d) for h, a, d in db.execute("SELECT hadm_id, admittime, dischtime FROM admissions")}
    by_hadm: dict[int, list[tuple[str, str | None, str, str | None]]] = {}
    for hadm, eventtype, careunit, intime, outtime in rows:
        by_hadm.setdefault(hadm, []).append((eventtype, careunit, intime, outtime))
    assert set(by_hadm) == set(admissions)
    for hadm, events in by_hadm.items():
        admittime, dischtime = admissions[hadm]
        kinds = [e[0] for e in events]
        stays = [e for e in events if e[0] != "discharge"]
        assert kinds.count("admit") == 1
        assert kinds[0] in ("ed", "admit")
        assert next(e for e in events if e[0] == "admit")[2] == admittime
        for before, after in pairwise(stays):
            assert before[3] == after[2], hadm
        if dischtime is None:
            assert stays[-1][3] is None
            assert "discharge" not in kinds
        else:
            assert events[-1] == ("discharge", None, dischtime, None)
    ed = db.execute(
        "SELECT count(*), sum(v.hadm_id IS NOT NULL) FROM transfers t JOIN visits v ON v.hadm_id = t.hadm_id "
        "AND v.visit_type = 'ed' WHERE t.eventtype = 'ed'"
    ).fetchone()
    assert ed[0] == _one(db, "SELECT count(*) FROM transfers WHERE eventtype = 'ed'") > 0
    assert _one(db, "SELECT count(*) FROM visits WHERE visit_type = 'ed' AND hadm_id IS NULL") > 0
    assert _one(db, "SELECT count(*) FROM visits WHERE visit_type = 'outpatient'") > PATIENTS
    assert (
        _one(
            db,
            "SELECT count(*) FROM icustays i JOIN admissions a USING (hadm_id) WHERE i.intime < a.admittime "
            "OR i.outtime > a.dischtime OR (i.outtime IS NULL AND a.dischtime IS NOT NULL)",
        )
        == 0
    )
    for age, dob, admittime in db.execute(
        "SELECT a.age, p.dob, a.admittime FROM admissions a JOIN patients p USING (subject_id)"
    ):
        born, admitted = dt.date.fromisoformat(dob[:10]), dt.date.fromisoformat(admittime[:10])
        assert age == admitted.year - born.year - ((admitted.month, admitted.day) < (born.month, born.day))


def test_patients_are_in_hospital_on_the_reference_date(db: sqlite3.Connection) -> None:
    current = _one(db, "SELECT count(*) FROM admissions WHERE dischtime IS NULL")
    assert current >= 25
    assert (
        _one(db, "SELECT count(*) FROM transfers WHERE outtime IS NULL AND eventtype != 'discharge'")
        == current
    )
    assert (
        _one(db, "SELECT count(*) FROM admissions WHERE dischtime IS NULL AND discharge_location IS NOT NULL")
        == 0
    )
    assert _one(db, "SELECT count(*) FROM icustays WHERE outtime IS NULL") >= 5
    assert _one(db, "SELECT count(DISTINCT hadm_id) FROM care_team WHERE endtime IS NULL") == current
    departments = dict(
        db.execute(
            "SELECT d.code, count(*) FROM transfers t JOIN care_units u USING (careunit) "
            "JOIN departments d USING (department_id) WHERE t.outtime IS NULL AND t.eventtype != 'discharge' "
            "GROUP BY d.code"
        ).fetchall()
    )
    for demo in CLINICAL_DEMO:
        assert departments.get(demo.department, 0) >= 3, demo.department


def test_demo_clinicians_look_after_current_and_recent_patients_of_their_department(
    db: sqlite3.Connection,
) -> None:
    for demo in CLINICAL_DEMO:
        current, recent = db.execute(
            "SELECT sum(ct.endtime IS NULL), sum(a.dischtime >= date(?, '-30 days')) FROM care_team ct "
            "JOIN staff s USING (staff_id) JOIN admissions a USING (hadm_id) "
            "JOIN transfers t ON t.hadm_id = ct.hadm_id AND t.intime = ct.starttime "
            "JOIN care_units u ON u.careunit = t.careunit "
            "JOIN departments d ON d.department_id = u.department_id "
            "WHERE s.username = ? AND d.code = ?",
            (CUTOFF, demo.username, demo.department),
        ).fetchone()
        assert current >= 3, demo.username
        assert recent >= 2, demo.username


def test_emergency_activity_peaks_in_winter(db: sqlite3.Connection) -> None:
    def season(months: tuple[str, ...]) -> int:
        marks = ", ".join("?" * len(months))
        visits = _one(
            db,
            f"SELECT count(*) FROM visits WHERE visit_type = 'ed' AND strftime('%m', starttime) IN ({marks})",
            *months,
        )
        stays = _one(
            db, f"SELECT count(*) FROM admissions WHERE strftime('%m', admittime) IN ({marks})", *months
        )
        return int(visits + stays)

    # The window (three years to 15 June) holds three of each of these months.
    assert season(("11", "12", "01", "02")) > season(("07", "08", "09", "10"))


# ---------------------------------------------------------------------------------- labs and vitals


def test_lab_results_have_ranges_flags_panels_and_turnaround(db: sqlite3.Connection) -> None:
    assert _one(db, "SELECT count(*) FROM labevents WHERE storetime < charttime") == 0
    assert (
        _one(
            db,
            "SELECT count(*) FROM labevents WHERE valuenum IS NOT NULL AND ref_range_lower IS NOT NULL AND "
            "((flag = 'abnormal') != (valuenum < ref_range_lower OR valuenum > ref_range_upper))",
        )
        == 0
    )
    assert _one(db, "SELECT count(*) FROM labevents WHERE flag IS NOT NULL AND flag != 'abnormal'") == 0
    abnormal = _one(db, "SELECT avg(flag IS NOT NULL) FROM labevents WHERE valuenum IS NOT NULL")
    assert 0.2 < abnormal < 0.5  # MIMIC-IV demo: 37% of results are flagged abnormal
    # A panel is one specimen: one charttime and one priority for all its results.
    assert (
        _one(
            db,
            "SELECT count(*) FROM (SELECT specimen_id FROM labevents GROUP BY specimen_id "
            "HAVING count(DISTINCT charttime) > 1 OR count(DISTINCT priority) > 1)",
        )
        == 0
    )
    chem = db.execute(
        "SELECT specimen_id FROM labevents GROUP BY specimen_id "
        "HAVING sum(itemid IN (50983, 50971, 50902, 50882, 51006, 50912, 50931)) = 7 LIMIT 1"
    ).fetchone()
    assert chem is not None
    stat, routine = (
        _one(
            db,
            "SELECT avg((julianday(storetime) - julianday(charttime)) * 1440) FROM labevents "
            "WHERE priority = ?",
            p,
        )
        for p in ("stat", "routine")
    )
    assert 40 < stat < routine < 200
    loinc = dict(db.execute("SELECT label, loinc_code FROM d_labitems WHERE fluid = 'blood'").fetchall())
    assert loinc["glucose"] == "2345-7"
    assert loinc["potassium"] == "2823-3"
    assert loinc["hemoglobin"] == "718-7"
    assert loinc["troponin t"] == "6598-7"
    plausible = dict(
        db.execute(
            "SELECT d.label, avg(valuenum) FROM labevents l JOIN d_labitems d USING (itemid) "
            "WHERE d.fluid = 'blood' GROUP BY d.label"
        ).fetchall()
    )
    assert 130 < plausible["sodium"] < 145
    assert 3.5 < plausible["potassium"] < 5
    assert 8 < plausible["hemoglobin"] < 15


def test_vitals_use_the_items_ehrsql_asks_about(db: sqlite3.Connection) -> None:
    items = dict(db.execute("SELECT itemid, label FROM d_items WHERE linksto = 'chartevents'").fetchall())
    for itemid, label in VITALS.items():
        assert items[itemid] == label
    charted = {row[0] for row in db.execute("SELECT DISTINCT itemid FROM chartevents")}
    assert set(VITALS) <= charted
    heart = db.execute(
        "SELECT min(valuenum), avg(valuenum), max(valuenum) FROM chartevents WHERE itemid = 220045"
    )
    low, mean, high = heart.fetchone()
    assert low >= 30
    assert 70 < mean < 110
    assert high < 200
    assert _one(db, "SELECT count(*) FROM d_items WHERE linksto = 'inputevents'") > 10
    assert _one(db, "SELECT count(*) FROM d_items WHERE linksto = 'outputevents'") > 3
    assert _one(db, "SELECT count(*) FROM inputevents") > 0
    assert _one(db, "SELECT count(*) FROM outputevents") > 0


def test_dictionaries_agree_with_ehrsql_mimic_iv(db: sqlite3.Connection) -> None:
    mimic_path = EHRSQL / "mimic_iv.sqlite"
    if not mimic_path.exists():
        pytest.skip(f"EHRSQL's MIMIC-IV database is not at {mimic_path}")
    mimic = sqlite3.connect(f"file:{mimic_path}?mode=ro", uri=True)
    theirs = {
        i: (label, abbr, links)
        for i, label, abbr, links in mimic.execute("SELECT itemid, label, abbreviation, linksto FROM d_items")
    }
    ours = db.execute("SELECT itemid, label, abbreviation, linksto FROM d_items").fetchall()
    for itemid, label, abbreviation, linksto in ours:
        assert theirs[itemid] == (label, abbreviation, linksto), itemid
    their_labs = dict(mimic.execute("SELECT itemid, label FROM d_labitems").fetchall())
    common = [
        (i, label) for i, label in db.execute("SELECT itemid, label FROM d_labitems") if i in their_labs
    ]
    assert len(common) > 45
    assert all(their_labs[i] == label for i, label in common)
    mimic.close()


# -------------------------------------------------------------------------------- privacy cases


def test_every_privacy_case_exists(db: sqlite3.Connection) -> None:
    assert _one(db, "SELECT count(*) FROM patient_identity WHERE vip_flag") >= 5
    employees = db.execute(
        "SELECT p.given_name = s.given_name AND p.family_name = s.family_name AND p.address = s.address "
        "FROM patient_identity p JOIN staff s USING (staff_id) WHERE p.employee_flag"
    ).fetchall()
    assert len(employees) >= 5
    assert all(row[0] for row in employees)
    assert (
        _one(db, "SELECT count(*) FROM patient_identity WHERE employee_flag != (staff_id IS NOT NULL)") == 0
    )
    assert (
        _one(
            db,
            "SELECT count(*) FROM patient_identity p JOIN staff s ON s.family_name = p.family_name "
            "WHERE p.staff_id IS NULL AND s.username = 'dr.carter'",
        )
        >= 1
    )
    assert (
        _one(
            db,
            "SELECT count(*) FROM patient_identity p JOIN staff s ON s.address = p.address AND "
            "s.postcode = p.postcode WHERE p.staff_id IS NULL",
        )
        >= 3
    )
    assert _one(db, "SELECT count(*) FROM patient_contacts c JOIN staff s ON s.phone = c.phone") >= 1
    special = {
        "psychiatry": r"^icd10\|f(20|31|32|33)",
        "hiv": r"^icd10\|(b20|z21)",
        "substance use": r"^icd10\|f1[0-9]",
        "reproductive health": r"^icd10\|(o|z3|n97)",
        "genetics": r"^icd10\|(q|z15)",
    }
    codes = [row[0] for row in db.execute("SELECT DISTINCT icd_code FROM diagnoses_icd")]
    for category, pattern in special.items():
        assert any(re.match(pattern, code) for code in codes), category
    assert _one(db, "SELECT count(*) FROM patients WHERE dod IS NOT NULL") >= 5
    died = db.execute(
        "SELECT count(*), sum(p.dod = date(a.dischtime) || ' 00:00:00') FROM admissions a "
        "JOIN patients p USING (subject_id) WHERE a.discharge_location = 'died'"
    ).fetchone()
    assert died[0] >= 3
    assert died[0] == died[1]
    assert (
        _one(
            db,
            "SELECT count(*) FROM admissions a JOIN patients p USING (subject_id) "
            "WHERE a.admittime >= date(p.dod, '+1 day')",
        )
        == 0
    )
    minors = db.execute(
        "SELECT count(DISTINCT a.subject_id), sum(t.careunit = 'pediatrics') FROM admissions a "
        "JOIN transfers t USING (hadm_id) WHERE a.age < 18 AND t.eventtype IN ('admit', 'transfer')"
    ).fetchone()
    assert minors[0] >= 5
    assert minors[1] >= minors[0]
    assert (
        _one(
            db,
            "SELECT count(*) FROM admissions a JOIN transfers t USING (hadm_id) "
            "WHERE t.careunit = 'pediatrics' AND a.age >= 18",
        )
        == 0
    )
    # A VIP and an employee are among the current cardiology inpatients the demo cardiologist treats.
    for flag in ("vip_flag", "employee_flag"):
        assert (
            _one(
                db,
                f"SELECT count(*) FROM patient_identity p JOIN care_team ct USING (subject_id) "
                f"JOIN staff s ON s.staff_id = ct.staff_id WHERE p.{flag} AND s.username = 'dr.carter' "
                f"AND ct.endtime IS NULL",
            )
            >= 1
        )


def test_identities_look_real_and_are_unique(db: sqlite3.Connection) -> None:
    rows = db.execute("SELECT mrn, national_id, birth_date, phone, email FROM patient_identity").fetchall()
    assert len({r[0] for r in rows}) == len({r[1] for r in rows}) == PATIENTS
    for mrn, national_id, birth_date, phone, email in rows:
        assert re.fullmatch(r"MRN\d{8}", mrn)
        assert re.fullmatch(r"320\d{15}", national_id)
        assert national_id[6:14] == birth_date.replace("-", "")
        assert re.fullmatch(r"\d{3}-\d{3}-\d{4}", phone)
        assert email is None or email.endswith(
            (".example.com", "@example.com", "@example.org", "@example.net")
        )
    mismatched = _one(
        db,
        "SELECT count(*) FROM patient_identity i JOIN patients p USING (subject_id) "
        "WHERE p.dob != i.birth_date || ' 00:00:00'",
    )
    assert mismatched == 0
    staff = {
        row[0]: row[1:]
        for row in db.execute("SELECT username, role, department_id FROM staff WHERE username IS NOT NULL")
    }
    departments = dict(db.execute("SELECT code, department_id FROM departments").fetchall())
    for demo in DEMO_STAFF:
        assert staff[demo.username] == (demo.role.value, departments.get(demo.department))
    assert 200 <= _one(db, "SELECT count(*) FROM staff") <= 600


# -------------------------------------------------------------------------------------------- notes


def test_notes_name_the_patient_and_their_spans_point_at_the_identifiers(db: sqlite3.Connection) -> None:
    hospital = DemoHospital(patients=PATIENTS, seed=SEED, reference_date=REFERENCE)
    stored = dict(db.execute("SELECT note_id, text FROM notes").fetchall())
    identity = {p.subject_id: p for p in hospital.patients}
    kinds: set[str] = set()
    notes = list(hospital.notes())
    assert len(notes) == len(stored)
    for note in notes:
        assert stored[note.note_id] == note.text
        assert 500 <= len(note.text) <= 3000
        patient = identity[note.subject_id]
        phones = {patient.phone} | {c.phone for c in patient.contacts}
        for span in note.spans:
            value = note.text[span.start : span.end]
            kinds.add(span.kind)
            if span.kind == "PATIENT_NAME":
                assert patient.family in value
            elif span.kind == "MRN":
                assert value == patient.mrn
            elif span.kind == "NATIONAL_ID":
                assert value == patient.national_id
            elif span.kind == "PHONE":
                assert value in phones
            elif span.kind == "RELATIVE_NAME":
                assert value in {c.full_name for c in patient.contacts}
        assert any(s.kind == "PATIENT_NAME" for s in note.spans)
    assert {
        "PATIENT_NAME",
        "RELATIVE_NAME",
        "PHONE",
        "MRN",
        "NATIONAL_ID",
        "DATE",
        "ADDRESS",
        "STAFF_NAME",
    } <= kinds


def test_generate_note_reports_spans_of_what_it_inserted() -> None:
    context = NoteContext(
        given="Amara",
        family="Okonkwo",
        gender="f",
        age=67,
        mrn="MRN00001234",
        national_id="320102195701011234",
        birth_date="01/01/1957",
        phone="617-555-0101",
        address="12 Elm Street",
        city="Boston",
        email="amara.okonkwo1@example.com",
        relative_name="Kofi Okonkwo",
        relationship="spouse",
        relative_phone="617-555-0199",
        author="Grace Carter",
        department="Cardiology",
        careunit="medicine/cardiology",
        admit_date="03/02/2025",
        note_date="03/04/2025",
        discharge_date="03/06/2025",
        hospital_day=3,
        complaint="chest pain",
        principal="nstemi",
        diagnoses=("non-st elevation (nstemi) myocardial infarction",),
        history=("essential (primary) hypertension",),
        medications=("aspirin",),
        plans=("Telemetry.",),
        procedures=(),
        disposition="home",
        clinic="cardiology",
    )
    identifiers = {
        "PATIENT_NAME": ("Amara Okonkwo", "Ms. Okonkwo"),
        "MRN": ("MRN00001234",),
        "NATIONAL_ID": ("320102195701011234",),
        "PHONE": ("617-555-0101", "617-555-0199"),
        "RELATIVE_NAME": ("Kofi Okonkwo",),
        "STAFF_NAME": ("Grace Carter",),
        "DATE": ("01/01/1957", "03/02/2025", "03/04/2025", "03/06/2025"),
        "ADDRESS": ("12 Elm Street",),
        "LOCATION": ("Boston",),
        "EMAIL": ("amara.okonkwo1@example.com",),
    }
    seen: set[str] = set()
    for seed in range(20):
        for note_type in NOTE_TYPES:
            text, spans = generate_note(random.Random(seed), note_type, context)
            assert 500 <= len(text) <= 3000
            assert sorted(spans, key=lambda s: s.start) == spans
            for span in spans:
                assert text[span.start : span.end] in identifiers[span.kind]
                seen.add(span.kind)
            # Every occurrence of an identifier in the text is covered by a span (recall can reach 100%).
            for kind, values in identifiers.items():
                for value in values:
                    for match in re.finditer(re.escape(value), text):
                        assert any(s.start <= match.start() and match.end() <= s.end for s in spans), (
                            kind,
                            value,
                        )
    assert seen == set(identifiers)


# ------------------------------------------------------------------------------------ EHRSQL gold SQL


def test_ehrsql_gold_sql_runs_on_the_generated_hospital(db: sqlite3.Connection) -> None:
    labels = EHRSQL / "valid" / "label.json"
    if not labels.exists():
        pytest.skip(f"EHRSQL's valid split is not at {labels}")
    placeholders = {
        "temperature_lower": "35.5",
        "temperature_upper": "38.1",
        "sao2_lower": "95",
        "sao2_upper": "100",
        "heart_rate_lower": "60",
        "heart_rate_upper": "100",
        "respiration_lower": "12",
        "respiration_upper": "18",
        "systolic_bp_lower": "90",
        "systolic_bp_upper": "120",
        "diastolic_bp_lower": "60",
        "diastolic_bp_upper": "90",
        "mean_bp_lower": "60",
        "mean_bp_upper": "110",
    }
    gold = [sql for sql in json.loads(labels.read_text()).values() if sql != "null"]
    population = answered = 0
    for sql in gold:
        sql = sql.replace("current_time", f"'{REFERENCE - dt.timedelta(days=1)} 23:59:00'")
        for name, value in placeholders.items():
            sql = sql.replace(name, value)
        rows = db.execute(sql).fetchall()  # every gold query runs: same tables, columns and value types
        if "subject_id =" not in sql:  # questions about one MIMIC-IV patient cannot match our patients
            population += 1
            answered += bool(rows and rows[0] and rows[0][0] not in (None, 0))
    assert len(gold) > 900
    assert answered > population // 4
