"""``import``: bring spectra into the owner's store from remote sources.

Sources (``source``; ``auto`` picks from the parameters given):

``file``
    each ``url`` is one file (HTTP, HTTPS or FTP);
``http``
    each ``url`` is an HTML directory index (Apache, nginx), followed down
    ``depth`` levels, keeping the files whose name matches ``pattern``;
``ftp``
    each ``url`` is an FTP folder, walked the same way;
``votable``
    a VOTable (uploaded, or its URL) whose column of URLs (UCD
    ``meta.ref.url`` or a usual name) lists the files;
``ssa``
    an SSAP 1.1 query (``ra``, ``dec``, ``size``, ``band``, ``time``,
    ``maxrec``) whose access references are fetched, through DataLink
    (``#this``) when the service offers it, or as SODA cutouts
    (``cutout_band``) when it offers a SODA sync service.

Files are fetched concurrently (``concurrency``, capped by
``VOCLOUD_IMPORT_MAX_CONCURRENCY``), transient failures are retried with
backoff (``attempts``), and each file is written into
``{target}/...`` of the owner's store through
:class:`~uws_service.filestore.FileService`, atomically and within the
quota.  Every outgoing connection follows the address policy of
:mod:`vo.netpolicy` (``VOCLOUD_IMPORT_ALLOW_NETWORKS``,
``VOCLOUD_IMPORT_DENY_NETWORKS``).  The results are a manifest (JSON,
VOTable and CSV) with one row per file: URL, stored path, size, MD5,
status (``ok``, ``failed``, ``skipped``), reason and attempts.  A file that
fails does not fail the import (a malformed URL or redirect included); only
when nothing at all could be imported does the job end in ERROR.  URLs in
the manifest and in messages never show a user name or password.

Limits: ``VOCLOUD_IMPORT_MAX_FILES`` files (a longer listing, or VOTable,
is cut there), ``VOCLOUD_IMPORT_MAX_FOLDERS`` folders read per walk,
``VOCLOUD_IMPORT_MAX_LISTING`` entries per FTP folder listing, and
:data:`VOTABLE_MAX_BYTES` for a VOTable read into memory.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from lxml import etree

from jobs.base import UPLOADS_DIR, JobContext, JobType, owner_store
from jobs.errors import JobFatalError, JobUsageError
from uws_service.config import Config
from uws_service.errors import ServiceError
from uws_service.filestore import FileService
from uws_service.storage import PathError, clean_path, human_size
from uws_service.users import Principal
from vo.archives import ArchiveError, archive_kind, archive_members, read_members
from vo.dal_client import (
    DataLinkError,
    DatasetRef,
    choose_link,
    dataset_refs,
    parse_band,
    ssa_query_url,
)
from vo.fetch import (
    Download,
    Fetcher,
    FetchError,
    TooLargeError,
    backoff_delay,
    redact,
    redact_text,
    url_name,
)
from vo.listing import Listing, ListingError, crawl_ftp, crawl_http
from vo.netpolicy import AddressPolicy, RefusedError
from vo.remote_votable import VOTableError, parse_votable, parse_votable_limited, query_status
from vo.votable import VOTABLE_MIME, TableColumn, csv_text, votable_bytes

T = TypeVar("T")

SOURCES = ("auto", "file", "http", "ftp", "votable", "ssa")
POLICIES = ("skip", "rename", "overwrite")
#: Largest VOTable (query response, links document, list of links) read into memory;
#: of a longer table, only the first ``VOCLOUD_IMPORT_MAX_FILES`` rows are kept.
VOTABLE_MAX_BYTES = 20 * 10**6
#: Largest HTML index page read.
INDEX_MAX_BYTES = 20 * 10**6
#: Seconds between two progress reports.
PROGRESS_INTERVAL = 0.25
#: Columns of the manifest (JSON keys, CSV headers, VOTable FIELDs).
MANIFEST_COLUMNS = (
    TableColumn("url", ucd="meta.ref.url", description="where the file came from"),
    TableColumn("member", description="member of an unpacked archive"),
    TableColumn("path", description="path in the owner's store"),
    TableColumn("href", ucd="meta.ref.url", description="URL of the stored file"),
    TableColumn("size", "long", unit="byte"),
    TableColumn("md5", ucd="meta.checksum"),
    TableColumn("status", description="ok, failed or skipped"),
    TableColumn("reason", description="why it failed or was skipped"),
    TableColumn("attempts", "int", description="downloads tried"),
)
MANIFEST_FIELDS = tuple(column.name for column in MANIFEST_COLUMNS)
_EXTENSIONS = {"application/fits": ".fits", "image/fits": ".fits",
               "application/x-votable+xml": ".vot", "text/csv": ".csv"}


class _Refused(Exception):
    """A file that is refused before any byte is fetched (bad name, no URL)."""


@dataclass(frozen=True)
class Item:
    """One file to import.

    Attributes
    ----------
    url : str
        What the manifest shows (and what is fetched, unless resolved).
    parts : tuple of str or None
        Path below the target folder, from a listing; None when the name
        comes from the response (``Content-Disposition``) or the URL.
    links_url : str or None
        A DataLink links document whose ``#this`` (or SODA cutout) gives
        the URL to fetch.
    cutout_url : str or None
        A SODA request to fetch instead of ``url``.
    problem : str or None
        Why the item cannot be fetched at all (a refused name, no URL).
    """

    url: str
    parts: tuple[str, ...] | None = None
    links_url: str | None = None
    cutout_url: str | None = None
    problem: str | None = None


@dataclass
class Row:
    """One line of the manifest."""

    url: str
    status: str
    path: str | None = None
    href: str | None = None
    size: int | None = None
    md5: str | None = None
    reason: str | None = None
    attempts: int = 0
    member: str | None = None


@dataclass
class _Progress:
    """Counts shown in ``jobInfo`` while files arrive, reported at most every 0.25 s."""

    ctx: JobContext
    total: int
    done: int = 0
    bytes: int = 0
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rows: Sequence[Row]) -> None:
        with self.lock:
            self.done += 1
            self.bytes += sum(r.size or 0 for r in rows if r.status == "ok")
            now = time.monotonic()
            if now - self.last >= PROGRESS_INTERVAL or self.done == self.total:
                self.last = now
                self.ctx.progress(self.done / max(1, self.total),
                                  f"{self.done}/{self.total} files, {human_size(self.bytes)}")


class Importer:
    """Fetches items into one folder of the owner's store.

    Parameters
    ----------
    ctx : JobContext
        The running job (progress, its folder for temporary files).
    files : FileService
        The store.
    principal : Principal
        The owner, as the store knows them.
    fetcher : Fetcher
        Opens URLs under the address policy.
    target : PurePosixPath
        Folder of the owner's tree receiving the files.
    overwrite : {'skip', 'rename', 'overwrite'}
        What to do when a file of that name exists already.
    unpack : bool
        Whether ``.zip``, ``.tar``, ``.tar.gz`` files are unpacked into the
        folder instead of stored.
    attempts : int
        Tries per file for transient failures.
    retry_delay : float
        Seconds before the first retry; doubled at each further one.
    cutout_band : tuple, optional
        ``(lo, hi)`` in metres for SODA cutouts.
    max_files : int
        Most files stored (archive members included), and most rows of a
        VOTable of links kept.
    max_folders : int
        Most folders one walk (HTML index or FTP) reads.
    """

    def __init__(self, ctx: JobContext, files: FileService, principal: Principal,
                 fetcher: Fetcher, target: PurePosixPath, *, overwrite: str = "skip",
                 unpack: bool = False, attempts: int = 3, retry_delay: float = 1.0,
                 cutout_band: tuple[float | None, float | None] | None = None,
                 max_files: int = 10000, max_folders: int = 2000) -> None:
        self.ctx = ctx
        self.files = files
        self.principal = principal
        self.fetcher = fetcher
        self.target = target
        self.overwrite = overwrite
        self.unpack = unpack
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self.cutout_band = cutout_band
        self.max_files = max_files
        self.max_folders = max_folders
        self._claimed: set[PurePosixPath] = set()
        self._lock = threading.Lock()
        self._stored = 0

    @property
    def owner(self) -> str:
        return self.principal.name

    # Retries ----------------------------------------------------------------------

    def retrying(self, action: Callable[[], T]) -> tuple[T, int]:
        """Run ``action``, retrying transient :class:`FetchError` s; result and attempts used."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return action(), attempt
            except FetchError as exc:
                if not exc.transient or attempt >= self.attempts:
                    raise
                time.sleep(backoff_delay(attempt, self.retry_delay, exc.retry_after))

    def read_votable(self, url: str) -> tuple[bytes, etree._Element, int]:
        """Fetch and parse a VOTable of links (with retries): its bytes, its root (with at
        most ``max_files`` rows), and how many rows were left out."""
        try:
            (data, _final), _ = self.retrying(
                lambda: self.fetcher.read(url, max_size=VOTABLE_MAX_BYTES))
        except TooLargeError:
            raise FetchError(_votable_too_large(redact(url))) from None
        root, dropped = parse_votable_limited(data, self.max_files)
        return data, root, dropped

    # Names --------------------------------------------------------------------------

    def relative(self, parts: Sequence[str], origin: str) -> PurePosixPath:
        """``target / parts``, checked by the store's path rules (refused, never rewritten).

        Each part must be a name: not empty, ``.`` or ``..`` (which would
        name the target folder itself, or its parent), without ``/`` or ``\\``.
        """
        for part in parts:
            if part in ("", ".", ".."):
                raise _Refused(f"refused: the name {part!r} from {origin} is not a file name")
            if "/" in part or "\\" in part:
                raise _Refused(f"refused: the name {part!r} from {origin} holds a '/' or '\\'")
        try:
            return clean_path((self.target / "/".join(parts)).as_posix())
        except PathError as exc:
            raise _Refused(f"refused: the name {'/'.join(parts)!r} from {origin}: "
                           f"{str(exc).split(': ', 1)[-1]}") from None

    def name_of(self, download: Download, item: Item) -> PurePosixPath:
        """Where a file with no listed path goes: its ``Content-Disposition`` name, else
        the last segment of its URL (with an extension from its media type if it has none)."""
        if download.filename:
            return self.relative([download.filename], "Content-Disposition")
        name = url_name(download.url) or url_name(item.url)
        if not name:
            name = "download"
        if "." not in name and download.content_type:
            media = download.content_type.split(";")[0].strip().lower()
            name += _EXTENSIONS.get(media) or mimetypes.guess_extension(media) or ""
        return self.relative([name], "the URL")

    def _exists(self, path: PurePosixPath) -> bool:
        try:
            return self.files.storage.exists(self.owner, path)
        except (PathError, NotADirectoryError):
            return False

    def claim(self, path: PurePosixPath) -> PurePosixPath | None:
        """The path to store a file at, or None to skip it (``overwrite=skip``).

        A name already used by this import is always renamed (``a-1.fits``);
        an existing file is skipped, renamed or overwritten as asked.
        """
        with self._lock:
            if path not in self._claimed:
                if self.overwrite == "overwrite" or not self._exists(path):
                    self._claimed.add(path)
                    return path
                if self.overwrite == "skip":
                    return None
            stem, suffix = _split_suffix(path.name)
            number = 1
            while True:
                candidate = path.with_name(f"{stem}-{number}{suffix}")
                if candidate not in self._claimed and not self._exists(candidate):
                    self._claimed.add(candidate)
                    return candidate
                number += 1

    def release(self, path: PurePosixPath) -> None:
        """Give up a claimed path (its file was not stored)."""
        with self._lock:
            self._claimed.discard(path)

    def _count_stored(self, change: int = 1) -> None:
        """Count a file about to be stored (``change=-1``: it was not, after all)."""
        with self._lock:
            if change > 0 and self._stored >= self.max_files:
                raise _Refused(f"refused: this import already stored {self.max_files} files "
                               "(VOCLOUD_IMPORT_MAX_FILES)")
            self._stored += change

    # Fetching --------------------------------------------------------------------------

    def _store(self, path: PurePosixPath, chunks: Iterable[bytes], content_type: str | None,
               length: int | None, url: str, attempts: int, member: str | None = None) -> Row:
        """Claim ``path`` (see :meth:`claim`) and store the file there."""
        claimed = self.claim(path)
        if claimed is None:
            return self._skipped(url, path, attempts, member)
        try:
            return self._put(claimed, chunks, content_type, length, url, attempts, member)
        except BaseException:
            self.release(claimed)
            raise

    def _skipped(self, url: str, path: PurePosixPath, attempts: int,
                 member: str | None = None) -> Row:
        return Row(redact(url), "skipped", path=path.as_posix(),
                   href=self.files.url_of(self.owner, path), attempts=attempts,
                   reason="a file of that name exists (overwrite=skip)", member=member)

    def _put(self, claimed: PurePosixPath, chunks: Iterable[bytes], content_type: str | None,
             length: int | None, url: str, attempts: int, member: str | None = None) -> Row:
        """Store a file at a path claimed by the caller (who gives the claim up on failure)."""
        self._count_stored()
        try:
            meta, _new = self.files.put(self.principal, self.owner, claimed.as_posix(), chunks,
                                        content_type=_media(content_type),
                                        content_length=length)
        except BaseException:
            self._count_stored(-1)
            raise
        return Row(redact(url), "ok", path=meta.path.as_posix(),
                   href=self.files.url_of(self.owner, meta.path), size=meta.size, md5=meta.md5,
                   attempts=attempts, member=member)

    def _resolve(self, item: Item) -> tuple[str, str | None]:
        """The URL to fetch for ``item`` and a note (DataLink and SODA resolved).

        One attempt: :meth:`fetch` retries the whole item.
        """
        if item.cutout_url is not None:
            return item.cutout_url, None
        if item.links_url is not None:
            try:
                data, _final = self.fetcher.read(item.links_url, max_size=VOTABLE_MAX_BYTES)
            except TooLargeError:
                raise FetchError(_votable_too_large(
                    f"the DataLink document {redact(item.links_url)}")) from None
            return choose_link(parse_votable(data), cutout_band=self.cutout_band)
        return item.url, None

    def fetch(self, item: Item) -> list[Row]:
        """Fetch one item into the store; its manifest rows (several for an archive).

        Every failure becomes a ``failed`` row: nothing a remote server or a
        URL can cause (a ``ValueError`` from a malformed URL included) ends
        the import.
        """
        if item.problem is not None:
            return [_failed(item.url, item.problem)]
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._fetch_once(item, attempt)
            except FetchError as exc:
                if exc.transient and attempt < self.attempts:
                    time.sleep(backoff_delay(attempt, self.retry_delay, exc.retry_after))
                    continue
                return [_failed(item.url, exc.message, attempt)]
            except (_Refused, DataLinkError, VOTableError, ArchiveError, RefusedError) as exc:
                return [_failed(item.url, str(exc), attempt)]
            except ServiceError as exc:
                return [_failed(item.url, exc.message, attempt)]
            except ValueError as exc:
                return [_failed(item.url, f"cannot be fetched: {str(exc) or type(exc).__name__}",
                                attempt)]

    def _fetch_once(self, item: Item, attempt: int) -> list[Row]:
        path = self.relative(item.parts, "the listing") if item.parts is not None else None
        claimed = None
        if path is not None and not (self.unpack and archive_kind(path.name)):
            # The name is known before connecting: an existing file is skipped unfetched.
            claimed = self.claim(path)
            if claimed is None:
                return [self._skipped(item.url, path, attempt)]
        try:
            url, note = self._resolve(item)
            with self.fetcher.open(url) as download:
                if claimed is not None:
                    row = self._put(claimed, download.chunks(), download.content_type,
                                    download.length, item.url, attempt)
                else:
                    path = path if path is not None else self.name_of(download, item)
                    kind = archive_kind(path.name) if self.unpack else None
                    if kind is not None:
                        return self._unpack(download, path, kind, item, attempt)
                    row = self._store(path, download.chunks(), download.content_type,
                                      download.length, item.url, attempt)
        except BaseException:
            if claimed is not None:
                self.release(claimed)
            raise
        if note and row.reason is None:
            row.reason = note
        return [row]

    def _unpack(self, download: Download, path: PurePosixPath, kind: str, item: Item,
                attempt: int) -> list[Row]:
        """Unpack an archive into the folder of ``path``; refused whole if one member is unsafe."""
        work = self.ctx.job_dir / "work"
        work.mkdir(exist_ok=True)
        local = work / f"{threading.get_ident()}-{time.monotonic_ns()}.{kind}"
        try:
            with open(local, "wb") as out:
                for chunk in download.chunks():
                    out.write(chunk)
            members = archive_members(local, kind)
            checked = []
            for member in members:
                try:
                    checked.append((member, clean_path(
                        (path.parent / member.name).as_posix())))
                except PathError as exc:
                    raise ArchiveError(f"refused: archive member {member.name!r}: "
                                       f"{str(exc).split(': ', 1)[-1]}") from None
            if not checked:
                raise ArchiveError(f"the archive {path.name!r} holds no file")
            rows = []
            limit = self.fetcher.max_size
            targets = {member.name: member_path for member, member_path in checked}
            # One pass over the archive: each member is read as the walk reaches it.
            with contextlib.closing(read_members(local, kind, [m for m, _ in checked])) \
                    as stream:
                for member, data in stream:
                    try:
                        chunks = _limited(data, limit, f"member {member.name!r}")
                        rows.append(self._store(targets[member.name], chunks, None,
                                                member.size, item.url, attempt,
                                                member=member.name))
                    except (FetchError, _Refused, ValueError) as exc:  # ArchiveError included
                        rows.append(_failed(item.url, str(exc), attempt, member.name))
                    except ServiceError as exc:
                        rows.append(_failed(item.url, exc.message, attempt, member.name))
            return rows
        finally:
            local.unlink(missing_ok=True)

    def run(self, items: Sequence[Item], concurrency: int) -> list[Row]:
        """Fetch every item, ``concurrency`` at a time; rows in the items' order."""
        progress = _Progress(self.ctx, len(items))
        self.ctx.progress(0.0, f"0/{len(items)} files, 0 B")

        def one(item: Item) -> list[Row]:
            rows = self.fetch(item)
            progress.add(rows)
            return rows

        with ThreadPoolExecutor(max_workers=max(1, concurrency),
                                thread_name_prefix="import") as pool:
            results = list(pool.map(one, items))
        shutil.rmtree(self.ctx.job_dir / "work", ignore_errors=True)
        return [row for rows in results for row in rows]


def _failed(url: str, reason: str, attempts: int = 0, member: str | None = None) -> Row:
    """A ``failed`` manifest row; no user name or password shows in its URL or reason."""
    return Row(redact(url), "failed", reason=redact_text(reason), attempts=attempts,
               member=member)


def _votable_too_large(what: str) -> str:
    return (f"too large: {what} is larger than {human_size(VOTABLE_MAX_BYTES)}, the most "
            "read of a VOTable; ask the service for fewer rows (maxrec), or split the table")


def _split_suffix(name: str) -> tuple[str, str]:
    lowered = name.lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz", ".fits.gz", ".fit.gz"):
        if lowered.endswith(double) and len(name) > len(double):
            return name[:-len(double)], name[-len(double):]
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, f".{suffix}"


def _media(content_type: str | None) -> str | None:
    """A media type worth recording (servers' generic ``octet-stream`` is not)."""
    if not content_type:
        return None
    media = content_type.split(";")[0].strip().lower()
    return None if media in ("application/octet-stream", "binary/octet-stream", "") \
        else content_type


def _limited(chunks: Iterable[bytes], limit: int | None, what: str) -> Iterator[bytes]:
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if limit is not None and received > limit:
            raise TooLargeError(f"too large: {what} is larger than the limit of "
                                f"{human_size(limit)} for one file")
        yield chunk


# Sources ---------------------------------------------------------------------------------


def _source_of(params: Mapping[str, Any]) -> str:
    source = str(params.get("source", "auto"))
    if source != "auto":
        return source
    if params.get("ssa_url"):
        return "ssa"
    if params.get("votable"):
        return "votable"
    return "urls"


def _kind_of_url(url: str, source: str) -> str:
    """``file``, ``http`` (an index) or ``ftp`` (a folder) for one URL."""
    if source != "urls":
        return source
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed: fetched as a file, it fails with the reason
        return "file"
    if not parts.query and (parts.path.endswith("/") or not parts.path):
        return "ftp" if parts.scheme.lower() == "ftp" else "http"
    return "file"


def _listed_items(listing: Listing) -> list[Item]:
    items = [Item(f.url, parts=f.parts) for f in listing.files]
    items += [Item(p.url, problem=redact_text(p.reason)) for p in listing.problems]
    return items


def _walk(importer: Importer, url: str, kind: str, params: Mapping[str, Any],
          max_files: int) -> tuple[list[Item], bool]:
    """The files of one folder URL (HTML index or FTP); a refused start URL fails one item."""
    fetcher, ctx = importer.fetcher, importer.ctx
    depth, pattern = int(params.get("depth", 3)), str(params.get("pattern", "*"))

    def report(listing: Listing) -> None:
        ctx.progress(0.0, f"listing {redact(url)}: {listing.folders} folders, "
                          f"{len(listing.files)} files")

    def read_page(page: str) -> tuple[bytes, str, str | None]:
        def once() -> tuple[bytes, str, str | None]:
            with fetcher.open(page, max_size=INDEX_MAX_BYTES) as download:
                return download.read(), download.url, download.content_type
        return importer.retrying(once)[0]

    try:
        scheme = urlsplit(fetcher.check_url(url)).scheme.lower()
        if kind == "ftp":
            if scheme != "ftp":
                raise _Refused(f"{redact(url)} is not an ftp:// URL (source=ftp)")
            listing = crawl_ftp(url, lambda folder: importer.retrying(
                lambda: fetcher.list_ftp(folder))[0], depth=depth, pattern=pattern,
                max_files=max_files, max_folders=importer.max_folders, progress=report)
        else:
            if scheme not in ("http", "https"):
                raise _Refused(f"{redact(url)} is not an http(s):// URL (source=http)")
            listing = crawl_http(url, read_page, depth=depth, pattern=pattern,
                                 max_files=max_files, max_folders=importer.max_folders,
                                 progress=report)
    except FetchError as exc:
        return [Item(url, problem=exc.message)], False
    except (ListingError, _Refused, ValueError) as exc:
        return [Item(url, problem=redact_text(str(exc)))], False
    items = _listed_items(listing)
    if not listing.files and not listing.problems:
        items = [Item(url, problem=f"no file in {redact(url)} matches {pattern!r} "
                                   f"(depth {depth})")]
    return items, listing.truncated


def _votable_items(importer: Importer, data: bytes, root: etree._Element) -> list[Item]:
    refs = dataset_refs(root, data, cutout_band=importer.cutout_band)
    return [_ref_item(ref) for ref in refs]


def _ref_item(ref: DatasetRef) -> Item:
    if ref.url is None and ref.links_url is None and ref.cutout_url is None:
        return Item(ref.label, problem=f"row {ref.row + 1} has no access reference")
    return Item(ref.url or ref.links_url or ref.cutout_url or ref.label,
                links_url=ref.links_url if ref.cutout_url is None else None,
                cutout_url=ref.cutout_url)


def _read_votable_param(importer: Importer, value: str) -> tuple[bytes, etree._Element, int]:
    """The VOTable of the ``votable`` parameter (an uploaded file, or a URL to fetch), its
    root with at most ``max_files`` rows, and how many rows were left out."""
    uploads = (importer.ctx.job_dir / UPLOADS_DIR).resolve()
    candidate = Path(value)
    if candidate.is_absolute():
        resolved = candidate.resolve()
        if resolved.parent == uploads and resolved.is_file():
            if resolved.stat().st_size > VOTABLE_MAX_BYTES:
                raise JobUsageError(_votable_too_large("the uploaded VOTable"))
            data = resolved.read_bytes()
            root, dropped = parse_votable_limited(data, importer.max_files)
            return data, root, dropped
    try:
        scheme = urlsplit(value).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme in ("http", "https", "ftp"):
        return importer.read_votable(value)
    raise JobUsageError(f"votable {redact(value)[:200]!r}: upload the VOTable as a file part "
                        "named 'votable', or give its http(s) or ftp URL")


def _ssa_items(importer: Importer, params: Mapping[str, Any]) -> tuple[list[Item], str, bool]:
    """The items of an SSA query's answer, the query URL, and whether rows were left out."""
    try:
        query = ssa_query_url(str(params["ssa_url"]), ra=params.get("ra"), dec=params.get("dec"),
                              size=params.get("size"), band=params.get("band"),
                              time=params.get("time"), maxrec=params.get("maxrec"))
    except ValueError as exc:
        raise JobUsageError(redact_text(str(exc))) from None
    try:
        data, root, dropped = importer.read_votable(query)
    except FetchError as exc:
        raise JobFatalError(f"the SSA query failed: {exc.message}") from None
    except VOTableError as exc:
        raise JobFatalError(f"the SSA service's answer is refused: "
                            f"{redact_text(str(exc))}") from None
    status, message = query_status(root)
    if status == "ERROR":
        raise JobFatalError(f"the SSA service answered an error: {message or 'no message'}")
    try:
        items = _votable_items(importer, data, root)
    except VOTableError as exc:
        raise JobFatalError(f"the SSA service's answer cannot be used: {exc}") from None
    if not items:
        raise JobFatalError(f"the SSA query found no spectra ({redact(query)})")
    return items, query, dropped > 0


# The job ---------------------------------------------------------------------------------


def _target(params: Mapping[str, Any], job_id: str) -> PurePosixPath:
    text = str(params.get("target") or "").strip().strip("/")
    try:
        return clean_path(text or f"imports/{job_id}")
    except PathError as exc:
        raise JobUsageError(f"target {params.get('target')!r}: {exc}",
                            "Give a folder inside your own tree, such as 'imports/night1'.") \
            from None


def _write_manifest(ctx: JobContext, summary: dict[str, Any], rows: Sequence[Row]) -> None:
    records = [{name: asdict(row)[name] for name in MANIFEST_FIELDS} for row in rows]
    ctx.add_result("manifest", "manifest.json", "application/json").write_text(
        json.dumps({**summary, "files": records}, indent=2))
    ctx.add_result("manifest-csv", "manifest.csv", "text/csv").write_text(
        csv_text(MANIFEST_COLUMNS, records), newline="")
    ctx.add_result("manifest-votable", "manifest.vot", VOTABLE_MIME).write_bytes(
        votable_bytes(MANIFEST_COLUMNS, records, name="import_manifest"))


def run(params: Mapping[str, Any], ctx: JobContext) -> None:
    """Import the files the parameters name into the owner's store; see the module docstring."""
    config = Config.from_env()
    files, principal = owner_store(ctx)
    target = _target(params, ctx.job_id)
    cutout_band = None
    if params.get("cutout_band"):
        try:
            cutout_band = parse_band(str(params["cutout_band"]), what="cutout_band")
        except ValueError as exc:
            raise JobUsageError(str(exc)) from None
    policy = AddressPolicy.from_strings(config.import_allow_networks,
                                        config.import_deny_networks)
    max_size = config.import_max_file_size
    if config.max_file_bytes is not None:
        max_size = min(max_size, config.max_file_bytes)
    fetcher = Fetcher(policy, timeout=config.import_timeout, max_size=max_size,
                      max_listing=config.import_max_listing)
    importer = Importer(ctx, files, principal, fetcher, target,
                        overwrite=str(params.get("overwrite", "skip")),
                        unpack=bool(params.get("unpack", False)),
                        attempts=int(params.get("attempts", 3)),
                        retry_delay=config.import_retry_delay, cutout_band=cutout_band,
                        max_files=config.import_max_files,
                        max_folders=config.import_max_folders)
    concurrency = max(1, min(int(params.get("concurrency", 4)), config.import_max_concurrency))
    source = _source_of(params)
    summary: dict[str, Any] = {"job": ctx.job_id, "source": source,
                               "target": target.as_posix(), "concurrency": concurrency}
    items: list[Item] = []
    truncated = False
    ctx.progress(0.0, "finding the files to import")
    if source == "ssa":
        if not params.get("ssa_url"):
            raise JobUsageError("source=ssa needs ssa_url, the query URL of an SSA service")
        items, query, truncated = _ssa_items(importer, params)
        summary["query"] = redact(query)
    elif source == "votable":
        if not params.get("votable"):
            raise JobUsageError("source=votable needs votable: upload the VOTable as a file "
                                "part named 'votable', or give its URL")
        try:
            data, root, dropped = _read_votable_param(importer, str(params["votable"]))
            items = _votable_items(importer, data, root)
        except FetchError as exc:
            raise JobFatalError(f"the VOTable could not be fetched: {exc.message}") from None
        except VOTableError as exc:
            raise JobUsageError(f"the VOTable is refused: {redact_text(str(exc))}") from None
        truncated = dropped > 0
        if not items:
            raise JobFatalError("the VOTable lists no file (its table has no rows)")
    else:
        urls = [str(u) for u in params.get("url") or []]
        if not urls:
            raise JobUsageError("nothing to import: give one or more url, a votable, or an "
                                "ssa_url")
        for url in urls:
            kind = _kind_of_url(url, source)
            room = config.import_max_files - len(items)
            if room <= 0:
                truncated = True
                break
            if kind == "file":
                items.append(Item(url))
            else:
                found, cut = _walk(importer, url, kind, params, room)
                items.extend(found)
                truncated = truncated or cut
    if len(items) > config.import_max_files:
        items, truncated = items[:config.import_max_files], True
    summary["truncated"] = truncated
    rows = importer.run(items, concurrency)
    counts = {status: sum(1 for r in rows if r.status == status)
              for status in ("ok", "skipped", "failed")}
    summary.update(files_total=len(rows), files_ok=counts["ok"],
                   files_skipped=counts["skipped"], files_failed=counts["failed"],
                   bytes=sum(r.size or 0 for r in rows if r.status == "ok"))
    _write_manifest(ctx, summary, rows)
    if counts["ok"] == 0 and counts["skipped"] == 0:
        failed = [r for r in rows if r.status == "failed"]
        if not failed:
            raise JobFatalError("nothing to import: no file was found")
        first = failed[0]
        more = f" (and {len(failed) - 1} more failures)" if len(failed) > 1 else ""
        raise JobFatalError(f"nothing could be imported: {first.reason}{more}",
                            "\n".join(f"{r.url}: {r.reason}" for r in failed[:100]))
    ctx.progress(1.0, f"{counts['ok']} imported, {counts['skipped']} skipped, "
                      f"{counts['failed']} failed ({human_size(summary['bytes'])})")


JOB_TYPE = JobType(name="import", queue="io", run=run,
                   title="Import spectra from URLs, directory indexes, FTP, VOTables or SSA")
