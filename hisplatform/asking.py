"""Questions asked on the web page: run as a Celery task, the answer kept in the cache for the page
(polling, pages of rows) so that nothing is asked, and audited, twice."""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from accessctl.models import BreakGlassSession, Purpose
from accessctl.services import BREAKGLASS_ROLES
from accessctl.subjects import subject_for
from audit.models import AuditEvent
from hisplatform.models import ResearchProject, Role
from hisplatform.queries import DENIED, ERROR, Answer, answer_question, default_purpose
from hisplatform.selectors import PastQuestion, question_history
from nlquery.engine import MAX_QUESTION_CHARS
from nlquery.suggest import Example, example_questions

logger = logging.getLogger(__name__)

# How long a question's inputs and answer are kept for its page; after that its pages answer 404.
JOB_SECONDS: Final = 30 * 60
PENDING_SLOW_SECONDS: Final = 60  # a question still unanswered after this is said to be slow
ASKING_ROLES: Final = frozenset(
    {Role.CLINICIAN, Role.NURSE, Role.DEPARTMENT_HEAD, Role.RESEARCHER, Role.ADMINISTRATOR}
)
# Refusals an emergency could lift: the data is there, the asker's care relationship is not.
SCOPE_REFUSALS: Final = frozenset({"out_of_scope", "breakglass_expired"})
_JOB_ID: Final = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)
# The refusals' own words when they name one patient (hisplatform/queries.py); several name none here.
_ONE_PATIENT: Final = re.compile(
    r"You may not see this: patient (\d{1,12}) is outside"
    r"|Your break-glass access to patient (\d{1,12}) ended"
)
_HISTORY_SHOWN: Final = 10


class AnswersUnavailable(Exception):
    """The cache that keeps answers cannot be read (Redis down)."""


@dataclass(frozen=True)
class Job:
    """A question asked from the page and, once answered, its answer."""

    id: str | None  # None: answered in the request and not kept (the cache is down), so not pageable
    question: str
    purpose: str  # as asked ("" for the role's default)
    project: str
    confirm: bool
    asked_at: dt.datetime
    answer: Answer | None = None  # None while the task runs

    @property
    def waited_seconds(self) -> float:
        return (timezone.now() - self.asked_at).total_seconds()

    @property
    def slow(self) -> bool:
        return self.answer is None and self.waited_seconds > PENDING_SLOW_SECONDS


@dataclass(frozen=True)
class Asker:
    """Who is on the page and what the page offers them."""

    role: str
    default_purpose: str
    projects: list[tuple[str, str]] = field(default_factory=list)  # (code, title): approved, unexpired

    @property
    def may_ask(self) -> bool:
        return self.role in ASKING_ROLES

    @property
    def may_break_glass(self) -> bool:
        return self.role in BREAKGLASS_ROLES


def asker_for(*, user: AbstractBaseUser | AnonymousUser) -> Asker:
    """The asker's role, default purpose of use and research projects, as the pipeline will read them."""
    now = timezone.now()
    subject = subject_for(user=user, clock=now, data_now=now)
    projects: list[tuple[str, str]] = []
    if subject.projects:
        titles = dict(ResearchProject.objects.filter(code__in=subject.projects).values_list("code", "title"))
        projects = [(code, titles.get(code, code)) for code in subject.projects]
    return Asker(role=subject.role, default_purpose=default_purpose(subject), projects=projects)


def history_for(*, fetched_by: AbstractBaseUser | AnonymousUser) -> list[PastQuestion]:
    """The user's own recent questions, each once (newest first), that can be asked again as written."""
    seen: set[str] = set()
    shown: list[PastQuestion] = []
    for past in question_history(fetched_by=fetched_by, limit=5 * _HISTORY_SHOWN):
        text = past.question.strip()
        if text and len(text) <= MAX_QUESTION_CHARS and text not in seen:
            seen.add(text)
            shown.append(past)
        if len(shown) == _HISTORY_SHOWN:
            break
    return shown


def examples_for(*, asker: Asker) -> tuple[Example, ...]:
    return example_questions(asker.role)


def job_start(
    *,
    user: AbstractBaseUser,
    question: str,
    purpose: str = "",
    project: str = "",
    confirm: bool = False,
    client_addr: str = "",
    user_agent: str = "",
) -> Job:
    """Ask a question as a task and return its job (answered already when tasks run in-process).

    The inputs go to the cache, only the job's id to the broker. With the broker down the question is
    answered here instead; with the cache down too, answered here and not kept.
    """
    inputs = _inputs(user, question, purpose, project, confirm, client_addr, user_agent)
    if len(question) > MAX_QUESTION_CHARS:
        # Refused at once by the pipeline: nothing to wait for, and no need to keep the text.
        return _job(None, inputs, _ask(inputs))
    try:
        job = _create(inputs)
    except AnswersUnavailable as error:
        logger.warning("Ask: answers cannot be kept (%s); answering in the request.", error)
        return _job(None, inputs, _ask(inputs))
    assert job.id is not None
    if not _queue(job.id):
        job_run(job_id=job.id)
    try:
        return _read(job.id) or job
    except AnswersUnavailable:
        return job


def _inputs(
    user: AbstractBaseUser,
    question: str,
    purpose: str,
    project: str,
    confirm: bool,
    client_addr: str,
    user_agent: str,
) -> dict[str, Any]:
    return {
        "user_id": user.pk,
        "question": question,
        "purpose": purpose,
        "project": project,
        "confirm": confirm,
        "client_addr": client_addr,
        "user_agent": user_agent,
        "asked_at": timezone.now(),
        "answer": None,
    }


def _create(inputs: dict[str, Any]) -> Job:
    job_id = secrets.token_urlsafe(24)
    try:
        cache.set(_key(job_id), inputs, JOB_SECONDS)
    except Exception as error:  # the cache backend's own error (redis, memcached, ...), whatever it is
        raise AnswersUnavailable(type(error).__name__) from error
    return _job(job_id, inputs, None)


def _queue(job_id: str) -> bool:
    """Queue the task; False when the broker cannot take it."""
    from hisplatform.tasks import answer_question_task

    try:
        # retry=False: with the broker down, answer in the request at once rather than hold it while
        # the client retries.
        answer_question_task.apply_async(args=(job_id,), retry=False)
    except (KombuError, RedisError, OSError) as error:
        logger.warning(
            "Ask: the task queue is unavailable (%s); answering in the request.", type(error).__name__
        )
        return False
    return True


def job_run(*, job_id: str) -> None:
    """Answer the job's question and keep the answer (the task's body). Runs once per job: a task the
    broker delivers again (its worker died) finds the job claimed and leaves it."""
    try:
        inputs = cache.get(_key(job_id))
        claimed = (
            isinstance(inputs, dict)
            and inputs.get("answer") is None
            and cache.add(_claim_key(job_id), True, JOB_SECONDS)
        )
    except Exception as error:  # the cache backend's own error, whatever it is
        logger.warning("Ask job %s: the cache cannot be read (%s).", job_id, type(error).__name__)
        return
    if not claimed:
        return
    assert isinstance(inputs, dict)
    answer = _ask(inputs)
    try:
        cache.set(_key(job_id), {**inputs, "answer": answer.as_dict()}, JOB_SECONDS)
    except Exception as error:  # the cache backend's own error, whatever it is
        logger.warning("Ask job %s: the answer could not be kept (%s).", job_id, type(error).__name__)


def job_for(*, job_id: str, fetched_by: AbstractBaseUser | AnonymousUser) -> Job | None:
    """The job, if it exists and this user asked it; None otherwise (another user's job is not found).
    Raises AnswersUnavailable when the cache cannot be read."""
    if not fetched_by.is_authenticated or fetched_by.pk is None or not _JOB_ID.fullmatch(job_id):
        return None
    job = _read(job_id, user_id=fetched_by.pk)
    if job is None or job.answer is None:
        return job
    return replace(job, answer=_withdrawn_if_breakglass_ended(job.answer))


def _withdrawn_if_breakglass_ended(answer: Answer) -> Answer:
    """An answer given under break-glass is shown only while that session is open: once it ends or
    expires, its kept rows are withdrawn as the pipeline would refuse them now (asking again is audited)."""
    if answer.audit_event is None:
        return answer
    session_id = (
        AuditEvent.objects.filter(seq=answer.audit_event)
        .values_list("breakglass_session_id", flat=True)
        .first()
    )
    if session_id is None:
        return answer
    session = BreakGlassSession.objects.filter(pk=session_id).first()
    now = timezone.now()
    if session is not None and session.ended_at is None and session.expires_at > now:
        return answer
    ended = (session.ended_at or session.expires_at) if session is not None else now
    target = session.target() if session is not None else "this patient"
    return Answer(
        DENIED,
        f"Your break-glass access to {target} ended at {ended.astimezone(dt.UTC):%H:%M} UTC, so this answer, "
        "given under it, is no longer shown. If the emergency continues, open break-glass again.",
        code="breakglass_expired",
        interpretation=answer.interpretation,
        purpose=answer.purpose,
        audit_event=answer.audit_event,
    )


def _read(job_id: str, user_id: Any = None) -> Job | None:
    try:
        inputs = cache.get(_key(job_id))
    except Exception as error:  # the cache backend's own error, whatever it is
        raise AnswersUnavailable(type(error).__name__) from error
    if not isinstance(inputs, dict) or (user_id is not None and inputs.get("user_id") != user_id):
        return None
    stored = inputs.get("answer")
    if not isinstance(stored, dict):
        return _job(job_id, inputs, None)
    # Only the fields Answer has now: an answer kept by the release before this one still reads.
    return _job(
        job_id, inputs, Answer(**{f.name: stored[f.name] for f in fields(Answer) if f.name in stored})
    )


def _job(job_id: str | None, inputs: dict[str, Any], answer: Answer | None) -> Job:
    return Job(
        id=job_id,
        question=inputs["question"],
        purpose=inputs["purpose"],
        project=inputs["project"],
        confirm=inputs["confirm"],
        asked_at=inputs["asked_at"],
        answer=answer,
    )


def _ask(inputs: dict[str, Any]) -> Answer:
    user = get_user_model()._default_manager.filter(pk=inputs["user_id"], is_active=True).first()
    if user is None:
        return Answer(
            ERROR, "Your account is no longer active, so the question was not asked.", code="inactive"
        )
    return answer_question(
        user=user,
        question=inputs["question"],
        purpose=inputs["purpose"] or None,
        confirm_special=inputs["confirm"],
        project=inputs["project"] or None,
        client_addr=inputs["client_addr"],
        user_agent=inputs["user_agent"],
        channel="web",
    )


def _key(job_id: str) -> str:
    return f"his:ask:job:{job_id}"


def _claim_key(job_id: str) -> str:
    return f"his:ask:claim:{job_id}"


def breakglass_patient(*, asker: Asker, answer: Answer) -> tuple[bool, int | None]:
    """Whether to offer break-glass for this refusal, and the one patient it names (None if not one)."""
    if not asker.may_break_glass or answer.status != DENIED or answer.code not in SCOPE_REFUSALS:
        return False, None
    found = _ONE_PATIENT.match(answer.message)
    if found is None:
        return True, None
    return True, int(found.group(1) or found.group(2))


def purpose_choices() -> list[tuple[str, str]]:
    return [(str(value), f"{label} ({value})") for value, label in Purpose.choices]
