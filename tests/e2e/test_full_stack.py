"""The docker/compose topology on native services: gunicorn, a Celery worker and beat, PostgreSQL, Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from celery import Celery

from tests.conftest import PG_SERVER

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_http(url: str, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                return int(response.status)
        except (urllib.error.URLError, OSError):  # refused, reset, or a read timeout while workers boot
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in time")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    name = f"his_stack_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    logs = tmp_path_factory.mktemp("stack")
    port = _free_port()
    queue = f"stack-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hisplatform.settings",
        "DEBUG": "0",
        "SECRET_KEY": "full-stack-test-secret-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        # Plain HTTP on loopback: no TLS proxy in front here.
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": f"{PG_SERVER}/{name}",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "CACHE_URL": REDIS_URL,
        "HIS_VAR_DIR": str(logs),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    # As in docker/compose.yml: the owner migrates and grants, the services log in as the app role.
    app_role = f"his_app_{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [sys.executable, "manage.py", "create_app_role", "--role", app_role],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    env["DATABASE_URL"] = f"postgresql://{app_role}@127.0.0.1:5432/{name}"
    commands = {
        "web": [
            str(BIN / "gunicorn"),
            "hisplatform.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            # gunicorn 27's control socket is one path per user: another gunicorn here (a bench) would clash.
            "--no-control-socket",
        ],
        "worker": [
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
            "--loglevel=INFO",
        ],
        "beat": [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hisplatform",
            "beat",
            "--loglevel=INFO",
            f"--schedule={logs / 'beat-schedule'}",
        ],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    handles = []
    try:
        for role, command in commands.items():
            handle = (logs / f"{role}.log").open("wb")
            handles.append(handle)
            processes[role] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
            )
        yield {"base": f"http://127.0.0.1:{port}", "queue": queue, "processes": processes, "logs": logs}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in handles:
            handle.close()
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{app_role}"')


def test_gunicorn_serves_health_sign_in_and_static_files_with_debug_off(stack: dict[str, object]) -> None:
    base = str(stack["base"])
    assert _wait_for_http(f"{base}/healthz", time.monotonic() + 60) == 200
    with urllib.request.urlopen(f"{base}/login/", timeout=5) as response:  # noqa: S310 - loopback only
        assert b"Sign in" in response.read()
    # Admin CSS comes from whitenoise, so the proxy needs no static-file configuration.
    with urllib.request.urlopen(f"{base}/static/admin/css/base.css", timeout=5) as response:  # noqa: S310
        assert response.status == 200
    # Admin pages resolve static names through the manifest that collectstatic wrote.
    with urllib.request.urlopen(f"{base}/admin/login/", timeout=5) as response:  # noqa: S310
        assert b"static/admin/css/base." in response.read()


def test_a_real_worker_runs_tasks_from_redis_and_beat_keeps_running(
    stack: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", REDIS_URL)  # Celery prefers the environment's broker
    client = Celery(broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
    reply = client.send_task("hisplatform.ping", args=["stack"], queue=str(stack["queue"])).get(timeout=60)
    processes = stack["processes"]
    assert isinstance(processes, dict)
    assert reply["pid"] == processes["worker"].pid
    assert processes["beat"].poll() is None, "celery beat exited"
    assert processes["web"].poll() is None, "gunicorn exited"
