"""The embedded broker (kombu's ``filesystem://`` transport) never hands out a half-written message.

kombu's own channel writes a message file in place under its final name,
so a consumer polling the folder may take it while it is still being
written; the worker then dies of a JSONDecodeError ("Unrecoverable error")
with every job it runs.  vocloud's transport writes aside and renames.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

from kombu import Connection

from jobs.celery_app import AtomicFilesystemTransport

MESSAGES = 30


def test_consumer_never_sees_a_partial_message(tmp_path: Path) -> None:
    """Large messages written while a consumer polls all arrive, each one whole."""
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "store_processed": False}
    body = "x" * 1_000_000  # big enough that writing takes a while

    def produce() -> None:
        with Connection("filesystem://", transport=AtomicFilesystemTransport,
                        transport_options=options) as connection:
            for i in range(MESSAGES):
                connection.default_channel._put("io", {"i": i, "body": body})

    producer = threading.Thread(target=produce)
    producer.start()
    received: list[dict[str, Any]] = []
    try:
        with Connection("filesystem://", transport=AtomicFilesystemTransport,
                        transport_options=options) as connection:
            channel = connection.default_channel
            deadline = time.monotonic() + 60
            while len(received) < MESSAGES and time.monotonic() < deadline:
                try:
                    received.append(channel._get("io"))  # raises ValueError if partial
                except Empty:
                    time.sleep(0.001)
    finally:
        producer.join()
    assert sorted(m["i"] for m in received) == list(range(MESSAGES))
    assert all(m["body"] == body for m in received)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not leftovers, "files left behind in the queue folder"
