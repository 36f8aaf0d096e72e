"""Building blocks for compiled SQL: columns, literals, and date arithmetic in each warehouse dialect.

Every value enters the tree as a literal node, never as pasted text. Date functions differ between
SQLite (text timestamps, strftime/datetime/julianday) and PostgreSQL (timestamps, to_char/date_trunc/
intervals); sqlglot does not transpile SQLite's datetime modifiers, so each block is written for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from nlquery.timeexpr import TimeConstraint

DIALECTS = ("sqlite", "postgres")
_PG_FORMATS = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%Y-%m": "YYYY-MM", "%Y-%m-%d": "YYYY-MM-DD",
               "%m-%d": "MM-DD"}  # fmt: skip
_UNITS = ("day", "week", "month", "year", "hour", "minute")


@dataclass(frozen=True)
class Ctx:
    """What compiling needs besides the plan: the dialect and the moment "now" means."""

    dialect: str  # "sqlite" | "postgres"
    now: str  # "YYYY-MM-DD HH:MM:SS"
    # Show what each row of a grouped answer stands for (the month of a monthly average). EHRSQL's
    # answer format leaves it out, so its commands turn this off.
    labels: bool = True

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}")

    @property
    def pg(self) -> bool:
        return self.dialect == "postgres"


def col(dotted: str) -> exp.Column:
    table, column = dotted.split(".")
    return exp.column(column, table=table)


def lit(value: str | int | float) -> exp.Expr:
    if isinstance(value, bool):
        raise TypeError("booleans are not SQL literals here")
    if isinstance(value, (int, float)):
        return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))
    return exp.Literal.string(value)


def eq(left: exp.Expr | str, value: str | int | float | exp.Expr) -> exp.EQ:
    right = value if isinstance(value, exp.Expr) else lit(value)
    return exp.EQ(this=col(left) if isinstance(left, str) else left, expression=right)


def fn(name: str, *args: exp.Expr) -> exp.Anonymous:
    """A function rendered as written in both dialects (sqlglot would rename some known ones)."""
    return exp.Anonymous(this=name, expressions=list(args))


def now(ctx: Ctx) -> exp.Expr:
    if ctx.pg:
        return exp.Cast(this=lit(ctx.now), to=exp.DataType.build("timestamp"))
    return lit(ctx.now)


def fmt(ctx: Ctx, value: exp.Expr, pattern: str) -> exp.Expr:
    """The timestamp as text in a fixed format, e.g. "%Y-%m" gives "2100-05"."""
    if ctx.pg:
        return fn("to_char", value, lit(_PG_FORMATS[pattern]))
    return fn("strftime", lit(pattern), value)


def timestamp(ctx: Ctx, value: exp.Expr) -> exp.Expr:
    """The value as a comparable timestamp (SQLite normalises text through datetime())."""
    return value if ctx.pg else fn("datetime", value)


def shift(ctx: Ctx, value: exp.Expr, amount: int, unit: str) -> exp.Expr:
    """value + amount units (amount may be negative)."""
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r}")
    if ctx.pg:
        interval = exp.Interval(this=lit(str(abs(amount))), unit=exp.var(unit.upper()))
        return (
            exp.Sub(this=value, expression=interval)
            if amount < 0
            else exp.Add(this=value, expression=interval)
        )
    sign = "-" if amount < 0 else "+"
    return fn("datetime", value, lit(f"{sign}{abs(amount)} {unit}"))


def start_of(ctx: Ctx, value: exp.Expr, unit: str) -> exp.Expr:
    """The start of the day, month or year the value falls in."""
    if unit not in ("day", "month", "year"):
        raise ValueError(f"no start of {unit!r}")
    if ctx.pg:
        return fn("date_trunc", lit(unit), value)
    return fn("datetime", value, lit(f"start of {unit}"))


def days_between(ctx: Ctx, later: exp.Expr, earlier: exp.Expr) -> exp.Expr:
    """later - earlier in (fractional) days."""
    if ctx.pg:
        epoch = exp.Extract(
            this=exp.var("EPOCH"), expression=exp.Paren(this=exp.Sub(this=later, expression=earlier))
        )
        return exp.Div(this=epoch, expression=lit(86400.0))
    return exp.Sub(this=fn("julianday", later), expression=fn("julianday", earlier))


def elapsed(ctx: Ctx, later: exp.Expr, earlier: exp.Expr, unit: str) -> exp.Expr:
    """later - earlier in whole or fractional units of day or hour."""
    days = exp.Paren(this=days_between(ctx, later, earlier))
    if unit == "day":
        return days
    if unit == "hour":
        return exp.Mul(this=lit(24), expression=days)
    if unit == "minute":
        return exp.Mul(this=lit(1440), expression=days)
    raise ValueError(f"no elapsed time in {unit!r}")


def and_(*conditions: exp.Expr | None) -> exp.Expr | None:
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    return exp.and_(*present, copy=False) if len(present) > 1 else present[0]


# --- Time constraints ----------------------------------------------------------------------------


class TimeCompileError(ValueError):
    """The constraint cannot be expressed on this column (e.g. a visit constraint on a bare column)."""


def time_condition(ctx: Ctx, constraint: TimeConstraint, column: exp.Expr) -> exp.Expr:
    """A predicate that keeps rows whose `column` falls in the calendar or relative period.

    Visit and between-event constraints are not predicates on one column: the caller applies them.
    """
    c = constraint
    if c.kind == "abs":
        return _absolute(ctx, c, column)
    if c.kind == "rel":
        if c.op == "since":
            if c.amount is None or not c.unit:
                raise TimeCompileError("a relative period needs an amount and a unit")
            unit, amount = ("day", 7 * c.amount) if c.unit == "week" else (c.unit, c.amount)
            return exp.GTE(this=timestamp(ctx, column), expression=shift(ctx, now(ctx), -amount, unit))
        unit = c.unit
        back = c.amount or 0
        if unit == "week":
            # A calendar week has no portable start: read "this week" as the last 7 days.
            return exp.GTE(
                this=timestamp(ctx, column), expression=shift(ctx, now(ctx), -7 * (back + 1), "day")
            )
        return exp.EQ(
            this=start_of(ctx, column, unit),
            expression=shift(ctx, start_of(ctx, now(ctx), unit), -back, unit),
        )
    raise TimeCompileError(f"a {c.kind} constraint is not a condition on one column")


def _absolute(ctx: Ctx, c: TimeConstraint, column: exp.Expr) -> exp.Expr:
    if c.relative_year is not None or c.relative_month is not None:
        unit = "year" if c.relative_year is not None else "month"
        back = -(c.relative_year if c.relative_year is not None else c.relative_month or 0)
        period = exp.EQ(
            this=start_of(ctx, column, unit),
            expression=shift(ctx, start_of(ctx, now(ctx), unit), -back, unit),
        )
        if c.month is not None and c.day is not None:
            within = eq(fmt(ctx, column, "%m-%d"), f"{c.month:02d}-{c.day:02d}")
        elif c.month is not None:
            within = eq(fmt(ctx, column, "%m"), f"{c.month:02d}")
        elif c.day is not None:
            within = eq(fmt(ctx, column, "%d"), f"{c.day:02d}")
        else:
            return period
        return exp.and_(period, within, copy=False)
    if c.year is None:
        raise TimeCompileError("an absolute date needs a year")
    if c.month is None:
        pattern, value = "%Y", f"{c.year:04d}"
    elif c.day is None:
        pattern, value = "%Y-%m", f"{c.year:04d}-{c.month:02d}"
    else:
        pattern, value = "%Y-%m-%d", f"{c.year:04d}-{c.month:02d}-{c.day:02d}"
    left = fmt(ctx, column, pattern)
    if c.op == "since":
        return exp.GTE(this=left, expression=lit(value))
    if c.op == "before":
        return exp.LT(this=left, expression=lit(value))
    return exp.EQ(this=left, expression=lit(value))


def window_condition(ctx: Ctx, constraint: TimeConstraint, earlier: exp.Expr, later: exp.Expr) -> exp.Expr:
    """The later event falls in the window after the earlier one that the constraint names."""
    c = constraint
    if c.kind != "within":
        raise TimeCompileError("not a between-events constraint")
    if c.unit == "same":
        return exp.EQ(this=timestamp(ctx, earlier), expression=timestamp(ctx, later))
    if c.unit in ("day", "month") and c.amount is None:
        return exp.and_(
            exp.LT(this=earlier, expression=later),
            exp.EQ(this=start_of(ctx, earlier, c.unit), expression=start_of(ctx, later, c.unit)),
            copy=False,
        )
    if c.amount is not None and c.unit in ("day", "week", "month", "year"):
        unit, amount = ("day", 7 * c.amount) if c.unit == "week" else (c.unit, c.amount)
        return exp.and_(
            exp.LT(this=earlier, expression=later),
            exp.Between(
                this=timestamp(ctx, later),
                low=timestamp(ctx, earlier),
                high=shift(ctx, earlier, amount, unit),
            ),
            copy=False,
        )
    if c.unit == "hospital":
        return exp.LT(this=earlier, expression=later)
    raise TimeCompileError(f"no window for {c.text!r}")
