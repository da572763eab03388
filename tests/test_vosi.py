"""VOSI documents of the whole service, the job-type schemas, and error bodies on /uws.

VOSI 1.1: ``/capabilities`` and ``/availability`` are anonymous XML that
validates against the IVOA schemas; DESIGN: never HTML on UWS, VOSI or DAL
endpoints, including their error responses.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskClient

from jobs import registry
from tests.conftest import Account, assert_valid

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "http://testserver"


def test_capabilities(client: FlaskClient) -> None:
    """/capabilities validates against the capabilities bundle schema, lists the VOSI
    capabilities and availability with absolute URLs from VOCLOUD_PUBLIC_URL, and has one
    capability whose interface is each job type's UWS job list."""
    r = client.get("/capabilities")
    assert r.status_code == 200
    assert r.mimetype in ("application/xml", "text/xml")
    doc = assert_valid(r.data, "capabilities-bundle.xsd")
    caps = doc.findall("capability")
    standards = {c.get("standardID"): c for c in caps}
    for standard, path in (("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities"),
                           ("ivo://ivoa.net/std/VOSI#availability", "/availability")):
        assert standard in standards
        assert standards[standard].findtext("interface/accessURL") == PUBLIC + path
    urls = [c.findtext("interface/accessURL") for c in caps]
    job_types = sorted(registry.job_types())
    assert "selftest" in job_types
    for name in job_types:
        assert urls.count(f"{PUBLIC}/uws/{name}") == 1, name
    for standard, path in (("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "/vospace/nodes"),
                           ("ivo://ivoa.net/std/VOSpace#sync-2.1", "/vospace/synctrans")):
        assert standards[standard].findtext("interface/accessURL") == PUBLIC + path
    assert len(caps) == 2 + 5 + len(job_types)


def test_availability(client: FlaskClient) -> None:
    """/availability validates against VOSIAvailability-v1.0.xsd and says available=true."""
    r = client.get("/availability")
    assert r.status_code == 200
    doc = assert_valid(r.data, "VOSIAvailability-v1.0.xsd")
    ns = {"vosi": "http://www.ivoa.net/xml/VOSIAvailability/v1.0"}
    assert doc.findtext("vosi:available", namespaces=ns) == "true"
    assert (doc.findtext("vosi:upSince", namespaces=ns) or "").endswith("Z")


def test_job_type_schema_is_served(client: FlaskClient) -> None:
    """/schemas/selftest.json serves schemas/selftest.json anonymously, as JSON; an unknown
    job type is 404."""
    r = client.get("/schemas/selftest.json")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    assert r.get_json() == json.loads((ROOT / "schemas" / "selftest.json").read_text())
    assert client.get("/schemas/nosuchtype.json").status_code == 404


def test_no_html_on_uws_errors(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """Error responses under /uws are text/plain, never HTML: an unknown route (404), a
    method not allowed (405, with Allow), an unknown job (404), a bad request (400) and an
    anonymous request (401)."""
    alice = accounts["alice"].headers
    r = client.post("/uws/selftest", headers=alice, data={"duration": "0"})
    job = r.headers["Location"].removeprefix(PUBLIC)
    cases = [
        (client.get("/uws/selftest/abc/def/ghi", headers=alice), 404),
        (client.get("/uws", headers=alice), 404),
        (client.put("/uws/selftest", headers=alice), 405),
        (client.delete("/uws/selftest", headers=alice), 405),
        (client.put(f"{job}/phase", headers=alice), 405),
        (client.delete(f"{job}/results", headers=alice), 405),
        (client.get("/uws/selftest/0000000000000000", headers=alice), 404),
        (client.get("/uws/selftest?LAST=0", headers=alice), 400),
        (client.get("/uws/selftest"), 401),
    ]
    for response, status in cases:
        assert response.status_code == status, response.request.path
        assert response.mimetype == "text/plain", response.request.path
        body = response.get_data(as_text=True).lower()
        assert "<html" not in body and "<!doctype" not in body
        assert body.strip()
    assert "GET" in cases[2][0].headers["Allow"]


def test_no_html_on_vosi_errors(client: FlaskClient) -> None:
    """A method VOSI does not allow is a text/plain 405, not an HTML page."""
    r = client.post("/capabilities")
    assert r.status_code == 405
    assert r.mimetype == "text/plain"
    assert "<html" not in r.get_data(as_text=True).lower()
