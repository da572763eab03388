"""Real local servers that the import tests fetch from.

* :class:`ArchiveServer`: a threaded ``http.server`` serving a folder with
  Apache-style HTML indexes, plus special paths: ``/flaky/{n}/{name}``
  answers 500 ``n`` times then the file, ``/busy/{name}`` answers 429 once,
  ``/redirect?to=URL`` redirects, ``/endless`` streams without a
  ``Content-Length``, ``/announced-big`` announces a huge body,
  ``/disposition/{name}?as=NAME`` sends a ``Content-Disposition``,
  ``/json/...`` answers a JSON document (not an index).  Every
  file under ``/slow/`` is delayed, and the server counts the requests in
  flight at once, to check concurrency limits.
* :func:`ftp_server`: pyftpdlib serving a folder anonymously, read only,
  optionally naming another address in its PASV replies.
* :class:`SsaService`: a small SSAP 1.1 + DataLink 1.1 + SODA sync service
  over demo FITS spectra.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

import numpy as np

from vo.spectra.model import Spectrum
from vo.spectra.readers import read_spectrum
from vo.spectra.writers import write_spectrum

SLOW_DELAY = 0.3


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ArchiveServer:
    """A threaded HTTP server over ``root``; see the module docstring for its paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[str] = Counter()
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        server = self

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with server.lock:
                    server.hits[path] += 1
                    count = server.hits[path]
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._route(path, count)
                finally:
                    with server.lock:
                        server.active -= 1

            def _plain(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def _route(self, path: str, count: int) -> None:
                query = parse_qs(urlsplit(self.path).query)
                if path == "/redirect":
                    self._plain(302, Location=query["to"][0])
                    return
                if path.startswith("/chain/"):
                    left = int(path.rsplit("/", 1)[1])
                    target = f"/chain/{left - 1}" if left > 0 else "/tree/"
                    self._plain(302, Location=target)
                    return
                if path.startswith("/flaky/"):
                    _, _, failures, name = path.split("/", 3)
                    if count <= int(failures):
                        self._plain(500, b"try again later")
                        return
                    self._file("/files/" + name)
                    return
                if path.startswith("/busy/"):
                    if count == 1:
                        self._plain(429, b"slow down", Retry_After="0")
                        return
                    self._file("/files/" + path.split("/", 2)[2])
                    return
                if path == "/endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fits")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        for _ in range(400):
                            self.wfile.write(b"x" * 8192)
                    return
                if path == "/announced-big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                    self.close_connection = True
                    return
                if path.startswith("/disposition/"):
                    name = query.get("as", ["x.fits"])[0]
                    body = (server.root / "files" / path.split("/", 2)[2]).read_bytes()
                    self._plain(200, body, Content_Disposition=f'attachment; filename="{name}"',
                                Content_Type="application/fits")
                    return
                if path.startswith("/json/"):
                    self._plain(200, b"{}", Content_Type="application/json")
                    return
                if path.startswith("/slow/"):
                    time.sleep(SLOW_DELAY)
                super().do_GET()

            def _file(self, path: str) -> None:
                body = (server.root / path.lstrip("/")).read_bytes()
                self._plain(200, body, Content_Type="application/fits")

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.hits.clear()
            self.active = 0
            self.max_active = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def ftp_server(root: Path, masquerade: str | None = None) -> Iterator[str]:
    """An anonymous, read-only FTP server over ``root``; yields its ``ftp://`` URL."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root))
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer,
                                              "masquerade_address": masquerade,
                                              "permit_foreign_addresses": True})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"timeout": 0.05, "handle_exit": False}, daemon=True)
    thread.start()
    try:
        yield f"ftp://127.0.0.1:{server.address[1]}"
    finally:
        server.close_all()
        thread.join(5)


# SSA + DataLink + SODA -------------------------------------------------------------------

VOT_NS = "http://www.ivoa.net/xml/VOTable/v1.3"
MISSING_ID = "ivo://test.vocloud/ssa?missing"


def _angle(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    cos = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


class SsaService:
    """SSAP ``/ssa``, DataLink ``/links``, SODA ``/soda`` and the files ``/data/{name}``.

    Parameters
    ----------
    spectra : dict of str to (Spectrum, bytes)
        Dataset name -> its spectrum and FITS bytes; each is at the
        spectrum's position.
    extra_ids : list of str
        Publisher DIDs listed by the query with no dataset behind them (the
        links document answers an error row).
    """

    def __init__(self, spectra: dict[str, tuple[Spectrum, bytes]],
                 extra_ids: tuple[str, ...] = (MISSING_ID,)) -> None:
        self.spectra = spectra
        self.extra_ids = extra_ids
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        service = self

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, keep_blank_values=True)
                service.requests.append((parts.path, query))
                try:
                    status, body, headers = service.answer(parts.path, query)
                except Exception as exc:  # a broken fixture must show in the test
                    status, body, headers = 500, repr(exc).encode(), {}
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def did(name: str) -> str:
        return f"ivo://test.vocloud/ssa?{name}"

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str]]:
        votable = {"Content-Type": "application/x-votable+xml"}
        upper = {k.upper(): v[0] for k, v in query.items()}
        if path == "/ssa":
            return 200, self.query_response(upper), votable
        if path == "/links":
            return 200, self.links_document(upper.get("ID", "")), \
                {"Content-Type": "application/x-votable+xml;content=datalink"}
        if path == "/soda":
            return self.cutout(upper)
        if path.startswith("/data/"):
            name = unquote(path[len("/data/"):])
            if name not in self.spectra:
                return 404, b"no such dataset", {}
            return 200, self.spectra[name][1], {
                "Content-Type": "application/fits",
                "Content-Disposition": f'attachment; filename="{name}.fits"'}
        return 404, b"not found", {}

    def query_response(self, q: dict[str, str]) -> bytes:
        if q.get("REQUEST", "").lower() != "querydata":
            return self._error("REQUEST must be queryData")
        rows = []
        ra, dec = (float(x) for x in q["POS"].split(",")[:2]) if "POS" in q else (None, None)
        radius = float(q.get("SIZE", "180")) / 2
        for name, (spectrum, _data) in sorted(self.spectra.items()):
            meta = spectrum.meta
            if ra is not None and dec is not None and \
                    _angle(ra, dec, meta.ra or 0.0, meta.dec or 0.0) > radius:
                continue
            rows.append((self.did(name), name, f"{self.url}/data/{quote(name)}"))
        for did in self.extra_ids:
            rows.append((did, "missing", f"{self.url}/data/missing"))
        rows = rows[:int(q.get("MAXREC", "1000"))]
        trs = "".join(f"<TR><TD>{escape(d)}</TD><TD>{escape(t)}</TD><TD>{escape(u)}</TD>"
                      "<TD>application/fits</TD></TR>" for d, t, u in rows)
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="{VOT_NS}">
 <RESOURCE type="results">
  <INFO name="QUERY_STATUS" value="OK"/>
  <TABLE>
   <FIELD name="ssa_pubDID" ID="pubdid" datatype="char" arraysize="*" ucd="meta.ref.ivoid"
          utype="ssa:Curation.PublisherDID"/>
   <FIELD name="title" datatype="char" arraysize="*" utype="ssa:DataID.Title"/>
   <FIELD name="accref" datatype="char" arraysize="*" ucd="meta.ref.url"
          utype="ssa:Access.Reference"/>
   <FIELD name="mime" datatype="char" arraysize="*" utype="ssa:Access.Format"/>
   <DATA><TABLEDATA>{trs}</TABLEDATA></DATA>
  </TABLE>
 </RESOURCE>
 <RESOURCE type="meta" utype="adhoc:service">
  <PARAM name="standardID" datatype="char" arraysize="*"
         value="ivo://ivoa.net/std/DataLink#links-1.1"/>
  <PARAM name="accessURL" datatype="char" arraysize="*" value="{self.url}/links"/>
  <GROUP name="inputParams">
   <PARAM name="ID" datatype="char" arraysize="*" value="" ref="pubdid"
          ucd="meta.id;meta.main"/>
  </GROUP>
 </RESOURCE>
</VOTABLE>""".encode()

    @staticmethod
    def _error(message: str) -> bytes:
        return f"""<?xml version="1.0"?><VOTABLE version="1.4" xmlns="{VOT_NS}">
<RESOURCE type="results"><INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>
</RESOURCE></VOTABLE>""".encode()

    def links_document(self, did: str) -> bytes:
        name = did.rsplit("?", 1)[-1]
        if name in self.spectra:
            rows = (f"<TR><TD>{escape(did)}</TD><TD>{self.url}/data/{quote(name)}</TD><TD/>"
                    "<TD/><TD>#this</TD><TD>application/fits</TD></TR>"
                    f"<TR><TD>{escape(did)}</TD><TD/><TD>soda-sync</TD><TD/><TD>#cutout</TD>"
                    "<TD>application/fits</TD></TR>")
        else:
            rows = (f"<TR><TD>{escape(did)}</TD><TD/><TD/>"
                    f"<TD>NotFoundFault: {escape(did)} is not known here</TD>"
                    "<TD>#this</TD><TD/></TR>")
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns="{VOT_NS}">
 <RESOURCE type="results">
  <TABLE>
   <FIELD name="ID" datatype="char" arraysize="*" ucd="meta.id;meta.main"/>
   <FIELD name="access_url" datatype="char" arraysize="*" ucd="meta.ref.url"/>
   <FIELD name="service_def" datatype="char" arraysize="*" ucd="meta.ref"/>
   <FIELD name="error_message" datatype="char" arraysize="*" ucd="meta.code.error"/>
   <FIELD name="semantics" datatype="char" arraysize="*" ucd="meta.code"/>
   <FIELD name="content_type" datatype="char" arraysize="*" ucd="meta.code.mime"/>
   <DATA><TABLEDATA>{rows}</TABLEDATA></DATA>
  </TABLE>
 </RESOURCE>
 <RESOURCE type="meta" utype="adhoc:service" ID="soda-sync">
  <PARAM name="standardID" datatype="char" arraysize="*" value="ivo://ivoa.net/std/SODA#sync-1.0"/>
  <PARAM name="accessURL" datatype="char" arraysize="*" value="{self.url}/soda"/>
  <GROUP name="inputParams">
   <PARAM name="ID" datatype="char" arraysize="*" value="{escape(did)}" ucd="meta.id;meta.dataset"/>
   <PARAM name="BAND" datatype="double" arraysize="2" xtype="interval" unit="m"
          ucd="em.wl;stat.interval" value=""/>
  </GROUP>
 </RESOURCE>
</VOTABLE>""".encode()

    def cutout(self, q: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        name = q.get("ID", "").rsplit("?", 1)[-1]
        if name not in self.spectra:
            return 404, b"NotFoundFault: no such dataset", {"Content-Type": "text/plain"}
        low, high = (float(x) for x in q["BAND"].split())
        spectrum = self.spectra[name][0]
        metres = spectrum.wavelength * 1e-10
        keep = (metres >= low) & (metres <= high)
        if not keep.any():
            return 400, b"UsageError: BAND does not overlap the spectrum", \
                {"Content-Type": "text/plain"}
        cut = Spectrum(wavelength=spectrum.wavelength[keep], flux=spectrum.flux[keep],
                       error=None if spectrum.error is None else spectrum.error[keep],
                       meta=spectrum.meta)
        with tempfile.TemporaryDirectory() as folder:
            body = write_spectrum(cut, Path(folder) / "cutout.fits", "fits-table").read_bytes()
        return 200, body, {
            "Content-Type": "application/fits",
            "Content-Disposition": f'attachment; filename="{name}-cutout.fits"'}


def load_spectra(paths: list[Path]) -> dict[str, tuple[Spectrum, bytes]]:
    """``{stem: (spectrum, bytes)}`` for FITS files written by the demo writer."""
    found = {}
    for path in paths:
        spectrum = read_spectrum(path)[0]
        found[path.stem] = (spectrum, path.read_bytes())
    return found


def wavelength_range(data: bytes, tmp: Path) -> tuple[float, float]:
    """Smallest and largest wavelength (Angstrom) of a FITS spectrum given as bytes."""
    path = tmp / "probe.fits"
    path.write_bytes(data)
    spectrum = read_spectrum(path)[0]
    return float(np.min(spectrum.wavelength)), float(np.max(spectrum.wavelength))
