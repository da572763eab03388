"""Recovery of the embedded service: restarts and lost workers lose no job and run none twice.

Each test runs its own ``vocloud serve`` in a temporary folder (SQLite and
the filesystem broker), with workers started and killed by the test.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveService, start_service, wait_for_workers
from tests.live.helpers import (
    UWSClient,
    assert_ran_once,
    job_process,
    open_process,
    parent_pid,
    wait_exit,
)

pytestmark = pytest.mark.live

LEASE_TIMEOUT = 5.0
#: One pass of the reaper (VOCLOUD_DISPATCH_INTERVAL) plus slack for a loaded machine.
REAPER_SLACK = 2.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    """A service without workers of its own; tests start ``vocloud worker`` themselves."""
    live = start_service(tmp_path / "home", start_workers=False, extra_env={
        "VOCLOUD_LEASE_TIMEOUT": str(LEASE_TIMEOUT), "VOCLOUD_HEARTBEAT_INTERVAL": "1",
        "VOCLOUD_WORKERS": "io:2"})
    try:
        yield live
    finally:
        live.stop()


def _wait_ready(service: LiveService, index: int, timeout: float = 60) -> None:
    """Wait until worker number ``index`` printed that it is ready (at any log level)."""
    log = service.home / f"worker-{index}.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and "ready (queues" in log.read_text(errors="replace")):
        assert service.workers[index].poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"worker {index} not ready:\n{log.read_text()}"
        time.sleep(0.1)


def test_restart_of_the_web_process_loses_no_job(service: LiveService) -> None:
    """Jobs queued before ``vocloud serve`` stops all run, once each, after it restarts.

    With no worker running, six jobs are QUEUED (their requests already
    handed to the broker) and one is left PENDING; the web process is
    stopped and started again on the same home with its workers.  Every
    queued job completes with its own result, and the PENDING one is still
    PENDING and runs when asked.
    """
    alice_account = service.add_account("alice")
    alice = UWSClient(service, alice_account)
    queued = [alice.submit({"duration": 0.1, "values": [i]}) for i in range(6)]
    pending = alice.submit({"values": [99]}, run=False)
    assert [alice.phase(u) for u in queued] == ["QUEUED"] * 6
    service.stop()

    again = start_service(service.home, start_workers=True, extra_env={
        "VOCLOUD_LEASE_TIMEOUT": str(LEASE_TIMEOUT), "VOCLOUD_WORKERS": "io:2"})
    try:
        alice = UWSClient(again, alice_account)

        def moved(url: str) -> str:
            return url.replace(service.url, again.url)

        for i, job_url in enumerate(queued):
            doc = alice.wait_final(moved(job_url), timeout=90)
            assert doc["phase"] == "COMPLETED", doc
            report = alice.http.get(f"{moved(job_url)}/results/report", timeout=30).json()
            assert report["values"] == [float(i)]
            assert_ran_once(again, job_url)
        assert alice.phase(moved(pending)) == "PENDING"
        alice.set_phase(moved(pending), "RUN")
        assert alice.wait_final(moved(pending), timeout=60)["phase"] == "COMPLETED"
    finally:
        again.stop()


def test_kill_9_of_a_worker_ends_its_job_in_error_and_a_new_worker_runs_jobs(
        service: LiveService) -> None:
    """SIGKILL of a worker's whole process group mid-job: the job ends in ERROR, saying why.

    The job's own process (in a process group of its own) dies with its
    supervisor; the reaper ends the job in ERROR ("worker lost", transient)
    within the lease timeout; the job never runs again, and a worker
    started afterwards runs new jobs.
    """
    alice = UWSClient(service, service.add_account("alice"))
    worker = service.start_worker("io", 2)
    wait_for_workers(service, alice.account)
    job_url = alice.submit({"duration": 10, "steps": 100, "partial_results": "true"})
    alice.wait_until(job_url, {"EXECUTING"}, timeout=60)
    pidfd = open_process(job_process(service, job_url))
    try:
        os.killpg(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        worker.wait(10)
        doc = alice.wait_final(job_url, timeout=LEASE_TIMEOUT + 30)
        elapsed = time.monotonic() - killed
        assert wait_exit(pidfd, 5), "the job process outlived its killed worker"
    finally:
        os.close(pidfd)
    assert doc["phase"] == "ERROR"
    assert elapsed < LEASE_TIMEOUT + REAPER_SLACK, f"ERROR only after {elapsed:.1f} s"
    message = doc["errorSummary"]["message"]
    assert "worker running this job was lost" in message, message
    assert doc["errorSummary"]["type"] == "transient"
    (_host, old_pid) = assert_ran_once(service, job_url)

    replacement = service.start_worker("io", 2)
    new_job = alice.submit({"duration": 0.1})
    assert alice.wait_final(new_job, timeout=90)["phase"] == "COMPLETED"
    (_host, new_pid) = assert_ran_once(service, new_job)
    assert parent_pid(new_pid) == replacement.pid
    assert new_pid != old_pid
    assert alice.phase(job_url) == "ERROR"
    assert_ran_once(service, job_url)


def test_stale_lease_ends_job_in_error(service: LiveService) -> None:
    """A supervisor that stops renewing its lease (frozen, not dead) loses its job.

    The supervising pool process is stopped with SIGSTOP, so its pid still
    exists: only the lease (no heartbeat for VOCLOUD_LEASE_TIMEOUT = 5 s)
    tells the reaper, which ends the job in ERROR.  Once resumed, the
    supervisor sees the job is no longer its own and stops the job process.
    """
    alice = UWSClient(service, service.add_account("alice"))
    service.start_worker("io", 2)
    job_url = alice.submit({"duration": 30, "steps": 300})
    alice.wait_until(job_url, {"EXECUTING"}, timeout=90)
    pidfd = open_process(job_process(service, job_url))
    (_host, supervisor) = assert_ran_once(service, job_url)
    os.kill(supervisor, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        doc = alice.wait_final(job_url, timeout=LEASE_TIMEOUT + 30)
        elapsed = time.monotonic() - stopped
    finally:
        os.kill(supervisor, signal.SIGCONT)
    try:
        assert doc["phase"] == "ERROR"
        assert "no heartbeat since" in doc["errorSummary"]["message"]
        assert LEASE_TIMEOUT - 1.5 <= elapsed < LEASE_TIMEOUT + REAPER_SLACK + 1.5, elapsed
        assert wait_exit(pidfd, 10), "the resumed supervisor did not stop the job"
    finally:
        os.close(pidfd)
    assert alice.phase(job_url) == "ERROR"


def test_worker_takes_only_its_queues_and_queued_job_runs_when_worker_starts(
        service: LiveService) -> None:
    """A job queued while no worker of its queue runs waits QUEUED, then runs when one starts.

    A ``vocloud worker -Q ml`` does not take the io job (it stays QUEUED for
    a blocking WAIT of 3 s); a ``vocloud worker -Q io`` started afterwards
    runs it, once.
    """
    alice = UWSClient(service, service.add_account("alice"))
    service.start_worker("ml", 1)
    _wait_ready(service, 0)
    job_url = alice.submit({"duration": 0.1})
    started = time.monotonic()
    doc = alice.job(job_url, wait=3, phase="QUEUED")
    assert doc["phase"] == "QUEUED"
    assert time.monotonic() - started >= 2.5
    io_worker = service.start_worker("io", 1)
    assert alice.wait_final(job_url, timeout=90)["phase"] == "COMPLETED"
    (_host, pid) = assert_ran_once(service, job_url)
    assert parent_pid(pid) == io_worker.pid
