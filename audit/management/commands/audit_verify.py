"""`manage.py audit_verify`: check the audit hash chain end to end, then its signed checkpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone

from audit.chain import AUDIT_TABLES, ChainReport, verify_chain
from audit.checkpoints import CheckpointReport, anchor_problem, verify_checkpoints
from audit.models import Checkpoint

# Beat signs every 15 minutes: events unsigned for four times that mean checkpoints have stopped, or
# that the newest were deleted (which nothing in the database alone can tell apart).
STALE_AFTER = dt.timedelta(hours=1)


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
        else:
            self.stdout.write(
                f"Audit chain intact: {report.events} events, head {report.head_hash[:16]} "
                f"(seq {report.head_seq})."
            )
        self._checkpoints(_verify_checkpoints(chunk_size), report.head_seq)

    def _checkpoints(self, report: CheckpointReport, head_seq: int) -> None:
        """One line on the checkpoints, warnings after it; CommandError for the first bad checkpoint."""
        problem = report.problem
        if problem is not None and problem.kind in ("no_key", "key_error"):
            raise CommandError(f"Cannot verify checkpoints: {problem.detail}")
        if problem is not None:
            before = "No checkpoint verified before it"
            if report.verified:
                before = (
                    f"{_count(report.verified, 'signed checkpoint')} verified before it "
                    f"(events 1-{report.covered_to:,})"
                )
            raise CommandError(
                f"Audit checkpoints FAIL at {problem.checkpoint} ({problem.kind}): {problem.detail} {before}."
            )
        unsigned = max(0, head_seq - report.covered_to)
        if report.total == 0:
            tail = "; the events are covered by the hash chain only." if unsigned else "."
            self.stdout.write(f"Checkpoints: no signed checkpoints yet{tail}")
        else:
            verify = "verifies" if report.total == 1 else "verify"
            checkpoints = _count(report.total, "signed checkpoint")
            events = "event 1" if report.covered_to == 1 else f"events 1-{report.covered_to:,}"
            covered = f"{checkpoints} {verify}, covering {events}"
            if unsigned:
                verb = "is" if unsigned == 1 else "are"
                tail = f"; {_count(unsigned, 'newer event')} {verb} covered by the hash chain only."
            else:
                tail = "."
            self.stdout.write(f"Checkpoints: {covered}{tail}")
        anchored = anchor_problem(using=DEFAULT_DB_ALIAS)
        if anchored is not None:
            raise CommandError(
                f"Audit checkpoints FAIL against the log kept outside the database: {anchored}"
            )
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
        since = report.first_unsigned_at
        if report.total and unsigned and since is not None and timezone.now() - since > STALE_AFTER:
            # Once checkpoints are being made, a tail left unsigned this long is either a stopped task or
            # deleted newest checkpoints (the way to rewrite it unseen): fail, as for any other doubt.
            when = since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
            raise CommandError(
                f"Audit checkpoints STALE: event {report.covered_to + 1:,} and later (since {when} UTC) are "
                "in no signed checkpoint although checkpoints are being made: the audit.checkpoint task has "
                "stopped, or the newest checkpoints were deleted. Compare with the roots logged outside "
                "the database."
            )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _verify_checkpoints(chunk_size: int) -> CheckpointReport:
    try:
        return verify_checkpoints(chunk_size=chunk_size, using=DEFAULT_DB_ALIAS)
    except DatabaseError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        table = Checkpoint._meta.db_table
        hint = f"; run `manage.py migrate` (table {table})" if table in reason else ""
        raise CommandError(
            f"Could not verify the audit checkpoints in {_describe(DEFAULT_DB_ALIAS)}: reading them "
            f"failed ({reason}){hint}."
        ) from None


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
