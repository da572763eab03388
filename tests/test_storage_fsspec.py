"""What the fsspec store does beyond the common suite of tests/test_storage.py.

Object stores have no folders, no rename and no symbolic links
(``uws_service/storage_fsspec.py``): folders exist by a marker object so
that empty ones are listed, writes are staged under ``.vocloud-tmp/`` and a
failed one leaves the old object and no temporary key, ranged reads stream,
and folders are moved, copied and deleted object by object.  Each test runs
on fsspec's ``memory://`` file system (keys only, like S3) and on fsspec's
local file system (real folders), both real fsspec implementations.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tests.conftest import make_config
from tests.storage_support import memory_keys, memory_url
from uws_service.storage import (
    CHUNK_SIZE,
    FileTooLarge,
    FolderNotEmpty,
    LocalStorage,
    PathError,
    QuotaExceeded,
    make_storage,
)
from uws_service.storage_fsspec import FOLDER_MARKER, FsspecStorage

KIB = 1024
MIB = 1024 * 1024


@pytest.fixture(params=["memory", "fsspec-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FsspecStorage]:
    if request.param == "memory":
        with memory_url() as url:
            yield FsspecStorage(url, scratch_dir=tmp_path / "scratch")
    else:
        yield FsspecStorage(f"local://{tmp_path / 'files'}", scratch_dir=tmp_path / "scratch")


def keys(store: FsspecStorage) -> list[str]:
    """Every file (object) under the root, relative to it."""
    return sorted(name[len(store.root) + 1:] for name in store.fs.find(store.root))


def read(store: FsspecStorage, rel: str, owner: str = "alice") -> bytes:
    with store.open_range(owner, rel) as data:
        return data.read_all()


def tmp_keys(store: FsspecStorage) -> list[str]:
    return [key for key in keys(store) if key.startswith(".vocloud-tmp/")]


# Folders ---------------------------------------------------------------------------


def test_empty_folders_exist_are_listed_and_survive(store: FsspecStorage) -> None:
    store.mkdir("alice", "a/empty")
    assert [(n.name, n.is_dir) for n in store.listdir("alice")] == [("a", True)]
    assert [(n.name, n.is_dir) for n in store.listdir("alice", "a")] == [("empty", True)]
    assert store.listdir("alice", "a/empty") == []
    assert store.stat("alice", "a/empty").is_dir
    assert f"alice/a/empty/{FOLDER_MARKER}" in keys(store)
    # A folder whose last file goes stays, as on a disk.
    store.write("alice", "b/only.txt", [b"x"])
    store.delete("alice", "b/only.txt")
    assert store.stat("alice", "b").is_dir
    assert store.listdir("alice", "b") == []
    # Markers are never shown, counted or accepted as names.
    assert store.usage("alice") == 0
    with pytest.raises(PathError, match="reserved"):
        store.stat("alice", f"a/{FOLDER_MARKER}")
    store.delete("alice", "a/empty")
    assert [n.name for n in store.listdir("alice", "a")] == []
    with pytest.raises(FileNotFoundError):
        store.stat("alice", "a/empty")


def test_folder_without_marker_is_still_a_folder(store: FsspecStorage) -> None:
    """Keys written by another tool make implicit folders; mkdir gives them a marker."""
    store.fs.makedirs(f"{store.root}/alice/ext/deep", exist_ok=True)
    store.fs.pipe_file(f"{store.root}/alice/ext/deep/f.bin", b"abc")
    assert [(n.name, n.is_dir) for n in store.listdir("alice")] == [("ext", True)]
    assert store.stat("alice", "ext/deep/f.bin").size == 3
    store.mkdir("alice", "ext")
    assert f"alice/ext/{FOLDER_MARKER}" in keys(store)
    with pytest.raises(FolderNotEmpty):
        store.delete("alice", "ext")
    store.delete("alice", "ext/deep", recursive=True)
    assert store.stat("alice", "ext").is_dir


def test_move_copy_delete_folders(store: FsspecStorage) -> None:
    store.write("alice", "top/a.txt", [b"A"])
    store.write("alice", "top/sub/b.txt", [b"BB"])
    store.mkdir("alice", "top/sub/empty")
    store.write("alice", "topper/keep.txt", [b"K"])  # shares the prefix "top"

    info = store.copy("alice", "top", "copy/of/top")
    assert info.is_dir
    assert read(store, "copy/of/top/sub/b.txt") == b"BB"
    assert store.stat("alice", "copy/of/top/sub/empty").is_dir
    assert store.usage("alice") == 2 * 3 + 1

    store.move("alice", "top", "moved")
    assert not store.exists("alice", "top")
    assert [n.name for n in store.listdir("alice", "moved")] == ["a.txt", "sub"]
    assert [n.name for n in store.listdir("alice", "moved/sub")] == ["b.txt", "empty"]
    assert read(store, "topper/keep.txt") == b"K"
    assert not [k for k in keys(store) if k.startswith("alice/top/")]

    # Replacing a folder replaces it as a whole.
    store.move("alice", "copy/of/top", "moved", overwrite=True)
    assert [n.name for n in store.listdir("alice", "moved/sub")] == ["b.txt", "empty"]
    assert not store.exists("alice", "copy/of/top")
    assert store.stat("alice", "copy/of").is_dir  # the parent stays

    with pytest.raises(QuotaExceeded, match="copy refused"):
        store.copy("alice", "moved", "again", quota_left=2)
    assert not store.exists("alice", "again")

    store.delete("alice", "moved", recursive=True)
    assert not [k for k in keys(store) if k.startswith("alice/moved")]
    assert read(store, "topper/keep.txt") == b"K"
    assert tmp_keys(store) == []


def test_glob_characters_are_plain_names(store: FsspecStorage) -> None:
    """Names with ``*``, ``?`` and ``[...]`` never act as patterns."""
    for name in ("xa", "xb", "x[ab]", "x*", "x?"):
        store.write("alice", f"{name}/f", [name.encode()])
    store.delete("alice", "x[ab]", recursive=True)
    store.delete("alice", "x*", recursive=True)
    store.move("alice", "x?", "y?")
    assert [n.name for n in store.listdir("alice")] == ["xa", "xb", "y?"]
    assert read(store, "xa/f") == b"xa" and read(store, "y?/f") == b"x?"
    store.copy("alice", "y?", "z[0-9]")
    assert read(store, "z[0-9]/f") == b"x?"


# Writes ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["quota", "max_size", "error"])
def test_failed_write_keeps_old_object_and_no_temporary_key(store: FsspecStorage,
                                                            limit: str) -> None:
    old = b"old content" * 100
    store.write("alice", "d/data.bin", [old])
    before = keys(store)
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(10):
            pulled.append(i)
            if limit == "error" and i == 3:
                raise ConnectionResetError("client went away")
            yield bytes([i]) * (64 * KIB)

    expected: type[BaseException] = {"quota": QuotaExceeded, "max_size": FileTooLarge,
                                     "error": ConnectionResetError}[limit]
    with pytest.raises(expected):
        store.write("alice", "d/data.bin", chunks(),
                    quota_left=150 * KIB if limit == "quota" else None,
                    max_size=150 * KIB if limit == "max_size" else None)
    assert pulled == [0, 1, 2] if limit != "error" else pulled == [0, 1, 2, 3]
    assert read(store, "d/data.bin") == old
    assert store.checksums("alice", "d/data.bin").md5 == hashlib.md5(old).hexdigest()
    assert tmp_keys(store) == []
    assert keys(store) == before
    # A new file that fails leaves nothing behind either.
    with pytest.raises(expected):
        store.write("alice", "d/new.bin", chunks(),
                    quota_left=150 * KIB if limit == "quota" else None,
                    max_size=150 * KIB if limit == "max_size" else None)
    assert [n.name for n in store.listdir("alice", "d")] == ["data.bin"]
    assert tmp_keys(store) == []


def test_cleanup_tmp_removes_stale_keys(store: FsspecStorage) -> None:
    store.fs.makedirs(store.tmp_root, exist_ok=True)
    stale, fresh = f"{store.tmp_root}/stale", f"{store.tmp_root}/fresh"
    store.fs.pipe_file(stale, b"x")
    store.fs.pipe_file(fresh, b"y")
    if isinstance(store.fs, MemoryFileSystem):
        store.fs.store[stale.rstrip("/")].created = datetime(2000, 1, 1, tzinfo=UTC)
    else:
        os.utime(store.fs._strip_protocol(stale), (0, 0))
    assert store.cleanup_tmp(older_than=3600) == 1
    assert tmp_keys(store) == [".vocloud-tmp/fresh"]


# Reads -----------------------------------------------------------------------------


def test_range_reads_stream(store: FsspecStorage) -> None:
    """A range is read by seeking and reading 1 MiB chunks, never the whole file at once."""
    data = os.urandom(12 * MIB + 5)
    store.write("alice", "big.bin", [data[i:i + MIB] for i in range(0, len(data), MIB)])
    start, end = 3 * MIB + 7, 9 * MIB + 11
    with store.open_range("alice", "big.bin", start, end) as rng:
        assert (rng.start, rng.end, rng.size) == (start, end, len(data))
        tracemalloc.start()
        try:
            digest = hashlib.sha256()
            sizes = []
            for chunk in rng:
                sizes.append(len(chunk))
                digest.update(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert max(sizes) <= CHUNK_SIZE and sum(sizes) == end - start + 1
    assert digest.hexdigest() == hashlib.sha256(data[start:end + 1]).hexdigest()
    assert peak < 6 * MIB, f"peak {peak} bytes while reading a 6 MB range of 12 MB"
    with store.open_range("alice", "big.bin", len(data) - 1) as last:
        assert last.read_all() == data[-1:]


def test_local_copy_is_a_temporary_download(store: FsspecStorage) -> None:
    store.write("alice", "s/spec.fits", [b"SIMPLE  = T"])
    with store.local_copy("alice", "s/spec.fits") as path:
        assert path.name == "spec.fits"
        assert path.read_bytes() == b"SIMPLE  = T"
        assert store.scratch_dir in path.parents
    assert not path.exists()
    with pytest.raises(FileNotFoundError), store.local_copy("alice", "s/missing.fits"):
        pass
    with pytest.raises(IsADirectoryError), store.local_copy("alice", "s"):
        pass


def test_is_empty(store: FsspecStorage) -> None:
    assert store.is_empty()
    store.write("alice", "x", [b"x"])
    assert not store.is_empty()
    store.delete("alice", "x")
    assert not store.is_empty()  # the owner's folder is still there, as on disk


# Configuration ---------------------------------------------------------------------


def test_config_picks_the_store(tmp_path: Path) -> None:
    local = make_config(tmp_path / "a")
    assert local.storage_url is None
    assert isinstance(make_storage(local), LocalStorage)
    as_url = make_config(tmp_path / "b", storage=f"file://{tmp_path / 'files'}")
    assert as_url.storage_url is None and as_url.storage_root == tmp_path / "files"
    assert isinstance(make_storage(as_url), LocalStorage)
    with memory_url() as url:
        config = make_config(tmp_path / "c", storage=url)
        assert config.storage_url == url
        storage = make_storage(config)
        assert isinstance(storage, FsspecStorage)
        assert storage.scratch_dir == config.home / "scratch"
        with pytest.raises(ValueError, match="not a local folder"):
            _ = config.storage_root
    with pytest.raises(ValueError, match="unknown storage protocol 'nosuch'"):
        make_config(tmp_path / "d", storage="nosuch://bucket/x")
    with pytest.raises(ValueError, match="root of its file system"):
        FsspecStorage("memory://")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_config_names_the_missing_package(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="s3fs"):
        make_config(tmp_path / "e", storage="s3://bucket/vocloud")
    assert time.monotonic() - started < 5  # refused at once, nothing contacted


def test_memory_roots_are_cleared() -> None:
    with memory_url() as url:
        store = FsspecStorage(url)
        store.write("alice", "f", [b"x"])
        root = store.root
        assert memory_keys(root) == [f"alice/{FOLDER_MARKER}", "alice/f"]
    assert memory_keys(root) == []
