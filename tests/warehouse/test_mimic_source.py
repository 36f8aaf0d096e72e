"""The MIMIC-IV demo database serves as the warehouse unchanged, read-only, and says it has no identities."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hisplatform.warehouse.executor import (
    WarehouseQueryError,
    WarehouseRefused,
    close_connections,
    execute_readonly,
    readable_tables,
)
from hisplatform.warehouse.schema import EHRSQL_TABLES, IDENTITY_TABLES
from hisplatform.warehouse.targets import (
    WarehouseTarget,
    capabilities_of,
    warehouse_capabilities,
    warehouse_target,
)

EHRSQL = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "ehrsql"
MIMIC = EHRSQL / "mimic_iv.sqlite"
VALID = EHRSQL / "valid"

pytestmark = pytest.mark.skipif(
    not MIMIC.exists(), reason=f"the MIMIC-IV demo database is not at {MIMIC} (../shared/benchmarks/ehrsql)"
)

# EHRSQL's evaluation conventions (benchmarks/ehrsql/README.md): a fixed "now" and vital-sign ranges.
NOW = "'2100-12-31 23:59:00'"
VITAL_RANGES = {
    "temperature": (35.5, 38.1),
    "sao2": (95, 100),
    "heart_rate": (60, 100),
    "respiration": (12, 18),
    "systolic_bp": (90, 120),
    "diastolic_bp": (60, 90),
    "mean_bp": (60, 110),
}


def _directory_state() -> list[tuple[str, int, int]]:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in MIMIC.parent.iterdir())


@pytest.fixture(scope="module")
def mimic() -> Iterator[WarehouseTarget]:
    before = _directory_state()
    yield warehouse_target(f"sqlite:///{MIMIC}")
    close_connections()
    assert _directory_state() == before, "something was written next to the MIMIC-IV database"


def _gold_sql(sql: str) -> str:
    sql = sql.replace("current_time", NOW)
    for name, (lower, upper) in VITAL_RANGES.items():
        sql = sql.replace(f"{name}_lower", str(lower)).replace(f"{name}_upper", str(upper))
    return sql


def _normalised(rows: list[tuple[object, ...]] | list[list[object]]) -> list[tuple[str, ...]]:
    """EHRSQL's comparison: numbers rounded to 3 decimals, everything as text, rows sorted, first 100."""

    def cell(value: object) -> str:
        try:
            return str(round(float(value), 3))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return str(value)

    return sorted(tuple(cell(value) for value in row) for row in rows)[:100]


def test_mimic_is_opened_read_only_and_nothing_is_created(mimic: WarehouseTarget) -> None:
    before = _directory_state()
    assert execute_readonly("SELECT count(*) FROM patients", target=mimic).rows == [(94,)]
    for statement in ("DELETE FROM patients", "PRAGMA journal_mode = wal", "CREATE TABLE x (y INT)"):
        with pytest.raises(WarehouseRefused):
            execute_readonly(statement, target=mimic)
    assert _directory_state() == before
    assert not any(p.name.endswith(("-wal", "-shm", "-journal")) for p in MIMIC.parent.iterdir())


def test_mimic_is_known_to_carry_no_identity_tables(mimic: WarehouseTarget) -> None:
    capabilities = capabilities_of(readable_tables(mimic))
    assert capabilities.clinical_core is True
    assert capabilities.identity is False
    assert capabilities.missing_identity == IDENTITY_TABLES
    assert set(EHRSQL_TABLES) <= readable_tables(mimic)
    described = capabilities.describe()
    assert "de-identified" in described
    assert "no patient identity" in described
    assert warehouse_capabilities(mimic) == capabilities


@pytest.mark.parametrize("table", IDENTITY_TABLES)
def test_identity_questions_on_mimic_get_a_clear_answer(mimic: WarehouseTarget, table: str) -> None:
    with pytest.raises(WarehouseQueryError) as raised:
        execute_readonly(f"SELECT * FROM {table}", target=mimic)
    assert raised.value.code == "no_identity_tables"
    assert raised.value.message.startswith("This warehouse is a de-identified source with no identity tables")


def test_every_valid_gold_query_gives_the_gold_answer(mimic: WarehouseTarget) -> None:
    """All answerable EHRSQL valid questions: the executor's guards let real clinical SQL through."""
    labels: dict[str, str] = json.loads((VALID / "label.json").read_text())
    answers: dict[str, str] = json.loads((VALID / "answer.json").read_text())
    answerable = {key: sql for key, sql in labels.items() if sql != "null"}
    assert len(answerable) > 900
    wrong = []
    for key, sql in answerable.items():
        result = execute_readonly(_gold_sql(sql), target=mimic, row_cap=100_000)
        if _normalised(result.rows) != _normalised(ast.literal_eval(answers[key])):
            wrong.append(key)
    assert wrong == []


def test_mimic_results_are_capped_in_rows_and_in_size(mimic: WarehouseTarget) -> None:
    capped = execute_readonly("SELECT * FROM chartevents ORDER BY row_id", target=mimic, row_cap=5_000)
    assert (len(capped.rows), capped.truncated) == (5_000, True)
    # One cell holding every chart time: 31,926 times of 19 characters and their commas.
    one_big_value = "SELECT group_concat(charttime, ',') FROM chartevents"
    value = execute_readonly(one_big_value, target=mimic).rows[0][0]
    assert isinstance(value, str)
    assert len(value) == 638_519
    with pytest.raises(WarehouseQueryError) as raised:
        execute_readonly(one_big_value, target=mimic, max_result_bytes=638_518)
    assert raised.value.code == "result_too_large"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could write a file its permissions forbid")
def test_even_root_leaves_the_file_unchanged(mimic: WarehouseTarget) -> None:
    """Root ignores file permissions: this shows the executor, not the filesystem, forbids writes."""
    before = MIMIC.stat()
    with pytest.raises(WarehouseRefused):
        execute_readonly("UPDATE patients SET gender = 'x'", target=mimic)
    after = MIMIC.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
