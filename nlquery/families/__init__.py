"""Plan families, registered on import: each names what a question returns and how to compile it."""

from nlquery.families import analytics, core, patient_more, patient_pairs, population  # noqa: F401  (they register)
from nlquery.families.base import FAMILIES, CompileError, Family, Filter, Found, QueryPlan, Spec

__all__ = ["FAMILIES", "CompileError", "Family", "Filter", "Found", "QueryPlan", "Spec"]
