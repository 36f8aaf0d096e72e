"""Labelled synthetic access traffic for the demo hospital: staff at work, and misuse injected to be found.

`simulate` turns the warehouse's people and stays into the audit trail a month or two of ordinary work
would leave (shifts, sessions, role-typical questions about the patients each person is treating, and
the benign oddities that make real audit data noisy), then injects misuse scenarios after a clean
training period. Every injected access carries its scenario id; the anomaly engine is measured on it
(`audit_eval`) and never sees the labels. Deterministic for a seed, whichever engine holds the warehouse.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, TypedDict, Unpack

from audit.accesses import IDENTIFIER_COLUMNS, Access
from audit.relations import RECENT, UNIT, Relations, epoch, family_members
from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.organisation import DEPARTMENT_BY_CODE
from hisplatform.warehouse.targets import WarehouseTarget

SCENARIO_KINDS: Final = (
    "bulk_export",
    "family_snooping",
    "coworker_snooping",
    "vip_snooping",
    "after_hours",
    "credential_sharing",
    "slow_exfiltration",
    "coordinated_aggregation",
    "masking_rephrase",
    "research_outside_cohort",
)
CLINICAL_ROLES: Final = ("clinician", "nurse", "department_head")

MINUTE: Final = 60.0
HOUR: Final = 3600.0
DAY: Final = 86_400.0
_ROW_CAP: Final = 10_000_000
_MAX_BYTES: Final = 10**10

# A patient counts as present on a ward from an hour before the stay's recorded start (the record is
# opened on arrival) to four hours after it ends (results and letters follow discharge); both sit well
# inside the relationship's own one-day margins, so a benign "present" pick is always UNIT or better.
_ARRIVAL_LEAD: Final = HOUR
_DISCHARGE_TAIL: Final = 4 * HOUR

# Clinicians and nurses never see the full national ID number (policy: first three, last four).
_PARTIAL_FOR: Final = frozenset({"clinician", "nurse"})
_NATIONAL_ID: Final = "patient_identity.national_id"

# Research projects the demo hospital could have approved; a project is kept only when its cohort exists
# in the warehouse. RP-2026-014 is the one seed_demo creates for res.garcia.
_PROJECTS: Final = (
    (
        "RP-2026-014",
        "Outcomes of sepsis in the critically ill",
        "sepsis",
        ("icd10|a41", "icd10|r65", "icd9|038", "icd9|99591", "icd9|99592"),
    ),
    ("RP-2025-031", "Readmissions after heart failure", "heart failure", ("icd10|i50", "icd9|428")),
    ("RP-2026-007", "Acute kidney injury in hospital", "acute kidney injury", ("icd10|n17", "icd9|584")),
    ("RP-2025-044", "Outcomes of COPD exacerbations", "COPD", ("icd10|j44", "icd9|491", "icd9|496")),
    ("RP-2026-022", "Ischaemic stroke pathway", "ischaemic stroke", ("icd10|i63", "icd9|434")),
    ("RP-2026-030", "Diabetes and surgical outcomes", "type 2 diabetes", ("icd10|e11", "icd9|250")),
)
# Conditions a researcher could reach for outside an approved cohort (the outside-cohort scenario).
_OTHER_CONDITIONS: Final = (
    ("icd10|f33", "recurrent depression"),
    ("icd10|f10", "alcohol use disorder"),
    ("icd10|f41", "anxiety disorders"),
    ("icd10|b20", "HIV disease"),
    ("icd10|f20", "schizophrenia"),
    ("icd10|o", "pregnancy complications"),
    ("icd10|c50", "breast cancer"),
    ("icd10|k70", "alcoholic liver disease"),
    ("icd10|e66", "obesity"),
    ("icd10|i10", "hypertension"),
    ("icd10|f17", "nicotine dependence"),
    ("icd10|j18", "pneumonia"),
    ("icd10|i48", "atrial fibrillation"),
    ("icd10|n18", "chronic kidney disease"),
)
_SYNTHETIC_RESEARCHERS: Final = (
    "res.okonkwo",
    "res.lindgren",
    "res.haddad",
    "res.moreno",
    "res.brennan",
    "res.tanaka",
    "res.kowalczyk",
    "res.adeyemi",
    "res.fischer",
    "res.novak",
    "res.shah",
    "res.duarte",
)
_ADMINISTRATORS: Final = ("admin.walsh", "admin.osei", "admin.brandt")

# Browsers as hospital devices send them: (before, after) a fleet update rolled out during the window.
_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36"
)
_AGENTS: Final = {
    "chrome": (_CHROME.format(v=130), _CHROME.format(v=131)),
    "edge": (_CHROME.format(v=130) + " Edg/130.0.0.0", _CHROME.format(v=131) + " Edg/131.0.0.0"),
    "ipad": (
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
    )
    * 2,
    "mac_safari": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
    )
    * 2,
    "mac_chrome": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    "firefox": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    "android": (
        "Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Mobile Safari/537.36",
    )
    * 2,
    "iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
    )
    * 2,
}
_VPN_PREFIX: Final = "10.250"


class SimulationError(Exception):
    """The simulation cannot run as asked (bad window, unseeded warehouse); the message says why."""


# --- Question templates -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Template:
    texts: tuple[str, ...]
    tables: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[int, int]  # per patient for patient questions, per answer otherwise


_NAME_COLUMNS: Final = ("patient_identity.given_name", "patient_identity.family_name")
_LIST_COLUMNS: Final = ("patient_identity.mrn", *_NAME_COLUMNS)

# About one patient; {p} is the patient as the user names them.
_PATIENT: Final = {
    "lab": _Template(
        (
            "What was the last {lab} of {p}?",
            "latest {lab} for {p}",
            "{lab} trend for {p} this admission",
            "Show the {lab} results of {p} over the last {n} days",
        ),
        ("labevents", "d_labitems"),
        ("labevents.valuenum", "labevents.valueuom", "labevents.charttime", "d_labitems.label"),
        (1, 14),
    ),
    "panel": _Template(
        (
            "Show today's labs for {p}",
            "Which lab results of {p} are abnormal?",
            "labs for {p} since yesterday",
        ),
        ("labevents", "d_labitems"),
        (
            "labevents.valuenum",
            "labevents.valueuom",
            "labevents.charttime",
            "labevents.flag",
            "labevents.ref_range_lower",
            "labevents.ref_range_upper",
            "d_labitems.label",
        ),
        (8, 40),
    ),
    "meds": _Template(
        (
            "What medications is {p} currently on?",
            "Current prescriptions for {p}",
            "When was {drug} last given to {p}?",
            "Is {p} on {drug}?",
        ),
        ("prescriptions",),
        (
            "prescriptions.drug",
            "prescriptions.dose_val_rx",
            "prescriptions.dose_unit_rx",
            "prescriptions.route",
            "prescriptions.starttime",
        ),
        (1, 20),
    ),
    "vitals": _Template(
        (
            "{vital} of {p} over the last 24 hours",
            "Show the vital signs of {p} since this morning",
            "latest {vital} for {p}",
        ),
        ("chartevents", "d_items"),
        ("chartevents.valuenum", "chartevents.valueuom", "chartevents.charttime", "d_items.label"),
        (1, 48),
    ),
    "io": _Template(
        (
            "What is the fluid balance of {p} today?",
            "urine output for {p} in the last 12 hours",
            "Show IV fluids given to {p} today",
        ),
        ("inputevents", "outputevents", "d_items"),
        (
            "inputevents.totalamount",
            "inputevents.starttime",
            "outputevents.value",
            "outputevents.charttime",
            "d_items.label",
        ),
        (2, 24),
    ),
    "notes": _Template(
        (
            "Show the latest progress note for {p}",
            "What did the last note on {p} say?",
            "admission note of {p}",
        ),
        ("notes",),
        ("notes.text", "notes.charttime", "notes.note_type"),
        (1, 3),
    ),
    "discharge": _Template(
        ("Show the discharge summary of {p}", "discharge letter for {p}"),
        ("notes",),
        ("notes.text", "notes.charttime", "notes.note_type"),
        (1, 1),
    ),
    "diagnoses": _Template(
        ("What are the diagnoses of {p}?", "problem list for {p}", "Why was {p} admitted?"),
        ("diagnoses_icd", "d_icd_diagnoses"),
        ("diagnoses_icd.icd_code", "d_icd_diagnoses.long_title", "diagnoses_icd.charttime"),
        (1, 15),
    ),
    "micro": _Template(
        (
            "Any positive cultures for {p}?",
            "blood culture results of {p}",
            "Show microbiology for {p} this admission",
        ),
        ("microbiologyevents",),
        ("microbiologyevents.spec_type_desc", "microbiologyevents.org_name", "microbiologyevents.charttime"),
        (0, 6),
    ),
    "admission": _Template(
        ("When was {p} admitted and from where?", "length of stay so far for {p}", "Which unit is {p} in?"),
        ("admissions", "transfers"),
        ("admissions.admittime", "admissions.admission_location", "transfers.careunit", "transfers.intime"),
        (1, 3),
    ),
    "contacts": _Template(
        ("Next of kin phone number for {p}", "Who is the emergency contact of {p}?"),
        ("patient_contacts",),
        ("patient_contacts.full_name", "patient_contacts.relationship", "patient_contacts.phone"),
        (1, 3),
    ),
    "identity": _Template(
        ("MRN and date of birth of {p}", "Confirm the identity details of {p}", "national ID of {p}"),
        ("patient_identity",),
        ("patient_identity.mrn", "patient_identity.birth_date", _NATIONAL_ID),
        (1, 1),
    ),
}

# About several patients of a unit or department.
_UNIT_LIST: Final = _Template(
    (
        "List patients in {unit}",
        "Who is currently in {unit}?",
        "patients on {unit} with their admission date",
        "Show the census of {unit}",
    ),
    ("transfers", "patient_identity"),
    ("transfers.careunit", "transfers.intime", *_LIST_COLUMNS),
    (1, 1),
)
_DEPARTMENT_FILTER: Final = _Template(
    (
        "Which patients in {dept} have {lab} above the reference range?",
        "patients in {dept} with {lab} results today",
        "Which patients in {dept} are on {drug}?",
    ),
    ("transfers", "labevents", "d_labitems", "prescriptions"),
    ("transfers.careunit", "labevents.valuenum", "labevents.flag", "d_labitems.label", "prescriptions.drug"),
    (1, 3),
)
_QUALITY: Final = _Template(
    (
        "List patients discharged from {dept} in the last 90 days with a length of stay over {n} days",
        "Readmissions within 30 days to {dept} this quarter",
        "{dept} patients with a fall or pressure ulcer recorded in the last 3 months",
        "Which {dept} patients waited more than {n} hours for a bed last quarter?",
    ),
    ("admissions", "transfers", "diagnoses_icd", "patient_identity"),
    (
        "admissions.admittime",
        "admissions.dischtime",
        "transfers.careunit",
        "diagnoses_icd.icd_code",
        *_LIST_COLUMNS,
    ),
    (1, 4),
)

_ROLE_MIX: Final = {
    "nurse": {
        "vitals": 24,
        "meds": 22,
        "lab": 14,
        "panel": 4,
        "io": 8,
        "notes": 6,
        "contacts": 3,
        "diagnoses": 4,
        "admission": 5,
        "identity": 1,
        "unit_list": 8,
        "dept_filter": 1,
    },
    "clinician": {
        "lab": 22,
        "panel": 9,
        "meds": 12,
        "notes": 12,
        "discharge": 4,
        "diagnoses": 8,
        "micro": 6,
        "vitals": 7,
        "admission": 4,
        "identity": 1,
        "unit_list": 6,
        "dept_filter": 7,
        "io": 2,
    },
    "department_head": {
        "lab": 10,
        "panel": 4,
        "meds": 6,
        "notes": 10,
        "discharge": 5,
        "diagnoses": 8,
        "micro": 2,
        "admission": 5,
        "identity": 2,
        "unit_list": 18,
        "dept_filter": 20,
    },
}

_ADMIN: Final = (
    _Template(
        ("How many admissions were there per day this week?", "admissions per day last month"),
        ("admissions",),
        ("admissions.admittime", "admissions.hadm_id"),
        (7, 31),
    ),
    _Template(
        ("Average length of stay by department last month", "median length of stay per unit this quarter"),
        ("transfers", "care_units", "departments"),
        ("transfers.intime", "transfers.outtime", "care_units.careunit", "departments.name"),
        (10, 30),
    ),
    _Template(
        ("Bed occupancy in {unit} over the last 7 days", "How full was {unit} each day last week?"),
        ("transfers", "care_units"),
        ("transfers.intime", "transfers.outtime", "care_units.beds"),
        (7, 7),
    ),
    _Template(
        ("Median turnaround time for {lab} this month", "lab turnaround by priority last week"),
        ("labevents", "d_labitems"),
        ("labevents.charttime", "labevents.storetime", "labevents.priority", "d_labitems.label"),
        (1, 12),
    ),
    _Template(
        ("Number of emergency department visits by hour yesterday", "ED attendances per day this month"),
        ("visits",),
        ("visits.starttime", "visits.visit_type"),
        (24, 31),
    ),
    _Template(
        ("How many lab tests were ordered per department last week?",),
        ("labevents", "admissions", "transfers"),
        ("labevents.itemid", "transfers.careunit"),
        (10, 10),
    ),
    _Template(
        ("Readmissions within 30 days by department this quarter",),
        ("admissions", "transfers"),
        ("admissions.admittime", "admissions.dischtime", "transfers.careunit"),
        (10, 10),
    ),
    _Template(
        ("Discharges per day from {dept} this month", "average discharge time in {dept} last week"),
        ("admissions", "transfers"),
        ("admissions.dischtime", "transfers.careunit"),
        (7, 31),
    ),
)

_RESEARCH: Final = (
    _Template(
        ("How many patients with {c} had a {lab} above the reference range in the first 48 hours?",),
        ("diagnoses_icd", "labevents", "d_labitems"),
        ("diagnoses_icd.icd_code", "labevents.valuenum", "labevents.flag", "d_labitems.label"),
        (1, 4),
    ),
    _Template(
        (
            "Average length of stay of {c} patients by age group",
            "length of stay for {c} by sex and admission type",
        ),
        ("diagnoses_icd", "admissions", "patients"),
        (
            "diagnoses_icd.icd_code",
            "admissions.admittime",
            "admissions.dischtime",
            "admissions.age",
            "patients.gender",
        ),
        (4, 12),
    ),
    _Template(
        ("30-day readmission rate for patients with {c}", "readmissions after {c} by year"),
        ("diagnoses_icd", "admissions"),
        ("diagnoses_icd.icd_code", "admissions.admittime", "admissions.dischtime"),
        (1, 4),
    ),
    _Template(
        ("List {c} patients with their first {lab} on admission", "first {lab} of each patient with {c}"),
        ("diagnoses_icd", "labevents", "d_labitems", "admissions", "patients"),
        (
            "diagnoses_icd.icd_code",
            "labevents.valuenum",
            "d_labitems.label",
            "admissions.age",
            "patients.gender",
        ),
        (-1, -1),
    ),
    _Template(
        ("Mortality of {c} patients by sex and age group", "in-hospital deaths among {c} patients"),
        ("diagnoses_icd", "patients", "admissions"),
        ("diagnoses_icd.icd_code", "patients.dod", "patients.gender", "admissions.age"),
        (2, 12),
    ),
    _Template(
        ("Which drugs were most prescribed to {c} patients?", "antibiotics given to {c} patients"),
        ("diagnoses_icd", "prescriptions"),
        ("diagnoses_icd.icd_code", "prescriptions.drug"),
        (10, 25),
    ),
)

_BREAKGLASS_REASONS: Final = (
    "Emergency: patient arriving unresponsive, need history and medications",
    "Resuscitation in progress, previous admissions needed",
    "Trauma call, patient not yet registered to my unit",
    "Deteriorating patient transferred from another department, urgent review",
    "Emergency treatment: allergy and medication history needed now",
)
_ABSTAINED: Final = (
    "pot for {id}??",
    "labz {id} pls",
    "{id} k+ mg",
    "whats the ecg of pt",
    "meds 4 {id} now",
)

# What the injected misuse asks; rows are per patient shown, as for the patient templates.
_SURNAME_SEARCH: Final = _Template(
    ("Find patients named {f}", "patients with family name {f}", "search {f}"),
    ("patient_identity",),
    (*_LIST_COLUMNS, "patient_identity.birth_date"),
    (1, 1),
)
_BULK_EXPORT: Final = _Template(
    (
        "all patients admitted in the last 2 years with date of birth, address and phone",
        "List every patient with their MRN, address, phone number and diagnoses",
        "patients seen since January with contact details and diagnosis codes",
    ),
    ("patient_identity", "admissions", "diagnoses_icd"),
    (
        *_LIST_COLUMNS,
        "patient_identity.birth_date",
        "patient_identity.address",
        "patient_identity.phone",
        "admissions.admittime",
        "diagnoses_icd.icd_code",
    ),
    (4, 12),
)
_MEDICATION_EXPORT: Final = _Template(
    ("export patients with their national ID and current medications",),
    ("patient_identity", "prescriptions"),
    (*_LIST_COLUMNS, _NATIONAL_ID, "prescriptions.drug"),
    (3, 8),
)
_ELDERLY_CONTACTS: Final = _Template(
    (
        "patients over 65 with phone number and address",
        "elderly patients living alone with contact details",
        "List patients born before 1960 with their phone numbers",
    ),
    ("patient_identity", "patients"),
    (*_LIST_COLUMNS, "patient_identity.phone", "patient_identity.address"),
    (1, 1),
)


# --- The people ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Device:
    addr: str  # "" for a VPN laptop: the tunnel hands out a new address per connection
    family: str  # key of _AGENTS
    update_at: float  # when this device's browser update arrived

    def agent(self, at: float) -> str:
        before, after = _AGENTS[self.family]
        return after if at >= self.update_at else before


@dataclasses.dataclass(slots=True)
class _User:
    username: str
    role: str
    department: str
    staff_id: int | None
    pattern: str  # day, night, rotating, weekday (physician hours plus on-call), office
    rng: random.Random
    projects: tuple[str, ...] = ()
    home_unit: str = ""
    devices: list[_Device] = dataclasses.field(default_factory=list)
    remote: _Device | None = None
    mix: dict[str, float] = dataclasses.field(default_factory=dict)
    by_name: float = 0.0  # how often this person names a patient instead of giving the id
    family: frozenset[int] = frozenset()


@dataclasses.dataclass(slots=True)
class _Session:
    start: float
    end: float
    device: _Device
    addr: str


@dataclasses.dataclass(slots=True)
class _Shift:
    start: float
    end: float
    kind: str  # day, night, weekday, weekend, oncall, office
    department: str  # where the work is: a float covers another department for the shift
    sessions: list[_Session] = dataclasses.field(default_factory=list)
    questions: int = 0  # the benign questions planned for it


@dataclasses.dataclass(frozen=True, slots=True)
class _Project:
    code: str
    title: str
    condition: str
    cohort: tuple[str, ...]
    patients: tuple[int, ...]


# --- The hospital as the simulator needs it -----------------------------------------------------


class _Hospital:
    """Warehouse facts indexed for "who is on this ward at this hour" (cached per hour)."""

    def __init__(self, relations: Relations, target: WarehouseTarget) -> None:
        self.relations = relations

        def rows(sql: str) -> list[tuple[object, ...]]:
            try:
                return execute_readonly(
                    sql, target=target, row_cap=_ROW_CAP, max_result_bytes=_MAX_BYTES
                ).rows
            except WarehouseError as error:
                raise SimulationError(
                    f"Cannot read the warehouse ({target.describe()}): {error.message} "
                    "The simulator needs the seeded demo hospital (`manage.py seed_demo`)."
                ) from None

        cutoff = rows("SELECT MAX(intime) FROM transfers")[0][0]
        stamp = epoch(cutoff)
        if stamp is None or not relations.staff or not relations.patients:
            raise SimulationError(
                f"The warehouse ({target.describe()}) holds no stays or staff: "
                "seed it with `manage.py seed_demo`."
            )
        self.cutoff = stamp
        self.unit_department: dict[str, str] = {}
        self.unit_beds: dict[str, int] = {}
        for unit, code, beds in rows(
            "SELECT u.careunit, d.code, u.beds FROM care_units u JOIN departments d "
            "ON d.department_id = u.department_id ORDER BY u.careunit"
        ):
            self.unit_department[str(unit)] = str(code)
            self.unit_beds[str(unit)] = int(str(beds))
        self.units_of: dict[str, list[str]] = {}
        for unit, code in self.unit_department.items():
            self.units_of.setdefault(code, []).append(unit)
        self.unit_stays: dict[str, list[tuple[float, float, int]]] = {}
        for subject, unit, start, end in rows(
            "SELECT subject_id, careunit, intime, outtime FROM transfers WHERE careunit IS NOT NULL"
        ):
            begin = epoch(start)
            if begin is not None and str(unit) in self.unit_department:
                finish = epoch(end)
                self.unit_stays.setdefault(str(unit), []).append(
                    (begin, math.inf if finish is None else finish, int(str(subject)))
                )
        self.department_stays: dict[str, list[tuple[float, float, int]]] = {}
        for subject in sorted(relations.stays):
            for code, intervals in relations.stays[subject].items():
                self.department_stays.setdefault(code, []).extend((a, b, subject) for a, b in intervals)
        for table in (self.unit_stays, self.department_stays):
            for stays in table.values():
                stays.sort()
        self.starts: dict[str, list[float]] = {
            code: [a for a, _, _ in stays] for code, stays in self.department_stays.items()
        }
        # Inpatients still on a ward at the cut-off: the only stays that are rightly open-ended.
        self.admitted = {s for stays in self.unit_stays.values() for _, b, s in stays if b == math.inf}
        self.names: dict[int, tuple[str, str]] = {}
        self.born: dict[int, int] = {}
        for subject, given, family, birth in rows(
            "SELECT subject_id, given_name, family_name, birth_date FROM patient_identity"
        ):
            self.names[int(str(subject))] = (str(given), str(family))
            self.born[int(str(subject))] = int(str(birth)[:4])
        self.by_surname: dict[str, list[int]] = {}
        for subject in sorted(self.names):
            self.by_surname.setdefault(self.names[subject][1].lower(), []).append(subject)

        def common(sql: str, fallback: list[str]) -> list[str]:
            """The query's first column, empty values dropped; `fallback` on a warehouse that has none."""
            return [str(r[0]) for r in rows(sql) if r[0]] or fallback

        self.labs = common(
            "SELECT d.label FROM labevents l JOIN d_labitems d ON d.itemid = l.itemid "
            "GROUP BY d.label ORDER BY COUNT(*) DESC, d.label LIMIT 25",
            ["potassium", "creatinine", "hemoglobin"],
        )
        self.vitals = common(
            "SELECT d.label FROM chartevents c JOIN d_items d ON d.itemid = c.itemid "
            "GROUP BY d.label ORDER BY COUNT(*) DESC, d.label LIMIT 10",
            ["heart rate", "respiratory rate"],
        )
        self.drugs = common(
            "SELECT drug FROM prescriptions GROUP BY drug ORDER BY COUNT(*) DESC, drug LIMIT 30",
            ["heparin", "acetaminophen"],
        )
        self.subjects = sorted(relations.patients)
        self.team_of: dict[int, list[tuple[float, float, int]]] = {}
        for subject in sorted(relations.team):
            for staff_id, links in relations.team[subject].items():
                self.team_of.setdefault(staff_id, []).extend((a, b, subject) for a, b in links)
        for assignments in self.team_of.values():
            assignments.sort()
        self._present: dict[tuple[str, str, int], tuple[int, ...]] = {}

    def keep_window(self, begin: float, end: float) -> None:
        """Forget stays that cannot matter to the window (90 days back, for quality reviews)."""
        for table in (self.unit_stays, self.department_stays):
            for where, stays in table.items():
                table[where] = [(a, b, s) for a, b, s in stays if b >= begin - 100 * DAY and a <= end + DAY]
        self.starts = {code: [a for a, _, _ in stays] for code, stays in self.department_stays.items()}

    def present(self, where: str, at: float, *, unit: bool = False) -> tuple[int, ...]:
        """Patients on the unit (or in the department) during the hour of `at`, by subject id.

        Every pick is a patient the relationship rules call current. An outpatient visit never closed
        (no end time) is not someone on the ward, though the rules may count it: it is left out after a day.
        """
        hour = int(at // HOUR)
        key = ("u" if unit else "d", where, hour)
        found = self._present.get(key)
        if found is None:
            stays = (self.unit_stays if unit else self.department_stays).get(where, [])
            department = self.unit_department.get(where, "") if unit else where
            moment = hour * HOUR
            relation = self.relations.relation
            found = tuple(
                sorted(
                    {
                        s
                        for a, b, s in stays
                        if a - _ARRIVAL_LEAD <= moment
                        and b + _DISCHARGE_TAIL >= moment + HOUR
                        and (b < math.inf or s in self.admitted or a >= moment - DAY)
                        and relation(None, department, s, moment) >= UNIT
                        and relation(None, department, s, moment + HOUR) >= UNIT
                    }
                )
            )
            self._present[key] = found
        return found

    def discharged(self, department: str, at: float, since_days: float) -> list[int]:
        """Patients whose stay in the department ended between `since_days` and two days before `at`."""
        return sorted(
            {
                s
                for a, b, s in self.department_stays.get(department, [])
                if at - since_days * DAY <= b <= at - 2 * DAY
            }
        )

    def recent(self, department: str, at: float) -> list[int]:
        """Patients discharged from the department in the last few weeks, as the relationship rules see it."""
        return [
            s
            for s in self.discharged(department, at, 25)
            if self.relations.relation(None, department, s, at) >= RECENT
        ]

    def arriving(self, department: str, at: float, within: float) -> list[int]:
        """Patients whose stay in the department starts in the next `within` seconds."""
        starts = self.starts.get(department, [])
        low, high = bisect.bisect_left(starts, at), bisect.bisect_right(starts, at + within)
        return sorted({s for _, _, s in self.department_stays.get(department, [])[low:high]})

    def team(self, staff_id: int | None, at: float) -> list[int]:
        """The patients whose care team the member of staff is on around `at`."""
        if staff_id is None:
            return []
        return sorted({s for a, b, s in self.team_of.get(staff_id, ()) if a - 12 * HOUR <= at <= b + DAY})

    def alive(self, subject: int, at: float) -> bool:
        facts = self.relations.patients.get(subject)
        return facts is None or facts.died_at is None or facts.died_at > at


# --- The simulation -----------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Draft:
    at: float
    order: int
    fields: dict[str, Any]  # an Access but its seq, numbered once all are in time order
    label: str | None


class _Details(TypedDict, total=False):
    """What one access did and showed: the keywords of `_Simulation.access` after who, when and where."""

    kind: str
    status: str
    patients: Iterable[int]
    rows: int
    tables: Sequence[str]
    columns: Sequence[str]
    question: str
    breakglass: bool
    purpose: str | None
    project: str
    masked: bool


class _Asked(NamedTuple):
    """A question about one patient as drafted from a template, before it is recorded."""

    text: str
    tables: list[str]
    columns: list[str]
    rows: int


class _Simulation:
    """One run: the people and their devices, their schedules, their benign work, then the scenarios."""

    def __init__(
        self,
        hospital: _Hospital,
        *,
        seed: int,
        start: float,
        end: float,
        train_end: float,
        instances: int,
    ) -> None:
        self.hospital = hospital
        self.relations = hospital.relations
        self.seed = seed
        self.start, self.end, self.train_end = start, end, train_end
        self.instances = instances
        self.drafts: list[_Draft] = []
        self.benign: Counter[str] = Counter()
        self.scenarios: list[dict[str, Any]] = []
        self.used: set[str] = set()
        self.departments = sorted({f.department for f in self.relations.staff.values() if f.department})
        if not self.departments:
            raise SimulationError(
                "The warehouse has no staff with a department: seed it with `manage.py seed_demo`."
            )
        self.fleet_rng = _rng(seed, "fleet")
        self.pools = {code: self._workstations(code, index) for index, code in enumerate(self.departments)}
        self.projects = self._projects()
        self.users = self._users()
        self.shifts: dict[str, list[_Shift]] = {}

    # --- people and devices

    def _workstations(self, code: str, index: int) -> dict[str, list[_Device]]:
        """Each unit's shared workstations: a subnet per department, a third octet per unit."""
        rng = self.fleet_rng
        # The browser update reaches each department on its own day, in the second half of the window.
        update = self.start + (self.end - self.start) * rng.uniform(0.45, 0.85)
        units = self.hospital.units_of.get(code) or [code.lower()]
        pools: dict[str, list[_Device]] = {}
        for position, unit in enumerate(units):
            count = max(4, min(16, self.hospital.unit_beds.get(unit, 12) // 3))
            hosts = rng.sample(range(10, 200), count)
            family = rng.choices(("chrome", "edge"), (0.85, 0.15))[0]
            pools[unit] = [
                _Device(
                    f"10.{20 + index}.{position + 1}.{host}",
                    "ipad" if rng.random() < 0.08 else family,
                    update + rng.uniform(0, 2 * DAY),
                )
                for host in sorted(hosts)
            ]
        return pools

    def _pool(self, code: str) -> list[_Device]:
        return [device for unit in sorted(self.pools.get(code, {})) for device in self.pools[code][unit]]

    def _laptop(self, rng: random.Random) -> _Device:
        family = rng.choices(("mac_safari", "mac_chrome", "firefox", "chrome"), (0.35, 0.25, 0.15, 0.25))[0]
        return _Device("", family, self.start + (self.end - self.start) * rng.uniform(0.2, 1.2))

    def _projects(self) -> list[_Project]:
        found: list[_Project] = []
        for code, title, condition, prefixes in _PROJECTS:
            patients = tuple(s for s in self.hospital.subjects if self.relations.in_cohort(s, prefixes))
            if len(patients) >= 3:
                found.append(_Project(code, title, condition, prefixes, patients))
        if not found:
            raise SimulationError(
                "No research cohort exists in the warehouse (no sepsis, heart failure, kidney injury, COPD, "
                "stroke or diabetes diagnoses): seed the demo hospital with `manage.py seed_demo`."
            )
        return found

    def _users(self) -> list[_User]:
        relations = self.relations
        users: list[_User] = []
        by_username = {f.username: sid for sid, f in relations.staff.items() if f.username}
        for staff_id in sorted(relations.staff):
            facts = relations.staff[staff_id]
            if not facts.department or facts.role not in CLINICAL_ROLES:
                continue
            username = facts.username or f"staff{staff_id:04d}"
            rng = _rng(self.seed, "user", username)
            if facts.role == "nurse":
                pattern = rng.choices(("day", "night", "rotating"), (0.55, 0.25, 0.20))[0]
            elif facts.role == "clinician" and facts.department in ("EMERG", "CRITC"):
                pattern = "rotating"
            else:
                pattern = "weekday"
            user = _User(username, facts.role, facts.department, staff_id, pattern, rng)
            units = sorted(self.pools.get(facts.department, {}))
            user.home_unit = rng.choice(units) if units else ""
            pool = self.pools.get(facts.department, {})
            preferred = (
                pool.get(user.home_unit, []) if facts.role == "nurse" else self._pool(facts.department)
            )
            user.devices = rng.sample(preferred, min(len(preferred), rng.randint(2, 4))) if preferred else []
            if facts.role != "nurse" and rng.random() < 0.65:
                user.remote = self._laptop(rng)
            mix = _ROLE_MIX[facts.role]
            user.mix = {name: weight * rng.uniform(0.5, 1.5) for name, weight in mix.items()}
            user.by_name = rng.uniform(0.0, 0.06)
            user.family = frozenset(family_members(relations, staff_id))
            users.append(user)
        count = max(6, self.instances + 2)
        extra = (f"res.fellow{n:02d}" for n in range(1, count))
        names = ["res.garcia", *_SYNTHETIC_RESEARCHERS, *extra][:count]
        for position, username in enumerate(names):
            rng = _rng(self.seed, "user", username)
            project = (
                self.projects[0] if position == 0 else self.projects[(position - 1) % len(self.projects)]
            )
            projects = {project.code}
            if rng.random() < 0.25:
                projects.add(rng.choice(self.projects).code)
            user = _User(
                username, "researcher", "", by_username.get(username), "office", rng, tuple(sorted(projects))
            )
            user.devices = [_Device(f"10.11.1.{20 + position}", rng.choice(("chrome", "firefox")), self.end)]
            user.remote = self._laptop(rng)
            users.append(user)
        for position, username in enumerate(_ADMINISTRATORS):
            rng = _rng(self.seed, "user", username)
            user = _User(username, "administrator", "", by_username.get(username), "office", rng)
            user.devices = [
                _Device(f"10.10.1.{20 + position}", "chrome", self.start + rng.uniform(0, 20) * DAY)
            ]
            users.append(user)
        return users

    # --- schedules

    def _days(self) -> list[float]:
        """Midnights of the calendar days the window touches (a night shift may begin the day before)."""
        first = math.floor(self.start / DAY) * DAY - DAY
        return [first + i * DAY for i in range(int((self.end - first) // DAY) + 1)]

    def _schedule(self, user: _User) -> list[_Shift]:
        rng = user.rng
        shifts: list[_Shift] = []
        days = self._days()
        leave: tuple[float, float] = (math.inf, math.inf)
        if rng.random() < 0.15:  # a week or so of annual leave
            begin = rng.choice(days)
            leave = (begin, begin + rng.randint(5, 9) * DAY)
        offset = rng.randrange(7)
        first_weekday = dt.datetime.fromtimestamp(days[0], dt.UTC).weekday()
        working: set[int] = set()
        if user.pattern in ("day", "night", "rotating"):
            # Three or four twelve-hour shifts a week, on days drawn per week (weekends a little lighter).
            for week_start in range(-offset, len(days), 7):
                count = rng.choice((3, 3, 4, 4, 4)) if user.role == "nurse" else 4
                week = list(range(week_start, week_start + 7))
                keys = {
                    n: rng.random() ** (1.0 / (0.8 if (first_weekday + n) % 7 >= 5 else 1.0)) for n in week
                }
                working.update(sorted(week, key=lambda n: keys[n], reverse=True)[:count])
        for number, midnight in enumerate(days):
            weekend = (first_weekday + number) % 7 >= 5
            planned: list[_Shift] = []
            if user.pattern in ("day", "night", "rotating"):
                if number in working:
                    rotation = (number + offset) // 7 % 2  # rotating staff alternate day and night weeks
                    night = user.pattern == "night" or (user.pattern == "rotating" and rotation == 1)
                    first = 7.0 if user.role == "nurse" else 8.0
                    begin = midnight + ((first + 12) if night else first) * HOUR
                    planned.append(
                        _Shift(begin, begin + 12 * HOUR, "night" if night else "day", user.department)
                    )
            elif user.pattern == "weekday":
                if not weekend and rng.random() > 0.06:
                    begin = midnight + rng.uniform(7.5, 8.5) * HOUR
                    planned.append(
                        _Shift(begin, midnight + rng.uniform(17.0, 19.0) * HOUR, "weekday", user.department)
                    )
                elif weekend and rng.random() < 0.15:  # weekend ward round
                    begin = midnight + rng.uniform(8.5, 9.5) * HOUR
                    planned.append(
                        _Shift(begin, begin + rng.uniform(3, 5) * HOUR, "weekend", user.department)
                    )
                oncall = 0.10 if user.role == "clinician" else 0.03
                if rng.random() < oncall:
                    planned.append(
                        _Shift(midnight + 19 * HOUR, midnight + 31 * HOUR, "oncall", user.department)
                    )
            else:  # office hours, researchers and administrators
                present = 0.75 if user.role == "researcher" else 0.9
                if not weekend and rng.random() < present:
                    begin = midnight + rng.uniform(8.0, 9.5) * HOUR
                    planned.append(_Shift(begin, begin + rng.uniform(6.5, 8.5) * HOUR, "office", ""))
            for shift in planned:
                if leave[0] <= shift.start < leave[1] or rng.random() < 0.02:  # leave, or off sick
                    continue
                if shift.end <= self.start or shift.start >= self.end:
                    continue
                if (
                    user.role in ("nurse", "clinician")
                    and shift.kind in ("day", "night")
                    and rng.random() < 0.012
                ):
                    # Floating: covering another department for a shift (its workstations, its patients).
                    others = [d for d in self.departments if d != user.department]
                    shift.department = rng.choice(others)
                    self.benign["float_shifts"] += 1
                shifts.append(shift)
        return shifts

    # --- building accesses

    def record(
        self,
        user: _User,
        at: float,
        addr: str,
        agent: str,
        label: str | None = None,
        **details: Unpack[_Details],
    ) -> None:
        """Keep one access if it falls inside the window (shifts overhang both of its ends)."""
        fields = self.access(user, at, addr, agent, **details)
        stamp = fields["at"].timestamp()
        if self.start <= stamp < self.end:
            self.drafts.append(_Draft(stamp, len(self.drafts), fields, label))

    def ask(
        self,
        user: _User,
        session: _Session,
        at: float,
        label: str | None = None,
        *,
        agent: str | None = None,
        **details: Unpack[_Details],
    ) -> None:
        """One access from the session's device, in the browser it ran at `at` unless `agent` pins one.

        A burst of accesses begun before the device's browser update keeps the browser it began in.
        """
        self.record(
            user, at, session.addr, session.device.agent(at) if agent is None else agent, label, **details
        )

    def _ask_template(
        self,
        user: _User,
        session: _Session,
        at: float,
        template: _Template,
        text: str,
        patients: Sequence[int],
        rows: int,
        *,
        kind: str = "question",
        project: str = "",
        agent: str | None = None,
        label: str | None = None,
    ) -> None:
        """An answer with the template's tables and columns about `patients` (none for aggregates)."""
        self.ask(
            user,
            session,
            at,
            label,
            agent=agent,
            kind=kind,
            patients=patients,
            rows=rows,
            tables=template.tables,
            columns=template.columns,
            question=text,
            project=project,
        )

    def _answer(
        self,
        user: _User,
        at: float,
        addr: str,
        agent: str,
        subject: int,
        asked: _Asked,
        *,
        breakglass: bool = False,
        label: str | None = None,
    ) -> None:
        """The answer to a question about one patient, under the emergency's purpose when `breakglass`."""
        self.record(
            user,
            at,
            addr,
            agent,
            label,
            patients=(subject,),
            rows=asked.rows,
            tables=asked.tables,
            columns=asked.columns,
            question=asked.text,
            breakglass=breakglass,
            purpose="BTG" if breakglass else None,
        )

    def _break_glass(
        self,
        user: _User,
        session: _Session,
        at: float,
        subject: int,
        reason: str,
        *,
        agent: str | None = None,
        label: str | None = None,
    ) -> None:
        """Break-glass declared for one patient; the reason given is kept as the event's question."""
        self.ask(
            user,
            session,
            at,
            label,
            agent=agent,
            kind="breakglass_open",
            status="ok",
            patients=(subject,),
            question=reason,
            breakglass=True,
            purpose="BTG",
        )

    def access(
        self,
        user: _User,
        at: float,
        addr: str,
        agent: str,
        *,
        kind: str = "question",
        status: str = "answered",
        patients: Iterable[int] = (),
        rows: int = 0,
        tables: Sequence[str] = (),
        columns: Sequence[str] = (),
        question: str = "",
        breakglass: bool = False,
        purpose: str | None = None,
        project: str = "",
        masked: bool = False,
    ) -> dict[str, Any]:
        """The fields of one access (all but seq), with what the answer showed worked out for the role."""
        shown = tuple(sorted(set(patients)))
        role = user.role
        identifiers = 0
        if kind in ("question", "export") and status == "answered":
            for column in columns:
                if column not in IDENTIFIER_COLUMNS:
                    continue
                if role in ("researcher", "administrator") or (
                    column == _NATIONAL_ID and role in _PARTIAL_FOR
                ):
                    masked = True
                elif rows > 0:  # an empty answer shows nobody's identifiers
                    identifiers += 1
            if role in ("researcher", "administrator"):
                masked = True
        else:
            tables, columns = (), ()
        if purpose is None:
            purpose = {"researcher": "HRESCH", "administrator": "HOPERAT"}.get(role, "TREAT")
            if kind not in ("question", "export", "breakglass_open"):
                purpose = ""
        anonymous = kind == "login_failed"  # a failed sign-in is recorded without an account behind it
        return {
            "at": dt.datetime.fromtimestamp(round(at), dt.UTC),
            "username": user.username,
            "role": "" if anonymous else role,
            "department": "" if anonymous else user.department,
            "staff_id": None if anonymous else user.staff_id,
            "projects": () if anonymous else user.projects,
            "kind": kind,
            "status": status,
            "patients": shown,
            "patients_count": len(shown),
            "rows": rows,
            "tables": tuple(tables),
            "columns": tuple(columns),
            "identifiers_shown": identifiers,
            "masked": masked,
            "question": question,
            "client_addr": addr,
            "user_agent": agent,
            "breakglass": breakglass,
            "purpose": purpose,
            "project": project,
        }

    def _session_addr(self, device: _Device, rng: random.Random) -> str:
        return device.addr or f"{_VPN_PREFIX}.{rng.randint(0, 3)}.{rng.randint(2, 254)}"

    def _device_for(self, user: _User, shift: _Shift, rng: random.Random) -> _Device:
        if shift.kind == "oncall" and user.remote is not None and rng.random() < 0.85:
            self.benign["remote_sessions"] += 1
            return user.remote
        if shift.department != user.department and shift.department:
            return rng.choice(self._pool(shift.department))
        if user.role in ("researcher", "administrator") and user.remote is not None and rng.random() < 0.1:
            self.benign["remote_sessions"] += 1
            return user.remote
        if not user.devices or rng.random() < 0.04:
            pool = self._pool(user.department) if user.department else []
            if pool:
                self.benign["new_workstation_sessions"] += 1
                return rng.choice(pool)
        if not user.devices:
            return self._laptop(rng)
        weights = [1.0 / (position + 1) for position in range(len(user.devices))]
        return rng.choices(user.devices, weights)[0]

    # --- benign work

    def run_benign(self) -> None:
        for user in self.users:
            self.shifts[user.username] = self._schedule(user)
            for shift in self.shifts[user.username]:
                if user.role in CLINICAL_ROLES:
                    self._clinical_shift(user, shift)
                elif user.role == "researcher":
                    self._office_shift(user, shift, self._research_question)
                else:
                    self._office_shift(user, shift, self._admin_question)

    def _sessions(self, user: _User, shift: _Shift, questions: int, per_session: float) -> list[list[float]]:
        """Question times grouped into sessions spread over the shift; opens each session in `shift`."""
        rng = user.rng
        count = max(1, min(questions, round(questions / per_session + rng.uniform(-0.5, 0.5))))
        slot = (shift.end - shift.start) / count
        result: list[list[float]] = []
        for index in range(count):
            share = questions // count + (1 if index < questions % count else 0)
            begin = shift.start + index * slot + rng.uniform(0.02, 0.85) * slot
            times: list[float] = []
            at = begin + rng.uniform(20, 90)
            for _ in range(share):
                times.append(at)
                at += min(25 * MINUTE, rng.lognormvariate(math.log(3 * MINUTE), 0.7))
            close = (times[-1] if times else begin) + rng.uniform(1, 8) * MINUTE
            device = self._device_for(user, shift, rng)
            shift.sessions.append(_Session(begin, close, device, self._session_addr(device, rng)))
            result.append(times)
        return result

    def _open(self, user: _User, session: _Session) -> None:
        rng = user.rng
        if rng.random() < 0.03:  # a mistyped password just before, in the browser the session opens in
            at = session.start - rng.uniform(10, 40)
            agent = session.device.agent(session.start)
            self.ask(user, session, at, agent=agent, kind="login_failed", status="denied")
        self.ask(user, session, session.start, kind="login", status="ok")

    def _close(self, user: _User, session: _Session) -> None:
        if user.rng.random() < 0.7:  # otherwise the session simply times out
            self.ask(user, session, session.end, kind="logout", status="ok")

    def _clinical_shift(self, user: _User, shift: _Shift) -> None:
        rng = user.rng
        mean = {"nurse": 10.0, "clinician": 16.0, "department_head": 12.0}[user.role]
        mean *= {"night": 0.7, "weekend": 0.45, "oncall": 0.18}.get(shift.kind, 1.0)
        # Fewer questions on a quiet ward: the demo hospital staffs departments for more patients
        # than it has at some moments, and nobody looks up patients who are not there.
        start = shift.start + HOUR
        workload = len(
            set(self.hospital.present(shift.department, start))
            | set(self.hospital.team(user.staff_id, start))
        )
        full = {"nurse": 5.0, "clinician": 8.0, "department_head": 10.0}[user.role]
        mean *= min(1.0, max(0.3, (workload + 1) / (full + 1)))
        questions = _poisson(rng, mean)
        if shift.kind == "oncall" and questions == 0:
            return  # a quiet night on call: nobody phoned
        per_session = {"nurse": 2.5, "clinician": 5.0, "department_head": 5.0}[user.role]
        per_session = 2.0 if shift.kind == "oncall" else per_session
        if shift.kind == "oncall":
            self.benign["oncall_nights"] += 1
        shift.questions = questions
        plan = self._sessions(user, shift, questions, per_session)
        pool: list[int] = []
        review = user.role == "department_head" and shift.kind == "weekday" and rng.random() < 0.08
        emergency = shift.kind in ("day", "night") and rng.random() < (
            0.05 if shift.department in ("EMERG", "CRITC") else 0.004
        )
        for index, (session, times) in enumerate(zip(shift.sessions, plan, strict=True)):
            self._open(user, session)
            pool = self._my_patients(user, shift, session.start, pool)
            for position, at in enumerate(times):
                first = index == 0 and position == 0
                self._clinical_question(user, shift, session, at, pool, handover=first)
            if review and index == len(plan) // 2:
                self._quality_review(user, shift, session)
            if emergency and index == min(1, len(plan) - 1):
                self._breakglass(user, shift, session)
            self._close(user, session)

    def _my_patients(self, user: _User, shift: _Shift, at: float, previous: list[int]) -> list[int]:
        """The patients this person is looking after this session: care-team first, then the ward."""
        rng = user.rng
        home = shift.department == user.department
        team = self.hospital.team(user.staff_id, at) if home else []
        ward: tuple[int, ...] = ()
        if user.role == "nurse" and home and user.home_unit:
            ward = self.hospital.present(user.home_unit, at, unit=True)
        department = self.hospital.present(shift.department, at)
        now = set(team) | set(department) | set(ward)
        target = {"nurse": rng.randint(4, 6), "clinician": rng.randint(6, 12)}.get(
            user.role, rng.randint(8, 15)
        )
        keep = [s for s in previous if s in now]
        chosen = list(dict.fromkeys([*team, *keep]))
        for source in (ward, department):
            extra = [s for s in source if s not in chosen]
            rng.shuffle(extra)
            chosen.extend(extra[: max(0, target - len(chosen))])
        return chosen

    def _ref(self, user: _User, subject: int, columns: list[str]) -> str:
        """The patient as the user names them: usually the id, sometimes the name (then shown)."""
        rng = user.rng
        if rng.random() < user.by_name and subject in self.hospital.names:
            given, family = self.hospital.names[subject]
            columns.extend(c for c in _NAME_COLUMNS if c not in columns)
            return f"{given} {family}"
        return rng.choice(("patient {s}", "patient {s}", "{s}", "pt {s}", "subject {s}")).format(s=subject)

    def _fill(self, rng: random.Random, text: str, **values: object) -> str:
        return text.format(
            lab=rng.choice(self.hospital.labs[:12]),
            vital=rng.choice(self.hospital.vitals),
            drug=rng.choice(self.hospital.drugs[:20]),
            n=rng.choice((2, 3, 5, 7, 14)),
            **values,
        )

    def _patient_question(
        self, user: _User, subject: int, name: str, *, rng: random.Random | None = None
    ) -> _Asked:
        """A question about one patient from template `name`."""
        rng = rng or user.rng
        template = _PATIENT[name]
        columns = list(template.columns)
        ref = self._ref(user, subject, columns)
        text = self._fill(rng, rng.choice(template.texts), p=ref)
        tables = list(template.tables)
        if any(c.startswith("patient_identity.") for c in columns) and "patient_identity" not in tables:
            tables.append("patient_identity")
        return _Asked(text, tables, columns, rng.randint(*template.rows))

    def _clinical_question(
        self, user: _User, shift: _Shift, session: _Session, at: float, pool: list[int], *, handover: bool
    ) -> None:
        rng = user.rng
        agent = session.device.agent(at)
        name = rng.choices(list(user.mix), list(user.mix.values()))[0]
        if handover and user.role == "nurse" and rng.random() < 0.6:
            name = "unit_list"
        if name in ("unit_list", "dept_filter"):
            self._ward_question(user, shift, session, at, name)
            return
        if rng.random() < 0.02:  # a garbled question the parser does not understand, asked again properly
            garbled = rng.choice(_ABSTAINED).format(id=rng.choice(pool) if pool else "")
            self.ask(
                user, session, at - rng.uniform(25, 90), agent=agent, status="abstained", question=garbled
            )
            self.benign["rephrased_typos"] += 1
        draw = rng.random()
        subject: int | None = None
        if draw < 0.015:  # a mistyped id lands outside the user's scope
            base = rng.choice(pool) if pool else rng.choice(self.hospital.subjects)
            typo = _typo(rng, base)
            text = self._fill(rng, rng.choice(_PATIENT[name].texts), p=f"patient {typo}")
            self.ask(user, session, at, status="denied", question=text)
            self.benign["denials"] += 1
            return
        if draw < 0.035:  # a consult or a handover question about another department's patient
            others = [d for d in self.departments if d != shift.department]
            candidates = self.hospital.present(rng.choice(others), at)
            if candidates:
                subject = rng.choice(candidates)
                self.benign["consults"] += 1
        elif draw < (0.065 if user.role == "nurse" else 0.085):  # results and letters after discharge
            recent = self.hospital.recent(shift.department, at)
            if recent:
                subject = rng.choice(recent)
                name = rng.choice(("discharge", "lab", "micro", "notes"))
        elif draw < 0.17 or not pool:  # someone else's patient on the ward: cover, a colleague asks
            candidates = self.hospital.present(shift.department, at)
            if candidates:
                subject = rng.choice(candidates)
        if subject is None and not pool:  # an empty ward: last week's discharges, or who is coming in
            recent = self.hospital.recent(shift.department, at)
            if not recent or rng.random() < 0.5:
                self._ward_question(user, shift, session, at, "unit_list")
                return
            subject = rng.choice(recent)
            name = rng.choice(("discharge", "lab", "micro", "notes"))
        if subject is None:
            subject = rng.choice(pool)
        if subject in user.family:
            self.benign["family_in_care_accesses"] += 1
        self._answer(user, at, session.addr, agent, subject, self._patient_question(user, subject, name))

    def _ward_question(self, user: _User, shift: _Shift, session: _Session, at: float, name: str) -> None:
        rng = user.rng
        if name == "unit_list":
            units = self.hospital.units_of.get(shift.department, [])
            unit = (
                user.home_unit
                if user.home_unit in units and rng.random() < 0.8
                else rng.choice(units or [""])
            )
            patients = self.hospital.present(unit, at, unit=True)[:30]
            text = rng.choice(_UNIT_LIST.texts).format(unit=unit)
            self._ask_template(user, session, at, _UNIT_LIST, text, patients, len(patients))
            return
        present = list(self.hospital.present(shift.department, at))
        rng.shuffle(present)
        matches = present[: rng.randint(0, min(8, len(present)))]
        department = _department_name(shift.department)
        text = self._fill(rng, rng.choice(_DEPARTMENT_FILTER.texts), dept=department.lower())
        rows = sum(rng.randint(*_DEPARTMENT_FILTER.rows) for _ in matches)
        self._ask_template(user, session, at, _DEPARTMENT_FILTER, text, matches, rows)

    def _quality_review(self, user: _User, shift: _Shift, session: _Session) -> None:
        """A department head's audit of discharges: many of the department's patients, some long gone."""
        rng = user.rng
        self.benign["quality_reviews"] += 1
        at = session.end + rng.uniform(2, 10) * MINUTE
        department = _department_name(user.department)
        candidates = self.hospital.discharged(user.department, at, 90) + list(
            self.hospital.present(user.department, at)
        )
        candidates = sorted(set(candidates))
        last: list[int] = []
        for _ in range(rng.randint(3, 8)):
            take = min(len(candidates), rng.randint(15, 60))
            last = rng.sample(candidates, take)
            text = self._fill(rng, rng.choice(_QUALITY.texts), dept=department.lower())
            rows = sum(rng.randint(*_QUALITY.rows) for _ in last)
            self._ask_template(user, session, at, _QUALITY, text, last, rows)
            at += rng.uniform(1, 6) * MINUTE
        if last and rng.random() < 0.3:
            self.benign["benign_exports"] += 1
            rows = len(last) * rng.randint(1, 4)
            self._ask_template(user, session, at, _QUALITY, text, last, rows, kind="export")

    def _breakglass(self, user: _User, shift: _Shift, session: _Session) -> None:
        """Legitimate break-glass: a patient arriving in an emergency, admitted afterwards."""
        rng = user.rng
        at = session.start + rng.uniform(2, 20) * MINUTE
        arriving = self.hospital.arriving(shift.department, at - HOUR, 5 * HOUR)
        if not arriving:
            others = [d for d in self.departments if d != shift.department]
            arriving = self.hospital.arriving(rng.choice(others), at - HOUR, 5 * HOUR)
        if not arriving:
            return
        subject = rng.choice(arriving)
        self.benign["breakglass"] += 1
        agent = session.device.agent(at)  # the look-ups that follow stay in the browser the glass broke in
        self._break_glass(user, session, at, subject, rng.choice(_BREAKGLASS_REASONS))
        for name in rng.sample(
            ("meds", "diagnoses", "notes", "lab", "discharge", "contacts"), rng.randint(2, 4)
        ):
            at += rng.uniform(0.5, 4) * MINUTE
            asked = self._patient_question(user, subject, name)
            self._answer(user, at, session.addr, agent, subject, asked, breakglass=True)

    def _office_shift(
        self, user: _User, shift: _Shift, question: Callable[[_User, _Session, float], None]
    ) -> None:
        rng = user.rng
        mean = 8.0 if user.role == "researcher" else 7.0
        questions = max(1, _poisson(rng, mean))
        shift.questions = questions
        plan = self._sessions(user, shift, questions, 4.5)
        for session, times in zip(shift.sessions, plan, strict=True):
            self._open(user, session)
            for at in times:
                question(user, session, at)
            self._close(user, session)

    def _research_question(self, user: _User, session: _Session, at: float) -> None:
        rng = user.rng
        projects = [p for p in self.projects if p.code in user.projects]
        project = rng.choice(projects)
        template = rng.choice(_RESEARCH)
        share = rng.uniform(0.4, 1.0)
        patients = rng.sample(
            project.patients, max(min(len(project.patients), 11), round(share * len(project.patients)))
        )
        self._research_answer(user, session, at, project, template, project.condition, patients)
        if rng.random() < 0.04:  # a de-identified extract for the analysis
            self.benign["benign_exports"] += 1
            self._research_answer(
                user,
                session,
                at + rng.uniform(1, 4) * MINUTE,
                project,
                _RESEARCH[3],
                project.condition,
                list(project.patients),
                kind="export",
            )

    def _research_answer(
        self,
        user: _User,
        session: _Session,
        at: float,
        project: _Project,
        template: _Template,
        condition: str,
        patients: Sequence[int],
        *,
        kind: str = "question",
        label: str | None = None,
    ) -> None:
        rng = user.rng
        low, high = template.rows
        rows = len(patients) * rng.randint(1, 3) if low < 0 else rng.randint(low, high)
        text = self._fill(rng, rng.choice(template.texts), c=condition)
        self._ask_template(
            user, session, at, template, text, patients, rows, kind=kind, project=project.code, label=label
        )

    def _admin_question(self, user: _User, session: _Session, at: float) -> None:
        rng = user.rng
        template = rng.choice(_ADMIN)
        unit = rng.choice(sorted(self.hospital.unit_department))
        department = _department_name(self.hospital.unit_department[unit]).lower()
        text = self._fill(rng, rng.choice(template.texts), unit=unit, dept=department)
        self._ask_template(user, session, at, template, text, (), rng.randint(*template.rows))

    # --- injected scenarios

    def inject(self) -> None:
        if self.instances <= 0:
            return
        rng = _rng(self.seed, "scenarios")
        injectors: dict[str, Callable[[random.Random, str, float], dict[str, Any] | None]] = {
            "bulk_export": self._bulk_export,
            "family_snooping": self._family_snooping,
            "coworker_snooping": self._coworker_snooping,
            "vip_snooping": self._vip_snooping,
            "after_hours": self._after_hours,
            "credential_sharing": self._credential_sharing,
            "slow_exfiltration": self._slow_exfiltration,
            "coordinated_aggregation": self._coordinated_aggregation,
            "masking_rephrase": self._masking_rephrase,
            "research_outside_cohort": self._research_outside_cohort,
        }
        span = self.end - self.train_end
        for kind in SCENARIO_KINDS:
            for index in range(self.instances):
                label = f"{kind}-{index + 1:02d}"
                injected: dict[str, Any] | None = None
                mine: list[_Draft] = []
                for attempt in range(40):
                    # Instances spread over the evaluation period: one slice each, then anywhere.
                    slot = (index + rng.random()) / self.instances if attempt < 20 else rng.random()
                    before = len(self.drafts)
                    injected = injectors[kind](rng, label, self.train_end + slot * span)
                    mine = [d for d in self.drafts[before:] if d.label == label]
                    if injected is not None and mine:
                        break
                if injected is None or not mine:
                    raise SimulationError(
                        f"Could not place {label}: the warehouse has too few suitable staff or patients "
                        "for this many instances in the evaluation period (try fewer --instances)."
                    )
                injected.update(
                    id=label,
                    kind=kind,
                    start=_iso(min(d.at for d in mine)),
                    end=_iso(max(d.at for d in mine)),
                    accesses=len(mine),
                )
                self.scenarios.append(injected)

    def _candidates(self, rng: random.Random, roles: Sequence[str], exclude_used: bool = True) -> list[_User]:
        found = [
            u for u in self.users if u.role in roles and (not exclude_used or u.username not in self.used)
        ]
        rng.shuffle(found)
        return found

    def _work_shift_near(
        self, user: _User, when: float, *, kinds: Sequence[str] = ("day", "night", "weekday", "office")
    ) -> _Shift | None:
        """The user's evaluation-period shift with sessions closest to `when` (within four days)."""
        best: _Shift | None = None
        for shift in self.shifts.get(user.username, []):
            distance = abs(shift.start - when)
            if (
                shift.kind in kinds
                and self._usable(shift)
                and distance < 4 * DAY
                and (best is None or distance < abs(best.start - when))
            ):
                best = shift
        return best

    def _usable(self, shift: _Shift) -> bool:
        """A shift of normal work, wholly inside the evaluation period, for misuse to hide in."""
        return (
            shift.questions >= 3
            and bool(shift.sessions)
            and shift.sessions[0].start >= self.train_end
            and shift.sessions[-1].end < self.end
        )

    def _busy(self, user: _User, begin: float, end: float) -> bool:
        return any(s.start < end and s.end > begin for s in self.shifts.get(user.username, []))

    def _moment(self, rng: random.Random, shift: _Shift) -> tuple[_Session, float]:
        session = rng.choice(shift.sessions)
        return session, rng.uniform(session.start + MINUTE, max(session.end, session.start + 2 * MINUTE))

    def _unrelated(self, user: _User, subject: int, *moments: float) -> bool:
        return all(
            self.relations.relation(user.staff_id, user.department, subject, t) < UNIT for t in moments
        )

    def _signed_in(
        self,
        rng: random.Random,
        user: _User,
        begin: float,
        addr: str,
        agent: str,
        patients: Sequence[int],
        names: Sequence[str],
        *,
        most: int,
        pause: Callable[[], float],
        label: str,
    ) -> float:
        """A sign-in, then four to `most` look-ups about the given patients; returns when the user is done."""
        self.record(user, begin, addr, agent, label, kind="login", status="ok")
        at = begin + rng.uniform(20, 90)
        for _ in range(rng.randint(4, most)):
            subject = rng.choice(patients)
            asked = self._patient_question(user, subject, rng.choice(names), rng=rng)
            self._answer(user, at, addr, agent, subject, asked, label=label)
            at += pause()
        return at

    def _snoop(
        self,
        rng: random.Random,
        label: str,
        when: float,
        roles: Sequence[str],
        targets_of: Callable[[_User], Sequence[int]],
        what: str,
    ) -> dict[str, Any] | None:
        for user in self._candidates(rng, roles):
            shift = self._work_shift_near(user, when, kinds=("day", "night", "weekday"))
            if shift is None:
                continue
            session, at = self._moment(rng, shift)
            looks = rng.randint(1, 3)
            moments = [at]
            for _ in range(looks + 1):
                moments.append(moments[-1] + rng.uniform(1, 9) * MINUTE)
            targets = [
                s
                for s in targets_of(user)
                if self.hospital.alive(s, at) and self._unrelated(user, s, *moments)
            ]
            if not targets:
                continue
            # Prefer a target the user has no relationship with at all, not even a recent stay.
            strict = [
                s
                for s in targets
                if all(self.relations.relation(user.staff_id, user.department, s, t) == 0 for t in moments)
            ]
            target = rng.choice(strict or targets)
            self.used.add(user.username)
            self._snoop_accesses(rng, user, session, moments, target, looks, label)
            return {
                "users": [user.username],
                "targets": [target],
                "description": f"{_who(user)} looks at {what} "
                f"patient {target} without a treatment relationship, amid a normal shift.",
            }
        return None

    def _snoop_accesses(
        self,
        rng: random.Random,
        user: _User,
        session: _Session,
        moments: list[float],
        target: int,
        looks: int,
        label: str,
    ) -> None:
        agent = session.device.agent(moments[0])
        given, family = self.hospital.names.get(target, ("", ""))
        style = rng.random()
        step = 0
        breakglass = False
        if style < 0.25 and family:  # finds the record by searching the surname
            same = self.hospital.by_surname.get(family.lower(), [target])[:12]
            text = rng.choice(_SURNAME_SEARCH.texts).format(f=family)
            self._ask_template(user, session, moments[0], _SURNAME_SEARCH, text, same, len(same), label=label)
            step = 1
        elif style < 0.5:  # refused first (not their patient), then breaks the glass with a thin reason
            text = f"What is going on with {given} {family}?" if given else f"notes for patient {target}"
            self.ask(user, session, moments[0], label, status="denied", question=text)
            at = moments[0] + rng.uniform(20, 60)
            reason = rng.choice(
                ("urgent review", "patient asked me to check results", "clinical query from family")
            )
            self._break_glass(user, session, at, target, reason, agent=agent, label=label)
            step, breakglass = 1, True
        for moment in moments[step : step + looks]:
            name = rng.choice(("diagnoses", "notes", "admission", "lab", "meds", "discharge"))
            asked = self._patient_question(user, target, name, rng=rng)
            if rng.random() < 0.3 and given:
                asked = asked._replace(text=asked.text.replace(f"patient {target}", f"{given} {family}"))
                asked.columns.extend(c for c in _NAME_COLUMNS if c not in asked.columns)
                if "patient_identity" not in asked.tables:
                    asked.tables.append("patient_identity")
            self._answer(user, moment, session.addr, agent, target, asked, breakglass=breakglass, label=label)

    def _family_snooping(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        return self._snoop(
            rng,
            label,
            when,
            ("nurse", "clinician", "department_head"),
            lambda user: sorted(user.family),
            "a family member (shared surname or address),",
        )

    def _coworker_snooping(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        patients = self.relations.patients

        def coworkers(user: _User) -> list[int]:
            found = []
            for subject in self.hospital.subjects:
                facts = patients[subject]
                if not facts.employee or facts.staff_id == user.staff_id:
                    continue
                colleague = self.relations.staff.get(facts.staff_id) if facts.staff_id is not None else None
                if colleague is None or colleague.department != user.department:
                    found.append(subject)
            return found

        return self._snoop(
            rng,
            label,
            when,
            ("nurse", "clinician", "department_head"),
            coworkers,
            "a coworker from another department,",
        )

    def _vip_snooping(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        vips = [s for s in self.hospital.subjects if self.relations.patients[s].vip]
        return self._snoop(
            rng, label, when, ("nurse", "clinician", "department_head"), lambda user: vips, "a VIP"
        )

    def _bulk_export(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        for user in self._candidates(rng, ("clinician", "department_head", "nurse")):
            shift = self._work_shift_near(user, when, kinds=("day", "night", "weekday"))
            if shift is None:
                continue
            self.used.add(user.username)
            session, at = self._moment(rng, shift)
            agent = session.device.agent(at)  # the preview and the exports come from one browser window
            subjects = self.hospital.subjects
            count = min(len(subjects) * 4 // 5, rng.randint(200, 600))
            patients = rng.sample(subjects, count)
            text = rng.choice(_BULK_EXPORT.texts)
            self._ask_template(
                user, session, at, _BULK_EXPORT, text + " (first 50)", patients[:50], 50, label=label
            )
            at += rng.uniform(1, 5) * MINUTE
            rows = count * rng.randint(*_BULK_EXPORT.rows)
            self._ask_template(
                user, session, at, _BULK_EXPORT, text, patients, rows, kind="export", agent=agent, label=label
            )
            if rng.random() < 0.4:
                more = rng.sample(subjects, min(len(subjects) * 4 // 5, rng.randint(150, 400)))
                at += rng.uniform(2, 10) * MINUTE
                rows = len(more) * rng.randint(*_MEDICATION_EXPORT.rows)
                text = _MEDICATION_EXPORT.texts[0]
                self._ask_template(
                    user,
                    session,
                    at,
                    _MEDICATION_EXPORT,
                    text,
                    more,
                    rows,
                    kind="export",
                    agent=agent,
                    label=label,
                )
            return {
                "users": [user.username],
                "description": f"{_who(user)} exports {count} patients' identities and diagnoses in one go.",
            }
        return None

    def _after_hours(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        for user in self._candidates(rng, ("clinician", "nurse", "department_head")):
            if user.pattern not in ("day", "weekday"):
                continue
            midnight = math.floor(when / DAY) * DAY
            night = midnight + rng.uniform(-1.5, 3.5) * HOUR  # between 22:30 and 03:30
            if (
                night < self.train_end
                or night > self.end - 2 * HOUR
                or self._busy(user, night - 8 * HOUR, night + 8 * HOUR)
            ):
                continue
            present = list(self.hospital.present(user.department, night))
            if len(present) < 2:
                continue
            self.used.add(user.username)
            device = (
                user.remote
                if user.remote is not None and rng.random() < 0.6
                else rng.choice(user.devices or self._pool(user.department))
            )
            addr = self._session_addr(device, rng)
            agent = device.agent(night)
            rng.shuffle(present)
            patients = present[: rng.randint(2, min(6, len(present)))]
            others = [s for s in self.hospital.subjects if self._unrelated(user, s, night)]
            patients += rng.sample(others, min(len(others), rng.randint(0, 2)))
            self._signed_in(
                rng,
                user,
                night,
                addr,
                agent,
                patients,
                ("notes", "diagnoses", "lab", "meds", "contacts", "identity", "admission"),
                most=10,
                pause=lambda: rng.uniform(1, 8) * MINUTE,
                label=label,
            )
            return {
                "users": [user.username],
                "description": f"{_who(user)}, a {user.pattern} worker, is active "
                "in the night on a day off, looking at a handful of patients.",
            }
        return None

    def _credential_sharing(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        for user in self._candidates(rng, ("nurse", "clinician")):
            borrower_department = rng.choice([d for d in self.departments if d != user.department])
            overlap = rng.random() < 0.6
            if overlap:
                shift = self._work_shift_near(user, when, kinds=("day", "night", "weekday"))
                if shift is None:
                    continue
                session = rng.choice(shift.sessions)
                begin = session.start + rng.uniform(-20, 20) * MINUTE
            else:
                begin = math.floor(when / DAY) * DAY + rng.uniform(8, 17) * HOUR
                if self._busy(user, begin - 6 * HOUR, begin + 6 * HOUR):
                    continue
            if begin < self.train_end or begin > self.end - 3 * HOUR:
                continue
            patients = [
                s
                for s in self.hospital.present(borrower_department, begin)
                if self._unrelated(user, s, begin)
            ]
            if not patients:
                continue
            self.used.add(user.username)
            if rng.random() < 0.5:  # a colleague's phone or laptop on the guest network
                device = _Device(
                    f"10.240.{rng.randint(0, 7)}.{rng.randint(2, 254)}",
                    rng.choice(("android", "iphone")),
                    math.inf,
                )
            else:  # a workstation in the borrower's department
                device = rng.choice(self._pool(borrower_department))
            agent = device.agent(begin)
            at = self._signed_in(
                rng,
                user,
                begin,
                device.addr,
                agent,
                patients,
                ("lab", "meds", "vitals", "notes", "diagnoses", "panel"),
                most=12,
                pause=lambda: rng.lognormvariate(math.log(4 * MINUTE), 0.6),
                label=label,
            )
            if rng.random() < 0.5:
                self.record(user, at, device.addr, agent, label, kind="logout", status="ok")
            when_text = "while the owner is working" if overlap else "on the owner's day off"
            return {
                "users": [user.username],
                "description": f"the account of {_who(user)} is used by someone in "
                f"{borrower_department} from {device.addr} ({device.family}) {when_text}.",
            }
        return None

    def _exfiltration_query(
        self, rng: random.Random, user: _User, at: float, count: int
    ) -> tuple[list[int], str, tuple[str, ...]]:
        pool = [s for s in self.hospital.subjects if self._unrelated(user, s, at)]
        patients = rng.sample(pool, min(len(pool), count))
        wanted = rng.sample(
            (
                "patient_identity.phone",
                "patient_identity.address",
                "patient_identity.birth_date",
                "patient_identity.email",
                "patient_identity.postcode",
            ),
            rng.randint(1, 3),
        )
        text = rng.choice(
            (
                "patients admitted in {m} with their {w}",
                "List patients discharged last week with {w}",
                "show MRN, name and {w} of patients born before {y}",
                "{w} of patients with an appointment next month",
                "patients from {y} onwards with {w} and MRN",
            )
        ).format(
            m=rng.choice(("January", "March", "May", "August", "October")),
            w=" and ".join(c.split(".")[1].replace("_", " ") for c in wanted),
            y=rng.choice((1940, 1950, 1955, 1960, 1970)),
        )
        return patients, text, (*_LIST_COLUMNS, *wanted)

    def _slow_exfiltration(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        for user in self._candidates(rng, ("clinician", "nurse", "department_head")):
            shifts = [
                s
                for s in self.shifts.get(user.username, [])
                if self._usable(s) and s.kind in ("day", "night", "weekday")
            ]
            wanted = rng.randint(10, 20)
            # Ten working days at least, unless the evaluation period is too short to hold them.
            if len(shifts) < min(10, max(2, int((self.end - self.train_end) / DAY / 3))):
                continue
            chosen = sorted(rng.sample(shifts, min(wanted, len(shifts))), key=lambda s: s.start)
            self.used.add(user.username)
            for shift in chosen:
                for _ in range(rng.randint(1, 4)):
                    session, at = self._moment(rng, shift)
                    patients, text, columns = self._exfiltration_query(rng, user, at, rng.randint(20, 60))
                    self.ask(
                        user,
                        session,
                        at,
                        label,
                        patients=patients,
                        rows=len(patients),
                        tables=("patient_identity", "admissions"),
                        columns=columns,
                        question=text,
                    )
            return {
                "users": [user.username],
                "description": f"{_who(user)} adds a few queries a day, each "
                f"listing tens of unrelated patients with contact details, over {len(chosen)} working days.",
            }
        return None

    def _coordinated_aggregation(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        group: list[tuple[_User, _Shift]] = []
        departments: set[str] = set()
        size = rng.randint(3, 4)
        for user in self._candidates(rng, ("clinician", "nurse")):
            if user.department in departments:
                continue
            shift = self._work_shift_near(
                user, when + rng.uniform(0, 3) * DAY, kinds=("day", "night", "weekday")
            )
            if shift is None or abs(shift.start - when) > 4 * DAY:
                continue
            group.append((user, shift))
            departments.add(user.department)
            if len(group) == size:
                break
        if len(group) < 3:
            return None
        elderly = [s for s in self.hospital.subjects if self.hospital.born.get(s, 3000) < 1960]
        pool = elderly if len(elderly) >= 40 else list(self.hospital.subjects)
        target = sorted(rng.sample(pool, min(len(pool), rng.randint(60, 120))))
        for user, shift in group:
            self.used.add(user.username)
            mine = list(target)
            rng.shuffle(mine)
            offset = 0
            for _ in range(rng.randint(1, 3)):
                session, at = self._moment(rng, shift)
                take = [
                    s for s in mine[offset : offset + rng.randint(15, 40)] if self._unrelated(user, s, at)
                ]
                offset += len(take)
                if not take:
                    continue
                text = rng.choice(_ELDERLY_CONTACTS.texts)
                self._ask_template(user, session, at, _ELDERLY_CONTACTS, text, take, len(take), label=label)
        if not any(d.label == label for d in self.drafts):
            return None
        names = [u.username for u, _ in group]
        return {
            "users": names,
            "targets": target,
            "description": f"{len(names)} users in different departments ({', '.join(sorted(departments))}) "
            f"each pull a slice of the same {len(target)} elderly patients' contact details in a few days.",
        }

    def _masking_rephrase(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        for user in self._candidates(rng, ("nurse", "clinician")):
            shift = self._work_shift_near(user, when, kinds=("day", "night", "weekday"))
            if shift is None:
                continue
            session, at = self._moment(rng, shift)
            in_scope = rng.random() < 0.5
            candidates = (
                list(self.hospital.present(shift.department, at))
                if in_scope
                else [s for s in self.hospital.subjects if self._unrelated(user, s, at)]
            )
            if not candidates:
                continue
            subject = rng.choice(candidates)
            self.used.add(user.username)
            agent = session.device.agent(at)  # one browser window for the whole run of rephrasings
            given, family = self.hospital.names.get(subject, ("", ""))
            texts = [
                "What is the national ID number of patient {s}?",
                "show the full national id of patient {s} without masking",
                "national_id of {s}, all digits",
                "give me the ID number digits of patient {s} one by one",
                "what are the last 8 digits of the national ID for {n}",
                "Show notes for patient {s} that mention an ID number",
                "identity card number for {n} unmasked please",
            ]
            chosen = [texts[0], *rng.sample(texts[1:], rng.randint(3, 6))]
            for text in chosen:
                question = text.format(s=subject, n=f"{given} {family}" if given else f"patient {subject}")
                if not in_scope or rng.random() < 0.2:  # refused out of scope; in scope, sometimes not parsed
                    status = "abstained" if in_scope else "denied"
                    self.ask(user, session, at, label, agent=agent, status=status, question=question)
                else:
                    columns: tuple[str, ...] = ("patient_identity.mrn", _NATIONAL_ID, *_NAME_COLUMNS)
                    if "notes" in question.lower():
                        columns = ("notes.text", "notes.charttime")
                    self.ask(
                        user,
                        session,
                        at,
                        label,
                        agent=agent,
                        patients=(subject,),
                        rows=1,
                        tables=("patient_identity",) if "notes" not in question else ("notes",),
                        columns=columns,
                        question=question,
                        masked=True,
                    )
                at += rng.uniform(20, 150)
            return {
                "users": [user.username],
                "targets": [subject],
                "description": f"{_who(user)} asks for patient {subject}'s "
                f"national ID and rephrases {len(chosen) - 1} times after a "
                f"{'masked' if in_scope else 'refused'} answer.",
            }
        return None

    def _research_outside_cohort(self, rng: random.Random, label: str, when: float) -> dict[str, Any] | None:
        fresh = self._candidates(rng, ("researcher",))
        for user in fresh or self._candidates(rng, ("researcher",), exclude_used=False):
            shift = self._work_shift_near(user, when, kinds=("office",))
            if shift is None:
                continue
            project = rng.choice([p for p in self.projects if p.code in user.projects])
            options = []
            for prefix, condition in _OTHER_CONDITIONS:
                if any(prefix.startswith(p) or p.startswith(prefix) for p in project.cohort):
                    continue
                outside = [
                    s
                    for s in self.hospital.subjects
                    if self.relations.in_cohort(s, (prefix,))
                    and not self.relations.in_cohort(s, project.cohort)
                ]
                if len(outside) >= 8:
                    options.append((condition, outside))
            if not options:
                continue
            self.used.add(user.username)
            condition, outside = rng.choice(options)
            session, at = self._moment(rng, shift)
            for _ in range(rng.randint(2, 5)):
                patients = rng.sample(
                    outside, max(min(len(outside), 8), round(rng.uniform(0.5, 1.0) * len(outside)))
                )
                self._research_answer(
                    user, session, at, project, rng.choice(_RESEARCH), condition, patients, label=label
                )
                at += rng.uniform(2, 12) * MINUTE
            return {
                "users": [user.username],
                "description": f"{user.username} queries {condition} patients under {project.code} "
                f"({project.condition} cohort).",
            }
        return None

    # --- result

    def finish(self) -> list[tuple[Access, str | None]]:
        self.drafts.sort(key=lambda d: (d.at, d.order))
        return [
            (Access(seq=number, **draft.fields), draft.label)
            for number, draft in enumerate(self.drafts, start=1)
        ]


# --- helpers ------------------------------------------------------------------------------------


def _rng(seed: int, *parts: str) -> random.Random:
    """An independent stream per purpose, so one person's schedule never shifts another's."""
    return random.Random(":".join((str(seed), *parts)))  # noqa: S311 - a seeded simulation, not cryptography


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _typo(rng: random.Random, subject: int) -> int:
    """The id with two neighbouring digits swapped (or one changed when they are equal)."""
    digits = list(str(subject))
    position = rng.randrange(1, len(digits) - 1)
    if digits[position] != digits[position + 1]:
        digits[position], digits[position + 1] = digits[position + 1], digits[position]
    else:
        digits[position] = str((int(digits[position]) + 1) % 10)
    return int("".join(digits))


def _who(user: _User) -> str:
    return f"{user.username} ({user.role}, {user.department or 'no department'})"


def _department_name(code: str) -> str:
    department = DEPARTMENT_BY_CODE.get(code)
    return department.name if department is not None else code


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(round(at), dt.UTC).isoformat()


# --- entry point --------------------------------------------------------------------------------


def simulate(
    *,
    relations: Relations,
    target: WarehouseTarget,
    days: int = 60,
    train_days: int = 30,
    seed: int = 7,
    instances: int = 10,
    start: dt.datetime | None = None,
) -> tuple[dict[str, Any], list[tuple[Access, str | None]]]:
    """`days` of traffic ending at the warehouse's cut-off (or from `start`); scenarios after `train_days`.

    Returns the dataset header (window, users, projects, scenarios, counts) and the accesses in time order,
    each with its scenario id or None.
    """
    if days < 1:
        raise SimulationError("--days must be at least 1.")
    if train_days < 0:
        raise SimulationError("--train-days cannot be negative.")
    if days <= train_days:
        raise SimulationError(
            f"--days ({days}) must be more than --train-days ({train_days}): "
            "scenarios are injected in the days after training."
        )
    if instances < 0:
        raise SimulationError("--instances cannot be negative.")
    if start is not None and start.tzinfo is None:
        raise SimulationError("start must be an aware datetime.")
    hospital = _Hospital(relations, target)
    if start is None:
        end = hospital.cutoff
        # Whole calendar days, the last one cut at the extract's cut-off.
        begin = math.floor(end / DAY) * DAY - (days - 1) * DAY
    else:
        begin = start.timestamp()
        end = begin + days * DAY
    train_end = begin + train_days * DAY
    hospital.keep_window(begin, end)
    simulation = _Simulation(
        hospital, seed=seed, start=begin, end=end, train_end=train_end, instances=instances
    )
    simulation.run_benign()
    simulation.inject()
    rows = simulation.finish()
    user_days = {(a.username, a.at.date()) for a, _ in rows}
    labelled = Counter(label.rsplit("-", 1)[0] for _, label in rows if label)
    meta: dict[str, Any] = {
        "generator": "simulate_access",
        "seed": seed,
        "days": days,
        "train_days": train_days,
        "instances": instances,
        "start": _iso(begin),
        "train_end": _iso(train_end),
        "end": _iso(end),
        "cutoff": _iso(hospital.cutoff),
        "warehouse": target.describe(),
        "users": [
            {
                "username": u.username,
                "role": u.role,
                "department": u.department,
                "staff_id": u.staff_id,
                "pattern": u.pattern,
                "projects": list(u.projects),
            }
            for u in simulation.users
        ],
        "projects": {
            p.code: {
                "title": p.title,
                "cohort": list(p.cohort),
                "members": sorted(u.username for u in simulation.users if p.code in u.projects),
            }
            for p in simulation.projects
        },
        "scenarios": simulation.scenarios,
        "counts": {
            "users": len({a.username for a, _ in rows}),
            "user_days": len(user_days),
            "accesses": len(rows),
            "labelled": sum(labelled.values()),
            "labelled_by_kind": dict(sorted(labelled.items())),
        },
        "benign_oddities": dict(sorted(simulation.benign.items())),
    }
    return meta, rows
