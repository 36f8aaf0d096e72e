"""The policy a new installation starts with (loaded by migration 0002); the privacy office edits it in admin.

Read as: for this role, this data class and these purposes, under this condition, allow with these
obligations (or deny, for this reason). Deny overrides allow; what no rule allows is denied.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class DefaultRule(NamedTuple):
    role: str
    data_class: str
    purposes: str
    condition: str
    effect: str
    obligations: str
    reason: str


# The data classes of identified clinical work; direct identifiers and charges are ruled apart.
_CLINICAL: Final = (
    "key",
    "identifier_indirect",
    "demographic",
    "clinical",
    "clinical_special",
    "free_text",
    "organisational",
    "reference",
)
_SPECIAL: Final = (
    "special:psychiatry",
    "special:hiv",
    "special:substance_use",
    "special:reproductive",
    "special:genetic",
)
_PROTECTED: Final = ("patient:vip", "patient:employee")
_ALL: Final = (*_CLINICAL, "identifier_direct", "financial", *_SPECIAL, *_PROTECTED)

# Staff home addresses are nobody's clinical business.
_STAFF_MASKS: Final = {
    "identifier_direct": "mask:staff.address=redact",
    "identifier_indirect": "mask:staff.postcode=redact",
}


def _masks(data_class: str, *, full_ids: bool) -> str:
    masks = [_STAFF_MASKS.get(data_class, "")]
    if data_class == "identifier_direct" and not full_ids:
        masks.append("mask:patient_identity.national_id=first3last4")
    return ",".join(m for m in masks if m)


def _clinical_role(role: str, scope: str, *, full_ids: bool, sees: str) -> list[DefaultRule]:
    rules: list[DefaultRule] = []
    for data_class in (*_CLINICAL, "identifier_direct"):
        masks = _masks(data_class, full_ids=full_ids)
        extra = f",{masks}" if masks else ""
        rules.append(
            DefaultRule(
                role, data_class, "TREAT", "", "allow", f"{scope},lane:identified{extra}", sees,
            )
        )  # fmt: skip
        rules.append(
            DefaultRule(
                role, data_class, "ETREAT|BTG", "breakglass", "allow",
                f"{scope},scope:breakglass,lane:identified{extra}",
                "Break-glass widens access to its patient or unit for emergency treatment, "
                "flagged for review.",
            )
        )  # fmt: skip
    for data_class in _SPECIAL:
        rules.append(
            DefaultRule(
                role, data_class, "TREAT|ETREAT|BTG", "", "allow", "confirm",
                "Special-category data is shown once the purpose of use is confirmed.",
            )
        )  # fmt: skip
    for data_class in _PROTECTED:
        rules.append(
            DefaultRule(
                role, data_class, "*", "", "allow", "reach:care_team",
                "VIP patients and patients who are staff are seen only by their care team "
                "or under break-glass.",
            )
        )  # fmt: skip
    for data_class in _CLINICAL:
        if data_class == "free_text":
            continue
        rules.append(
            DefaultRule(
                role, data_class, "HOPERAT", "", "allow", "lane:aggregate,scope:all,min_cell:11",
                "For hospital operations, staff see hospital-wide counts with small groups suppressed.",
            )
        )  # fmt: skip
    rules.append(
        DefaultRule(
            role, "financial", "*", "", "deny", "",
            "Charges and costs are for hospital operations, not for treatment; ask the finance office.",
        )
    )  # fmt: skip
    return rules


def _researcher() -> list[DefaultRule]:
    role = "researcher"
    rules: list[DefaultRule] = []
    for data_class in (*_CLINICAL, "identifier_direct", "financial", *_SPECIAL, *_PROTECTED):
        rules.append(
            DefaultRule(
                role, data_class, "HRESCH", "project", "allow", "lane:deidentified,scope:all,min_cell:11",
                "Researchers on an approved, unexpired project see de-identified data: identifiers "
                "withheld or pseudonymised by the research masking profile, rows k-anonymous, small "
                "counts suppressed.",
            )
        )  # fmt: skip
    for data_class in (*_CLINICAL, "identifier_direct"):
        rules.append(
            DefaultRule(
                role, data_class, "*", "!project", "deny", "",
                "Research access needs membership of an approved, unexpired research project.",
            )
        )  # fmt: skip
    return rules


def _administrator() -> list[DefaultRule]:
    role = "administrator"
    rules: list[DefaultRule] = []
    for data_class in ("key", "identifier_indirect", "demographic", "clinical", "clinical_special",
                       "organisational", "reference", "financial", *_SPECIAL, *_PROTECTED):  # fmt: skip
        rules.append(
            DefaultRule(
                role, data_class, "HOPERAT", "", "allow", "lane:aggregate,scope:all,min_cell:11",
                "Administrators see operational statistics as aggregates with small cells suppressed.",
            )
        )  # fmt: skip
    for data_class in ("identifier_direct", "free_text"):
        rules.append(
            DefaultRule(
                role, data_class, "*", "", "deny", "",
                "Administrators see aggregates only: never names, identifiers or clinical notes.",
            )
        )  # fmt: skip
    return rules


def _security_officer() -> list[DefaultRule]:
    return [
        DefaultRule(
            "security_officer",
            data_class,
            "*",
            "",
            "deny",
            "",
            "Separation of duties: the privacy office reviews the audit trail and sees no clinical data.",
        )
        for data_class in _ALL
    ]


_IN_CARE: Final = (
    "Clinicians and nurses see the patients in their care (a current or recent stay in their department's "
    "units, or their care team) for treatment, with ID numbers partly hidden."
)

DEFAULT_RULES: Final[tuple[DefaultRule, ...]] = (
    *_clinical_role("clinician", "scope:care", full_ids=False, sees=_IN_CARE),
    *_clinical_role("nurse", "scope:care", full_ids=False, sees=_IN_CARE),
    *_clinical_role(
        "department_head",
        "scope:department,scope:care",
        full_ids=True,
        sees="Department heads see their department's patients, with full ID numbers, for treatment.",
    ),
    *_researcher(),
    *_administrator(),
    *_security_officer(),
)
