"""The dispatcher and reaper: the only place that hands jobs to the broker or gives up on them.

One pass, safe to run in several processes at once (it holds a database
lock while it dispatches):

* **dispatch** QUEUED jobs to their Celery queue, round-robin between owners
  and never more than ``user_concurrency`` executing-or-dispatched jobs per
  owner; a job whose request was lost on the way is sent again after a
  back-off (a redelivered request for a job that already runs is ignored by
  the worker);
* **reap** EXECUTING jobs whose lease went stale (their supervisor died):
  they end in ERROR saying so;
* **destroy** jobs whose destruction time has passed, with their files.

``vocloud serve`` runs the loop in a thread, woken by the notifier whenever a
job is queued or finishes, and at least every ``dispatch_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from uws_service.config import Config
from uws_service.models import Job, Phase, utcnow
from uws_service.store import JobStore, lease_host

log = logging.getLogger(__name__)

DISPATCH_LOCK = "vocloud-dispatch"
#: Seconds before a dispatched but never started job is sent again; doubles each time.
REDISPATCH_AFTER = 30.0
REDISPATCH_MAX = 600.0

#: Shortest time between two dispatcher passes, seconds.
MIN_PASS_INTERVAL = 0.02

SendJob = Callable[[str, str], None]


def celery_sender() -> SendJob:
    """Send "run job X" on queue Q through vocloud's Celery application."""
    from jobs.celery_app import RUN_JOB
    from jobs.celery_app import app as celery

    def send(job_id: str, queue: str) -> None:
        celery.send_task(RUN_JOB, args=[job_id], queue=queue)

    return send


class Dispatcher:
    """Dispatches, reaps and destroys jobs; see the module docstring."""

    def __init__(self, config: Config, store: JobStore, send: SendJob) -> None:
        self.config = config
        self.store = store
        self.send = send
        self.host = lease_host()
        self._clock = (time.time(), time.monotonic())
        self._reap_after = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_housekeeping = 0.0

    # Loop -------------------------------------------------------------------

    def start(self) -> None:
        if self.store.notifier is not None:
            self.store.notifier.add_listener(self._on_phase_change)
        self._thread = threading.Thread(target=self._loop, name="vocloud-dispatcher",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def _on_phase_change(self, _job_id: str, phase: str) -> None:
        # A queued job wants a slot; a finished one frees one.
        if phase != Phase.EXECUTING:
            self._wake.set()

    def _loop(self) -> None:
        last_pass = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.config.dispatch_interval)
            # Under load every job wakes the loop twice; passes at most every
            # MIN_PASS_INTERVAL serve all the jobs that arrived meanwhile.
            pause = MIN_PASS_INTERVAL - (time.monotonic() - last_pass)
            if pause > 0:
                self._stop.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                break
            last_pass = time.monotonic()
            try:
                self.run_once()
            except Exception:
                log.exception("dispatcher pass failed")
                self._stop.wait(1.0)

    def run_once(self, *, housekeeping: bool | None = None) -> int:
        """One pass; returns the number of jobs sent to the broker."""
        now = time.monotonic()
        if housekeeping is None:
            housekeeping = now - self._last_housekeeping >= self.config.dispatch_interval
        if housekeeping:
            self._last_housekeeping = now
            self.reap_lost()
            self.destroy_expired()
        return self.dispatch()

    # Dispatch -----------------------------------------------------------------

    def dispatch(self) -> int:
        """Send runnable QUEUED jobs to their queues, fairly between owners."""
        now = utcnow()
        chosen: list[tuple[str, str]] = []
        limit = self.config.user_concurrency
        with self.store.database.write(lock=DISPATCH_LOCK) as session:
            active = self.store.count_active_by_owner(session)
            # Sent before but never started: the request may have been lost.
            resend = session.execute(
                select(Job.id, Job.queue, Job.dispatched_at, Job.dispatch_count)
                .where(Job.phase == Phase.QUEUED,
                       Job.dispatched_at < now - timedelta(seconds=REDISPATCH_AFTER))
                .order_by(Job.dispatched_at).limit(500)).all()
            for job_id, queue, dispatched_at, count in resend:
                delay = min(REDISPATCH_MAX, REDISPATCH_AFTER * 2 ** max(0, count - 1))
                if dispatched_at is not None and dispatched_at < now - timedelta(seconds=delay):
                    chosen.append((job_id, queue))
            # Candidates are read per owner, up to that owner's free slots, so
            # that one user's long backlog never hides another user's job.
            waiting = session.execute(
                select(Job.owner_id).where(Job.phase == Phase.QUEUED,
                                           Job.dispatched_at.is_(None))
                .group_by(Job.owner_id)).scalars().all()
            fresh: dict[int, list[tuple[str, str]]] = {}
            for owner_id in waiting:
                free = limit - active.get(owner_id, 0)
                if free <= 0:
                    continue
                fresh[owner_id] = [(job_id, queue) for job_id, queue in session.execute(
                    select(Job.id, Job.queue)
                    .where(Job.phase == Phase.QUEUED, Job.dispatched_at.is_(None),
                           Job.owner_id == owner_id)
                    .order_by(Job.queued_at, Job.id).limit(free)).all()]
            # Round-robin: owners with fewer running jobs go first in each round.
            owners = sorted(fresh, key=lambda o: active.get(o, 0))
            while owners:
                still: list[int] = []
                for owner_id in owners:
                    if active.get(owner_id, 0) >= limit or not fresh[owner_id]:
                        continue
                    chosen.append(fresh[owner_id].pop(0))
                    active[owner_id] = active.get(owner_id, 0) + 1
                    if fresh[owner_id] and active[owner_id] < limit:
                        still.append(owner_id)
                owners = still
            # Sent inside the transaction: a job is marked dispatched only if its
            # request reached the broker (a worker that gets it early still finds
            # the job QUEUED, which is all it checks).
            for job_id, queue in chosen:
                self.send(job_id, queue)
            if chosen:
                session.execute(
                    update(Job).where(Job.id.in_([job_id for job_id, _ in chosen]))
                    .values(dispatched_at=now, dispatch_count=Job.dispatch_count + 1))
        return len(chosen)

    def redispatch_all(self) -> None:
        """Forget earlier sends of QUEUED jobs, so the next pass sends them again.

        Called when a broker or worker (re)starts: requests held by a worker
        that died, or by a broker that lost its messages, are gone.
        """
        with self.store.database.write(lock=DISPATCH_LOCK) as session:
            session.execute(update(Job).where(Job.phase == Phase.QUEUED)
                            .values(dispatched_at=None))
        self.wake()

    # Reaping ------------------------------------------------------------------

    def reap_lost(self) -> int:
        """End in ERROR every EXECUTING job whose supervisor is gone."""
        wall, mono = time.time(), time.monotonic()
        jump = (wall - self._clock[0]) - (mono - self._clock[1])
        self._clock = (wall, mono)
        if jump > self.config.heartbeat_interval:
            # The machine slept (a laptop lid) or its clock was set: heartbeats
            # look old though every supervisor is fine; give them a lease period.
            log.warning("clock jumped by %.0f s; not reaping for %.0f s", jump,
                        self.config.lease_timeout)
            self._reap_after = mono + self.config.lease_timeout
        if mono < self._reap_after:
            return 0
        stale_before = utcnow() - timedelta(seconds=self.config.lease_timeout)
        with self.store.database.read() as session:
            rows = session.execute(
                select(Job.id, Job.lease_host, Job.lease_pid, Job.heartbeat_at)
                .where(Job.phase == Phase.EXECUTING)).all()
        lost = 0
        for job_id, host, pid, heartbeat in rows:
            if heartbeat is not None and heartbeat < stale_before:
                why = (f"no heartbeat since {heartbeat.isoformat(timespec='seconds')}Z")
            elif host == self.host and pid and not _alive(pid):
                why = "its process no longer exists"
            else:
                continue
            message = (f"The worker running this job was lost (host {host}, process {pid}: "
                       f"{why}); the job did not finish. Run it again.")
            if self.store.fail_lost(job_id, message, heartbeat):
                log.warning("job %s: %s", job_id, message)
                lost += 1
        return lost

    # Destruction ----------------------------------------------------------------

    def destroy_expired(self) -> int:
        """Destroy jobs whose destruction time has passed, with their files."""
        destroyed = 0
        for job_id in self.store.expired_destruction(utcnow()):
            destroy_job(self.store, self.config, job_id, "destruction time reached")
            destroyed += 1
        return destroyed


def destroy_job(store: JobStore, config: Config, job_id: str, reason: str) -> None:
    """Remove the job and its files; a running job is stopped.

    A running job's supervisor notices that the row is gone, kills the job's
    process group and removes the folder again (the job may have written to
    it meanwhile).
    """
    log.info("destroying job %s: %s", job_id, reason)
    store.delete(job_id)
    shutil.rmtree(config.job_dir(job_id), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
