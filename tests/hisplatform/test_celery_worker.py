"""A real Celery worker on the running Redis picks up the platform's tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from hisplatform.celery import app as platform_app
from hisplatform.tasks import ping

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:  # pragma: no cover - the machines here always run Redis
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {error}")
    return REDIS_URL


@pytest.fixture
def worker(redis_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    # A queue of its own so a concurrent run or a stray worker cannot take this test's task.
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hisplatform",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, queue
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        # Shown by pytest only when the test fails: what the worker said.
        print(log_path.read_text())


def test_embedded_default_runs_tasks_eagerly_in_process() -> None:
    assert platform_app.conf.task_always_eager is True
    result = ping.delay("inline")
    assert result.get(timeout=1)["pid"] == os.getpid()


@pytest.mark.slow
def test_task_runs_in_a_real_worker_on_redis(
    worker: tuple[subprocess.Popen[str], str], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, queue = worker
    # Celery lets CELERY_BROKER_URL in the environment override the broker given to the app.
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    client = Celery(broker=redis_url, backend=redis_url, set_as_current=False)
    token = uuid.uuid4().hex
    result = client.send_task("hisplatform.ping", args=[token], queue=queue)
    # Worker start-up (Django set-up, broker connection) takes a few seconds on a loaded machine.
    reply = result.get(timeout=60)
    assert reply["token"] == token
    assert reply["pid"] == process.pid
    assert reply["pid"] != os.getpid()
