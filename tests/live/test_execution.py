"""Live execution of UWS jobs in the embedded mode: ABORT, limits, errors, progress, deletion.

Each test drives a real ``vocloud serve`` (SQLite, filesystem broker, its
own supervised workers) over HTTP with the ``selftest`` job, and checks the
job's processes in ``/proc`` and its files on disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import LiveService, assert_valid, start_service, wait_for_workers
from tests.live.helpers import (
    UWSClient,
    assert_ran_once,
    job_dir,
    job_process,
    open_process,
    step_files,
    wait_exit,
)

pytestmark = pytest.mark.live

#: The issue's bound: from POST PHASE=ABORT to the job's process being gone.
ABORT_BOUND = 2.0
UWS_NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}


@pytest.fixture
def alice(live: LiveService) -> Iterator[UWSClient]:
    client = UWSClient(live, live.accounts["alice"])
    yield client
    client.http.close()


def _long_job(client: UWSClient, **extra: object) -> str:
    """A selftest job that runs for a minute, a result file every 0.1 s."""
    params = {"duration": 60, "steps": 600, "partial_results": "true", **extra}
    job_url = client.submit(params)
    client.wait_until(job_url, {"EXECUTING"}, timeout=60)
    return job_url


def _results_when_listed(client: UWSClient, job_url: str,
                         timeout: float = 10) -> list[dict[str, object]]:
    """The job's results, waiting briefly for a stopped job's supervisor to record them."""
    deadline = time.monotonic() + timeout
    while True:
        results = client.job(job_url)["results"]
        if results or time.monotonic() > deadline:
            return list(results)
        time.sleep(0.1)


@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["sigterm", "sigkill"])
def test_abort_stops_an_executing_job_within_two_seconds(
        live: LiveService, alice: UWSClient, ignore_sigterm: bool) -> None:
    """PHASE=ABORT ends an EXECUTING job in ABORTED and its process is gone within 2 s.

    Measured from just before the POST to the exit of the job's own process
    (watched through a pidfd).  A job that ignores SIGTERM is still gone in
    time: it takes the SIGKILL sent 1.5 s after SIGTERM.  The partial
    results it wrote are kept, and no new ones appear afterwards.
    """
    job_url = _long_job(alice, ignore_sigterm=str(ignore_sigterm).lower())
    pidfd = open_process(job_process(live, job_url))
    deadline = time.monotonic() + 10
    while not step_files(live, job_url) and time.monotonic() < deadline:
        time.sleep(0.05)  # let the job write some partial results first
    try:
        started = time.monotonic()
        alice.set_phase(job_url, "ABORT")
        exited = wait_exit(pidfd, 10)
        elapsed = time.monotonic() - started
    finally:
        os.close(pidfd)
    assert exited, "the job process survived ABORT for 10 s"
    assert elapsed < ABORT_BOUND, f"the job process took {elapsed:.2f} s to stop"
    if ignore_sigterm:
        # Proof that SIGTERM was ignored and SIGKILL, sent after the grace, did it.
        assert elapsed >= 1.4, f"a job ignoring SIGTERM stopped after only {elapsed:.2f} s"
    doc = alice.job(job_url)
    assert doc["phase"] == "ABORTED"
    assert "aborted" in doc["errorSummary"]["message"].lower()
    written = step_files(live, job_url)
    assert written
    # The phase changes at once; the supervisor lists the results after the kill.
    results = _results_when_listed(alice, job_url)
    assert {r["id"] for r in results} >= written
    time.sleep(0.3)
    assert step_files(live, job_url) == written, "the job kept writing after ABORT"
    assert_ran_once(live, job_url)


def test_execution_duration_exceeded_aborts_and_keeps_partial_results(
        live: LiveService, alice: UWSClient) -> None:
    """A job running past its executionDuration ends ABORTED, saying why, with its results.

    The error summary names executionDuration; every file the job wrote
    before it was stopped is listed as a result and can be downloaded.
    """
    job_url = alice.submit({"duration": 60, "steps": 120, "partial_results": "true",
                            "EXECUTIONDURATION": 2})
    doc = alice.wait_final(job_url, timeout=60)
    assert doc["phase"] == "ABORTED"
    assert doc["executionDuration"] == 2
    assert "executionDuration" in doc["errorSummary"]["message"]
    started = datetime.fromisoformat(doc["startTime"])
    ended = datetime.fromisoformat(doc["endTime"])
    assert timedelta(seconds=2) <= ended - started < timedelta(seconds=6)
    # Listed as soon as the phase is ABORTED: a client woken by WAIT finds them.
    results = doc["results"]
    written = step_files(live, job_url)
    assert written and {r["id"] for r in results} == written
    for result in results:
        r = alice.http.get(str(result["href"]), timeout=30)
        assert r.status_code == 200
        assert r.text.strip() == str(int(str(result["id"])[5:9]))
    assert_ran_once(live, job_url)


@pytest.mark.parametrize("kind", ["fatal", "transient"])
def test_failing_job_ends_in_error_with_its_type_and_text(
        live: LiveService, alice: UWSClient, kind: str) -> None:
    """A job that raises ends in ERROR: errorSummary type fatal/transient, /error has the text."""
    message = f"selftest asked to fail ({kind})"
    job_url = alice.submit({"fail": kind, "message": message})
    doc = alice.wait_final(job_url, timeout=60)
    assert doc["phase"] == "ERROR"
    assert doc["errorSummary"] == {"message": message, "type": kind, "hasDetail": True}
    xml = assert_valid(alice.http.get(job_url, timeout=30).content, "UWS.xsd")
    summary = xml.find("uws:errorSummary", UWS_NS)
    assert summary is not None and summary.get("type") == kind
    error = alice.http.get(f"{job_url}/error", timeout=30)
    assert error.status_code == 200
    assert message in error.text
    assert "Requested with the 'fail' parameter." in error.text
    assert_ran_once(live, job_url)


def test_progress_shows_in_job_info_while_running(
        live: LiveService, alice: UWSClient) -> None:
    """An executing job's progress (fraction and message) appears in jobInfo and grows."""
    job_url = alice.submit({"duration": 4, "steps": 8})
    alice.wait_until(job_url, {"EXECUTING"}, timeout=60)
    seen: dict[float, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = alice.job(job_url)
        if doc["phase"] != "EXECUTING":
            break
        info = doc["jobInfo"]
        assert info["jobType"] == "selftest"
        if info["progress"] is not None:
            seen[info["progress"]] = info["message"]
        time.sleep(0.1)
    intermediate = {p: m for p, m in seen.items() if 0 < p < 1}
    assert len(intermediate) >= 2, f"progress seen while executing: {seen}"
    for fraction, message in intermediate.items():
        assert message == f"step {round(fraction * 8)} of 8"
    doc = alice.wait_final(job_url, timeout=60)
    assert doc["phase"] == "COMPLETED"
    assert doc["jobInfo"]["progress"] == 1.0
    assert_ran_once(live, job_url)


def test_delete_of_a_running_job_stops_it_and_removes_its_folder(
        live: LiveService, alice: UWSClient) -> None:
    """DELETE of an EXECUTING job kills its process, forgets the job and removes its files."""
    job_url = _long_job(alice)
    folder = job_dir(live, job_url)
    assert folder.is_dir()
    pidfd = open_process(job_process(live, job_url))
    try:
        started = time.monotonic()
        r = alice.http.delete(job_url, allow_redirects=False, timeout=30)
        assert r.status_code == 303
        exited = wait_exit(pidfd, 10)
        elapsed = time.monotonic() - started
    finally:
        os.close(pidfd)
    assert exited and elapsed < ABORT_BOUND, f"job process stopped after {elapsed:.2f} s"
    assert alice.http.get(job_url, timeout=30).status_code == 404
    _wait_gone(folder)


def _wait_gone(folder: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while folder.exists():
        assert time.monotonic() < deadline, f"{folder} still exists"
        time.sleep(0.1)


def test_destruction_time_reached_destroys_jobs_and_files(
        live: LiveService, alice: UWSClient) -> None:
    """Once its destruction time passes, the reaper removes a job and its files.

    Both a finished job and one still executing (whose process is then
    stopped) disappear.
    """
    destruction = datetime.now(UTC) + timedelta(seconds=6)
    soon = destruction.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    finished = alice.submit({"duration": 0, "DESTRUCTION": soon})
    running = alice.submit({"duration": 60, "steps": 60, "DESTRUCTION": soon})
    assert alice.wait_final(finished, timeout=60)["phase"] == "COMPLETED"
    alice.wait_until(running, {"EXECUTING"}, timeout=60)
    pidfd = open_process(job_process(live, running))
    try:
        if datetime.now(UTC) < destruction:  # on a slow machine it may have passed
            assert job_dir(live, finished).is_dir() and job_dir(live, running).is_dir()
        for job_url in (finished, running):
            deadline = time.monotonic() + 30
            while alice.http.get(job_url, timeout=30).status_code != 404:
                assert time.monotonic() < deadline, f"{job_url} was not destroyed"
                time.sleep(0.2)
        assert datetime.now(UTC) >= destruction, "destroyed before its destruction time"
        assert wait_exit(pidfd, 10), "the destroyed job's process still runs"
    finally:
        os.close(pidfd)
    for job_url in (finished, running):
        _wait_gone(job_dir(live, job_url))


def test_io_jobs_complete_while_an_io_slot_is_busy(
        live: LiveService, alice: UWSClient) -> None:
    """With io concurrency 2, short io jobs run to completion beside a long io job."""
    long_job = _long_job(alice)
    try:
        short = [alice.submit({"duration": 0.1, "values": [i]}) for i in range(3)]
        for i, job_url in enumerate(short):
            assert alice.wait_final(job_url, timeout=60)["phase"] == "COMPLETED"
            report = alice.http.get(f"{job_url}/results/report", timeout=30).json()
            assert report["values"] == [float(i)]
            assert_ran_once(live, job_url)
        assert alice.phase(long_job) == "EXECUTING"
    finally:
        alice.set_phase(long_job, "ABORT")
    assert_ran_once(live, long_job)


def test_user_concurrency_keeps_second_job_queued_and_lets_others_run(
        tmp_path: Path) -> None:
    """With VOCLOUD_USER_CONCURRENCY=1 a user's second job waits QUEUED (never HELD).

    While alice's first job executes, her second stays QUEUED, and bob's
    job, submitted after hers, runs and completes before it (fair order
    between owners); her second job starts only after her first ended.
    """
    service = start_service(tmp_path / "home", extra_env={
        "VOCLOUD_USER_CONCURRENCY": "1", "VOCLOUD_WORKERS": "io:2"})
    try:
        alice = UWSClient(service, service.add_account("alice"))
        bob = UWSClient(service, service.add_account("bob"))
        wait_for_workers(service, bob.account)
        first = alice.submit({"duration": 8})
        alice.wait_until(first, {"EXECUTING"}, timeout=60)
        second = alice.submit({"duration": 0.1})
        other = bob.submit({"duration": 0.1})
        assert bob.wait_final(other, timeout=60)["phase"] == "COMPLETED"
        assert alice.phase(first) == "EXECUTING", "bob's job did not run beside alice's"
        assert alice.phase(second) == "QUEUED"
        # WAIT returns on the first phase change of the second job.
        doc = alice.job(second, wait=60, phase="QUEUED")
        assert doc["phase"] in {"EXECUTING", "COMPLETED"}, doc["phase"]
        first_doc = alice.wait_final(first, timeout=60)
        assert first_doc["phase"] == "COMPLETED"
        second_doc = alice.wait_final(second, timeout=60)
        other_doc = bob.job(other)
        assert second_doc["phase"] == "COMPLETED"
        assert second_doc["startTime"] >= first_doc["endTime"]
        assert other_doc["startTime"] < second_doc["startTime"]
        for job_url in (first, second, other):
            assert_ran_once(service, job_url)
    finally:
        service.stop()

