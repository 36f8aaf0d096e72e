"""Value dictionaries read from the warehouse: the names a question can mention, as stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final

from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from nlquery.semantic.loader import SemanticLayer, Term

# MIMIC-IV's d_icd_diagnoses holds ~106k codes and the demo hospital's ~74k: far over the default cap.
ROW_CAP: Final = 500_000
# ~110k titles of up to 255 characters: generous room, still bounded.
MAX_RESULT_BYTES: Final = 256 * 1024 * 1024
_ITEM_TABLES: Final = ("chartevents", "inputevents", "outputevents")
TIMEOUT_MS: Final = 60_000  # a one-off full read of the dictionaries, cached afterwards


@dataclass(frozen=True)
class ValueDictionaries:
    lab_items: frozenset[str]  # d_labitems.label
    chart_items: Mapping[str, frozenset[str]]  # d_items.label -> the event tables it links to
    drugs: frozenset[str]
    routes: frozenset[str]
    diagnoses: Mapping[str, str]  # icd_code -> long_title
    procedures: Mapping[str, str]  # icd_code -> long_title
    care_units: frozenset[str]
    specimen_types: frozenset[str]
    test_names: frozenset[str]
    organisms: frozenset[str]

    def has_label(self, term: Term) -> bool:
        """Whether at least one of the term's labels names something in this warehouse."""
        if term.kind == "concept":
            return True
        if term.kind == "lab":
            return any(label in self.lab_items for label in term.labels)
        if term.kind == "vital":
            return any(label in self.chart_items for label in term.labels)
        if term.kind == "drug":
            return any(label in self.drugs for label in term.labels)
        titles = self.diagnoses if term.kind == "diagnosis" else self.procedures
        return any(label in title for label in term.labels for title in titles.values())


def _strings(sql: str, target: WarehouseTarget) -> list[tuple[str, ...]]:
    result = execute_readonly(
        sql, target=target, row_cap=ROW_CAP, timeout_ms=TIMEOUT_MS, max_result_bytes=MAX_RESULT_BYTES
    )
    return [tuple(str(cell) for cell in row) for row in result.rows if all(cell is not None for cell in row)]


def _pairs(sql: str, target: WarehouseTarget) -> dict[str, str]:
    return {row[0]: row[1] for row in _strings(sql, target)}


def _distinct(target: WarehouseTarget, table: str, column: str) -> frozenset[str]:
    rows = _strings(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL", target)
    return frozenset(row[0] for row in rows)


def _read(target: WarehouseTarget) -> ValueDictionaries:
    chart: dict[str, set[str]] = {}
    # Only items something was charted for: d_items also names admin fields ("gender", "admission
    # type") that would otherwise read as measurements.
    used = " OR ".join(f"itemid IN (SELECT itemid FROM {table})" for table in _ITEM_TABLES)
    for row in _strings(f"SELECT label, linksto FROM d_items WHERE {used}", target):
        chart.setdefault(row[0], set()).add(row[1])
    return ValueDictionaries(
        lab_items=_distinct(target, "d_labitems", "label"),
        chart_items=MappingProxyType({label: frozenset(links) for label, links in chart.items()}),
        drugs=_distinct(target, "prescriptions", "drug"),
        routes=_distinct(target, "prescriptions", "route"),
        diagnoses=MappingProxyType(_pairs("SELECT icd_code, long_title FROM d_icd_diagnoses", target)),
        procedures=MappingProxyType(_pairs("SELECT icd_code, long_title FROM d_icd_procedures", target)),
        care_units=_distinct(target, "transfers", "careunit"),
        specimen_types=_distinct(target, "microbiologyevents", "spec_type_desc"),
        test_names=_distinct(target, "microbiologyevents", "test_name"),
        organisms=_distinct(target, "microbiologyevents", "org_name"),
    )


@lru_cache(maxsize=8)
def _cached(target: WarehouseTarget, version: int) -> ValueDictionaries:
    del version  # only part of the cache key
    return _read(target)


def value_dictionaries(target: WarehouseTarget | None = None) -> ValueDictionaries:
    """The warehouse's dictionaries, cached per target; a rewritten SQLite file is read again.

    A PostgreSQL warehouse is read once per process: call `clear_value_dictionaries()` after a reload.
    """
    target = target or warehouse_target()
    version = 0
    if target.sqlite_path is not None:
        try:
            version = target.sqlite_path.stat().st_mtime_ns
        except OSError:
            version = -1  # the executor reports the missing file
    return _cached(target, version)


def clear_value_dictionaries() -> None:
    _cached.cache_clear()


def unmatched_terms(layer: SemanticLayer, values: ValueDictionaries) -> tuple[Term, ...]:
    """Terms none of whose labels exist in this warehouse (a synonym pointing at nothing)."""
    return tuple(term for term in layer.terms.values() if not values.has_label(term))
