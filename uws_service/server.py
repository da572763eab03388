"""``vocloud serve``: the web application plus what must run beside it.

Starts, in one process: the WSGI server (waitress, threaded, so blocking
``WAIT`` requests do not stall others), the dispatcher/reaper thread and,
in the embedded mode, one supervised ``vocloud worker`` process per job
family, restarted if it dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from uws_service.app import create_app
from uws_service.config import Config
from uws_service.dispatcher import Dispatcher, celery_sender

log = logging.getLogger(__name__)


class WorkerSupervisor:
    """Keeps one ``vocloud worker -Q queue`` process alive per configured queue."""

    def __init__(self, config: Config, on_restart: callable | None = None) -> None:  # type: ignore[valid-type]
        self.config = config
        self.on_restart = on_restart
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self, queue: str, concurrency: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "uws_service.cli", "worker", "-Q", queue,
                   "--concurrency", str(concurrency)]
        log.info("starting worker: %s", " ".join(command))
        return subprocess.Popen(command, start_new_session=True)

    def start(self) -> None:
        for queue, concurrency in self.config.embedded_workers.items():
            self.processes[queue] = self._spawn(queue, concurrency)
        self._thread = threading.Thread(target=self._watch, name="vocloud-workers", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for queue, process in list(self.processes.items()):
                if process.poll() is None:
                    continue
                log.warning("worker for queue %s exited with %s; restarting", queue,
                            process.returncode)
                self.processes[queue] = self._spawn(queue, self.config.embedded_workers[queue])
                if self.on_restart is not None:
                    self.on_restart()

    def stop(self) -> None:
        self._stop.set()
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def serve(config: Config, host: str, port: int) -> None:
    """Bind the port, then start the dispatcher (and the embedded workers) and serve.

    Binding first means a port already in use fails at once, before any
    worker is started.
    """
    from waitress.server import create_server

    app = create_app(config)
    server = create_server(app, host=host, port=port, threads=config.server_threads,
                           channel_timeout=max(120, int(config.wait_max) + 60),
                           connection_limit=1000, ident="vocloud")
    services = app.extensions["vocloud"]
    dispatcher = Dispatcher(config, services.store, celery_sender())
    supervisor = None
    if config.start_workers:
        supervisor = WorkerSupervisor(config, on_restart=dispatcher.redispatch_all)
        supervisor.start()
    dispatcher.redispatch_all()
    dispatcher.start()

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    print(f"vocloud: serving {config.public_url} (listening on {host}:{port}, "
          f"{'embedded' if config.embedded else 'broker ' + str(config.broker_url)})",
          flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        dispatcher.stop()
        if supervisor is not None:
            supervisor.stop()
