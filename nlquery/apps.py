from django.apps import AppConfig


class NlqueryConfig(AppConfig):
    name = "nlquery"
    verbose_name = "Natural-language queries"
