"""The one pipeline every question takes: understand, compile, decide, rewrite, execute, disclose,
record, respond. The web page, the REST API and the `ask` command all call `answer_question`."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import logging
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F
from django.utils import timezone
from sqlglot import exp

from accessctl.decision import DEFAULT_PURPOSE, Decision, decide
from accessctl.disclose import (
    PATIENTS_PREFIX,
    QUASI_IDENTIFIERS,
    SUBJECT_PREFIX,
    AggregateShape,
    DisclosureRefused,
    RowColumns,
    attach_subjects,
    check_research_rows,
    check_scrubbed_text,
    is_aggregate_query,
    prepare_aggregate,
    refuse_named_patients,
    refuse_ordinals,
    row_columns,
    top_coded,
)
from accessctl.masks import DESCRIPTIONS, KEYED_KINDS
from accessctl.models import BreakGlassSession, Purpose, PurposeConfirmation
from accessctl.privacy import MECHANISM, noisy_counts
from accessctl.profiles import scrubbed_columns
from accessctl.pseudonyms import project_key, real_patients
from accessctl.readpolicy import Catalog, catalog_of, column_classes, read_policy, scope_spec
from accessctl.rewrite import RESERVED_PREFIX, Inspected, SqlRefused, inspect, rewrite
from accessctl.scope import SCOPE_CTE, scope_sql
from accessctl.sdc import QI, Aggregate, k_anonymise, suppress_small_cells
from accessctl.services import AccessError, privacy_budget_spend
from accessctl.special import CODED_TABLES, categories_of
from accessctl.special import describe as describe_categories
from accessctl.subjects import Subject, subject_for
from audit.models import EventDecision, EventKind, EventStatus
from audit.services import audit_record
from hisplatform.models import Role
from hisplatform.warehouse.executor import QueryResult, WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseConfigError, WarehouseTarget, warehouse_target
from nlquery.engine import MAX_QUESTION_CHARS, compile_sql, plan_question
from nlquery.families import CompileError
from nlquery.plan import QueryPlan, Unanswerable

logger = logging.getLogger(__name__)

ANSWERED: Final = "answered"
ABSTAINED: Final = "abstained"
DENIED: Final = "denied"
ERROR: Final = "error"
# Roles whose answers include the SQL that was generated; the others get null.
_SEES_SQL: Final = frozenset({"clinician", "nurse", "department_head", "researcher"})
_NOW_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


@dataclass
class Answer:
    """What the asker gets back; `as_dict` is the JSON object of `ask --json` and `POST /api/v1/ask`."""

    status: str
    message: str
    code: str = ""
    interpretation: str = ""
    sql: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    masked: dict[str, str] = field(default_factory=dict)
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    confirm_required: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    purpose: str = ""
    # How the answer was protected beyond masks: lane, research project, k, the re-identification
    # risk of research rows, generalisations (empty for identified answers).
    disclosure: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    audit_event: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    """What the pipeline learned on the way, for the answer and the audit event."""

    question: str
    subject: Subject
    purpose: str = ""
    project: str = ""  # the research project asked under (as requested; checked in _run_sql)
    kind: str = EventKind.QUESTION  # or EXPORT: what the audit event records
    # An export with pseudonyms of its own: the batch their key is derived for ("" for the project's).
    pseudonym_batch: str = ""
    started: float = field(default_factory=time.perf_counter)
    decision: Decision | None = None
    sql_generated: str = ""
    sql_executed: str = ""
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    row_count: int | None = None
    patients: list[int] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def answer_question(
    *,
    user: AbstractBaseUser | AnonymousUser,
    question: str,
    purpose: str | None = None,
    confirm_special: bool = False,
    now: dt.datetime | None = None,
    target: WarehouseTarget | None = None,
    client_addr: str = "",
    user_agent: str = "",
    channel: str = "api",
    project: str | None = None,
) -> Answer:
    """Answer one question for one user, as policy allows; every outcome is one audit event.

    `now` fixes the moment for everything time-dependent (tests, replaying a question); without it
    the clock decides break-glass expiry and project dates, and NLQ_NOW (else the clock) what
    "current" and "recent" mean in the warehouse. The answer is returned only after its audit event
    is written; if that fails, nothing is shown.
    """
    text = question if isinstance(question, str) else ""
    return _pipeline(
        user=user,
        question=text,
        channel=channel,
        purpose=purpose,
        now=now,
        client=(client_addr, user_agent),
        body=lambda run: _after_breakglass(run, _answer(run, confirm_special, target)),
        project=project,
    )


@dataclass(frozen=True)
class Export:
    """An answer as a CSV file, and the answer itself (why nothing was exported, when nothing was)."""

    answer: Answer
    csv: str | None  # None unless the answer was answered
    filename: str


def export_answer(
    *,
    user: AbstractBaseUser | AnonymousUser,
    question: str,
    purpose: str | None = None,
    project: str | None = None,
    confirm_special: bool = False,
    fresh_pseudonyms: bool = False,
    now: dt.datetime | None = None,
    target: WarehouseTarget | None = None,
    client_addr: str = "",
    user_agent: str = "",
    channel: str = "api",
) -> Export:
    """Answer a question as a CSV export: the same pipeline and controls as `answer_question`,
    recorded in the audit trail as an export with the file's SHA-256 (a copy found later can be
    traced to it). `fresh_pseudonyms`: research pseudonyms and date shifts keyed for this export
    alone, so nothing links its rows to any other answer or export."""
    text = question if isinstance(question, str) else ""
    batch = uuid.uuid4().hex[:16] if fresh_pseudonyms else ""
    files: list[str] = []

    def body(run: _Run) -> Answer:
        answer = _after_breakglass(run, _answer(run, confirm_special, target))
        if answer.status == ANSWERED:
            content = answer_csv(answer)
            files.append(content)
            run.details["export"] = {
                "format": "csv",
                "rows": len(answer.rows),
                "sha256": hashlib.sha256(content.encode()).hexdigest(),
                "fresh_pseudonyms": fresh_pseudonyms,
                "pseudonym_batch": batch,
            }
        return answer

    answer = _pipeline(
        user=user,
        question=text,
        channel=channel,
        purpose=purpose,
        now=now,
        client=(client_addr, user_agent),
        body=body,
        project=project,
        kind=EventKind.EXPORT,
        pseudonym_batch=batch,
    )
    shown = files[0] if files and answer.status == ANSWERED else None
    stamp = (now or timezone.now()).strftime("%Y%m%d-%H%M%S")
    return Export(answer, shown, f"answer-{answer.audit_event or 'none'}-{stamp}.csv")


# A cell a spreadsheet would read as a formula (CSV injection): written with a leading apostrophe.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def answer_csv(answer: Answer) -> str:
    """The answer's columns and rows as CSV (RFC 4180), every cell safe to open in a spreadsheet."""

    def cell(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            return "'" + value
        return "" if value is None else value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(column) for column in answer.columns])
    writer.writerows([cell(value) for value in row] for row in answer.rows)
    return out.getvalue()


def _pipeline(
    *,
    user: AbstractBaseUser | AnonymousUser,
    question: str,
    channel: str,
    purpose: str | None,
    now: dt.datetime | None,
    client: tuple[str, str],
    body: Callable[[_Run], Answer],
    project: str | None = None,
    kind: str = EventKind.QUESTION,
    pseudonym_batch: str = "",
) -> Answer:
    """What every entry point shares: the moment, the subject, the purpose, one error handler, and
    the audit event written before anything is returned."""
    now = _aware(now)
    clock = now or timezone.now()
    data_now = now or (
        dt.datetime.strptime(settings.NLQ_NOW, _NOW_FORMAT).replace(tzinfo=dt.UTC)
        if settings.NLQ_NOW
        else clock
    )
    run = _Run(
        question=question,
        subject=_nobody(user, clock),
        project=(project or "").strip(),
        kind=kind,
        pseudonym_batch=pseudonym_batch,
    )
    run.details["channel"] = channel
    try:
        run.subject = subject_for(user=user, clock=clock, data_now=data_now)
        run.purpose = (purpose or "").strip().upper() or default_purpose(run.subject)
        if run.purpose not in Purpose.values:
            answer = Answer(
                ERROR,
                f"{run.purpose[:20]!r} is not a purpose of use; use one of {', '.join(Purpose.values)}.",
                code="bad_purpose",
            )
        else:
            answer = body(run)
    except Exception:
        # Our own fault: the person gets a plain message with a reference, the log the traceback
        # (never the question, which may name a patient).
        reference = uuid.uuid4().hex[:12]
        logger.exception("answer_question failed (reference %s)", reference)
        run.details["error_reference"] = reference
        answer = Answer(
            ERROR,
            "Something went wrong while answering; nothing was shown. "
            f"Quote reference {reference} to support.",
            code="internal_error",
        )
    return _record(run, answer, user, *client)


def _aware(now: dt.datetime | None) -> dt.datetime | None:
    """A moment without a time zone is read as UTC (the warehouse's times are UTC)."""
    return now.replace(tzinfo=dt.UTC) if now is not None and timezone.is_naive(now) else now


def _nobody(user: AbstractBaseUser | AnonymousUser, clock: dt.datetime) -> Subject:
    """Who asked, before their attributes are read: enough to record the event if reading them fails."""
    name = user.get_username() if user.is_authenticated else ""
    return Subject(user.pk if user.is_authenticated else None, name, "", "", None, (), (), None, clock, clock)


def answer_sql(
    *,
    user: AbstractBaseUser | AnonymousUser,
    sql: str,
    purpose: str | None = None,
    confirm_special: bool = False,
    now: dt.datetime | None = None,
    target: WarehouseTarget | None = None,
    project: str | None = None,
    channel: str = "sql",
    label: str = "",
    client_addr: str = "",
    user_agent: str = "",
) -> Answer:
    """Run hand-written SQL through decide, rewrite, execute and record, as if the compiler wrote it.

    Not offered to users (they ask questions); it is how tests and benchmarks show that the safety of
    the pipeline does not depend on the SQL the compiler happens to write, and how the dashboards run
    their own figures (channel "dashboard"). `label` is what the audit trail records as the question
    (default "[sql] " and the SQL).
    """

    def body(run: _Run) -> Answer:
        run.sql_generated = sql
        warehouse = target or warehouse_target()
        return _run_sql(run, sql, warehouse, catalog_of(warehouse), confirm_special, None)

    return _pipeline(
        user=user,
        question=label or f"[sql] {sql}",
        channel=channel,
        purpose=purpose,
        now=now,
        client=(client_addr, user_agent),
        body=body,
        project=project,
    )


def _answer(run: _Run, confirm_special: bool, target: WarehouseTarget | None) -> Answer:
    subject = run.subject
    if not run.question.strip():
        return Answer(ABSTAINED, "The question is empty.", code="empty_question")
    if len(run.question) > MAX_QUESTION_CHARS * 10:
        # Far beyond what understanding reads; refused before any work (the audit keeps the start).
        return Answer(
            ABSTAINED,
            f"The question is {len(run.question):,} characters long; "
            f"ask it in at most {MAX_QUESTION_CHARS:,}.",
            code="question_too_long",
        )
    try:
        target = target or warehouse_target()
        catalog = catalog_of(target)
    except (WarehouseError, WarehouseConfigError) as error:
        return Answer(ERROR, getattr(error, "message", str(error)), code="warehouse_unavailable")

    plan = plan_question(run.question, target)
    if isinstance(plan, Unanswerable):
        return _abstain(run, plan, target, catalog)
    try:
        sql = compile_sql(plan, target.dialect, subject.data_now.astimezone(dt.UTC).strftime(_NOW_FORMAT))
    except CompileError as error:
        return Answer(
            ABSTAINED, f"The question cannot be expressed as a query: {error}", code="cannot_compile"
        )
    run.sql_generated = sql
    return _run_sql(run, sql, target, catalog, confirm_special, plan)


def _after_breakglass(run: _Run, answer: Answer) -> Answer:
    """A refusal that an ended break-glass session explains says so, instead of a bare refusal."""
    lapsed = run.subject.lapsed_breakglass
    if lapsed is None or run.subject.breakglass is not None or answer.status != DENIED:
        return answer
    if answer.code not in ("out_of_scope", "policy_denied"):
        return answer
    refused = run.details.get("refused_patients", [])
    about_target = lapsed.scope == "unit" or f"patient {lapsed.subject_id}" in refused
    if run.purpose not in (Purpose.BTG, Purpose.ETREAT) and not about_target:
        return answer
    target = f"patient {lapsed.subject_id}" if lapsed.scope == "patient" else f"unit {lapsed.careunit}"
    answer.code = "breakglass_expired"
    ended = lapsed.expires_at.astimezone(dt.UTC)
    answer.message = (
        f"Your break-glass access to {target} ended at {ended:%H:%M} UTC, so this is no longer shown."
        " If the emergency continues, open break-glass again with a new justification."
    )
    run.details["lapsed_breakglass_session"] = lapsed.session_id
    return answer


def default_purpose(subject: Subject) -> str:
    if subject.breakglass is not None:
        return Purpose.BTG
    return str(DEFAULT_PURPOSE.get(subject.role, Purpose.TREAT))  # type: ignore[call-overload]


def _run_sql(
    run: _Run,
    sql: str,
    target: WarehouseTarget,
    catalog: Catalog,
    confirm_special: bool,
    plan: QueryPlan | None,
) -> Answer:
    """Decide, rewrite, execute and disclose one query (the generated SQL, never trusted)."""
    subject = run.subject
    interpretation = plan.interpretation if plan is not None else ""
    try:
        inspected = inspect(
            sql, dialect=target.dialect, catalog=catalog.columns, known_tables=catalog.columns
        )
    except SqlRefused as refused:
        return Answer(DENIED, refused.message, code=refused.code, interpretation=interpretation)
    run.tables, run.columns = inspected.tables, inspected.columns
    classes = column_classes(inspected.columns)
    patient_tables = catalog.patient_tables()
    patient_rows = bool(set(inspected.tables) & patient_tables)
    coded = bool(set(inspected.tables) & CODED_TABLES)
    project, refusal = _research_project(run)
    if refusal is not None:
        refusal.interpretation = interpretation
        return refusal
    decision = decide(
        subject=subject,
        purpose=run.purpose,
        data_classes=set(classes.values()),
        patient_rows=patient_rows,
        coded=coded,
        patient_classes={c for column, c in classes.items() if column.split(".", 1)[0] in patient_tables},
        project=project,
    )
    run.decision = decision
    if not decision.allowed:
        return Answer(DENIED, decision.reason, code=decision.code, interpretation=interpretation)
    if patient_rows and _protections_unavailable(decision, subject, catalog):
        return Answer(
            DENIED,
            "The warehouse's patient identity table cannot be read, so the protections for VIP patients, "
            "staff who are patients and your own record cannot be applied; nothing is shown. An operator "
            "must grant the warehouse reader access to patient_identity.",
            code="protections_unavailable",
            interpretation=interpretation,
        )
    try:
        # Before any lookup of named patients: the aggregate and research lanes refuse naming one.
        lane = _prepare_lane(run, inspected, decision, catalog)
    except DisclosureRefused as refused:
        return Answer(DENIED, refused.message, code=refused.code, interpretation=interpretation)
    named_patients: set[int] = set()
    if patient_rows and decision.lane == "identified":
        outside, named_patients = _named_patients_outside_scope(inspected, subject, decision, target, catalog)
        if outside:
            run.details["refused_patients"] = outside
            named = "; ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
            return Answer(
                DENIED,
                "You may not see this: "
                + named
                + (
                    " are outside your care relationships (or do not exist)."
                    if len(outside) > 1
                    else " is outside your care relationships (or does not exist)."
                )
                + " Open break-glass access if this is an emergency.",
                code="out_of_scope",
                interpretation=interpretation,
            )
    allowed = set(classes.values())
    policy = read_policy(
        decision=decision,
        subject=subject,
        dialect=target.dialect,
        catalog=catalog,
        allowed_classes=allowed,
        only=inspected.tables,
    )
    key = _pseudonym_key(decision, subject, run.pseudonym_batch)
    confirm_pending = decision.confirm if coded else frozenset()
    probe = bool(confirm_pending) and not confirm_special
    try:
        # The special-category probe rewrites the same query a second time: keep its tree then.
        safe = rewrite(inspected, policy, consume=not probe)
        run.sql_executed = safe.sql
        result = execute_readonly(safe.sql, target=target, pseudonym_key=key)
    except SqlRefused as refused:
        return Answer(DENIED, refused.message, code=refused.code, interpretation=interpretation)
    except WarehouseError as error:
        if decision.lane != "identified" and error.code == "invalid_query":
            # The database's own words (division by zero, a type error) could depend on the values of
            # hidden groups or columns: one plain sentence instead.
            return Answer(
                ERROR,
                "The warehouse could not run this query; check the columns and functions it uses.",
                code=error.code,
                interpretation=interpretation,
            )
        return Answer(ERROR, error.message, code=error.code, interpretation=interpretation)

    if probe:
        hidden = read_policy(
            decision=decision,
            subject=subject,
            dialect=target.dialect,
            catalog=catalog,
            allowed_classes=allowed,
            hide_special=confirm_pending,
            only=inspected.tables,
        )
        try:
            without = execute_readonly(
                rewrite(inspected, hidden, consume=True).sql, target=target, pseudonym_key=key
            )
        except (SqlRefused, WarehouseError) as error:
            return Answer(ERROR, getattr(error, "message", str(error)), code="special_probe_failed")
        # Compared as multisets: a query without ORDER BY may return the same rows in another order
        # (PostgreSQL's plan changes with the hidden rows' predicate), which is no special category.
        if _as_multiset(without.rows) != _as_multiset(result.rows) or without.truncated != result.truncated:
            # The prompt names every category the policy asks confirmation for, never the ones this
            # answer holds: that would tell before the confirmation. The audit keeps what was seen.
            run.details["confirmation_required"] = sorted(_categories_in(result))
            return Answer(
                DENIED,
                "This answer may include special-category information "
                f"({describe_categories(confirm_pending)}). Confirm that you need it for "
                f"{Purpose(run.purpose).label.lower()} to see it; the confirmation is recorded.",
                code="confirmation_required",
                interpretation=interpretation,
                confirm_required=sorted(confirm_pending),
            )
        run.details["special_present"] = False
    elif confirm_pending and confirm_special:
        run.details["purpose_confirmed"] = sorted(confirm_pending)

    if decision.lane != "identified":
        return _disclose(run, result, decision, lane, target, interpretation, key)
    reserved = [i for i, name in enumerate(result.columns) if name.startswith(RESERVED_PREFIX)]
    shown = [i for i in range(len(result.columns)) if i not in reserved]
    run.patients = sorted(_patients_in(result, reserved) | named_patients)
    notices = list(decision.notices)
    if patient_rows:
        notices.insert(0, _scope_notice(decision, subject))
    return _answered(
        run,
        decision,
        result,
        columns=[result.columns[i] for i in shown],
        rows=[[_json_value(row[i]) for i in shown] for row in result.rows],
        notices=notices,
        interpretation=interpretation,
    )


def _answered(
    run: _Run,
    decision: Decision,
    result: QueryResult,
    *,
    columns: list[str],
    rows: list[list[Any]],
    notices: list[str],
    interpretation: str,
    suppressed: list[dict[str, Any]] | None = None,
    masked: dict[str, str] | None = None,
    disclosure: dict[str, Any] | None = None,
) -> Answer:
    """The answer to a query that ran, in every lane: what was masked, withheld and cut off, said."""
    run.row_count = len(rows)
    if result.truncated:
        notices.append(f"Only the first {len(rows):,} rows are shown.")
    suppressed = list(suppressed or [])
    if decision.withheld and set(run.tables) & CODED_TABLES:
        categories = describe_categories(decision.withheld)
        suppressed.append(
            {"what": f"special-category diagnoses and procedures ({categories})", "why": "policy"}
        )
    shown = {column: how for column, how in decision.masked_description().items() if column in set(columns)}
    return Answer(
        ANSWERED,
        "Answered." if rows else "The query ran and found no rows within what you may see.",
        interpretation=interpretation,
        sql=run.sql_generated if run.subject.role in _SEES_SQL else None,
        columns=columns,
        rows=rows,
        truncated=result.truncated,
        masked=shown | (masked or {}),
        suppressed=suppressed,
        notices=notices,
        disclosure=disclosure or {},
    )


def _research_project(run: _Run) -> tuple[str, Answer | None]:
    """The research project this question is asked under: the one named, or the asker's only one."""
    subject = run.subject
    if run.project:
        if run.project not in subject.projects:
            mine = ", ".join(subject.projects) or "none"
            return "", Answer(
                DENIED,
                f"{run.project[:30]!r} is not an approved, unexpired project of yours (yours: {mine}).",
                code="bad_project",
            )
        return run.project, None
    if subject.role == Role.RESEARCHER and len(subject.projects) > 1:
        return "", Answer(
            ERROR,
            "You belong to several research projects (" + ", ".join(subject.projects) + "); say which one "
            "this question is for: pseudonyms and permitted data differ between projects.",
            code="project_required",
        )
    return (subject.projects[0] if subject.projects else ""), None


def _pseudonym_key(decision: Decision, subject: Subject, batch: str = "") -> bytes | None:
    if not any(kind in KEYED_KINDS for kind in decision.masks.values()):
        return None
    # Outside research (a profile a hospital gave another role), the role stands in for a project.
    return project_key(decision.project or f"role-{subject.role}", batch=batch).key


@dataclass
class _Lane:
    """What the lane prepared in the query before it ran."""

    aggregate: AggregateShape | None = None
    rows: RowColumns | None = None
    scrubbed: frozenset[str] = frozenset()


def _prepare_lane(run: _Run, inspected: Inspected, decision: Decision, catalog: Catalog) -> _Lane:
    """Aggregate lane: check the query and add the hidden patient counts. De-identified rows: check
    what the query does with scrubbed text, note where each output column comes from, and carry the
    raw patient hidden. Raises DisclosureRefused."""
    tree = inspected.tree
    patient_tables = catalog.patient_tables()
    if decision.lane == "identified":
        if not is_aggregate_query(tree) and tree.args.get("group") is None:
            # Whose rows were shown, for the accounting of disclosures and the anomaly features, even
            # when the answer's own columns do not name the patient.
            attach_subjects(tree, patient_tables=patient_tables)
        return _Lane()
    scrubbed = scrubbed_columns(run.subject.role, decision.project) & set(inspected.columns)
    if decision.lane == "deidentified":
        refuse_named_patients(tree)
    if decision.lane == "aggregate" or is_aggregate_query(tree):
        # Counting notes by what they say would search the unscrubbed text.
        check_scrubbed_text(tree, scrubbed, shown=False)
        shape = prepare_aggregate(tree, catalog=catalog.columns, patient_tables=patient_tables)
        if decision.dp_epsilon is not None and shape.sized and "measure" in shape.kinds:
            # Refused before the query runs: nothing read, no budget spent.
            raise DisclosureRefused(
                "Statistics here are released with differential privacy, which covers numbers of "
                "patients only (COUNT(DISTINCT subject_id)); ask how many patients, e.g. 'number of "
                "patients per unit'.",
                code="dp_unsupported",
            )
        return _Lane(aggregate=shape)
    refuse_ordinals(tree)
    check_research_rows(tree)
    check_scrubbed_text(tree, scrubbed)
    rows = row_columns(tree, catalog=catalog.columns)
    attach_subjects(tree, patient_tables=patient_tables)
    return _Lane(rows=rows, scrubbed=scrubbed)


def _disclose(
    run: _Run,
    result: QueryResult,
    decision: Decision,
    lane: _Lane,
    target: WarehouseTarget,
    interpretation: str,
    key: bytes | None,
) -> Answer:
    """The aggregate or de-identified answer: hidden columns out, small groups suppressed, or text
    scrubbed and rows made k-anonymous."""
    hidden = [i for i, name in enumerate(result.columns) if name.startswith(RESERVED_PREFIX)]
    shown = [i for i in range(len(result.columns)) if i not in hidden]
    columns = [result.columns[i] for i in shown]
    rows = [[_json_value(row[i]) for i in shown] for row in result.rows]
    notices = list(decision.notices)
    suppressed: list[dict[str, Any]] = []
    disclosure: dict[str, Any] = {"lane": decision.lane}
    if decision.project:
        disclosure["project"] = decision.project
    masked: dict[str, str] = {}
    if lane.aggregate is not None:
        threshold = decision.min_cell or _MIN_CELL
        disclosure["min_cell"] = threshold
        sized = [i for i in hidden if result.columns[i].startswith(PATIENTS_PREFIX)]
        if lane.aggregate.sized:
            kinds = lane.aggregate.kinds
            if len(kinds) != len(columns):
                # Unsure which column is which: every value of a small group is hidden.
                kinds = ("measure",) * len(columns)
            # The smallest number of patients any counted table contributes to the group; a table a
            # LEFT JOIN found nothing in contributes none and does not count.
            counts = [min((n for i in sized if (n := _count(row[i])) > 0), default=0) for row in result.rows]
            if decision.dp_epsilon is not None:
                try:
                    counts = _with_noise(run, decision.dp_epsilon, kinds, rows, disclosure, notices)
                except AccessError as spent:
                    return Answer(DENIED, spent.message, code=spent.code, interpretation=interpretation)
            done = suppress_small_cells(
                Aggregate(
                    columns=columns,
                    rows=rows,
                    dimensions=[i for i, kind in enumerate(kinds) if kind == "dimension"],
                    measures=[i for i, kind in enumerate(kinds) if kind != "dimension"],
                    patients=counts,
                    # Noisy counts cannot be added up to a hidden one: no complements needed.
                    margins=lane.aggregate.margins and decision.dp_epsilon is None,
                ),
                threshold=threshold,
            )
            dimensions = [i for i, kind in enumerate(kinds) if kind == "dimension"]
            rows, withheld = _withhold_unlabelled(
                done.rows, set(done.primary) | set(done.complementary), dimensions
            )
            notices.extend(done.notices)
            if withheld:
                notices.append(
                    f"{_groups(withheld)} hidden as small {'is' if withheld == 1 else 'are'} left out "
                    "altogether: the combination of values naming "
                    f"{'it' if withheld == 1 else 'them'} appears in no group large enough to show."
                )
                suppressed.append(
                    {
                        "what": _groups(withheld),
                        "why": "small groups with unique labels",
                        "shown_as": "withheld",
                    }
                )
            if done.primary:
                suppressed.append(
                    {"what": f"{_groups(len(done.primary))} of 1 to {threshold - 1} patients",
                     "why": "small cells", "shown_as": f"<{threshold}"}
                )  # fmt: skip
            if done.complementary:
                suppressed.append(
                    {"what": f"{_groups(len(done.complementary))} more", "why": "complementary suppression",
                     "shown_as": "*"}
                )  # fmt: skip
    elif lane.rows is not None:
        carried = [i for i in hidden if result.columns[i].startswith(SUBJECT_PREFIX)]
        if any(len({row[i] for i in carried}) > 1 for row in result.rows):
            # Each row would be about several patients: neither k-anonymity (which counts patients
            # per row) nor the note scrubber (which looks for the row's patient) could be sure of it.
            return Answer(
                DENIED,
                "Each research row must be about one patient: join the tables on the patient "
                "(subject_id), not across patients.",
                code="rows_mix_patients",
                interpretation=interpretation,
            )
        # Classes count patients, not rows (one patient's many lab results are one person).
        subjects = [row[carried[0]] for row in result.rows] if carried else None
        who = {v for row in result.rows for i in carried if (v := row[i]) is not None}
        patients = (
            real_patients(target, key, who)
            if key is not None
            else sorted(v for v in who if isinstance(v, int))
        )
        run.patients = patients
        try:
            described = _research_rows(lane, decision, columns, rows, patients, subjects, target)
        except DisclosureRefused as refused:
            return Answer(DENIED, refused.message, code=refused.code, interpretation=interpretation)
        except (WarehouseError, ValueError) as error:
            # The notes could not be scrubbed (names unreadable, a note beyond the model's length):
            # nothing is shown rather than text that may still name someone.
            logger.warning("research answer withheld: %s", type(error).__name__)
            return Answer(
                ERROR,
                "The notes in this answer could not be scrubbed of identifiers, so nothing is shown. "
                + (error.message if isinstance(error, WarehouseError) else "A note is too long to check."),
                code="scrub_unavailable",
                interpretation=interpretation,
            )
        rows = described.rows
        notices.extend(described.notices)
        masked.update(described.masked)
        disclosure.update(described.disclosure)
        if described.withheld:
            rows_word = "row" if described.withheld == 1 else "rows"
            suppressed.append(
                {"what": f"{described.withheld} {rows_word}", "why": "k-anonymity", "shown_as": "withheld"}
            )
    return _answered(
        run,
        decision,
        result,
        columns=columns,
        rows=rows,
        notices=notices,
        interpretation=interpretation,
        suppressed=suppressed,
        masked=masked,
        disclosure=disclosure,
    )


def _withhold_unlabelled(
    rows: list[list[Any]], hidden: set[int], dimensions: list[int]
) -> tuple[list[list[Any]], int]:
    """With two or more group columns, a small group is shown (as <11) only when each of its labels
    also names a group large enough to show: otherwise its labels alone (an admission time with an age
    and an insurance, say) describe a handful of patients, whatever the count says."""
    if len(dimensions) < 2 or not hidden:
        return rows, 0
    seen = [{_label(rows[r][d]) for r in range(len(rows)) if r not in hidden} for d in dimensions]
    kept: list[list[Any]] = []
    withheld = 0
    for index, row in enumerate(rows):
        if index in hidden and not all(
            _label(row[d]) in labels for d, labels in zip(dimensions, seen, strict=True)
        ):
            withheld += 1
            continue
        kept.append(row)
    return kept, withheld


def _label(value: Any) -> str:
    return repr(value)


def _with_noise(
    run: _Run,
    epsilon: float,
    kinds: Sequence[str],
    rows: list[list[Any]],
    disclosure: dict[str, Any],
    notices: list[str],
) -> list[int]:
    """Replace the patient counts in `rows` by noisy ones, charging epsilon to the asker's budget
    (AccessError when it is spent); the noisy size of each group, for suppression."""
    assert run.subject.user_id is not None
    positions = [i for i, kind in enumerate(kinds) if kind == "patient_count"]
    budget = privacy_budget_spend(user_id=run.subject.user_id, epsilon=epsilon)
    noisy = noisy_counts([_count(row[i]) for row in rows for i in positions], epsilon)
    values = iter(noisy.counts)
    for row in rows:
        for i in positions:
            row[i] = next(values)
    run.details["differential_privacy"] = {"epsilon": epsilon, "scale": noisy.scale}
    disclosure["differential_privacy"] = {
        "epsilon": epsilon,
        "mechanism": MECHANISM,
        "noise_scale": round(noisy.scale, 3),
        "budget_total": budget.epsilon_total,
        "budget_remaining": round(budget.remaining, 6),
    }
    notices.append(
        f"Numbers of patients carry random noise (differential privacy, epsilon {epsilon:g}); your privacy "
        f"budget has {budget.remaining:g} of {budget.epsilon_total:g} left."
    )
    return [min((int(row[i]) for i in positions), default=0) for row in rows]


# Small cells when a policy names none: the hospital statistics convention (1 to 10 hidden).
_MIN_CELL: Final = 11


def _groups(count: int) -> str:
    return f"{count} group" if count == 1 else f"{count} groups"


def _count(value: object) -> int:
    if isinstance(value, int | float | str | decimal.Decimal):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


@dataclass
class _Described:
    rows: list[list[Any]]
    notices: list[str]
    masked: dict[str, str]
    disclosure: dict[str, Any]
    withheld: int


def _research_rows(
    lane: _Lane,
    decision: Decision,
    columns: list[str],
    rows: list[list[Any]],
    patients: list[int],
    subjects: list[Any] | None,
    target: WarehouseTarget,
) -> _Described:
    """Scrub notes, show top-coded ages as 90+, then make the rows k-anonymous and l-diverse."""
    assert lane.rows is not None
    known = lane.rows
    if len(known.bare) != len(columns):
        # The output columns could not be traced: every one is treated as identifying.
        known = RowColumns([None] * len(columns), [frozenset({"other"})] * len(columns), known.patient_rows)
    masked: dict[str, str] = {}
    notices: list[str] = []
    text_names = {column.split(".", 1)[1] for column in lane.scrubbed}
    texts = [
        i for i, name in enumerate(columns) if known.bare[i] in lane.scrubbed or name.lower() in text_names
    ]
    if texts and subjects is None:
        # The deny-list of names is built from the rows' patients; without them it would hold staff only.
        raise DisclosureRefused(
            "Notes can be shown only together with the patient each is about: ask for them from the notes "
            "table directly (without DISTINCT).",
            code="scrub_needs_patient",
        )
    if texts:
        # Imported here: loading Presidio and its model is for the requests that show notes.
        from accessctl.scrub import deny_list_for, scrubber

        names = deny_list_for(target, patients)
        engine = scrubber()
        for i in texts:
            cleaned = engine.scrub_many(
                [row[i] if isinstance(row[i], str) else None for row in rows], names=names
            )
            for row, value in zip(rows, cleaned, strict=True):
                row[i] = value
            masked[columns[i]] = DESCRIPTIONS["scrub"]
    for i, origin in enumerate(known.bare):
        if origin is not None and decision.masks.get(origin) == "top90":
            for row in rows:
                row[i] = top_coded(row[i])
    disclosure: dict[str, Any] = {}
    withheld = 0
    if known.patient_rows and rows:
        quasi: dict[int, QI] = {}
        for i, classes in enumerate(known.classes):
            kinds = sorted(QUASI_IDENTIFIERS[c] for c in classes if c in QUASI_IDENTIFIERS)
            if kinds:
                quasi[i] = QI[kinds[0]] if len(set(kinds)) == 1 else QI.CATEGORY
            elif "other" in classes:
                quasi[i] = QI.CATEGORY
        sensitive = [
            i for i, classes in enumerate(known.classes) if "sensitive" in classes and i not in quasi
        ]
        k = decision.k or settings.DISCLOSURE_K
        anonymised = k_anonymise(
            columns,
            rows,
            quasi=quasi,
            sensitive=sensitive,
            k=k,
            l=decision.l_diversity or settings.DISCLOSURE_L,
            max_suppression=settings.DISCLOSURE_MAX_SUPPRESSION_PERCENT / 100,
            subjects=subjects,
        )
        rows = anonymised.rows
        withheld = anonymised.suppressed_rows
        notices.extend(anonymised.notices)
        notices.append(anonymised.risk.describe())
        disclosure.update(
            k=k,
            generalised={column: level for column, level in anonymised.levels.items() if level},
            rows_withheld=withheld,
            risk={
                "highest": round(anonymised.risk.highest, 4),
                "average": round(anonymised.risk.average, 4),
                "rows_at_risk": round(anonymised.risk.at_risk, 4),
                "summary": anonymised.risk.describe(),
            },
        )
    return _Described(rows, notices, masked, disclosure, withheld)


def _protections_unavailable(decision: Decision, subject: Subject, catalog: Catalog) -> bool:
    """An identified warehouse whose patient_identity cannot be read: the VIP, staff and own-record
    filters would silently drop out, so refuse (a de-identified extract has no identities to protect)."""
    if "patient_identity" in catalog.columns:
        return False
    identified = bool({"staff", "care_team", "notes", "patient_contacts"} & set(catalog.columns))
    return identified and bool(decision.team_only or decision.excluded or subject.staff_id is not None)


def _scope_notice(decision: Decision, subject: Subject) -> str:
    window = settings.ACCESS_CARE_WINDOW_DAYS
    parts = []
    if "care" in decision.scopes:
        parts.append(
            f"patients with a current stay, or one ended in the last {window} days, "
            "in your department's units"
        )
        parts.append("patients whose care team you are on")
    if "department" in decision.scopes:
        parts.append("patients with any stay in your department's units")
    if "breakglass" in decision.scopes and subject.breakglass is not None:
        grant = subject.breakglass
        parts.append(
            "break-glass access to "
            + (f"patient {grant.subject_id}" if grant.scope == "patient" else f"unit {grant.careunit}")
        )
    return "Only patients you may see are included: " + "; ".join(dict.fromkeys(parts)) + "."


# Columns whose literal values name one patient, what each is called, and where to look it up.
_NAMING_COLUMNS: Final = {
    "subject_id": ("patient", "patients", False),
    "hadm_id": ("admission", "admissions", False),
    "stay_id": ("ICU stay", "icustays", False),
    "mrn": ("MRN", "patient_identity", True),
    "national_id": ("national ID", "patient_identity", True),
}


def _literal_ids(inspected: Inspected) -> dict[str, set[str]]:
    """Values the query names a patient by (subject_id = 10001, hadm_id IN (...), mrn = 'MRN...')."""
    named: dict[str, set[str]] = {key: set() for key in _NAMING_COLUMNS}
    for node in inspected.tree.find_all(exp.EQ, exp.In):
        column = node.this if isinstance(node.this, exp.Column) else node.expression
        if not isinstance(column, exp.Column) or column.name.lower() not in named:
            continue
        key = column.name.lower()
        textual = _NAMING_COLUMNS[key][2]
        values = node.expressions if isinstance(node, exp.In) else [node.expression, node.this]
        for value in values:
            if not isinstance(value, exp.Literal) or value.is_string != textual:
                continue
            if re.fullmatch(r"[A-Za-z0-9-]{1,30}" if textual else r"\d{1,12}", value.this):
                named[key].add(value.this)
    return {key: values for key, values in named.items() if values}


def _named_patients_outside_scope(
    inspected: Inspected, subject: Subject, decision: Decision, target: WarehouseTarget, catalog: Catalog
) -> tuple[list[str], set[int]]:
    """Each patient, admission or stay the query names that is outside the subject's scope (or does
    not exist: the two read alike, so nothing can be learned by asking), and the patients (subject_id)
    of those inside it."""
    named = _literal_ids(inspected)
    if not named:
        return [], set()
    scope = scope_sql(subject, scope_spec(decision, catalog))
    outside: list[str] = []
    patients: set[int] = set()
    for key, values in named.items():
        label, table, textual = _NAMING_COLUMNS[key]
        if table not in catalog.columns:
            continue  # a de-identified warehouse has no such column: the query fails on its own
        if f"{table}.{key}" in decision.masks:
            # The user sees this column masked: looking the raw values up would tell them which of
            # the values they typed is real. Their query reads the masked column and finds nothing.
            continue
        listed = ", ".join(exp.Literal.string(v).sql() if textual else v for v in sorted(values))
        sql = (
            f"WITH {SCOPE_CTE} AS ({scope}) SELECT {key}, subject_id FROM {table} WHERE {key} IN ({listed}) "
            f"AND subject_id IN (SELECT subject_id FROM {SCOPE_CTE})"
        )
        rows = execute_readonly(sql, target=target, row_cap=len(values) + 1).rows
        found = {str(row[0]) for row in rows}
        patients.update(int(str(row[1])) for row in rows if row[1] is not None)
        outside.extend(f"{label} {value}" for value in sorted(values - found))
    return outside, patients


def _as_multiset(rows: Sequence[Sequence[Any]]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(repr(value) for value in row) for row in rows)


def _categories_in(result: QueryResult) -> set[str]:
    found: set[str] = set()
    for row in result.rows:
        for value in row:
            if isinstance(value, str) and value.startswith("icd"):
                found |= categories_of(value)
    return found


def _patients_in(result: QueryResult, hidden: Sequence[int]) -> set[int]:
    """The patients of the rows shown: a subject_id column, and the hidden copies carried for it."""
    lowered = [column.lower() for column in result.columns]
    carried = [i for i in hidden if result.columns[i].startswith(SUBJECT_PREFIX)]
    if "subject_id" in lowered:
        carried.append(lowered.index("subject_id"))
    return {value for row in result.rows for i in carried if isinstance(value := row[i], int)}


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity or NaN
    if isinstance(value, bytes | memoryview):
        return None
    return value


def _abstain(run: _Run, plan: Unanswerable, target: WarehouseTarget, catalog: Catalog) -> Answer:
    message = plan.reason
    if plan.not_understood:
        message += " Not understood: " + "; ".join(plan.not_understood) + "."
    return Answer(
        ABSTAINED,
        message,
        code=plan.code,
        suggestions=_scoped_suggestions(plan.suggestions, run, target, catalog),
    )


_PATIENT_IN_TEXT: Final = re.compile(r"\bpatient (\d+)\b")


def _scoped_suggestions(
    suggestions: Sequence[str], run: _Run, target: WarehouseTarget, catalog: Catalog
) -> list[str]:
    """Suggestions naming a patient name one this user may see, or are dropped."""
    if not any(_PATIENT_IN_TEXT.search(text) for text in suggestions):
        return list(suggestions)
    subject = run.subject
    decision = decide(
        subject=subject, purpose=run.purpose, data_classes=["key", "clinical"], patient_rows=True, coded=False
    )
    example: int | None = None
    if decision.allowed:
        scope = scope_sql(subject, scope_spec(decision, catalog))
        sql = (
            f"WITH {SCOPE_CTE} AS ({scope}) SELECT MIN(subject_id) FROM admissions "
            f"WHERE dischtime IS NOT NULL AND subject_id IN (SELECT subject_id FROM {SCOPE_CTE})"
        )
        try:
            rows = execute_readonly(sql, target=target, row_cap=1).rows
            example = int(str(rows[0][0])) if rows and rows[0][0] is not None else None
        except WarehouseError:
            example = None
    kept: list[str] = []
    for text in suggestions:
        if not _PATIENT_IN_TEXT.search(text):
            kept.append(text)
        elif example is not None:
            kept.append(_PATIENT_IN_TEXT.sub(f"patient {example}", text))
    return kept


def _record(
    run: _Run, answer: Answer, user: AbstractBaseUser | AnonymousUser, client_addr: str, user_agent: str
) -> Answer:
    subject = run.subject
    decision = run.decision
    answer.purpose = run.purpose
    if decision is not None:
        answer.policy = decision.trace_dict()
        if decision.allowed and answer.status != ANSWERED:
            # Policy allowed the data classes; a later step (scope, confirmation) still refused.
            answer.policy.update(
                decision="deny" if answer.status == DENIED else "none", reason=answer.message
            )
    status = {
        ANSWERED: EventStatus.ANSWERED,
        ABSTAINED: EventStatus.ABSTAINED,
        DENIED: EventStatus.DENIED,
    }.get(answer.status, EventStatus.ERROR)
    verdict = EventDecision.NONE
    if decision is not None:
        verdict = EventDecision.ALLOW if decision.allowed else EventDecision.DENY
    if answer.code in ("out_of_scope", "confirmation_required", "sql_refused") or answer.status == DENIED:
        verdict = EventDecision.DENY
    grant = subject.breakglass
    details = dict(
        run.details, code=answer.code, interpretation=answer.interpretation, notices=answer.notices
    )
    if grant is not None:
        details["breakglass"] = {"session": grant.session_id, "scope": grant.scope}
    if abs((subject.data_now - subject.clock).total_seconds()) > 60:
        # Answered as of another moment than the event's (a frozen extract, NLQ_NOW): whose stays were
        # "current" is judged then, by the audit's relationship features as by the scope.
        details["as_of"] = subject.data_now.isoformat()
    try:
        event = audit_record(
            user=user if user.is_authenticated else None,
            kind=run.kind,
            status=status,
            role=subject.role,
            attributes=subject.attributes(),
            client_addr=client_addr,
            user_agent=user_agent,
            purpose_of_use=run.purpose if run.purpose in Purpose.values else "",
            breakglass_session_id=grant.session_id if grant else None,
            question=run.question,
            sql_generated=run.sql_generated,
            sql_executed=run.sql_executed,
            decision=verdict,
            obligations=decision.obligations() if decision is not None else {},
            policy_trace=answer.policy,
            tables_touched=run.tables,
            columns_touched=run.columns,
            row_count=run.row_count,
            patients_touched=run.patients,
            message=answer.message,
            duration_ms=(time.perf_counter() - run.started) * 1000,
            details=details,
        )
    except Exception:
        logger.exception("answer_question: the audit event could not be written")
        return Answer(
            ERROR,
            "The answer could not be recorded in the audit trail, so it is not shown. Try again shortly.",
            code="audit_unavailable",
            purpose=run.purpose,
        )
    answer.audit_event = event.pk
    if grant is not None:
        BreakGlassSession.objects.filter(pk=grant.session_id).update(queries=F("queries") + 1)
    if run.details.get("purpose_confirmed") and user.is_authenticated and user.pk is not None:
        PurposeConfirmation.objects.create(
            user_id=user.pk,
            username=subject.username,
            purpose=run.purpose,
            categories=run.details["purpose_confirmed"],
            question=run.question,
            confirmed_at=subject.clock,
            audit_event_seq=event.pk,
        )
    return answer
