"""seed_demo never replaces a warehouse it did not write, such as the MIMIC-IV extract."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hisplatform.warehouse.loader import load_demo
from hisplatform.warehouse.targets import (
    WarehouseConfigError,
    WarehouseTarget,
    create_schema,
    warehouse_target,
    writer_connection,
)
from tests.conftest import PG_SERVER, SHARED

REFERENCE = dt.date(2026, 11, 25)


def test_an_unmarked_sqlite_warehouse_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "extract.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    create_schema(conn, "sqlite")
    conn.execute("INSERT INTO patients VALUES (0, 1, 'f', '2000-01-01 00:00:00', NULL)")
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(WarehouseConfigError, match="did not write"):
        load_demo(warehouse_target(f"sqlite:///{path}"), patients=60, seed=1, reference_date=REFERENCE)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_the_mimic_extract_is_refused(tmp_path: Path) -> None:
    mimic = SHARED / "benchmarks" / "ehrsql" / "mimic_iv.sqlite"
    if not mimic.exists():
        pytest.skip(f"MIMIC-IV demo database not found at {mimic} (../shared is absent)")
    copy = tmp_path / "mimic_iv.sqlite"
    shutil.copyfile(mimic, copy)
    with pytest.raises(WarehouseConfigError, match="an extract such as MIMIC-IV"):
        load_demo(warehouse_target(f"sqlite:///{copy}"), patients=60, seed=1, reference_date=REFERENCE)


def test_a_warehouse_the_loader_wrote_is_reloaded(tmp_path: Path) -> None:
    target = warehouse_target(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    load_demo(target, patients=60, seed=1, reference_date=REFERENCE)
    report = load_demo(target, patients=70, seed=1, reference_date=REFERENCE)
    assert report.row_counts["patients"] == 70
    assert not list(tmp_path.glob("*.loading"))


@pytest.fixture
def empty_pg() -> Iterator[WarehouseTarget]:
    name = f"his_test_safety_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield warehouse_target(f"{PG_SERVER}/{name}")
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unmarked_postgres_warehouse_is_refused_and_kept(empty_pg: WarehouseTarget) -> None:
    with writer_connection(empty_pg) as conn:
        create_schema(conn, "postgres")
        conn.execute("INSERT INTO patients VALUES (0, 1, 'f', '2000-01-01 00:00:00', NULL)")
    with pytest.raises(WarehouseConfigError, match="did not write"):
        load_demo(empty_pg, patients=60, seed=1, reference_date=REFERENCE)
    with writer_connection(empty_pg) as conn:
        row = conn.execute("SELECT count(*) FROM patients").fetchone()
    assert row is not None
    assert row[0] == 1
