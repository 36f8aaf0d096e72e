"""Find the warehouse values a question names: lab and chart labels, drugs, diagnoses, care units...

`value_matcher(target).find(question)` returns every value mention with its span in the question.

Matching is on tokens: a token is a run of letters and digits, or one punctuation character, so
"5% dextrose (excel bag)" is `5 % dextrose ( excel bag )` and a value never matches inside a longer
word. Both sides are lower-cased; whitespace is ignored. Values are indexed by their word tokens
(punctuation dropped) so "bilirubin total" still finds "bilirubin, total"; such a match is marked
`exact=False` unless its punctuation agrees too. Synonyms from the semantic layer ("k+", "pulse")
map to the warehouse labels their term names (lab, vital and drug terms; diagnosis and procedure terms
name words inside titles, not values, and are left to the engine). Finally, a question word that is
in no value may be one edit (insertion, deletion, substitution, transposition) away from a value word
of six or more letters ("potasium"): spans through such corrections are candidates too.

Overlaps are resolved greedily over all candidates, typo ones included: the longest span (in words)
wins, then the leftmost, then the better score. Every value found at a winning span is returned, one
`ValueMatch` per (kind, value), best score first: "ammonia" is a lab and a chart label, a name may be
a drug and an input item. Choosing between them is the engine's job; a diagnosis or procedure match
carries the title, which several ICD codes may share.

Scores: 1.0 literal match; 0.95 the same words with different punctuation; 0.9 a synonym;
0.8 a match through a typo correction (never `exact`).
"""

from __future__ import annotations

import gc
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import Final, NamedTuple

from hisplatform.warehouse.targets import WarehouseTarget
from nlquery.semantic.loader import SemanticLayer, normalise, semantic_layer
from nlquery.semantic.values import ValueDictionaries, value_dictionaries

KINDS: Final = (
    "lab",
    "chart",
    "drug",
    "route",
    "diagnosis",
    "procedure",
    "careunit",
    "specimen",
    "test",
    "organism",
    "input",
    "output",
)
# d_items.linksto -> the kind a chart label is reported as
_LINKS_KIND: Final = {"inputevents": "input", "outputevents": "output"}

SCORE_EXACT: Final = 1.0
SCORE_PUNCTUATION: Final = 0.95
SCORE_SYNONYM: Final = 0.9
SCORE_TYPO: Final = 0.8

TYPO_MIN_LENGTH: Final = 6  # only words this long are corrected, by one edit
# Words questions are made of, never typos of a value ("minimum" is not the chart label "pminimum").
_QUESTION_WORDS: Final = frozenset(
    [
        "minimum",
        "maximum",
        "average",
        "highest",
        "lowest",
        "largest",
        "smallest",
        "total",
        "number",
        "amount",
        "change",
        "patient",
        "patients",
        "hospital",
        "admission",
        "admitted",
        "discharged",
        "discharge",
        "visits",
        "visited",
        "current",
        "measured",
        "recorded",
        "received",
        "prescribed",
        "diagnosed",
        "diagnosis",
        "procedure",
        "procedures",
        "output",
        "outputs",
        "intake",
        "intakes",
        "input",
        "inputs",
        "specimen",
        "specimens",
        "culture",
        "cultures",
        "organism",
        "tested",
        "changes",
        "compared",
        "greater",
        "higher",
        "lower",
        "during",
        "within",
        "months",
        "minutes",
        "second",
    ]
)
_MAX_TYPO_COMBINATIONS: Final = 64  # per candidate span, bounds the work on a question full of typos

_TOKEN: Final = re.compile(r"[^\W_]+|[^\w\s]|_")
_WORD: Final = re.compile(r"[^\W_]+")  # a token for which str.isalnum() holds, in practice


@dataclass(frozen=True)
class ValueMatch:
    kind: str  # one of KINDS
    value: str  # the value as stored in the warehouse
    start: int  # span in the original question
    end: int
    exact: bool  # the question spells the value itself (case and spacing aside)
    score: float


class _Token(NamedTuple):
    text: str
    start: int
    end: int
    word: bool


class _Entry(NamedTuple):
    kind: str
    value: str
    text: str  # what the question is to say: the value, or a synonym of it
    synonym: bool


class _Shape(NamedTuple):
    lead: tuple[str, ...]  # punctuation tokens before the first word
    inner: tuple[str, ...]  # every token from the first word to the last
    trail: tuple[str, ...]  # punctuation tokens after the last word


@lru_cache(maxsize=4096)
def _shape(text: str) -> _Shape:
    """Computed when a value matches rather than for all of them: building stays fast."""
    tokens = tuple(_TOKEN.findall(text.lower()))
    words = [i for i, token in enumerate(tokens) if token.isalnum()]
    if not words:
        return _Shape((), tokens, ())
    first, last = words[0], words[-1]
    return _Shape(tokens[:first], tokens[first : last + 1], tokens[last + 1 :])


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group().lower(), m.start(), m.end(), m.group().isalnum()) for m in _TOKEN.finditer(text)]


def _deletions(word: str) -> Iterator[str]:
    for i in range(len(word)):
        yield word[:i] + word[i + 1 :]


def _one_edit(a: str, b: str) -> bool:
    """Whether a and b differ by one insertion, deletion, substitution or adjacent transposition."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if la > lb:
        a, b = b, a
    return any(b[:i] + b[i + 1 :] == a for i in range(len(b)))


class ValueMatcher:
    """An index of a warehouse's values; build once (about a second for MIMIC), then `find` is fast."""

    def __init__(self, values: ValueDictionaries, layer: SemanticLayer | None = None) -> None:
        # Building allocates a million small containers: the cyclic collector would triple the time.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._build(values, layer)
        finally:
            if enabled:
                gc.enable()

    def _build(self, values: ValueDictionaries, layer: SemanticLayer | None) -> None:
        self._index: dict[tuple[str, ...], list[_Entry]] = defaultdict(list)
        self._lengths: dict[str, set[int]] = defaultdict(set)
        literal: list[tuple[str, Iterable[str]]] = [
            ("lab", values.lab_items),
            ("drug", values.drugs),
            ("route", values.routes),
            ("diagnosis", set(values.diagnoses.values())),
            ("procedure", set(values.procedures.values())),
            ("careunit", values.care_units),
            ("specimen", values.specimen_types),
            ("test", values.test_names),
            ("organism", values.organisms),
        ]
        chart: dict[str, list[str]] = defaultdict(list)
        for label, links in values.chart_items.items():
            for kind in sorted({_LINKS_KIND.get(link, "chart") for link in links}):
                chart[kind].append(label)
        literal.extend(chart.items())
        for kind, strings in literal:
            for value in strings:
                self._add(value, kind, value, synonym=False)
        if layer is not None:
            self._add_synonyms(values, layer)
        self._index = dict(self._index)
        self._first: dict[str, tuple[int, ...]] = {
            word: tuple(sorted(lengths, reverse=True)) for word, lengths in self._lengths.items()
        }
        del self._lengths
        self._vocabulary = frozenset(self._first) | {word for key in self._index for word in key}
        self._near: dict[str, list[str]] = defaultdict(list)
        for word in self._vocabulary:
            if len(word) >= TYPO_MIN_LENGTH and word.isalpha():
                self._near[word].append(word)
                for deleted in set(_deletions(word)):
                    self._near[deleted].append(word)
        self._near = dict(self._near)
        # One edit changes a length by at most one: longer words cannot be typos of a value word,
        # and skipping them keeps a 100 KB run of letters from costing a deletion per character.
        self._longest_word = max((len(word) for word in self._vocabulary), default=0)

    def _add(self, text: str, kind: str, value: str, *, synonym: bool) -> None:
        key = tuple(_WORD.findall(text.lower()))
        if not key or (not synonym and len(key) == 1 and len(key[0]) == 1):
            # A one-letter value (the lab "i") would match the pronoun in "can I know...".
            return
        entry = _Entry(kind, value, text, synonym)
        entries = self._index[key]
        if entry not in entries:
            entries.append(entry)
            self._lengths[key[0]].add(len(key))

    def _add_synonyms(self, values: ValueDictionaries, layer: SemanticLayer) -> None:
        # Diagnosis and procedure terms name words inside titles, not titles, and concepts name no value:
        # the engine reads those from the semantic layer itself.
        for term in layer.terms.values():
            if term.kind == "lab":
                targets = [("lab", label) for label in term.labels if label in values.lab_items]
            elif term.kind == "vital":
                targets = [("chart", label) for label in term.labels if label in values.chart_items]
            elif term.kind == "drug":
                targets = [("drug", label) for label in term.labels if label in values.drugs]
            else:
                continue
            for name in (term.canonical, *term.variants):
                for kind, label in targets:
                    if normalise(name) != normalise(label):
                        self._add(name, kind, label, synonym=True)

    # --- Matching ---------------------------------------------------------------------------------

    def find(self, question: str) -> list[ValueMatch]:
        """Every value the question names, in question order; several per span when ambiguous."""
        tokens = _tokens(question)
        words = [i for i, token in enumerate(tokens) if token.word]
        texts = [tokens[i].text for i in words]
        candidates: list[tuple[int, int, list[ValueMatch]]] = []  # (first word, word count, matches)
        for i, first in enumerate(texts):
            for length in self._first.get(first, ()):
                if i + length > len(texts):
                    continue
                entries = self._index.get(tuple(texts[i : i + length]))
                if entries:
                    candidates.append(
                        (i, length, self._matches(tokens, words, i, length, entries, typo=False))
                    )
        candidates.extend(self._typo_candidates(tokens, words, texts))
        return self._select(candidates)

    def _matches(
        self,
        tokens: list[_Token],
        words: list[int],
        i: int,
        length: int,
        entries: list[_Entry],
        *,
        typo: bool,
    ) -> list[ValueMatch]:
        first, last = words[i], words[i + length - 1]
        inner = tuple(token.text for token in tokens[first : last + 1])
        found: list[ValueMatch] = []
        for entry in entries:
            shape = _shape(entry.text)
            start, end = first, last
            lead = tuple(token.text for token in tokens[max(0, first - len(shape.lead)) : first])
            if shape.lead and lead == shape.lead:
                start = first - len(shape.lead)
            trail = tuple(token.text for token in tokens[last + 1 : last + 1 + len(shape.trail)])
            if shape.trail and trail == shape.trail:
                end = last + len(shape.trail)
            same = inner == shape.inner and lead == shape.lead and trail == shape.trail
            if typo:
                exact, score = False, SCORE_TYPO
            elif entry.synonym:
                exact, score = False, SCORE_SYNONYM
            else:
                exact, score = same, SCORE_EXACT if same else SCORE_PUNCTUATION
            found.append(
                ValueMatch(entry.kind, entry.value, tokens[start].start, tokens[end].end, exact, score)
            )
        if any(match.exact for match in found):  # the same words with other punctuation are other values
            found = [match for match in found if match.exact or match.score < SCORE_PUNCTUATION]
        # One match per value: two synonyms ("k", "k+") may name it at one place; keep the fuller one.
        best: dict[tuple[str, str], ValueMatch] = {}
        for match in sorted(found, key=lambda m: (-m.score, m.start - m.end)):
            best.setdefault((match.kind, match.value), match)
        return list(best.values())

    def _corrections(self, word: str) -> list[str]:
        if not TYPO_MIN_LENGTH - 1 <= len(word) <= self._longest_word + 1 or word in _QUESTION_WORDS:
            return []
        if word in self._vocabulary or not word.isalpha():
            return []
        seen: set[str] = set()
        for key in (word, *_deletions(word)):
            seen.update(self._near.get(key, ()))
        return sorted(
            candidate
            for candidate in seen
            if len(candidate) >= TYPO_MIN_LENGTH and _one_edit(word, candidate)
        )

    def _typo_candidates(
        self, tokens: list[_Token], words: list[int], texts: list[str]
    ) -> Iterator[tuple[int, int, list[ValueMatch]]]:
        fixes = [self._corrections(text) for text in texts]
        if not any(fixes):
            return
        options = [[text, *fix] for text, fix in zip(texts, fixes, strict=True)]
        for i in range(len(texts)):
            for first in options[i]:
                for length in self._first.get(first, ()):
                    if i + length > len(texts) or not any(fixes[i : i + length]):
                        continue
                    rest = options[i + 1 : i + length]
                    count = 1
                    for choices in rest:
                        count *= len(choices)
                    if count > _MAX_TYPO_COMBINATIONS:
                        continue
                    for tail in product(*rest):
                        key = (first, *tail)
                        if key == tuple(texts[i : i + length]):
                            continue  # no correction in it: the exact pass has it
                        entries = self._index.get(key)
                        if entries:
                            yield i, length, self._matches(tokens, words, i, length, entries, typo=True)

    @staticmethod
    def _select(candidates: list[tuple[int, int, list[ValueMatch]]]) -> list[ValueMatch]:
        candidates.sort(key=lambda c: (-c[1], c[0], -c[2][0].score))
        taken: set[int] = set()
        chosen: list[tuple[int, list[ValueMatch]]] = []
        for i, length, matches in candidates:
            span = set(range(i, i + length))
            if span & taken:
                continue
            taken |= span
            chosen.append((i, matches))
        chosen.sort(key=lambda c: c[0])
        return [match for _, matches in chosen for match in matches]


# --- Cache ----------------------------------------------------------------------------------------

_CACHE_SIZE: Final = 8
_cache: dict[tuple[int, int], tuple[ValueDictionaries, SemanticLayer, ValueMatcher]] = {}
_lock = threading.Lock()


def value_matcher(target: WarehouseTarget | None = None) -> ValueMatcher:
    """The matcher of a warehouse, rebuilt when its dictionaries or the semantic layer are reloaded.

    Keyed on the identity of `value_dictionaries(target)` (itself cached per target and SQLite file
    version) and of `semantic_layer()`.
    """
    values = value_dictionaries(target)
    layer = semantic_layer()
    key = (id(values), id(layer))
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is values and hit[1] is layer:
            return hit[2]
    matcher = ValueMatcher(values, layer)
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (values, layer, matcher)
    return matcher


def clear_value_matchers() -> None:
    with _lock:
        _cache.clear()
