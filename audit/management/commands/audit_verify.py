"""`manage.py audit_verify`: check the audit hash chain end to end, then its signed checkpoints."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from audit.chain import AUDIT_TABLES
from audit.models import Checkpoint
from audit.services import audit_chain_check


class Command(BaseCommand):
    help = (
        "Recompute every audit event's hash and link, check sequence numbers run 1..N without gaps and "
        "end at the recorded chain head; then check the signed checkpoints (signatures with the key of "
        "AUDIT_VERIFY_KEY_FILE or AUDIT_SIGNING_KEY_FILE, Merkle roots of the events they cover, no gaps). "
        "Exit 0 when intact; otherwise exit 1 naming the first bad event or checkpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=5_000,
            help="Events read per query (memory stays bounded by this; default 5000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        chunk_size: int = options["chunk_size"]
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        # The same check as the security console's "Verify now" (audit.services.audit_chain_check).
        check = audit_chain_check(chunk_size=chunk_size)
        if check.problem == "database":
            where, what = _describe(DEFAULT_DB_ALIAS), _diagnose(DEFAULT_DB_ALIAS, check.reason)
            raise CommandError(f"Could not verify the audit chain in {where}: {what}")
        if check.ok:
            self.stdout.write(check.verdict)
        for line in check.lines:
            self.stdout.write(self.style.WARNING(line) if line.startswith("Warning: ") else line)
        if check.problem == "checkpoint_database":
            table = Checkpoint._meta.db_table
            hint = f"; run `manage.py migrate` (table {table})" if table in check.reason else ""
            raise CommandError(
                f"Could not verify the audit checkpoints in {_describe(DEFAULT_DB_ALIAS)}: reading them "
                f"failed ({check.reason}){hint}."
            )
        if not check.ok:
            raise CommandError(check.verdict)


def _diagnose(alias: str, reason: str) -> str:
    connection = connections[alias]
    if connection.connection is None:  # never connected: probing again would only wait again
        return f"the database cannot be reached ({reason}); check that it is up and DATABASE_URL is right."
    try:
        with connection.cursor() as cursor:
            present = set(connection.introspection.table_names(cursor))
    except DatabaseError:
        return f"the database stopped answering ({reason})."
    missing = [table for table in AUDIT_TABLES if table not in present]
    if missing:
        tables = f"table {missing[0]}" if len(missing) == 1 else f"tables {', '.join(missing)}"
        return f"{tables} missing ({reason}); run `manage.py migrate` on this database."
    return f"reading the audit store failed ({reason})."


def _describe(alias: str) -> str:
    """The database's name and server, never its credentials."""
    connection = connections[alias]
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"the SQLite database {settings['NAME']}"
    host = settings.get("HOST") or "localhost"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"the {connection.vendor} database {settings['NAME']} on {host}{port}"
