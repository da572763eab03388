"""The storage core: safe paths, streamed atomic writes, quota, checksums, ranges, symlinks.

DESIGN "Store and catalogue": uploads stream into a temporary file under the
storage root, the quota is counted while bytes arrive, the file is renamed
into place atomically and a failed upload leaves the old file intact; the
ETag is the MD5, checksums are MD5 and SHA-256.  Every test of the common
behaviour runs twice: on real files in ``tmp_path`` (:class:`LocalStorage`)
and on fsspec's in-memory file system (:class:`FsspecStorage`, a fresh
``memory://`` root per test); symbolic links and inodes are local only.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tests.storage_support import memory_url
from uws_service.storage import (
    CHUNK_SIZE,
    FileStorage,
    FileTooLarge,
    FolderNotEmpty,
    LocalStorage,
    PathError,
    QuotaExceeded,
    RangeError,
    Storage,
    clean_path,
    human_size,
    parse_range_header,
)
from uws_service.storage_fsspec import FsspecStorage

KIB = 1024
MIB = 1024 * 1024


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStorage]:
    """The same store on local files and on fsspec's ``memory://`` (a fresh root)."""
    if request.param == "local":
        yield Storage(tmp_path / "files")
        return
    with memory_url() as url:
        yield FsspecStorage(url, scratch_dir=tmp_path / "scratch")


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files")


def tmp_entries(storage: FileStorage) -> list[str]:
    """Names in the storage's temporary folder (``.vocloud-tmp``)."""
    if isinstance(storage, LocalStorage):
        return sorted(os.listdir(storage.tmp_dir)) if storage.tmp_dir.exists() else []
    assert isinstance(storage, FsspecStorage)
    try:
        names = storage.fs.ls(storage.tmp_root, detail=False)
    except FileNotFoundError:
        return []
    return sorted(name.rsplit("/", 1)[-1] for name in names)


def put(storage: FileStorage, rel: str, data: bytes, owner: str = "alice") -> None:
    storage.write(owner, rel, [data])


def read(storage: FileStorage, rel: str, owner: str = "alice") -> bytes:
    with storage.open_range(owner, rel) as data:
        return data.read_all()


# Paths -----------------------------------------------------------------------------

REFUSED = [
    ("", "empty"),
    ("..", "'..'"),
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("a/..", "'..'"),
    ("./x", "'.'"),
    ("a/./b", "'.'"),
    (".", "'.'"),
    ("/etc/passwd", "absolute"),
    ("/x", "absolute"),
    ("a\\b", "backslash"),
    ("C:\\x", "Windows"),
    ("c:/x", "Windows"),
    ("\\\\server\\share", "backslash"),
    ("\\x", "backslash"),
    ("a\x00b", "control"),
    ("\x00", "control"),
    ("a\nb", "control"),
    ("a\tb", "control"),
    ("a\x7fb", "control"),
    ("a\x85b", "control"),
    ("a\ud800b", "surrogate"),
    ("a//b", "empty segments"),
    ("a/", "empty segments"),
    ("   ", "whitespace"),
    ("a/ \u3000/b", "whitespace"),
    (".vocloud-tmp/x", "reserved"),
    ("a/.vocloud", "reserved"),
    (".VOCLOUD-x", "reserved"),
    ("x" * 256, "longer than 255"),
    ("é" * 150, "longer than 255"),  # 300 bytes of UTF-8
    ("/".join(["d" * 200] * 21), "longer than 4096"),
]


@pytest.mark.parametrize(("user_path", "reason"), REFUSED,
                         ids=[repr(p)[:40] for p, _ in REFUSED])
def test_clean_path_refuses(user_path: str, reason: str) -> None:
    """Every odd form is refused with a message naming the reason (nothing is repaired)."""
    with pytest.raises(PathError, match=reason):
        clean_path(user_path)


def test_clean_path_message() -> None:
    with pytest.raises(PathError) as info:
        clean_path("a/../b")
    assert str(info.value) == "path 'a/../b': '..' is not allowed"


@pytest.mark.parametrize("user_path", [
    "a", "spec.fits", "Ondřejov/spec.fits", "日本語/スペクトル.fits", "a b/c d.txt",
    " leading", "..hidden", ".hidden", "a/b/c/d/e", "x" * 255, "é" * 127, "C:x", "a:b",
    "vocloudish", "vocloud-tmp",
])
def test_clean_path_accepts(user_path: str) -> None:
    assert clean_path(user_path) == PurePosixPath(user_path)
    assert not clean_path(user_path).is_absolute()


def test_unicode_names_round_trip(storage: FileStorage) -> None:
    put(storage, "Ondřejov/spec.fits", b"SIMPLE")
    assert read(storage, "Ondřejov/spec.fits") == b"SIMPLE"
    assert [n.name for n in storage.listdir("alice")] == ["Ondřejov"]
    assert [n.name for n in storage.listdir("alice", "Ondřejov")] == ["spec.fits"]


BAD_OWNERS = ["", "..", "a/b", ".vocloud-tmp", "a\x00", "/root"]


@pytest.mark.parametrize("owner", BAD_OWNERS)
def test_bad_owner_refused(storage: FileStorage, owner: str) -> None:
    with pytest.raises(PathError):
        storage.stat(owner, "x")
    with pytest.raises(PathError):
        storage.write(owner, "x", [b"x"])
    with pytest.raises(PathError):
        storage.listdir(owner)
    assert tmp_entries(storage) == []


@pytest.mark.parametrize("owner", BAD_OWNERS)
def test_bad_owner_refused_by_path_of(local_storage: LocalStorage, owner: str) -> None:
    with pytest.raises(PathError):
        local_storage.path_of(owner, "x")


def test_path_of_rechecks_pure_paths(local_storage: LocalStorage) -> None:
    """A PurePosixPath built elsewhere is checked again, not trusted."""
    for rel in (PurePosixPath("../x"), PurePosixPath("/etc/passwd"),
                PurePosixPath(".vocloud-tmp/x")):
        with pytest.raises(PathError):
            local_storage.path_of("alice", rel)
    assert local_storage.path_of("alice", PurePosixPath()) == local_storage.root / "alice"


def test_pure_paths_rechecked_by_every_store(storage: FileStorage) -> None:
    for rel in (PurePosixPath("../x"), PurePosixPath("/etc/passwd"),
                PurePosixPath(".vocloud-tmp/x")):
        with pytest.raises(PathError):
            storage.stat("alice", rel)
        with pytest.raises(PathError):
            storage.write("alice", rel, [b"x"])


# Writing ---------------------------------------------------------------------------


def test_write_returns_checksums(storage: FileStorage) -> None:
    data = b"hello spectra\n" * 1000
    stored = storage.write("alice", "a/b/c.txt", [data[:100], b"", data[100:]])
    assert stored.path == PurePosixPath("a/b/c.txt")
    assert stored.size == len(data)
    assert stored.md5 == hashlib.md5(data).hexdigest()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.modified.tzinfo is not None
    assert read(storage, "a/b/c.txt") == data
    if isinstance(storage, LocalStorage):
        assert (storage.root / "alice/a/b/c.txt").read_bytes() == data
    assert storage.checksums("alice", "a/b/c.txt") == stored
    assert tmp_entries(storage) == []


def test_write_empty_file(storage: FileStorage) -> None:
    stored = storage.write("alice", "empty", [])
    assert stored.size == 0
    assert stored.md5 == hashlib.md5(b"").hexdigest()
    assert read(storage, "empty") == b""


def test_write_50mb_stream_low_memory(storage: FileStorage) -> None:
    """50 MB in 64 KiB chunks: peak Python memory stays under 5 MB, checksums match hashlib.

    The in-memory file system holds the file in memory by nature, so there
    only the checksums and the streamed read back are checked.
    """
    chunk_size = 64 * KIB
    count = 50 * MIB // chunk_size
    base = os.urandom(chunk_size)
    md5, sha256 = hashlib.md5(), hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        for i in range(count):
            chunk = i.to_bytes(8, "big") + base[8:]
            md5.update(chunk)
            sha256.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        stored = storage.write("alice", "big.bin", chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if isinstance(storage, LocalStorage):
        assert peak < 5 * MIB, f"peak {peak} bytes"
        assert (storage.root / "alice/big.bin").stat().st_size == 50 * MIB
    assert stored.size == 50 * MIB
    assert stored.md5 == md5.hexdigest()
    assert stored.sha256 == sha256.hexdigest()
    assert storage.stat("alice", "big.bin").size == 50 * MIB
    # Reading it back in ranges is streamed too.
    with storage.open_range("alice", "big.bin") as data:
        sizes = [len(c) for c in data]
    assert max(sizes) == CHUNK_SIZE and sum(sizes) == 50 * MIB


def test_quota_exceeded_mid_stream_keeps_old_file(storage: FileStorage) -> None:
    old = b"old content" * 100
    put(storage, "data.bin", old)
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(10):
            pulled.append(i)
            yield bytes([i]) * (64 * KIB)

    with pytest.raises(QuotaExceeded) as info:
        storage.write("alice", "data.bin", chunks(), quota_left=150 * KIB)
    assert pulled == [0, 1, 2]  # aborted the moment the third chunk passed the limit
    assert info.value.so_far == 3 * 64 * KIB
    assert "quota would be exceeded" in str(info.value)
    assert read(storage, "data.bin") == old
    assert tmp_entries(storage) == []


def test_quota_message() -> None:
    exc = QuotaExceeded(so_far=200 * 10**6, quota_left=10**8, quota=10**9)
    assert str(exc) == ("upload refused: quota of 1.0 GB would be exceeded "
                        "(900 MB used, file 200 MB so far)")
    assert human_size(512) == "512 B"
    assert human_size(1500) == "1.5 kB"


def test_quota_exactly_fits(storage: FileStorage) -> None:
    stored = storage.write("alice", "x", [b"a" * 10, b"b" * 10], quota_left=20, max_size=20)
    assert stored.size == 20


def test_max_size(storage: FileStorage) -> None:
    put(storage, "f", b"keep")
    with pytest.raises(FileTooLarge, match="at most 100 B"):
        storage.write("alice", "f", [b"x" * 60, b"x" * 60], max_size=100)
    assert read(storage, "f") == b"keep"
    assert tmp_entries(storage) == []
    with pytest.raises(FileTooLarge):
        storage.write("alice", "new", [b"x" * 101], max_size=100)
    assert not storage.exists("alice", "new")


def test_iterator_exception_keeps_old_file(storage: FileStorage) -> None:
    put(storage, "d/f.txt", b"original")

    def chunks() -> Iterator[bytes]:
        yield b"partial new "
        yield b"content"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        storage.write("alice", "d/f.txt", chunks())
    assert read(storage, "d/f.txt") == b"original"
    assert tmp_entries(storage) == []
    # A new file that fails leaves nothing, not even an empty file.
    with pytest.raises(ConnectionResetError):
        storage.write("alice", "d/g.txt", chunks())
    assert [n.name for n in storage.listdir("alice", "d")] == ["f.txt"]


def test_write_replaces_and_creates_parents(storage: FileStorage) -> None:
    put(storage, "x/y/z.txt", b"one")
    assert storage.stat("alice", "x/y").is_dir and storage.stat("alice", "x").is_dir
    put(storage, "x/y/z.txt", b"two")
    assert read(storage, "x/y/z.txt") == b"two"
    assert [n.name for n in storage.listdir("alice", "x/y")] == ["z.txt"]
    assert tmp_entries(storage) == []


def test_write_replaces_atomically_in_place(local_storage: LocalStorage) -> None:
    storage = local_storage
    put(storage, "x/y/z.txt", b"one")
    inode_dir = os.stat(storage.root / "alice/x/y").st_ino
    put(storage, "x/y/z.txt", b"two")
    assert read(storage, "x/y/z.txt") == b"two"
    assert os.stat(storage.root / "alice/x/y").st_ino == inode_dir
    assert storage.tmp_dir.parent == storage.root  # same file system as the trees


def test_write_refuses_folder_and_file_parent(storage: FileStorage) -> None:
    storage.mkdir("alice", "folder")
    with pytest.raises(IsADirectoryError):
        storage.write("alice", "folder", [b"x"])
    put(storage, "file", b"x")
    with pytest.raises(NotADirectoryError):
        storage.write("alice", "file/inner", [b"y"])
    with pytest.raises(IsADirectoryError):
        storage.write("alice", PurePosixPath(), [b"y"])
    assert tmp_entries(storage) == []


def test_cleanup_tmp(local_storage: LocalStorage) -> None:
    storage = local_storage
    storage.tmp_dir.mkdir(parents=True)
    stale = storage.tmp_dir / "stale"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    (storage.tmp_dir / "fresh").write_bytes(b"y")
    assert storage.cleanup_tmp(older_than=3600) == 1
    assert tmp_entries(storage) == ["fresh"]


# Ranges ----------------------------------------------------------------------------

DATA = bytes(range(256)) * 4  # 1024 bytes


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-99", (0, 99)),
    ("bytes=0-0", (0, 0)),
    ("bytes=100-", (100, 1023)),
    ("bytes=-500", (524, 1023)),
    ("bytes=-5000", (0, 1023)),
    ("bytes=1023-", (1023, 1023)),
    ("bytes=1000-5000", (1000, 1023)),
    ("bytes=0-", (0, 1023)),
    ("BYTES=1-2", (1, 2)),
    (" bytes=1-2 ", (1, 2)),
])
def test_parse_range(header: str, expected: tuple[int, int]) -> None:
    assert parse_range_header(header, len(DATA)) == expected


@pytest.mark.parametrize("header", [
    "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-a", "bytes=5-1", "items=0-1",
    "bytes=0-1,5-6", "bytes=0-1, 3-", "bytes=1 -2", "bytes=--1", "bytes=+1-2", "bytes=٣-٤",
])
def test_parse_range_invalid_is_ignored(header: str) -> None:
    assert parse_range_header(header, len(DATA)) is None


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=1024-", 1024), ("bytes=2000-3000", 1024), ("bytes=-0", 1024),
    ("bytes=0-", 0), ("bytes=-1", 0),
])
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeError) as info:
        parse_range_header(header, size)
    assert info.value.size == size


def test_read_ranges(storage: FileStorage) -> None:
    put(storage, "r.bin", DATA)

    def get(start: int, end: int | None) -> bytes:
        with storage.open_range("alice", "r.bin", start, end) as data:
            return data.read_all()

    assert get(0, 99) == DATA[:100]  # first
    assert get(1000, 1023) == DATA[1000:]  # last
    start, end = parse_range_header("bytes=-10", len(DATA)) or (0, 0)
    assert get(start, end) == DATA[-10:]  # suffix
    assert get(0, None) == DATA  # whole
    assert get(5, 5) == DATA[5:6]
    assert b"".join(storage.read_range("alice", "r.bin", 10, 19)) == DATA[10:20]
    with storage.open_range("alice", "r.bin", 10, 19) as data:
        assert (data.start, data.end, data.length, data.size) == (10, 19, 10, 1024)
    for bad in ((-1, 10), (10, 9), (0, 1024), (1024, None), (2000, 3000)):
        with pytest.raises(RangeError):
            storage.open_range("alice", "r.bin", *bad)
    with pytest.raises(FileNotFoundError):
        storage.open_range("alice", "missing.bin")
    storage.mkdir("alice", "dir")
    with pytest.raises(IsADirectoryError):
        storage.open_range("alice", "dir")


def test_read_range_chunks_at_most_1mib(storage: FileStorage) -> None:
    data = os.urandom(3 * MIB + 17)
    put(storage, "three", data)
    with storage.open_range("alice", "three", 5, len(data) - 2) as rng:
        chunks = list(rng)
    assert all(len(c) <= CHUNK_SIZE for c in chunks)
    assert b"".join(chunks) == data[5:-1]


def test_read_empty_file(storage: FileStorage) -> None:
    put(storage, "empty", b"")
    with storage.open_range("alice", "empty") as data:
        assert data.length == 0
        assert list(data) == []
    with pytest.raises(RangeError):
        storage.open_range("alice", "empty", 0, 0)


# Symlinks --------------------------------------------------------------------------


@pytest.fixture
def linked(local_storage: LocalStorage, tmp_path: Path) -> Path:
    """alice/ has a real file and folder, plus ``link`` -> an outside folder and
    ``flink`` -> an outside file; bob's whole folder is a link to the outside."""
    storage = local_storage
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    put(storage, "real.txt", b"real")
    storage.mkdir("alice", "realdir")
    os.symlink(outside, storage.root / "alice/link")
    os.symlink(outside / "secret.txt", storage.root / "alice/flink")
    os.symlink(outside, storage.root / "bob")
    return outside


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(path.rglob("*"))}


SYMLINK_OPS = {
    "read_through": lambda s: s.open_range("alice", "link/secret.txt"),
    "read_link": lambda s: s.open_range("alice", "flink"),
    "read_owner_link": lambda s: s.open_range("bob", "secret.txt"),
    "stat_link": lambda s: s.stat("alice", "flink"),
    "stat_through": lambda s: s.stat("alice", "link/secret.txt"),
    "checksums": lambda s: s.checksums("alice", "flink"),
    "write_through": lambda s: s.write("alice", "link/new.txt", [b"x"]),
    "write_over_link": lambda s: s.write("alice", "flink", [b"x"]),
    "write_replace_through": lambda s: s.write("alice", "link/secret.txt", [b"x"]),
    "write_owner_link": lambda s: s.write("bob", "new.txt", [b"x"]),
    "delete_link": lambda s: s.delete("alice", "flink"),
    "delete_dir_link": lambda s: s.delete("alice", "link", recursive=True),
    "delete_through": lambda s: s.delete("alice", "link/secret.txt"),
    "move_link": lambda s: s.move("alice", "flink", "moved"),
    "move_through": lambda s: s.move("alice", "link/secret.txt", "moved"),
    "move_into": lambda s: s.move("alice", "real.txt", "link/real.txt"),
    "move_over": lambda s: s.move("alice", "real.txt", "flink", overwrite=True),
    "copy_link": lambda s: s.copy("alice", "flink", "copied"),
    "copy_through": lambda s: s.copy("alice", "link/secret.txt", "copied"),
    "copy_into": lambda s: s.copy("alice", "real.txt", "link/real.txt"),
    "copy_over": lambda s: s.copy("alice", "real.txt", "flink", overwrite=True),
    "mkdir_through": lambda s: s.mkdir("alice", "link/sub"),
    "mkdir_link": lambda s: s.mkdir("alice", "link"),
    "listdir_link": lambda s: s.listdir("alice", "link"),
    "listdir_owner_link": lambda s: s.listdir("bob"),
    "usage_owner_link": lambda s: s.usage("bob"),
}


@pytest.mark.parametrize("op", list(SYMLINK_OPS))
def test_symlinks_refused(local_storage: LocalStorage, linked: Path, op: str) -> None:
    """Every operation refuses a path through or naming a symlink, and touches nothing."""
    storage = local_storage
    before = snapshot(linked)
    tree_before = snapshot(storage.root / "alice")
    with pytest.raises(PathError, match="symbolic link"):
        SYMLINK_OPS[op](storage)
    assert snapshot(linked) == before
    assert snapshot(storage.root / "alice") == tree_before
    assert (storage.root / "alice/link").is_symlink()
    assert (storage.root / "alice/flink").is_symlink()
    assert tmp_entries(storage) == []


def test_symlinks_skipped_in_listing_and_usage(local_storage: LocalStorage,
                                               linked: Path) -> None:
    storage = local_storage
    assert [n.name for n in storage.listdir("alice")] == ["real.txt", "realdir"]
    assert storage.usage("alice") == 4  # the 6-byte secret is not counted


def test_folder_with_link_inside(local_storage: LocalStorage, linked: Path) -> None:
    """Copying a folder holding a link is refused; deleting it removes the link, not its target."""
    storage = local_storage
    os.symlink(linked / "secret.txt", storage.root / "alice/realdir/inner")
    with pytest.raises(PathError, match="symbolic link"):
        storage.copy("alice", "realdir", "copy")
    storage.move("alice", "realdir", "moved")
    assert os.path.islink(storage.root / "alice/moved/inner")
    storage.delete("alice", "moved", recursive=True)
    assert (linked / "secret.txt").read_bytes() == b"secret"
    assert not storage.exists("alice", "moved")


# Nodes: mkdir, listdir, delete, move, copy, usage ----------------------------------


def test_mkdir(storage: FileStorage) -> None:
    info = storage.mkdir("alice", "a/b/c")
    assert info.is_dir and info.path == PurePosixPath("a/b/c")
    storage.mkdir("alice", "a/b/c")  # exist_ok by default
    with pytest.raises(FileExistsError):
        storage.mkdir("alice", "a/b/c", exist_ok=False)
    put(storage, "a/file", b"x")
    with pytest.raises(FileExistsError):
        storage.mkdir("alice", "a/file")
    with pytest.raises(NotADirectoryError):
        storage.mkdir("alice", "a/file/sub")


def test_listdir_and_stat(storage: FileStorage) -> None:
    assert storage.listdir("alice") == []  # no tree yet
    assert storage.stat("alice", PurePosixPath()).is_dir
    put(storage, "b.txt", b"12345")
    storage.mkdir("alice", "a")
    names = [(n.name, n.is_dir, n.size) for n in storage.listdir("alice")]
    assert names == [("a", True, 0), ("b.txt", False, 5)]
    info = storage.stat("alice", "b.txt")
    assert info.size == 5 and not info.is_dir
    with pytest.raises(FileNotFoundError):
        storage.stat("alice", "nope")
    with pytest.raises(FileNotFoundError):
        storage.stat("alice", "b.txt/under-a-file")
    with pytest.raises(NotADirectoryError):
        storage.listdir("alice", "b.txt")
    with pytest.raises(FileNotFoundError):
        storage.listdir("alice", "nope")


def test_delete(storage: FileStorage) -> None:
    put(storage, "d/sub/f", b"x")
    put(storage, "g", b"y")
    storage.delete("alice", "g")
    assert not storage.exists("alice", "g")
    with pytest.raises(FolderNotEmpty, match="not empty"):
        storage.delete("alice", "d")
    assert read(storage, "d/sub/f") == b"x"
    storage.delete("alice", "d", recursive=True)
    assert storage.listdir("alice") == []
    storage.mkdir("alice", "empty")
    storage.delete("alice", "empty")
    with pytest.raises(FileNotFoundError):
        storage.delete("alice", "empty")
    with pytest.raises(PathError):
        storage.delete("alice", PurePosixPath(), recursive=True)
    assert tmp_entries(storage) == []


def test_move(storage: FileStorage) -> None:
    put(storage, "a.txt", b"A")
    put(storage, "b.txt", b"B")
    storage.move("alice", "a.txt", "new/place/a2.txt")
    assert read(storage, "new/place/a2.txt") == b"A"
    assert not storage.exists("alice", "a.txt")
    with pytest.raises(FileExistsError):
        storage.move("alice", "b.txt", "new/place/a2.txt")
    assert read(storage, "b.txt") == b"B"
    storage.move("alice", "b.txt", "new/place/a2.txt", overwrite=True)
    assert read(storage, "new/place/a2.txt") == b"B"
    with pytest.raises(FileNotFoundError):
        storage.move("alice", "b.txt", "c.txt")
    with pytest.raises(PathError, match="onto itself"):
        storage.move("alice", "new", "new")


def test_move_folder_into_itself_refused(storage: FileStorage) -> None:
    put(storage, "top/sub/f", b"x")
    for dst in ("top/sub", "top/inner", "top/sub/deeper"):
        with pytest.raises(PathError, match="into itself"):
            storage.move("alice", "top", dst)
        with pytest.raises(PathError, match="into itself"):
            storage.copy("alice", "top", dst)
    # A sibling whose name merely starts the same is fine.
    storage.move("alice", "top", "top2")
    assert read(storage, "top2/sub/f") == b"x"


def test_move_folder_overwrite(storage: FileStorage) -> None:
    put(storage, "src/one", b"1")
    put(storage, "dst/two", b"2")
    with pytest.raises(FileExistsError):
        storage.move("alice", "src", "dst")
    storage.move("alice", "src", "dst", overwrite=True)
    assert [n.name for n in storage.listdir("alice", "dst")] == ["one"]  # replaced, not merged
    put(storage, "file", b"f")
    with pytest.raises(NotADirectoryError):
        storage.move("alice", "dst", "file", overwrite=True)
    with pytest.raises(IsADirectoryError):
        storage.move("alice", "file", "dst", overwrite=True)
    put(storage, "p/q/r", b"r")
    with pytest.raises(PathError, match="holds the source"):
        storage.move("alice", "p/q", "p", overwrite=True)
    assert tmp_entries(storage) == []


def test_copy(storage: FileStorage) -> None:
    put(storage, "f.txt", b"data")
    put(storage, "dir/a", b"a")
    put(storage, "dir/sub/b", b"bb")
    info = storage.copy("alice", "f.txt", "g/f.txt")
    assert info.size == 4
    assert read(storage, "g/f.txt") == b"data" and read(storage, "f.txt") == b"data"
    storage.copy("alice", "dir", "dir2")
    assert read(storage, "dir2/sub/b") == b"bb" and read(storage, "dir/sub/b") == b"bb"
    with pytest.raises(FileExistsError):
        storage.copy("alice", "f.txt", "g/f.txt")
    put(storage, "f.txt", b"changed")
    storage.copy("alice", "f.txt", "g/f.txt", overwrite=True)
    assert read(storage, "g/f.txt") == b"changed"
    with pytest.raises(QuotaExceeded, match="copy refused"):
        storage.copy("alice", "dir", "dir3", quota_left=2)
    assert not storage.exists("alice", "dir3")
    # Copies are independent files, not hard links.
    put(storage, "dir2/a", b"changed")
    assert read(storage, "dir/a") == b"a"
    assert tmp_entries(storage) == []


def test_usage(storage: FileStorage) -> None:
    assert storage.usage("alice") == 0
    put(storage, "a", b"x" * 100)
    put(storage, "d/e/f", b"y" * 50)
    storage.mkdir("alice", "empty")
    put(storage, "other", b"z" * 1000, owner="bob")
    assert storage.usage("alice") == 150
    assert storage.usage("bob") == 1000
    storage.delete("alice", "a")
    assert storage.usage("alice") == 50
