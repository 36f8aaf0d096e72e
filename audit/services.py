"""Writes to the audit store: `audit_record` appends one event to the hash chain, `audit_record_many` many,
`audit_access_record` one read of the trail itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, ParamSpec

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from audit.chain import GENESIS_HASH, HASHED_FIELDS, clean_json, clean_str, clean_text, event_hash
from audit.models import AuditEvent, EventDecision, EventKind, EventStatus
from hisplatform.models import ResearchProject

logger = logging.getLogger(__name__)

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


def audit_access_record(
    *,
    user: UserLike | None,
    what: str,
    details: Mapping[str, Any] | None = None,
    status: str = EventStatus.OK,
    username: str | None = None,
    client_addr: str = "",
    user_agent: str = "",
) -> AuditEvent:
    """Record a read of the audit trail, or a refused attempt at one (`status` denied).

    Reading the trail is itself audited (security staff are watched too), from every door: the
    console, the admin, the commands and the reports. `what` is the event's message, as written;
    `username` names a reader without an account (the system, or a name typed at a command).
    """
    if status not in (EventStatus.OK, EventStatus.DENIED):
        raise ValueError(f"An audit read is ok or denied, not {status!r}.")
    return audit_record(
        user=user,
        username=username,
        kind=EventKind.AUDIT_ACCESS,
        status=status,
        message=what,
        client_addr=client_addr,
        user_agent=user_agent,
        details=dict(details) if details is not None else {},
    )


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


# ------------------------------------------------------------------------------ verifying from the console


class AuditReadError(Exception):
    """A read of the audit trail, or a request about it, that is refused; `code` is stable, `message` is
    for the person."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# Where the console reads the last verification and whether one is running: the cache, which the web
# processes and the Celery workers share (settings require Redis for both once a worker runs). A lost
# cache loses only this note; every verification is also an audit event.
VERIFICATION_LAST_KEY: Final = "audit:chain_verification:last"
VERIFICATION_RUNNING_KEY: Final = "audit:chain_verification:running"
# The verification task's time limit (audit.tasks): a running mark older than this is a dead worker's,
# and must not refuse the next request forever.
VERIFY_TIME_LIMIT: Final = 3600
SYSTEM_VERIFIER: Final = "system"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ChainVerification:
    """One verification of the chain and its signed checkpoints, as `manage.py audit_verify` does it.

    `ok` is True (intact), False (broken, or failing its checkpoints) or None (running, or it could not
    be run at all: see `summary`).
    """

    requested_by: str
    requested_at: dt.datetime
    finished_at: dt.datetime | None = None
    ok: bool | None = None
    events: int = 0
    first_bad_seq: int | None = None
    problem: str = ""  # the kind of damage ("edited", "gap", "stale", ...); "" when intact
    summary: str = ""  # audit_verify's verdict in one sentence
    lines: tuple[str, ...] = ()  # its other lines: the checkpoints, warnings

    def as_cache(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["requested_at"] = self.requested_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["lines"] = list(self.lines)
        return data

    @classmethod
    def from_cache(cls, data: Any) -> ChainVerification | None:
        """Rebuild what `as_cache` stored; anything else (an older shape, garbage) reads as nothing."""
        if not isinstance(data, dict):
            return None
        try:
            finished = data.get("finished_at")
            return cls(
                requested_by=str(data["requested_by"]),
                requested_at=dt.datetime.fromisoformat(data["requested_at"]),
                finished_at=dt.datetime.fromisoformat(finished) if finished else None,
                ok=data.get("ok"),
                events=int(data.get("events") or 0),
                first_bad_seq=data.get("first_bad_seq"),
                problem=str(data.get("problem") or ""),
                summary=str(data.get("summary") or ""),
                lines=tuple(str(line) for line in data.get("lines") or ()),
            )
        except (KeyError, TypeError, ValueError):
            return None


def chain_verification_last() -> tuple[ChainVerification | None, ChainVerification | None]:
    """The last finished verification and the one running now, each None if there is none."""
    found = cache.get_many([VERIFICATION_LAST_KEY, VERIFICATION_RUNNING_KEY])
    return (
        ChainVerification.from_cache(found.get(VERIFICATION_LAST_KEY)),
        ChainVerification.from_cache(found.get(VERIFICATION_RUNNING_KEY)),
    )


def chain_verification_request(
    *, requested_by: AbstractBaseUser, client_addr: str = "", user_agent: str = ""
) -> ChainVerification:
    """Queue a verification (after commit; in-process when Celery is eager) and return its running mark.

    Security officers only (a refusal is recorded); one verification at a time: while one runs, another
    request is refused with AuditReadError "running", since a second walk would only say the same.
    """
    from audit.alerts import is_security_officer  # audit.alerts imports this module

    if not isinstance(requested_by, User) or not is_security_officer(requested_by):
        audit_access_record(
            user=requested_by,
            status=EventStatus.DENIED,
            what="refused: audit chain verification asked for",
            details={"view": "chain", "code": "role"},
            client_addr=client_addr,
            user_agent=user_agent,
        )
        raise AuditReadError("Only the privacy office verifies the audit chain.", code="role")
    running = ChainVerification(requested_by=requested_by.get_username(), requested_at=timezone.now())
    # add() sets the mark only if none is there: of two officers clicking at once, one starts a walk.
    if not cache.add(VERIFICATION_RUNNING_KEY, running.as_cache(), timeout=VERIFY_TIME_LIMIT):
        current = ChainVerification.from_cache(cache.get(VERIFICATION_RUNNING_KEY)) or running
        raise AuditReadError(
            f"A verification asked for by {current.requested_by} at {_utc(current.requested_at)} UTC is "
            "still running; its outcome will show here when it ends.",
            code="running",
        )
    user_id = requested_by.pk
    transaction.on_commit(lambda: _queue_verification(user_id, client_addr, user_agent))
    return running


def _queue_verification(user_id: int, client_addr: str, user_agent: str) -> None:
    from audit.tasks import chain_verify_task

    args = (user_id, client_addr, user_agent)
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            chain_verify_task.apply(args=args)  # in-process (make demo, tests): no broker to touch
        else:
            # retry=False: with the broker down, say so at once rather than hold the officer's request.
            chain_verify_task.apply_async(args=args, retry=False)
    except Exception as error:  # the broker's or the eager task's error, whatever it is
        logger.exception("Audit chain verification could not be run.")
        running = ChainVerification.from_cache(cache.get(VERIFICATION_RUNNING_KEY))
        cache.delete(VERIFICATION_RUNNING_KEY)
        failed = ChainVerification(
            requested_by=running.requested_by if running else SYSTEM_VERIFIER,
            requested_at=running.requested_at if running else timezone.now(),
            finished_at=timezone.now(),
            ok=None,
            problem="not_run",
            summary=(
                f"The verification could not be run ({type(error).__name__}): the task queue or the "
                "database did not answer. Try again, or run manage.py audit_verify on the server."
            ),
        )
        cache.set(VERIFICATION_LAST_KEY, failed.as_cache(), timeout=None)


def audit_chain_verify(
    *, requested_by_id: int | None, client_addr: str = "", user_agent: str = "", chunk_size: int = 5_000
) -> ChainVerification:
    """Verify the chain and its checkpoints, keep the outcome where the console reads it, and record it.

    The checks and their verdicts are `manage.py audit_verify`'s: every event's hash and link, the head,
    the append-only guards, the signed checkpoints, the log kept outside the database, a stale tail.
    The outcome is recorded as an audit read by whoever asked (the system when nobody did).
    """
    requester = User.objects.filter(pk=requested_by_id).first() if requested_by_id is not None else None
    running = ChainVerification.from_cache(cache.get(VERIFICATION_RUNNING_KEY))
    started = running.requested_at if running is not None else timezone.now()
    try:
        check = audit_chain_check(chunk_size=chunk_size)
    finally:
        cache.delete(VERIFICATION_RUNNING_KEY)
    outcome = ChainVerification(
        requested_by=requester.get_username() if requester is not None else SYSTEM_VERIFIER,
        requested_at=started,
        finished_at=timezone.now(),
        ok=check.ok,
        events=check.events,
        first_bad_seq=check.first_bad_seq,
        problem=check.problem,
        summary=check.verdict,
        lines=check.lines,
    )
    cache.set(VERIFICATION_LAST_KEY, outcome.as_cache(), timeout=None)
    try:
        audit_access_record(
            user=requester,
            username=None if requester is not None else SYSTEM_VERIFIER,
            what=f"audit chain verified: {check.verdict}",
            details={
                "view": "chain",
                "verification": {
                    "ok": check.ok,
                    "problem": check.problem,
                    "first_bad_seq": check.first_bad_seq,
                    "events": check.events,
                },
            },
            client_addr=client_addr,
            user_agent=user_agent,
        )
    except (AuditChainError, DatabaseError):
        # A store too damaged to append to is exactly what the outcome above reports; it stands.
        logger.exception("The audit chain verification could not be recorded.")
    return outcome


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ChainCheck:
    """What `manage.py audit_verify` concludes, in its words: `verdict` is its one-line finding (the
    error it exits 1 with, or the chain's line when intact), `lines` the other lines it prints."""

    ok: bool
    problem: str = ""  # the kind of damage ("edited", "deleted", "rewritten", "stale", ...)
    first_bad_seq: int | None = None  # the first event the hash chain finds bad; None for the rest
    events: int = 0  # events verified (before the first bad one)
    verdict: str = ""
    lines: tuple[str, ...] = ()
    reason: str = ""  # the database's own words, when reading the store failed


# Beat signs every 15 minutes: events unsigned for four times that mean checkpoints have stopped, or
# that the newest were deleted (which nothing in the database alone can tell apart).
STALE_AFTER = dt.timedelta(hours=1)


def audit_chain_check(*, chunk_size: int = 5_000) -> ChainCheck:
    """Verify the chain, the append-only guards, the signed checkpoints, the log kept outside the database
    and the unsigned tail, stopping at the first problem, as `manage.py audit_verify` does."""
    from audit.chain import verify_chain
    from audit.checkpoints import anchor_problem, verify_checkpoints

    try:
        chain = verify_chain(chunk_size=chunk_size)
    except DatabaseError as error:
        reason = _reason(error)
        return ChainCheck(
            ok=False, problem="database", verdict=f"Could not read the audit chain: {reason}.", reason=reason
        )
    found, events = chain.problem, chain.events
    if found is not None and found.kind == "unprotected":
        verdict = f"Audit chain intact ({events} events), UNPROTECTED: {found.detail}"
        return ChainCheck(ok=False, problem=found.kind, events=events, verdict=verdict)
    if found is not None:
        where = f"event seq {found.seq}" if found.seq is not None else "the store"
        verdict = (
            f"Audit chain BROKEN at {where} ({found.kind}): {found.detail} "
            f"{events} events verified before it."
        )
        return ChainCheck(
            ok=False, problem=found.kind, first_bad_seq=found.seq, events=events, verdict=verdict
        )
    if events == 0:
        intact = "Audit chain intact: 0 events (the store is empty)."
    else:
        intact = f"Audit chain intact: {events} events, head {chain.head_hash[:16]} (seq {chain.head_seq})."
    try:
        signed = verify_checkpoints(chunk_size=chunk_size)
        failed = signed.problem
        anchored = anchor_problem() if failed is None else None
    except DatabaseError as error:
        reason = _reason(error)
        verdict = f"Could not read the audit checkpoints: {reason}."
        return ChainCheck(
            ok=False,
            problem="checkpoint_database",
            events=events,
            verdict=verdict,
            lines=(intact,),
            reason=reason,
        )
    if failed is not None and failed.kind in ("no_key", "key_error"):
        verdict = f"Cannot verify checkpoints: {failed.detail}"
        return ChainCheck(ok=False, problem=failed.kind, events=events, verdict=verdict, lines=(intact,))
    if failed is not None:
        before = "No checkpoint verified before it"
        if signed.verified:
            before = (
                f"{_count(signed.verified, 'signed checkpoint')} verified before it "
                f"(events 1-{signed.covered_to:,})"
            )
        verdict = f"Audit checkpoints FAIL at {failed.checkpoint} ({failed.kind}): {failed.detail} {before}."
        return ChainCheck(ok=False, problem=failed.kind, events=events, verdict=verdict, lines=(intact,))
    covered = _checkpoint_line(signed.total, signed.covered_to, chain.head_seq)
    if anchored is not None:
        verdict = f"Audit checkpoints FAIL against the log kept outside the database: {anchored}"
        return ChainCheck(ok=False, problem="anchor", events=events, verdict=verdict, lines=(intact, covered))
    lines = (covered, *(f"Warning: {warning}" for warning in signed.warnings))
    since = signed.first_unsigned_at
    unsigned = chain.head_seq - signed.covered_to
    if signed.total and unsigned > 0 and since is not None and timezone.now() - since > STALE_AFTER:
        verdict = (
            f"Audit checkpoints STALE: event {signed.covered_to + 1:,} and later (since {_utc(since)} UTC) "
            "are in no signed checkpoint although checkpoints are being made: the audit.checkpoint task has "
            "stopped, or the newest checkpoints were deleted. Compare with the roots logged outside the "
            "database."
        )
        return ChainCheck(ok=False, problem="stale", events=events, verdict=verdict, lines=(intact, *lines))
    return ChainCheck(ok=True, events=events, verdict=intact, lines=lines)


def _checkpoint_line(total: int, covered_to: int, head_seq: int) -> str:
    unsigned = max(0, head_seq - covered_to)
    if total == 0:
        tail = "; the events are covered by the hash chain only." if unsigned else "."
        return f"Checkpoints: no signed checkpoints yet{tail}"
    verify = "verifies" if total == 1 else "verify"
    events = "event 1" if covered_to == 1 else f"events 1-{covered_to:,}"
    tail = "."
    if unsigned:
        verb = "is" if unsigned == 1 else "are"
        tail = f"; {_count(unsigned, 'newer event')} {verb} covered by the hash chain only."
    return f"Checkpoints: {_count(total, 'signed checkpoint')} {verify}, covering {events}{tail}"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _utc(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M}"
