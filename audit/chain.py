"""The hash chain: canonical form and hash of an event, value cleaning, and verification of the store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections

from audit.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64

# Hash version 1 covers exactly these columns (attnames) plus nothing else; `hash` is the output.
# A field added later must not silently join this tuple (old events would stop verifying): add a
# nullable `hash_version` column then (null meaning 1) and a second tuple for the new version.
HASHED_FIELDS: tuple[str, ...] = (
    "seq",
    "prev_hash",
    "occurred_at",
    "kind",
    "status",
    "user_id",
    "username",
    "role",
    "attributes",
    "client_addr",
    "user_agent",
    "purpose_of_use",
    "breakglass_session_id",
    "question",
    "sql_generated",
    "sql_executed",
    "decision",
    "obligations",
    "policy_trace",
    "tables_touched",
    "columns_touched",
    "row_count",
    "patients_touched",
    "patients_touched_count",
    "message",
    "duration_ms",
    "details",
)

# The triggers migration 0002 installs; `audit_verify` fails when one is missing or disabled.
GUARD_TRIGGERS: dict[str, frozenset[str]] = {
    "postgresql": frozenset(
        {
            "audit_event_append_only",
            "audit_event_no_truncate",
            "audit_chain_head_guard",
            "audit_chain_head_no_truncate",
        }
    ),
    "sqlite": frozenset(
        {
            "audit_event_no_update",
            "audit_event_no_delete",
            "audit_chain_head_no_delete",
            "audit_chain_head_forward_only",
            "audit_chain_head_insert_check",
        }
    ),
}
AUDIT_TABLES = (AuditEvent._meta.db_table, AuditChainHead._meta.db_table)

# Floats at or above this are printed by Python with an exponent ("1e+16") but come back from
# PostgreSQL jsonb as plain integers; every float this large is integral, so store it as an int.
_FLOAT_EXPONENT_FROM = 1e16


def clean_str(value: str) -> str:
    """Make text storable on both databases: PostgreSQL refuses NUL and neither stores lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_text(value: str | None, limit: int) -> str:
    """Clean text and cap it at `limit` characters, saying so, so one absurd input cannot bloat the store."""
    text = clean_str(value or "")
    if len(text) <= limit:
        return text
    marker = f" … [truncated: {len(text)} characters in all]"
    return text[: max(0, limit - len(marker))] + marker


def _canonical_float(value: float) -> float | int | str:
    if math.isnan(value) or math.isinf(value):
        return str(value)  # JSON has no NaN or infinity; keep what it was as text
    if value == 0.0:
        return 0.0  # PostgreSQL numeric has no negative zero
    if abs(value) >= _FLOAT_EXPONENT_FROM:
        return int(value)
    return value


def clean_json(value: Any) -> Any:
    """A JSON value that both databases store and return unchanged, so that its hash survives storage.

    Dict keys become strings, tuples and sets lists (sets sorted), dataclasses and enums their
    values, dates/decimals/UUIDs Django's JSON text; anything else its str().
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return _canonical_float(value)
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, Mapping):
        return {clean_str(str(key)): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((clean_json(item) for item in value), key=_canonical_json)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return clean_json(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return clean_json(value.value)
    try:
        return clean_str(DjangoJSONEncoder().default(value))
    except TypeError:
        return clean_str(str(value))


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_timestamp(value: dt.datetime) -> str:
    """Microseconds in UTC: what both databases store, whatever the time zone it was given in."""
    if value.tzinfo is None:
        raise ValueError("Audit timestamps must be timezone-aware.")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(values: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers: every hashed field, as sorted-key compact JSON in UTF-8."""
    payload = {name: values[name] for name in HASHED_FIELDS}
    payload["occurred_at"] = canonical_timestamp(values["occurred_at"])
    return _canonical_json(payload).encode("utf-8")


def event_hash(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(values)).hexdigest()


ProblemKind = Literal[
    "edited",
    "broken_link",
    "reordered",
    "deleted",
    "truncated",
    "head_missing",
    "head_mismatch",
    "beyond_head",
    "unprotected",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing wrong with the store: which event (by seq), what kind of damage, in words."""

    seq: int | None
    kind: ProblemKind
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class ChainReport:
    events: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def _read_head(using: str) -> tuple[int, str] | None:
    return AuditChainHead.objects.using(using).filter(pk=1).values_list("seq", "hash").first()


def _check_event(values: Mapping[str, Any], prev_hash: str) -> ChainProblem | None:
    seq: int = values["seq"]
    hash_ok = event_hash(values) == values["hash"]
    link_ok = values["prev_hash"] == prev_hash
    before = "the genesis hash" if seq == 1 else f"the hash of event {seq - 1}"
    if hash_ok and link_ok:
        return None
    if link_ok:
        return ChainProblem(seq, "edited", f"event {seq} was edited: its contents no longer match its hash.")
    if hash_ok:
        return ChainProblem(
            seq,
            "broken_link",
            f"event {seq}'s prev_hash does not match {before}: the event before it was rewritten "
            "with a recomputed hash, or events were reordered.",
        )
    return ChainProblem(
        seq,
        "reordered",
        f"event {seq} is out of place: its contents do not match its hash and its prev_hash does not "
        f"match {before} (events reordered, moved or replaced).",
    )


def _iter_rows(using: str, chunk_size: int) -> Iterable[dict[str, Any]]:
    """Every event by seq, read in keyset-paginated chunks so memory stays flat for millions."""
    columns = (*HASHED_FIELDS, "hash")
    events = AuditEvent.objects.using(using).order_by("seq")
    last: int | None = None  # no lower bound at first: a forged seq below 1 must be seen too
    while True:
        page = events if last is None else events.filter(seq__gt=last)
        chunk = list(page.values_list(*columns)[:chunk_size])
        if not chunk:
            return
        for row in chunk:
            yield dict(zip(columns, row, strict=True))
        last = chunk[-1][0]


def missing_guards(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Names of append-only triggers that are absent or disabled on this database."""
    connection = connections[using]
    expected = GUARD_TRIGGERS.get(connection.vendor)
    if expected is None:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # 'O' and 'A' fire in normal (origin) sessions; 'D' is disabled, 'R' replica-only.
            cursor.execute(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') "
                "AND c.relname = ANY(%s) AND c.relnamespace = to_regnamespace(current_schema())",
                [list(AUDIT_TABLES)],
            )
        else:
            placeholders = ", ".join(["%s"] * len(AUDIT_TABLES))
            cursor.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({placeholders})",
                list(AUDIT_TABLES),
            )
        present = {row[0] for row in cursor.fetchall()}
    return sorted(expected - present)


def verify_chain(*, chunk_size: int = 5_000, using: str = DEFAULT_DB_ALIAS) -> ChainReport:
    """Walk every event by seq, recompute hashes and links, and compare the tail with the head.

    No long transaction is held, so appends continue meanwhile: the head is read before the walk
    (every event up to it was committed with it, so a shortfall is a truncation) and again after
    (every event found must be covered by it, or something appended around the service).
    """
    head_before = _read_head(using)
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    hash_at_head: str | None = None
    for values in _iter_rows(using, chunk_size):
        seq: int = values["seq"]
        if seq < expected_seq:
            detail = f"event {seq} has a sequence number below 1, where no event may be."
            return _report(count, 0, prev_hash, ChainProblem(seq, "reordered", detail))
        if seq > expected_seq:
            gap = f"event {expected_seq}" if seq == expected_seq + 1 else f"events {expected_seq}-{seq - 1}"
            detail = f"{gap} missing (deleted); the chain resumes at event {seq}."
            return _report(count, expected_seq - 1, prev_hash, ChainProblem(expected_seq, "deleted", detail))
        problem = _check_event(values, prev_hash)
        if problem is not None:
            return _report(count, seq - 1, prev_hash, problem)
        prev_hash = values["hash"]
        count += 1
        expected_seq = seq + 1
        if head_before is not None and seq == head_before[0]:
            hash_at_head = prev_hash
    last_seq = expected_seq - 1
    head_after = _read_head(using)
    problem = _check_tail(last_seq, head_before, head_after, hash_at_head)
    if problem is None:
        unprotected = missing_guards(using)
        if unprotected:
            problem = ChainProblem(
                None,
                "unprotected",
                "the chain is intact but the database no longer refuses changes to it: trigger(s) "
                f"{', '.join(unprotected)} missing or disabled (re-run the audit migration).",
            )
    return _report(count, last_seq, prev_hash, problem)


def _check_tail(
    last_seq: int,
    head_before: tuple[int, str] | None,
    head_after: tuple[int, str] | None,
    hash_at_head: str | None,
) -> ChainProblem | None:
    if head_before is not None and last_seq < head_before[0]:
        first = last_seq + 1
        which = f"event {first} is" if first == head_before[0] else f"events {first}-{head_before[0]} are"
        return ChainProblem(
            first,
            "truncated",
            f"the chain head records {head_before[0]} events but only {last_seq} are present: "
            f"{which} missing (truncated).",
        )
    if head_before is not None and hash_at_head != head_before[1]:
        return ChainProblem(
            head_before[0],
            "head_mismatch",
            f"event {head_before[0]}'s hash differs from the one the chain head recorded: "
            "the newest events were rewritten.",
        )
    if last_seq > 0 and head_after is None:
        return ChainProblem(
            1, "head_missing", f"{last_seq} events are present but the chain head row is missing."
        )
    covered = head_after[0] if head_after is not None else 0
    if last_seq > covered:
        return ChainProblem(
            covered + 1,
            "beyond_head",
            f"events {covered + 1}-{last_seq} lie beyond the chain head (seq {covered}): "
            "they were written around the audit service.",
        )
    return None


def _report(count: int, head_seq: int, head_hash: str, problem: ChainProblem | None) -> ChainReport:
    return ChainReport(events=count, head_seq=head_seq, head_hash=head_hash, problem=problem)
