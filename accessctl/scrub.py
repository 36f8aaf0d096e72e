"""Clinical notes made fit for researchers: Presidio finds every identifier and each becomes a bracketed tag.

What finds them: patterns for the hospital's own formats (MRN, 18-character national ID, phone,
postcode, street address, ages over 89, dates), a deny-list of the names the warehouse knows for the
notes being shown (their patients, the patients' relatives, all staff), title and signature patterns,
and the named entities of the installed spaCy model (people and places it recognises on its own).
Everything runs offline: the spaCy model is an installed package and e-mail domains are checked against
tldextract's bundled suffix list.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Final, Literal, cast, get_args

import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngineProvider, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, SpacyRecognizer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import ConflictResolutionStrategy, OperatorConfig

from hisplatform.warehouse.executor import WarehouseError, execute_readonly
from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.classifier import SPACY_MODEL

if TYPE_CHECKING:
    from spacy.tokens import Doc

Kind = Literal[
    "NAME", "MRN", "NATIONAL_ID", "PHONE", "EMAIL", "ADDRESS", "LOCATION", "POSTCODE", "DATE", "AGE"
]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
# What each kind becomes in the scrubbed text. Ages over 89 keep their place in the sentence
# ("a 90+-year-old man"): Safe Harbor allows "90 or older", and the sentence still reads.
TAGS: Final[dict[Kind, str]] = {
    "NAME": "[NAME]",
    "MRN": "[MRN]",
    "NATIONAL_ID": "[ID]",
    "PHONE": "[PHONE]",
    "EMAIL": "[EMAIL]",
    "ADDRESS": "[ADDRESS]",
    "LOCATION": "[LOCATION]",
    "POSTCODE": "[POSTCODE]",
    "DATE": "[DATE]",
    "AGE": "90+",
}
LANGUAGE: Final = "en"
# Below this a detection is not acted on: every recogniser here scores 0.8 or more, but for an e-mail
# address on a domain outside the public suffix list (Presidio's pattern score, 0.5).
SCORE_THRESHOLD: Final = 0.5
# Staff change by the day, answers come by the second: five minutes of reuse makes the staff part of
# the deny-list free for nearly every answer, and a new colleague's name is missed by the list (not by
# the title, signature and NER recognisers) for at most that long.
STAFF_CACHE_SECONDS: Final = 300.0
# Subject ids per identity query: keeps each statement short whatever the size of the answer.
SUBJECTS_PER_QUERY: Final = 500
# Far above any hospital's staff list; reaching it means the list is incomplete, which fails closed.
STAFF_ROW_CAP: Final = 1_000_000
# spaCy's batch size for scrub_many: notes of a few KB, where larger batches stop paying off.
BATCH_SIZE: Final = 32


# --- The deny-list ---------------------------------------------------------------------------------

_APOSTROPHES: Final = str.maketrans({"\u2019": "'", "\u2018": "'"})
# A name word: letters, with inner apostrophes or hyphens (O'Brien, Ji-woo). Digits end a word.
_WORD: Final = re.compile(r"[^\W\d_]+(?:['\u2019\u2018-][^\W\d_]+)*")
# Multi-word names in the list (given names such as "Li Na", relatives' full names) match up to this many
# words at once.
_MAX_NAME_WORDS: Final = 4


def _clean(name: str) -> str:
    return " ".join(name.translate(_APOSTROPHES).split())


@dataclass(frozen=True)
class Names:
    """The names the notes being shown may mention, matched as written or in capitals, never in lower
    case: a patient called Rose leaves "temperature rose" alone.

    `words` holds whole names ("Li Na", "Maria Lopez") and, for multi-word names, each word of three
    letters or more ("Maria", "Lopez"); one-letter names are left out.
    """

    words: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str | None]) -> Names:
        words: set[str] = set()
        for raw in names:
            name = _clean(raw or "")
            if len(name) < 2:
                continue
            words.add(name)
            parts = name.split(" ")
            if len(parts) > 1:
                words.update(part for part in parts if len(part) >= 3)
        return cls(frozenset(words))

    def __or__(self, other: Names) -> Names:
        return Names(self.words | other.words)

    def __len__(self) -> int:
        return len(self.words)


@dataclass
class _StaffNames:
    names: Names
    loaded_at: float


_staff_cache: dict[WarehouseTarget, _StaffNames] = {}
_staff_lock = threading.Lock()


def _staff_names(target: WarehouseTarget) -> Names:
    now = time.monotonic()
    with _staff_lock:
        cached = _staff_cache.get(target)
        if cached is not None and now - cached.loaded_at < STAFF_CACHE_SECONDS:
            return cached.names
    result = execute_readonly(
        "SELECT given_name, family_name FROM staff", target=target, row_cap=STAFF_ROW_CAP
    )
    if result.truncated:
        raise WarehouseError(
            "The staff list is too long to scrub notes against; notes cannot be shown.",
            code="deny_list_too_large",
        )
    names = Names.of(str(value) for row in result.rows for value in row if value is not None)
    with _staff_lock:
        _staff_cache[target] = _StaffNames(names, now)
    return names


def clear_staff_cache() -> None:
    """Forget the cached staff names (tests, and after a warehouse reload)."""
    with _staff_lock:
        _staff_cache.clear()


def deny_list_for(target: WarehouseTarget, subject_ids: Iterable[int]) -> Names:
    """The names to scrub from notes about these patients: theirs, their relatives' and all staff's.

    Read with the server's own read-only connection (a trusted lookup, not a user's query); the SQL
    is built only from the integers given, never from text.
    """
    ids = sorted({int(subject) for subject in subject_ids})
    found: list[str] = []
    for first in range(0, len(ids), SUBJECTS_PER_QUERY):
        chunk = ",".join(str(subject) for subject in ids[first : first + SUBJECTS_PER_QUERY])
        cap = SUBJECTS_PER_QUERY * 50  # no patient has fifty relatives on file
        for sql in (
            f"SELECT given_name, family_name FROM patient_identity WHERE subject_id IN ({chunk})",
            f"SELECT full_name FROM patient_contacts WHERE subject_id IN ({chunk})",
        ):
            result = execute_readonly(sql, target=target, row_cap=cap)
            if result.truncated:
                raise WarehouseError(
                    "Too many names to scrub notes against; notes cannot be shown.",
                    code="deny_list_too_large",
                )
            found.extend(str(value) for row in result.rows for value in row if value is not None)
    return Names.of(found) | _staff_names(target)


# --- Recognisers -------------------------------------------------------------------------------------

# Case-sensitive where capitals carry the meaning (names, months, street names); the analyzer's default
# flags ignore case, which would read "temperature rose" as a name. (Presidio compiles with the regex
# module, whose flag values are the standard library's.)
_CASED: Final = re.DOTALL | re.MULTILINE
_ANY_CASE: Final = _CASED | re.IGNORECASE
_STREET_TYPES: Final = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Court|Ct|Way|Terrace|Ter|Place|Pl|Boulevard|Blvd"
    r"|Square|Sq|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Row|Alley|Plaza|Trail|Crescent|Close)"
)
_MONTHS: Final = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_STATES: Final = (
    r"(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM"
    r"|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY)"
)
# A capitalised name word: Smith, O'Brien, McDonald, Ji-woo.
_CAPITALISED: Final = r"[A-Z][a-z]*(?:['\u2019]?[A-Z][a-z]+)*(?:-[A-Za-z][a-z]+)*"
_TITLE: Final = r"(?:(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof)\.?[ ])"
_PERSON_LABELS: Final = (
    r"(?:Patient|Patient name|Name|Emergency contact|Next of kin|Health care proxy|Caregiver|Guardian"
    r"|Attending|Referring physician|PCP|Primary care physician|Contact)"
)
# An age is PHI from 90; the upper bound keeps doses and counts ("150 years" never occurs) out.
_OLD_AGE: Final = r"(?:9\d|1[01]\d)"


def _patterns(kind: Kind, flags: int, *patterns: tuple[str, str, float]) -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity=kind,
        name=f"{kind.lower()}_patterns",
        patterns=[Pattern(name, regex, score) for name, regex, score in patterns],
        global_regex_flags=flags,
    )


def _pattern_recognizers() -> list[EntityRecognizer]:
    return [
        _patterns(
            "MRN",
            _CASED,
            ("mrn", r"\bMRN\d{6,10}\b", 1.0),
            # Another hospital's bare number after its label: "medical record number: 12345678".
            (
                "labelled",
                r"(?i:(?<=\b(?:MRN|medical record (?:number|no\.?)|record number|hospital number)"
                r"\s?[:#]?\s?))\d{6,10}\b",
                0.9,
            ),
        ),
        # GB 11643: 17 digits and a check character that may be X; no other 18-character number is
        # plausible in a note, so the check is not required.
        _patterns("NATIONAL_ID", _CASED, ("national_id", r"(?<![\w-])\d{17}[\dXx](?![\w-])", 1.0)),
        _patterns(
            "PHONE",
            _ANY_CASE,
            (
                "nanp",
                r"(?<![\w+-])(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
                r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?(?![\w-])",
                0.9,
            ),
            ("international", r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\w-])", 0.8),
        ),
        _patterns(
            "POSTCODE",
            _CASED,
            ("after_state", rf"(?<=\b{_STATES},?[ ])\d{{5}}(?:-\d{{4}})?\b", 0.9),
            (
                "labelled",
                r"(?i:(?<=\b(?:zip|postcode|post code|postal code|zip code)[:#]?[ ]?))\d{5}(?:-\d{4})?\b",
                0.9,
            ),
        ),
        _patterns(
            "ADDRESS",
            _CASED,
            (
                "street",
                rf"\b\d{{1,5}}[A-Za-z]?(?:[ ]{_CAPITALISED}){{1,4}}[ ]{_STREET_TYPES}\b\.?"
                r"(?:,?[ ](?:Apt|Apartment|Unit|Suite|Ste|#)\.?[ ]?\w+)?",
                0.9,
            ),
            ("po_box", r"\bP\.?[ ]?O\.?[ ]Box[ ]\d+\b", 0.9),
        ),
        _patterns(
            "LOCATION",
            _CASED,
            # The town after a street address, and before a state and ZIP code.
            (
                "after_street",
                rf"(?<=\b{_STREET_TYPES}\.?,[ ]?){_CAPITALISED}(?:[ ]{_CAPITALISED}){{0,2}}\b",
                0.85,
            ),
            (
                "before_state",
                rf"\b{_CAPITALISED}(?:[ ]{_CAPITALISED}){{0,2}}(?=,?[ ]{_STATES}[ ]\d{{5}}(?:-\d{{4}})?\b)",
                0.85,
            ),
        ),
        _patterns(
            "DATE",
            _CASED,
            (
                "mdy",
                r"(?<![\w/.-])(?:0?[1-9]|1[0-2])([/.-])(?:0?[1-9]|[12]\d|3[01])\1(?:19|20)?\d{2}(?![\w/-])",
                0.9,
            ),
            ("iso", r"(?<![\w-])(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?![\w-])", 0.9),
            ("month_day", rf"\b{_MONTHS}\.?[ ]\d{{1,2}}(?:st|nd|rd|th)?(?:,?[ ](?:19|20)\d{{2}})?\b", 0.8),
            (
                "day_month",
                rf"\b\d{{1,2}}(?:st|nd|rd|th)?[ ](?:of[ ])?{_MONTHS}\.?(?:,?[ ](?:19|20)\d{{2}})?\b",
                0.8,
            ),
            ("month_year", rf"\b{_MONTHS}\.?[ ](?:19|20)\d{{2}}\b", 0.8),
        ),
        _patterns(
            "AGE",
            _ANY_CASE,
            ("years_old", rf"\b{_OLD_AGE}(?=[ -](?:year|yr)s?[ -]old\b)", 0.9),
            ("yo", rf"\b{_OLD_AGE}(?=[ ]?(?:yo|y/o|y\.o\.)(?!\w))", 0.9),
            ("of_age", rf"\b{_OLD_AGE}(?=[ ]years?[ ]of[ ]age\b)", 0.9),
            ("aged", rf"(?<=\b(?:aged?|age:)[ ]){_OLD_AGE}\b", 0.9),
        ),
        _patterns(
            "NAME",
            _CASED,
            # "Mr. Smith" whole: the title is part of how the note names the person.
            ("title", rf"\b{_TITLE}{_CAPITALISED}(?:[ ]{_CAPITALISED})?\b", 0.85),
            (
                "signed",
                rf"(?<=\b(?:[Ss]igned|[Dd]ictated|[Ww]itnessed) by[ ])"
                rf"{_CAPITALISED}(?:[ ]{_CAPITALISED}){{0,2}}\b",
                0.85,
            ),
            # A person after a label that introduces one: "Patient: Li Na Chen", "Next of kin: Ana Ruiz".
            (
                "labelled",
                rf"(?<=\b{_PERSON_LABELS}:[ ]*){_TITLE}?{_CAPITALISED}(?:[ ]{_CAPITALISED}){{0,3}}\b",
                0.85,
            ),
        ),
    ]


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recogniser, checking domains against tldextract's bundled suffix list.

    The stock recogniser calls `tldextract.extract`, whose default extractor fetches the public suffix
    list over HTTP on first use (and caches it under the home directory); a hospital intranet has no
    route out. No URLs and no cache directory leave only the snapshot shipped inside the package.
    """

    def __init__(self) -> None:
        self._domains = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        super().__init__(supported_entity="EMAIL")

    def validate_result(self, pattern_text: str) -> bool | None:
        # A public domain makes it certain; an intranet one (.local, .internal) is still someone's
        # address, so it stays at the pattern's score instead of being dropped as Presidio would.
        return True if self._domains(pattern_text).fqdn else None


class NameAndPlaceRecognizer(SpacyRecognizer):
    """spaCy's PERSON, GPE and LOC entities (mapped to NAME and LOCATION), keeping only proper nouns: a
    capitalised word that is neither an all-capitals abbreviation nor a word of a note's headings.

    The small model also calls drugs ("levetiracetam"), departments ("Neurology") and the "Electronically"
    of a signature people; those would be scrubbed for nothing."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        return [result for result in results if _proper_noun(text[result.start : result.end])]


def _proper_noun(span: str) -> bool:
    # Two-letter capitalised words are lab and drug abbreviations far more often than names (Cr, Hb, Na).
    words = _WORD.findall(span)
    return any(len(word) >= 3 and word[0].isupper() and not word.isupper() for word in words) and not any(
        word.lower() in _NOT_NAMES for word in words
    )


# Capitalised words of clinical notes that the small spaCy model takes for people or places.
_NOT_NAMES: Final = frozenset(
    (
        "electronically", "signed", "md", "do", "rn", "np", "unit", "service", "date", "patient", "allergies",
        "assessment", "plan", "history", "bowel", "examination", "medications", "nursing", "disposition",
        "procedures", "principal", "secondary", "chief", "complaint", "family", "caregiver", "contact",
        "emergency", "social", "subjective", "objective", "identity", "code", "status", "health", "proxy",
        "medical", "record", "number", "portal", "account", "follow", "discharge", "admission", "progress",
        "note", "clinic", "outpatient", "national", "id", "mrn", "dob", "hospital", "course", "cardiology",
        "neurology", "oncology", "psychiatry", "pediatrics", "surgery", "medicine", "obstetrics",
        "gynecology", "critical", "care", "department", "intensive", "email", "phone", "pager", "fax",
    )
)  # fmt: skip


class DenyListRecognizer(LocalRecognizer):
    """The names in a `Names` list, found by looking each word (and run of up to four words) up in a set.

    A set lookup per word costs the same for ten names or fifty thousand, where Presidio's deny-list
    regex (one alternation of every name) grows with the list.
    """

    def __init__(self, names: Names) -> None:
        self.words = names.words
        self.capitals = frozenset(word.upper() for word in names.words if len(word) >= 3)
        # A whole name of two words or more is a name however it is typed ("son, mark fischer"):
        # no run of ordinary words spells a patient's full name by chance.
        self.full_lower = frozenset(word.lower() for word in names.words if " " in word)
        super().__init__(supported_entities=["NAME"], name="deny_list")

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        if not self.words:
            return results
        words = list(_WORD.finditer(text))
        index = 0
        while index < len(words):
            matched = 0
            # Single names are matched as written or in capitals, so they start with a capital letter;
            # a whole name of several words is matched in any case.
            capital = words[index].group()[0].isupper()
            if not capital and not self.full_lower:
                index += 1
                continue
            for count in range(min(_MAX_NAME_WORDS, len(words) - index), 0, -1):
                run = words[index : index + count]
                if any(text[a.end() : b.start()] != " " for a, b in pairwise(run)):
                    continue
                candidate = text[run[0].start() : run[-1].end()].translate(_APOSTROPHES)
                as_written = capital and (
                    candidate in self.words or (candidate.isupper() and candidate in self.capitals)
                )
                if as_written or (count > 1 and candidate.lower() in self.full_lower):
                    results.append(RecognizerResult("NAME", run[0].start(), run[-1].end(), 1.0))
                    matched = count
                    break
            index += matched or 1
        return results


# --- The scrubber ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One identifier: text[start:end] is of this kind."""

    kind: Kind
    start: int
    end: int
    score: float


# The model's labels that are not identifiers here: dates and ages come from our patterns (the model's
# DATE also takes "3 days" and "28-year-old"), organisations are departments and units.
_IGNORED_LABELS: Final = (
    "CARDINAL", "DATE", "EVENT", "FAC", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "ORG", "PERCENT",
    "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
)  # fmt: skip
# Only the entity recogniser is needed: lemmas, tags and parses feed nothing here (no recogniser uses
# context words), and dropping them doubles the speed. The small model's NER has its own tok2vec.
_UNUSED_PIPES: Final = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer")


class _EntitiesOnlyEngine(SpacyNlpEngine):
    """Presidio's spaCy engine, handing recognisers the entities alone.

    The stock engine also lists every token's lemma and offset and derives keywords from them, for
    context words; no recogniser here uses context, and that listing (with the context scoring that
    `_NoContext` skips) was a tenth of the time per note.
    """

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(
            self._get_entities(doc), self._get_scores_for_entities(doc)
        )
        return NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[],
            lemmas=[],
            nlp_engine=self,
            language=language,
            scores=scores,
        )


class _NoContext(ContextAwareEnhancer):
    """No context-word scoring: every pattern here carries its own context (a label, a lookbehind)."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0,
            min_score_with_context_similarity=0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        return raw_results


def _nlp_engine() -> SpacyNlpEngine:
    provider = NlpEngineProvider(
        nlp_engines=(_EntitiesOnlyEngine,),
        nlp_configuration={
            "nlp_engine_name": "spacy",
            # The installed package; Presidio's default (en_core_web_lg) would be downloaded.
            "models": [{"lang_code": LANGUAGE, "model_name": SPACY_MODEL}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {"PERSON": "NAME", "GPE": "LOCATION", "LOC": "LOCATION"},
                "labels_to_ignore": list(_IGNORED_LABELS),
                "low_score_entity_names": [],
            },
        },
    )
    engine = provider.create_engine()
    assert isinstance(engine, SpacyNlpEngine)
    nlp = engine.get_nlp(LANGUAGE)
    for pipe in _UNUSED_PIPES:
        if pipe in nlp.pipe_names:
            nlp.disable_pipe(pipe)
    return engine


class Scrubber:
    """Finds identifiers in note text and replaces them; build once per process (`scrubber()`)."""

    def __init__(self) -> None:
        presidio_log = logging.getLogger("presidio-analyzer")
        if presidio_log.level == logging.NOTSET:
            # Presidio logs each recogniser it builds at INFO: one per answer here (the deny-list).
            presidio_log.setLevel(logging.WARNING)
        self._nlp_engine = _nlp_engine()
        registry = RecognizerRegistry(
            recognizers=[
                *_pattern_recognizers(),
                OfflineEmailRecognizer(),
                NameAndPlaceRecognizer(supported_entities=["NAME", "LOCATION"], ner_strength=0.85),
            ],
            supported_languages=[LANGUAGE],
        )
        self._analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=self._nlp_engine,
            supported_languages=[LANGUAGE],
            default_score_threshold=SCORE_THRESHOLD,
            context_aware_enhancer=_NoContext(),
        )
        self._anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]  # its __init__ is unannotated
        self._operators: dict[str, OperatorConfig] = {
            kind: OperatorConfig("replace", {"new_value": tag}) for kind, tag in TAGS.items()
        }
        # spaCy makes no promise about concurrent calls on one pipeline; the rest is per call.
        self._nlp_lock = threading.Lock()

    def analyze(self, text: str, *, names: Names) -> list[Found]:
        """The identifiers in `text`, in order, none overlapping another."""
        return _found(self._results(text, self._artifacts([text])[0], names))

    def scrub(self, text: str, *, names: Names) -> str:
        """`text` with every identifier replaced by its tag."""
        return self._replace(text, self._results(text, self._artifacts([text])[0], names))

    def scrub_many(self, texts: Sequence[str | None], *, names: Names) -> list[str | None]:
        """Each text scrubbed, None kept as None; spaCy reads them in batches."""
        present = [text for text in texts if text is not None]
        scrubbed = iter(
            self._replace(text, self._results(text, artifacts, names))
            for text, artifacts in zip(present, self._artifacts(present), strict=True)
        )
        return [None if text is None else next(scrubbed) for text in texts]

    def analyze_each(self, texts: Sequence[str], names: Sequence[Names]) -> Iterator[list[Found]]:
        """`analyze` of each text with its own deny-list, spaCy reading them in batches (evaluation)."""
        for text, artifacts, own in zip(texts, self._artifacts(texts), names, strict=True):
            yield _found(self._results(text, artifacts, own))

    def _artifacts(self, texts: Sequence[str]) -> list[NlpArtifacts | None]:
        """spaCy's reading of each text (None for blank text, which has nothing to find)."""
        wanted = [text for text in texts if text.strip()]
        read: list[NlpArtifacts] = []
        if wanted:
            with self._nlp_lock:
                # Items are (text, artifacts) as called here; (text, artifacts, context) only with as_tuples.
                read = [
                    item[1]
                    for item in self._nlp_engine.process_batch(wanted, LANGUAGE, batch_size=BATCH_SIZE)
                ]
        found = iter(read)
        return [next(found) if text.strip() else None for text in texts]

    def _results(self, text: str, artifacts: NlpArtifacts | None, names: Names) -> list[RecognizerResult]:
        if artifacts is None:
            return []
        results: list[RecognizerResult] = self._analyzer.analyze(
            text=text,
            language=LANGUAGE,
            entities=list(KINDS),
            nlp_artifacts=artifacts,
            ad_hoc_recognizers=[_deny_list_recognizer(names)],
        )
        return [result for result in results if _without_blanks(text, result)]

    def _replace(self, text: str, results: list[RecognizerResult]) -> str:
        if not results:
            return text
        return str(
            self._anonymizer.anonymize(
                text=text,
                analyzer_results=results,  # type: ignore[arg-type]  # the analyzer's result is the anonymizer's
                operators=self._operators,
                # Overlaps of different kinds are trimmed, never dropped: every character found stays covered.
                conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS,
            ).text
        )


def _without_blanks(text: str, result: RecognizerResult) -> bool:
    """Trim white space off the ends of a result (spaCy's entities may end in a run of spaces, which
    replacing would swallow); False if nothing is left."""
    while result.start < result.end and text[result.start].isspace():
        result.start += 1
    while result.end > result.start and text[result.end - 1].isspace():
        result.end -= 1
    return result.start < result.end


@lru_cache(maxsize=64)
def _deny_list_recognizer(names: Names) -> DenyListRecognizer:
    return DenyListRecognizer(names)


def _found(results: list[RecognizerResult]) -> list[Found]:
    """Results as non-overlapping spans: a span inside another goes, a partial overlap is trimmed from the
    lower-scoring side (as the anonymizer resolves them, so `analyze` shows what `scrub` replaces)."""
    spans = sorted(results, key=lambda r: (r.start, -r.end, -r.score))
    kept: list[Found] = []
    for result in spans:
        start, end = result.start, result.end
        if kept and end <= kept[-1].end:
            continue  # inside the previous span
        if kept and start < kept[-1].end:
            last = kept[-1]
            if last.score >= result.score:
                start = last.end
            else:
                kept[-1] = Found(last.kind, last.start, start, last.score)
                if kept[-1].start >= kept[-1].end:
                    kept.pop()
        if start < end:
            kept.append(Found(cast("Kind", result.entity_type), start, end, float(result.score)))
    return kept


_scrubber: Scrubber | None = None
_scrubber_lock = threading.Lock()


def scrubber() -> Scrubber:
    """The process's scrubber, built on first use (loading the spaCy model takes about a second)."""
    global _scrubber
    if _scrubber is None:
        with _scrubber_lock:
            if _scrubber is None:
                _scrubber = Scrubber()
    return _scrubber
