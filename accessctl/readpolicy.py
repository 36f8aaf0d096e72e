"""From a Decision to the guard's ReadPolicy: each readable table as a view with its row scope and masks."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from django.conf import settings
from sqlglot import exp

from accessctl.decision import Decision
from accessctl.masks import mask_expression
from accessctl.rewrite import ReadPolicy, TableView
from accessctl.scope import SCOPE_CTE, ScopeSpec, in_scope, scope_query
from accessctl.special import CODED_TABLES, special_rows
from accessctl.subjects import Subject
from hisplatform.warehouse.executor import readable_tables
from hisplatform.warehouse.schema import IDENTITY_TABLES, tables
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.semantic import semantic_layer

# The tables a warehouse exposes change only when it is reloaded; asking its catalog on every
# question would cost a query each time, so the answer is kept this long.
_CATALOG_SECONDS: Final = 60.0


@dataclass(frozen=True)
class Catalog:
    columns: Mapping[str, tuple[str, ...]]  # readable warehouse tables of our schema -> their columns

    def patient_tables(self) -> frozenset[str]:
        return frozenset(name for name, cols in self.columns.items() if "subject_id" in cols)


_CATALOGS: dict[str, tuple[float, Catalog]] = {}
_CATALOG_LOCK = threading.Lock()


def catalog_of(target: WarehouseTarget) -> Catalog:
    key = target.url
    with _CATALOG_LOCK:
        cached = _CATALOGS.get(key)
        if cached is not None and time.monotonic() - cached[0] < _CATALOG_SECONDS:
            return cached[1]
    present = readable_tables(target)
    schema = tables()
    catalog = Catalog({name: table.column_names for name, table in schema.items() if name in present})
    with _CATALOG_LOCK:
        _CATALOGS[key] = (time.monotonic(), catalog)
    return catalog


def forget_catalogs() -> None:
    with _CATALOG_LOCK:
        _CATALOGS.clear()


# Built once: views copy what they use.
_IN_SCOPE: Final = in_scope()


@functools.lru_cache(maxsize=256)
def _mask(kind: str, column: str, dialect: str, column_type: str) -> exp.Expr:
    return mask_expression(kind, column, dialect, column_type)


@functools.lru_cache(maxsize=4096)
def _table_view(
    layer_id: int,
    name: str,
    columns: tuple[str, ...],
    allowed: frozenset[str],
    masks: tuple[tuple[str, str], ...],
    hidden: frozenset[str],
    patient: bool,
    dialect: str,
) -> TableView:
    """One table's view; the same arguments give the same (shared, never changed) view, so the
    guard can reuse what it built from it. `layer_id` keys the semantic layer the classes came from."""
    layer = semantic_layer()
    kinds = {column.split(".", 1)[1]: kind for column, kind in masks}
    schema = tables().get(name)
    types = {c.name: c.type for c in schema.columns} if schema is not None else {}
    shown: list[tuple[str, exp.Expr]] = []
    for column in columns:
        try:
            sensitivity = layer.sensitivity_of(name, column)
        except KeyError:
            sensitivity = "unclassified"
        if sensitivity not in allowed:
            shown.append((column, exp.Null()))
        elif column in kinds:
            shown.append((column, _mask(kinds[column], column, dialect, types.get(column, ""))))
        else:
            shown.append((column, exp.column(column)))
    conditions: list[exp.Expr] = []
    if patient:
        conditions.append(_IN_SCOPE)
    special = special_rows(name, hidden) if hidden else None
    if special is not None:
        conditions.append(exp.not_(exp.paren(special)))
    return TableView(tuple(shown), exp.and_(*conditions) if conditions else None)


def column_classes(columns: Iterable[str]) -> dict[str, str]:
    """ "table.column" -> its sensitivity class in the semantic layer ("unclassified" when it has none)."""
    layer = semantic_layer()
    classes: dict[str, str] = {}
    for qualified in columns:
        table, column = qualified.split(".", 1)
        try:
            classes[qualified] = layer.sensitivity_of(table, column)
        except KeyError:
            classes[qualified] = "unclassified"  # no rule names it: denied
    return classes


def scope_spec(decision: Decision, catalog: Catalog) -> ScopeSpec:
    return ScopeSpec(
        kinds=decision.scopes,
        team_only=decision.team_only,
        excluded=decision.excluded,
        window_days=settings.ACCESS_CARE_WINDOW_DAYS,
        identities="patient_identity" in catalog.columns,
        care_team="care_team" in catalog.columns,
        unit_tables={"care_units", "departments"} <= set(catalog.columns),
    )


def read_policy(
    *,
    decision: Decision,
    subject: Subject,
    dialect: str,
    catalog: Catalog,
    allowed_classes: Iterable[str],
    hide_special: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> ReadPolicy:
    """Every readable table (or those in `only`) as a view: rows in scope (and outside the hidden
    special categories), columns masked as the decision says, columns of any class not allowed NULL."""
    allowed = frozenset(allowed_classes)
    layer = semantic_layer()
    hidden = frozenset(hide_special) | decision.withheld
    views: dict[str, TableView] = {}
    patient_tables = catalog.patient_tables()
    wanted = (
        catalog.columns if only is None else {n: catalog.columns[n] for n in only if n in catalog.columns}
    )
    # Every patient, nobody excluded: no row predicate at all (it would cost a semi-join per table).
    everyone = "all" in decision.scopes and not decision.excluded
    for name, columns in wanted.items():
        masks = tuple(sorted((c, k) for c, k in decision.masks.items() if c.startswith(f"{name}.")))
        views[name] = _table_view(
            id(layer), name, columns, allowed, masks, hidden if name in CODED_TABLES else frozenset(),
            name in patient_tables and not everyone, dialect,
        )  # fmt: skip
    ctes: tuple[tuple[str, exp.Query], ...] = ()
    if patient_tables and not everyone:
        ctes = ((SCOPE_CTE, scope_query(subject, scope_spec(decision, catalog), dialect)),)
    return ReadPolicy(
        dialect=dialect,
        tables=views,
        row_cap=settings.WAREHOUSE_ROW_CAP,
        ctes=ctes,
        known_tables=frozenset(tables()) | frozenset(IDENTITY_TABLES),
    )
