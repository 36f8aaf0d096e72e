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
MIN_ROLE_DAYS: Final = 100
MIN_POOLED_DAYS: Final = 50
POOLED: Final = "*"
# Trees of the forest: scikit-learn's default, which the Isolation Forest paper found enough (path
# lengths converge well before 100 trees); fixed seeds so that a retrain on the same days gives the same
# model. Scoring costs about the same per call whatever the rows: score days together.
TREES: Final = 100
# How fast days become rarer beyond the highest value seen in training (a Pareto tail of this index).
TAIL_EXPONENT: Final = 2.0
# An alert needs a day rarer than one in this many of the role's days, whatever the budget says.
MIN_RARITY: Final = 100
# How much each feature's rarity counts as evidence: behaviours that disclose data weigh most, habits
# (hours, devices) less, sheer volume least (busy days are common and mostly benign).
WEIGHTS: Final[dict[str, float]] = {
    "queries": 0.5,
    "patients": 0.6,
    "max_patients": 0.6,
    "rows": 0.5,
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
    "rare_hour_events": 0.8,
    "rare_hour_unrelated": 1.0,
    "rare_hour_lookups": 1.0,
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
    "relatives": 1.0,
}

# Features that measure one behaviour in several ways.
FAMILY: Final[dict[str, str]] = {
    **dict.fromkeys(("queries", "patients", "max_patients", "rows", "volume_vs_own"), "volume"),
    **dict.fromkeys(("exports", "export_rows", "identifiers"), "export"),
    **dict.fromkeys(
        ("unrelated", "unrelated_share", "unrelated_week", "unrelated_month", "unrelated_vs_own"), "unrelated"
    ),
    **dict.fromkeys(("rare_hour_events", "night_events"), "hours"),
    **dict.fromkeys(("new_devices", "devices", "concurrent_devices"), "devices"),
    **dict.fromkeys(("denials", "masked", "rephrases"), "refusals"),
    **dict.fromkeys(("new_tables", "new_columns"), "novelty"),
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
    "rare_hour_unrelated": "{value} patients not in this user's current care, looked at outside their hours",
    "rare_hour_lookups": "{value} look-ups of names, addresses or ID numbers outside this user's hours",
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
    "relatives": "{value} records of patients sharing this user's surname or address, not in their care",
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
    median_values: dict[str, float] = dataclasses.field(default_factory=dict)

    def medians(self) -> dict[str, float]:
        if not self.median_values:  # once: scoring asks for every day it scores
            self.median_values = {
                name: float(np.median(values)) if len(values) else 0.0 for name, values in self.values.items()
            }
        return self.median_values

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
    """-log10 of (days reaching this value + 1) / (days + 1): 0 for common values, ~log10(n) for unseen.

    Beyond the highest value seen, ranks run out: 300 unrelated patients would count as no rarer than
    the busiest day's 16. There the tail is extrapolated as a power law (a day twice the highest is four
    times rarer), so how far beyond still counts.
    """
    n = len(sorted_values)
    reaching = n - int(np.searchsorted(sorted_values, value, side="left"))
    rarity = -math.log10((reaching + 1) / (n + 1))
    if reaching == 0 and n:
        rarity += TAIL_EXPONENT * math.log10((1.0 + value) / (1.0 + max(0.0, float(sorted_values[-1]))))
    return rarity


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
    # The strongest family of behaviour, and half of the next: unrelated patients today, this week and
    # this month are one behaviour counted three ways, and must not add up to three reasons.
    by_family: dict[str, float] = {}
    for weight, evidence in found:
        family = FAMILY.get(evidence.feature, evidence.feature)
        by_family[family] = max(by_family.get(family, 0.0), weight)
    strongest = sorted(by_family.values(), reverse=True)
    single = strongest[0] + 0.5 * strongest[1] if len(strongest) > 1 else (strongest[0] if strongest else 0.0)
    forest = _rarity(baseline.forest_scores, forest_score)
    return max(single, forest), [evidence for _, evidence in found]


def _fit(role: str, days: Sequence[Mapping[str, float]], *, users: int, seed: int) -> Baseline:
    """The forest and the feature distributions of these days, not yet calibrated."""
    matrix = np.asarray([vector(features) for features in days], dtype=np.float64)
    forest = IsolationForest(n_estimators=TREES, max_samples=min(256, len(days)), random_state=seed)
    forest.fit(matrix)
    rng = np.random.default_rng(seed)
    keep = np.arange(len(days)) if len(days) <= _KEEP else rng.choice(len(days), _KEEP, replace=False)
    values = {
        name: np.sort(np.asarray([float(days[i].get(name, 0.0)) for i in keep], dtype=np.float64))
        for name in DAY_FEATURES
    }
    return Baseline(
        role=role,
        forest=forest,
        values=values,
        forest_scores=np.sort(_forest_scores(forest, matrix)[keep]),
        combined=np.zeros(0),
        threshold=math.inf,
        samples=len(days),
        users=users,
    )


def _held_out_evidence(baseline: Baseline, days: Sequence[Mapping[str, float]]) -> list[float]:
    matrix = np.asarray([vector(features) for features in days], dtype=np.float64)
    scores = _forest_scores(baseline.forest, matrix)
    return [
        _evidence(baseline, features, float(score))[0] for features, score in zip(days, scores, strict=True)
    ]


def train_baseline(
    role: str, days: Sequence[Mapping[str, float]], *, users: int, budget_per_1000: int, seed: int = 0
) -> Baseline:
    """Fit a role's forest on its user-days and calibrate the alert threshold to the budget.

    The calibration is cross-fitted in time: `days` come oldest first, and each half is scored by a
    baseline fitted on the other. Scored by the baseline fitted on them, days look more ordinary than
    new days will (a day is never rarer than itself), and so do days from the same weeks: a threshold set
    either way lets through several times the budget once the hospital's weeks move on.
    """
    baseline = _fit(role, days, users=users, seed=seed)
    middle = len(days) // 2
    halves = [list(days[:middle]), list(days[middle:])]
    held_out: list[float] = []
    for fitted, scored in ((halves[0], halves[1]), (halves[1], halves[0])):
        held_out.extend(_held_out_evidence(_fit(role, fitted, users=users, seed=seed), scored))
    baseline.combined = np.sort(np.asarray(held_out, dtype=np.float64))
    quantile = float(np.quantile(baseline.combined, 1.0 - budget_per_1000 / 1000.0))
    baseline.threshold = max(quantile, math.log10(MIN_RARITY))
    return baseline


def train_baselines(
    days: Sequence[tuple[str, str, Mapping[str, float]]], *, budget: int, seed: int = 0
) -> dict[str, Baseline]:
    """Per-role baselines on (role, username, features) user-days, oldest first, and a pooled one.

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
    score: DayScore, flags: Sequence[Flag], *, role_label: str, limit: int = 3
) -> list[dict[str, Any]]:
    """The alert's reasons in a privacy officer's words, strongest first: each rule that fired (its
    patients together), then up to `limit` behaviours from the baseline, one per family."""
    found: list[dict[str, Any]] = []
    live: dict[str, set[int]] = {}
    for flag in flags:
        if not flag.silenced:
            live.setdefault(flag.code, set()).add(flag.subject_id)
    for code in sorted(live, key=lambda c: -RULE_RISK[c]):
        patients = sorted(live[code])
        listed = ", ".join(str(p) for p in patients[:5]) + (
            f" and {len(patients) - 5} more" if len(patients) > 5 else ""
        )
        which = f"patient {listed}" if len(patients) == 1 else f"{len(patients)} patients: {listed}"
        found.append(
            {
                "code": code,
                "kind": "rule",
                "text": f"{_capital(RULE_TEXT[code])} ({which}), {_NO_TREATMENT}.",
                "patients": patients,
            }
        )
    families: set[str] = set()
    for item in score.evidence:
        if len(families) >= limit:
            break
        family = FAMILY.get(item.feature, item.feature)
        if item.rarity < 1.0 or family in families:  # more common than one day in ten: not a reason
            continue
        families.add(family)
        what = FEATURE_TEXT[item.feature].format(value=_number(item.feature, item.value))
        share = min(99.9, 100.0 * (1.0 - 10 ** (-item.rarity)))
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
