"""The dispatcher's rules, against a real database: per-user limit, fair order, re-sending.

The broker is replaced by a list that records what the dispatcher hands to
it (the dispatcher's own interface, ``send(job_id, queue)``); the live tests
cover the real broker.
"""

from __future__ import annotations

import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import insert, update

from tests.conftest import Account
from uws_service.dispatcher import REDISPATCH_AFTER, Dispatcher
from uws_service.models import Job, Phase, utcnow
from uws_service.store import destruction_after


def _queue_jobs(app: Flask, owner: str, count: int, start: int = 0) -> list[str]:
    """Insert ``count`` QUEUED jobs of ``owner`` in one statement (fast)."""
    services = app.extensions["vocloud"]
    owner_id = services.users.get_user(owner).id
    now = utcnow()
    rows = [{"id": f"{owner[:4]}{start + i:012d}", "job_type": "selftest",
             "owner_id": owner_id, "phase": Phase.QUEUED.value,
             "creation_time": now + timedelta(microseconds=start + i),
             "queued_at": now + timedelta(microseconds=start + i),
             "execution_duration": 60, "destruction": destruction_after(3600),
             "queue": "io", "phase_changed_at": time.time(), "dispatch_count": 0}
            for i in range(count)]
    with services.database.write() as session:
        session.execute(insert(Job), rows)
    return [row["id"] for row in rows]


def _dispatcher(app: Flask, sent: list[str], **overrides: object) -> Dispatcher:
    from dataclasses import replace

    services = app.extensions["vocloud"]
    config = replace(services.config, **overrides)
    return Dispatcher(config, services.store, lambda job_id, _queue: sent.append(job_id))


def test_a_long_backlog_does_not_hide_another_users_job(
        app: Flask, accounts: dict[str, Account]) -> None:
    """alice's 2100 queued jobs do not keep bob's single later job from being sent."""
    alice_jobs = _queue_jobs(app, "alice", 2100)
    (bob_job,) = _queue_jobs(app, "bob", 1, start=5000)
    sent: list[str] = []
    _dispatcher(app, sent, user_concurrency=4).dispatch()
    assert bob_job in sent
    assert len([j for j in sent if j in set(alice_jobs)]) == 4
    assert sent.index(bob_job) <= 1  # in the first round-robin round


def test_per_user_limit_counts_executing_and_dispatched_jobs(
        app: Flask, accounts: dict[str, Account]) -> None:
    """A user at the limit gets nothing more until one of their jobs ends."""
    store = app.extensions["vocloud"].store
    jobs = _queue_jobs(app, "alice", 5)
    sent: list[str] = []
    dispatcher = _dispatcher(app, sent, user_concurrency=2)
    assert dispatcher.dispatch() == 2
    assert dispatcher.dispatch() == 0
    assert store.start(jobs[0], "h", 1) is not None
    assert store.complete(jobs[0], [])
    assert dispatcher.dispatch() == 1
    assert sent == jobs[:3]


def test_round_robin_between_owners(app: Flask, accounts: dict[str, Account]) -> None:
    """With free slots for both, one pass alternates between owners in queue order."""
    alice = _queue_jobs(app, "alice", 3)
    bob = _queue_jobs(app, "bob", 3, start=100)
    sent: list[str] = []
    _dispatcher(app, sent, user_concurrency=10).dispatch()
    assert sorted(sent) == sorted(alice + bob)
    owners = ["a" if j in alice else "b" for j in sent]
    assert owners in (["a", "b"] * 3, ["b", "a"] * 3)


def test_lost_request_is_sent_again_after_backoff(
        app: Flask, accounts: dict[str, Account]) -> None:
    """A dispatched job that never started is sent again after REDISPATCH_AFTER."""
    services = app.extensions["vocloud"]
    (job,) = _queue_jobs(app, "alice", 1)
    sent: list[str] = []
    dispatcher = _dispatcher(app, sent)
    dispatcher.dispatch()
    dispatcher.dispatch()
    assert sent == [job]
    with services.database.write() as session:
        session.execute(update(Job).where(Job.id == job).values(
            dispatched_at=utcnow() - timedelta(seconds=REDISPATCH_AFTER + 1)))
    dispatcher.dispatch()
    assert sent == [job, job]
    assert services.store.get(job).dispatch_count == 2
