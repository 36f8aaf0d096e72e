"""Load the semantic layer from the shipped YAML and a hospital's extra files, validated strictly."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast

import sqlglot
import yaml
from django.conf import settings
from sqlglot import exp
from sqlglot.errors import ParseError

from hisplatform.warehouse.schema import tables as schema_tables

HERE: Final = Path(__file__).resolve().parent
# Loaded in this order; NLQ_SEMANTIC_EXTRA files come after and win.
SHIPPED_FILES: Final = (HERE / "default.yaml", HERE / "synonyms.yaml")

TermKind = Literal["lab", "vital", "drug", "diagnosis", "procedure", "concept"]
TERM_KINDS: Final[frozenset[str]] = frozenset({"lab", "vital", "drug", "diagnosis", "procedure", "concept"})

_TOP_KEYS: Final = frozenset(
    {
        "version",
        "patient_keys",
        "sensitivity_classes",
        "tables",
        "joins",
        "measures",
        "dimensions",
        "synonyms",
        "events",
    }
)
_TABLE_KEYS: Final = frozenset({"description", "time_columns", "columns"})
_COLUMN_KEYS: Final = frozenset({"class", "description"})
_MEASURE_KEYS: Final = frozenset({"description", "table", "expression", "words"})
_DIMENSION_KEYS: Final = frozenset({"description", "table", "column", "bins", "words"})
_TERM_KEYS: Final = frozenset({"kind", "variants", "labels"})
_EVENT_KEYS: Final = frozenset(
    {
        "description",
        "noun",
        "words",
        "table",
        "time",
        "value",
        "link",
        "name",
        "code",
        "dictionary",
        "label",
        "where",
    }
)
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")


class SemanticLayerError(Exception):
    """A semantic-layer file is unreadable or invalid; the message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


# --- The model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMeta:
    name: str
    sensitivity: str
    description: str = ""


@dataclass(frozen=True)
class TableMeta:
    name: str
    description: str
    columns: tuple[ColumnMeta, ...]
    time_columns: tuple[str, ...]
    patient_keys: tuple[str, ...]

    def column(self, name: str) -> ColumnMeta:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name}.{name} is not a column of the semantic layer")


@dataclass(frozen=True)
class Join:
    left_table: str
    left_column: str
    right_table: str
    right_column: str

    def involves(self, table: str) -> bool:
        return table in (self.left_table, self.right_table)


@dataclass(frozen=True)
class Measure:
    name: str
    description: str
    table: str
    expression: str  # SQL in the SQLite dialect (EHRSQL's), over the table's columns; checked on load
    words: tuple[str, ...] = ()  # what questions call it; a trailing * matches any ending


@dataclass(frozen=True)
class Dimension:
    name: str
    description: str
    table: str
    column: str
    bins: tuple[int, ...] = ()  # lower bounds of bands for a numeric column (age bands)
    words: tuple[str, ...] = ()  # what questions call it; a trailing * matches any ending


@dataclass(frozen=True)
class Event:
    """Something that happens to a patient at a time: a lab result, a prescription, a diagnosis..."""

    name: str
    description: str
    noun: str  # how the interpretation names one ("lab test")
    table: str
    time: str  # column of `table`
    link: str  # hadm_id or stay_id: the visit or ICU stay a row belongs to
    value: str | None = None  # the measured number, when there is one
    name_column: str | None = None  # a column of `table` naming the event (prescriptions.drug)
    code: str | None = None  # a column of `table` coding the event through `dictionary`
    dictionary: tuple[str, str] | None = None  # (table, key column) the code refers to
    label: str | None = None  # the dictionary's column naming the event
    where: tuple[tuple[str, str], ...] = ()  # dictionary rows that belong to this event (linksto)
    words: tuple[str, ...] = ()  # what questions call it; a trailing * matches any ending

    @property
    def cue(self) -> re.Pattern[str] | None:
        """A pattern finding the event's words in a question (None when it has none)."""
        if not self.words:
            return None
        parts = [re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) for w in self.words]
        return re.compile(r"\b(?:" + "|".join(parts) + r")\b", re.IGNORECASE)

    def column(self, name: str) -> str:
        return f"{self.table}.{name}"


@dataclass(frozen=True)
class Term:
    canonical: str
    kind: TermKind
    variants: tuple[str, ...]
    labels: tuple[str, ...]  # warehouse values it stands for; see synonyms.yaml for their meaning by kind


@dataclass(frozen=True)
class SemanticLayer:
    sources: tuple[str, ...]
    sensitivity_classes: Mapping[str, str]
    tables: Mapping[str, TableMeta]
    joins: tuple[Join, ...]
    measures: Mapping[str, Measure]
    dimensions: Mapping[str, Dimension]
    terms: Mapping[str, Term]
    _lookup: Mapping[str, str]  # every normalised canonical name and variant -> canonical name
    events: Mapping[str, Event]

    def sensitivity_of(self, table: str, column: str) -> str:
        try:
            return self.tables[table].column(column).sensitivity
        except KeyError:
            raise KeyError(f"{table}.{column} is not a column of the semantic layer") from None

    def columns_of_class(self, sensitivity: str) -> tuple[tuple[str, str], ...]:
        return tuple(
            (table.name, column.name)
            for table in self.tables.values()
            for column in table.columns
            if column.sensitivity == sensitivity
        )

    def joins_of(self, table: str) -> tuple[Join, ...]:
        return tuple(join for join in self.joins if join.involves(table))

    def term(self, text: str) -> Term | None:
        name = self._lookup.get(normalise(text))
        return None if name is None else self.terms[name]

    def canonical(self, text: str) -> str | None:
        """The canonical term `text` is a name or variant of, or None when it is no known term."""
        return self._lookup.get(normalise(text))

    def synonyms_for(self, text: str) -> tuple[str, ...]:
        """The canonical name then every variant of the term `text` names; () when unknown."""
        term = self.term(text)
        return () if term is None else (term.canonical, *term.variants)


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


# --- Validation helpers -------------------------------------------------------------------------


def _mapping(value: object, source: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise SemanticLayerError(source, key, "expected a mapping with text keys")
    return cast("dict[str, Any]", value)


def _known_keys(value: dict[str, Any], allowed: frozenset[str], source: str, key: str) -> None:
    for name in value:
        if name not in allowed:
            raise SemanticLayerError(
                source,
                f"{key}.{name}" if key else name,
                f"unknown key (expected one of {', '.join(sorted(allowed))})",
            )


def _text(value: object, source: str, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value).strip():
        raise SemanticLayerError(source, key, "expected non-empty text")
    return str(value)


def _texts(value: object, source: str, key: str) -> list[str]:
    if not isinstance(value, list):
        raise SemanticLayerError(source, key, "expected a list")
    return [_text(item, source, f"{key}[{i}]") for i, item in enumerate(value)]


def _column_ref(value: object, source: str, key: str) -> tuple[str, str]:
    text = _text(value, source, key)
    table, dot, column = text.partition(".")
    if not dot:
        raise SemanticLayerError(source, key, f"expected table.column, not {text!r}")
    _check_column(table, column, source, key)
    return table, column


def _check_table(table: str, source: str, key: str) -> None:
    if table not in schema_tables():
        raise SemanticLayerError(source, key, f"unknown table {table!r}")


def _check_column(table: str, column: str, source: str, key: str) -> None:
    _check_table(table, source, key)
    if column not in schema_tables()[table].column_names:
        raise SemanticLayerError(source, key, f"unknown column {table}.{column}")


# --- Merging files ------------------------------------------------------------------------------


@dataclass
class _Term:
    kind: str
    variants: list[str]
    labels: list[str]
    source: str


class _Builder:
    """The layer being assembled; each file is checked against the schema as it is applied."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.patient_keys: list[str] = []
        self.classes: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}
        self.time_columns: dict[str, list[str]] = {}
        self.columns: dict[str, dict[str, tuple[str, str]]] = {}
        self.joins: list[Join] = []
        self.measures: dict[str, Measure] = {}
        self.dimensions: dict[str, Dimension] = {}
        self.terms: dict[str, _Term] = {}
        self.events: dict[str, Event] = {}

    def apply(self, document: object, source: str) -> None:
        doc = _mapping(document, source, "(file)")
        _known_keys(doc, _TOP_KEYS, source, "")
        if "version" in doc and doc["version"] != 1:
            raise SemanticLayerError(source, "version", "only version 1 is understood")
        if "patient_keys" in doc:
            self.patient_keys = _texts(doc["patient_keys"], source, "patient_keys")
        # Classes first: a file may define a class and use it.
        for name, description in _mapping(
            doc.get("sensitivity_classes"), source, "sensitivity_classes"
        ).items():
            if not _NAME.match(name):
                raise SemanticLayerError(source, f"sensitivity_classes.{name}", "class names are snake_case")
            self.classes[name] = _text(description, source, f"sensitivity_classes.{name}")
        for table, body in _mapping(doc.get("tables"), source, "tables").items():
            self._table(table, body, source)
        joins = doc.get("joins")
        if joins is not None:
            if not isinstance(joins, list):
                raise SemanticLayerError(source, "joins", "expected a list of [table.column, table.column]")
            for i, pair in enumerate(joins):
                self._join(pair, source, f"joins[{i}]")
        for name, body in _mapping(doc.get("measures"), source, "measures").items():
            self.measures[name] = _measure(name, body, source)
        for name, body in _mapping(doc.get("dimensions"), source, "dimensions").items():
            self.dimensions[name] = _dimension(name, body, source)
        for name, body in _mapping(doc.get("synonyms"), source, "synonyms").items():
            self._term(name, body, source)
        for name, body in _mapping(doc.get("events"), source, "events").items():
            self.events[name] = _event(name, body, source)
        self.sources.append(source)

    def _table(self, table: str, body: object, source: str) -> None:
        key = f"tables.{table}"
        _check_table(table, source, key)
        spec = _mapping(body, source, key)
        _known_keys(spec, _TABLE_KEYS, source, key)
        if "description" in spec:
            self.descriptions[table] = _text(spec["description"], source, f"{key}.description")
        if "time_columns" in spec:
            names = _texts(spec["time_columns"], source, f"{key}.time_columns")
            for i, name in enumerate(names):
                _check_column(table, name, source, f"{key}.time_columns[{i}]")
            self.time_columns[table] = names
        columns = self.columns.setdefault(table, {})
        for column, value in _mapping(spec.get("columns"), source, f"{key}.columns").items():
            ckey = f"{key}.columns.{column}"
            _check_column(table, column, source, ckey)
            description = columns.get(column, ("", ""))[1]
            if isinstance(value, dict):
                cspec = _mapping(value, source, ckey)
                _known_keys(cspec, _COLUMN_KEYS, source, ckey)
                if "class" not in cspec:
                    raise SemanticLayerError(source, ckey, "a column needs a sensitivity class")
                sensitivity = _text(cspec["class"], source, f"{ckey}.class")
                if "description" in cspec:
                    description = _text(cspec["description"], source, f"{ckey}.description")
            else:
                sensitivity = _text(value, source, ckey)
            if sensitivity not in self.classes:
                raise SemanticLayerError(
                    source,
                    ckey,
                    f"unknown sensitivity class {sensitivity!r} (known: {', '.join(sorted(self.classes))})",
                )
            columns[column] = (sensitivity, description)

    def _join(self, pair: object, source: str, key: str) -> None:
        if not isinstance(pair, list) or len(pair) != 2:
            raise SemanticLayerError(source, key, "expected [table.column, table.column]")
        (lt, lc), (rt, rc) = _column_ref(pair[0], source, key), _column_ref(pair[1], source, key)
        join = Join(lt, lc, rt, rc)
        if join not in self.joins:
            self.joins.append(join)

    def _term(self, name: str, body: object, source: str) -> None:
        canonical = normalise(name)
        key = f"synonyms.{name}"
        spec: dict[str, Any] = {"variants": body} if isinstance(body, list) else _mapping(body, source, key)
        _known_keys(spec, _TERM_KEYS, source, key)
        existing = self.terms.get(canonical)
        kind = spec.get("kind", existing.kind if existing else None)
        if kind is None:
            raise SemanticLayerError(source, key, "a new term needs a kind")
        if kind not in TERM_KINDS:
            raise SemanticLayerError(
                source, f"{key}.kind", f"unknown kind {kind!r} (one of {', '.join(sorted(TERM_KINDS))})"
            )
        variants = list(existing.variants) if existing else []
        labels = list(existing.labels) if existing else []
        for variant in _texts(spec.get("variants", []), source, f"{key}.variants"):
            if normalise(variant) not in variants and normalise(variant) != canonical:
                variants.append(normalise(variant))
        for label in _texts(spec.get("labels", []), source, f"{key}.labels"):
            if label.lower() not in labels:
                labels.append(label.lower())
        self.terms[canonical] = _Term(str(kind), variants, labels, source)

    def build(self) -> SemanticLayer:
        tables: dict[str, TableMeta] = {}
        for name, table in schema_tables().items():
            classified = self.columns.get(name, {})
            columns = []
            for column in table.column_names:
                if column not in classified:
                    raise SemanticLayerError(
                        " + ".join(self.sources),
                        f"tables.{name}.columns.{column}",
                        "column has no sensitivity class (every warehouse column needs one)",
                    )
                columns.append(ColumnMeta(column, *classified[column]))
            tables[name] = TableMeta(
                name,
                self.descriptions.get(name, ""),
                tuple(columns),
                tuple(self.time_columns.get(name, ())),
                tuple(key for key in self.patient_keys if key in table.column_names),
            )
        lookup: dict[str, str] = {}
        for canonical, term in self.terms.items():
            for text in (canonical, *term.variants):
                owner = lookup.get(text)
                if owner is not None and owner != canonical:
                    raise SemanticLayerError(
                        term.source, f"synonyms.{canonical}", f"{text!r} is already a name of {owner!r}"
                    )
                lookup[text] = canonical
        terms = {
            canonical: Term(
                canonical,
                cast("TermKind", term.kind),
                tuple(term.variants),
                tuple(term.labels) if term.labels or term.kind == "concept" else (canonical,),
            )
            for canonical, term in self.terms.items()
        }
        return SemanticLayer(
            tuple(self.sources),
            MappingProxyType(dict(self.classes)),
            MappingProxyType(tables),
            tuple(self.joins),
            MappingProxyType(dict(self.measures)),
            MappingProxyType(dict(self.dimensions)),
            MappingProxyType(terms),
            MappingProxyType(lookup),
            MappingProxyType(dict(self.events)),
        )


def _measure(name: str, body: object, source: str) -> Measure:
    key = f"measures.{name}"
    spec = _mapping(body, source, key)
    _known_keys(spec, _MEASURE_KEYS, source, key)
    for required in ("table", "expression"):
        if required not in spec:
            raise SemanticLayerError(source, key, f"a measure needs {required!r}")
    table = _text(spec["table"], source, f"{key}.table")
    _check_table(table, source, f"{key}.table")
    expression = _text(spec["expression"], source, f"{key}.expression")
    try:
        tree = sqlglot.parse_one(expression, read="sqlite")
    except ParseError as error:
        raise SemanticLayerError(source, f"{key}.expression", f"not valid SQL: {error}") from None
    for column in tree.find_all(exp.Column):
        if column.table and column.table != table:
            raise SemanticLayerError(source, f"{key}.expression", f"may only use columns of {table}")
        _check_column(table, column.name, source, f"{key}.expression")
    words = _words(spec, source, key)
    return Measure(name, str(spec.get("description", "")), table, expression, words)


def _dimension(name: str, body: object, source: str) -> Dimension:
    key = f"dimensions.{name}"
    spec = _mapping(body, source, key)
    _known_keys(spec, _DIMENSION_KEYS, source, key)
    for required in ("table", "column"):
        if required not in spec:
            raise SemanticLayerError(source, key, f"a dimension needs {required!r}")
    table = _text(spec["table"], source, f"{key}.table")
    column = _text(spec["column"], source, f"{key}.column")
    _check_column(table, column, source, f"{key}.column")
    bins: tuple[int, ...] = ()
    if "bins" in spec:
        raw = spec["bins"]
        if not isinstance(raw, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in raw):
            raise SemanticLayerError(source, f"{key}.bins", "expected a list of whole numbers")
        bins = tuple(raw)
        if list(bins) != sorted(set(bins)):
            raise SemanticLayerError(source, f"{key}.bins", "bins must increase")
    return Dimension(name, str(spec.get("description", "")), table, column, bins, _words(spec, source, key))


def _words(spec: dict[str, Any], source: str, key: str) -> tuple[str, ...]:
    """A measure's or dimension's words, lower case; a `*` may only end a word."""
    words = tuple(normalise(w) for w in _texts(spec.get("words", []), source, f"{key}.words"))
    for i, word in enumerate(words):
        if "*" in word[:-1]:
            raise SemanticLayerError(source, f"{key}.words[{i}]", "'*' may only end a word")
    return words


def _event(name: str, body: object, source: str) -> Event:
    key = f"events.{name}"
    if not _NAME.match(name):
        raise SemanticLayerError(source, key, "event names are snake_case")
    spec = _mapping(body, source, key)
    _known_keys(spec, _EVENT_KEYS, source, key)
    for required in ("table", "time", "link"):
        if required not in spec:
            raise SemanticLayerError(source, key, f"an event needs {required!r}")
    table = _text(spec["table"], source, f"{key}.table")
    _check_table(table, source, f"{key}.table")

    def own(field: str) -> str | None:
        if field not in spec:
            return None
        column = _text(spec[field], source, f"{key}.{field}")
        _check_column(table, column, source, f"{key}.{field}")
        return column

    dictionary = label = None
    where: tuple[tuple[str, str], ...] = ()
    if "code" in spec:
        if "dictionary" not in spec or "label" not in spec:
            raise SemanticLayerError(source, key, "a coded event needs 'dictionary' and 'label'")
        dictionary = _column_ref(spec["dictionary"], source, f"{key}.dictionary")
        label_table, label = _column_ref(spec["label"], source, f"{key}.label")
        if label_table != dictionary[0]:
            raise SemanticLayerError(source, f"{key}.label", f"must be a column of {dictionary[0]}")
        for column, value in _mapping(spec.get("where"), source, f"{key}.where").items():
            _check_column(dictionary[0], column, source, f"{key}.where.{column}")
            where += ((column, _text(value, source, f"{key}.where.{column}")),)
    elif "dictionary" in spec or "label" in spec or "where" in spec:
        raise SemanticLayerError(source, key, "'dictionary', 'label' and 'where' go with 'code'")
    if "code" not in spec and "name" not in spec:
        raise SemanticLayerError(source, key, "an event is named by a 'code' or a 'name' column")
    link = own("link")
    if link not in ("hadm_id", "stay_id"):
        raise SemanticLayerError(source, f"{key}.link", "expected hadm_id or stay_id")
    return Event(
        name=name,
        description=str(spec.get("description", "")),
        noun=str(spec.get("noun", name)),
        table=table,
        time=own("time") or "",
        link=link,
        value=own("value"),
        name_column=own("name"),
        code=own("code"),
        dictionary=dictionary,
        label=label,
        where=where,
        words=tuple(w.lower() for w in _texts(spec.get("words", []), source, f"{key}.words")),
    )


# --- Loading ------------------------------------------------------------------------------------


def _read(path: Path) -> object:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SemanticLayerError(source, "(file)", f"cannot be read: {error.strerror or error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SemanticLayerError(source, "(file)", f"is not valid YAML: {error}") from None


def load_semantic_layer(extra: Iterable[str | Path] = ()) -> SemanticLayer:
    """The shipped layer with each extra file merged over it, in order (uncached)."""
    builder = _Builder()
    for path in (*SHIPPED_FILES, *(Path(p) for p in extra)):
        builder.apply(_read(path), str(path))
    return builder.build()


def configured_extra_files() -> tuple[Path, ...]:
    extra: object = settings.NLQ_SEMANTIC_EXTRA
    if isinstance(extra, str | Path) or not isinstance(extra, Sequence):
        raise SemanticLayerError("settings", "NLQ_SEMANTIC_EXTRA", "expected a list of YAML file paths")
    return tuple(Path(str(p)) for p in extra)


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1  # reading it will raise the clear error


@lru_cache(maxsize=8)
def _cached(files: tuple[tuple[Path, int], ...]) -> SemanticLayer:
    return load_semantic_layer(path for path, _ in files)


def semantic_layer() -> SemanticLayer:
    """The layer in use: shipped files plus NLQ_SEMANTIC_EXTRA, reloaded when one of those changes."""
    return _cached(tuple((path, _stamp(path)) for path in configured_extra_files()))


def sensitivity_of(table: str, column: str) -> str:
    return semantic_layer().sensitivity_of(table, column)


def synonyms_for(term: str) -> tuple[str, ...]:
    return semantic_layer().synonyms_for(term)


def canonical(term: str) -> str | None:
    return semantic_layer().canonical(term)
