"""`manage.py audit_train`: retrain the per-role baselines now (beat does it every Sunday night)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.detect import MIN_POOLED_DAYS, MIN_ROLE_DAYS
from audit.pipeline import baseline_train


class Command(BaseCommand):
    help = (
        "Train each role's Isolation Forest baseline on the trailing window of user-days "
        "(AUDIT_TRAINING_DAYS), leaving out days of confirmed incidents, and make them the active models."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="the window, in days (default from settings)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        stored = baseline_train(days=days)
        if not stored:
            self.stdout.write(
                f"No baseline trained: fewer than {MIN_POOLED_DAYS} user-days with questions in the window. "
                "Until there are, only the relationship rules raise alerts (cold start)."
            )
            return
        for model in stored:
            role = (
                "every role together (for roles too small for their own)" if model.role == "*" else model.role
            )
            self.stdout.write(
                f"{role}: {model.samples:,} user-days of {model.users:,} users, "
                f"{model.window_start} to {model.window_end}, {model.excluded_days} incident days left out."
            )
        self.stdout.write(f"Roles with fewer than {MIN_ROLE_DAYS} user-days use the pooled baseline.")
