"""Plain HTTP access to stored files: ``/files/{user}/{path}`` (DESIGN, "Store and catalogue").

GET and HEAD with ETag = MD5, Range, If-Range, If-None-Match (RFC 9110 sections 13-14),
PUT streamed within the quota, DELETE, and who may see what (DESIGN, "Access").
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tracemalloc
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account, make_config
from uws_service.filestore import FileService
from uws_service.models import FileNode, Visibility

CONTENT = bytes(range(256)) * 40  # 10240 bytes


def _put(client: FlaskClient, account: Account, path: str, data: bytes = CONTENT,
         **headers: str):  # type: ignore[no-untyped-def]
    return client.put(f"/files/{path}", data=data, headers={**account.headers, **headers})


def _service(app: Flask) -> FileService:
    service: FileService = app.extensions["vocloud"].files
    return service


def _rows(app: Flask) -> dict[str, FileNode]:
    with _service(app).database.read() as session:
        return {row.path: row for row in session.query(FileNode).all()}


def test_put_then_get_round_trip(app: Flask, client: FlaskClient,
                                 accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    response = _put(client, alice, "alice/spectra/a.bin", **{"Content-Type": "x-test/spectrum"})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "http://testserver/files/alice/spectra/a.bin"
    md5 = hashlib.md5(CONTENT).hexdigest()
    assert response.headers["ETag"] == f'"{md5}"'

    response = client.get("/files/alice/spectra/a.bin", headers=alice.headers)
    assert response.status_code == 200
    assert response.data == CONTENT
    assert response.headers["ETag"] == f'"{md5}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "x-test/spectrum"
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert "Last-Modified" in response.headers

    rows = _rows(app)
    assert rows["spectra/a.bin"].sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert rows["spectra/a.bin"].size == len(CONTENT)
    assert rows["spectra"].is_dir  # the parent folder got its row


def test_head_gives_headers_without_body(client: FlaskClient,
                                         accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "alice/a.bin")
    response = client.head("/files/alice/a.bin", headers=alice.headers)
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert response.headers["ETag"] == f'"{hashlib.md5(CONTENT).hexdigest()}"'


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-99", 0, 99),                # first bytes
    ("bytes=-100", 10140, 10239),         # suffix
    ("bytes=10000-", 10000, 10239),       # open-ended
    ("bytes=10000-99999", 10000, 10239),  # last byte clipped to the size
])
def test_range_gives_206(client: FlaskClient, accounts: dict[str, Account], header: str,
                         start: int, end: int) -> None:
    alice = accounts["alice"]
    _put(client, alice, "alice/a.bin")
    response = client.get("/files/alice/a.bin", headers={**alice.headers, "Range": header})
    assert response.status_code == 206
    assert response.data == CONTENT[start:end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(CONTENT)}"
    assert response.headers["Content-Length"] == str(end - start + 1)


def test_unsatisfiable_range_gives_416(client: FlaskClient,
                                       accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "alice/a.bin")
    response = client.get("/files/alice/a.bin",
                          headers={**alice.headers, "Range": "bytes=20000-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
    assert response.mimetype == "text/plain"


def test_if_range(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    etag = _put(client, alice, "alice/a.bin").headers["ETag"]
    stale = client.get("/files/alice/a.bin", headers={
        **alice.headers, "Range": "bytes=0-9", "If-Range": '"0123456789abcdef"'})
    assert stale.status_code == 200
    assert stale.data == CONTENT
    fresh = client.get("/files/alice/a.bin", headers={
        **alice.headers, "Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206
    assert fresh.data == CONTENT[:10]
    by_date = client.get("/files/alice/a.bin", headers={
        **alice.headers, "Range": "bytes=0-9", "If-Range": fresh.headers["Last-Modified"]})
    assert by_date.status_code == 206


def test_if_none_match_gives_304(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    etag = _put(client, alice, "alice/a.bin").headers["ETag"]
    response = client.get("/files/alice/a.bin", headers={**alice.headers,
                                                         "If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    other = client.get("/files/alice/a.bin", headers={**alice.headers,
                                                      "If-None-Match": '"other"'})
    assert other.status_code == 200


def test_replace_gives_204_and_new_content(client: FlaskClient,
                                           accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    assert _put(client, alice, "alice/a.bin").status_code == 201
    response = _put(client, alice, "alice/a.bin", b"new content")
    assert response.status_code == 204
    got = client.get("/files/alice/a.bin", headers=alice.headers)
    assert got.data == b"new content"
    assert got.headers["ETag"] == f'"{hashlib.md5(b"new content").hexdigest()}"'


def _small_quota_app(tmp_path: Path, template: object, quota: int) -> Flask:
    from uws_service.app import create_app

    config = make_config(tmp_path / "small", quota_bytes=quota)
    config.home.mkdir(parents=True)
    shutil.copyfile(template.database, config.home / "vocloud.db")  # type: ignore[attr-defined]
    return create_app(config)


def test_quota_exceeded_gives_413_and_keeps_the_old_file(
        tmp_path: Path, accounts: dict[str, Account], _template: object) -> None:
    app = _small_quota_app(tmp_path, _template, quota=15_000)
    client = app.test_client()
    alice = accounts["alice"]
    assert _put(client, alice, "alice/a.bin").status_code == 201
    # Replacing counts the old file as freed: 12000 bytes fit in 15000.
    assert _put(client, alice, "alice/a.bin", b"x" * 12_000).status_code == 204
    response = _put(client, alice, "alice/b.bin", b"y" * 5_000)
    assert response.status_code == 413
    assert response.mimetype == "text/plain"
    assert "quota" in response.text
    assert client.get("/files/alice/b.bin", headers=alice.headers).status_code == 404
    # Too big a replacement leaves the old file intact: refused on its Content-Length
    # before any byte is read, or while the bytes arrive when there is none (chunked).
    response = _put(client, alice, "alice/a.bin", b"z" * 20_000)
    assert response.status_code == 413
    response = client.put("/files/alice/a.bin", input_stream=io.BytesIO(b"z" * 20_000),
                          headers=alice.headers, environ_overrides={
                              "CONTENT_LENGTH": "", "wsgi.input_terminated": True})
    assert response.status_code == 413
    assert "so far" in response.text
    assert client.get("/files/alice/a.bin", headers=alice.headers).data == b"x" * 12_000
    assert not list((app.extensions["vocloud"].config.storage_root / ".vocloud-tmp").iterdir())


@pytest.mark.parametrize("url", [
    "/files/alice/../bob/x",
    "/files/alice/%2e%2e/bob/x",
    "/files/alice/%2E%2E/%2E%2E/escape",
    "/files/alice/a/..%2f..%2fbob/x",
    "/files/alice/.vocloud-tmp/x",
    "/files/alice//x",
    "/files/alice/a//x",
])
def test_path_traversal_is_refused(app: Flask, client: FlaskClient,
                                   accounts: dict[str, Account], url: str) -> None:
    alice = accounts["alice"]
    response = client.put(url, data=b"evil", headers=alice.headers)
    # Never a redirect to a repaired path; "a//b" matches no PUT route (405 or 404).
    assert response.status_code in (400, 404, 405)
    assert response.mimetype == "text/plain"
    root = app.extensions["vocloud"].config.storage_root
    written = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    assert written == []
    assert client.get(url, headers=alice.headers).status_code in (400, 404)


def test_private_file_access(app: Flask, client: FlaskClient,
                             accounts: dict[str, Account]) -> None:
    alice, bob, root = accounts["alice"], accounts["bob"], accounts["root"]
    _put(client, alice, "alice/secret.bin")
    response = client.get("/files/alice/secret.bin", headers=bob.headers)
    assert response.status_code == 404
    assert response.mimetype == "text/plain"
    # The same answer as for a file that does not exist.
    assert client.get("/files/alice/none.bin", headers=bob.headers).status_code == 404
    anonymous = client.get("/files/alice/secret.bin")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Basic realm="vocloud"')
    assert client.get("/files/alice/", headers=bob.headers).status_code == 404
    assert client.get("/files/alice/secret.bin", headers=root.headers).data == CONTENT
    # Others cannot write or delete there; an admin may.
    assert _put(client, bob, "alice/secret.bin", b"bob was here").status_code == 404
    assert client.delete("/files/alice/secret.bin", headers=bob.headers).status_code == 404
    assert client.put("/files/alice/x.bin", data=b"anon").status_code == 401
    assert _put(client, root, "alice/from-admin.bin", b"admin").status_code == 201
    assert client.get("/files/alice/secret.bin", headers=alice.headers).data == CONTENT


def test_public_file_is_readable_by_anyone(app: Flask, client: FlaskClient,
                                           accounts: dict[str, Account]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    _put(client, alice, "alice/open.bin")
    _service(app).set_visibility("alice", "open.bin", Visibility.PUBLIC)
    assert client.get("/files/alice/open.bin").data == CONTENT
    assert client.head("/files/alice/open.bin", headers=bob.headers).status_code == 200
    assert _put(client, bob, "alice/open.bin", b"bob").status_code == 403
    assert client.get("/files/alice/open.bin").data == CONTENT


def test_folder_listing(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "alice/dir/a.bin")
    _put(client, alice, "alice/dir/sub/b.bin", b"bb")
    for url in ("/files/alice/dir", "/files/alice/dir/"):
        response = client.get(url, headers=alice.headers)
        assert response.status_code == 200
        entries = {e["name"]: e for e in response.json["entries"]}
        assert entries["a.bin"]["size"] == len(CONTENT)
        assert entries["a.bin"]["is_dir"] is False
        assert entries["a.bin"]["url"] == "http://testserver/files/alice/dir/a.bin"
        assert entries["a.bin"]["modified"].endswith("Z")
        assert entries["sub"]["is_dir"] is True
        assert entries["sub"]["url"] == "http://testserver/files/alice/dir/sub/"
    top = client.get("/files/alice", headers=alice.headers)
    assert [e["name"] for e in top.json["entries"]] == ["dir"]


def test_put_conflicts(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "alice/dir/a.bin")
    response = _put(client, alice, "alice/dir")
    assert response.status_code == 409
    assert response.mimetype == "text/plain"
    assert _put(client, alice, "alice/dir/a.bin/under").status_code == 409
    bad = _put(client, alice, "alice/dir/")
    assert bad.status_code == 400
    assert "trailing" in bad.text


def test_delete_file_and_folder(app: Flask, client: FlaskClient,
                                accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "alice/dir/a.bin")
    _put(client, alice, "alice/dir/sub/b.bin")
    _put(client, alice, "alice/dir_other.bin")
    assert client.delete("/files/alice/dir/a.bin", headers=alice.headers).status_code == 204
    assert client.get("/files/alice/dir/a.bin", headers=alice.headers).status_code == 404
    assert "dir/a.bin" not in _rows(app)
    response = client.delete("/files/alice/dir", headers=alice.headers)
    assert response.status_code == 409
    assert "recursive" in response.text
    response = client.delete("/files/alice/dir?recursive=true", headers=alice.headers)
    assert response.status_code == 204
    assert client.get("/files/alice/dir", headers=alice.headers).status_code == 404
    assert set(_rows(app)) == {"dir_other.bin"}
    assert client.delete("/files/alice/dir", headers=alice.headers).status_code == 404


class _Generated(io.RawIOBase):
    """``size`` bytes made on demand, so that the test itself holds none of them.

    Seekable only so that Werkzeug's test client can measure it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.md5 = hashlib.md5()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else (self.size + offset if whence == 2
                                               else self.pos + offset)
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        n = min(len(buffer), self.size - self.pos)
        chunk = bytes([(self.pos // 4096) % 251]) * n
        buffer[:n] = chunk
        self.md5.update(chunk)
        self.pos += n
        return n


def test_streamed_upload_does_not_hold_the_body(app: Flask, client: FlaskClient,
                                                accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    size = 20 * 1024 * 1024
    body = _Generated(size)
    tracemalloc.start()
    try:
        response = client.put("/files/alice/big.bin", input_stream=body,
                              headers=alice.headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"
    assert response.headers["ETag"] == f'"{body.md5.hexdigest()}"'
    head = client.head("/files/alice/big.bin", headers=alice.headers)
    assert head.headers["Content-Length"] == str(size)
