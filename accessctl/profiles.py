"""Masking profiles: per role (and research project), how each class of identifying column is shown.

A profile line names a masking class (names, MRN, dates, patient identifiers ...) and a method; the
warehouse's columns are mapped to classes here, explicitly for the shipped schema and by their
sensitivity class for any column a hospital adds. The privacy office edits the lines in admin;
every process reloads them with the policy (same version counter).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError

from accessctl.models import MaskingClass, MaskingMethod, MaskingRule
from accessctl.policy import policy_version
from hisplatform.warehouse.schema import tables as schema_tables
from nlquery.semantic import semantic_layer

C = MaskingClass
M = MaskingMethod

# The shipped schema's identifying columns, by what they hold.
_EXPLICIT: Final[Mapping[str, str]] = {
    "patient_identity.given_name": C.PERSON_NAME,
    "patient_identity.family_name": C.PERSON_NAME,
    "patient_contacts.full_name": C.PERSON_NAME,
    "staff.given_name": C.PERSON_NAME,
    "staff.family_name": C.PERSON_NAME,
    "staff.username": C.OTHER_IDENTIFIER,
    "patient_identity.mrn": C.MRN,
    "patient_identity.national_id": C.NATIONAL_ID,
    "patient_identity.phone": C.PHONE,
    "patient_contacts.phone": C.PHONE,
    "staff.phone": C.PHONE,
    "patient_identity.email": C.EMAIL,
    "staff.email": C.EMAIL,
    "patient_identity.address": C.ADDRESS,
    "staff.address": C.ADDRESS,
    "patient_identity.city": C.CITY,
    "patient_identity.postcode": C.POSTCODE,
    "staff.postcode": C.POSTCODE,
    "patient_identity.birth_date": C.BIRTH_DATE,
    "patients.dob": C.BIRTH_DATE,
    "admissions.age": C.AGE,
    # Which patients are staff (and so, through the staff table, their role): withheld with the flag.
    "patient_identity.staff_id": C.OTHER_INDIRECT,
}
# Key columns by name, wherever they appear.
_KEYS: Final[Mapping[str, str]] = {
    "subject_id": C.PATIENT_ID,
    "hadm_id": C.ENCOUNTER_ID,
    "stay_id": C.ENCOUNTER_ID,
    "visit_id": C.ENCOUNTER_ID,
    "transfer_id": C.ENCOUNTER_ID,
    "staff_id": C.STAFF_ID,
    "author_staff_id": C.STAFF_ID,
}

# Which methods make sense for which class; anything else is refused when a line is saved.
_TEXT_METHODS: Final = frozenset({M.KEEP, M.NULL, M.REDACT, M.FIRST3LAST4, M.FIRST4, M.LAST4, M.HASH})
_DATE_METHODS: Final = frozenset({M.KEEP, M.NULL, M.YEAR, M.MONTH, M.SHIFT})
_KEY_METHODS: Final = frozenset({M.KEEP, M.NULL, M.PSEUDONYM, M.HASH})
ALLOWED_METHODS: Final[Mapping[str, frozenset[str]]] = {
    C.PERSON_NAME: _TEXT_METHODS,
    C.MRN: _TEXT_METHODS,
    C.NATIONAL_ID: _TEXT_METHODS,
    C.PHONE: _TEXT_METHODS,
    C.EMAIL: _TEXT_METHODS,
    C.ADDRESS: _TEXT_METHODS,
    C.CITY: _TEXT_METHODS,
    C.OTHER_IDENTIFIER: _TEXT_METHODS,
    C.POSTCODE: _TEXT_METHODS | {M.PREFIX3},
    C.BIRTH_DATE: _DATE_METHODS | {M.BIRTH_YEAR},
    C.EVENT_DATE: _DATE_METHODS,
    C.AGE: frozenset({M.KEEP, M.NULL, M.TOP90}),
    C.PATIENT_ID: _KEY_METHODS,
    C.ENCOUNTER_ID: _KEY_METHODS,
    C.STAFF_ID: _KEY_METHODS,
    C.RECORD_ID: _KEY_METHODS,
    C.FREE_TEXT: frozenset({M.KEEP, M.NULL, M.SCRUB}),
    C.OTHER_INDIRECT: frozenset({M.KEEP, M.NULL, M.REDACT}),
}
# Pseudonym domains: a patient's and an admission's pseudonyms never coincide, whatever the numbers.
PSEUDONYM_DOMAINS: Final[Mapping[str, str]] = {
    C.PATIENT_ID: "patient",
    C.ENCOUNTER_ID: "encounter",
    C.STAFF_ID: "staff",
    C.RECORD_ID: "record",
}


class DefaultLine(NamedTuple):
    role: str
    masking_class: str
    method: str
    reason: str


_RESEARCH: Final = (
    "Research sees de-identified data: no direct identifiers, keyed pseudonyms per project, "
    "generalised places, ages and shifted dates."
)
_OPERATIONS: Final = "Operational statistics need no identifiers; ages and places are generalised."

# What neither research nor operations sees at all.
_WITHHELD: Final = tuple(
    (c, M.NULL)
    for c in (
        C.PERSON_NAME, C.MRN, C.NATIONAL_ID, C.PHONE, C.EMAIL, C.ADDRESS, C.CITY, C.OTHER_IDENTIFIER,
        C.OTHER_INDIRECT,
    )
)  # fmt: skip

DEFAULT_LINES: Final[tuple[DefaultLine, ...]] = (
    *(
        DefaultLine("researcher", c, m, _RESEARCH)
        for c, m in (
            *_WITHHELD,
            (C.POSTCODE, M.PREFIX3),
            (C.BIRTH_DATE, M.BIRTH_YEAR),
            (C.AGE, M.TOP90),
            (C.EVENT_DATE, M.SHIFT),
            (C.PATIENT_ID, M.PSEUDONYM),
            (C.ENCOUNTER_ID, M.PSEUDONYM),
            (C.STAFF_ID, M.PSEUDONYM),
            (C.RECORD_ID, M.NULL),
            (C.FREE_TEXT, M.SCRUB),
        )
    ),
    *(
        DefaultLine("administrator", c, m, _OPERATIONS)
        for c, m in (
            *_WITHHELD,
            (C.POSTCODE, M.PREFIX3),
            (C.BIRTH_DATE, M.YEAR),
            (C.AGE, M.TOP90),
            (C.FREE_TEXT, M.NULL),
        )
    ),
)


def masking_class_of(table: str, column: str) -> str | None:
    """The masking class of a warehouse column, or None when no profile line is about it."""
    qualified = f"{table}.{column}"
    if qualified in _EXPLICIT:
        return _EXPLICIT[qualified]
    if column in _KEYS:
        return _KEYS[column]
    try:
        sensitivity = semantic_layer().sensitivity_of(table, column)
    except KeyError:
        return None
    if sensitivity == "key":
        return C.RECORD_ID
    if sensitivity == "identifier_direct":
        return C.OTHER_IDENTIFIER
    if sensitivity == "free_text":
        return C.FREE_TEXT
    if sensitivity == "identifier_indirect":
        schema = schema_tables().get(table)
        types = {c.name: c.type.upper() for c in schema.columns} if schema else {}
        if types.get(column, "").startswith(("DATE", "TIMESTAMP")):
            return C.EVENT_DATE
        return C.OTHER_INDIRECT
    return None


def validate_line(line: MaskingRule) -> None:
    allowed = ALLOWED_METHODS.get(line.masking_class, frozenset())
    if line.method not in allowed:
        method = MaskingMethod(line.method).label if line.method in MaskingMethod.values else line.method
        what = (
            MaskingClass(line.masking_class).label.lower()
            if line.masking_class in MaskingClass.values
            else line.masking_class
        )
        raise ValidationError(
            {"method": f"{method} does not apply to {what}; use one of " + ", ".join(sorted(allowed))}
        )


@dataclass(frozen=True)
class Profile:
    """One role's (and project's) methods by masking class; classes it does not name are shown as stored."""

    methods: Mapping[str, str]

    def method(self, masking_class: str | None) -> str:
        return self.methods.get(masking_class or "", M.KEEP)

    def column_methods(self, table: str, columns: tuple[str, ...]) -> dict[str, str]:
        """column -> method, for this table's columns the profile changes."""
        found: dict[str, str] = {}
        for column in columns:
            method = self.method(masking_class_of(table, column))
            if method != M.KEEP:
                found[column] = method
        return found


class _Loaded:
    def __init__(self, version: int) -> None:
        self.version = version
        self.checked = time.monotonic()
        self.lines: dict[tuple[str, str], dict[str, str]] = {}
        self.expanded: dict[tuple[str, str, str], dict[str, str]] = {}
        for role, project, masking_class, method in MaskingRule.objects.filter(enabled=True).values_list(
            "role", "project", "masking_class", "method"
        ):
            self.lines.setdefault((role, project), {})[masking_class] = method


_STATE: dict[str, _Loaded] = {}
_LOCK = threading.Lock()


def _loaded() -> _Loaded:
    current = _STATE.get("profiles")
    if current is not None and time.monotonic() - current.checked < settings.POLICY_RELOAD_SECONDS:
        return current
    with _LOCK:
        version = policy_version()
        current = _STATE.get("profiles")
        if current is None or current.version != version:
            current = _STATE["profiles"] = _Loaded(version)
        current.checked = time.monotonic()
        return current


def reload_profiles() -> None:
    with _LOCK:
        _STATE.pop("profiles", None)


def profile_for(role: str, project: str = "") -> Profile:
    """The role's profile, with the project's own lines winning over the role's."""
    lines = _loaded().lines
    methods = dict(lines.get((role, ""), {}))
    if project:
        methods.update(lines.get((role, project), {}))
    return Profile(methods)


# Direct identifiers and free text a de-identified or aggregate lane withholds when its profile
# says nothing about them: a missing line must never show a name.
_WITHHELD_UNLESS_NAMED: Final = frozenset(
    {C.PERSON_NAME, C.MRN, C.NATIONAL_ID, C.PHONE, C.EMAIL, C.ADDRESS, C.OTHER_IDENTIFIER, C.FREE_TEXT}
)


def _kind(method: str, masking_class: str, has_subject: bool) -> str | None:
    """The mask kind (accessctl/masks.py) a method gives a column of this class; None: shown as is."""
    if method == M.KEEP:
        return None
    if method == M.PSEUDONYM:
        return f"pseudonym_{PSEUDONYM_DOMAINS[masking_class]}"
    if method == M.SHIFT and not has_subject:
        return "month"  # no patient on the row to shift by: generalised instead
    if method == M.SCRUB:
        # Identifiers are scrubbed from the text after the query (accessctl/disclose.py); ID
        # numbers are already hidden inside it, so no filter on the text finds one.
        return "text_ids_hidden"
    return str(method)


def profile_masks(role: str, project: str, lane: str) -> dict[str, str]:
    """ "table.column" -> mask kind, for every warehouse column the role's profile changes."""
    loaded = _loaded()
    key = (role, project, lane)
    cached = loaded.expanded.get(key)
    if cached is not None:
        return cached
    profile = profile_for(role, project)
    masks: dict[str, str] = {}
    for name, table in schema_tables().items():
        has_subject = "subject_id" in table.column_names
        for column in table.column_names:
            masking_class = masking_class_of(name, column)
            if masking_class is None:
                continue
            method = profile.methods.get(masking_class)
            if method is None:
                method = (
                    M.NULL if lane != "identified" and masking_class in _WITHHELD_UNLESS_NAMED else M.KEEP
                )
            kind = _kind(method, masking_class, has_subject)
            if kind is not None:
                masks[f"{name}.{column}"] = kind
    loaded.expanded[key] = masks
    return masks


def scrubbed_columns(role: str, project: str) -> frozenset[str]:
    """ "table.column" of the free-text columns the profile scrubs after the query."""
    if profile_for(role, project).method(C.FREE_TEXT) != M.SCRUB:
        return frozenset()
    return _free_text_columns()


@functools.cache
def _free_text_columns() -> frozenset[str]:
    return frozenset(
        f"{name}.{column}"
        for name, table in schema_tables().items()
        for column in table.column_names
        if masking_class_of(name, column) == C.FREE_TEXT
    )
