"""The semantic layer: what the warehouse means, how sensitive each column is, and what people call things."""

from nlquery.semantic.loader import (
    ColumnMeta,
    Dimension,
    Event,
    Join,
    Measure,
    SemanticLayer,
    SemanticLayerError,
    TableMeta,
    Term,
    canonical,
    load_semantic_layer,
    semantic_layer,
    sensitivity_of,
    synonyms_for,
)
from nlquery.semantic.values import (
    ValueDictionaries,
    clear_value_dictionaries,
    unmatched_terms,
    value_dictionaries,
)

__all__ = [
    "ColumnMeta",
    "Dimension",
    "Event",
    "Join",
    "Measure",
    "SemanticLayer",
    "SemanticLayerError",
    "TableMeta",
    "Term",
    "ValueDictionaries",
    "canonical",
    "clear_value_dictionaries",
    "load_semantic_layer",
    "semantic_layer",
    "sensitivity_of",
    "synonyms_for",
    "unmatched_terms",
    "value_dictionaries",
]
