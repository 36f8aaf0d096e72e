from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        # Connects the receivers that record sign-in, sign-out and failed sign-in.
        from audit import signals  # noqa: F401
