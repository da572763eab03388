"""Parameters of the ``import`` job type (schemas/import.json) through the in-process service.

Every property is accepted and listed by ``/parameters`` as posted (arrays as repeated
parameters, the uploaded VOTable by reference), the schema is served at
``/schemas/import.json``, and inconsistent combinations are a 400 at POST time (DESIGN,
"Job parameters").
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import etree
from werkzeug.datastructures import MultiDict

from tests.conftest import Account

ROOT = Path(__file__).resolve().parent.parent
LIST = "/uws/import"
NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}

ALL_PARAMETERS = [
    ("source", "auto"), ("url", "https://archive.example.org/a.fits"),
    ("url", "ftp://ftp.example.org/pub/spectra/"), ("ssa_url", "https://ssa.example.org/q"),
    ("ra", "10.5"), ("dec", "-20.25"), ("size", "0.5"), ("band", "6.5e-7/6.6e-7"),
    ("time", "55000/55100"), ("maxrec", "100"), ("cutout_band", "6.55e-7/6.57e-7"),
    ("target", "imports/night 1"), ("overwrite", "rename"), ("unpack", "true"),
    ("depth", "2"), ("pattern", "*.fits"), ("concurrency", "2"), ("attempts", "5"),
]


def _create(client: FlaskClient, account: Account, data: MultiDict[str, object]) -> str:
    response = client.post(LIST, headers=account.headers, data=data,
                           content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    return str(response.headers["Location"]).rsplit("/", 1)[1]


def test_every_parameter_round_trips(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """All properties of schemas/import.json (the VOTable uploaded as a file part) are
    listed by /parameters with the values posted; the upload is by reference."""
    alice = accounts["alice"]
    schema = json.loads((ROOT / "schemas" / "import.json").read_text())
    data: MultiDict[str, object] = MultiDict(ALL_PARAMETERS)
    data.add("votable", (io.BytesIO(b"<VOTABLE/>"), "links.xml"))
    job_id = _create(client, alice, data)
    r = client.get(f"{LIST}/{job_id}/parameters", headers=alice.headers)
    assert r.status_code == 200
    listed = [(p.get("id"), p.text or "", p.get("byReference") == "true")
              for p in etree.fromstring(r.data).findall("uws:parameter", NS)]
    assert sorted((n, v) for n, v, by_ref in listed if not by_ref) == sorted(ALL_PARAMETERS)
    uploaded = [(n, v) for n, v, by_ref in listed if by_ref]
    assert uploaded == [("votable", f"http://testserver{LIST}/{job_id}/parameters/votable")]
    assert {n for n, _, _ in listed} == set(schema["properties"])
    r = client.get(f"{LIST}/{job_id}/parameters/votable", headers=alice.headers)
    assert r.status_code == 200 and r.data == b"<VOTABLE/>"


@pytest.mark.parametrize(("data", "words"), [
    ([("source", "ssa"), ("url", "http://example.org/a.fits")], "'ssa_url' is a required"),
    ([("source", "votable"), ("url", "http://example.org/a.fits")], "expected to be empty"),
    ([("url", "http://example.org/a.fits"), ("size", "1")], "'ra' is a dependency of 'size'"),
    ([("url", "http://example.org/a.fits"), ("band", "6e-7/7e-7")], "'ssa_url' is a dependency"),
    ([("url", "http://example.org/a.fits"), ("band", "red")], "does not match"),
    ([("url", "gopher://example.org/a")], "does not match"),
    ([("url", "http://example.org/a.fits"), ("depth", "21")], "greater than the maximum"),
    ([("url", "http://example.org/a.fits"), ("attempts", "many")], "is not an integer"),
    ([("url", "http://example.org/a.fits"), ("target", "x"), ("target", "y")],
     "given more than once"),
])
def test_inconsistent_parameters_are_400(client: FlaskClient, accounts: dict[str, Account],
                                         data: list[tuple[str, str]], words: str) -> None:
    r = client.post(LIST, headers=accounts["alice"].headers, data=MultiDict(data))
    assert r.status_code == 400, r.get_data(as_text=True)
    assert words in r.get_data(as_text=True)


def test_schema_is_served(client: FlaskClient) -> None:
    """The job type is discovered from jobs/importing.py and its schema served."""
    r = client.get("/schemas/import.json")
    assert r.status_code == 200
    assert set(r.json["properties"]) >= {"url", "votable", "ssa_url", "cutout_band"}
