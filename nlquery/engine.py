"""Question in, plan and SQL out, or an honest abstention.

Understanding composes three readers and a learned choice: rule readers find the patient, the
values (against the warehouse's dictionaries), time constraints and closed-vocabulary findings;
every plan family whose needs they meet binds a plan; the classifier (nlquery.classifier) says which
family the question asks for. The answer is that family's plan only when the classifier is
confident, prefers it over "unanswerable", and the values are read one way only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Final

from django.conf import settings
from sqlglot import exp

from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget, warehouse_target
from nlquery import classifier
from nlquery.families import FAMILIES, CompileError, Filter, Found, QueryPlan
from nlquery.families.base import families_for
from nlquery.families.core import EVENT_OF_KIND
from nlquery.matcher import ValueMatcher, value_matcher
from nlquery.plan import Unanswerable
from nlquery.reading import read_question
from nlquery.semantic import semantic_layer
from nlquery.semantic.loader import SemanticLayer
from nlquery.sqlparts import Ctx, TimeCompileError
from nlquery.timeexpr import impossible_dates

# Questions longer than this are refused before any reading: no clinician types a 1,000-character
# question, and bounding the input bounds the work.
MAX_QUESTION_CHARS: Final = 1_000


def now_text() -> str:
    """The moment relative times are read against: NLQ_NOW, or the clock."""
    configured: str = settings.NLQ_NOW
    return configured or datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def clean(question: str) -> str:
    """One line of printable text: control and format characters become spaces, Unicode is NFKC."""
    text = unicodedata.normalize("NFKC", question)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


# --- Suggestions ---------------------------------------------------------------------------------

_SUGGESTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "patient": (
        "What was the last {lab} value of patient {patient} on the last hospital visit?",
        "Has patient {patient} been prescribed {drug} since 2 years ago?",
        "What is the gender of patient {patient}?",
    ),
    "count": (
        "How many patients were prescribed {drug}?",
        "Count the number of patients who received a {lab} lab test since 1 year ago.",
        "Count the number of current patients.",
    ),
    "topk": (
        "What are the top 5 most frequent diagnoses since 1 year ago?",
        "What are the 3 most frequently prescribed drugs?",
        "What are the top 4 most common lab tests?",
    ),
}


@dataclass(frozen=True)
class _Examples:
    patient: str
    lab: str
    drug: str


_EXAMPLE_SQL: Final = {
    # A patient with a completed visit, a common lab test and a common drug: real values, so every
    # suggestion can be answered as written.
    "patient": "SELECT MIN(subject_id) FROM admissions WHERE dischtime IS NOT NULL",
    "lab": "SELECT d_labitems.label FROM labevents JOIN d_labitems ON d_labitems.itemid = labevents.itemid "
    "GROUP BY d_labitems.label ORDER BY COUNT(*) DESC, d_labitems.label LIMIT 1",
    "drug": "SELECT drug FROM prescriptions GROUP BY drug ORDER BY COUNT(*) DESC, drug LIMIT 1",
}


@lru_cache(maxsize=8)
def _examples(target: WarehouseTarget) -> _Examples | None:
    found: dict[str, str] = {}
    for name, sql in _EXAMPLE_SQL.items():
        try:
            rows = execute_readonly(sql, target=target).rows
        except WarehouseError:
            return None
        if not rows or rows[0][0] is None:
            return None
        found[name] = str(rows[0][0])
    return _Examples(**found)


def suggestions(kind: str, target: WarehouseTarget | None) -> tuple[str, ...]:
    """Two or three questions of this kind the engine answers, with values from the warehouse."""
    examples = _examples(target) if target is not None else None
    templates = _SUGGESTIONS.get(kind, _SUGGESTIONS["patient"])
    if examples is None:
        return tuple(t for t in _SUGGESTIONS["topk"])
    return tuple(t.format(patient=examples.patient, lab=examples.lab, drug=examples.drug) for t in templates)


# --- Understanding -------------------------------------------------------------------------------


def _understood(found: Found) -> tuple[str, ...]:
    parts = [f"patient {p}" for p in found.patients]
    for readings in found.spans:
        kinds = " or ".join(sorted({r.kind for r in readings}))
        parts.append(f"{kinds} {readings[0].value!r}")
    parts.extend(f"time {t.text.strip()!r}" for t in found.time if t.text)
    parts.extend(f"{f.kind} {f.value}" for f in found.patterns if f.kind != "patient")
    return tuple(parts)


def _event_probability(plan: QueryPlan, guess: classifier.Guess) -> float:
    """How sure the event is: certain when a value of it is named; else read from the event's own words
    ("medication", "lab test") when the question uses them; else the event model's say."""
    if not plan.event or any(EVENT_OF_KIND.get(f.kind) == plan.event for f in plan.filters):
        return 1.0
    if guess.cues:
        if plan.event not in guess.cues:
            return 0.0
        if len(guess.cues) == 1:
            return 1.0
        total = sum(guess.events.get(e, 0.0) for e in guess.cues)
        return guess.events.get(plan.event, 0.0) / total if total else 1.0 / len(guess.cues)
    return guess.events.get(plan.event, 0.0)


def _min_confidence(model: Path) -> float:
    """NLQ_MIN_CONFIDENCE_PERCENT when set, else the threshold `nlq_train` calibrated on train folds."""
    percent: int | None = settings.NLQ_MIN_CONFIDENCE_PERCENT
    return classifier.load(model).threshold if percent is None else percent / 100.0


def understand(
    question: str,
    matcher: ValueMatcher,
    *,
    target: WarehouseTarget | None = None,
    min_confidence: float | None = None,
    model: Path = classifier.MODEL_PATH,
) -> QueryPlan | Unanswerable:
    text = clean(question)
    if not text:
        return Unanswerable(
            "The question is empty.", suggestions=suggestions("patient", target), code="empty_question"
        )
    if len(text) > MAX_QUESTION_CHARS:
        return Unanswerable(
            f"The question is {len(text):,} characters long; ask it in at most {MAX_QUESTION_CHARS:,}.",
            suggestions=suggestions("patient", target),
            code="question_too_long",
        )
    impossible = impossible_dates(text)
    if impossible:
        return Unanswerable(
            f"{impossible[0]} is not a date on the calendar; check the day and month.",
            not_understood=tuple(f"the date {date}" for date in impossible),
            suggestions=suggestions("patient", target),
            code="bad_date",
        )
    found = read_question(text, matcher)
    understood = _understood(found)
    choice = choose(found, classifier.guess(found, model))
    threshold = _min_confidence(model) if min_confidence is None else min_confidence
    hints = suggestions(choice.kind, target)
    best, confidence = choice.best, choice.confidence
    if best is None:
        return Unanswerable(
            "No kind of question the warehouse answers fits everything this question names.",
            understood=understood,
            suggestions=hints,
        )
    if choice.unknown:
        # Words no training question ever used are words the engine cannot honour: answering
        # without them would answer another question.
        return Unanswerable(
            "The question uses words the engine does not understand.",
            understood=understood,
            not_understood=tuple(f"the word {word!r}" for word in choice.unknown),
            suggestions=hints,
            confidence=confidence,
        )
    refused, unsupported = choice.refused, choice.unsupported
    if max(refused, unsupported) >= confidence or confidence < threshold:
        if refused >= max(confidence, unsupported):
            reason = "This looks like a question the warehouse cannot answer."
        elif unsupported >= confidence:
            reason = "This kind of question is not one the engine answers reliably yet."
        else:
            reason = f"The question was not understood confidently enough ({confidence:.0%}) to answer it."
        return Unanswerable(
            reason,
            understood=understood,
            not_understood=(f"what is asked: perhaps {FAMILIES[best.family].describe(best)}",),
            suggestions=hints,
            confidence=confidence,
        )
    if len(choice.readings) > 1:
        readings = " or ".join(sorted({", ".join(f"{f.kind} {f.value}" for f in r) for r in choice.readings}))
        return Unanswerable(
            f"The question names a value that could be read several ways: {readings}.",
            understood=understood,
            not_understood=("which value is meant",),
            suggestions=hints,
            confidence=confidence,
        )
    return replace(best, confidence=confidence, interpretation=FAMILIES[best.family].describe(best))


@dataclass(frozen=True)
class Choice:
    """The likeliest plan and what speaks against it, before any threshold."""

    best: QueryPlan | None
    confidence: float
    refused: float  # the classifier's say for "unanswerable", among the feasible shapes
    unsupported: float
    unknown: tuple[str, ...]
    readings: frozenset[tuple[Filter, ...]]  # the best family's ways of reading the values
    kind: str  # the kind of question it looks like, for suggestions

    @property
    def answers(self) -> bool:
        """Whether it answers at this threshold-free stage (the threshold then decides)."""
        return (
            self.best is not None
            and not self.unknown
            and len(self.readings) == 1
            and self.confidence > max(self.refused, self.unsupported)
        )


def choose(found: Found, guess: classifier.Guess) -> Choice:
    plans = [plan for family in families_for(found) for plan in family.bind(found)]
    top_shape = max(
        (kv for kv in guess.shapes.items() if kv[0] not in classifier.ABSTAIN_LABELS),
        key=lambda kv: kv[1],
        default=("", 0.0),
    )[0]
    kind = next(
        (f.kind for f in FAMILIES.values() if classifier.split_label(f.name)[0] == top_shape), "patient"
    )
    if not plans:
        return Choice(None, 0.0, 0.0, 0.0, guess.unknown, frozenset(), kind)
    # Plans that return what the question asks for (a time for "when") and cover every event it names.
    asked = answer_type(found.text)
    layer = semantic_layer()
    framing = frozenset(e.name for e in layer.events.values() if e.table in _VISIT_TABLES)
    fitting = [p for p in plans if _fits_question(p, asked, guess, layer, framing)]
    # The classifier's say among the shapes that can answer at all: a shape that binds nothing the
    # question names, or returns the wrong kind of answer, is no rival, however likely its wording.
    feasible = {classifier.split_label(p.family)[0] for p in fitting} | set(classifier.ABSTAIN_LABELS)
    mass = sum(guess.shapes.get(shape, 0.0) for shape in feasible) or 1.0
    best: QueryPlan | None = None
    confidence = 0.0
    for plan in fitting:
        score = guess.shape(plan.family) / mass * _event_probability(plan, guess)
        if best is None or score > confidence:
            best, confidence = plan, score
    refused = guess.shapes.get(classifier.UNANSWERABLE, 0.0) / mass
    unsupported = guess.shapes.get(classifier.UNSUPPORTED, 0.0) / mass
    if best is None:
        return Choice(None, 0.0, refused, unsupported, guess.unknown, frozenset(), kind)
    return Choice(
        best,
        confidence,
        refused,
        unsupported,
        guess.unknown,
        frozenset(p.filters for p in plans if p.family == best.family),
        FAMILIES[best.family].kind,
    )


# What the question's own words say the answer is: a moment, a yes or no, or a count.
_ASKS_TIME = re.compile(
    r"\bwhen (?:was|were|did|is|has|have|does|do)\b|\bwhat (?:time|date|day)\b"
    r"|\b(?:on|at) what (?:date|time)\b|\bwhat (?:was|is|were) the (?:\w+ )?time\b"
    r"|^\W*(?:the )?(?:first|last) time\b",
    re.IGNORECASE,
)
# "Is patient 10014078 male or female?" asks which, not whether.
_ASKS_YES_NO = re.compile(
    r"^\W*(?:is|are|was|were|has|have|had|did|does|do)\b(?!\s+you\b)(?!.*\bor\b)", re.IGNORECASE
)
_ASKS_COUNT = re.compile(
    r"^\W*(?:how many|count\b|calculate the (?:number|count)|(?:what is|what's|give me|tell me) the "
    r"(?:total )?(?:number|count)\b|number of\b)",
    re.IGNORECASE,
)


# "What...", "which...", "list...": an answer other than yes or no.
_ASKS_WHAT = re.compile(r"^\W*(?:what|which|list|show|name|give|tell|display|get|find)\b", re.IGNORECASE)


def answer_type(question: str) -> str:
    """What the question's wording asks for: "time", "yes/no", "count", "not yes/no" or "" (anything)."""
    if _ASKS_TIME.search(question):
        return "time"
    if _ASKS_YES_NO.search(question):
        return "yes/no"
    if _ASKS_COUNT.search(question):
        return "count"
    if _ASKS_WHAT.search(question):
        return "not yes/no"
    return ""


def _plan_answer_type(plan: QueryPlan) -> str:
    """What the plan's SQL returns: "time" (a time column), "yes/no" (a comparison) or "other"."""
    # Keyed on what decides the answer's type (values and times do not), so a family is compiled
    # once per kind of plan, not for every question.
    key = (plan.family, plan.option, bool(plan.ordinals), plan.aggregate)
    known = _ANSWER_TYPES.get(key)
    if known is None:
        known = _ANSWER_TYPES[key] = _compiled_answer_type(plan)
    return known


_ANSWER_TYPES: dict[tuple[str, str, bool, str], str] = {}


def _compiled_answer_type(plan: QueryPlan) -> str:
    try:
        query = FAMILIES[plan.family].compile(plan, Ctx("sqlite", "2000-01-01 00:00:00"), semantic_layer())
    except (CompileError, TimeCompileError):
        return "other"
    while isinstance(query, exp.SetOperation):
        query = query.this
    if not isinstance(query, exp.Select) or len(query.expressions) != 1:
        return "other"
    selected = query.expressions[0].unalias()
    if isinstance(selected, exp.Column) and selected.name in _time_columns():
        return "time"
    if any(
        isinstance(node, _COMPARISONS) for node in selected.walk(prune=lambda n: isinstance(n, exp.Query))
    ):
        return "yes/no"
    return "other"


_VISIT_TABLES: Final = frozenset({"admissions", "icustays"})
_COMPARISONS = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ)


@lru_cache(maxsize=1)
def _time_columns() -> frozenset[str]:
    layer = semantic_layer()
    return frozenset(c for table in layer.tables.values() for c in table.time_columns)


def _fits_question(
    plan: QueryPlan, asked: str, guess: classifier.Guess, layer: SemanticLayer, framing: frozenset[str]
) -> bool:
    """The plan returns what the question asks for and covers every event the question names.

    Visits and ICU stays (`framing`) frame every question ("the cost of hospital visits with ..."):
    only the events asked about must be covered.
    """
    if plan.event in layer.events:
        involved = {plan.event, plan.after_event} | {
            EVENT_OF_KIND.get(f.kind, "") for f in (*plan.filters, *plan.after)
        }
        if any(event not in involved and event not in framing for event in guess.cues):
            return False
    if not asked:
        return True
    returns = _plan_answer_type(plan)
    if asked == "count":
        return returns == "other"
    if asked == "not yes/no":
        return returns != "yes/no"
    return returns == asked


def plan_question(question: str, target: WarehouseTarget | None = None) -> QueryPlan | Unanswerable:
    target = target or warehouse_target()
    return understand(question, value_matcher(target), target=target)


def compile_sql(
    plan: QueryPlan,
    dialect: str,
    now: str | None = None,
    layer: SemanticLayer | None = None,
    *,
    labels: bool = True,
) -> str:
    """The plan as SQL in the dialect; CompileError when it cannot be expressed."""
    ctx = Ctx(dialect, now or now_text(), labels)
    try:
        # The tree is built for this call alone: render it without sqlglot's defensive copy.
        return (
            FAMILIES[plan.family]
            .compile(plan, ctx, layer or semantic_layer())
            .sql(dialect=dialect, copy=False)
        )
    except TimeCompileError as error:
        raise CompileError(str(error)) from None


def predict_sql(
    question: str, target: WarehouseTarget | None = None, now: str | None = None, *, labels: bool = True
) -> str | None:
    """SQL answering the question on the target's dialect, or None when the engine abstains.

    `labels=False` gives EHRSQL's answer format (grouped values without what each group is).
    """
    target = target or warehouse_target()
    plan = plan_question(question, target)
    if isinstance(plan, Unanswerable):
        return None
    try:
        return compile_sql(plan, target.dialect, now, labels=labels)
    except CompileError:
        return None
