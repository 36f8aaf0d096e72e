"""The load `python -m benchmarks.web` puts on POST /api/v1/ask: a weighted mix of real questions, each
sent with the API token of one of the accounts it belongs to, no think time between them.

Run by benchmarks.web, which writes the mix (questions, patients, tokens) to the file named by
BENCH_WEB_MIX and reads the status counts back from the file named by BENCH_WEB_OUT:

    locust -f benchmarks/web_locust.py --headless -u USERS -r USERS -t 20s --host http://127.0.0.1:PORT
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any, Final

from locust import FastHttpUser, constant, events, task

_MIX: Final[dict[str, Any]] = json.loads(Path(os.environ["BENCH_WEB_MIX"]).read_text())
_ITEMS: Final[list[dict[str, Any]]] = _MIX["items"]
_WEIGHTS: Final = [int(item["weight"]) for item in _ITEMS]
# Each account of the mix and its colleagues: a request goes out as one of them, picked at random.
_TOKENS: Final[dict[str, list[str]]] = _MIX["tokens"]
# Enough failure texts to tell what went wrong; a broken run would otherwise keep thousands.
_KEEP_FAILURES: Final = 5

statuses: Counter[str] = Counter()
unexpected: Counter[str] = Counter()
failures: list[str] = []


def _fail(response: Any, message: str) -> None:
    response.failure(message)
    if len(failures) < _KEEP_FAILURES:
        failures.append(message)


class Asker(FastHttpUser):
    """One client asking as fast as answers come back (a closed loop: load rises with the user count)."""

    wait_time = constant(0)

    @task
    def ask(self) -> None:
        item = random.choices(_ITEMS, weights=_WEIGHTS)[0]  # noqa: S311 - a load mix, not a secret
        patients: list[int] = item["patients"]
        question = str(item["question"])
        if patients:
            question = question.format(patient=random.choice(patients))  # noqa: S311
        with self.client.post(
            "/api/v1/ask",
            json={"question": question},
            headers={"Authorization": f"Token {random.choice(_TOKENS[item['user']])}"},  # noqa: S311
            name=item["label"],  # one stats row per kind of question; locust adds the aggregate
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                _fail(response, f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                status = str(response.json()["status"])
            except (ValueError, KeyError, TypeError):
                _fail(response, f"not an answer: {(response.text or '')[:200]}")
                return
            statuses[status] += 1
            if status == "error":
                _fail(response, f"error: {response.text[:200]}")
                return
            if status != item["expect"]:
                unexpected[item["label"]] += 1
            response.success()


@events.quitting.add_listener
def _write_counts(**_: Any) -> None:
    out = os.environ.get("BENCH_WEB_OUT")
    if out:
        Path(out).write_text(
            json.dumps({"statuses": statuses, "unexpected": unexpected, "failures": failures})
        )
