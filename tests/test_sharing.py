"""Sharing stored files with named users (issue 3, "Store"; DESIGN "Access").

A node shared with bob is readable by bob (GET, HEAD, listing, zip) and by
nobody else besides its owner and the admins; bob cannot change it (403,
since he can see it); carol gets the same 404 as for a missing node.  New
files in a shared folder inherit its readers; making a node private ends
its sharing.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Account

DATA = b"wavelength,flux\n6562.0,1.0\n6563.0,2.0\n"


def _put(client: FlaskClient, account: Account, path: str, data: bytes = DATA) -> None:
    response = client.put(f"/files/{account.name}/{path}", data=data, headers=account.headers)
    assert response.status_code == 201, response.text


def _share(client: FlaskClient, account: Account, path: str, users: list[str],
           **extra: Any) -> Any:
    return client.post("/api/files/share", json={"path": path, "users": users, **extra},
                       headers=account.headers)


def test_shared_folder_is_readable_by_the_named_user_only(
        client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice, bob, carol = accounts["alice"], accounts["bob"], accounts["carol"]
    _put(client, alice, "night1/a.csv")
    _put(client, alice, "night1/b.csv")
    _put(client, alice, "private.csv")
    response = _share(client, alice, "night1", ["bob"])
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["visibility"] == "shared"
    assert body["sharedWith"] == ["bob"]

    assert client.get("/files/alice/night1/a.csv", headers=bob.headers).data == DATA
    assert client.head("/files/alice/night1/b.csv", headers=bob.headers).status_code == 200
    listing = client.get("/files/alice/night1/", headers=bob.headers).get_json()
    assert [e["name"] for e in listing["entries"]] == ["a.csv", "b.csv"]
    assert listing["entries"][0]["shared_with"] == []  # only the owner sees the readers
    # bob sees the shared folder in alice's root, not her private file.
    root = client.get("/files/alice/", headers=bob.headers)
    assert root.status_code == 404  # the root itself is not shared
    archive = client.get("/files/alice/night1/?format=zip", headers=bob.headers)
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert sorted(names) == ["a.csv", "b.csv"]

    for path in ("night1/a.csv", "night1/", "private.csv"):
        assert client.get(f"/files/alice/{path}", headers=carol.headers).status_code == 404
    assert client.get("/files/alice/private.csv", headers=bob.headers).status_code == 404
    anonymous = client.get("/files/alice/night1/a.csv")
    assert anonymous.status_code == 401
    assert "Basic" in anonymous.headers["WWW-Authenticate"]


def test_readers_cannot_change_a_shared_node(client: FlaskClient,
                                             accounts: dict[str, Account]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    _put(client, alice, "shared/a.csv")
    _share(client, alice, "shared", ["bob"])
    assert client.put("/files/alice/shared/a.csv", data=b"x",
                      headers=bob.headers).status_code == 403
    assert client.delete("/files/alice/shared/a.csv", headers=bob.headers).status_code == 403
    assert _share(client, bob, "shared", ["bob"], owner="alice").status_code == 403
    assert client.get("/files/alice/shared/a.csv", headers=alice.headers).data == DATA


def test_new_files_inherit_the_folder_readers(client: FlaskClient,
                                              accounts: dict[str, Account]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    _put(client, alice, "obs/first.csv")
    _share(client, alice, "obs", ["bob"])
    _put(client, alice, "obs/later/second.csv")
    assert client.get("/files/alice/obs/later/second.csv",
                      headers=bob.headers).data == DATA
    node = client.get("/files/alice/obs/later/", headers=alice.headers).get_json()
    assert node["entries"][0]["visibility"] == "shared"


def test_sharing_ends_with_an_empty_list_or_private(client: FlaskClient,
                                                    accounts: dict[str, Account]) -> None:
    alice, bob = accounts["alice"], accounts["bob"]
    _put(client, alice, "s/a.csv")
    _share(client, alice, "s", ["bob", "carol"])
    assert client.get("/files/alice/s/a.csv", headers=bob.headers).status_code == 200
    body = _share(client, alice, "s", ["carol"]).get_json()
    assert body["sharedWith"] == ["carol"]
    assert client.get("/files/alice/s/a.csv", headers=bob.headers).status_code == 404
    response = client.post("/api/files/visibility", headers=alice.headers,
                           json={"path": "s", "visibility": "private", "recursive": True})
    assert response.status_code == 200, response.text
    assert response.get_json()["sharedWith"] == []
    assert client.get("/files/alice/s/a.csv",
                      headers=accounts["carol"].headers).status_code == 404
    assert _share(client, alice, "s", []).get_json()["visibility"] == "private"


def test_public_nodes_stay_public_when_shared(client: FlaskClient,
                                              accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "pub/a.csv")
    client.post("/api/files/visibility", headers=alice.headers,
                json={"path": "pub", "visibility": "public", "recursive": True})
    body = _share(client, alice, "pub", ["bob"]).get_json()
    assert body["visibility"] == "public"
    assert client.get("/files/alice/pub/a.csv").data == DATA
    # Only the owner learns who else may read it.
    for headers in ({}, accounts["bob"].headers, accounts["carol"].headers):
        entries = client.get("/files/alice/pub/", headers=headers).get_json()["entries"]
        assert entries[0]["shared_with"] == []
    owner_view = client.get("/files/alice/pub/", headers=alice.headers).get_json()
    assert owner_view["entries"][0]["shared_with"] == ["bob"]


def test_bad_share_requests_are_refused(client: FlaskClient,
                                        accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    _put(client, alice, "x/a.csv")
    unknown = _share(client, alice, "x", ["nobody"])
    assert unknown.status_code == 400
    assert "nobody" in unknown.get_json()["message"]
    assert _share(client, alice, "x", "bob").status_code == 400  # type: ignore[arg-type]
    assert _share(client, alice, "missing", ["bob"]).status_code == 404
    assert _share(client, alice, "../etc", ["bob"]).status_code == 400
    shared = client.post("/api/files/visibility", headers=alice.headers,
                         json={"path": "x", "visibility": "shared"})
    assert shared.status_code == 400
    # Nothing was shared by the refused requests.
    assert client.get("/files/alice/x/a.csv",
                      headers=accounts["bob"].headers).status_code == 404
