"""The read-only executor: every write path fails at the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command

from hisplatform.warehouse.executor import (
    BUSY_MESSAGE,
    QueryResult,
    WarehouseError,
    WarehouseQueryError,
    WarehouseRefused,
    WarehouseTimeout,
    WarehouseUnavailable,
    close_connections,
    ensure_reader_role,
    execute_readonly,
    grant_reader,
    readable_tables,
    reader_url,
)
from hisplatform.warehouse.targets import (
    WarehouseConfigError,
    WarehouseTarget,
    create_schema,
    finish_schema,
    warehouse_target,
    writer_connection,
)

PG_SERVER = os.environ.get("PG_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
# Roles are cluster-wide: each run makes its own (tests widen the reader on purpose, and runs may
# overlap), resets it at the start and drops both at the end.
_RUN = uuid.uuid4().hex[:8]
READER = f"his_reader_test_{_RUN}"
OWNER = f"his_owner_test_{_RUN}"
TS = dt.datetime

# A handful of rows: enough to see a change, small enough to compare whole tables.
ROWS: dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]] = {
    "patients": (
        ("row_id", "subject_id", "gender", "dob", "dod"),
        [(1, 10001, "f", TS(2050, 1, 1), None), (2, 10002, "m", TS(2060, 5, 5), None)],
    ),
    "admissions": (
        (
            "row_id",
            "subject_id",
            "hadm_id",
            "admittime",
            "dischtime",
            "admission_type",
            "admission_location",
            "discharge_location",
            "insurance",
            "language",
            "marital_status",
            "age",
        ),
        [
            (
                1,
                10001,
                20001,
                TS(2100, 1, 1, 8),
                TS(2100, 1, 5, 12),
                "ew emer.",
                "emergency room",
                "home",
                "medicare",
                "english",
                "married",
                50,
            ),
            (
                2,
                10002,
                20002,
                TS(2100, 2, 1, 9),
                None,
                "urgent",
                "transfer",
                None,
                "other",
                "english",
                "single",
                40,
            ),
        ],
    ),
    "d_labitems": (("row_id", "itemid", "label"), [(1, 50912, "creatinine")]),
    "labevents": (
        ("row_id", "subject_id", "hadm_id", "itemid", "charttime", "valuenum", "valueuom"),
        [
            (1, 10001, 20001, 50912, TS(2100, 1, 1, 9), 1.1, "mg/dl"),
            (2, 10001, 20001, 50912, TS(2100, 1, 2, 9), 1.3, "mg/dl"),
            (3, 10002, 20002, 50912, TS(2100, 2, 1, 10), 0.9, "mg/dl"),
        ],
    ),
    "patient_identity": (
        (
            "subject_id",
            "mrn",
            "national_id",
            "given_name",
            "family_name",
            "birth_date",
            "vip_flag",
            "employee_flag",
        ),
        [(10001, "MRN0001", "NID0001", "Ada", "Byron", dt.date(1950, 1, 1), False, False)],
    ),
}
TABLES = tuple(ROWS)


@dataclass
class Warehouse:
    target: WarehouseTarget
    dialect: str
    directory: Path  # where files an attack might create would appear

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        """Every test table's rows and the list of tables, read through the owner's connection."""
        with writer_connection(self.target) as conn:
            if isinstance(conn, sqlite3.Connection):
                names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            else:
                names = conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                ).fetchall()
            result: dict[str, list[tuple[object, ...]]] = {"__tables__": sorted(names)}
            for table in TABLES:
                rows = conn.execute(f"SELECT * FROM {table}").fetchall()
                result[table] = sorted(rows, key=repr)
        return result


def _load(conn: sqlite3.Connection | psycopg.Connection, dialect: str) -> None:
    create_schema(conn, dialect)  # type: ignore[arg-type]
    mark = "?" if dialect == "sqlite" else "%s"
    for table, (columns, rows) in ROWS.items():
        placeholders = ", ".join([mark] * len(columns))
        for row in rows:
            values = tuple(
                v.isoformat(sep=" ") if dialect == "sqlite" and isinstance(v, TS) else v for v in row
            )
            conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", values)
    finish_schema(conn, dialect)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pg_roles() -> Iterator[None]:
    """The run's reader role, reset to read-only before the first PostgreSQL test; both roles dropped
    after the last (the databases holding their grants are gone by then)."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        ensure_reader_role(admin, READER)
    yield
    close_connections()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        for role in (READER, OWNER):
            # A database a failed test left behind may still hold the role's grants: then it stays.
            with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def exec_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    directory = tmp_path_factory.mktemp("exec_sqlite")
    target = warehouse_target(f"sqlite:///{directory / 'warehouse.sqlite3'}")
    with writer_connection(target) as conn:
        _load(conn, "sqlite")
    yield Warehouse(target, "sqlite", directory)
    close_connections()


@pytest.fixture(scope="module")
def exec_pg(tmp_path_factory: pytest.TempPathFactory, pg_roles: None) -> Iterator[Warehouse]:
    name = f"his_exec_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    target = warehouse_target(f"{PG_SERVER}/{name}")
    try:
        with writer_connection(target) as conn:
            _load(conn, "postgres")
            grant_reader(conn, READER)  # also puts the role back to read-only, whatever a run left
        yield Warehouse(target, "postgres", tmp_path_factory.mktemp("exec_pg"))
    finally:
        close_connections()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    result: Warehouse = request.getfixturevalue("exec_sqlite" if request.param == "sqlite" else "exec_pg")
    return result


@pytest.fixture(autouse=True)
def _reader_settings(settings) -> None:
    settings.WAREHOUSE_READER_ROLE = READER
    settings.WAREHOUSE_READER_URL = ""
    settings.WAREHOUSE_STATEMENT_TIMEOUT_MS = 15_000
    settings.WAREHOUSE_ROW_CAP = 5_000


def run(wh: Warehouse, sql: str, params: list[object] | None = None, **kwargs: int) -> QueryResult:
    return execute_readonly(
        sql,
        params,
        target=wh.target,
        row_cap=kwargs.get("row_cap"),
        timeout_ms=kwargs.get("timeout_ms"),
        max_result_bytes=kwargs.get("max_result_bytes"),
    )


def _counting(n: int, select: str) -> str:
    """SQL that both engines run: `select` over c(x) = 1..n, computed, so no table is needed."""
    return (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        f"SELECT {select} FROM c"
    )


def _owner(wh: Warehouse) -> psycopg.Connection[tuple[object, ...]]:
    """The PostgreSQL warehouse's owner (a superuser here), typed as such for the role helpers."""
    return psycopg.connect(wh.target.conninfo, autocommit=True)


def _peak_rss_kb() -> int:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match is not None
    return int(match.group(1))


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) starts again from now


# --- Reading ------------------------------------------------------------------------------------


def test_reads_rows_and_column_names(warehouse: Warehouse) -> None:
    result = run(
        warehouse,
        "SELECT subject_id, count(*) AS n, avg(valuenum) AS mean FROM labevents "
        "GROUP BY subject_id ORDER BY subject_id",
    )
    assert result.columns == ["subject_id", "n", "mean"]
    assert [(row[0], row[1], round(float(row[2]), 6)) for row in result.rows] == [  # type: ignore[arg-type]
        (10001, 2, 1.2),
        (10002, 1, 0.9),
    ]
    assert result.truncated is False
    assert result.duration_ms > 0


def test_ehrsql_style_sql_passes(warehouse: Warehouse) -> None:
    """Window functions, date functions and nested IN subqueries: what EHRSQL's gold SQL uses."""
    if warehouse.dialect == "sqlite":
        sql = (
            "SELECT t1.label FROM (SELECT d_labitems.label, DENSE_RANK() OVER (ORDER BY COUNT(*) DESC) AS c1 "
            "FROM labevents JOIN d_labitems ON labevents.itemid = d_labitems.itemid "
            "WHERE strftime('%Y', labevents.charttime) = '2100' AND labevents.hadm_id IN "
            "(SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id = 10001) "
            "AND datetime(labevents.charttime) <= "
            "datetime('2100-12-31 23:59:00', 'start of year', '+1 year') "
            "GROUP BY d_labitems.label) AS t1 WHERE t1.c1 <= 3"
        )
    else:
        sql = (
            "SELECT t1.label FROM (SELECT d_labitems.label, DENSE_RANK() OVER (ORDER BY COUNT(*) DESC) AS c1 "
            "FROM labevents JOIN d_labitems ON labevents.itemid = d_labitems.itemid "
            "WHERE EXTRACT(YEAR FROM labevents.charttime) = 2100 AND labevents.hadm_id IN "
            "(SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id = 10001) "
            "GROUP BY d_labitems.label) AS t1 WHERE t1.c1 <= 3"
        )
    assert run(warehouse, sql).rows == [("creatinine",)]


def test_recursive_cte_and_params(warehouse: Warehouse) -> None:
    mark = "?" if warehouse.dialect == "sqlite" else "%s"
    sql = (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {mark}) "
        "SELECT count(*) FROM c"
    )
    assert run(warehouse, sql, [10]).rows == [(10,)]


def test_percent_sign_without_params_is_sent_as_written(warehouse: Warehouse) -> None:
    result = run(warehouse, "SELECT count(*) FROM d_labitems WHERE label LIKE '%atin%'")
    assert result.rows == [(1,)]


def test_row_cap_truncates_and_says_so(warehouse: Warehouse, settings) -> None:
    capped = run(warehouse, "SELECT row_id FROM labevents ORDER BY row_id", row_cap=2)
    assert capped.rows == [(1,), (2,)]
    assert capped.truncated is True
    exact = run(warehouse, "SELECT row_id FROM labevents ORDER BY row_id", row_cap=3)
    assert exact.rows == [(1,), (2,), (3,)]
    assert exact.truncated is False
    settings.WAREHOUSE_ROW_CAP = 1
    default = run(warehouse, "SELECT row_id FROM labevents ORDER BY row_id")
    assert default.rows == [(1,)]
    assert default.truncated is True


def test_empty_result_keeps_its_columns(warehouse: Warehouse) -> None:
    result = run(warehouse, "SELECT subject_id, gender FROM patients WHERE subject_id = -1")
    assert result == QueryResult(["subject_id", "gender"], [], False, result.duration_ms)


def test_result_over_the_size_limit_is_refused_and_only_kept_rows_count(
    warehouse: Warehouse, settings
) -> None:
    """1,000 rows of a 100-character text and a number: 1,000 x (100 + 8) = 108,000 bytes."""
    sql = _counting(1_000, f"x, '{'y' * 100}' AS padding")
    assert len(run(warehouse, sql, max_result_bytes=108_000).rows) == 1_000
    with pytest.raises(WarehouseQueryError) as raised:
        run(warehouse, sql, max_result_bytes=107_999)
    assert raised.value.code == "result_too_large"
    # The row cap comes first: 500 rows kept (54,000 bytes) fit, and the extra row fetched only to
    # see that more existed does not count.
    capped = run(warehouse, sql, row_cap=500, max_result_bytes=54_000)
    assert (len(capped.rows), capped.truncated) == (500, True)
    settings.WAREHOUSE_MAX_RESULT_BYTES = 50_000
    with pytest.raises(WarehouseQueryError) as raised:
        run(warehouse, sql)
    assert raised.value.message == (
        "The result is too large to show (more than 0.05 MB). Ask for fewer rows or columns, "
        "or leave out long text."
    )
    assert run(warehouse, "SELECT count(*) FROM patients").rows == [(2,)]


def test_size_limit_counts_table_text_even_when_its_declared_size_would_not_fit(warehouse: Warehouse) -> None:
    """label is VARCHAR(200): PostgreSQL skips counting only when cap x 200 characters fit the limit."""
    sql = "SELECT label FROM d_labitems"  # one row: 'creatinine', 10 characters
    with pytest.raises(WarehouseQueryError, match="too large"):
        run(warehouse, sql, max_result_bytes=9)
    assert run(warehouse, sql, max_result_bytes=10).rows == [("creatinine",)]
    assert run(warehouse, sql, row_cap=1, max_result_bytes=200).rows == [("creatinine",)]


def test_multiple_statements_are_refused_as_such(warehouse: Warehouse) -> None:
    for sql in ("SELECT 1; SELECT 2", "SELECT count(*) FROM patients; DELETE FROM patients"):
        with pytest.raises(WarehouseRefused) as raised:
            run(warehouse, sql)
        assert raised.value.reason == "multiple_statements"
        assert raised.value.message.endswith("only one query can run at a time.")
    assert run(warehouse, "SELECT count(*) FROM patients").rows == [(2,)]


@pytest.mark.parametrize("limit", ["row_cap", "max_result_bytes"])
def test_postgres_never_holds_a_huge_result_whole(exec_pg: Warehouse, limit: str) -> None:
    """Two million rows of 100 characters (over 300 MB in libpq, were it fetched whole) stream
    through in batches: the cap or the size limit stops the query on the server early."""
    sql = (
        "SELECT a.x * 1000 + b.y AS n, repeat('x', 100) AS padding "
        "FROM generate_series(0, 1999) a(x) CROSS JOIN generate_series(0, 999) b(y)"
    )
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc to measure the peak memory of this process")
    run(exec_pg, "SELECT 1")  # connected beforehand: only the query counts
    _reset_peak_rss()
    baseline = _peak_rss_kb()
    started = time.monotonic()
    if limit == "row_cap":
        result = run(exec_pg, sql, row_cap=5_000)
        assert (len(result.rows), result.truncated) == (5_000, True)
    else:
        with pytest.raises(WarehouseQueryError, match="too large"):
            run(exec_pg, sql, row_cap=1_000_000, max_result_bytes=1_000_000)
    assert _peak_rss_kb() - baseline < 32_000
    assert time.monotonic() - started < 1.0
    # Stopping early cancelled the rest without disturbing the session: it is reused, and the next
    # questions are not cancelled by a late signal.
    pid = run(exec_pg, "SELECT pg_backend_pid()").rows[0][0]
    for _ in range(5):
        assert run(exec_pg, sql, row_cap=10).truncated
        assert run(exec_pg, "SELECT count(*) FROM labevents").rows == [(3,)]
    assert run(exec_pg, "SELECT pg_backend_pid()").rows[0][0] == pid


def test_readable_tables_lists_the_warehouse(warehouse: Warehouse) -> None:
    tables = readable_tables(warehouse.target)
    assert {"patients", "labevents", "patient_identity"} <= tables


# --- Refused at the database ----------------------------------------------------------------------

COMMON_REFUSED = [
    "INSERT INTO patients (row_id, subject_id, gender, dob) VALUES (3, 10003, 'f', '2070-01-01 00:00:00')",
    "UPDATE patients SET gender = 'x'",
    "DELETE FROM patients",
    "DELETE FROM patient_identity WHERE subject_id = 10001",
    "DROP TABLE labevents",
    "CREATE TABLE evil (x INT)",
    "CREATE TEMP TABLE evil (x INT)",
    "CREATE TABLE evil AS SELECT * FROM patients",
    "CREATE VIEW evil AS SELECT 1 AS x",
    "CREATE INDEX ix_evil ON patients (gender)",
    "ALTER TABLE patients ADD COLUMN evil INT",
    "ALTER TABLE patients RENAME TO evil",
    "SELECT 1; DROP TABLE patients",
    "SELECT 1; SELECT 2",
    "SELECT 1 AS x; DELETE FROM patients",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s1",
    "-- only a comment",
]

SQLITE_REFUSED = [
    "ATTACH DATABASE '{dir}/evil.db' AS evil",
    "ATTACH DATABASE 'file:{dir}/evil2.db?mode=rwc' AS evil",
    "DETACH DATABASE temp",
    "PRAGMA user_version = 5",
    "PRAGMA journal_mode = delete",
    "PRAGMA journal_mode = wal",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = ON",
    "PRAGMA table_info(patients)",
    "SELECT * FROM pragma_table_info('patients')",
    "VACUUM",
    "VACUUM INTO '{dir}/copy.db'",
    "REINDEX patients",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "REPLACE INTO patients (row_id, subject_id, gender, dob) VALUES (1, 10001, 'x', '2050-01-01')",
    "INSERT OR IGNORE INTO d_labitems (row_id, itemid, label) VALUES (9, 9, 'x')",
    "WITH x AS (SELECT 1) DELETE FROM patients",
    "CREATE TRIGGER evil AFTER INSERT ON patients BEGIN DELETE FROM labevents; END",
    "CREATE VIRTUAL TABLE evil USING fts5(x)",
    "SELECT load_extension('{dir}/evil')",
    "SELECT readfile('/etc/passwd')",
    "SELECT writefile('{dir}/written', 'x')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT edit('x')",
    "SELECT zeroblob(1000000000)",
    "SELECT randomblob(100)",
    "SELECT sqlite_version()",
]

PG_REFUSED = [
    "COPY patients FROM STDIN",
    "COPY patients FROM '/etc/hostname'",
    "COPY patients TO '{dir}/patients.csv'",
    "COPY (SELECT 1) TO PROGRAM 'touch {dir}/pwned'",
    "COPY d_labitems FROM PROGRAM 'touch {dir}/pwned2'",
    "COPY patients TO STDOUT",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('/etc/hostname')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT pg_stat_file('postgresql.conf')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(1, '{dir}/lo')",
    "SELECT * FROM pg_authid",
    "SELECT passwd FROM pg_shadow",
    "SET ROLE postgres",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION postgres",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SELECT set_config('transaction_read_only', 'off', false)",
    "BEGIN READ WRITE",
    "COMMIT; BEGIN READ WRITE; DELETE FROM patients",
    "WITH x AS (DELETE FROM patients RETURNING *) SELECT * FROM x",
    "WITH x AS (UPDATE patients SET gender = 'x' RETURNING *) SELECT count(*) FROM x",
    "WITH x AS (INSERT INTO d_labitems VALUES (9, 9, 'x') RETURNING *) SELECT 1",
    "SELECT * FROM patients FOR UPDATE",
    "LOCK TABLE patients IN ACCESS EXCLUSIVE MODE",
    "TRUNCATE labevents",
    "MERGE INTO patients p USING (SELECT 10001 AS s) q ON p.subject_id = q.s WHEN MATCHED THEN DELETE",
    "SELECT * INTO evil FROM patients",
    "GRANT SELECT ON patients TO PUBLIC",
    f"ALTER ROLE {READER} SUPERUSER",
    "CREATE EXTENSION IF NOT EXISTS dblink",
    "DO $$ BEGIN DELETE FROM patients; END $$",
    "EXPLAIN ANALYZE DELETE FROM patients",
    "PREPARE evil AS DELETE FROM patients",
    "DISCARD ALL",
    "VACUUM patients",
]


def _assert_refused(wh: Warehouse, statement: str) -> None:
    before = wh.snapshot()
    sql = statement.format(dir=wh.directory)
    with pytest.raises(WarehouseRefused) as raised:
        run(wh, sql, timeout_ms=5_000)
    assert raised.value.code == "refused"
    # Our words, not the driver's: nothing about roles, files or the server leaks to the person asking.
    assert raised.value.message.startswith("The warehouse refused this statement")
    for leak in ("permission denied", "pg_", "postgres", "sqlite", "/", "not authorized"):
        assert leak not in raised.value.message
    assert wh.snapshot() == before
    assert sorted(p.name for p in wh.directory.iterdir()) == (
        ["warehouse.sqlite3"] if wh.dialect == "sqlite" else []
    )
    # The connection is still good for the next question.
    assert run(wh, "SELECT count(*) FROM patients").rows == [(2,)]


@pytest.mark.parametrize("statement", COMMON_REFUSED + SQLITE_REFUSED)
def test_sqlite_refuses_at_the_database(exec_sqlite: Warehouse, statement: str) -> None:
    _assert_refused(exec_sqlite, statement)


@pytest.mark.parametrize("statement", COMMON_REFUSED + PG_REFUSED)
def test_postgres_refuses_at_the_database(exec_pg: Warehouse, statement: str) -> None:
    _assert_refused(exec_pg, statement)
    with writer_connection(exec_pg.target) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolinherit FROM pg_roles WHERE rolname = %s", [READER]
        ).fetchone()
    assert role == (False, False)


def test_sqlite_layers_each_refuse_on_their_own(exec_sqlite: Warehouse) -> None:
    """Without the authorizer, mode=ro alone still refuses; the authorizer alone refuses too."""
    path = exec_sqlite.target.sqlite_path
    assert path is not None
    bare = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            bare.execute("DELETE FROM patients")
    finally:
        bare.close()
    writable = sqlite3.connect(path, isolation_level=None)
    try:
        writable.execute("PRAGMA query_only = ON")
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            writable.execute("DELETE FROM patients")
    finally:
        writable.close()
    assert run(exec_sqlite, "SELECT count(*) FROM patients").rows == [(2,)]


def test_postgres_role_alone_refuses_writes(exec_pg: Warehouse) -> None:
    """Outside the executor's READ ONLY transaction, the role itself still may not write or read files."""
    with psycopg.connect(reader_url(exec_pg.target), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        conn.execute("SET default_transaction_read_only = off")
        for statement, error in [
            ("DELETE FROM patients", psycopg.errors.InsufficientPrivilege),
            ("CREATE TABLE evil (x INT)", psycopg.errors.InsufficientPrivilege),
            ("SELECT pg_read_file('/etc/passwd')", psycopg.errors.InsufficientPrivilege),
            ("SET ROLE postgres", psycopg.errors.InsufficientPrivilege),
        ]:
            with pytest.raises(error):
                conn.execute(statement)
    assert exec_pg.snapshot()["patients"][0][1] == 10001


def test_postgres_session_is_the_reader_in_a_read_only_transaction(exec_pg: Warehouse) -> None:
    result = run(
        exec_pg,
        "SELECT current_user, session_user, current_setting('transaction_read_only'), "
        "current_setting('statement_timeout')",
        timeout_ms=1_234,
    )
    assert result.rows == [(READER, READER, "on", "1234ms")]


def test_postgres_superuser_reader_is_refused(exec_pg: Warehouse, settings) -> None:
    settings.WAREHOUSE_READER_ROLE = "postgres"
    with pytest.raises(WarehouseUnavailable, match="not a read-only account"):
        run(exec_pg, "SELECT 1")


def test_postgres_missing_reader_role_tells_the_operator(exec_pg: Warehouse, settings) -> None:
    settings.WAREHOUSE_READER_ROLE = "his_reader_that_does_not_exist"
    with pytest.raises(WarehouseUnavailable) as raised:
        run(exec_pg, "SELECT 1")
    assert "python manage.py create_warehouse_reader" in raised.value.message
    assert raised.value.code == "unavailable"


def test_reader_url_setting_is_used_for_the_configured_warehouse(exec_pg: Warehouse, settings) -> None:
    settings.WAREHOUSE_URL = exec_pg.target.url
    settings.WAREHOUSE_READER_URL = exec_pg.target.url.replace("postgres@", f"{READER}@")
    settings.WAREHOUSE_READER_ROLE = "ignored_when_the_url_is_set"
    assert execute_readonly("SELECT current_user").rows == [(READER,)]


def test_reader_url_keeps_the_server_and_options_and_replaces_only_the_login(settings) -> None:
    """One helper builds every libpq URL: the owner's, the reader's, and WAREHOUSE_READER_URL's."""
    target = warehouse_target("postgres://owner:s%40cret@[::1]:5433/wh?sslmode=require&connect_timeout=3")
    assert target.conninfo == "postgresql://owner:s%40cret@[::1]:5433/wh?sslmode=require&connect_timeout=3"
    assert target.with_user("a reader", "p@ss:word") == (
        "postgresql://a%20reader:p%40ss%3Aword@[::1]:5433/wh?sslmode=require&connect_timeout=3"
    )
    settings.WAREHOUSE_READER_ROLE = "his_reader"
    assert reader_url(target) == "postgresql://his_reader@[::1]:5433/wh?sslmode=require&connect_timeout=3"
    settings.WAREHOUSE_URL = target.url
    settings.WAREHOUSE_READER_URL = "postgres://ro:pw@db.internal/wh"
    assert reader_url(target) == "postgresql://ro:pw@db.internal/wh"


# Predefined roles that read everything, see every session's queries or write anywhere: a reader
# that can become any of them, directly or through a group, is not a read-only account.
POWERFUL_MEMBERSHIPS = ["pg_read_all_data", "pg_read_all_stats", "pg_monitor", "pg_write_all_data"]


@pytest.mark.parametrize("grant", [*POWERFUL_MEMBERSHIPS, "through a group", "a role with CREATEROLE"])
def test_postgres_reader_with_powerful_memberships_is_refused_until_regranted(
    exec_pg: Warehouse, grant: str
) -> None:
    group = f"his_group_test_{uuid.uuid4().hex[:8]}"
    with writer_connection(exec_pg.target) as conn:
        if grant == "through a group":
            conn.execute(f'CREATE ROLE "{group}" NOLOGIN')
            conn.execute(f'GRANT pg_read_all_data TO "{group}"')
            conn.execute(f'GRANT "{group}" TO "{READER}"')
        elif grant == "a role with CREATEROLE":
            conn.execute(f'CREATE ROLE "{group}" NOLOGIN CREATEROLE')
            conn.execute(f'GRANT "{group}" TO "{READER}"')
        else:
            conn.execute(f'GRANT {grant} TO "{READER}"')
    close_connections()
    try:
        with pytest.raises(WarehouseUnavailable, match="not a read-only account") as raised:
            run(exec_pg, "SELECT count(*) FROM patients")
        assert "create_warehouse_reader" in raised.value.message
        # The grant after every (re)load puts the role back, memberships included.
        with writer_connection(exec_pg.target) as conn:
            grant_result = grant_reader(conn, READER)
        assert grant_result is not None
        assert any(change.startswith("revoked membership in") for change in grant_result.changes)
        assert run(exec_pg, "SELECT count(*) FROM patients").rows == [(2,)]
    finally:
        with _owner(exec_pg) as conn:
            ensure_reader_role(conn, READER)
            conn.execute(f'DROP ROLE IF EXISTS "{group}"')


# --- Time limits ----------------------------------------------------------------------------------


def test_sqlite_timeout_stops_a_runaway_query(exec_sqlite: Warehouse) -> None:
    started = time.monotonic()
    with pytest.raises(WarehouseTimeout) as raised:
        run(
            exec_sqlite,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
            "SELECT count(*) FROM c",
            timeout_ms=200,
        )
    assert time.monotonic() - started < 1.5
    assert raised.value.code == "timeout"
    assert raised.value.message.startswith("The query took longer than 0.2 s and was stopped.")
    assert run(exec_sqlite, "SELECT count(*) FROM patients").rows == [(2,)]


@pytest.mark.parametrize(
    "sql",
    ["SELECT pg_sleep(5)", "SELECT count(*) FROM generate_series(1, 2000000000)"],
)
def test_postgres_timeout_stops_a_runaway_query(exec_pg: Warehouse, sql: str) -> None:
    started = time.monotonic()
    with pytest.raises(WarehouseTimeout, match=r"longer than 0\.2 s"):
        run(exec_pg, sql, timeout_ms=200)
    assert time.monotonic() - started < 1.5
    assert run(exec_pg, "SELECT count(*) FROM patients").rows == [(2,)]


@pytest.mark.parametrize(("timeout_ms", "waits_s"), [(15_000, 2.0), (600, 0.3)])
def test_postgres_reader_blocked_by_a_reload_is_told_to_come_back(
    exec_pg: Warehouse, timeout_ms: int, waits_s: float
) -> None:
    """A reload holds ACCESS EXCLUSIVE locks until it commits: a question waits 2 s (or half its
    time limit, when shorter) for them, then says the warehouse is busy, not that it was too broad."""
    with _owner(exec_pg) as conn, conn.transaction():
        conn.execute("LOCK TABLE labevents IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(WarehouseUnavailable) as raised:
            run(exec_pg, "SELECT count(*) FROM labevents", timeout_ms=timeout_ms)
        waited = time.monotonic() - started
        assert raised.value.code == "busy"
        assert raised.value.message == BUSY_MESSAGE
        assert waits_s <= waited < waits_s + 1.5
        # Tables the reload does not hold still answer at once.
        assert run(exec_pg, "SELECT count(*) FROM patients").rows == [(2,)]
    assert run(exec_pg, "SELECT count(*) FROM labevents").rows == [(3,)]


def test_timeout_message_uses_the_configured_limit() -> None:
    assert WarehouseTimeout(15_000).message.startswith("The query took longer than 15 s and was stopped.")


# --- Missing tables and bad queries ---------------------------------------------------------------


def test_unknown_table_is_named(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseQueryError) as raised:
        run(warehouse, "SELECT * FROM no_such_thing")
    assert raised.value.code == "no_such_table"
    assert raised.value.message == "The warehouse has no table named no_such_thing."


def test_bad_column_is_a_query_error(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseQueryError, match="nonexistent_column") as raised:
        run(warehouse, "SELECT nonexistent_column FROM patients")
    assert raised.value.code == "invalid_query"


def test_postgres_data_errors_do_not_echo_the_value(exec_pg: Warehouse) -> None:
    """An error-based probe ("cast the name to a number") must not read the name back."""
    with pytest.raises(WarehouseQueryError) as raised:
        run(exec_pg, "SELECT CAST(given_name AS INT) FROM patient_identity")
    assert "Ada" not in raised.value.message
    assert "22P02" in raised.value.message


def test_deidentified_source_says_it_has_no_identity_tables(tmp_path: Path) -> None:
    target = warehouse_target(f"sqlite:///{tmp_path / 'deid.sqlite3'}")
    with writer_connection(target) as conn:
        conn.execute("CREATE TABLE patients (row_id INT, subject_id INT)")
    with pytest.raises(WarehouseQueryError) as raised:
        execute_readonly("SELECT mrn FROM patient_identity", target=target)
    assert raised.value.code == "no_identity_tables"
    assert "no identity tables" in raised.value.message
    close_connections()


def test_missing_sqlite_file_is_unavailable_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"
    with pytest.raises(WarehouseUnavailable, match="does not exist"):
        execute_readonly("SELECT 1", target=warehouse_target(f"sqlite:///{path}"))
    assert not path.exists()


def test_corrupt_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(WarehouseUnavailable, match="cannot be read"):
        execute_readonly("SELECT * FROM patients", target=warehouse_target(f"sqlite:///{path}"))


def test_empty_sql_is_a_query_error(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseQueryError) as raised:
        run(warehouse, "   ")
    assert raised.value.code == "empty_query"


@pytest.mark.parametrize(
    "params", [[1, 2], [object()], ["a\x00b"]], ids=["too many", "unsupported type", "nul in text"]
)
def test_values_that_cannot_be_bound_are_named_as_such(warehouse: Warehouse, params: list[object]) -> None:
    sql = "SELECT 1" if len(params) == 2 else ("SELECT ?" if warehouse.dialect == "sqlite" else "SELECT %s")
    if warehouse.dialect == "sqlite" and params == ["a\x00b"]:
        assert run(warehouse, sql, params).rows == [("a\x00b",)]  # SQLite text may hold NUL
        return
    with pytest.raises(WarehouseQueryError) as raised:
        run(warehouse, sql, params)
    assert raised.value.code == "invalid_parameters"
    assert raised.value.message.startswith("The warehouse cannot use the values given with this query")
    assert run(warehouse, "SELECT count(*) FROM patients").rows == [(2,)]


@pytest.mark.parametrize("sql", ["SET work_mem = '1GB'", "-- only a comment", "COPY patients TO STDOUT"])
def test_postgres_statements_that_return_no_rows_are_not_queries_even_with_params(
    exec_pg: Warehouse, sql: str
) -> None:
    no_params: list[object] = []
    for params in (None, no_params):
        with pytest.raises(WarehouseRefused) as raised:
            run(exec_pg, sql, params)
        assert raised.value.reason == "not_a_query"


def test_every_error_is_one_family() -> None:
    for cls in (WarehouseTimeout, WarehouseRefused, WarehouseUnavailable, WarehouseQueryError):
        assert issubclass(cls, WarehouseError)


# --- Connections ----------------------------------------------------------------------------------


def test_postgres_connection_is_reused_and_replaced_after_a_refusal(exec_pg: Warehouse) -> None:
    first = run(exec_pg, "SELECT pg_backend_pid()").rows[0][0]
    assert run(exec_pg, "SELECT pg_backend_pid()").rows[0][0] == first
    with pytest.raises(WarehouseRefused):
        run(exec_pg, "SET work_mem = '1GB'")
    after = run(exec_pg, "SELECT pg_backend_pid(), current_setting('work_mem')").rows[0]
    assert after[0] != first
    assert after[1] != "1GB"


def test_postgres_reconnects_after_the_server_drops_the_session(exec_pg: Warehouse) -> None:
    pid = run(exec_pg, "SELECT pg_backend_pid()").rows[0][0]
    with writer_connection(exec_pg.target) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.1)
    assert run(exec_pg, "SELECT count(*) FROM patients").rows == [(2,)]


def test_concurrent_threads_each_get_their_own_connection(warehouse: Warehouse) -> None:
    errors: list[BaseException] = []
    counts: list[object] = []

    def ask() -> None:
        try:
            for _ in range(20):
                counts.append(run(warehouse, "SELECT count(*) FROM labevents").rows[0][0])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            close_connections()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counts == [3] * 80


def test_sqlite_truncated_read_does_not_block_a_reload(tmp_path: Path) -> None:
    target = warehouse_target(f"sqlite:///{tmp_path / 'wh.sqlite3'}")
    with writer_connection(target) as conn:
        _load(conn, "sqlite")
    assert run(Warehouse(target, "sqlite", tmp_path), "SELECT * FROM labevents", row_cap=1).truncated
    writer = sqlite3.connect(tmp_path / "wh.sqlite3", timeout=0, isolation_level=None)
    try:
        writer.execute("DELETE FROM labevents")  # would raise "database is locked" if a read were left open
    finally:
        writer.close()
    assert run(Warehouse(target, "sqlite", tmp_path), "SELECT count(*) FROM labevents").rows == [(0,)]
    close_connections()


def test_sqlite_file_nobody_may_write_is_opened_immutable_and_untouched(tmp_path: Path) -> None:
    directory = tmp_path / "readonly"
    directory.mkdir()
    path = directory / "wh.sqlite3"
    with writer_connection(warehouse_target(f"sqlite:///{path}")) as conn:
        _load(conn, "sqlite")
    path.chmod(0o444)
    directory.chmod(0o555)
    try:
        before = path.stat()
        result = execute_readonly(
            "SELECT count(*) FROM labevents", target=warehouse_target(f"sqlite:///{path}")
        )
        assert result.rows == [(3,)]
        with pytest.raises(WarehouseRefused):
            execute_readonly("DELETE FROM labevents", target=warehouse_target(f"sqlite:///{path}"))
        assert [p.name for p in directory.iterdir()] == ["wh.sqlite3"]
        assert (path.stat().st_mtime_ns, path.stat().st_size) == (before.st_mtime_ns, before.st_size)
    finally:
        close_connections()
        directory.chmod(0o755)


# --- The reader role and its grants ---------------------------------------------------------------


def _privileges(target: WarehouseTarget, role: str) -> dict[str, object]:
    with writer_connection(target) as conn:
        row = conn.execute(
            "SELECT r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolconnlimit, "
            "r.rolconfig, has_table_privilege(r.rolname, 'patients', 'SELECT'), "
            "has_table_privilege(r.rolname, 'patients', 'INSERT'), "
            "has_schema_privilege(r.rolname, 'public', 'CREATE') FROM pg_roles r WHERE r.rolname = %s",
            [role],
        ).fetchone()
    assert row is not None
    keys = (
        "super",
        "inherit",
        "createrole",
        "createdb",
        "login",
        "connlimit",
        "config",
        "select",
        "insert",
        "create",
    )
    return dict(zip(keys, row, strict=True))


def test_create_warehouse_reader_is_idempotent_and_exact(exec_pg: Warehouse, settings) -> None:
    settings.WAREHOUSE_URL = exec_pg.target.url
    out = StringIO()
    call_command("create_warehouse_reader", "--role", READER, stdout=out)
    call_command("create_warehouse_reader", "--role", READER, stdout=out)
    assert "SELECT granted on" in out.getvalue()
    assert f"Checked: questions run as {READER}, read-only=on." in out.getvalue()
    privileges = _privileges(exec_pg.target, READER)
    assert privileges["super"] is False
    assert privileges["inherit"] is False
    assert privileges["createrole"] is False
    assert privileges["createdb"] is False
    assert privileges["login"] is True
    assert privileges["select"] is True
    assert privileges["insert"] is False
    assert privileges["create"] is False
    assert "default_transaction_read_only=on" in privileges["config"]  # type: ignore[operator]


def test_create_warehouse_reader_repairs_a_widened_role(exec_pg: Warehouse, settings) -> None:
    settings.WAREHOUSE_URL = exec_pg.target.url
    try:
        with writer_connection(exec_pg.target) as conn:
            conn.execute(f"ALTER ROLE {READER} CREATEDB INHERIT")
            conn.execute(f"ALTER ROLE {READER} SET lock_timeout = 0")
            conn.execute(f"GRANT INSERT ON patients TO {READER}")
            conn.execute(f"GRANT pg_read_server_files TO {READER}")
        close_connections()
        with pytest.raises(WarehouseUnavailable, match="not a read-only account"):
            run(exec_pg, "SELECT 1")
        out = StringIO()
        call_command("create_warehouse_reader", "--role", READER, stdout=out)
        for change in ("NOCREATEDB", "NOINHERIT", "revoked membership in pg_read_server_files"):
            assert change in out.getvalue()
        assert "set lock_timeout = 2000" in out.getvalue()
        privileges = _privileges(exec_pg.target, READER)
        assert (privileges["createdb"], privileges["inherit"], privileges["insert"]) == (False, False, False)
        assert "lock_timeout=2000" in privileges["config"]  # type: ignore[operator]
        assert run(exec_pg, "SELECT count(*) FROM patients").rows == [(2,)]
    finally:  # whatever failed above, later tests get a read-only reader back
        with _owner(exec_pg) as conn:
            ensure_reader_role(conn, READER)
            grant_reader(conn, READER)


def test_ensure_reader_role_changes_nothing_on_a_role_that_is_right(exec_pg: Warehouse) -> None:
    with _owner(exec_pg) as conn:
        ensure_reader_role(conn, READER)
        assert ensure_reader_role(conn, READER) == (False, [])


def test_create_warehouse_reader_sets_a_password_from_the_environment(
    exec_pg: Warehouse, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WAREHOUSE_URL = exec_pg.target.url
    monkeypatch.setenv("HIS_TEST_READER_PASSWORD", "correct horse battery staple")
    out = StringIO()
    call_command(
        "create_warehouse_reader", "--role", READER, "--password-env", "HIS_TEST_READER_PASSWORD", stdout=out
    )
    assert "set the password" in out.getvalue()
    assert "correct horse" not in out.getvalue()
    with writer_connection(exec_pg.target) as conn:
        assert conn.execute(
            "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", [READER]
        ).fetchone() == (True,)


def test_create_warehouse_reader_on_sqlite_explains_nothing_is_needed(
    exec_sqlite: Warehouse, settings
) -> None:
    settings.WAREHOUSE_URL = exec_sqlite.target.url
    out = StringIO()
    call_command("create_warehouse_reader", stdout=out)
    assert "no reader role is needed" in out.getvalue()


def test_grants_must_be_reapplied_after_a_reload(tmp_path: Path, pg_roles: None) -> None:
    """seed_demo drops and recreates the tables, which drops their grants: grant_reader restores them."""
    name = f"his_exec_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    target = warehouse_target(f"{PG_SERVER}/{name}")
    try:
        with writer_connection(target) as conn:
            _load(conn, "postgres")
            grant = grant_reader(conn, READER)
            assert grant is not None
            assert "patients" in grant.tables
            conn.execute("CREATE TABLE staging_secrets (x INT)")  # not a warehouse table
        assert execute_readonly("SELECT count(*) FROM patients", target=target).rows == [(2,)]
        with pytest.raises(WarehouseRefused):
            execute_readonly("SELECT * FROM staging_secrets", target=target)
        with writer_connection(target) as conn:
            _load(conn, "postgres")  # what a reload does
        with pytest.raises(WarehouseRefused):
            execute_readonly("SELECT count(*) FROM patients", target=target)
        with writer_connection(target) as conn:
            grant_reader(conn, READER)
        assert execute_readonly("SELECT count(*) FROM patients", target=target).rows == [(2,)]
    finally:
        close_connections()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_grant_reader_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite3")
    try:
        assert grant_reader(conn) is None
    finally:
        conn.close()


def test_grant_reader_needs_only_the_table_owners_rights(settings, pg_roles: None) -> None:
    """A production owner is no superuser: re-granting after a reload must still work for it."""
    owner = OWNER
    name = f"his_exec_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [owner]).fetchone() is None:
            admin.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
        admin.execute(f'CREATE DATABASE "{name}"')
        ensure_reader_role(admin, READER)
    with psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True) as admin:
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
    target = warehouse_target(f"postgresql://{owner}@127.0.0.1:5432/{name}")
    try:
        with writer_connection(target) as conn:
            _load(conn, "postgres")
            grant = grant_reader(conn, READER)
        assert grant is not None
        assert grant.created is False
        assert execute_readonly("SELECT count(*) FROM labevents", target=target).rows == [(3,)]
        assert execute_readonly("SELECT current_user", target=target).rows == [(READER,)]
        # A widened reader is never left as it is: the owner cannot repair it, so the reload says who can.
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {READER} CREATEDB")
        with writer_connection(target) as conn, pytest.raises(WarehouseConfigError) as raised:
            grant_reader(conn, READER)
        assert "no longer read-only" in str(raised.value)
        assert "python manage.py create_warehouse_reader" in str(raised.value)
    finally:
        close_connections()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            ensure_reader_role(admin, READER)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT 'a\x00b'", None),
        ("SELECT 1", [1, 2]),
        ("SELECT {mark} AS n", [2**70]),
        ("SELECT {mark} AS n", [object()]),
        ("SELECT " + " + ".join(["1"] * 50_000), None),
        ("SELECT '\U0001f642 Łódź'", None),
        ("SELECT '\ud800'", None),
        ("SELECT {mark} AS s", ["\udfff"]),
        ("SELECT", None),
        ("'; DROP TABLE patients; --", None),
    ],
)
def test_odd_input_gives_an_answer_or_a_warehouse_error(
    warehouse: Warehouse, sql: str, params: list[object]
) -> None:
    """Never a raw driver (or Python) exception, whatever the compiler hands over."""
    sql = sql.replace("{mark}", "?" if warehouse.dialect == "sqlite" else "%s")
    outcome: QueryResult | WarehouseError
    try:
        outcome = run(warehouse, sql, params)
    except WarehouseError as error:
        outcome = error
    assert isinstance(outcome, QueryResult) or outcome.message.startswith("The ")
    assert run(warehouse, "SELECT count(*) FROM patients").rows == [(2,)]


def test_postgres_advisory_locks_do_not_outlive_the_question(exec_pg: Warehouse) -> None:
    pid = run(exec_pg, "SELECT pg_backend_pid(), pg_advisory_lock(4242)").rows[0][0]
    with writer_connection(exec_pg.target) as conn:
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s", [pid])
        assert held.fetchone() == (0,)
    assert run(exec_pg, "SELECT pg_backend_pid()").rows[0][0] == pid
