"""Time constraints compile to the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest
import sqlglot
from sqlglot import exp

from nlquery.sqlparts import (
    Ctx,
    TimeCompileError,
    col,
    days_between,
    elapsed,
    now,
    time_condition,
    window_condition,
)
from nlquery.timeexpr import TimeConstraint, find_time_constraints
from tests.conftest import PG_SERVER

NOW = "2026-11-25 09:30:00"
# Every 13 hours for three years before now: every day, month and year boundary is crossed.
STAMPS = [
    (datetime(2026, 11, 25, 9, 30) - timedelta(hours=13 * i)).strftime("%Y-%m-%d %H:%M:%S")
    for i in range(2100)
]


@pytest.fixture(scope="module")
def sqlite_events() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE events (id INTEGER, t TEXT)")
    db.executemany("INSERT INTO events VALUES (?, ?)", list(enumerate(STAMPS)))
    yield db
    db.close()


@pytest.fixture(scope="module")
def pg_events() -> Iterator[psycopg.Connection]:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
        db.execute(f'SET search_path TO "{schema}"')
        db.execute("CREATE TABLE events (id INTEGER, t TIMESTAMP)")
        with db.cursor() as cursor:
            cursor.executemany("INSERT INTO events VALUES (%s, %s)", list(enumerate(STAMPS)))
        try:
            yield db
        finally:
            db.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _ids_sqlite(db: sqlite3.Connection, condition: exp.Expr) -> list[int]:
    sql = sqlglot.select("id").from_("events").where(condition).sql(dialect="sqlite")
    return sorted(row[0] for row in db.execute(sql))


def _ids_pg(db: psycopg.Connection, condition: exp.Expr) -> list[int]:
    sql = sqlglot.select("id").from_("events").where(condition).sql(dialect="postgres")
    return sorted(row[0] for row in db.execute(sql))


PHRASES = [
    "in 2025",
    "since 2026",
    "in 03/2026",
    "since 10/2026",
    "on 11/20/2026",
    "since 2026-11-01",
    "since 3 months ago",
    "in the last 30 days",
    "since 2 weeks ago",
    "in the last year",
    "this year",
    "last year",
    "this month",
    "last month",
    "today",
    "yesterday",
    "in 06/this year",
    "on 11/24/this year",
    "on 12/31/last year",
    "this month/20",
]


@pytest.mark.parametrize("phrase", PHRASES)
def test_a_time_phrase_keeps_the_same_rows_on_both_dialects(
    phrase: str, sqlite_events: sqlite3.Connection, pg_events: psycopg.Connection
) -> None:
    (constraint,) = [c for c in find_time_constraints(f"how many events {phrase}") if c.kind != "ordinal"]
    column = col("events.t")
    on_sqlite = _ids_sqlite(sqlite_events, time_condition(Ctx("sqlite", NOW), constraint, column))
    on_postgres = _ids_pg(pg_events, time_condition(Ctx("postgres", NOW), constraint, column))
    assert on_sqlite == on_postgres
    assert 0 < len(on_sqlite) < len(STAMPS), phrase  # a real restriction, not all or nothing


def test_calendar_constraints_mean_what_they_say(sqlite_events: sqlite3.Connection) -> None:
    ctx = Ctx("sqlite", NOW)
    (march,) = find_time_constraints("in 03/2026")
    rows = _ids_sqlite(sqlite_events, time_condition(ctx, march, col("events.t")))
    assert {STAMPS[i][:7] for i in rows} == {"2026-03"}
    (recent,) = find_time_constraints("since 30 days ago")
    rows = _ids_sqlite(sqlite_events, time_condition(ctx, recent, col("events.t")))
    assert min(STAMPS[i] for i in rows) >= "2026-10-26 09:30:00"
    (last_year,) = find_time_constraints("last year")
    rows = _ids_sqlite(sqlite_events, time_condition(ctx, last_year, col("events.t")))
    assert {STAMPS[i][:4] for i in rows} == {"2025"}


@pytest.mark.parametrize(
    "constraint",
    [
        TimeConstraint("within", unit="same"),
        TimeConstraint("within", unit="day"),
        TimeConstraint("within", unit="month"),
        TimeConstraint("within", amount=2, unit="day"),
        TimeConstraint("within", amount=1, unit="month"),
    ],
)
def test_windows_between_two_events_agree(
    constraint: TimeConstraint, sqlite_events: sqlite3.Connection, pg_events: psycopg.Connection
) -> None:
    def pairs(dialect: str) -> exp.Select:
        condition = window_condition(Ctx(dialect, NOW), constraint, col("a.t"), col("b.t"))
        return (
            sqlglot.select("a.id", "b.id")
            .from_("events AS a")
            .join("events AS b", on="a.id - b.id BETWEEN -200 AND 200")
            .where(condition)
        )

    on_sqlite = sorted(sqlite_events.execute(pairs("sqlite").sql(dialect="sqlite")))
    on_postgres = sorted(tuple(r) for r in pg_events.execute(pairs("postgres").sql(dialect="postgres")))
    if constraint.amount is not None and constraint.unit == "month":
        # A month after the 29th-31st is not one date: SQLite runs on into the next month
        # (Jan 31 + 1 month = Mar 3), PostgreSQL stops at the month's end (Feb 28). Elsewhere they agree.
        on_sqlite = [p for p in on_sqlite if int(STAMPS[p[0]][8:10]) <= 28]
        on_postgres = [p for p in on_postgres if int(STAMPS[p[0]][8:10]) <= 28]
    assert on_sqlite == on_postgres
    assert on_sqlite


def test_elapsed_time_is_the_same_number_in_both_dialects(
    sqlite_events: sqlite3.Connection, pg_events: psycopg.Connection
) -> None:
    def query(dialect: str) -> str:
        ctx = Ctx(dialect, NOW)
        later, earlier = now(ctx), col("events.t")
        hours = elapsed(ctx, later, earlier, "hour")
        days = days_between(ctx, later, earlier)
        return sqlglot.select("id", hours, days).from_("events").where("id < 50").sql(dialect=dialect)

    on_sqlite = [(i, round(h, 6), round(d, 6)) for i, h, d in sqlite_events.execute(query("sqlite"))]
    on_postgres = [
        (i, round(float(h), 6), round(float(d), 6)) for i, h, d in pg_events.execute(query("postgres"))
    ]
    assert sorted(on_sqlite) == sorted(on_postgres)
    assert (1, 13.0, round(13 / 24, 6)) in on_sqlite


def test_visit_constraints_are_not_column_conditions() -> None:
    with pytest.raises(TimeCompileError):
        time_condition(
            Ctx("sqlite", NOW), TimeConstraint("visit", visit="hospital", which="last"), col("e.t")
        )
    with pytest.raises(ValueError, match="unknown dialect"):
        Ctx("oracle", NOW)
