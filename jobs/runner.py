"""Running one job: claim it, run it in its own process group, watch it, record the outcome.

This runs inside a Celery pool process (the job's *supervisor*).  The job
itself runs in a forked child that leads a new process group, so that ABORT,
an exceeded executionDuration or the loss of the supervisor stop everything
it started (SIGTERM, then SIGKILL after 1.5 s).  The supervisor holds the
job's lease: it renews ``heartbeat_at`` while the job runs, and the
dispatcher's reaper ends jobs whose lease went stale in ERROR.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jobs import registry
from jobs.base import JobContext, collect_results
from jobs.errors import JobError
from jobs.parameters import ParameterError, parse
from uws_service.config import Config
from uws_service.db import get_database
from uws_service.models import Phase, utcnow
from uws_service.notify import get_notifier
from uws_service.store import JobStore, lease_host
from vo.timefmt import format_time

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between SIGTERM and SIGKILL when a job is stopped.
KILL_GRACE = 1.5
#: Seconds between two reads of the job's phase while it runs.
WATCH_INTERVAL = 0.1
_OUTCOME = ".outcome.json"
#: File in the job folder with one line per execution of the job.
EXECUTIONS_LOG = "executions.log"


def make_store(config: Config) -> JobStore:
    database = get_database(config.database_url)
    return JobStore(database, get_notifier(database, config.redis_url,
                                           config.notify_poll_interval))


def run_job(job_id: str, config: Config) -> None:
    """Run ``job_id`` if it is still QUEUED; otherwise do nothing."""
    store = make_store(config)
    job = store.start(job_id, lease_host(), os.getpid())
    if job is None:
        log.info("job %s is no longer queued; nothing to do", job_id)
        return
    job_dir = config.job_dir(job_id)
    registered = registry.get(job.job_type)
    if registered is None:
        store.fail(job_id, f"unknown job type {job.job_type!r}")
        return
    try:
        params = parse(registered.schema,
                       [(p.name, p.value, p.by_reference) for p in job.parameters],
                       reference_root=job_dir / "uploads")
    except (ParameterError, OSError) as exc:
        store.fail(job_id, f"UsageError: {exc}")
        return
    ctx = JobContext(job_id=job_id, owner=job.owner.name, job_dir=job_dir,
                     execution_duration=job.execution_duration)
    ctx.results_dir  # noqa: B018 - creates the folder before the job starts
    (job_dir / _OUTCOME).unlink(missing_ok=True)
    # One line per execution, for operators (and tests) to prove a job ran once.
    with open(job_dir / EXECUTIONS_LOG, "a") as executions:
        executions.write(f"{format_time(utcnow())} {socket.gethostname()} {os.getpid()}\n")
    _supervise(store, config, registered, params, ctx)


def _supervise(store: JobStore, config: Config, registered: registry.RegisteredJobType,
               params: dict[str, Any], ctx: JobContext) -> None:
    job_id = ctx.job_id
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _child(registered, params, ctx, config)
    try:
        os.setpgid(pid, pid)  # also done in the child; whichever runs first wins
    except OSError:
        pass
    pidfd = _pidfd(pid)
    stop_reason: str | None = None
    status = None
    next_heartbeat = time.monotonic() + config.heartbeat_interval
    # When the database last answered: without it the lease cannot be renewed,
    # and once the reaper may have given the job up, the job must stop.
    last_contact = time.monotonic()
    try:
        while True:
            status = _reap(pid)
            if status is not None:
                break
            _wait_readable(pidfd, WATCH_INTERVAL)
            status = _reap(pid)
            if status is not None:
                break
            if time.monotonic() - started > ctx.execution_duration:
                stop_reason = "timeout"
                break
            try:
                phase = store.phase(job_id)
                if phase is not None and time.monotonic() >= next_heartbeat:
                    store.heartbeat(job_id, os.getpid())
                    next_heartbeat = time.monotonic() + config.heartbeat_interval
                last_contact = time.monotonic()
            except Exception:
                log.exception("job %s: the database did not answer", job_id)
                if time.monotonic() - last_contact > config.lease_timeout:
                    stop_reason = "lost"
                    break
                continue
            if phase is None:
                stop_reason = "deleted"
                break
            if phase != Phase.EXECUTING:
                stop_reason = "aborted"
                break
    finally:
        if status is None:
            status = _kill_group(pid)
        else:
            _kill_leftovers(pid)
        if pidfd is not None:
            os.close(pidfd)
    if stop_reason and registered.job_type.cancel is not None:
        try:
            registered.job_type.cancel(ctx)
        except Exception:
            log.exception("cancel() of job %s failed", job_id)
    _record_outcome(store, config, ctx, stop_reason, status)


def _record_outcome(store: JobStore, config: Config, ctx: JobContext,
                    stop_reason: str | None, status: int | None) -> None:
    """Write what became of the job, retrying while the database is away."""
    job_id = ctx.job_id
    if stop_reason in ("deleted", "lost"):
        if stop_reason == "deleted":
            shutil.rmtree(ctx.job_dir, ignore_errors=True)
        return
    results = collect_results(ctx.job_dir)
    if stop_reason == "timeout":
        # Results first: a client woken by ABORTED must find them listed.
        _retry(config, lambda: store.add_results(job_id, results))
        _retry(config, lambda: store.abort(
            job_id, f"The job exceeded its executionDuration of {ctx.execution_duration} s "
                    "and was stopped."))
    elif stop_reason is None:
        outcome = _read_outcome(ctx.job_dir)
        if outcome is None:
            changed = _retry(config, lambda: store.fail(job_id, _describe_death(status),
                                                        results=results))
        elif outcome["status"] == "ok":
            changed = _retry(config, lambda: store.complete(job_id, results))
        else:
            changed = _retry(config, lambda: store.fail(
                job_id, outcome["message"], detail=outcome.get("detail"),
                error_type=outcome.get("type", "fatal"), results=results))
        if changed:
            return
    # The job was aborted (or ended otherwise) meanwhile: keep what it wrote,
    # unless it was deleted, in which case its folder goes.
    if _retry(config, lambda: store.phase(job_id)) is None:
        shutil.rmtree(ctx.job_dir, ignore_errors=True)
        return
    _retry(config, lambda: store.add_results(job_id, results))


def _retry(config: Config, action: Callable[[], T]) -> T | None:
    """Run a database action, retrying for up to ``lease_timeout`` seconds."""
    deadline = time.monotonic() + config.lease_timeout
    delay = 0.2
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > deadline:
                log.exception("giving up on a database write")
                return None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _child(registered: registry.RegisteredJobType, params: dict[str, Any], ctx: JobContext,
           config: Config) -> None:  # pragma: no cover - runs in the forked child
    code = 1
    try:
        os.setpgid(0, 0)
        from jobs.celery_app import die_with_parent
        from uws_service import notify

        die_with_parent()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        notify.reset_after_fork()  # get_database() itself replaces inherited engines
        ctx.store_factory = lambda: make_store(config)
        try:
            registered.job_type.run(params, ctx)
            outcome: dict[str, Any] = {"status": "ok"}
            code = 0
        except JobError as exc:
            outcome = {"status": "error", "type": exc.error_type, "message": exc.message,
                       "detail": exc.detail}
        except ParameterError as exc:
            outcome = {"status": "error", "type": "fatal", "message": f"UsageError: {exc}"}
        except MemoryError:
            outcome = {"status": "error", "type": "fatal",
                       "message": "The job ran out of memory."}
        except BaseException as exc:
            outcome = {"status": "error", "type": "fatal",
                       "message": f"{type(exc).__name__}: {exc}",
                       "detail": traceback.format_exc()}
        tmp = ctx.job_dir / (_OUTCOME + ".tmp")
        tmp.write_text(json.dumps(outcome))
        os.replace(tmp, ctx.job_dir / _OUTCOME)
    finally:
        os._exit(code)


def _read_outcome(job_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((job_dir / _OUTCOME).read_text())
    except (OSError, ValueError):
        return None


def _describe_death(status: int | None) -> str:
    if status is not None and os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"The job process was killed by {name}{hint} before it finished."
    code = os.WEXITSTATUS(status) if status is not None else "unknown"
    return f"The job process exited with status {code} without reporting an outcome."


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _wait_readable(pidfd: int | None, timeout: float) -> None:
    if pidfd is None:
        time.sleep(timeout)
        return
    select.select([pidfd], [], [], timeout)


def _reap(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None


def _kill_leftovers(pid: int) -> None:
    """SIGKILL what the job started and left running after it ended."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pid: int) -> int | None:
    """SIGTERM the job's process group, SIGKILL it after :data:`KILL_GRACE`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    status = None
    while time.monotonic() < deadline:
        status = _reap(pid)
        if status is not None:
            break
        time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)  # children the job left behind go too
    except ProcessLookupError:
        pass
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    return status
