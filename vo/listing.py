"""Walking remote folders: HTML directory indexes (Apache, nginx) and FTP folders.

Both walks go breadth first from a start folder, follow sub-folders down to
a depth limit (0: the start folder only), keep the files whose name matches
a glob pattern, and never leave the start folder: a link that does not
resolve to a URL below the start URL (a parent link, another host, a
sorting link with a query) is ignored.  Names are decoded and kept as path
segments; a segment that holds a ``/`` or a backslash once decoded is
refused, never split into folders.  The caller reads each page or folder
(with its own retries and address policy) through a callable.  A walk
reads at most ``max_folders`` folders; the folders left unread are then
reported as one problem.  A URL put into a message has its user name and
password replaced by ``***``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import lxml.html

from vo.fetch import FtpEntry, redact, redact_text

__all__ = ["Listing", "ListingError", "ListingProblem", "RemoteFile", "crawl_ftp",
           "crawl_http", "folder_url", "index_links"]

#: ``read(url) -> (body, final URL, content type)``: one page of an HTML index.
ReadPage = Callable[[str], tuple[bytes, str, str | None]]
#: ``list(url) -> entries``: one FTP folder (an ``FtpListing`` says when it was cut).
ListFolder = Callable[[str], list[FtpEntry]]
#: Most folders one walk reads, by default.
MAX_FOLDERS = 2000


class ListingError(ValueError):
    """The start folder cannot be listed; the message says why."""


@dataclass(frozen=True)
class RemoteFile:
    """A file found in a walk.

    Attributes
    ----------
    url : str
        Where to fetch it.
    parts : tuple of str
        Its path below the start folder, decoded, one segment per folder.
    """

    url: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class ListingProblem:
    """Something of the walk that was left out, and why."""

    url: str
    reason: str


@dataclass
class Listing:
    """What a walk found.

    Attributes
    ----------
    files : list of RemoteFile
        Files whose name matches the pattern, in walk order.
    problems : list of ListingProblem
        Folders that could not be read and names that were refused.
    folders : int
        Folders read.
    truncated : bool
        True when the walk stopped at ``max_files`` or ``max_folders``, or a
        folder's listing was cut.
    """

    files: list[RemoteFile] = field(default_factory=list)
    problems: list[ListingProblem] = field(default_factory=list)
    folders: int = 0
    truncated: bool = False


def folder_url(url: str) -> str:
    """``url`` with its path ending in ``/`` and without query or fragment."""
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def index_links(html: bytes, base_url: str) -> list[str]:
    """Absolute URLs of the ``<a href>`` links of an HTML page, fragments removed.

    Raises
    ------
    ListingError
        When the page is not HTML that can be parsed.
    """
    if not html.strip():
        raise ListingError("the page is empty")
    parser = lxml.html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
    try:
        document = lxml.html.document_fromstring(html, parser=parser)
    except (ValueError, lxml.etree.ParserError) as exc:
        raise ListingError(f"not an HTML page: {exc}") from None
    links = []
    for anchor in document.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue
        try:
            absolute = urljoin(base_url, href)
            links.append(urlunsplit(urlsplit(absolute)._replace(fragment="")))
        except ValueError:  # a malformed link ('http://[::1/') leads nowhere
            continue
    return links


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    try:
        return (pa.scheme.lower(), (pa.hostname or "").lower(), pa.port) == \
            (pb.scheme.lower(), (pb.hostname or "").lower(), pb.port)
    except ValueError:  # a bad port
        return False


def _stopped(listing: Listing, unread: list[str], max_folders: int) -> None:
    """Note that the walk stopped at ``max_folders`` with the folders ``unread`` left."""
    listing.truncated = True
    more = f" and {len(unread) - 1} more folders" if len(unread) > 1 else ""
    listing.problems.append(ListingProblem(
        unread[0], f"not read{more}: the walk stopped after reading {max_folders} folders, "
                   "the most one walk reads (VOCLOUD_IMPORT_MAX_FOLDERS)"))


def _segments(raw: str) -> tuple[str, ...] | str:
    """Decoded segments of a relative path, or the reason it is refused."""
    parts = []
    for segment in raw.split("/"):
        name = unquote(segment)
        if "/" in name or "\\" in name:
            return f"refused: the name {name!r} holds a '/' or '\\'"
        parts.append(name)
    return tuple(parts)


def crawl_http(start_url: str, read_page: ReadPage, *, depth: int, pattern: str = "*",
               max_files: int = 10000, max_folders: int = MAX_FOLDERS,
               progress: Callable[[Listing], None] | None = None) -> Listing:
    """Walk an HTML directory index from ``start_url``.

    Parameters
    ----------
    start_url : str
        The start folder (a ``/`` is added when missing).
    read_page : callable
        Reads one index page: ``(body, final URL, content type)``;
        raises to report a failure (a ``FetchError``, say).
    depth : int
        Levels of sub-folders followed (0: only the start folder).
    pattern : str
        Glob matched against each file name.
    max_files : int
        The walk stops when this many files are found.
    max_folders : int
        The walk stops when this many folders were read (or tried).
    progress : callable, optional
        Called with the listing after each folder read.

    Returns
    -------
    Listing
        The files found; a sub-folder that cannot be read is a problem.

    Raises
    ------
    ListingError
        When the start page is not an HTML listing.
    Exception
        Whatever ``read_page`` raises for the start folder.
    """
    root = folder_url(start_url)
    root_path = urlsplit(root).path
    listing = Listing()
    seen = {root}
    pending = [root]
    reads = 0
    while pending:
        if reads >= max_folders:
            _stopped(listing, pending, max_folders)
            return listing
        folder = pending.pop(0)
        reads += 1
        try:
            body, final_url, content_type = read_page(folder)
            kind = (content_type or "").split(";")[0].strip().lower()
            if kind not in ("text/html", "application/xhtml+xml", ""):
                raise ListingError(f"{redact(folder)} is not an HTML directory listing "
                                   f"(it is {kind}); import it as a single file instead")
            links = index_links(body, folder_url(final_url) if final_url != folder
                                else folder)
        except Exception as exc:
            if folder == root:
                raise
            listing.problems.append(ListingProblem(folder, redact_text(str(exc))))
            continue
        listing.folders += 1
        folders: list[str] = []
        files: list[RemoteFile] = []
        for link in sorted(set(links)):
            parts = urlsplit(link)
            if parts.query or not _same_origin(link, root):
                continue
            if not parts.path.startswith(root_path) or link == root:
                continue
            relative = parts.path[len(root_path):]
            is_folder = relative.endswith("/")
            segments = _segments(relative.rstrip("/"))
            if isinstance(segments, str):
                listing.problems.append(ListingProblem(link, segments))
                continue
            if is_folder:
                if len(segments) <= depth and link not in seen:
                    seen.add(link)
                    folders.append(link)
            elif (len(segments) - 1 <= depth and fnmatch.fnmatchcase(segments[-1], pattern)
                  and link not in seen):
                seen.add(link)
                files.append(RemoteFile(link, segments))
        for item in files:
            if len(listing.files) >= max_files:
                listing.truncated = True
                return listing
            listing.files.append(item)
        pending.extend(folders)
        if progress is not None:
            progress(listing)
    return listing


def crawl_ftp(start_url: str, list_folder: ListFolder, *, depth: int, pattern: str = "*",
              max_files: int = 10000, max_folders: int = MAX_FOLDERS,
              progress: Callable[[Listing], None] | None = None) -> Listing:
    """Walk an FTP folder tree from ``start_url``.

    Parameters are those of :func:`crawl_http`, with ``list_folder``
    returning the entries of one folder; a folder whose listing was cut
    (an ``FtpListing`` marked ``truncated``) is walked with the entries
    read, and reported as a problem.

    Raises
    ------
    Exception
        Whatever ``list_folder`` raises for the start folder.
    """
    root = folder_url(start_url)
    listing = Listing()
    pending: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    reads = 0
    while pending:
        if reads >= max_folders:
            _stopped(listing, [folder for folder, _ in pending], max_folders)
            return listing
        folder, above = pending.pop(0)
        reads += 1
        try:
            entries = list_folder(folder)
        except Exception as exc:
            if folder == root:
                raise
            listing.problems.append(ListingProblem(folder, redact_text(str(exc))))
            continue
        listing.folders += 1
        if getattr(entries, "truncated", False):
            listing.truncated = True
            listing.problems.append(ListingProblem(
                folder, f"only the first {len(entries)} entries of this folder were read: its "
                        "listing is longer than the most read for one folder "
                        "(VOCLOUD_IMPORT_MAX_LISTING)"))
        subfolders = []
        for entry in sorted(entries, key=lambda e: e.name):
            if "/" in entry.name or "\\" in entry.name:
                listing.problems.append(ListingProblem(
                    folder + quote(entry.name),
                    f"refused: the name {entry.name!r} holds a '/' or '\\'"))
                continue
            url = folder + quote(entry.name)
            parts = (*above, entry.name)
            if entry.is_dir:
                if len(parts) <= depth:
                    subfolders.append((url + "/", parts))
            elif fnmatch.fnmatchcase(entry.name, pattern):
                if len(listing.files) >= max_files:
                    listing.truncated = True
                    return listing
                listing.files.append(RemoteFile(url, parts))
        pending.extend(subfolders)
        if progress is not None:
            progress(listing)
    return listing
