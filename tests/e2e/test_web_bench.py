"""`make bench`'s web section at its smallest: it loads POST /api/v1/ask on gunicorn, then removes it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection

from tests.conftest import PG_SERVER

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    # The bench makes its own PostgreSQL databases whatever the suite's application database: run once.
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="runs in the PostgreSQL application-database pass"
    ),
]


def test_the_web_bench_answers_the_whole_mix_without_failures_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "web.json"
    command = [
        sys.executable, "-m", "benchmarks.web", "--patients", "300", "--workers", "1", "--users", "2",
        "--accounts", "2", "--seconds", "3", "--single-seconds", "2", "--warmup", "3", "--runs", "1",
        "--repeats", "1", "--json", str(out),
    ]  # fmt: skip
    env = {**os.environ, "BENCH_PG_SERVER": PG_SERVER}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())

    assert result["warnings"] == []  # every question of the mix gets the status it is there for
    assert len(result["mix"]) == 22
    run = result["runs"][0]
    assert run["requests"] > 0
    assert run["failures"] == 0
    assert run["unexpected"] == 0
    assert set(run["statuses"]) <= {"answered", "abstained", "denied"}
    assert run["statuses"].get("answered", 0) > 0
    assert result["single_user"]["failures"] == 0
    assert result["in_process"]["median_ms"] > 0
    assert "== web: POST /api/v1/ask on gunicorn, PostgreSQL warehouse (300 patients) ==" in done.stdout
    assert "median of 1:" in done.stdout

    # Nothing is left: its databases, its roles, its Redis database.
    removed = result["removed"]
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        databases = {row[0] for row in admin.execute("SELECT datname FROM pg_database").fetchall()}
        roles = {row[0] for row in admin.execute("SELECT rolname FROM pg_roles").fetchall()}
    assert not set(removed["databases"]) & databases
    assert not set(removed["roles"]) & roles
    with redis.Redis.from_url(removed["redis"]) as client:
        assert client.dbsize() == 0
