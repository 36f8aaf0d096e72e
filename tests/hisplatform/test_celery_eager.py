"""Celery in the embedded default: tasks run eagerly in-process.

The full stack (a real worker and beat on the running Redis) is proven in tests/e2e/test_full_stack.py.
"""

from __future__ import annotations

import os

from hisplatform.celery import app as platform_app
from hisplatform.tasks import ping


def test_embedded_default_runs_tasks_eagerly_in_process() -> None:
    assert platform_app.conf.task_always_eager is True
    result = ping.delay("inline")
    assert result.get(timeout=1)["pid"] == os.getpid()


def test_every_beat_entry_names_a_task_the_worker_knows() -> None:
    from django.conf import settings

    from hisplatform.celery import app

    app.loader.import_default_modules()  # what a worker does at start-up: autodiscover every app's tasks
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert names == {
        "accessctl.expire_breakglass",
        "audit.sweep",
        "audit.checkpoint",
        "audit.retrain",
        "audit.weekly_report",
        "audit.verify_chain",
    }
    assert names <= set(app.tasks)
