"""Blocking ``GET /{jobs}/{job-id}?WAIT=n[&PHASE=X]`` (UWS 1.1 section 2.2.1.2).

The in-process application with its real notifier (a database poll in the
embedded mode, woken at once by changes made in this process); phase
changes come from another thread through the real job store.  The only
timed assertions in the suite are here, with generous bounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import Account, make_config
from tests.uws.conftest import LIST, NS, complete, create_job, store_of


def _timed_get(client: FlaskClient, account: Account, url: str) -> tuple[float, str, int]:
    """GET ``url``; return (seconds taken, phase in the job document, status)."""
    started = time.monotonic()
    r = client.get(url, headers=account.headers)
    elapsed = time.monotonic() - started
    phase = ""
    if r.status_code == 200:
        phase = etree.fromstring(r.data).findtext("uws:phase", namespaces=NS) or ""
    return elapsed, phase, r.status_code


def _later(delay: float, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` in another thread after ``delay`` seconds."""
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_returns_at_once_in_final_phase(app: Flask, client: FlaskClient,
                                             alice: Account) -> None:
    """Section 2.2.1.2: outside PENDING, QUEUED and EXECUTING the server "must return
    immediately, even if a blocking request is made"."""
    job_id = create_job(client, alice)
    complete(app, job_id)
    elapsed, phase, status = _timed_get(client, alice, f"{LIST}/{job_id}?WAIT=30")
    assert status == 200
    assert phase == "COMPLETED"
    assert elapsed < 1.0


def test_wait_with_other_phase_returns_at_once(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.1.2: with ?PHASE the server "must return immediately [...] if the PHASE is
    not in specified state" (the job is PENDING, the client waits on QUEUED)."""
    job_id = create_job(client, alice)
    elapsed, phase, status = _timed_get(client, alice,
                                        f"{LIST}/{job_id}?WAIT=30&PHASE=QUEUED")
    assert status == 200
    assert phase == "PENDING"
    assert elapsed < 1.0


def test_wait_times_out(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.1.2: "the server must return after the given value of seconds whether
    there has been a significant change of Job status or not": WAIT=2 on a PENDING job
    returns after about 2 s, still PENDING."""
    job_id = create_job(client, alice)
    elapsed, phase, status = _timed_get(client, alice, f"{LIST}/{job_id}?WAIT=2")
    assert status == 200
    assert phase == "PENDING"
    assert 1.9 <= elapsed < 4.0


def test_wait_with_matching_phase_blocks(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.1.2: WAIT with PHASE equal to the current phase blocks like a plain WAIT."""
    job_id = create_job(client, alice)
    elapsed, phase, _ = _timed_get(client, alice, f"{LIST}/{job_id}?WAIT=1&phase=pending")
    assert phase == "PENDING"
    assert elapsed >= 0.9


def test_wait_is_woken_by_phase_change(app: Flask, client: FlaskClient,
                                       alice: Account) -> None:
    """Section 2.2.1.2: "it must return when the Job Phase changes": a phase change made by
    another thread 0.5 s into a WAIT=30 wakes it well under a second later."""
    job_id = create_job(client, alice)
    store = store_of(app)
    changed_at: list[float] = []

    def change() -> None:
        assert store.queue(job_id)
        changed_at.append(time.monotonic())

    thread = _later(0.5, change)
    elapsed, phase, status = _timed_get(app.test_client(), alice, f"{LIST}/{job_id}?WAIT=30")
    returned_at = time.monotonic()
    thread.join(5)
    assert status == 200
    assert phase == "QUEUED"
    assert changed_at
    assert returned_at - changed_at[0] < 1.0  # wake latency
    assert elapsed < 5.0


def test_each_phase_change_wakes_a_new_wait(app: Flask, client: FlaskClient,
                                            alice: Account) -> None:
    """Section 2.2.1.2: a client that loops on WAIT follows QUEUED -> EXECUTING -> COMPLETED,
    each WAIT returning on the next change."""
    job_id = create_job(client, alice, {"PHASE": "RUN"})
    store = store_of(app)
    url = f"{LIST}/{job_id}?WAIT=30"
    _later(0.3, lambda: store.start(job_id, "h", 1))
    elapsed, phase, _ = _timed_get(client, alice, url)
    assert phase == "EXECUTING"
    assert elapsed < 5.0
    _later(0.3, lambda: store.complete(job_id, []))
    elapsed, phase, _ = _timed_get(client, alice, url)
    assert phase == "COMPLETED"
    assert elapsed < 5.0


def test_concurrent_waits_are_all_woken(app: Flask, alice: Account) -> None:
    """Several clients blocked on the same job all return when its phase changes."""
    client = app.test_client()
    job_id = create_job(client, alice)
    results: list[tuple[float, str, int]] = []
    lock = threading.Lock()

    def waiter() -> None:
        outcome = _timed_get(app.test_client(), alice, f"{LIST}/{job_id}?WAIT=30")
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    store_of(app).queue(job_id)
    for t in threads:
        t.join(10)
    assert len(results) == 4
    assert all(phase == "QUEUED" and status == 200 for _, phase, status in results)
    assert all(elapsed < 5.0 for elapsed, _, _ in results)


def test_wait_minus_one_is_capped_by_wait_max(tmp_path: Path) -> None:
    """Section 2.2.1.2: "WAIT=-1 should be interpreted as block indefinitely", but "the UWS
    server may impose a maximum blocking time": with wait_max=1 it returns after ~1 s; a
    WAIT larger than the cap is capped too."""
    from uws_service.app import create_app
    from uws_service.migrations import upgrade

    config = make_config(tmp_path / "capped", wait_max=1.0)
    config.home.mkdir(parents=True, exist_ok=True)
    upgrade(config.database_url)
    app = create_app(config)
    users = app.extensions["vocloud"].users
    users.create_user("carol", "long enough password")
    carol = Account("carol", users.create_token("carol"))
    client = app.test_client()
    job_id = create_job(client, carol)
    for wait in ("-1", "600"):
        elapsed, phase, status = _timed_get(client, carol, f"{LIST}/{job_id}?WAIT={wait}")
        assert status == 200
        assert phase == "PENDING"
        assert 0.9 <= elapsed < 3.0, wait


def test_bad_wait_is_400(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.1.2: WAIT "must be assigned an integer value" (-1 or more): abc, -5 and
    1.5 are a 400 with a plain-text reason."""
    job_id = create_job(client, alice)
    for value in ("abc", "-5", "1.5", ""):
        r = client.get(f"{LIST}/{job_id}?WAIT={value}", headers=alice.headers)
        assert r.status_code == 400, value
        assert r.mimetype == "text/plain"
        assert "WAIT" in r.get_data(as_text=True)


def test_wait_zero_returns_at_once(client: FlaskClient, alice: Account) -> None:
    """WAIT=0 is a maximum blocking time of zero seconds: an ordinary GET."""
    job_id = create_job(client, alice)
    elapsed, phase, _ = _timed_get(client, alice, f"{LIST}/{job_id}?WAIT=0")
    assert phase == "PENDING"
    assert elapsed < 1.0


def test_wait_on_unseen_job_is_404(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """A WAIT on another user's job does not block and tells nothing: 404 at once."""
    job_id = create_job(client, accounts["alice"])
    elapsed, _, status = _timed_get(client, accounts["bob"], f"{LIST}/{job_id}?WAIT=30")
    assert status == 404
    assert elapsed < 1.0
