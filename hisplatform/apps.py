from django.apps import AppConfig


class HisPlatformConfig(AppConfig):
    name = "hisplatform"
    verbose_name = "Platform"
