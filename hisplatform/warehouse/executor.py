"""The one way warehouse SQL runs: read-only at the database itself, time-limited and row-capped."""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg import sql as pg_sql
from psycopg.rows import TupleRow

from hisplatform.warehouse.schema import IDENTITY_TABLES
from hisplatform.warehouse.schema import tables as schema_tables
from hisplatform.warehouse.targets import WarehouseConfigError, WarehouseTarget, warehouse_target

logger = logging.getLogger(__name__)

PgConnection = psycopg.Connection[TupleRow]

CREATE_READER_HINT: Final = "An operator must run `python manage.py create_warehouse_reader`."


# --- Results and errors -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[object, ...]]
    truncated: bool  # more rows existed than the row cap allowed
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
) -> QueryResult:
    """Run one read-only query and return at most `row_cap` rows, or raise a WarehouseError.

    Placeholders follow the driver: `?` on SQLite, `%s` on PostgreSQL (where a literal % must then
    be written %%). Without params the SQL is sent as is.
    """
    cap = settings.WAREHOUSE_ROW_CAP if row_cap is None else row_cap
    timeout = settings.WAREHOUSE_STATEMENT_TIMEOUT_MS if timeout_ms is None else timeout_ms
    if cap < 1 or timeout < 1:
        raise ValueError("row_cap and timeout_ms must be positive")
    if not sql.strip():
        raise WarehouseQueryError("There is no query to run.", code="empty_query")
    if target is None:
        try:
            target = warehouse_target()
        except WarehouseConfigError as error:
            raise WarehouseUnavailable(str(error)) from None
    if target.sqlite_path is not None:
        return _run_sqlite(target.sqlite_path, sql, params, cap, timeout)
    return _run_postgres(target, sql, params, cap, timeout)


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


# --- Per-thread connection reuse ----------------------------------------------------------------


@dataclass
class _SqliteHandle:
    conn: sqlite3.Connection
    identity: tuple[int, ...]
    deadline: list[float] = field(default_factory=lambda: [math.inf])
    denied: list[int] = field(default_factory=list)


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
    handle = _SqliteHandle(conn, identity)
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
    path: Path, sql: str, params: Sequence[object] | None, cap: int, timeout_ms: int
) -> QueryResult:
    handle = _sqlite_handle(path)
    handle.denied.clear()
    started = time.perf_counter()
    handle.deadline[0] = time.monotonic() + timeout_ms / 1000
    cursor: sqlite3.Cursor | None = None
    try:
        cursor = handle.conn.execute(sql, tuple(params or ()))
        if cursor.description is None:
            raise WarehouseRefused("not_a_query")
        rows: list[tuple[object, ...]] = cursor.fetchmany(cap + 1)
        columns = [str(column[0]) for column in cursor.description]
    except (OverflowError, ValueError, TypeError):
        # Raised while binding parameters (an integer beyond 64 bits, an unsupported type).
        raise WarehouseQueryError(
            "The warehouse cannot use a value given with this query (too large, or of an unsupported type)."
        ) from None
    except (sqlite3.Error, sqlite3.Warning) as error:
        timed_out = time.monotonic() >= handle.deadline[0]
        mapped = _sqlite_error(error, timed_out=timed_out, timeout_ms=timeout_ms, denied=handle.denied)
        if isinstance(mapped, WarehouseUnavailable):
            _sqlite_discard(path)
        raise mapped from None
    finally:
        handle.deadline[0] = math.inf
        if cursor is not None:
            cursor.close()  # resets the statement, releasing the read lock a reload would wait on
    return QueryResult(columns, rows[:cap], len(rows) > cap, (time.perf_counter() - started) * 1000)


# SQLite messages that only repeat names and tokens from the query itself, so they are safe to show.
_SQLITE_SAFE_MESSAGES: Final = re.compile(
    r"no such column|near \"|syntax error|ambiguous column name|misuse of|wrong number of arguments|"
    r"incomplete input|unrecognized token|Incorrect number of bindings|circular reference|"
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
        return WarehouseUnavailable("The warehouse is being reloaded. Try again in a minute.", code="busy")
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
# A reader session must hold none of these; connecting as such an account is refused outright.
_PG_ROLE_CHECK: Final = pg_sql.SQL(
    """
    SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
        OR pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER')
        OR pg_has_role(r.oid, 'pg_read_server_files', 'MEMBER')
        OR pg_has_role(r.oid, 'pg_write_server_files', 'MEMBER')
        OR pg_has_role(r.oid, 'pg_write_all_data', 'MEMBER')
        OR EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = current_database() AND d.datdba = r.oid)
        OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid
                   AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()))
    FROM pg_roles r WHERE r.rolname = session_user
    """
)


def reader_url(target: WarehouseTarget) -> str:
    """The reader's URL: WAREHOUSE_READER_URL for the configured warehouse, else the reader role's name."""
    if settings.WAREHOUSE_READER_URL and target.url == settings.WAREHOUSE_URL:
        return str(settings.WAREHOUSE_READER_URL)
    parts = urlsplit(target.url)
    host = parts.netloc.rpartition("@")[2]  # keeps the port and any [IPv6] brackets
    netloc = f"{quote(settings.WAREHOUSE_READER_ROLE, safe='')}@{host}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, parts.fragment))


def _reader_role(url: str) -> str:
    return urlsplit(url).username or "(the WAREHOUSE_READER_URL user)"


def _pg_connect(url: str, target: WarehouseTarget) -> PgConnection:
    conninfo = urlunsplit(("postgresql", *urlsplit(url)[1:]))
    role = _reader_role(url)
    try:
        conn = psycopg.connect(
            conninfo,
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


@functools.lru_cache(maxsize=64)
def _begin_statement(timeout_ms: int) -> bytes:
    # Only integers are formatted in; caching the bytes saves composing them on every question.
    timeout = int(timeout_ms)
    return (
        f"BEGIN READ ONLY; SET LOCAL statement_timeout = {timeout}; "
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


def _run_postgres(
    target: WarehouseTarget, sql: str, params: Sequence[object] | None, cap: int, timeout_ms: int
) -> QueryResult:
    url = reader_url(target)
    conn = _pg_begin(url, target, timeout_ms)
    started = time.perf_counter()
    keep = False
    try:
        cursor = conn.cursor()
        # binary=True makes psycopg use the extended query protocol even without parameters, and
        # the server then refuses a string of several statements outright.
        cursor.execute(sql, params, prepare=False, binary=True)
        if cursor.description is None:
            raise WarehouseRefused("not_a_query")
        columns = [column.name for column in cursor.description]
        rows: list[tuple[object, ...]] = cursor.fetchmany(cap + 1)
        keep = True
    except psycopg.Error as error:
        raise _pg_error(error, timeout_ms) from None
    finally:
        keep = _pg_end(conn) and keep
        if not keep:
            # After any failure the session may carry state (a SET, a PREPARE, an advisory lock):
            # a fresh connection costs a few milliseconds, and failures are rare.
            _pg_discard(url)
    return QueryResult(columns, rows[:cap], len(rows) > cap, (time.perf_counter() - started) * 1000)


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


def _pg_error(error: psycopg.Error, timeout_ms: int) -> WarehouseError:
    sqlstate = error.sqlstate or ""
    primary = (error.diag.message_primary or "") if sqlstate else ""
    if isinstance(error, pg_errors.QueryCanceled):
        return WarehouseTimeout(timeout_ms)
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
    if not sqlstate and isinstance(error, psycopg.ProgrammingError):
        # Raised by the driver for results a query never gives, such as COPY ... TO STDOUT.
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
    conn: PgConnection, role: str, *, password: str | None = None, statement_timeout_ms: int | None = None
) -> tuple[bool, list[str]]:
    """Create the login role questions run as, or bring an existing one back to read-only; idempotent.

    Returns whether it was created and what was changed. Needs superuser or CREATEROLE.
    """
    ident = pg_sql.Identifier(role)
    timeout = (
        settings.WAREHOUSE_STATEMENT_TIMEOUT_MS if statement_timeout_ms is None else statement_timeout_ms
    )
    changes: list[str] = []
    with conn.transaction():
        row = conn.execute(
            "SELECT oid, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, "
            "rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s",
            [role],
        ).fetchone()
        created = row is None
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
            memberships = conn.execute(
                "SELECT m.roleid::regrole::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                "WHERE r.rolname = %s",
                [role],
            ).fetchall()
            for (granted,) in memberships:
                conn.execute(pg_sql.SQL("REVOKE {} FROM {}").format(pg_sql.Identifier(granted), ident))
                changes.append(f"revoked membership in {granted}")
        if password is not None:
            conn.execute(pg_sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, pg_sql.Literal(password)))
            changes.append("set the password")
        # Session defaults for every connection of the role, whatever client it uses.
        for name, value in (
            ("default_transaction_read_only", "on"),
            ("statement_timeout", str(timeout)),
            ("idle_in_transaction_session_timeout", str(timeout + 5_000)),
        ):
            conn.execute(pg_sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, pg_sql.SQL(name), value))
    return created, changes


def grant_reader(conn: sqlite3.Connection | PgConnection, role: str | None = None) -> ReaderGrant | None:
    """Give the reader role SELECT on exactly the warehouse tables; call it after every (re)load.

    The grant is exact: it first revokes whatever the role holds on the schema's tables, so no
    table outside the warehouse schema (and none created later) is ever readable by default.
    Creates the role when missing (which needs CREATEROLE); otherwise only the tables' owner's
    rights are needed. On SQLite there is nothing to grant (the file is opened read-only): None.
    """
    if isinstance(conn, sqlite3.Connection):
        return None
    role = role or settings.WAREHOUSE_READER_ROLE
    ident = pg_sql.Identifier(role)
    exists = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)", [role]).fetchone()
    created, changes = (False, []) if exists and exists[0] else ensure_reader_role(conn, role)
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
