"""The rules of the file store, with no web framework: :class:`FileService`.

Who may read and write a node, the quota, and keeping the ``file_node``
rows (and the spectrum catalogue) in step with the bytes in
:class:`~uws_service.storage.FileStorage` (a local folder or any fsspec
URL, see :func:`~uws_service.storage.make_storage`).  The HTTP layer is
:mod:`uws_service.files`, the JSON management endpoints are in
:mod:`uws_service.api`, the VOSpace view is :mod:`uws_service.vospace`, and
jobs (imports) write through the same service from worker processes.

Access (DESIGN, "Access"): the owner and admins may do anything (an admin
writes into another user's tree and the upload counts against that user's
quota); a node whose ``visibility`` is ``public`` may be read by anyone,
anonymous clients included, and a ``shared`` node by the users it is
shared with.  Anything else gets 401 with a challenge for an anonymous
client and 404 for another user, exactly as for a node that does not
exist, so nothing leaks.  Another user writing to a node they can read
gets 403, otherwise 404.

A move keeps the rows (their ids, so catalogue DIDs) of the node and of
everything under it; a copy makes new rows, private, counted against the
quota.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from uws_service.catalogue import Catalogue
from uws_service.config import Config
from uws_service.db import Database, get_database
from uws_service.errors import (
    AuthenticationRequired,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RangeNotSatisfiable,
    ServiceError,
    UsageError,
)
from uws_service.models import FileNode, FileShare, User, Visibility, utcnow
from uws_service.storage import (
    OWNER_FOLDER,
    FileRange,
    FileStorage,
    FileTooLarge,
    FolderNotEmpty,
    NodeInfo,
    PathError,
    QuotaExceeded,
    RangeError,
    StoredFile,
    clean_path,
    make_storage,
)
from uws_service.users import Principal

__all__ = ["FileMeta", "FileService", "Quota", "UploadPart", "UploadRefusal", "UploadResult"]

_log = logging.getLogger("vocloud.files")

#: Largest number of paths put in one ``IN (...)`` clause.
_IN_BATCH = 500


@dataclass(frozen=True)
class FileMeta:
    """A file or folder as the web layer sees it (a detached snapshot of its row).

    Attributes
    ----------
    owner : str
        User name of the owner.
    path : PurePosixPath
        Path inside the owner's tree; ``PurePosixPath()`` for the owner's folder.
    is_dir : bool
        True for a folder.
    size : int
        Bytes of a file; 0 for a folder.
    md5, sha256 : str or None
        Checksums of a file (the MD5 is the ETag); None for a folder.
    content_type : str
        Media type to serve the file with.
    modified : datetime
        Last modification, aware UTC.
    visibility : str
        ``"private"`` or ``"public"``.
    """

    owner: str
    path: PurePosixPath
    is_dir: bool
    size: int
    md5: str | None
    sha256: str | None
    content_type: str
    modified: datetime
    visibility: str
    #: Users the node is shared with for reading (VOSpace ``core#groupread``).
    shared_with: tuple[str, ...] = ()
    #: Spectra catalogued from the file; None when it is not a spectrum format.
    spectra: int | None = None
    #: Why a file of a spectrum format could not be read into the catalogue.
    catalogue_error: str | None = None

    @property
    def name(self) -> str:
        """Last segment of the path ("" for the owner's folder)."""
        return self.path.name


@dataclass(frozen=True)
class Quota:
    """A user's storage quota.

    Attributes
    ----------
    owner : str
        User name.
    quota : int
        Bytes the user may store.
    used : int
        Bytes stored now.
    free : int
        Bytes left (never negative).
    """

    owner: str
    quota: int
    used: int
    free: int


@dataclass(frozen=True)
class UploadPart:
    """One part of a multipart upload, as the web layer hands it over.

    Attributes
    ----------
    field : str
        Name of the form field.
    filename : str or None
        File name sent with the part (a path relative to the target
        folder, e.g. ``"night1/a.fits"``); None for a plain form field.
    content_type : str or None
        Media type sent with the part.
    chunks : iterable of bytes
        The content, read lazily.  The web layer skips whatever is left
        unread when the next part is asked for.
    """

    field: str
    filename: str | None
    content_type: str | None
    chunks: Iterable[bytes]

    @property
    def label(self) -> str:
        """How errors name the part: its file name, else its field name."""
        return self.filename or self.field


@dataclass(frozen=True)
class UploadRefusal:
    """A part of a multipart upload that was not stored.

    Attributes
    ----------
    part : str
        File name (or field name) of the part.
    reason : str
        Why it was refused.
    status : int
        The HTTP status the same refusal gets for a single file (400, 409, 413).
    """

    part: str
    reason: str
    status: int


@dataclass(frozen=True)
class UploadResult:
    """Outcome of a multipart upload: each part was either stored (atomically) or refused.

    Attributes
    ----------
    stored : list of FileMeta
        Files stored, in the order of the parts.
    refused : list of UploadRefusal
        Parts refused, in order.
    """

    stored: list[FileMeta]
    refused: list[UploadRefusal]

    @property
    def status(self) -> int:
        """201 when anything was stored (or nothing was sent), else the first refusal's status."""
        if self.stored or not self.refused:
            return 201
        return self.refused[0].status


class _ZipSink:
    """A write-only, unseekable stream that keeps what was written until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        if data:
            self._parts.append(bytes(data))
            self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        """Everything written since the last call."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data


@dataclass(frozen=True)
class _Owner:
    id: int
    name: str


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _guess_type(path: PurePosixPath) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class _Upload:
    """The bytes one write of an owner has received so far (see :class:`_InFlight`)."""

    def __init__(self, ledger: _InFlight, owner_id: int) -> None:
        self.ledger = ledger
        self.owner_id = owner_id
        self.size = 0

    def others(self) -> int:
        """Bytes the owner's other writes in this process have received."""
        with self.ledger.lock:
            return self.ledger.bytes.get(self.owner_id, 0) - self.size

    def count(self, chunks: Iterable[bytes], room: int, quota: int) -> Iterator[bytes]:
        """Pass ``chunks`` through, refusing once this write and the others exceed ``room``."""
        for chunk in chunks:
            with self.ledger.lock:
                self.size += len(chunk)
                total = self.ledger.bytes.get(self.owner_id, 0) + len(chunk)
                self.ledger.bytes[self.owner_id] = total
            if total > room:
                raise QuotaExceeded(so_far=self.size, quota_left=room - (total - self.size),
                                    quota=quota)
            yield chunk


class _InFlight:
    """Bytes of writes still arriving, per owner, so concurrent uploads share one quota.

    Each write's quota is computed from the bytes stored before it began;
    without this ledger two uploads running at once could each fit and
    together exceed it.  The ledger covers the writes of one process (the
    web server's threads); a write counts until its row is recorded, so
    for a moment it is counted twice, which only errs on the safe side.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes: dict[int, int] = {}

    @contextmanager
    def track(self, owner_id: int) -> Iterator[_Upload]:
        upload = _Upload(self, owner_id)
        try:
            yield upload
        finally:
            with self.lock:
                left = self.bytes.get(owner_id, 0) - upload.size
                if left > 0:
                    self.bytes[owner_id] = left
                else:
                    self.bytes.pop(owner_id, None)


class FileService:
    """The rules of the file store, independent of HTTP.

    Parameters
    ----------
    database : Database
        Holds the ``file_node`` catalogue and the users.
    storage : FileStorage
        Holds the bytes.
    quota_bytes : int
        Bytes each user may store.
    public_url : str
        Base of the absolute URLs in folder listings (``VOCLOUD_PUBLIC_URL``).
    upload_max_parts : int
        Most parts one multipart upload may have (``VOCLOUD_UPLOAD_MAX_PARTS``).

    Notes
    -----
    The storage is the truth about which nodes exist; the catalogue keeps
    checksums, media types and visibility.  A file found on disk without a
    row (put there by ``vocloud ingest`` or by hand), or whose size no
    longer matches its row, gets its row (re)made on first read, which reads
    the file once to compute its checksums.
    """

    def __init__(self, database: Database, storage: FileStorage, quota_bytes: int,
                 public_url: str, *, upload_max_parts: int = 1000,
                 authority: str = "vocloud.local", max_file_bytes: int | None = None,
                 catalogue: Catalogue | None = None) -> None:
        self.database = database
        self.storage = storage
        self.quota_bytes = quota_bytes
        self.public_url = public_url.rstrip("/")
        self.upload_max_parts = upload_max_parts
        self.max_file_bytes = max_file_bytes
        self._in_flight = _InFlight()
        self.catalogue = catalogue or Catalogue(storage, public_url, authority)

    @classmethod
    def from_config(cls, config: Config, database: Database | None = None) -> FileService:
        """The file store a configuration describes (web server, workers and CLI alike)."""
        storage = make_storage(config)
        return cls(database or get_database(config.database_url), storage,
                   config.quota_bytes, config.public_url,
                   upload_max_parts=config.upload_max_parts, authority=config.authority,
                   max_file_bytes=config.max_file_bytes)

    # Helpers -------------------------------------------------------------------

    @staticmethod
    def parse_path(path: str, *, folder_ok: bool) -> PurePosixPath:
        """Check a path from a URL.

        Parameters
        ----------
        path : str
            The part of the URL after ``/files/{user}/``, decoded.
        folder_ok : bool
            Whether a folder URL is accepted: one trailing ``/`` is dropped
            and the empty path means the owner's folder.

        Raises
        ------
        UsageError
            With the reason :func:`~uws_service.storage.clean_path` gives.
        """
        if folder_ok:
            if path in ("", "/"):
                return OWNER_FOLDER
            if path.endswith("/"):
                path = path[:-1]
        try:
            return clean_path(path)
        except PathError as exc:
            raise UsageError(str(exc)) from None

    def url_of(self, owner: str, path: PurePosixPath, is_dir: bool = False) -> str:
        """Absolute URL of a node; folders end with ``/``."""
        tail = quote(path.as_posix(), safe="/") if path.parts else ""
        url = f"{self.public_url}/files/{quote(owner, safe='')}/{tail}"
        return url + "/" if is_dir and path.parts else url

    def principal(self, name: str) -> Principal | None:
        """The user ``name`` as a principal, for work done on their behalf (jobs, ingest)."""
        with self.database.read() as session:
            user = session.scalars(select(User).where(User.name == name)).first()
            return Principal(user.id, user.name, user.is_admin) if user else None

    def _owner(self, name: str) -> _Owner | None:
        with self.database.read() as session:
            row = session.execute(select(User.id, User.name).where(User.name == name)).first()
            return _Owner(row.id, row.name) if row else None

    @staticmethod
    def _full_access(principal: Principal | None, owner_id: int) -> bool:
        return principal is not None and (principal.is_admin or principal.id == owner_id)

    @staticmethod
    def _may_read(principal: Principal | None, row: FileNode | None) -> bool:
        """Whether someone other than the owner and the admins may read a node's row."""
        if row is None:
            return False
        if row.visibility == Visibility.PUBLIC:
            return True
        return (principal is not None and row.visibility == Visibility.SHARED
                and any(reader.id == principal.id for reader in row.readers))

    @staticmethod
    def _hidden(principal: Principal | None, node: str) -> ServiceError:
        """The error for a node the client may not see: the same as for a missing one."""
        if principal is None:
            return AuthenticationRequired("authentication required")
        return NotFound(f"no such file or folder: {node!r}")

    @staticmethod
    def _row(session: Session, owner_id: int, path: PurePosixPath) -> FileNode | None:
        return session.scalars(select(FileNode).where(
            FileNode.owner_id == owner_id, FileNode.path == path.as_posix())).first()

    @staticmethod
    def _meta(owner: str, row: FileNode) -> FileMeta:
        path = PurePosixPath(row.path)
        return FileMeta(owner=owner, path=path, is_dir=row.is_dir, size=row.size, md5=row.md5,
                        sha256=row.sha256,
                        content_type=row.content_type or _guess_type(path),
                        modified=_aware(row.modified_at), visibility=row.visibility,
                        shared_with=tuple(reader.name for reader in row.readers),
                        spectra=row.spectra, catalogue_error=row.catalogue_error)

    @staticmethod
    def _add_row(session: Session, owner_id: int, path: str, now: datetime,
                 parent: FileNode | None, **fields: Any) -> FileNode:
        """A new row that inherits who may read it from its folder's row (``parent``)."""
        row = FileNode(owner_id=owner_id, path=path, created_at=now,
                       modified_at=fields.pop("modified_at", now),
                       visibility=parent.visibility if parent is not None
                       else Visibility.PRIVATE, **fields)
        session.add(row)
        if parent is not None and parent.readers:
            session.flush()
            session.add_all(FileShare(node_id=row.id, user_id=reader.id)
                            for reader in parent.readers)
            session.flush()
            session.expire(row, ["readers"])
        return row

    @classmethod
    def _ensure_parent_rows(cls, session: Session, owner_id: int, path: PurePosixPath,
                            now: datetime) -> FileNode | None:
        """Make the missing rows of the folders above ``path``; returns its folder's row.

        New folder rows inherit visibility and readers from the nearest
        folder above them that has a row.
        """
        parents = [p.as_posix() for p in path.parents if p.parts]  # nearest first
        if not parents:
            return None
        existing = {row.path: row for row in session.scalars(select(FileNode).where(
            FileNode.owner_id == owner_id, FileNode.path.in_(parents)))}
        source = next((existing[p] for p in parents if p in existing), None)
        for parent in reversed(parents):
            if parent not in existing:
                existing[parent] = cls._add_row(session, owner_id, parent, now, source,
                                                is_dir=True, size=0)
        return existing[parents[0]]

    def _sync_file_row(self, owner: _Owner, rel: PurePosixPath, info: NodeInfo,
                       content_type: str | None = None) -> FileMeta:
        """Make the row of a file found on disk agree with it (reads it through once)."""
        try:
            stored = self.storage.checksums(owner.name, rel)
        except FileNotFoundError:
            raise NotFound(f"no such file or folder: {owner.name}/{rel.as_posix()!r}") from None
        entry = self.catalogue.describe(owner.name, rel, stored.size, content_type)
        with self.database.write() as session:
            row = self._row(session, owner.id, rel)
            now = utcnow()
            if row is None:
                parent = self._ensure_parent_rows(session, owner.id, rel, now)
                row = self._add_row(session, owner.id, rel.as_posix(), now, parent,
                                    content_type=content_type)
            row.is_dir = False
            row.size = stored.size
            row.md5 = stored.md5
            row.sha256 = stored.sha256
            row.modified_at = _naive(stored.modified)
            session.flush()
            self.catalogue.store(session, row, owner.name, entry)
            session.flush()
            return self._meta(owner.name, row)

    # Reading -------------------------------------------------------------------

    def lookup(self, principal: Principal | None, owner_name: str, path: str) -> FileMeta:
        """The node a GET or HEAD of ``/files/{owner_name}/{path}`` reads.

        Who else may read it (``shared_with``) is told to the owner and
        the admins only.

        Parameters
        ----------
        principal : Principal or None
            Who asks; None when anonymous.
        owner_name : str
            User whose tree it is.
        path : str
            Path in the tree; a trailing ``/`` and the empty path (the
            owner's folder) are accepted.

        Returns
        -------
        FileMeta
            The file or folder.

        Raises
        ------
        UsageError
            For a malformed path (400).
        AuthenticationRequired, NotFound
            When it does not exist or the client may not read it (401 for
            an anonymous client, 404 otherwise).
        """
        meta = self._lookup(principal, owner_name, path)
        owner_or_admin = principal is not None and (principal.is_admin
                                                    or principal.name == meta.owner)
        return meta if owner_or_admin else replace(meta, shared_with=())

    def _lookup(self, principal: Principal | None, owner_name: str, path: str) -> FileMeta:
        rel = self.parse_path(path, folder_ok=True)
        node = f"{owner_name}/{rel.as_posix()}" if rel.parts else owner_name
        owner = self._owner(owner_name)
        if owner is None:
            raise self._hidden(principal, node)
        full = self._full_access(principal, owner.id)
        with self.database.read() as session:
            row = self._row(session, owner.id, rel) if rel.parts else None
        if not full and not self._may_read(principal, row):
            raise self._hidden(principal, node)
        try:
            info = self.storage.stat(owner.name, rel)
        except FileNotFoundError:
            raise NotFound(f"no such file or folder: {node!r}") from None
        except PathError as exc:
            raise UsageError(str(exc)) from None
        if info.is_dir:
            if row is not None and row.is_dir:
                return self._meta(owner.name, row)
            return FileMeta(owner=owner.name, path=rel, is_dir=True, size=0, md5=None,
                            sha256=None, content_type="application/json",
                            modified=info.modified,
                            visibility=row.visibility if row else Visibility.PRIVATE)
        if row is None or row.is_dir or row.md5 is None or row.size != info.size:
            return self._sync_file_row(owner, rel, info,
                                       row.content_type if row is not None else None)
        return self._meta(owner.name, row)

    def listing(self, principal: Principal | None, folder: FileMeta) -> list[FileMeta]:
        """Files and folders directly in ``folder`` that ``principal`` may see, by name.

        Only the owner and admins see private entries; others see the
        public ones.  Checksums of files without a row are not computed
        here (``md5`` is None until the file is first read).
        """
        owner = self._owner(folder.owner)
        if owner is None:
            raise self._hidden(principal, folder.owner)
        full = self._full_access(principal, owner.id)
        try:
            infos = self.storage.listdir(owner.name, folder.path)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no such folder: {folder.owner}/{folder.path.as_posix()!r}") \
                from None
        rows: dict[str, FileNode] = {}
        paths = [info.path.as_posix() for info in infos]
        with self.database.read() as session:
            for start in range(0, len(paths), _IN_BATCH):
                batch = paths[start:start + _IN_BATCH]
                for found in session.scalars(select(FileNode).where(
                        FileNode.owner_id == owner.id, FileNode.path.in_(batch))):
                    rows[found.path] = found
        entries: list[FileMeta] = []
        for info in infos:
            row = rows.get(info.path.as_posix())
            visibility = row.visibility if row is not None else Visibility.PRIVATE
            if not full and not self._may_read(principal, row):
                continue
            same = row is not None and row.is_dir == info.is_dir and row.size == info.size
            entries.append(FileMeta(
                owner=owner.name, path=info.path, is_dir=info.is_dir, size=info.size,
                md5=row.md5 if row is not None and same else None,
                sha256=row.sha256 if row is not None and same else None,
                content_type=(row.content_type if row is not None and row.content_type
                              else _guess_type(info.path)),
                modified=_aware(row.modified_at) if row is not None and same
                else info.modified,
                visibility=visibility,
                shared_with=tuple(r.name for r in row.readers) if row is not None and full
                else (),
                spectra=row.spectra if row is not None else None,
                catalogue_error=row.catalogue_error if row is not None else None))
        return entries

    def open(self, meta: FileMeta, start: int = 0, end: int | None = None) -> FileRange:
        """Open bytes ``[start, end]`` of a file found by :meth:`lookup`.

        Raises
        ------
        RangeNotSatisfiable
            When the range lies outside the file (it may have shrunk since).
        NotFound
            When the file has gone.
        """
        try:
            return self.storage.open_range(meta.owner, meta.path, start, end)
        except RangeError as exc:
            raise RangeNotSatisfiable(str(exc), exc.size) from None
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no such file: {meta.owner}/{meta.path.as_posix()!r}") from None

    def zip_members(self, principal: Principal | None, folder: FileMeta) -> list[FileMeta]:
        """Every file and folder under ``folder`` that ``principal`` may read, depth first.

        Symbolic links are left out (storage never follows them); others
        than the owner and admins get the public nodes only.
        """
        members: list[FileMeta] = []
        pending = [folder]
        while pending:
            current = pending.pop()
            entries = self.listing(principal, current)
            members.extend(entries)
            pending.extend(reversed([entry for entry in entries if entry.is_dir]))
        return members

    def zip_stream(self, principal: Principal | None, folder: FileMeta) -> Iterator[bytes]:
        """A ZIP64 archive of ``folder`` as a stream of chunks; memory stays bounded.

        Entry names are relative to the folder (sub-folders end with
        ``/``); every file entry is written with ZIP64 extensions and a data
        descriptor, chunk by chunk, so neither a file nor the archive is
        ever held whole.

        Parameters
        ----------
        principal : Principal or None
            Who reads; the nodes they may not read are left out.
        folder : FileMeta
            The folder, as found by :meth:`lookup`.

        Yields
        ------
        bytes
            Consecutive pieces of the archive.
        """
        members = self.zip_members(principal, folder)
        sink = _ZipSink()
        base = len(folder.path.parts)
        with zipfile.ZipFile(cast(Any, sink), mode="w", compression=zipfile.ZIP_DEFLATED,
                             allowZip64=True) as archive:
            for member in members:
                name = "/".join(member.path.parts[base:])
                stamp = max(member.modified, datetime(1980, 1, 1, tzinfo=UTC))
                info = zipfile.ZipInfo(name + "/" if member.is_dir else name,
                                       date_time=stamp.timetuple()[:6])
                if member.is_dir:
                    info.external_attr = 0o40755 << 16 | 0x10
                    archive.writestr(info, b"")
                else:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    try:
                        data = self.storage.open_range(member.owner, member.path)
                    except (FileNotFoundError, IsADirectoryError, PathError):
                        continue  # gone (or replaced by a link) since it was listed
                    with data, archive.open(info, mode="w", force_zip64=True) as entry:
                        for chunk in data:
                            entry.write(chunk)
                            piece = sink.take()
                            if piece:
                                yield piece
                piece = sink.take()
                if piece:
                    yield piece
        tail = sink.take()
        if tail:
            yield tail

    # Writing -------------------------------------------------------------------

    def _writable_owner(self, principal: Principal, owner_name: str,
                        rel: PurePosixPath) -> _Owner:
        node = f"{owner_name}/{rel.as_posix()}"
        owner = self._owner(owner_name)
        if owner is None:
            raise NotFound(f"no such user: {owner_name!r}" if principal.is_admin
                           else f"no such file or folder: {node!r}")
        if not self._full_access(principal, owner.id):
            with self.database.read() as session:
                row = self._row(session, owner.id, rel)
            if self._may_read(principal, row):
                raise PermissionDenied(f"{node!r} belongs to {owner_name!r}; only its owner "
                                       "may change it")
            raise self._hidden(principal, node)
        return owner

    def check_writable(self, principal: Principal, owner_name: str, path: str) -> None:
        """Refuse unless ``principal`` may change the node at ``path`` (or create it there).

        Raises
        ------
        PermissionDenied
            For a node the principal can read but not change (403).
        NotFound, AuthenticationRequired
            For one they cannot see, exactly as for a missing node.
        """
        self._writable_owner(principal, owner_name, self.parse_path(path, folder_ok=True))

    def usage(self, owner_name: str) -> int:
        """Bytes stored by ``owner_name`` (the sum of the sizes of the files in the tree)."""
        return self.storage.usage(owner_name)

    def put(self, principal: Principal, owner_name: str, path: str, chunks: Iterable[bytes],
            *, content_type: str | None = None,
            content_length: int | None = None) -> tuple[FileMeta, bool]:
        """Store a file from a stream of chunks, atomically, within the owner's quota.

        Parameters
        ----------
        principal : Principal
            Who uploads; the owner or an admin.
        owner_name : str
            User whose tree receives the file; the quota counted is theirs.
        path : str
            Path of the file; missing parent folders are created.
        chunks : iterable of bytes
            The content, read lazily: never more than one chunk in memory.
        content_type : str, optional
            Media type to record; guessed from the name when missing.
        content_length : int, optional
            Announced size; an upload that cannot fit is refused before
            any byte is read.

        Returns
        -------
        tuple of (FileMeta, bool)
            The stored file, and True when it is new (False when replaced).

        Raises
        ------
        UsageError
            For a malformed path (400).
        NotFound, AuthenticationRequired, PermissionDenied
            When the principal may not write there.
        Conflict
            When a folder is at the path or a file is where a parent folder should be.
        PayloadTooLarge
            When the file would take the owner over the quota; the old file,
            if any, is left intact.
        """
        rel = self.parse_path(path, folder_ok=False)
        owner = self._writable_owner(principal, owner_name, rel)
        meta, old = self._write_file(owner, rel, chunks, content_type,
                                     self.quota_bytes - self.usage(owner.name), content_length)
        return meta, old is None

    def _write_file(self, owner: _Owner, rel: PurePosixPath, chunks: Iterable[bytes],
                    content_type: str | None, quota_left: int,
                    content_length: int | None = None) -> tuple[FileMeta, NodeInfo | None]:
        """Write one file and its row: the one way every upload stores a file.

        ``quota_left`` does not count the file being replaced; its size is
        credited back here.  Returns the stored file and the node it replaced.

        Raises
        ------
        UsageError, Conflict, PayloadTooLarge
            As :meth:`put` documents.
        """
        node = f"{owner.name}/{rel.as_posix()}"
        with self._storage_errors():
            try:
                old: NodeInfo | None = self.storage.stat(owner.name, rel)
            except FileNotFoundError:
                old = None
            except NotADirectoryError as exc:
                raise Conflict(f"cannot put {node!r}: {exc}") from None
        if old is not None and old.is_dir:
            raise Conflict(f"{node!r} is a folder; delete it first to put a file there")
        room = quota_left + (old.size if old else 0)
        with self._storage_errors(), self._in_flight.track(owner.id) as in_flight:
            if (content_length is not None and self.max_file_bytes is not None
                    and content_length > self.max_file_bytes):
                raise FileTooLarge(so_far=content_length, max_size=self.max_file_bytes)
            if content_length is not None and content_length > room - in_flight.others():
                raise QuotaExceeded(so_far=content_length, quota_left=room - in_flight.others(),
                                    quota=self.quota_bytes)
            try:
                stored = self.storage.write(owner.name, rel,
                                            in_flight.count(chunks, room, self.quota_bytes),
                                            quota_left=room, quota=self.quota_bytes,
                                            max_size=self.max_file_bytes)
            except IsADirectoryError:
                raise Conflict(f"{node!r} is a folder; delete it first to put a file there") \
                    from None
            except NotADirectoryError as exc:
                raise Conflict(f"cannot put {node!r}: {exc}") from None
            return self._record(owner, rel, stored, content_type), old

    def _record(self, owner: _Owner, rel: PurePosixPath, stored: StoredFile,
                content_type: str | None) -> FileMeta:
        """Make the rows of a file just written (its parent folders', its catalogue) match it."""
        content_type = content_type or _guess_type(rel)
        entry = self.catalogue.describe(owner.name, rel, stored.size, content_type)
        with self.database.write() as session:
            now = utcnow()
            parent = self._ensure_parent_rows(session, owner.id, rel, now)
            row = self._row(session, owner.id, rel)
            if row is None:
                row = self._add_row(session, owner.id, rel.as_posix(), now, parent)
            row.is_dir = False
            row.size = stored.size
            row.md5 = stored.md5
            row.sha256 = stored.sha256
            row.content_type = content_type
            row.modified_at = _naive(stored.modified)
            session.flush()
            self.catalogue.store(session, row, owner.name, entry)
            session.flush()
            return self._meta(owner.name, row)

    def put_many(self, principal: Principal, owner_name: str, folder: str,
                 parts: Iterable[UploadPart]) -> UploadResult:
        """Store the files of a multipart upload under ``folder``, one by one.

        Each file is written atomically (streamed into the storage's
        temporary area, then renamed); the request as a whole is not: a
        part refused, or an error half-way, leaves the files stored before
        it in place.  The quota is counted across the whole request.

        Parameters
        ----------
        principal : Principal
            Who uploads; the owner or an admin.
        owner_name : str
            User whose tree receives the files; the quota counted is theirs.
        folder : str
            Target folder ("" for the owner's folder); created when missing.
        parts : iterable of UploadPart
            The parts, read lazily; each part's file name is a path relative
            to ``folder`` (``"night1/a.fits"``) and is checked with
            :func:`~uws_service.storage.clean_path`.

        Returns
        -------
        UploadResult
            The files stored and the parts refused, each with its reason: a
            bad path (400), a folder or file in the way (409), the quota
            (413), a part without a file name (400).

        Raises
        ------
        UsageError
            For a malformed folder path (400).
        NotFound, AuthenticationRequired, PermissionDenied
            When the principal may not write there.
        Conflict
            When ``folder`` is a file.
        PayloadTooLarge
            When the request has more than ``upload_max_parts`` parts; the
            files of the parts before the limit stay stored.
        """
        folder_rel = self.parse_path(folder, folder_ok=True)
        owner = self._writable_owner(principal, owner_name, folder_rel)
        if folder_rel.parts:
            with self._storage_errors():
                try:
                    info = self.storage.stat(owner.name, folder_rel)
                except FileNotFoundError:
                    info = None
            if info is not None and not info.is_dir:
                raise Conflict(f"{owner.name}/{folder_rel.as_posix()!r} is a file, not a folder")
        quota_left = self.quota_bytes - self.usage(owner.name)
        stored: list[FileMeta] = []
        refused: list[UploadRefusal] = []
        for count, part in enumerate(parts, start=1):
            if count > self.upload_max_parts:
                raise PayloadTooLarge(
                    f"too many parts: one upload may carry at most {self.upload_max_parts} "
                    f"(VOCLOUD_UPLOAD_MAX_PARTS); {len(stored)} file(s) were stored, send the "
                    "rest in another request")
            outcome = self._put_part(owner, folder_rel, part, quota_left)
            if isinstance(outcome, UploadRefusal):
                refused.append(outcome)
                continue
            meta, freed = outcome
            quota_left += freed - meta.size
            stored.append(meta)
        return UploadResult(stored=stored, refused=refused)

    def _put_part(self, owner: _Owner, folder: PurePosixPath, part: UploadPart,
                  quota_left: int) -> tuple[FileMeta, int] | UploadRefusal:
        """Store one part; the stored file and the bytes of the file it replaced, or why not."""
        if not part.filename:
            return UploadRefusal(part.label, "not a file: the part has no file name", 400)
        # What clients send when they do not know: guess from the name instead.
        content_type = None if part.content_type == "application/octet-stream" \
            else part.content_type
        try:
            meta, old = self._write_file(owner, folder / clean_path(part.filename),
                                         part.chunks, content_type, quota_left)
        except PathError as exc:
            return UploadRefusal(part.label, str(exc), 400)
        except ServiceError as exc:
            return UploadRefusal(part.label, exc.message, exc.status)
        return meta, (old.size if old else 0)

    def delete(self, principal: Principal, owner_name: str, path: str, *,
               recursive: bool = False) -> None:
        """Delete a file, or a folder (its content too when ``recursive``), and their rows.

        Raises
        ------
        UsageError
            For a malformed path or the owner's own folder.
        NotFound, AuthenticationRequired, PermissionDenied
            When it does not exist or the principal may not delete it.
        Conflict
            For a folder with content without ``recursive``.
        """
        rel = self.parse_path(path, folder_ok=True)
        if not rel.parts:
            raise UsageError(f"the folder of {owner_name!r} itself cannot be deleted")
        owner = self._writable_owner(principal, owner_name, rel)
        node = f"{owner.name}/{rel.as_posix()}"
        try:
            self.storage.delete(owner.name, rel, recursive=recursive)
        except FileNotFoundError:
            raise NotFound(f"no such file or folder: {node!r}") from None
        except FolderNotEmpty:
            raise Conflict(f"folder {node!r} is not empty; add ?recursive=true to delete it "
                           "with its content") from None
        except PathError as exc:
            raise UsageError(str(exc)) from None
        with self.database.write() as session:
            session.execute(delete(FileNode).where(self._subtree(owner.id, rel)))

    def set_visibility(self, owner_name: str, path: str, visibility: Visibility) -> None:
        """Make a node public or private (no access check: callers check ownership).

        Raises
        ------
        NotFound
            When the owner or the node's row does not exist.
        """
        rel = self.parse_path(path, folder_ok=True)
        owner = self._owner(owner_name)
        if owner is None:
            raise NotFound(f"no such user: {owner_name!r}")
        with self.database.write() as session:
            row = self._row(session, owner.id, rel)
            if row is None:
                raise NotFound(f"no such file or folder: {owner_name}/{rel.as_posix()!r}")
            row.visibility = Visibility(visibility).value
            self.catalogue.set_visibility(session, [row.id], row.visibility)

    # Management (``/api/files``) -------------------------------------------------

    @staticmethod
    def _node_path(path: str, what: str = "path") -> PurePosixPath:
        """A node path from a management request: a trailing ``/`` is dropped, never empty."""
        rel = FileService.parse_path(path, folder_ok=True)
        if not rel.parts:
            raise UsageError(f"{what!r}: the owner's own folder cannot be used here")
        return rel

    def _managed_owner(self, principal: Principal, owner_name: str | None,
                       rel: PurePosixPath | None = None) -> _Owner:
        """The tree a management request works on: the principal's own, or any for an admin.

        Another user's tree is answered like a missing node (404), or 403
        for a public node, as for PUT and DELETE.
        """
        name = principal.name if owner_name is None else owner_name
        if rel is not None:
            return self._writable_owner(principal, name, rel)
        owner = self._owner(name)
        if owner is None or not self._full_access(principal, owner.id):
            raise NotFound(f"no such user: {name!r}" if principal.is_admin
                           else f"no such folder: {name!r}")
        return owner

    @staticmethod
    @contextmanager
    def _storage_errors() -> Iterator[None]:
        """Translate the errors of :class:`FileStorage` into service errors (HTTP statuses)."""
        try:
            yield
        except (QuotaExceeded, FileTooLarge) as exc:
            raise PayloadTooLarge(str(exc)) from None
        except PathError as exc:
            raise UsageError(str(exc)) from None
        except FileNotFoundError as exc:
            raise NotFound(str(exc)) from None
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
            raise Conflict(str(exc)) from None

    @staticmethod
    def _subtree(owner_id: int, rel: PurePosixPath) -> Any:
        """WHERE clause of the rows of ``rel`` and of everything under it.

        The prefix is compared with ``substr``, not ``LIKE``: SQLite's LIKE
        ignores case, and ``Data/`` is not under ``data/``.
        """
        prefix = rel.as_posix() + "/"
        return (FileNode.owner_id == owner_id) & or_(
            FileNode.path == rel.as_posix(),
            func.substr(FileNode.path, 1, len(prefix)) == prefix)

    def _walk(self, owner: str, top: NodeInfo) -> list[NodeInfo]:
        """``top`` and, for a folder, every file and folder under it (links left out)."""
        nodes = [top]
        pending = [top] if top.is_dir else []
        while pending:
            folder = pending.pop()
            for info in self.storage.listdir(owner, folder.path):
                nodes.append(info)
                if info.is_dir:
                    pending.append(info)
        return nodes

    def _check_target(self, owner: str, src: PurePosixPath, dst: PurePosixPath,
                      verb: str) -> NodeInfo:
        """The source node, once move/copy conflicts that storage reports as path errors are out."""
        with self._storage_errors():
            info = self.storage.stat(owner, src)
        source, target = f"{owner}/{src.as_posix()}", f"{owner}/{dst.as_posix()}"
        if src == dst:
            raise Conflict(f"cannot {verb} {source!r} onto itself")
        if info.is_dir and dst.parts[:len(src.parts)] == src.parts:
            raise Conflict(f"cannot {verb} folder {source!r} into itself ({target!r})")
        if src.parts[:len(dst.parts)] == dst.parts:
            raise Conflict(f"cannot replace {target!r}, which holds {source!r}")
        return info

    def _node_meta(self, owner: _Owner, rel: PurePosixPath) -> FileMeta:
        """The node at ``rel`` as stored now, its row made or mended when missing or stale."""
        with self._storage_errors():
            info = self.storage.stat(owner.name, rel)
        if not info.is_dir:
            with self.database.read() as session:
                row = self._row(session, owner.id, rel)
            if row is None or row.is_dir or row.md5 is None or row.size != info.size:
                return self._sync_file_row(owner, rel, info,
                                           row.content_type if row is not None else None)
            return self._meta(owner.name, row)
        with self.database.write() as session:
            row = self._row(session, owner.id, rel)
            now = utcnow()
            if row is None:
                parent = self._ensure_parent_rows(session, owner.id, rel, now)
                row = self._add_row(session, owner.id, rel.as_posix(), now, parent)
            if not row.is_dir:
                row.is_dir, row.size, row.md5, row.sha256 = True, 0, None, None
                row.content_type = None
                row.modified_at = _naive(info.modified)
            session.flush()
            return self._meta(owner.name, row)

    def mkdir(self, principal: Principal, owner_name: str | None, path: str) -> FileMeta:
        """Create a folder and its missing parents, with their rows.

        Parameters
        ----------
        principal : Principal
            Who asks; the owner or an admin.
        owner_name : str or None
            User whose tree it is; None for the principal's own.
        path : str
            Path of the new folder.

        Returns
        -------
        FileMeta
            The new folder.

        Raises
        ------
        UsageError
            For a malformed path (400).
        NotFound, PermissionDenied
            When the principal may not write in that tree.
        Conflict
            When the folder exists, or a file is at the path or at a parent.
        """
        rel = self._node_path(path)
        owner = self._managed_owner(principal, owner_name, rel)
        with self._storage_errors():
            self.storage.mkdir(owner.name, rel, exist_ok=False)
        with self.database.write() as session:
            now = utcnow()
            parent = self._ensure_parent_rows(session, owner.id, rel, now)
            row = self._row(session, owner.id, rel)
            if row is None:
                row = self._add_row(session, owner.id, rel.as_posix(), now, parent)
            row.is_dir, row.size, row.md5, row.sha256 = True, 0, None, None
            row.content_type = None
            row.modified_at = now
            session.flush()
            return self._meta(owner.name, row)

    def move(self, principal: Principal, owner_name: str | None, src: str, dst: str, *,
             overwrite: bool = False) -> FileMeta:
        """Move (rename) a file or folder; its rows follow and keep their identity.

        The rename and the update of the rows of the node and of everything
        under it happen while one write transaction is open; when the rows
        cannot be written the bytes are moved back (a node replaced by
        ``overwrite`` stays gone).

        Parameters
        ----------
        principal : Principal
            Who asks; the owner or an admin.
        owner_name : str or None
            User whose tree it is; None for the principal's own.
        src, dst : str
            Paths of the node and of its new place; missing parents of
            ``dst`` are created.
        overwrite : bool
            Replace an existing node of the same kind at ``dst`` (a folder
            as a whole, not merged); its rows are deleted.

        Returns
        -------
        FileMeta
            The node at ``dst``.

        Raises
        ------
        UsageError
            For a malformed path (400).
        NotFound, PermissionDenied
            For a missing source, or a tree the principal may not write in.
        Conflict
            When ``dst`` exists (without ``overwrite``) or is of the other
            kind, for a folder moved into itself, or onto itself.
        """
        src_rel, dst_rel = self._node_path(src, "from"), self._node_path(dst, "to")
        owner = self._managed_owner(principal, owner_name, src_rel)
        self._check_target(owner.name, src_rel, dst_rel, "move")
        with self.database.write() as session:
            with self._storage_errors():
                self.storage.move(owner.name, src_rel, dst_rel, overwrite=overwrite)
            try:
                session.execute(delete(FileNode).where(self._subtree(owner.id, dst_rel)))
                rows = session.scalars(select(FileNode).where(
                    self._subtree(owner.id, src_rel))).all()
                old, new = src_rel.as_posix(), dst_rel.as_posix()
                for row in rows:
                    row.path = new + row.path[len(old):]
                self.catalogue.moved(session, owner.name, rows)
                self._ensure_parent_rows(session, owner.id, dst_rel, utcnow())
                session.commit()
            except BaseException:
                session.rollback()
                try:
                    self.storage.move(owner.name, dst_rel, src_rel)
                except Exception:
                    _log.exception("could not move %s/%s back to %s",
                                                 owner.name, dst, src)
                raise
        return self._node_meta(owner, dst_rel)

    def copy(self, principal: Principal, owner_name: str | None, src: str, dst: str, *,
             overwrite: bool = False) -> FileMeta:
        """Copy a file or folder within the owner's quota; the copies get new rows.

        Rows of the copies are new (a new identity), private, and carry
        the checksums and media types of their sources.

        Parameters
        ----------
        principal : Principal
            Who asks; the owner or an admin.
        owner_name : str or None
            User whose tree it is; None for the principal's own.
        src, dst : str
            Paths of the node and of its copy; missing parents of ``dst``
            are created.
        overwrite : bool
            Replace an existing node of the same kind at ``dst`` (a folder
            as a whole); its rows are deleted.  The bytes of a replaced file
            are credited to the quota, those of a replaced folder are not.

        Returns
        -------
        FileMeta
            The new node at ``dst``.

        Raises
        ------
        UsageError
            For a malformed path, or a folder holding a symbolic link (400).
        NotFound, PermissionDenied
            For a missing source, or a tree the principal may not write in.
        Conflict
            As for :meth:`move`.
        PayloadTooLarge
            When the copy would take the owner over the quota.
        """
        src_rel, dst_rel = self._node_path(src, "from"), self._node_path(dst, "to")
        owner = self._managed_owner(principal, owner_name, src_rel)
        self._check_target(owner.name, src_rel, dst_rel, "copy")
        quota_left = self.quota_bytes - self.usage(owner.name)
        if overwrite:
            try:
                replaced = self.storage.stat(owner.name, dst_rel)
            except (FileNotFoundError, NotADirectoryError, PathError):
                replaced = None
            if replaced is not None and not replaced.is_dir:
                quota_left += replaced.size
        with self._storage_errors():
            top = self.storage.copy(owner.name, src_rel, dst_rel, overwrite=overwrite,
                                    quota_left=quota_left, quota=self.quota_bytes)
        try:
            nodes = self._walk(owner.name, top)
            old, new = src_rel.as_posix(), dst_rel.as_posix()
            with self.database.write() as session:
                session.execute(delete(FileNode).where(self._subtree(owner.id, dst_rel)))
                sources = {row.path: row for row in session.scalars(select(FileNode).where(
                    self._subtree(owner.id, src_rel)))}
                now = utcnow()
                catalogued: list[tuple[int, FileNode]] = []
                for info in nodes:
                    path = info.path.as_posix()
                    source = sources.get(old + path[len(new):])
                    same = (source is not None and not info.is_dir and not source.is_dir
                            and source.size == info.size)
                    row = FileNode(
                        owner_id=owner.id, path=path, is_dir=info.is_dir, size=info.size,
                        md5=source.md5 if same and source else None,
                        sha256=source.sha256 if same and source else None,
                        content_type=source.content_type if same and source else None,
                        spectra=source.spectra if same and source else None,
                        catalogue_error=source.catalogue_error if same and source else None,
                        created_at=now, modified_at=_naive(info.modified),
                        visibility=Visibility.PRIVATE)
                    session.add(row)
                    if same and source is not None and source.spectra:
                        catalogued.append((source.id, row))
                session.flush()
                self.catalogue.copied(session, owner.name, catalogued)
                self._ensure_parent_rows(session, owner.id, dst_rel, now)
        except BaseException:
            try:
                self.storage.delete(owner.name, dst_rel, recursive=True)
            except Exception:
                _log.exception("could not remove the copy %s/%s", owner.name,
                                             dst)
            raise
        return self._node_meta(owner, dst_rel)

    def change_visibility(self, principal: Principal, owner_name: str | None, path: str,
                          visibility: Visibility | str, *, recursive: bool = False) -> FileMeta:
        """Make a node (and with ``recursive`` everything under a folder) public or private.

        Making a node private also ends its sharing with named users;
        making it public leaves that list as it is.  Nodes without a row
        (ingested, or put there by hand) get one.

        Parameters
        ----------
        principal : Principal
            Who asks; the owner or an admin.
        owner_name : str or None
            User whose tree it is; None for the principal's own.
        path : str
            Path of the node.
        visibility : Visibility or str
            ``"public"`` or ``"private"``; sharing with named users is
            :meth:`share`.
        recursive : bool
            For a folder, apply to everything under it as well.

        Returns
        -------
        FileMeta
            The node.

        Raises
        ------
        UsageError
            For a malformed path or an unknown visibility (400).
        NotFound, PermissionDenied
            For a missing node, or a tree the principal may not write in.
        """
        choices = (Visibility.PUBLIC, Visibility.PRIVATE)
        try:
            wanted = Visibility(visibility)
        except ValueError:
            wanted = None
        if wanted not in choices:
            raise UsageError(f"visibility must be 'public' or 'private', not {visibility!r}; "
                             "share with named users through /api/files/share")
        if wanted is Visibility.PUBLIC:
            return self._set_access(principal, owner_name, path, recursive,
                                    lambda row: Visibility.PUBLIC, None)
        return self._set_access(principal, owner_name, path, recursive,
                                lambda row: Visibility.PRIVATE, [])

    def set_public(self, principal: Principal, owner_name: str | None, path: str,
                   public: bool, *, recursive: bool = False) -> FileMeta:
        """Make a node (and with ``recursive`` its subtree) public, or no longer public.

        Unlike :meth:`change_visibility` to private, ending public access
        keeps each node's named readers (VOSpace ``core#publicread`` and
        ``core#groupread`` are independent properties).

        Raises
        ------
        UsageError, NotFound, PermissionDenied
            As :meth:`change_visibility`.
        """
        def visibility_of(row: FileNode) -> Visibility:
            if public:
                return Visibility.PUBLIC
            return Visibility.SHARED if row.readers else Visibility.PRIVATE

        return self._set_access(principal, owner_name, path, recursive, visibility_of, None)

    def share(self, principal: Principal, owner_name: str | None, path: str,
              users: Sequence[str], *, recursive: bool = True) -> FileMeta:
        """Share a node (and by default everything under a folder) with named users.

        The list replaces the one the node had; an empty list ends the
        sharing.  Shared nodes are readable (GET, listing, zip, VOSpace) by
        those users and stay writable only by the owner.  A public node
        stays public.  Files added later to a shared folder inherit its
        readers.

        Parameters
        ----------
        principal : Principal
            Who asks; the owner or an admin.
        owner_name : str or None
            User whose tree it is; None for the principal's own.
        path : str
            Path of the node.
        users : sequence of str
            Names of the users who may read it (the owner is left out).
        recursive : bool
            For a folder, apply to everything under it as well.

        Raises
        ------
        UsageError
            For a malformed path or an unknown user name (400).
        NotFound, PermissionDenied
            For a missing node, or a tree the principal may not write in.
        """
        names = sorted({name.strip() for name in users if name.strip()})
        with self.database.read() as session:
            found = {name: uid for name, uid in session.execute(
                select(User.name, User.id).where(User.name.in_(names)))} if names else {}
        unknown = [name for name in names if name not in found]
        if unknown:
            raise UsageError(f"no such user: {', '.join(repr(n) for n in unknown)}")
        owner = self._owner(principal.name if owner_name is None else owner_name)
        readers = [uid for uid in found.values() if owner is None or uid != owner.id]

        def visibility_of(row: FileNode) -> Visibility:
            if row.visibility == Visibility.PUBLIC:
                return Visibility.PUBLIC
            return Visibility.SHARED if readers else Visibility.PRIVATE

        return self._set_access(principal, owner_name, path, recursive, visibility_of,
                                readers)

    def _set_access(self, principal: Principal, owner_name: str | None, path: str,
                    recursive: bool, visibility_of: Callable[[FileNode], Visibility],
                    readers: list[int] | None) -> FileMeta:
        """Set who may read a node (and its subtree): the rows, the shares, the catalogue.

        ``readers`` None keeps the shares as they are; a list replaces them.
        """
        rel = self._node_path(path)
        owner = self._managed_owner(principal, owner_name, rel)
        with self._storage_errors():
            top = self.storage.stat(owner.name, rel)
            nodes = self._walk(owner.name, top) if recursive else [top]
        with self.database.write() as session:
            where = (self._subtree(owner.id, rel) if recursive
                     else (FileNode.owner_id == owner.id) & (FileNode.path == rel.as_posix()))
            rows = {row.path: row for row in session.scalars(select(FileNode).where(where))}
            now = utcnow()
            changed: list[FileNode] = []
            for info in nodes:
                row = rows.get(info.path.as_posix())
                if row is None:
                    # md5 None: the checksums are computed on first read.
                    row = FileNode(owner_id=owner.id, path=info.path.as_posix(),
                                   is_dir=info.is_dir, size=info.size, created_at=now,
                                   modified_at=_naive(info.modified),
                                   visibility=Visibility.PRIVATE)
                    session.add(row)
                changed.append(row)
            session.flush()
            ids = [row.id for row in changed]
            if readers is not None:
                for start in range(0, len(ids), _IN_BATCH):
                    session.execute(delete(FileShare).where(
                        FileShare.node_id.in_(ids[start:start + _IN_BATCH])))
                session.add_all(FileShare(node_id=node_id, user_id=user_id)
                                for node_id in ids for user_id in readers)
            by_visibility: dict[str, list[int]] = {}
            for row in changed:
                row.visibility = visibility_of(row).value
                by_visibility.setdefault(row.visibility, []).append(row.id)
            for visibility, node_ids in by_visibility.items():
                self.catalogue.set_visibility(session, node_ids, visibility)
            self._ensure_parent_rows(session, owner.id, rel, now)
        return self._node_meta(owner, rel)

    def quota(self, principal: Principal, owner_name: str | None = None) -> Quota:
        """The quota of a user, the bytes they use and the bytes left.

        Raises
        ------
        NotFound
            For another user's tree, unless the principal is an admin.
        """
        owner = self._managed_owner(principal, owner_name)
        used = self.usage(owner.name)
        return Quota(owner=owner.name, quota=self.quota_bytes, used=used,
                     free=max(self.quota_bytes - used, 0))
