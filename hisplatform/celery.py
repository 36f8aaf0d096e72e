"""The Celery application: eager in-process by default, a worker on Redis in the full stack."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hisplatform.settings")

app = Celery("hisplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
