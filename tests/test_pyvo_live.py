"""pyvo as a client of a running ``vocloud serve`` (embedded mode, its own Celery workers).

pyvo's UWS parser and its generic job object (``AsyncTAPJob``: phase, wait,
raise_if_error, results, delete) work on any UWS 1.1 job, not only TAP
ones.  Jobs here last at most one second.
"""

from __future__ import annotations

import io

import pytest
import requests
from pyvo.dal import AsyncTAPJob, DALQueryError
from pyvo.io.uws import parse_job

from tests.conftest import PASSWORD, LiveService

pytestmark = pytest.mark.live


def _session(live: LiveService, name: str = "alice") -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {live.accounts[name].token}"
    return session


def _submit(session: requests.Session, live: LiveService, data: dict[str, str]) -> str:
    r = session.post(f"{live.url}/uws/selftest", data={"PHASE": "RUN", **data},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    location = r.headers["Location"]
    assert location.startswith(f"{live.url}/uws/selftest/")
    return str(location)


def _wait_final(session: requests.Session, job_url: str) -> bytes:
    """GET ?WAIT=-1 until the job is in a final phase; the last job document."""
    for _ in range(20):
        r = session.get(job_url, params={"WAIT": "-1"}, timeout=60)
        assert r.status_code == 200
        if parse_job(io.BytesIO(r.content)).phase in ("COMPLETED", "ERROR", "ABORTED"):
            return r.content
    raise AssertionError(f"{job_url} did not finish")


def test_parse_job_after_wait(live: LiveService) -> None:
    """POST with PHASE=RUN, block with WAIT=-1, and pyvo.io.uws.parse_job reads the finished
    job: COMPLETED, owner alice, the parameters posted and a result whose href serves the
    report."""
    session = _session(live)
    job_url = _submit(session, live, {"duration": "0.2", "message": "from pyvo"})
    job = parse_job(io.BytesIO(_wait_final(session, job_url)))
    assert job.phase == "COMPLETED"
    assert job.ownerid == "alice"
    assert job.jobid == job_url.rsplit("/", 1)[1]
    assert {p.id_: p.content for p in job.parameters} == {"duration": "0.2",
                                                         "message": "from pyvo"}
    (result,) = job.results
    assert result.href == f"{job_url}/results/report"
    report = session.get(result.href, timeout=10).json()
    assert report["message"] == "from pyvo"
    assert report["owner"] == "alice"


def test_async_job_object(live: LiveService) -> None:
    """pyvo.dal.AsyncTAPJob on a selftest job URL with a Bearer session: .phase, .wait(),
    .raise_if_error() (no error), .result_uris and .results, .owner, and delete on exit
    (the job is gone afterwards)."""
    session = _session(live)
    job_url = _submit(session, live, {"duration": "0.5", "steps": "2"})
    with AsyncTAPJob(job_url, session=session) as job:
        assert job.phase in ("QUEUED", "EXECUTING", "COMPLETED")
        assert job.uws_version == "1.1"
        job.wait(timeout=60)
        assert job.phase == "COMPLETED"
        job.raise_if_error()
        assert job.result_uris == [f"{job_url}/results/report"]
        assert [r.id_ for r in job.results] == ["report"]
        assert job.owner == "alice"
        assert session.get(job.result_uris[0], timeout=10).json()["steps"] == 2
    assert session.get(job_url, timeout=10).status_code == 404


def test_async_job_sees_error(live: LiveService) -> None:
    """A job that fails (fail=fatal) ends in ERROR; pyvo's wait() returns, raise_if_error()
    raises DALQueryError with the job's message, and /error has the message."""
    session = _session(live)
    job_url = _submit(session, live, {"duration": "0", "fail": "fatal",
                                      "message": "the spectra were all NaN"})
    job = AsyncTAPJob(job_url, session=session, delete=False)
    job.wait(timeout=60)
    assert job.phase == "ERROR"
    with pytest.raises(DALQueryError, match="the spectra were all NaN"):
        job.raise_if_error()
    summary = job.job.errorsummary
    assert summary is not None and summary.type_ == "fatal"
    error = session.get(f"{job_url}/error", timeout=10)
    assert error.status_code == 200
    assert "the spectra were all NaN" in error.text


def test_pyvo_with_basic_auth_and_abort(live: LiveService) -> None:
    """pyvo with HTTP Basic (name + password) drives a PENDING job: run() then abort() end
    in ABORTED at once (the phase change is synchronous), which raise_if_error() reports.
    (pyvo's wait() refuses to wait on an ABORTED job by design, so it is not called.)"""
    session = requests.Session()
    session.auth = ("bob", PASSWORD)
    r = session.post(f"{live.url}/uws/selftest", data={"duration": "30"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 303
    job = AsyncTAPJob(r.headers["Location"], session=session, delete=False)
    assert job.phase == "PENDING"
    job.run()
    assert job.phase in ("QUEUED", "EXECUTING")
    job.abort()
    assert job.phase == "ABORTED"
    with pytest.raises(DALQueryError, match="abort"):
        job.raise_if_error()
    job.delete()
