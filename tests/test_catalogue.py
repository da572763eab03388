"""The spectrum catalogue (issue 3, "Catalogue"; DESIGN "Store and catalogue").

Every stored spectrum becomes an ObsCore row with the metadata its file
carries, in the standard units; unreadable files stay stored and are
flagged with the reason; a move keeps the DID, a copy makes a new one, a
delete removes the row; visibility and sharing reach the rows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from uws_service.filestore import FileService
from uws_service.models import FileNode, ObsCore
from vo.obscore import OBSCORE_COLUMNS
from vo.spectra.demo import generate_collection, write_collection
from vo.spectra.readers import read_spectrum

DID = re.compile(r"^ivo://vocloud\.local/vocloud\?[0-9a-f-]{36}$")
MANDATORY = {
    "dataproduct_type", "calib_level", "obs_collection", "obs_id", "obs_publisher_did",
    "access_url", "access_format", "access_estsize", "target_name", "s_ra", "s_dec", "s_fov",
    "s_region", "s_resolution", "s_xel1", "s_xel2", "t_min", "t_max", "t_exptime",
    "t_resolution", "t_xel", "em_min", "em_max", "em_res_power", "em_xel", "o_ucd",
    "pol_states", "pol_xel", "facility_name", "instrument_name"}


def _service(app: Flask) -> FileService:
    service: FileService = app.extensions["vocloud"].files
    return service


def _rows(app: Flask) -> list[ObsCore]:
    with _service(app).database.read() as session:
        rows = session.query(ObsCore).order_by(ObsCore.id).all()
        session.expunge_all()
        return rows


def _node(app: Flask, path: str) -> FileNode:
    with _service(app).database.read() as session:
        row = session.query(FileNode).filter(FileNode.path == path).one()
        session.expunge(row)
        return row


def _put(client: FlaskClient, account: Account, path: str, data: bytes) -> Any:
    response = client.put(f"/files/{account.name}/{path}", data=data, headers=account.headers)
    assert response.status_code == 201, response.text
    return response


@pytest.fixture
def demo_files(tmp_path: Path) -> list[Path]:
    return write_collection(tmp_path / "demo", generate_collection(6, seed=3))


def test_columns_cover_obscore_mandatory_fields() -> None:
    names = {column.name for column in OBSCORE_COLUMNS}
    assert names >= MANDATORY
    model = {column.key for column in ObsCore.__table__.columns}
    assert names <= model
    assert {"owner", "visibility"} <= model
    units = {column.name: column.unit for column in OBSCORE_COLUMNS}
    assert (units["em_min"], units["t_min"], units["s_ra"], units["access_estsize"]) == \
        ("m", "d", "deg", "kbyte")


def test_uploaded_spectra_become_catalogue_rows(app: Flask, client: FlaskClient,
                                               accounts: dict[str, Account],
                                               demo_files: list[Path]) -> None:
    alice = accounts["alice"]
    for path in demo_files:
        _put(client, alice, f"demo/{path.name}", path.read_bytes())
    rows = _rows(app)
    assert len(rows) == len(demo_files)
    by_name = {row.access_url.rsplit("/", 1)[1]: row for row in rows}
    for path in demo_files:
        row = by_name[path.name]
        spectrum = read_spectrum(path)[0]
        finite = np.isfinite(spectrum.flux)
        assert row.em_min == pytest.approx(spectrum.wavelength[finite].min() * 1e-10)
        assert row.em_max == pytest.approx(spectrum.wavelength[finite].max() * 1e-10)
        assert 6.2e-7 < row.em_min < row.em_max < 6.8e-7
        assert row.s_ra == pytest.approx(spectrum.meta.ra)
        assert row.s_dec == pytest.approx(spectrum.meta.dec)
        assert row.t_min == pytest.approx(spectrum.meta.mjd)
        assert row.t_max > row.t_min
        assert row.t_exptime == pytest.approx(spectrum.meta.exposure)
        assert row.target_name == spectrum.meta.target
        assert row.em_xel == len(spectrum)
        assert row.dataproduct_type == "spectrum"
        assert DID.match(row.obs_publisher_did)
        assert row.access_url == f"http://testserver/files/alice/demo/{path.name}"
        assert row.access_estsize == -(-path.stat().st_size // 1024)
        assert (row.owner, row.visibility) == ("alice", "private")
        assert row.em_medium in ("air", "vacuum")
    assert len({row.obs_publisher_did for row in rows}) == len(rows)
    node = _node(app, f"demo/{demo_files[0].name}")
    assert (node.spectra, node.catalogue_error) == (1, None)


def test_unreadable_files_stay_stored_and_are_flagged(app: Flask, client: FlaskClient,
                                                      accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    junk = b"SIMPLE  = this is not FITS at all"
    _put(client, alice, "bad/broken.fits", junk)
    _put(client, alice, "bad/notes.json", b'{"a": 1}')
    assert _rows(app) == []
    broken = _node(app, "bad/broken.fits")
    assert broken.spectra == 0
    assert broken.catalogue_error and "broken.fits" in broken.catalogue_error
    notes = _node(app, "bad/notes.json")
    assert (notes.spectra, notes.catalogue_error) == (None, None)
    assert client.get("/files/alice/bad/broken.fits", headers=alice.headers).data == junk
    listing = client.get("/files/alice/bad/", headers=alice.headers).get_json()
    flagged = {e["name"]: e["catalogue_error"] for e in listing["entries"]}
    assert flagged["broken.fits"] and flagged["notes.json"] is None


def test_move_keeps_the_did_copy_makes_a_new_one_delete_removes(
        app: Flask, client: FlaskClient, accounts: dict[str, Account],
        demo_files: list[Path]) -> None:
    alice = accounts["alice"]
    name = demo_files[0].name
    _put(client, alice, f"in/{name}", demo_files[0].read_bytes())
    [before] = _rows(app)
    response = client.post("/api/files/move", headers=alice.headers,
                           json={"from": "in", "to": "archive/2024"})
    assert response.status_code == 200, response.text
    [moved] = _rows(app)
    assert moved.obs_publisher_did == before.obs_publisher_did
    assert moved.access_url == f"http://testserver/files/alice/archive/2024/{name}"

    response = client.post("/api/files/copy", headers=alice.headers,
                           json={"from": f"archive/2024/{name}", "to": f"copy/{name}"})
    assert response.status_code == 201, response.text
    rows = _rows(app)
    assert len(rows) == 2
    copy = next(row for row in rows if row.id != moved.id)
    assert copy.obs_publisher_did != moved.obs_publisher_did
    assert DID.match(copy.obs_publisher_did)
    assert copy.access_url.endswith(f"/files/alice/copy/{name}")
    assert (copy.em_min, copy.s_ra, copy.target_name) == \
        (moved.em_min, moved.s_ra, moved.target_name)

    assert client.delete("/files/alice/archive?recursive=true",
                         headers=alice.headers).status_code in (200, 204)
    assert [row.obs_publisher_did for row in _rows(app)] == [copy.obs_publisher_did]


def test_visibility_and_sharing_reach_the_rows(app: Flask, client: FlaskClient,
                                              accounts: dict[str, Account],
                                              demo_files: list[Path]) -> None:
    alice = accounts["alice"]
    for path in demo_files[:2]:
        _put(client, alice, f"v/{path.name}", path.read_bytes())
    client.post("/api/files/share", headers=alice.headers,
                json={"path": "v", "users": ["bob"]})
    assert {row.visibility for row in _rows(app)} == {"shared"}
    client.post("/api/files/visibility", headers=alice.headers,
                json={"path": "v", "visibility": "public", "recursive": True})
    assert {row.visibility for row in _rows(app)} == {"public"}
    client.post("/api/files/visibility", headers=alice.headers,
                json={"path": "v", "visibility": "private", "recursive": True})
    assert {row.visibility for row in _rows(app)} == {"private"}


def test_replacing_a_file_replaces_its_rows(app: Flask, client: FlaskClient,
                                           accounts: dict[str, Account],
                                           demo_files: list[Path]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "r/spectrum.fits", demo_files[0].read_bytes())
    [first] = _rows(app)
    response = client.put("/files/alice/r/spectrum.fits", data=b"garbage",
                          headers=alice.headers)
    assert response.status_code in (200, 204)
    assert _rows(app) == []
    assert _node(app, "r/spectrum.fits").catalogue_error
    _put(client, alice, "r/other.fits", demo_files[1].read_bytes())
    [second] = _rows(app)
    assert second.obs_publisher_did != first.obs_publisher_did
