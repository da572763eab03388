"""The UWS 1.1 job list ``GET /uws/{jobtype}`` and its filters (section 2.2.2.1, "Job List").

One test per clause of the standard; each docstring quotes or names the
clause.  Phases a worker would reach are set through the real job store.
"""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import Account
from tests.uws.conftest import LIST, NS, PUBLIC, complete, create_job, store_of


def _list(client: FlaskClient, account: Account, query: str = "") -> list[str]:
    """Job ids of the job list, in document order."""
    r = client.get(f"{LIST}{query}", headers=account.headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = etree.fromstring(r.data)
    return [ref.get("id") or "" for ref in doc.findall("uws:jobref", NS)]


def _creation_time(client: FlaskClient, account: Account, job_id: str) -> str:
    r = client.get(f"{LIST}/{job_id}", headers=account.headers)
    return etree.fromstring(r.data).findtext("uws:creationTime", namespaces=NS) or ""


def _jobs(client: FlaskClient, account: Account, count: int) -> list[str]:
    """``count`` jobs created in order, a few milliseconds apart."""
    ids = []
    for _ in range(count):
        ids.append(create_job(client, account))
        time.sleep(0.005)
    return ids


def test_list_shows_jobrefs(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: the job list is a list of ShortJobDescription: a jobref with id and
    xlink:href to the job, and phase, runId, ownerId, creationTime."""
    job_id = create_job(client, alice, {"RUNID": "r1"})
    r = client.get(LIST, headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "application/xml"
    doc = etree.fromstring(r.data)
    assert doc.get("version") == "1.1"
    (ref,) = doc.findall("uws:jobref", NS)
    assert ref.get("id") == job_id
    assert ref.get(f"{{{NS['xlink']}}}href") == f"{PUBLIC}{LIST}/{job_id}"
    assert ref.findtext("uws:phase", namespaces=NS) == "PENDING"
    assert ref.findtext("uws:runId", namespaces=NS) == "r1"
    assert ref.findtext("uws:ownerId", namespaces=NS) == "alice"
    assert ref.findtext("uws:creationTime", namespaces=NS)


def test_empty_list(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: "a list (which may be empty)": no jobs give a valid empty list."""
    assert _list(client, alice) == []


def test_phase_filter(app: Flask, client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: "/{jobs}?PHASE=EXECUTING would list only the jobs in an EXECUTING
    state"."""
    pending, queued, done = _jobs(client, alice, 3)
    store_of(app).queue(queued)
    complete(app, done)
    assert _list(client, alice, "?PHASE=QUEUED") == [queued]
    assert _list(client, alice, "?PHASE=PENDING") == [pending]
    assert _list(client, alice, "?PHASE=COMPLETED") == [done]
    assert _list(client, alice, "?PHASE=EXECUTING") == []


def test_phase_filter_repeated_is_union(app: Flask, client: FlaskClient,
                                        alice: Account) -> None:
    """Section 2.2.2.1: "If the PHASE filtering parameter is repeated, then the service should
    list all the jobs in the union of the repeated PHASEs"."""
    pending, queued, done = _jobs(client, alice, 3)
    store_of(app).queue(queued)
    complete(app, done)
    assert sorted(_list(client, alice, "?PHASE=PENDING&PHASE=COMPLETED")) == sorted(
        [pending, done])
    assert sorted(_list(client, alice, "?PHASE=PENDING&PHASE=QUEUED&PHASE=COMPLETED")) == sorted(
        [pending, queued, done])


def test_after_filter(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1 (REC: on creationTime): "/{jobs}?AFTER=2014-09-10T10:01:02.000 The server
    should only list jobs with [creation]Times after the given [std:iso8601] time in UTC"."""
    first = create_job(client, alice)
    time.sleep(0.02)
    middle = time.time()
    time.sleep(0.02)
    second = create_job(client, alice)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + (
        f".{int(middle * 1000) % 1000:03d}")
    assert _list(client, alice, f"?AFTER={stamp}") == [second]
    assert _list(client, alice, f"?AFTER={stamp}Z") == [second]
    assert _list(client, alice, "?AFTER=2000-01-01T00:00:00Z") == [first, second]
    assert _list(client, alice, "?AFTER=2999-01-01T00:00:00Z") == []


def test_after_a_listed_creation_time_excludes_that_job(client: FlaskClient,
                                                       alice: Account) -> None:
    """Section 2.2.2.1: AFTER keeps jobs created *after* the time; a client that passes the
    creationTime it was shown for a job (milliseconds) must not get that job back."""
    first, second = _jobs(client, alice, 2)
    shown = _creation_time(client, alice, first)
    assert first not in _list(client, alice, f"?AFTER={shown}")
    assert second in _list(client, alice, f"?AFTER={shown}")


def test_last_filter(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: "/{jobs}?LAST=100 The server should list only the given number (an
    integer greater than 0) of most recent jobs ordered by descending creationTimes"."""
    ids = _jobs(client, alice, 4)
    assert _list(client, alice, "?LAST=2") == [ids[3], ids[2]]
    assert _list(client, alice, "?LAST=1") == [ids[3]]
    assert _list(client, alice, "?LAST=10") == list(reversed(ids))


def test_filters_are_anded(app: Flask, client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: "If multiple filters are specified by the client, then the server
    should return a jobs list which is the result of a logical AND of the various filter
    conditions"."""
    a, b, c, d, e = _jobs(client, alice, 5)
    for job_id in (a, c, e):
        store_of(app).queue(job_id)
    after_a = _creation_time(client, alice, a)
    # PHASE and LAST: the newest two QUEUED jobs, not the newest two jobs.
    assert _list(client, alice, "?PHASE=QUEUED&LAST=2") == [e, c]
    # PHASE and AFTER.
    assert _list(client, alice, f"?PHASE=QUEUED&AFTER={after_a}") == [c, e]
    # All three.
    assert _list(client, alice, f"?PHASE=PENDING&AFTER={after_a}&LAST=1") == [d]
    assert b in _list(client, alice, "?PHASE=PENDING")


def test_archived_only_when_asked(app: Flask, client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: the list holds all jobs "except for jobs in the ARCHIVED phase"; "The
    only way to list any jobs in the ARCHIVED phase is to use this mechanism" (PHASE)."""
    kept, archived = _jobs(client, alice, 2)
    complete(app, archived)
    assert store_of(app).transition(archived, "archive")
    assert _list(client, alice) == [kept]
    assert archived not in _list(client, alice, "?LAST=10")
    assert _list(client, alice, "?PHASE=ARCHIVED") == [archived]
    assert sorted(_list(client, alice, "?PHASE=ARCHIVED&PHASE=PENDING")) == sorted(
        [kept, archived])
    # The archived job's metadata is still readable.
    r = client.get(f"{LIST}/{archived}/phase", headers=alice.headers)
    assert r.get_data(as_text=True) == "ARCHIVED"


def test_phase_filter_is_case_insensitive(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1 with DALI 3.1 parameter rules: ``phase=pending`` filters like PHASE."""
    job_id = create_job(client, alice)
    assert _list(client, alice, "?phase=pending") == [job_id]


def test_bad_last_is_400(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: LAST is "an integer greater than 0"; 0, -1 and abc are a 400."""
    create_job(client, alice)
    for value in ("0", "-1", "abc", "1.5"):
        r = client.get(f"{LIST}?LAST={value}", headers=alice.headers)
        assert r.status_code == 400, value
        assert r.mimetype == "text/plain"
        assert "LAST" in r.get_data(as_text=True)


def test_bad_phase_is_400(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: PHASE names an execution phase (2.1.3); anything else is a 400."""
    r = client.get(f"{LIST}?PHASE=RUNNING", headers=alice.headers)
    assert r.status_code == 400
    assert "RUNNING" in r.get_data(as_text=True)


def test_bad_after_is_400(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: AFTER is an [std:iso8601] time; anything else is a 400."""
    for value in ("yesterday", "2026-02-30T00:00:00", ""):
        r = client.get(f"{LIST}?AFTER={value}", headers=alice.headers)
        assert r.status_code == 400, value


def test_users_see_only_their_own_jobs(client: FlaskClient,
                                       accounts: dict[str, Account]) -> None:
    """Section 2.2.2.1: the list shows the jobs "that the client can see in the current
    security context (see section 3)": alice and bob each see only their own."""
    alice, bob = accounts["alice"], accounts["bob"]
    a = create_job(client, alice)
    b = create_job(client, bob)
    assert _list(client, alice) == [a]
    assert _list(client, bob) == [b]


def test_admin_sees_all_jobs(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """Section 3: an admin's security context includes everyone's jobs, with their owners."""
    a = create_job(client, accounts["alice"])
    b = create_job(client, accounts["bob"])
    r = client.get(LIST, headers=accounts["root"].headers)
    doc = etree.fromstring(r.data)
    owners = {ref.get("id"): ref.findtext("uws:ownerId", namespaces=NS)
              for ref in doc.findall("uws:jobref", NS)}
    assert owners == {a: "alice", b: "bob"}


def test_list_is_per_job_type(client: FlaskClient, alice: Account) -> None:
    """Each /uws/{jobtype} is its own job list: a selftest job is not reachable under an
    unknown job type's list."""
    job_id = create_job(client, alice)
    assert client.get(f"/uws/other/{job_id}", headers=alice.headers).status_code == 404


def test_huge_last_lists_everything(client: FlaskClient, alice: Account) -> None:
    """Section 2.2.2.1: LAST is any integer greater than 0; one beyond the database's integer
    range lists every job, newest first (it was a 500)."""
    ids = _jobs(client, alice, 2)
    assert _list(client, alice, "?LAST=99999999999999999999") == list(reversed(ids))
