"""The demo hospital's departments and the care units (named as in MIMIC-IV) that belong to each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Department:
    department_id: int
    code: str
    name: str


@dataclass(frozen=True)
class CareUnit:
    careunit: str  # lower case, as EHRSQL's preprocessed MIMIC-IV spells it
    department_code: str
    unit_type: str  # ed, icu, ward, stepdown, observation, procedural, discharge
    beds: int


DEPARTMENTS: tuple[Department, ...] = (
    Department(1, "EMERG", "Emergency Medicine"),
    Department(2, "MED", "Internal Medicine"),
    Department(3, "CARD", "Cardiology"),
    Department(4, "NEURO", "Neurology and Neurosurgery"),
    Department(5, "SURG", "Surgery"),
    Department(6, "CRITC", "Critical Care"),
    Department(7, "ONC", "Hematology and Oncology"),
    Department(8, "WOMEN", "Obstetrics and Gynecology"),
    Department(9, "PSYCH", "Psychiatry"),
    Department(10, "PEDS", "Pediatrics"),
)

CARE_UNITS: tuple[CareUnit, ...] = (
    CareUnit("emergency department", "EMERG", "ed", 40),
    CareUnit("emergency department observation", "EMERG", "observation", 12),
    CareUnit("observation", "EMERG", "observation", 8),
    CareUnit("medicine", "MED", "ward", 60),
    CareUnit("med/surg", "MED", "ward", 40),
    CareUnit("discharge lounge", "MED", "discharge", 10),
    CareUnit("transplant", "MED", "ward", 16),
    CareUnit("medicine/cardiology", "CARD", "ward", 30),
    CareUnit("medicine/cardiology intermediate", "CARD", "stepdown", 10),
    CareUnit("cardiac surgery", "CARD", "ward", 20),
    CareUnit("coronary care unit (ccu)", "CARD", "icu", 10),
    CareUnit("cardiac vascular intensive care unit (cvicu)", "CARD", "icu", 14),
    CareUnit("neurology", "NEURO", "ward", 28),
    CareUnit("neuro stepdown", "NEURO", "stepdown", 10),
    CareUnit("neuro intermediate", "NEURO", "stepdown", 8),
    CareUnit("neuro surgical intensive care unit (neuro sicu)", "NEURO", "icu", 8),
    CareUnit("med/surg/trauma", "SURG", "ward", 30),
    CareUnit("surgery/trauma", "SURG", "ward", 20),
    CareUnit("vascular", "SURG", "ward", 16),
    CareUnit("pacu", "SURG", "procedural", 12),
    CareUnit("trauma sicu (tsicu)", "SURG", "icu", 10),
    CareUnit("medical intensive care unit (micu)", "CRITC", "icu", 16),
    CareUnit("surgical intensive care unit (sicu)", "CRITC", "icu", 14),
    CareUnit("medical/surgical intensive care unit (micu/sicu)", "CRITC", "icu", 12),
    CareUnit("hematology/oncology", "ONC", "ward", 24),
    CareUnit("hematology/oncology intermediate", "ONC", "stepdown", 8),
    CareUnit("med/surg/gyn", "WOMEN", "ward", 20),
    CareUnit("labor & delivery", "WOMEN", "ward", 14),
    CareUnit("psychiatry", "PSYCH", "ward", 20),
    CareUnit("pediatrics", "PEDS", "ward", 16),
)

DEPARTMENT_BY_CODE: dict[str, Department] = {d.code: d for d in DEPARTMENTS}
ICU_UNITS: tuple[str, ...] = tuple(u.careunit for u in CARE_UNITS if u.unit_type == "icu")
