"""Reading the members of ZIP and tar archives without trusting them.

:func:`archive_members` lists every member of an archive before anything
is extracted and refuses the whole archive when one member is unsafe: a
name that is absolute (``/x``, ``C:\\x``), climbs out (``..``), or holds a
backslash, NUL or other control character; a file whose name is not one
(empty, ``.``, an empty or ``.`` segment, a trailing ``/``); a symbolic or
hard link; a device or FIFO; an encrypted ZIP member.  A leading ``./``
(as ``tar -C dir .`` writes) is dropped, nothing else is rewritten.
Folders are left out: they are made when their files are stored.

:func:`read_members` then streams the members in one pass over the
archive (one ``ZipFile``, one walk through the tar), so unpacking takes
time in proportion to the archive, however many members it has; a
compression bomb is stopped by the caller's size limit as it is read.
"""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

__all__ = ["ARCHIVE_SUFFIXES", "ArchiveError", "Member", "archive_kind", "archive_members",
           "read_member", "read_members"]

#: Name endings recognised as archives, and their kind.
ARCHIVE_SUFFIXES = ((".tar.gz", "tar"), (".tgz", "tar"), (".tar", "tar"), (".zip", "zip"))
CHUNK_SIZE = 256 * 1024
#: What reading a damaged archive raises (besides :class:`ArchiveError`).
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, OSError, EOFError,
                zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError, ValueError)


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


def _check_name(raw: str, *, folder: bool = False) -> str:
    """``raw`` without a leading ``./``, once checked; a file needs a real name.

    A folder may be the archive's top itself (``./``, ``.``); a file may not,
    nor have an empty or ``.`` segment, nor end in ``/``: once joined to the
    target folder, such a name would be that folder, or another file's.
    """
    name = raw[2:] if raw.startswith("./") else raw
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ArchiveError(f"refused: member {raw!r} has control characters in its name")
    if "\\" in name:
        raise ArchiveError(f"refused: member {raw!r} has a backslash in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refused: member {raw!r} has an absolute path")
    segments = name.split("/")
    if ".." in segments:
        raise ArchiveError(f"refused: member {raw!r} climbs out of the folder ('..')")
    if folder:
        return name
    if name.endswith("/"):
        raise ArchiveError(f"refused: member {raw!r} is a file whose name ends in '/'")
    if any(segment in ("", ".") for segment in segments):
        raise ArchiveError(f"refused: member {raw!r} has no file name (an empty or '.' part)")
    return name


def _zip_members(path: Path) -> list[Member]:
    members = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = _check_name(info.filename, folder=info.is_dir())
            mode = info.external_attr >> 16
            if info.is_dir():
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
            name = _check_name(info.name, folder=info.isdir())
            if info.isdir():
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
    except _READ_ERRORS as exc:
        raise ArchiveError(f"not a readable {kind} archive: {exc}") from None
    seen: set[str] = set()
    for member in members:
        if member.name in seen:
            raise ArchiveError(f"refused: member {member.name!r} appears twice")
        seen.add(member.name)
    return members


def read_members(path: Path, kind: str, members: Sequence[Member]) \
        -> Generator[tuple[Member, Iterator[bytes]], None, None]:
    """Each of ``members`` with its bytes in chunks, in one pass over the archive.

    Parameters
    ----------
    path : pathlib.Path
        The archive.
    kind : {'zip', 'tar'}
        Its kind.
    members : sequence of Member
        Members as :func:`archive_members` gave them, in that order (some
        may be left out).

    Yields
    ------
    tuple of (Member, iterator of bytes)
        One per member asked for, in order.  Its chunks must be read (or
        left) before the next member is taken; reading them raises
        :class:`ArchiveError` when the member cannot be read (bad CRC, a
        truncated archive), and so does every member after a break that
        ends the walk.
    """
    if kind == "zip":
        yield from _zip_stream(path, members)
    else:
        yield from _tar_stream(path, members)


def read_member(path: Path, kind: str, name: str) -> Iterator[bytes]:
    """The bytes of member ``name`` (as :func:`archive_members` gave it), in chunks.

    Raises
    ------
    ArchiveError
        When the member cannot be read (bad CRC, truncated archive).
    """
    for member, chunks in read_members(path, kind, [Member(name, 0)]):
        if member.name == name:
            yield from chunks


def _chunks(open_stream: Callable[[], IO[bytes] | None], name: str) -> Iterator[bytes]:
    """The bytes of one member, read from the stream ``open_stream`` opens."""
    try:
        stream = open_stream()
        if stream is None:
            raise ArchiveError(f"member {name!r} is not a regular file")
        with stream as opened:
            while chunk := opened.read(CHUNK_SIZE):
                yield chunk
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise ArchiveError(f"member {name!r} cannot be read: {exc}") from None


def _unreadable(name: str, reason: str) -> Iterator[bytes]:
    raise ArchiveError(f"member {name!r} cannot be read: {reason}")
    yield b""  # pragma: no cover - makes this a generator


def _zip_stream(path: Path, members: Sequence[Member]) \
        -> Iterator[tuple[Member, Iterator[bytes]]]:
    try:
        archive = zipfile.ZipFile(path)
    except _READ_ERRORS as exc:
        for member in members:
            yield member, _unreadable(member.name, str(exc))
        return
    with archive:
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            if not info.is_dir():
                by_name.setdefault(_strip(info.filename), info)
        for member in members:
            found = by_name.get(member.name)
            if found is None:
                yield member, _unreadable(member.name, "not in the archive")
                continue
            yield member, _chunks(partial(archive.open, found), member.name)


def _tar_stream(path: Path, members: Sequence[Member]) \
        -> Iterator[tuple[Member, Iterator[bytes]]]:
    wanted = iter(members)
    current = next(wanted, None)
    reason = "not in the archive"
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:  # the tar is walked once, forwards
                if current is None:
                    return
                if not info.isreg() or _strip(info.name) != current.name:
                    continue
                yield current, _chunks(partial(archive.extractfile, info), current.name)
                current = next(wanted, None)
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
    while current is not None:
        yield current, _unreadable(current.name, reason)
        current = next(wanted, None)


def _strip(raw: str) -> str:
    return raw[2:] if raw.startswith("./") else raw
