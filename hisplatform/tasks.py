"""Platform-level Celery tasks."""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="hisplatform.ping")
def ping(token: str) -> dict[str, str | int]:
    """Echo a token with where it ran, so a health check can tell a worker from the caller."""
    return {"token": token, "hostname": socket.gethostname(), "pid": os.getpid()}
