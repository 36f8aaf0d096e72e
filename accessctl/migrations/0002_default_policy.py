"""Load the default policy: with no rules at all, every question would be denied."""

from typing import Any

from django.db import migrations


def load(apps: Any, schema_editor: Any) -> None:
    from accessctl.default_policy import DEFAULT_RULES

    rule = apps.get_model("accessctl", "PolicyRule")
    state = apps.get_model("accessctl", "PolicyState")
    if not rule.objects.exists():
        rule.objects.bulk_create(rule(**r._asdict(), updated_by="default policy") for r in DEFAULT_RULES)
    state.objects.update_or_create(pk=1, defaults={"version": 1})


class Migration(migrations.Migration):
    dependencies = [("accessctl", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
