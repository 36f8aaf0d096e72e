"""On PostgreSQL, an index answering "which events showed this patient" (the accounting of disclosures).

`patients_touched @> '[N]'` with a GIN index (jsonb_path_ops) takes milliseconds at millions of
events instead of a scan of them all. SQLite has no GIN index; its accounting scans, as it always has.
"""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS audit_event_patients_gin "
    "ON audit_event USING gin (patients_touched jsonb_path_ops)"
)
DROP = "DROP INDEX IF EXISTS audit_event_patients_gin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_analytics")]

    operations = [migrations.RunPython(create, drop)]
