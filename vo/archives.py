"""Reading the members of ZIP and tar archives without trusting them.

:func:`archive_members` lists every member of an archive before anything
is extracted and refuses the whole archive when one member is unsafe: a
name that is absolute (``/x``, ``C:\\x``), climbs out (``..``), or holds a
backslash, NUL or other control character; a symbolic or hard link; a
device or FIFO; an encrypted ZIP member.  A leading ``./`` (as ``tar -C
dir .`` writes) is dropped, nothing else is rewritten.  Folders are left
out: they are made when their files are stored.  :func:`read_member`
streams one member, so a compression bomb is stopped by the caller's size
limit as it is read.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ARCHIVE_SUFFIXES", "ArchiveError", "Member", "archive_kind", "archive_members",
           "read_member"]

#: Name endings recognised as archives, and their kind.
ARCHIVE_SUFFIXES = ((".tar.gz", "tar"), (".tgz", "tar"), (".tar", "tar"), (".zip", "zip"))
CHUNK_SIZE = 256 * 1024


class ArchiveError(ValueError):
    """An archive that is refused or cannot be read; the message names the member."""


@dataclass(frozen=True)
class Member:
    """A regular file of an archive.

    Attributes
    ----------
    name : str
        Its path inside the archive, ``/``-separated, relative.
    size : int
        Its uncompressed size as the archive declares it.
    """

    name: str
    size: int


def archive_kind(name: str) -> str | None:
    """``"zip"`` or ``"tar"`` from a file name, or None when it is not an archive."""
    lowered = name.lower()
    for suffix, kind in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return kind
    return None


def _check_name(raw: str) -> str:
    name = raw[2:] if raw.startswith("./") else raw
    if not name or name.endswith("/"):
        return name
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ArchiveError(f"refused: member {raw!r} has control characters in its name")
    if "\\" in name:
        raise ArchiveError(f"refused: member {raw!r} has a backslash in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refused: member {raw!r} has an absolute path")
    segments = name.split("/")
    if ".." in segments:
        raise ArchiveError(f"refused: member {raw!r} climbs out of the folder ('..')")
    return name


def _zip_members(path: Path) -> list[Member]:
    members = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = _check_name(info.filename)
            mode = info.external_attr >> 16
            if info.is_dir() or not name:
                continue
            if stat.S_ISLNK(mode):
                raise ArchiveError(f"refused: member {info.filename!r} is a symbolic link")
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                raise ArchiveError(f"refused: member {info.filename!r} is not a regular file")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"refused: member {info.filename!r} is encrypted")
            members.append(Member(name, info.file_size))
    return members


def _tar_members(path: Path) -> list[Member]:
    members = []
    with tarfile.open(path, "r:*") as archive:
        for info in archive:
            name = _check_name(info.name)
            if info.isdir() or not name or name == ".":
                continue
            if info.issym():
                raise ArchiveError(f"refused: member {info.name!r} is a symbolic link")
            if info.islnk():
                raise ArchiveError(f"refused: member {info.name!r} is a hard link")
            if info.ischr() or info.isblk():
                raise ArchiveError(f"refused: member {info.name!r} is a device")
            if info.isfifo():
                raise ArchiveError(f"refused: member {info.name!r} is a FIFO")
            if not info.isreg():
                raise ArchiveError(f"refused: member {info.name!r} is not a regular file")
            members.append(Member(name, info.size))
    return members


def archive_members(path: Path, kind: str) -> list[Member]:
    """Every regular file of the archive at ``path``, checked, before any is read.

    Parameters
    ----------
    path : pathlib.Path
        The archive.
    kind : {'zip', 'tar'}
        Its kind (a tar may be compressed with gzip, bzip2 or xz).

    Raises
    ------
    ArchiveError
        For the first unsafe member, a member name given twice, or an
        archive that cannot be read.
    """
    try:
        members = _zip_members(path) if kind == "zip" else _tar_members(path)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable {kind} archive: {exc}") from None
    seen: set[str] = set()
    for member in members:
        if member.name in seen:
            raise ArchiveError(f"refused: member {member.name!r} appears twice")
        seen.add(member.name)
    return members


def read_member(path: Path, kind: str, name: str) -> Iterator[bytes]:
    """The bytes of member ``name`` (as :func:`archive_members` gave it), in chunks.

    Raises
    ------
    ArchiveError
        When the member cannot be read (bad CRC, truncated archive).
    """
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                info = next(i for i in archive.infolist() if _strip(i.filename) == name)
                with archive.open(info) as stream:
                    while chunk := stream.read(CHUNK_SIZE):
                        yield chunk
        else:
            with tarfile.open(path, "r:*") as archive:
                tar_info = next(i for i in archive if _strip(i.name) == name)
                extracted = archive.extractfile(tar_info)
                if extracted is None:
                    raise ArchiveError(f"member {name!r} is not a regular file")
                with extracted:
                    while chunk := extracted.read(CHUNK_SIZE):
                        yield chunk
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, StopIteration) as exc:
        raise ArchiveError(f"member {name!r} cannot be read: {exc}") from None


def _strip(raw: str) -> str:
    return raw[2:] if raw.startswith("./") else raw
