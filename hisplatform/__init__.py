"""The Django project and the platform core; named hisplatform because `platform` shadows the stdlib."""

from hisplatform.celery import app as celery_app

__all__ = ["celery_app"]
