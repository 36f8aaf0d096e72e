"""Group commit for the audit chain: events from concurrent requests appended together.

Each append holds the chain head's lock until its transaction commits, and a commit waits for the disk;
one event per transaction therefore tops out at one event per disk flush, whatever the concurrency
(about 900 a second here). Requests that record an event outside any transaction of their own hand it
to one appender thread per process, which appends whatever has queued meanwhile in one transaction and
wakes each request once its event is durable. A request still returns only after its event is stored;
it just shares the flush with the requests around it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import Future
from typing import Any, Final

from django.db import connection

from audit.models import AuditEvent

logger = logging.getLogger(__name__)

# At most this many events per transaction: a burst is cut into batches that keep each lock short.
BATCH_MAX: Final = 500
# An appender with nothing to do closes its database connection after this long.
IDLE_SECONDS: Final = 1.0
# A request waits this long for its event at most; past it the append is reported failed (and the
# answer withheld), which is what a stuck database would cause anyway.
WAIT_SECONDS: Final = 30.0


_STOP: Final = object()


class _Appender:
    def __init__(self) -> None:
        self.pending: queue.SimpleQueue[tuple[Any, Future[AuditEvent] | None]] = queue.SimpleQueue()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="audit-appender", daemon=True)
        self.thread.start()

    def submit(self, prepared: dict[str, Any]) -> AuditEvent:
        done: Future[AuditEvent] = Future()
        self.pending.put((prepared, done))
        return done.result(timeout=WAIT_SECONDS)

    def stop(self) -> None:
        self.pending.put((_STOP, None))
        self.thread.join(timeout=WAIT_SECONDS)

    def _run(self) -> None:
        from audit.services import append_prepared

        while True:
            try:
                first = self.pending.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                connection.close()  # idle: hand the connection back rather than hold it open
                continue
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            waiting = [(prepared, done) for prepared, done in batch if done is not None]
            if waiting:
                self._append(waiting, append_prepared)
            if any(prepared is _STOP for prepared, _ in batch):
                connection.close()
                return

    @staticmethod
    def _append(waiting: list[tuple[Any, Future[AuditEvent]]], append: Any) -> None:
        # The connection is kept between batches (closed on errors and when idle): opening one per
        # batch would cost more than the batch.
        try:
            events = append([prepared for prepared, _ in waiting], queue_scoring=False)
        except Exception:
            connection.close()  # a broken connection must not poison the next attempt
            if len(waiting) == 1:
                _, done = waiting[0]
                try:
                    done.set_result(append([waiting[0][0]], queue_scoring=False))
                except Exception as error:  # the request learns that its event was not stored
                    done.set_exception(error)
                    connection.close()
                return
            # One refused event must not fail its neighbours: each is tried again on its own.
            for one in waiting:
                _Appender._append([one], append)
            return
        for (_, done), event in zip(waiting, events, strict=True):
            done.set_result(event)


_APPENDER: _Appender | None = None
_LOCK = threading.Lock()


def _after_fork() -> None:
    # A fork while another thread held the lock would leave the child waiting on it for ever.
    global _APPENDER, _LOCK
    _APPENDER, _LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def append_grouped(prepared: dict[str, Any]) -> AuditEvent:
    """Append one event through this process's appender thread (started on first use, again after fork)."""
    global _APPENDER
    with _LOCK:
        if _APPENDER is None or _APPENDER.pid != os.getpid() or not _APPENDER.thread.is_alive():
            _APPENDER = _Appender()
        appender = _APPENDER
    return appender.submit(prepared)


def stop_appender() -> None:
    """Stop this process's appender thread and close its connection (tests, and orderly shutdown)."""
    global _APPENDER
    with _LOCK:
        appender, _APPENDER = _APPENDER, None
    if appender is not None and appender.pid == os.getpid():
        appender.stop()
