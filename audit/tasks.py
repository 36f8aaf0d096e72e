"""Celery tasks of the audit store: thin wrappers over audit.pipeline, checkpoints and services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from audit import pipeline
from audit.services import VERIFY_TIME_LIMIT, audit_chain_verify


# Retries: a warehouse or database hiccup is retried with backoff for about 10 minutes; after that the
# events are left to the sweep (beat, every minute), so nothing is lost either way.
@shared_task(
    name="audit.score_events",
    autoretry_for=(Exception,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=8,
    acks_late=True,
    # What it returns is for the eager caller; a worker's results would sit in Redis for a day, unread.
    ignore_result=True,
)
def score_events_task(seqs: list[int]) -> dict[str, int]:
    report = pipeline.score_events(int(seq) for seq in seqs)
    return {"events": report.events, "user_days": report.user_days, "alerts_new": report.alerts_new}


# One sweep at a time is enough; a sweep still running when beat fires again just makes the next
# one find nothing. The time limit bounds one sweep of a large backlog (it resumes where it stopped).
@shared_task(name="audit.sweep", soft_time_limit=240, time_limit=300)
def sweep_task() -> dict[str, int]:
    report = pipeline.sweep()
    return {"events": report.events, "user_days": report.user_days, "alerts_new": report.alerts_new}


@shared_task(name="audit.retrain", time_limit=3600)
def retrain_task() -> list[dict[str, Any]]:
    stored = pipeline.baseline_train()
    return [{"role": model.role, "samples": model.samples} for model in stored]


@shared_task(name="audit.checkpoint", time_limit=600)
def checkpoint_task() -> dict[str, Any]:
    """Sign the events since the last checkpoint; with no key configured, checkpoints are off."""
    from audit.checkpoints import CheckpointsOff, checkpoint_create

    try:
        made = checkpoint_create()
    except CheckpointsOff:
        return {"checkpoint": None, "off": True}
    if made is None:
        return {"checkpoint": None}
    return {"checkpoint": made.pk, "seq_from": made.seq_from, "seq_to": made.seq_to}


# No automatic retry: a retry after the notices were made would send the report twice; a failed run
# shows in the worker log and is re-run by hand. Ten minutes bounds a report over a very large week.
@shared_task(name="audit.weekly_report", time_limit=600)
def weekly_report_task(week_start: str | None = None) -> dict[str, Any]:
    """Send last week's report (or the week of `week_start`, YYYY-MM-DD) to the privacy office."""
    import datetime as dt

    from audit.reports import weekly_report_send

    delivery = weekly_report_send(week_start=dt.date.fromisoformat(week_start) if week_start else None)
    return {
        "week_start": delivery.report.week_start.isoformat(),
        "recipients": delivery.recipients,
        "mailed": delivery.mailed,
    }


# No automatic retry: an officer asked and watches the page; a failure shows there and is asked again.
# The time limit bounds one walk of the store: every event is hashed again (200,000 events took 31-39 s
# on PostgreSQL here, so an hour covers some 20 million). It is also how long a dead worker's "running"
# mark holds off the next request (audit.services).
@shared_task(name="audit.verify_chain", time_limit=VERIFY_TIME_LIMIT)
def chain_verify_task(
    requested_by_id: int | None, client_addr: str = "", user_agent: str = ""
) -> dict[str, Any]:
    """Verify the chain and its checkpoints for whoever asked (a user id; None: the system)."""
    outcome = audit_chain_verify(
        requested_by_id=requested_by_id, client_addr=client_addr, user_agent=user_agent
    )
    return {"ok": outcome.ok, "problem": outcome.problem, "first_bad_seq": outcome.first_bad_seq}
