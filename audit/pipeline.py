"""Scoring the audit store: events to user-days to alerts, queued on commit and swept when queues fail.

Scoring a user-day is recomputing it from all that day's events, so it is idempotent: the task queued
on commit, the periodic sweep and a manual `audit_score` may all score the same events in any order and
agree. An event is scored once its EventScore row exists; the sweep finds the others.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from audit.accesses import Access, access_of
from audit.detect import (
    Baseline,
    BaselineIntegrityError,
    DayScore,
    baseline_for,
    day_risk,
    dump_baseline,
    load_baseline,
    reasons,
    role_label,
    rule_risk,
    score_days,
    train_baselines,
)
from audit.features import (
    CONTEXT_DAYS,
    WEEK_DAYS,
    DayRead,
    DaySummary,
    EventResult,
    FeatureContext,
    GroupIndex,
    day_role,
    local_day,
    read_day,
)
from audit.models import (
    Alert,
    AlertLabel,
    AlertNote,
    AlertState,
    AuditEvent,
    BaselineModel,
    EventScore,
    ScoringProgress,
    UserDay,
)
from audit.relations import current_relations
from hisplatform.models import ResearchProject

logger = logging.getLogger(__name__)

# Events scored per batch by the sweep: one query each for the events, the users' days and their
# history; a few thousand keep each transaction short while amortising the queries.
SWEEP_CHUNK: Final = 5_000
# The event ids a task carries: beyond this, the rest is left to the sweep (a message stays small).
TASK_MAX_EVENTS: Final = 10_000
# An alert links at most this many events (a bulk day can have thousands; the first ones tell the story).
ALERT_EVENTS: Final = 200
# Day features that come from events: an alert links the events that made its strongest reasons.
_EVENT_SOURCES: Final[dict[str, str]] = {
    "patients": "patients",
    "max_patients": "patients",
    "rows": "rows",
    "exports": "export",
    "export_rows": "export",
    "identifiers": "identifiers",
    "denials": "denied",
    "masked": "masked_answer",
    "unrelated": "unrelated",
    "unrelated_share": "unrelated",
    "unrelated_week": "unrelated",
    "unrelated_month": "unrelated",
    "unrelated_vs_own": "unrelated",
    "group_users": "unrelated",
    "recent_only": "recent_only",
    "departments": "departments",
    "new_tables": "new_tables",
    "new_columns": "new_columns",
    "rare_hour_events": "rare_hour",
    "night_events": "night",
    "new_devices": "new_device",
    "concurrent_devices": "concurrent_device",
    "lookups": "lookup",
    "rephrases": "rephrase",
    "breakglass": "breakglass",
    "out_of_cohort": "out_of_cohort",
}


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
    return start, start + dt.timedelta(days=1)


# ------------------------------------------------------------------------------------------ queueing


def enqueue_scoring(seqs: Sequence[int]) -> None:
    """Queue the events for scoring; called on commit. Never raises: a queue that is down only delays
    scoring until the sweep, and must not fail the request that recorded the events."""
    if not seqs:
        return
    from audit.tasks import score_events_task

    try:
        # retry=False: with the broker down, fail at once (the sweep will score them) rather than hold
        # the user's request while the client retries.
        args = (list(seqs[:TASK_MAX_EVENTS]),)
        if settings.CELERY_TASK_ALWAYS_EAGER:
            score_events_task.apply(args=args)  # in-process (make demo): no broker to touch
        else:
            score_events_task.apply_async(args=args, retry=False)
    except Exception:  # the broker's or the eager task's error, whatever it is
        logger.warning("Audit scoring not queued for %d event(s); the sweep will score them.", len(seqs))


# ------------------------------------------------------------------------------------------ baselines

_BASELINES: dict[str, Any] = {"version": None, "models": {}}
_BASELINES_LOCK = threading.Lock()


def active_baselines() -> dict[str, Baseline]:
    """The active per-role baselines, loaded once per process and again after a retrain."""
    version = BaselineModel.objects.filter(active=True).aggregate(latest=Max("pk"))["latest"]
    with _BASELINES_LOCK:
        if _BASELINES["version"] == version:
            return dict(_BASELINES["models"])
    models: dict[str, Baseline] = {}
    for stored in BaselineModel.objects.filter(active=True):
        try:
            models[stored.role] = load_baseline(bytes(stored.blob), stored.signature)
        except BaselineIntegrityError:
            logger.error(
                "Baseline model %s (%s) failed its signature check; not used.", stored.pk, stored.role
            )
    with _BASELINES_LOCK:
        _BASELINES["version"] = version
        _BASELINES["models"] = models
    return dict(models)


def baseline_train(
    *, today: dt.date | None = None, days: int | None = None, seed: int = 0
) -> list[BaselineModel]:
    """Retrain every role's baseline on the trailing window, leaving out days of confirmed incidents."""
    zone = _zone()
    end = (today or timezone.now().astimezone(zone).date()) - dt.timedelta(days=1)
    span = days or int(settings.AUDIT_TRAINING_DAYS)
    start = end - dt.timedelta(days=span - 1)
    incidents = set(
        Alert.objects.filter(label=AlertLabel.INCIDENT, day__range=(start, end)).values_list(
            "username", "day"
        )
    )
    rows = [
        (role, username, features)
        for role, username, day, features in UserDay.objects.filter(day__range=(start, end))
        .order_by("day", "username")
        .values_list("role", "username", "day", "features")
        if (username, day) not in incidents and isinstance(features, dict)
    ]
    baselines = train_baselines(rows, budget=int(settings.AUDIT_ALERT_BUDGET), seed=seed)
    now = timezone.now()
    stored: list[BaselineModel] = []
    with transaction.atomic():
        for role, baseline in baselines.items():
            blob, signature = dump_baseline(baseline)
            stored.append(
                BaselineModel(
                    role=role,
                    trained_at=now,
                    window_start=start,
                    window_end=end,
                    samples=baseline.samples,
                    users=baseline.users,
                    excluded_days=len(incidents),
                    feature_names=list(baseline.values),
                    peer_medians=baseline.medians(),
                    peer_spread=baseline.spread(),
                    calibration=[
                        float(x) for x in baseline.combined[:: max(1, len(baseline.combined) // 1000)]
                    ],
                    blob=blob,
                    signature=signature,
                    active=True,
                )
            )
        if stored:
            # Old models stay for the record; only the new ones are used.
            BaselineModel.objects.filter(active=True).update(active=False)
            BaselineModel.objects.bulk_create(stored)
    return stored


# ------------------------------------------------------------------------------------------ scoring


@dataclasses.dataclass(slots=True)
class ScoringReport:
    events: int = 0
    user_days: int = 0
    alerts_new: int = 0
    alerts_updated: int = 0


def _cohorts() -> dict[str, list[str]]:
    return {
        code: [str(prefix) for prefix in cohort]
        for code, cohort in ResearchProject.objects.exclude(cohort=[]).values_list("code", "cohort")
        if isinstance(cohort, list)
    }


def _context() -> FeatureContext:
    return FeatureContext(current_relations(), _cohorts(), _zone())


def score_events(seqs: Iterable[int]) -> ScoringReport:
    """Score these events, and with them every user-day they fall on (idempotent)."""
    wanted = sorted(set(seqs))
    report = ScoringReport()
    if not wanted:
        return report
    zone = _zone()
    keys: set[tuple[str, dt.date]] = set()
    for chunk_start in range(0, len(wanted), SWEEP_CHUNK):
        chunk = wanted[chunk_start : chunk_start + SWEEP_CHUNK]
        for username, occurred_at in AuditEvent.objects.filter(seq__in=chunk).values_list(
            "username", "occurred_at"
        ):
            keys.add((username, local_day(occurred_at, zone)))
    if keys:
        with transaction.atomic():
            _lock_user_days(keys)
            _score_user_days(keys, report)
    return report


def _lock_user_days(keys: set[tuple[str, dt.date]]) -> None:
    """Serialise scorers of the same user-day until commit, so that a day is never written from an older
    snapshot of its events than the last writer's (the events are read after the lock is held).

    PostgreSQL: transaction-scoped advisory locks, taken in one sorted order (no deadlock between two
    batches). SQLite: the transaction's write lock, taken at BEGIN (IMMEDIATE), already serialises them.
    """
    if connection.vendor != "postgresql":
        return
    names = sorted(f"audit-user-day:{username}:{day.isoformat()}" for username, day in keys)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(h) FROM "
            "(SELECT hashtextextended(n, 0) AS h FROM unnest(%s::text[]) AS n ORDER BY 1) AS sorted",
            [names],
        )


def _score_user_days(keys: set[tuple[str, dt.date]], report: ScoringReport) -> None:
    zone = _zone()
    context = _context()
    usernames = sorted({username for username, _ in keys})
    first_day = min(day for _, day in keys)
    last_day = max(day for _, day in keys)
    start, _ = _day_bounds(first_day, zone)
    _, end = _day_bounds(last_day, zone)
    accesses: dict[tuple[str, dt.date], list[Access]] = defaultdict(list)
    events = AuditEvent.objects.filter(username__in=usernames, occurred_at__gte=start, occurred_at__lt=end)
    for event in events.order_by("seq").iterator(chunk_size=2000):
        key = (event.username, local_day(event.occurred_at, zone))
        if key in keys:
            accesses[key].append(access_of(event))
    history: dict[str, list[DaySummary]] = defaultdict(list)
    stored = UserDay.objects.filter(
        username__in=usernames, day__gte=first_day - dt.timedelta(days=CONTEXT_DAYS), day__lt=last_day
    ).values_list("username", "day", "features", "seen")
    for username, day, features, seen in stored:
        history[username].append(DaySummary(day, dict(features or {}), dict(seen or {})))
    group = _group_index(first_day, last_day, keys)
    baselines = active_baselines()
    now = timezone.now()
    read: list[tuple[dt.date, DayRead]] = []
    for day in sorted({day for _, day in keys}):
        today = {username: accesses.get((username, day), []) for username, d in sorted(keys) if d == day}
        for one in read_day(day, today, history, group, context):
            kept = [s for s in history[one.username] if s.day != day]
            history[one.username] = [*kept, DaySummary(day, one.features, one.seen)]
            read.append((day, one))
    # One forest call per role for the whole batch: a call costs about the same for one day or many.
    by_role: dict[str, list[int]] = defaultdict(list)
    for index, (_, one) in enumerate(read):
        by_role[day_role(one.events)].append(index)
    scores: dict[int, DayScore] = {}
    for role, indexes in by_role.items():
        scored = score_days(baseline_for(baselines, role), [read[i][1].features for i in indexes])
        scores.update(zip(indexes, scored, strict=True))
    _store_days([(day, one, scores[index]) for index, (day, one) in enumerate(read)], baselines, now, report)
    report.user_days += len(read)


def _group_index(first_day: dt.date, last_day: dt.date, keys: set[tuple[str, dt.date]]) -> GroupIndex:
    """Other users' unrelated patients over the week before each day scored, from their stored days."""
    group = GroupIndex()
    rows = UserDay.objects.filter(
        day__gte=first_day - dt.timedelta(days=WEEK_DAYS - 1), day__lte=last_day
    ).values_list("username", "day", "seen", "department")
    for username, day, seen, department in rows:
        if (username, day) in keys or not isinstance(seen, dict) or not seen.get("unrelated"):
            continue
        group.add(username, str(department or ""), day, (int(p) for p in seen["unrelated"]))
    return group


def _sparse(features: Mapping[str, float]) -> dict[str, float]:
    """Features as stored: zeros left out (most of them, most days), read back as 0 by `.get`."""
    return {name: value for name, value in features.items() if value}


def _store_days(
    read: Sequence[tuple[dt.date, DayRead, DayScore]],
    baselines: Mapping[str, Baseline],
    now: dt.datetime,
    report: ScoringReport,
) -> None:
    """Write the batch's event scores and user-days in a few statements, and raise its alerts."""
    scores: list[EventScore] = []
    days: list[UserDay] = []
    alerts: list[tuple[dt.date, DayRead, DayScore, str, float, int | None]] = []
    for day, one, score in read:
        results = one.events
        role = day_role(results)
        flags = [flag for _, result in results for flag in result.flags]
        risk = day_risk(score, flags)
        user_id = next((access.user_id for access, _ in results if access.user_id is not None), None)
        scores.extend(
            EventScore(
                event_id=access.seq,
                scored_at=now,
                username=one.username,
                day=day,
                features=_sparse(result.features),
                rules=sorted({flag.code for flag in result.flags if not flag.silenced}),
            )
            for access, result in results
        )
        days.append(
            UserDay(
                username=one.username,
                day=day,
                user_id=user_id,
                role=role,
                department=results[-1][0].department,
                events=len(results),
                features=_sparse(one.features),
                seen=one.seen,
                anomaly=score.anomaly,
                percentile=score.percentile,
                risk=risk,
                updated_at=now,
            )
        )
        if score.baseline_alert or rule_risk(flags) > 0:
            alerts.append((day, one, score, role, risk, user_id))
        report.events += len(results)
    with transaction.atomic():
        EventScore.objects.bulk_create(scores, ignore_conflicts=True, batch_size=2000)
        UserDay.objects.bulk_create(
            days,
            update_conflicts=True,
            unique_fields=["username", "day"],
            update_fields=[
                "user_id", "role", "department", "events", "features", "seen",
                "anomaly", "percentile", "risk", "updated_at",
            ],
            batch_size=1000,
        )  # fmt: skip
        for day, one, score, role, risk, user_id in alerts:
            baseline = baseline_for(baselines, role)
            _raise_alert(one.username, user_id, role, day, one.events, score, risk, baseline, now, report)


def _linked(
    results: Sequence[tuple[Access, EventResult]], reasons_found: Sequence[Mapping[str, Any]]
) -> list[int]:
    flagged = {
        p for reason in reasons_found if reason.get("kind") == "rule" for p in reason.get("patients", ())
    }
    sources = {_EVENT_SOURCES.get(str(reason["code"])) for reason in reasons_found} - {None}
    linked = [
        access.seq
        for access, result in results
        if any(flag.subject_id in flagged for flag in result.flags)
        or any(result.features.get(str(name), 0.0) > 0 for name in sources)
    ]
    if not linked:
        linked = [access.seq for access, result in results if result.features.get("question")]
    return linked[:ALERT_EVENTS]


def _raise_alert(
    username: str,
    user_id: int | None,
    role: str,
    day: dt.date,
    results: Sequence[tuple[Access, EventResult]],
    score: DayScore,
    risk: float,
    baseline: Baseline | None,
    now: dt.datetime,
    report: ScoringReport,
) -> None:
    flags = [flag for _, result in results for flag in result.flags]
    found = reasons(score, flags, role_label=role_label(baseline.role if baseline is not None else role))
    if not found:
        found = [{"code": "anomaly", "kind": "baseline", "text": "An unusual day for this role overall."}]
    summary = f"{username} ({role.replace('_', ' ')}) on {day:%d %b %Y}: " + found[0]["text"]
    alert = Alert.objects.select_for_update().filter(username=username, day=day).first()
    linked = _linked(results, found)
    if alert is None:
        alert = Alert.objects.create(
            username=username,
            user_id=user_id,
            role=role,
            day=day,
            created_at=now,
            updated_at=now,
            risk=risk,
            reasons=found,
            summary=summary,
            first_event_at=results[0][0].at,
            last_event_at=results[-1][0].at,
            event_seqs=linked,
        )
        report.alerts_new += 1
        transaction.on_commit(lambda: _notify(alert.pk))
        return
    before = {str(reason.get("code")) for reason in alert.reasons}
    new_reasons = sorted({str(reason.get("code")) for reason in found} - before)
    if alert.state in (AlertState.FALSE_POSITIVE, AlertState.RESOLVED) and (new_reasons or risk > alert.risk):
        # Closed this morning, at it again this afternoon: the day's new behaviour reopens the alert
        # rather than slipping in under a conclusion reached without it.
        AlertNote.objects.create(
            alert=alert,
            author_name="system",
            created_at=now,
            text=f"Reopened by new activity the same day: {', '.join(new_reasons) or 'a higher risk'}.",
            state_from=alert.state,
            state_to=AlertState.NEW,
        )
        alert.state, alert.label = AlertState.NEW, AlertLabel.NONE
        transaction.on_commit(lambda: _notify(alert.pk))
    alert.risk = max(alert.risk, risk)
    alert.reasons = found
    alert.summary = summary
    alert.last_event_at = results[-1][0].at
    alert.event_seqs = linked
    alert.updated_at = now
    alert.save(
        update_fields=[
            "risk",
            "reasons",
            "summary",
            "last_event_at",
            "event_seqs",
            "updated_at",
            "state",
            "label",
        ]
    )
    report.alerts_updated += 1


def _notify(alert_id: int) -> None:
    """Tell the security officers, in the platform and by mail; a failure to mail loses nothing."""
    from audit.alerts import alert_notify

    try:
        alert_notify(alert_id=alert_id)
    except Exception:
        logger.exception("Alert %s: notification failed (the alert itself is stored).", alert_id)


# ------------------------------------------------------------------------------------------ sweeping


def sweep(*, limit: int | None = None) -> ScoringReport:
    """Score every event the queue missed, oldest first, and move the watermark past them."""
    total = ScoringReport()
    progress, _ = ScoringProgress.objects.get_or_create(pk=1)
    through = progress.scored_through
    while limit is None or total.events < limit:
        seqs = list(
            AuditEvent.objects.filter(seq__gt=through)
            .order_by("seq")
            .values_list("seq", flat=True)[:SWEEP_CHUNK]
        )
        if not seqs:
            break
        scored = set(EventScore.objects.filter(event_id__in=seqs).values_list("event_id", flat=True))
        missing = [seq for seq in seqs if seq not in scored]
        if missing:
            done = score_events(missing)
            total.events += done.events
            total.user_days += done.user_days
            total.alerts_new += done.alerts_new
            total.alerts_updated += done.alerts_updated
            still = set(missing) - set(
                EventScore.objects.filter(event_id__in=missing).values_list("event_id", flat=True)
            )
            if still:
                # Stop below the first event that could not be scored: the next sweep tries again.
                through = min(still) - 1
                break
        through = seqs[-1]
    ScoringProgress.objects.filter(pk=1).update(
        scored_through=max(through, progress.scored_through), swept_at=timezone.now()
    )
    return total


def unscored_count() -> int:
    """Events not yet scored (the backlog a broker or worker outage left)."""
    through = ScoringProgress.objects.filter(pk=1).values_list("scored_through", flat=True).first() or 0
    after = AuditEvent.objects.filter(seq__gt=through).count()
    scored = EventScore.objects.filter(event_id__gt=through).count()
    return max(0, after - scored)
