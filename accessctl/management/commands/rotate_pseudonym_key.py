"""Start a new pseudonym key generation for a research project (new pseudonyms and date shifts)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accessctl.services import AccessError, pseudonym_key_rotate


class Command(BaseCommand):
    help = (
        "Rotate a research project's pseudonym key: from now on the project sees new pseudonyms and "
        "date shifts that nothing links to the old ones. Recorded in the audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="the research project's code")
        parser.add_argument("--by", required=True, help="username of the privacy officer rotating it")
        parser.add_argument(
            "--reason", required=True, help="why (a suspected re-identification, a new phase)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["by"], is_active=True).first()
        if user is None:
            raise CommandError(f"There is no active user {options['by']!r}.")
        try:
            key = pseudonym_key_rotate(project=options["project"], changed_by=user, reason=options["reason"])
        except AccessError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"{key.project} now uses pseudonym key generation {key.generation}.")
