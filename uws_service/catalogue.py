"""The spectrum catalogue: one ObsCore row per spectrum of every stored file.

:class:`Catalogue` reads a stored file with
:func:`~vo.spectra.readers.read_spectrum` and keeps the ``obscore`` table
(:class:`~uws_service.models.ObsCore`) in step with the store.  It has no
web framework; :class:`~uws_service.filestore.FileService` calls it on
every write, move, copy and visibility change, so uploads, imports,
``vocloud ingest`` and files found on disk all end up catalogued the same
way.

Reading happens *before* the database transaction that records the result
(:meth:`Catalogue.describe`, then :meth:`Catalogue.store`), so a slow file
never holds the write lock.  A file whose name says it is a spectrum format
but that cannot be read stays stored; its ``file_node`` row is flagged
with the reason (``catalogue_error``).  Files of other kinds (a manifest, a
plot) are not catalogued and not flagged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from uws_service.models import FileNode, ObsCore
from uws_service.storage import FileStorage
from vo.obscore import obscore_values
from vo.spectra.readers import SpectrumReadError, read_spectrum

__all__ = ["CATALOGUED_SUFFIXES", "Catalogue", "CatalogueEntry"]

#: File name endings of the formats the readers understand (compared in lower case).
CATALOGUED_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".vot",
                       ".votable", ".vot.gz", ".xml", ".csv", ".csv.gz", ".txt", ".dat",
                       ".asc", ".ascii", ".tsv")
#: Media types that mark a spectrum whatever the file name.
_CATALOGUED_TYPES = ("application/fits", "image/fits", "application/x-votable+xml")
#: Files larger than this are flagged, not read, when catalogued on upload (bytes).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


@dataclass
class CatalogueEntry:
    """What reading one file found, before it is recorded.

    Attributes
    ----------
    candidate : bool
        Whether the file is of a spectrum format at all.
    spectra : list of dict
        ObsCore values of each spectrum, without identifiers and URLs.
    error : str or None
        Why a candidate file could not be read.
    """

    candidate: bool
    spectra: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


class Catalogue:
    """Keeps the ``obscore`` rows of stored files.

    Parameters
    ----------
    storage : FileStorage
        Where the files are; a file is read through
        :meth:`~uws_service.storage.FileStorage.local_copy`.
    public_url : str
        Base of ``access_url`` (``VOCLOUD_PUBLIC_URL``).
    authority : str
        The IVOA authority of ``obs_publisher_did`` (``VOCLOUD_AUTHORITY``).
    max_bytes : int
        Larger files are flagged instead of read.
    """

    def __init__(self, storage: FileStorage, public_url: str, authority: str, *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.storage = storage
        self.public_url = public_url.rstrip("/")
        self.authority = authority
        self.max_bytes = max_bytes

    @staticmethod
    def is_candidate(path: PurePosixPath, content_type: str | None = None) -> bool:
        """Whether a file is of a spectrum format, by name or media type."""
        name = path.name.lower()
        return name.endswith(CATALOGUED_SUFFIXES) or (content_type or "").split(";")[0] \
            .strip().lower() in _CATALOGUED_TYPES

    def new_did(self) -> str:
        """A new ``obs_publisher_did``: ``ivo://{AUTHORITY}/vocloud?{uuid}``."""
        return f"ivo://{self.authority}/vocloud?{uuid.uuid4()}"

    def access_url(self, owner: str, path: PurePosixPath) -> str:
        """The download URL of a stored file."""
        return f"{self.public_url}/files/{quote(owner, safe='')}/{quote(path.as_posix())}"

    def describe(self, owner: str, path: PurePosixPath, size: int,
                 content_type: str | None = None) -> CatalogueEntry:
        """Read a stored file and say what the catalogue should hold for it.

        Never raises for a bad file: the reason goes into the entry.
        """
        if not self.is_candidate(path, content_type):
            return CatalogueEntry(candidate=False)
        if size > self.max_bytes:
            return CatalogueEntry(candidate=True, error=(
                f"{path.name}: not read for the catalogue, {size} bytes is more than "
                f"{self.max_bytes}"))
        try:
            with self.storage.local_copy(owner, path) as local:
                spectra = read_spectrum(local, name=path.name)
        except SpectrumReadError as exc:
            return CatalogueEntry(candidate=True, error=str(exc))
        except (OSError, ValueError, MemoryError) as exc:
            return CatalogueEntry(candidate=True, error=f"{path.name}: {exc}")
        values = []
        for number, spectrum in enumerate(spectra):
            stem = path.name.split(".")[0] or path.name
            values.append(obscore_values(
                spectrum, publisher_did="", access_url="", access_format=content_type or "",
                size_bytes=size, collection=f"vocloud/{owner}",
                default_id=stem if len(spectra) == 1 else f"{stem}#{number}"))
        return CatalogueEntry(candidate=True, spectra=values)

    def store(self, session: Session, row: FileNode, owner: str,
              entry: CatalogueEntry) -> None:
        """Replace the catalogue rows of a file (``row`` must have its id) by ``entry``.

        New content means new spectra, so rewriting a file gives its
        spectra new DIDs; only a move keeps them.
        """
        session.query(ObsCore).filter(ObsCore.node_id == row.id).delete(
            synchronize_session=False)
        if not entry.candidate:
            row.spectra, row.catalogue_error = None, None
            return
        row.spectra, row.catalogue_error = len(entry.spectra), entry.error
        url = self.access_url(owner, PurePosixPath(row.path))
        for number, values in enumerate(entry.spectra):
            session.add(ObsCore(**{
                **values, "node_id": row.id, "spectrum_index": number,
                "owner_id": row.owner_id, "owner": owner, "visibility": row.visibility,
                "obs_publisher_did": self.new_did(), "access_url": url,
                "access_format": row.content_type or values["access_format"]
                or "application/octet-stream"}))

    def moved(self, session: Session, owner: str, rows: Iterable[FileNode]) -> None:
        """Point the ``access_url`` of moved files at their new paths; DIDs stay."""
        for row in rows:
            if row.spectra:
                session.execute(update(ObsCore).where(ObsCore.node_id == row.id).values(
                    access_url=self.access_url(owner, PurePosixPath(row.path))))

    def copied(self, session: Session, owner: str,
               pairs: Sequence[tuple[int, FileNode]]) -> None:
        """Give copies (``(source node id, new row)``) their own rows, with new DIDs."""
        by_source: dict[int, list[ObsCore]] = {}
        sources = [source for source, _ in pairs]
        for start in range(0, len(sources), 500):
            for found in session.scalars(select(ObsCore).where(
                    ObsCore.node_id.in_(sources[start:start + 500]))):
                by_source.setdefault(found.node_id, []).append(found)
        skip = {"id", "node_id", "obs_publisher_did", "access_url", "visibility",
                "created_at"}
        for source, row in pairs:
            for original in sorted(by_source.get(source, []), key=lambda o: o.spectrum_index):
                values = {column.key: getattr(original, column.key)
                          for column in ObsCore.__table__.columns if column.key not in skip}
                session.add(ObsCore(**values, node_id=row.id, visibility=row.visibility,
                                    obs_publisher_did=self.new_did(),
                                    access_url=self.access_url(owner,
                                                               PurePosixPath(row.path))))

    @staticmethod
    def set_visibility(session: Session, node_ids: Sequence[int], visibility: str) -> None:
        """Copy a visibility change of files onto their catalogue rows."""
        for start in range(0, len(node_ids), 500):
            session.execute(update(ObsCore).where(
                ObsCore.node_id.in_(node_ids[start:start + 500])).values(visibility=visibility))
