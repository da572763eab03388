"""Bad or hostile input and job output never break a job document or cross a boundary.

Text that jobs write (error and progress messages, result names) may hold
characters XML cannot carry; browsers may send requests on behalf of other
sites; clients may send absurd numbers; many clients may block on WAIT.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account, assert_valid, make_config
from tests.uws.conftest import LIST, PUBLIC, create_job, start, store_of
from uws_service.store import ResultFile


def _finish_with_file(app: Flask, job_id: str, name: str, content: bytes,
                      mime_type: str) -> None:
    """Write one result file the way a job does and complete the job."""
    results_dir = app.extensions["vocloud"].config.job_dir(job_id) / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / name).write_bytes(content)
    assert store_of(app).complete(
        job_id, [ResultFile(name, f"results/{name}", len(content), mime_type)])


def test_job_text_with_control_characters_keeps_the_document_valid(
        app: Flask, client: FlaskClient, alice: Account) -> None:
    """An error message with ANSI escapes and a result named with a control character
    still give a job document valid against UWS.xsd (characters replaced by U+FFFD)."""
    job_id = create_job(client, alice)
    start(app, job_id)
    store_of(app).set_progress(job_id, 0.5, "step \x1b[1mone\x1b[0m")
    _finish_with_file(app, job_id, "odd\x01name.txt", b"x", "text/plain")
    response = client.get(f"{LIST}/{job_id}", headers=alice.headers)
    assert response.status_code == 200
    doc = assert_valid(response.data, "UWS.xsd")
    assert "\ufffd" in "".join(doc.itertext()) or b"\xef\xbf\xbd" in response.data

    other = create_job(client, alice)
    start(app, other)
    store_of(app).fail(other, "\x1b[31mboom\x1b[0m", detail="trace \x00")
    response = client.get(f"{LIST}/{other}", headers=alice.headers)
    assert response.status_code == 200
    assert_valid(response.data, "UWS.xsd")


def test_cross_site_requests_are_refused_even_with_basic_credentials(
        client: FlaskClient, alice: Account) -> None:
    """A browser resends Basic credentials by itself: a POST it makes for another site
    (Origin or Sec-Fetch-Site says so) is refused; the same POST from this site works."""
    refused = client.post(LIST, data={"PHASE": "RUN"},
                          headers={**alice.basic, "Origin": "https://evil.example"})
    assert refused.status_code == 403
    refused = client.post(LIST, data={"PHASE": "RUN"},
                          headers={**alice.basic, "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert client.get(LIST, headers=alice.headers).data.count(b"<uws:jobref") == 0
    allowed = client.post(LIST, data={"PHASE": "RUN"},
                          headers={**alice.basic, "Origin": PUBLIC})
    assert allowed.status_code == 303


def test_portal_csrf_field_is_not_a_job_parameter(
        client: FlaskClient, alice: Account) -> None:
    """A cookie POST carrying its CSRF token as a form field creates the job, and the
    token is not stored as a parameter; ABORT by cookie works on a running job."""
    login = client.post("/api/login", json={"name": "alice", "password": alice.password})
    token = login.get_json()["csrfToken"]
    response = client.post(LIST, data={"duration": "1", "csrf_token": token})
    assert response.status_code == 303, response.data
    job_url = response.headers["Location"].replace(PUBLIC, "")
    parameters = client.get(f"{job_url}/parameters").data
    assert b"csrf_token" not in parameters
    aborted = client.post(job_url, data={"PHASE": "ABORT", "csrf_token": token})
    assert aborted.status_code == 303, aborted.data
    assert client.get(f"{job_url}/phase").data == b"ABORTED"


def test_failed_portal_login_does_not_challenge(client: FlaskClient) -> None:
    """A wrong password at /api/login is a 401 without WWW-Authenticate, so browsers
    do not open their own log-in dialog over the portal."""
    response = client.post("/api/login", json={"name": "alice", "password": "wrong"})
    assert response.status_code == 401
    assert "WWW-Authenticate" not in response.headers


def test_absurd_numbers_are_client_errors(client: FlaskClient, alice: Account) -> None:
    """A token id beyond any integer column is a 401 and a destruction time that cannot
    be converted to UTC is a 400, never a 500."""
    huge = "vct_" + "9" * 18 + "_" + "a" * 43
    assert client.get(LIST, headers={"Authorization": f"Bearer {huge}"}).status_code == 401
    longer = "vct_" + "9" * 25 + "_" + "a" * 43
    assert client.get(LIST, headers={"Authorization": f"Bearer {longer}"}).status_code == 401
    response = client.post(LIST, headers=alice.headers,
                           data={"DESTRUCTION": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert response.mimetype == "text/plain"


def test_results_cannot_script_the_service(app: Flask, client: FlaskClient,
                                           alice: Account) -> None:
    """A result a job wrote as HTML is served sandboxed and never sniffed."""
    job_id = create_job(client, alice)
    start(app, job_id)
    _finish_with_file(app, job_id, "report.html", b"<script>alert(1)</script>", "text/html")
    response = client.get(f"{LIST}/{job_id}/results/report.html", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_blocking_waits_are_bounded(tmp_path: Path, accounts: dict[str, Account],
                                    _template: object) -> None:
    """When every WAIT slot is taken, a further WAIT answers at once instead of holding
    one more request thread (UWS 1.1 section 2.2.1.2 allows returning early)."""
    import shutil

    from uws_service.app import create_app

    config = make_config(tmp_path / "few", server_threads=1, wait_max=5.0)
    config.home.mkdir(parents=True)
    shutil.copyfile(_template.database, config.home / "vocloud.db")  # type: ignore[attr-defined]
    app = create_app(config)
    alice = accounts["alice"]
    first_client, second_client = app.test_client(), app.test_client()
    job_id = create_job(first_client, alice)
    holder = threading.Thread(target=lambda: first_client.get(
        f"{LIST}/{job_id}?WAIT=3", headers=alice.headers))
    holder.start()
    time.sleep(0.5)
    began = time.monotonic()
    response = second_client.get(f"{LIST}/{job_id}?WAIT=3", headers=alice.headers)
    elapsed = time.monotonic() - began
    holder.join()
    assert response.status_code == 200
    assert elapsed < 1.0
