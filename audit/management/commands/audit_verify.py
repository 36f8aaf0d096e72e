"""`manage.py audit_verify`: check the audit hash chain end to end and name the first bad event."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.chain import verify_chain


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
        report = verify_chain(chunk_size=chunk_size)
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
