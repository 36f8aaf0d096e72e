"""`manage.py audit_report`: the privacy office's weekly report, for a security officer, as text or JSON."""

from __future__ import annotations

import datetime as dt
import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.reports import (
    ReportError,
    previous_week_start,
    report_refuse_unknown_reader,
    weekly_report,
    weekly_report_text,
)


class Command(BaseCommand):
    help = (
        "Print the privacy office's weekly report (volumes, denials, break-glass and its reviews, alerts, "
        "the previous week for comparison) as USERNAME, who must be an active security officer. The read "
        "is recorded in the audit trail, and so is a refusal."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--user", required=True, help="the security officer who reads the report")
        parser.add_argument(
            "--week",
            default=None,
            metavar="YYYY-MM-DD",
            help="a day of the week to report (its Monday to Sunday, local time); default: last week",
        )
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        week = previous_week_start() if options["week"] is None else parse_day("--week", options["week"])
        username: str = options["user"]
        user = User.objects.filter(username=username, is_active=True).select_related("profile").first()
        if user is None:
            report_refuse_unknown_reader(
                username=username,
                details={"report": "weekly", "week_start": week.isoformat(), "channel": "cli"},
            )
            raise CommandError(f"There is no active user {username!r}.")
        try:
            report = weekly_report(fetched_by=user, week_start=week, channel="cli")
        except ReportError as error:
            raise CommandError(f"{error.message} ({error.code})") from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False))
        else:
            self.stdout.write(weekly_report_text(report), ending="")


def parse_day(option: str, value: str) -> dt.date:
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"{option} must be a date like 2026-11-23, not {value[:40]!r}.") from None
