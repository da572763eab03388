"""The contract between a job type module and the machinery that runs it.

A job type module in ``jobs/`` defines ``JOB_TYPE = JobType(...)`` with a
pure ``run(params, ctx)`` function; its parameters are declared once, in
``schemas/{name}.json``.  ``run`` writes its result files into
``ctx.results_dir`` and may call ``ctx.progress``.  It runs in a process of
its own, so it may block, use all cores, or be killed at any moment.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uws_service.store import JobStore, ResultFile

if TYPE_CHECKING:
    from uws_service.filestore import FileService
    from uws_service.users import Principal

RESULTS_DIR = "results"
UPLOADS_DIR = "uploads"
_MANIFEST = ".results.json"


@dataclass
class JobContext:
    """What a running job knows about itself.

    Attributes
    ----------
    job_id : str
        The UWS job identifier.
    owner : str
        Name of the user who owns the job.
    job_dir : pathlib.Path
        The job's private folder; results go to ``results_dir`` inside it.
    execution_duration : int
        Seconds the job may run before it is stopped.
    """

    job_id: str
    owner: str
    job_dir: Path
    execution_duration: int
    store: JobStore | None = None
    #: Makes ``store`` on first use, so a job that reports nothing opens no connection.
    store_factory: Callable[[], JobStore] | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("vocloud.job"))

    @property
    def results_dir(self) -> Path:
        path = self.job_dir / RESULTS_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def progress(self, fraction: float | None, message: str | None = None) -> None:
        """Report how far the job is (0 to 1) and what it is doing; shown in ``jobInfo``."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        if self.store is None and self.store_factory is not None:
            self.store = self.store_factory()
        if self.store is not None:
            self.store.set_progress(self.job_id, fraction, message)

    def add_result(self, result_id: str, filename: str, mime_type: str | None = None) -> Path:
        """Name a result: ``filename`` in ``results_dir`` is published as ``result_id``.

        Files in ``results_dir`` that are not named this way are published
        under their file name.  Returns the path to write to.
        """
        manifest_path = self.job_dir / _MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
        manifest = [m for m in manifest if m["id"] != result_id]
        manifest.append({"id": result_id, "file": filename, "mime_type": mime_type})
        manifest_path.write_text(json.dumps(manifest))
        return self.results_dir / filename


def collect_results(job_dir: Path) -> list[ResultFile]:
    """Every result file a job wrote, named ones first, in a stable order."""
    results_dir = job_dir / RESULTS_DIR
    manifest_path = job_dir / _MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    found: list[ResultFile] = []
    named: set[str] = set()
    for entry in manifest:
        path = results_dir / entry["file"]
        if path.is_file():
            found.append(ResultFile(entry["id"], f"{RESULTS_DIR}/{entry['file']}",
                                    path.stat().st_size,
                                    entry.get("mime_type") or _guess_type(path)))
            named.add(entry["file"])
    if results_dir.is_dir():
        for path in sorted(p for p in results_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(results_dir).as_posix()
            if relative not in named:
                found.append(ResultFile(relative, f"{RESULTS_DIR}/{relative}",
                                        path.stat().st_size, _guess_type(path)))
    return found


def _guess_type(path: Path) -> str:
    if path.suffix in (".vot", ".votable"):
        return "application/x-votable+xml"
    if path.suffix in (".fits", ".fit"):
        return "application/fits"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def owner_store(ctx: JobContext) -> tuple[FileService, Principal]:
    """The file store and the job's owner: a job reads and writes with the owner's rights.

    Raises
    ------
    JobFatalError
        When the owner's account has been removed since the job was created.
    """
    from jobs.errors import JobFatalError
    from uws_service.config import Config
    from uws_service.filestore import FileService

    files = FileService.from_config(Config.from_env())
    owner = files.principal(ctx.owner)
    if owner is None:
        raise JobFatalError(f"the job's owner {ctx.owner!r} no longer exists")
    return files, owner


RunFunction = Callable[[Mapping[str, Any], JobContext], None]


@dataclass(frozen=True)
class JobType:
    """A kind of job: what runs, on which queue, and what it is for.

    Parameters
    ----------
    name : str
        The job type in URLs (``/uws/{name}``) and the schema file name.
    queue : {'io', 'ml', 'spark'}
        The Celery queue (job family) its jobs run on.
    run : callable
        ``run(params, ctx)``: does the work, writes results to ``ctx.results_dir``.
    title : str
        One line for people.
    estimate : callable, optional
        ``estimate(params) -> seconds``, used for the UWS quote.
    cancel : callable, optional
        ``cancel(ctx)``: releases external resources after an abort.
    """

    name: str
    queue: str
    run: RunFunction
    title: str
    estimate: Callable[[Mapping[str, Any]], float] | None = None
    cancel: Callable[[JobContext], None] | None = None
