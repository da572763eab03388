"""The ``import`` job type end to end through ``/uws/import`` (issue 3, "Import").

A ``vocloud serve`` of this module (loopback allowed for imports by
``VOCLOUD_IMPORT_ALLOW_NETWORKS``, a 200 kB file limit, at most 3 downloads
at a time) imports from real local servers: a threaded HTTP server with
Apache-style indexes, flaky and hostile paths; pyftpdlib; and a small
SSAP + DataLink + SODA service.  Each test checks the files in alice's
store (``/files/alice/...``), the manifest results and the job's phase.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
import requests

from tests.conftest import Account, LiveService, start_service, wait_for_workers
from tests.import_support import (
    MISSING_ID,
    ArchiveServer,
    SsaService,
    ftp_server,
    load_spectra,
    wavelength_range,
)
from vo.spectra.demo import generate_collection, write_collection

pytestmark = [pytest.mark.live,
              pytest.mark.filterwarnings("ignore:The asyn:DeprecationWarning")]
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink",
       "vc": "urn:vocloud:uws"}
VOT = {"v": "http://www.ivoa.net/xml/VOTable/v1.3"}


@dataclass
class Sources:
    """The remote side: files on disk and the servers that publish them."""

    root: Path
    http: ArchiveServer
    ssa: SsaService
    tree: dict[str, bytes]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    root = tmp_path_factory.mktemp("remote")
    collection = generate_collection(8, seed=11)
    tree: dict[str, bytes] = {}
    layout = {"": collection[:4], "sub": collection[4:6], "sub/deeper": collection[6:]}
    for folder, spectra in layout.items():
        target = root / "slow" / "tree" / folder
        for path in write_collection(target, spectra, layouts=["fits-table"]):
            renamed = path.with_name(f"{folder.replace('/', '-') or 'top'}-{path.name}")
            path.rename(renamed)
            tree[f"{folder}/{renamed.name}".lstrip("/")] = renamed.read_bytes()
    (root / "slow" / "tree" / "notes.txt").write_text("not a spectrum\n")
    files = root / "files"
    for name, path in zip(("a.fits", "b.fits"),
                          write_collection(files, generate_collection(2, seed=5),
                                           layouts=["fits-table"]), strict=True):
        path.rename(files / name)
    spectra_dir = root / "ssa"
    ssa_paths = write_collection(spectra_dir, generate_collection(3, seed=21),
                                 layouts=["fits-table"])
    _archives(root / "archives", (files / "a.fits").read_bytes())
    http = ArchiveServer(root)
    ssa = SsaService(load_spectra(ssa_paths))
    yield Sources(root, http, ssa, tree)
    http.close()
    ssa.close()


def _archives(folder: Path, spectrum: bytes) -> None:
    folder.mkdir()
    with zipfile.ZipFile(folder / "good.zip", "w") as archive:
        archive.writestr("x.fits", spectrum)
        archive.writestr("sub/y.fits", spectrum)
    with zipfile.ZipFile(folder / "slip.zip", "w") as archive:
        archive.writestr("ok.fits", spectrum)
        archive.writestr("../../../escape.fits", b"escaped")
    with tarfile.open(folder / "link.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("fine.fits")
        info.size = len(spectrum)
        archive.addfile(info, io.BytesIO(spectrum))
        link = tarfile.TarInfo("passwd.fits")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    live = start_service(tmp_path_factory.mktemp("import-service"), extra_env={
        "VOCLOUD_WORKERS": "io:2",
        "VOCLOUD_IMPORT_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        "VOCLOUD_IMPORT_MAX_FILE_SIZE": "200kB",
        "VOCLOUD_IMPORT_MAX_CONCURRENCY": "3",
        "VOCLOUD_IMPORT_RETRY_DELAY": "0.05",
        "VOCLOUD_IMPORT_TIMEOUT": "5",
    })
    try:
        live.add_account("alice")
        wait_for_workers(live, live.accounts["alice"])
        yield live
    finally:
        live.stop()


@pytest.fixture
def alice(service: LiveService) -> Account:
    return service.accounts["alice"]


def _submit(service: LiveService, account: Account, data: dict[str, Any] | list[Any],
            files: dict[str, Any] | None = None) -> str:
    fields = list(data.items()) if isinstance(data, dict) else list(data)
    response = requests.post(f"{service.url}/uws/import", headers=account.headers,
                             data=[*fields, ("PHASE", "RUN")], files=files,
                             allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def _wait(job_url: str, account: Account, timeout: float = 60,
          messages: list[str] | None = None) -> ElementTree.Element:
    """The final job document; with ``messages``, polls and collects progress messages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        params = {} if messages is not None else {"WAIT": "20"}
        r = requests.get(job_url, params=params, headers=account.headers, timeout=30)
        assert r.status_code == 200, r.text
        doc = ElementTree.fromstring(r.content)
        phase = doc.findtext("uws:phase", namespaces=UWS)
        if messages is not None:
            text = doc.findtext("uws:jobInfo/vc:message", namespaces=UWS)
            if text and (not messages or messages[-1] != text):
                messages.append(text)
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return doc
        if messages is not None:
            time.sleep(0.05)
    raise AssertionError(f"{job_url} did not finish within {timeout} s")


def _phase(doc: ElementTree.Element) -> str:
    return doc.findtext("uws:phase", namespaces=UWS) or ""


def _error(doc: ElementTree.Element) -> str:
    return doc.findtext("uws:errorSummary/uws:message", namespaces=UWS) or ""


def _manifest(job_url: str, account: Account) -> dict[str, Any]:
    r = requests.get(f"{job_url}/results/manifest", headers=account.headers, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _rows(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["url"]: row for row in manifest["files"]}


def _stored(service: LiveService, account: Account, path: str) -> bytes | None:
    r = requests.get(f"{service.url}/files/{account.name}/{path}", headers=account.headers,
                     timeout=10)
    return r.content if r.status_code == 200 else None


def test_http_index_depth_pattern_concurrency_and_progress(
        service: LiveService, alice: Account, sources: Sources) -> None:
    """An Apache-style index walked to depth 1 with pattern '*.fits': the six spectra of
    the top folder and 'sub' arrive at /files/alice/runs/http/... byte for byte, the
    deeper folder and notes.txt are left out; the manifest (JSON, VOTable, CSV) lists
    them with MD5s; progress 'n/6 files, ...' shows in jobInfo; downloads ran 3 at a time
    (the service's cap, though 8 were asked for), then 2 at a time when 2 were asked for."""
    start = f"{sources.http.url}/slow/tree/"
    sources.http.reset()
    messages: list[str] = []
    job = _submit(service, alice, {"url": start, "source": "http", "depth": "1",
                                   "pattern": "*.fits", "target": "runs/http",
                                   "concurrency": "8"})
    doc = _wait(job, alice, messages=messages)
    assert _phase(doc) == "COMPLETED", ElementTree.tostring(doc).decode()
    expected = {k: v for k, v in sources.tree.items() if not k.startswith("sub/deeper/")}
    assert len(expected) == 6
    for name, data in expected.items():
        assert _stored(service, alice, f"runs/http/{name}") == data, name
    assert _stored(service, alice, "runs/http/notes.txt") is None
    assert _stored(service, alice, "runs/http/sub/deeper") is None
    manifest = _manifest(job, alice)
    assert (manifest["files_ok"], manifest["files_failed"], manifest["files_skipped"]) == \
        (6, 0, 0)
    by_path = {row["path"]: row for row in manifest["files"]}
    for name, data in expected.items():
        row = by_path[f"runs/http/{name}"]
        assert row["status"] == "ok" and row["size"] == len(data) and row["attempts"] == 1
        assert row["md5"] == hashlib.md5(data).hexdigest()
        assert row["url"] == start + name
        assert row["href"] == f"{service.url}/files/alice/runs/http/{name}"
    assert any(re.fullmatch(r"\d/6 files, [\d.]+ (kB|MB|B)", m) for m in messages), messages
    assert 2 <= sources.http.max_active <= 3, sources.http.max_active

    votable = requests.get(f"{job}/results/manifest-votable", headers=alice.headers, timeout=10)
    table = ElementTree.fromstring(votable.content)
    assert len(table.findall(".//v:TR", VOT)) == 6
    assert [f.get("name") for f in table.findall(".//v:FIELD", VOT)][:3] == \
        ["url", "member", "path"]
    text = requests.get(f"{job}/results/manifest-csv", headers=alice.headers, timeout=10).text
    assert len(list(csv.DictReader(io.StringIO(text)))) == 6

    sources.http.reset()
    job = _submit(service, alice, {"url": start, "depth": "0", "pattern": "*.fits",
                                   "target": "runs/http2", "concurrency": "2"})
    assert _phase(_wait(job, alice)) == "COMPLETED"
    assert sources.http.max_active == 2
    assert _manifest(job, alice)["files_ok"] == 4


def test_ftp_folder(service: LiveService, alice: Account, sources: Sources) -> None:
    """An FTP folder (pyftpdlib) walked to depth 1, pattern '*.fits': six files stored."""
    with ftp_server(sources.root / "slow") as url:
        job = _submit(service, alice, {"url": f"{url}/tree/", "depth": "1",
                                       "pattern": "*.fits", "target": "runs/ftp"})
        doc = _wait(job, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    manifest = _manifest(job, alice)
    assert manifest["source"] == "urls" and manifest["files_ok"] == 6
    for name, data in sources.tree.items():
        expected = None if name.startswith("sub/deeper/") else data
        assert _stored(service, alice, f"runs/ftp/{name}") == expected


def test_single_files_retries_and_failures(service: LiveService, alice: Account,
                                           sources: Sources) -> None:
    """Single URLs: 500-500-OK and 429-OK are retried and stored; a 404, a redirect to the
    metadata address, an oversized body and a Content-Disposition name with '..' fail
    alone, each with its reason; the job COMPLETES.  The oversized file does not touch
    the file of that name stored before."""
    base = sources.http.url
    r = requests.put(f"{service.url}/files/alice/runs/single/endless.fits", data=b"old content",
                     headers=alice.headers, timeout=10)
    assert r.status_code in (200, 201), r.text
    sources.http.reset()
    urls = {
        "flaky": f"{base}/flaky/2/a.fits",
        "busy": f"{base}/busy/b.fits",
        "missing": f"{base}/missing.fits",
        "metadata": f"{base}/redirect?to=http://169.254.169.254/latest/meta-data/",
        "big": f"{base}/endless",
        "named": f"{base}/disposition/a.fits?as=named.fits",
        "traversal": f"{base}/disposition/a.fits?as=../../evil.fits",
    }
    job = _submit(service, alice, [*(("url", u) for u in urls.values()),
                                   ("target", "runs/single"), ("attempts", "3"),
                                   ("overwrite", "overwrite")])
    doc = _wait(job, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    rows = _rows(_manifest(job, alice))
    a = (sources.root / "files" / "a.fits").read_bytes()
    b = (sources.root / "files" / "b.fits").read_bytes()
    assert (rows[urls["flaky"]]["status"], rows[urls["flaky"]]["attempts"]) == ("ok", 3)
    assert sources.http.hits["/flaky/2/a.fits"] == 3
    assert (rows[urls["busy"]]["status"], rows[urls["busy"]]["attempts"]) == ("ok", 2)
    assert _stored(service, alice, "runs/single/a.fits") == a
    assert _stored(service, alice, "runs/single/b.fits") == b
    assert _stored(service, alice, "runs/single/named.fits") == a
    missing = rows[urls["missing"]]
    assert (missing["status"], missing["attempts"]) == ("failed", 1)
    assert "HTTP 404" in missing["reason"]
    assert rows[urls["metadata"]]["reason"] == \
        "refused: 169.254.169.254 is a link-local address (cloud metadata service)"
    assert rows[urls["big"]]["status"] == "failed"
    assert "too large" in rows[urls["big"]]["reason"] and "200 kB" in rows[urls["big"]]["reason"]
    assert _stored(service, alice, "runs/single/endless.fits") == b"old content"
    traversal = rows[urls["traversal"]]
    assert traversal["status"] == "failed"
    assert traversal["reason"].startswith(
        "refused: the name '../../evil.fits' from Content-Disposition")
    assert not list(service.home.rglob("evil.fits"))


def test_malformed_urls_fail_alone_and_passwords_stay_hidden(
        service: LiveService, alice: Account, sources: Sources) -> None:
    """Malformed URLs (a bad IPv6 literal, a bad port, CR/LF in an FTP user name) and
    malformed redirects fail alone with a reason, and a Content-Disposition name '.' is
    refused: the other file is stored and the job COMPLETES.  No password shows in the
    manifest or in errors: not of a listing that is not an index, nor of an SSA query."""
    base = sources.http.url
    with_password = base.replace("http://", "http://alice:S3cretPW@")
    bad = [
        f"{base}/disposition/a.fits?as=.",
        "http://[::1/f.fits",
        "http://u:S3cretPW@127.0.0.1:abc/f.fits",
        "ftp://us%0d%0aDELE%20x:S3cretPW@127.0.0.1:21/f.fits",
        f"{base}/redirect?to={quote('http://[::1/x.fits', safe='')}",
        f"{base}/redirect?to={quote('http://u:S3cretPW@127.0.0.1:99999/x.fits', safe='')}",
    ]
    job = _submit(service, alice, [*(("url", u) for u in bad),
                                   ("url", f"{base}/files/a.fits"), ("concurrency", "1"),
                                   ("target", "runs/malformed")])
    doc = _wait(job, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    manifest = _manifest(job, alice)
    assert (manifest["files_ok"], manifest["files_failed"]) == (1, len(bad))
    by_status = {row["status"]: row for row in manifest["files"]}
    assert by_status["ok"]["path"] == "runs/malformed/a.fits"
    assert _stored(service, alice, "runs/malformed/a.fits") == \
        (sources.root / "files" / "a.fits").read_bytes()
    reasons = [row["reason"] for row in manifest["files"] if row["status"] == "failed"]
    assert reasons[0] == "refused: the name '.' from Content-Disposition is not a file name"
    assert "malformed host" in reasons[1] and "bad port" in reasons[2]
    assert "control characters in its user name" in reasons[3]
    assert "redirect to a malformed URL" in reasons[4] and "bad port" in reasons[5]
    assert ":S3cretPW@" not in str(manifest)

    listing = _submit(service, alice, {"url": f"{with_password}/json/", "source": "http"})
    doc = _wait(listing, alice)
    assert _phase(doc) == "ERROR"
    assert "is not an HTML directory listing" in _error(doc)
    assert "S3cretPW" not in _error(doc) and "http://***@127.0.0.1:" in _error(doc)
    assert "S3cretPW" not in str(_manifest(listing, alice))

    ssa = sources.ssa
    _name, (spectrum, _data) = sorted(ssa.spectra.items())[0]
    query = _submit(service, alice, {
        "ssa_url": ssa.url.replace("http://", "http://alice:S3cretPW@") + "/ssa",
        "ra": str(spectrum.meta.ra), "dec": str(spectrum.meta.dec), "size": "0.01",
        "target": "runs/ssa-password"})
    doc = _wait(query, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    manifest = _manifest(query, alice)
    assert manifest["query"].startswith("http://***@127.0.0.1:")
    assert ":S3cretPW@" not in str(manifest)


def test_nothing_fetched_ends_in_error(service: LiveService, alice: Account,
                                       sources: Sources) -> None:
    """A refused start URL with nothing else to fetch, or only failing files, ends the job
    in ERROR with the reason; the manifest is still a result."""
    jobs = {
        "metadata": _submit(service, alice, {
            "url": "http://169.254.169.254/latest/meta-data/iam/", "source": "file"}),
        "private": _submit(service, alice, {"url": "http://10.0.0.1/data/", "source": "http"}),
        "missing": _submit(service, alice, [("url", f"{sources.http.url}/none-{i}.fits")
                                            for i in range(3)]),
    }
    docs = {name: _wait(url, alice) for name, url in jobs.items()}
    assert {_phase(doc) for doc in docs.values()} == {"ERROR"}
    assert _error(docs["metadata"]) == ("nothing could be imported: refused: 169.254.169.254 "
                                        "is a link-local address (cloud metadata service)")
    assert _error(docs["private"]) == \
        "nothing could be imported: refused: 10.0.0.1 is a private address"
    assert "HTTP 404" in _error(docs["missing"]) and "2 more failures" in _error(docs["missing"])
    assert _manifest(jobs["missing"], alice)["files_failed"] == 3


def _links_votable(urls: list[str], name: str = "access_url", ucd: str = "meta.ref.url") \
        -> bytes:
    rows = "".join(f"<TR><TD>{u}</TD><TD>{i}</TD></TR>" for i, u in enumerate(urls))
    return (f'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="{VOT["v"]}"><RESOURCE>'
            f'<TABLE><FIELD name="{name}" datatype="char" arraysize="*"'
            f'{f" ucd={chr(34)}{ucd}{chr(34)}" if ucd else ""}/>'
            '<FIELD name="n" datatype="int"/>'
            f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode()


def test_votable_uploaded_or_by_url(service: LiveService, alice: Account,
                                    sources: Sources) -> None:
    """A VOTable of links uploaded as the 'votable' file part (column by UCD meta.ref.url),
    and one given by URL whose column is only named 'accref': both import their files."""
    base = sources.http.url
    upload = _links_votable([f"{base}/files/a.fits", f"{base}/files/b.fits"])
    job1 = _submit(service, alice, {"source": "votable", "target": "runs/vot-upload"},
                   files={"votable": ("links.xml", upload, "application/x-votable+xml")})
    lists = sources.root / "lists"
    lists.mkdir(exist_ok=True)
    (lists / "links.vot").write_bytes(
        _links_votable([f"{base}/files/b.fits"], name="accref", ucd=""))
    job2 = _submit(service, alice, {"votable": f"{base}/lists/links.vot",
                                    "target": "runs/vot-url"})
    for job in (job1, job2):
        doc = _wait(job, alice)
        assert _phase(doc) == "COMPLETED", _error(doc)
    b = (sources.root / "files" / "b.fits").read_bytes()
    assert _stored(service, alice, "runs/vot-upload/a.fits") == \
        (sources.root / "files" / "a.fits").read_bytes()
    assert _stored(service, alice, "runs/vot-upload/b.fits") == b
    assert _stored(service, alice, "runs/vot-url/b.fits") == b
    assert _manifest(job1, alice)["source"] == "votable"


def test_hostile_votable_ends_in_error(service: LiveService, alice: Account,
                                       sources: Sources) -> None:
    """An uploaded VOTable with an external entity (XXE) ends in ERROR naming the DOCTYPE;
    nothing is fetched."""
    secret = sources.root / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE VOTABLE [<!ENTITY leak SYSTEM "file://{secret}">]>'
           f'<VOTABLE xmlns="{VOT["v"]}"><RESOURCE><TABLE>'
           '<FIELD name="url" datatype="char" arraysize="*" ucd="meta.ref.url"/>'
           f"<DATA><TABLEDATA><TR><TD>{sources.http.url}/files/&leak;</TD></TR></TABLEDATA>"
           "</DATA></TABLE></RESOURCE></VOTABLE>").encode()
    sources.http.reset()
    job = _submit(service, alice, {"source": "votable"},
                  files={"votable": ("evil.xml", xxe, "text/xml")})
    doc = _wait(job, alice)
    assert _phase(doc) == "ERROR"
    assert "the VOTable is refused" in _error(doc) and "DOCTYPE" in _error(doc)
    assert "TOP-SECRET" not in ElementTree.tostring(doc).decode()
    assert sum(sources.http.hits.values()) == 0


def test_ssa_query_with_datalink(service: LiveService, alice: Account,
                                 sources: Sources) -> None:
    """An SSAP query (POS, SIZE, BAND, TIME, MAXREC sent as SSAP 1.1 wants them) whose
    answer carries a DataLink descriptor: each row's links document is read and its #this
    file stored; the row whose links document has a NotFoundFault error row fails with
    that message, and the job COMPLETES."""
    ssa = sources.ssa
    name, (spectrum, data) = sorted(ssa.spectra.items())[0]
    ssa.requests.clear()
    job = _submit(service, alice, {
        "ssa_url": f"{ssa.url}/ssa", "ra": str(spectrum.meta.ra), "dec": str(spectrum.meta.dec),
        "size": "0.01", "band": "6.2e-7/6.8e-7", "time": "55000/60500", "maxrec": "50",
        "target": "runs/ssa"})
    doc = _wait(job, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    query = next(q for path, q in ssa.requests if path == "/ssa")
    assert query["REQUEST"] == ["queryData"]
    assert query["POS"] == [f"{spectrum.meta.ra!r},{spectrum.meta.dec!r}"]
    assert query["SIZE"] == ["0.01"] and query["BAND"] == ["6.2e-07/6.8e-07"]
    assert query["TIME"] == ["2009-06-18T00:00:00.000/2024-07-09T00:00:00.000"]
    assert query["MAXREC"] == ["50"]
    linked = sorted(q["ID"][0] for path, q in ssa.requests if path == "/links")
    assert linked == sorted([ssa.did(name), MISSING_ID])
    rows = _rows(_manifest(job, alice))
    ok = rows[f"{ssa.url}/data/{name}"]
    assert ok["status"] == "ok" and ok["path"] == f"runs/ssa/{name}.fits"
    assert _stored(service, alice, f"runs/ssa/{name}.fits") == data
    failed = rows[f"{ssa.url}/data/missing"]
    assert failed["status"] == "failed"
    assert failed["reason"] == f"NotFoundFault: {MISSING_ID} is not known here"


def test_ssa_cutouts_through_soda(service: LiveService, alice: Account, sources: Sources,
                                  tmp_path: Path) -> None:
    """With cutout_band and a SODA sync descriptor in the links document, SODA is called
    with ID and BAND 'lo hi' in metres, and the stored spectrum covers only that band."""
    ssa = sources.ssa
    name, (spectrum, _data) = sorted(ssa.spectra.items())[0]
    ssa.requests.clear()
    job = _submit(service, alice, {
        "ssa_url": f"{ssa.url}/ssa", "ra": str(spectrum.meta.ra), "dec": str(spectrum.meta.dec),
        "size": "0.01", "cutout_band": "6.55e-7/6.57e-7", "target": "runs/soda"})
    doc = _wait(job, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    soda = [q for path, q in ssa.requests if path == "/soda"]
    assert soda == [{"ID": [ssa.did(name)], "BAND": ["6.55e-07 6.57e-07"]}]
    stored = _stored(service, alice, f"runs/soda/{name}-cutout.fits")
    assert stored is not None
    low, high = wavelength_range(stored, tmp_path)
    assert 6549.0 <= low < high <= 6571.0


def test_unpack_archives_and_refuse_zip_slip(service: LiveService, alice: Account,
                                             sources: Sources) -> None:
    """unpack=true: a clean ZIP is unpacked into the target folder; a ZIP with a
    '../../../escape.fits' member and a tar with a symbolic link are refused whole, and
    nothing is written outside the target folder."""
    base = f"{sources.http.url}/archives"
    job = _submit(service, alice, [("url", f"{base}/good.zip"), ("url", f"{base}/slip.zip"),
                                   ("url", f"{base}/link.tar.gz"), ("unpack", "true"),
                                   ("target", "runs/zip")])
    doc = _wait(job, alice)
    assert _phase(doc) == "COMPLETED", _error(doc)
    spectrum = (sources.root / "files" / "a.fits").read_bytes()
    assert _stored(service, alice, "runs/zip/x.fits") == spectrum
    assert _stored(service, alice, "runs/zip/sub/y.fits") == spectrum
    manifest = _manifest(job, alice)
    members = {(r["url"].rsplit("/", 1)[1], r["member"]): r for r in manifest["files"]}
    assert members[("good.zip", "x.fits")]["path"] == "runs/zip/x.fits"
    slip = members[("slip.zip", None)]
    assert slip["status"] == "failed" and "climbs out" in slip["reason"]
    link = members[("link.tar.gz", None)]
    assert link["status"] == "failed" and "symbolic link" in link["reason"]
    assert _stored(service, alice, "runs/zip/ok.fits") is None
    assert _stored(service, alice, "runs/zip/fine.fits") is None
    assert not [p for p in service.home.rglob("*escape*")]
    assert not [p for p in service.home.rglob("*") if p.is_symlink()]


def test_overwrite_policies(service: LiveService, alice: Account, sources: Sources) -> None:
    """The same file imported again is skipped (the job still COMPLETES), renamed to
    a-1.fits, or overwritten, as asked."""
    url = f"{sources.http.url}/files/a.fits"
    a = (sources.root / "files" / "a.fits").read_bytes()
    r = requests.put(f"{service.url}/files/alice/runs/policy/a.fits", data=b"mine",
                     headers=alice.headers, timeout=10)
    assert r.status_code in (200, 201)
    outcomes = {}
    for policy in ("skip", "rename", "overwrite"):
        job = _submit(service, alice, {"url": url, "target": "runs/policy",
                                       "overwrite": policy})
        doc = _wait(job, alice)
        assert _phase(doc) == "COMPLETED", _error(doc)
        row = _manifest(job, alice)["files"][0]
        outcomes[policy] = (row["status"], row["path"])
        if policy == "skip":
            assert _stored(service, alice, "runs/policy/a.fits") == b"mine"
    assert outcomes == {"skip": ("skipped", "runs/policy/a.fits"),
                        "rename": ("ok", "runs/policy/a-1.fits"),
                        "overwrite": ("ok", "runs/policy/a.fits")}
    assert _stored(service, alice, "runs/policy/a-1.fits") == a
    assert _stored(service, alice, "runs/policy/a.fits") == a


@pytest.mark.parametrize(("data", "words"), [
    ({"source": "ssa"}, "'ssa_url' is a required property"),
    ({"url": "http://example.org/a.fits", "ra": "10"}, "'dec' is a dependency of 'ra'"),
    ({"url": "file:///etc/passwd"}, "does not match"),
    ({"source": "ftp", "url": "http://example.org/data/"}, "does not match"),
    ({"source": "http"}, "should be non-empty"),
    ({"url": "http://example.org/a.fits", "concurrency": "0"}, "less than the minimum"),
    ({"url": "http://example.org/a.fits", "overwrite": "always"}, "is not one of"),
    ({"url": "http://example.org/a.fits", "proxy": "x"}, "unknown parameter 'proxy'"),
])
def test_bad_parameters_are_refused_at_post(service: LiveService, alice: Account,
                                            data: dict[str, str], words: str) -> None:
    r = requests.post(f"{service.url}/uws/import", headers=alice.headers, data=data,
                      allow_redirects=False, timeout=10)
    assert r.status_code == 400, r.text
    assert words in r.text


def test_inconsistent_parameters_end_in_error(service: LiveService, alice: Account,
                                              sources: Sources) -> None:
    """What the schema cannot see ends in ERROR with the reason, before anything is fetched."""
    url = f"{sources.http.url}/files/a.fits"
    sources.http.reset()
    jobs = {
        "band": _submit(service, alice, {"url": url, "cutout_band": "7e-7/6e-7"}),
        "target": _submit(service, alice, {"url": url, "target": "../bob"}),
        "votable": _submit(service, alice, {"source": "votable"}),
        "time": _submit(service, alice, {"ssa_url": f"{sources.ssa.url}/ssa",
                                         "time": "yesterday/today"}),
    }
    reasons = {}
    for name, job in jobs.items():
        doc = _wait(job, alice)
        assert _phase(doc) == "ERROR", name
        reasons[name] = _error(doc)
    assert "the lower end is above the upper end" in reasons["band"]
    assert "'..' is not allowed" in reasons["target"]
    assert "source=votable needs votable" in reasons["votable"]
    assert "neither an MJD nor an ISO 8601 date" in reasons["time"]
    assert sum(sources.http.hits.values()) == 0
