"""JSON file management at ``/api/files/...`` (DESIGN, "Service URLs", "Access",
"Store and catalogue"): mkdir, move, copy, visibility, quota.

A move keeps the catalogue rows (their ids, so a stored spectrum keeps its DID);
a copy makes new rows counted against the quota.  Errors are JSON, never HTML.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, Account, make_config
from uws_service.filestore import FileService
from uws_service.models import FileNode

CONTENT = bytes(range(256)) * 40  # 10240 bytes


def _service(app: Flask) -> FileService:
    service: FileService = app.extensions["vocloud"].files
    return service


def _rows(app: Flask, owner: str = "alice") -> dict[str, FileNode]:
    with _service(app).database.read() as session:
        return {row.path: row for row in session.query(FileNode).all()
                if row.owner.name == owner}


def _put(client: FlaskClient, account: Account, path: str, data: bytes = CONTENT) -> None:
    response = client.put(f"/files/{account.name}/{path}", data=data, headers=account.headers)
    assert response.status_code == 201, response.text


def _post(client: FlaskClient, account: Account, action: str,
          body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/files/{action}", json=body, headers=account.headers)


def _assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["message"]
    return body


# mkdir ------------------------------------------------------------------------------


def test_mkdir_creates_folders_and_rows(app: Flask, client: FlaskClient,
                                        accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    response = _post(client, alice, "mkdir", {"path": "a/b"})
    assert response.status_code == 201, response.text
    body = response.get_json()
    assert body["path"] == "a/b"
    assert body["isDir"] is True
    assert body["owner"] == "alice"
    assert response.headers["Location"] == "http://testserver/files/alice/a/b/"
    rows = _rows(app)
    assert rows["a"].is_dir and rows["a/b"].is_dir
    listing = client.get("/files/alice/a/", headers=alice.headers).get_json()
    assert [e["name"] for e in listing["entries"]] == ["b"]


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", ".vocloud-x", ""])
def test_mkdir_bad_path_is_400(client: FlaskClient, accounts: dict[str, Account],
                               path: str) -> None:
    body = _assert_json_error(_post(client, accounts["alice"], "mkdir", {"path": path}), 400)
    assert body["error"] == "UsageError"


def test_mkdir_bad_body_is_400(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _assert_json_error(_post(client, alice, "mkdir", {"path": 3}), 400)
    _assert_json_error(client.post("/api/files/mkdir", data="a", headers=alice.headers), 400)


def test_mkdir_conflicts_are_409(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    assert _post(client, alice, "mkdir", {"path": "a"}).status_code == 201
    _assert_json_error(_post(client, alice, "mkdir", {"path": "a"}), 409)  # exists
    _put(client, alice, "f.bin")
    _assert_json_error(_post(client, alice, "mkdir", {"path": "f.bin"}), 409)  # a file
    _assert_json_error(_post(client, alice, "mkdir", {"path": "f.bin/sub"}), 409)  # parent


def test_anonymous_gets_401_json(client: FlaskClient) -> None:
    response = client.post("/api/files/mkdir", json={"path": "a"})
    _assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    _assert_json_error(client.get("/api/files/quota"), 401)


# move -------------------------------------------------------------------------------


def test_move_file_keeps_row_and_content(app: Flask, client: FlaskClient,
                                         accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "a/x.fits")
    before = _rows(app)["a/x.fits"]
    response = _post(client, alice, "move",
                     {"from": "a/x.fits", "to": "b/x.fits", "overwrite": False})
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["path"] == "b/x.fits" and body["isDir"] is False
    assert body["size"] == len(CONTENT) and body["md5"] == before.md5
    rows = _rows(app)
    assert "a/x.fits" not in rows
    assert rows["b/x.fits"].id == before.id
    assert rows["b"].is_dir  # the new parent got its row
    assert client.get("/files/alice/b/x.fits", headers=alice.headers).data == CONTENT
    assert client.get("/files/alice/a/x.fits", headers=alice.headers).status_code == 404


def test_move_folder_moves_the_rows_under_it(app: Flask, client: FlaskClient,
                                             accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "a/one.bin")
    _put(client, alice, "a/deep/two.bin", b"two")
    _put(client, alice, "ab/other.bin", b"other")  # shares the prefix "a", must stay
    before = _rows(app)
    response = _post(client, alice, "move", {"from": "a", "to": "c/a2"})
    assert response.status_code == 200, response.text
    assert response.get_json()["isDir"] is True
    rows = _rows(app)
    for old, new in [("a", "c/a2"), ("a/one.bin", "c/a2/one.bin"),
                     ("a/deep", "c/a2/deep"), ("a/deep/two.bin", "c/a2/deep/two.bin")]:
        assert old not in rows
        assert rows[new].id == before[old].id
    assert rows["ab/other.bin"].id == before["ab/other.bin"].id
    got = client.get("/files/alice/c/a2/deep/two.bin", headers=alice.headers)
    assert got.data == b"two"


def test_move_overwrite(app: Flask, client: FlaskClient,
                        accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "x.bin", b"new")
    _put(client, alice, "y.bin", b"old")
    moved_id = _rows(app)["x.bin"].id
    _assert_json_error(_post(client, alice, "move", {"from": "x.bin", "to": "y.bin"}), 409)
    response = _post(client, alice, "move",
                     {"from": "x.bin", "to": "y.bin", "overwrite": True})
    assert response.status_code == 200, response.text
    assert _rows(app)["y.bin"].id == moved_id
    assert client.get("/files/alice/y.bin", headers=alice.headers).data == b"new"


def test_move_errors(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "a/x.bin")
    _put(client, alice, "f.bin")
    _assert_json_error(_post(client, alice, "move", {"from": "nope", "to": "b"}), 404)
    _assert_json_error(_post(client, alice, "move", {"from": "a/../x", "to": "b"}), 400)
    _assert_json_error(_post(client, alice, "move", {"from": "a", "to": "/b"}), 400)
    _assert_json_error(_post(client, alice, "move", {"from": "a"}), 400)
    _assert_json_error(_post(client, alice, "move",
                             {"from": "a", "to": "b", "overwrite": "yes"}), 400)
    # a folder into itself, onto itself, onto a folder holding it
    _assert_json_error(_post(client, alice, "move", {"from": "a", "to": "a/b"}), 409)
    _assert_json_error(_post(client, alice, "move", {"from": "a", "to": "a"}), 409)
    _assert_json_error(_post(client, alice, "move",
                             {"from": "a/x.bin", "to": "a", "overwrite": True}), 409)
    # different kinds
    _assert_json_error(_post(client, alice, "move",
                             {"from": "a", "to": "f.bin", "overwrite": True}), 409)
    _assert_json_error(_post(client, alice, "move",
                             {"from": "f.bin", "to": "a", "overwrite": True}), 409)
    # a parent of the target is a file
    _assert_json_error(_post(client, alice, "move", {"from": "a", "to": "f.bin/a"}), 409)
    assert client.get("/files/alice/a/x.bin", headers=alice.headers).data == CONTENT


# copy -------------------------------------------------------------------------------


def test_copy_file_makes_a_new_row(app: Flask, client: FlaskClient,
                                   accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "a/x.fits")
    response = _post(client, alice, "copy", {"from": "a/x.fits", "to": "b/x.fits"})
    assert response.status_code == 201, response.text
    assert response.get_json()["path"] == "b/x.fits"
    assert response.headers["Location"] == "http://testserver/files/alice/b/x.fits"
    rows = _rows(app)
    assert rows["b/x.fits"].id != rows["a/x.fits"].id
    assert rows["b/x.fits"].md5 == rows["a/x.fits"].md5
    assert client.get("/files/alice/b/x.fits", headers=alice.headers).data == CONTENT
    assert client.get("/files/alice/a/x.fits", headers=alice.headers).data == CONTENT


def test_copy_folder_makes_rows_for_everything(app: Flask, client: FlaskClient,
                                               accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "a/one.bin")
    _put(client, alice, "a/deep/two.bin", b"two")
    response = _post(client, alice, "copy", {"from": "a", "to": "c"})
    assert response.status_code == 201, response.text
    rows = _rows(app)
    for old in ["a", "a/one.bin", "a/deep", "a/deep/two.bin"]:
        new = "c" + old[1:]
        assert rows[new].id != rows[old].id
        assert rows[new].is_dir == rows[old].is_dir
    assert client.get("/files/alice/c/deep/two.bin", headers=alice.headers).data == b"two"


def test_copy_errors(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "a/x.bin")
    _put(client, alice, "f.bin")
    _assert_json_error(_post(client, alice, "copy", {"from": "nope", "to": "b"}), 404)
    _assert_json_error(_post(client, alice, "copy", {"from": "a", "to": "b\\c"}), 400)
    _assert_json_error(_post(client, alice, "copy", {"from": "a", "to": "a/b"}), 409)
    _assert_json_error(_post(client, alice, "copy", {"from": "f.bin", "to": "a/x.bin"}), 409)
    _assert_json_error(_post(client, alice, "copy",
                             {"from": "a", "to": "f.bin", "overwrite": True}), 409)


def test_copy_over_quota_is_413(tmp_path: Path, accounts: dict[str, Account],
                                _template: Any) -> None:
    from uws_service.app import create_app

    config = make_config(tmp_path / "small", quota_bytes=25_000)
    config.home.mkdir(parents=True)
    shutil.copyfile(_template.database, config.home / "vocloud.db")
    app = create_app(config)
    client = app.test_client()
    alice = accounts["alice"]
    _put(client, alice, "a/x.bin")  # 10240 bytes
    assert _post(client, alice, "copy", {"from": "a", "to": "b"}).status_code == 201
    body = _assert_json_error(_post(client, alice, "copy", {"from": "a", "to": "c"}), 413)
    assert "quota" in body["message"]
    assert client.get("/files/alice/c/", headers=alice.headers).status_code == 404
    assert "c" not in _rows(app)
    # replacing a file credits its bytes
    response = _post(client, alice, "copy",
                     {"from": "a/x.bin", "to": "b/x.bin", "overwrite": True})
    assert response.status_code == 201, response.text
    quota = client.get("/api/files/quota", headers=alice.headers).get_json()
    assert quota == {"owner": "alice", "quota": 25_000, "used": 20_480, "free": 4_520}


# visibility -------------------------------------------------------------------------


def test_visibility_public_allows_anonymous_get(client: FlaskClient,
                                                accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "pub/x.bin")
    assert client.get("/files/alice/pub/x.bin").status_code == 401
    response = _post(client, alice, "visibility", {"path": "pub/x.bin", "visibility": "public"})
    assert response.status_code == 200, response.text
    assert response.get_json()["visibility"] == "public"
    assert client.get("/files/alice/pub/x.bin").data == CONTENT
    response = _post(client, alice, "visibility",
                     {"path": "pub/x.bin", "visibility": "private"})
    assert response.status_code == 200
    assert client.get("/files/alice/pub/x.bin").status_code == 401


def test_visibility_recursive(client: FlaskClient, accounts: dict[str, Account],
                              app: Flask) -> None:
    alice = accounts["alice"]
    _put(client, alice, "d/one.bin")
    _put(client, alice, "d/sub/two.bin", b"two")
    response = _post(client, alice, "visibility", {"path": "d", "visibility": "public"})
    assert response.status_code == 200
    assert client.get("/files/alice/d/one.bin").status_code == 401  # not recursive
    response = _post(client, alice, "visibility",
                     {"path": "d/", "visibility": "public", "recursive": True})
    assert response.status_code == 200, response.text
    assert client.get("/files/alice/d/one.bin").data == CONTENT
    assert client.get("/files/alice/d/sub/two.bin").data == b"two"
    assert {e["name"] for e in client.get("/files/alice/d/").get_json()["entries"]} == \
        {"one.bin", "sub"}


def test_visibility_of_a_file_without_a_row(app: Flask, client: FlaskClient,
                                            accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    storage = _service(app).storage
    storage.write("alice", "ingested/s.bin", [b"ingested"])  # no row, as by `vocloud ingest`
    response = _post(client, alice, "visibility",
                     {"path": "ingested", "visibility": "public", "recursive": True})
    assert response.status_code == 200, response.text
    got = client.get("/files/alice/ingested/s.bin")
    assert got.status_code == 200 and got.data == b"ingested"


def test_visibility_errors(client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "x.bin")
    _assert_json_error(_post(client, alice, "visibility",
                             {"path": "x.bin", "visibility": "friends"}), 400)
    _assert_json_error(_post(client, alice, "visibility",
                             {"path": "x.bin", "visibility": "public", "recursive": 1}), 400)
    _assert_json_error(_post(client, alice, "visibility",
                             {"path": "../x", "visibility": "public"}), 400)
    _assert_json_error(_post(client, alice, "visibility",
                             {"path": "nope", "visibility": "public"}), 404)


# quota ------------------------------------------------------------------------------


def test_quota(app: Flask, client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    quota = _service(app).quota_bytes
    response = client.get("/api/files/quota", headers=alice.headers)
    assert response.status_code == 200
    assert response.get_json() == {"owner": "alice", "quota": quota, "used": 0, "free": quota}
    _put(client, alice, "x.bin")
    body = client.get("/api/files/quota", headers=alice.headers).get_json()
    assert body["used"] == len(CONTENT)
    assert body["free"] == quota - len(CONTENT)


# Access -----------------------------------------------------------------------------


def test_bob_cannot_touch_alices_tree(client: FlaskClient,
                                      accounts: dict[str, Account]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    _put(client, alice, "a/x.bin")
    for action, body in [("mkdir", {"path": "new"}),
                         ("move", {"from": "a/x.bin", "to": "b.bin"}),
                         ("copy", {"from": "a/x.bin", "to": "b.bin"}),
                         ("visibility", {"path": "a/x.bin", "visibility": "public"})]:
        _assert_json_error(_post(client, bob, action, {**body, "owner": "alice"}), 404)
    _assert_json_error(client.get("/api/files/quota?owner=alice", headers=bob.headers), 404)
    # bob's own tree is his: the same paths there do not exist
    _assert_json_error(_post(client, bob, "move", {"from": "a/x.bin", "to": "b.bin"}), 404)
    assert client.get("/files/alice/a/x.bin", headers=alice.headers).data == CONTENT


def test_admin_acts_on_another_tree(app: Flask, client: FlaskClient,
                                    accounts: dict[str, Account]) -> None:
    alice, root = accounts["alice"], accounts["root"]
    _put(client, alice, "a/x.bin")
    row_id = _rows(app)["a/x.bin"].id
    assert _post(client, root, "mkdir", {"path": "made", "owner": "alice"}).status_code == 201
    response = _post(client, root, "move", {"from": "a/x.bin", "to": "made/x.bin",
                                            "owner": "alice"})
    assert response.status_code == 200, response.text
    assert response.get_json()["owner"] == "alice"
    assert _rows(app)["made/x.bin"].id == row_id
    assert _post(client, root, "copy", {"from": "made", "to": "c",
                                        "owner": "alice"}).status_code == 201
    assert _post(client, root, "visibility", {"path": "c/x.bin", "visibility": "public",
                                              "owner": "alice"}).status_code == 200
    assert client.get("/files/alice/c/x.bin").data == CONTENT
    body = client.get("/api/files/quota?owner=alice", headers=root.headers).get_json()
    assert body["owner"] == "alice" and body["used"] == 2 * len(CONTENT)
    assert not _rows(app, "root")  # nothing landed in the admin's own tree
    _assert_json_error(_post(client, root, "mkdir", {"path": "x", "owner": "nobody"}), 404)


def test_cookie_post_needs_csrf_token(client: FlaskClient) -> None:
    response = client.post("/api/login", json={"name": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.get_json()["csrfToken"]
    refused = client.post("/api/files/mkdir", json={"path": "a"})
    _assert_json_error(refused, 403)
    response = client.post("/api/files/mkdir", json={"path": "a"},
                           headers={"X-CSRF-Token": token})
    assert response.status_code == 201, response.text
    assert client.get("/api/files/quota").status_code == 200  # GET needs no token


# Folders differing only in case -----------------------------------------------------


def test_folders_differing_in_case_are_separate(app: Flask, client: FlaskClient,
                                               accounts: dict[str, Account]) -> None:
    """``DATA/`` is not under ``data/``: delete, move and copy of one leave the other's
    rows (visibility, DIDs) alone, and a move where both exist does not collide."""
    alice = accounts["alice"]
    _put(client, alice, "DATA/keep.csv")
    _post(client, alice, "visibility", {"path": "DATA", "visibility": "public",
                                        "recursive": True})
    _put(client, alice, "data/junk.csv")
    assert client.delete("/files/alice/data?recursive=true",
                         headers=alice.headers).status_code == 204
    assert client.get("/files/alice/DATA/keep.csv").status_code == 200
    assert _rows(app)["DATA/keep.csv"].visibility == "public"

    _put(client, alice, "S/x.csv")
    _put(client, alice, "s/x.csv")
    _post(client, alice, "visibility", {"path": "S/x.csv", "visibility": "public"})
    assert _post(client, alice, "move", {"from": "s", "to": "t"}).status_code == 200
    rows = _rows(app)
    assert rows["S/x.csv"].visibility == "public"
    assert rows["t/x.csv"].visibility == "private"
    assert client.get("/files/alice/t/x.csv").status_code == 401

    _put(client, alice, "T2/y.csv")
    _post(client, alice, "visibility", {"path": "T2", "visibility": "public",
                                        "recursive": True})
    assert _post(client, alice, "copy", {"from": "t", "to": "t2"}).status_code == 201
    assert _rows(app)["T2/y.csv"].visibility == "public"
