"""The guard's last check: SQL whose text does not read as the rewrite meant it is refused, whatever
went wrong between the tree and the text (here: the text edited after rendering)."""

from __future__ import annotations

import re

import pytest
from sqlglot import exp

from accessctl.rewrite import ReadPolicy, SqlRefused, TableView, _verify, rewrite, view_name
from hisplatform.warehouse.schema import tables

SCOPE = exp.condition("subject_id IN (SELECT subject_id FROM __scope)")


def _policy() -> ReadPolicy:
    views = {
        name: TableView(
            tuple((c, exp.column(c)) for c in table.column_names),
            SCOPE if "subject_id" in table.column_names else None,
        )
        for name, table in tables().items()
    }
    scope = exp.select("subject_id").from_("care_team").where("staff_id = 1")
    return ReadPolicy(
        "sqlite", views, row_cap=100, ctes=(("__scope", scope),), known_tables=frozenset(tables())
    )


_SHADOWED = "FROM (WITH __v_patients AS (SELECT * FROM patients) SELECT * FROM __v_patients) AS p"
QUERY = "SELECT p.gender, COUNT(*) FROM patients p JOIN labevents l ON l.subject_id = p.subject_id GROUP BY 1"


def _expected(policy: ReadPolicy) -> dict[str, str]:
    from accessctl.rewrite import _view

    return {view_name(n): _view(n, policy.tables[n]).sql(dialect="sqlite") for n in ("patients", "labevents")}


def test_the_rewritten_text_passes() -> None:
    policy = _policy()
    text = rewrite(QUERY, policy).sql
    _verify(text, policy, {"__scope", view_name("patients"), view_name("labevents")}, _expected(policy))


@pytest.mark.parametrize(
    "tamper",
    [
        # A raw table read next to the views.
        lambda text: text.replace(" LIMIT 101", " UNION ALL SELECT gender, 1 FROM patients LIMIT 101"),
        # The scope predicate dropped from one view.
        lambda text: re.sub(r" WHERE subject_id IN \(SELECT subject_id FROM __scope\)", "", text, count=1),
        # A reserved view name defined again inside the query.
        lambda text: text.replace("FROM __v_patients AS p", _SHADOWED),
        # A second statement.
        lambda text: text + "; SELECT * FROM patient_identity",
        # A reserved name the policy does not know.
        lambda text: text.replace("WITH __scope AS", "WITH __other AS (SELECT 1), __scope AS"),
    ],
    ids=["raw table", "scope dropped", "reserved name nested", "second statement", "unknown reserved"],
)
def test_tampered_text_is_refused(tamper: object) -> None:
    policy = _policy()
    text = rewrite(QUERY, policy).sql
    assert callable(tamper)
    tampered = tamper(text)
    assert tampered != text
    with pytest.raises(SqlRefused) as refused:
        _verify(
            tampered, policy, {"__scope", view_name("patients"), view_name("labevents")}, _expected(policy)
        )
    assert refused.value.code == "sql_unsafe"
