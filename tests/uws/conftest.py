"""Helpers for the UWS job service tests: create jobs over HTTP, drive phases through the store.

Phases that only workers reach (EXECUTING, COMPLETED, ERROR, ARCHIVED) are
set through the real :class:`~uws_service.store.JobStore`, exactly as a
worker would; nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from werkzeug.datastructures import MultiDict

from tests.conftest import Account
from uws_service.store import JobStore, ResultFile

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}
LIST = "/uws/selftest"
PUBLIC = "http://testserver"

FormData = Mapping[str, Any] | Sequence[tuple[str, Any]]


def create_job(client: FlaskClient, account: Account, data: FormData | None = None,
               query: str = "") -> str:
    """POST a selftest job and return its id (asserting the 303 of UWS 1.1 section 2.2.3.1)."""
    form = MultiDict(list(data)) if isinstance(data, list | tuple) else (data or {})
    response = client.post(f"{LIST}{query}", headers=account.headers, data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(f"{PUBLIC}{LIST}/")
    return location.rsplit("/", 1)[1]


def job_xml(client: FlaskClient, account: Account, job_id: str) -> etree._Element:
    response = client.get(f"{LIST}/{job_id}", headers=account.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return etree.fromstring(response.data)


def phase_of(client: FlaskClient, account: Account, job_id: str) -> str:
    response = client.get(f"{LIST}/{job_id}/phase", headers=account.headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def store_of(app: Flask) -> JobStore:
    return app.extensions["vocloud"].store  # type: ignore[no-any-return]


def start(app: Flask, job_id: str) -> None:
    """PENDING -> QUEUED -> EXECUTING, as the dispatcher and a worker would do it."""
    store = store_of(app)
    assert store.queue(job_id)
    assert store.start(job_id, "testhost", 1)


def complete(app: Flask, job_id: str, files: Mapping[str, bytes] | None = None) -> None:
    """Run the job to COMPLETED with ``files`` (result id -> content) as its results."""
    files = {"report": json.dumps({"ok": True}).encode()} if files is None else files
    start(app, job_id)
    config = app.extensions["vocloud"].config
    results_dir = config.job_dir(job_id) / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for result_id, content in files.items():
        name = f"{result_id}.json"
        (results_dir / name).write_bytes(content)
        results.append(ResultFile(result_id, f"results/{name}", len(content),
                                  "application/json"))
    assert store_of(app).complete(job_id, results)


def fail(app: Flask, job_id: str, message: str = "it broke",
         detail: str | None = "Traceback: line 1") -> None:
    """Run the job to ERROR with ``message`` and ``detail``."""
    start(app, job_id)
    assert store_of(app).fail(job_id, message, detail=detail)


@pytest.fixture
def alice(accounts: dict[str, Account]) -> Account:
    return accounts["alice"]
