"""The Casbin policy: its model, the adapter that loads rules from the application database, and
per-data-class decisions with the rules that matched them (the trace)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import casbin
from casbin import persist
from casbin.model import FastModel, fast_policy_filter
from django.conf import settings
from django.core.exceptions import ValidationError

from accessctl.models import Effect, PolicyRule, PolicyState, Purpose

logger = logging.getLogger(__name__)

# Role and data class are matched exactly, so Casbin's FastEnforcer indexes rules on them (request
# and policy fields 0 and 1): a decision looks at the few rules for that pair, not all of them.
CASBIN_MODEL: Final = """
[request_definition]
r = role, dclass, purpose, ctx

[policy_definition]
p = role, dclass, purposes, cond, eft, obligations, rule

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.role == p.role && r.dclass == p.dclass \
    && purpose_match(r.purpose, p.purposes) && cond_match(r.ctx, p.cond)
"""
_INDEX: Final = [0, 1]

MASK_KINDS: Final = frozenset({"redact", "first4", "last4", "first3last4", "hash", "null", "year"})
SCOPES: Final = frozenset({"care", "department", "breakglass", "all"})
LANES: Final = frozenset({"identified", "deidentified", "aggregate"})
_FLAGS: Final = frozenset({"breakglass", "project", "weekday"})
_HOURS: Final = re.compile(r"hours:(\d{2})-(\d{2})")
_MASK: Final = re.compile(r"mask:([a-z_]+)\.([a-z_]+)=([a-z0-9]+)")
_DP: Final = re.compile(r"dp:(\d+(\.\d+)?)")


# --- The rule vocabulary ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Obligations:
    scopes: frozenset[str] = frozenset()
    masks: tuple[tuple[str, str], ...] = ()  # ("table.column", kind)
    lane: str = ""
    min_cell: int | None = None
    confirm: bool = False
    reach_care_team: bool = False
    k: int | None = None  # research rows: each matches at least k patients (k-anonymity)
    l_diversity: int | None = None  # and each such group has at least l values of a sensitive attribute
    dp_epsilon: float | None = None  # aggregate counts released with differential privacy, per query


def parse_purposes(text: str) -> frozenset[str] | None:
    """The purposes a rule lists; None for any."""
    text = text.strip()
    if text == "*":
        return None
    codes = frozenset(code.strip() for code in text.split("|") if code.strip())
    unknown = codes - set(Purpose.values)
    if unknown or not codes:
        raise ValueError(f"unknown purpose of use {', '.join(sorted(unknown)) or '(none)'}")
    return codes


def parse_condition(text: str) -> tuple[tuple[bool, str], ...]:
    """(negated, term) for each comma-separated term; ValueError naming the first unknown one."""
    terms: list[tuple[bool, str]] = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        negated = raw.startswith("!")
        term = raw.removeprefix("!").strip()
        match = _HOURS.fullmatch(term)
        if term not in _FLAGS and not (match and int(match[1]) <= 24 and int(match[2]) <= 24):
            raise ValueError(f"unknown condition {raw!r}")
        terms.append((negated, term))
    return tuple(terms)


def parse_obligations(text: str) -> Obligations:
    scopes: set[str] = set()
    masks: list[tuple[str, str]] = []
    lane, min_cell, confirm, reach = "", None, False, False
    k: int | None = None
    l_diversity: int | None = None
    dp_epsilon: float | None = None
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.startswith("scope:") and item[6:] in SCOPES:
            scopes.add(item[6:])
        elif (match := _MASK.fullmatch(item)) and match[3] in MASK_KINDS:
            masks.append((f"{match[1]}.{match[2]}", match[3]))
        elif item.startswith("lane:") and item[5:] in LANES:
            lane = item[5:]
        elif item.startswith("min_cell:") and item[9:].isdigit() and 1 <= int(item[9:]) <= 1000:
            min_cell = int(item[9:])
        elif item.startswith("k:") and item[2:].isdigit() and 2 <= int(item[2:]) <= 100:
            k = int(item[2:])
        elif item.startswith("l:") and item[2:].isdigit() and 1 <= int(item[2:]) <= 20:
            l_diversity = int(item[2:])
        elif _DP.fullmatch(item) and 0 < float(item[3:]) <= 10:
            dp_epsilon = float(item[3:])
        elif item == "confirm":
            confirm = True
        elif item == "reach:care_team":
            reach = True
        else:
            raise ValueError(f"unknown obligation {item!r}")
    return Obligations(
        frozenset(scopes), tuple(masks), lane, min_cell, confirm, reach, k, l_diversity, dp_epsilon
    )


def validate_rule(rule: PolicyRule) -> None:
    """ValidationError naming each field a rule gets wrong (used by admin and by the loader)."""
    errors: dict[str, str] = {}
    for name, parse in (
        ("purposes", parse_purposes),
        ("condition", parse_condition),
        ("obligations", parse_obligations),
    ):
        try:
            parse(getattr(rule, name))
        except ValueError as error:
            errors[name] = str(error)
    if rule.effect == Effect.DENY and rule.obligations.strip():
        errors["obligations"] = "a deny rule carries no obligations"
    if errors:
        raise ValidationError(errors)


# --- The request context a condition reads -----------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """The facts about a request a rule's condition may name; hashable, so decisions can be cached."""

    breakglass: bool
    project: bool
    hour: int
    weekday: bool

    def holds(self, term: str) -> bool:
        if term == "breakglass":
            return self.breakglass
        if term == "project":
            return self.project
        if term == "weekday":
            return self.weekday
        match = _HOURS.fullmatch(term)
        if match is None:
            return False
        start, end = int(match[1]), int(match[2])
        return start <= self.hour < end if start <= end else (self.hour >= start or self.hour < end)


@lru_cache(maxsize=4096)
def _condition(text: str) -> tuple[tuple[bool, str], ...] | None:
    try:
        return parse_condition(text)
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _purposes(text: str) -> frozenset[str] | bool | None:
    try:
        return parse_purposes(text)
    except ValueError:
        return False  # matches no purpose


def purpose_match(purpose: str, listed: str) -> bool:
    codes = _purposes(listed)
    return codes is None or (isinstance(codes, frozenset) and purpose in codes)


def cond_match(context: Context, condition: str) -> bool:
    terms = _condition(condition)
    if terms is None:
        return False  # an unreadable condition never grants (a deny rule's is read as always, below)
    return all(context.holds(term) != negated for negated, term in terms)


# --- Loading the policy ------------------------------------------------------------------------------


class DatabaseAdapter(persist.Adapter):
    """Loads the enabled PolicyRule rows into Casbin. Rules are written through Django admin and
    the policy services (which audit every change), never through Casbin's management API."""

    def load_policy(self, model: Any) -> None:
        for rule in PolicyRule.objects.filter(enabled=True).order_by("id"):
            condition = rule.condition
            if rule.effect == Effect.DENY and _condition(condition) is None:
                condition = ""  # fail closed: a deny whose condition cannot be read always applies
            model.add_policy(
                "p",
                "p",
                [
                    rule.role,
                    rule.data_class,
                    rule.purposes,
                    condition,
                    rule.effect,
                    rule.obligations,
                    str(rule.pk),
                ],
            )

    def save_policy(self, model: Any) -> bool:
        raise NotImplementedError("Policy rules are changed through Django admin or accessctl.services.")

    def add_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> None:
        raise NotImplementedError("Policy rules are changed through Django admin or accessctl.services.")

    def remove_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> None:
        raise NotImplementedError("Policy rules are changed through Django admin or accessctl.services.")


@dataclass(frozen=True)
class Rule:
    id: int
    role: str
    data_class: str
    purposes: str
    condition: str
    effect: str
    obligations: Obligations
    reason: str

    def describe(self) -> str:
        when = f" when {self.condition}" if self.condition else ""
        purposes = "any purpose" if self.purposes == "*" else self.purposes
        return f"rule {self.id}: {self.effect} {self.role} {self.data_class} for {purposes}{when}"


class _Loaded:
    def __init__(self, version: int) -> None:
        model = FastModel(_INDEX)
        model.load_model_from_text(CASBIN_MODEL)
        self.enforcer = casbin.FastEnforcer(model, DatabaseAdapter(), cache_key_order=_INDEX)
        self.enforcer.add_function("purpose_match", purpose_match)
        self.enforcer.add_function("cond_match", cond_match)
        self.version = version
        self.rules: dict[int, Rule] = {}
        for row in PolicyRule.objects.filter(enabled=True):
            try:
                obligations = parse_obligations(row.obligations)
            except ValueError:
                obligations = Obligations()
            self.rules[row.pk] = Rule(
                row.pk,
                row.role,
                row.data_class,
                row.purposes,
                row.condition,
                row.effect,
                obligations,
                row.reason,
            )
        self.checked = time.monotonic()
        # The enforcer's filter is per call but its policy is shared: one decision at a time.
        self.lock = threading.Lock()


_STATE: dict[str, _Loaded] = {}
_LOAD_LOCK = threading.Lock()


def policy_version() -> int:
    state = PolicyState.objects.filter(pk=1).values_list("version", flat=True).first()
    return int(state or 0)


def _loaded() -> _Loaded:
    current = _STATE.get("policy")
    reload_after: float = settings.POLICY_RELOAD_SECONDS
    if current is not None and time.monotonic() - current.checked < reload_after:
        return current
    with _LOAD_LOCK:
        current = _STATE.get("policy")
        version = policy_version()
        if current is None or current.version != version:
            current = _STATE["policy"] = _Loaded(version)
            _decide_class.cache_clear()
        current.checked = time.monotonic()
        return current


def reload_policy() -> None:
    """Forget the loaded policy; the next decision reads it again (after a change in this process)."""
    with _LOAD_LOCK:
        _STATE.pop("policy", None)
        _decide_class.cache_clear()
    from accessctl.profiles import reload_profiles  # the profiles load with the policy's version

    reload_profiles()


# --- Decisions per data class ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassDecision:
    data_class: str
    allowed: bool
    matched: tuple[Rule, ...]  # every rule whose match the request satisfied
    deciding: Rule | None  # Casbin's explanation: the rule that decided (None: no rule matched)
    obligations: tuple[Obligations, ...] = field(default=())  # of the matched allow rules

    @property
    def reason(self) -> str:
        denying = [rule for rule in self.matched if rule.effect == Effect.DENY]
        if denying:
            return denying[0].reason
        if not self.allowed:
            return ""
        return self.deciding.reason if self.deciding else ""


def decide_classes(
    role: str, data_classes: Iterable[str], purpose: str, context: Context
) -> dict[str, ClassDecision]:
    loaded = _loaded()
    return {dc: _decide_class(loaded, role, dc, purpose, context) for dc in sorted(set(data_classes))}


@lru_cache(maxsize=16_384)
def _decide_class(
    loaded: _Loaded, role: str, data_class: str, purpose: str, context: Context
) -> ClassDecision:
    policy = loaded.enforcer.model.model["p"]["p"].policy
    with loaded.lock, fast_policy_filter(policy, role, data_class):
        allowed, explain = loaded.enforcer.enforce_ex(role, data_class, purpose, context)
        candidates = [list(line) for line in policy]
    matched = tuple(
        loaded.rules[int(line[6])]
        for line in sorted(candidates, key=lambda line: int(line[6]))
        if purpose_match(purpose, line[2]) and cond_match(context, line[3]) and int(line[6]) in loaded.rules
    )
    # Deny overrides allow; no allow, no access. The trace must agree with Casbin's own answer.
    expected = any(r.effect == Effect.ALLOW for r in matched) and not any(
        r.effect == Effect.DENY for r in matched
    )
    if bool(allowed) != expected:
        logger.error("Casbin and the policy trace disagree for %s %s %s; denying", role, data_class, purpose)
        allowed = False
    deciding = loaded.rules.get(int(explain[6])) if explain else None
    return ClassDecision(
        data_class=data_class,
        allowed=bool(allowed),
        matched=matched,
        deciding=deciding,
        obligations=tuple(r.obligations for r in matched if r.effect == Effect.ALLOW) if allowed else (),
    )
