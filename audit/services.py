"""Writes to the audit store: `audit_record` appends one event to the hash chain, `audit_record_many` many."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from audit.chain import GENESIS_HASH, HASHED_FIELDS, clean_json, clean_str, clean_text, event_hash
from audit.models import AuditEvent, EventDecision, EventKind, EventStatus
from hisplatform.models import ResearchProject

# Names the first-append lock among PostgreSQL advisory locks of this database ("audit" in ASCII);
# nothing else may take it.
PG_APPEND_LOCK = 0x6175646974
# Text beyond this many characters is cut, with a note: a 50 MB "question" must still be recorded,
# but must not become a 50 MB audit row. Long enough for any real question, SQL or error.
TEXT_LIMIT = 100_000

UserLike = AbstractBaseUser | AnonymousUser
_P = ParamSpec("_P")
# Longer values are cut rather than refused: an event must be recorded whatever came in.
_CHAR_LIMITS = {
    field.name: field.max_length
    for field in AuditEvent._meta.fields
    if isinstance(field, models.CharField) and field.max_length is not None
}


class AuditChainError(RuntimeError):
    """The store could not be appended to consistently; nothing was written."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One event to record: the keyword arguments of `audit_record`, and the items of a batch.

    No time field: the service stamps `occurred_at` itself, under the append lock.
    """

    user: UserLike | None
    kind: str
    status: str
    username: str | None = None
    role: str | None = None
    attributes: Mapping[str, Any] | None = None
    client_addr: str = ""
    user_agent: str = ""
    purpose_of_use: str = ""
    breakglass_session_id: int | None = None
    question: str = ""
    sql_generated: str = ""
    sql_executed: str = ""
    decision: str = EventDecision.NONE
    obligations: Any = None
    policy_trace: Any = None
    tables_touched: Iterable[str] = ()
    columns_touched: Iterable[str] = ()
    row_count: int | None = None
    patients_touched: Iterable[int] = ()
    patients_touched_count: int | None = None
    message: str = ""
    duration_ms: float | None = None
    details: Mapping[str, Any] | None = None


def _called_with_fields_of(
    make_entry: Callable[_P, AuditEntry],
) -> Callable[[Callable[[AuditEntry], AuditEvent]], Callable[_P, AuditEvent]]:
    """Give a function of one entry the entry's own keyword arguments, typed from the dataclass.

    AuditEntry stays the only place the fields are written: a field added there is accepted by
    `audit_record` at once, with its type checked by mypy at every call.
    """

    def decorate(record: Callable[[AuditEntry], AuditEvent]) -> Callable[_P, AuditEvent]:
        @functools.wraps(record)
        def with_fields(*args: _P.args, **kwargs: _P.kwargs) -> AuditEvent:
            return record(make_entry(*args, **kwargs))

        # help() and editors show the fields, not the wrapped function's single `entry`.
        with_fields.__signature__ = inspect.signature(make_entry).replace(  # type: ignore[attr-defined]
            return_annotation=AuditEvent.__name__
        )
        return with_fields

    return decorate


@_called_with_fields_of(AuditEntry)
def audit_record(entry: AuditEntry) -> AuditEvent:
    """Append one event to the chain and return it (its `pk` is its `seq`); takes AuditEntry's fields.

    `username`, `role` and `attributes` default to a snapshot of the user's account and staff
    profile now; pass them when the caller already holds the subject (saves two queries). Unknown
    `kind`, `status` or `decision` raise ValueError. The time is never the caller's: it is stamped
    under the append lock, so seq order is time order (across hosts, as far as their clocks agree).
    Safe inside an outer transaction and from any number of threads and processes; inside one, the
    append lock is held until the outer commit, so record late in the transaction. If the outer
    transaction rolls back, so does the event. On PostgreSQL the transaction must be READ COMMITTED
    (Django's default): under REPEATABLE READ a concurrent append makes the head lock fail with a
    serialization error. Outside any transaction, the event is appended together with those of
    concurrent requests in this process (audit.appender, AUDIT_GROUP_COMMIT): it is stored when this
    returns, as always, but shares its disk flush.
    """
    prepared = _prepare(entry)
    if settings.AUDIT_GROUP_COMMIT and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
        from audit.appender import append_grouped

        event = append_grouped(prepared)
        if settings.AUDIT_SCORE_ON_COMMIT:
            _queue_scoring([event.seq])  # here, not in the appender: scoring must never hold up appends
        return event
    return append_prepared([prepared])[0]


def audit_record_many(*, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append several events in order, under one lock and one commit: the bulk path (imports, benchmarks)."""
    return append_prepared([_prepare(entry) for entry in entries])


def append_prepared(prepared: list[dict[str, Any]], *, queue_scoring: bool = True) -> list[AuditEvent]:
    """Append checked, cleaned events (`_prepare`'s output) in order, under one lock and one commit."""
    if not prepared:
        return []
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with transaction.atomic(using=connection.alias):
            head = _lock_head(connection)
            events = _append(connection, head, prepared)
            if settings.AUDIT_SCORE_ON_COMMIT and queue_scoring:
                seqs = [event.seq for event in events]
                # After the outermost commit: an event the caller rolls back is never scored.
                transaction.on_commit(lambda: _queue_scoring(seqs), using=connection.alias)
            return events
    except IntegrityError as exc:
        # UNIQUE(seq) or UNIQUE(prev_hash) refused a fork: someone wrote around the lock.
        raise AuditChainError(f"The audit chain refused the append ({exc}); run audit_verify.") from exc


def _queue_scoring(seqs: list[int]) -> None:
    from audit.pipeline import enqueue_scoring  # the pipeline reads the warehouse; loaded on first use

    enqueue_scoring(seqs)


_HEAD_FOR_UPDATE = "SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE"


def _lock_head(connection: BaseDatabaseWrapper) -> tuple[int, str] | None:
    """Take the append lock and read the chain head that the previous appender committed.

    PostgreSQL: the head row's lock is the append lock. In READ COMMITTED, SELECT ... FOR UPDATE
    waits for the holder to commit and then returns the row as committed, so lock and read are one
    round trip (an advisory lock followed by a SELECT would be two). Before the first event there
    is no row to lock: appenders then serialise on an advisory lock and read again.
    SQLite: BEGIN IMMEDIATE already took the database's write lock.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_HEAD_FOR_UPDATE)
            row = cursor.fetchone()
            if row is None:
                # Transaction-scoped: released at commit or rollback, never leaked by an error path.
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_APPEND_LOCK])
                cursor.execute(_HEAD_FOR_UPDATE)
                row = cursor.fetchone()
        elif connection.vendor == "sqlite":
            # A deferred transaction would read the head unlocked and then fail to upgrade to a
            # write ("database is locked") when two appenders meet.
            if connection.settings_dict.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE":
                raise ImproperlyConfigured("The audit store needs SQLite transaction_mode 'IMMEDIATE'.")
            cursor.execute("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
            row = cursor.fetchone()
        else:
            raise ImproperlyConfigured(f"The audit store does not support {connection.vendor}.")
    return None if row is None else (int(row[0]), str(row[1]))


def _append(
    connection: BaseDatabaseWrapper, head: tuple[int, str] | None, prepared: list[dict[str, Any]]
) -> list[AuditEvent]:
    if head is None:
        # No head: a fresh store, unless events exist, which means the head row was removed.
        if AuditEvent.objects.using(connection.alias).exists():
            raise AuditChainError("The audit chain head is missing while events exist; run audit_verify.")
        seq, prev_hash = 0, GENESIS_HASH
    else:
        seq, prev_hash = head
    # Stamped under the lock, so seq order and time order agree.
    now = timezone.now()
    for values in prepared:
        seq += 1
        values["seq"] = seq
        values["prev_hash"] = prev_hash
        values["occurred_at"] = now
        prev_hash = values["hash"] = event_hash(values)
    _insert(connection, prepared)
    with connection.cursor() as cursor:
        if head is None:
            sql = "INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, %s, %s)"
        else:
            sql = "UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id = 1"
        cursor.execute(sql, [seq, prev_hash])
    return [_as_event(connection, values) for values in prepared]


_COLUMNS = (*HASHED_FIELDS, "hash")
_OCCURRED_AT = _COLUMNS.index("occurred_at")
_JSON_COLUMNS = frozenset(
    field.attname for field in AuditEvent._meta.concrete_fields if isinstance(field, models.JSONField)
)


def _insert(connection: BaseDatabaseWrapper, rows: list[dict[str, Any]]) -> None:
    """Write the rows without the ORM, whose bulk_create costs ~200 µs a row here.

    Several rows on PostgreSQL: COPY (~25 µs a row; a multi-row INSERT costs ~200). One row, or
    SQLite: a plain INSERT. Values are already clean (see _prepare), so only JSON and, on SQLite,
    timestamps need adapting.
    """
    columns = ", ".join(connection.ops.quote_name(column) for column in _COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) > 1:
            with cursor.cursor.copy(f"COPY audit_event ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(_db_values(row))
            return
        adapt_time = connection.ops.adapt_datetimefield_value
        params = []
        for row in rows:
            values = _db_values(row)
            values[_OCCURRED_AT] = adapt_time(row["occurred_at"])
            params.append(values)
        sql = f"INSERT INTO audit_event ({columns}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)


def _db_values(row: dict[str, Any]) -> list[Any]:
    dumps = json.dumps
    return [
        dumps(row[column], ensure_ascii=False, allow_nan=False) if column in _JSON_COLUMNS else row[column]
        for column in _COLUMNS
    ]


def _as_event(connection: BaseDatabaseWrapper, values: dict[str, Any]) -> AuditEvent:
    event = AuditEvent(**values)
    # As if loaded from the database: a stray save() is then an UPDATE, which the database refuses.
    event._state.adding = False
    event._state.db = connection.alias
    return event


def _prepare(entry: AuditEntry) -> dict[str, Any]:
    """Validate and clean an entry into column values, all before the lock is taken."""
    _require_choice("kind", entry.kind, EventKind.values)
    _require_choice("status", entry.status, EventStatus.values)
    _require_choice("decision", entry.decision, EventDecision.values)
    user_id, username, role, attributes = _actor(entry)
    patients = sorted({_subject_id(value) for value in entry.patients_touched})
    patients_count = len(patients) if entry.patients_touched_count is None else entry.patients_touched_count
    if patients_count < len(patients):
        raise ValueError("patients_touched_count cannot be smaller than the patients listed.")
    if entry.row_count is not None and entry.row_count < 0:
        raise ValueError("row_count cannot be negative.")
    return {
        "kind": entry.kind,
        "status": entry.status,
        "user_id": user_id,
        "username": _char("username", username),
        "role": _char("role", role),
        "attributes": clean_json(attributes),
        "client_addr": _client_addr(entry.client_addr),
        "user_agent": _char("user_agent", entry.user_agent),
        "purpose_of_use": _char("purpose_of_use", entry.purpose_of_use.strip().upper()),
        "breakglass_session_id": entry.breakglass_session_id,
        "question": clean_text(entry.question, TEXT_LIMIT),
        "sql_generated": clean_text(entry.sql_generated, TEXT_LIMIT),
        "sql_executed": clean_text(entry.sql_executed, TEXT_LIMIT),
        "decision": entry.decision,
        "obligations": clean_json(entry.obligations if entry.obligations is not None else {}),
        "policy_trace": clean_json(entry.policy_trace if entry.policy_trace is not None else {}),
        "tables_touched": sorted({clean_str(name) for name in entry.tables_touched}),
        "columns_touched": sorted({clean_str(name) for name in entry.columns_touched}),
        "row_count": entry.row_count,
        "patients_touched": patients,
        "patients_touched_count": patients_count,
        "message": clean_text(entry.message, TEXT_LIMIT),
        # Microsecond resolution; a float survives both databases exactly, an int would come back 5.0.
        "duration_ms": None if entry.duration_ms is None else round(max(0.0, float(entry.duration_ms)), 3),
        "details": clean_json(entry.details if entry.details is not None else {}),
    }


def _actor(entry: AuditEntry) -> tuple[int | None, str, str, Any]:
    """Who acted, as they were at this moment: user id, username, role and subject attributes."""
    user = entry.user
    if user is None or not user.is_authenticated:
        return None, entry.username or "", entry.role or "", entry.attributes or {}
    username = entry.username if entry.username is not None else user.get_username()
    role, attributes = entry.role, entry.attributes
    if role is None or attributes is None:
        profile = getattr(user, "profile", None)
        if role is None:
            role = profile.role if profile is not None else ""
        if attributes is None:
            attributes = _snapshot_attributes(user, profile)
    return user.pk, username, role, attributes


def _snapshot_attributes(user: AbstractBaseUser, profile: Any) -> dict[str, Any]:
    today = timezone.localdate()
    projects = ResearchProject.objects.filter(
        members__pk=user.pk, approved_on__isnull=False, approved_on__lte=today, expires_on__gte=today
    ).order_by("code")
    return {
        "department": profile.department if profile is not None else "",
        "staff_id": profile.staff_id if profile is not None else None,
        "projects": list(projects.values_list("code", flat=True)),
    }


def _require_choice(name: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        raise ValueError(f"Unknown audit {name} {value!r}; expected one of {', '.join(allowed)}.")


def _char(field: str, value: str) -> str:
    return clean_str(value)[: _CHAR_LIMITS[field]]


def _client_addr(value: str) -> str:
    """An IP address in its canonical form; anything else kept as given (e.g. 'cli'), cut to fit."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return _char("client_addr", value)


def _subject_id(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"patients_touched holds subject_ids (integers), not {value!r}.")
