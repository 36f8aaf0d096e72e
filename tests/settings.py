"""Settings for tests: the project's settings with test defaults for what a deployment must set."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-never-used-in-production")
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hisplatform")

from hisplatform.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never in production
# The manifest storage needs collectstatic first; tests render admin pages without it.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
