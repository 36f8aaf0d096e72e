"""Writes of access control: policy changes, break-glass sessions and their reviews, notifications."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import F
from django.forms.models import model_to_dict
from django.utils import timezone

from accessctl.default_policy import DEFAULT_RULES
from accessctl.models import (
    BreakGlassReason,
    BreakGlassScope,
    BreakGlassSession,
    MaskingRule,
    Notification,
    PolicyRule,
    PolicyState,
    PrivacyBudget,
    PseudonymKey,
)
from accessctl.policy import reload_policy, validate_rule
from accessctl.profiles import DEFAULT_LINES, validate_line
from audit.models import AuditEvent, EventKind, EventStatus
from audit.services import audit_record
from hisplatform.models import ResearchProject, Role, StaffProfile
from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target

logger = logging.getLogger(__name__)

BREAKGLASS_ROLES: Final = frozenset({Role.CLINICIAN, Role.NURSE, Role.DEPARTMENT_HEAD})
# A justification shorter than this says nothing a reviewer can check ("emergency").
MIN_JUSTIFICATION_CHARS: Final = 20
# After this many wrong passwords within the window, break-glass stops checking passwords for the account:
# someone at an unlocked, signed-in screen cannot guess the password through the form.
BREAKGLASS_PASSWORD_TRIES: Final = 5
BREAKGLASS_PASSWORD_WINDOW: Final = dt.timedelta(minutes=15)
_SUBJECT_CHARS: Final = Notification._meta.get_field("subject").max_length


class AccessError(Exception):
    """A request access control refuses; `code` is stable, `message` is for the person."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- Policy ---------------------------------------------------------------------------------------------


def policy_version_bump() -> None:
    """Make every process reload the policy (after rules were written other than through these services)."""
    PolicyState.objects.get_or_create(pk=1)
    PolicyState.objects.filter(pk=1).update(version=F("version") + 1)
    transaction.on_commit(reload_policy)


def _changed(
    changed_by: AbstractBaseUser,
    what: str,
    key: str,
    pk: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """After a policy or profile write: every process reloads, and the audit keeps before and after."""
    policy_version_bump()
    verb = "deleted" if after is None else "changed" if before else "added"
    audit_record(
        user=changed_by,
        kind=EventKind.POLICY_CHANGE,
        status=EventStatus.OK,
        message=f"{what} {pk} {verb}",
        details={key: pk, "before": before, "after": after},
    )


@transaction.atomic
def policy_rule_save(*, rule: PolicyRule, changed_by: AbstractBaseUser) -> PolicyRule:
    """Validate and save a rule, record the change in the audit trail and make every process reload."""
    validate_rule(rule)
    before = model_to_dict(PolicyRule.objects.get(pk=rule.pk)) if rule.pk else None
    rule.updated_by = changed_by.get_username()
    rule.save()
    _changed(changed_by, "policy rule", "rule", rule.pk, before, model_to_dict(rule))
    return rule


@transaction.atomic
def policy_rule_delete(*, rule: PolicyRule, changed_by: AbstractBaseUser) -> None:
    before = model_to_dict(rule)
    pk = rule.pk
    rule.delete()
    _changed(changed_by, "policy rule", "rule", pk, before, None)


@transaction.atomic
def policy_load_defaults() -> int:
    """Replace the policy and the masking profiles with the shipped defaults (an empty policy denies
    everything; an empty research profile withholds every direct identifier and free text)."""
    PolicyRule.objects.all().delete()
    PolicyRule.objects.bulk_create(
        PolicyRule(**rule._asdict(), updated_by="default policy") for rule in DEFAULT_RULES
    )
    MaskingRule.objects.all().delete()
    MaskingRule.objects.bulk_create(
        MaskingRule(
            role=line.role,
            masking_class=line.masking_class,
            method=line.method,
            reason=line.reason,
            updated_by="default profiles",
        )
        for line in DEFAULT_LINES
    )
    policy_version_bump()
    return len(DEFAULT_RULES)


@transaction.atomic
def privacy_budget_spend(*, user_id: int, epsilon: float) -> PrivacyBudget:
    """Charge epsilon to the user's differential-privacy budget, or AccessError when it would
    overdraw it (nothing is charged then)."""
    budget, _ = PrivacyBudget.objects.select_for_update().get_or_create(
        user_id=user_id, defaults={"epsilon_total": float(settings.DP_EPSILON_BUDGET)}
    )
    if budget.remaining + 1e-9 < epsilon:
        raise AccessError(
            f"Your privacy budget is spent: this answer needs epsilon {epsilon:g} and "
            f"{budget.remaining:g} of {budget.epsilon_total:g} is left. The privacy office can review "
            "and raise it.",
            code="privacy_budget_spent",
        )
    budget.epsilon_spent += epsilon
    budget.save(update_fields=["epsilon_spent", "updated_at"])
    return budget


@transaction.atomic
def masking_rule_save(*, line: MaskingRule, changed_by: AbstractBaseUser) -> MaskingRule:
    """Validate and save a masking profile line, audit the change and make every process reload."""
    validate_line(line)
    before = model_to_dict(MaskingRule.objects.get(pk=line.pk)) if line.pk else None
    line.updated_by = changed_by.get_username()
    line.save()
    _changed(changed_by, "masking profile line", "masking_rule", line.pk, before, model_to_dict(line))
    return line


@transaction.atomic
def masking_rule_delete(*, line: MaskingRule, changed_by: AbstractBaseUser) -> None:
    before = model_to_dict(line)
    pk = line.pk
    line.delete()
    _changed(changed_by, "masking profile line", "masking_rule", pk, before, None)


@transaction.atomic
def pseudonym_key_rotate(*, project: str, changed_by: AbstractBaseUser, reason: str) -> PseudonymKey:
    """Start a new key generation for a research project: from now on its pseudonyms and date shifts
    are new, and nothing links them to the old ones (the keys themselves are never stored)."""
    if not ResearchProject.objects.filter(code=project).exists():
        raise AccessError(f"There is no research project {project[:30]!r}.", code="unknown_project")
    if len(reason.strip()) < MIN_JUSTIFICATION_CHARS:
        raise AccessError(
            f"Say why the key is rotated, in at least {MIN_JUSTIFICATION_CHARS} characters.",
            code="reason_too_short",
        )
    # Locked so two rotations at once cannot take the same generation.
    current = PseudonymKey.objects.select_for_update().filter(project=project).order_by("-generation").first()
    generation = (current.generation if current else 1) + 1
    key = PseudonymKey.objects.create(
        project=project,
        generation=generation,
        created_at=timezone.now(),
        created_by=changed_by.get_username(),
        reason=reason.strip(),
    )
    audit_record(
        user=changed_by,
        kind=EventKind.POLICY_CHANGE,
        status=EventStatus.OK,
        message=f"pseudonym key of {project} rotated to generation {generation}",
        details={"project": project, "generation": generation, "reason": key.reason},
    )
    return key


# --- Break-glass ----------------------------------------------------------------------------------------


def security_officers() -> list[User]:
    """The active members of the privacy office, by username: who is notified and who reviews."""
    return list(User.objects.filter(is_active=True, profile__role=Role.SECURITY_OFFICER).order_by("username"))


def _notify(
    *, users: list[User], subject: str, body: str, session: BreakGlassSession, now: dt.datetime
) -> None:
    """In the platform at once; by e-mail after commit, so a mail server failure loses nothing recorded."""
    Notification.objects.bulk_create(
        Notification(user=user, subject=subject, body=body, created_at=now, breakglass=session)
        for user in users
    )
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email]) for user in users if user.email]

    def send() -> None:
        try:
            send_mass_mail(messages, fail_silently=False)
        except Exception:
            # The in-platform notification stands; the mail failure is for operators.
            logger.exception("break-glass: e-mail notification failed for session %s", session.pk)

    if messages:
        transaction.on_commit(send)


def _target_exists(scope: str, subject_id: int | None, careunit: str, target: WarehouseTarget) -> bool:
    if scope == BreakGlassScope.PATIENT:
        sql, value = "SELECT 1 FROM patients WHERE subject_id = {}", str(int(subject_id or 0))
    else:
        sql, value = (
            "SELECT 1 FROM transfers WHERE careunit = {} LIMIT 1",
            "'" + careunit.replace("'", "''") + "'",
        )
    try:
        return bool(execute_readonly(sql.format(value), target=target, row_cap=1).rows)
    except WarehouseError:
        return False


def breakglass_open(
    *,
    user: User,
    reason: str,
    justification: str,
    password: str,
    scope: str,
    subject_id: int | None = None,
    careunit: str = "",
    minutes: int | None = None,
    now: dt.datetime | None = None,
    target: WarehouseTarget | None = None,
    client_addr: str = "",
    user_agent: str = "",
) -> BreakGlassSession:
    """Open emergency access for one patient or one unit; AccessError says why it was refused.

    Re-authentication is the account password, checked here even within a signed-in session:
    break-glass must be a deliberate act of the person, not of whoever reaches their screen.
    """
    now = now or timezone.now()
    profile = StaffProfile.objects.filter(user=user).first()
    role = profile.role if profile else ""
    minutes = settings.BREAKGLASS_DEFAULT_MINUTES if minutes is None else minutes

    def refuse(message: str, code: str) -> AccessError:
        audit_record(
            user=user,
            kind=EventKind.BREAKGLASS_OPEN,
            status=EventStatus.DENIED,
            message=message,
            client_addr=client_addr,
            user_agent=user_agent,
            details={
                "code": code,
                "reason": reason,
                "scope": scope,
                "subject_id": subject_id,
                "careunit": careunit,
                "minutes": minutes,
            },
        )
        return AccessError(message, code=code)

    if role not in BREAKGLASS_ROLES:
        raise refuse(
            "Break-glass is for clinical staff; researchers, administrators and the privacy office "
            "cannot open it.",
            "role",
        )
    # Counted from the audit trail (its own clock, whatever `now` a caller replays with).
    wrong = AuditEvent.objects.filter(
        kind=EventKind.BREAKGLASS_OPEN,
        status=EventStatus.DENIED,
        user_id=user.pk,
        occurred_at__gte=timezone.now() - BREAKGLASS_PASSWORD_WINDOW,
        details__code="password",
    ).count()
    if wrong >= BREAKGLASS_PASSWORD_TRIES:
        minutes = int(BREAKGLASS_PASSWORD_WINDOW.total_seconds() // 60)
        raise refuse(
            f"Break-glass is locked for your account after {wrong} wrong passwords in {minutes} minutes; "
            "try again later, or ask a colleague who can open it. Every attempt is in the audit trail.",
            "password_locked",
        )
    if not user.check_password(password):
        raise refuse("The password is not correct; break-glass needs your own password.", "password")
    if reason not in BreakGlassReason.values:
        raise refuse(f"Choose a reason from the list ({', '.join(BreakGlassReason.values)}).", "reason")
    if len(justification.strip()) < MIN_JUSTIFICATION_CHARS:
        raise refuse(
            f"Write at least {MIN_JUSTIFICATION_CHARS} characters saying what the emergency is; "
            "a reviewer reads it.",
            "justification",
        )
    if not 1 <= minutes <= settings.BREAKGLASS_MAX_MINUTES:
        raise refuse(f"Break-glass lasts between 1 and {settings.BREAKGLASS_MAX_MINUTES} minutes.", "minutes")
    if scope == BreakGlassScope.PATIENT:
        if subject_id is None or careunit:
            raise refuse("Name exactly one patient for patient-scoped break-glass.", "scope")
        if profile and profile.staff_id is not None and _is_self(subject_id, profile.staff_id, target):
            raise refuse("Break-glass cannot open your own record.", "self")
    elif scope == BreakGlassScope.UNIT:
        if subject_id is not None or not careunit:
            raise refuse("Name exactly one care unit for unit-scoped break-glass.", "scope")
    else:
        raise refuse("Break-glass is scoped to one patient or one unit.", "scope")
    if not _target_exists(scope, subject_id, careunit, target or warehouse_target()):
        raise refuse(
            f"There is no {_describe_target(scope, subject_id, careunit)} in the warehouse.",
            "unknown_target",
        )
    # Refusals above are recorded on their own; from here on everything is one transaction.
    with transaction.atomic():
        return _open(
            user,
            role,
            reason,
            justification,
            scope,
            subject_id,
            careunit,
            minutes,
            now,
            client_addr,
            user_agent,
        )


def _open(
    user: User,
    role: str,
    reason: str,
    justification: str,
    scope: str,
    subject_id: int | None,
    careunit: str,
    minutes: int,
    now: dt.datetime,
    client_addr: str,
    user_agent: str,
) -> BreakGlassSession:
    open_sessions = BreakGlassSession.objects.select_for_update().filter(
        user=user, ended_at__isnull=True, expires_at__gt=now
    )
    for previous in open_sessions:
        # One open session at a time: a new emergency replaces the last one.
        _end(previous, now, BreakGlassSession.EndReason.ENDED, note="replaced by a new session")
    recent = BreakGlassSession.objects.filter(user=user, opened_at__gt=now - dt.timedelta(days=7)).count()
    session = BreakGlassSession.objects.create(
        user=user,
        username=user.get_username(),
        role=role,
        reason_code=reason,
        justification=justification.strip(),
        scope=scope,
        subject_id=subject_id,
        careunit=careunit,
        opened_at=now,
        expires_at=now + dt.timedelta(minutes=minutes),
        escalated=recent + 1 > settings.BREAKGLASS_ESCALATE_AFTER,
    )
    event = audit_record(
        user=user,
        kind=EventKind.BREAKGLASS_OPEN,
        status=EventStatus.OK,
        breakglass_session_id=session.pk,
        client_addr=client_addr,
        user_agent=user_agent,
        message=f"break-glass opened for {session.target()} for {minutes} minutes",
        patients_touched=[subject_id] if subject_id is not None else [],
        details={
            "reason": reason,
            "justification": session.justification,
            "scope": scope,
            "careunit": careunit,
            "minutes": minutes,
            "escalated": session.escalated,
            "uses_in_7_days": recent + 1,
        },
    )
    heading = "ESCALATED: " if session.escalated else ""
    _notify(
        users=security_officers(),
        # Cut to the column's length: a long username or unit name must not make the opening fail.
        subject=f"{heading}Break-glass opened by {session.username} ({session.target()})"[:_SUBJECT_CHARS],
        body=(
            f"{session.username} ({session.get_role_display()}) opened break-glass access to "
            f"{session.target()} at {_utc(now)} UTC for {minutes} minutes.\n"
            f"Reason: {session.get_reason_code_display()}\nJustification: {session.justification}\n"
            + (
                f"This is their use number {recent + 1} in 7 days "
                f"(more than {settings.BREAKGLASS_ESCALATE_AFTER}): escalated.\n"
                if session.escalated
                else ""
            )
            + f"Review it in the platform (break-glass session {session.pk}, audit event {event.pk})."
        ),
        session=session,
        now=now,
    )
    return session


def _describe_target(scope: str, subject_id: int | None, careunit: str) -> str:
    return f"patient {subject_id}" if scope == BreakGlassScope.PATIENT else f"unit {careunit!r}"


def _is_self(subject_id: int, staff_id: int, target: WarehouseTarget | None) -> bool:
    sql = (
        f"SELECT 1 FROM patient_identity WHERE subject_id = {int(subject_id)} AND staff_id = {int(staff_id)}"
    )
    try:
        return bool(execute_readonly(sql, target=target or warehouse_target(), row_cap=1).rows)
    except WarehouseError:
        return False  # no identity tables: nothing links staff to patients


def _end(session: BreakGlassSession, now: dt.datetime, why: str, note: str = "") -> None:
    session.ended_at = min(now, session.expires_at)
    session.end_reason = why
    session.save(update_fields=["ended_at", "end_reason"])
    audit_record(
        user=session.user,
        kind=EventKind.BREAKGLASS_CLOSE,
        status=EventStatus.OK,
        breakglass_session_id=session.pk,
        message=f"break-glass {why}" + (f" ({note})" if note else ""),
        details={"queries": session.queries, "end_reason": why},
    )


def _refused(
    user: User, kind: str, error: AccessError, session_id: int, details: dict[str, object]
) -> AccessError:
    """Record a refused break-glass action; called after the transaction rolled back, so it stays."""
    audit_record(
        user=user,
        kind=kind,
        status=EventStatus.DENIED,
        breakglass_session_id=session_id,
        message=error.message,
        details={"code": error.code, **details},
    )
    return error


def breakglass_end(*, user: User, session_id: int, now: dt.datetime | None = None) -> BreakGlassSession:
    """End one's own open session early; a refusal is recorded in the audit trail and raised."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _end_early(user, session_id, now)
    except AccessError as error:
        raise _refused(user, EventKind.BREAKGLASS_CLOSE, error, session_id, {}) from None


def _end_early(user: User, session_id: int, now: dt.datetime) -> BreakGlassSession:
    session = BreakGlassSession.objects.select_for_update().filter(pk=session_id, user=user).first()
    if session is None:
        raise AccessError("There is no such break-glass session of yours.", code="not_found")
    if session.ended_at is not None:
        raise AccessError(
            f"This break-glass session already ended at {_utc(session.ended_at)} UTC.", code="ended"
        )
    if session.expires_at <= now:
        raise AccessError(
            f"This break-glass session expired at {_utc(session.expires_at)} UTC.", code="ended"
        )
    _end(session, now, BreakGlassSession.EndReason.ENDED)
    return session


def _utc(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


@transaction.atomic
def breakglass_expire_due(*, now: dt.datetime | None = None) -> int:
    """Close the sessions whose time is up (access already stopped at expiry; this records it)."""
    now = now or timezone.now()
    due = list(
        BreakGlassSession.objects.select_for_update().filter(ended_at__isnull=True, expires_at__lte=now)
    )
    for session in due:
        _end(session, now, BreakGlassSession.EndReason.EXPIRED)
    return len(due)


def breakglass_review(
    *, officer: User, session_id: int, outcome: str, notes: str, now: dt.datetime | None = None
) -> BreakGlassSession:
    """A security officer closes the review item of a session; a refusal is recorded and raised."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _review(officer, session_id, outcome, notes, now)
    except AccessError as error:
        raise _refused(
            officer, EventKind.BREAKGLASS_REVIEW, error, session_id, {"outcome": outcome}
        ) from None


def _review(officer: User, session_id: int, outcome: str, notes: str, now: dt.datetime) -> BreakGlassSession:
    profile = StaffProfile.objects.filter(user=officer).first()
    if profile is None or profile.role != Role.SECURITY_OFFICER:
        raise AccessError("Only the privacy office reviews break-glass sessions.", code="role")
    session = BreakGlassSession.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        raise AccessError("There is no such break-glass session.", code="not_found")
    if session.user_id == officer.pk:
        raise AccessError("Nobody reviews their own break-glass session.", code="own_session")
    if outcome not in (BreakGlassSession.Review.APPROPRIATE, BreakGlassSession.Review.INAPPROPRIATE):
        raise AccessError("The outcome is appropriate or inappropriate.", code="outcome")
    if session.review != BreakGlassSession.Review.PENDING:
        raise AccessError("This session has already been reviewed.", code="reviewed")
    if session.ended_at is None and session.expires_at > now:
        raise AccessError("The session is still open; review it once it has ended.", code="open")
    if not notes.strip():
        raise AccessError("Say what the review found; the note is kept with the session.", code="notes")
    session.review = outcome
    session.reviewed_by = officer.get_username()
    session.reviewed_at = now
    session.review_notes = notes.strip()
    session.save(update_fields=["review", "reviewed_by", "reviewed_at", "review_notes"])
    audit_record(
        user=officer,
        kind=EventKind.BREAKGLASS_REVIEW,
        status=EventStatus.OK,
        breakglass_session_id=session.pk,
        message=f"break-glass session {session.pk} reviewed: {outcome}",
        details={"outcome": outcome, "notes": session.review_notes, "user": session.username},
    )
    return session
