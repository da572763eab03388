"""Many files at once: multipart ``POST /files/{user}/{folder}``, folder downloads as a
streamed ZIP64 and ``vocloud upload`` (DESIGN, "Store and catalogue").
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account, LiveService, make_config
from uws_service.cli import main


def _app(tmp_path: Path, template: object, **overrides: object) -> Flask:
    from uws_service.app import create_app

    config = make_config(tmp_path / "custom", **overrides)
    config.home.mkdir(parents=True)
    shutil.copyfile(template.database, config.home / "vocloud.db")  # type: ignore[attr-defined]
    return create_app(config)


def _post(client: FlaskClient, account: Account, folder: str,
          files: list[tuple[str, bytes]]):  # type: ignore[no-untyped-def]
    return client.post(f"/files/{folder}", headers=account.headers,
                       content_type="multipart/form-data",
                       data={"file": [(io.BytesIO(data), name) for name, data in files]})


def _stored_files(app: Flask) -> list[Path]:
    root = app.extensions["vocloud"].config.storage_root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_multipart_upload_stores_every_file(client: FlaskClient,
                                            accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    files = [("a.fits", b"A" * 1000), ("b.csv", b"1,2\n"), ("night1/c.fits", b"C" * 3000)]
    response = _post(client, alice, "alice/obs", files)
    assert response.status_code == 201, response.text
    stored = {entry["path"]: entry for entry in response.json["stored"]}
    assert response.json["refused"] == []
    for name, data in files:
        entry = stored[f"obs/{name}"]
        assert entry["size"] == len(data)
        assert entry["md5"] == hashlib.md5(data).hexdigest()
        got = client.get(f"/files/alice/obs/{name}", headers=alice.headers)
        assert got.status_code == 200
        assert got.data == data
    listing = client.get("/files/alice/obs", headers=alice.headers).json
    md5s = {e["name"]: e["md5"] for e in listing["entries"]}
    assert md5s["a.fits"] == hashlib.md5(b"A" * 1000).hexdigest()
    assert md5s["night1"] is None


def test_traversal_filename_is_refused_and_nothing_written(
        app: Flask, client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    response = _post(client, alice, "alice/obs", [("../../bob/evil.fits", b"evil")])
    assert response.status_code == 400
    [refusal] = response.json["refused"]
    assert refusal["part"] == "../../bob/evil.fits"
    assert "'..'" in refusal["reason"]
    assert response.json["stored"] == []
    assert _stored_files(app) == []
    # Next to good parts, the bad one is refused and the others are stored.
    response = _post(client, alice, "alice/obs", [("ok.txt", b"ok"), ("/abs.txt", b"x")])
    assert response.status_code == 201
    assert [e["path"] for e in response.json["stored"]] == ["obs/ok.txt"]
    assert [r["part"] for r in response.json["refused"]] == ["/abs.txt"]


def test_too_many_parts_gives_413(tmp_path: Path, accounts: dict[str, Account],
                                  _template: object) -> None:
    app = _app(tmp_path, _template, upload_max_parts=2)
    client = app.test_client()
    response = _post(client, accounts["alice"], "alice/obs",
                     [("a", b"1"), ("b", b"2"), ("c", b"3")])
    assert response.status_code == 413
    assert "at most 2" in response.text
    response = _post(client, accounts["alice"], "alice/obs", [("a", b"1"), ("b", b"2")])
    assert response.status_code == 201


def test_quota_is_counted_across_parts(tmp_path: Path, accounts: dict[str, Account],
                                       _template: object) -> None:
    app = _app(tmp_path, _template, quota_bytes=10_000)
    client = app.test_client()
    alice = accounts["alice"]
    response = _post(client, alice, "alice/obs",
                     [("a", b"a" * 4_000), ("b", b"b" * 4_000), ("c", b"c" * 4_000),
                      ("d", b"d" * 1_000)])
    assert response.status_code == 201
    assert [e["path"] for e in response.json["stored"]] == ["obs/a", "obs/b", "obs/d"]
    [refusal] = response.json["refused"]
    assert refusal["part"] == "c" and refusal["status"] == 413
    assert "quota" in refusal["reason"]
    assert client.get("/files/alice/obs/c", headers=alice.headers).status_code == 404
    # Nothing fits any more: nothing stored, so the request gets the refusal's status.
    response = _post(client, alice, "alice/obs", [("e", b"e" * 2_000)])
    assert response.status_code == 413
    assert not list((app.extensions["vocloud"].config.storage_root / ".vocloud-tmp").iterdir())


def test_post_needs_multipart(client: FlaskClient, accounts: dict[str, Account]) -> None:
    response = client.post("/files/alice/obs", data=b"raw", headers=accounts["alice"].headers)
    assert response.status_code == 400
    assert client.post("/files/alice/obs", data={}).status_code == 401


def test_folder_downloads_as_zip(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    big = bytes(range(256)) * 8192  # 2 MiB: more than one chunk
    files = {"a.fits": b"A" * 1000, "night1/b.fits": big, "night1/deep/c.txt": b"c"}
    assert _post(client, alice, "alice/obs", list(files.items())).status_code == 201
    for request in ({"query_string": {"format": "zip"}},
                    {"headers": {"Accept": "application/zip"}}):
        headers = {**alice.headers, **request.get("headers", {})}  # type: ignore[dict-item]
        response = client.get("/files/alice/obs", headers=headers,
                              query_string=request.get("query_string"))
        assert response.status_code == 200
        assert response.mimetype == "application/zip"
        assert response.headers["Content-Disposition"] == 'attachment; filename="obs.zip"'
        with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
            assert archive.testzip() is None
            names = archive.namelist()
            assert {n for n in names if not n.endswith("/")} == set(files)
            assert {"night1/", "night1/deep/"} <= set(names)
            for name, data in files.items():
                assert archive.read(name) == data
    # The listing stays the default.
    assert client.get("/files/alice/obs", headers=alice.headers).mimetype == "application/json"
    # Others get no zip of a private folder.
    bob = accounts["bob"]
    assert client.get("/files/alice/obs?format=zip", headers=bob.headers).status_code == 404


def _run_upload(live: LiveService, local: Path, remote: str) -> str:
    result = CliRunner().invoke(main, ["upload", str(local), remote, "--url", live.url,
                                       "--token", live.accounts["alice"].token])
    assert result.exit_code == 0, result.output
    return result.output


def test_vocloud_upload_skips_what_is_there(live: LiveService, tmp_path: Path) -> None:
    local = tmp_path / "spectra"
    (local / "night1").mkdir(parents=True)
    (local / "a.fits").write_bytes(b"A" * 5000)
    (local / "b.csv").write_bytes(b"1,2\n3,4\n")
    (local / "night1" / "c.fits").write_bytes(b"C" * 7000)
    output = _run_upload(live, local, "cli-up")
    assert "uploaded 3, skipped 0, failed 0" in output
    headers = live.accounts["alice"].headers
    import requests

    got = requests.get(f"{live.url}/files/alice/cli-up/night1/c.fits", headers=headers,
                       timeout=10)
    assert got.content == b"C" * 7000
    output = _run_upload(live, local, "cli-up")
    assert "uploaded 0, skipped 3, failed 0" in output
    (local / "night1" / "c.fits").write_bytes(b"changed")
    output = _run_upload(live, local, "cli-up")
    assert "uploaded 1, skipped 2, failed 0" in output
    got = requests.get(f"{live.url}/files/alice/cli-up/night1/c.fits", headers=headers,
                       timeout=10)
    assert got.content == b"changed"
