"""The one way warehouse SQL runs: read-only at the database itself, time-limited, row- and size-capped."""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import logging
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Final, cast
from urllib.parse import quote, unquote, urlsplit

import psycopg
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg import sql as pg_sql
from psycopg.rows import TupleRow

from hisplatform.warehouse.schema import IDENTITY_TABLES
from hisplatform.warehouse.schema import tables as schema_tables
from hisplatform.warehouse.targets import WarehouseConfigError, WarehouseTarget, libpq_url, warehouse_target

logger = logging.getLogger(__name__)

PgConnection = psycopg.Connection[TupleRow]

CREATE_READER_HINT: Final = "An operator must run `python manage.py create_warehouse_reader`."
BUSY_MESSAGE: Final = "The warehouse is being reloaded or maintained; try again in a minute."
# The default for WAREHOUSE_MAX_RESULT_BYTES: far above any answer a person reads (5,000 rows of
# 10 KB), far below what would strain a web worker.


# --- Results and errors -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[object, ...]]
    truncated: bool  # more rows existed than the row cap allowed (a result over the size limit is an error)
    duration_ms: float  # running the query and fetching its rows, as the database was asked


class WarehouseError(Exception):
    """Any failure to answer from the warehouse; `code` is stable, `message` is for the person asking."""

    code: str = "warehouse_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class WarehouseTimeout(WarehouseError):
    code = "timeout"

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(
            f"The query took longer than {_seconds(timeout_ms)} and was stopped. Ask a narrower question "
            "(a shorter period, one unit or fewer patients) and try again."
        )
        self.timeout_ms = timeout_ms


class WarehouseRefused(WarehouseError):
    """The database refused the statement; the message is ours, never the driver's, so nothing leaks."""

    code = "refused"

    _MESSAGES: Final = {
        "write": "The warehouse refused this statement: questions can only read data, never change it.",
        "multiple_statements": "The warehouse refused this statement: only one query can run at a time.",
        "not_a_query": "The warehouse refused this statement: only a query that returns rows can run.",
        "function": "The warehouse refused this statement: it calls a function that is not allowed here.",
        "privilege": (
            "The warehouse refused this statement: it needs an operation or data the read-only "
            "warehouse account may not use."
        ),
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self._MESSAGES.get(reason, self._MESSAGES["privilege"]))
        self.reason = reason


class WarehouseUnavailable(WarehouseError):
    code = "unavailable"


class WarehouseQueryError(WarehouseError):
    """The database could not run the query as written (unknown table or column, syntax, bad value)."""

    code = "invalid_query"


def _seconds(milliseconds: int) -> str:
    return f"{milliseconds / 1000:g} s"


_INVALID_PARAMETERS_MESSAGE: Final = (
    "The warehouse cannot use the values given with this query (their number does not match its "
    "placeholders, or a value is too large or of an unsupported type)."
)
_UNENCODABLE_MESSAGE: Final = (
    "The query, or a value given with it, contains characters that cannot be sent to the warehouse."
)


def _missing_table_error(name: str) -> WarehouseQueryError:
    table = name.rsplit(".", 1)[-1].strip('"').lower()
    if table in IDENTITY_TABLES:
        return WarehouseQueryError(
            f"This warehouse is a de-identified source with no identity tables ({table} is not in it): "
            "names, MRNs, contact details, staff, care teams and notes cannot be shown or used here.",
            code="no_identity_tables",
        )
    return WarehouseQueryError(f"The warehouse has no table named {table}.", code="no_such_table")


# --- The entry point ----------------------------------------------------------------------------


def execute_readonly(
    sql: str,
    params: Sequence[object] | None = None,
    *,
    target: WarehouseTarget | None = None,
    row_cap: int | None = None,
    timeout_ms: int | None = None,
    max_result_bytes: int | None = None,
    pseudonym_key: bytes | None = None,
) -> QueryResult:
    """Run one read-only query and return at most `row_cap` rows, or raise a WarehouseError.

    Placeholders follow the driver: `?` on SQLite, `%s` on PostgreSQL (where a literal % must then
    be written %%). Without params the SQL is sent as is. A result holding more than
    `max_result_bytes` (default WAREHOUSE_MAX_RESULT_BYTES) is refused with code "result_too_large".
    `pseudonym_key`: the research project key the query's pseudonym and date-shift masks use, for
    this query only (accessctl/pseudonyms.py); a query using those masks without it fails.
    """
    cap = settings.WAREHOUSE_ROW_CAP if row_cap is None else row_cap
    timeout = settings.WAREHOUSE_STATEMENT_TIMEOUT_MS if timeout_ms is None else timeout_ms
    max_bytes = _max_result_bytes() if max_result_bytes is None else max_result_bytes
    if cap < 1 or timeout < 1 or max_bytes < 1:
        raise ValueError("row_cap, timeout_ms and max_result_bytes must be positive")
    if not sql.strip():
        raise WarehouseQueryError("There is no query to run.", code="empty_query")
    if target is None:
        try:
            target = warehouse_target()
        except WarehouseConfigError as error:
            raise WarehouseUnavailable(str(error)) from None
    limits = _Limits(cap, timeout, max_bytes)
    if target.sqlite_path is not None:
        return _run_sqlite(target.sqlite_path, sql, params, limits, pseudonym_key)
    return _run_postgres(target, sql, params, limits, pseudonym_key)


def close_connections() -> None:
    """Close this thread's cached warehouse connections (tests, and before dropping a database)."""
    state = _state()
    for handle in state.sqlite.values():
        handle.conn.close()
    for conn in state.postgres.values():
        conn.close()
    state.sqlite.clear()
    state.postgres.clear()


def readable_tables(target: WarehouseTarget | None = None) -> set[str]:
    """The tables the read-only path can see: on PostgreSQL only those granted to the reader role."""
    target = target or warehouse_target()
    if target.sqlite_path is not None:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        query = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND has_table_privilege(format('%I.%I', table_schema, table_name), 'SELECT')"
        )
    result = execute_readonly(query, target=target, row_cap=100_000)
    return {str(row[0]) for row in result.rows}


# --- Result size --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    cap: int
    timeout_ms: int
    max_bytes: int


def _max_result_bytes() -> int:
    # Validated where settings read it from the environment (hisplatform.env.env_int).
    value: int = settings.WAREHOUSE_MAX_RESULT_BYTES
    return value


# Rows are fetched and measured this many at a time: a result overshoots the size limit by at most
# one batch, and the cost per batch (a Python call, a libpq chunk) vanishes against 100 rows.
_FETCH_BATCH_ROWS: Final = 100
# What a number, date, time or flag counts for: about its size on the wire.
_FIXED_CELL_BYTES: Final = 8
_FIXED_KINDS: Final = frozenset(
    {int, float, bool, datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID}
)


def _value_bytes(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    if type(value) in _FIXED_KINDS:
        return _FIXED_CELL_BYTES
    return len(str(value))  # lists, dicts, decimals: their text grows with what they hold


def _batch_bytes(rows: Sequence[tuple[object, ...]], measured: Sequence[int] | None) -> int:
    """About how many bytes the rows hold: text and binary by length, numbers and dates 8 bytes a cell.

    Only the `measured` columns are looked at (None: all of them); the others are known to hold
    fixed-size values. Column by column, so the common cases (all text, all numbers) cost a few
    C-level passes, not a Python step per cell.
    """
    if not rows:
        return 0
    if measured is None:
        columns: Iterable[Sequence[object]] = zip(*rows, strict=True)
        total = 0
    else:
        columns = ([row[index] for row in rows] for index in measured)
        total = _FIXED_CELL_BYTES * len(rows) * (len(rows[0]) - len(measured))
    for values in columns:
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if kinds in ({str}, {bytes}):
            total += sum(map(len, cast("Iterable[str | bytes]", filter(None, values))))
        elif kinds <= _FIXED_KINDS:
            total += _FIXED_CELL_BYTES * len(values)
        else:
            total += sum(map(_value_bytes, values))
    return total


def _collect(
    fetch: Callable[[int], list[tuple[object, ...]]],
    limits: _Limits,
    measured_columns: Callable[[], Sequence[int] | None] = lambda: None,
) -> list[tuple[object, ...]]:
    """Fetch up to cap + 1 rows (the extra one only shows there were more), batch by batch, and refuse
    the result as soon as the rows kept hold more than the byte limit.

    `measured_columns` is asked once, after the first batch: which columns may hold values of
    varying size (None: any of them).
    """
    rows: list[tuple[object, ...]] = []
    size = 0
    measured: Sequence[int] | None = None
    while len(rows) <= limits.cap:
        batch = fetch(min(_FETCH_BATCH_ROWS, limits.cap + 1 - len(rows)))
        if not batch:
            break
        if not rows:
            measured = measured_columns()
        size += _batch_bytes(batch[: limits.cap - len(rows)], measured)
        if size > limits.max_bytes:
            raise WarehouseQueryError(
                f"The result is too large to show (more than {limits.max_bytes / 1_000_000:g} MB). Ask for "
                "fewer rows or columns, or leave out long text.",
                code="result_too_large",
            )
        rows.extend(batch)
    return rows


# --- Per-thread connection reuse ----------------------------------------------------------------


@dataclass
class _SqliteHandle:
    conn: sqlite3.Connection
    identity: tuple[int, ...]
    deadline: list[float] = field(default_factory=lambda: [math.inf])
    denied: list[int] = field(default_factory=list)
    # The pseudonym key of the query running now (None between queries): the functions read it here.
    key: list[bytes | None] = field(default_factory=lambda: [None])


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sqlite: dict[str, _SqliteHandle] = {}
        self.postgres: dict[str, PgConnection] = {}


_LOCAL = _ThreadState()
# Connections inherited through fork() share their socket or file lock with the parent: closing them
# here would end the parent's session, so the child only forgets them (and keeps them from the GC).
_INHERITED: list[object] = []


def _state() -> _ThreadState:
    state = _LOCAL
    if state.pid != os.getpid():
        _INHERITED.extend(state.postgres.values())
        _INHERITED.extend(handle.conn for handle in state.sqlite.values())
        state.sqlite = {}
        state.postgres = {}
        state.pid = os.getpid()
    return state


# --- SQLite -------------------------------------------------------------------------------------

# Everything EHRSQL-style SQL needs, and nothing that touches files, extensions or huge blobs.
SQLITE_FUNCTIONS: Final = frozenset(
    {
        # scalar
        "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif",
        "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min", "nullif",
        "octet_length", "printf", "quote", "replace", "round", "rtrim", "sign", "soundex", "substr",
        "his_sha256", "his_mask_ids", "his_pseudonym", "his_shift",
        "substring", "trim", "typeof", "unicode", "unlikely", "upper",
        # date and time
        "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
        "current_date", "current_time", "current_timestamp",
        # aggregate
        "avg", "count", "group_concat", "string_agg", "sum", "total",
        # window
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
        "first_value", "last_value", "nth_value",
        # math
        "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos", "cosh",
        "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians",
        "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    }
)  # fmt: skip
_SQLITE_WRITE_ACTIONS: Final = frozenset(
    {
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_VTABLE,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_VTABLE,
        sqlite3.SQLITE_ALTER_TABLE,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_ANALYZE,
    }
)
# Checked about every 10,000 virtual-machine steps: well under a millisecond between checks, yet
# rare enough that the Python callback costs under 1% of a long scan.
_SQLITE_PROGRESS_STEPS: Final = 10_000
# No single value (a string built with printf or replace) may exceed this; SQLite's default is 1 GB.
_SQLITE_MAX_LENGTH: Final = 50_000_000
# A reload by seed_demo holds the write lock briefly; wait for it rather than fail at once.
_SQLITE_BUSY_TIMEOUT_S: Final = 5.0


def _sqlite_authorizer(
    denied: list[int],
) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    """Allow reading the main database and calling allow-listed functions; deny everything else."""

    def authorize(
        action: int, arg1: str | None, arg2: str | None, db_name: str | None, _source: str | None
    ) -> int:
        if action == sqlite3.SQLITE_SELECT or action == sqlite3.SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and db_name in (None, "main"):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and arg2 is not None and arg2.lower() in SQLITE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        denied.append(action)
        return sqlite3.SQLITE_DENY

    return authorize


def _sqlite_identity(path: Path) -> tuple[tuple[int, ...], bool]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise WarehouseUnavailable(
            f"The warehouse file {path} does not exist. Load it with `python manage.py seed_demo` "
            "or point WAREHOUSE_URL at an existing database."
        ) from None
    except OSError as error:
        raise WarehouseUnavailable(f"The warehouse file {path} cannot be read ({error.strerror}).") from None
    # A file nobody may write (the shipped MIMIC-IV demo) cannot change under us, so it is opened
    # immutable: no locks, no -shm or -journal lookups, nothing ever created beside it.
    immutable = not st.st_mode & 0o222
    identity = (st.st_dev, st.st_ino, int(immutable)) + ((st.st_mtime_ns, st.st_size) if immutable else ())
    return identity, immutable


def _sha256_hex(value: object) -> str | None:
    """The hash mask on SQLite, which has no sha256() of its own (PostgreSQL's is used there)."""
    if value is None:
        return None
    data = value if isinstance(value, bytes) else str(value).encode()
    return hashlib.sha256(data).hexdigest()


def _mask_ids(value: object, keep_ends: object) -> str | None:
    """The text-ID mask on SQLite (PostgreSQL's regexp_replace is used there)."""
    from accessctl.masks import mask_national_ids_in_text

    return mask_national_ids_in_text(value, bool(keep_ends)) if isinstance(value, str) else None


def _keyed(
    holder: list[bytes | None],
) -> tuple[Callable[[object, object], str | None], Callable[[object], int | None]]:
    """The pseudonym and date-shift masks on SQLite, reading the running query's key (PostgreSQL
    computes them in SQL from a transaction-local setting)."""
    from accessctl.pseudonyms import pseudonym, shift_days

    def key() -> bytes:
        value = holder[0]
        if value is None:
            # Fail the query rather than show anything unkeyed.
            raise ValueError("no pseudonym key for this query")
        return value

    @functools.lru_cache(maxsize=65_536)
    def cached_pseudonym(k: bytes, domain: str, value: object) -> str | None:
        return pseudonym(k, domain, value)

    @functools.lru_cache(maxsize=65_536)
    def cached_shift(k: bytes, value: object) -> int | None:
        return shift_days(k, value)

    return (
        lambda domain, value: cached_pseudonym(key(), str(domain), value),
        lambda value: cached_shift(key(), value),
    )


def _sqlite_handle(path: Path) -> _SqliteHandle:
    state = _state()
    key = str(path)
    identity, immutable = _sqlite_identity(path)
    handle = state.sqlite.get(key)
    if handle is not None and handle.identity == identity:
        return handle
    if handle is not None:  # the file was replaced (a reload): reopen it
        handle.conn.close()
        del state.sqlite[key]
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_SQLITE_BUSY_TIMEOUT_S)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
    except sqlite3.Error as error:
        logger.warning("warehouse: cannot open SQLite file %s: %s", path, error)
        raise WarehouseUnavailable(f"The warehouse file {path} cannot be opened.") from None
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _SQLITE_MAX_LENGTH)
    conn.create_function("his_sha256", 1, _sha256_hex, deterministic=True)
    conn.create_function("his_mask_ids", 2, _mask_ids, deterministic=True)
    handle = _SqliteHandle(conn, identity)
    pseudonym_function, shift_function = _keyed(handle.key)
    # Not deterministic: the same value gives another result under another query's key.
    conn.create_function("his_pseudonym", 2, pseudonym_function)
    conn.create_function("his_shift", 1, shift_function)
    conn.set_authorizer(_sqlite_authorizer(handle.denied))
    deadline = handle.deadline
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), _SQLITE_PROGRESS_STEPS)
    state.sqlite[key] = handle
    return handle


def _sqlite_discard(path: Path) -> None:
    handle = _state().sqlite.pop(str(path), None)
    if handle is not None:
        handle.conn.close()


def _run_sqlite(
    path: Path, sql: str, params: Sequence[object] | None, limits: _Limits, key: bytes | None
) -> QueryResult:
    handle = _sqlite_handle(path)
    handle.denied.clear()
    handle.key[0] = key
    started = time.perf_counter()
    handle.deadline[0] = time.monotonic() + limits.timeout_ms / 1000
    cursor: sqlite3.Cursor | None = None
    try:
        cursor = handle.conn.execute(sql, tuple(params or ()))
        if cursor.description is None:
            raise WarehouseRefused("not_a_query")
        columns = [str(column[0]) for column in cursor.description]
        # SQLite steps the statement row by row, so only the rows fetched are ever in memory.
        rows = _collect(cursor.fetchmany, limits)
    except UnicodeEncodeError:
        raise WarehouseQueryError(_UNENCODABLE_MESSAGE, code="invalid_query") from None
    except (OverflowError, ValueError, TypeError):
        # Raised while binding parameters (an integer beyond 64 bits, an unsupported type).
        raise WarehouseQueryError(_INVALID_PARAMETERS_MESSAGE, code="invalid_parameters") from None
    except (sqlite3.Error, sqlite3.Warning) as error:
        timed_out = time.monotonic() >= handle.deadline[0]
        mapped = _sqlite_error(error, timed_out=timed_out, timeout_ms=limits.timeout_ms, denied=handle.denied)
        if isinstance(mapped, WarehouseUnavailable):
            _sqlite_discard(path)
        raise mapped from None
    finally:
        handle.deadline[0] = math.inf
        handle.key[0] = None
        if cursor is not None:
            cursor.close()  # resets the statement, releasing the read lock a reload would wait on
    duration_ms = (time.perf_counter() - started) * 1000
    return QueryResult(columns, rows[: limits.cap], len(rows) > limits.cap, duration_ms)


# SQLite messages that only repeat names and tokens from the query itself, so they are safe to show.
_SQLITE_SAFE_MESSAGES: Final = re.compile(
    r"no such column|near \"|syntax error|ambiguous column name|misuse of|wrong number of arguments|"
    r"incomplete input|unrecognized token|circular reference|"
    r"sub-select returns|too many|no tables specified|ORDER BY term|GROUP BY term|"
    r"a GROUP BY clause is required|HAVING clause|row value misused|parser stack overflow|"
    r"Expression tree is too large|string or blob too big|SELECTs to the left and right",
    re.IGNORECASE,
)


def _sqlite_error(
    error: sqlite3.Error | sqlite3.Warning, *, timed_out: bool, timeout_ms: int, denied: list[int]
) -> WarehouseError:
    message = str(error)
    lowered = message.lower()
    if "one statement at a time" in lowered:
        return WarehouseRefused("multiple_statements")
    if lowered.startswith(("incorrect number of bindings", "error binding parameter")):
        return WarehouseQueryError(_INVALID_PARAMETERS_MESSAGE, code="invalid_parameters")
    if "interrupted" in lowered:
        return WarehouseTimeout(timeout_ms) if timed_out else WarehouseError("The query was interrupted.")
    if "not authorized" in lowered or "authorization denied" in lowered or "prohibited" in lowered:
        if any(action in _SQLITE_WRITE_ACTIONS for action in denied):
            return WarehouseRefused("write")
        if sqlite3.SQLITE_FUNCTION in denied:
            return WarehouseRefused("function")
        return WarehouseRefused("privilege")
    if "readonly database" in lowered or "read-only" in lowered:
        return WarehouseRefused("write")
    if lowered.startswith("no such function"):
        return WarehouseRefused("function")
    if match := re.match(r"no such table: (\S+)", message):
        return _missing_table_error(match.group(1))
    if "database is locked" in lowered or "database table is locked" in lowered:
        return WarehouseUnavailable(BUSY_MESSAGE, code="busy")
    if any(
        text in lowered
        for text in (
            "unable to open",
            "not a database",
            "malformed",
            "disk i/o",
            "no such file",
            "cannot open",
        )
    ):
        logger.warning("warehouse: SQLite file unusable: %s", message)
        return WarehouseUnavailable("The warehouse database cannot be read. An operator must check it.")
    if _SQLITE_SAFE_MESSAGES.search(message):
        return WarehouseQueryError(f"The warehouse could not run this query: {message.rstrip('.')}.")
    logger.warning("warehouse: unexpected SQLite error %s: %s", type(error).__name__, message)
    return WarehouseQueryError("The warehouse could not run this query.")


# --- PostgreSQL ---------------------------------------------------------------------------------

_PG_CONNECT_TIMEOUT_S: Final = 5
# True when the session's account is unsafe to answer questions as. "mine" is the account and every
# role it is a member of, directly or through others (SET ROLE could switch to any of them): none may
# hold a powerful attribute, be a predefined pg_* role (each grants more than reading the granted
# tables: pg_read_all_data, pg_write_all_data, pg_read_all_stats, pg_monitor, server files,
# signalling backends...), or own the database, the schema or a table in it. Connecting as such an
# account is refused outright.
_PG_ROLE_CHECK: Final = pg_sql.SQL(
    """
    WITH mine AS (SELECT * FROM pg_roles WHERE pg_has_role(session_user, oid, 'MEMBER'))
    SELECT EXISTS (SELECT 1 FROM mine WHERE rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication
                   OR rolbypassrls OR starts_with(rolname, 'pg_'))
        OR EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = current_database()
                   AND d.datdba IN (SELECT oid FROM mine))
        OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = current_schema()
                   AND n.nspowner IN (SELECT oid FROM mine))
        OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner IN (SELECT oid FROM mine)
                   AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))
    """
)


def reader_url(target: WarehouseTarget) -> str:
    """The reader's URL: WAREHOUSE_READER_URL for the configured warehouse, else the reader role's name."""
    if settings.WAREHOUSE_READER_URL and target.url == settings.WAREHOUSE_URL:
        return libpq_url(str(settings.WAREHOUSE_READER_URL))
    return target.with_user(settings.WAREHOUSE_READER_ROLE)


def _reader_role(url: str) -> str:
    username = urlsplit(url).username
    return unquote(username) if username else "(the WAREHOUSE_READER_URL user)"


def _pg_connect(url: str, target: WarehouseTarget) -> PgConnection:
    role = _reader_role(url)
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,  # transactions are opened explicitly, READ ONLY, one per query
            prepare_threshold=None,
            connect_timeout=_PG_CONNECT_TIMEOUT_S,
            application_name="hisplatform-warehouse-reader",
        )
    except psycopg.Error as error:
        text = str(error)
        logger.warning("warehouse: cannot connect to %s as %s: %s", target.describe(), role, text)
        if re.search(r'role ".*" does not exist', text):
            raise WarehouseUnavailable(
                f"The warehouse's read-only account {role} does not exist in {target.describe()}. "
                + CREATE_READER_HINT
            ) from None
        if "password authentication failed" in text or "no password supplied" in text:
            raise WarehouseUnavailable(
                f"The warehouse refused the read-only account {role}'s password. An operator must check "
                "WAREHOUSE_READER_URL."
            ) from None
        raise WarehouseUnavailable(f"Cannot connect to the warehouse ({target.describe()}).") from None
    try:
        row = conn.execute(_PG_ROLE_CHECK).fetchone()
        unsafe = row is None or bool(row[0])
        # Belt and braces: the role's own default may have been changed by hand.
        conn.execute("SET default_transaction_read_only = on")
    except psycopg.Error as error:
        conn.close()
        logger.warning("warehouse: reader session check failed: %s", error)
        raise WarehouseUnavailable(f"Cannot use the warehouse ({target.describe()}).") from None
    if unsafe:
        conn.close()
        raise WarehouseUnavailable(
            f"The warehouse account {role} is not a read-only account (it owns data or holds extra "
            "privileges), so no question runs as it. " + CREATE_READER_HINT
        )
    return conn


def _pg_connection(url: str, target: WarehouseTarget, *, fresh: bool) -> PgConnection:
    state = _state()
    conn = state.postgres.get(url)
    if conn is not None and (
        fresh or conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE
    ):
        _pg_discard(url)
        conn = None
    if conn is None:
        conn = _pg_connect(url, target)
        state.postgres[url] = conn
    return conn


def _pg_discard(url: str) -> None:
    conn = _state().postgres.pop(url, None)
    if conn is not None:
        conn.close()


# A reload (seed_demo) holds ACCESS EXCLUSIVE locks on the tables until it commits, which takes
# minutes on a large hospital: waiting longer than this for a lock only delays "try again later".
_PG_LOCK_TIMEOUT_MS: Final = 2_000


def _lock_timeout_ms(statement_timeout_ms: int) -> int:
    """How long a question waits for a table lock: 2 s, or half its time limit when that is shorter."""
    return max(1, min(_PG_LOCK_TIMEOUT_MS, statement_timeout_ms // 2))


@functools.lru_cache(maxsize=64)
def _begin_statement(timeout_ms: int) -> bytes:
    # Only integers are formatted in; caching the bytes saves composing them on every question.
    timeout = int(timeout_ms)
    return (
        f"BEGIN READ ONLY; SET LOCAL statement_timeout = {timeout}; "
        f"SET LOCAL lock_timeout = {_lock_timeout_ms(timeout)}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {timeout + 5_000}"
    ).encode()


def _pg_begin(url: str, target: WarehouseTarget, timeout_ms: int) -> PgConnection:
    """A connection inside a fresh READ ONLY transaction with this query's time limits."""
    begin = _begin_statement(timeout_ms)
    for attempt in range(2):
        conn = _pg_connection(url, target, fresh=attempt > 0)
        try:
            conn.execute(begin)  # our own SQL: the simple protocol's one round trip for three statements
        except psycopg.Error as error:
            # A cached connection the server has since closed (restart, idle timeout): retry once, fresh.
            _pg_discard(url)
            if attempt == 0 and isinstance(error, psycopg.OperationalError):
                continue
            logger.warning("warehouse: cannot start a read-only transaction: %s", error)
            raise WarehouseUnavailable(f"Cannot use the warehouse ({target.describe()}).") from None
        return conn
    raise AssertionError("unreachable")


# Rows per libpq chunk while streaming (libpq 17's chunked mode); older libpq streams row by row.
_PG_STREAM_ROWS: Final = _FETCH_BATCH_ROWS if psycopg.capabilities.has_stream_chunked() else 1
# Columns whose values have a fixed size on the wire: the result-size count need not look at them.
_PG_FIXED_SIZE_TYPES: Final = frozenset(
    psycopg.postgres.types[name].oid
    for name in (
        "bool", "int2", "int4", "int8", "oid", "float4", "float8", "date", "time", "timetz",
        "timestamp", "timestamptz", "interval", "uuid",
    )
)  # fmt: skip
# VARCHAR(n) and CHAR(n): the result's description carries n.
_PG_BOUNDED_TEXT_TYPES: Final = frozenset(psycopg.postgres.types[name].oid for name in ("varchar", "bpchar"))


def _run_postgres(
    target: WarehouseTarget, sql: str, params: Sequence[object] | None, limits: _Limits, key: bytes | None
) -> QueryResult:
    url = reader_url(target)
    conn = _pg_begin(url, target, limits.timeout_ms)
    started = time.perf_counter()
    keep = False
    cursor = conn.cursor()
    try:
        if key is not None:
            # Bound as parameters and local to this transaction: the key is in no statement text.
            inner, outer = _hmac_pads(key)
            conn.execute(
                "SELECT set_config('his.hmac_ipad', %s, true), set_config('his.hmac_opad', %s, true)",
                (inner, outer),
            )
        # stream() runs the query once, whole, as an ordinary statement, so the planner keeps its
        # parallel plans (a DECLAREd cursor never gets one: aggregates over millions of rows ran 2-5x
        # slower that way), while libpq hands the rows over in chunks: only about cap + 1 rows are
        # ever held, and closing the stream early cancels the rest of the query on the server. It
        # uses the extended protocol, where the server refuses a string of several statements.
        # (psycopg types stream() as an Iterator; it is a generator, whose close() does the cancelling.)
        stream = cast("Generator[TupleRow]", cursor.stream(sql, params, binary=True, size=_PG_STREAM_ROWS))
        with contextlib.closing(stream):
            rows = _collect(
                lambda n: list(islice(stream, n)), limits, lambda: _pg_measured_columns(cursor, limits)
            )
            duration_ms = (time.perf_counter() - started) * 1000
            columns = _pg_columns(conn, cursor)
        keep = True
    except psycopg.Error as error:
        # psycopg records the converted query just before sending it: without it, the values given
        # could not be bound to the placeholders and nothing reached the server.
        raise _pg_error(error, limits.timeout_ms, sent=cursor._query is not None) from None
    except UnicodeEncodeError:
        raise WarehouseQueryError(_UNENCODABLE_MESSAGE, code="invalid_query") from None
    finally:
        keep = _pg_end(conn) and keep
        if not keep:
            # After any failure the session may carry state (a SET, a PREPARE, an advisory lock):
            # a fresh connection costs a few milliseconds, and failures are rare.
            _pg_discard(url)
    return QueryResult(columns, rows[: limits.cap], len(rows) > limits.cap, duration_ms)


def _hmac_pads(key: bytes) -> tuple[str, str]:
    from accessctl.pseudonyms import ProjectKey

    return ProjectKey(key, "").pads()


def _pg_measured_columns(cursor: psycopg.Cursor[TupleRow], limits: _Limits) -> list[int]:
    """The columns whose values' sizes must be counted: none when the declared sizes already bound
    the result below the limit (table columns are mostly VARCHAR(n), and counting costs ~15% of
    fetching)."""
    description = cursor.description or []
    varying = [i for i, column in enumerate(description) if column.type_code not in _PG_FIXED_SIZE_TYPES]
    widest_row = _FIXED_CELL_BYTES * (len(description) - len(varying))
    for i in varying:
        column = description[i]
        if column.type_code not in _PG_BOUNDED_TEXT_TYPES or column.display_size is None:
            return varying
        widest_row += column.display_size  # VARCHAR(n), CHAR(n): at most n characters, as counted
    return varying if limits.cap * widest_row > limits.max_bytes else []


def _pg_columns(conn: PgConnection, cursor: psycopg.Cursor[TupleRow]) -> list[str]:
    if cursor.description is not None:
        return [column.name for column in cursor.description]
    # A stream that yields no rows leaves no description behind (psycopg drops the empty result,
    # and raises for anything that is not a query), but the unnamed statement it ran can still be
    # described: one more round trip, for empty results only.
    described = conn.pgconn.describe_prepared(b"")
    if described.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.OperationalError("cannot describe the query's columns")
    encoding = conn.info.encoding
    return [(described.fname(i) or b"").decode(encoding) for i in range(described.nfields)]


def _pg_end(conn: PgConnection) -> bool:
    """Roll back, always; True when the connection is clean enough to reuse."""
    if conn.closed or conn.info.transaction_status == pq.TransactionStatus.ACTIVE:
        return False  # mid-COPY or mid-result: unusable
    try:
        # Advisory locks are the one thing a plain SELECT can leave behind in the session.
        conn.execute("ROLLBACK; SELECT pg_advisory_unlock_all()")
    except psycopg.Error:
        return False
    return conn.info.transaction_status == pq.TransactionStatus.IDLE


def _pg_error(error: psycopg.Error, timeout_ms: int, *, sent: bool = True) -> WarehouseError:
    sqlstate = error.sqlstate or ""
    primary = (error.diag.message_primary or "") if sqlstate else ""
    if not sent and not sqlstate:
        # psycopg's own complaint about the parameters (count, type, a NUL in a text value).
        return WarehouseQueryError(_INVALID_PARAMETERS_MESSAGE, code="invalid_parameters")
    if isinstance(error, pg_errors.QueryCanceled):
        return WarehouseTimeout(timeout_ms)
    if isinstance(error, pg_errors.LockNotAvailable):  # lock_timeout: a reload or maintenance holds the table
        return WarehouseUnavailable(BUSY_MESSAGE, code="busy")
    if sqlstate == "42601" and "multiple commands" in primary:
        return WarehouseRefused("multiple_statements")
    if sqlstate == "25006":  # read_only_sql_transaction
        return WarehouseRefused("write")
    if isinstance(error, psycopg.OperationalError) and sqlstate == "25P03":  # idle-in-transaction timeout
        return WarehouseUnavailable("The connection to the warehouse was lost. Try again.")
    if sqlstate.startswith(("25", "2F", "0L", "0P", "28", "38", "39")) or sqlstate == "42501":
        return WarehouseRefused("privilege")
    if isinstance(error, pg_errors.UndefinedTable):
        match = re.search(r'relation "([^"]+)" does not exist', primary)
        return _missing_table_error(match.group(1) if match else "?")
    if sqlstate.startswith(("42", "54")):
        # Class 42 messages name only what the query itself wrote (a column, a function, a token).
        return WarehouseQueryError(f"The warehouse could not run this query: {primary.rstrip('.')}.")
    if sqlstate.startswith("22"):
        # Data exceptions quote the offending value, which may be data the person may not see.
        return WarehouseQueryError(
            f"The warehouse could not evaluate this query on the stored values (SQLSTATE {sqlstate})."
        )
    if sqlstate.startswith("53"):
        return WarehouseError("The warehouse ran out of resources for this query.", code="resources")
    if isinstance(error, psycopg.OperationalError) or sqlstate.startswith(("08", "57")):
        logger.warning("warehouse: connection lost during a query: %s", error)
        return WarehouseUnavailable("The connection to the warehouse was lost. Try again.")
    if not sqlstate and isinstance(error, psycopg.ProgrammingError | psycopg.InternalError):
        # Raised by the driver for results a query never gives: a command's status, COPY ... TO
        # STDOUT, an empty statement (only a comment).
        return WarehouseRefused("not_a_query")
    logger.warning("warehouse: unexpected PostgreSQL error %s (%s)", type(error).__name__, sqlstate)
    return WarehouseError(f"The warehouse could not run this query (SQLSTATE {sqlstate or 'none'}).")


# --- The reader role ----------------------------------------------------------------------------

READER_CONNECTION_LIMIT: Final = 50  # web workers x threads plus Celery, with headroom


@dataclass(frozen=True)
class ReaderGrant:
    role: str
    created: bool
    changes: tuple[str, ...]
    tables: tuple[str, ...]


def ensure_reader_role(
    conn: PgConnection,
    role: str,
    *,
    password: str | None = None,
    statement_timeout_ms: int | None = None,
    session_defaults: bool = True,
) -> tuple[bool, list[str]]:
    """Create the login role questions run as, or bring an existing one back to read-only; idempotent.

    However the role was changed by hand, it leaves LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    NOINHERIT NOREPLICATION NOBYPASSRLS, with the reader's connection limit and no membership in any
    role. With `session_defaults` (always for a new role) its own defaults are set too: read-only
    transactions and the time limits. Only what differs is altered, so for a role that is already
    right no privilege is needed; a change needs superuser or CREATEROLE. Returns whether the role
    was created and what was changed.
    """
    ident = pg_sql.Identifier(role)
    timeout = (
        settings.WAREHOUSE_STATEMENT_TIMEOUT_MS if statement_timeout_ms is None else statement_timeout_ms
    )
    changes: list[str] = []
    with conn.transaction():
        row = conn.execute(
            "SELECT oid, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, "
            "rolcanlogin, rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s",
            [role],
        ).fetchone()
        created = row is None
        config: dict[str, str] = {}
        if row is None:
            conn.execute(
                pg_sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION "
                    "NOBYPASSRLS CONNECTION LIMIT {}"
                ).format(ident, pg_sql.Literal(READER_CONNECTION_LIMIT))
            )
            changes.append("created the role")
        else:
            # Only what differs is altered: a CREATEROLE (non-superuser) owner may not even mention SUPERUSER.
            wanted = {
                "SUPERUSER": (row[1], False),
                "CREATEDB": (row[2], False),
                "CREATEROLE": (row[3], False),
                "INHERIT": (row[4], False),
                "REPLICATION": (row[5], False),
                "BYPASSRLS": (row[6], False),
                "LOGIN": (row[7], True),
            }
            for attribute, (have, want) in wanted.items():
                if have != want:
                    keyword = attribute if want else f"NO{attribute}"
                    conn.execute(pg_sql.SQL("ALTER ROLE {} " + keyword).format(ident))
                    changes.append(keyword)
            if row[8] != READER_CONNECTION_LIMIT:
                conn.execute(
                    pg_sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
                        ident, pg_sql.Literal(READER_CONNECTION_LIMIT)
                    )
                )
                changes.append(f"CONNECTION LIMIT {READER_CONNECTION_LIMIT}")
            memberships = conn.execute(
                "SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = %s", [row[0]]
            ).fetchall()
            for (granted,) in memberships:
                # roleid::regrole::text is already quoted where needed.
                conn.execute(pg_sql.SQL("REVOKE {} FROM {}").format(pg_sql.SQL(granted), ident))
                changes.append(f"revoked membership in {granted}")
            config = dict(str(item).split("=", 1) for item in row[9] or [])
        if password is not None:
            conn.execute(pg_sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, pg_sql.Literal(password)))
            changes.append("set the password")
        if session_defaults or created:
            # Defaults for every session of the role, whatever client it uses.
            for name, value in (
                ("default_transaction_read_only", "on"),
                ("statement_timeout", str(timeout)),
                ("lock_timeout", str(_lock_timeout_ms(timeout))),
                ("idle_in_transaction_session_timeout", str(timeout + 5_000)),
            ):
                if config.get(name) != value:
                    conn.execute(
                        pg_sql.SQL("ALTER ROLE {} SET {} = {}").format(
                            ident, pg_sql.Identifier(name), pg_sql.Literal(value)
                        )
                    )
                    if not created:
                        changes.append(f"set {name} = {value}")
    return created, changes


def grant_reader(conn: sqlite3.Connection | PgConnection, role: str | None = None) -> ReaderGrant | None:
    """Give the reader role SELECT on exactly the warehouse tables; call it after every (re)load.

    The grant is exact: it first revokes whatever the role holds on the schema's tables, so no
    table outside the warehouse schema (and none created later) is ever readable by default.
    The role itself is checked every time and put back to read-only if it was widened, which (like
    creating it when missing) needs CREATEROLE; a role that is already right needs only the tables'
    owner's rights. On SQLite there is nothing to grant (the file is opened read-only): None.
    """
    if isinstance(conn, sqlite3.Connection):
        return None
    role = role or settings.WAREHOUSE_READER_ROLE
    ident = pg_sql.Identifier(role)
    try:
        created, changes = ensure_reader_role(conn, role, session_defaults=False)
    except pg_errors.InsufficientPrivilege:
        raise WarehouseConfigError(
            f"The warehouse's read-only role {role} is missing or no longer read-only, and the account "
            f"loading the warehouse may not create or repair it. {CREATE_READER_HINT}"
        ) from None
    with conn.transaction():
        where = conn.execute(
            "SELECT current_database(), current_schema(), "
            "has_database_privilege(%(role)s, current_database(), 'CONNECT'), "
            "has_schema_privilege(%(role)s, current_schema(), 'USAGE'), "
            "EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = current_schema() "
            "AND a.grantee = 0 AND a.privilege_type = 'CREATE')",
            {"role": role},
        ).fetchone()
        if where is None or where[1] is None:
            raise WarehouseConfigError("The warehouse connection has no current schema (check search_path).")
        schema_name = str(where[1])
        database, schema = pg_sql.Identifier(str(where[0])), pg_sql.Identifier(schema_name)
        can_connect, has_usage, public_may_create = bool(where[2]), bool(where[3]), bool(where[4])
        present = {
            str(name)
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall()
        }
        tables = tuple(name for name in schema_tables() if name in present)
        # Each grant only when missing: the default PUBLIC rights often suffice, and granting needs
        # ownership of the database or schema, which a warehouse owner may not have.
        if not can_connect:
            conn.execute(pg_sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, ident))
        if public_may_create:  # the default before PostgreSQL 15: anyone could create tables in public
            conn.execute(pg_sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
            changes.append(f"revoked CREATE on schema {schema_name} from PUBLIC")
        conn.execute(pg_sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, ident))
        if not has_usage:
            conn.execute(pg_sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
        conn.execute(pg_sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, ident))
        conn.execute(pg_sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, ident))
        if tables:
            conn.execute(
                pg_sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(
                    pg_sql.SQL(", ").join(pg_sql.Identifier(schema_name, name) for name in tables), ident
                )
            )
    return ReaderGrant(role, created, tuple(changes), tables)
