"""Keyed pseudonyms and date shifts for research: stable within a project, unlinkable across projects.

A pseudonym is HMAC-SHA256 over the identifier under the project's key; a date shift is a per-patient
offset of -182..+182 days drawn from the same HMAC, so one patient's dates move together across every
table and intervals between them are kept. The key is derived from PSEUDONYM_SECRET (the server's
environment), the project code and the key generation (and an export batch, when an export asks for
pseudonyms of its own): rotating a project's key adds a generation. The key is handed to the warehouse
connection for one query (SQLite: a function's closure; PostgreSQL: a transaction-local setting
bound as a parameter), so it appears in no SQL text, no log and no audit event.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from django.conf import settings

from accessctl.models import PseudonymKey
from hisplatform.warehouse.executor import execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget

# What a pseudonym starts with, per domain: a reader tells a patient from an admission at a glance.
PREFIXES: Final = {"patient": "P-", "encounter": "E-", "staff": "S-", "record": "R-"}
# Hex characters of the HMAC kept: 48 bits, so a million patients collide with odds of about 1 in 500.
HEX_CHARS: Final = 12
SHIFT_DAYS: Final = 182
_BLOCK: Final = 64  # SHA-256's block size, for the PostgreSQL HMAC built from sha256()


@dataclass(frozen=True)
class ProjectKey:
    """A derived key; `label` names it without revealing it (project, generation, batch)."""

    key: bytes
    label: str

    def __repr__(self) -> str:  # the key must never reach a log through a repr
        return f"ProjectKey({self.label})"

    def pads(self) -> tuple[str, str]:
        """HMAC's inner and outer padded keys, hex: what PostgreSQL needs to compute HMAC with sha256()."""
        padded = self.key.ljust(_BLOCK, b"\0")
        inner = bytes(b ^ 0x36 for b in padded)
        outer = bytes(b ^ 0x5C for b in padded)
        return inner.hex(), outer.hex()


def current_generation(project: str) -> int:
    latest = (
        PseudonymKey.objects.filter(project=project)
        .order_by("-generation")
        .values_list("generation", flat=True)
        .first()
    )
    return int(latest or 1)


def project_key(project: str, *, generation: int | None = None, batch: str = "") -> ProjectKey:
    generation = current_generation(project) if generation is None else generation
    secret = str(settings.PSEUDONYM_SECRET).encode()
    label = f"{project}:{generation}" + (f":{batch}" if batch else "")
    key = hmac.new(secret, f"pseudonym-key:{label}".encode(), hashlib.sha256).digest()
    return ProjectKey(key, label)


def _digest(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, domain: str, value: object) -> str | None:
    """The pseudonym of one identifier (None stays None)."""
    if value is None:
        return None
    return PREFIXES[domain] + _digest(key, f"{domain}:{value}").hex()[:HEX_CHARS]


def shift_days(key: bytes, subject_id: object) -> int | None:
    if subject_id is None:
        return None
    digest = _digest(key, f"shift:{subject_id}")
    return (digest[0] * 256 + digest[1]) % (2 * SHIFT_DAYS + 1) - SHIFT_DAYS


# Pseudonym -> patient, per warehouse and key: rebuilt at most this often (a reload adds patients).
_REVERSE_SECONDS: Final = 60.0
_REVERSE: dict[tuple[str, bytes], tuple[float, dict[str, int]]] = {}
_REVERSE_LOCK = threading.Lock()


def real_patients(target: WarehouseTarget, key: bytes, shown: Iterable[object]) -> list[int]:
    """The patients behind the pseudonyms an answer showed, for the audit's record of disclosures and
    the note scrubber's deny-list (server-side only; nothing here reaches the asker)."""
    wanted = {value for value in shown if isinstance(value, str)}
    direct = {value for value in shown if isinstance(value, int)}  # a profile that keeps real ids
    if not wanted:
        return sorted(direct)
    cache_key = (target.url, hashlib.sha256(key).digest())
    with _REVERSE_LOCK:
        cached = _REVERSE.get(cache_key)
    if cached is None or time.monotonic() - cached[0] > _REVERSE_SECONDS:
        rows = execute_readonly(
            "SELECT subject_id FROM patients", target=target, row_cap=50_000_000, max_result_bytes=10**10
        ).rows
        mapping = {pseudonym(key, "patient", row[0]) or "": int(str(row[0])) for row in rows}
        with _REVERSE_LOCK:
            if len(_REVERSE) > 32:
                _REVERSE.clear()
            _REVERSE[cache_key] = (time.monotonic(), mapping)
        cached = (time.monotonic(), mapping)
    return sorted(direct | {cached[1][value] for value in wanted if value in cached[1]})
