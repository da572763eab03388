"""Helpers for tests that run the store on fsspec's in-memory file system.

``memory://`` is a real fsspec file system, global to the process: every
test gets its own root and removes it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fsspec.implementations.memory import MemoryFileSystem


def clear_memory(root: str) -> None:
    """Remove every key and folder of the in-memory file system under ``root`` (``/name``)."""
    fs = MemoryFileSystem()
    prefix = root.rstrip("/") + "/"
    for key in [k for k in list(fs.store) if k == root or k.startswith(prefix)]:
        fs.store.pop(key, None)
    fs.pseudo_dirs[:] = [d for d in fs.pseudo_dirs if not (d == root or d.startswith(prefix))]


def memory_keys(root: str) -> list[str]:
    """Keys stored under ``root`` (``/name``), relative to it, sorted."""
    prefix = root.rstrip("/") + "/"
    return sorted(k[len(prefix):] for k in list(MemoryFileSystem().store) if k.startswith(prefix))


@contextmanager
def memory_url() -> Iterator[str]:
    """A fresh ``memory://vocloud-test-...`` URL, cleared on exit."""
    name = f"vocloud-test-{uuid.uuid4().hex[:12]}"
    try:
        yield f"memory://{name}"
    finally:
        clear_memory(f"/{name}")
