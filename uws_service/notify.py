"""Phase-change notifications: one notifier per process wakes waiting threads.

The database stays the truth; a notification only says "job X may have
changed phase, read it again".  With a Redis broker, changes are published
on a Redis channel and every process subscribes; without Redis one thread
polls ``job.phase_changed_at`` every ``notify_poll_interval`` seconds.
Waiters are ``WAIT`` requests (per job) and the dispatcher (any job).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from uws_service.db import Database
from uws_service.models import Job

log = logging.getLogger(__name__)

CHANNEL = "vocloud:phase"
#: Seconds looked back by each poll, so that a transaction committed late
#: with an older timestamp is still seen.
_POLL_LOOKBACK = 2.0

Listener = Callable[[str, str], None]


class Notifier:
    """Wakes per-job waiters and global listeners on phase changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # Publishing -------------------------------------------------------------

    def publish(self, job_id: str, phase: str) -> None:
        """Announce that ``job_id`` is now in ``phase`` (after the commit)."""
        self.deliver(job_id, phase)

    def deliver(self, job_id: str, phase: str) -> None:
        """Wake this process's waiters for ``job_id`` and every listener."""
        with self._lock:
            events = list(self._waiters.get(job_id, ()))
            listeners = list(self._listeners)
        for ev in events:
            ev.set()
        for listener in listeners:
            try:
                listener(job_id, phase)
            except Exception:  # a listener's failure must not stop delivery
                log.exception("phase listener failed")

    # Waiting ----------------------------------------------------------------

    def register(self, job_id: str) -> threading.Event:
        """Start watching ``job_id``; call before reading its phase."""
        self.ensure_started()
        ev = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(ev)
        return ev

    def unregister(self, job_id: str, ev: threading.Event) -> None:
        with self._lock:
            events = self._waiters.get(job_id)
            if events is not None:
                events.discard(ev)
                if not events:
                    del self._waiters[job_id]

    def add_listener(self, listener: Listener) -> None:
        self.ensure_started()
        with self._lock:
            self._listeners.append(listener)

    # Background thread ----------------------------------------------------------

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="vocloud-notifier",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:  # pragma: no cover - overridden
        self._stop.wait()


class PollingNotifier(Notifier):
    """Notifier for the embedded mode: polls the job table."""

    def __init__(self, database: Database, interval: float = 0.05) -> None:
        super().__init__()
        self.database = database
        self.interval = interval

    def _run(self) -> None:
        seen: dict[tuple[str, float], float] = {}
        since = time.time()
        while not self._stop.is_set():
            try:
                with self.database.read() as session:
                    rows = session.execute(
                        select(Job.id, Job.phase, Job.phase_changed_at)
                        .where(Job.phase_changed_at > since - _POLL_LOOKBACK)
                    ).all()
                now = time.time()
                for job_id, phase, changed in rows:
                    key = (job_id, changed)
                    if key in seen:
                        continue
                    seen[key] = now
                    self.deliver(job_id, phase)
                    since = max(since, changed)
                horizon = now - 2 * _POLL_LOOKBACK
                for key in [k for k, t in seen.items() if t < horizon]:
                    del seen[key]
            except Exception:
                log.exception("notifier poll failed")
                self._stop.wait(1.0)
            self._stop.wait(self.interval)


class RedisNotifier(Notifier):
    """Notifier for the scaled-out mode: Redis pub/sub across all hosts."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        import redis

        self.redis_url = redis_url
        self._client: Any = redis.Redis.from_url(redis_url)
        # Pub/sub ignores the database number: name the channel after it, so that
        # installations sharing one Redis server do not hear each other.
        db = self._client.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"{CHANNEL}:{db}"

    def publish(self, job_id: str, phase: str) -> None:
        try:
            self._client.publish(self.channel, f"{job_id} {phase}")
        except Exception:  # the database is the truth; waiters re-read it anyway
            log.exception("could not publish a phase change")
            self.deliver(job_id, phase)

    def _run(self) -> None:
        import redis

        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.redis_url)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    data = message["data"]
                    if isinstance(data, bytes):
                        data = data.decode()
                    job_id, _, phase = str(data).partition(" ")
                    self.deliver(job_id, phase)
            except Exception:
                log.exception("notifier subscription lost; reconnecting")
                self._stop.wait(1.0)


_notifiers: dict[tuple[str, str | None], Notifier] = {}
_notifiers_lock = threading.Lock()


def get_notifier(database: Database, redis_url: str | None,
                 poll_interval: float = 0.05) -> Notifier:
    """The process's notifier for this database and broker."""
    key = (database.url, redis_url)
    with _notifiers_lock:
        notifier = _notifiers.get(key)
        if notifier is None:
            notifier = (RedisNotifier(redis_url) if redis_url
                        else PollingNotifier(database, poll_interval))
            _notifiers[key] = notifier
        return notifier


def reset_after_fork() -> None:
    """Drop notifiers inherited over ``fork()`` (their threads did not survive)."""
    with _notifiers_lock:
        _notifiers.clear()
