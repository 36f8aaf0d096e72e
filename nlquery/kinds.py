"""The kind of question a gold SQL answers (one patient's facts, a count, top-k...), for reports."""

from __future__ import annotations

import re
from typing import Final

KINDS: Final = ("patient", "count", "topk", "aggregate", "lookup", "rate", "unanswerable")


def kind_of_sql(sql: str) -> str:
    """The kind of question a gold SQL answers, read from its shape."""
    s = re.sub(r"\s+", " ", sql.lower()).strip()
    if s == "null":
        return "unanswerable"
    if "dense_rank" in s:
        return "topk"
    if re.search(r"subject_id = \d+", s):
        return "patient"
    if "365" in s and "dod" in s:
        return "rate"
    if s.startswith(("select count( distinct", "select count(distinct")):
        return "count"
    if re.match(r"select (distinct )?(d_|prescriptions\.route|microbiologyevents\.|cost\.cost)", s):
        return "lookup"
    return "aggregate"
