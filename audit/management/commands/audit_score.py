"""`manage.py audit_score`: score every audit event the queue has not (the sweep, run by hand)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from audit.pipeline import sweep, unscored_count
from hisplatform.warehouse.executor import WarehouseError


class Command(BaseCommand):
    help = (
        "Score the audit events that have no score yet (after a broker or worker outage, or on a fresh "
        "install), oldest first, and raise the alerts they call for. Safe to run at any time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="stop after about this many events")

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        try:
            report = sweep(limit=limit)
            left = unscored_count()
        except WarehouseError as error:
            raise CommandError(
                f"The warehouse cannot be read ({error.message}); nothing was scored."
            ) from None
        except DatabaseError as error:
            raise CommandError(f"The audit store cannot be read or written ({error}).") from None
        self.stdout.write(
            f"Scored {report.events:,} events on {report.user_days:,} user-days; "
            f"{report.alerts_new} new alerts, {report.alerts_updated} updated; {left:,} events left unscored."
        )
