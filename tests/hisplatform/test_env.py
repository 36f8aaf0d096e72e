"""Settings helpers reject bad values with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from hisplatform.env import env_bool, env_int, env_list, env_str, env_url, load_env_file

ROOT = Path(__file__).resolve().parents[2]


def test_env_bool_reads_common_spellings_and_rejects_others() -> None:
    assert env_bool("X", False, environ={"X": "yes"}) is True
    assert env_bool("X", True, environ={"X": "0"}) is False
    assert env_bool("X", True, environ={}) is True
    with pytest.raises(ImproperlyConfigured, match="X must be one of"):
        env_bool("X", False, environ={"X": "maybe"})


def test_env_int_checks_type_and_bounds() -> None:
    assert env_int("N", 5, environ={"N": "12"}) == 12
    with pytest.raises(ImproperlyConfigured, match="N must be a whole number, not 'ten'"):
        env_int("N", 5, environ={"N": "ten"})
    with pytest.raises(ImproperlyConfigured, match="N must be at least 100, not 5"):
        env_int("N", 500, minimum=100, environ={"N": "5"})


def test_env_list_and_required_string() -> None:
    assert env_list("H", [], environ={"H": "a.example, b.example"}) == ["a.example", "b.example"]
    with pytest.raises(ImproperlyConfigured, match="empty item"):
        env_list("H", [], environ={"H": "a.example,,b"})
    with pytest.raises(ImproperlyConfigured, match="SECRET must be set"):
        env_str("SECRET", None, environ={})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("mysql://db/x", "scheme"),
        ("sqlite://", "names no SQLite file"),
        ("postgresql://127.0.0.1:5432", "names no PostgreSQL database"),
        ("postgresql://h:abc/db", "port that is not a number"),
        ("postgresql:///db", "names no host"),
    ],
)
def test_env_url_rejects_unsupported_or_incomplete_urls(value: str, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=problem):
        env_url("WAREHOUSE_URL", "sqlite:///x", kind="warehouse", environ={"WAREHOUSE_URL": value})


def _import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    unset = {"SECRET_KEY", "PSEUDONYM_SECRET", "DEBUG", "DJANGO_SETTINGS_MODULE", "ALLOWED_HOSTS"}
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import hisplatform.settings"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def test_secret_key_is_required_when_debug_is_off() -> None:
    result = _import_settings(DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


STRONG = "k3Jd9-fQ2xLm7ZpR4tVw8yBn1cHs6gAe"


def test_debug_runs_without_a_secret_and_production_with_one() -> None:
    assert _import_settings(DEBUG="1").returncode == 0
    production = {"SECRET_KEY": STRONG, "ALLOWED_HOSTS": "analytics.example"}
    assert _import_settings(DEBUG="0", PSEUDONYM_SECRET=STRONG[::-1], **production).returncode == 0
    missing = _import_settings(DEBUG="0", **production)
    assert missing.returncode != 0
    assert "PSEUDONYM_SECRET must be set" in missing.stderr


@pytest.mark.parametrize("secret", ["short-secret", "replace-with-50-random-characters-from-a-vault"])
def test_weak_or_placeholder_secret_is_refused_in_production(secret: str) -> None:
    result = _import_settings(DEBUG="0", SECRET_KEY=secret, ALLOWED_HOSTS="analytics.example")
    assert result.returncode != 0
    assert "at least 32 characters (not a placeholder)" in result.stderr


def test_production_without_allowed_hosts_stops_with_a_reason() -> None:
    result = _import_settings(DEBUG="0", SECRET_KEY=STRONG)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must list the host names" in result.stderr


def test_memory_broker_cannot_be_used_without_eager_tasks() -> None:
    result = _import_settings(DEBUG="1", CELERY_TASK_ALWAYS_EAGER="0")
    assert "CELERY_TASK_ALWAYS_EAGER may be off only with a Redis" in result.stderr


def test_log_level_is_checked() -> None:
    result = _import_settings(DEBUG="1", LOG_LEVEL="LOUD")
    assert "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in result.stderr


def test_bad_database_url_stops_startup_with_its_name() -> None:
    result = _import_settings(DEBUG="1", DATABASE_URL="oracle://db/x")
    assert result.returncode != 0
    assert "DATABASE_URL must be a URL with scheme" in result.stderr


def test_env_file_fills_only_what_the_environment_lacks(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# demo\nDEBUG=1\nSECRET_KEY='from-file'\n\n")
    environ = {"SECRET_KEY": "from-environment"}
    load_env_file(env_file, environ=environ)
    assert environ == {"SECRET_KEY": "from-environment", "DEBUG": "1"}
    load_env_file(tmp_path / "absent.env", environ=environ)


def test_env_file_rejects_a_line_that_is_not_key_value(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=1\nexport this is wrong\n")
    with pytest.raises(ImproperlyConfigured, match=r"\.env:2 is not a KEY=VALUE line"):
        load_env_file(env_file, environ={})


def test_url_errors_never_print_the_password() -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        env_url(
            "DATABASE_URL", "x", kind="database", environ={"DATABASE_URL": "postgresql://u:s3cr3t@h:x/db"}
        )
    assert "s3cr3t" not in str(error.value)
    assert "u:***@h:x" in str(error.value)
