"""Detection quality on labelled traffic: the production engine replayed day by day over a dataset.

The first `train_days` days train the baselines (days holding a labelled incident are left out, as
confirmed incidents are in production); the rest are scored exactly as the pipeline scores live days.
Reported: recall per scenario at the configured budget, PR-AUC over user-days, false alerts per 1,000
user-days, time to detect, and whether the alert's reasons name the injected behaviour.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from sklearn.metrics import average_precision_score

from audit.accesses import Access
from audit.detect import (
    Baseline,
    DayScore,
    baseline_for,
    day_risk,
    reasons,
    role_label,
    rule_risk,
    score_days,
    train_baselines,
)
from audit.features import (
    CONTEXT_DAYS,
    DaySummary,
    EventResult,
    FeatureContext,
    GroupIndex,
    day_features,
    day_role,
    history_before,
    local_day,
    read_day,
)
from audit.relations import Relations

# The reasons that name each scenario's behaviour: an alert for it should give at least one of them.
SCENARIO_REASONS: Final[dict[str, frozenset[str]]] = {
    "bulk_export": frozenset({"exports", "export_rows", "rows", "patients", "max_patients", "identifiers"}),
    "family_snooping": frozenset({"family_address", "family_surname", "relatives"}),
    "coworker_snooping": frozenset({"coworker"}),
    "vip_snooping": frozenset({"vip"}),
    "after_hours": frozenset(
        {"rare_hour_events", "rare_hour_unrelated", "rare_hour_lookups", "night_events"}
    ),
    "credential_sharing": frozenset({"new_devices", "devices", "concurrent_devices"}),
    "slow_exfiltration": frozenset({"unrelated_week", "unrelated_month", "unrelated", "unrelated_vs_own"}),
    "coordinated_aggregation": frozenset({"group_users"}),
    "masking_rephrase": frozenset({"rephrases", "denials", "masked", "lookups"}),
    "research_outside_cohort": frozenset({"out_of_cohort"}),
}


@dataclasses.dataclass(slots=True)
class DayRecord:
    username: str
    role: str
    day: dt.date
    events: list[tuple[Access, EventResult]]
    labels: set[str]  # scenario ids of labelled accesses this day
    features: dict[str, float] = dataclasses.field(default_factory=dict)
    score: DayScore | None = None
    risk: float = 0.0
    alert: bool = False
    reasons: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    baseline: Baseline | None = None  # the one the day was scored against
    past: list[DaySummary] = dataclasses.field(default_factory=list)  # the context the day was read in


def replay(accesses: Iterable[tuple[Access, str | None]], context: FeatureContext) -> list[DayRecord]:
    """Every user-day's features, computed in time order with only the past as context."""
    by_day: dict[dt.date, dict[str, list[tuple[Access, str | None]]]] = defaultdict(lambda: defaultdict(list))
    for access, label in sorted(accesses, key=lambda item: (item[0].at, item[0].seq)):
        by_day[local_day(access.at, context.zone)][access.username].append((access, label))
    past: dict[str, list[DaySummary]] = defaultdict(list)
    group = GroupIndex()
    records: list[DayRecord] = []
    for day in sorted(by_day):
        group.forget_before(day)
        users = by_day[day]
        accesses_of = {username: [access for access, _ in items] for username, items in users.items()}
        for read in read_day(day, accesses_of, past, group, context):
            records.append(
                DayRecord(
                    username=read.username,
                    role=day_role(read.events),
                    day=day,
                    events=read.events,
                    labels={label for _, label in users[read.username] if label},
                    features=read.features,
                    past=list(past[read.username]),
                )
            )
            kept = [s for s in past[read.username] if s.day > day - dt.timedelta(days=CONTEXT_DAYS + 1)]
            past[read.username] = [*kept, DaySummary(day, read.features, read.seen)]
    return records


def judge(records: Sequence[DayRecord], baselines: Mapping[str, Baseline]) -> None:
    """Score the days, decide alerts and write their reasons, in place."""
    by_role: dict[str, list[DayRecord]] = defaultdict(list)
    for record in records:
        by_role[record.role].append(record)
    for role, days in by_role.items():
        baseline = baseline_for(baselines, role)
        for record, score in zip(days, score_days(baseline, [d.features for d in days]), strict=True):
            flags = [flag for _, result in record.events for flag in result.flags]
            record.score = score
            record.baseline = baseline
            record.risk = day_risk(score, flags)
            record.alert = score.baseline_alert or rule_risk(flags) > 0
            if record.alert:
                label = role_label(baseline.role if baseline is not None else role)
                record.reasons = reasons(score, flags, role_label=label)


def _alert_time(record: DayRecord) -> dt.datetime:
    """When the day first crossed the line: the first event after which it would have alerted."""
    for access, result in record.events:
        if rule_risk(result.flags) > 0:
            return access.at
    baseline = record.baseline
    if baseline is None:
        return record.events[-1][0].at
    history = history_before(record.past, record.day)
    group = int(record.features.get("group_users", 0))
    prefixes = [
        day_features(record.day, record.events[: index + 1], history, group)[0]
        for index in range(len(record.events))
    ]
    for (access, _), score in zip(record.events, score_days(baseline, prefixes), strict=True):
        if score.baseline_alert:
            return access.at
    return record.events[-1][0].at


@dataclasses.dataclass(slots=True)
class ScenarioResult:
    kind: str
    instances: int = 0
    detected: int = 0
    named: int = 0
    hours_to_detect: list[float] = dataclasses.field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.instances if self.instances else 0.0


@dataclasses.dataclass(slots=True)
class Report:
    train_days: int
    eval_user_days: int
    eval_days: int
    alerts: int
    false_alerts: int
    pr_auc: float
    scenarios: dict[str, ScenarioResult]
    baselines: dict[str, int]  # role -> training days
    budget: int
    seconds_replay: float = 0.0
    seconds_train: float = 0.0
    seconds_score: float = 0.0
    accesses: int = 0

    @property
    def false_per_1000(self) -> float:
        return 1000.0 * self.false_alerts / self.eval_user_days if self.eval_user_days else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "eval_user_days": self.eval_user_days,
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "false_alerts_per_1000_user_days": round(self.false_per_1000, 2),
            "pr_auc": round(self.pr_auc, 4),
            "budget_per_1000_user_days": self.budget,
            "baselines": self.baselines,
            "scenarios": {
                kind: {
                    "instances": r.instances,
                    "detected": r.detected,
                    "recall": round(r.recall, 3),
                    "explanation_names_behaviour": r.named,
                    "median_hours_to_detect": round(statistics.median(r.hours_to_detect), 2)
                    if r.hours_to_detect
                    else None,
                }
                for kind, r in sorted(self.scenarios.items())
            },
        }


def evaluate(
    accesses: Iterable[tuple[Access, str | None]],
    *,
    meta: Mapping[str, Any],
    relations: Relations,
    zone: ZoneInfo,
    train_days: int,
    budget: int,
    window_days: int,
    seed: int = 0,
) -> Report:
    started = time.perf_counter()
    cohorts = {
        code: list(project.get("cohort", ())) for code, project in (meta.get("projects") or {}).items()
    }
    context = FeatureContext(relations, cohorts, zone)
    listed = list(accesses)
    records = replay(listed, context)
    replayed = time.perf_counter()
    if not records:
        raise ValueError("The dataset holds no accesses.")
    first_day = min(r.day for r in records)
    split = first_day + dt.timedelta(days=train_days)
    scored = [r for r in records if r.day >= split]
    # As in production: the baselines are retrained every week on the trailing window, leaving out the
    # days of incidents the privacy office confirmed (labelled days that were alerted: an incident
    # nobody caught stays in the training days, as it would). Days before the first window only give
    # the window's days their 30-day context.
    first_baselines: dict[str, int] = {}
    seconds_train = seconds_score = 0.0
    week = split
    while week <= max(r.day for r in records):
        started_week = time.perf_counter()
        window = [
            r
            for r in records
            if week - dt.timedelta(days=min(train_days, window_days)) <= r.day < week
            and not (r.labels and (r.day < split or r.alert))
        ]
        baselines = train_baselines(
            [(r.role, r.username, r.features) for r in window], budget=budget, seed=seed
        )
        first_baselines = first_baselines or {role: b.samples for role, b in baselines.items()}
        trained_week = time.perf_counter()
        judge([r for r in scored if week <= r.day < week + dt.timedelta(days=7)], baselines)
        seconds_train += trained_week - started_week
        seconds_score += time.perf_counter() - trained_week
        week += dt.timedelta(days=7)

    kinds = {str(s["id"]): str(s["kind"]) for s in meta.get("scenarios", ())}
    results = {kind: ScenarioResult(kind) for kind in sorted(set(kinds.values()))}
    first_access: dict[str, dt.datetime] = {}
    for access, label in listed:
        if label and (label not in first_access or access.at < first_access[label]):
            first_access[label] = access.at
    for scenario_id, scenario_kind in kinds.items():
        if scenario_id in first_access:
            results[scenario_kind].instances += 1
    detected: dict[str, tuple[dt.datetime, bool]] = {}
    for record in scored:
        if not record.alert or not record.labels:
            continue
        codes = {reason["code"] for reason in record.reasons}
        when: dt.datetime | None = None
        for scenario_id in record.labels:
            if scenario_id not in kinds:
                continue
            kind = kinds[scenario_id]
            if when is None:
                when = _alert_time(record)
            named = bool(codes & SCENARIO_REASONS.get(kind, frozenset()))
            earlier = detected.get(scenario_id)
            if earlier is None or when < earlier[0]:
                detected[scenario_id] = (when, named or (earlier[1] if earlier else False))
    for scenario_id, (when, named) in detected.items():
        result = results[kinds[scenario_id]]
        result.detected += 1
        result.named += int(named)
        result.hours_to_detect.append(max(0.0, (when - first_access[scenario_id]).total_seconds() / 3600))
    active = [r for r in scored if r.features.get("queries", 0) > 0 or r.labels]
    labels = [1 if r.labels else 0 for r in active]
    risks = [r.risk + (r.score.combined if r.score else 0.0) / 100 for r in active]
    pr_auc = float(average_precision_score(labels, risks)) if any(labels) and not all(labels) else math.nan
    alerts = [r for r in scored if r.alert]
    # An alert on a scenario's user from its start until a week after its end is about that incident
    # (carried-over context, the same behaviour the next day): neither a false alert nor a new finding.
    windows = _incident_windows(meta)
    false_alerts = [r for r in alerts if not r.labels and not _within(windows, r.username, r.day)]
    return Report(
        train_days=train_days,
        eval_user_days=len(active),
        eval_days=len({r.day for r in scored}),
        alerts=len(alerts),
        false_alerts=len(false_alerts),
        pr_auc=pr_auc,
        scenarios=results,
        baselines=first_baselines,
        budget=budget,
        seconds_replay=replayed - started,
        seconds_train=seconds_train,
        seconds_score=seconds_score,
        accesses=len(listed),
    )


def _incident_windows(meta: Mapping[str, Any]) -> dict[str, list[tuple[dt.date, dt.date]]]:
    windows: dict[str, list[tuple[dt.date, dt.date]]] = defaultdict(list)
    for scenario in meta.get("scenarios", ()):
        try:
            start = dt.datetime.fromisoformat(str(scenario["start"])).date()
            end = dt.datetime.fromisoformat(str(scenario["end"])).date() + dt.timedelta(days=7)
        except (KeyError, ValueError):
            continue
        for username in scenario.get("users", ()):
            windows[str(username)].append((start, end))
    return windows


def _within(windows: Mapping[str, list[tuple[dt.date, dt.date]]], username: str, day: dt.date) -> bool:
    return any(start <= day <= end for start, end in windows.get(username, ()))
