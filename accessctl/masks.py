"""Column masks as SQL expressions (Apache Ranger's set, plus the custom ones a hospital needs).

A mask is applied where the column is read, inside the table's view, so every use of the column
(output, filter, join, sort) sees the masked value. Each kind keeps NULL as NULL.

| kind        | 320073197603171832 becomes |
| ----------- | -------------------------- |
| redact      | xxxxxxxxxxxxxxxxxx         |
| first4      | 3200**************         |
| last4       | **************1832         |
| first3last4 | 320***********1832         |
| hash        | sha256 of the value, hex   |
| null        | NULL                       |
| year        | 1976-01-01 (dates only)    |

And for de-identified research (masking profiles, accessctl/profiles.py):

| kind               | becomes                                                          |
| ------------------ | ---------------------------------------------------------------- |
| prefix3            | the first 3 characters (postcodes: 10115 -> 101)                 |
| month              | the first day of the month                                       |
| birth_year         | January 1 of the year; anyone over 89 today is shown as 90       |
| top90              | ages over 89 as 90 (shown as "90+")                              |
| shift              | the date moved by the patient's offset in this project           |
| pseudonym_<domain> | P-/E-/S-/R- and 12 hex characters of HMAC under the project key  |
"""

from __future__ import annotations

import re
from typing import Final

import sqlglot
from sqlglot import exp

# What each kind is called where users read it ("masked": {"national_id": "first 3 and last 4 shown"}).
DESCRIPTIONS: Final = {
    "redact": "redacted",
    "first4": "first 4 characters shown",
    "last4": "last 4 characters shown",
    "first3last4": "first 3 and last 4 characters shown",
    "hash": "replaced by a one-way hash",
    "null": "withheld",
    "year": "year only",
    "text_ids": "national ID numbers in the text: first 3 and last 4 characters shown",
    "text_ids_hidden": "national ID numbers in the text hidden",
    "prefix3": "first 3 characters only",
    "month": "month only",
    "birth_year": "year only; over 89 shown as 90",
    "top90": "over 89 shown as 90+",
    "shift": "shifted by a per-patient offset",
    "pseudonym_patient": "project pseudonym",
    "pseudonym_encounter": "project pseudonym",
    "pseudonym_staff": "project pseudonym",
    "pseudonym_record": "project pseudonym",
    "scrub": "identifiers scrubbed from the text",
}
PSEUDONYM_KINDS: Final = frozenset(k for k in DESCRIPTIONS if k.startswith("pseudonym_"))
# Kinds computed with the research project's key: the query needs it (executor's pseudonym_key).
KEYED_KINDS: Final = PSEUDONYM_KINDS | {"shift"}

# Masked text is built from these pieces. SQLite has no repeat(): printf's %.*c repeats a character
# (and gives one for a count of 0, hence the substr).
_STARS: Final = {
    "sqlite": "substr(printf('%.*c', {n}, '{c}'), 1, {n})",
    "postgres": "repeat('{c}', greatest({n}, 0))",
}
_HASH: Final = {
    # his_sha256 is registered on every warehouse SQLite connection (hisplatform.warehouse.executor).
    "sqlite": "his_sha256(CAST({col} AS TEXT))",
    "postgres": "encode(sha256(convert_to(CAST({col} AS TEXT), 'UTF8')), 'hex')",
}
# National ID numbers inside free text (a note quotes them): masked where the text is read, so
# neither the output nor a filter or string function on the text sees them whole.
_ID_IN_TEXT: Final = "(?<![0-9A-Za-z*])([0-9]{{3}})[0-9]{{11}}([0-9]{{3}}[0-9X])(?![0-9A-Za-z*])"
_WHOLE_ID_IN_TEXT: Final = "(?<![0-9A-Za-z*])[0-9]{{17}}[0-9X](?![0-9A-Za-z*])"
_TEXT_IDS: Final = {
    # his_mask_ids is registered on every warehouse SQLite connection (hisplatform.warehouse.executor).
    "sqlite": "his_mask_ids({col}, {keep})",
    "postgres": (
        f"CASE WHEN {{keep}} THEN regexp_replace({{col}}, '{_ID_IN_TEXT}', '\\1***********\\2', 'g') "
        f"ELSE regexp_replace({{col}}, '{_WHOLE_ID_IN_TEXT}', 'xxxxxxxxxxxxxxxxxx', 'g') END"
    ),
}
_YEAR: Final = {
    "sqlite": "date(strftime('%Y', {col}) || '-01-01')",
    "postgres": "CAST(date_trunc('year', {col}) AS DATE)",
}
# HMAC-SHA256 of a message under the project key. PostgreSQL has sha256() but no HMAC without
# pgcrypto, so HMAC is spelled out from the padded keys the executor sets for the transaction.
_PG_HMAC: Final = (
    "sha256(decode(current_setting('his.hmac_opad'), 'hex') || "
    "sha256(decode(current_setting('his.hmac_ipad'), 'hex') || convert_to({message}, 'UTF8')))"
)
_PSEUDONYM: Final = {
    "sqlite": "his_pseudonym('{domain}', {col})",
    "postgres": "'{prefix}' || substr(encode(" + _PG_HMAC + ", 'hex'), 1, {chars})",
}
# Days to shift one patient's dates by (accessctl.pseudonyms.shift_days, in SQL).
_SHIFT_DAYS: Final = {
    "sqlite": "his_shift(subject_id)",
    "postgres": ("(get_byte({hmac}, 0) * 256 + get_byte({hmac}, 1)) % {span} - {half}"),
}


def mask_expression(kind: str, column: str, dialect: str, column_type: str = "") -> exp.Expr:
    """The SQL that shows `column` (a plain column name, of SQL type `column_type`) masked as `kind`;
    ValueError for others. `shift` reads the same row's subject_id."""
    col = exp.column(column).sql(dialect)
    is_date = column_type.upper().startswith("DATE")
    text = f"CAST({col} AS TEXT)"
    length = f"length({text})"
    stars = _STARS[dialect]
    if kind == "redact":
        sql = stars.format(n=length, c="x")
    elif kind in ("first4", "last4"):
        # A value of 4 characters or fewer would be shown whole: it is starred out instead.
        shown = (
            f"substr({text}, 1, 4) || " + stars.format(n=f"{length} - 4", c="*")
            if kind == "first4"
            else stars.format(n=f"{length} - 4", c="*") + f" || substr({text}, {length} - 3)"
        )
        sql = f"CASE WHEN {length} <= 4 THEN " + stars.format(n=length, c="*") + f" ELSE {shown} END"
    elif kind == "first3last4":
        middle = stars.format(n=f"{length} - 7", c="*")
        sql = (
            f"CASE WHEN {length} <= 7 THEN {stars.format(n=length, c='*')} "
            f"ELSE substr({text}, 1, 3) || {middle} || substr({text}, {length} - 3) END"
        )
    elif kind == "hash":
        sql = _HASH[dialect].format(col=col)
    elif kind == "null":
        return exp.Null()
    elif kind == "year":
        sql = _YEAR[dialect].format(col=col)
    elif kind in ("text_ids", "text_ids_hidden"):
        sql = _TEXT_IDS[dialect].format(col=col, keep="true" if kind == "text_ids" else "false")
    elif kind == "prefix3":
        sql = f"substr({text}, 1, 3)"
    elif kind == "top90":
        sql = f"CASE WHEN {col} > 89 THEN 90 ELSE {col} END"
    elif kind in ("month", "birth_year", "shift"):
        sql = _date_mask(kind, col, dialect, is_date)
    elif kind in PSEUDONYM_KINDS:
        from accessctl.pseudonyms import HEX_CHARS, PREFIXES

        domain = kind.removeprefix("pseudonym_")
        message = f"'{domain}:' || {text}"
        sql = _PSEUDONYM[dialect].format(
            domain=domain, col=col, prefix=PREFIXES[domain], chars=HEX_CHARS,
            message=message,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown mask {kind!r}")
    return sqlglot.parse_one(f"CASE WHEN {col} IS NULL THEN NULL ELSE {sql} END", read=dialect)


def _date_mask(kind: str, col: str, dialect: str, is_date: bool) -> str:
    if dialect == "sqlite":
        stamp = "" if is_date else " 00:00:00"
        if kind == "month":
            return f"strftime('%Y-%m-01{stamp}', {col})"
        if kind == "birth_year":
            # Anyone over 89 today is shown as born 90 years ago (HIPAA's ages over 89).
            return (
                f"CASE WHEN {col} < date('now', '-90 years') "
                f"THEN strftime('%Y', date('now', '-90 years')) || '-01-01{stamp}' "
                f"ELSE strftime('%Y', {col}) || '-01-01{stamp}' END"
            )
        function = "date" if is_date else "datetime"
        return f"{function}({col}, printf('%+d days', {_SHIFT_DAYS['sqlite']}))"
    from accessctl.pseudonyms import SHIFT_DAYS

    cast = "DATE" if is_date else "TIMESTAMP"
    if kind == "month":
        return f"CAST(date_trunc('month', {col}) AS {cast})"
    if kind == "birth_year":
        return (
            f"CASE WHEN {col} < CURRENT_DATE - INTERVAL '90 years' "
            f"THEN CAST(date_trunc('year', CURRENT_DATE - INTERVAL '90 years') AS {cast}) "
            f"ELSE CAST(date_trunc('year', {col}) AS {cast}) END"
        )
    hmac_sql = _PG_HMAC.format(message="'shift:' || CAST(subject_id AS TEXT)")
    days = _SHIFT_DAYS["postgres"].format(hmac=hmac_sql, span=2 * SHIFT_DAYS + 1, half=SHIFT_DAYS)
    return f"CAST({col} + make_interval(days => {days}) AS {cast})"


# A national ID number written out in free text (18 characters, a check character last): a note
# quotes it in full whatever the column masks say, so text is masked by pattern after the query.
_NATIONAL_ID_IN_TEXT: Final = re.compile(r"(?<![0-9A-Za-z*])[0-9]{17}[0-9X](?![0-9A-Za-z*])")


def mask_national_ids_in_text(text: str | None, keep_ends: bool = True) -> str | None:
    """`text` with every national ID number in it shown as first 3 and last 4 characters (or hidden)."""
    if text is None:
        return None
    if keep_ends:
        return _NATIONAL_ID_IN_TEXT.sub(lambda m: m[0][:3] + "*" * (len(m[0]) - 7) + m[0][-4:], text)
    return _NATIONAL_ID_IN_TEXT.sub("x" * 18, text)
