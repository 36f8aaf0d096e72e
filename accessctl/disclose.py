"""Disclosure control around the query: what the aggregate and de-identified lanes allow a query to
do before it runs, and what they do to its result afterwards.

Aggregate lane (administrators; research counts): the query must be an aggregate; every group is
sized by the distinct patients behind it (a hidden COUNT(DISTINCT subject_id) added to the query
itself, so the size is exact whatever the measure counts), then small groups are suppressed with
complementary suppression (accessctl/sdc.py). A query that names one patient, groups by patient,
or tests other patients' data in a condition that does not relate to the rows counted is refused.

De-identified rows (research): masks were applied inside the query (profiles, pseudonyms, shifts);
afterwards free text is scrubbed (accessctl/scrub.py), top-coded ages read "90+", and the rows are
made k-anonymous and l-diverse over their quasi-identifiers, with a re-identification risk estimate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlglot import exp

from accessctl.models import MaskingClass
from accessctl.profiles import masking_class_of
from hisplatform.warehouse.schema import tables as schema_tables

# Hidden output columns carrying each group's distinct patients (one per patient-bearing source).
PATIENTS_PREFIX: Final = "__patients_"
# Columns whose literal values name one patient, one stay or one record.
_NAMING_COLUMNS: Final = frozenset(
    {
        "subject_id", "hadm_id", "stay_id", "transfer_id", "visit_id", "mrn", "national_id",
        "note_id", "row_id", "contact_id", "specimen_id", "staff_id", "author_staff_id",
    }
)  # fmt: skip
# Aggregates sqlglot does not type as such (SQLite's and PostgreSQL's own names).
_ANONYMOUS_AGGREGATES: Final = frozenset({"total", "string_agg", "group_concat", "percentile_cont"})
# Output names that say a column is a share of a total: hidden cells could be derived from it.
_SHARE_WORDS: Final = ("percent", "pct", "share", "rate", "ratio", "proportion", "fraction")


class DisclosureRefused(Exception):
    """The query cannot be answered in this lane; `message` says why and what to ask instead."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- Reading the query -------------------------------------------------------------------------------


def _select_of(query: exp.Expr) -> exp.Select | None:
    while isinstance(query, exp.SetOperation):
        query = query.this
    if isinstance(query, exp.Subquery):
        return _select_of(query.this)
    return query if isinstance(query, exp.Select) else None


def _ctes(tree: exp.Expr) -> dict[str, exp.Expr]:
    return {cte.alias_or_name.lower(): cte.this for cte in tree.find_all(exp.CTE)}


def _sources(select: exp.Select) -> list[exp.Expr]:
    found: list[exp.Expr] = []
    from_ = select.args.get("from_")
    if isinstance(from_, exp.From) and from_.this is not None:
        found.append(from_.this)
    for join in select.args.get("joins") or ():
        if isinstance(join, exp.Join) and join.this is not None:
            found.append(join.this)
    return found


def _source_name(source: exp.Expr) -> str:
    return source.alias_or_name.lower()


def _own(node: exp.Expr, select: exp.Select) -> bool:
    """Whether `node` belongs to `select` itself, not to a subquery inside it."""
    return node.find_ancestor(exp.Select) is select


def _is_aggregate_call(node: exp.Expr) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() in _ANONYMOUS_AGGREGATES


def _aggregates(select: exp.Select) -> bool:
    if select.args.get("group") is not None:
        return True
    for projection in select.expressions:
        for node in projection.walk():
            if _is_aggregate_call(node) and _own(node, select) and node.find_ancestor(exp.Window) is None:
                return True
    return False


@dataclass
class _Resolver:
    """Answers, for a query, what its sources are and which output columns come from which table columns."""

    tree: exp.Expr
    catalog: Mapping[str, Sequence[str]]
    ctes: dict[str, exp.Expr] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ctes = _ctes(self.tree)

    def derived(self, source: exp.Expr) -> exp.Expr | None:
        """The query behind a derived source (subquery or CTE), or None for a warehouse table."""
        if isinstance(source, exp.Subquery):
            inner: exp.Expr | None = source.this
            return inner
        if isinstance(source, exp.Table):
            return self.ctes.get(source.name.lower())
        return None

    def outputs(self, query: exp.Expr) -> list[tuple[str, frozenset[str]]]:
        """(name, the "table.column" it is a bare copy of, or empty) for each output column."""
        select = _select_of(query)
        if select is None:
            return []
        found: list[tuple[str, frozenset[str]]] = []
        for projection in select.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                qualifier = projection.table.lower() if isinstance(projection, exp.Column) else ""
                for source in _sources(select):
                    if not qualifier or _source_name(source) == qualifier:
                        found.extend(self.source_outputs(source))
                continue
            inner = projection.unalias() if isinstance(projection, exp.Alias) else projection
            origin = self.origin(inner, select) if isinstance(inner, exp.Column) else frozenset()
            found.append((projection.alias_or_name.lower(), origin))
        return found

    def source_outputs(self, source: exp.Expr) -> list[tuple[str, frozenset[str]]]:
        query = self.derived(source)
        if query is not None:
            return self.outputs(query)
        if isinstance(source, exp.Table):
            name = source.name.lower()
            return [(column, frozenset({f"{name}.{column}"})) for column in self.catalog.get(name, ())]
        return []

    def origin(self, column: exp.Column, select: exp.Select) -> frozenset[str]:
        """The table column a column reference is a bare copy of (empty when unknown)."""
        name = column.name.lower()
        qualifier = column.table.lower()
        for source in _sources(select):
            if qualifier and _source_name(source) != qualifier:
                continue
            for output, origin in self.source_outputs(source):
                if output == name:
                    return origin
        return frozenset()

    def exposes_patient(self, source: exp.Expr, key: str = "subject_id") -> bool:
        """Whether the source has a `key` column that really is a table's `key` (a column renamed to
        subject_id is not a patient, and would size groups wrongly)."""
        return any(
            name == key and origin and all(o.endswith(f".{key}") for o in origin)
            for name, origin in self.source_outputs(source)
        )


def reads_patient_tables(
    query: exp.Expr, patient_tables: frozenset[str], ctes: Mapping[str, exp.Expr]
) -> bool:
    for table in query.find_all(exp.Table):
        name = table.name.lower()
        if name in patient_tables:
            return True
        body = ctes.get(name)
        if body is not None and body is not query and reads_patient_tables(body, patient_tables, ctes):
            return True
    return False


def is_aggregate_query(tree: exp.Query) -> bool:
    """Whether the query answers with groups (itself or a query it only passes through)."""
    resolver = _Resolver(tree, {})
    return _aggregating_select(tree, resolver) is not None


def _aggregating_select(query: exp.Expr, resolver: _Resolver) -> exp.Select | None:
    """The select that aggregates, reached from the outermost through pass-through selects."""
    select = _select_of(query)
    if select is None or isinstance(query, exp.SetOperation):
        return None
    if _aggregates(select):
        return select
    sources = _sources(select)
    if len(sources) != 1:
        return None
    inner = resolver.derived(sources[0])
    if inner is None:
        return None
    passes = all(
        isinstance(p, exp.Star | exp.Column)
        or (isinstance(p, exp.Alias) and isinstance(p.unalias(), exp.Column))
        for p in select.expressions
    )
    return _aggregating_select(inner, resolver) if passes else None


# --- The aggregate lane ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AggregateShape:
    """What the prepared query returns: for each output column (hidden ones aside), whether it is a
    group ("dimension"), a number of patients ("patient_count") or another statistic ("measure");
    and whether totals or shares may be present."""

    kinds: tuple[str, ...]
    margins: bool
    sized: bool  # the hidden patient counts were added (False: no patient table is read)


_NOT_AGGREGATE: Final = (
    "Only counts and other statistics over groups of patients can be shown here, never rows about "
    "patients. Ask for a number, e.g. 'how many admissions per department last month'."
)


def prepare_aggregate(
    tree: exp.Query, *, catalog: Mapping[str, Sequence[str]], patient_tables: frozenset[str]
) -> AggregateShape:
    """Check the query for the aggregate lane and add the hidden patient counts to it (in place).

    Raises DisclosureRefused for a query that is not an aggregate, names one patient, groups by
    patient, or conditions on patient data that does not relate to the rows it counts.
    """
    resolver = _Resolver(tree, catalog)
    if isinstance(tree, exp.SetOperation):
        raise DisclosureRefused(
            "Combine the groups in one query (no UNION) so that small groups can be checked.",
            code="aggregate_union",
        )
    _refuse_isolating(tree)
    refuse_ordinals(tree)
    target = _aggregating_select(tree, resolver)
    if target is None:
        raise DisclosureRefused(_NOT_AGGREGATE, code="aggregate_only")
    _refuse_unrelated_subqueries(tree, resolver, patient_tables)
    _refuse_filters_on_statistics(tree, target, resolver)
    _check_tables(tree)
    _check_statistics(target)
    _check_order(target)
    # Groups are sized by the people behind them: patients, or staff where no patient is read.
    person = "subject_id"
    sources = [s for s in _sources(target) if resolver.exposes_patient(s)]
    if not sources:
        person = "staff_id"
        sources = [s for s in _sources(target) if resolver.exposes_patient(s, person)]
    if not sources:
        if reads_patient_tables(tree, patient_tables, resolver.ctes):
            raise DisclosureRefused(
                "This would list or count codes, units or other entries by whether patients have them, "
                "which cannot be checked for small groups. Ask for numbers of patients, admissions or "
                "tests instead, e.g. 'number of patients per diagnosis'.",
                code="aggregate_unsized",
            )
        return AggregateShape(_target_kinds(target, resolver), margins=False, sized=False)
    # _check_tables made the query one SELECT: its own columns are the answer's.
    kinds = _target_kinds(target, resolver)
    if person != "subject_id":
        kinds = tuple("measure" if kind == "patient_count" else kind for kind in kinds)
    names = [f"{PATIENTS_PREFIX}{i}" for i in range(len(sources))]
    for source, name in zip(sources, names, strict=True):
        key = exp.column(person, table=source.alias_or_name)
        target.append("expressions", exp.alias_(exp.Count(this=exp.Distinct(expressions=[key])), name))
    output_names = tuple(name for name, _ in resolver.outputs(tree) if not name.startswith(PATIENTS_PREFIX))
    margins = _margins(tree, target, output_names)
    if margins and (tree.args.get("limit") is not None or tree.args.get("offset") is not None):
        # The total would still count the groups the limit cut off, and none of them is hidden.
        raise DisclosureRefused(
            "Shares of a total cannot be combined with LIMIT here; ask for all the groups.",
            code="aggregate_shape",
        )
    return AggregateShape(kinds, margins=margins, sized=True)


def _constant(node: exp.Expr | None) -> bool:
    """A value the query writes itself (10001, 10000 + 1, '10001'): no column, no subquery."""
    if node is None:
        return False
    return node.find(exp.Column, exp.Subquery, exp.Select) is None


def _names_someone(node: exp.Expr | None) -> bool:
    """Whether an expression reads a column that names a patient, stay or record (subject_id + 0,
    CAST(mrn AS TEXT), COALESCE(hadm_id, 0) ...)."""
    if node is None:
        return False
    return any(c.name.lower() in _NAMING_COLUMNS for c in node.find_all(exp.Column))


def _refuse_isolating(tree: exp.Query) -> None:
    comparisons = (
        exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Is, exp.NullSafeEQ,
        exp.NullSafeNEQ, exp.In, exp.Between, exp.Glob,
    )  # fmt: skip
    for node in tree.find_all(*comparisons):
        left, right = node.this, node.args.get("expression")
        if isinstance(node, exp.Between):
            named, values = _names_someone(left), [node.args.get("low"), node.args.get("high")]
        elif isinstance(node, exp.In):
            named, values = _names_someone(left), list(node.expressions)
            query = node.args.get("query")
            inner = _select_of(query) if query is not None else None
            if named and inner is not None and not _sources(inner):
                values.append(exp.Literal.number(0))  # IN (SELECT 10001): a list written out
        else:
            named = _names_someone(left) or _names_someone(right)
            values = [left, right]
        if named and any(_constant(v) and not isinstance(v, exp.Null) for v in values):
            raise DisclosureRefused(
                "This names one patient, admission or record; statistics here are about groups of "
                "patients only.",
                code="isolating_query",
            )
    for group in tree.find_all(exp.Group):
        for column in group.find_all(exp.Column):
            if column.name.lower() in _NAMING_COLUMNS:
                raise DisclosureRefused(
                    "Grouping by patient, admission or record would show one patient per group; "
                    "group by department, unit, day or another category instead.",
                    code="isolating_query",
                )


def _refuse_unrelated_subqueries(
    tree: exp.Query, resolver: _Resolver, patient_tables: frozenset[str]
) -> None:
    """A subquery over patient data may only choose which rows are counted (`x IN (SELECT ...)`).
    EXISTS, a scalar subquery or `1 IN (SELECT ...)` turn a count into a yes/no answer about whoever
    their condition singles out, correlated or not (a correlation can be written that means nothing)."""
    refused = DisclosureRefused(
        "A condition on patients' data that does not choose the rows counted could single out a patient. "
        "Put the condition on the rows themselves (e.g. 'admissions of patients with heart failure').",
        code="aggregate_unrelated_condition",
    )
    for node in tree.find_all(exp.Exists, exp.Subquery, exp.In):
        if isinstance(node, exp.In):
            query = node.args.get("query")
            inner = _select_of(query) if query is not None else None
            if inner is None:
                continue
            # A cohort: a column IN (SELECT a column FROM ... WHERE ...), nothing computed either side
            # (age - 60 IN (SELECT COUNT(...)) would carry a count up as a group's label).
            bare = isinstance(node.this, exp.Column) and len(inner.expressions) == 1
            projected = inner.expressions[0].unalias() if bare else None
            if not (
                bare
                and isinstance(projected, exp.Column)
                and inner.args.get("group") is None
                and inner.args.get("having") is None
                and not any(_is_aggregate_call(n) for n in inner.expressions[0].walk())
            ):
                raise refused
            continue
        if isinstance(node, exp.Subquery) and (
            node.alias or isinstance(node.parent, exp.In | exp.From | exp.Join | exp.CTE | exp.Exists)
        ):
            continue  # a derived table, or IN (...): checked above
        body = node.this
        if body is not None and reads_patient_tables(body, patient_tables, resolver.ctes):
            raise refused


# Aggregates whose value is one row's value (MIN, MAX, ANY_VALUE), or many rows' values strung
# together, and window functions that rank or reach a neighbour row.
_ROW_REVEALING: Final[tuple[type[exp.Expr], ...]] = (
    exp.Min, exp.Max, exp.AnyValue, exp.GroupConcat, exp.ArrayAgg, exp.CountIf, exp.FirstValue,
    exp.LastValue, exp.NthValue, exp.Lag, exp.Lead, exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile,
    exp.PercentRank, exp.CumeDist,
)  # fmt: skip
_MAX_DIMENSIONS: Final = 4
_ROW_REVEALING_NAMES: Final = frozenset({"group_concat", "string_agg", "array_agg", "json_group_array"})
# Inside an aggregate these pick out some rows of the group: the statistic would then be about
# them, not the group whose size was checked.
_CONDITIONAL: Final[tuple[type[exp.Expr], ...]] = (
    exp.Case, exp.If, exp.Nullif, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike,
    exp.In, exp.Between, exp.Is, exp.Glob, exp.Subquery, exp.Exists, exp.Select, exp.And, exp.Or, exp.Not,
)  # fmt: skip


def _check_statistics(target: exp.Select) -> None:
    """Each statistic must be about the whole group: counts, sums, averages, spreads and shares of a
    total, never one member's value, members' values strung together, or a subset of members."""
    if target.args.get("having") is not None:
        raise DisclosureRefused(
            "Filtering groups by their statistics (HAVING) shows which groups are small; ask for all "
            "the groups instead.",
            code="aggregate_having",
        )
    for projection in target.expressions:
        for node in projection.walk():
            named = isinstance(node, exp.Anonymous) and node.name.lower() in _ROW_REVEALING_NAMES
            if isinstance(node, _ROW_REVEALING) or named:
                raise DisclosureRefused(
                    "Minimum, maximum, first, last and listed values show single patients' values; ask "
                    "for counts, sums, averages or medians.",
                    code="aggregate_row_value",
                )
            if isinstance(node, exp.Window):
                spec = [node.args.get(part) for part in ("partition_by", "order", "spec")]
                if any(spec) or not _is_aggregate_call(node.this):
                    raise DisclosureRefused(
                        "Only totals over the groups (SUM(...) OVER ()) may be computed across groups here.",
                        code="aggregate_row_value",
                    )
            if _is_aggregate_call(node) and node.find_ancestor(exp.Window) is None:
                for inner in node.iter_expressions():
                    if inner.find(*_CONDITIONAL) is not None:
                        raise DisclosureRefused(
                            "A statistic over only some members of a group (CASE, IIF, a condition inside "
                            "COUNT or SUM) is not checked for small numbers; put the condition in WHERE "
                            "or group by it instead.",
                            code="aggregate_conditional",
                        )


# Inside a statistic: arithmetic and date arithmetic over columns. Integer division, rounding, signs
# and casts turn a value into 0 or 1 (age / 90), so a sum of them would count a few members.
_STATISTIC_ARGUMENT: Final[tuple[type[exp.Expr], ...]] = (
    exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Add, exp.Sub, exp.Mul, exp.Paren, exp.Neg,
    exp.Identifier, exp.Star, exp.Distinct, exp.Coalesce, exp.Extract, exp.Var, exp.DateDiff,
    exp.TimestampDiff, exp.DatetimeDiff, exp.TimeToUnix, exp.TsOrDsToTimestamp, exp.TimeStrToTime,
    exp.StrToTime, exp.Interval, exp.DataType,
)  # fmt: skip
_ARGUMENT_FUNCTIONS: Final = frozenset({"julianday", "unixepoch", "date_part"})
# A cast to floating point keeps every value (PostgreSQL's lengths of stay: CAST(EXTRACT(EPOCH ...) AS
# DOUBLE PRECISION)); casts to integers or text are steps and stay refused.
_WIDENING: Final = frozenset({exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT})
# Around the statistics: scaling by a constant, ratios of statistics, shares of a total.
_AROUND_STATISTICS: Final[tuple[type[exp.Expr], ...]] = (
    exp.Literal, exp.Paren, exp.Mul, exp.Div, exp.Cast, exp.Round, exp.Window, exp.DataType, exp.Alias,
    exp.Identifier, exp.Var,
)  # fmt: skip


def check_measure(expression: exp.Expr, select: exp.Select, resolver: _Resolver) -> None:
    """A statistic the size check covers: aggregates over the whole group, scaled or divided by each
    other, never shifted by a constant (COUNT(...) - 2 turns a hidden count into a sign, a division by
    zero or an order) nor computed over only some members."""
    refused = DisclosureRefused(
        "Statistics here are counts, sums, averages or medians of columns, or ratios and shares of them; "
        "this one could pick out or test a few members of a group.",
        code="aggregate_conditional",
    )
    for node in expression.walk():
        inside = next((a for a in _ancestors(node, expression) if _is_aggregate_call(a)), None)
        if _is_aggregate_call(node):
            if isinstance(node, exp.Count):
                _check_count(node, select, resolver, refused)
            continue
        if inside is None:
            if not isinstance(node, _AROUND_STATISTICS) or (isinstance(node, exp.Literal) and node.is_string):
                raise refused
            continue
        if isinstance(inside, exp.Count):
            continue  # checked by _check_count
        if isinstance(node, exp.Column) and node.name.lower() in _NAMING_COLUMNS:
            raise refused
        if isinstance(node, exp.Div):
            divisor = node.expression
            # A float constant only: an integer division is a step (age / 90 is 1 from 90 on).
            if not (isinstance(divisor, exp.Literal) and "." in divisor.name):
                raise refused
            continue
        named = isinstance(node, exp.Anonymous) and node.name.lower() in _ARGUMENT_FUNCTIONS
        widening = isinstance(node, exp.Cast) and node.to.this in _WIDENING
        if not (isinstance(node, _STATISTIC_ARGUMENT) or named or widening):
            raise refused


def _check_count(node: exp.Count, select: exp.Select, resolver: _Resolver, refused: Exception) -> None:
    """COUNT(*), or COUNT of a column that is never empty: COUNT(dod) would count only the dead."""
    argument = node.this.expressions[0] if isinstance(node.this, exp.Distinct) else node.this
    if isinstance(node.this, exp.Distinct) and len(node.this.expressions) != 1:
        raise refused
    if isinstance(argument, exp.Star) or argument is None:
        return
    if not isinstance(argument, exp.Column):
        raise refused
    origin = resolver.origin(argument, select)
    if not origin or any(_nullable(column) for column in origin):
        raise refused


def _nullable(qualified: str) -> bool:
    table, column = qualified.split(".", 1)
    schema = schema_tables().get(table)
    found = next((c for c in schema.columns if c.name == column), None) if schema is not None else None
    return found is None or found.nullable


def _check_tables(tree: exp.Query) -> None:
    """One SELECT over the warehouse's tables: every group is then sized by the tables it counts.
    Derived tables and CTEs could pass one table's patients up beside another table's rows."""
    if not isinstance(tree, exp.Select) or tree.args.get("with_") is not None:
        raise DisclosureRefused(_ONE_SELECT, code="aggregate_shape")
    ctes = _ctes(tree)
    for source in _sources(tree):
        if not isinstance(source, exp.Table) or source.name.lower() in ctes:
            raise DisclosureRefused(_ONE_SELECT, code="aggregate_shape")


_ONE_SELECT: Final = (
    "Statistics here come from one SELECT over the tables, grouped: no subquery or CTE in FROM. Ask "
    "e.g. 'SELECT careunit, COUNT(DISTINCT subject_id) FROM transfers GROUP BY careunit'."
)


def _check_order(target: exp.Select) -> None:
    """ORDER BY names an output column; an expression over the counts could rank a hidden one
    against the shown ones and give its exact size."""
    order = target.args.get("order")
    if order is None:
        return
    group = target.args.get("group")
    keys = {g.sql() for g in group.expressions} if isinstance(group, exp.Group) else set()
    named = {
        p.alias_or_name.lower()
        for p in target.expressions
        if (p.unalias() if isinstance(p, exp.Alias) else p).sql() in keys
    }
    for ordered in order.expressions:
        key = ordered.this
        # Groups only: an order by the statistics ranks a hidden group against shown ones.
        if key.sql() in keys or (isinstance(key, exp.Column) and not key.table and key.name.lower() in named):
            continue
        raise DisclosureRefused(
            "Sort by the group columns; sorting by the statistics would rank the hidden groups.",
            code="aggregate_order",
        )


def _refuse_filters_on_statistics(tree: exp.Query, target: exp.Select, resolver: _Resolver) -> None:
    """The selects around the aggregating one may pick and order its columns, not filter its groups
    (WHERE t.patients = 3 would list exactly the small ones)."""
    select = _select_of(tree)
    while select is not None and select is not target:
        for clause in ("where", "having", "group"):
            if select.args.get(clause) is not None:
                raise DisclosureRefused(
                    "Filter the rows before they are counted, not the counts afterwards.",
                    code="aggregate_having",
                )
        inner = resolver.derived(_sources(select)[0])
        select = _select_of(inner) if inner is not None else None


def _target_kinds(select: exp.Select, resolver: _Resolver) -> tuple[str, ...]:
    group = select.args.get("group")
    keys = {g.sql() for g in group.expressions} if isinstance(group, exp.Group) else set()
    for key in group.expressions if isinstance(group, exp.Group) else ():
        # Column references, not names: t.careunit || v.careunit is two columns under one name.
        if len({(c.table.lower(), c.name.lower()) for c in key.find_all(exp.Column)}) > 1:
            # a || b || c as one group column lists every combination, a row per patient.
            raise DisclosureRefused(
                "Each group column may be made from one column only (a day from a date, say); group by "
                "the columns separately.",
                code="aggregate_shape",
            )
    if len(keys) > _MAX_DIMENSIONS:
        raise DisclosureRefused(
            f"Group by at most {_MAX_DIMENSIONS} columns: more make groups of one patient each.",
            code="aggregate_shape",
        )
    kinds: list[str] = []
    for projection in select.expressions:
        inner = projection.unalias() if isinstance(projection, exp.Alias) else projection
        name = projection.alias_or_name.lower()
        # A group column is the grouped expression itself, written out (never just named alike).
        if inner.sql() in keys:
            kinds.append("dimension")
            continue
        # Inside a window too: SUM(subject_id) OVER () reads one row's value where it is not summarised.
        loose = [
            c
            for c in inner.find_all(exp.Column)
            if _own(c, select)
            # Summarised by an aggregate of its own, not by a window's function (SUM(x) OVER ()
            # reads x row by row; SUM(COUNT(x)) OVER () sums the groups' counts).
            and not any(
                _is_aggregate_call(a) and not isinstance(a.parent, exp.Window) for a in _ancestors(c, inner)
            )
        ]
        if loose:
            raise DisclosureRefused(
                f"The column {name!r} is neither a group nor a statistic over the group, so it would show "
                "one patient's value; group by it or summarise it (count, average, ...).",
                code="aggregate_loose_column",
            )
        check_measure(inner, select, resolver)
        kinds.append("patient_count" if _counts_patients(inner, select, resolver) else "measure")
    return tuple(kinds)


def _counts_patients(expression: exp.Expr, select: exp.Select, resolver: _Resolver) -> bool:
    """COUNT(DISTINCT x.subject_id) over a table's own subject_id: a count one patient changes by at
    most one."""
    if not isinstance(expression, exp.Count) or not isinstance(expression.this, exp.Distinct):
        return False
    counted = expression.this.expressions
    if len(counted) != 1 or not isinstance(counted[0], exp.Column):
        return False
    origin = resolver.origin(counted[0], select)
    return bool(origin) and all(o.endswith(".subject_id") for o in origin)


def _ancestors(node: exp.Expr, stop: exp.Expr) -> Iterable[exp.Expr]:
    current = node.parent
    while current is not None:
        yield current
        if current is stop:
            return
        current = current.parent


def _margins(tree: exp.Expr, target: exp.Select, names: tuple[str, ...]) -> bool:
    """Whether the result can carry totals or shares: then a lone hidden cell could be derived."""
    if any(word in name for name in names for word in _SHARE_WORDS):
        return True
    for select in tree.find_all(exp.Select):
        for projection in select.expressions:
            if projection.find(exp.Window) is not None or projection.find(exp.Subquery) is not None:
                return True
            if projection.find(exp.Div) is not None and select is not target:
                return True
    return False


def hidden_columns(columns: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(columns) if name.lower().startswith(PATIENTS_PREFIX)]


# --- De-identified rows ------------------------------------------------------------------------------


def check_scrubbed_text(tree: exp.Query, scrubbed: frozenset[str], *, shown: bool = True) -> None:
    """Scrubbed free text may be shown, never searched, compared, cut or sorted: the scrubbing happens
    after the query, so anything the query does with the raw text could reveal what is scrubbed.
    `shown`: the query returns rows (an aggregate cannot show text at all)."""
    names = {column.split(".", 1)[1] for column in scrubbed}
    if not names:
        return
    outer = tree if isinstance(tree, exp.Select) and shown else None
    refused = DisclosureRefused(
        "Clinical notes can be shown here (with identifiers scrubbed), but not searched, filtered, "
        "sorted or cut inside the query. Ask for the notes themselves.",
        code="scrubbed_text_used",
    )
    for column in tree.find_all(exp.Column):
        if column.name.lower() not in names:
            continue
        holder: exp.Expr = column.parent if isinstance(column.parent, exp.Alias) else column
        if outer is None or holder.parent is not outer or holder.arg_key != "expressions":
            raise refused
    for node in tree.find_all(exp.Ordered, exp.Group):
        expressions = [node.this] if isinstance(node, exp.Ordered) else list(node.expressions)
        if any(isinstance(e, exp.Literal) for e in expressions):
            raise refused  # by position: could be the text


@dataclass(frozen=True)
class RowColumns:
    """For each output column of a row result: the table column it is a bare copy of, if any, and the
    masking class of the columns it is computed from."""

    bare: list[str | None]
    classes: list[frozenset[str]]
    patient_rows: bool  # the rows are records of patients (not dictionary entries)


_ROWS_ONLY: Final = (
    "Research rows come straight from the tables: no UNION or DISTINCT, no subquery or CTE in FROM, "
    "no subqueries, statistics or windows among the columns. Ask for counts separately."
)


def check_research_rows(tree: exp.Query) -> None:
    """The shape of query whose every output column the disclosure step can trace to a table column,
    so that nothing it shows escapes scrubbing, k-anonymity or the count of patients."""
    if not isinstance(tree, exp.Select) or tree.args.get("distinct") is not None:
        # DISTINCT would fold one patient's rows into a crowd that k-anonymity counts as many.
        raise DisclosureRefused(_ROWS_ONLY, code="research_rows_shape")
    ctes = _ctes(tree)
    for source in _sources(tree):
        if not isinstance(source, exp.Table) or source.name.lower() in ctes:
            raise DisclosureRefused(_ROWS_ONLY, code="research_rows_shape")
    for projection in tree.expressions:
        for node in projection.walk():
            if isinstance(node, exp.Subquery | exp.Select | exp.Exists | exp.Window) or _is_aggregate_call(
                node
            ):
                raise DisclosureRefused(_ROWS_ONLY, code="research_rows_shape")


def row_columns(tree: exp.Query, *, catalog: Mapping[str, Sequence[str]]) -> RowColumns:
    """Read before the query runs (and before the hidden columns are added): each output column, a
    star expanded in place, with the table column it copies and the classes of those it is made from."""
    resolver = _Resolver(tree, catalog)
    select = _select_of(tree)
    classes: list[frozenset[str]] = []
    bare: list[str | None] = []
    for projection in select.expressions if select is not None else []:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            qualifier = projection.table.lower() if isinstance(projection, exp.Column) else ""
            for source in _sources(select) if select is not None else []:
                if qualifier and _source_name(source) != qualifier:
                    continue
                for _, origin in resolver.source_outputs(source):
                    bare.append(next(iter(origin)) if len(origin) == 1 else None)
                    classes.append(frozenset(filter(None, (_class_of(c) for c in origin))))
            continue
        inner = projection.unalias() if isinstance(projection, exp.Alias) else projection
        found: set[str] = set()
        assert select is not None
        for column in inner.find_all(exp.Column):
            found |= resolver.origin(column, select)
        bare.append(next(iter(found)) if isinstance(inner, exp.Column) and len(found) == 1 else None)
        # A computed column (age + 0, dob || postcode) is as identifying as what it is made from.
        classes.append(frozenset(filter(None, (_class_of(c) for c in found))))
    # Rows that read people's tables anywhere (a filter included) are rows about people.
    people = {name for name, columns in catalog.items() if "subject_id" in columns} | {"staff"}
    patient_rows = reads_patient_tables(tree, frozenset(people), resolver.ctes)
    return RowColumns(bare, classes, patient_rows)


def _class_of(qualified: str) -> str | None:
    table, column = qualified.split(".", 1)
    if qualified in _SEX_COLUMNS:
        return "sex"
    if qualified in _DIAGNOSIS_COLUMNS:
        return "diagnosis"
    if qualified in _SENSITIVE_COLUMNS:
        return "sensitive"
    if qualified in _STAFF_ATTRIBUTES:
        return "staff_attribute"
    return masking_class_of(table, column)


_SEX_COLUMNS: Final = frozenset({"patients.gender"})
# A staff member is recognised by role and department: quasi-identifiers of staff rows.
_STAFF_ATTRIBUTES: Final = frozenset({"staff.role", "staff.department_id", "care_team.team_role"})
_DIAGNOSIS_COLUMNS: Final = frozenset({"diagnoses_icd.icd_code", "procedures_icd.icd_code"})
# Attributes a person would not want linked to them: l-diversity is checked on these.
_SENSITIVE_COLUMNS: Final = frozenset(
    {
        "d_icd_diagnoses.long_title",
        "d_icd_procedures.long_title",
        "prescriptions.drug",
        "microbiologyevents.org_name",
        "labevents.flag",
    }
)
# Masking classes (and the two above) that are quasi-identifiers, and how sdc.py generalises them.
QUASI_IDENTIFIERS: Final = {
    MaskingClass.AGE.value: "AGE",
    MaskingClass.BIRTH_DATE.value: "DATE",
    MaskingClass.EVENT_DATE.value: "DATE",
    MaskingClass.POSTCODE.value: "POSTCODE",
    "sex": "SEX",
    "diagnosis": "DIAGNOSIS",
    "staff_attribute": "CATEGORY",
}


def top_coded(value: Any) -> Any:
    """An age the profile top-coded at 90, as people read it."""
    if isinstance(value, int | float) and value >= 90:
        return "90+"
    return value


# The patient of each row, carried hidden through a de-identified query: as the view shows it (the
# project pseudonym), so nothing the query could do with it reveals more than the rows already do.
# The pipeline counts patients (not rows) per k-anonymity class by it, and maps it back to the real
# patient, server-side, for the audit and the note scrubber's deny-list. Removed from every result.
SUBJECT_PREFIX: Final = "__subject_"


def attach_subjects(tree: exp.Query, *, patient_tables: frozenset[str]) -> list[str]:
    """Add a hidden copy of the patient column of each patient table the outermost select reads."""
    if not isinstance(tree, exp.Select) or tree.args.get("distinct") is not None:
        return []
    ctes = _ctes(tree)
    names: list[str] = []
    for index, source in enumerate(_sources(tree)):
        if not isinstance(source, exp.Table) or source.name.lower() in ctes:
            continue
        if source.name.lower() not in patient_tables:
            continue
        name = f"{SUBJECT_PREFIX}{index}"
        tree.append("expressions", exp.alias_(exp.column("subject_id", table=source.alias_or_name), name))
        names.append(name)
    return names


def refuse_ordinals(tree: exp.Query) -> None:
    """Column positions could reach the hidden columns a star carries; names cannot."""
    for node in tree.find_all(exp.Ordered, exp.Group):
        expressions = [node.this] if isinstance(node, exp.Ordered) else list(node.expressions)
        if any(isinstance(e, exp.Literal) and e.is_int for e in expressions):
            raise DisclosureRefused(
                "Refer to columns by name, not by position, in ORDER BY and GROUP BY here.",
                code="ordinal_reference",
            )


# Keys a researcher sees as pseudonyms (a string like 'P-3f9a...'): a number typed for one names a
# patient by the hospital's own identifier, which research never uses.
_PSEUDONYMISED_KEYS: Final = frozenset({"subject_id", "hadm_id", "stay_id", "transfer_id", "visit_id"})
_IDENTIFIERS: Final = frozenset({"mrn", "national_id"})


def refuse_named_patients(tree: exp.Query) -> None:
    """De-identified lane: patients are named by project pseudonym only."""
    for node in tree.find_all(exp.EQ, exp.In, exp.NEQ, exp.Between, exp.GT, exp.GTE, exp.LT, exp.LTE):
        columns = [c for c in (node.this, node.args.get("expression")) if isinstance(c, exp.Column)]
        values = [node.args.get("expression"), node.this, node.args.get("low"), node.args.get("high")]
        values += list(node.expressions)
        literals = [v for v in values if isinstance(v, exp.Literal | exp.Neg)]
        for column in columns:
            name = column.name.lower()
            numeric = any(not (isinstance(v, exp.Literal) and v.is_string) for v in literals)
            if (name in _PSEUDONYMISED_KEYS and numeric) or (name in _IDENTIFIERS and literals):
                raise DisclosureRefused(
                    "Research answers name patients and admissions by their project pseudonyms (such as "
                    "'P-3f9a0c1d2e4b'), never by the hospital's own numbers or identifiers.",
                    code="isolating_query",
                )
