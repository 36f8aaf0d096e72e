"""Bulk-load the generated demo hospital into a warehouse target, SQLite or PostgreSQL, in one go."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from itertools import islice
from pathlib import Path

import psycopg

from hisplatform.warehouse.executor import grant_reader
from hisplatform.warehouse.generator import DemoHospital, Row
from hisplatform.warehouse.schema import tables
from hisplatform.warehouse.targets import (
    WarehouseConfigError,
    WarehouseTarget,
    create_schema,
    finish_schema,
    writer_connection,
)

# How a warehouse written by this loader marks itself, so a reload never replaces a database it did not
# write (such as the MIMIC-IV extract): SQLite's application_id header field ("HISW") and, on
# PostgreSQL, a comment on the patients table.
SQLITE_APPLICATION_ID = 0x48495357
PG_MARKER = "hisplatform demo hospital"

# Rows per executemany call on SQLite: large enough that the per-call overhead vanishes, small enough
# that a batch of the widest table (notes, ~2 KB a row) stays a few megabytes.
SQLITE_BATCH = 20_000


@dataclass(frozen=True)
class LoadReport:
    target: str  # target.describe()
    patients: int
    seconds: float
    row_counts: dict[str, int]  # every table


def load_demo(
    target: WarehouseTarget,
    *,
    patients: int = 1000,
    seed: int = 42,
    reference_date: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """Drop and recreate the warehouse schema, load a generated hospital into it, then index and analyze.

    The load is all or nothing: PostgreSQL runs it in one transaction; SQLite builds a new file next
    to the target and moves it into place only when it is complete, so readers never see half a load.
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    hospital = DemoHospital(patients=patients, seed=seed, reference_date=reference_date)
    say(
        f"Generated {patients} patients, {len(hospital.admissions)} admissions "
        f"(reference date {hospital.reference_date.isoformat()})."
    )
    if target.sqlite_path is not None:
        counts = _load_sqlite(target, hospital, say)
    else:
        counts = _load_postgres(target, hospital, say)
    seconds = time.perf_counter() - started
    say(f"Loaded {sum(counts.values())} rows into {target.describe()} in {seconds:.1f} s.")
    return LoadReport(target.describe(), patients, seconds, counts)


def _load_sqlite(
    target: WarehouseTarget, hospital: DemoHospital, say: Callable[[str], None]
) -> dict[str, int]:
    assert target.sqlite_path is not None
    final = target.sqlite_path
    _refuse_shared_file(final)
    # Per process, so two seeds at once cannot write into each other's file.
    building = final.with_name(f"{final.name}.{os.getpid()}.loading")
    building.unlink(missing_ok=True)
    try:
        counts = _fill_sqlite(replace(target, sqlite_path=building), hospital, say)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    os.replace(building, final)
    return counts


def _refuse_shared_file(path: Path) -> None:
    """The load replaces the whole file: refuse if it holds anything but the warehouse."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = {
                str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise WarehouseConfigError(
            f"{path} exists and is not a SQLite database ({error}); move it away first."
        ) from None
    foreign = sorted(name for name in found - set(tables()) if not name.startswith("sqlite_"))
    if foreign:
        raise WarehouseConfigError(
            f"{path} also holds tables that are not the warehouse's ({', '.join(foreign[:5])}); "
            "point WAREHOUSE_URL at a file of its own."
        )
    if found and application_id != SQLITE_APPLICATION_ID:
        raise WarehouseConfigError(
            f"{path} holds a warehouse the demo generator did not write (an extract such as MIMIC-IV); "
            "seed_demo replaces the whole file, so point WAREHOUSE_URL at a new file instead."
        )


def _fill_sqlite(
    target: WarehouseTarget, hospital: DemoHospital, say: Callable[[str], None]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    with writer_connection(target) as conn:
        assert isinstance(conn, sqlite3.Connection)
        # The file is new and private until it is renamed, so no journal and no fsync are needed:
        # a crash leaves only a stray .loading file, never a damaged warehouse.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -200000")  # 200 MB of page cache for the index builds
        create_schema(conn, "sqlite")
        conn.execute("BEGIN")
        for table in tables().values():
            columns = ", ".join(table.column_names)
            marks = ", ".join("?" * len(table.column_names))
            statement = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"
            count = 0
            for batch in _batches(hospital.rows(table.name), SQLITE_BATCH):
                conn.executemany(statement, batch)
                count += len(batch)
            counts[table.name] = count
            say(f"{table.name}: {count} rows")
        conn.execute("COMMIT")
        say("Indexing and analyzing.")
        finish_schema(conn, "sqlite")
        conn.execute(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")
    return counts


def _load_postgres(
    target: WarehouseTarget, hospital: DemoHospital, say: Callable[[str], None]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    with writer_connection(target) as conn:
        assert isinstance(conn, psycopg.Connection)
        with conn.transaction():
            # A bulk load in one transaction: losing its last commits in a crash only means loading again.
            conn.execute("SET LOCAL synchronous_commit = off")
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            _refuse_foreign_postgres(conn, target)
            create_schema(conn, "postgres")
            with conn.cursor() as cursor:
                for table in tables().values():
                    columns = ", ".join(table.column_names)
                    count = 0
                    with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
                        for row in hospital.rows(table.name):
                            copy.write_row(row)
                            count += 1
                    counts[table.name] = count
                    say(f"{table.name}: {count} rows")
            say("Indexing, adding foreign keys and analyzing.")
            finish_schema(conn, "postgres")
            conn.execute(f"COMMENT ON TABLE patients IS '{PG_MARKER}'")
            # Recreated tables carry no grants: give the reader role SELECT on exactly these again.
            grant_reader(conn)
    return counts


def _refuse_foreign_postgres(conn: psycopg.Connection, target: WarehouseTarget) -> None:
    """The load drops every warehouse table: refuse if they hold an extract this loader did not write."""
    row = conn.execute(
        "SELECT to_regclass('patients') IS NOT NULL, obj_description(to_regclass('patients'), 'pg_class')"
    ).fetchone()
    if row is not None and row[0] and row[1] != PG_MARKER:
        raise WarehouseConfigError(
            f"{target.describe()} holds a warehouse the demo generator did not write; seed_demo drops "
            "every warehouse table, so point WAREHOUSE_URL at a database of its own."
        )


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch
