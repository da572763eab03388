"""Files of users under the storage root: safe paths, streamed atomic writes with quota and
checksums, ranged reads.

Flask-free, so the web application, the VOSpace service and the Celery
workers share it.  The layout is ``{root}/{owner}/{path}``; a VOSpace node
path is ``{owner}/{path}`` (DESIGN, "Store and catalogue").

:class:`FileStorage` is the interface the file service and the jobs use.
:class:`LocalStorage` (also importable as ``Storage``) keeps the files in a
local folder, the default; :class:`~uws_service.storage_fsspec.FsspecStorage`
keeps them behind any fsspec URL (``s3://bucket/prefix``, ...) for the
scaled-out mode.  :func:`make_storage` picks one from ``VOCLOUD_STORAGE``.
Readers that need a file on disk (the spectrum readers) ask for
:meth:`FileStorage.local_copy`: the file itself for local storage, a
temporary download otherwise.

Rules kept by every operation of :class:`LocalStorage` (the fsspec class
keeps the path rules and the atomic replacement; see its notes):

* User paths go through :func:`clean_path`, which refuses rather than
  repairs anything odd (``..``, ``.``, empty segments, absolute and Windows
  paths, backslashes, control characters, over-long names, names starting
  with ``.vocloud``, which are reserved for vocloud's own files).
* Symbolic links are never followed and never created.  Every component
  of a path that exists is checked with :func:`os.lstat`; a path through a
  symlink (or naming one) is refused with :class:`PathError`, files are
  opened with ``O_NOFOLLOW``, and listings, usage and recursive operations
  skip or refuse links instead of following them.  vocloud never makes a
  link, so one in the tree was put there by hand; the check-then-use
  window this leaves is acceptable because users have no shell access to
  the tree.
* Writes stream into ``{root}/.vocloud-tmp/{uuid}`` (the same file system
  as the users' trees, so never ``/tmp``), count size against the quota
  and the size limit while bytes arrive, hash with MD5 and SHA-256 on the
  way, ``fsync`` and then :func:`os.replace` into place.  A failed or
  interrupted write leaves the old file intact and no temporary file.
* Errors speak in node paths (``alice/spectra/a.fits``), never in server
  paths.  Missing nodes raise :class:`FileNotFoundError`, existing ones
  :class:`FileExistsError`, type clashes :class:`IsADirectoryError` /
  :class:`NotADirectoryError`; the web layer maps them to HTTP statuses.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import shutil
import stat as stat_mod
import time
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from uws_service.config import Config

__all__ = [
    "CHUNK_SIZE",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "OWNER_FOLDER",
    "RESERVED_PREFIX",
    "FileRange",
    "FileStorage",
    "FileTooLarge",
    "FolderNotEmpty",
    "LocalStorage",
    "NodeInfo",
    "PathError",
    "QuotaExceeded",
    "RangeError",
    "Storage",
    "StoredFile",
    "clean_path",
    "human_size",
    "make_storage",
    "parse_range_header",
]

#: Largest chunk :meth:`FileStorage.open_range` yields.
CHUNK_SIZE = 1024 * 1024
#: Longest segment (file or folder name), in bytes of UTF-8.
MAX_NAME_BYTES = 255
#: Longest user path, in bytes of UTF-8.
MAX_PATH_BYTES = 4096
#: Names starting with this (any case) belong to vocloud itself.
RESERVED_PREFIX = ".vocloud"
#: The empty relative path: an owner's own folder.
OWNER_FOLDER = PurePosixPath()
#: Folder of temporary files, directly under the storage root.
TMP_DIR_NAME = ".vocloud-tmp"

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


# Errors ----------------------------------------------------------------------------


class PathError(ValueError):
    """A user path that vocloud refuses: malformed, reserved, escaping or through a symlink."""


class QuotaExceeded(Exception):
    """Storing the bytes would take the owner over the quota.

    Parameters
    ----------
    so_far : int
        Bytes of the file (or copy) counted when the limit was passed.
    quota_left : int
        Bytes the owner still had.
    quota : int, optional
        The owner's whole quota, for a clearer message.
    action : str
        ``"upload"`` or ``"copy"``, for the message.
    """

    def __init__(self, *, so_far: int, quota_left: int, quota: int | None = None,
                 action: str = "upload") -> None:
        self.so_far = so_far
        self.quota_left = quota_left
        self.quota = quota
        what = "file" if action == "upload" else "copy"
        if quota is not None:
            used = max(quota - quota_left, 0)
            message = (f"{action} refused: quota of {human_size(quota)} would be exceeded "
                       f"({human_size(used)} used, {what} {human_size(so_far)} so far)")
        else:
            message = (f"{action} refused: quota would be exceeded "
                       f"({human_size(max(quota_left, 0))} left, "
                       f"{what} {human_size(so_far)} so far)")
        super().__init__(message)


class FileTooLarge(Exception):
    """An upload passed the largest size allowed for one file.

    Parameters
    ----------
    so_far : int
        Bytes counted when the limit was passed.
    max_size : int
        The limit.
    """

    def __init__(self, *, so_far: int, max_size: int) -> None:
        self.so_far = so_far
        self.max_size = max_size
        super().__init__(f"upload refused: a file may have at most {human_size(max_size)} "
                         f"({human_size(so_far)} so far)")


class RangeError(ValueError):
    """A byte range that cannot be satisfied (HTTP 416).

    Parameters
    ----------
    message : str
        What is wrong.
    size : int
        Size of the file, for ``Content-Range: bytes */{size}``.
    """

    def __init__(self, message: str, size: int) -> None:
        self.size = size
        super().__init__(message)


class FolderNotEmpty(OSError):
    """A folder to delete holds files and ``recursive`` was not asked for."""


# Paths -----------------------------------------------------------------------------


def file_chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The bytes of a local file in chunks of :data:`CHUNK_SIZE`, never the whole of it."""
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def file_md5(path: str | os.PathLike[str]) -> str:
    """The MD5 of a local file (hex), as the store keeps it for the ETag."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def human_size(n: int) -> str:
    """Format a byte count with decimal units: ``200 MB``, ``1.0 GB``, ``512 B``.

    Parameters
    ----------
    n : int
        Bytes.

    Returns
    -------
    str
        One decimal below 10 units, none above.
    """
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= factor:
            value = n / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"


def clean_path(user_path: str) -> PurePosixPath:
    """Check a path given by a user and return it as a relative POSIX path.

    Nothing is normalised: anything that would need repairing is refused,
    so that a path means exactly one node and the error tells the user why.

    Parameters
    ----------
    user_path : str
        A path inside the user's tree, ``/``-separated, e.g.
        ``"Ondřejov/spec.fits"``.  Callers strip the owner and any trailing
        ``/`` of a folder URL first.

    Returns
    -------
    PurePosixPath
        The same path, relative.

    Raises
    ------
    PathError
        For an empty path; an absolute one (``/x``, ``C:\\x``, ``\\\\server``);
        a backslash; a NUL, other control character or lone surrogate; a
        ``..`` or ``.`` segment; an empty segment (``a//b``, ``a/``); a name
        of only whitespace; a name longer than 255 bytes or a path longer
        than 4096 bytes of UTF-8; a name starting with ``.vocloud``.
    """
    if not isinstance(user_path, str):
        raise TypeError(f"path must be a str, not {type(user_path).__name__}")

    def refuse(reason: str) -> PathError:
        return PathError(f"path {user_path!r}: {reason}")

    if not user_path:
        raise PathError("path is empty")
    for ch in user_path:
        category = unicodedata.category(ch)
        if category == "Cc":
            raise refuse("control characters (such as NUL or newline) are not allowed")
        if category == "Cs":
            raise refuse("it is not valid Unicode (lone surrogate)")
    if len(user_path.encode("utf-8")) > MAX_PATH_BYTES:
        raise refuse(f"longer than {MAX_PATH_BYTES} bytes")
    if _WINDOWS_DRIVE.match(user_path):
        raise refuse("absolute Windows paths are not allowed")
    if "\\" in user_path:
        raise refuse("backslashes are not allowed; separate folders with '/'")
    if user_path.startswith("/"):
        raise refuse("absolute paths are not allowed; give the path inside your folder")
    for segment in user_path.split("/"):
        if segment == "":
            raise refuse("empty segments ('//' or a trailing '/') are not allowed")
        if segment == "..":
            raise refuse("'..' is not allowed")
        if segment == ".":
            raise refuse("'.' is not allowed")
        if not segment.strip():
            raise refuse("a name may not consist of whitespace only")
        if len(segment.encode("utf-8")) > MAX_NAME_BYTES:
            raise refuse(f"name {segment[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
        if segment.lower().startswith(RESERVED_PREFIX):
            raise refuse(f"names starting with {RESERVED_PREFIX!r} are reserved")
    return PurePosixPath(user_path)


def _check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not owner:
        raise PathError("owner name is empty")
    try:
        parts = clean_path(owner).parts
    except PathError as exc:
        raise PathError(f"owner name {owner!r} is not allowed ({exc})") from None
    if len(parts) != 1:
        raise PathError(f"owner name {owner!r} may not contain '/'")
    return owner


def _as_rel(rel: str | PurePosixPath) -> PurePosixPath:
    """Check ``rel`` again; the empty path ``PurePosixPath()`` means the owner's folder."""
    if isinstance(rel, PurePosixPath):
        if rel.parts == ():
            return rel
        return clean_path(rel.as_posix())
    return clean_path(rel)


def _node(owner: str, rel: PurePosixPath) -> str:
    return f"{owner}/{rel.as_posix()}" if rel.parts else owner


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_counted(chunks: Iterable[bytes], out: BinaryIO, *, max_size: int | None,
                  quota_left: int | None, quota: int | None) -> tuple[int, str, str]:
    """Write ``chunks`` to ``out``, counting them against the limits and hashing them.

    Empty chunks are skipped.  The chunk that takes the count past a limit
    is not written, and the iterator is not read further.

    Returns
    -------
    tuple of (int, str, str)
        Size in bytes, MD5 and SHA-256 as lower-case hex.

    Raises
    ------
    FileTooLarge
        When the count passes ``max_size``.
    QuotaExceeded
        When the count passes ``quota_left`` (``quota`` is for the message).
    """
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise FileTooLarge(so_far=size, max_size=max_size)
        if quota_left is not None and size > quota_left:
            raise QuotaExceeded(so_far=size, quota_left=quota_left, quota=quota)
        out.write(chunk)
        md5.update(chunk)
        sha256.update(chunk)
    return size, md5.hexdigest(), sha256.hexdigest()


def _check_move_paths(owner: str, src: PurePosixPath, dst: PurePosixPath, *, src_dir: bool,
                      verb: str) -> None:
    """Refuse to move or copy the owner's folder, a node onto itself, or a folder into itself.

    ``verb`` (``"move"`` or ``"copy"``) is for the message.
    """
    if not src.parts or not dst.parts:
        raise PathError(f"the folder of {owner!r} itself cannot be a source or destination")
    if dst == src:
        raise PathError(f"cannot {verb} {_node(owner, src)!r} onto itself")
    if src_dir and dst.parts[:len(src.parts)] == src.parts:
        raise PathError(f"cannot {verb} folder {_node(owner, src)!r} into itself "
                        f"({_node(owner, dst)!r})")


def _check_replace(owner: str, src: PurePosixPath, dst: PurePosixPath, *, src_dir: bool,
                   dst_dir: bool, overwrite: bool) -> None:
    """Refuse to replace the existing node ``dst`` by ``src``.

    Unless ``overwrite`` is given, and ``dst`` is of the same kind as
    ``src`` and does not hold it.
    """
    if not overwrite:
        raise FileExistsError(f"{_node(owner, dst)!r} exists")
    if src_dir and not dst_dir:
        raise NotADirectoryError(f"cannot replace file {_node(owner, dst)!r} with a folder")
    if dst_dir and not src_dir:
        raise IsADirectoryError(f"cannot replace folder {_node(owner, dst)!r} with a file")
    if dst_dir and src.parts[:len(dst.parts)] == dst.parts:
        raise PathError(f"cannot replace {_node(owner, dst)!r}, which holds the source")


# Results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    """A file as written, with its checksums.

    Attributes
    ----------
    path : PurePosixPath
        Path inside the owner's tree (the node path is ``{owner}/{path}``).
    size : int
        Bytes.
    md5, sha256 : str
        Lower-case hex digests; the MD5 is the ETag.
    modified : datetime
        Modification time, UTC.
    """

    path: PurePosixPath
    size: int
    md5: str
    sha256: str
    modified: datetime


@dataclass(frozen=True)
class NodeInfo:
    """A file or folder of an owner's tree.

    Attributes
    ----------
    path : PurePosixPath
        Path inside the owner's tree; ``PurePosixPath()`` for the owner's folder.
    is_dir : bool
        True for a folder.
    size : int
        Bytes of a file; 0 for a folder.
    modified : datetime
        Modification time, UTC.
    """

    path: PurePosixPath
    is_dir: bool
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        """Last segment of the path ("" for the owner's folder)."""
        return self.path.name


class FileRange:
    """Bytes ``[start, end]`` of an open file, iterated in chunks of at most 1 MiB.

    Made by :meth:`FileStorage.open_range`.  Iterate it once; it closes the
    file at the end, on :meth:`close` (which WSGI servers call) or on
    leaving a ``with`` block.

    Parameters
    ----------
    file : int or binary file object
        An open file descriptor (taken over) or a seekable binary file
        object (an fsspec file).
    size, start, end : int
        As the attributes.
    modified : datetime
        As the attribute.

    Attributes
    ----------
    size : int
        Size of the whole file.
    start, end : int
        First and last byte served, inclusive (``end`` is ``-1`` for the
        whole of an empty file).
    length : int
        Bytes served.
    modified : datetime
        Modification time of the file, UTC.
    """

    def __init__(self, file: int | BinaryIO, size: int, start: int, end: int,
                 modified: datetime) -> None:
        self._file: BinaryIO = (os.fdopen(file, "rb", buffering=0) if isinstance(file, int)
                                else file)
        self.size = size
        self.start = start
        self.end = end
        self.length = end - start + 1
        self.modified = modified

    def __iter__(self) -> Iterator[bytes]:
        try:
            position = self.start
            remaining = self.length
            while remaining > 0:
                # Seek before every read: a file object of an in-memory store
                # may be shared with another reader.
                self._file.seek(position)
                chunk = self._file.read(min(remaining, CHUNK_SIZE))
                if not chunk:  # the file shrank under us
                    break
                position += len(chunk)
                remaining -= len(chunk)
                yield chunk
        finally:
            self.close()

    def read_all(self) -> bytes:
        """All bytes of the range at once (for small files and tests)."""
        return b"".join(self)

    def close(self) -> None:
        """Close the file; safe to call more than once."""
        self._file.close()

    def __enter__(self) -> FileRange:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def parse_range_header(value: str, size: int) -> tuple[int, int] | None:
    """Parse an HTTP ``Range`` header for a file of ``size`` bytes (RFC 9110, 14.2).

    Only single byte ranges are served: ``bytes=0-99``, ``bytes=100-`` and
    the suffix form ``bytes=-500``.  A header asking for several ranges gets
    the whole file (returns None), which RFC 9110 allows; this keeps
    responses free of ``multipart/byteranges``.

    Parameters
    ----------
    value : str
        The header value.
    size : int
        Size of the representation in bytes.

    Returns
    -------
    tuple of (int, int) or None
        ``(start, end)``, inclusive, with ``end`` clipped to ``size - 1``;
        None when the header is to be ignored (syntactically invalid, not
        in ``bytes``, ``last < first``, or several ranges), in which case
        the whole file is served with 200.

    Raises
    ------
    RangeError
        When the range is valid but cannot be satisfied (first byte at or
        beyond the end, ``bytes=-0``, any range of an empty file): 416 with
        ``Content-Range: bytes */{size}``.
    """
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeError(f"range {value!r} not satisfiable: file has {size} bytes", size)
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else None
    if last is not None and last < first:
        return None
    if first >= size:
        raise RangeError(f"range {value!r} not satisfiable: file has {size} bytes", size)
    end = size - 1 if last is None else min(last, size - 1)
    return first, end


# Storage ---------------------------------------------------------------------------


class FileStorage(abc.ABC):
    """Where the users' files live: the operations the file service and the jobs use.

    Every method takes the ``owner`` (one path segment) and a path inside
    the owner's tree (``str`` or ``PurePosixPath``, checked again with
    :func:`clean_path`; ``PurePosixPath()`` is the owner's own folder, which
    exists implicitly).  All implementations raise the same exceptions, so
    the web layer maps them to HTTP statuses once: :class:`FileNotFoundError`,
    :class:`FileExistsError`, :class:`IsADirectoryError`,
    :class:`NotADirectoryError`, :class:`FolderNotEmpty`, :class:`PathError`,
    :class:`QuotaExceeded`, :class:`FileTooLarge` and :class:`RangeError`.

    Attributes
    ----------
    location : str
        Where the files are (a folder or a URL), for messages.
    scratch_dir : Path
        A local folder for temporary copies of stored files (see
        :meth:`local_copy`) and other scratch work; never the store itself.
    """

    location: str
    scratch_dir: Path

    # Writing -------------------------------------------------------------------

    @abc.abstractmethod
    def write(self, owner: str, rel: str | PurePosixPath, chunks: Iterable[bytes], *,
              quota_left: int | None = None, max_size: int | None = None,
              quota: int | None = None) -> StoredFile:
        """Store a stream of bytes as ``{owner}/{rel}``, replacing any old file atomically.

        Parameters
        ----------
        owner : str
            User name.
        rel : str or PurePosixPath
            Path of the file; missing parent folders are created.
        chunks : iterable of bytes
            The content; an exception raised while iterating aborts the write.
        quota_left : int, optional
            Bytes this file may occupy.  The file being replaced is *not*
            credited: a caller that wants to allow replacing a file within
            the quota passes ``quota - usage + old size``.
        max_size : int, optional
            Largest size of one file.
        quota : int, optional
            The whole quota, only for the :class:`QuotaExceeded` message.

        Returns
        -------
        StoredFile
            Path, size, MD5, SHA-256 and modification time.

        Raises
        ------
        QuotaExceeded, FileTooLarge
            As soon as the byte count passes a limit; the chunk that passes
            it is not written and the iterator is not read further.
        PathError
            For a refused path.
        IsADirectoryError, NotADirectoryError
            When the target is a folder or a parent is a file.

        Notes
        -----
        On any failure the old file, if there was one, is unchanged and no
        temporary file is left.
        """

    # Reading -------------------------------------------------------------------

    @abc.abstractmethod
    def open_range(self, owner: str, rel: str | PurePosixPath, start: int = 0,
                   end: int | None = None) -> FileRange:
        """Open bytes ``[start, end]`` (inclusive, as in HTTP ranges) of a file.

        Parameters
        ----------
        owner : str
            User name.
        rel : str or PurePosixPath
            Path of the file.
        start : int
            First byte.
        end : int, optional
            Last byte, inclusive; None for the end of the file.

        Returns
        -------
        FileRange
            An iterable of chunks of at most 1 MiB, closed at its end; the
            whole of an empty file (``start=0, end=None``) yields nothing.

        Raises
        ------
        RangeError
            Unless ``0 <= start <= end < size``.
        FileNotFoundError, IsADirectoryError, PathError
            For a missing node, a folder, or a refused path.
        """

    def read_range(self, owner: str, rel: str | PurePosixPath, start: int = 0,
                   end: int | None = None) -> Iterator[bytes]:
        """Iterator over bytes ``[start, end]``; checks happen now, as in :meth:`open_range`."""
        return iter(self.open_range(owner, rel, start, end))

    def checksums(self, owner: str, rel: str | PurePosixPath) -> StoredFile:
        """Read a stored file through and return its size, MD5 and SHA-256."""
        rel = _as_rel(rel)
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        size = 0
        with self.open_range(owner, rel) as data:
            modified = data.modified
            for chunk in data:
                size += len(chunk)
                md5.update(chunk)
                sha256.update(chunk)
        return StoredFile(path=rel, size=size, md5=md5.hexdigest(), sha256=sha256.hexdigest(),
                          modified=modified)

    @abc.abstractmethod
    def local_copy(self, owner: str,
                   rel: str | PurePosixPath) -> AbstractContextManager[Path]:
        """A context manager lending a stored file as a local path, for readers that need one.

        Parameters
        ----------
        owner : str
            User name.
        rel : str or PurePosixPath
            Path of the file.

        Returns
        -------
        context manager of Path
            Yields a path to read (never to write): the file itself where
            the store is a local folder, else a temporary download under
            :attr:`scratch_dir`, removed on exit.

        Raises
        ------
        FileNotFoundError, IsADirectoryError, PathError
            For a missing node, a folder, or a refused path.
        """

    # Nodes ---------------------------------------------------------------------

    @abc.abstractmethod
    def stat(self, owner: str, rel: str | PurePosixPath) -> NodeInfo:
        """The file or folder ``{owner}/{rel}``.

        Raises
        ------
        FileNotFoundError
            When it does not exist (the owner's own folder always exists).
        PathError
            For a refused path.
        """

    def exists(self, owner: str, rel: str | PurePosixPath) -> bool:
        """Whether ``{owner}/{rel}`` exists (a refused path raises :class:`PathError`)."""
        try:
            self.stat(owner, rel)
        except FileNotFoundError:
            return False
        return True

    @abc.abstractmethod
    def listdir(self, owner: str, rel: str | PurePosixPath = OWNER_FOLDER) -> list[NodeInfo]:
        """Files and folders directly in a folder, sorted by name; reserved names left out.

        Raises
        ------
        FileNotFoundError, NotADirectoryError, PathError
            For a missing folder, a file, or a refused path.
        """

    @abc.abstractmethod
    def mkdir(self, owner: str, rel: str | PurePosixPath, *, exist_ok: bool = True) -> NodeInfo:
        """Create a folder and its missing parents.

        Parameters
        ----------
        owner : str
            User name.
        rel : str or PurePosixPath
            Path of the folder.
        exist_ok : bool
            When False, an existing folder raises :class:`FileExistsError`.

        Raises
        ------
        FileExistsError
            When a file is in the way (at ``rel`` itself), or the folder exists
            and ``exist_ok`` is False.
        NotADirectoryError
            When a parent is a file.
        PathError
            For a refused path.
        """

    @abc.abstractmethod
    def delete(self, owner: str, rel: str | PurePosixPath, *, recursive: bool = False) -> None:
        """Delete a file, or a folder (with its content when ``recursive``).

        Raises
        ------
        FileNotFoundError
            When it does not exist.
        FolderNotEmpty
            For a folder with content and ``recursive=False``.
        PathError
            For a refused path or the owner's own folder.
        """

    @abc.abstractmethod
    def move(self, owner: str, src: str | PurePosixPath, dst: str | PurePosixPath, *,
             overwrite: bool = False) -> NodeInfo:
        """Move (rename) a file or folder.

        Parameters
        ----------
        owner : str
            User name.
        src, dst : str or PurePosixPath
            Source and destination paths; missing parents of ``dst`` are created.
        overwrite : bool
            Replace an existing ``dst`` of the same kind (a folder is
            replaced as a whole, not merged).

        Returns
        -------
        NodeInfo
            The moved node at ``dst``.

        Raises
        ------
        FileNotFoundError
            For a missing source.
        FileExistsError
            When ``dst`` exists and ``overwrite`` is False.
        IsADirectoryError, NotADirectoryError
            When ``overwrite`` would replace a node of the other kind.
        PathError
            For refused paths, a folder moved into itself, or the owner's folder.
        """

    @abc.abstractmethod
    def copy(self, owner: str, src: str | PurePosixPath, dst: str | PurePosixPath, *,
             overwrite: bool = False, quota_left: int | None = None,
             quota: int | None = None) -> NodeInfo:
        """Copy a file or folder.

        Parameters
        ----------
        owner : str
            User name.
        src, dst : str or PurePosixPath
            Source and destination paths; missing parents of ``dst`` are created.
        overwrite : bool
            Replace an existing ``dst`` of the same kind (a folder as a whole).
        quota_left : int, optional
            Bytes the copy may occupy; checked before copying.
        quota : int, optional
            The whole quota, only for the :class:`QuotaExceeded` message.

        Returns
        -------
        NodeInfo
            The new node at ``dst``.

        Raises
        ------
        QuotaExceeded
            When the copy would not fit.
        FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PathError
            As for :meth:`move`.
        """

    # Accounting ----------------------------------------------------------------

    @abc.abstractmethod
    def usage(self, owner: str) -> int:
        """Bytes used by ``owner``: the sum of the sizes of the files in the tree."""

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """Whether no owner has anything in the store yet (vocloud's own entries aside)."""

    @abc.abstractmethod
    def cleanup_tmp(self, older_than: float = 86400.0) -> int:
        """Remove temporary files left by crashed processes; returns how many.

        Parameters
        ----------
        older_than : float
            Age in seconds; younger entries may belong to writes in progress.
        """


class LocalStorage(FileStorage):
    """The users' files under one storage root in a local (or mounted) folder.

    Parameters
    ----------
    root : Path
        Storage root, e.g. ``Config.home / "files"``; created on first
        write.  It is resolved once, so a symlink *above* the root is fine;
        below it none is followed.
    scratch_dir : Path, optional
        Local folder for scratch work (:attr:`FileStorage.scratch_dir`);
        by default the storage's own temporary folder.

    Notes
    -----
    Paths are given as ``owner`` plus a relative path (``str`` or
    ``PurePosixPath``), which is checked again with :func:`clean_path`; the
    empty ``PurePosixPath()`` means the owner's own folder, which exists
    implicitly (listing it before any upload gives an empty list).
    """

    def __init__(self, root: Path, *, scratch_dir: Path | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self.tmp_dir = self.root / TMP_DIR_NAME
        self.location = str(self.root)
        self.scratch_dir = scratch_dir if scratch_dir is not None else self.tmp_dir

    # Paths ---------------------------------------------------------------------

    def path_of(self, owner: str, rel: str | PurePosixPath) -> Path:
        """Server path of ``{owner}/{rel}``, checked against symlinks and escapes.

        Parameters
        ----------
        owner : str
            User name, one path segment.
        rel : str or PurePosixPath
            Path inside the owner's tree; ``PurePosixPath()`` for the tree itself.

        Returns
        -------
        Path
            ``root/owner/rel``; it need not exist.

        Raises
        ------
        PathError
            For a bad owner or path, when an existing component (the last one
            included) is a symbolic link, or when the path would resolve
            outside the owner's folder.
        """
        owner = _check_owner(owner)
        rel = _as_rel(rel)
        base = self.root / owner
        current = self.root
        walked: list[str] = []
        for part in (owner, *rel.parts):
            current = current / part
            walked.append(part)
            try:
                st = os.lstat(current)
            except (FileNotFoundError, NotADirectoryError):
                break
            if stat_mod.S_ISLNK(st.st_mode):
                raise PathError(f"path {_node(owner, rel)!r}: {'/'.join(walked)!r} is a "
                                "symbolic link, which vocloud does not follow")
        target = base.joinpath(*rel.parts)
        real_base = os.path.realpath(base)
        real = os.path.realpath(target)
        if os.path.commonpath([real, real_base]) != real_base:
            raise PathError(f"path {_node(owner, rel)!r} leads outside the folder of {owner!r}")
        return target

    def _lstat(self, owner: str, rel: PurePosixPath, path: Path) -> os.stat_result | None:
        """lstat of an already checked path, None when it does not exist."""
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat_mod.S_ISLNK(st.st_mode):  # appeared since path_of
            raise PathError(f"path {_node(owner, rel)!r} is a symbolic link")
        return st

    def _ensure_dirs(self, owner: str, rel: PurePosixPath) -> Path:
        """Create the folder ``rel`` of ``owner`` and its parents, refusing files and links."""
        current = self.root
        current.mkdir(parents=True, exist_ok=True)
        walked: list[str] = []
        for part in (owner, *rel.parts):
            current = current / part
            walked.append(part)
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            st = os.lstat(current)
            if stat_mod.S_ISLNK(st.st_mode):
                raise PathError(f"path {_node(owner, rel)!r}: {'/'.join(walked)!r} is a "
                                "symbolic link, which vocloud does not follow")
            if not stat_mod.S_ISDIR(st.st_mode):
                raise NotADirectoryError(f"{'/'.join(walked)!r} is a file, not a folder")
        return current

    def _check_parents_not_files(self, owner: str, rel: PurePosixPath) -> None:
        current = self.root / owner
        walked = [owner]
        for part in rel.parts[:-1]:
            current = current / part
            walked.append(part)
            st = self._lstat(owner, rel, current)
            if st is None:
                return
            if not stat_mod.S_ISDIR(st.st_mode):
                raise NotADirectoryError(f"{'/'.join(walked)!r} is a file, not a folder")

    def _new_tmp(self) -> Path:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / uuid.uuid4().hex

    # Writing -------------------------------------------------------------------

    def write(self, owner: str, rel: str | PurePosixPath, chunks: Iterable[bytes], *,
              quota_left: int | None = None, max_size: int | None = None,
              quota: int | None = None) -> StoredFile:
        """Store a stream of bytes as ``{owner}/{rel}``; see :meth:`FileStorage.write`.

        The bytes go to a temporary file under ``root/.vocloud-tmp``, are
        hashed and counted as they arrive, and the file replaces the target
        with :func:`os.replace` only once it is complete and synced.  Paths
        are checked with :meth:`path_of`.
        """
        rel = _as_rel(rel)
        if not rel.parts:
            raise IsADirectoryError(f"{owner!r} is your folder, not a file")
        target = self.path_of(owner, rel)
        # Fail before receiving anything when the target cannot be written.
        self._check_parents_not_files(owner, rel)
        st = self._lstat(owner, rel, target)
        if st is not None and stat_mod.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{_node(owner, rel)!r} is a folder")

        tmp = self._new_tmp()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out:
                size, md5, sha256 = _copy_counted(chunks, out, max_size=max_size,
                                                  quota_left=quota_left, quota=quota)
                out.flush()
                os.fsync(out.fileno())
            # Check again: the tree may have changed while the bytes arrived.
            target = self.path_of(owner, rel)
            parent = self._ensure_dirs(owner, rel.parent)
            st = self._lstat(owner, rel, target)
            if st is not None and stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectoryError(f"{_node(owner, rel)!r} is a folder")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(parent)
        return StoredFile(path=rel, size=size, md5=md5, sha256=sha256,
                          modified=_mtime(os.lstat(target)))

    # Reading -------------------------------------------------------------------

    def open_range(self, owner: str, rel: str | PurePosixPath, start: int = 0,
                   end: int | None = None) -> FileRange:
        """Open bytes ``[start, end]`` of a file; see :meth:`FileStorage.open_range`.

        The file is opened with ``O_NOFOLLOW``: a symbolic link raises
        :class:`PathError`, and anything but a regular file is refused.
        """
        rel = _as_rel(rel)
        path = self.path_of(owner, rel)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(f"no such file: {_node(owner, rel)!r}") from None
        except OSError as exc:
            if os.path.islink(path):
                raise PathError(f"path {_node(owner, rel)!r} is a symbolic link") from None
            raise exc
        try:
            st = os.fstat(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectoryError(f"{_node(owner, rel)!r} is a folder")
            if not stat_mod.S_ISREG(st.st_mode):
                raise PathError(f"{_node(owner, rel)!r} is not a regular file")
            size = st.st_size
            if size == 0 and start == 0 and end is None:
                return FileRange(fd, 0, 0, -1, _mtime(st))
            last = size - 1 if end is None else end
            if not 0 <= start <= last < size:
                raise RangeError(f"bytes {start}-{last} not satisfiable: "
                                 f"{_node(owner, rel)!r} has {size} bytes", size)
            return FileRange(fd, size, start, last, _mtime(st))
        except BaseException:
            os.close(fd)
            raise

    @contextmanager
    def local_copy(self, owner: str, rel: str | PurePosixPath) -> Iterator[Path]:
        """The stored file itself, checked as in :meth:`path_of` (no copy is made).

        See :meth:`FileStorage.local_copy`; a symbolic link raises :class:`PathError`.
        """
        rel = _as_rel(rel)
        path = self.path_of(owner, rel)
        st = self._lstat(owner, rel, path)
        if st is None:
            raise FileNotFoundError(f"no such file: {_node(owner, rel)!r}")
        if stat_mod.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{_node(owner, rel)!r} is a folder")
        if not stat_mod.S_ISREG(st.st_mode):
            raise PathError(f"{_node(owner, rel)!r} is not a regular file")
        yield path

    # Nodes ---------------------------------------------------------------------

    def stat(self, owner: str, rel: str | PurePosixPath) -> NodeInfo:
        """The file or folder ``{owner}/{rel}``; see :meth:`FileStorage.stat`.

        A symbolic link raises :class:`PathError` rather than being followed.
        """
        rel = _as_rel(rel)
        path = self.path_of(owner, rel)
        st = self._lstat(owner, rel, path)
        if st is None:
            if not rel.parts:
                return NodeInfo(rel, True, 0, datetime.fromtimestamp(0, tz=UTC))
            raise FileNotFoundError(f"no such file or folder: {_node(owner, rel)!r}")
        return self._info(rel, st)

    @staticmethod
    def _info(rel: PurePosixPath, st: os.stat_result) -> NodeInfo:
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        return NodeInfo(rel, is_dir, 0 if is_dir else st.st_size, _mtime(st))

    def listdir(self, owner: str, rel: str | PurePosixPath = OWNER_FOLDER) -> list[NodeInfo]:
        """Files and folders directly in a folder; see :meth:`FileStorage.listdir`.

        Symbolic links are left out as well as vocloud's reserved names.
        """
        rel = _as_rel(rel)
        path = self.path_of(owner, rel)
        st = self._lstat(owner, rel, path)
        if st is None:
            if not rel.parts:
                return []
            raise FileNotFoundError(f"no such folder: {_node(owner, rel)!r}")
        if not stat_mod.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{_node(owner, rel)!r} is a file, not a folder")
        result: list[NodeInfo] = []
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.lower().startswith(RESERVED_PREFIX) or entry.is_symlink():
                    continue
                try:
                    entry_st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                result.append(self._info(rel / entry.name, entry_st))
        result.sort(key=lambda info: info.name)
        return result

    def mkdir(self, owner: str, rel: str | PurePosixPath, *, exist_ok: bool = True) -> NodeInfo:
        """Create a folder and its missing parents; see :meth:`FileStorage.mkdir`.

        A symbolic link on the way raises :class:`PathError`.
        """
        rel = _as_rel(rel)
        path = self.path_of(owner, rel)
        st = self._lstat(owner, rel, path)
        if st is not None:
            if not stat_mod.S_ISDIR(st.st_mode):
                raise FileExistsError(f"{_node(owner, rel)!r} is a file")
            if not exist_ok:
                raise FileExistsError(f"folder {_node(owner, rel)!r} exists")
        self._ensure_dirs(owner, rel)
        return self.stat(owner, rel)

    def delete(self, owner: str, rel: str | PurePosixPath, *, recursive: bool = False) -> None:
        """Delete a file or folder; see :meth:`FileStorage.delete`.

        A recursive delete first renames the folder out of sight, so the
        tree never shows it half deleted, then removes it; links found
        inside are removed without following them.
        """
        rel = _as_rel(rel)
        if not rel.parts:
            raise PathError(f"the folder of {owner!r} itself cannot be deleted")
        path = self.path_of(owner, rel)
        st = self._lstat(owner, rel, path)
        if st is None:
            raise FileNotFoundError(f"no such file or folder: {_node(owner, rel)!r}")
        if not stat_mod.S_ISDIR(st.st_mode):
            path.unlink()
        elif recursive:
            # Move it out of sight first, so the tree never shows it half deleted.
            aside = self._new_tmp()
            os.rename(path, aside)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            try:
                path.rmdir()
            except OSError as exc:
                with os.scandir(path) as entries:
                    not_empty = any(True for _ in entries)
                if not_empty:
                    raise FolderNotEmpty(f"folder {_node(owner, rel)!r} is not empty") from None
                raise exc
        _fsync_dir(path.parent)

    def _prepare_target(self, owner: str, src: PurePosixPath, dst: PurePosixPath,
                        src_st: os.stat_result, overwrite: bool, verb: str) -> Path:
        """Checks shared by move and copy; returns the server path of ``dst``."""
        src_dir = stat_mod.S_ISDIR(src_st.st_mode)
        _check_move_paths(owner, src, dst, src_dir=src_dir, verb=verb)
        dst_path = self.path_of(owner, dst)
        self._check_parents_not_files(owner, dst)
        dst_st = self._lstat(owner, dst, dst_path)
        if dst_st is not None:
            _check_replace(owner, src, dst, src_dir=src_dir,
                           dst_dir=stat_mod.S_ISDIR(dst_st.st_mode), overwrite=overwrite)
        return dst_path

    def _place(self, source: Path, dst_path: Path, is_dir: bool) -> None:
        """Rename ``source`` to ``dst_path``; an existing folder there is swapped out first."""
        if is_dir and os.path.lexists(dst_path):
            aside = self._new_tmp()
            os.rename(dst_path, aside)
            try:
                os.rename(source, dst_path)
            except BaseException:
                os.rename(aside, dst_path)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(source, dst_path)
        _fsync_dir(dst_path.parent)

    def move(self, owner: str, src: str | PurePosixPath, dst: str | PurePosixPath, *,
             overwrite: bool = False) -> NodeInfo:
        """Move (rename) a file or folder; atomic with :func:`os.rename`.

        See :meth:`FileStorage.move`.  A folder being replaced is renamed
        aside first and put back if the rename fails.
        """
        src_rel, dst_rel = _as_rel(src), _as_rel(dst)
        src_path = self.path_of(owner, src_rel)
        src_st = self._lstat(owner, src_rel, src_path)
        if src_st is None:
            raise FileNotFoundError(f"no such file or folder: {_node(owner, src_rel)!r}")
        dst_path = self._prepare_target(owner, src_rel, dst_rel, src_st, overwrite, "move")
        self._ensure_dirs(owner, dst_rel.parent)
        self._place(src_path, dst_path, stat_mod.S_ISDIR(src_st.st_mode))
        return self.stat(owner, dst_rel)

    def copy(self, owner: str, src: str | PurePosixPath, dst: str | PurePosixPath, *,
             overwrite: bool = False, quota_left: int | None = None,
             quota: int | None = None) -> NodeInfo:
        """Copy a file or folder; the copy is built aside and renamed into place.

        See :meth:`FileStorage.copy`.  The copy under ``root/.vocloud-tmp``
        is removed when anything fails.

        Raises
        ------
        PathError
            Also when the source folder holds a symbolic link (a copy would
            have to follow or recreate it).
        """
        src_rel, dst_rel = _as_rel(src), _as_rel(dst)
        src_path = self.path_of(owner, src_rel)
        src_st = self._lstat(owner, src_rel, src_path)
        if src_st is None:
            raise FileNotFoundError(f"no such file or folder: {_node(owner, src_rel)!r}")
        dst_path = self._prepare_target(owner, src_rel, dst_rel, src_st, overwrite, "copy")
        is_dir = stat_mod.S_ISDIR(src_st.st_mode)
        if is_dir:
            size = self._tree_size(src_path, refuse_links=f"{_node(owner, src_rel)!r}")
        else:
            size = src_st.st_size
        if quota_left is not None and size > quota_left:
            raise QuotaExceeded(so_far=size, quota_left=quota_left, quota=quota, action="copy")
        tmp = self._new_tmp()
        try:
            if is_dir:
                shutil.copytree(src_path, tmp, symlinks=True, copy_function=_copy_file)
            else:
                _copy_file(src_path, tmp)
            self._ensure_dirs(owner, dst_rel.parent)
            self.path_of(owner, dst_rel)
            self._place(tmp, dst_path, is_dir)
        except BaseException:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise
        return self.stat(owner, dst_rel)

    # Accounting ----------------------------------------------------------------

    @staticmethod
    def _tree_size(path: Path, refuse_links: str | None = None) -> int:
        total = 0
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in (*dirnames, *filenames):
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if stat_mod.S_ISLNK(st.st_mode):
                    if refuse_links is not None:
                        raise PathError(f"folder {refuse_links} holds a symbolic link "
                                        f"({name!r}), which vocloud does not copy")
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    total += st.st_size
        return total

    def usage(self, owner: str) -> int:
        """Bytes used by ``owner``; see :meth:`FileStorage.usage`.

        Only regular files count: links are not followed or counted, folders count 0.
        """
        path = self.path_of(owner, PurePosixPath())
        if self._lstat(owner, PurePosixPath(), path) is None:
            return 0
        return self._tree_size(path)

    def is_empty(self) -> bool:
        """Whether the root holds no owner folder (nor any other entry not starting with ``.``)."""
        if not self.root.is_dir():
            return True
        with os.scandir(self.root) as entries:
            return not any(not entry.name.startswith(".") for entry in entries)

    def cleanup_tmp(self, older_than: float = 86400.0) -> int:
        """Remove old entries of ``root/.vocloud-tmp``; see :meth:`FileStorage.cleanup_tmp`."""
        if not self.tmp_dir.is_dir():
            return 0
        limit = time.time() - older_than
        removed = 0
        with os.scandir(self.tmp_dir) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if st.st_mtime >= limit:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
        return removed


def _copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Copy one regular file without following links, and sync it."""
    in_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(in_fd, "rb") as fin:
        if not stat_mod.S_ISREG(os.fstat(fin.fileno()).st_mode):
            raise PathError("only regular files are copied")
        out_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(out_fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK_SIZE)
            fout.flush()
            os.fsync(fout.fileno())
    shutil.copystat(src, dst, follow_symlinks=False)
    return os.fspath(dst)

#: The historical name of :class:`LocalStorage`.
Storage = LocalStorage


def make_storage(config: Config) -> FileStorage:
    """The storage ``VOCLOUD_STORAGE`` names: a local folder, or any fsspec URL.

    Parameters
    ----------
    config : Config
        The configuration; temporary local copies of stored files go under
        ``config.home / "scratch"``.

    Returns
    -------
    FileStorage
        A :class:`LocalStorage` for a path or a ``file://`` URL (the default
        ``home / "files"`` included), else an
        :class:`~uws_service.storage_fsspec.FsspecStorage`.

    Raises
    ------
    ValueError
        For a URL whose protocol fsspec does not know, or whose package is
        not installed.
    """
    scratch = config.home / "scratch"
    url = config.storage_url
    if url is None:
        return LocalStorage(config.storage_root, scratch_dir=scratch)
    from uws_service.storage_fsspec import FsspecStorage

    return FsspecStorage(url, scratch_dir=scratch)
