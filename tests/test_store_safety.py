"""Hostile input to the store (issue 3, "Safety"): oversized files and VOTables with
entity declarations.  Each is refused or flagged with a clear reason, and nothing stored
before is changed or exposed.

Elsewhere: traversal and absolute names (tests/test_files.py,
tests/test_files_upload.py), symbolic links (tests/test_storage.py,
tests/test_ingest.py), zip slip and outgoing URLs to private or link-local
addresses (the import tests).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from tests.test_files_upload import _app
from uws_service.filestore import FileService
from uws_service.models import FileNode, ObsCore

SECRET = "TOP-SECRET-LINE"

XXE_VOTABLE = b"""<?xml version="1.0"?>
<!DOCTYPE VOTABLE [<!ENTITY leak SYSTEM "file://%s">]>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
 <RESOURCE><TABLE><DESCRIPTION>&leak;</DESCRIPTION>
  <FIELD name="WAVELENGTH" datatype="double" unit="Angstrom"/>
  <FIELD name="FLUX" datatype="double"/>
  <DATA><TABLEDATA><TR><TD>6562</TD><TD>1</TD></TR><TR><TD>6563</TD><TD>2</TD></TR>
  </TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<VOTABLE><RESOURCE><TABLE><DESCRIPTION>&lol3;</DESCRIPTION></TABLE></RESOURCE></VOTABLE>
"""


def _catalogue(app: Flask) -> tuple[dict[str, FileNode], list[ObsCore]]:
    service: FileService = app.extensions["vocloud"].files
    with service.database.read() as session:
        nodes = {row.path: row for row in session.query(FileNode).all()}
        rows = session.query(ObsCore).all()
        session.expunge_all()
    return nodes, rows


def test_oversized_file_is_refused_and_the_old_one_kept(
        tmp_path: Path, accounts: dict[str, Account], _template: object) -> None:
    app = _app(tmp_path, _template, max_file_bytes=4096)
    client = app.test_client()
    alice = accounts["alice"]
    assert client.put("/files/alice/s.csv", data=b"1,2\n" * 100,
                      headers=alice.headers).status_code == 201
    # Announced too large: refused before the body is read.
    response = client.put("/files/alice/s.csv", data=b"x" * 5000, headers=alice.headers)
    assert response.status_code == 413
    assert response.mimetype == "text/plain"
    assert "at most" in response.text
    # Streamed without a length: refused once the count passes the limit.
    response = client.put("/files/alice/s.csv", input_stream=io.BytesIO(b"y" * 6000),
                          headers=alice.headers, environ_overrides={
                              "CONTENT_LENGTH": "", "wsgi.input_terminated": True})
    assert response.status_code == 413
    assert client.get("/files/alice/s.csv", headers=alice.headers).data == b"1,2\n" * 100
    tmp = app.extensions["vocloud"].config.storage_root / ".vocloud-tmp"
    assert not tmp.exists() or not list(tmp.iterdir())


def test_votable_with_external_entity_is_stored_flagged_and_not_expanded(
        app: Flask, client: FlaskClient, accounts: dict[str, Account], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    alice = accounts["alice"]
    body = XXE_VOTABLE % str(secret).encode()
    assert client.put("/files/alice/evil.vot", data=body,
                      headers=alice.headers).status_code == 201
    nodes, rows = _catalogue(app)
    assert rows == []
    reason = nodes["evil.vot"].catalogue_error or ""
    assert "evil.vot" in reason and "DOCTYPE" in reason.upper()
    assert SECRET not in reason
    # Stored as sent, byte for byte; the entity was never resolved.
    assert client.get("/files/alice/evil.vot", headers=alice.headers).data == body


def test_entity_expansion_bomb_is_flagged_quickly(
        app: Flask, client: FlaskClient, accounts: dict[str, Account]) -> None:
    alice = accounts["alice"]
    assert client.put("/files/alice/ok.csv", data=b"6562,1\n6563,2\n",
                      headers=alice.headers).status_code == 201
    assert client.put("/files/alice/lol.xml", data=BILLION_LAUGHS,
                      headers=alice.headers).status_code == 201
    nodes, rows = _catalogue(app)
    assert nodes["lol.xml"].catalogue_error
    assert [row.access_url.rsplit("/", 1)[1] for row in rows] == ["ok.csv"]


def test_concurrent_uploads_share_one_quota(tmp_path: Path, accounts: dict[str, Account],
                                            _template: object) -> None:
    """Two uploads arriving at once, each within the quota, cannot together exceed it."""
    import threading
    import time

    from uws_service.errors import PayloadTooLarge

    app = _app(tmp_path, _template, quota_bytes=1000)
    service: FileService = app.extensions["vocloud"].files
    alice = service.principal("alice")
    assert alice is not None
    outcomes: dict[str, str] = {}
    started = threading.Barrier(2)

    def slow_body() -> Iterator[bytes]:
        started.wait()
        for _ in range(6):
            time.sleep(0.02)
            yield b"x" * 100

    def upload(name: str) -> None:
        try:
            service.put(alice, "alice", name, slow_body())
            outcomes[name] = "stored"
        except PayloadTooLarge:
            outcomes[name] = "refused"

    threads = [threading.Thread(target=upload, args=(name,)) for name in ("a.bin", "b.bin")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["a.bin", "b.bin"]
    assert "refused" in outcomes.values()
    assert service.usage("alice") <= 1000
    assert not service._in_flight.bytes
