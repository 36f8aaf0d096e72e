"""Typed readers for settings taken from the environment; each rejects a bad value loudly."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    if value is not None:
        return value
    if default is None:
        raise ImproperlyConfigured(f"{name} must be set in the environment.")
    return default


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, not {value!r}.")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {number}.")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(f"{name} is a comma-separated list with an empty item: {value!r}.")
    return items


_URL_SCHEMES = {
    "database": {"sqlite", "postgres", "postgresql"},
    "warehouse": {"sqlite", "postgres", "postgresql"},
    "broker": {"redis", "rediss", "memory"},
    "result_backend": {"redis", "rediss", "cache+memory"},
    "cache": {"redis", "rediss", "locmem"},
}
_HOSTLESS = {"sqlite", "memory", "cache+memory", "locmem"}


def _redacted(url: str) -> str:
    """The URL with any password replaced, so a configuration error never prints a secret."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def env_url(name: str, default: str, *, kind: str, environ: Mapping[str, str] | None = None) -> str:
    """A URL whose scheme must be one the platform supports for this kind of service."""
    value = _raw(name, environ) or default
    shown = _redacted(value)
    parts = urlsplit(value)
    allowed = _URL_SCHEMES[kind]
    if parts.scheme not in allowed:
        raise ImproperlyConfigured(
            f"{name} must be a URL with scheme {' or '.join(sorted(allowed))}, not {shown!r}."
        )
    if parts.scheme == "sqlite" and parts.path in ("", "/"):
        raise ImproperlyConfigured(f"{name} names no SQLite file: {shown!r}.")
    if parts.scheme.startswith("postgres") and not parts.path.strip("/"):
        raise ImproperlyConfigured(f"{name} names no PostgreSQL database: {shown!r}.")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} has a port that is not a number from 0 to 65535: {shown!r}."
        ) from None
    if parts.scheme not in _HOSTLESS and not parts.hostname and port is None and "host=" not in parts.query:
        raise ImproperlyConfigured(f"{name} names no host: {shown!r}.")
    return value


def env_choice(
    name: str, default: str, choices: Iterable[str], *, environ: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    allowed = list(choices)
    if value not in allowed:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def env_secret(name: str, *, debug: bool, environ: Mapping[str, str] | None = None) -> str:
    """A signing secret: required and strong when DEBUG is off; a fixed development value with DEBUG."""
    value = _raw(name, environ)
    if value is None:
        if debug:
            return "insecure-development-key-only-for-debug-and-tests"
        raise ImproperlyConfigured(f"{name} must be set in the environment when DEBUG is off.")
    if not debug and (len(value) < 32 or "replace" in value.lower() or "insecure" in value.lower()):
        raise ImproperlyConfigured(
            f"{name} must be a random secret of at least 32 characters (not a placeholder) when DEBUG is off."
        )
    return value


def load_env_file(path: Path, *, environ: MutableMapping[str, str] | None = None) -> None:
    """Read KEY=VALUE lines from a file into the environment; variables already set win.

    `make demo` writes one (DEBUG=1) so every `manage.py` command of the embedded demo works
    without exporting anything; deployments set real environment variables instead.
    """
    target = os.environ if environ is None else environ
    if not path.exists():
        return
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ImproperlyConfigured(f"{path}:{number} is not a KEY=VALUE line: {line!r}.")
        target.setdefault(key, value.strip().strip("'\""))


def password_from_env(variable: str | None) -> str | None:
    """The password held in the named environment variable (passwords never travel as arguments)."""
    if not variable:
        return None
    password = os.environ.get(variable)
    if not password:
        raise ImproperlyConfigured(f"The environment variable {variable} is unset or empty.")
    return password
