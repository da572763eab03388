"""The scaled-out deployment: PostgreSQL, Redis, and separate ``vocloud worker`` processes.

The issue's proof: 200 jobs submitted concurrently by 20 clients all run,
exactly once each, spread over two workers; a worker killed with ``kill -9``
in the middle of a job fails that job (and only that job) while the other
keeps working; and a Redis broker that restarts empty loses no queued job.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import (
    REDIS_URL,
    LiveService,
    drop_postgres_database,
    free_port,
    postgres_database,
    redis_available,
    start_service,
    unavailable,
    wait_for_workers,
)
from tests.live.helpers import (
    FINAL_PHASES,
    UWSClient,
    assert_ran_once,
    job_process,
    open_process,
    parent_pid,
    wait_exit,
)

pytestmark = pytest.mark.live

#: A Redis database of its own, so that nothing else's keys are touched.
REDIS_DB = 13
LEASE_TIMEOUT = 5.0
USERS = [f"user{i}" for i in range(5)]
THREADS = 20
JOBS = 200


def _redis_url(db: int) -> str:
    parts = urlsplit(REDIS_URL)
    return f"{parts.scheme}://{parts.netloc}/{db}"


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """``vocloud serve`` without workers plus two ``vocloud worker -Q io --concurrency 2``."""
    broker = _redis_url(REDIS_DB)
    if not redis_available(broker):
        unavailable(f"Redis at {broker}")
    database = postgres_database()
    client = redis.Redis.from_url(broker)
    client.flushdb()
    service = None
    try:
        service = start_service(tmp_path_factory.mktemp("scaled"), database_url=database,
                                broker_url=broker, start_workers=False, extra_env={
                                    "VOCLOUD_USER_CONCURRENCY": "8",
                                    "VOCLOUD_LEASE_TIMEOUT": str(LEASE_TIMEOUT),
                                    "VOCLOUD_HEARTBEAT_INTERVAL": "1",
                                    "VOCLOUD_WAIT_MAX": "30"})
        for name in USERS:
            service.add_account(name)
        service.start_worker("io", 2)
        service.start_worker("io", 2)
        wait_for_workers(service, service.accounts[USERS[0]], timeout=90)
        yield service
    finally:
        if service is not None:
            service.stop()
        drop_postgres_database(database)
        client.flushdb()
        client.close()


def _worker_of(service: LiveService, pool_pid: int) -> subprocess.Popen[bytes]:
    """The ``vocloud worker`` whose pool process is ``pool_pid``."""
    parent = parent_pid(pool_pid)
    for worker in service.workers:
        if worker.pid == parent:
            return worker
    raise AssertionError(f"process {pool_pid} belongs to no known worker (parent {parent})")


def _run_jobs(client: UWSClient, count: int, first: int) -> list[tuple[str, dict[str, object]]]:
    """Submit ``count`` tiny jobs, then wait for each with ``WAIT=-1`` until it ends."""
    urls = [client.submit({"duration": 0, "values": [first + i]}) for i in range(count)]
    done = []
    for job_url in urls:
        deadline = time.monotonic() + 240
        doc = client.job(job_url)
        while doc["phase"] not in FINAL_PHASES and time.monotonic() < deadline:
            doc = client.job(job_url, wait=-1, phase=str(doc["phase"]))
        done.append((job_url, doc))
    return done


def test_200_concurrent_jobs_all_run_once_on_both_workers(scaled: LiveService) -> None:
    """20 client threads submit 200 jobs at once: all complete, none lost, none run twice.

    Each job's ``executions.log`` holds exactly one line, and the pool
    processes named there belong to both workers.
    """
    clients = [UWSClient(scaled, scaled.accounts[USERS[i % len(USERS)]])
               for i in range(THREADS)]
    per_thread = JOBS // THREADS
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_run_jobs, client, per_thread, i * per_thread)
                   for i, client in enumerate(clients)]
        results = [item for future in futures for item in future.result(timeout=280)]
    assert len(results) == JOBS
    phases = Counter(str(doc["phase"]) for _url, doc in results)
    assert phases == {"COMPLETED": JOBS}, phases
    assert len({url for url, _doc in results}) == JOBS
    workers: Counter[int] = Counter()
    for job_url, _doc in results:
        _host, pid = assert_ran_once(scaled, job_url)
        workers[_worker_of(scaled, pid).pid] += 1
    assert len(workers) == 2, f"jobs per worker: {workers}"
    # Every job is in its owner's job list, COMPLETED: none was lost on the way.
    for name in USERS:
        listing = clients[USERS.index(name)].http.get(
            clients[0].list_url, params={"PHASE": "COMPLETED"},
            headers={"Accept": "application/json"}, timeout=30).json()
        ids = {job["id"] for job in listing["jobs"]}
        mine = {url.rsplit("/", 1)[1] for url, doc in results if doc["ownerId"] == name}
        assert mine <= ids and len(mine) == JOBS // len(USERS)


def test_kill_9_of_one_worker_fails_its_job_while_the_other_keeps_working(
        scaled: LiveService) -> None:
    """``kill -9`` of one worker's process group in the middle of a 10 s job.

    That job ends in ERROR with a "worker lost" message within the lease
    timeout (5 s, plus one reaper pass); jobs submitted meanwhile complete
    on the surviving worker.
    """
    assert all(worker.poll() is None for worker in scaled.workers)
    alice = UWSClient(scaled, scaled.accounts[USERS[0]])
    bob = UWSClient(scaled, scaled.accounts[USERS[1]])
    job_url = alice.submit({"duration": 10, "steps": 100})
    alice.wait_until(job_url, {"EXECUTING"}, timeout=60)
    # (executions.log is written just after the job turns EXECUTING: job_process waits.)
    pidfd = open_process(job_process(scaled, job_url))
    (_host, supervisor) = assert_ran_once(scaled, job_url)
    victim = _worker_of(scaled, supervisor)
    survivor = next(w for w in scaled.workers if w is not victim)
    try:
        os.killpg(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        victim.wait(10)
        more = [bob.submit({"duration": 0.2, "values": [i]}) for i in range(6)]
        doc = alice.wait_final(job_url, timeout=LEASE_TIMEOUT + 30)
        elapsed = time.monotonic() - killed
        assert wait_exit(pidfd, 5), "the job process outlived its killed worker"
    finally:
        os.close(pidfd)
    assert doc["phase"] == "ERROR"
    assert elapsed < LEASE_TIMEOUT + 2, f"ERROR only after {elapsed:.1f} s"
    assert "worker running this job was lost" in doc["errorSummary"]["message"]
    for job_url_more in more:
        assert bob.wait_final(job_url_more, timeout=90)["phase"] == "COMPLETED"
        (_host, pid) = assert_ran_once(scaled, job_url_more)
        assert parent_pid(pid) == survivor.pid
    assert_ran_once(scaled, job_url)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A redis-server of this test's own on a free port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server")
    port = free_port()
    servers: list[subprocess.Popen[bytes]] = []
    servers.append(_start_redis(str(binary), port, tmp_path))
    try:
        yield port, servers
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(10)


def _start_redis(binary: str, port: int, folder: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not redis_available(f"redis://127.0.0.1:{port}/0"):
        assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return server


def test_redis_restart_loses_no_queued_job(
        tmp_path: Path, private_redis: tuple[int, list[subprocess.Popen[bytes]]]) -> None:
    """Jobs whose requests a restarted (empty) Redis lost still run once a worker starts.

    With no worker, four jobs are QUEUED and their requests wait in Redis;
    Redis is restarted without persistence, so they are gone; a worker
    started afterwards makes every queued job be sent again, and all
    complete, once each.
    """
    port, servers = private_redis
    broker = f"redis://127.0.0.1:{port}/0"
    service = start_service(tmp_path / "home", broker_url=broker, start_workers=False,
                            extra_env={"VOCLOUD_WAIT_MAX": "30"})
    try:
        alice = UWSClient(service, service.add_account("alice"))
        jobs = [alice.submit({"duration": 0.1, "values": [i]}) for i in range(4)]
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while client.llen("io") < len(jobs):
            assert time.monotonic() < deadline, "the requests never reached Redis"
            time.sleep(0.05)
        client.close()
        servers[0].terminate()
        servers[0].wait(10)
        binary = str(servers[0].args[0])  # type: ignore[index]
        servers.append(_start_redis(binary, port, tmp_path))
        client = redis.Redis(port=port)
        assert client.llen("io") == 0, "the restarted Redis still holds the requests"
        client.close()
        assert [alice.phase(u) for u in jobs] == ["QUEUED"] * len(jobs)
        service.start_worker("io", 2)
        for i, job_url in enumerate(jobs):
            assert alice.wait_final(job_url, timeout=90)["phase"] == "COMPLETED"
            report = alice.http.get(f"{job_url}/results/report", timeout=30).json()
            assert report["values"] == [float(i)]
            assert_ran_once(service, job_url)
        # The web process reconnected too: a new job runs end to end.
        assert alice.wait_final(alice.submit({"duration": 0}), timeout=60)["phase"] == \
            "COMPLETED"
    finally:
        service.stop()

