"""The semantic layer: every column classified, synonyms that point at real values, hospital extensions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import override_settings

from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.schema import tables
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from nlquery.semantic import (
    SemanticLayerError,
    canonical,
    load_semantic_layer,
    loader,
    semantic_layer,
    sensitivity_of,
    synonyms_for,
    unmatched_terms,
    value_dictionaries,
)
from nlquery.semantic.loader import SHIPPED_FILES
from tests.conftest import SHARED

EHRSQL = SHARED / "benchmarks" / "ehrsql"
MIMIC = EHRSQL / "mimic_iv.sqlite"


@pytest.fixture(scope="module")
def mimic() -> WarehouseTarget:
    if not MIMIC.exists():
        pytest.skip(f"the EHRSQL MIMIC-IV database is absent ({MIMIC})")
    return warehouse_target(f"sqlite:///{MIMIC}")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- Sensitivity ----------------------------------------------------------------------------------


def test_every_warehouse_column_has_a_known_sensitivity_class() -> None:
    layer = semantic_layer()
    missing = [
        f"{table.name}.{column}"
        for table in tables().values()
        for column in table.column_names
        if table.name not in layer.tables or column not in {c.name for c in layer.tables[table.name].columns}
    ]
    assert missing == []
    for table in layer.tables.values():
        for column in table.columns:
            assert column.sensitivity in layer.sensitivity_classes, f"{table.name}.{column.name}"


def test_a_column_left_unclassified_fails_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = SHIPPED_FILES[0].read_text(encoding="utf-8")
    trimmed = default.replace("      text: free_text\n", "")
    assert trimmed != default
    monkeypatch.setattr(
        loader, "SHIPPED_FILES", (_write(tmp_path, "default.yaml", trimmed), SHIPPED_FILES[1])
    )
    with pytest.raises(SemanticLayerError) as error:
        load_semantic_layer()
    assert error.value.key == "tables.notes.columns.text"
    assert "no sensitivity class" in str(error.value)


@pytest.mark.parametrize(
    ("table", "column", "expected"),
    [
        ("patient_identity", "national_id", "identifier_direct"),
        ("patient_identity", "mrn", "identifier_direct"),
        ("staff", "email", "identifier_direct"),
        ("patient_identity", "postcode", "identifier_indirect"),
        ("patients", "dob", "identifier_indirect"),
        ("labevents", "valuenum", "clinical"),
        ("diagnoses_icd", "icd_code", "clinical_special"),
        ("notes", "text", "free_text"),
        ("care_units", "careunit", "organisational"),
        ("d_labitems", "label", "reference"),
        ("admissions", "hadm_id", "key"),
        ("cost", "cost", "financial"),
    ],
)
def test_sensitivity_of_columns(table: str, column: str, expected: str) -> None:
    assert sensitivity_of(table, column) == expected


def test_sensitivity_of_an_unknown_column_is_a_key_error() -> None:
    with pytest.raises(KeyError, match=r"patients\.nickname"):
        sensitivity_of("patients", "nickname")


# --- Model ----------------------------------------------------------------------------------------


def test_tables_keys_times_joins_measures_dimensions() -> None:
    layer = semantic_layer()
    assert layer.tables["chartevents"].patient_keys == ("subject_id", "hadm_id", "stay_id")
    assert layer.tables["d_labitems"].patient_keys == ()
    assert layer.tables["admissions"].time_columns == ("admittime", "dischtime")
    assert layer.tables["labevents"].time_columns[0] == "charttime"
    assert ("labevents", "itemid", "d_labitems", "itemid") in {
        (j.left_table, j.left_column, j.right_table, j.right_column) for j in layer.joins_of("labevents")
    }
    assert layer.measures["patient_count"].expression == "COUNT(DISTINCT subject_id)"
    assert layer.measures["length_of_stay_days"].table == "admissions"
    assert layer.dimensions["age_band"].bins == (0, 18, 40, 65, 80)
    assert layer.dimensions["care_unit"].column == "careunit"


# --- Synonyms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("blood sugar", "glucose"),
        ("Hb", "hemoglobin"),
        ("K+", "potassium"),
        ("SpO2", "o2 saturation pulseoxymetry"),
        ("O2 sat", "o2 saturation pulseoxymetry"),
        ("LOS", "length of stay"),
        ("heart attack", "myocardial infarction"),
        ("MI", "myocardial infarction"),
        ("pulse", "heart rate"),
        ("respiration", "respiratory rate"),
        ("temp", "temperature celsius"),
        ("systolic bp", "arterial blood pressure systolic"),
        ("BUN", "urea nitrogen"),
        ("inr", "inr(pt)"),
        ("trop", "troponin t"),
        ("plt", "platelet count"),
        ("glucose", "glucose"),
    ],
)
def test_canonical(variant: str, expected: str) -> None:
    assert canonical(variant) == expected


def test_synonyms_for() -> None:
    assert synonyms_for("hgb")[:3] == ("hemoglobin", "hb", "hgb")
    assert synonyms_for("no such thing") == ()
    assert canonical("no such thing") is None


def test_synonym_targets_exist_in_mimic(mimic: WarehouseTarget) -> None:
    assert [term.canonical for term in unmatched_terms(semantic_layer(), value_dictionaries(mimic))] == []


@pytest.mark.django_db
def test_synonym_targets_exist_in_the_demo_hospital(sqlite_warehouse: WarehouseTarget) -> None:
    values = value_dictionaries(sqlite_warehouse)
    assert [term.canonical for term in unmatched_terms(semantic_layer(), values)] == []
    assert "potassium" in values.lab_items
    assert len(values.diagnoses) > 10_000


# --- Value dictionaries ---------------------------------------------------------------------------


def test_value_dictionaries_on_mimic(mimic: WarehouseTarget) -> None:
    values = value_dictionaries(mimic)
    assert "potassium, whole blood" in values.lab_items
    assert values.chart_items["heart rate"] == frozenset({"chartevents"})
    assert len(values.diagnoses) == 106_308  # every code, far past the executor's default row cap
    assert "coronary care unit (ccu)" in values.care_units
    assert {"po", "iv"} <= values.routes
    assert values is value_dictionaries(mimic)  # cached


def test_mimic_dictionaries_hold_the_drugs_of_valid_questions(mimic: WarehouseTarget) -> None:
    labels = json.loads((EHRSQL / "valid" / "label.json").read_text(encoding="utf-8"))
    drugs = {
        sql.split("prescriptions.drug = '", 1)[1].split("'", 1)[0]
        for sql in labels.values()
        if "prescriptions.drug = '" in sql
    }
    assert drugs
    assert drugs <= value_dictionaries(mimic).drugs


# --- Hospital extensions --------------------------------------------------------------------------


def test_an_extra_file_overrides_and_extends(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        "hospital.yaml",
        """
sensitivity_classes:
  research_restricted: only under an approved project
tables:
  admissions:
    columns:
      insurance: financial
      language: {class: research_restricted, description: preferred language}
joins:
  - [visits.careunit, care_units.careunit]
measures:
  readmission_count:
    description: admissions after the first
    table: admissions
    expression: COUNT(*) - COUNT(DISTINCT subject_id)
synonyms:
  glucose: [gluc, finger stick]
  ferritin: {kind: lab, variants: [ferr]}
""",
    )
    with override_settings(NLQ_SEMANTIC_EXTRA=[str(extra)]):
        layer = semantic_layer()
        assert sensitivity_of("admissions", "insurance") == "financial"
        assert canonical("finger stick") == "glucose"
    assert layer.tables["admissions"].column("language").sensitivity == "research_restricted"
    assert layer.tables["admissions"].column("language").description == "preferred language"
    assert "readmission_count" in layer.measures
    assert "patient_count" in layer.measures
    assert layer.synonyms_for("ferr") == ("ferritin", "ferr")
    assert layer.canonical("blood sugar") == "glucose"  # shipped variants kept
    assert len(layer.joins_of("visits")) == len(load_semantic_layer().joins_of("visits")) + 1
    assert layer.sources[-1] == str(extra)
    # Without the setting, the shipped layer again.
    assert sensitivity_of("admissions", "insurance") == "demographic"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("tables: [unclosed", "(file)", "not valid YAML"),
        ("tabels: {}", "tabels", "unknown key"),
        (
            "tables:\n  patients:\n    columns:\n      nickname: clinical",
            "tables.patients.columns.nickname",
            "unknown column patients.nickname",
        ),
        ("tables:\n  wards: {description: x}", "tables.wards", "unknown table 'wards'"),
        (
            "tables:\n  patients:\n    columns:\n      gender: secret",
            "tables.patients.columns.gender",
            "unknown sensitivity class 'secret'",
        ),
        ("tables:\n  patients:\n    colour: red", "tables.patients.colour", "unknown key"),
        (
            "measures:\n  m: {table: cost, expression: SUM(price)}",
            "measures.m.expression",
            "unknown column cost.price",
        ),
        ("measures:\n  m: {table: cost, expression: 'SUM(('}", "measures.m.expression", "not valid SQL"),
        ("joins:\n  - [labevents.itemid, d_labitems]", "joins[0]", "expected table.column"),
        ("synonyms:\n  ferritin: [ferr]", "synonyms.ferritin", "needs a kind"),
        ("synonyms:\n  ferritin: {kind: mineral}", "synonyms.ferritin.kind", "unknown kind"),
        (
            "synonyms:\n  kalium: {kind: lab, variants: [k]}",
            "synonyms.kalium",
            "'k' is already a name of 'potassium'",
        ),
        ("dimensions:\n  ward: {table: transfers}", "dimensions.ward", "needs 'column'"),
        ("version: 2", "version", "only version 1"),
    ],
)
def test_invalid_extra_files_name_the_file_and_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    extra = _write(tmp_path, "broken.yaml", text)
    with pytest.raises(SemanticLayerError) as error:
        load_semantic_layer([extra])
    assert error.value.key == key
    assert problem in error.value.problem
    assert str(error.value).startswith(f"{extra}: {key}: ")


def test_a_missing_extra_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with override_settings(NLQ_SEMANTIC_EXTRA=[str(missing)]), pytest.raises(SemanticLayerError) as error:
        semantic_layer()
    assert str(error.value).startswith(f"{missing}: (file): cannot be read")


def test_the_setting_must_be_a_list() -> None:
    with override_settings(NLQ_SEMANTIC_EXTRA="hospital.yaml"), pytest.raises(SemanticLayerError) as error:
        semantic_layer()
    assert error.value.key == "NLQ_SEMANTIC_EXTRA"


def test_every_measure_runs_on_the_demo_hospital(sqlite_warehouse: WarehouseTarget) -> None:
    for measure in semantic_layer().measures.values():
        result = execute_readonly(
            f"SELECT {measure.expression} FROM {measure.table}", target=sqlite_warehouse
        )
        assert len(result.rows) == 1, measure.name
        assert result.rows[0][0] is not None, measure.name
