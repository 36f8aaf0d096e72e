"""Create (or repair) the read-only PostgreSQL role that every warehouse question runs as."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hisplatform.env import password_from_env
from hisplatform.warehouse.executor import WarehouseError, ensure_reader_role, execute_readonly, grant_reader
from hisplatform.warehouse.targets import WarehouseConfigError, warehouse_target, writer_connection


class Command(BaseCommand):
    help = (
        "Create the warehouse's read-only login role (default WAREHOUSE_READER_ROLE) and grant it SELECT on "
        "the warehouse tables only. Idempotent; run it again after changing the role by hand. "
        "Connects with WAREHOUSE_URL, which must be the warehouse owner (or a superuser)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default=None, help="role name (default: WAREHOUSE_READER_ROLE)")
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            default=None,
            help="name of an environment variable holding the role's password (never pass it as an argument)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role: str = options["role"] or settings.WAREHOUSE_READER_ROLE
        try:
            password = password_from_env(options["password_env"])
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        try:
            target = warehouse_target()
        except WarehouseConfigError as error:
            raise CommandError(str(error)) from None
        if target.sqlite_path is not None:
            self.stdout.write(
                f"The warehouse is the {target.describe()}: questions open it read-only (mode=ro, "
                "query_only, an authorizer that allows reads only), so no reader role is needed."
            )
            return
        try:
            with writer_connection(target) as conn:
                assert not isinstance(conn, sqlite3.Connection)
                created, changes = ensure_reader_role(conn, role, password=password)
                grant = grant_reader(conn, role)
        except WarehouseConfigError as error:
            raise CommandError(str(error)) from None
        except psycopg.Error as error:  # the server's reason is what the operator needs
            raise CommandError(
                f"Could not set up the reader role {role} in {target.describe()}: {error}"
            ) from None
        assert grant is not None
        self.stdout.write(f"Role {role}: {'created' if created else 'already present'}.")
        # The grant reports what it changed beyond the role itself (such as PUBLIC's CREATE on the schema).
        for change in [*changes, *grant.changes]:
            self.stdout.write(f"  {change}")
        if grant.tables:
            self.stdout.write(
                f"SELECT granted on {len(grant.tables)} warehouse tables: {', '.join(grant.tables)}."
            )
        else:
            self.stdout.write(
                "The warehouse has no tables yet: run seed_demo (which grants SELECT after loading) "
                "or run this command again after loading."
            )
        self._check(role)

    def _check(self, role: str) -> None:
        """Connect the way questions do, when the role is the configured one, and say what happened."""
        if role != settings.WAREHOUSE_READER_ROLE and not settings.WAREHOUSE_READER_URL:
            return
        try:
            result = execute_readonly(
                "SELECT current_user, current_setting('transaction_read_only')", row_cap=1, timeout_ms=5_000
            )
        except WarehouseError as error:
            self.stdout.write(self.style.WARNING(f"Could not connect as the reader yet: {error.message}"))
            return
        user, read_only = result.rows[0]
        self.stdout.write(self.style.SUCCESS(f"Checked: questions run as {user}, read-only={read_only}."))
