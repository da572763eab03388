"""Helpers of the live execution tests: a small UWS client and views of job processes.

Everything here talks to real ``vocloud`` processes over HTTP, or reads what
they leave on disk (the job folder, ``executions.log``) and in ``/proc``.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from tests.conftest import Account, LiveService

FINAL_PHASES = frozenset({"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"})
JSON = {"Accept": "application/json"}


class UWSClient:
    """One user's view of the ``selftest`` job list of a live service."""

    def __init__(self, service: LiveService, account: Account,
                 job_type: str = "selftest") -> None:
        self.service = service
        self.account = account
        self.list_url = f"{service.url}/uws/{job_type}"
        self.http = requests.Session()
        self.http.headers.update(account.headers)

    def submit(self, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
               run: bool = True) -> str:
        """Create a job (and run it); returns its URL."""
        data: list[tuple[str, Any]] = list(
            params.items() if isinstance(params, Mapping) else (params or []))
        if run:
            data.append(("PHASE", "RUN"))
        r = self.http.post(self.list_url, data=data, allow_redirects=False, timeout=30)
        assert r.status_code == 303, r.text
        return str(r.headers["Location"])

    def job(self, job_url: str, wait: int | None = None,
            phase: str | None = None) -> dict[str, Any]:
        """The job document as JSON, optionally after a blocking ``WAIT``."""
        params: dict[str, Any] = {}
        if wait is not None:
            params["WAIT"] = wait
            if phase is not None:
                params["PHASE"] = phase
        timeout = 30 + (wait if wait is not None and wait > 0 else 300 if wait == -1 else 0)
        r = self.http.get(job_url, params=params, headers=JSON, timeout=timeout)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def phase(self, job_url: str) -> str:
        r = self.http.get(f"{job_url}/phase", timeout=30)
        assert r.status_code == 200, r.text
        return r.text

    def set_phase(self, job_url: str, phase: str) -> None:
        r = self.http.post(f"{job_url}/phase", data={"PHASE": phase}, allow_redirects=False,
                           timeout=30)
        assert r.status_code == 303, r.text

    def wait_until(self, job_url: str, phases: Collection[str],
                   timeout: float = 60) -> dict[str, Any]:
        """Block with ``WAIT`` until the job is in one of ``phases``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        doc = self.job(job_url)
        while doc["phase"] not in phases:
            remaining = deadline - time.monotonic()
            assert remaining > 0, (f"job {job_url} still {doc['phase']} after {timeout} s, "
                                   f"wanted {sorted(phases)}")
            if doc["phase"] in FINAL_PHASES:
                raise AssertionError(f"job {job_url} ended in {doc['phase']}, wanted "
                                     f"{sorted(phases)}: {doc.get('errorSummary')}")
            # PHASE makes WAIT block only while the job is still in the phase seen
            # (UWS 1.1 section 2.2.1.2): it may have moved on since.
            doc = self.job(job_url, wait=max(1, min(int(remaining), 30)), phase=doc["phase"])
        return doc

    def wait_final(self, job_url: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_until(job_url, FINAL_PHASES, timeout)


def job_id(job_url: str) -> str:
    return job_url.rstrip("/").rsplit("/", 1)[1]


def job_dir(service: LiveService, job_url: str) -> Path:
    return service.home / "jobs" / job_id(job_url)


def executions(service: LiveService, job_url: str) -> list[tuple[str, int]]:
    """(host, pid) of each execution recorded in the job's ``executions.log``."""
    path = job_dir(service, job_url) / "executions.log"
    lines = path.read_text().splitlines() if path.exists() else []
    result = []
    for line in lines:
        _time, host, pid = line.split()
        result.append((host, int(pid)))
    return result


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; it ends at the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and parent_pid(int(entry)) == pid:
            found.append(int(entry))
    return found


def job_process(service: LiveService, job_url: str, timeout: float = 10) -> int:
    """The pid of the forked process that runs an EXECUTING job.

    ``executions.log`` names the supervisor (a Celery pool process); the job
    is its child, leading a process group of its own.
    """
    deadline = time.monotonic() + timeout
    while True:
        runs = executions(service, job_url)
        if runs:
            _host, supervisor = runs[-1]
            kids = [pid for pid in children(supervisor) if _leads_group(pid)]
            if kids:
                return kids[0]
        assert time.monotonic() < deadline, f"no job process found for {job_url}"
        time.sleep(0.05)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def open_process(pid: int) -> int:
    """A pidfd for ``pid``: readable once the process has exited."""
    return os.pidfd_open(pid)


def wait_exit(pidfd: int, timeout: float) -> bool:
    """Wait until the process of ``pidfd`` exits; False on timeout."""
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group led by ``pid``."""
    os.killpg(pid, sig)


def step_files(service: LiveService, job_url: str) -> set[str]:
    folder = job_dir(service, job_url) / "results"
    return {p.name for p in folder.glob("step-*.txt")} if folder.is_dir() else set()


def assert_ran_once(service: LiveService, job_url: str) -> tuple[str, int]:
    """The job's ``executions.log`` holds exactly one line; returns its (host, pid)."""
    runs = executions(service, job_url)
    assert len(runs) == 1, f"job {job_url} ran {len(runs)} times: {runs}"
    return runs[0]
