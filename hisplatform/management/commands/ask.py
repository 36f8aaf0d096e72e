"""Ask one question as a user, through the same pipeline as the web page and the API."""

from __future__ import annotations

import datetime as dt
import json
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.models import EventKind, EventStatus
from audit.services import audit_record
from hisplatform.queries import ERROR, Answer, answer_question, export_answer


class Command(BaseCommand):
    help = (
        "Answer QUESTION as USERNAME would be answered: understood, decided by policy, rewritten, run, "
        "masked and audited. Exit code 0 for answered, abstained and denied; 1 for an error."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("question", help="the question, in plain English")
        parser.add_argument("--user", required=True, help="the account that asks")
        parser.add_argument(
            "--purpose", default=None, help="HL7 PurposeOfUse: TREAT, ETREAT, HRESCH, HOPERAT, BTG"
        )
        parser.add_argument(
            "--now", default=None, help='the moment to answer at, "YYYY-MM-DD HH:MM:SS" (UTC)'
        )
        parser.add_argument(
            "--confirm", action="store_true", help="confirm the purpose of use for special-category data"
        )
        parser.add_argument("--project", default=None, help="research project code (researchers in several)")
        parser.add_argument(
            "--csv",
            metavar="PATH",
            default=None,
            help="export the answer to this CSV file (audited as an export); the answer is printed as usual",
        )
        parser.add_argument(
            "--fresh-pseudonyms",
            action="store_true",
            help="with --csv: research pseudonyms keyed for this export alone",
        )
        parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        now = None
        if options["now"]:
            try:
                now = dt.datetime.strptime(options["now"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
            except ValueError:
                raise CommandError(
                    f'--now must look like "2026-11-25 14:30:00", not {options["now"]!r}.'
                ) from None
        user = User.objects.filter(username=options["user"]).first()
        if user is None or not user.is_active:
            # Recorded like any refused request: someone tried to ask as this name.
            event = audit_record(
                user=None,
                kind=EventKind.QUESTION,
                status=EventStatus.DENIED,
                username=options["user"],
                question=options["question"],
                message="no such active user",
                details={"channel": "cli"},
            )
            answer = Answer(ERROR, f"There is no active user {options['user']!r}.", code="unknown_user")
            answer.audit_event = event.pk
        elif options["csv"]:
            export = export_answer(
                user=user,
                question=options["question"],
                purpose=options["purpose"],
                project=options["project"],
                confirm_special=options["confirm"],
                fresh_pseudonyms=options["fresh_pseudonyms"],
                now=now,
                channel="cli",
            )
            answer = export.answer
            if export.csv is not None:
                Path(options["csv"]).write_text(export.csv, encoding="utf-8", newline="")
        else:
            answer = answer_question(
                user=user,
                question=options["question"],
                purpose=options["purpose"],
                project=options["project"],
                confirm_special=options["confirm"],
                now=now,
                channel="cli",
            )
        if options["json"]:
            self.stdout.write(json.dumps(answer.as_dict(), ensure_ascii=False, default=str))
        else:
            self._print(answer)
        if answer.status == ERROR:
            sys.exit(1)

    def _print(self, answer: Answer) -> None:
        self.stdout.write(f"{answer.status}: {answer.message}")
        if answer.interpretation:
            self.stdout.write(f"Understood as: {answer.interpretation}")
        for notice in answer.notices:
            self.stdout.write(f"Note: {notice}")
        if answer.columns:
            self.stdout.write(" | ".join(answer.columns))
            for row in answer.rows[:50]:
                self.stdout.write(" | ".join("" if v is None else str(v) for v in row))
            if len(answer.rows) > 50:
                self.stdout.write(f"... {len(answer.rows) - 50} more rows (use --json for all)")
        for column, how in answer.masked.items():
            self.stdout.write(f"Masked: {column} ({how})")
        for suggestion in answer.suggestions:
            self.stdout.write(f"Try: {suggestion}")
        self.stdout.write(f"Audit event {answer.audit_event}")
