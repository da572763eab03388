"""The users' files behind any fsspec URL: ``s3://bucket/prefix``, ``gs://...``, ``memory://...``.

:class:`FsspecStorage` implements :class:`~uws_service.storage.FileStorage`
for the scaled-out mode, where web servers and workers on many hosts share
one object store.  It keeps the rules of the local store that do not depend
on a POSIX file system: every path goes through
:func:`~uws_service.storage.clean_path` and the owner check, writes stream
into a temporary key under ``{root}/.vocloud-tmp/`` while the bytes are
counted against the quota and the size limit and hashed (MD5, SHA-256),
and only a complete upload replaces the target.  The same exceptions as
:class:`~uws_service.storage.LocalStorage` are raised, so the file
service's error mapping does not depend on where the files are.

What differs from a local folder:

* Atomicity.  The temporary key is written with the store's own upload
  (a multipart upload on S3, which only becomes an object when it
  completes) and then copied onto the target key and removed.  Replacing
  one object by a server-side copy is atomic on object stores: readers see
  the old object or the new one, never a mixture, and a failed or
  interrupted upload leaves the old object untouched (the unfinished
  upload is discarded and the temporary key removed).  Operations on
  folders are not atomic, as object stores have no rename: a folder is
  moved, copied or deleted object by object, so a crash in the middle can
  leave part of it at either place (a failed copy removes what it copied).
* Symbolic links do not exist in object stores; an fsspec file system
  that reports one (a local folder reached through fsspec) has it refused
  like the local store does, but only :class:`LocalStorage` walks every
  path component against links, so local folders should be given as a path
  or a ``file://`` URL.
* Folders.  Object stores only know keys; a "folder" is a common prefix.
  Every folder vocloud creates (``mkdir``, and the parents of a written,
  moved or copied node) gets an empty marker object
  ``{folder}/.vocloud-folder`` so that empty folders exist, are listed and
  survive the deletion of their last file, on S3 as on the in-memory and
  local file systems.  A prefix without a marker (written by another tool)
  is still a folder while it holds keys.  Marker names start with
  ``.vocloud``, which :func:`~uws_service.storage.clean_path` reserves, so
  users can never name one and listings leave them out.  A folder's
  modification time is the one the file system reports, else the epoch.
* No high-level fsspec call that expands glob patterns (``rm``, ``copy``,
  ``mv``, ``expand_path``) is used, since user names may contain ``*``,
  ``?`` or ``[``: only single-key primitives (``info``, ``ls``, ``find``,
  ``open``, ``cp_file``, ``rm_file``, ``pipe_file``, ``makedirs``).
* Listings are read fresh: the file system's listing cache is dropped for a
  path before it is looked at, since other processes write to the store.

The ``memory://`` file system is global to one process: it serves tests,
but not a service whose workers are separate processes.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile

from uws_service.storage import (
    CHUNK_SIZE,
    OWNER_FOLDER,
    RESERVED_PREFIX,
    TMP_DIR_NAME,
    FileRange,
    FileStorage,
    FolderNotEmpty,
    NodeInfo,
    PathError,
    QuotaExceeded,
    RangeError,
    StoredFile,
    _as_rel,
    _check_move_paths,
    _check_owner,
    _check_replace,
    _copy_counted,
    _node,
)

__all__ = ["FOLDER_MARKER", "READ_BLOCK_SIZE", "FsspecStorage"]

#: Empty object that makes a folder exist in an object store.
FOLDER_MARKER = ".vocloud-folder"
#: Block size asked for when reading (a range request of this size at most
#: ahead of what is served, instead of the file system's default, 50 MB on S3).
READ_BLOCK_SIZE = 4 * CHUNK_SIZE

_EPOCH = datetime.fromtimestamp(0, tz=UTC)
#: Keys of fsspec ``info`` dictionaries that hold a modification time, by preference.
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "modified", "updated", "created",
              "time")

Info = dict[str, Any]


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _as_datetime(value: Any) -> datetime | None:
    """A time from an fsspec ``info`` value: a datetime, a POSIX timestamp or ISO text."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def _info_time(info: Info) -> datetime | None:
    """The modification time an fsspec ``info`` dictionary carries, if any."""
    for key in _TIME_KEYS:
        value = info.get(key)
        if value is not None:
            found = _as_datetime(value)
            if found is not None:
                return found
    return None


def _is_dir(info: Info) -> bool:
    return info.get("type") == "directory"


def _is_file(info: Info) -> bool:
    return info.get("type") == "file"


def _abandon(handle: Any) -> None:
    """Throw away a file being written, so that nothing of it is ever committed."""
    if isinstance(handle, AbstractBufferedFile):
        if not handle.closed:
            try:
                handle.discard()  # aborts a multipart upload on S3
            finally:
                handle.closed = True  # never complete the upload on close or collection
        return
    try:
        handle.close()
    except Exception:  # the write has failed already; its own error is the one to report
        pass


class FsspecStorage(FileStorage):
    """The users' files under one root of an fsspec file system.

    Parameters
    ----------
    url : str
        Root of the store, e.g. ``s3://bucket/vocloud`` or
        ``memory://vocloud-test``; the file system's package must be
        installed (s3fs for ``s3://``).  It must name a folder or bucket,
        not the file system's root.
    scratch_dir : Path, optional
        Local folder for temporary copies (:meth:`local_copy`); by default
        the system's temporary folder.
    storage_options : dict, optional
        Passed to the file system (credentials, endpoint...); by default
        fsspec's own configuration and the environment apply.

    Attributes
    ----------
    fs : fsspec.AbstractFileSystem
        The file system.
    root : str
        The root in the file system's own path form (``bucket/vocloud``).
    tmp_root : str
        Where writes are staged: ``{root}/.vocloud-tmp``.

    Notes
    -----
    See the module documentation for what differs from a local folder
    (atomicity, folders, symbolic links).
    """

    def __init__(self, url: str, *, scratch_dir: Path | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        root = str(root).rstrip("/")
        if not root.strip("/"):
            raise ValueError(f"storage URL {url!r} names the root of its file system; "
                             "give a folder or bucket, e.g. s3://bucket/vocloud")
        self.fs = fs
        self.root = root
        self.tmp_root = f"{root}/{TMP_DIR_NAME}"
        self.location = url
        self.scratch_dir = scratch_dir if scratch_dir is not None else \
            Path(tempfile.gettempdir())
        self._tmp_ready = False

    # Keys ----------------------------------------------------------------------

    def _key(self, owner: str, rel: PurePosixPath) -> str:
        """Key of ``{owner}/{rel}``; both are checked again."""
        owner = _check_owner(owner)
        return "/".join((self.root, owner, *_as_rel(rel).parts))

    def _info(self, key: str, node: str) -> Info | None:
        """Fresh ``info`` of a key; None when it does not exist.

        Raises
        ------
        PathError
            When the file system reports a symbolic link.
        """
        self.fs.invalidate_cache(key)
        try:
            info: Info = self.fs.info(key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if info.get("islink"):
            raise PathError(f"path {node!r} is a symbolic link, which vocloud does not follow")
        return info

    def _ls(self, key: str) -> list[Info]:
        """Entries directly under a folder key (an empty list when there is none)."""
        self.fs.invalidate_cache(key)
        try:
            entries: list[Info] = self.fs.ls(key, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [entry for entry in entries if entry["name"].rstrip("/") != key]

    def _find(self, key: str, withdirs: bool = False) -> dict[str, Info]:
        """Every key under a folder key, by name (``withdirs`` adds the folders)."""
        self.fs.invalidate_cache(key)
        try:
            found: dict[str, Info] = self.fs.find(key, withdirs=withdirs, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        return {name.rstrip("/"): info for name, info in found.items()
                if name.rstrip("/") != key}

    def _modified(self, key: str, info: Info) -> datetime:
        found = _info_time(info)
        if found is not None:
            return found
        if _is_file(info):
            try:
                return _as_datetime(self.fs.modified(key)) or _EPOCH
            except Exception:  # not every file system knows modification times
                return _EPOCH
        return _EPOCH

    def _node_info(self, rel: PurePosixPath, key: str, info: Info) -> NodeInfo:
        is_dir = _is_dir(info)
        return NodeInfo(rel, is_dir, 0 if is_dir else int(info.get("size") or 0),
                        self._modified(key, info))

    def _remove_quietly(self, key: str) -> None:
        try:
            self.fs.rm_file(key)
        except (FileNotFoundError, OSError):
            pass

    def _mark_folder(self, key: str) -> None:
        """Make the folder ``key`` exist: a real folder where there are any, and a marker."""
        self.fs.makedirs(key, exist_ok=True)
        self.fs.pipe_file(f"{key}/{FOLDER_MARKER}", b"")

    def _ensure_dirs(self, owner: str, rel: PurePosixPath) -> str:
        """Create the folder ``rel`` of ``owner`` and its parents, refusing files in the way."""
        current = self.root
        walked: list[str] = []
        for part in (owner, *rel.parts):
            current = f"{current}/{part}"
            walked.append(part)
            info = self._info(current, "/".join(walked))
            if info is None:
                self._mark_folder(current)
            elif not _is_dir(info):
                raise NotADirectoryError(f"{'/'.join(walked)!r} is a file, not a folder")
        return current

    def _check_parents_not_files(self, owner: str, rel: PurePosixPath) -> None:
        current = f"{self.root}/{owner}"
        walked = [owner]
        for part in rel.parts[:-1]:
            current = f"{current}/{part}"
            walked.append(part)
            info = self._info(current, "/".join(walked))
            if info is None:
                return
            if not _is_dir(info):
                raise NotADirectoryError(f"{'/'.join(walked)!r} is a file, not a folder")

    def _new_tmp(self) -> str:
        # Object stores need no folder (S3 would spend a request on each check); a
        # file system with real folders gets it checked every time.
        if not self._tmp_ready or isinstance(self.fs, LocalFileSystem):
            self.fs.makedirs(self.tmp_root, exist_ok=True)
            self._tmp_ready = True
        return f"{self.tmp_root}/{uuid.uuid4().hex}"

    def _replace_file(self, source: str, target: str) -> None:
        """Put the file ``source`` at ``target`` (replacing it atomically) and remove ``source``."""
        if isinstance(self.fs, LocalFileSystem):
            os.replace(self.fs._strip_protocol(source), self.fs._strip_protocol(target))
            return
        self.fs.cp_file(source, target)  # one server-side copy: atomic for the target
        self._remove_quietly(source)

    def _copy_file(self, source: str, target: str) -> None:
        """Copy one file onto ``target``, replacing it atomically."""
        if isinstance(self.fs, LocalFileSystem):
            tmp = self._new_tmp()
            try:
                self.fs.cp_file(source, tmp)
                self._replace_file(tmp, target)
            except BaseException:
                self._remove_quietly(tmp)
                raise
            return
        self.fs.cp_file(source, target)

    def _remove_tree(self, key: str) -> None:
        """Delete a folder key and everything under it, object by object."""
        found = self._find(key, withdirs=True)
        for name, info in found.items():
            if not _is_dir(info):
                self._remove_quietly(name)
        for name in sorted((n for n, i in found.items() if _is_dir(i)), key=len, reverse=True):
            self._rmdir_quietly(name)
        self._rmdir_quietly(key)

    def _rmdir_quietly(self, key: str) -> None:
        """Remove a now empty folder where the file system has real ones."""
        try:
            self.fs.rmdir(key)
        except (OSError, NotImplementedError, ValueError):
            pass

    def _copy_tree(self, source: str, target: str) -> None:
        """Copy the folder ``source`` to ``target`` (which does not exist), markers included."""
        found = self._find(source, withdirs=True)
        self._mark_folder(target)
        for name in sorted(found):  # a folder sorts before what it holds
            info = found[name]
            relative = name[len(source) + 1:]
            if _is_dir(info):
                self.fs.makedirs(f"{target}/{relative}", exist_ok=True)
                if f"{name}/{FOLDER_MARKER}" not in found:
                    self.fs.pipe_file(f"{target}/{relative}/{FOLDER_MARKER}", b"")
            else:
                self.fs.cp_file(name, f"{target}/{relative}")

    # Writing -------------------------------------------------------------------

    def write(self, owner: str, rel: str | PurePosixPath, chunks: Iterable[bytes], *,
              quota_left: int | None = None, max_size: int | None = None,
              quota: int | None = None) -> StoredFile:
        """Store a stream of bytes as ``{owner}/{rel}``; see :meth:`FileStorage.write`.

        The bytes are uploaded to ``{root}/.vocloud-tmp/{uuid}`` (counted
        and hashed as they arrive); the complete temporary object is then
        copied onto the target key in one step and removed.  A failure at
        any point discards the unfinished upload and the temporary key and
        leaves the old object as it was.
        """
        rel = _as_rel(rel)
        if not rel.parts:
            raise IsADirectoryError(f"{owner!r} is your folder, not a file")
        target = self._key(owner, rel)
        node = _node(owner, rel)
        # Fail before receiving anything when the target cannot be written.
        self._check_parents_not_files(owner, rel)
        info = self._info(target, node)
        if info is not None and _is_dir(info):
            raise IsADirectoryError(f"{node!r} is a folder")

        tmp = self._new_tmp()
        out = self.fs.open(tmp, "wb")
        try:
            size, md5, sha256 = _copy_counted(chunks, out, max_size=max_size,
                                              quota_left=quota_left, quota=quota)
            out.close()  # completes the upload of the temporary key
            # Check again: the tree may have changed while the bytes arrived.
            self._ensure_dirs(owner, rel.parent)
            info = self._info(target, node)
            if info is not None and _is_dir(info):
                raise IsADirectoryError(f"{node!r} is a folder")
            self._replace_file(tmp, target)
        except BaseException:
            _abandon(out)
            self._remove_quietly(tmp)
            raise
        info = self._info(target, node) or {}
        return StoredFile(path=rel, size=size, md5=md5, sha256=sha256,
                          modified=self._modified(target, info))

    # Reading -------------------------------------------------------------------

    def open_range(self, owner: str, rel: str | PurePosixPath, start: int = 0,
                   end: int | None = None) -> FileRange:
        """Open bytes ``[start, end]`` of a file; see :meth:`FileStorage.open_range`.

        The file is opened with the file system's ``open``, seeked to
        ``start`` and read in chunks of at most 1 MiB, with ranged requests
        of at most :data:`READ_BLOCK_SIZE` bytes: it is never read whole.
        """
        rel = _as_rel(rel)
        key = self._key(owner, rel)
        node = _node(owner, rel)
        info = self._info(key, node)
        if info is None:
            raise FileNotFoundError(f"no such file: {node!r}")
        if _is_dir(info):
            raise IsADirectoryError(f"{node!r} is a folder")
        if not _is_file(info):
            raise PathError(f"{node!r} is not a regular file")
        size = int(info.get("size") or 0)
        modified = self._modified(key, info)
        if size == 0 and start == 0 and end is None:
            return FileRange(io.BytesIO(b""), 0, 0, -1, modified)
        last = size - 1 if end is None else end
        if not 0 <= start <= last < size:
            raise RangeError(f"bytes {start}-{last} not satisfiable: {node!r} has {size} bytes",
                             size)
        handle = self.fs.open(key, "rb", block_size=READ_BLOCK_SIZE)
        return FileRange(handle, size, start, last, modified)

    @contextmanager
    def local_copy(self, owner: str, rel: str | PurePosixPath) -> Iterator[Path]:
        """A temporary download of the file under :attr:`scratch_dir`, removed on exit.

        See :meth:`FileStorage.local_copy`.  The copy keeps the file's name
        (readers report it) in a folder of its own.
        """
        rel = _as_rel(rel)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        with self.open_range(owner, rel) as data, \
                tempfile.TemporaryDirectory(dir=self.scratch_dir, prefix="copy-") as folder:
            path = Path(folder) / (rel.name or "file")
            with open(path, "wb") as out:
                for chunk in data:
                    out.write(chunk)
            yield path

    # Nodes ---------------------------------------------------------------------

    def stat(self, owner: str, rel: str | PurePosixPath) -> NodeInfo:
        """The file or folder ``{owner}/{rel}``; see :meth:`FileStorage.stat`."""
        rel = _as_rel(rel)
        key = self._key(owner, rel)
        info = self._info(key, _node(owner, rel))
        if info is None:
            if not rel.parts:
                return NodeInfo(rel, True, 0, _EPOCH)
            raise FileNotFoundError(f"no such file or folder: {_node(owner, rel)!r}")
        if not (_is_dir(info) or _is_file(info)):
            raise PathError(f"{_node(owner, rel)!r} is neither a file nor a folder")
        return self._node_info(rel, key, info)

    def listdir(self, owner: str, rel: str | PurePosixPath = OWNER_FOLDER) -> list[NodeInfo]:
        """Files and folders directly in a folder; see :meth:`FileStorage.listdir`.

        Folder markers, vocloud's other reserved names and anything the
        file system reports as a link are left out.
        """
        rel = _as_rel(rel)
        key = self._key(owner, rel)
        info = self._info(key, _node(owner, rel))
        if info is None:
            if not rel.parts:
                return []
            raise FileNotFoundError(f"no such folder: {_node(owner, rel)!r}")
        if not _is_dir(info):
            raise NotADirectoryError(f"{_node(owner, rel)!r} is a file, not a folder")
        result: dict[str, NodeInfo] = {}
        for entry in self._ls(key):
            name = _basename(entry["name"])
            if (not name or name.lower().startswith(RESERVED_PREFIX) or entry.get("islink")
                    or not (_is_dir(entry) or _is_file(entry))):
                continue
            result[name] = self._node_info(rel / name, entry["name"].rstrip("/"), entry)
        return [result[name] for name in sorted(result)]

    def mkdir(self, owner: str, rel: str | PurePosixPath, *, exist_ok: bool = True) -> NodeInfo:
        """Create a folder, its marker and its missing parents; see :meth:`FileStorage.mkdir`."""
        rel = _as_rel(rel)
        key = self._key(owner, rel)
        info = self._info(key, _node(owner, rel))
        if info is not None:
            if not _is_dir(info):
                raise FileExistsError(f"{_node(owner, rel)!r} is a file")
            if not exist_ok:
                raise FileExistsError(f"folder {_node(owner, rel)!r} exists")
        self._ensure_dirs(owner, rel)
        if info is not None and rel.parts:
            self._mark_folder(key)  # a folder that only existed by its content stays
        return self.stat(owner, rel)

    def delete(self, owner: str, rel: str | PurePosixPath, *, recursive: bool = False) -> None:
        """Delete a file or folder; see :meth:`FileStorage.delete`.

        A recursive delete removes the objects one by one (not atomic).
        """
        rel = _as_rel(rel)
        if not rel.parts:
            raise PathError(f"the folder of {owner!r} itself cannot be deleted")
        key = self._key(owner, rel)
        info = self._info(key, _node(owner, rel))
        if info is None:
            raise FileNotFoundError(f"no such file or folder: {_node(owner, rel)!r}")
        if not _is_dir(info):
            self.fs.rm_file(key)
        elif recursive:
            self._remove_tree(key)
        else:
            if any(_basename(entry["name"]) != FOLDER_MARKER for entry in self._ls(key)):
                raise FolderNotEmpty(f"folder {_node(owner, rel)!r} is not empty")
            self._remove_quietly(f"{key}/{FOLDER_MARKER}")
            self._rmdir_quietly(key)
        self.fs.invalidate_cache(key)

    def _prepare_target(self, owner: str, src: PurePosixPath, dst: PurePosixPath,
                        src_info: Info, overwrite: bool, verb: str) -> Info | None:
        """Checks shared by move and copy; returns the ``info`` of an existing ``dst``."""
        src_dir = _is_dir(src_info)
        _check_move_paths(owner, src, dst, src_dir=src_dir, verb=verb)
        self._check_parents_not_files(owner, dst)
        dst_info = self._info(self._key(owner, dst), _node(owner, dst))
        if dst_info is not None:
            _check_replace(owner, src, dst, src_dir=src_dir, dst_dir=_is_dir(dst_info),
                           overwrite=overwrite)
        return dst_info

    def _source(self, owner: str, src: PurePosixPath) -> Info:
        info = self._info(self._key(owner, src), _node(owner, src))
        if info is None:
            raise FileNotFoundError(f"no such file or folder: {_node(owner, src)!r}")
        if not (_is_dir(info) or _is_file(info)):
            raise PathError(f"{_node(owner, src)!r} is neither a file nor a folder")
        return info

    def move(self, owner: str, src: str | PurePosixPath, dst: str | PurePosixPath, *,
             overwrite: bool = False) -> NodeInfo:
        """Move a file or folder; see :meth:`FileStorage.move`.

        A file is copied onto the target in one step (atomic for the
        target) and then removed; a folder is moved object by object, after
        a replaced folder has been deleted.
        """
        src_rel, dst_rel = _as_rel(src), _as_rel(dst)
        src_info = self._source(owner, src_rel)
        dst_info = self._prepare_target(owner, src_rel, dst_rel, src_info, overwrite, "move")
        src_key, dst_key = self._key(owner, src_rel), self._key(owner, dst_rel)
        self._ensure_dirs(owner, dst_rel.parent)
        if not _is_dir(src_info):
            self._replace_file(src_key, dst_key)
        else:
            if dst_info is not None:
                self._remove_tree(dst_key)
            if isinstance(self.fs, LocalFileSystem):
                os.rename(self.fs._strip_protocol(src_key), self.fs._strip_protocol(dst_key))
            else:
                self._copy_tree(src_key, dst_key)
                self._remove_tree(src_key)
        return self.stat(owner, dst_rel)

    def copy(self, owner: str, src: str | PurePosixPath, dst: str | PurePosixPath, *,
             overwrite: bool = False, quota_left: int | None = None,
             quota: int | None = None) -> NodeInfo:
        """Copy a file or folder within the quota; see :meth:`FileStorage.copy`.

        A file is copied in one server-side step (atomic for the target).
        A folder is copied object by object into place, after a replaced
        folder has been deleted; when a copy fails, what it copied is
        removed.
        """
        src_rel, dst_rel = _as_rel(src), _as_rel(dst)
        src_info = self._source(owner, src_rel)
        dst_info = self._prepare_target(owner, src_rel, dst_rel, src_info, overwrite, "copy")
        src_key, dst_key = self._key(owner, src_rel), self._key(owner, dst_rel)
        is_dir = _is_dir(src_info)
        if is_dir:
            found = self._find(src_key)
            for name, info in found.items():
                if info.get("islink"):
                    raise PathError(f"folder {_node(owner, src_rel)!r} holds a symbolic link "
                                    f"({_basename(name)!r}), which vocloud does not copy")
            size = sum(int(info.get("size") or 0) for info in found.values() if _is_file(info))
        else:
            size = int(src_info.get("size") or 0)
        if quota_left is not None and size > quota_left:
            raise QuotaExceeded(so_far=size, quota_left=quota_left, quota=quota, action="copy")
        self._ensure_dirs(owner, dst_rel.parent)
        if not is_dir:
            self._copy_file(src_key, dst_key)
        else:
            if dst_info is not None:
                self._remove_tree(dst_key)
            try:
                self._copy_tree(src_key, dst_key)
            except BaseException:
                self._remove_tree(dst_key)
                raise
        return self.stat(owner, dst_rel)

    # Accounting ----------------------------------------------------------------

    def usage(self, owner: str) -> int:
        """Bytes used by ``owner``: the sizes of the files under the owner's folder, summed.

        One listing of the whole tree; links (where reported) and folder
        markers (empty) count nothing.
        """
        key = self._key(owner, OWNER_FOLDER)
        return sum(int(info.get("size") or 0) for info in self._find(key).values()
                   if _is_file(info) and not info.get("islink"))

    def is_empty(self) -> bool:
        """Whether the root holds no owner folder (nor any other key not starting with ``.``)."""
        return not any(not _basename(entry["name"]).startswith(".")
                       for entry in self._ls(self.root))

    def cleanup_tmp(self, older_than: float = 86400.0) -> int:
        """Remove old objects of ``{root}/.vocloud-tmp``; see :meth:`FileStorage.cleanup_tmp`.

        Entries whose age the file system does not report are left alone.
        """
        limit = time.time() - older_than
        removed = 0
        for entry in self._ls(self.tmp_root):
            stamp = _info_time(entry)
            if stamp is None or stamp.timestamp() >= limit:
                continue
            name = entry["name"].rstrip("/")
            if _is_dir(entry):
                self._remove_tree(name)
            else:
                self._remove_quietly(name)
            removed += 1
        return removed
