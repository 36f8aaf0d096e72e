"""Settings for tests: the project's settings with test defaults for what a deployment must set."""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-never-used-in-production")
os.environ.setdefault("PSEUDONYM_SECRET", "test-only-pseudonym-secret-never-used-in-production")
# Tests run as production does, whatever a developer's .env (written by `make demo`) says.
os.environ["DEBUG"] = "0"
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hisplatform")

from hisplatform.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never in production
# The manifest storage needs collectstatic first; tests render admin pages without it.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not Django's in-memory default: concurrent writers must wait on the lock as in production.
    _name = Path(DATABASES["default"]["NAME"])  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(_name.with_name(f"test_{_name.name}"))}  # noqa: F405

# Every decision checks the policy version: tests change rules and expect the next question to see it.
POLICY_RELOAD_SECONDS = 0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Scoring on commit reads the warehouse for every recorded event; the tests of the scoring pipeline
# switch it on, the rest of the suite records events without waiting for it.
AUDIT_SCORE_ON_COMMIT = False
# The group-commit appender keeps a connection in a thread of its own; its tests switch it on and stop
# it afterwards, so that no connection outlives the test database.
AUDIT_GROUP_COMMIT = False
# The test client and live server speak plain HTTP on loopback; production redirects to HTTPS.
SECURE_SSL_REDIRECT = False
