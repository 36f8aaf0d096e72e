"""The demo hospital: every warehouse table's rows, generated deterministically from seed, size and date."""

from __future__ import annotations

import math
import random
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from itertools import accumulate, pairwise
from math import erf
from typing import Literal, TypeVar

from hisplatform.demo import DEMO_STAFF
from hisplatform.warehouse.catalog import chart, clinical, drugs, labs, names
from hisplatform.warehouse.catalog import notes as phrases
from hisplatform.warehouse.catalog.clinical import Condition
from hisplatform.warehouse.catalog.icd import diagnosis_titles, expand_diagnosis, icd10, procedure_titles
from hisplatform.warehouse.organisation import CARE_UNITS, DEPARTMENT_BY_CODE, DEPARTMENTS
from hisplatform.warehouse.schema import tables

Row = tuple[object, ...]
T = TypeVar("T")

DAY = 1440  # minutes; every time inside the generator is whole minutes since the clock's base
HOUR = 60
# How far back the extract reaches: three years of admissions, visits and results.
HISTORY_DAYS = 3 * 365 + 1
# Days of calendar kept before the window, so times computed just before its start still format.
_SLACK_DAYS = 7
_HM: tuple[str, ...] = tuple(f" {m // 60:02d}:{m % 60:02d}:00" for m in range(DAY))

# Integer seeds for the independent random streams; a stream per table and purpose keeps each table's
# rows the same whatever else is generated, so a table can be regenerated on its own (cost re-reads labs).
_PLAN, _STAFF, _PATIENT, _TEAM, _DX, _PX, _LAB_ORDERS, _LAB_VALUES, _RX, _MICRO, _CHART, _FLUIDS, _NOTES = (
    range(13)
)


def _stream(seed: int, stream: int, key: int) -> random.Random:
    return random.Random((seed << 40) ^ (stream << 32) ^ key)


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    """One item of (item, weight) pairs."""
    total = sum(weight for _, weight in weighted)
    point = rng.random() * total
    for item, weight in weighted:
        point -= weight
        if point < 0:
            return item
    return weighted[-1][0]


def _lognormal_minutes(rng: random.Random, median_minutes: float, sigma: float, cap: float) -> int:
    return max(1, int(min(cap, rng.lognormvariate(math.log(median_minutes), sigma))))


def extract_cutoff(reference_date: date) -> datetime:
    """The moment the extract was taken: the start of the reference date. Nothing happens at or after it."""
    return datetime.combine(reference_date, time(0, 0))


# --------------------------------------------------------------------------------------------- clock


class _Clock:
    """Whole minutes since a base day, formatted as EHRSQL's 'YYYY-MM-DD HH:MM:SS' text."""

    def __init__(self, reference_date: date) -> None:
        self.cutoff_datetime = extract_cutoff(reference_date)
        self.base = self.cutoff_datetime - timedelta(days=HISTORY_DAYS + _SLACK_DAYS)
        self.cutoff = (HISTORY_DAYS + _SLACK_DAYS) * DAY
        self.window_start = _SLACK_DAYS * DAY
        self.days: list[str] = [
            (self.base + timedelta(days=d)).strftime("%Y-%m-%d")
            for d in range(HISTORY_DAYS + _SLACK_DAYS + 2)
        ]

    def text(self, minute: int) -> str:
        return self.days[minute // DAY] + _HM[minute % DAY]

    def date_of(self, minute: int) -> date:
        return (self.base + timedelta(days=minute // DAY)).date()

    def minute_of(self, when: date) -> int:
        return (when - self.base.date()).days * DAY


# ---------------------------------------------------------------------------------------- model types


@dataclass
class StaffMember:
    staff_id: int
    username: str | None
    given: str
    family: str
    gender: str
    age: int
    role: str
    department: str | None
    phone: str
    email: str
    address: str
    city: str
    postcode: str
    active: bool

    @property
    def full_name(self) -> str:
        return f"{self.given} {self.family}"


@dataclass
class Segment:
    """A stay in one care unit (one transfers row)."""

    careunit: str
    department: str
    unit_type: str
    start: int
    end: int | None  # None: still there at the cut-off
    eventtype: str = "transfer"
    transfer_id: int = 0


@dataclass
class IcuStay:
    stay_id: int
    first_careunit: str
    last_careunit: str
    intime: int
    outtime: int | None
    ventilated: bool
    arterial_line: bool


@dataclass
class CareAssignment:
    staff_id: int
    team_role: str
    start: int
    end: int | None


@dataclass
class Contact:
    full_name: str
    relationship: str
    phone: str


@dataclass
class Visit:
    visit_type: str
    department: str
    careunit: str | None
    start: int
    end: int | None
    disposition: str
    hadm_id: int | None
    staff_id: int | None = None


@dataclass
class Admission:
    index: int
    hadm_id: int
    patient: Patient
    department: str
    principal: Condition
    critical: Condition | None
    arrival: int  # emergency department arrival, or admittime for a direct admission
    admittime: int
    dischtime: int | None
    until: int  # dischtime, or the cut-off for a patient still in hospital
    admission_type: str
    admission_location: str
    discharge_location: str | None
    insurance: str
    language: str
    marital_status: str | None
    age: int
    surgical: bool
    died: bool
    segments: list[Segment]
    icustays: list[IcuStay] = field(default_factory=list)
    care_team: list[CareAssignment] = field(default_factory=list)

    @property
    def conditions(self) -> list[Condition]:
        found = [self.principal] if self.critical is None else [self.principal, self.critical]
        return found + [condition for condition, _ in self.patient.comorbidities]

    @property
    def current(self) -> bool:
        return self.dischtime is None


@dataclass
class Patient:
    index: int
    subject_id: int
    gender: str
    birth: date
    birth_minute: int
    age: int  # at the cut-off
    home: str
    given: str
    family: str
    mrn: str
    national_id: str
    phone: str
    email: str | None
    address: str
    city: str
    postcode: str
    vip: bool
    staff_id: int | None
    marital_status: str | None
    language: str
    comorbidities: list[tuple[Condition, str]]
    status_codes: list[str] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    admissions: list[Admission] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    dod: date | None = None

    @property
    def minor(self) -> bool:
        return self.age < 18


@dataclass
class _Plan:
    """What a patient must be, so that every case the platform is tested on exists at any size."""

    current: str | None = None  # a department whose unit the patient is in at the cut-off
    recent: str | None = None  # a department the patient left within the last two weeks
    demo_team: bool = False  # the department's demo clinicians are on the care team
    vip: bool = False
    employee: StaffMember | None = None
    surname_of: StaffMember | None = None
    address_of: StaffMember | None = None
    spouse: bool = False
    conditions: list[str] = field(default_factory=list)
    female: bool = False
    minor: bool = False
    death: Literal["in_hospital", "after"] | None = None

    @property
    def inpatient(self) -> bool:
        return bool(self.current or self.recent or self.death)


# --------------------------------------------------------------------------------- calibrated constants
# Sources: MIMIC-IV Clinical Database Demo 2.2 (100 patients, 275 admissions; hosp/ and icu/ files),
# read once during development. The demo over-represents intensive care (every patient had an ICU
# stay), so ICU share, length of stay and mortality are brought to a general hospital's level, as noted.

# Admissions per patient over the window (demo: 1: 52%, 2: 20%, 3: 9%, 4+: 19%; the long tail is ICU
# readmissions, trimmed here).
_ADMISSION_COUNTS: tuple[tuple[int, float], ...] = (
    (1, 58), (2, 22), (3, 10), (4, 5), (5, 2.5), (6, 1.2), (7, 0.8), (8, 0.5),
)  # fmt: skip
# Share of patients seen only as outpatients or in the emergency department, never admitted.
_OUTPATIENT_ONLY = 0.12
_MINOR_SHARE = 0.06
_FEMALE_SHARE = 0.52
# Adult age at the cut-off, as (age, cumulative share) knots, interpolated (demo anchor_age deciles
# 21, 43, 48, 53, 59, 63, 66, 70, 78, 84, widened toward younger adults for a general hospital).
_ADULT_AGE_KNOTS: tuple[tuple[float, float], ...] = (
    (18, 0.0), (24, 0.1), (33, 0.2), (42, 0.3), (51, 0.4), (58, 0.5), (64, 0.6), (70, 0.7), (76, 0.8),
    (83, 0.9), (97, 1.0),
)  # fmt: skip
# Home department of adult patients (the reason they come), relative weights.
_HOME_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("MED", 30), ("CARD", 17), ("NEURO", 10), ("SURG", 17), ("ONC", 8), ("WOMEN", 10), ("PSYCH", 6),
)  # fmt: skip
# Share of each department's admissions arriving through the emergency department (demo: 182 of 275
# admissions have an edregtime; elective surgery and chemotherapy lower it for SURG, ONC and WOMEN).
_VIA_ED: dict[str, float] = {
    "MED": 0.85, "CARD": 0.75, "NEURO": 0.8, "SURG": 0.5, "ONC": 0.45, "WOMEN": 0.3, "PSYCH": 0.75,
    "PEDS": 0.75,
}  # fmt: skip
# Share of admissions with an ICU stay (MIMIC-IV as a whole: about 17% of admissions; the demo, 47%).
_ICU_SHARE: dict[str, float] = {
    "MED": 0.19, "CARD": 0.24, "NEURO": 0.21, "SURG": 0.17, "ONC": 0.12, "WOMEN": 0.0, "PSYCH": 0.0,
    "PEDS": 0.0,
}  # fmt: skip
# In-hospital mortality (demo: 15 of 275 admissions died; MIMIC-IV overall about 2%).
_DEATH_ICU = 0.1
_DEATH_WARD = 0.01
# Admission types, by route (demo: ew emer. 38%, observation admit 16%, urgent 14%, eu observation 11%,
# surgical same day admission 6.5%, direct emer. 5.5%, elective 4.7%, direct observation 2.5%,
# ambulatory observation 1.8%).
_ED_TYPES: tuple[tuple[str, float], ...] = (
    ("ew emer.", 62),
    ("eu observation", 17),
    ("observation admit", 21),
)
_DIRECT_TYPES: tuple[tuple[str, float], ...] = (
    ("urgent", 50), ("direct emer.", 20), ("direct observation", 9), ("ambulatory observation", 6),
    ("elective", 15),
)  # fmt: skip
_ELECTIVE_TYPES: tuple[tuple[str, float], ...] = (("surgical same day admission", 55), ("elective", 45))
_OBSERVATION_TYPES = frozenset(
    {"eu observation", "observation admit", "direct observation", "ambulatory observation"}
)
_ED_LOCATIONS: tuple[tuple[str, float], ...] = (("emergency room", 95), ("walk-in/self referral", 5))
_DIRECT_LOCATIONS: tuple[tuple[str, float], ...] = (
    ("physician referral", 45), ("transfer from hospital", 30), ("clinic referral", 12),
    ("transfer from skilled nursing facility", 5), ("walk-in/self referral", 5),
    ("information not available", 3),
)  # fmt: skip
_ELECTIVE_LOCATIONS: tuple[tuple[str, float], ...] = (
    ("physician referral", 70), ("procedure site", 20), ("clinic referral", 10),
)  # fmt: skip
# Discharge locations by age (demo: home health care 28%, home 26%, skilled nursing facility 13%,
# rehab 5%, chronic/long term acute care 3%, hospice 2%, against advice 1.5%).
_DISCHARGE_YOUNG: tuple[tuple[str, float], ...] = (
    ("home", 58), ("home health care", 22), ("rehab", 6), ("skilled nursing facility", 5),
    ("against advice", 4),
    ("acute hospital", 2), ("chronic/long term acute care", 2), ("psych facility", 1),
)  # fmt: skip
_DISCHARGE_OLD: tuple[tuple[str, float], ...] = (
    ("home", 30), ("home health care", 32), ("skilled nursing facility", 22), ("rehab", 7),
    ("chronic/long term acute care", 4), ("hospice", 3), ("against advice", 1), ("acute hospital", 1),
)  # fmt: skip
# Hour of emergency arrival (demo admittime hours: evening peak, trough 03:00-13:00).
_ARRIVAL_HOURS: tuple[tuple[int, float], ...] = tuple(
    zip(
        range(24),
        (18, 11, 9, 6, 9, 5, 5, 9, 8, 7, 8, 9, 13, 11, 13, 15, 16, 14, 16, 16, 20, 16, 19, 21),
        strict=True,
    )
)
# Lognormal stays: (median minutes, sigma). Emergency department: demo ED intervals median 5.75 h,
# IQR 3.9-8.7 h. ICU: demo icustays.los median 2.2 d, IQR 1.2-4.9 d. Ward stays are set so the
# admission length of stay has a median of about 3.5 days (demo: 4.9, ICU-heavy).
_ED_STAY = (5.75 * HOUR, 0.59)
_WARD_STAY = (3.0 * DAY, 0.8)
_SECOND_WARD_STAY = (1.8 * DAY, 0.8)
_STEPDOWN_STAY = (1.4 * DAY, 0.6)
_ICU_STAY = (2.2 * DAY, 0.95)
_OBSERVATION_STAY = (20 * HOUR, 0.45)
_PSYCH_STAY = (9 * DAY, 0.6)
_DELIVERY_STAY = (2.2 * DAY, 0.35)
_PEDS_STAY = (2 * DAY, 0.7)
_MAX_SEGMENT = 40 * DAY
# Seasonality of emergency admissions: winter peak (respiratory season) of +12% around 20 January.
_SEASON_AMPLITUDE = 0.12
_SEASON_PEAK_DAY = 20
# Staff per department: one physician per 8 beds and one nurse per 3 beds, plus a core team.
_PHYSICIANS_PER_BED = 1 / 8
_NURSES_PER_BED = 1 / 3

_UNITS = {unit.careunit: unit for unit in CARE_UNITS}
_ICU_BY_DEPARTMENT: dict[str, tuple[tuple[str, float], ...]] = {
    "MED": (
        ("medical intensive care unit (micu)", 60),
        ("medical/surgical intensive care unit (micu/sicu)", 40),
    ),
    "CARD": (("coronary care unit (ccu)", 80), ("cardiac vascular intensive care unit (cvicu)", 20)),
    "NEURO": (("neuro surgical intensive care unit (neuro sicu)", 1),),
    "SURG": (("trauma sicu (tsicu)", 50), ("surgical intensive care unit (sicu)", 50)),
    "ONC": (
        ("medical intensive care unit (micu)", 70),
        ("medical/surgical intensive care unit (micu/sicu)", 30),
    ),
}
_CRITC_ICU: dict[str, str] = {
    "MED": "medical intensive care unit (micu)",
    "SURG": "surgical intensive care unit (sicu)",
    "ONC": "medical/surgical intensive care unit (micu/sicu)",
}
_WARDS: dict[str, tuple[tuple[str, float], ...]] = {
    "MED": (("medicine", 70), ("med/surg", 25), ("transplant", 5)),
    "CARD": (("medicine/cardiology", 1),),
    "NEURO": (("neurology", 1),),
    "SURG": (("surgery/trauma", 45), ("med/surg/trauma", 45), ("vascular", 10)),
    "ONC": (("hematology/oncology", 1),),
    "WOMEN": (("med/surg/gyn", 1),),
    "PSYCH": (("psychiatry", 1),),
    "PEDS": (("pediatrics", 1),),
    "EMERG": (("emergency department observation", 60), ("observation", 40)),
}
_STEPDOWN: dict[str, tuple[tuple[str, float], ...]] = {
    "CARD": (("medicine/cardiology intermediate", 1),),
    "NEURO": (("neuro stepdown", 70), ("neuro intermediate", 30)),
    "ONC": (("hematology/oncology intermediate", 1),),
}
_CLINICS: dict[str, str] = {
    "EMERG": "emergency", "MED": "internal medicine", "CARD": "cardiology", "NEURO": "neurology",
    "SURG": "surgery", "CRITC": "critical care follow-up", "ONC": "oncology",
    "WOMEN": "obstetrics and gynecology",
    "PSYCH": "psychiatry", "PEDS": "pediatrics",
}  # fmt: skip


def _permute(index: int, multiplier: int, offset: int, base: int) -> int:
    """An identifier in [base, base + 10^7) that looks random yet is unique for every index below 10^7
    (the multiplier is coprime to 10^7, so index -> index * multiplier mod 10^7 is a bijection)."""
    return (index * multiplier + offset) % 10_000_000 + base


def _national_id_check(body: str) -> str:
    """ISO 7064 MOD 11-2 check character of an 18-character resident ID (GB 11643)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(body, weights, strict=True))
    return "10X98765432"[total % 11]


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


# ------------------------------------------------------------------------------------------- hospital


class DemoHospital:
    """A generated hospital. Construction builds patients, stays and care teams (small); the large
    event tables are generated lazily, table by table, by `rows`."""

    def __init__(self, *, patients: int = 1000, seed: int = 42, reference_date: date | None = None) -> None:
        if patients < 1:
            raise ValueError("A demo hospital needs at least one patient.")
        self.size = patients
        self.seed = seed
        self.reference_date = reference_date or date.today()
        self.clock = _Clock(self.reference_date)
        self.cutoff = self.clock.cutoff
        self._emergency_days, self._elective_days = self._day_weights()
        self.staff = self._make_staff()
        self._staff_by_username = {s.username: s for s in self.staff if s.username}
        self._pools = self._staff_pools()
        # The demo accounts that join the care teams, by department (the first listed wins).
        self._demo_clinician = {
            s.department: s.staff_id
            for s in reversed(self.staff)
            if s.username and s.role == "clinician" and s.department
        }
        self._demo_nurse = {
            s.department: s.staff_id
            for s in reversed(self.staff)
            if s.username and s.role == "nurse" and s.department
        }
        self._national_ids: set[str] = set()
        self._code_cache: dict[str, tuple[str, ...]] = {}
        plans = self._plan()
        self._hadm_counter = 0
        self._stay_counter = 0
        self._transfer_counter = 0
        self.patients = [self._make_patient(index, plans[index]) for index in range(patients)]
        self.admissions: list[Admission] = [adm for p in self.patients for adm in p.admissions]
        for adm in self.admissions:
            self._assign_care_team(adm, plans[adm.patient.index])

    # ----------------------------------------------------------------------------- calendar weights

    def _day_weights(self) -> tuple[list[float], list[float]]:
        """Cumulative weights of each day in the window for emergency and for scheduled admissions."""
        emergency: list[float] = []
        elective: list[float] = []
        for day in range(HISTORY_DAYS):
            when = self.clock.base + timedelta(days=_SLACK_DAYS + day)
            season = 1 + _SEASON_AMPLITUDE * math.cos(
                2 * math.pi * (when.timetuple().tm_yday - _SEASON_PEAK_DAY) / 365.25
            )
            growth = 1 + 0.03 * day / 365  # a hospital's activity grows a few percent a year
            weekend = when.weekday() >= 5
            emergency.append(season * growth * (0.9 if weekend else 1.0))
            elective.append(0.0 if weekend else growth * (1 + 0.05 * (season - 1)))
        return list(accumulate(emergency)), list(accumulate(elective))

    def _draw_day(self, rng: random.Random, *, elective: bool, earliest: int, latest: int) -> int:
        """A day (as the minute it starts) between two minutes, weighted by season and weekday."""
        cumulative = self._elective_days if elective else self._emergency_days
        first = max(0, (earliest - self.clock.window_start) // DAY)
        last = min(HISTORY_DAYS - 1, (latest - self.clock.window_start) // DAY)
        if last < first:
            return max(earliest, min(latest, self.clock.window_start)) // DAY * DAY
        low = cumulative[first - 1] if first else 0.0
        high = cumulative[last]
        day = bisect_right(cumulative, low + rng.random() * (high - low))
        day = min(max(day, first), last)
        return self.clock.window_start + day * DAY

    # -------------------------------------------------------------------------------------- staff

    def _make_staff(self) -> list[StaffMember]:
        rng = _stream(self.seed, _STAFF, 0)
        staff: list[StaffMember] = []
        for demo in DEMO_STAFF:
            staff.append(
                self._staff_member(
                    rng,
                    len(staff) + 1,
                    username=demo.username,
                    given=demo.given_name,
                    family=demo.family_name,
                    gender=_demo_gender(demo.given_name),
                    role=str(demo.role.value),
                    department=demo.department or None,
                )
            )
        heads = {s.department for s in staff if s.role == "department_head"}
        beds: dict[str, int] = {}
        for unit in CARE_UNITS:
            beds[unit.department_code] = beds.get(unit.department_code, 0) + unit.beds
        for department in DEPARTMENTS:
            code = department.code
            physicians = 3 + round(beds[code] * _PHYSICIANS_PER_BED)
            nurses = 4 + round(beds[code] * _NURSES_PER_BED)
            for number in range(physicians + nurses):
                role = "clinician" if number < physicians else "nurse"
                if number == 0 and code not in heads:
                    role = "department_head"
                gender = "f" if rng.random() < (0.5 if role != "nurse" else 0.8) else "m"
                given = rng.choice(names.GIVEN_NAMES_F if gender == "f" else names.GIVEN_NAMES_M)
                family = rng.choice(names.FAMILY_NAMES)
                member = self._staff_member(
                    rng, len(staff) + 1, username=None, given=given, family=family, gender=gender, role=role,
                    department=code,
                )  # fmt: skip
                staff.append(member)
        return staff

    def _staff_member(
        self,
        rng: random.Random,
        staff_id: int,
        *,
        username: str | None,
        given: str,
        family: str,
        gender: str,
        role: str,
        department: str | None,
    ) -> StaffMember:
        address, city, postcode = _address(rng)
        return StaffMember(
            staff_id=staff_id,
            username=username,
            given=given,
            family=family,
            gender=gender,
            age=rng.randint(25, 66),
            role=role,
            department=department,
            phone=_phone(rng),
            email=f"{_slug(given)}.{_slug(family)}{staff_id}@hospital.example.org",
            address=address,
            city=city,
            postcode=postcode,
            # Staff who have left stay in the extract: their names are on older care-team rows.
            active=username is not None or rng.random() > 0.04,
        )

    def _staff_pools(self) -> dict[tuple[str, str], list[StaffMember]]:
        """Clinical staff by (department, 'physician' | 'nurse'), in staff_id order."""
        pools: dict[tuple[str, str], list[StaffMember]] = {}
        for member in self.staff:
            if member.department is None or member.role not in ("clinician", "nurse", "department_head"):
                continue
            kind = "nurse" if member.role == "nurse" else "physician"
            pools.setdefault((member.department, kind), []).append(member)
        return pools

    def demo_member(self, username: str) -> StaffMember:
        return self._staff_by_username[username]

    # ------------------------------------------------------------------------------------ the plan

    def _plan(self) -> list[_Plan]:
        """Pick the patients that carry each case the platform must show, whatever the seed and size.

        Patients are taken in a seeded random order, most important case first, so that a hospital of
        50 patients (seed_demo's minimum) still has the census, the deaths, VIPs and staff-patients.
        """
        rng = _stream(self.seed, _PLAN, 0)
        plans = [_Plan() for _ in range(self.size)]
        slots = iter(rng.sample(range(self.size), self.size))
        clinical_staff = [s for s in self.staff if s.username is None and s.department is not None]
        staff_in = {code: [s for s in clinical_staff if s.department == code] for code in DEPARTMENT_BY_CODE}
        # About 1% of patients each, at least 5: VIPs, staff who are patients, patients sharing a
        # surname or an address with a member of staff.
        extra = max(5, self.size // 100)
        colleague = staff_in["CARD"][0]  # a cardiology colleague, in hospital at the cut-off
        others = [s for s in clinical_staff if s is not colleague]
        employees = rng.sample(others, min(len(others) // 2, extra - 1))

        def take(count: int, case: Callable[[_Plan, int], None]) -> list[_Plan]:
            taken: list[_Plan] = []
            for number in range(count):
                index = next(slots, None)
                if index is None:
                    break
                case(plans[index], number)
                taken.append(plans[index])
            return taken

        def in_hospital(code: str, team: int) -> Callable[[_Plan, int], None]:
            def case(plan: _Plan, number: int) -> None:
                plan.current = code
                plan.demo_team = number < team
                plan.female = code == "WOMEN"
                plan.minor = code == "PEDS"

            return case

        def discharged(code: str) -> Callable[[_Plan, int], None]:
            def case(plan: _Plan, number: int) -> None:
                plan.recent = code
                plan.demo_team = True

            return case

        # In hospital at the cut-off: several in each demo clinician's department (most of them under
        # that clinician's care), a few in every other department.
        current = {
            code: take(count, in_hospital(code, team))
            for code, count, team in (
                ("CARD", 6, 4), ("NEURO", 5, 3), ("CRITC", 5, 3), ("MED", 3, 0), ("SURG", 2, 0),
                ("ONC", 2, 0), ("WOMEN", 2, 0), ("PSYCH", 2, 0), ("PEDS", 2, 0),
            )
        }  # fmt: skip
        # Discharged within the last two weeks from a demo clinician's department, under their care.
        recent = [plan for code in ("CARD", "NEURO", "CRITC") for plan in take(3, discharged(code))]
        take(3, lambda plan, n: setattr(plan, "death", "in_hospital"))
        take(2, lambda plan, n: setattr(plan, "death", "after"))
        take(extra - 2, lambda plan, n: setattr(plan, "vip", True))
        take(len(employees), lambda plan, n: setattr(plan, "employee", employees[n]))
        take(extra - 1, lambda plan, n: setattr(plan, "surname_of", others[(11 * n + 5) % len(others)]))
        take(extra - 1, lambda plan, n: setattr(plan, "address_of", others[(13 * n + 1) % len(others)]))
        take(3, lambda plan, n: setattr(plan, "minor", True))
        if len(current.get("PEDS", [])) < 2:
            return plans  # too small a hospital for the cases below
        # Some of the cases sit among the current inpatients the demo clinicians look after.
        current["CARD"][0].vip = True
        current["CRITC"][0].vip = True
        current["CARD"][1].employee = colleague
        current["CARD"][2].surname_of = self.demo_member("dr.carter")
        current["NEURO"][1].address_of = staff_in["NEURO"][1]
        current["NEURO"][1].surname_of = staff_in["NEURO"][1]
        current["NEURO"][1].spouse = True
        # Special categories, carried by adult inpatients of the census and recent discharges.
        adults = [
            plan
            for code in ("CARD", "NEURO", "CRITC", "MED", "SURG", "ONC", "PSYCH")
            for plan in current[code]
        ]
        adults += recent
        for plan, key in zip(
            adults[3::2],
            ("hiv disease", "alcohol use disorder", "opioid use disorder", "depression", "genetic condition",
             "asymptomatic hiv", "alcohol use disorder", "opioid use disorder", "depression", "hiv disease"),
            strict=False,
        ):  # fmt: skip
            plan.conditions.append(key)
        current["WOMEN"][0].conditions.append("infertility")
        return plans

    # ----------------------------------------------------------------------------------- patients

    def _make_patient(self, index: int, plan: _Plan) -> Patient:
        rng = _stream(self.seed, _PATIENT, index)
        staff = plan.employee
        planned = plan.inpatient or plan.vip or staff is not None or bool(plan.conditions)
        minor = plan.minor or (
            not planned
            and plan.surname_of is None
            and plan.address_of is None
            and rng.random() < _MINOR_SHARE
        )
        if staff is not None:
            gender = staff.gender
        elif plan.female:
            gender = "f"
        else:
            gender = "f" if rng.random() < _FEMALE_SHARE else "m"
        home = self._home(rng, plan, minor, gender)
        if staff is not None:
            age = staff.age
        elif minor:
            age = rng.randint(1, 17)
        elif home == "WOMEN" and rng.random() < 0.8:
            age = rng.randint(19, 43)
        else:
            age = self._adult_age(rng)
        cutoff_day = self.clock.cutoff_datetime.date()
        oldest = _years_before(cutoff_day, age + 1) + timedelta(days=1)
        youngest = _years_before(cutoff_day, age)
        birth = oldest + timedelta(days=rng.randint(0, (youngest - oldest).days))

        if staff is not None:
            given, family = staff.given, staff.family
            address, city, postcode, phone = staff.address, staff.city, staff.postcode, staff.phone
        else:
            given = rng.choice(names.GIVEN_NAMES_F if gender == "f" else names.GIVEN_NAMES_M)
            family = plan.surname_of.family if plan.surname_of is not None else rng.choice(names.FAMILY_NAMES)
            address, city, postcode = _address(rng)
            phone = _phone(rng)
            if plan.address_of is not None:
                address, city, postcode = (
                    plan.address_of.address,
                    plan.address_of.city,
                    plan.address_of.postcode,
                )
        email = (
            f"{_slug(given)}.{_slug(family)}{rng.randint(1, 99)}@{rng.choice(names.EMAIL_DOMAINS)}"
            if rng.random() < 0.55
            else None
        )
        marital = None if minor else _pick(rng, _MARITAL[0 if age < 30 else 1 if age < 65 else 2])
        patient = Patient(
            index=index,
            subject_id=_permute(index, 7_368_787, 35_185, 10_000_000),
            gender=gender,
            birth=birth,
            birth_minute=self.clock.minute_of(birth),
            age=age,
            home=home,
            given=given,
            family=family,
            mrn=f"MRN{(index * 48_271 + 10_483_117) % 100_000_000:08d}",
            national_id=self._national_id(rng, birth, gender),
            phone=phone,
            email=email,
            address=address,
            city=city,
            postcode=postcode,
            vip=plan.vip or rng.random() < 0.008,
            staff_id=staff.staff_id if staff is not None else None,
            marital_status=marital,
            language="english" if rng.random() < 0.92 else "?",
            comorbidities=self._comorbidities(rng, plan, age, gender),
        )
        for condition, _ in patient.comorbidities:
            status = clinical.STATUS_CODES.get(condition.key)
            if status is not None and rng.random() < status[1]:
                patient.status_codes.append(status[0])
        patient.contacts = self._contacts(rng, patient, plan)
        self._make_admissions(rng, patient, plan, planned)
        self._make_visits(rng, patient)
        return patient

    def _home(self, rng: random.Random, plan: _Plan, minor: bool, gender: str) -> str:
        if minor:
            return "PEDS"
        target = plan.current or plan.recent
        if target == "CRITC":
            return _pick(rng, (("MED", 2.0), ("SURG", 1.0), ("ONC", 1.0)))
        if target:
            return target
        home = _pick(rng, _HOME_WEIGHTS)
        return "MED" if home == "WOMEN" and gender == "m" else home

    def _adult_age(self, rng: random.Random) -> int:
        point = rng.random()
        for (low_age, low_p), (high_age, high_p) in pairwise(_ADULT_AGE_KNOTS):
            if point <= high_p:
                return int(low_age + (high_age - low_age) * (point - low_p) / (high_p - low_p))
        return int(_ADULT_AGE_KNOTS[-1][0])

    def _national_id(self, rng: random.Random, birth: date, gender: str) -> str:
        """An 18-digit resident ID: region 320xxx, birth date, sequence (odd for men), check digit.

        The check is computed as GB 11643 prescribes; sequences whose check would be the letter X are
        skipped so every ID is all digits, as the masking rules (320***********1234) expect.
        """
        region = f"320{rng.randint(1, 13):02d}{rng.randint(1, 9)}"
        while True:
            sequence = rng.randrange(1, 999, 2) if gender == "m" else rng.randrange(2, 999, 2)
            body = f"{region}{birth:%Y%m%d}{sequence:03d}"
            check = _national_id_check(body)
            if check != "X" and body + check not in self._national_ids:
                self._national_ids.add(body + check)
                return body + check

    def _comorbidities(
        self, rng: random.Random, plan: _Plan, age: int, gender: str
    ) -> list[tuple[Condition, str]]:
        band = 0 if age < 40 else 1 if age < 65 else 2
        found: list[tuple[Condition, str]] = []
        for comorbidity in clinical.COMORBIDITIES:
            condition = comorbidity.condition
            if comorbidity.female_only and gender != "f":
                chance = 0.0
            elif age < 18:
                chance = comorbidity.prevalence[0] if condition.special == "genetic" else 0.0
            else:
                chance = comorbidity.prevalence[band]
            draw = rng.random()
            if condition.key in plan.conditions or draw < chance:
                found.append((condition, rng.choice(self._codes(condition))))
        return found

    def _codes(self, condition: Condition) -> tuple[str, ...]:
        """The billable ICD-10-CM codes a condition may be recorded with, in catalog order."""
        codes = self._code_cache.get(condition.key)
        if codes is None:
            codes = tuple(
                dict.fromkeys(code for entry in condition.codes for code in expand_diagnosis(entry))
            )
            self._code_cache[condition.key] = codes
        return codes

    def _contacts(self, rng: random.Random, patient: Patient, plan: _Plan) -> list[Contact]:
        contacts: list[Contact] = []
        if plan.spouse and plan.address_of is not None:
            # Next of kin is a member of staff: the case where a colleague's record names a colleague.
            spouse = plan.address_of
            contacts.append(Contact(spouse.full_name, "spouse", spouse.phone))
        relationships = names.RELATIONSHIPS_MINOR if patient.minor else names.RELATIONSHIPS_ADULT
        for _ in range(1 if rng.random() < 0.7 else 2):
            relationship = _pick(rng, relationships)
            female = relationship in ("mother", "daughter", "sister") or (
                relationship not in ("father", "son", "brother") and rng.random() < 0.5
            )
            given = rng.choice(names.GIVEN_NAMES_F if female else names.GIVEN_NAMES_M)
            same_family = relationship in (
                "mother",
                "father",
                "son",
                "daughter",
                "sister",
                "brother",
                "spouse",
            )
            family = patient.family if same_family and rng.random() < 0.8 else rng.choice(names.FAMILY_NAMES)
            contacts.append(Contact(f"{given} {family}", relationship, _phone(rng)))
        return contacts

    # --------------------------------------------------------------------------------- admissions

    def _make_admissions(self, rng: random.Random, patient: Patient, plan: _Plan, planned: bool) -> None:
        if not planned and rng.random() < _OUTPATIENT_ONLY:
            return
        count = _pick(rng, _ADMISSION_COUNTS)
        earliest = max(self.clock.window_start, patient.birth_minute + 14 * DAY)
        latest = self.cutoff - (3 * DAY if plan.death == "in_hospital" else 0)
        anchor: Admission | None = None
        if plan.current or plan.recent:
            anchor = self._anchored_admission(rng, patient, plan)
            latest = anchor.arrival - 2 * DAY
            count -= 1
        reasons = [self._reason(rng, patient) for _ in range(count)]
        drawn = sorted(
            (
                self._draw_day(
                    rng, elective=principal.key in clinical.ELECTIVE, earliest=earliest, latest=latest
                ),
                n,
            )
            for n, (_, principal) in enumerate(reasons)
        )
        admissions: list[Admission] = []
        previous_end = earliest - DAY
        for day, n in drawn:
            department, principal = reasons[n]
            elective = principal.key in clinical.ELECTIVE
            arrival = day + self._arrival_minute(rng, elective)
            if arrival < previous_end + DAY:
                arrival = previous_end + rng.randint(2, 30) * DAY
            if arrival >= latest:
                break
            admission = self._admission(rng, patient, arrival, department, principal)
            if anchor is not None and admission.until > latest:
                break
            if plan.death == "in_hospital" and admission.until > latest:
                break
            if admission.admittime >= self.cutoff:
                break  # still in the emergency department at the cut-off: not admitted yet
            if anchor is not None and admission.died:
                # The planned stay comes later, so this one cannot have ended in death.
                admission.died = False
                admission.discharge_location = "home"
            self._truncate(admission)
            admissions.append(admission)
            previous_end = admission.until
            if admission.current or admission.died:
                break
        if anchor is not None:
            admissions.append(anchor)
        if plan.death == "in_hospital":
            if not admissions:
                department, principal = self._reason(rng, patient)
                arrival = self._draw_day(rng, elective=False, earliest=earliest, latest=latest - 40 * DAY)
                admission = self._admission(rng, patient, arrival + 20 * HOUR, department, principal)
                self._truncate(admission)
                admissions.append(admission)
            if not admissions[-1].current:
                admissions[-1].died = True
                admissions[-1].discharge_location = "died"
        for admission in admissions:
            self._assign_ids(admission)
            self._icu_stays(rng, admission)
        patient.admissions = admissions
        last = admissions[-1] if admissions else None
        if last is not None and last.died and last.dischtime is not None:
            patient.dod = self.clock.date_of(last.dischtime)
        elif last is not None and last.dischtime is not None:
            natural = rng.random() < (0.06 if patient.age >= 70 else 0.01)
            if plan.death == "after" or natural:
                dod = self.clock.date_of(last.dischtime + rng.randint(5, 330) * DAY)
                if dod < self.reference_date:
                    patient.dod = dod
                elif plan.death == "after":
                    patient.dod = self.reference_date - timedelta(days=1)

    def _reason(self, rng: random.Random, patient: Patient) -> tuple[str, Condition]:
        """The admitting department and principal problem of one admission."""
        department = patient.home
        if not patient.minor and rng.random() < 0.2:
            # A fifth of admissions are for something else than the patient's usual problem.
            department = _pick(rng, (("MED", 6.0), ("CARD", 2.0), ("SURG", 2.0), ("NEURO", 1.0)))
        return department, self._principal(rng, department)

    def _principal(self, rng: random.Random, department: str) -> Condition:
        return _pick(rng, clinical.PRINCIPAL[department])

    def _arrival_minute(self, rng: random.Random, elective: bool) -> int:
        if elective:
            return rng.randint(6 * HOUR, 9 * HOUR)
        return _pick(rng, _ARRIVAL_HOURS) * HOUR + rng.randrange(HOUR)

    def _anchored_admission(self, rng: random.Random, patient: Patient, plan: _Plan) -> Admission:
        """An admission placed so the patient is in `plan.current` at the cut-off, or left `plan.recent`
        within the last two weeks."""
        target = plan.current or plan.recent or "MED"
        department = patient.home
        principal = self._principal(rng, department)
        force_icu = _CRITC_ICU[department] if target == "CRITC" else None
        admission = self._admission(
            rng, patient, 0, department, principal, force_icu=force_icu, observation=False
        )
        inside = [s for s in admission.segments if s.department == target]
        if plan.current:
            segment = inside[-1]
            end = segment.end if segment.end is not None else segment.start + DAY
            offset = segment.start + int((end - segment.start) * rng.uniform(0.2, 0.85))
            self._shift(admission, self.cutoff - offset)
            self._truncate(admission)
        else:
            admission.died = False
            if admission.discharge_location == "died":
                admission.discharge_location = "home"
            self._shift(admission, self.cutoff - rng.randint(DAY, 13 * DAY) - admission.until)
        return admission

    def _admission(
        self,
        rng: random.Random,
        patient: Patient,
        arrival: int,
        department: str,
        principal: Condition,
        *,
        force_icu: str | None = None,
        observation: bool | None = None,
    ) -> Admission:
        elective = principal.key in clinical.ELECTIVE
        via_ed = not elective and rng.random() < _VIA_ED[department]
        if via_ed:
            admission_type, location = _pick(rng, _ED_TYPES), _pick(rng, _ED_LOCATIONS)
        elif elective:
            admission_type, location = _pick(rng, _ELECTIVE_TYPES), _pick(rng, _ELECTIVE_LOCATIONS)
        else:
            admission_type, location = _pick(rng, _DIRECT_TYPES), _pick(rng, _DIRECT_LOCATIONS)
        if observation is None:
            observation = admission_type in _OBSERVATION_TYPES and department not in (
                "PSYCH",
                "WOMEN",
                "PEDS",
            )
        elif not observation and admission_type in _OBSERVATION_TYPES:
            admission_type = "urgent" if not via_ed else "ew emer."
        icu_unit = force_icu
        if icu_unit is None and not observation and rng.random() < _ICU_SHARE[department]:
            icu_unit = _pick(rng, _ICU_BY_DEPARTMENT[department])
        surgical = principal.key in clinical.SURGICAL and rng.random() < 0.85
        if principal.key == "coronary artery bypass":
            surgical = True
            icu_unit = "cardiac vascular intensive care unit (cvicu)"
        critical = _pick(rng, clinical.CRITICAL) if icu_unit is not None and rng.random() < 0.7 else None
        plan: list[tuple[str, int]] = []
        if via_ed:
            plan.append(("emergency department", _lognormal_minutes(rng, *_ED_STAY, cap=48 * HOUR)))
        plan.extend(self._path(rng, department, principal, icu_unit, observation, surgical))
        segments: list[Segment] = []
        clock = arrival
        for careunit, minutes in plan:
            unit = _UNITS[careunit]
            segments.append(Segment(careunit, unit.department_code, unit.unit_type, clock, clock + minutes))
            clock += minutes
        segments[0].eventtype = "ed" if via_ed else "admit"
        if via_ed:
            segments[1].eventtype = "admit"
        admittime = segments[1].start if via_ed else arrival
        dischtime = clock
        age = _age_at(patient.birth, self.clock.date_of(admittime))
        death_rate = _DEATH_ICU if icu_unit is not None else _DEATH_WARD
        if department in ("WOMEN", "PSYCH", "PEDS") or observation:
            death_rate /= 20
        died = rng.random() < death_rate * (1.6 if age >= 75 else 1.0)
        if died:
            discharge = "died"
        elif department == "PSYCH" and rng.random() < 0.15:
            discharge = "psych facility"
        elif age < 18 or department == "WOMEN":
            discharge = "home" if rng.random() < 0.93 else "home health care"
        else:
            discharge = _pick(rng, _DISCHARGE_OLD if age >= 65 else _DISCHARGE_YOUNG)
        if age >= 65:
            insurance = _pick(rng, (("medicare", 85), ("medicaid", 5), ("other", 10)))
        elif age < 18:
            insurance = _pick(rng, (("medicaid", 40), ("other", 60)))
        else:
            insurance = _pick(rng, (("medicaid", 22), ("other", 75), ("medicare", 3)))
        return Admission(
            index=-1,
            hadm_id=0,
            patient=patient,
            department=department,
            principal=principal,
            critical=critical,
            arrival=arrival,
            admittime=admittime,
            dischtime=dischtime,
            until=dischtime,
            admission_type=admission_type,
            admission_location=location,
            discharge_location=discharge,
            insurance=insurance,
            language=patient.language,
            marital_status=patient.marital_status,
            age=age,
            surgical=surgical,
            died=died,
            segments=segments,
        )

    def _path(
        self,
        rng: random.Random,
        department: str,
        principal: Condition,
        icu_unit: str | None,
        observation: bool,
        surgical: bool,
    ) -> list[tuple[str, int]]:
        """The care units an admission passes through after the emergency department, with minutes in each."""
        if observation:
            stay = _lognormal_minutes(rng, *_OBSERVATION_STAY, cap=3 * DAY)
            if rng.random() >= 0.6:
                return [(_pick(rng, _WARDS[department]), stay)]
            units = [(_pick(rng, _WARDS["EMERG"]), stay)]
            if rng.random() < 0.25:  # observation that turns into an inpatient stay on the ward
                units.append(
                    (_pick(rng, _WARDS[department]), _lognormal_minutes(rng, *_WARD_STAY, cap=_MAX_SEGMENT))
                )
            return units
        path: list[tuple[str, int]] = []
        ward_stay = _WARD_STAY
        if department == "PSYCH":
            ward_stay = _PSYCH_STAY
        elif department == "PEDS":
            ward_stay = _PEDS_STAY
        ward = _pick(rng, _WARDS[department])
        if department == "WOMEN" and principal.orders[:1] == ("obstetric",):
            ward, ward_stay = "labor & delivery", _DELIVERY_STAY
        elif department == "SURG" and principal.key == "peripheral arterial disease":
            ward = "vascular"
        elif department == "CARD" and surgical:
            ward = "cardiac surgery"
        if surgical and icu_unit != "cardiac vascular intensive care unit (cvicu)":
            path.append(("pacu", rng.randint(2 * HOUR, 6 * HOUR)))
        if icu_unit is not None:
            if not surgical and rng.random() < 0.25:
                path.append((ward, _lognormal_minutes(rng, DAY, 0.7, cap=5 * DAY)))
            path.append((icu_unit, _lognormal_minutes(rng, *_ICU_STAY, cap=_MAX_SEGMENT)))
            if department in _STEPDOWN and rng.random() < 0.5:
                path.append(
                    (
                        _pick(rng, _STEPDOWN[department]),
                        _lognormal_minutes(rng, *_STEPDOWN_STAY, cap=10 * DAY),
                    )
                )
            path.append((ward, _lognormal_minutes(rng, *_SECOND_WARD_STAY, cap=_MAX_SEGMENT)))
        else:
            if department in _STEPDOWN and rng.random() < 0.3:
                path.append(
                    (
                        _pick(rng, _STEPDOWN[department]),
                        _lognormal_minutes(rng, *_STEPDOWN_STAY, cap=10 * DAY),
                    )
                )
            path.append((ward, _lognormal_minutes(rng, *ward_stay, cap=_MAX_SEGMENT)))
            if department in ("MED", "SURG", "CARD", "NEURO", "ONC") and rng.random() < 0.25:
                other = _pick(rng, _WARDS[department])
                path.append((other, _lognormal_minutes(rng, *_SECOND_WARD_STAY, cap=_MAX_SEGMENT)))
        if department not in ("PEDS", "WOMEN", "PSYCH") and rng.random() < 0.12:
            path.append(("discharge lounge", rng.randint(2 * HOUR, 5 * HOUR)))
        return path

    def _shift(self, admission: Admission, delta: int) -> None:
        admission.arrival += delta
        admission.admittime += delta
        admission.until += delta
        if admission.dischtime is not None:
            admission.dischtime += delta
        for segment in admission.segments:
            segment.start += delta
            if segment.end is not None:
                segment.end += delta
        admission.age = _age_at(admission.patient.birth, self.clock.date_of(admission.admittime))

    def _truncate(self, admission: Admission) -> None:
        """Cut an admission at the extract's cut-off: the patient is still in hospital."""
        if admission.until <= self.cutoff:
            return
        admission.segments = [s for s in admission.segments if s.start < self.cutoff]
        admission.segments[-1].end = None
        admission.dischtime = None
        admission.until = self.cutoff
        admission.discharge_location = None
        admission.died = False

    def _assign_ids(self, admission: Admission) -> None:
        admission.index = self._hadm_counter
        admission.hadm_id = _permute(self._hadm_counter, 7_368_787, 4_181_354, 20_000_000)
        self._hadm_counter += 1
        for segment in admission.segments:
            segment.transfer_id = _permute(self._transfer_counter, 6_180_339, 1_433_143, 30_000_000)
            self._transfer_counter += 1

    def _icu_stays(self, rng: random.Random, admission: Admission) -> None:
        """Consecutive ICU segments form one ICU stay, as in MIMIC-IV icustays."""
        runs: list[list[Segment]] = []
        previous_icu = False
        for segment in admission.segments:
            is_icu = segment.unit_type == "icu"
            if is_icu and previous_icu:
                runs[-1].append(segment)
            elif is_icu:
                runs.append([segment])
            previous_icu = is_icu
        sedation = any("icu_sedation" in c.orders for c in admission.conditions)
        pressor = any("icu_pressor" in c.orders for c in admission.conditions)
        for run in runs:
            ventilated = sedation or rng.random() < 0.2
            admission.icustays.append(
                IcuStay(
                    stay_id=_permute(self._stay_counter, 3_467_171, 2_604_416, 30_000_000),
                    first_careunit=run[0].careunit,
                    last_careunit=run[-1].careunit,
                    intime=run[0].start,
                    outtime=run[-1].end,
                    ventilated=ventilated,
                    arterial_line=ventilated or pressor or rng.random() < 0.3,
                )
            )
            self._stay_counter += 1

    # ------------------------------------------------------------------------------------- visits

    def _make_visits(self, rng: random.Random, patient: Patient) -> None:
        visits: list[Visit] = []
        for admission in patient.admissions:
            if admission.segments[0].eventtype == "ed":
                visits.append(
                    Visit("ed", "EMERG", "emergency department", admission.arrival, admission.admittime,
                          "admitted", admission.hadm_id)
                )  # fmt: skip
        stays = [(a.arrival, a.until) for a in patient.admissions]
        earliest = max(self.clock.window_start, patient.birth_minute + DAY)
        end = self.cutoff if patient.dod is None else self.clock.minute_of(patient.dod)

        def free(start: int, finish: int) -> bool:
            return start >= earliest and finish < end and all(finish <= a or start >= b for a, b in stays)

        # Emergency visits that end without admission (demo: 236 ED stays for 182 ED admissions).
        substance = any(c.special == "substance_use" for c, _ in patient.comorbidities)
        for _ in range(_pick(rng, ((0, 62.0), (1, 26.0), (2, 9.0), (3, 3.0))) + (1 if substance else 0)):
            start = self._draw_day(rng, elective=False, earliest=earliest, latest=end) + self._arrival_minute(
                rng, False
            )
            finish = start + _lognormal_minutes(rng, 3.5 * HOUR, 0.5, cap=24 * HOUR)
            disposition = _pick(rng, (("discharged", 88), ("left without being seen", 7), ("transferred", 5)))
            if free(start, finish):
                visits.append(Visit("ed", "EMERG", "emergency department", start, finish, disposition, None))
        # Outpatient clinic visits: more for chronic and oncology patients, more without admissions.
        mean = 1.5 + 0.6 * len(patient.comorbidities) + (4 if patient.home == "ONC" else 0)
        mean += 2 if not patient.admissions else 0
        for _ in range(min(30, int(rng.expovariate(1 / mean)))):
            department = _pick(
                rng,
                (
                    (patient.home, 60.0),
                    ("PEDS" if patient.minor else "MED", 25.0),
                    (rng.choice(_CLINIC_CODES), 15.0),
                ),
            )
            self._clinic_visit(rng, visits, department, earliest, end, free)
        for admission in patient.admissions:
            # Follow-up in clinic after discharge, for about half of the patients who go home.
            if admission.dischtime is not None and not admission.died and rng.random() < 0.45:
                start = admission.dischtime + rng.randint(7, 28) * DAY
                day = start // DAY * DAY
                self._clinic_visit(rng, visits, admission.department, day, min(end, day + DAY), free)
        visits.sort(key=lambda v: (v.start, v.visit_type))
        patient.visits = visits

    def _clinic_visit(
        self,
        rng: random.Random,
        visits: list[Visit],
        department: str,
        earliest: int,
        latest: int,
        free: Callable[[int, int], bool],
    ) -> None:
        if latest <= earliest:
            return
        day = self._draw_day(rng, elective=True, earliest=earliest, latest=latest)
        start = day + 8 * HOUR + 15 * rng.randint(0, 35)
        finish = start + rng.choice((15, 20, 30, 30, 45, 60))
        no_show = rng.random() < 0.07
        doctor = rng.choice(self._pools[(department, "physician")])
        if free(start, finish):
            visits.append(
                Visit("outpatient", department, None, start, None if no_show else finish,
                      "no show" if no_show else "completed", None, doctor.staff_id)
            )  # fmt: skip

    # ---------------------------------------------------------------------------------- care team

    def _assign_care_team(self, admission: Admission, plan: _Plan) -> None:
        """Attending physicians and nurses per department episode, tied to the unit stays."""
        rng = _stream(self.seed, _TEAM, admission.index)
        team: list[CareAssignment] = []
        target = plan.current or plan.recent
        episodes = _episodes(admission.segments)
        in_target = [episode for episode in episodes if episode[0].department == target]
        demo_episode = in_target[-1] if plan.demo_team and in_target else None
        for episode in episodes:
            department = episode[0].department
            start, end = episode[0].start, episode[-1].end
            demo_here = episode is demo_episode
            attending = self._clinician(rng, department, "physician", start)
            if demo_here:
                attending = self._demo_clinician.get(department, attending)
            team.append(CareAssignment(attending, "attending", start, end))
            for segment in episode:
                nurses = [self._clinician(rng, segment.department, "nurse", segment.start)]
                if rng.random() < 0.5:
                    nurses.append(self._clinician(rng, segment.department, "nurse", segment.start))
                if demo_here and segment.department in self._demo_nurse:
                    nurses[0] = self._demo_nurse[segment.department]
                for nurse in dict.fromkeys(nurses):
                    team.append(CareAssignment(nurse, "nurse", segment.start, segment.end))
        if rng.random() < 0.12 and not admission.patient.minor:
            consultant_department = _pick(rng, _CONSULTS.get(admission.department, _CONSULTS["MED"]))
            start = admission.admittime + rng.randint(
                2 * HOUR, max(3 * HOUR, admission.until - admission.admittime)
            )
            if start < admission.until:
                finish = start + rng.randint(HOUR, 3 * DAY)
                end = finish if finish <= admission.until else None if admission.current else admission.until
                consultant = self._clinician(rng, consultant_department, "physician", start)
                team.append(CareAssignment(consultant, "consultant", start, end))
        admission.care_team = team

    def _clinician(self, rng: random.Random, department: str, kind: str, when: int) -> int:
        pool = self._pools[(department, kind)]
        member = rng.choice(pool)
        if not member.active and when > self.cutoff - 365 * DAY:
            # Staff who left are only on care teams of more than a year ago.
            member = next((m for m in pool if m.active), member)
        return member.staff_id

    # ================================================================================== rows

    def rows(self, table: str) -> Iterator[Row]:
        """The rows of one warehouse table, columns in schema order (schema.tables()[table].column_names)."""
        producers: dict[str, Callable[[], Iterator[Row]]] = {
            "patients": self._patient_rows,
            "admissions": self._admission_rows,
            "d_icd_diagnoses": self._d_icd_diagnoses_rows,
            "d_icd_procedures": self._d_icd_procedures_rows,
            "d_labitems": self._d_labitems_rows,
            "d_items": self._d_items_rows,
            "diagnoses_icd": self._diagnosis_rows,
            "procedures_icd": self._procedure_rows,
            "labevents": self._lab_rows,
            "prescriptions": self._prescription_rows,
            "cost": self._cost_rows,
            "chartevents": self._chart_rows,
            "inputevents": self._input_rows,
            "outputevents": self._output_rows,
            "microbiologyevents": self._micro_rows,
            "icustays": self._icustay_rows,
            "transfers": self._transfer_rows,
            "departments": self._department_rows,
            "care_units": self._care_unit_rows,
            "staff": self._staff_rows,
            "patient_identity": self._identity_rows,
            "patient_contacts": self._contact_rows,
            "visits": self._visit_rows,
            "care_team": self._care_team_rows,
            "notes": self._note_rows,
        }
        if table not in producers:
            raise KeyError(f"The demo hospital has no table {table}.")
        return producers[table]()

    def _patient_rows(self) -> Iterator[Row]:
        for p in self.patients:
            dod = f"{p.dod:%Y-%m-%d} 00:00:00" if p.dod is not None else None
            yield (p.index, p.subject_id, p.gender, f"{p.birth:%Y-%m-%d} 00:00:00", dod)

    def _admission_rows(self) -> Iterator[Row]:
        text = self.clock.text
        for a in self.admissions:
            yield (
                a.index, a.patient.subject_id, a.hadm_id, text(a.admittime),
                None if a.dischtime is None else text(a.dischtime), a.admission_type, a.admission_location,
                a.discharge_location, a.insurance, a.language, a.marital_status, a.age,
            )  # fmt: skip

    def _d_icd_diagnoses_rows(self) -> Iterator[Row]:
        for row_id, (code, title) in enumerate(diagnosis_titles().items()):
            yield (row_id, icd10(code), title)

    def _d_icd_procedures_rows(self) -> Iterator[Row]:
        for row_id, (code, title) in enumerate(procedure_titles().items()):
            yield (row_id, icd10(code), title)

    def _d_labitems_rows(self) -> Iterator[Row]:
        for row_id, item in enumerate(labs.LAB_ITEMS.values()):
            yield (row_id, item.itemid, item.label, item.fluid, item.category, item.loinc)

    def _d_items_rows(self) -> Iterator[Row]:
        for row_id, item in enumerate(chart.D_ITEMS):
            yield (row_id, item.itemid, item.label, item.abbreviation, item.linksto)

    # ---------------------------------------------------------------------------- diagnoses

    def diagnoses(self, admission: Admission) -> list[str]:
        """The ICD-10-CM codes (CMS spelling) of one admission: principal first, no repeats."""
        rng = _stream(self.seed, _DX, admission.index)
        codes = [rng.choice(self._codes(admission.principal))]
        if admission.critical is not None:
            codes.append(rng.choice(self._codes(admission.critical)))
        codes.extend(code for _, code in admission.patient.comorbidities)
        codes.extend(admission.patient.status_codes)
        boost = 2.0 if admission.icustays else 1.0
        for code, share in clinical.SECONDARY:
            if rng.random() < share * boost:
                codes.append(rng.choice(expand_diagnosis(code)))
        return list(dict.fromkeys(codes))

    def _diagnosis_rows(self) -> Iterator[Row]:
        row_id = 0
        text = self.clock.text
        for a in self.admissions:
            # EHRSQL's MIMIC-IV dates every diagnosis at the admission time.
            charttime = text(a.admittime)
            for code in self.diagnoses(a):
                yield (row_id, a.patient.subject_id, a.hadm_id, icd10(code), charttime)
                row_id += 1

    # --------------------------------------------------------------------------- procedures

    def procedures(self, admission: Admission) -> list[tuple[str, int]]:
        """(ICD-10-PCS code, minute) of one admission's procedures, in time order."""
        rng = _stream(self.seed, _PX, admission.index)
        found: dict[str, int] = {}
        start, until = admission.admittime, admission.until
        operating = next((s.start for s in admission.segments if s.careunit == "pacu"), None)
        first_icu = admission.icustays[0].intime if admission.icustays else None
        if admission.principal.key == "coronary artery bypass" and first_icu is not None:
            operating = max(start, first_icu - 4 * HOUR)  # straight from the operating room to the CVICU

        def when(early: int, late: int) -> int:
            return start + rng.randint(early, max(early + 1, min(late, until - start - 1)))

        for code, share in clinical.PROCEDURES_FOR.get(admission.principal.key, ()):
            if rng.random() < share:
                found.setdefault(code, operating if operating is not None else when(HOUR, 2 * DAY))
        for code, share in clinical.PROCEDURES[admission.department]:
            if rng.random() < share * 0.4:
                found.setdefault(code, when(2 * HOUR, 4 * DAY))
        for stay in admission.icustays:
            outtime = stay.outtime if stay.outtime is not None else self.cutoff
            if stay.ventilated:
                found.setdefault("0BH17EZ", stay.intime + rng.randint(10, 90))
                if stay.outtime is not None:
                    hours = (outtime - stay.intime) / HOUR
                    code = "5A1935Z" if hours < 24 else "5A1945Z" if hours <= 96 else "5A1955Z"
                    found.setdefault(code, stay.intime + rng.randint(10, 90))
            if rng.random() < 0.5:
                found.setdefault("02HV33Z", stay.intime + rng.randint(30, 6 * HOUR))
            if stay.arterial_line:
                found.setdefault("03HY32Z", stay.intime + rng.randint(15, 3 * HOUR))
            for code, share in (("0DH67UZ", 0.1), ("3E0G76Z", 0.15), ("30233N1", 0.15), ("B548ZZA", 0.1)):
                if rng.random() < share:
                    found.setdefault(
                        code, stay.intime + rng.randint(HOUR, max(HOUR + 1, outtime - stay.intime))
                    )
        return sorted(
            ((code, minute) for code, minute in found.items() if start <= minute < until), key=_by_time
        )

    def _procedure_rows(self) -> Iterator[Row]:
        row_id = 0
        text = self.clock.text
        for a in self.admissions:
            for code, minute in self.procedures(a):
                yield (row_id, a.patient.subject_id, a.hadm_id, icd10(code), text(minute))
                row_id += 1

    # ---------------------------------------------------------------------------------- labs

    def _factor_levels(self, admission: Admission) -> dict[str, float]:
        levels: dict[str, float] = {}
        for condition in admission.conditions:
            for name, strength in condition.factors:
                if strength > levels.get(name, 0.0):
                    levels[name] = strength
        if admission.icustays:
            levels = {name: min(1.0, level * 1.25) for name, level in levels.items()}
        return levels

    def lab_orders(self, admission: Admission) -> list[tuple[int, str | None, tuple[int, ...]]]:
        """(charttime minute, priority, itemids) of every specimen an admission has drawn, in time order.

        Panels drawn together share a charttime; each panel is its own specimen. Admission work-up is
        stat; morning labs (04:00-06:30, the demo's charttime peak) are routine on the ward and mostly
        stat in intensive care, where blood gases and an afternoon chemistry are added.
        """
        rng = _stream(self.seed, _LAB_ORDERS, admission.index)
        chance = rng.random
        panels = labs.PANELS
        levels = self._factor_levels(admission)
        until = admission.until
        orders: list[tuple[int, str | None, tuple[int, ...]]] = []

        def add(minute: int, priority: str | None, panel: str) -> None:
            if minute < until:
                orders.append((minute, priority, panels[panel]))

        first = admission.arrival + rng.randint(10, 50)
        add(first, "stat", "cbc_diff" if chance() < 0.7 else "cbc")
        add(first, "stat", "chem10" if chance() < 0.55 else "chem7")
        if chance() < (0.85 if "anticoagulation" in levels or "hepatic" in levels else 0.4):
            add(first, "stat", "coag" if chance() < 0.85 else "coag_fib")
        if chance() < (0.85 if "hepatic" in levels or "pancreatic" in levels else 0.3):
            add(first, "stat", "lft" if chance() < 0.8 else "lft_direct")
        if admission.department == "CARD" or "cardiac" in levels:
            add(first, "stat", "cardiac")
            for hours in (6, 12):
                if chance() < 0.8:
                    add(first + hours * HOUR + rng.randint(-30, 30), "stat", "troponin")
        if "heart_failure" in levels:
            add(first, "stat", "bnp")
        if levels.get("inflammation", 0.0) >= 0.4 or chance() < 0.1:
            add(first, None, "lactate")
            if chance() < 0.5:
                add(first, "stat", "crp")
        if "urinary" in levels or chance() < 0.25:
            add(first + rng.randint(0, 90), "stat", "urinalysis")
        if "pancreatic" in levels or chance() < 0.08:
            add(first, "stat", "pancreas")
        if (admission.department == "ONC" or "marrow" in levels) and chance() < 0.6:
            add(first, "routine", "ldh")
        if "glycemic" in levels and chance() < 0.35:
            add(first + rng.randint(HOUR, DAY), "routine", "a1c")
        if chance() < 0.07:
            add(first + rng.randint(HOUR, DAY), "routine", "tsh")
        anticoagulated = "anticoagulation" in levels
        icu = [
            (s.intime, s.outtime if s.outtime is not None else self.cutoff, s.ventilated)
            for s in admission.icustays
        ]
        daily = 0.15 if admission.department == "PSYCH" else 0.85
        day = (admission.admittime // DAY + 1) * DAY
        while day < until:
            morning = day + rng.randint(3 * HOUR + 30, 6 * HOUR + 30)
            stay = next((s for s in icu if s[0] <= morning < s[1]), None)
            if stay is not None:
                priority = "stat" if chance() < 0.6 else "routine"
                add(morning, priority, "cbc")
                add(morning, priority, "chem10")
                if chance() < 0.6:
                    add(morning, priority, "coag")
                if chance() < 0.25:
                    add(morning, priority, "lft")
                if stay[2]:
                    if chance() < 0.8:
                        add(morning, None, "blood_gas")
                    if chance() < 0.6:
                        add(day + rng.randint(12 * HOUR, 20 * HOUR), None, "blood_gas")
                elif chance() < 0.2:
                    add(morning, None, "lactate")
                afternoon = day + rng.randint(15 * HOUR, 18 * HOUR)
                if chance() < 0.5:
                    add(afternoon, "stat", "chem7")
                if chance() < 0.25:
                    add(afternoon, "stat", "cbc")
            elif chance() < daily:
                priority = "routine" if chance() < 0.75 else "stat"
                if chance() < 0.8:
                    add(morning, priority, "cbc")
                if chance() < 0.85:
                    add(morning, priority, "chem10" if chance() < 0.5 else "chem7")
                if chance() < (0.4 if anticoagulated else 0.12):
                    add(morning, priority, "coag")
                if chance() < 0.1:
                    add(morning, priority, "lft")
            day += DAY
        orders.sort(key=_by_time)
        return orders

    def _lab_rows(self) -> Iterator[Row]:
        days, hm, cutoff = self.clock.days, _HM, self.cutoff
        row_id = 0
        specimen = 0
        for a in self.admissions:
            orders = self.lab_orders(a)
            rng = _stream(self.seed, _LAB_VALUES, a.index)
            gauss, lognormal = rng.gauss, rng.lognormvariate
            levels = self._factor_levels(a)
            female = a.patient.gender == "f"
            subject, hadm = a.patient.subject_id, a.hadm_id
            bases: dict[int, float] = {}
            span = max(DAY, a.until - a.arrival)
            for minute, priority, items in orders:
                log_median, sigma = _TURNAROUND[priority]
                store = minute + max(1, int(lognormal(log_median, sigma)))
                chart_text = days[minute // DAY] + hm[minute % DAY]
                pending = store >= cutoff  # collected before the extract, resulted after: no value yet
                store_text = None if pending else days[store // DAY] + hm[store % DAY]
                damp = 1.0 - 0.35 * (minute - a.arrival) / span  # acute problems settle over the stay
                specimen += 1
                specimen_id = 40_000_000 + specimen
                for itemid in items:
                    uom, decimals, knots, slopes, ref_male, ref_female, factors = _LAB_SPECS[itemid]
                    base = bases.get(itemid)
                    if base is None:
                        # The admission's level of this result, as a normal deviate: spread so that over
                        # all admissions results follow the item's quantiles, shifted by the problems.
                        base = gauss(0.0, 0.9)
                        for name, weight in factors:
                            base += _FACTOR_SCALE * weight * levels.get(name, 0.0)
                        bases[itemid] = base
                    ref = ref_female if female else ref_male
                    value: float | None = None
                    flag: str | None = None
                    if not pending:
                        u = 0.5 + 0.5 * erf((base * damp + gauss(0.0, 0.35)) * _SQRT_HALF)
                        u = 0.9999 if u >= 0.9999 else u
                        segment = bisect_right(_INNER_KNOTS, u)
                        # + 0.0 turns round()'s -0.0 into 0.0, which SQLite stores and PostgreSQL would not.
                        value = (
                            round(knots[segment] + slopes[segment] * (u - _KNOT_P[segment]), decimals) + 0.0
                        )
                        if ref is not None and (value < ref[0] or value > ref[1]):
                            flag = "abnormal"
                    yield (
                        row_id, subject, hadm, itemid, chart_text, value, uom, specimen_id, store_text,
                        None if ref is None else ref[0], None if ref is None else ref[1], flag, priority,
                    )  # fmt: skip
                    row_id += 1

    # ---------------------------------------------------------------------------- prescriptions

    def prescriptions(self, admission: Admission) -> list[tuple[int, int | None, drugs.DrugOrder]]:
        """(start minute, stop minute or None while still running, order) of one admission, by start."""
        rng = _stream(self.seed, _RX, admission.index)
        chance = rng.random
        sets: list[str] = [] if admission.patient.minor else ["inpatient"]
        for condition in admission.conditions:
            sets.extend(condition.orders)
        if admission.surgical:
            sets.append("surgery")
        if admission.patient.minor:
            sets = [name for name in sets if name.startswith("peds_") or name in ("diabetes",)]
        until = admission.until
        operating = next((s.start for s in admission.segments if s.careunit == "pacu"), None)
        icu_start = admission.icustays[0].intime if admission.icustays else None
        found: list[tuple[int, int | None, drugs.DrugOrder]] = []
        for name in dict.fromkeys(sets):
            if name.startswith("icu_") and icu_start is None:
                continue
            for order in drugs.ORDER_SETS[name]:
                if chance() >= order.probability:
                    continue
                if name.startswith("icu_") and icu_start is not None:
                    start = icu_start + rng.randint(15, 3 * HOUR)
                elif name == "surgery" and operating is not None:
                    start = operating + rng.randint(0, 2 * HOUR)
                else:
                    start = admission.admittime + rng.randint(30, 6 * HOUR)
                for _ in range(8):
                    if start >= until:
                        break
                    stop: int | None = start + _lognormal_minutes(rng, order.hours * HOUR, 0.6, cap=14 * DAY)
                    if stop is not None and stop > until:
                        stop = None if admission.current else until
                    found.append((start, stop, order))
                    if not order.reorder_days:
                        break
                    start += int(order.reorder_days * DAY) + rng.randint(-2 * HOUR, 2 * HOUR)
        found.sort(key=_by_time)
        return found

    def _prescription_rows(self) -> Iterator[Row]:
        text = self.clock.text
        row_id = 0
        for a in self.admissions:
            for start, stop, order in self.prescriptions(a):
                yield (
                    row_id, a.patient.subject_id, a.hadm_id, text(start),
                    None if stop is None else text(stop),
                    order.drug, _dose_text(order.dose), order.unit, order.route,
                )  # fmt: skip
                row_id += 1

    # ----------------------------------------------------------------------------------- cost

    def _cost_rows(self) -> Iterator[Row]:
        """One charge per diagnosis, procedure, lab result and prescription, as EHRSQL's cost table:
        event_id is the row_id of the event, chargetime its time, the price fixed per code."""
        days, hm, text = self.clock.days, _HM, self.clock.text
        row_id = 0
        event_id = 0
        for a in self.admissions:
            charttime = text(a.admittime)
            for code in self.diagnoses(a):
                yield (row_id, a.patient.subject_id, a.hadm_id, "diagnoses_icd", event_id, charttime,
                       _price("diagnoses_icd", code))  # fmt: skip
                row_id += 1
                event_id += 1
        event_id = 0
        for a in self.admissions:
            for code, minute in self.procedures(a):
                yield (row_id, a.patient.subject_id, a.hadm_id, "procedures_icd", event_id, text(minute),
                       _price("procedures_icd", code))  # fmt: skip
                row_id += 1
                event_id += 1
        event_id = 0
        lab_prices = {itemid: _price("labevents", str(itemid)) for itemid in labs.LAB_ITEMS}
        for a in self.admissions:
            subject, hadm = a.patient.subject_id, a.hadm_id
            for minute, _, items in self.lab_orders(a):
                chart_text = days[minute // DAY] + hm[minute % DAY]
                for itemid in items:
                    yield (row_id, subject, hadm, "labevents", event_id, chart_text, lab_prices[itemid])
                    row_id += 1
                    event_id += 1
        event_id = 0
        for a in self.admissions:
            for start, _, order in self.prescriptions(a):
                yield (row_id, a.patient.subject_id, a.hadm_id, "prescriptions", event_id, text(start),
                       _price("prescriptions", order.drug))  # fmt: skip
                row_id += 1
                event_id += 1

    # ------------------------------------------------------------------------------ ICU charting

    def _stays(self) -> Iterator[tuple[Admission, int, IcuStay]]:
        for a in self.admissions:
            for position, stay in enumerate(a.icustays):
                yield a, a.index * 8 + position, stay

    def _chart_rows(self) -> Iterator[Row]:
        """Hourly vital signs for every ICU stay (EHRSQL's chartevents items), weight and height."""
        days, hm, cutoff = self.clock.days, _HM, self.cutoff
        row_id = 0
        for a, key, stay in self._stays():
            rng = _stream(self.seed, _CHART, key)
            gauss, chance = rng.gauss, rng.random
            levels = self._factor_levels(a)
            subject, hadm, stay_id = a.patient.subject_id, a.hadm_id, stay.stay_id
            inflamed, shock = levels.get("inflammation", 0.0), levels.get("acidosis", 0.0)
            breathless = levels.get("respiratory", 0.0)
            heart = gauss(86, 11) + 14 * inflamed
            systolic = gauss(124, 15) - 20 * shock
            diastolic = systolic * 0.55 + gauss(0, 5)
            breath = gauss(18, 3) + 5 * breathless
            saturation = min(99.5, gauss(97, 1.3) - 3 * breathless)
            temperature = gauss(36.9, 0.3) + 0.9 * inflamed
            if stay.arterial_line:
                pressure_items = (
                    chart.ABP_SYSTOLIC.itemid,
                    chart.ABP_DIASTOLIC.itemid,
                    chart.ABP_MEAN.itemid,
                )
            else:
                pressure_items = (
                    chart.NBP_SYSTOLIC.itemid,
                    chart.NBP_DIASTOLIC.itemid,
                    chart.NBP_MEAN.itemid,
                )
            female = a.patient.gender == "f"
            height = round(gauss(163, 6.5) if female else gauss(176, 7))
            weight = round(height * height / 10_000 * max(17.0, gauss(27.5, 5)), 1)
            end = stay.outtime if stay.outtime is not None else cutoff
            first = stay.intime + HOUR
            if first < end:
                when = days[first // DAY] + hm[first % DAY]
                yield (
                    row_id,
                    subject,
                    hadm,
                    stay_id,
                    chart.ADMISSION_WEIGHT.itemid,
                    when,
                    float(weight),
                    "kg",
                )
                yield (row_id + 1, subject, hadm, stay_id, chart.HEIGHT.itemid, when, float(height), "cm")
                row_id += 2
            minute = (stay.intime // HOUR + 1) * HOUR
            drift_hr = drift_bp = 0.0
            while minute < end:
                when = days[minute // DAY] + hm[minute % DAY]
                drift_hr = 0.9 * drift_hr + gauss(0, 2.5)
                drift_bp = 0.9 * drift_bp + gauss(0, 3)
                hr = round(heart + drift_hr + gauss(0, 4))
                sbp = round(systolic + drift_bp + gauss(0, 6))
                dbp = round(diastolic + 0.5 * drift_bp + gauss(0, 4))
                values: list[tuple[int, float, str]] = [
                    (chart.HEART_RATE.itemid, float(max(30, hr)), "bpm"),
                    (chart.SAO2.itemid, float(min(100, round(saturation + gauss(0, 1.2)))), "%"),
                    (chart.RESPIRATORY_RATE.itemid, float(max(6, round(breath + gauss(0, 2.5)))), "insp/min"),
                    (pressure_items[0], float(max(60, sbp)), "mmhg"),
                    (pressure_items[1], float(max(30, dbp)), "mmhg"),
                    (pressure_items[2], float(round((max(60, sbp) + 2 * max(30, dbp)) / 3)), "mmhg"),
                ]
                hour = minute % DAY // HOUR
                if hour % 4 == 0:
                    values.append((chart.TEMPERATURE.itemid, round(temperature + gauss(0, 0.3), 1), "°c"))
                if hour == 4:
                    values.append((chart.DAILY_WEIGHT.itemid, round(weight + gauss(0, 0.8), 1), "kg"))
                for itemid, value, uom in values:
                    if chance() < 0.03:
                        continue  # charting gaps: a reading not documented that hour
                    yield (row_id, subject, hadm, stay_id, itemid, when, value, uom)
                    row_id += 1
                minute += HOUR

    def _fluid_plan(
        self, a: Admission, stay: IcuStay, rng: random.Random, outputs: bool
    ) -> list[chart.FluidItem]:
        chance = rng.random
        levels = self._factor_levels(a)
        keys = {c.key for c in a.conditions}
        if outputs:
            wanted = [
                ("foley" if stay.ventilated or chance() < 0.7 else "void", 1.0),
                ("chest_tube", 1.0 if stay.first_careunit.startswith("cardiac vascular") else 0.05),
                ("orogastric", 0.5 if stay.ventilated else 0.0),
                ("stool", 0.3),
                ("drain", 0.4 if a.surgical else 0.02),
                ("evd", 0.5 if keys & {"intracerebral hemorrhage", "subarachnoid hemorrhage"} else 0.0),
            ]
            table = chart.OUTPUTS
        else:
            infected = any(c.culture for c in a.conditions)
            coronary = any("acs" in c.orders for c in a.conditions)
            wanted = [
                ("nacl", 0.85), ("d5w", 0.4), ("lr", 0.3), ("kcl", 0.4), ("mag", 0.4), ("calcium", 0.2),
                ("pantoprazole", 0.3),
                ("propofol", 0.8 if stay.ventilated else 0.0), ("fentanyl", 0.7 if stay.ventilated else 0.0),
                ("dexmedetomidine", 0.2 if stay.ventilated else 0.05),
                ("gastric", 0.5 if stay.ventilated else 0.1), ("po", 0.0 if stay.ventilated else 0.8),
                ("norepinephrine", 0.9 if any("icu_pressor" in c.orders for c in a.conditions) else 0.05),
                ("phenylephrine", 0.3 if any("icu_pressor" in c.orders for c in a.conditions) else 0.02),
                ("cefepime", 0.4 if infected else 0.03), ("zosyn", 0.4 if infected else 0.03),
                ("metronidazole", 0.2 if infected else 0.0), ("ceftriaxone", 0.3 if infected else 0.02),
                ("cefazolin", 0.6 if a.surgical else 0.02), ("insulin", 0.7 if "glycemic" in levels else 0.1),
                ("heparin", 0.5 if "anticoagulation" in levels or coronary else 0.05),
                ("prbc", 0.4 if "anemia" in levels else 0.05),
                ("albumin", 0.3 if "hepatic" in levels else 0.03),
                ("nicardipine", 0.3 if keys & {"intracerebral hemorrhage", "ischemic stroke"} else 0.02),
                ("nitroglycerin", 0.3 if keys & {"nstemi", "stemi", "heart failure"} else 0.01),
            ]  # fmt: skip
            table = chart.INPUTS
        return [table[name] for name, share in wanted if chance() < share]

    def _fluid_rows(self, outputs: bool) -> Iterator[Row]:
        days, hm, cutoff = self.clock.days, _HM, self.cutoff
        row_id = 0
        for a, key, stay in self._stays():
            rng = _stream(self.seed, _FLUIDS, key * 2 + (1 if outputs else 0))
            end = stay.outtime if stay.outtime is not None else cutoff
            events: list[tuple[int, int, float]] = []
            for fluid in self._fluid_plan(a, stay, rng, outputs):
                minute = stay.intime + rng.randint(10, 3 * HOUR)
                while minute < end:
                    events.append((minute, fluid.item.itemid, float(rng.choice(fluid.amounts))))
                    minute += _lognormal_minutes(rng, fluid.hours * HOUR, 0.4, cap=3 * DAY)
            events.sort()
            for minute, itemid, amount in events:
                when = days[minute // DAY] + hm[minute % DAY]
                # inputevents and outputevents share this column order (starttime/charttime, value).
                yield (row_id, a.patient.subject_id, a.hadm_id, stay.stay_id, when, itemid, amount, "ml")
                row_id += 1

    def _input_rows(self) -> Iterator[Row]:
        return self._fluid_rows(outputs=False)

    def _output_rows(self) -> Iterator[Row]:
        return self._fluid_rows(outputs=True)

    # ---------------------------------------------------------------------------- microbiology

    def microbiology(self, admission: Admission) -> list[tuple[int, str, str, str | None]]:
        """(minute, spec_type_desc, test_name, org_name) of one admission's cultures and screens."""
        rng = _stream(self.seed, _MICRO, admission.index)
        chance = rng.random
        kinds: dict[str, bool] = {}
        for condition in admission.conditions:
            if condition.culture:
                kinds[condition.culture] = True
        if chance() < 0.08:
            kinds.setdefault("urine", False)
        if admission.segments[0].eventtype == "ed" and chance() < 0.06:
            kinds.setdefault("blood", False)
        found: list[tuple[int, str, str, str | None]] = []
        first = admission.arrival + rng.randint(20, 3 * HOUR)

        def send(minute: int, kind: str, infected: bool) -> None:
            for spec, test in clinical.CULTURE_TESTS[kind]:
                organism = None
                if test != "gram stain" and chance() < clinical.POSITIVE_RATE[kind] * (
                    1.6 if infected else 0.4
                ):
                    organism = _pick(rng, clinical.ORGANISMS[kind])
                found.append((minute, spec, test, organism))

        for kind, infected in kinds.items():
            send(first + rng.randint(0, HOUR), kind, infected)
            if kind == "blood" and infected and chance() < 0.5:
                send(first + DAY + rng.randint(0, 6 * HOUR), kind, infected)
        for stay in admission.icustays:
            send(stay.intime + rng.randint(30, 4 * HOUR), "screen", False)
            if chance() < 0.3:
                send(stay.intime + rng.randint(30, 4 * HOUR), "vre", False)
        return sorted((f for f in found if f[0] < admission.until), key=_by_time)

    def _micro_rows(self) -> Iterator[Row]:
        text = self.clock.text
        row_id = 0
        for a in self.admissions:
            for minute, spec, test, organism in self.microbiology(a):
                yield (row_id, a.patient.subject_id, a.hadm_id, text(minute), spec, test, organism)
                row_id += 1

    # ---------------------------------------------------------------------------- stays and units

    def _icustay_rows(self) -> Iterator[Row]:
        text = self.clock.text
        row_id = 0
        for a in self.admissions:
            for stay in a.icustays:
                outtime = None if stay.outtime is None else text(stay.outtime)
                yield (row_id, a.patient.subject_id, a.hadm_id, stay.stay_id, stay.first_careunit,
                       stay.last_careunit, text(stay.intime), outtime)  # fmt: skip
                row_id += 1

    def _transfer_rows(self) -> Iterator[Row]:
        """One row per unit stay (eventtype ed, admit, transfer) and a discharge row, as MIMIC-IV has."""
        text = self.clock.text
        row_id = 0
        discharges = self._transfer_counter
        for a in self.admissions:
            for segment in a.segments:
                outtime = None if segment.end is None else text(segment.end)
                yield (row_id, a.patient.subject_id, a.hadm_id, segment.transfer_id, segment.eventtype,
                       segment.careunit, text(segment.start), outtime)  # fmt: skip
                row_id += 1
            if a.dischtime is not None:
                transfer_id = _permute(discharges, 6_180_339, 1_433_143, 30_000_000)
                discharges += 1
                yield (
                    row_id,
                    a.patient.subject_id,
                    a.hadm_id,
                    transfer_id,
                    "discharge",
                    None,
                    text(a.dischtime),
                    None,
                )
                row_id += 1

    def _department_rows(self) -> Iterator[Row]:
        for d in DEPARTMENTS:
            yield (d.department_id, d.code, d.name)

    def _care_unit_rows(self) -> Iterator[Row]:
        for unit in CARE_UNITS:
            yield (
                unit.careunit,
                DEPARTMENT_BY_CODE[unit.department_code].department_id,
                unit.unit_type,
                unit.beds,
            )

    def _staff_rows(self) -> Iterator[Row]:
        for s in self.staff:
            department_id = DEPARTMENT_BY_CODE[s.department].department_id if s.department else None
            yield (s.staff_id, s.username, s.given, s.family, s.role, department_id, s.phone, s.email,
                   s.address, s.postcode, s.active)  # fmt: skip

    def _identity_rows(self) -> Iterator[Row]:
        for p in self.patients:
            yield (
                p.subject_id, p.mrn, p.national_id, p.given, p.family, f"{p.birth:%Y-%m-%d}", p.phone,
                p.email,
                p.address, p.city, p.postcode, p.vip, p.staff_id is not None, p.staff_id,
            )  # fmt: skip

    def _contact_rows(self) -> Iterator[Row]:
        contact_id = 1
        for p in self.patients:
            for contact in p.contacts:
                yield (contact_id, p.subject_id, contact.full_name, contact.relationship, contact.phone)
                contact_id += 1

    def _visit_rows(self) -> Iterator[Row]:
        text = self.clock.text
        visit_id = 1
        for p in self.patients:
            for v in p.visits:
                yield (
                    visit_id, p.subject_id, v.visit_type, DEPARTMENT_BY_CODE[v.department].department_id,
                    v.careunit, text(v.start), None if v.end is None else text(v.end), v.disposition,
                    v.hadm_id,
                )  # fmt: skip
                visit_id += 1

    def _care_team_rows(self) -> Iterator[Row]:
        text = self.clock.text
        row_id = 1
        for a in self.admissions:
            for member in a.care_team:
                end = None if member.end is None else text(member.end)
                yield (row_id, a.patient.subject_id, a.hadm_id, member.staff_id, member.team_role,
                       text(member.start), end)  # fmt: skip
                row_id += 1

    # ----------------------------------------------------------------------------------- notes

    def notes(self) -> Iterator[GeneratedNote]:
        """Every clinical note with the PHI spans written into it (for measuring de-identification)."""
        note_id = 1
        for p in self.patients:
            for a in p.admissions:
                for note in self._admission_notes(a, note_id):
                    yield note
                    note_id += 1
            for note in self._clinic_notes(p, note_id):
                yield note
                note_id += 1

    def _note_rows(self) -> Iterator[Row]:
        for n in self.notes():
            yield (n.note_id, n.subject_id, n.hadm_id, n.author_staff_id, n.charttime, n.note_type, n.text)

    def _attending_at(self, admission: Admission, minute: int) -> int:
        attending = [m for m in admission.care_team if m.team_role == "attending"]
        for member in attending:
            if member.start <= minute and (member.end is None or minute < member.end):
                return member.staff_id
        return attending[-1].staff_id

    def _admission_notes(self, admission: Admission, first_id: int) -> Iterator[GeneratedNote]:
        rng = _stream(self.seed, _NOTES, admission.index)
        until = admission.until
        times: list[tuple[str, int]] = []
        written = admission.admittime + rng.randint(HOUR, 4 * HOUR)
        if written < until:
            times.append(("admission note", written))
        for day in (2, 4):
            minute = (admission.admittime // DAY + day) * DAY + rng.randint(9 * HOUR, 12 * HOUR)
            if minute < until - HOUR:
                times.append(("progress note", minute))
        if admission.dischtime is not None:
            times.append(
                (
                    "discharge summary",
                    max(admission.admittime, admission.dischtime - rng.randint(10, 2 * HOUR)),
                )
            )
        if not times:
            return
        base = self._note_context(admission, rng)
        for offset, (note_type, minute) in enumerate(times):
            author = self._attending_at(admission, minute)
            unit = next(
                (
                    s.careunit
                    for s in admission.segments
                    if s.start <= minute and (s.end is None or minute < s.end)
                ),
                admission.segments[-1].careunit,
            )
            context = replace(
                base,
                note_date=f"{self.clock.date_of(minute):%m/%d/%Y}",
                author=self._staff_name(author),
                careunit=unit,
                hospital_day=1 + (minute - admission.admittime) // DAY,
            )
            text, spans = generate_note(rng, note_type, context)
            yield GeneratedNote(
                first_id + offset, admission.patient.subject_id, admission.hadm_id, author,
                self.clock.text(minute), note_type, text, tuple(spans),
            )  # fmt: skip

    def _clinic_notes(self, patient: Patient, first_id: int) -> Iterator[GeneratedNote]:
        rng = _stream(self.seed, _NOTES, 3_000_000_000 + patient.index)
        number = 0
        for visit in patient.visits:
            if (
                visit.visit_type != "outpatient"
                or visit.end is None
                or visit.staff_id is None
                or rng.random() > 0.3
            ):
                continue
            context = self._clinic_context(patient, visit, rng)
            text, spans = generate_note(rng, "clinic note", context)
            yield GeneratedNote(first_id + number, patient.subject_id, None, visit.staff_id,
                                self.clock.text(visit.end), "clinic note", text, tuple(spans))  # fmt: skip
            number += 1

    def _staff_name(self, staff_id: int) -> str:
        return self.staff[staff_id - 1].full_name

    def _note_context(self, admission: Admission, rng: random.Random) -> NoteContext:
        """What the notes of one admission say; author, unit and hospital day are set per note."""
        p = admission.patient
        titles = diagnosis_titles()
        codes = self.diagnoses(admission)
        orders = [name for c in admission.conditions for name in c.orders]
        medications = tuple(dict.fromkeys(o.drug for _, _, o in self.prescriptions(admission)[:12]))
        procedures = tuple(procedure_titles()[code] for code, _ in self.procedures(admission))
        complaint = rng.choice(
            phrases.COMPLAINTS.get(admission.principal.key)
            or phrases.DEPARTMENT_COMPLAINTS[admission.department]
        )
        return NoteContext(
            given=p.given,
            family=p.family,
            gender=p.gender,
            age=admission.age,
            mrn=p.mrn,
            national_id=p.national_id,
            birth_date=f"{p.birth:%m/%d/%Y}",
            phone=p.phone,
            address=p.address,
            city=p.city,
            email=p.email,
            relative_name=p.contacts[0].full_name,
            relationship=p.contacts[0].relationship,
            relative_phone=p.contacts[0].phone,
            author="",
            department=DEPARTMENT_BY_CODE[admission.department].name,
            careunit=admission.segments[0].careunit,
            admit_date=f"{self.clock.date_of(admission.admittime):%m/%d/%Y}",
            note_date=f"{self.clock.date_of(admission.admittime):%m/%d/%Y}",
            discharge_date=None
            if admission.dischtime is None
            else f"{self.clock.date_of(admission.dischtime):%m/%d/%Y}",
            hospital_day=1,
            complaint=complaint,
            principal=admission.principal.key,
            diagnoses=tuple(titles[code] for code in codes[:8]),
            history=tuple(titles[code] for _, code in p.comorbidities),
            medications=medications,
            plans=tuple(phrases.PLANS[name] for name in dict.fromkeys(orders) if name in phrases.PLANS)[:5],
            procedures=procedures[:4],
            disposition=admission.discharge_location,
            clinic=_CLINICS[admission.department],
        )

    def _clinic_context(self, patient: Patient, visit: Visit, rng: random.Random) -> NoteContext:
        titles = diagnosis_titles()
        department = visit.department
        return NoteContext(
            given=patient.given,
            family=patient.family,
            gender=patient.gender,
            age=_age_at(patient.birth, self.clock.date_of(visit.start)),
            mrn=patient.mrn,
            national_id=patient.national_id,
            birth_date=f"{patient.birth:%m/%d/%Y}",
            phone=patient.phone,
            address=patient.address,
            city=patient.city,
            email=patient.email,
            relative_name=patient.contacts[0].full_name,
            relationship=patient.contacts[0].relationship,
            relative_phone=patient.contacts[0].phone,
            author=self._staff_name(visit.staff_id or 1),
            department=DEPARTMENT_BY_CODE[department].name,
            careunit=_CLINICS[department] + " clinic",
            admit_date=f"{self.clock.date_of(visit.start):%m/%d/%Y}",
            note_date=f"{self.clock.date_of(visit.start):%m/%d/%Y}",
            discharge_date=None,
            hospital_day=0,
            complaint=rng.choice(phrases.DEPARTMENT_COMPLAINTS[department]),
            principal=_CLINICS[department] + " follow-up",
            diagnoses=tuple(titles[code] for _, code in patient.comorbidities[:6]),
            history=tuple(titles[code] for _, code in patient.comorbidities),
            medications=(),
            plans=tuple(
                phrases.PLANS[name]
                for c, _ in patient.comorbidities
                for name in c.orders
                if name in phrases.PLANS
            )[:3],
            procedures=(),
            disposition=None,
            clinic=_CLINICS[department],
        )


# ======================================================================================= notes

PhiKind = Literal[
    "PATIENT_NAME", "RELATIVE_NAME", "STAFF_NAME", "PHONE", "MRN", "NATIONAL_ID", "DATE", "ADDRESS",
    "LOCATION", "EMAIL", "AGE",
]  # fmt: skip
# HIPAA Safe Harbor: ages over 89 identify (few people are that old), so the number is an AGE span.
PHI_AGE_FROM = 90
NOTE_MIN_CHARS = 500
NOTE_MAX_CHARS = 3000


@dataclass(frozen=True)
class PhiSpan:
    """Where a generated note names or identifies someone: text[start:end] is the identifier."""

    kind: PhiKind
    start: int
    end: int


@dataclass(frozen=True)
class NoteContext:
    """Everything a note may say about its patient; the identifying fields become PHI spans."""

    given: str
    family: str
    gender: str
    age: int
    mrn: str
    national_id: str
    birth_date: str
    phone: str
    address: str
    city: str
    email: str | None
    relative_name: str
    relationship: str
    relative_phone: str
    author: str
    department: str
    careunit: str
    admit_date: str
    note_date: str
    discharge_date: str | None
    hospital_day: int
    complaint: str
    principal: str
    diagnoses: tuple[str, ...]
    history: tuple[str, ...]  # long-standing problems, for "a history of ..."
    medications: tuple[str, ...]
    plans: tuple[str, ...]
    procedures: tuple[str, ...]
    disposition: str | None
    clinic: str


@dataclass(frozen=True)
class GeneratedNote:
    note_id: int
    subject_id: int
    hadm_id: int | None
    author_staff_id: int | None
    charttime: str
    note_type: str
    text: str
    spans: tuple[PhiSpan, ...]


class _Section:
    """A piece of note text that remembers where it put identifiers."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[PhiSpan] = []
        self.size = 0

    def add(self, text: str) -> _Section:
        self.parts.append(text)
        self.size += len(text)
        return self

    def phi(self, kind: PhiKind, text: str) -> _Section:
        if text:
            self.spans.append(PhiSpan(kind, self.size, self.size + len(text)))
        return self.add(text)


def _header(rng: random.Random, title: str, c: NoteContext, *, national_id: float) -> _Section:
    section = _Section().add(f"{title}\nPatient: ").phi("PATIENT_NAME", f"{c.given} {c.family}")
    section.add("    MRN: ").phi("MRN", c.mrn).add("    DOB: ").phi("DATE", c.birth_date)
    if rng.random() < national_id:
        section.add("\nNational ID: ").phi("NATIONAL_ID", c.national_id)
    section.add(f"\nUnit: {c.careunit}    Service: {c.department}    Date: ").phi("DATE", c.note_date)
    return section


def _signature(c: NoteContext) -> _Section:
    return (
        _Section().add("Electronically signed by ").phi("STAFF_NAME", c.author).add(f", MD, {c.department}.")
    )


def _vitals(rng: random.Random) -> str:
    return (
        f"T {rng.uniform(36.4, 38.3):.1f} C, HR {rng.randint(62, 112)}, BP {rng.randint(100, 158)}/"
        f"{rng.randint(55, 92)}, RR {rng.randint(12, 24)}, SpO2 {rng.randint(91, 100)}% on "
        f"{rng.choice(('room air', 'room air', '2 L nasal cannula', '4 L nasal cannula'))}."
    )


def _person(c: NoteContext) -> str:
    return "man" if c.gender == "m" else "woman" if c.age >= 18 else "boy" if c.gender == "m" else "girl"


def _title(c: NoteContext) -> str:
    return "Mr." if c.gender == "m" else "Ms."


def _history(c: NoteContext) -> str:
    return "a history of " + "; ".join(c.history[:3]) if c.history else "no significant past medical history"


def _contact(section: _Section, c: NoteContext, lead: str) -> _Section:
    section.add(lead).phi("RELATIVE_NAME", c.relative_name).add(f" ({c.relationship}), ")
    return section.phi("PHONE", c.relative_phone).add(".")


def _age(section: _Section, c: NoteContext) -> _Section:
    """The patient's age as written ("92"), marked as PHI only when it is over 89."""
    return section.phi("AGE", str(c.age)) if c.age >= PHI_AGE_FROM else section.add(str(c.age))


def _admission_note(rng: random.Random, c: NoteContext) -> list[tuple[_Section, bool]]:
    hpi = _Section().add("History of present illness: ").phi("PATIENT_NAME", f"{c.given} {c.family}")
    _age(hpi.add(" is a "), c)
    hpi.add(f"-year-old {_person(c)} with {_history(c)} who presents with {c.complaint}. ")
    hpi.add(rng.choice(phrases.ONSETS).format(n=rng.randint(2, 6)))
    social = _Section().add("Social history: Lives ")
    if c.relationship in ("spouse", "partner"):
        social.add(f"with {c.relationship} ").phi("RELATIVE_NAME", c.relative_name)
    else:
        social.add("independently")
    if rng.random() < 0.5:
        social.add(" at ").phi("ADDRESS", c.address).add(", ").phi("LOCATION", c.city)
    social.add(f". {rng.choice(phrases.TOBACCO)} {rng.choice(phrases.ALCOHOL)}")
    _contact(social, c, " Emergency contact: ")
    exam = _Section().add("Examination: " + _vitals(rng) + " " + " ".join(rng.sample(phrases.EXAM, 3)))
    plan = _age(_Section().add("Assessment and plan: "), c)
    plan.add(f"-year-old {_person(c)} admitted with {c.principal}.")
    for line in c.plans or ("Supportive care, monitor and reassess in the morning.",):
        plan.add("\n- " + line)
    sections: list[tuple[_Section, bool]] = [
        (_header(rng, "ADMISSION HISTORY AND PHYSICAL", c, national_id=0.35), False),
        (_Section().add(f"Chief complaint: {c.complaint}."), False),
        (hpi, False),
        (_Section().add("Past medical history: " + ("; ".join(c.diagnoses[1:7]) or "none")), True),
        (_Section().add("Medications: " + (", ".join(c.medications[:8]) or "none on admission") + "."), True),
        (_Section().add("Allergies: " + rng.choice(phrases.ALLERGIES)), False),
        (social, False),
        (exam, True),
        (plan, False),
        (_signature(c), False),
    ]
    return sections


def _progress_note(rng: random.Random, c: NoteContext) -> list[tuple[_Section, bool]]:
    plan = _Section().add("Assessment and plan: ").phi("PATIENT_NAME", f"{_title(c)} {c.family}")
    plan.add(f" continues treatment for {c.principal}.")
    for line in c.plans[:4]:
        plan.add("\n- " + line)
    return [
        (_header(rng, f"PROGRESS NOTE - hospital day {c.hospital_day}", c, national_id=0.1), False),
        (_Section().add("Subjective: " + rng.choice(phrases.PROGRESS)), False),
        (_Section().add("Objective: " + _vitals(rng) + " " + " ".join(rng.sample(phrases.EXAM, 2))), True),
        (plan, False),
        (_contact(_Section(), c, "Family: updated "), False),
        (_signature(c), False),
    ]


def _discharge_summary(rng: random.Random, c: NoteContext) -> list[tuple[_Section, bool]]:
    header = _header(rng, "DISCHARGE SUMMARY", c, national_id=0.25)
    header.add("\nAdmission date: ").phi("DATE", c.admit_date)
    header.add("    Discharge date: ").phi("DATE", c.discharge_date or c.note_date)
    course = _Section().add("Hospital course: ").phi("PATIENT_NAME", f"{_title(c)} {c.family}")
    course.add(
        f" was admitted with {c.complaint} and treated for {c.principal}. {rng.choice(phrases.COURSES)}"
    )
    disposition = _Section()
    if c.disposition == "died":
        disposition.add("Disposition: the patient died in hospital on ").phi(
            "DATE", c.discharge_date or c.admit_date
        )
        _contact(disposition, c, ". Family was informed: ")
    else:
        disposition.add(f"Disposition: discharged to {c.disposition or 'home'}")
        if rng.random() < 0.5:
            disposition.add(", ").phi("ADDRESS", c.address).add(", ").phi("LOCATION", c.city)
        _contact(disposition, c, ". Caregiver: ")
    follow = _Section().add(rng.choice(phrases.FOLLOW_UP).format(clinic=c.clinic, n=rng.randint(1, 6)))
    follow.add(" Patient phone: ").phi("PHONE", c.phone).add(".")
    if c.email and rng.random() < 0.4:
        follow.add(" Portal account: ").phi("EMAIL", c.email).add(".")
    return [
        (header, False),
        (_Section().add(f"Principal diagnosis: {c.diagnoses[0] if c.diagnoses else c.principal}"), False),
        (_Section().add("Secondary diagnoses: " + ("; ".join(c.diagnoses[1:7]) or "none")), True),
        (course, False),
        (_Section().add("Procedures: " + ("; ".join(c.procedures) or "none")), True),
        (_Section().add("Discharge medications: " + (", ".join(c.medications[:10]) or "none") + "."), True),
        (disposition, False),
        (follow, False),
        (_signature(c), False),
    ]


def _clinic_note(rng: random.Random, c: NoteContext) -> list[tuple[_Section, bool]]:
    reason = _Section().phi("PATIENT_NAME", f"{c.given} {c.family}")
    _age(reason.add(" is a "), c)
    reason.add(f"-year-old {_person(c)} seen in the {c.clinic} clinic for {c.complaint}, ")
    reason.add(f"with {_history(c)}. " + rng.choice(phrases.PROGRESS))
    plan = _Section().add("Plan:")
    for line in c.plans or ("Continue current management.",):
        plan.add("\n- " + line)
    plan.add("\n- " + rng.choice(phrases.FOLLOW_UP).format(clinic=c.clinic, n=rng.randint(4, 12)))
    return [
        (_header(rng, "OUTPATIENT CLINIC NOTE", c, national_id=0.2), False),
        (reason, False),
        (_Section().add("Examination: " + _vitals(rng) + " " + " ".join(rng.sample(phrases.EXAM, 2))), True),
        (plan, False),
        (_contact(_Section(), c, "Next of kin: "), True),
        (_signature(c), False),
    ]


_NOTE_BUILDERS: dict[str, Callable[[random.Random, NoteContext], list[tuple[_Section, bool]]]] = {
    "admission note": _admission_note,
    "progress note": _progress_note,
    "discharge summary": _discharge_summary,
    "clinic note": _clinic_note,
}
NOTE_TYPES: tuple[str, ...] = tuple(_NOTE_BUILDERS)


def generate_note(rng: random.Random, note_type: str, context: NoteContext) -> tuple[str, list[PhiSpan]]:
    """A clinical note of 500-3000 characters and the PHI spans it contains.

    Optional sections are dropped from the end while the note is too long; identity confirmations,
    themselves PHI, are added while it is too short.
    """
    sections = _NOTE_BUILDERS[note_type](rng, context)
    separator = "\n\n"

    def length() -> int:
        return sum(section.size for section, _ in sections) + len(separator) * (len(sections) - 1)

    while length() > NOTE_MAX_CHARS and any(optional for _, optional in sections):
        last_optional = max(i for i, (_, optional) in enumerate(sections) if optional)
        del sections[last_optional]
    padding = iter(
        (
            _contact(_Section().add("Code status: full code. "), context, "Health care proxy: "),
            _Section()
            .add("Identity confirmed with two identifiers: name ")
            .phi("PATIENT_NAME", f"{context.given} {context.family}")
            .add(" and date of birth ")
            .phi("DATE", context.birth_date)
            .add("."),
            _Section()
            .add("Medical record number ")
            .phi("MRN", context.mrn)
            .add(" verified at the bedside; wristband checked against the chart and the medication record."),
            _Section().add("Nursing: " + " ".join(phrases.EXAM[:6])),
        )
    )
    while length() < NOTE_MIN_CHARS:
        extra = next(padding, None)
        if extra is None:
            break
        sections.insert(len(sections) - 1, (extra, False))
    text_parts: list[str] = []
    spans: list[PhiSpan] = []
    offset = 0
    for number, (section, _) in enumerate(sections):
        if number:
            text_parts.append(separator)
            offset += len(separator)
        text_parts.append("".join(section.parts))
        spans.extend(PhiSpan(span.kind, span.start + offset, span.end + offset) for span in section.spans)
        offset += section.size
    return "".join(text_parts), spans


# ===================================================================================== helpers

_MARITAL: tuple[tuple[tuple[str | None, float], ...], ...] = (
    (("single", 78), ("married", 16), ("divorced", 3), (None, 3)),
    (("married", 50), ("single", 28), ("divorced", 15), ("widowed", 3), (None, 4)),
    (("married", 40), ("widowed", 30), ("single", 14), ("divorced", 12), (None, 4)),
)
_CLINIC_CODES: tuple[str, ...] = ("MED", "CARD", "NEURO", "SURG", "ONC", "PSYCH")
_CONSULTS: dict[str, tuple[tuple[str, float], ...]] = {
    "MED": (("CARD", 3.0), ("NEURO", 2.0), ("PSYCH", 2.0), ("SURG", 1.0), ("ONC", 1.0)),
    "CARD": (("MED", 2.0), ("NEURO", 1.0), ("SURG", 1.0)),
    "NEURO": (("MED", 2.0), ("CARD", 1.0), ("PSYCH", 1.0)),
    "SURG": (("MED", 2.0), ("CARD", 2.0)),
    "ONC": (("MED", 2.0), ("SURG", 1.0), ("PSYCH", 1.0)),
    "WOMEN": (("MED", 1.0), ("PSYCH", 1.0)),
    "PSYCH": (("MED", 3.0), ("NEURO", 1.0)),
    "PEDS": (("SURG", 1.0),),
}
# DemoStaff records no gender; these demo first names are women's.
_DEMO_FEMALE_NAMES = frozenset({"Grace", "Sara", "Priya", "Lucia", "Fiona"})

_KNOT_P = labs.KNOT_PROBABILITIES
# A clinical factor at full strength with weight 1 moves a result this many standard deviations.
_FACTOR_SCALE = 3.0
_SQRT_HALF = math.sqrt(0.5)
_INNER_KNOTS = _KNOT_P[1:-1]
_TURNAROUND: dict[str | None, tuple[float, float]] = {
    priority: (math.log(median), sigma) for priority, (median, sigma) in labs.TURNAROUND.items()
}


def _lab_spec(
    item: labs.LabItem,
) -> tuple[
    str | None,
    int,
    tuple[float, ...],
    tuple[float, ...],
    tuple[float, float] | None,
    tuple[float, float] | None,
    tuple[tuple[str, float], ...],
]:
    """An item's value parameters, precomputed for the inner loop: knots and slopes between them."""
    knots = tuple(float(k) for k in item.knots)
    slopes = tuple((knots[i + 1] - knots[i]) / (_KNOT_P[i + 1] - _KNOT_P[i]) for i in range(len(knots) - 1))
    male = None if item.ref_male is None else (float(item.ref_male[0]), float(item.ref_male[1]))
    female = None if item.ref_female is None else (float(item.ref_female[0]), float(item.ref_female[1]))
    return item.uom, item.decimals, knots, slopes, male, female, item.factors


_LAB_SPECS = {itemid: _lab_spec(item) for itemid, item in labs.LAB_ITEMS.items()}

# Price ranges per charge type (US dollars, log-uniform, fixed per code): EHRSQL's cost table gives
# one price per code and event type; the ranges are those of a US hospital chargemaster.
_PRICE_RANGES: dict[str, tuple[float, float]] = {
    "diagnoses_icd": (15.0, 60.0),
    "labevents": (8.0, 95.0),
    "prescriptions": (2.0, 180.0),
    "procedures_icd": (120.0, 18_000.0),
}


def _price(event_type: str, code: str) -> float:
    low, high = _PRICE_RANGES[event_type]
    if event_type == "procedures_icd" and not code.startswith("0"):
        high = high / 10  # imaging, measurement and therapies cost a tenth of an operation
    fraction = zlib.crc32(f"{event_type}:{code}".encode()) % 10_000 / 10_000
    return round(low * math.pow(high / low, fraction), 2)


def _dose_text(dose: float) -> str:
    """EHRSQL stores doses as the text of a float: '1000.0', '12.5', '0.0'."""
    return str(float(dose))


def _by_time(item: tuple[object, ...]) -> int:
    first = item[0]
    return first if isinstance(first, int) else 0


def _episodes(segments: list[Segment]) -> list[list[Segment]]:
    """Consecutive segments in the same department: the span one attending is responsible for."""
    episodes: list[list[Segment]] = []
    for segment in segments:
        if episodes and episodes[-1][-1].department == segment.department and segment.eventtype != "ed":
            episodes[-1].append(segment)
        else:
            episodes.append([segment])
    return episodes


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


def _age_at(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _phone(rng: random.Random) -> str:
    return f"{rng.choice(names.AREA_CODES)}-{rng.randint(201, 989)}-{rng.randint(0, 9999):04d}"


def _address(rng: random.Random) -> tuple[str, str, str]:
    city, prefix = rng.choice(names.CITIES)
    return (
        f"{rng.randint(1, 998)} {rng.choice(names.STREET_NAMES)}",
        city,
        f"{prefix}{rng.randint(1, 99):02d}",
    )


def _demo_gender(given: str) -> str:
    return "f" if given in _DEMO_FEMALE_NAMES or given in names.GIVEN_NAMES_F else "m"


def table_names() -> tuple[str, ...]:
    """The warehouse tables in load order."""
    return tuple(tables())
