"""Authentication and access: Basic, Bearer, portal cookie + CSRF, tokens API, user isolation.

DESIGN "Access": anonymous requests to protected resources get 401 with a
Basic challenge; an authenticated non-owner gets 404; tokens read
``vct_{id}_{secret}`` and only their SHA-256 is stored; passwords use argon2.
"""

from __future__ import annotations

import hashlib
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.conftest import PASSWORD, Account, basic

LIST = "/uws/selftest"
TOKEN_RE = re.compile(r"^vct_(\d+)_([A-Za-z0-9_-]{20,})$")


def _create(client: FlaskClient, account: Account, data: dict[str, str] | None = None) -> str:
    r = client.post(LIST, headers=account.headers, data=data or {"message": "alice-secret"})
    assert r.status_code == 303
    return str(r.headers["Location"].rsplit("/", 1)[1])


def _assert_challenge(response: object) -> None:
    from werkzeug.test import TestResponse

    assert isinstance(response, TestResponse)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="vocloud"')


# Anonymous ------------------------------------------------------------------------


def test_anonymous_gets_basic_challenge(client: FlaskClient,
                                        accounts: dict[str, Account]) -> None:
    """Anonymous requests to the job list, a job URL and /api/tokens get 401 with
    WWW-Authenticate: Basic realm="vocloud" (pyvo and TOPCAT send credentials only then)."""
    job_id = _create(client, accounts["alice"])
    for method, url in (("get", LIST), ("post", LIST), ("get", f"{LIST}/{job_id}"),
                        ("get", f"{LIST}/{job_id}/phase"), ("delete", f"{LIST}/{job_id}"),
                        ("get", "/api/tokens"), ("post", "/api/tokens")):
        response = getattr(client, method)(url)
        _assert_challenge(response)
        assert b"alice-secret" not in response.data
    # Nothing was deleted by the anonymous DELETE.
    assert client.get(f"{LIST}/{job_id}", headers=accounts["alice"].headers).status_code == 200


def test_vosi_is_anonymous(client: FlaskClient) -> None:
    """VOSI /capabilities and /availability need no credentials (DESIGN: Auth)."""
    for url in ("/capabilities", "/availability"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "WWW-Authenticate" not in r.headers


# Credentials ------------------------------------------------------------------------


def test_basic_with_password(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """HTTP Basic with name and password authenticates as that user."""
    job_id = _create(client, accounts["alice"])
    r = client.get(f"{LIST}/{job_id}/owner", headers=accounts["alice"].basic)
    assert r.status_code == 200
    assert r.get_data(as_text=True) == "alice"


def test_basic_with_token_as_password(client: FlaskClient,
                                      accounts: dict[str, Account]) -> None:
    """HTTP Basic with the user name and an API token as the password works (TOPCAT); the
    token of another user under this name does not."""
    alice, bob = accounts["alice"], accounts["bob"]
    r = client.post(LIST, headers=basic("alice", alice.token), data={"duration": "0"})
    assert r.status_code == 303
    job_id = r.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"{LIST}/{job_id}/owner",
                      headers=basic("alice", alice.token)).get_data(as_text=True) == "alice"
    _assert_challenge(client.get(LIST, headers=basic("alice", bob.token)))


def test_bearer(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """Authorization: Bearer TOKEN authenticates as the token's owner."""
    r = client.get("/api/whoami", headers=accounts["bob"].headers)
    assert r.status_code == 200
    assert r.get_json()["user"] == "bob"


def test_wrong_credentials_are_401(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """A wrong password, an unknown user, a malformed or forged token: 401 with the challenge,
    never a fall-back to anonymous."""
    alice = accounts["alice"]
    token_id = TOKEN_RE.match(alice.token).group(1)  # type: ignore[union-attr]
    for headers in (basic("alice", "wrong password"), basic("nobody", PASSWORD),
                    {"Authorization": "Bearer nonsense"},
                    {"Authorization": f"Bearer vct_{token_id}_{'x' * 43}"},
                    {"Authorization": "Basic !!!"}):
        _assert_challenge(client.get(LIST, headers=headers))


def test_revoked_token_is_401(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """After DELETE /api/tokens/{id} (204) the token is refused, as Bearer and in Basic."""
    alice = accounts["alice"]
    r = client.post("/api/tokens", headers=alice.basic, json={"label": "laptop"})
    token = r.get_json()["token"]
    token_id = TOKEN_RE.match(token).group(1)  # type: ignore[union-attr]
    assert client.get(LIST, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = client.delete(f"/api/tokens/{token_id}", headers=alice.basic)
    assert r.status_code == 204
    _assert_challenge(client.get(LIST, headers={"Authorization": f"Bearer {token}"}))
    _assert_challenge(client.get(LIST, headers=basic("alice", token)))
    # The other token of alice still works.
    assert client.get(LIST, headers=alice.headers).status_code == 200


# User isolation -----------------------------------------------------------------------


def test_other_users_job_is_404(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """Bob cannot see or touch alice's job: every GET, POST and DELETE gives 404 without any
    of the job's content, and the job is unchanged afterwards (DESIGN: non-owner -> 404)."""
    alice, bob = accounts["alice"], accounts["bob"]
    job_id = _create(client, alice)
    job = f"{LIST}/{job_id}"
    attempts = [("get", job, None), ("get", f"{job}/phase", None),
                ("get", f"{job}/parameters", None), ("get", f"{job}/results", None),
                ("get", f"{job}/owner", None), ("get", f"{job}?WAIT=5", None),
                ("post", f"{job}/phase", {"PHASE": "RUN"}),
                ("post", f"{job}/parameters", {"message": "bob was here"}),
                ("post", job, {"ACTION": "DELETE"}),
                ("post", f"{job}/destruction", {"DESTRUCTION": "2030-01-01T00:00:00Z"}),
                ("delete", job, None)]
    for method, url, data in attempts:
        r = getattr(client, method)(url, headers=bob.headers, data=data)
        assert r.status_code == 404, (method, url)
        assert b"alice" not in r.data
        assert b"alice-secret" not in r.data
    r = client.get(job, headers=alice.headers)
    assert r.status_code == 200
    assert b"<uws:phase>PENDING</uws:phase>" in r.data
    assert b"alice-secret" in r.data
    assert b"bob was here" not in r.data


def test_job_list_excludes_other_users(client: FlaskClient,
                                       accounts: dict[str, Account]) -> None:
    """Bob's job list shows his job only, never alice's."""
    alice_job = _create(client, accounts["alice"])
    bob_job = _create(client, accounts["bob"], {"duration": "0"})
    listing = client.get(LIST, headers=accounts["bob"].headers).data
    assert bob_job.encode() in listing
    assert alice_job.encode() not in listing
    assert b"alice" not in listing


def test_admin_reads_any_job(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """The admin root lists and reads alice's job; its owner stays alice."""
    job_id = _create(client, accounts["alice"])
    root = accounts["root"]
    assert job_id.encode() in client.get(LIST, headers=root.headers).data
    r = client.get(f"{LIST}/{job_id}", headers=root.headers)
    assert r.status_code == 200
    assert b"<uws:ownerId>alice</uws:ownerId>" in r.data
    assert client.get(f"{LIST}/{job_id}/owner",
                      headers=root.headers).get_data(as_text=True) == "alice"


# Tokens API -------------------------------------------------------------------------------


def test_tokens_api(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """POST /api/tokens: 201 with the token shown once (vct_{id}_{secret}); GET lists the
    user's tokens without any secret; DELETE revokes (204) and the list shows it revoked."""
    alice = accounts["alice"]
    r = client.post("/api/tokens", headers=alice.headers, json={"label": "notebook"})
    assert r.status_code == 201
    body = r.get_json()
    token = body["token"]
    match = TOKEN_RE.match(token)
    assert match is not None
    token_id, secret = int(match.group(1)), match.group(2)
    assert body["label"] == "notebook"
    r = client.get("/api/tokens", headers=alice.headers)
    assert r.status_code == 200
    listed = r.get_json()["tokens"]
    assert secret not in r.get_data(as_text=True)
    assert alice.token.split("_", 2)[2] not in r.get_data(as_text=True)
    assert all("token" not in t and "secret" not in t for t in listed)
    entry = next(t for t in listed if t["id"] == token_id)
    assert entry["label"] == "notebook"
    assert entry["revoked"] is None
    assert len(listed) == 2  # the fixture's token and this one
    assert client.delete(f"/api/tokens/{token_id}", headers=alice.headers).status_code == 204
    listed = client.get("/api/tokens", headers=alice.headers).get_json()["tokens"]
    assert next(t for t in listed if t["id"] == token_id)["revoked"]


def test_tokens_of_others_are_invisible(client: FlaskClient,
                                        accounts: dict[str, Account]) -> None:
    """Bob's token list holds only his tokens; revoking alice's token is a 404 and leaves
    it working."""
    alice, bob = accounts["alice"], accounts["bob"]
    alice_id = int(TOKEN_RE.match(alice.token).group(1))  # type: ignore[union-attr]
    bob_ids = {t["id"] for t in client.get("/api/tokens", headers=bob.headers)
               .get_json()["tokens"]}
    assert alice_id not in bob_ids
    r = client.delete(f"/api/tokens/{alice_id}", headers=bob.headers)
    assert r.status_code == 404
    assert client.get(LIST, headers=alice.headers).status_code == 200


# Portal session ------------------------------------------------------------------------------


def test_portal_session_cookie_and_csrf(client: FlaskClient,
                                        accounts: dict[str, Account]) -> None:
    """POST /api/login sets an HttpOnly, SameSite=Lax session cookie; a GET with the cookie is
    authenticated; a cookie POST without X-CSRF-Token is 403 and creates nothing; with the
    token it is the usual 303."""
    assert accounts["alice"]
    r = client.post("/api/login", json={"name": "alice", "password": PASSWORD})
    assert r.status_code == 200
    csrf = r.get_json()["csrfToken"]
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("vocloud_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert client.get_cookie("vocloud_session") is not None
    r = client.get("/api/whoami")
    assert r.status_code == 200
    assert r.get_json()["user"] == "alice"
    assert client.get(LIST).status_code == 200
    r = client.post(LIST, data={"duration": "0"})
    assert r.status_code == 403
    r = client.post(LIST, data={"duration": "0"}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert b"jobref" not in client.get(LIST).data
    r = client.post(LIST, data={"duration": "0"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 303
    assert b"jobref" in client.get(LIST).data


def test_login_with_wrong_password_sets_no_session(client: FlaskClient,
                                                   accounts: dict[str, Account]) -> None:
    """A failed portal log-in is 401 and leaves the client anonymous."""
    assert accounts["alice"]
    r = client.post("/api/login", json={"name": "alice", "password": "not it at all"})
    assert r.status_code == 401
    assert client.get_cookie("vocloud_session") is None
    assert client.get("/api/whoami").status_code == 401


# What the database keeps ------------------------------------------------------------------------


def test_database_keeps_only_hashes(app: Flask, accounts: dict[str, Account]) -> None:
    """The api_token table keeps SHA-256 of each token's secret (never the secret) and the
    user_account table argon2 hashes of passwords (never the password)."""
    database = app.extensions["vocloud"].database
    with database.read() as session:
        tokens = {row.id: row.secret_sha256 for row in session.execute(
            text("SELECT id, secret_sha256 FROM api_token"))}
        users = {row.name: row.password_hash for row in session.execute(
            text("SELECT name, password_hash FROM user_account"))}
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM api_token"))
                        for v in row)
    for account in accounts.values():
        match = TOKEN_RE.match(account.token)
        assert match is not None
        token_id, secret = int(match.group(1)), match.group(2)
        assert tokens[token_id] == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in dump
        assert users[account.name].startswith("$argon2")
        assert PASSWORD not in users[account.name]
