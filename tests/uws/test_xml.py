"""UWS documents: schema validity, version, nil elements, time format, JSON negotiation, pyvo.

Every document the job service writes validates against the UWS 1.1 schema
(``tests/xsd/UWS.xsd``) in every phase, and pyvo's own parsers read the job
and job-list documents back with the values the service holds.
"""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from pyvo.io.uws import parse_job, parse_job_list

from tests.conftest import Account, assert_valid
from tests.uws.conftest import (
    LIST,
    NS,
    PUBLIC,
    XSI_NS,
    complete,
    create_job,
    fail,
    start,
    store_of,
)

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NIL = f"{{{XSI_NS}}}nil"


def _job_in_phase(app: Flask, client: FlaskClient, account: Account, phase: str) -> str:
    """A job brought to ``phase`` the way the service and its workers would."""
    job_id = create_job(client, account, [("duration", "1"), ("message", "m"),
                                          ("values", "1"), ("values", "2")])
    store = store_of(app)
    if phase == "QUEUED":
        store.queue(job_id)
    elif phase == "HELD":
        assert store.transition(job_id, "hold")
    elif phase == "EXECUTING":
        start(app, job_id)
        store.set_progress(job_id, 0.5, "half way")
    elif phase == "COMPLETED":
        complete(app, job_id)
    elif phase == "ERROR":
        fail(app, job_id, "it broke", "Traceback (most recent call last): ...")
    elif phase == "ABORTED":
        r = client.post(f"{LIST}/{job_id}/phase", headers=account.headers,
                        data={"PHASE": "ABORT"})
        assert r.status_code == 303
    elif phase == "ARCHIVED":
        complete(app, job_id)
        assert store.transition(job_id, "archive")
    return job_id


PHASES = ["PENDING", "QUEUED", "HELD", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "ARCHIVED"]


@pytest.mark.parametrize("phase", PHASES)
def test_job_document_is_valid_in_every_phase(app: Flask, client: FlaskClient,
                                              alice: Account, phase: str) -> None:
    """The uws:job document validates against UWS.xsd in every phase, carries version="1.1"
    (section 2.2.1.1) and shows the phase."""
    job_id = _job_in_phase(app, client, alice, phase)
    r = client.get(f"{LIST}/{job_id}", headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "application/xml"
    doc = assert_valid(r.data, "UWS.xsd")
    assert doc.get("version") == "1.1"
    assert doc.findtext("uws:phase", namespaces=NS) == phase


def test_nil_elements_of_a_pending_job(client: FlaskClient, alice: Account) -> None:
    """Required but empty elements are present with xsi:nil="true" (UWS.xsd: startTime,
    endTime are minOccurs=1 nillable), and an empty <uws:results/> is present."""
    job_id = create_job(client, alice)
    doc = assert_valid(client.get(f"{LIST}/{job_id}", headers=alice.headers).data, "UWS.xsd")
    for name in ("startTime", "endTime", "quote"):
        element = doc.find(f"uws:{name}", NS)
        assert element is not None, name
        assert element.get(NIL) == "true", name
        assert not element.text
    results = doc.find("uws:results", NS)
    assert results is not None
    assert len(results) == 0
    assert doc.find("uws:errorSummary", NS) is None
    # ownerId and destruction are set for an authenticated job with a lifetime.
    assert doc.findtext("uws:ownerId", namespaces=NS) == "alice"
    assert doc.find("uws:ownerId", NS).get(NIL) is None  # type: ignore[union-attr]
    assert TIME_RE.match(doc.findtext("uws:destruction", namespaces=NS) or "")


def test_element_order_follows_the_schema(app: Flask, client: FlaskClient,
                                          alice: Account) -> None:
    """The uws:job children come in the JobSummary sequence of UWS.xsd (section 7 of the
    notes): jobId, runId, ownerId, phase, quote, creationTime, startTime, endTime,
    executionDuration, destruction, parameters, results, errorSummary, jobInfo."""
    job_id = create_job(client, alice, {"RUNID": "x"})
    fail(app, job_id)
    doc = etree.fromstring(client.get(f"{LIST}/{job_id}", headers=alice.headers).data)
    names = [etree.QName(child).localname for child in doc]
    assert names == ["jobId", "runId", "ownerId", "phase", "quote", "creationTime",
                     "startTime", "endTime", "executionDuration", "destruction",
                     "parameters", "results", "errorSummary", "jobInfo"]


def test_times_are_utc_with_milliseconds(app: Flask, client: FlaskClient,
                                         alice: Account) -> None:
    """Every time in the job document and the job list reads YYYY-MM-DDThh:mm:ss.sssZ
    (DESIGN: pyvo rejects +00:00)."""
    job_id = create_job(client, alice, {"duration": "5", "PHASE": "RUN"})
    store_of(app).start(job_id, "h", 1)
    store_of(app).complete(job_id, [])
    doc = etree.fromstring(client.get(f"{LIST}/{job_id}", headers=alice.headers).data)
    for name in ("quote", "creationTime", "startTime", "endTime", "destruction"):
        assert TIME_RE.match(doc.findtext(f"uws:{name}", namespaces=NS) or ""), name
    listing = etree.fromstring(client.get(LIST, headers=alice.headers).data)
    text = listing.findtext("uws:jobref/uws:creationTime", namespaces=NS) or ""
    assert TIME_RE.match(text)


def test_early_destruction_is_a_valid_datetime(client: FlaskClient, alice: Account) -> None:
    """A destruction time before the year 1000 is still written as an xs:dateTime with a
    four-digit year ("0999-...", not "999-...") and the job document stays valid."""
    job_id = create_job(client, alice)
    r = client.post(f"{LIST}/{job_id}/destruction", headers=alice.headers,
                    data={"DESTRUCTION": "0999-01-02T03:04:05Z"})
    assert r.status_code == 303
    text = client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers)
    assert text.get_data(as_text=True) == "0999-01-02T03:04:05.000Z"
    doc = assert_valid(client.get(f"{LIST}/{job_id}", headers=alice.headers).data, "UWS.xsd")
    assert doc.findtext("uws:destruction", namespaces=NS) == "0999-01-02T03:04:05.000Z"


def test_error_summary(app: Flask, client: FlaskClient, alice: Account) -> None:
    """In ERROR the job has <uws:errorSummary type=... hasDetail="true"> with the message
    (section 2.2.2.5); the document stays valid."""
    job_id = create_job(client, alice)
    start(app, job_id)
    store_of(app).fail(job_id, "out of <memory> & time", detail="trace", error_type="transient")
    doc = assert_valid(client.get(f"{LIST}/{job_id}", headers=alice.headers).data, "UWS.xsd")
    summary = doc.find("uws:errorSummary", NS)
    assert summary is not None
    assert summary.get("type") == "transient"
    assert summary.get("hasDetail") == "true"
    assert summary.findtext("uws:message", namespaces=NS) == "out of <memory> & time"


def test_aborted_job_says_why(client: FlaskClient, alice: Account) -> None:
    """An ABORTED job has an endTime and an errorSummary saying it was aborted, with no
    detail resource (hasDetail="false")."""
    job_id = create_job(client, alice)
    client.post(f"{LIST}/{job_id}/phase", headers=alice.headers, data={"PHASE": "ABORT"})
    doc = assert_valid(client.get(f"{LIST}/{job_id}", headers=alice.headers).data, "UWS.xsd")
    assert TIME_RE.match(doc.findtext("uws:endTime", namespaces=NS) or "")
    summary = doc.find("uws:errorSummary", NS)
    assert summary is not None
    assert summary.get("hasDetail") == "false"
    assert "abort" in (summary.findtext("uws:message", namespaces=NS) or "").lower()


def test_job_list_document_is_valid(app: Flask, client: FlaskClient,
                                    accounts: dict[str, Account]) -> None:
    """The uws:jobs document validates, has version="1.1", and its jobrefs carry phase,
    runId, ownerId and creationTime (section 2.2.2.1), for an empty and a full list."""
    alice = accounts["alice"]
    empty = assert_valid(client.get(LIST, headers=alice.headers).data, "UWS.xsd")
    assert empty.get("version") == "1.1"
    assert len(empty) == 0
    for phase in ("PENDING", "ERROR", "COMPLETED"):
        _job_in_phase(app, client, alice, phase)
    create_job(client, accounts["bob"], {"RUNID": "bobs"})
    for account in (alice, accounts["root"]):
        doc = assert_valid(client.get(LIST, headers=account.headers).data, "UWS.xsd")
        assert doc.get("version") == "1.1"
        assert len(doc.findall("uws:jobref", NS)) == (3 if account is alice else 4)


def test_results_document_is_valid(app: Flask, client: FlaskClient, alice: Account) -> None:
    """/results validates as uws:results, empty or not (section 2.2.2.3)."""
    job_id = create_job(client, alice)
    empty = assert_valid(client.get(f"{LIST}/{job_id}/results", headers=alice.headers).data,
                         "UWS.xsd")
    assert len(empty) == 0
    complete(app, job_id, {"a": b"1", "b": b"22"})
    doc = assert_valid(client.get(f"{LIST}/{job_id}/results", headers=alice.headers).data,
                       "UWS.xsd")
    assert [r.get("id") for r in doc] == ["a", "b"]
    assert [r.get("size") for r in doc] == ["1", "2"]


def test_parameters_document_is_valid(client: FlaskClient, alice: Account) -> None:
    """/parameters validates as uws:parameters, including a by-reference upload."""
    r = client.post(LIST, headers=alice.headers, content_type="multipart/form-data",
                    data={"message": "x", "values": (io.BytesIO(b"1\n2\n"), "v.txt")})
    job_id = r.headers["Location"].rsplit("/", 1)[1]
    doc = assert_valid(client.get(f"{LIST}/{job_id}/parameters", headers=alice.headers).data,
                       "UWS.xsd")
    by_ref = {p.get("id"): p.get("byReference") for p in doc}
    assert by_ref == {"message": None, "values": "true"}


# Content negotiation ----------------------------------------------------------------


def test_json_when_asked(app: Flask, client: FlaskClient, alice: Account) -> None:
    """``Accept: application/json`` gives JSON for the job, the list, results and parameters,
    with the same values as the XML (nil as null)."""
    job_id = create_job(client, alice, {"RUNID": "j", "duration": "2"})
    complete(app, job_id)
    headers = {**alice.headers, "Accept": "application/json"}
    job = client.get(f"{LIST}/{job_id}", headers=headers)
    assert job.mimetype == "application/json"
    body = job.get_json()
    assert body["version"] == "1.1"
    assert body["jobId"] == job_id
    assert body["phase"] == "COMPLETED"
    assert body["runId"] == "j"
    assert body["ownerId"] == "alice"
    assert body["errorSummary"] is None
    assert TIME_RE.match(body["creationTime"])
    assert body["parameters"] == [{"id": "duration", "value": "2", "byReference": False,
                                   "isPost": True}]
    assert body["results"][0]["href"] == f"{PUBLIC}{LIST}/{job_id}/results/report"
    listing = client.get(LIST, headers=headers).get_json()
    assert [j["id"] for j in listing["jobs"]] == [job_id]
    results = client.get(f"{LIST}/{job_id}/results", headers=headers).get_json()
    assert [r["id"] for r in results["results"]] == ["report"]
    params = client.get(f"{LIST}/{job_id}/parameters", headers=headers).get_json()
    assert params["parameters"][0]["id"] == "duration"


@pytest.mark.parametrize("accept", ["*/*", "application/xml",
                                    "application/json;q=0.5, application/xml", "text/xml",
                                    "application/json;q=0.9, */*"])
def test_xml_unless_json_is_preferred(client: FlaskClient, alice: Account,
                                      accept: str) -> None:
    """XML whenever the client does not list application/json with a q no lower than XML's
    (DESIGN: protocol clients send */* or XML types)."""
    job_id = create_job(client, alice)
    for url in (f"{LIST}/{job_id}", LIST):
        r = client.get(url, headers={**alice.headers, "Accept": accept})
        assert r.mimetype == "application/xml", (url, accept)
        assert_valid(r.data, "UWS.xsd")


def test_xml_without_accept(client: FlaskClient, alice: Account) -> None:
    """No Accept header at all: XML."""
    job_id = create_job(client, alice)
    r = client.get(f"{LIST}/{job_id}", headers=alice.headers)
    assert "Accept" not in alice.headers
    assert r.mimetype == "application/xml"


# pyvo reads the documents ------------------------------------------------------------


def test_pyvo_parses_job(app: Flask, client: FlaskClient, alice: Account) -> None:
    """pyvo.io.uws.parse_job reads a COMPLETED job: jobId, phase, ownerId, runId, results
    hrefs, parameters and times match what the service holds."""
    job_id = create_job(client, alice, [("RUNID", "pyvo-run"), ("duration", "3"),
                                        ("values", "1"), ("values", "2")])
    complete(app, job_id, {"report": b"{}", "plot": b"png?"})
    job = parse_job(io.BytesIO(client.get(f"{LIST}/{job_id}", headers=alice.headers).data))
    assert job.jobid == job_id
    assert job.phase == "COMPLETED"
    assert job.ownerid == "alice"
    assert job.runid == "pyvo-run"
    assert job.version == "1.1"
    assert [r.href for r in job.results] == [f"{PUBLIC}{LIST}/{job_id}/results/report",
                                             f"{PUBLIC}{LIST}/{job_id}/results/plot"]
    assert [r.id_ for r in job.results] == ["report", "plot"]
    assert [(p.id_, p.content) for p in job.parameters] == [
        ("duration", "3"), ("values", "1"), ("values", "2")]
    assert job.creationtime is not None
    assert job.starttime is not None and job.endtime is not None
    assert job.endtime >= job.starttime
    assert job.executionduration.sec == app.extensions["vocloud"].config \
        .execution_duration_default
    assert job.destruction is not None
    assert job.errorsummary is None


def test_pyvo_parses_pending_job_with_nils(client: FlaskClient, alice: Account) -> None:
    """pyvo reads a PENDING job whose startTime, endTime and quote are xsi:nil as None."""
    job_id = create_job(client, alice)
    job = parse_job(io.BytesIO(client.get(f"{LIST}/{job_id}", headers=alice.headers).data))
    assert job.phase == "PENDING"
    assert job.starttime is None
    assert job.endtime is None
    assert job.quote is None
    assert list(job.results) == []


def test_pyvo_parses_error_job(app: Flask, client: FlaskClient, alice: Account) -> None:
    """pyvo reads the errorSummary of a job in ERROR: type, hasDetail and the message."""
    job_id = create_job(client, alice)
    fail(app, job_id, "bad spectra")
    job = parse_job(io.BytesIO(client.get(f"{LIST}/{job_id}", headers=alice.headers).data))
    assert job.phase == "ERROR"
    assert job.errorsummary is not None
    assert job.errorsummary.type_ == "fatal"
    assert job.errorsummary.has_detail is True
    assert job.errorsummary.message.content == "bad spectra"


def test_pyvo_parses_by_reference_parameter(client: FlaskClient, alice: Account) -> None:
    """pyvo sees an uploaded parameter as byReference with its URL as the content."""
    r = client.post(LIST, headers=alice.headers, content_type="multipart/form-data",
                    data={"values": (io.BytesIO(b"1\n"), "v.txt")})
    job_id = r.headers["Location"].rsplit("/", 1)[1]
    job = parse_job(io.BytesIO(client.get(f"{LIST}/{job_id}", headers=alice.headers).data))
    (param,) = job.parameters
    assert param.id_ == "values"
    assert param.byreference is True
    assert param.content == f"{PUBLIC}{LIST}/{job_id}/parameters/values"


def test_pyvo_parses_job_list(app: Flask, client: FlaskClient,
                              accounts: dict[str, Account]) -> None:
    """pyvo.io.uws.parse_job_list reads the list: ids, hrefs, phases, owners, runIds."""
    alice = accounts["alice"]
    pending = create_job(client, alice, {"RUNID": "p"})
    done = create_job(client, alice)
    complete(app, done)
    other = create_job(client, accounts["bob"])
    jobs = parse_job_list(io.BytesIO(client.get(LIST, headers=accounts["root"].headers).data))
    seen = {j.jobid: j for j in jobs}
    assert set(seen) == {pending, done, other}
    assert seen[pending].phase == "PENDING"
    assert seen[pending].runid == "p"
    assert seen[done].phase == "COMPLETED"
    assert seen[other].ownerid == "bob"
    assert seen[done].creationtime is not None
