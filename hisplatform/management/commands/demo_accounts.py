"""List the demo accounts that seed_demo created."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hisplatform.services import DemoAccountsUnreadable, demo_accounts_read


class Command(BaseCommand):
    help = "List the demo accounts (username, password, role, department)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            accounts = demo_accounts_read()
        except DemoAccountsUnreadable as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps([asdict(a) for a in accounts], indent=2))
            return
        if not accounts:
            self.stdout.write("No demo accounts yet: run `python manage.py seed_demo` first.")
            return
        width = max(len(a.username) for a in accounts)
        for account in accounts:
            department = account.department or "-"
            self.stdout.write(
                f"  {account.username:<{width}}  {account.password}  {account.role:<16}  {department}"
            )
