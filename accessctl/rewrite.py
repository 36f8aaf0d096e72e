"""The SQL guard: any SQL in, one read-only SELECT out that can read only what a decision allows.

The SQL is never trusted, whoever wrote it (our compiler, an API caller, an attacker). It is parsed,
checked against allow-lists of syntax, tables and functions, and every reference to a warehouse table
is replaced by a view of that table (`(SELECT <masked columns> FROM t WHERE <row scope>) AS t`), so
that whatever the query does with the table (joins, subqueries, CTEs, unions, windows, filters on
masked columns) it sees only the rows and the column values the view lets through. The rendered SQL
is then parsed again and every table reference in it is checked to sit inside one of those views:
a rendering quirk that changed the query's meaning is caught before anything runs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

# A view's own table is read under this alias; a user's query may not use it (see _check_names).
SOURCE_ALIAS: Final = "__src"
# Names of the CTEs access control prepends (row scopes); user CTEs may not start with it.
RESERVED_PREFIX: Final = "__"
# More text than any real query; the parser's time grows with it.
MAX_SQL_CHARS: Final = 100_000
# Deeper nesting than any real query; sqlglot and the databases recurse on it.
MAX_DEPTH: Final = 200

# What an unquoted name may look like. Anything else the parser let through as a name (`$1`, `@x`,
# a NUL or a direction mark) is a placeholder or a trick, never a table or column of ours.
_PLAIN_NAME: Final = re.compile(r"[^\W\d][\w$]*")
# Bare words PostgreSQL reads as the session's user, role or schema, not as a column.
_SESSION_WORDS: Final = frozenset(
    {
        "user",
        "current_user",
        "session_user",
        "current_role",
        "system_user",
        "current_schema",
        "current_catalog",
    }
)
# Both databases fold only ASCII letters when they compare names; Python's lower() folds more.
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

SCHEMAS: Final[Mapping[str, frozenset[str]]] = {
    # The schema a qualified name may name: the database's own, nothing attached or temporary.
    "sqlite": frozenset({"main"}),
    "postgres": frozenset({"public"}),
}


class SqlRefused(Exception):
    """The SQL may not run; `message` says why, for the person who asked."""

    def __init__(self, message: str, *, code: str = "sql_refused") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# Compared and hashed by identity: read_policy hands out one shared view per distinct set of
# arguments, and the guard keys what it builds from a view on that identity.
@dataclass(frozen=True, eq=False)
class TableView:
    """What may be read of one warehouse table: which rows, and each column as shown.

    `columns` maps each output column name to an expression over the table's own (unqualified)
    columns: the column itself, or a mask of it. `rows` is a predicate over the same columns; it may
    read the reserved CTEs (`ReadPolicy.ctes`), never another table directly.
    """

    columns: tuple[tuple[str, exp.Expr], ...]
    rows: exp.Expr | None = None


@dataclass(frozen=True)
class ReadPolicy:
    """Everything the guard allows: tables (as views), functions, reserved CTEs and a row cap."""

    dialect: str
    tables: Mapping[str, TableView]
    row_cap: int
    # Reserved CTEs the views' row predicates read (e.g. `__scope`): trusted, prepended to the query.
    ctes: tuple[tuple[str, exp.Query], ...] = ()
    # Tables that exist in the warehouse (allowed or not): no CTE may take one of their names.
    known_tables: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rewritten:
    sql: str
    tables: tuple[str, ...]  # warehouse tables read, sorted
    columns: tuple[str, ...]  # "table.column" the query refers to (all of a table's for *), sorted
    limit: int  # the row limit the query now carries


# --- What SQL may contain ------------------------------------------------------------------------

# Syntax a read-only analytic query needs. Anything else (DML, DDL, INTO, locking clauses,
# placeholders, session variables, table functions, LATERAL, PRAGMA, ...) is refused by omission.
_ALLOWED_NODES: Final[frozenset[type[exp.Expr]]] = frozenset(
    {
        exp.Select, exp.Union, exp.Except, exp.Intersect, exp.Subquery, exp.With, exp.CTE,
        exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit,
        exp.Offset, exp.Distinct, exp.Window, exp.WindowSpec,
        exp.Table, exp.TableAlias, exp.Alias, exp.Column, exp.Identifier, exp.Star,
        exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Tuple, exp.Values, exp.DataType,
        exp.DataTypeParam, exp.Interval, exp.IntervalSpan, exp.Var,
        exp.And, exp.Or, exp.Not, exp.Neg, exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ,
        exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike,
        exp.Glob, exp.Escape, exp.Exists, exp.Any, exp.All,
        exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.DPipe,
        exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot,
        exp.Case, exp.If, exp.Cast, exp.TryCast,
    }
)  # fmt: skip

# Functions as sqlglot types them: aggregates, windows, arithmetic, text and dates. Functions that
# read files, sleep, set configuration or reach the catalog are not here, and sqlglot types them
# as Anonymous, where only _ANONYMOUS_FUNCTIONS passes.
_ALLOWED_FUNCTIONS: Final[frozenset[type[exp.Expr]]] = frozenset(
    {
        exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.GroupConcat, exp.StddevSamp, exp.Stddev,
        exp.StddevPop, exp.Variance, exp.VariancePop, exp.Median, exp.PercentileCont,
        exp.PercentileDisc, exp.Quantile, exp.ArrayAgg, exp.CountIf, exp.AnyValue,
        exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile, exp.Lag,
        exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
        exp.Abs, exp.Round, exp.Floor, exp.Ceil, exp.Sqrt, exp.Exp, exp.Ln, exp.Log, exp.Pow,
        exp.Sign, exp.Greatest, exp.Least, exp.Coalesce, exp.Nullif,
        exp.Lower, exp.Upper, exp.Length, exp.Substring, exp.Trim, exp.Concat, exp.ConcatWs,
        exp.Replace, exp.StrPosition, exp.Initcap, exp.Left, exp.Right, exp.Pad,
        exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp, exp.StrToTime, exp.StrToDate,
        exp.TimeToStr, exp.TsOrDsToTimestamp, exp.TsOrDsToDate, exp.TsOrDsAdd, exp.Date,
        exp.DateAdd, exp.DateSub, exp.DateDiff, exp.DateTrunc, exp.TimestampTrunc, exp.TimestampAdd,
        exp.TimestampSub, exp.TimestampDiff, exp.Extract, exp.DatetimeAdd, exp.DatetimeSub,
        exp.DatetimeDiff, exp.Datetime, exp.UnixToTime, exp.TimeToUnix, exp.TimeStrToTime,
        exp.TimeStrToDate, exp.DiToDate, exp.Day, exp.Month, exp.Year, exp.DayOfWeek, exp.Quarter,
        exp.Anonymous,
    }
)  # fmt: skip

# Untyped functions by name, per dialect: what EHRSQL's SQLite SQL and our compiler call.
_ANONYMOUS_FUNCTIONS: Final[Mapping[str, frozenset[str]]] = {
    "sqlite": frozenset(
        {"datetime", "date", "time", "julianday", "strftime", "printf", "instr", "ifnull", "iif",
         "total", "substr", "unixepoch", "format"}
    ),
    "postgres": frozenset(
        {"date_part", "to_char", "to_date", "to_timestamp", "age", "make_interval", "justify_interval",
         "percentile_cont", "string_agg", "width_bucket", "make_date", "date_bin"}
    ),
}  # fmt: skip


# The types a CAST may name: values, never catalog handles such as regclass or regproc.
_ALLOWED_TYPES: Final = frozenset(
    {
        exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR, exp.DataType.Type.NCHAR,
        exp.DataType.Type.NVARCHAR, exp.DataType.Type.INT, exp.DataType.Type.BIGINT,
        exp.DataType.Type.SMALLINT, exp.DataType.Type.TINYINT, exp.DataType.Type.DECIMAL,
        exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT, exp.DataType.Type.BOOLEAN,
        exp.DataType.Type.DATE, exp.DataType.Type.DATETIME, exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIME, exp.DataType.Type.INTERVAL,
    }
)  # fmt: skip


# --- The guard ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inspected:
    """A query parsed and checked, before any view is put in: what it reads, for the decision."""

    tree: exp.Query
    dialect: str
    tables: tuple[str, ...]  # warehouse tables read, sorted
    columns: tuple[str, ...]  # "table.column" it refers to (all of a table's for *), sorted


def inspect(
    sql: str | exp.Expr,
    *,
    dialect: str,
    catalog: Mapping[str, Sequence[str]],
    known_tables: Iterable[str] = (),
) -> Inspected:
    """Parse and check `sql` against the allow-lists; `catalog` maps each readable table to its columns."""
    try:
        tree = _parse(sql, dialect)
        _check_depth(tree)
        _check_syntax(tree, dialect)
        tables, _ = _resolve_tables(tree, dialect, catalog, frozenset(known_tables))
        columns = _columns_referenced(tree, tables, catalog)
    except RecursionError:
        raise SqlRefused("The query is nested too deeply.", code="sql_too_deep") from None
    return Inspected(tree, dialect, tuple(sorted({name for _, name in tables})), tuple(sorted(columns)))


def rewrite(sql: str | exp.Expr | Inspected, policy: ReadPolicy, *, consume: bool = False) -> Rewritten:
    """`sql` made safe under `policy`, or SqlRefused saying what it may not do.

    `consume`: an Inspected passed in will not be rewritten again, so its tree is used in place
    instead of copied first.
    """
    catalog = {name: [column for column, _ in view.columns] for name, view in policy.tables.items()}
    if not isinstance(sql, Inspected) or sql.dialect != policy.dialect:
        source = sql.tree if isinstance(sql, Inspected) else sql
        sql = inspect(source, dialect=policy.dialect, catalog=catalog, known_tables=policy.known_tables)
    try:
        return _apply(sql, policy, catalog, consume=consume)
    except RecursionError:
        raise SqlRefused("The query is nested too deeply.", code="sql_too_deep") from None


def _apply(
    inspected: Inspected, policy: ReadPolicy, catalog: Mapping[str, Sequence[str]], *, consume: bool
) -> Rewritten:
    tree = inspected.tree if consume else inspected.tree.copy()
    _keep_column_names(tree, policy.dialect)
    tables, ctes = _resolve_tables(tree, policy.dialect, catalog, policy.known_tables)
    for node in tree.walk():
        # Comments are dropped: sqlglot re-emits them, and a comment is no place for anything to hide.
        node.pop_comments()
    for table, name in tables:
        _replace_with_view(table, name)
    for column in tree.find_all(exp.Column):
        # `main.labevents.x` names the table the view now stands for by its plain name.
        column.set("db", None)
        column.set("catalog", None)
    built = {
        view_name(name): _built_view(name, policy.tables[name], policy.dialect)
        for name in {n for _, n in tables}
    }
    views = {name: select.copy() for name, (select, _) in sorted(built.items())}
    # The views as they must read after the round trip through text; checked by _verify.
    expected = {name: text for name, (_, text) in built.items()}
    tree = _prepend_ctes(
        tree,
        [(name, query.copy(), True) for name, query in policy.ctes]
        + [(name, view, False) for name, view in views.items()],
    )
    limit = _cap(tree, policy.row_cap)
    text = tree.sql(dialect=policy.dialect, copy=False)
    _verify(text, policy, ctes | {name for name, _ in policy.ctes} | set(views), expected)
    return Rewritten(sql=text, tables=inspected.tables, columns=inspected.columns, limit=limit)


def _keep_column_names(tree: exp.Query, dialect: str) -> None:
    """Name each unnamed output column that holds a subquery as it was written: the database names
    such a column by its text, which the views would otherwise lengthen into the user's header."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this  # the first branch names a union's columns
    if not isinstance(select, exp.Select):
        return
    for index, projection in enumerate(select.expressions):
        if not isinstance(projection, exp.Alias) and projection.find(exp.Subquery, exp.Select):
            name = projection.sql(dialect=dialect)
            select.expressions[index] = exp.alias_(
                projection, exp.to_identifier(name, quoted=True), copy=False
            )


def _parse(sql: str | exp.Expr, dialect: str) -> exp.Query:
    if isinstance(sql, exp.Expr):
        tree: exp.Expr | None = sql.copy()
    else:
        if len(sql) > MAX_SQL_CHARS:
            raise SqlRefused(f"The query is longer than {MAX_SQL_CHARS:,} characters.", code="sql_too_long")
        if "\x00" in sql or not _encodable(sql):
            # Neither database takes a NUL in a statement, and a lone surrogate cannot be sent at all.
            raise SqlRefused("The query contains characters that are not text.", code="sql_unparseable")
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except (ParseError, TokenError):
            raise SqlRefused("The query could not be read as SQL.", code="sql_unparseable") from None
        except RecursionError:
            raise SqlRefused("The query is nested too deeply.", code="sql_too_deep") from None
        if len(statements) != 1:
            raise SqlRefused(
                "Exactly one query may run at a time." if statements else "There is no query to run.",
                code="sql_not_one_statement",
            )
        tree = statements[0]
    while isinstance(tree, exp.Subquery) and not tree.alias and tree.this is not None:
        tree = tree.this  # `(SELECT ...)` is the same query
    if not isinstance(tree, exp.Query):
        raise SqlRefused("Only a query that reads data (SELECT) may run.", code="sql_not_select")
    return tree


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_depth(tree: exp.Query) -> None:
    """Refuse deep nesting in one pass (a chain of 50,000 `1+` is deep without any parenthesis)."""
    depths = {id(tree): 0}
    for node in tree.walk():
        if node is tree:
            continue
        depth = depths[id(node.parent)] + 1
        if depth > MAX_DEPTH:
            raise SqlRefused("The query is nested too deeply.", code="sql_too_deep")
        depths[id(node)] = depth


def _name(identifier: exp.Identifier, dialect: str) -> str:
    """A name as the database compares it: PostgreSQL keeps a quoted name's case, folds the others."""
    if dialect == "postgres" and identifier.quoted:
        return str(identifier.this)
    return str(identifier.this).translate(_ASCII_LOWER)


def _check_syntax(tree: exp.Query, dialect: str) -> None:
    anonymous = _ANONYMOUS_FUNCTIONS.get(dialect, frozenset())
    for node in tree.walk():
        kind = type(node)
        if kind in _ALLOWED_NODES:
            pass  # sqlglot types some operators (AND, OR) as functions: syntax is checked first
        elif isinstance(node, exp.Func):
            if kind not in _ALLOWED_FUNCTIONS:
                raise SqlRefused(
                    f"The query calls a function that is not allowed here ({node.sql_name().lower()}).",
                    code="sql_function",
                )
            if isinstance(node, exp.Anonymous) and node.name.lower() not in anonymous:
                raise SqlRefused(
                    f"The query calls a function that is not allowed here ({node.name.lower()}).",
                    code="sql_function",
                )
        elif kind not in _ALLOWED_NODES:
            raise SqlRefused(
                f"The query uses SQL that is not allowed here ({kind.__name__}).", code="sql_construct"
            )
        if isinstance(node, exp.Select) and (node.args.get("locks") or node.args.get("into")):
            raise SqlRefused("The query may only read data.", code="sql_not_select")
        if isinstance(node, exp.DataType) and node.this not in _ALLOWED_TYPES:
            raise SqlRefused(
                f"The query converts to a type that is not allowed here ({node.sql(dialect)}).",
                code="sql_construct",
            )
        if isinstance(node, exp.Identifier):
            _check_identifier(node)
        if isinstance(node, exp.TableAlias) and node.columns and dialect == "sqlite":
            # SQLite has no `AS t(a, b)`; sqlglot would drop the names and change the query.
            raise SqlRefused("A name may not list column names here.", code="sql_construct")
        if isinstance(node, exp.In) and node.args.get("field") is not None:
            # SQLite's `x IN patients` reads the table itself, outside any view.
            raise SqlRefused("IN must be followed by a list or a subquery.", code="sql_construct")
        if (
            isinstance(node, exp.Column)
            and not node.table
            and isinstance(node.this, exp.Identifier)
            and not node.this.quoted
            and node.name.lower() in _SESSION_WORDS
        ):
            raise SqlRefused(
                f"The query calls a function that is not allowed here ({node.name.lower()}).",
                code="sql_function",
            )


def _check_identifier(node: exp.Identifier) -> None:
    name = str(node.this)
    if name.lower().startswith(RESERVED_PREFIX):
        raise SqlRefused(f"The name {name!r} is reserved.", code="sql_name")
    if not node.quoted and not _PLAIN_NAME.fullmatch(name):
        raise SqlRefused(f"The query uses a name that is not allowed here ({name!r}).", code="sql_name")


def _cte_name(cte: exp.CTE, dialect: str) -> str:
    alias = cte.args.get("alias")
    if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
        return _name(alias.this, dialect)
    return cte.alias_or_name.translate(_ASCII_LOWER)


def _resolves_to_cte(
    table: exp.Table, name: str, dialect: str, names: dict[int, list[str]] | None = None
) -> bool:
    """Whether `name` at this place names a CTE rather than a table, by the rules both databases share.

    A CTE body sees the CTEs before it, and itself only under WITH RECURSIVE; the main query sees
    them all; inner WITHs shadow outer ones. Anything the rules leave unsure (a CTE named before it
    is defined) is read as a table name, which is then refused unless it is an allowed table.
    `name` is the table's name as the database compares it (`_name`): on PostgreSQL `"PG_USER"`
    is not `pg_user`, and reading one for the other would let the catalog through. `names` keeps
    each WITH's CTE names between calls (a query of a thousand CTEs would otherwise take seconds).
    """
    cache = {} if names is None else names
    child: exp.Expr = table
    via_cte: exp.CTE | None = None
    node = table.parent
    while node is not None:
        if isinstance(node, exp.CTE):
            via_cte = node
        if isinstance(node, exp.Query):
            with_ = node.args.get("with_")
            if isinstance(with_, exp.With):
                ctes = with_.expressions
                declared = cache.get(id(with_))
                if declared is None:
                    declared = cache[id(with_)] = [_cte_name(c, dialect) for c in ctes]
                # By identity: sqlglot's == compares whole trees, and two CTEs may look alike.
                index = next((i for i, c in enumerate(ctes) if c is via_cte), -1) if child is with_ else -1
                if index < 0:
                    visible = name in declared
                else:
                    visible = name in declared[:index] or (
                        bool(with_.args.get("recursive")) and declared[index] == name
                    )
                if visible:
                    return True
        child = node
        node = node.parent
    return False


def _resolve_tables(
    tree: exp.Query, dialect: str, catalog: Mapping[str, Sequence[str]], known_tables: frozenset[str]
) -> tuple[list[tuple[exp.Table, str]], set[str]]:
    """Every reference to a warehouse table, with its canonical name; refuses anything else."""
    schemas = SCHEMAS.get(dialect, frozenset())
    known = known_tables | set(catalog)
    ctes: set[str] = set()
    for cte in tree.find_all(exp.CTE):
        name = _cte_name(cte, dialect)
        if name.startswith(RESERVED_PREFIX) or name.lower() in known:
            raise SqlRefused(
                f"A WITH clause may not use the name {name!r}: it is a warehouse table or reserved.",
                code="sql_name",
            )
        alias = cte.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            # Renamed columns would hide which table column each one is.
            raise SqlRefused("A WITH clause may not rename its columns.", code="sql_construct")
        ctes.add(name)
    found: list[tuple[exp.Table, str]] = []
    names: dict[int, list[str]] = {}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SqlRefused("The query reads from something that is not a table.", code="sql_construct")
        name = table.name.lower()
        if table.args.get("catalog") is not None or (
            table.args.get("db") is not None and table.text("db").lower() not in schemas
        ):
            raise SqlRefused(
                f"The query names a table outside the warehouse ({table.sql(dialect)}).",
                code="sql_table",
            )
        alias = table.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            raise SqlRefused("A table may not be given column aliases here.", code="sql_construct")
        if table.args.get("joins"):
            # `FROM (a JOIN b)`: the view put in for `a` would drop the join (and `b` with it).
            raise SqlRefused("Write joins without parentheses around them.", code="sql_construct")
        if table.args.get("db") is None and _resolves_to_cte(
            table, _name(table.this, dialect), dialect, names
        ):
            continue
        if name not in catalog:
            raise SqlRefused(f"You may not read the table {name!r}.", code="sql_table")
        found.append((table, name))
    return found, ctes


def _columns_referenced(
    tree: exp.Query, tables: list[tuple[exp.Table, str]], catalog: Mapping[str, Sequence[str]]
) -> set[str]:
    """The "table.column" for every column name the query uses that one of its tables has.

    An unqualified name counts for every read table that has it, and a star for all their columns:
    over-counting only makes the decision stricter. A query that names no column (`COUNT(*)`,
    `SELECT 1 FROM t`, EXISTS) still reads which rows there are: each table's first column, its
    row identifier, counts for that.
    """
    read = {name for _, name in tables}
    by_name: dict[str, list[str]] = {}
    for name in read:
        for known in catalog[name]:
            by_name.setdefault(known.lower(), []).append(name)
    used: set[str] = {f"{name}.{catalog[name][0]}" for name in read if catalog[name]}
    for column in tree.find_all(exp.Column):
        if isinstance(column.this, exp.Star):
            used.update(f"{name}.{col}" for name in read for col in catalog[name])
            continue
        used.update(f"{name}.{column.name.lower()}" for name in by_name.get(column.name.lower(), []))
    if any(isinstance(star.parent, exp.Select) for star in tree.find_all(exp.Star)):
        used.update(f"{name}.{col}" for name in read for col in catalog[name])
    return used


def _view(name: str, view: TableView) -> exp.Select:
    # Listed column by column, never *: a warehouse may hold columns the semantic layer does not
    # classify, and those must not reach anyone. A plain column keeps its own name without an alias.
    select = exp.select(
        *(
            expression.copy()
            if isinstance(expression, exp.Column) and expression.name == column
            else expression.copy().as_(column)
            for column, expression in view.columns
        )
    ).from_(exp.to_table(name).as_(SOURCE_ALIAS))
    if view.rows is not None:
        select = select.where(view.rows.copy())
    return select


@functools.lru_cache(maxsize=1024)
def _built_view(name: str, view: TableView, dialect: str) -> tuple[exp.Select, str]:
    """A view's SELECT and its text, built once per (shared) view; callers copy the tree."""
    select = _view(name, view)
    return select, select.sql(dialect=dialect)


def view_name(table: str) -> str:
    """The reserved CTE that stands for a table's view."""
    return f"{RESERVED_PREFIX}v_{table}"


def _replace_with_view(table: exp.Table, name: str) -> None:
    """Point the reference at the table's view, under the name the query used for it.

    The name is kept quoted or not as written: on PostgreSQL `FROM labevents AS L` is then referred
    to as `L.x` (folded to l), which a quoted "L" would no longer match.
    """
    alias = table.args.get("alias")
    identifier = alias.this if isinstance(alias, exp.TableAlias) else None
    if not isinstance(identifier, exp.Identifier):
        identifier = table.this
    table.replace(
        exp.Table(this=exp.to_identifier(view_name(name)), alias=exp.TableAlias(this=identifier.copy()))
    )


def _prepend_ctes(tree: exp.Query, ctes: Iterable[tuple[str, exp.Query, bool]]) -> exp.Query:
    """Put the reserved CTEs (name, query it now owns, materialized?) before the query's own.

    Views are NOT MATERIALIZED: each use is planned as if the view were written inline, so the
    database still pushes the query's own filters into the table's indexes (both engines honour it).
    """
    reserved = [
        exp.CTE(
            this=query,
            alias=exp.TableAlias(this=exp.to_identifier(name)),
            **({"materialized": False} if not materialized else {}),
        )
        for name, query, materialized in ctes
    ]
    if not reserved:
        return tree
    with_ = tree.args.get("with_")
    if isinstance(with_, exp.With):
        with_.set("expressions", reserved + list(with_.expressions))
    else:
        tree.set("with_", exp.With(expressions=reserved))
    return tree


def _cap(tree: exp.Query, row_cap: int) -> int:
    """Make the query return at most row_cap + 1 rows (the extra one shows there were more)."""
    wanted = row_cap + 1
    limit = tree.args.get("limit")
    if isinstance(limit, exp.Limit):
        value = limit.expression
        if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
            wanted = min(wanted, int(value.this))
        elif not (isinstance(value, exp.Neg) or value is None):
            raise SqlRefused("A LIMIT must be a whole number.", code="sql_limit")
    offset = tree.args.get("offset")
    if isinstance(offset, exp.Offset):
        value = offset.expression
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            raise SqlRefused("An OFFSET must be a whole number.", code="sql_limit")
    tree.set("limit", exp.Limit(expression=exp.Literal.number(wanted)))
    return wanted


def _verify(text: str, policy: ReadPolicy, ctes: set[str], expected: Mapping[str, str]) -> None:
    """Parse the rendered SQL again: every table it reads must be read inside one of our views (or
    the scope), and every other name it reads from must be a CTE."""
    try:
        statements = sqlglot.parse(text, read=policy.dialect)
    except (ParseError, TokenError, RecursionError):
        raise SqlRefused("The query could not be made safe to run.", code="sql_unsafe") from None
    # parse_one would read only the first of several statements.
    tree = statements[0] if len(statements) == 1 else None
    if not isinstance(tree, exp.Query):
        raise SqlRefused("The query could not be made safe to run.", code="sql_unsafe")
    unsafe = SqlRefused("The query could not be made safe to run.", code="sql_unsafe")
    scopes = {name for name, _ in policy.ctes}
    top = tree.args.get("with_")
    # The reserved CTEs, checked, then not looked into again: their tables are ours to read.
    trusted: set[int] = set()
    for cte in top.expressions if isinstance(top, exp.With) else ():
        name = _cte_name(cte, policy.dialect)
        if not name.startswith(RESERVED_PREFIX):
            continue
        if name in expected:
            if cte.this.sql(dialect=policy.dialect, copy=False) != expected[name]:
                raise unsafe
        elif name not in scopes:
            raise unsafe
        trusted.add(id(cte.this))
    names: dict[int, list[str]] = {}
    for node in tree.walk(prune=lambda n: id(n) in trusted):
        if id(node) in trusted:
            continue
        if isinstance(node, exp.CTE) and _cte_name(node, policy.dialect).startswith(RESERVED_PREFIX):
            if node.parent is not top:
                raise unsafe  # a reserved name anywhere but the top-level WITH
            continue
        if not isinstance(node, exp.Table):
            continue
        name = _name(node.this, policy.dialect) if isinstance(node.this, exp.Identifier) else ""
        if (
            node.args.get("db") is None
            and name in ctes
            and _resolves_to_cte(node, name, policy.dialect, names)
        ):
            continue
        raise unsafe
