"""Access control's periodic work, run by Celery beat (and eagerly in the embedded demo)."""

from __future__ import annotations

from celery import shared_task

from accessctl.services import breakglass_expire_due


# Retried with backoff on any error: a missed run only delays recording an expiry (access itself
# stops at expires_at whatever this task does).
@shared_task(
    name="accessctl.expire_breakglass", autoretry_for=(Exception,), retry_backoff=True, max_retries=5
)
def expire_breakglass() -> int:
    return breakglass_expire_due()
