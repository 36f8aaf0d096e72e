"""Django settings: every deployment value comes from the environment through hisplatform.env."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from hisplatform.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_secret,
    env_str,
    env_url,
    load_env_file,
)

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
load_env_file(BASE_DIR / ".env")
VAR_DIR = Path(env_str("HIS_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY", debug=DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    # Without it Django answers every request with 400; say so at start-up instead.
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must list the host names this site is served under when DEBUG is off."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "hisplatform",
    "nlquery",
    "accessctl",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "hisplatform.middleware.SessionExpiryMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hisplatform.urls"
WSGI_APPLICATION = "hisplatform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "hisplatform.context_processors.navigation",
            ],
        },
    },
]

# Application database: users, policies, the audit store. The embedded default is a SQLite file.
DATABASE_URL = env_url("DATABASE_URL", f"sqlite:///{VAR_DIR / 'app.sqlite3'}", kind="database")
if DATABASE_URL.startswith("sqlite:///"):
    # The embedded default keeps its files under var/; create it so a fresh clone just works.
    Path(DATABASE_URL.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The audit store appends from several threads (dev server) and processes (worker);
    # waiting on the write lock beats failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}

# The warehouse (HIS/LIS extract). Written only by seed_demo and importers; queried read-only.
WAREHOUSE_URL = env_url("WAREHOUSE_URL", f"sqlite:///{VAR_DIR / 'warehouse.sqlite3'}", kind="warehouse")
# PostgreSQL only: the login role queries run as. Empty means WAREHOUSE_URL with the reader role's name.
WAREHOUSE_READER_URL = env_str("WAREHOUSE_READER_URL", "")
WAREHOUSE_READER_ROLE = env_str("WAREHOUSE_READER_ROLE", "his_reader")
WAREHOUSE_STATEMENT_TIMEOUT_MS = env_int(
    "WAREHOUSE_STATEMENT_TIMEOUT_MS", 15_000, minimum=100, maximum=600_000
)
WAREHOUSE_ROW_CAP = env_int("WAREHOUSE_ROW_CAP", 5_000, minimum=1, maximum=1_000_000)
# A result larger than this is refused rather than held in a web worker's memory.
WAREHOUSE_MAX_RESULT_BYTES = env_int(
    "WAREHOUSE_MAX_RESULT_BYTES", 50_000_000, minimum=10_000, maximum=2_000_000_000
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out sign-in before the password is checked (and before it costs a hash).
    "hisplatform.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttling: after this many failures for one username from one address, that pair is locked
# out for AXES_COOLOFF_MINUTES. Username and address together: a guesser cannot lock a clinician out of
# every ward's workstation by typing their name wrong from one place.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1, maximum=100)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1, maximum=24 * 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind the reverse proxy (docker/) the client's address is the first of X-Forwarded-For.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
AXES_IPWARE_PROXY_COUNT = env_int("AXES_PROXY_COUNT", 0, minimum=0, maximum=5)
# A session ends after SESSION_IDLE_SECONDS without a request, and SESSION_COOKIE_AGE after sign-in
# whatever happens (hisplatform/middleware.py); closing the browser ends it too.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)  # one clinical shift
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_SECONDS", 30 * 60, minimum=60, maximum=24 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Production is served over HTTPS behind a reverse proxy that terminates TLS and says so in
# X-Forwarded-Proto; the proxy must overwrite that header from clients.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# The container's health check asks over plain HTTP on loopback, behind no proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", not DEBUG) else None
)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Every script and style is a file of ours: no inline code, nothing from another origin. Chart.js sets
# canvas sizes through the CSSOM, which style-src does not govern.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
# whitenoise warns on every request when the folder is missing (before the first collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttling counters, the answers of questions run as tasks, and locks live here. The embedded default
# is one process's memory; with a worker or several web processes it must be shared (CACHE_URL=redis://).
CACHE_URL = env_url("CACHE_URL", "locmem://", kind="cache")
if CACHE_URL.startswith("redis"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "his"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON in and out only: DRF's browsable pages would need inline scripts (CSP) and add nothing here.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "hisplatform.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "hisplatform.api_errors.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "30/minute"),
        "user": env_str("API_THROTTLE_USER", "600/minute"),
        # Questions reach the warehouse: a script asking faster than a person can read is stopped.
        "ask": env_str("API_THROTTLE_ASK", "120/minute"),
    },
}
# Per-user API tokens: stored as digests, shown once, expiring; a user holds a few at most.
REST_KNOX = {
    "TOKEN_TTL": dt.timedelta(days=env_int("API_TOKEN_DAYS", 30, minimum=1, maximum=365)),
    "TOKEN_LIMIT_PER_USER": 5,
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Hospital analytics platform API",
    "VERSION": "1",
    # Swagger UI from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENFORCE_NON_BLANK_FIELDS": True,
    # One name for each choice set used by several serializers.
    "ENUM_NAME_OVERRIDES": {"BreakGlassReasonEnum": "accessctl.models.BreakGlassReason"},
}

# Extra semantic-layer YAML files a hospital adds (synonyms, sensitivity overrides, measures).
NLQ_SEMANTIC_EXTRA = env_list("NLQ_SEMANTIC_EXTRA", [])
# The moment "now", "this year" and "in the last 30 days" are read against, as YYYY-MM-DD HH:MM:SS;
# empty means the clock. A warehouse extract that stops at a date sets that date here.
NLQ_NOW = env_str("NLQ_NOW", "")
if NLQ_NOW and not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", NLQ_NOW):
    raise ImproperlyConfigured(f"NLQ_NOW must look like 2026-11-25 00:00:00, not {NLQ_NOW!r}.")
# Below this confidence (in percent) the engine abstains instead of answering; unset, the threshold
# `nlq_train` calibrated on held-out training folds (shipped inside the model) applies.
NLQ_MIN_CONFIDENCE_PERCENT = (
    env_int("NLQ_MIN_CONFIDENCE_PERCENT", 0, minimum=0, maximum=100)
    if env_str("NLQ_MIN_CONFIDENCE_PERCENT", "")
    else None
)

# Access control. A stay that ended this many days ago still counts as a care relationship.
ACCESS_CARE_WINDOW_DAYS = env_int("ACCESS_CARE_WINDOW_DAYS", 30, minimum=0, maximum=365)
# Other processes notice a policy change made in admin within this many seconds.
POLICY_RELOAD_SECONDS = env_int("POLICY_RELOAD_SECONDS", 5, minimum=0, maximum=3600)
BREAKGLASS_DEFAULT_MINUTES = env_int("BREAKGLASS_DEFAULT_MINUTES", 30, minimum=1, maximum=60)
BREAKGLASS_MAX_MINUTES = env_int("BREAKGLASS_MAX_MINUTES", 60, minimum=1, maximum=60)
# More uses than this by one person in 7 days escalate the review.
BREAKGLASS_ESCALATE_AFTER = env_int("BREAKGLASS_ESCALATE_AFTER", 3, minimum=1, maximum=100)

# Disclosure control (accessctl/disclose.py). Research pseudonym keys are derived from this secret,
# which lives only in the server's environment: a database copy alone cannot compute a pseudonym.
PSEUDONYM_SECRET = env_secret("PSEUDONYM_SECRET", debug=DEBUG)
# Research rows: every row matches at least K patients on its quasi-identifiers, every such group
# holds at least L distinct values of a sensitive attribute, and at most this share of rows is
# withheld to get there (beyond it, values are generalised further).
DISCLOSURE_K = env_int("DISCLOSURE_K", 5, minimum=2, maximum=100)
DISCLOSURE_L = env_int("DISCLOSURE_L", 2, minimum=1, maximum=20)
DISCLOSURE_MAX_SUPPRESSION_PERCENT = env_int("DISCLOSURE_MAX_SUPPRESSION_PERCENT", 5, minimum=0, maximum=50)
# Where policy asks for differential privacy (obligation dp:EPSILON), each user may spend this much
# epsilon in all; the privacy office raises one user's total in admin (accessctl.PrivacyBudget).
DP_EPSILON_BUDGET = env_int("DP_EPSILON_BUDGET", 10, minimum=0, maximum=1000)

# Audit intelligence (audit/detect.py, audit/pipeline.py). Each recorded event is queued for scoring
# when its transaction commits; off, only the sweep (beat, `audit_score`) scores.
AUDIT_SCORE_ON_COMMIT = env_bool("AUDIT_SCORE_ON_COMMIT", True)
# Events recorded outside a transaction share one append (and one disk flush) with those of concurrent
# requests in the same process (audit/appender.py): several times the throughput of one flush each.
AUDIT_GROUP_COMMIT = env_bool("AUDIT_GROUP_COMMIT", True)
# Alerts are held to this many per 1,000 user-days of a role: beyond it the privacy office stops
# reading them.
AUDIT_ALERT_BUDGET = env_int("AUDIT_ALERT_BUDGET", 5, minimum=1, maximum=1000)
# Baselines are trained on this many trailing days of user-days.
AUDIT_TRAINING_DAYS = env_int("AUDIT_TRAINING_DAYS", 30, minimum=7, maximum=365)
# Signed checkpoints of the audit chain (audit/checkpoints.py). The private key lives in a file outside
# the database; `audit_verify` needs only the public key. With DEBUG a key is made under var/ on first use.
AUDIT_SIGNING_KEY_FILE = env_str(
    "AUDIT_SIGNING_KEY_FILE", str(VAR_DIR / "audit-signing-key.pem") if DEBUG else ""
)
AUDIT_VERIFY_KEY_FILE = env_str("AUDIT_VERIFY_KEY_FILE", "")
# Every checkpoint is also appended here, outside the database (ship it to syslog or WORM storage):
# `audit_verify` fails when a checkpoint logged here is missing from the database or differs.
AUDIT_CHECKPOINT_LOG = env_str(
    "AUDIT_CHECKPOINT_LOG", str(VAR_DIR / "audit-checkpoints.log") if DEBUG else ""
)

# Mail (break-glass notifications). The embedded demo prints mail on the console.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "his-platform@localhost")
# A mail server that stops answering must not hold up what sends the mail (alerts, break-glass notices).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1, maximum=300)

# Celery: eager in-process by default (make demo); a worker on Redis when CELERY_BROKER_URL is set.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", "memory://", kind="broker")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL.startswith("memory"))
if CELERY_BROKER_URL.startswith("memory") and not CELERY_TASK_ALWAYS_EAGER:
    # No worker can read an in-process broker: tasks would be queued and never run.
    raise ImproperlyConfigured("CELERY_TASK_ALWAYS_EAGER may be off only with a Redis CELERY_BROKER_URL.")
if not CELERY_TASK_ALWAYS_EAGER and not CACHE_URL.startswith("redis"):
    # A worker stores the answers of questions it ran where the web process reads them: one shared cache.
    raise ImproperlyConfigured(
        "With a Celery worker (CELERY_BROKER_URL=redis://...) set CACHE_URL=redis://... too."
    )
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_url(
    "CELERY_RESULT_BACKEND",
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "cache+memory://",
    kind="result_backend",
)
# A request that queues a task must not hang while Redis is down: connect once more after 0.2 s, then
# give up (audit scoring is then done by the sweep). Workers reconnect by their own, patient, settings.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    # A Redis host that drops packets, rather than refusing them, must not hold a request for the TCP timeout.
    "socket_connect_timeout": 2,
}
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is redelivered, not lost
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    # Once a minute: a break-glass session's end is recorded within a minute of its expiry.
    "expire-breakglass": {"task": "accessctl.expire_breakglass", "schedule": 60.0},
    # Events whose scoring task was lost (broker or worker down) are scored within a minute of recovery.
    "audit-sweep": {"task": "audit.sweep", "schedule": 60.0},
    # Every 15 minutes: a rewrite of the log is provable against a signed root at most that old.
    "audit-checkpoint": {"task": "audit.checkpoint", "schedule": 900.0},
    # Every night: the whole chain and its checkpoints verified, so the security console always shows a
    # recent verification by the system (about 3 minutes per million events on PostgreSQL).
    "audit-verify": {
        "task": "audit.verify_chain",
        "schedule": crontab(minute=15, hour=3),
        "args": (None,),
    },
    # Sunday night, when traffic is lowest: baselines retrained on the trailing window.
    "audit-retrain": {"task": "audit.retrain", "schedule": crontab(minute=30, hour=2, day_of_week="sun")},
    # Monday morning: the privacy office's weekly report.
    "audit-weekly-report": {
        "task": "audit.weekly_report",
        "schedule": crontab(minute=0, hour=6, day_of_week="mon"),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # Casbin logs the whole model at start-up and every denied request at WARNING: routine here;
    # Presidio announces its device (always the CPU here) whenever spaCy loads its plug-ins.
    # Celery logs every task that succeeds, which in-process (make demo) is every question asked.
    "loggers": {
        "casbin": {"level": "ERROR"},
        "presidio-analyzer": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    },
}
