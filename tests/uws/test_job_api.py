"""The UWS 1.1 REST binding of ``/uws/{jobtype}``: every endpoint and child resource of a job.

Runs against the in-process application on a real SQLite database; phases
that only a worker reaches are set through the real job store.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import Account
from tests.uws.conftest import (
    LIST,
    NS,
    PUBLIC,
    complete,
    create_job,
    fail,
    job_xml,
    phase_of,
    start,
    store_of,
)
from vo.timefmt import parse_time

ROOT = Path(__file__).resolve().parents[2]


def _config(app: Flask) -> Any:
    return app.extensions["vocloud"].config


def _params(client: FlaskClient, account: Account, job_id: str) -> list[tuple[str, str, bool]]:
    """The job's parameters as (id, value, byReference) from ``/parameters``."""
    r = client.get(f"{LIST}/{job_id}/parameters", headers=account.headers)
    assert r.status_code == 200
    doc = etree.fromstring(r.data)
    return [(p.get("id"), p.text or "", p.get("byReference") == "true")
            for p in doc.findall("uws:parameter", NS)]


# Creation (section 2.2.3.1) --------------------------------------------------------


def test_create_redirects_to_absolute_job_url(client: FlaskClient, alice: Account) -> None:
    """POST /{jobs} answers 303 with Location = VOCLOUD_PUBLIC_URL + /uws/selftest/{id}, and
    the new job is PENDING (UWS 1.1 sections 2.2.3.1 and 2.1.3)."""
    r = client.post(LIST, headers=alice.headers, data={"duration": "1"})
    assert r.status_code == 303
    location = r.headers["Location"]
    assert location.startswith("http://testserver/uws/selftest/")
    job_id = location.rsplit("/", 1)[1]
    assert job_id
    assert phase_of(client, alice, job_id) == "PENDING"
    assert r.get_data() == b""


def test_create_with_phase_run_queues_the_job(client: FlaskClient, alice: Account) -> None:
    """PHASE=RUN in the creation POST (body or query) puts the job straight into QUEUED
    (UWS 1.1 section 2.2.3.1: "?PHASE=RUN query part to the job creation URL")."""
    in_body = create_job(client, alice, {"PHASE": "RUN", "duration": "0"})
    in_query = create_job(client, alice, {"duration": "0"}, query="?PHASE=RUN")
    assert phase_of(client, alice, in_body) == "QUEUED"
    assert phase_of(client, alice, in_query) == "QUEUED"


def test_create_rejects_other_phase(client: FlaskClient, alice: Account) -> None:
    """Only PHASE=RUN may be given at creation; PHASE=ABORT is a 400 and creates no job."""
    r = client.post(LIST, headers=alice.headers, data={"PHASE": "ABORT"})
    assert r.status_code == 400
    listing = client.get(LIST, headers=alice.headers)
    assert b"jobref" not in listing.data


def test_runid_is_echoed(client: FlaskClient, alice: Account) -> None:
    """RUNID given at creation comes back unchanged in runId (UWS 1.1 section 2.1.9)."""
    job_id = create_job(client, alice, {"RUNID": "My run #1 / é", "duration": "0"})
    doc = job_xml(client, alice, job_id)
    assert doc.findtext("uws:runId", namespaces=NS) == "My run #1 / é"
    # RUNID is a control parameter, not a job parameter.
    assert all(p[0] != "runid" for p in _params(client, alice, job_id))


def test_overlong_runid_is_400(client: FlaskClient, alice: Account) -> None:
    """A RUNID longer than the 255 characters the database keeps is a 400 at creation and on
    a POST to the job (it was a 500 on PostgreSQL); 255 characters are fine."""
    r = client.post(LIST, headers=alice.headers, data={"RUNID": "x" * 256})
    assert r.status_code == 400
    assert "RUNID" in r.get_data(as_text=True)
    job_id = create_job(client, alice, {"RUNID": "y" * 255})
    r = client.post(f"{LIST}/{job_id}", headers=alice.headers, data={"RUNID": "z" * 300})
    assert r.status_code == 400
    assert job_xml(client, alice, job_id).findtext("uws:runId", namespaces=NS) == "y" * 255


def test_parameter_names_are_case_insensitive(client: FlaskClient, alice: Account) -> None:
    """Parameter names are matched case-insensitively (DALI 3.1), PHASE values too:
    ``Duration`` becomes ``duration`` and ``phase=run`` queues the job."""
    job_id = create_job(client, alice, {"Duration": "0.5", "STEPS": "3", "phase": "run"})
    assert phase_of(client, alice, job_id) == "QUEUED"
    assert set(_params(client, alice, job_id)) == {("duration", "0.5", False),
                                                     ("steps", "3", False)}


def test_unknown_job_type_is_404(client: FlaskClient, alice: Account) -> None:
    """A job list of an unknown job type does not exist: GET and POST give 404."""
    assert client.get("/uws/nosuchtype", headers=alice.headers).status_code == 404
    r = client.post("/uws/nosuchtype", headers=alice.headers, data={"duration": "1"})
    assert r.status_code == 404
    assert "nosuchtype" in r.get_data(as_text=True)


def test_unknown_parameter_is_400_with_clear_message(client: FlaskClient,
                                                     alice: Account) -> None:
    """An undeclared parameter is rejected with 400 naming it and the accepted names."""
    r = client.post(LIST, headers=alice.headers, data={"durashun": "1"})
    assert r.status_code == 400
    text = r.get_data(as_text=True)
    assert r.mimetype == "text/plain"
    assert "durashun" in text
    assert "duration" in text  # the message lists what is accepted


def test_invalid_values_are_400(client: FlaskClient, alice: Account) -> None:
    """Values that the schema refuses (negative duration, non-integer steps, a fail value
    outside the enum) are a 400 with the parameter's name in the message."""
    for data, name in (({"duration": "-1"}, "duration"), ({"steps": "abc"}, "steps"),
                       ({"fail": "sometimes"}, "fail"), ({"steps": "1.5"}, "steps")):
        r = client.post(LIST, headers=alice.headers, data=data)
        assert r.status_code == 400, data
        assert name in r.get_data(as_text=True)


def test_from_job_copies_parameters(client: FlaskClient, alice: Account) -> None:
    """``from_job=ID`` copies that job's parameters, overridden by the POST's own."""
    source = create_job(client, alice, [("duration", "0.5"), ("message", "hello"),
                                        ("values", "1"), ("values", "2")])
    copy = create_job(client, alice, {"from_job": source, "message": "changed"})
    params = _params(client, alice, copy)
    assert ("duration", "0.5", False) in params
    assert ("message", "changed", False) in params
    assert ("message", "hello", False) not in params
    assert sorted(v for n, v, _ in params if n == "values") == ["1", "2"]
    assert all(n != "from_job" for n, _, _ in params)


def test_from_job_of_another_user_is_404(client: FlaskClient,
                                         accounts: dict[str, Account]) -> None:
    """``from_job`` cannot read another user's job: 404, as for any unseen job."""
    source = create_job(client, accounts["alice"], {"message": "secret"})
    r = client.post(LIST, headers=accounts["bob"].headers, data={"from_job": source})
    assert r.status_code == 404
    assert b"secret" not in r.data


# The job (section 2.2.1) -------------------------------------------------------------


def test_get_job(client: FlaskClient, alice: Account) -> None:
    """GET /{jobs}/{id} is the uws:job document with the job's id, owner and phase."""
    job_id = create_job(client, alice, {"duration": "1"})
    r = client.get(f"{LIST}/{job_id}", headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "application/xml"
    doc = etree.fromstring(r.data)
    assert doc.tag == f"{{{NS['uws']}}}job"
    assert doc.findtext("uws:jobId", namespaces=NS) == job_id
    assert doc.findtext("uws:ownerId", namespaces=NS) == "alice"
    assert doc.findtext("uws:phase", namespaces=NS) == "PENDING"


def test_unknown_job_is_404(client: FlaskClient, alice: Account) -> None:
    """A job id that does not exist gives 404 on the job and its children (section 2.2)."""
    for suffix in ("", "/phase", "/parameters", "/results", "/error", "/owner"):
        assert client.get(f"{LIST}/0123456789abcdef{suffix}",
                          headers=alice.headers).status_code == 404


# phase (sections 2.2.3.5, 2.2.3.6) ------------------------------------------------------


def test_phase_run_and_abort(client: FlaskClient, alice: Account) -> None:
    """POST PHASE=RUN to /phase answers 303 to the job and queues it; PHASE=ABORT then
    answers 303 and the job is ABORTED (UWS 1.1 sections 2.2.3.5 and 2.2.3.6)."""
    job_id = create_job(client, alice, {"duration": "1"})
    assert phase_of(client, alice, job_id) == "PENDING"
    r = client.post(f"{LIST}/{job_id}/phase", headers=alice.headers, data={"PHASE": "RUN"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}/{job_id}"
    assert phase_of(client, alice, job_id) == "QUEUED"
    r = client.post(f"{LIST}/{job_id}/phase", headers=alice.headers, data={"PHASE": "ABORT"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}/{job_id}"
    assert phase_of(client, alice, job_id) == "ABORTED"


def test_phase_get_is_plain_text(client: FlaskClient, alice: Account) -> None:
    """GET /phase returns one of the fixed strings as text/plain (section 2.2.1)."""
    job_id = create_job(client, alice)
    r = client.get(f"{LIST}/{job_id}/phase", headers=alice.headers)
    assert r.mimetype == "text/plain"
    assert r.get_data(as_text=True) == "PENDING"


def test_phase_bad_value_is_400(client: FlaskClient, alice: Account) -> None:
    """PHASE other than RUN or ABORT, or none at all, is a 400; the job stays PENDING."""
    job_id = create_job(client, alice)
    for data in ({"PHASE": "SUSPEND"}, {"PHASE": "COMPLETED"}, {}):
        r = client.post(f"{LIST}/{job_id}/phase", headers=alice.headers, data=data)
        assert r.status_code == 400, data
    assert phase_of(client, alice, job_id) == "PENDING"


def test_run_on_final_job_is_403(app: Flask, client: FlaskClient, alice: Account) -> None:
    """PHASE=RUN on a COMPLETED or ABORTED job is illegal for its state: 403 (section 2.2),
    and the phase does not change."""
    done = create_job(client, alice)
    complete(app, done)
    aborted = create_job(client, alice)
    client.post(f"{LIST}/{aborted}/phase", headers=alice.headers, data={"PHASE": "ABORT"})
    for job_id, phase in ((done, "COMPLETED"), (aborted, "ABORTED")):
        r = client.post(f"{LIST}/{job_id}/phase", headers=alice.headers,
                        data={"PHASE": "RUN"})
        assert r.status_code == 403
        assert phase_of(client, alice, job_id) == phase


def test_abort_on_completed_job_is_403(app: Flask, client: FlaskClient,
                                       alice: Account) -> None:
    """ABORT is a blue edge only from PENDING, QUEUED and EXECUTING: on COMPLETED it is 403."""
    job_id = create_job(client, alice)
    complete(app, job_id)
    r = client.post(f"{LIST}/{job_id}/phase", headers=alice.headers, data={"PHASE": "ABORT"})
    assert r.status_code == 403
    assert phase_of(client, alice, job_id) == "COMPLETED"


def test_phase_run_via_job_post(client: FlaskClient, alice: Account) -> None:
    """PHASE=RUN posted to the job resource itself also starts it (303 to the job)."""
    job_id = create_job(client, alice)
    r = client.post(f"{LIST}/{job_id}", headers=alice.headers, data={"PHASE": "RUN"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}/{job_id}"
    assert phase_of(client, alice, job_id) == "QUEUED"


# executionduration (section 2.2.3.3) ----------------------------------------------------


def test_executionduration_get_and_post(app: Flask, client: FlaskClient,
                                        alice: Account) -> None:
    """GET returns the default as an integer; POST sets it (303 to the job)."""
    job_id = create_job(client, alice)
    r = client.get(f"{LIST}/{job_id}/executionduration", headers=alice.headers)
    assert r.mimetype == "text/plain"
    assert int(r.get_data(as_text=True)) == _config(app).execution_duration_default
    r = client.post(f"{LIST}/{job_id}/executionduration", headers=alice.headers,
                    data={"EXECUTIONDURATION": "120"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}/{job_id}"
    r = client.get(f"{LIST}/{job_id}/executionduration", headers=alice.headers)
    assert r.get_data(as_text=True) == "120"


def test_executionduration_is_clamped(app: Flask, client: FlaskClient, alice: Account) -> None:
    """A value above execution_duration_max, and 0 (unlimited), become the maximum."""
    maximum = _config(app).execution_duration_max
    job_id = create_job(client, alice)
    for value in (str(maximum * 10), "0"):
        client.post(f"{LIST}/{job_id}/executionduration", headers=alice.headers,
                    data={"EXECUTIONDURATION": value})
        r = client.get(f"{LIST}/{job_id}/executionduration", headers=alice.headers)
        assert int(r.get_data(as_text=True)) == maximum, value
    created = create_job(client, alice, {"EXECUTIONDURATION": "0"})
    r = client.get(f"{LIST}/{created}/executionduration", headers=alice.headers)
    assert int(r.get_data(as_text=True)) == maximum


def test_executionduration_bad_value_is_400(client: FlaskClient, alice: Account) -> None:
    """A negative or non-numeric executionDuration is a 400; the old value stays."""
    job_id = create_job(client, alice, {"EXECUTIONDURATION": "60"})
    for value in ("-5", "abc", "nan", ""):
        r = client.post(f"{LIST}/{job_id}/executionduration", headers=alice.headers,
                        data={"EXECUTIONDURATION": value})
        assert r.status_code == 400, value
    r = client.get(f"{LIST}/{job_id}/executionduration", headers=alice.headers)
    assert r.get_data(as_text=True) == "60"


def test_executionduration_after_start_is_403(app: Flask, client: FlaskClient,
                                              alice: Account) -> None:
    """Once the job is EXECUTING its executionDuration can no longer change: 403."""
    job_id = create_job(client, alice, {"EXECUTIONDURATION": "60"})
    start(app, job_id)
    r = client.post(f"{LIST}/{job_id}/executionduration", headers=alice.headers,
                    data={"EXECUTIONDURATION": "30"})
    assert r.status_code == 403
    r = client.get(f"{LIST}/{job_id}/executionduration", headers=alice.headers)
    assert r.get_data(as_text=True) == "60"


# destruction (section 2.2.3.2) --------------------------------------------------------


def test_destruction_get_and_post(client: FlaskClient, alice: Account) -> None:
    """POST DESTRUCTION answers 303 to the job; GET then shows the value set, in ISO 8601
    UTC with milliseconds and Z."""
    job_id = create_job(client, alice)
    r = client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers)
    assert r.mimetype == "text/plain"
    assert r.get_data(as_text=True).endswith("Z")
    wanted = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=123000)
    r = client.post(f"{LIST}/{job_id}/destruction", headers=alice.headers,
                    data={"DESTRUCTION": wanted.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}/{job_id}"
    r = client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers)
    assert r.get_data(as_text=True) == wanted.strftime("%Y-%m-%dT%H:%M:%S.123Z")


def test_destruction_with_offset_is_converted_to_utc(client: FlaskClient,
                                                     alice: Account) -> None:
    """A destruction time with a numeric offset is stored and shown as the same UTC instant."""
    job_id = create_job(client, alice)
    local = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    text = (local + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + "+02:00"
    client.post(f"{LIST}/{job_id}/destruction", headers=alice.headers,
                data={"DESTRUCTION": text})
    r = client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers)
    assert r.get_data(as_text=True) == local.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_destruction_is_clamped(app: Flask, client: FlaskClient, alice: Account) -> None:
    """A destruction time beyond creation + destruction_max is replaced by that limit
    (section 2.1.5: "The service may override the requested Destruction Time")."""
    job_id = create_job(client, alice)
    doc = job_xml(client, alice, job_id)
    creation = parse_time(doc.findtext("uws:creationTime", namespaces=NS) or "")
    client.post(f"{LIST}/{job_id}/destruction", headers=alice.headers,
                data={"DESTRUCTION": "2999-01-01T00:00:00Z"})
    r = client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers)
    destruction = parse_time(r.get_data(as_text=True))
    limit = creation + timedelta(seconds=_config(app).destruction_max)
    assert abs((destruction - limit).total_seconds()) < 1.0


def test_destruction_bad_time_is_400(client: FlaskClient, alice: Account) -> None:
    """A destruction that is not an ISO 8601 time is a 400 and changes nothing."""
    job_id = create_job(client, alice)
    before = client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers).data
    for value in ("tomorrow", "2026-13-45T00:00:00Z", ""):
        r = client.post(f"{LIST}/{job_id}/destruction", headers=alice.headers,
                        data={"DESTRUCTION": value})
        assert r.status_code == 400, value
    assert client.get(f"{LIST}/{job_id}/destruction", headers=alice.headers).data == before


# error, quote, owner (sections 2.1.6 - 2.1.8) -------------------------------------------------


def test_error_is_404_unless_error(app: Flask, client: FlaskClient, alice: Account) -> None:
    """/error exists only for a job in ERROR: PENDING and COMPLETED jobs give 404."""
    job_id = create_job(client, alice)
    assert client.get(f"{LIST}/{job_id}/error", headers=alice.headers).status_code == 404
    complete(app, job_id)
    assert client.get(f"{LIST}/{job_id}/error", headers=alice.headers).status_code == 404


def test_error_in_error_phase(app: Flask, client: FlaskClient, alice: Account) -> None:
    """In ERROR, /error is text/plain with the message and the detail (stack trace), and
    the job's errorSummary says hasDetail="true" (section 2.2.2.5)."""
    job_id = create_job(client, alice)
    store = store_of(app)
    store.queue(job_id)
    store.start(job_id, "h", 1)
    store.fail(job_id, "msg", detail="trace")
    r = client.get(f"{LIST}/{job_id}/error", headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert "msg" in text
    assert "trace" in text
    summary = job_xml(client, alice, job_id).find("uws:errorSummary", NS)
    assert summary is not None
    assert summary.get("hasDetail") == "true"
    assert summary.findtext("uws:message", namespaces=NS) == "msg"


def test_quote(app: Flask, client: FlaskClient, alice: Account) -> None:
    """/quote is empty before the job runs and an ISO 8601 time after PHASE=RUN (selftest
    estimates its duration) (section 2.1.6)."""
    job_id = create_job(client, alice, {"duration": "30"})
    r = client.get(f"{LIST}/{job_id}/quote", headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    assert r.get_data(as_text=True) == ""
    client.post(f"{LIST}/{job_id}/phase", headers=alice.headers, data={"PHASE": "RUN"})
    text = client.get(f"{LIST}/{job_id}/quote", headers=alice.headers).get_data(as_text=True)
    quote = parse_time(text)
    delay = (quote - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
    assert 0 < delay <= 31
    assert text.endswith("Z")


def test_owner(client: FlaskClient, alice: Account) -> None:
    """/owner is the authenticated creator's name as text/plain (section 2.1.8)."""
    job_id = create_job(client, alice)
    r = client.get(f"{LIST}/{job_id}/owner", headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    assert r.get_data(as_text=True) == "alice"


# parameters (section 2.1.11) -------------------------------------------------------------


def test_parameters_get(client: FlaskClient, alice: Account) -> None:
    """/parameters lists the parameters given at creation in the order sent, isPost set."""
    job_id = create_job(client, alice, [("duration", "2"), ("message", "hi")])
    r = client.get(f"{LIST}/{job_id}/parameters", headers=alice.headers)
    assert r.status_code == 200
    assert r.mimetype == "application/xml"
    assert _params(client, alice, job_id) == [("duration", "2", False),
                                              ("message", "hi", False)]
    assert b'isPost="true"' in r.data


def test_parameters_post_while_pending(client: FlaskClient, alice: Account) -> None:
    """POST to /parameters of a PENDING job answers 303 to the job and replaces the values
    named, keeping the others (section 2.1.11)."""
    job_id = create_job(client, alice, [("duration", "2"), ("message", "hi")])
    r = client.post(f"{LIST}/{job_id}/parameters", headers=alice.headers,
                    data={"MESSAGE": "bye", "steps": "4"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}/{job_id}"
    assert sorted(_params(client, alice, job_id)) == [("duration", "2", False),
                                                      ("message", "bye", False),
                                                      ("steps", "4", False)]


def test_parameters_post_to_job_while_pending(client: FlaskClient, alice: Account) -> None:
    """Parameters may also be POSTed to the job resource itself while PENDING (303)."""
    job_id = create_job(client, alice, {"duration": "2"})
    r = client.post(f"{LIST}/{job_id}", headers=alice.headers, data={"duration": "3"})
    assert r.status_code == 303
    assert _params(client, alice, job_id) == [("duration", "3", False)]


def test_parameters_post_invalid_is_400(client: FlaskClient, alice: Account) -> None:
    """A parameter update is validated like a creation: unknown names and bad values are
    400 and leave the parameters untouched."""
    job_id = create_job(client, alice, {"duration": "2"})
    for data in ({"nope": "1"}, {"duration": "-3"}):
        r = client.post(f"{LIST}/{job_id}/parameters", headers=alice.headers, data=data)
        assert r.status_code == 400, data
    assert _params(client, alice, job_id) == [("duration", "2", False)]


def test_parameters_post_when_not_pending_is_403(app: Flask, client: FlaskClient,
                                                 alice: Account) -> None:
    """Parameters can only change while PENDING: in QUEUED and COMPLETED a POST is 403."""
    queued = create_job(client, alice, {"duration": "2", "PHASE": "RUN"})
    done = create_job(client, alice, {"duration": "2"})
    complete(app, done)
    for job_id in (queued, done):
        for url in (f"{LIST}/{job_id}/parameters", f"{LIST}/{job_id}"):
            r = client.post(url, headers=alice.headers, data={"duration": "5"})
            assert r.status_code == 403, (job_id, url)
        assert _params(client, alice, job_id) == [("duration", "2", False)]


def test_multipart_upload_is_a_by_reference_parameter(app: Flask, client: FlaskClient,
                                                      alice: Account) -> None:
    """A multipart file part becomes a byReference parameter whose value is
    {job}/parameters/{name}, and that URL serves the uploaded bytes (section 2.2.3.1.1)."""
    content = b"1\n2.5\n3\n"
    r = client.post(LIST, headers=alice.headers, content_type="multipart/form-data",
                    data={"duration": "0", "values": (io.BytesIO(content), "values.txt")})
    assert r.status_code == 303, r.get_data(as_text=True)
    job_id = r.headers["Location"].rsplit("/", 1)[1]
    params = _params(client, alice, job_id)
    href = f"{PUBLIC}{LIST}/{job_id}/parameters/values"
    assert ("values", href, True) in params
    r = client.get(f"{LIST}/{job_id}/parameters/values", headers=alice.headers)
    assert r.status_code == 200
    assert r.data == content
    assert (_config(app).job_dir(job_id) / "uploads").is_dir()
    # A parameter given inline has no such resource.
    assert client.get(f"{LIST}/{job_id}/parameters/duration",
                      headers=alice.headers).status_code == 404


def test_upload_of_unknown_parameter_is_400(client: FlaskClient, alice: Account) -> None:
    """An uploaded file under a name the job type does not declare is a 400."""
    r = client.post(LIST, headers=alice.headers, content_type="multipart/form-data",
                    data={"nosuch": (io.BytesIO(b"x"), "x.txt")})
    assert r.status_code == 400
    assert "nosuch" in r.get_data(as_text=True)


def test_every_schema_parameter_round_trips(client: FlaskClient, alice: Account) -> None:
    """Every property of schemas/selftest.json is accepted and listed by /parameters with
    exactly the value posted (arrays as repeated parameters) (DESIGN: UWS bullet)."""
    schema = json.loads((ROOT / "schemas" / "selftest.json").read_text())
    samples = {"number": "2.5", "integer": "7", "boolean": "true"}
    posted: list[tuple[str, str]] = []
    for name, spec in schema["properties"].items():
        if spec["type"] == "array":
            item = samples[spec["items"]["type"]]
            posted += [(name, item), (name, "-1.25")]
        elif spec["type"] == "string":
            posted.append((name, spec["enum"][-1] if "enum" in spec else "a b <&> é"))
        else:
            posted.append((name, samples[spec["type"]]))
    job_id = create_job(client, alice, posted)
    listed = [(n, v) for n, v, _ in _params(client, alice, job_id)]
    assert sorted(listed) == sorted(posted)
    assert {n for n, _ in listed} == set(schema["properties"])


# results (sections 2.1.10, 2.2.2.3) -------------------------------------------------------------


def test_results_list_and_download(app: Flask, client: FlaskClient, alice: Account) -> None:
    """A COMPLETED job lists each result with href {job}/results/{id}, size and mime-type,
    and the href serves the file."""
    job_id = create_job(client, alice)
    content = json.dumps({"answer": 42}).encode()
    complete(app, job_id, {"report": content, "extra": b"{}"})
    r = client.get(f"{LIST}/{job_id}/results", headers=alice.headers)
    assert r.status_code == 200
    doc = etree.fromstring(r.data)
    results = {e.get("id"): e for e in doc.findall("uws:result", NS)}
    assert set(results) == {"report", "extra"}
    report = results["report"]
    href = report.get(f"{{{NS['xlink']}}}href")
    assert href == f"{PUBLIC}{LIST}/{job_id}/results/report"
    assert report.get("size") == str(len(content))
    assert report.get("mime-type") == "application/json"
    r = client.get(href.removeprefix(PUBLIC), headers=alice.headers)
    assert r.status_code == 200
    assert r.data == content
    assert r.mimetype == "application/json"


def test_unknown_result_is_404(app: Flask, client: FlaskClient, alice: Account) -> None:
    """A result id the job does not have gives 404; so does a path escaping the job folder."""
    job_id = create_job(client, alice)
    complete(app, job_id)
    assert client.get(f"{LIST}/{job_id}/results/nothere",
                      headers=alice.headers).status_code == 404
    assert client.get(f"{LIST}/{job_id}/results/../../vocloud.db",
                      headers=alice.headers).status_code == 404


def test_results_empty_while_pending(client: FlaskClient, alice: Account) -> None:
    """A job without results still has a valid, empty results list (section 2.2.2.3)."""
    job_id = create_job(client, alice)
    r = client.get(f"{LIST}/{job_id}/results", headers=alice.headers)
    assert r.status_code == 200
    doc = etree.fromstring(r.data)
    assert doc.tag == f"{{{NS['uws']}}}results"
    assert len(doc) == 0


def test_results_cannot_be_changed(app: Flask, client: FlaskClient, alice: Account) -> None:
    """The results list is read-only (section 2.1.10): POST, PUT and DELETE are refused
    with 403 or 405 and the result stays."""
    job_id = create_job(client, alice)
    complete(app, job_id)
    for method in ("post", "put", "delete"):
        r = getattr(client, method)(f"{LIST}/{job_id}/results/report", headers=alice.headers)
        assert r.status_code in (403, 405), method
    assert client.get(f"{LIST}/{job_id}/results/report",
                      headers=alice.headers).status_code == 200


# Deletion (section 2.2.3.2) ------------------------------------------------------------------


def test_delete(app: Flask, client: FlaskClient, alice: Account) -> None:
    """DELETE answers 303 to the job list; the job is gone (404) with its files."""
    job_id = create_job(client, alice)
    complete(app, job_id)
    job_dir = _config(app).job_dir(job_id)
    assert job_dir.is_dir()
    r = client.delete(f"{LIST}/{job_id}", headers=alice.headers)
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}"
    assert client.get(f"{LIST}/{job_id}", headers=alice.headers).status_code == 404
    assert not job_dir.exists()
    assert job_id.encode() not in client.get(LIST, headers=alice.headers).data


def test_post_action_delete(app: Flask, client: FlaskClient, alice: Account) -> None:
    """POST ACTION=DELETE to the job is a deletion: 303 to the list, then 404, files gone
    (section 2.2.3.2)."""
    job_id = create_job(client, alice)
    complete(app, job_id)
    job_dir = _config(app).job_dir(job_id)
    r = client.post(f"{LIST}/{job_id}", headers=alice.headers, data={"ACTION": "DELETE"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}{LIST}"
    assert client.get(f"{LIST}/{job_id}", headers=alice.headers).status_code == 404
    assert not job_dir.exists()


def test_delete_running_job(app: Flask, client: FlaskClient, alice: Account) -> None:
    """Deleting an EXECUTING job removes it too (destroying implies aborting, 2.1.5)."""
    job_id = create_job(client, alice)
    start(app, job_id)
    r = client.delete(f"{LIST}/{job_id}", headers=alice.headers)
    assert r.status_code == 303
    assert store_of(app).get(job_id) is None


def test_post_bad_action_is_400(client: FlaskClient, alice: Account) -> None:
    """ACTION other than DELETE is a 400 and the job survives."""
    job_id = create_job(client, alice)
    r = client.post(f"{LIST}/{job_id}", headers=alice.headers, data={"ACTION": "EXPLODE"})
    assert r.status_code == 400
    assert phase_of(client, alice, job_id) == "PENDING"


def test_error_helper_drives_error_phase(app: Flask, client: FlaskClient,
                                         alice: Account) -> None:
    """A job failed through the store shows ERROR, an endTime and its message."""
    job_id = create_job(client, alice)
    fail(app, job_id, "disk on fire")
    doc = job_xml(client, alice, job_id)
    assert doc.findtext("uws:phase", namespaces=NS) == "ERROR"
    assert doc.findtext("uws:errorSummary/uws:message", namespaces=NS) == "disk on fire"
    assert doc.findtext("uws:endTime", namespaces=NS)
