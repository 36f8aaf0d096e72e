"""Per-role baselines, relationship rules, calibrated risk, and the reasons a privacy officer reads.

A user-day is scored two ways. The baseline: a per-role Isolation Forest over the day's features, beside
each feature's own rarity among the role's days (how many of them reach this value); the stronger of the
two is the day's anomaly, calibrated to a percentile of the role's training days. The rules: opening the
record of oneself, a relative (same address, same uncommon surname), a colleague, a VIP or a deceased
patient, with no treatment relationship at the time; a care-team link or a stay in the user's department
silences them. An alert is raised when a rule fires or the percentile passes the role's budget
(AUDIT_ALERT_BUDGET alerts per 1,000 user-days).
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from django.utils.crypto import salted_hmac
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest

from audit.features import DAY_FEATURES, Flag, vector

# Below this many training days a role has no baseline of its own and is scored against every role's
# days together (cold start); below MIN_POOLED_DAYS there is no baseline at all and only rules alert.
MIN_ROLE_DAYS: Final = 200
MIN_POOLED_DAYS: Final = 100
POOLED: Final = "*"
# Trees and sample size of the forest: scikit-learn's defaults, which the Isolation Forest paper found
# enough; fixed seeds so that a retrain on the same days gives the same model.
TREES: Final = 200
# An alert needs a day rarer than one in this many of the role's days, whatever the budget says.
MIN_RARITY: Final = 100
# How much each feature's rarity counts as evidence: behaviours that disclose data weigh most, habits
# (hours, devices) less, sheer volume least (busy days are common and mostly benign).
WEIGHTS: Final[dict[str, float]] = {
    "queries": 0.6,
    "patients": 0.7,
    "max_patients": 0.7,
    "rows": 0.6,
    "exports": 0.8,
    "export_rows": 1.0,
    "identifiers": 0.8,
    "denials": 0.6,
    "masked": 0.6,
    "unrelated": 1.0,
    "unrelated_share": 0.8,
    "recent_only": 0.5,
    "departments": 0.7,
    "new_tables": 0.6,
    "new_columns": 0.5,
    "rare_hour_events": 0.9,
    "night_events": 0.7,
    "new_devices": 0.8,
    "devices": 0.8,
    "concurrent_devices": 1.0,
    "lookups": 0.8,
    "rephrases": 1.0,
    "breakglass": 0.5,
    "unrelated_week": 1.0,
    "unrelated_month": 1.0,
    "group_users": 1.0,
    "out_of_cohort": 1.0,
    "volume_vs_own": 0.7,
    "unrelated_vs_own": 0.9,
    "relationship_flags": 1.0,
}

# What each feature means, for a privacy officer: "{value}" is today's, "{median}" the role's median day.
FEATURE_TEXT: Final[dict[str, str]] = {
    "queries": "{value} questions in the day",
    "patients": "records of {value} patients in the day",
    "max_patients": "one answer listing {value} patients",
    "rows": "{value} rows returned in the day",
    "exports": "{value} exports",
    "export_rows": "{value} rows exported",
    "identifiers": "direct identifiers (names, MRNs, phone numbers, addresses) shown {value} times",
    "denials": "{value} refused questions",
    "masked": "{value} answers with masked or withheld values",
    "unrelated": "{value} patients with no care relationship at the time",
    "unrelated_share": "{value} of the patients looked at had no care relationship",
    "recent_only": "{value} patients known only from a stay that had ended",
    "departments": "patients of {value} other departments in one answer",
    "new_tables": "{value} tables this user had not used in 30 days",
    "new_columns": "{value} columns this user had not used in 30 days",
    "rare_hour_events": "{value} questions at hours this user does not normally work",
    "night_events": "{value} questions between midnight and 6 a.m.",
    "new_devices": "{value} actions from a device not used in the last 30 days",
    "devices": "{value} different devices in one day",
    "concurrent_devices": "{value} questions from a second device within 30 minutes of another",
    "lookups": "{value} questions looking up names, addresses or phone numbers",
    "rephrases": "{value} rephrasings of a refused or masked question",
    "breakglass": "{value} questions under break-glass",
    "unrelated_week": "{value} patients with no care relationship over the last 7 days",
    "unrelated_month": "{value} patients with no care relationship over the last 30 days",
    "group_users": "{value} users of other departments pulled the same unrelated patients this week",
    "out_of_cohort": "{value} patients outside the research project's approved cohort",
    "volume_vs_own": "{value} times this user's own usual number of patients",
    "unrelated_vs_own": "{value} times this user's usual number of unrelated patients",
    "relationship_flags": "{value} records of related, protected or deceased patients",
}
_SHARE_FEATURES: Final = frozenset({"unrelated_share"})
_RATIO_FEATURES: Final = frozenset({"volume_vs_own", "unrelated_vs_own"})

RULE_TEXT: Final[dict[str, str]] = {
    "self": "opened their own record",
    "family_address": "opened the record of a patient living at their own address",
    "family_surname": "opened the record of a patient sharing their (uncommon) surname",
    "coworker": "opened the record of a colleague who is a patient",
    "vip": "opened a VIP patient's record",
    "deceased": "opened the record of a patient who had died",
}
# Rules from surest to least sure: the first one found sets the alert's risk.
RULE_RISK: Final[dict[str, float]] = {
    "self": 97.0,
    "family_address": 96.0,
    "coworker": 95.0,
    "vip": 95.0,
    "family_surname": 93.0,
    "deceased": 90.0,
}
_NO_TREATMENT = "with no care-team link and the patient not in their department at the time"


class BaselineIntegrityError(RuntimeError):
    """A stored model's signature does not match: it was altered outside the platform."""


@dataclasses.dataclass(slots=True)
class Baseline:
    """One role's fitted baseline: the forest and the training days' distributions it is calibrated on."""

    role: str
    forest: IsolationForest
    # Each feature's training values, sorted (a sample of at most _KEEP), for rarity and medians.
    values: dict[str, NDArray[np.float64]]
    forest_scores: NDArray[np.float64]  # sorted anomaly scores of the training days
    combined: NDArray[np.float64]  # sorted combined evidence of the training days
    threshold: float  # combined evidence at the budget
    samples: int
    users: int

    def medians(self) -> dict[str, float]:
        return {
            name: float(np.median(values)) if len(values) else 0.0 for name, values in self.values.items()
        }

    def spread(self) -> dict[str, float]:
        """The 99th percentile of each feature: what "high" means for this role."""
        return {
            name: float(np.quantile(values, 0.99)) if len(values) else 0.0
            for name, values in self.values.items()
        }

    def percentile(self, combined: float) -> float:
        """The share of the role's training days with less evidence than this, in percent."""
        below = int(np.searchsorted(self.combined, combined, side="left"))
        return 100.0 * below / max(1, len(self.combined))


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    feature: str
    value: float
    median: float
    rarity: float  # -log10 of the share of the role's days reaching this value


@dataclasses.dataclass(frozen=True, slots=True)
class DayScore:
    anomaly: float | None  # the forest's score (higher is stranger); None without a baseline
    combined: float  # the evidence calibrated against
    percentile: float | None
    evidence: list[Evidence]  # strongest first
    baseline_alert: bool


_KEEP: Final = 5000


def _rarity(sorted_values: NDArray[np.float64], value: float) -> float:
    """-log10 of (days reaching this value + 1) / (days + 1): 0 for common values, ~log10(n) for unseen."""
    n = len(sorted_values)
    reaching = n - int(np.searchsorted(sorted_values, value, side="left"))
    return -math.log10((reaching + 1) / (n + 1))


def _forest_scores(forest: IsolationForest, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(-forest.score_samples(matrix), dtype=np.float64)


def _evidence(
    baseline: Baseline, features: Mapping[str, float], forest_score: float
) -> tuple[float, list[Evidence]]:
    medians = baseline.medians()
    found: list[tuple[float, Evidence]] = []
    for name in DAY_FEATURES:
        value = float(features.get(name, 0.0))
        if value <= medians.get(name, 0.0):
            continue
        rarity = _rarity(baseline.values[name], value)
        if rarity > 0:
            found.append((WEIGHTS[name] * rarity, Evidence(name, value, medians.get(name, 0.0), rarity)))
    found.sort(key=lambda item: -item[0])
    weighted = [weight for weight, _ in found]
    single = (weighted[0] + 0.5 * weighted[1]) if len(weighted) > 1 else (weighted[0] if weighted else 0.0)
    forest = _rarity(baseline.forest_scores, forest_score)
    return max(single, forest), [evidence for _, evidence in found]


def train_baseline(
    role: str, days: Sequence[Mapping[str, float]], *, users: int, budget_per_1000: int, seed: int = 0
) -> Baseline:
    """Fit a role's forest on its user-days and calibrate the alert threshold to the budget."""
    matrix = np.asarray([vector(features) for features in days], dtype=np.float64)
    forest = IsolationForest(n_estimators=TREES, max_samples=min(256, len(days)), random_state=seed)
    forest.fit(matrix)
    rng = np.random.default_rng(seed)
    keep = np.arange(len(days)) if len(days) <= _KEEP else rng.choice(len(days), _KEEP, replace=False)
    values = {
        name: np.sort(np.asarray([float(days[i].get(name, 0.0)) for i in keep], dtype=np.float64))
        for name in DAY_FEATURES
    }
    scores = _forest_scores(forest, matrix)
    baseline = Baseline(
        role=role,
        forest=forest,
        values=values,
        forest_scores=np.sort(scores[keep]),
        combined=np.zeros(0),
        threshold=math.inf,
        samples=len(days),
        users=users,
    )
    combined = np.sort(
        np.asarray([_evidence(baseline, days[i], float(scores[i]))[0] for i in keep], dtype=np.float64)
    )
    baseline.combined = combined
    quantile = float(np.quantile(combined, 1.0 - budget_per_1000 / 1000.0))
    baseline.threshold = max(quantile, math.log10(MIN_RARITY))
    return baseline


def train_baselines(
    days: Sequence[tuple[str, str, Mapping[str, float]]], *, budget: int, seed: int = 0
) -> dict[str, Baseline]:
    """Per-role baselines on (role, username, features) user-days, and a pooled one for small roles.

    Days without a question are left out: a day of sign-ins only says nothing about how data is used.
    """
    active = [(role, user, features) for role, user, features in days if features.get("queries", 0) > 0]
    by_role: dict[str, list[tuple[str, Mapping[str, float]]]] = {}
    for role, user, features in active:
        by_role.setdefault(role, []).append((user, features))
    baselines: dict[str, Baseline] = {}
    for role, rows in sorted(by_role.items()):
        if len(rows) >= MIN_ROLE_DAYS:
            baselines[role] = train_baseline(
                role,
                [features for _, features in rows],
                users=len({user for user, _ in rows}),
                budget_per_1000=budget,
                seed=seed,
            )
    if len(active) >= MIN_POOLED_DAYS:
        baselines[POOLED] = train_baseline(
            POOLED,
            [features for _, _, features in active],
            users=len({user for _, user, _ in active}),
            budget_per_1000=budget,
            seed=seed,
        )
    return baselines


def baseline_for(baselines: Mapping[str, Baseline], role: str) -> Baseline | None:
    """The role's own baseline, else the pooled one (a new or small role), else none (rules only)."""
    return baselines.get(role) or baselines.get(POOLED)


def score_days(baseline: Baseline | None, days: Sequence[Mapping[str, float]]) -> list[DayScore]:
    """Score user-days against a baseline (one forest call for all of them)."""
    if baseline is None:
        return [DayScore(None, 0.0, None, [], False) for _ in days]
    if not days:
        return []
    matrix = np.asarray([vector(features) for features in days], dtype=np.float64)
    forest_scores = _forest_scores(baseline.forest, matrix)
    scored: list[DayScore] = []
    for features, forest_score in zip(days, forest_scores, strict=True):
        combined, evidence = _evidence(baseline, features, float(forest_score))
        scored.append(
            DayScore(
                anomaly=float(forest_score),
                combined=combined,
                percentile=baseline.percentile(combined),
                evidence=evidence,
                baseline_alert=combined > baseline.threshold and features.get("queries", 0.0) > 0,
            )
        )
    return scored


def rule_risk(flags: Sequence[Flag]) -> float:
    """The risk a day's unsilenced relationship flags carry on their own (0 without any)."""
    live = [flag for flag in flags if not flag.silenced]
    if not live:
        return 0.0
    top = max(RULE_RISK[flag.code] for flag in live)
    return min(99.0, top + len({(f.code, f.subject_id) for f in live}) - 1)


def day_risk(score: DayScore, flags: Sequence[Flag]) -> float:
    """0-100: the day's percentile among the role's days, or the rules' risk when higher."""
    return max(score.percentile or 0.0, rule_risk(flags))


def _number(feature: str, value: float) -> str:
    if feature in _SHARE_FEATURES:
        return f"{value:.0%}"
    if feature in _RATIO_FEATURES:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def reasons(
    score: DayScore, flags: Sequence[Flag], *, role_label: str, limit: int = 4
) -> list[dict[str, Any]]:
    """The alert's reasons in a privacy officer's words, strongest first."""
    found: list[dict[str, Any]] = []
    live = sorted({(f.code, f.subject_id) for f in flags if not f.silenced}, key=lambda c: -RULE_RISK[c[0]])
    for code, subject_id in live:
        found.append(
            {
                "code": code,
                "kind": "rule",
                "text": f"{_capital(RULE_TEXT[code])} (patient {subject_id}), {_NO_TREATMENT}.",
                "patient": subject_id,
            }
        )
    for item in score.evidence:
        if len(found) >= limit:
            break
        if item.rarity < 1.0:  # more common than one day in ten: not a reason
            continue
        what = FEATURE_TEXT[item.feature].format(value=_number(item.feature, item.value))
        share = 100.0 * (1.0 - 10 ** (-item.rarity))
        found.append(
            {
                "code": item.feature,
                "kind": "baseline",
                "text": (
                    f"{_capital(what)} ({role_label}' median day: {_number(item.feature, item.median)}; "
                    f"more than on {share:.1f}% of their days)."
                ),
                "value": item.value,
                "peer_median": item.median,
            }
        )
    return found


# ------------------------------------------------------------------------------------------- storage


def sign(blob: bytes) -> str:
    """HMAC-SHA256 of a model blob under a key derived from SECRET_KEY (environment, never the database)."""
    return salted_hmac("audit.baseline-model", blob, algorithm="sha256").hexdigest()


def dump_baseline(baseline: Baseline) -> tuple[bytes, str]:
    blob = pickle.dumps(baseline, protocol=pickle.HIGHEST_PROTOCOL)
    return blob, sign(blob)


def load_baseline(blob: bytes, signature: str) -> Baseline:
    """Unpickle a stored baseline only if its signature is ours: a pickle can run any code."""
    if not hmac.compare_digest(sign(bytes(blob)), signature):
        raise BaselineIntegrityError(
            "A stored baseline model's signature does not match; it was not loaded. Retrain with audit_train."
        )
    baseline = pickle.loads(bytes(blob))  # noqa: S301 - signed above by a key outside the database
    if not isinstance(baseline, Baseline):
        raise BaselineIntegrityError("A stored baseline model is not a baseline; it was not loaded.")
    return baseline


def role_label(role: str) -> str:
    """'nurse' -> 'nurses', for sentences about a role's peers."""
    words = {"clinician": "clinicians", "nurse": "nurses", "department_head": "department heads"}
    words |= {"researcher": "researchers", "administrator": "administrators", POOLED: "all staff"}
    return words.get(role, role.replace("_", " ") + "s")
