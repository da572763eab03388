"""The file store over HTTP with ``VOCLOUD_STORAGE`` an fsspec URL (DESIGN, "Run modes":
storage on a shared file system or any fsspec URL).

The whole application runs on fsspec's ``memory://`` file system: upload,
ranged download, listing, mkdir, move, copy, delete, a folder as ZIP, the
quota and the spectrum catalogue behave as with a local folder, and
nothing lands in a local ``files`` folder.  (``memory://`` lives in one
process, so it serves the in-process app here, not live workers.)
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account, make_config
from tests.storage_support import memory_keys, memory_url
from uws_service.filestore import FileService
from uws_service.models import FileNode, ObsCore
from uws_service.storage_fsspec import FOLDER_MARKER, FsspecStorage
from vo.spectra.demo import generate_collection, write_collection

CONTENT = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def fsspec_app(tmp_path: Path, _template: Any) -> Iterator[Flask]:
    """The application with its files on a fresh ``memory://`` root."""
    from uws_service.app import create_app

    with memory_url() as url:
        config = make_config(tmp_path / "home", storage=url, quota_bytes=1_000_000)
        config.home.mkdir(parents=True)
        shutil.copyfile(_template.database, config.home / "vocloud.db")
        app = create_app(config)
        app.config["TESTING"] = True
        yield app


def _service(app: Flask) -> FileService:
    service: FileService = app.extensions["vocloud"].files
    return service


def _put(client: FlaskClient, account: Account, path: str, data: bytes = CONTENT) -> None:
    response = client.put(f"/files/{account.name}/{path}", data=data, headers=account.headers)
    assert response.status_code == 201, response.text


def _names(client: FlaskClient, account: Account, folder: str) -> list[str]:
    response = client.get(f"/files/{account.name}/{folder}", headers=account.headers)
    assert response.status_code == 200, response.text
    return [entry["name"] for entry in response.get_json()["entries"]]


def _obscore(app: Flask) -> list[ObsCore]:
    with _service(app).database.read() as session:
        rows = session.query(ObsCore).order_by(ObsCore.id).all()
        session.expunge_all()
        return rows


def test_file_store_runs_on_an_fsspec_url(fsspec_app: Flask, accounts: dict[str, Account],
                                          tmp_path: Path) -> None:
    app, client, alice = fsspec_app, fsspec_app.test_client(), accounts["alice"]
    storage = _service(app).storage
    assert isinstance(storage, FsspecStorage)

    # Upload, download, ranges, conditional requests.
    _put(client, alice, "obs/a.bin")
    got = client.get("/files/alice/obs/a.bin", headers=alice.headers)
    assert got.status_code == 200 and got.data == CONTENT
    assert got.headers["ETag"] == f'"{hashlib.md5(CONTENT).hexdigest()}"'
    ranged = client.get("/files/alice/obs/a.bin", headers={**alice.headers,
                                                           "Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.data == CONTENT[100:200]
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(CONTENT)}"
    suffix = client.get("/files/alice/obs/a.bin", headers={**alice.headers,
                                                           "Range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.data == CONTENT[-10:]
    beyond = client.get("/files/alice/obs/a.bin", headers={**alice.headers,
                                                           "Range": "bytes=20000-"})
    assert beyond.status_code == 416
    assert client.get("/files/alice/obs/a.bin", headers={
        **alice.headers, "If-None-Match": got.headers["ETag"]}).status_code == 304

    # Replacing keeps one object; an upload over the quota leaves it as it was.
    client.put("/files/alice/obs/a.bin", data=b"new", headers=alice.headers)
    assert client.get("/files/alice/obs/a.bin", headers=alice.headers).data == b"new"
    refused = client.put("/files/alice/obs/a.bin", data=b"x" * 1_100_000,
                         headers=alice.headers)
    assert refused.status_code == 413
    assert client.get("/files/alice/obs/a.bin", headers=alice.headers).data == b"new"

    # Folders: mkdir makes an empty folder that is listed.
    created = client.post("/api/files/mkdir", json={"path": "obs/empty"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    assert _names(client, alice, "obs/") == ["a.bin", "empty"]
    assert _names(client, alice, "obs/empty/") == []

    # Move and copy, of a file and of a folder.
    moved = client.post("/api/files/move", json={"from": "obs/a.bin", "to": "b/a.bin"},
                        headers=alice.headers)
    assert moved.status_code == 200, moved.text
    assert client.get("/files/alice/obs/a.bin", headers=alice.headers).status_code == 404
    copied = client.post("/api/files/copy", json={"from": "obs", "to": "obs2"},
                         headers=alice.headers)
    assert copied.status_code == 201, copied.text
    assert _names(client, alice, "obs2/") == ["empty"]
    copied = client.post("/api/files/copy", json={"from": "b/a.bin", "to": "obs2/c.bin"},
                         headers=alice.headers)
    assert copied.status_code == 201, copied.text
    assert client.get("/files/alice/obs2/c.bin", headers=alice.headers).data == b"new"
    quota = client.get("/api/files/quota", headers=alice.headers).get_json()
    assert quota["used"] == 6

    # A folder as a ZIP archive.
    archive = client.get("/files/alice/obs2/?format=zip", headers=alice.headers)
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zipped:
        assert sorted(zipped.namelist()) == ["c.bin", "empty/"]
        assert zipped.read("c.bin") == b"new"

    # Delete a file and a folder.
    assert client.delete("/files/alice/b/a.bin", headers=alice.headers).status_code == 204
    assert client.delete("/files/alice/obs2", headers=alice.headers).status_code == 409
    assert client.delete("/files/alice/obs2?recursive=true",
                         headers=alice.headers).status_code == 204
    assert sorted(_names(client, alice, "")) == ["b", "obs"]
    with _service(app).database.read() as session:
        paths = {row.path for row in session.query(FileNode).all()}
    assert not {p for p in paths if p.startswith(("obs2", "b/a.bin"))}

    # Nothing of the store is on the local disk, and no temporary key is left.
    assert not (app.extensions["vocloud"].config.home / "files").exists()
    left = memory_keys(storage.root)
    assert not [k for k in left if k.startswith(".vocloud-tmp/")]
    assert f"alice/obs/empty/{FOLDER_MARKER}" in left


def test_catalogue_reads_spectra_from_an_fsspec_store(fsspec_app: Flask,
                                                      accounts: dict[str, Account],
                                                      tmp_path: Path) -> None:
    app, client, alice = fsspec_app, fsspec_app.test_client(), accounts["alice"]
    files = write_collection(tmp_path / "demo", generate_collection(2))
    assert all(path.suffix == ".fits" for path in files)
    for path in files:
        _put(client, alice, f"spectra/{path.name}", path.read_bytes())
    rows = _obscore(app)
    assert len(rows) == 2
    assert {row.access_url for row in rows} == {
        f"http://testserver/files/alice/spectra/{path.name}" for path in files}
    assert {(row.owner, row.dataproduct_type) for row in rows} == {("alice", "spectrum")}
    assert all(6.2e-7 < row.em_min < row.em_max < 6.8e-7 for row in rows)

    # A move keeps the DID and points the row at the new place; delete removes it.
    did = {row.access_url.rsplit("/", 1)[1]: row.obs_publisher_did for row in rows}
    first = files[0].name
    response = client.post("/api/files/move",
                           json={"from": f"spectra/{first}", "to": f"moved/{first}"},
                           headers=alice.headers)
    assert response.status_code == 200, response.text
    moved = [row for row in _obscore(app) if row.obs_publisher_did == did[first]]
    assert moved and moved[0].access_url == f"http://testserver/files/alice/moved/{first}"
    assert client.delete(f"/files/alice/moved/{first}", headers=alice.headers).status_code == 204
    assert len(_obscore(app)) == 1
    # The local copies made for reading are gone.
    scratch = app.extensions["vocloud"].config.home / "scratch"
    assert not scratch.exists() or not any(scratch.iterdir())
