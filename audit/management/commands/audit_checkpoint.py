"""`manage.py audit_checkpoint`: sign the audit events since the last checkpoint, or make the signing key."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from audit.checkpoints import CheckpointError, checkpoint_create, signing_key_create
from audit.models import AuditChainHead, Checkpoint


class Command(BaseCommand):
    help = (
        "Make a signed checkpoint now: the Merkle root of the audit events since the last checkpoint, "
        "signed with the Ed25519 key in AUDIT_SIGNING_KEY_FILE (beat does this every 15 minutes). "
        "With --init-key, write a new key pair to that path instead (never overwriting one) and print "
        "the public key for AUDIT_VERIFY_KEY_FILE. Exit 0 when done or nothing is new; 1 otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--init-key",
            action="store_true",
            help="write a new signing key pair to AUDIT_SIGNING_KEY_FILE and print its public key",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["init_key"]:
            self._init_key()
            return
        try:
            checkpoint = checkpoint_create()
        except CheckpointError as error:
            raise CommandError(str(error)) from None
        except DatabaseError as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise CommandError(f"Could not make a checkpoint: the database failed ({reason}).") from None
        if checkpoint is None:
            self.stdout.write(_nothing_new())
            return
        count = checkpoint.seq_to - checkpoint.seq_from + 1
        self.stdout.write(
            f"Signed checkpoint of events {checkpoint.seq_from:,}-{checkpoint.seq_to:,} "
            f"({count:,} event{'' if count == 1 else 's'}): root {checkpoint.root}, "
            f"key id {checkpoint.key_id}."
        )

    def _init_key(self) -> None:
        try:
            made = signing_key_create()
        except CheckpointError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Wrote a new Ed25519 signing key to {made.path} (mode 0600).")
        self.stdout.write(f"Key id: {made.key_id}")
        if made.verify_path is not None:
            self.stdout.write(f"Wrote its public key to {made.verify_path} (AUDIT_VERIFY_KEY_FILE).")
        elif settings.AUDIT_VERIFY_KEY_FILE:
            self.stdout.write(
                self.style.WARNING(
                    f"{settings.AUDIT_VERIFY_KEY_FILE} (AUDIT_VERIFY_KEY_FILE) already exists and was left "
                    "as it is: append the public key below to it, or checkpoints signed from now on will "
                    "not verify."
                )
            )
        self.stdout.write("Public key (keep a copy away from the database; verifiers need only this):")
        self.stdout.write(made.public_pem.rstrip("\n"))


def _nothing_new() -> str:
    head = AuditChainHead.objects.using(DEFAULT_DB_ALIAS).filter(pk=1).values_list("seq", flat=True).first()
    if head is None:
        return "Nothing to checkpoint: the audit store is empty."
    latest = Checkpoint.objects.using(DEFAULT_DB_ALIAS).order_by("-seq_to").first()
    where = f" (checkpoint #{latest.seq_from}-#{latest.seq_to})" if latest is not None else ""
    return f"Nothing new to checkpoint: events 1-{head:,} are already signed{where}."
