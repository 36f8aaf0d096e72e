"""`manage.py audit_verify`: check the audit hash chain end to end and name the first bad event."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from audit.chain import AUDIT_TABLES, ChainReport, verify_chain


class Command(BaseCommand):
    help = (
        "Recompute every audit event's hash and link, check sequence numbers run 1..N without gaps and "
        "end at the recorded chain head. Exit 0 when intact; otherwise exit 1 naming the first bad event."
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
        report = _verify(chunk_size)
        problem = report.problem
        if problem is not None and problem.kind == "unprotected":
            raise CommandError(f"Audit chain intact ({report.events} events), UNPROTECTED: {problem.detail}")
        if problem is not None:
            where = f"event seq {problem.seq}" if problem.seq is not None else "the store"
            raise CommandError(
                f"Audit chain BROKEN at {where} ({problem.kind}): {problem.detail} "
                f"{report.events} events verified before it."
            )
        if report.events == 0:
            self.stdout.write("Audit chain intact: 0 events (the store is empty).")
            return
        self.stdout.write(
            f"Audit chain intact: {report.events} events, head {report.head_hash[:16]} "
            f"(seq {report.head_seq})."
        )


def _verify(chunk_size: int) -> ChainReport:
    """Run the check, turning a database failure into one line that says what to look at."""
    try:
        return verify_chain(chunk_size=chunk_size, using=DEFAULT_DB_ALIAS)
    except DatabaseError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        where, what = _describe(DEFAULT_DB_ALIAS), _diagnose(DEFAULT_DB_ALIAS, reason)
        raise CommandError(f"Could not verify the audit chain in {where}: {what}") from None


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
