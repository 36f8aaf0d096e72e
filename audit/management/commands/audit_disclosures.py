"""`manage.py audit_disclosures`: the accounting of disclosures of one patient, for a security officer."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.management.commands.audit_report import parse_day
from audit.reports import (
    ReportError,
    disclosures_csv,
    disclosures_for_patient,
    disclosures_text,
    report_refuse_unknown_reader,
)


class Command(BaseCommand):
    help = (
        "List every answered question and export that showed patient N's data: when, who (role, "
        "department), for what purpose, under which break-glass session, which tables and columns; newest "
        "first. USERNAME must be an active security officer; the read is recorded in the audit trail, and "
        "so is a refusal."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--user", required=True, help="the security officer who reads the accounting")
        parser.add_argument(
            "--patient", required=True, type=int, metavar="N", help="the patient's subject_id"
        )
        parser.add_argument(
            "--since", default=None, metavar="YYYY-MM-DD", help="from this day (local), included"
        )
        parser.add_argument(
            "--until", default=None, metavar="YYYY-MM-DD", help="to this day (local), included"
        )
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="print a JSON list of disclosures")
        output.add_argument("--csv", metavar="PATH", default=None, help="write the disclosures to a CSV file")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None if options["since"] is None else parse_day("--since", options["since"])
        until = None if options["until"] is None else parse_day("--until", options["until"])
        subject_id: int = options["patient"]
        username: str = options["user"]
        user = User.objects.filter(username=username, is_active=True).select_related("profile").first()
        if user is None:
            asked = {
                "report": "disclosures",
                "subject_id": subject_id,
                "since": None if since is None else since.isoformat(),
                "until": None if until is None else until.isoformat(),
                "channel": "cli",
            }
            report_refuse_unknown_reader(username=username, details=asked)
            raise CommandError(f"There is no active user {username!r}.")
        try:
            disclosures = disclosures_for_patient(
                fetched_by=user, subject_id=subject_id, since=since, until=until, channel="cli"
            )
        except ReportError as error:
            raise CommandError(f"{error.message} ({error.code})") from None
        if options["json"]:
            self.stdout.write(json.dumps([item.as_dict() for item in disclosures], ensure_ascii=False))
        elif options["csv"]:
            path = Path(options["csv"])
            try:
                path.write_text(disclosures_csv(disclosures), encoding="utf-8", newline="")
            except OSError as error:
                raise CommandError(f"Could not write {path}: {error.strerror or error}.") from None
            self.stdout.write(f"Wrote {len(disclosures)} disclosures of patient {subject_id} to {path}.")
        else:
            self.stdout.write(disclosures_text(subject_id, disclosures), ending="")
