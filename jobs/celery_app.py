"""The one Celery application of vocloud.

The broker is Redis when ``VOCLOUD_BROKER_URL`` says so, otherwise Celery's
``filesystem://`` transport under ``$VOCLOUD_HOME/broker`` (the embedded
mode: no server to install).  The broker only carries "run job X"; the
database says what X is and whether it still needs running, so messages
are acknowledged early and a lost one is simply sent again by the
dispatcher.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import time
import uuid
from queue import Empty
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from uws_service.config import QUEUES, Config

log = logging.getLogger(__name__)

RUN_JOB = "vocloud.run_job"


class _AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, but a message file appears only once it is complete.

    kombu writes each message in place under its final ``*.msg`` name, so a
    consumer polling the folder may move and read it while it is still
    empty; the JSONDecodeError then stops the whole worker ("Unrecoverable
    error"), with the jobs it runs.  Here the message is written under a
    name consumers ignore and renamed into place.  A consumer takes a message
    by renaming it into a folder inside the queue folder (kombu moves it to
    the system temporary folder, a copy when that is another file system),
    so exactly one consumer gets each message.
    """

    def _get(self, queue: str, timeout: Any = None) -> Any:
        suffix = f"{queue}.msg"
        taken_folder = os.path.join(self.data_folder_in, ".taken")
        os.makedirs(taken_folder, exist_ok=True)
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != suffix:
                continue
            taken = os.path.join(taken_folder, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), taken)
            except OSError:
                continue  # another consumer took it first
            try:
                with open(taken, "rb") as f:
                    payload = f.read()
                os.remove(taken)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()

    # kombu names the argument "payload" here and "message" in its base class.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(
                f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    """The ``filesystem://`` transport with :class:`_AtomicFilesystemChannel`."""

    Channel = _AtomicFilesystemChannel


def broker_settings(config: Config) -> dict[str, Any]:
    """Celery settings for the configured broker."""
    # Above the longest executionDuration, so a reserved message is never
    # handed to a second worker while the first still runs it.
    visibility = config.execution_duration_max + 900
    if config.broker_url:
        return {
            "broker_url": config.broker_url,
            "broker_transport_options": {"visibility_timeout": visibility},
        }
    folder = config.broker_dir / "queue"
    control = config.broker_dir / "control"
    for path in (folder, control):
        path.mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport": f"{__name__}:AtomicFilesystemTransport",
        "broker_transport_options": {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(control),
            "polling_interval": 0.05,
        },
    }


def make_celery(config: Config | None = None) -> Celery:
    config = config or Config.from_env()
    app = Celery("vocloud")
    app.conf.update(
        broker_settings(config),
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="io",
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


app = make_celery()


@app.task(name=RUN_JOB, ignore_result=True)
def run_job(job_id: str) -> None:
    """Run one UWS job (the database decides whether it still needs running)."""
    from jobs.runner import run_job as _run

    _run(job_id, worker_config())


_config: Config | None = None


def worker_config() -> Config:
    """The worker's configuration, read once per process."""
    global _config
    if _config is None:
        _config = Config.from_env()
    return _config


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


@worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    from uws_service import db, notify

    db.reset_after_fork()
    notify.reset_after_fork()
    # Objects imported so far live as long as the process: keeping them out of
    # the collector's scans spares the copy-on-write faults that each job's
    # fork() would otherwise cause.
    gc.freeze()
    # A pool process that outlives its worker would keep running jobs that
    # the reaper has already declared lost.
    die_with_parent()
