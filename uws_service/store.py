"""The job store: every read and every phase change of a UWS job.

Flask-free, so the web application, the dispatcher and the Celery workers
share it.  Phase changes follow one table, :data:`TRANSITIONS` (UWS 1.1
section 2.1.3, "Execution Phase"); each is a single guarded ``UPDATE ...
WHERE phase IN (...)``, so a late or repeated message (a redelivered
Celery task, an ABORT racing a completion) can never move a job out of a
final phase or run it twice.  After each committed change the notifier is
told, which wakes ``WAIT`` requests and the dispatcher.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.orm import Session, joinedload

from uws_service.db import Database
from uws_service.models import (
    ACTIVE_PHASES,
    Job,
    JobParameter,
    JobResult,
    Phase,
    utcnow,
)
from uws_service.notify import Notifier

#: The UWS state machine as data: action -> (phases it may start from, phase it ends in).
TRANSITIONS: dict[str, tuple[frozenset[Phase], Phase]] = {
    "queue": (frozenset({Phase.PENDING, Phase.HELD}), Phase.QUEUED),
    "hold": (frozenset({Phase.PENDING, Phase.QUEUED}), Phase.HELD),
    "start": (frozenset({Phase.QUEUED}), Phase.EXECUTING),
    "complete": (frozenset({Phase.EXECUTING}), Phase.COMPLETED),
    "fail": (ACTIVE_PHASES, Phase.ERROR),
    "abort": (ACTIVE_PHASES, Phase.ABORTED),
    "archive": (frozenset({Phase.COMPLETED, Phase.ERROR, Phase.ABORTED}), Phase.ARCHIVED),
}


class InvalidPhaseError(Exception):
    """A change that the job's current phase does not allow."""


@dataclass(frozen=True)
class ParameterValue:
    """One UWS parameter as the client sent it."""

    name: str
    value: str
    is_post: bool = False
    by_reference: bool = False


@dataclass(frozen=True)
class ResultFile:
    """A result a job produced: its UWS id and its path inside the job folder."""

    result_id: str
    path: str
    size: int | None = None
    mime_type: str | None = None


def lease_host() -> str:
    """This process's host as a job lease names it: host name and PID namespace.

    Two containers may share a host name but not their process ids; the
    reaper trusts a "process no longer exists" only within one namespace.
    """
    try:
        namespace = os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        namespace = ""
    host = socket.gethostname()
    return f"{host}/{namespace}" if namespace else host


def new_job_id() -> str:
    """A job identifier: short, URL-safe and unguessable."""
    return secrets.token_hex(8)


class JobStore:
    """Reads and changes jobs in the database.

    Parameters
    ----------
    database : Database
        Where jobs live.
    notifier : Notifier, optional
        Told about every committed phase change.
    """

    def __init__(self, database: Database, notifier: Notifier | None = None) -> None:
        self.database = database
        self.notifier = notifier

    # Reading ----------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job, with its parameters and results loaded, or None."""
        # One round trip: the few parameter and result rows come joined.
        query = (select(Job).where(Job.id == job_id)
                 .options(joinedload(Job.parameters), joinedload(Job.results)))
        with self.database.read() as session:
            return session.scalars(query).unique().first()

    def phase(self, job_id: str) -> str | None:
        """Only the phase of a job (cheap; the running job's supervisor polls it)."""
        with self.database.read() as session:
            return session.scalar(select(Job.phase).where(Job.id == job_id))

    def list_jobs(self, *, job_type: str | None = None, owner_id: int | None = None,
             phases: Sequence[str] = (), after: datetime | None = None,
             last: int | None = None) -> list[Job]:
        """Jobs filtered as UWS 1.1 section 2.2.1.1 ("Job List") prescribes.

        Filters are ANDed.  ARCHIVED jobs appear only when ``phases`` asks for
        them.  With ``last`` the newest ``last`` jobs are returned, newest
        first; otherwise jobs come oldest first.
        """
        query = select(Job)
        if job_type is not None:
            query = query.where(Job.job_type == job_type)
        if owner_id is not None:
            query = query.where(Job.owner_id == owner_id)
        if phases:
            query = query.where(Job.phase.in_(list(phases)))
        else:
            query = query.where(Job.phase != Phase.ARCHIVED)
        if after is not None:
            query = query.where(Job.creation_time > after)
        if last is not None:
            query = query.order_by(Job.creation_time.desc(), Job.id.desc()).limit(last)
        else:
            query = query.order_by(Job.creation_time, Job.id)
        with self.database.read() as session:
            return list(session.scalars(query))

    # Creating and editing -------------------------------------------------

    def create(self, *, job_type: str, owner_id: int, queue: str,
               parameters: Iterable[ParameterValue], run_id: str | None,
               execution_duration: int, destruction: datetime,
               quote: datetime | None = None, job_id: str | None = None,
               queued: bool = False) -> Job:
        """Store a new job: PENDING, or QUEUED at once when ``queued`` (PHASE=RUN).

        The returned job is not attached to a session; it has its parameters
        but not its owner.
        """
        now = utcnow()
        phase = Phase.QUEUED if queued else Phase.PENDING
        columns = {"id": job_id or new_job_id(), "job_type": job_type, "owner_id": owner_id,
                   "run_id": run_id, "phase": str(phase), "creation_time": now,
                   "execution_duration": execution_duration, "destruction": destruction,
                   "quote": quote, "queue": queue, "phase_changed_at": time.time(),
                   "dispatch_count": 0, "queued_at": now if queued else None}
        rows = [{"job_id": columns["id"], "position": i, "name": p.name, "value": p.value,
                 "is_post": p.is_post, "by_reference": p.by_reference}
                for i, p in enumerate(parameters)]
        # Plain INSERTs: the ORM's unit of work costs several times more per job.
        with self.database.write() as session:
            session.execute(insert(Job), [columns])
            if rows:
                session.execute(insert(JobParameter), rows)
        job = Job(**columns)
        job.parameters = [JobParameter(**row) for row in rows]
        job.results = []
        if queued:
            self._announce(job.id, Phase.QUEUED)
        return job

    def replace_parameters(self, job_id: str, parameters: Iterable[ParameterValue]) -> None:
        """Set parameters of a PENDING job (UWS 1.1 section 2.2.3.4)."""
        new = list(parameters)
        with self.database.write() as session:
            # Locked, so that a PHASE=RUN cannot slip between the check and the write.
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                raise KeyError(job_id)
            if job.phase != Phase.PENDING:
                raise InvalidPhaseError(
                    f"parameters can only be changed while the job is PENDING, not {job.phase}")
            new_names = {value.name for value in new}
            merged = [ParameterValue(old.name, old.value, old.is_post, old.by_reference)
                      for old in job.parameters if old.name not in new_names] + new
            session.execute(delete(JobParameter).where(JobParameter.job_id == job_id))
            session.flush()
            for i, value in enumerate(merged):
                session.add(JobParameter(job_id=job_id, position=i, name=value.name,
                                         value=value.value, is_post=value.is_post,
                                         by_reference=value.by_reference))

    def set_run_id(self, job_id: str, run_id: str | None) -> None:
        with self.database.write() as session:
            session.execute(update(Job).where(Job.id == job_id).values(run_id=run_id))

    def set_destruction(self, job_id: str, destruction: datetime) -> None:
        with self.database.write() as session:
            session.execute(update(Job).where(Job.id == job_id).values(destruction=destruction))

    def set_execution_duration(self, job_id: str, seconds: int) -> None:
        """Change executionDuration; only before the job starts executing."""
        with self.database.write() as session:
            count = session.execute(
                update(Job).where(Job.id == job_id,
                                  Job.phase.in_([Phase.PENDING, Phase.HELD, Phase.QUEUED]))
                .values(execution_duration=seconds)).rowcount  # type: ignore[attr-defined]
        if not count:
            raise InvalidPhaseError("executionDuration can only change before the job runs")

    # Phase changes -----------------------------------------------------------

    def _transition(self, session: Session, job_id: str, action: str, *,
                    extra: Sequence[ColumnElement[bool]] = (), **values: Any) -> bool:
        sources, target = TRANSITIONS[action]
        result = session.execute(
            update(Job).where(Job.id == job_id, Job.phase.in_([str(p) for p in sources]),
                              *extra)
            .values(phase=str(target), phase_changed_at=time.time(), **values))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _announce(self, job_id: str, phase: Phase) -> None:
        if self.notifier is not None:
            self.notifier.publish(job_id, str(phase))

    def transition(self, job_id: str, action: str, **values: Any) -> bool:
        """Apply ``action`` of :data:`TRANSITIONS`; False when the phase forbids it."""
        with self.database.write() as session:
            changed = self._transition(session, job_id, action, **values)
        if changed:
            self._announce(job_id, TRANSITIONS[action][1])
        return changed

    def queue(self, job_id: str, quote: datetime | None = None) -> bool:
        """PENDING/HELD -> QUEUED: the job waits for the dispatcher."""
        values: dict[str, object] = {"queued_at": utcnow(), "dispatched_at": None,
                                     "dispatch_count": 0}
        if quote is not None:
            values["quote"] = quote
        return self.transition(job_id, "queue", **values)

    def start(self, job_id: str, host: str, pid: int) -> Job | None:
        """QUEUED -> EXECUTING, taking the lease: the job, or None if it is not QUEUED."""
        now = utcnow()
        with self.database.write() as session:
            if not self._transition(session, job_id, "start", start_time=now,
                                    heartbeat_at=now, lease_host=host, lease_pid=pid):
                return None
            job = session.scalars(
                select(Job).where(Job.id == job_id)
                .options(joinedload(Job.parameters), joinedload(Job.results))).unique().one()
        self._announce(job_id, Phase.EXECUTING)
        return job

    def heartbeat(self, job_id: str, pid: int) -> bool:
        """Renew the lease; False if the job is no longer this process's."""
        with self.database.write() as session:
            result = session.execute(
                update(Job).where(Job.id == job_id, Job.phase == Phase.EXECUTING,
                                  Job.lease_pid == pid)
                .values(heartbeat_at=utcnow()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_progress(self, job_id: str, fraction: float | None, message: str | None) -> None:
        """Record progress of an executing job (does not wake ``WAIT``)."""
        with self.database.write() as session:
            session.execute(
                update(Job).where(Job.id == job_id, Job.phase == Phase.EXECUTING)
                .values(progress=fraction, progress_message=message))

    def complete(self, job_id: str, results: Sequence[ResultFile]) -> bool:
        """EXECUTING -> COMPLETED with its results."""
        with self.database.write() as session:
            changed = self._transition(session, job_id, "complete", end_time=utcnow(),
                                       progress=1.0)
            if changed:
                self._add_results(session, job_id, results)
        if changed:
            self._announce(job_id, Phase.COMPLETED)
        return changed

    def fail(self, job_id: str, message: str, *, detail: str | None = None,
             error_type: str = "fatal", results: Sequence[ResultFile] = ()) -> bool:
        """Any active phase -> ERROR with an error summary."""
        with self.database.write() as session:
            changed = self._transition(session, job_id, "fail", end_time=utcnow(),
                                       error_type=error_type, error_message=message,
                                       error_detail=detail)
            if changed:
                self._add_results(session, job_id, results)
        if changed:
            self._announce(job_id, Phase.ERROR)
        return changed

    def fail_lost(self, job_id: str, message: str, heartbeat_seen: datetime | None) -> bool:
        """EXECUTING -> ERROR for a job whose supervisor is gone.

        Only if its heartbeat is still the one the reaper saw: a supervisor
        that renewed its lease meanwhile is alive after all.
        """
        same = (Job.heartbeat_at.is_(None) if heartbeat_seen is None
                else Job.heartbeat_at == heartbeat_seen)
        with self.database.write() as session:
            changed = self._transition(session, job_id, "fail", extra=[same],
                                       end_time=utcnow(), error_type="transient",
                                       error_message=message)
        if changed:
            self._announce(job_id, Phase.ERROR)
        return changed

    def abort(self, job_id: str, reason: str) -> bool:
        """Any active phase -> ABORTED; the supervisor of a running job then kills it."""
        return self.transition(job_id, "abort", end_time=utcnow(), error_type="fatal",
                               error_message=reason)

    def add_results(self, job_id: str, results: Sequence[ResultFile]) -> None:
        """Keep results written by a job that was stopped (ABORTED); nothing if it is gone."""
        with self.database.write() as session:
            if session.scalar(select(Job.id).where(Job.id == job_id)) is not None:
                self._add_results(session, job_id, results)

    @staticmethod
    def _add_results(session: Session, job_id: str, results: Sequence[ResultFile]) -> None:
        known = set(session.scalars(select(JobResult.result_id)
                                    .where(JobResult.job_id == job_id)))
        start = len(known)
        for i, r in enumerate(r for r in results if r.result_id not in known):
            session.add(JobResult(job_id=job_id, result_id=r.result_id, position=start + i,
                                  path=r.path, size=r.size, mime_type=r.mime_type))

    def delete(self, job_id: str) -> bool:
        """Remove the job row (its files are the caller's to remove)."""
        with self.database.write() as session:
            count = session.execute(delete(Job).where(Job.id == job_id)).rowcount  # type: ignore[attr-defined]
        if count:
            self._announce(job_id, Phase.ARCHIVED)
        return bool(count)

    # Queries for the dispatcher and reaper ---------------------------------

    def count_active_by_owner(self, session: Session) -> dict[int, int]:
        """Jobs per owner that hold an execution slot (executing or handed to the broker)."""
        rows = session.execute(
            select(Job.owner_id, func.count())
            .where((Job.phase == Phase.EXECUTING)
                   | ((Job.phase == Phase.QUEUED) & Job.dispatched_at.is_not(None)))
            .group_by(Job.owner_id)).all()
        return {owner: count for owner, count in rows}

    def expired_destruction(self, now: datetime, limit: int = 200) -> list[str]:
        with self.database.read() as session:
            return list(session.scalars(select(Job.id).where(Job.destruction <= now)
                                        .order_by(Job.destruction).limit(limit)))


def destruction_after(seconds: int, start: datetime | None = None) -> datetime:
    """The destruction time ``seconds`` after ``start`` (default: now)."""
    return (start or utcnow()) + timedelta(seconds=seconds)
