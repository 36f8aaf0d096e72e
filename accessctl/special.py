"""Special categories of clinical data (psychiatry, HIV, substance use, reproductive health, genetics),
recognised by their ICD codes in the warehouse's coded tables.

Codes are as the warehouse stores them (EHRSQL's form: `icd10|f329`, `icd9|29620`). The prefixes
follow the code chapters that privacy law and practice single out (e.g. 42 CFR Part 2 for substance
use, GDPR article 9 for genetic and health data); a hospital with stricter local rules adds prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlglot import exp

CATEGORY_NAMES: Final = {
    "psychiatry": "psychiatry",
    "hiv": "HIV",
    "substance_use": "substance use",
    "reproductive": "reproductive health",
    "genetic": "genetics",
}


def _icd9(*prefixes: str) -> tuple[str, ...]:
    return tuple(f"icd9|{p}" for p in prefixes)


def _icd10(*prefixes: str) -> tuple[str, ...]:
    return tuple(f"icd10|{p}" for p in prefixes)


# table -> category -> code prefixes.
PREFIXES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "diagnoses_icd": {
        "psychiatry": _icd10("f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "r45851", "z915")
        + _icd9(
            *(
                str(n)
                for n in (295, 296, 297, 298, 299, 300, 301, 302, 306, 307, 308, 309, 311, 312, 313, 314)
            )
        )
        + _icd9("v6284"),
        "substance_use": _icd10("f1", "z714", "z715") + _icd9("291", "292", "303", "304", "305"),
        "hiv": _icd10("b20", "b21", "b22", "b23", "b24", "z21", "r75", "o987", "z206", "z114")
        + _icd9("042", "v08", "79571", "07953"),
        "reproductive": _icd10("o", "z3", "n97", "n96", "n80")
        + _icd9("63", "64", "65", "66", "67", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "628", "617"),
        "genetic": _icd10("q", "z15", "z14", "e84") + _icd9("74", "75", "v84", "v83", "2770"),
    },
    "procedures_icd": {
        # ICD-10-PCS section 1 (obstetrics) and ICD-9-CM procedures 72-75 (obstetric), 69.01 (termination).
        "reproductive": _icd10("10") + _icd9("72", "73", "74", "75", "6901"),
    },
}
# Where special categories live: coded tables by code, and notes, which may say anything about a
# patient who has a special-category diagnosis. Medicines (antiretrovirals, methadone) are not
# classified yet: checking every prescriptions answer for them re-ran a 70 ms question for 700 ms.
CODED_TABLES: Final = frozenset({*PREFIXES, "notes"})


def categories_of(code: str, table: str = "diagnoses_icd") -> set[str]:
    code = code.lower()
    return {category for category, prefixes in PREFIXES.get(table, {}).items() if code.startswith(prefixes)}


def _like_any(column: str, patterns: Iterable[str]) -> exp.Expr | None:
    ordered = sorted(set(patterns))
    if not ordered:
        return None
    value = exp.Lower(this=exp.column(column))
    return exp.or_(*(exp.Like(this=value.copy(), expression=exp.Literal.string(p)) for p in ordered))


def special_rows(table: str, categories: Iterable[str]) -> exp.Expr | None:
    """A predicate true for the rows of `table` in any of the categories (None: the table has none)."""
    wanted = set(categories)
    if table == "notes":
        # A note of a patient with a special-category diagnosis may speak of it.
        diagnosed = special_rows("diagnoses_icd", wanted)
        if diagnosed is None:
            return None
        patients = exp.select("subject_id").from_("diagnoses_icd").where(diagnosed)
        return exp.column("subject_id").isin(query=patients)
    return _like_any("icd_code", (p + "%" for c in wanted for p in PREFIXES.get(table, {}).get(c, ())))


def describe(categories: Iterable[str]) -> str:
    names = [CATEGORY_NAMES.get(c, c) for c in sorted(categories)]
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1] if names else ""
