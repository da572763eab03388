"""Fetching remote files over HTTP(S) and FTP, connecting only to addresses a policy allows.

:class:`Fetcher` opens a URL and hands back a :class:`Download` whose body
is read as a stream of chunks.  Every connection goes through
:func:`vo.netpolicy.connect`, which checks the address it actually
connects to: the first request, every HTTP redirect (followed here, at
most ``max_redirects``, only to ``http:``/``https:``), and every FTP data
connection (the address of a ``PASV`` reply is checked like any other, and
refused when the policy denies it; the data connection goes to the control
connection's peer whatever address the reply names).  No proxy from the
environment is used.  A body larger than ``max_size`` is refused as soon as
that many bytes have been read, whatever ``Content-Length`` said.

Failures raise :class:`FetchError`; its ``transient`` flag says whether
trying again may help (connection errors, time-outs, HTTP 5xx/429/408, FTP
4xx replies); :func:`backoff_delay` gives the wait before the next attempt.
A malformed URL (or redirect) is a :class:`FetchError` too, never transient.
FTP folder listings are read up to ``max_listing`` entries; a longer one is
cut there (:attr:`FtpListing.truncated`).

:func:`redact` and :func:`redact_text` take the user name and password out
of URLs before they go into messages and manifests.
"""

from __future__ import annotations

import base64
import email.message
import ftplib
import http.client
import random
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, unquote, urljoin, urlsplit

from vo.netpolicy import AddressPolicy, RefusedError, ResolveError, connect

__all__ = ["Download", "FetchError", "Fetcher", "FtpEntry", "FtpListing", "RefusedError",
           "TooLargeError", "backoff_delay", "redact", "redact_text", "url_name"]

#: Size of the pieces a body is read in.
CHUNK_SIZE = 256 * 1024
#: Schemes a fetch (and an HTTP redirect) may use.
HTTP_SCHEMES = ("http", "https")
SCHEMES = (*HTTP_SCHEMES, "ftp")
USER_AGENT = "vocloud-import/0.1"
_REDIRECTS = (301, 302, 303, 307, 308)
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509})
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_CONTROL_ONLY = re.compile(r"[\x00-\x1f\x7f]")
#: Scheme and authority at the start of a URL (leading blanks, as ``urlsplit`` skips them).
_AUTHORITY = re.compile(r"[\x00-\x20]*(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#]*)")
#: ``scheme://userinfo@`` anywhere in a text.
_USERINFO_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
#: Entries of one FTP folder listing read at most (:class:`Fetcher`'s default).
MAX_LISTING = 100_000
#: Bytes of one FTP folder listing read at most.
LISTING_MAX_BYTES = 64 * 2**20


class FetchError(Exception):
    """A fetch that failed.

    Parameters
    ----------
    message : str
        What went wrong, for the astronomer.
    transient : bool
        Whether trying again later may succeed.
    retry_after : float, optional
        Seconds the server asked to wait (HTTP ``Retry-After``).
    """

    def __init__(self, message: str, *, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


class TooLargeError(FetchError):
    """A body larger than the size limit; never transient."""


def redact(url: str) -> str:
    """``url`` with its user name and password replaced by ``***``, for messages and manifests.

    Works on the text itself, so a malformed URL (a bad port, an unclosed
    ``[``) is redacted as well, and nothing is raised.
    """
    match = _AUTHORITY.match(url)
    if match is None or "@" not in match.group(1):
        return url
    host = match.group(1).rpartition("@")[2]
    return f"{url[:match.start(1)]}***@{host}{url[match.end(1):]}"


def redact_text(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``."""
    return _USERINFO_IN_TEXT.sub(r"\1***@", text)


def url_name(url: str) -> str:
    """The decoded last segment of the URL's path ("" for a folder URL)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def backoff_delay(attempt: int, base: float, retry_after: float | None = None,
                  maximum: float = 30.0) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    Exponential (``base * 2**(attempt-1)``) with up to 25 % random jitter,
    or the server's ``Retry-After`` when it asked for longer; never more
    than ``maximum``.
    """
    delay = base * 2 ** max(0, attempt - 1)
    delay *= 1 + random.random() / 4
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, maximum)


def _human(n: int) -> str:
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= factor:
            value = n / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"


def _too_large(max_size: int, what: str) -> TooLargeError:
    return TooLargeError(f"too large: {what} is larger than the limit of {_human(max_size)} "
                         "for one file")


def _content_disposition_name(value: str | None) -> str | None:
    if not value:
        return None
    message = email.message.Message()
    message["content-disposition"] = value
    name = message.get_filename()
    return name or None


class Download:
    """An opened remote file whose body has not been read yet.

    Attributes
    ----------
    url : str
        The URL finally answered (after redirects).
    length : int or None
        Announced size of the body, when known.
    content_type : str or None
        Announced media type (HTTP only).
    filename : str or None
        File name the server suggested (``Content-Disposition``), unchecked.
    """

    def __init__(self, url: str, *, read: Callable[[int], bytes], close: Callable[[], None],
                 max_size: int | None, length: int | None = None,
                 content_type: str | None = None, filename: str | None = None,
                 finish: Callable[[], None] | None = None) -> None:
        self.url = url
        self.length = length
        self.content_type = content_type
        self.filename = filename
        self._read = read
        self._close = close
        self._finish = finish
        self._max_size = max_size
        self._closed = False
        if max_size is not None and length is not None and length > max_size:
            self.close()
            raise _too_large(max_size, f"{redact(url)} ({_human(length)} announced)")

    def chunks(self) -> Iterator[bytes]:
        """The body, piece by piece.

        Raises
        ------
        TooLargeError
            As soon as more than ``max_size`` bytes arrived; the piece that
            passed the limit is not yielded.
        FetchError
            When the connection breaks or times out (transient).
        """
        received = 0
        try:
            while True:
                try:
                    chunk = self._read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException, EOFError, ValueError) as exc:
                    raise _transport_error(exc, self.url) from None
                if not chunk:
                    break
                received += len(chunk)
                if self._max_size is not None and received > self._max_size:
                    raise _too_large(self._max_size, redact(self.url))
                yield chunk
            if self.length is not None and received < self.length:
                raise FetchError(f"{redact(self.url)}: the connection ended after {received} of "
                                 f"{self.length} bytes", transient=True)
            if self._finish is not None:
                try:
                    self._finish()
                except ftplib.error_temp as exc:
                    raise FetchError(f"FTP: {exc}", transient=True) from None
                except (ftplib.Error, OSError, EOFError, ValueError) as exc:
                    raise _transport_error(exc, self.url) from None
        finally:
            self.close()

    def read(self) -> bytes:
        """The whole body (within ``max_size``)."""
        return b"".join(self.chunks())

    def close(self) -> None:
        """Close the connection; reading stops."""
        if not self._closed:
            self._closed = True
            try:
                self._close()
            except (OSError, EOFError, ftplib.Error, http.client.HTTPException):
                pass

    def __enter__(self) -> Download:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _transport_error(exc: BaseException, url: str) -> FetchError:
    """A :class:`FetchError` for an exception of the socket, SSL, HTTP or FTP layers."""
    where = redact(url)
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, RefusedError):
        return FetchError(str(exc))
    if isinstance(exc, ResolveError):
        return FetchError(f"{where}: {exc}", transient=exc.transient)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError(f"{where}: TLS certificate not accepted: {exc.verify_message}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return FetchError(f"{where}: timed out", transient=True)
    if isinstance(exc, ftplib.error_temp):
        return FetchError(f"{where}: FTP {str(exc).strip()}", transient=True)
    if isinstance(exc, ftplib.error_perm):
        return FetchError(f"{where}: FTP {str(exc).strip()}")
    if isinstance(exc, ftplib.Error):
        return FetchError(f"{where}: unexpected FTP reply: {str(exc).strip()}")
    if isinstance(exc, http.client.HTTPException):
        return FetchError(f"{where}: broken HTTP response ({type(exc).__name__}: "
                          f"{redact_text(str(exc))})", transient=True)
    if isinstance(exc, ValueError):
        return FetchError(f"{where}: {redact_text(str(exc)) or type(exc).__name__}")
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return FetchError(f"{where}: {text}", transient=True)


@dataclass(frozen=True)
class FtpEntry:
    """One entry of an FTP folder listing.

    Attributes
    ----------
    name : str
        Name inside the folder, as the server gave it.
    is_dir : bool
        True for a folder.
    size : int or None
        Bytes of a file, when listed.
    """

    name: str
    is_dir: bool
    size: int | None = None


class FtpListing(list[FtpEntry]):
    """The entries of one FTP folder, in the server's order.

    Attributes
    ----------
    truncated : bool
        True when the listing was longer than the limit and reading stopped
        there: the entries are the first ones only.
    """

    def __init__(self, entries: Iterable[FtpEntry] = (), *, truncated: bool = False) -> None:
        super().__init__(entries)
        self.truncated = truncated


class _VettedFTP(ftplib.FTP):
    """``ftplib.FTP`` whose control and data connections go to checked addresses only.

    Only passive mode is used.  The address of a ``PASV`` reply is
    checked against the policy and refused when denied; an allowed one is
    not connected to either: the data connection goes to the control
    connection's peer (as ``ftplib`` does by default), so a server cannot
    point it at a third host.  An ``EPSV`` reply names no address: the
    peer is used.
    """

    def __init__(self, policy: AddressPolicy, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._policy = policy
        self.set_pasv(True)

    def connect(self, host: str = "", port: int = 0, timeout: float = -999,
                source_address: tuple[str, int] | None = None) -> str:
        if host:
            self.host = host
        if port > 0:
            self.port = port
        self.sock = connect(self.host, self.port, self._policy, self.timeout)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def makepasv(self) -> tuple[str, int]:
        if self.sock is None:
            raise ftplib.error_proto("not connected")
        peer_address = self.sock.getpeername()
        peer = str(peer_address[0])
        if self.af == socket.AF_INET:
            named, port = ftplib.parse227(self.sendcmd("PASV"))
        else:
            named, port = ftplib.parse229(self.sendcmd("EPSV"), peer_address)
        if not 0 < port < 65536:
            raise ftplib.error_proto(f"the PASV reply names port {port}, not a TCP port")
        try:
            reason = self._policy.refusal(named)
        except ValueError:
            raise ftplib.error_proto(f"the PASV reply names {named!r}, not an IP address") \
                from None
        if reason is not None:
            server = self.host if self.host == peer else f"{self.host} ({peer})"
            raise RefusedError(f"refused: the FTP server {server} named a data address "
                               f"that is not allowed in its PASV reply: {reason}")
        return peer, port

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket,
                                                                             int | None]:
        host, port = self.makepasv()
        conn = connect(host, port, self._policy, self.timeout)
        try:
            if rest is not None:
                self.sendcmd(f"REST {rest}")
            resp = self.sendcmd(cmd)
            if resp[0] == "2":
                resp = self.getresp()
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
        except BaseException:
            conn.close()
            raise
        size = ftplib.parse150(resp) if resp[:3] == "150" else None
        return conn, size


class Fetcher:
    """Opens remote files over HTTP(S) and FTP under an address policy.

    Parameters
    ----------
    policy : AddressPolicy
        Which addresses connections may reach.
    timeout : float
        Seconds for a connection and for each read.
    max_size : int, optional
        Largest body accepted, in bytes (each call may lower it).
    max_redirects : int
        Most HTTP redirects followed for one request.
    ssl_context : ssl.SSLContext, optional
        TLS settings for ``https:``; by default the system's trusted
        certificates, with host name checking.
    max_listing : int
        Most entries read from one FTP folder listing.
    """

    def __init__(self, policy: AddressPolicy, *, timeout: float = 60.0,
                 max_size: int | None = None, max_redirects: int = 10,
                 ssl_context: ssl.SSLContext | None = None,
                 max_listing: int = MAX_LISTING) -> None:
        self.policy = policy
        self.timeout = timeout
        self.max_size = max_size
        self.max_redirects = max_redirects
        self.ssl_context = ssl_context
        self.max_listing = max(1, max_listing)

    def _limit(self, max_size: int | None) -> int | None:
        if max_size is None:
            return self.max_size
        return max_size if self.max_size is None else min(max_size, self.max_size)

    @staticmethod
    def check_url(url: str) -> str:
        """``url``, checked: a known scheme, a host, a port that is a number, no whitespace or
        control characters (none either, once decoded, in its user name and password).

        Returns
        -------
        str
            The URL with non-ASCII characters percent-encoded.

        Raises
        ------
        FetchError
            Saying what is wrong (never transient).
        """
        if _CONTROL.search(url):
            raise FetchError(f"not a URL: {redact(url)[:200]!r} contains spaces or control "
                             "characters")
        url = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchError(f"not a URL: {redact(url)} has a malformed host ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            shown = f"'{scheme}:'" if scheme else "no scheme"
            raise FetchError(f"refused: {redact(url)} has {shown}; only http, https and ftp "
                             "URLs are fetched")
        try:
            parts.port  # noqa: B018 - raises for a bad port
        except ValueError as exc:
            raise FetchError(f"not a URL: {redact(url)} has a bad port ({exc})") from None
        if not parts.hostname:
            raise FetchError(f"not a URL: {redact(url)} names no host")
        for value in (parts.username, parts.password):
            if value is not None and _CONTROL_ONLY.search(unquote(value)):
                raise FetchError(f"refused: {redact(url)} has control characters in its user "
                                 "name or password")
        return url

    def open(self, url: str, *, max_size: int | None = None) -> Download:
        """Open ``url`` (one attempt; the caller retries transient failures).

        Parameters
        ----------
        url : str
            An ``http:``, ``https:`` or ``ftp:`` URL.
        max_size : int, optional
            Largest body accepted (never above the fetcher's own limit).

        Returns
        -------
        Download
            Open; read it with :meth:`Download.chunks` or close it.

        Raises
        ------
        FetchError
            With ``transient`` set when trying again may help; a refused
            address, a malformed URL or redirect is never transient.  No
            ``ValueError`` comes out of here.
        """
        url = self.check_url(url)
        limit = self._limit(max_size)
        try:
            if urlsplit(url).scheme.lower() == "ftp":
                return self._open_ftp(url, limit)
            return self._open_http(url, limit)
        except FetchError:
            raise
        except (RefusedError, ResolveError, OSError, EOFError, ftplib.Error,
                http.client.HTTPException, ValueError) as exc:
            raise _transport_error(exc, url) from None

    def read(self, url: str, *, max_size: int | None = None) -> tuple[bytes, str]:
        """The whole body of ``url`` and the URL that answered (one attempt)."""
        with self.open(url, max_size=max_size) as download:
            return download.read(), download.url

    # HTTP ------------------------------------------------------------------------

    def _connection(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        host = parts.hostname or ""
        policy, timeout = self.policy, self.timeout
        if parts.scheme.lower() == "https":
            context = self.ssl_context or ssl.create_default_context()

            class _Https(http.client.HTTPSConnection):
                def connect(self) -> None:
                    sock = connect(host, self.port, policy, timeout)
                    self.sock = context.wrap_socket(sock, server_hostname=host)

            return _Https(host, parts.port or 443, timeout=timeout, context=context)

        class _Http(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = connect(host, self.port, policy, timeout)

        return _Http(host, parts.port or 80, timeout=timeout)

    def _open_http(self, url: str, max_size: int | None) -> Download:
        hops = 0
        while True:
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection = self._connection(url)
            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                       "Connection": "close"}
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            try:
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
            except BaseException:
                connection.close()
                raise
            status = response.status
            if status in _REDIRECTS:
                location = response.getheader("Location")
                connection.close()
                if not location:
                    raise FetchError(f"{redact(url)}: HTTP {status} redirect without a Location")
                hops += 1
                if hops > self.max_redirects:
                    raise FetchError(f"{redact(url)}: more than {self.max_redirects} redirects")
                try:
                    new_url = urljoin(url, location.strip())
                    scheme = urlsplit(new_url).scheme.lower()
                except ValueError as exc:
                    raise FetchError(f"{redact(url)}: HTTP {status} redirect to a malformed URL "
                                     f"{redact(location.strip())[:200]!r} ({exc})") from None
                if scheme not in HTTP_SCHEMES:
                    raise FetchError(f"refused: {redact(url)} redirects to a '{scheme}:' URL; "
                                     "only http and https redirects are followed")
                try:
                    url = self.check_url(new_url)
                except FetchError as exc:
                    raise FetchError(f"{redact(url)}: HTTP {status} redirect refused: "
                                     f"{exc.message}") from None
                continue
            if status != 200:
                reason = response.reason or ""
                retry_after = _retry_after(response.getheader("Retry-After"))
                connection.close()
                raise FetchError(f"{redact(url)}: HTTP {status} {reason}".rstrip(),
                                 transient=(status in _TRANSIENT_STATUS
                                            or (status >= 500 and status not in (501, 505))),
                                 retry_after=retry_after)
            length_text = response.getheader("Content-Length")
            length = int(length_text) if length_text and length_text.isdigit() else None
            return Download(url, read=response.read, close=connection.close, max_size=max_size,
                            length=length, content_type=response.getheader("Content-Type"),
                            filename=_content_disposition_name(
                                response.getheader("Content-Disposition")))

    # FTP ---------------------------------------------------------------------------

    def _ftp_session(self, url: str) -> tuple[_VettedFTP, str]:
        """A logged-in FTP session (binary mode) and the decoded path of ``url``."""
        parts = urlsplit(url)
        path = unquote(parts.path.split(";", 1)[0]) or "/"
        if _CONTROL.search(path.replace(" ", "")):
            raise FetchError(f"refused: {redact(url)}: control characters in an FTP path")
        ftp = _VettedFTP(self.policy, self.timeout)
        try:
            ftp.connect(parts.hostname or "", parts.port or 21)
            user = unquote(parts.username) if parts.username else "anonymous"
            password = unquote(parts.password) if parts.password else "anonymous@"
            ftp.login(user, password)
            ftp.voidcmd("TYPE I")
        except BaseException:
            ftp.close()
            raise
        return ftp, path

    def _open_ftp(self, url: str, max_size: int | None) -> Download:
        ftp, path = self._ftp_session(url)
        try:
            size: int | None
            try:
                size = ftp.size(path)
            except ftplib.error_perm:
                size = None
            connection, announced = ftp.ntransfercmd(f"RETR {path}")
        except BaseException:
            ftp.close()
            raise

        def close() -> None:
            connection.close()
            ftp.close()

        def finish() -> None:
            connection.close()
            ftp.voidresp()
            try:
                ftp.quit()
            except (OSError, EOFError, ftplib.Error):
                pass

        return Download(url, read=connection.recv, close=close, finish=finish,
                        max_size=max_size, length=size if size is not None else announced)

    def list_ftp(self, url: str) -> FtpListing:
        """The entries of the FTP folder ``url`` (``MLSD``, else a Unix-style ``LIST``).

        At most ``max_listing`` entries (and :data:`LISTING_MAX_BYTES`) are
        read: the data connection is closed there, and the listing is
        marked ``truncated``.

        Raises
        ------
        FetchError
            As :meth:`open`.
        """
        url = self.check_url(url)
        try:
            ftp, path = self._ftp_session(url)
            complete = False
            try:
                entries = _ftp_entries(ftp, path, self.max_listing)
                complete = not entries.truncated
                return entries
            finally:
                if complete:
                    try:
                        ftp.quit()
                    except (OSError, EOFError, ftplib.Error):
                        ftp.close()
                else:  # a transfer cut short: no reply worth waiting for
                    ftp.close()
        except FetchError:
            raise
        except (RefusedError, ResolveError, OSError, EOFError, ftplib.Error, ValueError) as exc:
            raise _transport_error(exc, url) from None


def _listing_lines(ftp: ftplib.FTP, command: str, max_lines: int) -> tuple[list[str], bool]:
    """The lines a listing command sends, at most ``max_lines`` of them (and
    :data:`LISTING_MAX_BYTES`); True when reading stopped at the limit."""
    ftp.sendcmd("TYPE A")
    lines: list[str] = []
    received = 0
    with ftp.transfercmd(command) as connection, \
            connection.makefile("r", encoding=ftp.encoding, errors="replace") as stream:
        while True:
            line = stream.readline(ftp.maxline + 1)
            if not line:
                break
            if len(line) > ftp.maxline:
                raise ftplib.Error(f"a listing line longer than {ftp.maxline} characters")
            received += len(line)
            if len(lines) >= max_lines or received > LISTING_MAX_BYTES:
                return lines, True
            lines.append(line.rstrip("\r\n"))
    ftp.voidresp()
    return lines, False


def _ftp_entries(ftp: ftplib.FTP, path: str, max_entries: int) -> FtpListing:
    try:
        ftp.sendcmd("OPTS MLST type;size;")
        lines, cut = _listing_lines(ftp, f"MLSD {path}", max_entries)
        entries = FtpListing(truncated=cut)
        for line in lines:
            facts_text, _, name = line.partition(" ")
            facts = {}
            for fact in facts_text.rstrip(";").split(";"):
                key, _, value = fact.partition("=")
                facts[key.lower()] = value
            kind = facts.get("type", "").lower()
            if kind in ("cdir", "pdir") or name in (".", "..", ""):
                continue
            size = facts.get("size")
            entries.append(FtpEntry(name, kind == "dir",
                                    int(size) if size and size.isdigit() else None))
        return entries
    except ftplib.error_perm as exc:
        if not str(exc).startswith(("500", "501", "502", "504")):
            raise
    lines, cut = _listing_lines(ftp, f"LIST {path}", max_entries)
    entries = FtpListing(truncated=cut)
    for line in lines:
        fields = line.split(None, 8)
        if len(fields) < 9 or fields[0][:1] not in ("d", "-"):
            continue  # links, totals and unknown formats are left out
        name = fields[8]
        if name in (".", ".."):
            continue
        entries.append(FtpEntry(name, fields[0][0] == "d",
                                int(fields[4]) if fields[4].isdigit() else None))
    return entries


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None
