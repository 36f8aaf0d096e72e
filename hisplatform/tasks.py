"""Platform-level Celery tasks."""

from __future__ import annotations

import os
import socket

from celery import shared_task

from hisplatform.asking import job_run


@shared_task(name="hisplatform.ping")
def ping(token: str) -> dict[str, str | int]:
    """Echo a token with where it ran, so a health check can tell a worker from the caller."""
    return {"token": token, "hostname": socket.gethostname(), "pid": os.getpid()}


# Only the job's id travels: Celery logs a task's arguments, and a question may name a patient; the
# question and its answer stay in the cache. Never retried: a retry would ask again and write a second
# audit event (a redelivered task finds the job claimed). Nothing returned, so no result is stored.
# 15 minutes: beyond the warehouse's longest statement timeout (10 minutes) and the pipeline's own work;
# a worker still busy then is stuck, and is freed for other questions.
@shared_task(name="hisplatform.answer_question", ignore_result=True, time_limit=15 * 60)
def answer_question_task(job_id: str) -> None:
    """Answer the question kept under this job id and keep its answer for the page."""
    job_run(job_id=job_id)
