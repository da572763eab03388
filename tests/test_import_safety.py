"""Safety of the import's outgoing fetches and of what it reads (issue 3, "Import", "Safety").

The address policy and the fetcher are tested against real local servers:
a threaded HTTP server, pyftpdlib (one of them naming a link-local address
in its PASV replies), and a raw socket that counts connections, so that a
refusal is shown to happen before any connection is made.  Hostile
VOTables (XXE, entity bombs), archives (zip slip, links, devices) and odd
directory listings are refused with a clear reason.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import socket
import ssl
import stat
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, cast
from urllib.parse import quote

import pytest

from jobs.importing import VOTABLE_MAX_BYTES, Importer, Item, _Refused
from tests.conftest import unavailable
from tests.import_support import ArchiveServer, ftp_server
from vo.archives import (
    ArchiveError,
    Member,
    archive_kind,
    archive_members,
    read_member,
    read_members,
)
from vo.dal_client import (
    DataLinkError,
    choose_link,
    dataset_refs,
    parse_band,
    parse_time_range,
    ssa_query_url,
)
from vo.fetch import (
    Fetcher,
    FetchError,
    FtpEntry,
    FtpListing,
    TooLargeError,
    backoff_delay,
    redact,
    redact_text,
)
from vo.listing import ListingError, crawl_ftp, crawl_http
from vo.netpolicy import AddressPolicy, RefusedError, connect
from vo.remote_votable import (
    VOTableError,
    find_url_column,
    parse_votable,
    parse_votable_limited,
    tables,
)

pytestmark = pytest.mark.filterwarnings("ignore:The asyn:DeprecationWarning")
LOOPBACK = AddressPolicy.from_strings(["127.0.0.0/8", "::1/128"])
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchiveServer]:
    root = tmp_path_factory.mktemp("site")
    (root / "files").mkdir()
    (root / "files" / "a.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
    tree = root / "tree"
    for folder in ("", "sub", "sub/deeper"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
        (tree / folder / "spec.fits").write_bytes(b"fits " + folder.encode())
        (tree / folder / "notes.txt").write_text("not a spectrum")
    odd = root / "odd"
    (odd / "inside").mkdir(parents=True)
    (odd / "inside" / "x.fits").write_bytes(b"x")
    (odd / "ok.fits").write_bytes(b"ok")
    (odd / "index.html").write_text(
        '<html><body><a href="../">Parent</a> <a href="?C=N;O=D">Name</a>'
        '<a href="http://other.example/data/evil.fits">elsewhere</a>'
        '<a href="/files/a.fits">outside the prefix</a> <a href="ok.fits">ok</a>'
        '<a href="inside/">inside</a> <a href="%2e%2e/escape.fits">dots</a>'
        '<a href="a%2Fb.fits">slash</a> <a href="#top">top</a></body></html>')
    server = ArchiveServer(root)
    yield server
    server.close()


class _CountingListener:
    """A TCP listener on loopback that only counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


# The policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "words"), [
    ("169.254.169.254", "link-local address (cloud metadata service)"),
    ("169.254.1.1", "link-local address"),
    ("fe80::1", "link-local address"),
    ("fe80::1%eth0", "link-local address"),
    ("127.0.0.1", "loopback address"),
    ("::1", "loopback address"),
    ("10.1.2.3", "private address"),
    ("172.16.5.4", "private address"),
    ("192.168.0.10", "private address"),
    ("100.64.0.1", "shared (CGNAT) address"),
    ("fd12:3456::1", "private (unique local) address"),
    ("0.0.0.0", "unspecified address"),
    ("::", "unspecified address"),
    ("224.0.0.251", "multicast address"),
    ("ff02::1", "multicast address"),
    ("240.0.0.1", "reserved address"),
    ("::ffff:169.254.169.254", "link-local address (cloud metadata service) (IPv4-mapped"),
    ("::ffff:127.0.0.1", "loopback address (IPv4-mapped 127.0.0.1)"),
    ("::ffff:10.0.0.1", "private address (IPv4-mapped 10.0.0.1)"),
    ("64:ff9b::a9fe:a9fe", "embeds the IPv4 address 169.254.169.254"),
    ("2002:c0a8:0101::1", "embeds the IPv4 address 192.168.1.1"),
    ("64:ff9b:1::808:808", "local-use NAT64 address"),
    ("64:ff9b:1:1234:5678::5db8:d822", "local-use NAT64 address"),
])
def test_default_policy_denies_non_public_addresses(address: str, words: str) -> None:
    """Every non-public range, and IPv6 forms that embed one, is refused with its name."""
    reason = AddressPolicy().refusal(address)
    assert reason is not None and words in reason, reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"])
def test_default_policy_allows_public_addresses(address: str) -> None:
    assert AddressPolicy().refusal(address) is None


def test_allow_and_deny_lists() -> None:
    """The allow list opens loopback (also IPv4-mapped), the deny list wins over it, and a
    broad allow never opens link-local addresses or the metadata service."""
    policy = AddressPolicy.from_strings(["127.0.0.0/8", "::1/128"], ["127.0.0.2/32"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("::1") is None
    assert "denied network 127.0.0.2/32" in (policy.refusal("127.0.0.2") or "")
    assert "private address" in (policy.refusal("10.0.0.1") or "")
    everything = AddressPolicy.from_strings(["0.0.0.0/0", "::/0"])
    assert everything.refusal("10.0.0.1") is None
    assert "cloud metadata" in (everything.refusal("169.254.169.254") or "")
    assert "link-local" in (everything.refusal("fe80::1") or "")
    assert "unspecified" in (everything.refusal("0.0.0.0") or "")
    explicit = AddressPolicy.from_strings(["169.254.10.0/24"])
    assert explicit.refusal("169.254.10.7") is None
    assert explicit.refusal("169.254.169.254") is not None
    with pytest.raises(ValueError, match="not an IP network"):
        AddressPolicy.from_strings(["localhost"])


def test_connect_checks_resolved_addresses_before_connecting() -> None:
    """A host name that resolves to loopback is refused when loopback is not allowed, and
    no connection reaches the listener; once allowed, the same name connects."""
    listener = _CountingListener()
    try:
        with pytest.raises(RefusedError, match=r"refused: localhost \(.* loopback address\)"):
            connect("localhost", listener.port, AddressPolicy(), 2)
        for literal in ("127.0.0.1", "2130706433", "0x7f.0.0.1"):
            with pytest.raises(RefusedError, match=re.escape("127.0.0.1 is a loopback address")):
                connect(literal, listener.port, AddressPolicy(), 2)
        assert listener.accepted == 0
        sock = connect("127.0.0.1", listener.port, LOOPBACK, 2)
        sock.close()
    finally:
        listener.close()


@pytest.mark.parametrize(("url", "words"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[::ffff:169.254.169.254]/latest/", "IPv4-mapped 169.254.169.254"),
    ("http://10.0.0.1/data/", "10.0.0.1 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("https://172.16.0.1/", "172.16.0.1 is a private address"),
    ("http://100.64.0.1/", "100.64.0.1 is a shared (CGNAT) address"),
    ("ftp://169.254.169.254/pub/", "169.254.169.254 is a link-local address"),
    ("file:///etc/passwd", "only http, https and ftp"),
    ("gopher://example.org/", "only http, https and ftp"),
])
def test_fetcher_refuses_urls_before_connecting(url: str, words: str) -> None:
    with pytest.raises(FetchError) as caught:
        Fetcher(AddressPolicy(), timeout=2).open(url)
    assert words in caught.value.message
    assert caught.value.message.startswith(("refused:", "not a URL"))
    assert not caught.value.transient


def test_fetcher_refuses_loopback_server_unless_allowed(site: ArchiveServer) -> None:
    """The default policy refuses the local server (no request arrives); with loopback
    allowed, the same URL is fetched."""
    site.reset()
    with pytest.raises(FetchError, match=re.escape("refused: 127.0.0.1 is a loopback address")):
        Fetcher(AddressPolicy(), timeout=2).open(f"{site.url}/files/a.fits")
    with pytest.raises(FetchError, match="loopback address"):
        Fetcher(AddressPolicy(), timeout=2).open(
            f"http://[::ffff:127.0.0.1]:{site.port}/files/a.fits")
    assert sum(site.hits.values()) == 0
    data, final = Fetcher(LOOPBACK, timeout=2).read(f"{site.url}/files/a.fits")
    assert data.startswith(b"SIMPLE") and final == f"{site.url}/files/a.fits"


def test_every_redirect_hop_is_checked(site: ArchiveServer) -> None:
    """Redirects are followed by hand: a hop to a denied address (link-local, or a loopback
    address outside the allow list), to a non-HTTP scheme, or the eleventh hop is refused."""
    fetcher = Fetcher(AddressPolicy.from_strings(["127.0.0.1/32"]), timeout=2)
    cases = {
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
        "http://[::ffff:a9fe:a9fe]/": "IPv4-mapped 169.254.169.254",
        f"http://127.0.0.2:{site.port}/files/a.fits": "127.0.0.2 is a loopback address",
        "file:///etc/passwd": "redirects to a 'file:' URL",
        "gopher://127.0.0.1/": "redirects to a 'gopher:' URL",
    }
    for target, words in cases.items():
        with pytest.raises(FetchError) as caught:
            fetcher.open(f"{site.url}/redirect?to={target}")
        assert words in caught.value.message, caught.value.message
        assert not caught.value.transient
    with pytest.raises(FetchError, match="more than 10 redirects"):
        fetcher.open(f"{site.url}/chain/11")
    body, final = fetcher.read(f"{site.url}/redirect?to=/files/a.fits")
    assert body.startswith(b"SIMPLE") and final.endswith("/files/a.fits")


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on loopback with a self-signed certificate for 'localhost'."""
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("openssl (to make a test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run([str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1]), folder / "cert.pem"
    server.shutdown()
    server.server_close()


def test_https_checks_the_name_on_the_vetted_connection(tls_site: tuple[int, Path]) -> None:
    """HTTPS goes through the same address check (localhost refused by default), then TLS
    verifies the certificate against the URL's host name, not the address connected to."""
    port, cert = tls_site
    with pytest.raises(FetchError, match=r"refused: localhost \(.*loopback"):
        Fetcher(AddressPolicy(), timeout=5).open(f"https://localhost:{port}/")
    with pytest.raises(FetchError, match="TLS certificate not accepted"):
        Fetcher(LOOPBACK, timeout=5).open(f"https://localhost:{port}/")
    trusting = ssl.create_default_context(cafile=str(cert))
    fetcher = Fetcher(LOOPBACK, timeout=5, ssl_context=trusting)
    assert fetcher.read(f"https://localhost:{port}/")[0] == b"secret"
    with pytest.raises(FetchError, match="TLS certificate not accepted"):
        fetcher.open(f"https://127.0.0.1:{port}/")


def test_size_limit_stops_reading(site: ArchiveServer) -> None:
    """A body over the limit is refused before reading when announced, and as soon as the
    limit passes when no length is sent."""
    fetcher = Fetcher(LOOPBACK, timeout=5, max_size=100_000)
    with pytest.raises(TooLargeError, match=re.escape("1.0 TB announced")):
        fetcher.open(f"{site.url}/announced-big")
    download = fetcher.open(f"{site.url}/endless")
    received = 0
    with pytest.raises(TooLargeError, match="larger than the limit of 100 kB"):
        for chunk in download.chunks():
            received += len(chunk)
    assert received <= 100_000


def test_transient_http_errors_are_marked(site: ArchiveServer) -> None:
    fetcher = Fetcher(LOOPBACK, timeout=2)
    site.reset()
    with pytest.raises(FetchError) as caught:
        fetcher.open(f"{site.url}/flaky/1/a.fits")
    assert caught.value.transient and "HTTP 500" in caught.value.message
    with pytest.raises(FetchError) as caught:
        fetcher.open(f"{site.url}/busy/a.fits")
    assert caught.value.transient and caught.value.retry_after == 0
    with pytest.raises(FetchError) as caught:
        fetcher.open(f"{site.url}/missing.fits")
    assert not caught.value.transient and "HTTP 404" in caught.value.message
    listener = _CountingListener()
    port = listener.port
    listener.close()
    with pytest.raises(FetchError) as caught:
        fetcher.open(f"http://127.0.0.1:{port}/x")
    assert caught.value.transient


def test_backoff_grows_and_honours_retry_after() -> None:
    assert 1.0 <= backoff_delay(1, 1.0) <= 1.25
    assert 4.0 <= backoff_delay(3, 1.0) <= 5.0
    assert backoff_delay(1, 0.01, retry_after=2.0) == 2.0
    assert backoff_delay(10, 1.0) == 30.0
    assert redact("ftp://user:secret@host/x") == "ftp://***@host/x"


# FTP ---------------------------------------------------------------------------------------


def test_ftp_fetch_and_walk(site: ArchiveServer) -> None:
    with ftp_server(site.root) as url:
        fetcher = Fetcher(LOOPBACK, timeout=5)
        assert fetcher.read(f"{url}/files/a.fits")[0].startswith(b"SIMPLE")
        listing = crawl_ftp(f"{url}/tree/", fetcher.list_ftp, depth=1, pattern="*.fits")
        assert [f.parts for f in listing.files] == [("spec.fits",), ("sub", "spec.fits")]
        with pytest.raises(FetchError, match="550"):
            fetcher.open(f"{url}/files/none.fits")
        with pytest.raises(FetchError, match=re.escape("refused: 127.0.0.1 is a loopback address")):
            Fetcher(AddressPolicy(), timeout=5).list_ftp(f"{url}/tree/")


def test_ftp_pasv_reply_to_a_denied_address_is_refused(site: ArchiveServer) -> None:
    """An FTP server whose PASV reply names 169.254.7.7: the control connection (to an
    allowed address) works, the data connection is refused before it is opened."""
    with ftp_server(site.root, masquerade="169.254.7.7") as url:
        fetcher = Fetcher(LOOPBACK, timeout=5)
        for action in (lambda: fetcher.open(f"{url}/files/a.fits"),
                       lambda: fetcher.list_ftp(f"{url}/tree/")):
            with pytest.raises(FetchError) as caught:
                action()
            assert "PASV" in caught.value.message
            assert "169.254.7.7 is a link-local address" in caught.value.message
            assert not caught.value.transient


def test_fake_ftp_control_connection_pasv_to_metadata() -> None:
    """A bare control connection that answers PASV with 169.254.169.254: refused, and
    nothing else is sent after the PASV."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    commands: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rwb") as stream:
            stream.write(b"220 fake\r\n")
            stream.flush()
            replies = {"USER": b"331 ok\r\n", "PASS": b"230 ok\r\n", "TYPE": b"200 ok\r\n",
                       "SIZE": b"213 10\r\n",
                       "PASV": b"227 Entering Passive Mode (169,254,169,254,0,80)\r\n"}
            for line in stream:
                command = line.decode().strip()
                commands.append(command)
                verb = command.split()[0].upper()
                stream.write(replies.get(verb, b"221 bye\r\n"))
                stream.flush()
                if verb not in replies:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(FetchError, match=re.escape("169.254.169.254 is a link-local address")):
        Fetcher(LOOPBACK, timeout=5).open(f"ftp://127.0.0.1:{port}/x.fits")
    thread.join(5)
    listener.close()
    verbs = [c.split()[0] for c in commands]
    assert "PASV" in verbs and "RETR" not in verbs


# Listings ----------------------------------------------------------------------------------


def _reader(fetcher: Fetcher):  # type: ignore[no-untyped-def]
    def read(url: str) -> tuple[bytes, str, str | None]:
        with fetcher.open(url) as download:
            return download.read(), download.url, download.content_type
    return read


def test_http_walk_depth_and_pattern(site: ArchiveServer) -> None:
    read = _reader(Fetcher(LOOPBACK, timeout=5))
    found = {d: [f.parts for f in crawl_http(f"{site.url}/tree/", read, depth=d,
                                             pattern="*.fits").files] for d in (0, 1, 2)}
    assert found[0] == [("spec.fits",)]
    assert found[1] == [("spec.fits",), ("sub", "spec.fits")]
    assert found[2] == [("spec.fits",), ("sub", "spec.fits"), ("sub", "deeper", "spec.fits")]
    everything = crawl_http(f"{site.url}/tree", read, depth=0, pattern="*")
    assert sorted(f.parts for f in everything.files) == [("notes.txt",), ("spec.fits",)]
    limited = crawl_http(f"{site.url}/tree/", read, depth=2, pattern="*", max_files=3)
    assert len(limited.files) == 3 and limited.truncated


def test_http_walk_stays_below_the_start_url(site: ArchiveServer) -> None:
    """Parent links, other hosts, sorting links and links outside the prefix are ignored;
    names that decode to '..' or hold a '/' are refused, not followed or split."""
    read = _reader(Fetcher(LOOPBACK, timeout=5))
    listing = crawl_http(f"{site.url}/odd/", read, depth=1, pattern="*")
    assert sorted(f.parts for f in listing.files) == [("..", "escape.fits"),
                                                      ("inside", "x.fits"), ("ok.fits",)]
    assert all(f.url.startswith(f"{site.url}/odd/") for f in listing.files)
    assert [p.reason for p in listing.problems] == ["refused: the name 'a/b.fits' holds a '/' "
                                                    "or '\\'"]


# VOTables ----------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE VOTABLE [<!ENTITY leak SYSTEM "file:///etc/passwd">]>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="url" datatype="char" arraysize="*" ucd="meta.ref.url"/>
<DATA><TABLEDATA><TR><TD>&leak;</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<VOTABLE><RESOURCE><TABLE><DESCRIPTION>&lol3;</DESCRIPTION></TABLE></RESOURCE></VOTABLE>"""


def _votable(fields: str, rows: str, extra: str = "") -> bytes:
    return (f'<?xml version="1.0"?><VOTABLE version="1.4" '
            f'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results"><TABLE>'
            f"{fields}<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE>{extra}"
            "</VOTABLE>").encode()


@pytest.mark.parametrize(("document", "words"), [
    (XXE, "DOCTYPE"),
    (BILLION_LAUGHS, "DOCTYPE"),
    (XXE.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
     .encode("utf-16"), "DOCTYPE"),
    (b'<VOTABLE><RESOURCE><TABLE><DESCRIPTION>&xxe;</DESCRIPTION></TABLE></RESOURCE></VOTABLE>',
     "not a well-formed"),
    (b'<VOTABLE><RESOURCE><TABLE><DATA><BINARY><STREAM href="http://169.254.169.254/"/>'
     b'</BINARY></DATA></TABLE></RESOURCE></VOTABLE>', "STREAM"),
    (b"<html><body>hello</body></html>", "not a VOTable"),
])
def test_hostile_votables_are_refused(document: bytes, words: str) -> None:
    with pytest.raises(VOTableError, match=words):
        parse_votable(document)


def test_url_column_by_ucd_utype_legacy_ucd_or_name() -> None:
    def column(fields: str) -> int | None:
        doc = _votable(fields, "")
        return find_url_column(tables(parse_votable(doc))[0])

    f = '<FIELD name="{n}" datatype="char" arraysize="*" {a}/>'
    assert column(f.format(n="preview", a='ucd="meta.ref.url;meta.preview"')
                  + f.format(n="link", a='ucd="meta.ref.url"')) == 1
    assert column(f.format(n="a", a="") + f.format(n="b", a='utype="ssa:Access.Reference"')) == 1
    assert column(f.format(n="a", a="") + f.format(n="b", a='ucd="VOX:Image_AccessReference"')) \
        == 1
    assert column(f.format(n="id", a="") + f.format(n="ACCREF", a="")) == 1
    assert column(f.format(n="id", a="") + f.format(n="title", a="")) is None


def test_binary_votable_rows_are_read() -> None:
    """A BINARY2 table (as DaCHS may send) is read through astropy once the document is safe."""
    from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

    votable = VOTableFile()
    resource = Resource()
    votable.resources.append(resource)
    table = TableElement(votable)
    resource.tables.append(table)
    table.fields.append(Field(votable, name="access_url", datatype="char", arraysize="*",
                              ucd="meta.ref.url"))
    table.create_arrays(2)
    table.array[0] = ("http://example.org/a.fits",)
    table.array[1] = ("http://example.org/b.fits",)
    buffer = io.BytesIO()
    votable.to_xml(buffer, tabledata_format="binary2")
    data = buffer.getvalue()
    refs = dataset_refs(parse_votable(data), data)
    assert [r.url for r in refs] == ["http://example.org/a.fits", "http://example.org/b.fits"]


LINKS_FIELDS = "".join(f'<FIELD name="{n}" datatype="char" arraysize="*"/>' for n in (
    "ID", "access_url", "service_def", "error_message", "semantics"))


def test_datalink_rows_and_errors() -> None:
    ok = _votable(LINKS_FIELDS, "<TR><TD>ivo://x?1</TD><TD>http://h/preview.png</TD><TD/><TD/>"
                  "<TD>#preview</TD></TR><TR><TD>ivo://x?1</TD><TD>http://h/1.fits</TD><TD/>"
                  "<TD/><TD>#this</TD></TR>")
    assert choose_link(parse_votable(ok)) == ("http://h/1.fits", None)
    url, note = choose_link(parse_votable(ok), cutout_band=(6.5e-7, 6.6e-7))
    assert url == "http://h/1.fits" and note and "no SODA cutout service" in note
    error = _votable(LINKS_FIELDS, "<TR><TD>ivo://x?2</TD><TD/><TD/>"
                     "<TD>NotFoundFault: ivo://x?2 is unknown</TD><TD>#this</TD></TR>")
    with pytest.raises(DataLinkError, match=r"^NotFoundFault: ivo://x\?2 is unknown$"):
        choose_link(parse_votable(error))


def test_access_format_datalink_rows_are_links_documents() -> None:
    fields = ('<FIELD name="accref" datatype="char" arraysize="*" utype="ssa:Access.Reference"/>'
              '<FIELD name="fmt" datatype="char" arraysize="*" utype="ssa:Access.Format"/>')
    doc = _votable(fields, "<TR><TD>http://h/dl?ID=1</TD>"
                   "<TD>application/x-votable+xml;content=datalink</TD></TR>"
                   "<TR><TD>http://h/2.fits</TD><TD>application/fits</TD></TR><TR><TD/><TD/></TR>")
    refs = dataset_refs(parse_votable(doc))
    assert [(r.url, r.links_url) for r in refs] == [(None, "http://h/dl?ID=1"),
                                                    ("http://h/2.fits", None), (None, None)]


def test_ssa_query_parameters() -> None:
    url = ssa_query_url("http://h/ssa?FORMAT=votable", ra=10.5, dec=-20.25, size=0.5,
                        band="6.5e-7/6.6e-7", time="55000/55001.5", maxrec=10)
    assert url.startswith("http://h/ssa?FORMAT=votable&REQUEST=queryData&POS=10.5%2C-20.25")
    assert "SIZE=0.5" in url and "BAND=6.5e-07%2F6.6e-07" in url and "MAXREC=10" in url
    assert "TIME=2009-06-18T00%3A00%3A00.000%2F2009-06-19T12%3A00%3A00.000" in url
    assert parse_time_range("2010-01-01/") == "2010-01-01/"
    assert parse_band("/7e-7") == (None, 7e-7)
    assert parse_band("6e-7 7e-7") == (6e-7, 7e-7)
    for bad in ("7e-7/6e-7", "red/blue", "-1/2"):
        with pytest.raises(ValueError):
            parse_band(bad)
    with pytest.raises(ValueError, match="start is after the end"):
        parse_time_range("55010/55000")


# Archives ----------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def _tar(path: Path, kind: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        data = b"spectrum"
        info = tarfile.TarInfo("./a/b.fits")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        if kind is not None:
            special = tarfile.TarInfo("evil")
            special.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                            "device": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            special.linkname = "/etc/passwd"
            archive.addfile(special)
    return path


def test_safe_archives_are_listed_and_read(tmp_path: Path) -> None:
    good = _zip(tmp_path / "good.zip", {"a.fits": b"A", "sub/b.fits": b"B", "sub/": b""})
    assert [m.name for m in archive_members(good, "zip")] == ["a.fits", "sub/b.fits"]
    assert b"".join(read_member(good, "zip", "sub/b.fits")) == b"B"
    tar = _tar(tmp_path / "good.tar.gz")
    assert [m.name for m in archive_members(tar, "tar")] == ["a/b.fits"]
    assert b"".join(read_member(tar, "tar", "a/b.fits")) == b"spectrum"
    assert [archive_kind(n) for n in ("x.ZIP", "x.tar.gz", "x.tgz", "x.tar", "x.fits")] == \
        ["zip", "tar", "tar", "tar", None]


@pytest.mark.parametrize(("members", "symlink", "words"), [
    ({"ok.fits": b"1", "../../escape.fits": b"2"}, None, "climbs out"),
    ({"/etc/cron.d/evil": b"2"}, None, "absolute path"),
    ({"C:/evil.fits": b"2"}, None, "absolute path"),
    ({"a\\..\\b.fits": b"2"}, None, "backslash"),
    ({"ok.fits": b"1"}, "link.fits", "symbolic link"),
])
def test_unsafe_zip_members_refuse_the_archive(tmp_path: Path, members: dict[str, bytes],
                                               symlink: str | None, words: str) -> None:
    with pytest.raises(ArchiveError, match=words):
        archive_members(_zip(tmp_path / "bad.zip", members, symlink), "zip")


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "fifo"])
def test_unsafe_tar_members_refuse_the_archive(tmp_path: Path, kind: str) -> None:
    words = {"symlink": "symbolic link", "hardlink": "hard link", "device": "device",
             "fifo": "FIFO"}[kind]
    with pytest.raises(ArchiveError, match=words):
        archive_members(_tar(tmp_path / "bad.tar.gz", kind), "tar")


def test_tar_members_with_unsafe_or_empty_names_refuse_the_archive(tmp_path: Path) -> None:
    """A regular file named '../../escape/' or 'ok/' (a trailing '/'), '.', or with an
    empty or '.' part is refused, like every unsafe name; the top folder './' is fine."""
    for name, words in (("../../escape/", "climbs out"), ("ok/", "ends in '/'"),
                        (".", "no file name"), ("./", "no file name"), ("a/./b", "no file name"),
                        ("a//b", "no file name")):
        path = tmp_path / "bad.tar"
        with tarfile.open(path, "w") as archive:
            info = tarfile.TarInfo(name)
            info.type = tarfile.REGTYPE
            info.size = 1
            archive.addfile(info, io.BytesIO(b"E"))
        with pytest.raises(ArchiveError, match=re.escape(words)):
            archive_members(path, "tar")
    with tarfile.open(tmp_path / "top.tar", "w") as archive:
        top = tarfile.TarInfo("./")
        top.type = tarfile.DIRTYPE
        archive.addfile(top)
        info = tarfile.TarInfo("./x.fits")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    assert archive_members(tmp_path / "top.tar", "tar") == [Member("x.fits", 1)]


def test_zip_member_named_dot_refuses_the_archive(tmp_path: Path) -> None:
    """A zip member '.' would be stored at the target folder's own path: refused."""
    with pytest.raises(ArchiveError, match="no file name"):
        archive_members(_zip(tmp_path / "dot.zip", {".": b"DOT", "a.fits": b"A"}), "zip")
    with pytest.raises(ArchiveError, match="climbs out"):
        archive_members(_zip(tmp_path / "up.zip", {"../x/": b"", "a.fits": b"A"}), "zip")


def test_members_are_streamed_in_one_pass(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading every member opens the archive once and walks it once (time in proportion
    to the archive, not to members x archive); a member with a bad CRC fails alone."""
    count = 400
    tar_path = tmp_path / "many.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        for i in range(count):
            info = tarfile.TarInfo(f"d/f{i}.fits")
            info.size = len(str(i))
            archive.addfile(info, io.BytesIO(str(i).encode()))
    zip_path = _zip(tmp_path / "many.zip", {f"f{i}.fits": str(i).encode() for i in range(count)})
    opened = {"tar": 0, "zip": 0}
    tar_open, zip_init = tarfile.open, zipfile.ZipFile.__init__

    def counting_tar_open(*args: Any, **kwargs: Any) -> tarfile.TarFile:
        opened["tar"] += 1
        return tar_open(*args, **kwargs)

    def counting_zip_init(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        opened["zip"] += 1
        zip_init(self, *args, **kwargs)

    for path, kind in ((tar_path, "tar"), (zip_path, "zip")):
        members = archive_members(path, kind)
        monkeypatch.setattr(tarfile, "open", counting_tar_open)
        monkeypatch.setattr(zipfile.ZipFile, "__init__", counting_zip_init)
        read = {m.name: b"".join(chunks) for m, chunks in read_members(path, kind, members)}
        monkeypatch.undo()
        assert len(read) == count
        assert all(data == PurePosixPath(name).stem[1:].encode()
                   for name, data in read.items())
    assert opened == {"tar": 1, "zip": 1}

    broken = tmp_path / "crc.zip"
    with zipfile.ZipFile(broken, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.fits", b"AAAAAAAA")
        archive.writestr("b.fits", b"BBBBBBBB")
    raw = bytearray(broken.read_bytes())
    raw[raw.index(b"AAAAAAAA")] = ord("X")
    broken.write_bytes(bytes(raw))
    outcome = {}
    for member, chunks in read_members(broken, "zip", archive_members(broken, "zip")):
        try:
            outcome[member.name] = b"".join(chunks)
        except ArchiveError as exc:
            outcome[member.name] = str(exc).encode()
    assert b"cannot be read" in outcome["a.fits"] and b"CRC" in outcome["a.fits"]
    assert outcome["b.fits"] == b"BBBBBBBB"


# Malformed URLs and credentials ----------------------------------------------------------


@pytest.mark.parametrize(("url", "words"), [
    ("http://[::1/f.fits", "malformed host"),
    ("http://u:pw@127.0.0.1:99999/f.fits", "bad port"),
    ("http://u:pw@127.0.0.1:abc/f.fits", "bad port"),
    ("ftp://us%0d%0aDELE%20x:pw@127.0.0.1:21/f.fits", "control characters in its user name"),
    ("http://u%00x:pw@127.0.0.1:1/f.fits", "control characters in its user name"),
    ("http://a..b/f.fits", "not a valid host name"),
])
def test_malformed_urls_are_fetch_errors(url: str, words: str) -> None:
    """A malformed URL is a FetchError (never transient, no password shown), not a
    ValueError, whether opened or listed."""
    fetcher = Fetcher(LOOPBACK, timeout=2)
    for action in (fetcher.open, fetcher.list_ftp):
        with pytest.raises(FetchError) as caught:
            action(url)
        assert words in caught.value.message, caught.value.message
        assert not caught.value.transient
        assert "pw" not in caught.value.message


def test_ftp_user_with_crlf_is_refused_before_login(site: ArchiveServer) -> None:
    """CR/LF in an FTP user name (percent-encoded) would inject commands: refused."""
    with ftp_server(site.root) as url:
        bad = url.replace("ftp://", "ftp://us%0d%0aDELE%20x:pw@") + "/files/a.fits"
        with pytest.raises(FetchError, match="control characters in its user name"):
            Fetcher(LOOPBACK, timeout=5).open(bad)


@pytest.mark.parametrize(("location", "words"), [
    ("http://[::1/x.fits", "redirect to a malformed URL"),
    ("http://u:pw@127.0.0.1:99999/x.fits", "bad port"),
])
def test_malformed_redirects_are_fetch_errors(site: ArchiveServer, location: str,
                                              words: str) -> None:
    with pytest.raises(FetchError) as caught:
        Fetcher(LOOPBACK, timeout=2).open(f"{site.url}/redirect?to={quote(location, safe='')}")
    assert words in caught.value.message, caught.value.message
    assert not caught.value.transient and ":pw@" not in caught.value.message


def _importer(fetcher: object, max_files: int = 10000) -> Importer:
    """An importer over ``fetcher`` for what needs neither a job nor a store."""
    return Importer(cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, fetcher),
                    PurePosixPath("imports/t"), attempts=1, retry_delay=0, max_files=max_files)


def test_importer_turns_value_errors_into_failed_rows() -> None:
    """Whatever ValueError fetching raises, the file fails alone with a reason."""
    class Broken:
        def open(self, url: str) -> None:
            raise ValueError(f"cannot handle {url}")

    rows = _importer(Broken()).fetch(Item("http://u:pw@h.example/f.fits"))
    assert [(r.status, r.url) for r in rows] == [("failed", "http://***@h.example/f.fits")]
    assert rows[0].reason == "cannot be fetched: cannot handle http://***@h.example/f.fits"


def test_redact_hides_any_user_name_and_password() -> None:
    assert redact("http://vct_1_s3cret@example.org/x") == "http://***@example.org/x"
    assert redact("https://u:p@ss@[::1]:8443/x?q=1") == "https://***@[::1]:8443/x?q=1"
    assert redact("http://u:pw@127.0.0.1:99999/x") == "http://***@127.0.0.1:99999/x"
    assert redact("http://u:pw@[::1/x") == "http://***@[::1/x"
    assert redact("http://example.org/a@b") == "http://example.org/a@b"
    assert redact_text("GET 'ftp://me:pw@h/x' then http://tok@h2/ failed (a@b)") == \
        "GET 'ftp://***@h/x' then http://***@h2/ failed (a@b)"


def test_listing_errors_do_not_show_passwords() -> None:
    """The start folder that is not an index, and a sub-folder that cannot be read, are
    reported without the password of their URL."""
    start = "http://alice:S3cretPW@h.example/data/"

    def not_an_index(url: str) -> tuple[bytes, str, str | None]:
        return b"{}", url, "application/json"

    with pytest.raises(ListingError) as caught:
        crawl_http(start, not_an_index, depth=1)
    assert "S3cretPW" not in str(caught.value) and "http://***@h.example" in str(caught.value)

    def sub_fails(url: str) -> tuple[bytes, str, str | None]:
        if url.endswith("/sub/"):
            raise RuntimeError(f"{url}: broken")
        return b'<a href="sub/">sub</a>', url, "text/html"

    listing = crawl_http(start, sub_fails, depth=1)
    assert [p.reason for p in listing.problems] == ["http://***@h.example/data/sub/: broken"]


# Limits ----------------------------------------------------------------------------------


def test_http_walk_stops_at_max_folders() -> None:
    """A tree of 60 sub-folders per page is walked to max_folders pages, then stops with
    one problem naming the limit."""
    pages: list[str] = []

    def wide(url: str) -> tuple[bytes, str, str | None]:
        pages.append(url)
        body = "".join(f'<a href="d{i}/">d{i}</a>' for i in range(60))
        return body.encode(), url, "text/html"

    listing = crawl_http("http://h.example/x/", wide, depth=2, max_folders=25)
    assert len(pages) == 25 and listing.folders == 25 and listing.truncated
    assert len(listing.problems) == 1
    assert "stopped after reading 25 folders" in listing.problems[0].reason
    assert "VOCLOUD_IMPORT_MAX_FOLDERS" in listing.problems[0].reason

    folders: list[str] = []

    def wide_ftp(url: str) -> list[FtpEntry]:
        folders.append(url)
        return [FtpEntry(f"d{i}", True) for i in range(60)]

    ftp_listing = crawl_ftp("ftp://h.example/x/", wide_ftp, depth=2, max_folders=25)
    assert len(folders) == 25 and ftp_listing.truncated


def test_ftp_listing_is_cut_at_max_listing(tmp_path: Path) -> None:
    """An FTP folder with more entries than max_listing: only that many are read, the
    listing is marked cut, and the walk reports it."""
    for i in range(120):
        (tmp_path / f"f{i:03d}.fits").write_bytes(b"x")
    with ftp_server(tmp_path) as url:
        fetcher = Fetcher(LOOPBACK, timeout=5, max_listing=50)
        entries = fetcher.list_ftp(f"{url}/")
        assert isinstance(entries, FtpListing) and entries.truncated and len(entries) == 50
        listing = crawl_ftp(f"{url}/", fetcher.list_ftp, depth=0, pattern="*.fits")
        assert len(listing.files) == 50 and listing.truncated
        assert "VOCLOUD_IMPORT_MAX_LISTING" in listing.problems[0].reason
        full = Fetcher(LOOPBACK, timeout=5).list_ftp(f"{url}/")
        assert len(full) == 120 and not full.truncated


def test_ftp_data_connection_goes_to_the_control_peer(site: ArchiveServer) -> None:
    """A PASV reply naming another (allowed) address is not followed: the data connection
    goes to the control connection's peer, where the server listens."""
    with ftp_server(site.root, masquerade="127.0.0.2") as url:
        fetcher = Fetcher(LOOPBACK, timeout=5)
        assert fetcher.read(f"{url}/files/a.fits")[0].startswith(b"SIMPLE")
        assert [e.name for e in fetcher.list_ftp(f"{url}/files/")] == ["a.fits"]


def test_long_votable_of_links_is_cut_while_parsed() -> None:
    """Only the first max_files rows of a VOTable of links are kept (the rest are dropped as
    they are parsed); a VOTable over the size limit is refused with a clear reason."""
    rows = "".join(f"<TR><TD>http://h.example/{i}.fits</TD></TR>" for i in range(50))
    document = _votable('<FIELD name="url" datatype="char" arraysize="*" ucd="meta.ref.url"/>',
                        rows)
    root, dropped = parse_votable_limited(document, 10)
    assert dropped == 40 and len(tables(root)[0].rows) == 10
    assert parse_votable_limited(document, 100)[1] == 0

    class Serving:
        def read(self, url: str, *, max_size: int | None = None) -> tuple[bytes, str]:
            if "big" in url:
                raise TooLargeError("too large")
            return document, url

    _data, root, dropped = _importer(Serving(), max_files=10).read_votable("http://h/l.vot")
    assert dropped == 40 and len(tables(root)[0].rows) == 10
    assert VOTABLE_MAX_BYTES <= 20 * 10**6
    with pytest.raises(FetchError, match="larger than 20 MB, the most read of a VOTable"):
        _importer(Serving()).read_votable("http://u:pw@h/big.vot")


def test_relative_names_dot_and_empty_are_refused() -> None:
    """'.', '..' and '' are not file names: joined to the target they would name the target
    folder itself (PurePosixPath drops '.')."""
    importer = _importer(None)
    for name in (".", "..", ""):
        with pytest.raises(_Refused, match="is not a file name"):
            importer.relative([name], "Content-Disposition")
    assert importer.relative(["sub", "a.fits"], "the listing") == \
        PurePosixPath("imports/t/sub/a.fits")
