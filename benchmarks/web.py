"""`make bench`'s web section: requests per second and latency of POST /api/v1/ask on gunicorn.

The stack is production's (docker/compose.yml) on loopback: gunicorn with DEBUG off, the application
database and the warehouse on PostgreSQL (questions run as the read-only reader role, the web as the
application role), a Celery worker on Redis scoring every audit event on commit. locust puts a weighted
mix of real questions from six roles on it (benchmarks/web_locust.py); the same mix is also timed
in one process without HTTP, so what gunicorn, DRF and the token check add is visible. Everything is
made for the run and removed afterwards (databases, roles, processes, the Redis database it used),
on failure and Ctrl-C too:

    python -m benchmarks.web [--users 8] [--seconds 20] [--runs 3] [--patients 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
BIN: Final = Path(sys.executable).parent
PG_SERVER: Final = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER: Final = os.environ.get("BENCH_REDIS_SERVER", "redis://127.0.0.1:6379")
# Redis databases the bench may take, first empty one wins (the tests use 0, the audit bench 14);
# BENCH_WEB_REDIS_DB names one instead. The whole database is flushed afterwards.
REDIS_CANDIDATES: Final = (13, 12, 11, 10, 9, 8)
OUT_DIR: Final = ROOT / "var" / "bench" / "web"
CORES: Final = os.cpu_count() or 1


@dataclass(frozen=True)
class Ask:
    """One line of the mix: who asks, what, how often (weights sum to 100) and what they should get."""

    label: str  # the locust stats row
    user: str
    question: str  # "{patient}" becomes one of the patients of `patients`
    weight: int
    expect: str
    patients: str = ""  # card: in cardiology now; icu: in critical care now; neuro: in neurology now


GENDER: Final = "what is the gender of patient {patient}?"
CREATININE: Final = "what was the last creatinine lab value of patient {patient}?"
CENSUS: Final = "how many patients are currently admitted?"
GLUCOSE_COHORT: Final = "count the number of patients who received a glucose lab test since 1 year ago."
# A day's traffic as the roles would make it: clinicians asking about their patients, their labs and
# their ward; a department head; the administrator's aggregates; a researcher's cohort questions; and
# questions the platform abstains from or refuses. Weights are per cent of requests.
MIX: Final[tuple[Ask, ...]] = (
    Ask("clinician: a patient", "dr.carter", GENDER, 9, "answered", "card"),
    Ask("clinician: a patient", "dr.carter", "what was the first drug prescribed to patient {patient}?", 6,
        "answered", "card"),
    Ask("clinician: labs", "dr.carter", CREATININE, 8, "answered", "card"),
    Ask("clinician: labs", "dr.carter",
        "what was the maximum hemoglobin value of patient {patient} during the current hospital visit?", 6,
        "answered", "card"),
    Ask("clinician: labs", "dr.carter", "how many lab tests were done in the last 30 days?", 4, "answered"),
    Ask("clinician: ward census", "dr.carter", CENSUS, 8, "answered"),
    Ask("nurse: a patient", "nurse.patel", "what was the last heart rate of patient {patient}?", 6,
        "answered", "icu"),
    Ask("nurse: a patient", "nurse.patel", GENDER, 3, "answered", "icu"),
    Ask("department head", "head.nguyen", CENSUS, 4, "answered"),
    Ask("department head", "head.nguyen", CREATININE, 3, "answered", "card"),
    Ask("administrator: aggregates", "admin.walsh", CENSUS, 6, "answered"),
    Ask("administrator: aggregates", "admin.walsh", "weekly admissions over the last 3 months", 5,
        "answered"),
    Ask("administrator: aggregates", "admin.walsh", "admissions by insurance type", 4, "answered"),
    Ask("administrator: aggregates", "admin.walsh", GLUCOSE_COHORT, 4, "answered"),
    Ask("researcher: cohort", "res.garcia", GLUCOSE_COHORT, 4, "answered"),
    Ask("researcher: cohort", "res.garcia", "mean Hb by gender", 3, "answered"),
    Ask("researcher: cohort", "res.garcia", "average age by gender", 3, "answered"),
    Ask("abstention", "dr.carter", "what's the cafeteria menu for tomorrow", 4, "abstained"),
    Ask("abstention", "admin.walsh", "bed occupancy % per unit now", 3, "abstained"),
    Ask("refusal", "dr.carter", GENDER, 3, "denied", "neuro"),  # another department's patient
    Ask("refusal", "admin.walsh", GENDER, 2, "denied", "card"),  # one patient: aggregates only
    Ask("refusal", "sec.ito", CENSUS, 2, "denied"),  # separation of duties
)  # fmt: skip
# Patients per group that each question picks from at random: the SQL differs from request to request.
PATIENTS_PER_GROUP: Final = 8


@dataclass(frozen=True)
class Names:
    """The run's own PostgreSQL databases and roles: unique, so parallel runs and other work never meet."""

    app_db: str
    warehouse_db: str
    reader_role: str
    app_role: str

    @classmethod
    def fresh(cls) -> Names:
        suffix = uuid.uuid4().hex[:8]
        return cls(
            f"his_bench_web_app_{suffix}",
            f"his_bench_web_wh_{suffix}",
            f"his_bench_web_reader_{suffix}",
            f"his_bench_web_role_{suffix}",
        )


@dataclass(frozen=True)
class Settings:
    users: int
    seconds: int
    warmup: int
    single_seconds: int
    runs: int
    patients: int
    workers: int
    worker_class: str
    threads: int
    conn_max_age: int
    celery: bool
    reference_date: dt.date
    repeats: int
    accounts: int


@dataclass
class Run:
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    failures: int
    statuses: dict[str, int]
    unexpected: int
    failure_examples: list[str]
    by_label: dict[str, dict[str, float]]
    server_p50_ms: float = 0.0
    server_p95_ms: float = 0.0
    cpu_cores: dict[str, float] = field(default_factory=dict)
    scoring_backlog: int | None = None


# ------------------------------------------------------------------------------- the stack


def _say(message: str) -> None:
    print(f"  [web] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis(number: int, *command: str) -> object:
    import redis

    with redis.Redis.from_url(f"{REDIS_SERVER}/{number}") as client:
        return client.execute_command(*command)


def _pick_redis_db() -> int:
    wanted = os.environ.get("BENCH_WEB_REDIS_DB")
    for number in (int(wanted),) if wanted else REDIS_CANDIDATES:
        if _redis(number, "DBSIZE") == 0:
            return number
    raise RuntimeError(
        f"No empty Redis database among {wanted or REDIS_CANDIDATES} on {REDIS_SERVER}: the bench flushes "
        "the one it uses, so it takes only an empty one. Name a free one with BENCH_WEB_REDIS_DB."
    )


def _scoring_backlog(number: int) -> int:
    """Scoring tasks still waiting in the worker's queue (Celery's default queue is a Redis list)."""
    return int(str(_redis(number, "LLEN", "celery")))


def _admin(statements: list[str]) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)  # names are ours (Names.fresh), never input


def _environment(
    names: Names, settings: Settings, redis_db: int, var_dir: Path, *, database_user: str | None
) -> dict[str, str]:
    """Production's settings on loopback: DEBUG off, secrets of the run's own, plain HTTP."""
    app_url = f"{PG_SERVER}/{names.app_db}"
    if database_user is not None:  # the application role, as web and worker log in in production
        app_url = f"postgresql://{database_user}@{PG_SERVER.rpartition('@')[2]}/{names.app_db}"
    redis_url = f"{REDIS_SERVER}/{redis_db}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hisplatform.settings",
        "PYTHONPATH": str(ROOT),
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "PSEUDONYM_SECRET": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "BEHIND_TLS_PROXY": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "HIS_VAR_DIR": str(var_dir),
        "DATABASE_URL": app_url,
        "DB_CONN_MAX_AGE": str(settings.conn_max_age),
        "WAREHOUSE_URL": f"{PG_SERVER}/{names.warehouse_db}",
        "WAREHOUSE_READER_URL": "",
        "WAREHOUSE_READER_ROLE": names.reader_role,
        "CACHE_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "AUDIT_SCORE_ON_COMMIT": "1" if settings.celery else "0",
        "AUDIT_GROUP_COMMIT": "1",
        # The bench measures the pipeline, not the throttle.
        "API_THROTTLE_USER": "1000000/minute",
        "API_THROTTLE_ASK": "1000000/minute",
        "API_THROTTLE_ANON": "1000000/minute",
        # Questions about current stays answer as of noon on the seeded hospital's day.
        "NLQ_NOW": f"{settings.reference_date.isoformat()} 12:00:00",
        "LOG_LEVEL": "WARNING",
        # Alerts the worker raises mail the privacy office: kept in memory here, never sent anywhere.
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


def _manage(env: dict[str, str], *commands: list[str]) -> None:
    """Run manage.py commands side by side (they touch different databases), and wait for all."""
    started = time.perf_counter()
    running = [
        (args, subprocess.Popen(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
        for args in commands
    ]  # fmt: skip
    failed = []
    for args, process in running:
        output, _ = process.communicate()
        if process.returncode:
            failed.append(f"manage.py {args[0]} failed:\n{output[-3000:]}")
    if failed:
        raise RuntimeError("\n".join(failed))
    _say(f"manage.py {', '.join(args[0] for args in commands)}: {time.perf_counter() - started:.1f} s")


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in a session of its own: Ctrl-C reaches only us, and we stop its whole group."""
    with log.open("ab") as handle:
        return subprocess.Popen(  # noqa: S603 - our own commands
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop_all(processes: list[tuple[subprocess.Popen[bytes], signal.Signals]]) -> None:
    """Ask each leader to stop (all at once), give them 15 s, then kill whatever is left of their groups."""
    for process, how in processes:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(process.pid, how)
    deadline = time.monotonic() + 15
    for process, _ in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers the leader left behind
        process.wait()


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _wait_for_health(base: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):  # refused or reset while the workers boot
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer /healthz in time:\n{_tail(log)}")


def _wait_for_worker(redis_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    from celery import Celery

    client = Celery(broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        client.send_task("hisplatform.ping", args=["bench"]).get(timeout=120)
    except Exception as error:  # whatever Celery raises, the worker's log says more
        raise RuntimeError(f"The Celery worker did not answer ({error!r}):\n{_tail(log)}") from None
    finally:
        client.close()
    if process.poll() is not None:
        raise RuntimeError(f"The Celery worker exited:\n{_tail(log)}")


# ------------------------------------------------------------------------------- CPU accounting

# A process's CPU time as /proc/PID/stat has it, in clock ticks: its own, and that of the children it
# reaped (which lived their whole life before being reaped: a backend per connection, a worker).
_Snapshot = dict[int, tuple[str, int, int, int]]  # pid -> (command, process group, own, reaped)


def _processes() -> _Snapshot:
    found: _Snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        command, _, rest = text.partition("(")[2].rpartition(")")
        fields = rest.split()
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        found[int(entry.name)] = (command, int(fields[2]), own, reaped)
    return found


def _machine_busy_ticks() -> int:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


def _cpu_split(before: _Snapshot, after: _Snapshot, groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds by who spent them: our process groups, PostgreSQL, Redis, and everyone else.

    A process that exits during the run counts only through its parent reaping it: so for our groups
    and the servers (PostgreSQL forks a backend per connection); not for other work, where a reaped
    child may have run long before the run began.
    """
    owner = {pgid: name for name, pgid in groups.items()}
    split: dict[str, float] = dict.fromkeys([*groups, "postgres", "redis", "others"], 0.0)
    ticks = os.sysconf("SC_CLK_TCK")
    for pid, (command, pgid, own, reaped) in after.items():
        was = before.get(pid)
        start_own, start_reaped = (
            (was[2], was[3]) if was is not None and was[:2] == (command, pgid) else (0, 0)
        )
        if pgid in owner:
            name = owner[pgid]
        elif command.startswith("postgres"):
            name = "postgres"
        elif command.startswith("redis"):
            name = "redis"
        else:
            split["others"] += (own - start_own) / ticks  # the other engineers' work on this shared machine
            continue
        split[name] += (own - start_own + reaped - start_reaped) / ticks
    return split


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------- gunicorn's access log

# Each request as gunicorn logs it with ACCESS_FORMAT: the worker's pid, the request, its status and
# the microseconds the worker spent on it (time queued before a worker took it is not included).
ACCESS_FORMAT: Final = "%(p)s %(m)s %(U)s %(s)s %(D)s"
_ASKED: Final = re.compile(r"^<(\d+)> POST /api/v1/ask (\d{3}) (\d+)$", re.MULTILINE)


def _asked(log: Path, offset: int) -> list[tuple[int, int, float]]:
    """(worker pid, HTTP status, milliseconds) of every question logged after `offset`."""
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    return [(int(pid), int(code), int(us) / 1000) for pid, code, us in _ASKED.findall(text)]


def _workers(master: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == master
            ):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


# ------------------------------------------------------------------------------- load


def _percentile(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "N/A") else 0.0


def _locust(
    base: str,
    mix: Path,
    users: int,
    seconds: int,
    prefix: Path,
    *,
    groups: dict[str, int],
    access_log: Path,
    redis_db: int | None = None,
) -> Run:
    out = prefix.with_suffix(".counts.json")
    env = {**os.environ, "BENCH_WEB_MIX": str(mix), "BENCH_WEB_OUT": str(out)}
    command = [
        str(BIN / "locust"), "-f", str(ROOT / "benchmarks" / "web_locust.py"), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", base,
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    offset = access_log.stat().st_size
    before, machine, children, started = (
        _processes(),
        _machine_busy_ticks(),
        _children_cpu_seconds(),
        time.monotonic(),
    )
    log = prefix.with_suffix(".log")
    stats = Path(f"{prefix}_stats.csv")
    for stale in (stats, out):
        stale.unlink(missing_ok=True)
    with log.open("wb") as handle:
        # locust exits 1 when any request failed: the counts below say so; only missing stats are fatal.
        subprocess.run(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    wall = time.monotonic() - started
    cpu = {name: spent / wall for name, spent in _cpu_split(before, _processes(), groups).items()}
    cpu["locust"] = (_children_cpu_seconds() - children) / wall
    cpu["machine"] = (_machine_busy_ticks() - machine) / os.sysconf("SC_CLK_TCK") / wall
    server = sorted(ms for _, _, ms in _asked(access_log, offset))
    if not stats.exists() or not out.exists():
        raise RuntimeError(f"locust wrote no statistics:\n{_tail(log)}")
    rows = {row["Name"]: row for row in csv.DictReader(stats.open())}
    total = rows["Aggregated"]
    counts = json.loads(out.read_text())
    return Run(
        rps=float(total["Requests/s"]),
        p50_ms=_percentile(total, "50%"),
        p95_ms=_percentile(total, "95%"),
        p99_ms=_percentile(total, "99%"),
        requests=int(total["Request Count"]),
        failures=int(total["Failure Count"]),
        statuses=dict(counts["statuses"]),
        unexpected=sum(counts["unexpected"].values()),
        failure_examples=list(counts["failures"]),
        by_label={
            name: {"p50_ms": _percentile(row, "50%"), "p95_ms": _percentile(row, "95%")}
            for name, row in rows.items()
            if name != "Aggregated"
        },
        server_p50_ms=round(statistics.median(server), 1) if server else 0.0,
        server_p95_ms=round(server[int(0.95 * (len(server) - 1))], 1) if server else 0.0,
        cpu_cores={k: round(v, 2) for k, v in cpu.items()},
        scoring_backlog=_scoring_backlog(redis_db) if redis_db is not None else None,
    )


# ------------------------------------------------------------------------------- the helper process


def _weighted(samples: list[tuple[float, float]], share: float) -> float:
    """The value below which `share` of the weight lies; samples are (value, weight)."""
    ordered = sorted(samples)
    limit = share * sum(weight for _, weight in ordered)
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= limit:
            return value
    return ordered[-1][0]


def _prepare(out: Path, repeats: int, accounts: int) -> None:
    """Run inside the bench's environment (a subprocess): pick the patients, give each account of the mix
    colleagues, make an API token for every one, check that every question gets the status it should,
    and time the mix in this one process, through `answer_question` as the API calls it, without HTTP."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from knox.models import AuthToken

    from hisplatform.models import ProjectMembership, StaffProfile
    from hisplatform.queries import answer_question
    from hisplatform.warehouse.executor import execute_readonly

    def colleagues(user: User) -> list[User]:
        """The account and `accounts - 1` others of its role, department and projects. Scoring an audit
        event recomputes its user's whole day, so a day of thousands of questions from six accounts would
        cost the worker what no hospital's traffic does. They have no warehouse staff record (it is one
        per person), so no care-team links: the mix asks about ordinary patients of their department."""
        profile = StaffProfile.objects.get(user=user)
        projects = [m.project for m in ProjectMembership.objects.filter(user=user)]
        made = [user]
        for number in range(2, accounts + 1):
            other = User(username=f"{user.username}.{number:03d}")
            other.set_unusable_password()
            other.save()
            StaffProfile.objects.create(
                user=other, role=profile.role, department=profile.department, title=profile.title
            )
            ProjectMembership.objects.bulk_create(ProjectMembership(project=p, user=other) for p in projects)
            made.append(other)
        return made

    people = {
        name: colleagues(User.objects.get(username=name)) for name in dict.fromkeys(a.user for a in MIX)
    }
    patients = _patients(execute_readonly, settings.NLQ_NOW)

    def ask(item: Ask, patient: int | None, number: int = 0) -> tuple[str, float]:
        question = item.question.format(patient=patient) if patient is not None else item.question
        user = people[item.user][number % accounts]
        started = time.perf_counter()
        answer = answer_question(user=user, question=question, channel="api")
        return answer.status, (time.perf_counter() - started) * 1000

    # Each question once for each of its patients, asked by a different colleague each time: the check,
    # and the warm-up of this process.
    items: list[dict[str, Any]] = []
    warnings: list[str] = []
    for item in MIX:
        kept: list[int] = []
        expect = item.expect
        choices: list[int | None] = list(patients[item.patients]) if item.patients else [None]
        for number, patient in enumerate(choices):
            status, _ = ask(item, patient, number)
            if status == item.expect and patient is not None:
                kept.append(patient)
            elif status != item.expect:
                question = item.question.format(patient=patient)
                warnings.append(f"{item.user} got {status}, not {item.expect}: {question!r}")
                expect = status
        if item.patients and not kept:
            warnings.append(f"left out of the mix (no patient gets {item.expect}): {item.question}")
            continue
        # A question about no patient stays in the mix with the status it gets now (the note says so).
        items.append({**asdict(item), "patients": kept, "expect": item.expect if item.patients else expect})
    samples: list[tuple[float, float]] = []
    per_item: list[dict[str, Any]] = []
    for entry in items:
        item = Ask(**{**entry, "patients": ""})
        kept = entry["patients"]
        times = [ask(item, kept[r % len(kept)] if kept else None, r)[1] for r in range(repeats)]
        per_item.append({"user": item.user, "question": item.question, "median_ms": statistics.median(times)})
        samples.extend((value, entry["weight"] / len(times)) for value in times)
    result = {
        "tokens": {
            username: [AuthToken.objects.create(user)[1] for user in users]
            for username, users in people.items()
        },
        "items": items,
        "patients": patients,
        "warnings": warnings,
        "in_process": {
            "median_ms": _weighted(samples, 0.5),
            "p95_ms": _weighted(samples, 0.95),
            "mean_ms": sum(v * w for v, w in samples) / sum(w for _, w in samples),
            "repeats": repeats,
            "items": per_item,
        },
    }
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds API tokens
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle)


def _patients(execute: Callable[..., Any], now: str) -> dict[str, list[int]]:
    """Patients in cardiology, critical care and neurology now (NLQ_NOW), the first few of each, read
    through the reader role like any question."""

    def units(department: str) -> str:
        return (
            "SELECT cu.careunit FROM care_units cu JOIN departments d ON d.department_id = cu.department_id "
            f"WHERE d.code = '{department}'"
        )

    def current(department: str) -> str:
        return (
            f"SELECT subject_id FROM transfers WHERE careunit IN ({units(department)}) "
            f"AND intime <= '{now}' AND outtime IS NULL"
        )

    # Patients with an open admission and no VIP or staff flag (those are seen through the care team
    # only, and have tests of their own): what a ward's questions are mostly about.
    plain = (
        "SELECT subject_id FROM patient_identity WHERE NOT vip_flag AND NOT employee_flag "
        "AND subject_id IN (SELECT subject_id FROM admissions "
        f"WHERE admittime <= '{now}' AND dischtime IS NULL)"
    )
    groups = {
        "card": f"{current('CARD')} AND subject_id IN ({plain})",
        "icu": f"{current('CRITC')} AND subject_id IN ({plain})",
        "neuro": f"{current('NEURO')} AND subject_id IN ({plain}) AND subject_id NOT IN "
        f"(SELECT subject_id FROM transfers WHERE careunit IN ({units('CARD')}))",
    }
    return {
        name: [
            int(str(row[0]))
            for row in execute(
                f"SELECT DISTINCT subject_id FROM ({sql}) AS picked ORDER BY 1", row_cap=PATIENTS_PER_GROUP
            ).rows
        ]
        for name, sql in groups.items()
    }


# ------------------------------------------------------------------------------- the bench


@contextmanager
def _cleanup_guard() -> Iterator[ExitStack]:
    """Undo what was set up, last first, even on Ctrl-C or SIGTERM; a failed step does not stop the rest."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Started in the background by a shell, we would inherit SIGINT ignored, and `kill -INT` would leave
    # the stack running: Ctrl-C and SIGINT always stop the bench here.
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = ExitStack()
    try:
        yield stack
    except BaseException:
        _say("stopped: removing what the run made")
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        try:
            stack.close()
        finally:
            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, previous)


def _undo(stack: ExitStack, what: str, step: Callable[[], object]) -> None:
    def guarded() -> None:
        try:
            step()
        except Exception as error:  # report and go on with the rest of the cleanup
            print(f"  [web] cleanup: could not {what}: {error}", file=sys.stderr)

    stack.callback(guarded)


def _databases(stack: ExitStack, names: Names, settings: Settings, env: dict[str, str]) -> None:
    """The application database and the warehouse, made as docker/compose.yml's migrate service and
    seed_demo make them: the owner migrates, creates the warehouse's read-only role, seeds, and creates
    the application's role; web and worker then log in as those roles."""
    _undo(
        stack,
        "drop the databases and roles",
        lambda: _admin(
            [
                f'DROP DATABASE IF EXISTS "{names.app_db}" WITH (FORCE)',
                f'DROP DATABASE IF EXISTS "{names.warehouse_db}" WITH (FORCE)',
                f'DROP ROLE IF EXISTS "{names.reader_role}"',
                f'DROP ROLE IF EXISTS "{names.app_role}"',
            ]
        ),
    )  # before they exist: a failure half-way through creating them leaves nothing either
    _admin([f'CREATE DATABASE "{names.app_db}"', f'CREATE DATABASE "{names.warehouse_db}"'])
    _manage(env, ["migrate", "--noinput"], ["create_warehouse_reader"])
    seed = ["seed_demo", "--patients", str(settings.patients), "--seed", "42"]
    _manage(env, [*seed, "--reference-date", settings.reference_date.isoformat()])
    _manage(env, ["create_app_role", "--role", names.app_role])


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Celery worker as docker/compose.yml runs one (prefork, 2 processes), on the run's Redis database:
    its queue is the run's own."""
    return _start(
        [sys.executable, "-m", "celery", "-A", "hisplatform", "worker", "--concurrency=2",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        env, log,
    )  # fmt: skip


def _prepare_mix(settings: Settings, env: dict[str, str], mix: Path) -> dict[str, Any]:
    started = time.perf_counter()
    command = [
        sys.executable, "-m", "benchmarks.web", "--prepare", str(mix),
        "--repeats", str(settings.repeats), "--accounts", str(settings.accounts),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)  # noqa: S603
    if done.returncode:
        raise RuntimeError(f"Preparing the mix failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    prepared: dict[str, Any] = json.loads(mix.read_text())
    _say(f"accounts, tokens, checks and in-process timing: {time.perf_counter() - started:.1f} s")
    for warning in prepared["warnings"]:
        _say(f"warning: {warning}")
    return prepared


def _gunicorn(settings: Settings, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    web = _start(
        [str(BIN / "gunicorn"), "hisplatform.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(settings.workers), "--worker-class", settings.worker_class,
         "--threads", str(settings.threads), "--timeout", "60",
         "--access-logfile", "-", "--access-logformat", ACCESS_FORMAT,
         # Its control socket has one path per machine user: other gunicorns here would share it.
         "--no-control-socket"],
        env, log,
    )  # fmt: skip
    return web, f"http://127.0.0.1:{port}"


def _warm_up(load: Callable[..., Run], settings: Settings, web: int, log: Path) -> None:
    """Every gunicorn worker loads the question engine on its first question, which takes seconds: load
    until each has answered one (at most three rounds), then let the questions in flight finish."""
    users = max(settings.users, settings.workers * settings.threads)
    for round_ in range(1, 4):
        _say(f"warm-up {round_}: {settings.warmup} s, {users} users (discarded)")
        load(users, settings.warmup, OUT_DIR / "warmup")
        time.sleep(2)
        cold = _workers(web) - {pid for pid, code, _ in _asked(log, 0) if code == 200}
        if not cold:
            return
        _say(f"gunicorn workers {sorted(cold)} have not answered a question yet")


def bench_web(settings: Settings) -> dict[str, Any]:
    names = Names.fresh()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with _cleanup_guard() as stack:
        work = Path(tempfile.mkdtemp(prefix="his-bench-web-"))
        _undo(stack, f"remove {work}", lambda: shutil.rmtree(work))
        _undo(stack, "keep the server logs", lambda: _keep_logs(work))
        redis_db = _pick_redis_db()
        _undo(stack, f"flush Redis database {redis_db}", lambda: _redis(redis_db, "FLUSHDB"))
        started = time.perf_counter()
        owner = _environment(names, settings, redis_db, work, database_user=None)
        _databases(stack, names, settings, owner)
        env = _environment(names, settings, redis_db, work, database_user=names.app_role)
        env["SECRET_KEY"], env["PSEUDONYM_SECRET"] = owner["SECRET_KEY"], owner["PSEUDONYM_SECRET"]
        setup_seconds = time.perf_counter() - started

        # Processes stop together, and before the databases are dropped (the stack undoes last first).
        processes: list[tuple[subprocess.Popen[bytes], signal.Signals]] = []
        _undo(stack, "stop gunicorn and the Celery worker", lambda: _stop_all(processes))
        groups: dict[str, int] = {}
        if settings.celery:
            worker_log = work / "worker.log"
            worker = _worker(env, worker_log)
            processes.append((worker, signal.SIGTERM))  # its warm shutdown: the task at hand, then out
            groups["celery"] = worker.pid
        mix = work / "mix.json"
        prepared = _prepare_mix(settings, env, mix)  # its events wait in Redis until the worker is up
        if settings.celery:
            _wait_for_worker(env["CELERY_BROKER_URL"], worker, worker_log)
        log = work / "gunicorn.log"
        web, base = _gunicorn(settings, env, log)
        processes.append((web, signal.SIGINT))  # its quick shutdown
        _wait_for_health(base, web, log, time.monotonic() + 120)
        groups["gunicorn"] = web.pid
        load = functools.partial(_locust, base, mix, groups=groups, access_log=log)
        _warm_up(load, settings, web.pid, log)

        single = load(1, settings.single_seconds, OUT_DIR / "single")
        runs: list[Run] = []
        for number in range(1, settings.runs + 1):
            run = load(
                settings.users,
                settings.seconds,
                OUT_DIR / f"run-{number}",
                redis_db=redis_db if settings.celery else None,
            )
            _say(
                f"run {number}: {run.rps:.1f} req/s, p50 {run.p50_ms:.0f} ms, p95 {run.p95_ms:.0f} ms, "
                f"{run.failures} failures; CPU in cores {run.cpu_cores}"
            )
            runs.append(run)
        return {
            "settings": {**asdict(settings), "reference_date": settings.reference_date.isoformat()},
            "cores": CORES,
            # What the run made and removed again (a test checks that it is gone).
            "removed": {
                "databases": [names.app_db, names.warehouse_db],
                "roles": [names.reader_role, names.app_role],
                "redis": f"{REDIS_SERVER}/{redis_db}",
            },
            "setup_seconds": round(setup_seconds, 1),
            "mix": [
                {k: entry[k] for k in ("label", "user", "question", "weight", "expect")}
                for entry in prepared["items"]
            ],
            "warnings": prepared["warnings"],
            "in_process": prepared["in_process"],
            "single_user": asdict(single),
            "runs": [asdict(run) for run in runs],
            "median": {
                key: statistics.median(getattr(run, key) for run in runs)
                for key in ("rps", "p50_ms", "p95_ms", "p99_ms", "failures", "server_p50_ms", "server_p95_ms")
            },
        }


def _keep_logs(work: Path) -> None:
    for log in work.glob("*.log"):
        (OUT_DIR / log.name).write_bytes(log.read_bytes())


# ------------------------------------------------------------------------------- output


def print_web(result: dict[str, Any]) -> None:
    s, runs, median = result["settings"], result["runs"], result["median"]
    single, inproc, cores = result["single_user"], result["in_process"], result["cores"]
    threads = f" x {s['threads']} threads" if s["worker_class"] == "gthread" else ""
    celery = (
        "a Celery worker (2 processes) on Redis scoring each audit event on commit"
        if s["celery"]
        else "no Celery worker (AUDIT_SCORE_ON_COMMIT=0: the sweep scores later)"
    )
    expected: dict[str, int] = {}
    for item in result["mix"]:
        expected[item["expect"]] = expected.get(item["expect"], 0) + item["weight"]
    weights = sum(expected.values()) or 1
    shares = ", ".join(f"{k} {v / weights:.0%}" for k, v in sorted(expected.items()))
    print(f"\n== web: POST /api/v1/ask on gunicorn, PostgreSQL warehouse ({s['patients']:,} patients) ==")
    print(f"  gunicorn {s['workers']} {s['worker_class']} workers{threads}, DEBUG off, ", end="")
    print(f"DB_CONN_MAX_AGE={s['conn_max_age']}; {celery}; {cores} cores, shared")
    print(
        f"  {s['users']} users asking without pause as {s['accounts']} accounts of each of 6 roles; "
        f"{len(result['mix'])} questions ({shares}); "
        f"{len(runs)} run{'s' if len(runs) != 1 else ''} of {s['seconds']} s after a warm-up"
    )
    for number, run in enumerate(runs, start=1):
        total = sum(run["statuses"].values()) or 1
        statuses = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(run["statuses"].items()))
        inside = f"in the workers {run['server_p50_ms']:.0f} / {run['server_p95_ms']:.0f}"
        failed = f"{run['failures']} failures of {run['requests']:,}"
        odd = f"; {run['unexpected']} not as expected" if run["unexpected"] else ""
        print(
            f"  run {number}: {run['rps']:5.1f} req/s, p50 {run['p50_ms']:4.0f} ms, "
            f"p95 {run['p95_ms']:4.0f} ms ({inside}), {failed}; {statuses}{odd}"
        )
        for example in run["failure_examples"][:2]:
            print(f"    failure: {example}")
    print(
        f"  median of {len(runs)}: {median['rps']:.1f} req/s, p50 {median['p50_ms']:.0f} ms, "
        f"p95 {median['p95_ms']:.0f} ms, {median['failures']:.0f} failures"
    )
    for label in sorted({label for run in runs for label in run["by_label"]}):
        rows = [run["by_label"][label] for run in runs if label in run["by_label"]]
        p50, p95 = (statistics.median(row[key] for row in rows) for key in ("p50_ms", "p95_ms"))
        print(f"    {label:28} p50 {p50:5.0f} ms, p95 {p95:5.0f} ms")
    cpu = runs[len(runs) // 2]["cpu_cores"] if runs else {}
    if cpu:
        ours = ", ".join(
            f"{k} {cpu.get(k, 0.0):.2f}" for k in ("gunicorn", "celery", "postgres", "redis", "locust")
        )
        print(
            f"  CPU in cores (middle run): {ours}, other work on the machine {cpu['others']:.2f}; "
            f"busy {cpu['machine']:.2f} of {cores}"
        )
    backlog = [run["scoring_backlog"] for run in runs if run["scoring_backlog"] is not None]
    if backlog:
        print(f"  audit scoring tasks still queued after each run: {', '.join(map(str, backlog))}")
    print(
        f"  the same mix in one process without HTTP (answer_question, {inproc['repeats']} each): "
        f"median {inproc['median_ms']:.1f} ms, p95 {inproc['p95_ms']:.1f} ms"
    )
    ratio = single["p50_ms"] / inproc["median_ms"] if inproc["median_ms"] else 0.0
    print(
        f"  one user at a time over HTTP: p50 {single['p50_ms']:.0f} ms, p95 {single['p95_ms']:.0f} ms "
        f"({single['rps']:.1f} req/s): {ratio:.1f}x the in-process median"
    )
    for warning in result["warnings"]:
        print(f"  note: {warning}")


# ------------------------------------------------------------------------------- entry


def _at_least(low: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"expected {low} or more, not {number}")
        return number

    return parse


def _env_default(name: str, default: int) -> str:
    """A default from the environment (run.py's knobs), checked by the argument's own type."""
    return os.environ.get(name, str(default))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    users, seconds = _env_default("BENCH_WEB_USERS", 8), _env_default("BENCH_WEB_SECONDS", 20)
    parser.add_argument(
        "--users", type=_at_least(1), default=users, help="concurrent users (BENCH_WEB_USERS)"
    )
    parser.add_argument("--seconds", type=_at_least(1), default=seconds, help="per run (BENCH_WEB_SECONDS)")
    parser.add_argument(
        "--runs", type=_at_least(1), default=_env_default("BENCH_WEB_RUNS", 3), help="(BENCH_WEB_RUNS)"
    )
    parser.add_argument(
        "--patients",
        type=_at_least(50),
        default=_env_default("BENCH_WEB_PATIENTS", 1000),
        help="demo hospital size (BENCH_WEB_PATIENTS)",
    )
    parser.add_argument("--warmup", type=_at_least(1), default=10, help="seconds of load discarded first")
    parser.add_argument(
        "--single-seconds", type=_at_least(1), default=6, help="seconds of one user alone (HTTP's own cost)"
    )
    parser.add_argument("--workers", type=_at_least(1), default=2 * CORES + 1, help="gunicorn workers")
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=_at_least(1), default=1, help="threads per gthread worker")
    parser.add_argument(
        "--conn-max-age", type=_at_least(0), default=60, help="DB_CONN_MAX_AGE (docker/env.example: 60)"
    )
    parser.add_argument(
        "--no-celery", action="store_true", help="no worker: AUDIT_SCORE_ON_COMMIT=0, the sweep scores later"
    )
    parser.add_argument("--reference-date", type=dt.date.fromisoformat, default=dt.date.today())
    parser.add_argument(
        "--repeats", type=_at_least(1), default=5, help="in-process timings of each question of the mix"
    )
    parser.add_argument(
        "--accounts",
        type=_at_least(1),
        default=25,
        help="accounts per role of the mix (the demo's and colleagues)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare is not None:
        _prepare(args.prepare, args.repeats, args.accounts)
        return 0
    settings = Settings(
        users=args.users,
        seconds=args.seconds,
        warmup=args.warmup,
        single_seconds=args.single_seconds,
        runs=args.runs,
        patients=args.patients,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads if args.worker_class == "gthread" else 1,
        conn_max_age=args.conn_max_age,
        celery=not args.no_celery,
        reference_date=args.reference_date,
        repeats=args.repeats,
        accounts=args.accounts,
    )
    started = time.perf_counter()
    try:
        result = bench_web(settings)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as error:  # a step of the stack failed; its message carries the log's tail
        print(f"web bench failed: {error}", file=sys.stderr)
        return 1
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    print_web(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
