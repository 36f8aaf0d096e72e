"""Where the warehouse lives (WAREHOUSE_URL) and the writer connections that create and load it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from django.conf import settings

from hisplatform.warehouse.schema import (
    EHRSQL_TABLES,
    IDENTITY_TABLES,
    Dialect,
    create_statements,
    drop_statements,
    post_load_statements,
)


class WarehouseConfigError(Exception):
    """The warehouse URL or its database is not usable; the message says why."""


@dataclass(frozen=True)
class WarehouseTarget:
    dialect: Dialect
    url: str
    sqlite_path: Path | None = None

    @property
    def conninfo(self) -> str:
        """A libpq URL (postgresql://...) for psycopg."""
        return libpq_url(self.url)

    def with_user(self, user: str, password: str | None = None) -> str:
        """The libpq URL of this database logged in as `user` instead (host, port and options kept)."""
        return libpq_url(self.url, user=user, password=password)

    def describe(self) -> str:
        """The target without any password, for messages and logs."""
        if self.sqlite_path is not None:
            return f"SQLite file {self.sqlite_path}"
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        return f"PostgreSQL database {parts.path.lstrip('/')} on {host}:{parts.port or 5432}"


def libpq_url(url: str, *, user: str | None = None, password: str | None = None) -> str:
    """`url` with the scheme libpq accepts; given `user`, that login replaces the URL's own (password too)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rpartition("@")[2]  # keeps the port and any [IPv6] brackets
        login = quote(user, safe="")
        if password is not None:
            login += ":" + quote(password, safe="")
        netloc = f"{login}@{host}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, parts.fragment))


def warehouse_target(url: str | None = None) -> WarehouseTarget:
    url = url or settings.WAREHOUSE_URL
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as dj-database-url reads them.
        return WarehouseTarget("sqlite", url, sqlite_path=Path(unquote(parts.path)[1:]))
    if parts.scheme in ("postgres", "postgresql"):
        return WarehouseTarget("postgres", url)
    raise WarehouseConfigError(
        f"The warehouse URL must start with sqlite:// or postgresql://, not {parts.scheme}://."
    )


@contextmanager
def writer_connection(target: WarehouseTarget) -> Iterator[sqlite3.Connection | psycopg.Connection]:
    """A read-write connection for creating and loading the warehouse; never used for questions."""
    if target.sqlite_path is not None:
        target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target.sqlite_path, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
    else:
        try:
            pg = psycopg.connect(target.conninfo, autocommit=True)
        except psycopg.OperationalError as error:
            raise WarehouseConfigError(f"Cannot connect to {target.describe()}: {error}".strip()) from None
        try:
            yield pg
        finally:
            pg.close()


@dataclass(frozen=True)
class WarehouseCapabilities:
    """What a warehouse can answer: a de-identified MIMIC-IV source has the clinical core only."""

    clinical_core: bool
    identity: bool
    missing_clinical: tuple[str, ...]
    missing_identity: tuple[str, ...]

    def describe(self) -> str:
        if not self.clinical_core:
            return "This warehouse lacks clinical tables: " + ", ".join(self.missing_clinical) + "."
        if not self.identity:
            return (
                "This warehouse is a de-identified extract (such as MIMIC-IV): it holds no patient identity, "
                "staff, care-team or note tables, so names, MRNs, contact details and care-team membership "
                "cannot be shown or used."
            )
        return "This warehouse is an identified hospital extract: clinical, identity and organisation tables."


def capabilities_of(tables_present: set[str]) -> WarehouseCapabilities:
    missing_clinical = tuple(t for t in EHRSQL_TABLES if t not in tables_present)
    missing_identity = tuple(t for t in IDENTITY_TABLES if t not in tables_present)
    return WarehouseCapabilities(
        not missing_clinical, not missing_identity, missing_clinical, missing_identity
    )


def warehouse_capabilities(target: WarehouseTarget | None = None) -> WarehouseCapabilities:
    # Imported here: the executor builds on this module. It reads through the read-only path, so
    # asking about a missing warehouse never creates a file.
    from hisplatform.warehouse.executor import readable_tables

    return capabilities_of(readable_tables(target or warehouse_target()))


def create_schema(conn: sqlite3.Connection | psycopg.Connection, dialect: Dialect) -> None:
    """Drop and recreate every warehouse table, empty, without indexes (added after loading)."""
    for statement in drop_statements(dialect):
        conn.execute(statement)
    for statement in create_statements(dialect):
        conn.execute(statement)


def finish_schema(conn: sqlite3.Connection | psycopg.Connection, dialect: Dialect) -> None:
    for statement in post_load_statements(dialect):
        conn.execute(statement)
