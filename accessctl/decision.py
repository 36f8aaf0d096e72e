"""Decide: what one subject may read for one purpose, as a Decision with obligations and a trace.

Casbin decides each data class the query touches (policy.decide_classes); this module combines those
answers: any touched class denied denies the question; the allow rules' obligations give the lane,
the row scope, the column masks, the special categories to confirm or withhold, and how protected
patients (VIPs, staff) may be reached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from accessctl.masks import DESCRIPTIONS
from accessctl.models import DataClass, Effect, Purpose
from accessctl.policy import ClassDecision, Obligations, decide_classes
from accessctl.profiles import profile_masks
from accessctl.special import describe as describe_categories
from accessctl.subjects import Subject
from hisplatform.models import Role
from nlquery.semantic import semantic_layer

SPECIAL_CLASSES: Final = tuple(c for c in DataClass.values if c.startswith("special:"))
PROTECTED_CLASSES: Final = (DataClass.PATIENT_VIP.value, DataClass.PATIENT_EMPLOYEE.value)
# The ID masks that keep a recognisable part (their text-ID mask keeps the same ends).
_KEEPS_ENDS: Final = frozenset({"first3last4", "first4", "last4"})
# Stricter masks win when two rules (or a rule and the role's masking profile) mask the same
# column differently.
_MASK_STRENGTH: Final = {
    "null": 12,
    "redact": 11,
    "pseudonym_patient": 10,
    "pseudonym_encounter": 10,
    "pseudonym_staff": 10,
    "pseudonym_record": 10,
    "hash": 9,
    "text_ids_hidden": 8,
    "birth_year": 7,
    "year": 6,
    "month": 5,
    "shift": 4,
    "prefix3": 4,
    "top90": 4,
    "first3last4": 2,
    "text_ids": 2,
    "first4": 1,
    "last4": 1,
}

DEFAULT_PURPOSE: Final = {
    Role.CLINICIAN: Purpose.TREAT,
    Role.NURSE: Purpose.TREAT,
    Role.DEPARTMENT_HEAD: Purpose.TREAT,
    Role.RESEARCHER: Purpose.HRESCH,
    Role.ADMINISTRATOR: Purpose.HOPERAT,
    Role.SECURITY_OFFICER: Purpose.HOPERAT,
}


@dataclass(frozen=True)
class TraceEntry:
    data_class: str
    effect: str  # allow | deny
    rules: tuple[str, ...]  # every matched rule, described
    deciding: str  # the rule Casbin names as deciding ("" when none matched: deny by default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_class": self.data_class,
            "effect": self.effect,
            "rules": list(self.rules),
            "deciding": self.deciding,
        }


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    purpose: str
    code: str = ""  # why it was denied, stable: policy_denied, no_scope, no_profile
    lane: str = "identified"
    scopes: frozenset[str] = frozenset()
    masks: dict[str, str] = field(default_factory=dict)  # "table.column" -> kind
    confirm: frozenset[str] = frozenset()  # special categories shown only after a confirmed purpose
    withheld: frozenset[str] = frozenset()  # special categories never shown to this subject
    team_only: frozenset[str] = frozenset()  # protected patients reached only via care team / break-glass
    excluded: frozenset[str] = frozenset()  # protected patients never reached
    min_cell: int | None = None
    k: int | None = None  # de-identified rows: k-anonymity
    l_diversity: int | None = None
    dp_epsilon: float | None = None  # aggregate counts: differential privacy at this epsilon per query
    project: str = ""  # the research project whose pseudonym key and profile apply
    notices: tuple[str, ...] = ()
    trace: tuple[TraceEntry, ...] = ()

    def obligations(self) -> dict[str, Any]:
        return {
            "lane": self.lane,
            "row_scope": sorted(self.scopes),
            "masks": dict(sorted(self.masks.items())),
            "confirm_special": sorted(self.confirm),
            "withheld_special": sorted(self.withheld),
            "protected_team_only": sorted(self.team_only),
            "protected_excluded": sorted(self.excluded),
            "min_cell": self.min_cell,
            "k": self.k,
            "l": self.l_diversity,
            "dp_epsilon": self.dp_epsilon,
            "project": self.project,
            "notices": list(self.notices),
        }

    def trace_dict(self) -> dict[str, Any]:
        return {
            "decision": "allow" if self.allowed else "deny",
            "purpose": self.purpose,
            "reason": self.reason,
            "classes": [entry.as_dict() for entry in self.trace],
        }

    def masked_description(self) -> dict[str, str]:
        return {column.split(".", 1)[1]: DESCRIPTIONS[kind] for column, kind in sorted(self.masks.items())}


def _entry(decision: ClassDecision) -> TraceEntry:
    return TraceEntry(
        decision.data_class,
        "allow" if decision.allowed else "deny",
        tuple(rule.describe() for rule in decision.matched),
        decision.deciding.describe() if decision.deciding else "",
    )


def _class_label(name: str) -> str:
    try:
        return str(DataClass(name).label)
    except ValueError:
        return name


def _denied(subject: Subject, purpose: str, decision: ClassDecision) -> str:
    if decision.reason:
        return decision.reason
    role = Role(subject.role).label.lower() if subject.role in Role.values else "account"
    article = "an" if role[0] in "aeiou" else "a"
    return (
        f"No policy lets {article} {role} see {_class_label(decision.data_class).lower()} for the purpose "
        f"{Purpose(purpose).label.lower() if purpose in Purpose.values else purpose}."
    )


def _split(
    decisions: dict[str, ClassDecision], names: Iterable[str], flagged: Callable[[Obligations], bool]
) -> tuple[frozenset[str], frozenset[str]]:
    """For classes named `kind:value`: the values denied, and the values allowed under an obligation
    that `flagged` picks out (confirmation, reach through the care team)."""
    denied: set[str] = set()
    conditional: set[str] = set()
    for name in names:
        value = name.split(":", 1)[1]
        if not decisions[name].allowed:
            denied.add(value)
        elif any(flagged(ob) for ob in decisions[name].obligations):
            conditional.add(value)
    return frozenset(denied), frozenset(conditional)


def decide(
    *,
    subject: Subject,
    purpose: str,
    data_classes: Iterable[str],
    patient_rows: bool,
    coded: bool,
    patient_classes: Iterable[str] | None = None,
    project: str = "",
) -> Decision:
    """The decision for a query touching `data_classes`; `patient_rows`: it reads tables that carry
    patients; `coded`: it reads coded tables where special categories live; `project`: the research
    project asked under (its masking profile lines and pseudonym key apply)."""
    if not subject.role:
        return Decision(
            False,
            "Your account has no staff profile, so it may not see any clinical data.",
            purpose,
            "no_profile",
        )
    classes = set(data_classes)
    if DataClass.FREE_TEXT in classes:
        # Notes quote names, MRNs, ID numbers and phone numbers: reading them is reading direct
        # identifiers, under that class's rules and masks.
        classes.add(DataClass.IDENTIFIER_DIRECT)
    touched = sorted(classes)
    asked = (
        touched + (list(PROTECTED_CLASSES) if patient_rows else []) + (list(SPECIAL_CLASSES) if coded else [])
    )
    decisions = decide_classes(subject.role, asked, purpose, subject.context())
    trace = tuple(_entry(decisions[name]) for name in sorted(decisions))
    for name in touched:
        if not decisions[name].allowed:
            reason = _denied(subject, purpose, decisions[name])
            if subject.role == Role.RESEARCHER and not subject.projects and subject.lapsed_projects:
                reason += (
                    f" Your projects ({', '.join(subject.lapsed_projects)}) are not approved or have expired."
                )
            return Decision(False, reason, purpose, "policy_denied", trace=trace)
    allowed = [ob for name in touched for ob in decisions[name].obligations]
    lanes = {ob.lane or "identified" for ob in allowed}
    # The most protective lane any allowing rule names governs the whole answer.
    lane = next((kind for kind in ("aggregate", "deidentified") if kind in lanes), "identified")
    # Each data class's allow rules say which rows it may be read for; a query reading several
    # classes gets only the rows every one of them allows (a class whose rules name no scope, such
    # as a code dictionary, does not narrow it). Rules of one class widen each other (union).
    # Only classes read from tables that carry patients say anything about which patients.
    scoped = touched if patient_classes is None else sorted(set(patient_classes) & set(touched))
    per_class = [
        frozenset(kind for ob in decisions[name].obligations for kind in ob.scopes) for name in scoped
    ]
    named = [scopes for scopes in per_class if scopes]
    scopes = frozenset.intersection(*named) if named else frozenset()
    if subject.breakglass is None:
        scopes -= {"breakglass"}
    if patient_rows and not scopes:
        return Decision(
            False,
            "No row scope applies to you for this purpose, so no patient's data can be shown.",
            purpose,
            "no_scope",
            trace=trace,
        )
    masks: dict[str, str] = {}
    profile = profile_masks(subject.role, project, lane).items()
    for column, kind in [pair for ob in allowed for pair in ob.masks] + list(profile):
        if _MASK_STRENGTH[kind] > _MASK_STRENGTH.get(masks.get(column, ""), 0):
            masks[column] = kind
    id_mask = masks.get("patient_identity.national_id")
    if id_mask is not None:
        # Notes quote the ID number; wherever the column is masked, so is the quote in the text.
        for table, column in semantic_layer().columns_of_class(DataClass.FREE_TEXT):
            masks.setdefault(f"{table}.{column}", "text_ids" if id_mask in _KEEPS_ENDS else "text_ids_hidden")
    withheld, confirm = _split(decisions, SPECIAL_CLASSES if coded else (), lambda ob: ob.confirm)
    excluded, team_only = _split(
        decisions, PROTECTED_CLASSES if patient_rows else (), lambda ob: ob.reach_care_team
    )
    notices: list[str] = []
    if withheld:
        notices.append(
            f"Diagnoses and procedures in special categories ({describe_categories(withheld)}) are withheld."
        )
    if subject.breakglass is not None and "breakglass" in scopes:
        notices.append(
            f"Break-glass access is open ({subject.breakglass.scope} scope) until "
            f"{subject.breakglass.expires_at.astimezone(dt.UTC):%H:%M} UTC; this query is flagged for review."
        )
    min_cells = [ob.min_cell for ob in allowed if ob.min_cell is not None]
    ks = [ob.k for ob in allowed if ob.k is not None]
    ls = [ob.l_diversity for ob in allowed if ob.l_diversity is not None]
    epsilons = [ob.dp_epsilon for ob in allowed if ob.dp_epsilon is not None]
    return Decision(
        True,
        decisions[touched[0]].reason if touched else "",
        purpose,
        lane=lane,
        scopes=scopes,
        masks=masks,
        confirm=confirm,
        withheld=withheld,
        team_only=team_only,
        excluded=excluded,
        min_cell=max(min_cells) if min_cells else None,
        k=max(ks) if ks else None,
        l_diversity=max(ls) if ls else None,
        dp_epsilon=min(epsilons) if epsilons else None,  # the smallest epsilon protects most
        project=project,
        notices=tuple(notices),
        trace=trace,
    )


__all__ = ["Decision", "Effect", "TraceEntry", "decide"]
