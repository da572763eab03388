"""Loading a server-side folder into a user's store: ``vocloud ingest`` and the demo data.

Every regular file under the folder is copied into the owner's tree
through :meth:`~uws_service.filestore.FileService.put`, so quota,
checksums and the catalogue work exactly as for an upload: spectra become
catalogue rows, unreadable files are stored and flagged.  A file already
stored at the same path with the same MD5 is skipped, so running the same
ingest twice does nothing the second time.  Symbolic links and names that
the store refuses (see :func:`~uws_service.storage.clean_path`) are
reported, never followed or rewritten.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from uws_service.errors import ServiceError
from uws_service.filestore import FileService
from uws_service.models import FileNode, Visibility
from uws_service.storage import PathError, clean_path, file_chunks, file_md5
from uws_service.users import Principal, UserService

__all__ = ["DEMO_FOLDER", "DEMO_OWNER", "IngestReport", "ingest_directory", "load_demo_data",
           "store_is_empty"]

#: Owner of the demo collection (DESIGN, "Access").
DEMO_OWNER = "system"
#: Folder of the demo collection in its owner's tree.
DEMO_FOLDER = "demo"


@dataclass
class IngestReport:
    """What an ingest did, file by file.

    Attributes
    ----------
    stored, skipped : list of str
        Paths (in the owner's tree) written, and left alone because the
        same content was already there.
    flagged : dict
        Stored files of a spectrum format that could not be read, with the reason.
    refused : dict
        Local files not stored, with the reason.
    spectra : int
        Catalogue rows made.
    """

    stored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    flagged: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    spectra: int = 0


def _local_files(top: Path, refused: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """``(relative name, path)`` of the regular files under ``top``, links reported."""
    for folder, dirs, files in os.walk(top, followlinks=False):
        base = Path(folder)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                refused[(base / name).relative_to(top).as_posix()] = "a symbolic link"
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in sorted(files):
            path = base / name
            relative = path.relative_to(top).as_posix()
            if path.is_symlink():
                refused[relative] = "a symbolic link"
            elif not path.is_file():
                refused[relative] = "not a regular file"
            else:
                yield relative, path


def ingest_directory(files: FileService, owner: Principal, source: Path,
                     target: str = "", *, public: bool = False,
                     progress: Callable[[str], None] | None = None) -> IngestReport:
    """Copy the files under ``source`` into ``owner``'s tree, under ``target``.

    Parameters
    ----------
    files : FileService
        The store.
    owner : Principal
        The user who will own the files (their quota counts).
    source : pathlib.Path
        A folder on the server (or a single file).
    target : str
        Folder in the owner's tree ("" for the top).
    public : bool
        Make ``target`` (and everything under it) readable by anyone.
    progress : callable, optional
        Called with each stored path.

    Returns
    -------
    IngestReport

    Raises
    ------
    FileNotFoundError
        When ``source`` does not exist.
    ServiceError
        For a malformed ``target``, or a quota too small for the next file
        (files stored before it stay stored).
    """
    report = IngestReport()
    top = FileService.parse_path(target, folder_ok=True)
    if source.is_file() and not source.is_symlink():
        candidates: Iterator[tuple[str, Path]] = iter([(source.name, source)])
    elif source.is_dir():
        candidates = _local_files(source, report.refused)
    else:
        raise FileNotFoundError(f"no such folder or file: {source}")
    for relative, path in candidates:
        try:
            rel = clean_path((top / relative).as_posix()) if top.parts else clean_path(relative)
        except PathError as exc:
            report.refused[relative] = str(exc)
            continue
        size = path.stat().st_size
        if files.max_file_bytes is not None and size > files.max_file_bytes:
            report.refused[relative] = (f"{size} bytes is more than the largest file the "
                                        f"store accepts ({files.max_file_bytes} bytes)")
            continue
        with files.database.read() as session:
            stored_md5 = session.scalar(select(FileNode.md5).where(
                FileNode.owner_id == owner.id, FileNode.path == rel.as_posix()))
        if stored_md5 is not None and stored_md5 == file_md5(path):
            report.skipped.append(rel.as_posix())
            continue
        try:
            meta, _ = files.put(owner, owner.name, rel.as_posix(), file_chunks(path),
                                content_length=size)
        except ServiceError as exc:
            if exc.status == 413:
                raise
            report.refused[relative] = exc.message
            continue
        report.stored.append(meta.path.as_posix())
        report.spectra += meta.spectra or 0
        if meta.catalogue_error:
            report.flagged[meta.path.as_posix()] = meta.catalogue_error
        if progress is not None:
            progress(meta.path.as_posix())
    if public and top.parts and (report.stored or report.skipped):
        files.change_visibility(owner, owner.name, top.as_posix(), Visibility.PUBLIC,
                                recursive=True)
    return report


def store_is_empty(files: FileService) -> bool:
    """Whether no user has stored anything yet (no rows and no files in the storage)."""
    with files.database.read() as session:
        if session.scalar(select(func.count()).select_from(FileNode)):
            return False
    return files.storage.is_empty()


def load_demo_data(files: FileService, users: UserService, count: int = 200,
                   seed: int = 0) -> IngestReport:
    """Write the synthetic Be-star collection and ingest it, public, for the user ``system``.

    The user is created (without a password: nobody logs in as it) when missing.  The
    files are written to a local scratch folder (the storage's ``scratch_dir``, under
    ``VOCLOUD_HOME``) and ingested from there, wherever the storage is.
    """
    from vo.spectra.demo import generate_collection, write_collection

    owner = users.get_user(DEMO_OWNER) or users.create_user(DEMO_OWNER, None)
    scratch = files.storage.scratch_dir
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        write_collection(folder, generate_collection(count, seed=seed))
        return ingest_directory(files, owner, Path(folder), DEMO_FOLDER, public=True)
