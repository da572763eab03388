"""UWS rules independent of HTTP: creating, running, aborting, waiting for and describing jobs.

Handlers stay thin: they parse the request, call one method here and render
the result.  Every check of the UWS 1.1 text (which phase allows what,
limits on executionDuration and destruction, blocking WAIT, who may see a
job) lives here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug.datastructures import FileStorage

from jobs import registry
from jobs.base import UPLOADS_DIR
from jobs.parameters import RESERVED, ParameterError, parse
from uws_service.config import Config
from uws_service.dispatcher import destroy_job
from uws_service.errors import InvalidPhase, NotFound, UsageError
from uws_service.models import Job, Phase, utcnow
from uws_service.notify import Notifier
from uws_service.params import RequestParams
from uws_service.store import InvalidPhaseError, JobStore, ParameterValue
from uws_service.users import Principal
from vo import uws_xml
from vo.timefmt import parse_time
from vo.uws_xml import XML_INVALID

#: WAIT blocks only in these phases (UWS 1.1 section 2.2.1.2, "Blocking Behaviour").
BLOCKING_PHASES = frozenset({Phase.PENDING, Phase.QUEUED, Phase.EXECUTING})
#: Phases a client may name in a job-list PHASE filter.
LISTABLE_PHASES = frozenset(p.value for p in Phase)
#: Longest time one blocking slice waits for a notification before re-reading.
_WAIT_SLICE = 5.0


@dataclass(frozen=True)
class JobControl:
    """The UWS control parameters of a request (taken out before validation)."""

    phase: str | None = None
    run_id: str | None = None
    execution_duration: str | None = None
    destruction: str | None = None
    from_job: str | None = None


def take_control(params: RequestParams) -> JobControl:
    """Remove PHASE, RUNID, EXECUTIONDURATION, DESTRUCTION and from_job from ``params``."""
    run_id = params.pop("runid")
    if run_id is not None and len(run_id) > 255:  # the column's size (a 500 on PostgreSQL)
        raise UsageError("RUNID: at most 255 characters")
    return JobControl(
        phase=params.pop("phase"),
        run_id=run_id,
        execution_duration=params.pop("executionduration"),
        destruction=params.pop("destruction"),
        from_job=params.pop("from_job"),
    )


class JobService:
    """The UWS rules for the jobs of every job type.

    Parameters
    ----------
    config : Config
        Limits (executionDuration, destruction, WAIT) and paths.
    store : JobStore
        The jobs.
    """

    def __init__(self, config: Config, store: JobStore) -> None:
        self.config = config
        self.store = store
        # Each blocking WAIT holds a request thread; keep a quarter of them for
        # everything else (UWS 1.1 section 2.2.1.2 lets a server return early).
        self._wait_slots = threading.BoundedSemaphore(max(1, config.server_threads * 3 // 4))

    # Access -------------------------------------------------------------------

    @staticmethod
    def job_type(name: str) -> registry.RegisteredJobType:
        registered = registry.get(name)
        if registered is None:
            known = ", ".join(sorted(registry.job_types()))
            raise NotFound(f"no job type {name!r}; known: {known}")
        return registered

    def get(self, principal: Principal, job_type: str, job_id: str) -> Job:
        """The job if ``principal`` may see it; 404 otherwise, telling nothing more."""
        job = self.store.get(job_id)
        if job is None or job.job_type != job_type or (
                job.owner_id != principal.id and not principal.is_admin):
            raise NotFound(f"no job {job_id!r}")
        return job

    def list_jobs(self, principal: Principal, job_type: str, params: RequestParams) -> list[Job]:
        """The job list with the UWS 1.1 filters (section 2.2.2.1, "Job List").

        ``PHASE`` may repeat (union); ``AFTER`` keeps jobs created after an
        ISO 8601 time; ``LAST=n`` keeps the n most recent, newest first;
        filters are ANDed; ARCHIVED jobs only when a PHASE asks for them.
        """
        self.job_type(job_type)
        phases = [p.upper() for p in params.getlist("phase")]
        for phase in phases:
            if phase not in LISTABLE_PHASES:
                raise UsageError(f"PHASE={phase!r} is not a UWS phase; use one of "
                                 f"{', '.join(p.value for p in Phase)}")
        after = None
        after_text = params.get("after")
        if after_text is not None:
            try:
                after = parse_time(after_text)
            except ValueError as exc:
                raise UsageError(f"AFTER: {exc}") from None
            # creationTime is shown to the millisecond: compare at that resolution, so
            # that AFTER=<a listed creationTime> does not list that job again.
            after = after.replace(microsecond=after.microsecond // 1000 * 1000) + timedelta(
                microseconds=999)
        last = None
        last_text = params.get("last")
        if last_text is not None:
            try:
                last = int(last_text)
            except ValueError:
                last = 0
            if last <= 0:
                raise UsageError(f"LAST={last_text!r}: must be an integer greater than 0")
            last = min(last, 2**31 - 1)  # a larger LIMIT overflows the database's integer
        owner_id = None if principal.is_admin else principal.id
        return self.store.list_jobs(job_type=job_type, owner_id=owner_id, phases=phases,
                               after=after, last=last)

    # Creation -------------------------------------------------------------------

    def create(self, principal: Principal, job_type: str, params: RequestParams) -> Job:
        """Create a job from a POST to the job list (UWS 1.1 section 2.2.3.1)."""
        registered = self.job_type(job_type)
        control = take_control(params)
        if control.run_id is not None and XML_INVALID.search(control.run_id):
            raise UsageError("RUNID contains control characters that a UWS document cannot carry")
        if control.phase is not None and control.phase.upper() != "RUN":
            raise UsageError(f"PHASE={control.phase!r} cannot be given when creating a job; "
                             "only PHASE=RUN")
        values = self._job_parameters(params)
        if control.from_job:
            source = self.get(principal, job_type, control.from_job)
            given = {p.name for p in values}
            values = [ParameterValue(p.name, p.value, p.is_post, p.by_reference)
                      for p in source.parameters if p.name not in given and not p.by_reference
                      ] + values
        upload_names = {name for name, _ in params.uploads}
        typed = self._validate(registered, values, upload_names)
        now = utcnow()
        execution_duration = self._execution_duration(control.execution_duration)
        destruction = self._destruction(control.destruction, now)
        # Without uploads a job posted with PHASE=RUN is stored QUEUED at once; uploaded
        # files must be on disk before a worker may see the job.
        queue_now = control.phase is not None and not params.uploads
        job = self.store.create(job_type=job_type, owner_id=principal.id,
                                queue=registered.job_type.queue,
                                parameters=values, run_id=control.run_id,
                                execution_duration=execution_duration,
                                destruction=destruction, queued=queue_now,
                                quote=self._quote(registered, typed) if queue_now else None)
        if params.uploads:
            self._store_uploads(job, params.uploads)
            if control.phase is not None:
                self.run(job)
        return job

    @staticmethod
    def _job_parameters(params: RequestParams) -> list[ParameterValue]:
        for name, value in params.items:
            if XML_INVALID.search(value) or XML_INVALID.search(name):
                raise UsageError(f"parameter '{name}' contains control characters that a "
                                 "UWS document cannot carry")
        values = [ParameterValue(name, value, is_post=True) for name, value in params.items
                  if name not in RESERVED]
        for name, _upload in params.uploads:
            values.append(ParameterValue(name, name, is_post=True, by_reference=True))
        return values

    def _validate(self, registered: registry.RegisteredJobType,
                  values: Sequence[ParameterValue], uploads: set[str]) -> dict[str, Any]:
        """Check parameters against the job type's schema; the typed values on success."""
        # Uploaded values are only on disk later; check their names and the rest.
        properties = registered.schema.get("properties", {})
        for name in uploads:
            if name not in properties:
                raise UsageError(f"unknown parameter '{name}' (uploaded file)")
        try:
            return parse(registered.schema,
                         [(p.name, p.value, False) for p in values if not p.by_reference])
        except ParameterError as exc:
            raise UsageError(str(exc)) from None

    def _store_uploads(self, job: Job, uploads: list[tuple[str, FileStorage]]) -> None:
        folder = self.config.job_dir(job.id) / UPLOADS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for name, upload in uploads:
            upload.save(str(folder / name))

    def upload_path(self, job: Job, name: str) -> Path:
        for p in job.parameters:
            if p.name == name and p.by_reference:
                path = self.config.job_dir(job.id) / UPLOADS_DIR / Path(p.value).name
                if path.is_file():
                    return path
        raise NotFound(f"job {job.id} has no uploaded parameter {name!r}")

    # Limits ---------------------------------------------------------------------

    def _execution_duration(self, text: str | None) -> int:
        """executionDuration in seconds, clamped; 0 (unlimited) becomes the maximum."""
        if text is None:
            return self.config.execution_duration_default
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"EXECUTIONDURATION={text!r}: must be a number of seconds >= 0 "
                             "(0 for the longest allowed)")
        seconds = math.ceil(value)
        if seconds == 0 or seconds > self.config.execution_duration_max:
            return self.config.execution_duration_max
        return seconds

    def _destruction(self, text: str | None, creation: datetime) -> datetime:
        """Destruction time, clamped to ``destruction_max`` after creation."""
        latest = creation + timedelta(seconds=self.config.destruction_max)
        if text is None:
            return min(latest, creation + timedelta(seconds=self.config.destruction_default))
        try:
            wanted = parse_time(text)
        except ValueError as exc:
            raise UsageError(f"DESTRUCTION: {exc}") from None
        return min(wanted, latest)

    # Changes -----------------------------------------------------------------------

    def run(self, job: Job) -> None:
        """PHASE=RUN: queue a PENDING (or HELD) job; repeating it is harmless."""
        if job.phase in (Phase.QUEUED, Phase.EXECUTING):
            return
        if job.phase not in (Phase.PENDING, Phase.HELD):
            raise InvalidPhase(f"job {job.id} is {job.phase} and cannot be run again")
        quote = None
        registered = registry.get(job.job_type)
        if registered is not None:
            try:
                values = parse(registered.schema,
                               [(p.name, p.value, False) for p in job.parameters
                                if not p.by_reference])
                quote = self._quote(registered, values)
            except ParameterError:
                quote = None
        if not self.store.queue(job.id, quote=quote):
            current = self.store.phase(job.id)
            if current not in (Phase.QUEUED, Phase.EXECUTING):
                raise InvalidPhase(f"job {job.id} is {current} and cannot be run")

    @staticmethod
    def _quote(registered: registry.RegisteredJobType,
               values: dict[str, Any]) -> datetime | None:
        """When the job would end if it started now (nil when the type cannot tell)."""
        if registered.job_type.estimate is None:
            return None
        try:
            return utcnow() + timedelta(seconds=float(registered.job_type.estimate(values)))
        except Exception:  # an estimate is advice; it must never stop a job
            return None

    def abort(self, job: Job) -> None:
        """PHASE=ABORT: stop the job; its results so far are kept."""
        if job.phase == Phase.ABORTED:
            return
        if not self.store.abort(job.id, "The job was aborted by its owner."):
            current = self.store.phase(job.id)
            if current != Phase.ABORTED:
                raise InvalidPhase(f"job {job.id} is {current} and cannot be aborted")

    def delete(self, job: Job) -> None:
        """DELETE: stop the job if it runs and remove it with all its files."""
        destroy_job(self.store, self.config, job.id, "deleted by its owner")

    def set_phase(self, job: Job, value: str | None) -> None:
        if value is None:
            raise UsageError("PHASE is required (RUN or ABORT)")
        action = value.upper()
        if action == "RUN":
            self.run(job)
        elif action == "ABORT":
            self.abort(job)
        else:
            raise UsageError(f"PHASE={value!r}: only RUN and ABORT can be requested")

    def set_execution_duration(self, job: Job, value: str | None) -> None:
        if value is None:
            raise UsageError("EXECUTIONDURATION is required")
        seconds = self._execution_duration(value)
        try:
            self.store.set_execution_duration(job.id, seconds)
        except InvalidPhaseError as exc:
            raise InvalidPhase(str(exc)) from None

    def set_destruction(self, job: Job, value: str | None) -> None:
        if value is None:
            raise UsageError("DESTRUCTION is required")
        self.store.set_destruction(job.id, self._destruction(value, job.creation_time))

    def update_parameters(self, job: Job, params: RequestParams) -> None:
        """POST to the parameters of a PENDING job (UWS 1.1 section 2.1.11)."""
        new = self._job_parameters(params)
        if not new:
            return
        if job.phase != Phase.PENDING:
            raise InvalidPhase(f"job {job.id} is {job.phase}; parameters can only be changed "
                               "while it is PENDING")
        registered = self.job_type(job.job_type)
        new_names = {p.name for p in new}
        merged = [ParameterValue(p.name, p.value, p.is_post, p.by_reference)
                  for p in job.parameters if p.name not in new_names] + new
        self._validate(registered, merged, {name for name, _ in params.uploads})
        try:
            self.store.replace_parameters(job.id, new)
        except InvalidPhaseError as exc:
            raise InvalidPhase(str(exc)) from None
        except KeyError:
            raise NotFound(f"no job {job.id!r}") from None
        if params.uploads:
            self._store_uploads(job, params.uploads)

    def apply_control(self, job: Job, control: JobControl) -> None:
        """Apply control parameters POSTed to the job resource itself."""
        if control.run_id is not None:
            self.store.set_run_id(job.id, control.run_id)
        if control.execution_duration is not None:
            self.set_execution_duration(job, control.execution_duration)
        if control.destruction is not None:
            self.set_destruction(job, control.destruction)
        if control.phase is not None:
            self.set_phase(job, control.phase)

    # Blocking ------------------------------------------------------------------------

    def parse_wait(self, text: str | None) -> float | None:
        """WAIT seconds, capped by ``wait_max``; -1 means the cap; None: no WAIT."""
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"WAIT={text!r}: must be an integer number of seconds, "
                             "or -1") from None
        if value < -1:
            raise UsageError(f"WAIT={text!r}: must be -1 or >= 0")
        if value == -1:
            return self.config.wait_max
        return float(min(value, self.config.wait_max))

    def wait(self, principal: Principal, job_type: str, job_id: str, timeout: float,
             phase: str | None) -> Job:
        """Block until the job leaves its phase, or ``timeout`` seconds pass.

        Blocks only in PENDING, QUEUED or EXECUTING and, when ``phase`` is
        given, only while the job is in that phase (UWS 1.1 section 2.2.1.2).
        """
        if phase is not None and phase.upper() not in LISTABLE_PHASES:
            raise UsageError(f"PHASE={phase!r} is not a UWS phase")
        notifier = self.store.notifier
        if notifier is None or timeout <= 0:
            return self.get(principal, job_type, job_id)
        if not self._wait_slots.acquire(blocking=False):
            return self.get(principal, job_type, job_id)
        try:
            return self._wait(notifier, principal, job_type, job_id, timeout, phase)
        finally:
            self._wait_slots.release()

    def _wait(self, notifier: Notifier, principal: Principal, job_type: str, job_id: str,
              timeout: float, phase: str | None) -> Job:
        deadline = time.monotonic() + timeout
        # Watch before reading, so that a change between the read and the wait
        # still wakes this request.
        event = notifier.register(job_id)
        try:
            # Read in full at once: a job that does not block is answered with it.
            job = self.get(principal, job_type, job_id)
            start_phase = job.phase
            if (start_phase not in BLOCKING_PHASES
                    or (phase is not None and start_phase != phase.upper())):
                return job
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self.get(principal, job_type, job_id)
                event.wait(min(remaining, _WAIT_SLICE))
                event.clear()
                job = self.get(principal, job_type, job_id)
                if job.phase != start_phase:
                    return job
        finally:
            notifier.unregister(job_id, event)

    # Documents -----------------------------------------------------------------------

    def summary(self, job: Job, job_url: str) -> uws_xml.JobSummary:
        """The ``uws:job`` document of a job whose URL is ``job_url``."""
        error = None
        if job.phase in (Phase.ERROR, Phase.ABORTED) and job.error_message:
            error = uws_xml.ErrorSummary(
                message=job.error_message, type=job.error_type or "fatal",
                has_detail=job.phase == Phase.ERROR)
        return uws_xml.JobSummary(
            job_id=job.id, run_id=job.run_id, owner_id=job.owner.name, phase=job.phase,
            quote=job.quote, creation_time=job.creation_time, start_time=job.start_time,
            end_time=job.end_time, execution_duration=job.execution_duration,
            destruction=job.destruction,
            parameters=self.parameters(job, job_url),
            results=self.results(job, job_url),
            error_summary=error,
            job_info=uws_xml.JobInfo(job.job_type, job.progress, job.progress_message))

    @staticmethod
    def parameters(job: Job, job_url: str) -> list[uws_xml.Parameter]:
        return [uws_xml.Parameter(
            id=p.name, is_post=p.is_post, by_reference=p.by_reference,
            value=(f"{job_url}/parameters/{quote(p.name)}" if p.by_reference else p.value))
            for p in job.parameters]

    @staticmethod
    def results(job: Job, job_url: str) -> list[uws_xml.ResultReference]:
        return [uws_xml.ResultReference(id=r.result_id,
                                        href=f"{job_url}/results/{quote(r.result_id)}",
                                        size=r.size, mime_type=r.mime_type)
                for r in job.results]

    def result_path(self, job: Job, result_id: str) -> tuple[Path, str | None]:
        for r in job.results:
            if r.result_id == result_id:
                job_dir = self.config.job_dir(job.id).resolve()
                path = (job_dir / r.path).resolve()
                if job_dir in path.parents and path.is_file():
                    return path, r.mime_type
                break
        raise NotFound(f"job {job.id} has no result {result_id!r}")

    def error_text(self, job: Job) -> str:
        """The error detail document: only for a job in ERROR (404 otherwise)."""
        if job.phase != Phase.ERROR:
            raise NotFound(f"job {job.id} is {job.phase}, not ERROR: it has no error")
        text = job.error_message or "The job failed."
        if job.error_detail:
            text += "\n\n" + job.error_detail
        return text + "\n"
