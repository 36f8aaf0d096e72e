"""Create (or repair) the PostgreSQL login role the web and worker processes connect as, after `migrate`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from audit.app_role import SEQUENCE_PRIVILEGES, TABLE_PRIVILEGES, AppRoleError, ensure_app_role
from hisplatform.env import password_from_env


class Command(BaseCommand):
    help = (
        "Create the application's login role, or bring an existing one back to: LOGIN and nothing else "
        "(no superuser, createdb, createrole, inherit, memberships), owning nothing, with SELECT, INSERT, "
        "UPDATE, DELETE on the application's tables and USAGE, SELECT, UPDATE on its sequences, except "
        "audit_event and audit_checkpoint (SELECT, INSERT), audit_chain_head (SELECT, INSERT, UPDATE) and "
        "django_migrations (SELECT). Connects with DATABASE_URL as the owner that ran `migrate`. Run it "
        "again after every migrate (idempotent): tables created since are granted only then. Point the web "
        "and worker processes' DATABASE_URL at this role. PostgreSQL only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", required=True, help="name of the application's login role")
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            default=None,
            help="name of an environment variable holding the role's password (never pass it as an "
            "argument); without it an existing password is left as it is",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="database alias (default: default)")

    def handle(self, *args: Any, **options: Any) -> None:
        role: str = options["role"]
        try:
            password = password_from_env(options["password_env"])
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        connection = connections[options["database"]]
        if connection.vendor == "sqlite":
            self.stdout.write(
                f"The application database is the SQLite file {connection.settings_dict['NAME']}: "
                "SQLite has no roles or privileges, so there is no role to create. Its triggers refuse "
                "changes to the audit store and audit_verify detects whatever is done to the file around "
                "them; protect the file itself (owner and mode) from everyone but the application."
            )
            return
        try:
            report = ensure_app_role(connection, role, password=password)
        except AppRoleError as error:
            raise CommandError(str(error)) from None
        except DatabaseError as error:  # the server's reason (e.g. no CREATEROLE) is what the operator needs
            reason = " ".join(str(error).split())
            raise CommandError(f"Could not set up the application role {role}: {reason}") from None
        self.stdout.write(f"Role {role}: {'created' if report.created else 'already present'}.")
        for change in report.changes:
            self.stdout.write(f"  {change}")
        self.stdout.write(
            f"Granted {', '.join(TABLE_PRIVILEGES)} on {len(report.tables)} tables and "
            f"{', '.join(SEQUENCE_PRIVILEGES)} on {len(report.sequences)} sequences "
            f"in schema {report.schema}."
        )
        for table, privileges in report.restricted.items():
            self.stdout.write(f"  {table}: {', '.join(privileges)} only.")
        for note in report.notes:
            self.stdout.write(self.style.WARNING(f"Note: {note}"))
