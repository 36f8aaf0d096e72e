"""Question -> QueryPlan or Unanswerable: values, patterns, time and the learned kind, composed.

Each family below states what it needs (a kind, cue words, slots); a plan is made only when every
need is met and nothing in the question is left that the family cannot honour. Otherwise the
answer is an abstention: no silent guess.
"""

from __future__ import annotations

import re

from nlquery.kinds import guess_kind
from nlquery.matcher import ValueMatcher
from nlquery.patterns import find_patterns
from nlquery.plan import Filter, QueryPlan, Unanswerable
from nlquery.timeexpr import find_time_constraints

# Questions longer than this are refused before any parsing: no clinician types a 2,000-character
# question, and bounding the input bounds the work.
MAX_QUESTION_CHARS = 1_000
# The classifier's "unanswerable" is final only this sure; below it, a family whose explicit cues and
# slots all match may still answer if the classifier gives its kind at least FAMILY_KIND_FLOOR.
UNANSWERABLE_VETO = 0.9
FAMILY_KIND_FLOOR = 0.25

SUGGESTIONS = (
    "What is the gender of patient 10014078?",
    "What is the intake method of amoxicillin?",
    "What is the cost of a procedure named other incision of brain?",
)

_ROUTE_CUE = re.compile(r"\b(route|intake method|administ|deliver|ingest|taken|given|method|way)", re.I)
_COST_CUE = re.compile(r"\b(cost|price|charge|expense|fee|pay)", re.I)
# Patient attributes by the words that ask for them; admissions attributes need a visit.
_ATTRIBUTES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"\b(gender|sex)\b", re.I), "patients.gender", "the gender"),
    (
        re.compile(r"\b(date of birth|birth ?date|birthday|dob|born)\b", re.I),
        "patients.dob",
        "the date of birth",
    ),
    (re.compile(r"\binsurance\b", re.I), "admissions.insurance", "the insurance"),
    (re.compile(r"\bmarital\b", re.I), "admissions.marital_status", "the marital status"),
    (re.compile(r"\blanguage\b", re.I), "admissions.language", "the language"),
)


def understand(question: str, matcher: ValueMatcher) -> QueryPlan | Unanswerable:
    text = question.strip()
    if not text:
        return Unanswerable("The question is empty.", suggestions=SUGGESTIONS)
    if len(text) > MAX_QUESTION_CHARS:
        return Unanswerable(
            f"The question is {len(text):,} characters long; ask it in at most {MAX_QUESTION_CHARS:,}.",
            suggestions=SUGGESTIONS,
        )
    patterns = find_patterns(text)
    # "pt 10018081" names a patient, not the prothrombin-time lab: identifiers win their span.
    taken = [(f.start, f.end) for f in patterns if f.kind == "patient"]
    values = [v for v in matcher.find(text) if not any(v.start < e and s < v.end for s, e in taken)]
    guess = guess_kind(text, values)
    if guess.kind == "unanswerable" and guess.confidence >= UNANSWERABLE_VETO:
        return Unanswerable(
            "This does not look like a question the warehouse can answer.", suggestions=SUGGESTIONS
        )
    likely = {kind for kind, p in guess.ranked if p >= FAMILY_KIND_FLOOR}
    time = tuple(find_time_constraints(text))
    patients = sorted({f.value for f in patterns if f.kind == "patient" and isinstance(f.value, int)})
    spans = {(v.start, v.end) for v in values}
    confidence = guess.confidence

    if "lookup" in likely and not patients:
        drugs = [v for v in values if v.kind == "drug" and v.exact]
        if len(spans) == 1 and len(drugs) == 1 and _ROUTE_CUE.search(text) and not time:
            drug = drugs[0].value
            return QueryPlan(
                "lookup", "lookup.route", filters=(Filter("drug", drug),), confidence=confidence,
                interpretation=f"Listing the routes by which {drug} is given.",
            )  # fmt: skip
        typed = [v for v in values if v.kind in ("drug", "procedure", "diagnosis") and v.exact]
        if len(spans) == 1 and len(typed) == 1 and _COST_CUE.search(text) and not time:
            target = typed[0]
            return QueryPlan(
                "lookup", "lookup.cost", filters=(Filter(target.kind, target.value),), confidence=confidence,
                interpretation=f"Listing the charged costs of the {target.kind} {target.value}.",
            )  # fmt: skip
    if "patient" in likely and len(patients) == 1 and not values:
        asked = [(column, words) for pattern, column, words in _ATTRIBUTES if pattern.search(text)]
        if len(asked) == 1:
            column, words = asked[0]
            visits = [c for c in time if c.kind == "visit" and c.visit == "hospital"]
            others = [c for c in time if c not in visits and c.kind != "ordinal"]
            table = column.split(".")[0]
            if (table == "patients" and not time) or (
                table == "admissions" and len(visits) == 1 and not others
            ):
                when = f" on the {visits[0].which} hospital visit" if visits else ""
                return QueryPlan(
                    "patient", "patient.attribute", subject_id=patients[0], attribute=column, time=time,
                    confidence=confidence, interpretation=f"Showing {words} of patient {patients[0]}{when}.",
                )  # fmt: skip
    return Unanswerable(
        "The question was not understood well enough to answer it reliably.",
        understood=tuple(f"{v.kind} {v.value}" for v in values) + tuple(f"patient {p}" for p in patients),
        suggestions=SUGGESTIONS,
    )
