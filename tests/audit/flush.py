"""Let Django's test flush empty the append-only audit tables: a maintenance path for tests only.

`transactional_db` tests end with `manage.py flush`, which TRUNCATEs every table on PostgreSQL (the
audit TRUNCATE trigger refuses it even when the table is empty) and DELETEs from every table on
SQLite (refused once an event exists). Wrapping the vendor's `sql_flush` switches the audit triggers
off around the flush, in the flush's own transaction, the way an owner doing maintenance would:
PostgreSQL `ALTER TABLE ... DISABLE TRIGGER USER` (the test role owns the tables), SQLite drop and
re-create. The triggers are back on before the flush commits, and stay on for every test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

AUDIT_TABLES = ("audit_event", "audit_chain_head")
_MARK = "_audit_flush_wrapped"


def _wrap(original: Callable[..., list[str]]) -> Callable[..., list[str]]:
    @functools.wraps(original)
    def sql_flush(self: Any, style: Any, tables: Any, *args: Any, **kwargs: Any) -> list[str]:
        statements = original(self, style, tables, *args, **kwargs)
        guarded = [table for table in AUDIT_TABLES if table in tables]
        if not statements or not guarded:
            return statements
        quote = self.connection.ops.quote_name
        if self.connection.vendor == "postgresql":
            before = [f"ALTER TABLE {quote(table)} DISABLE TRIGGER USER;" for table in guarded]
            after = [f"ALTER TABLE {quote(table)} ENABLE TRIGGER USER;" for table in guarded]
        elif self.connection.vendor == "sqlite":
            placeholders = ", ".join("%s" for _ in guarded)
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                    f"AND tbl_name IN ({placeholders}) ORDER BY name",
                    guarded,
                )
                triggers = cursor.fetchall()
            before = [f"DROP TRIGGER {quote(name)};" for name, _ in triggers]
            after = [sql for _, sql in triggers]
        else:
            return statements
        return [*before, *statements, *after]

    setattr(sql_flush, _MARK, True)
    return sql_flush


@contextmanager
def audit_tables_flushable() -> Iterator[None]:
    """While open, Django's flush empties the audit tables too. Idempotent; nests safely."""
    patched: list[tuple[type, Callable[..., list[str]]]] = []
    for alias in connections:
        ops_class = type(connections[alias].ops)
        original = ops_class.sql_flush
        if getattr(original, _MARK, False) or any(cls is ops_class for cls, _ in patched):
            continue
        ops_class.sql_flush = _wrap(original)  # type: ignore[method-assign]
        patched.append((ops_class, original))
    try:
        yield
    finally:
        for ops_class, original in patched:
            ops_class.sql_flush = original  # type: ignore[method-assign]
