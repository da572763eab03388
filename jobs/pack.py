"""``pack``: bulk packing of a folder of spectra into Parquet and/or Avro (issue 3).

Every file of a folder in the owner's store (optionally recursive, filtered
by a glob on the file name) is read with
:func:`~vo.spectra.readers.read_spectrum`; files that cannot be read are
skipped and listed, with the reason, in a JSON manifest.  The spectra go to
a Parquet data set ``spectra.parquet/`` (one result per part file, for Spark
and machine learning) and/or an Avro container file ``spectra.avro`` (for
exchange).  The same packing backs the ``vocloud pack`` command.

Only Flask-free modules are imported: this runs in a worker process.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from jobs.base import JobContext, JobType, owner_store
from jobs.errors import JobFatalError, JobUsageError
from uws_service.config import Config
from uws_service.storage import FileStorage, PathError, clean_path, make_storage
from vo.spectra.model import Spectrum
from vo.spectra.packing import iter_parquet_batches, write_avro, write_parquet
from vo.spectra.readers import SpectrumReadError, read_spectrum

#: Output formats of the ``format`` parameter.
FORMATS = ("parquet", "avro", "both")
#: Media types of the results.
PARQUET_MIME = "application/vnd.apache.parquet"
AVRO_MIME = "application/avro"
#: Names of the outputs inside the output folder.
PARQUET_DIR = "spectra.parquet"
AVRO_FILE = "spectra.avro"
MANIFEST_FILE = "manifest.json"

#: ``progress(fraction, message)``, as :meth:`jobs.base.JobContext.progress`.
ProgressFunction = Callable[[float | None, str | None], None]
#: A file to read: a local path, or a callable that lends one for a while (a context
#: manager yielding the path, such as :meth:`~uws_service.storage.FileStorage.local_copy`).
FileSource = Path | Callable[[], AbstractContextManager[Path]]


class NothingToPack(ValueError):
    """Not one spectrum could be read from the input; ``report`` says why per file."""

    def __init__(self, message: str, report: PackReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class PackReport:
    """What a packing did.

    Attributes
    ----------
    files : list of dict
        One entry per input file, in order: ``path``, ``status`` (``"ok"`` or
        ``"skipped"``), and ``spectra`` (ok) or ``reason`` (skipped).
    spectra : int
        Spectra written.
    parquet_files : list of pathlib.Path
        Part files of the Parquet data set (empty unless Parquet was asked for).
    avro_file : pathlib.Path or None
        The Avro container file, if Avro was asked for.
    """

    files: list[dict[str, Any]] = field(default_factory=list)
    spectra: int = 0
    parquet_files: list[Path] = field(default_factory=list)
    avro_file: Path | None = None

    @property
    def skipped(self) -> list[dict[str, Any]]:
        """Entries of the files that were skipped."""
        return [f for f in self.files if f["status"] == "skipped"]

    @property
    def read(self) -> int:
        """Number of files that gave at least one spectrum."""
        return sum(1 for f in self.files if f["status"] == "ok")

    def manifest(self, output_dir: Path, **extra: Any) -> dict[str, Any]:
        """The JSON manifest: counts, outputs (relative to ``output_dir``) and files."""
        outputs = [p.relative_to(output_dir).as_posix() for p in self.parquet_files]
        if self.avro_file is not None:
            outputs.append(self.avro_file.relative_to(output_dir).as_posix())
        return {**extra, "files_total": len(self.files), "files_read": self.read,
                "files_skipped": len(self.skipped), "spectra": self.spectra,
                "outputs": outputs, "files": self.files}


def _no_progress(fraction: float | None, message: str | None = None) -> None:
    """Progress sink that ignores everything."""


def _lend(source: FileSource) -> AbstractContextManager[Path]:
    """A context manager yielding the local path of a file to read."""
    return nullcontext(source) if isinstance(source, Path) else source()


def pack_files(files: Sequence[tuple[str, FileSource]], output_dir: Path,
               fmt: str = "parquet", progress: ProgressFunction = _no_progress) -> PackReport:
    """Read spectra files and write them as Parquet and/or Avro into ``output_dir``.

    Parameters
    ----------
    files : sequence of (str, FileSource)
        Name shown in the manifest (and used as ``meta.source``) and path of
        each file (or a callable lending one, see :data:`FileSource`), in
        the order the spectra are written.  Files are lent one at a time.
    output_dir : pathlib.Path
        Folder receiving ``spectra.parquet/`` and/or ``spectra.avro``;
        created when missing, existing outputs are replaced.
    fmt : {'parquet', 'avro', 'both'}
        What to write.
    progress : callable, optional
        Called with the fraction done (0 to 1) and a message about every 2 %.

    Returns
    -------
    PackReport
        Per-file outcome, spectrum count and written files.

    Raises
    ------
    ValueError
        For an unknown ``fmt``.
    NothingToPack
        When no file holds a readable spectrum (no output is left behind).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    output_dir.mkdir(parents=True, exist_ok=True)
    report = PackReport()
    total = len(files)
    step = max(1, total // 50)
    read_share = 0.9 if fmt == "both" else 1.0

    def spectra() -> Iterator[Spectrum]:
        for index, (name, source) in enumerate(files):
            try:
                with _lend(source) as path:
                    found = read_spectrum(path, name=name)
            except SpectrumReadError as exc:
                report.files.append({"path": name, "status": "skipped", "reason": str(exc)})
            except Exception as exc:  # a bad file must not stop the packing
                report.files.append({"path": name, "status": "skipped",
                                     "reason": f"{type(exc).__name__}: {exc}"})
            else:
                if found:
                    report.files.append({"path": name, "status": "ok", "spectra": len(found)})
                    report.spectra += len(found)
                    yield from found
                else:
                    report.files.append({"path": name, "status": "skipped",
                                         "reason": "no spectrum in the file"})
            done = index + 1
            if done % step == 0 or done == total:
                progress(read_share * done / total, f"read {done} of {total} files")

    parquet_dir = output_dir / PARQUET_DIR
    avro_path = output_dir / AVRO_FILE
    try:
        if fmt in ("parquet", "both"):
            if parquet_dir.is_dir():
                for old in parquet_dir.glob("*.parquet"):
                    old.unlink()
            report.parquet_files = write_parquet(spectra(), parquet_dir, overwrite=True)
            if not report.spectra:
                raise NothingToPack(_nothing_message(report), report)
            if fmt == "both":
                progress(read_share, "writing Avro")
                batches = (s for part in report.parquet_files
                           for batch in iter_parquet_batches(part) for s in batch)
                report.avro_file = write_avro(batches, avro_path)
        else:
            report.avro_file = write_avro(spectra(), avro_path)
            if not report.spectra:
                raise NothingToPack(_nothing_message(report), report)
    except BaseException:
        shutil.rmtree(parquet_dir, ignore_errors=True)
        avro_path.unlink(missing_ok=True)
        report.parquet_files, report.avro_file = [], None
        raise
    progress(1.0, f"packed {report.spectra} spectra from {report.read} files")
    return report


def _nothing_message(report: PackReport) -> str:
    if not report.files:
        return "no files to pack: the folder is empty or no file name matches the pattern"
    first = report.skipped[0]
    return (f"none of the {len(report.files)} files holds a readable spectrum "
            f"(first: {first['path']}: {first['reason']})")


def local_files(root: Path, recursive: bool = True, pattern: str = "*") -> list[tuple[str, Path]]:
    """Files of a local folder, as ``(relative POSIX name, path)``, sorted.

    Hidden files and folders (``.`` prefix) and symbolic links are left out.
    """
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.is_symlink() or not fnmatch.fnmatchcase(name, pattern):
                continue
            found.append((path.relative_to(root).as_posix(), path))
    return found


def store_files(storage: FileStorage, owner: str, folder: PurePosixPath,
                recursive: bool = True, pattern: str = "*") -> list[tuple[str, FileSource]]:
    """Files of ``{owner}/{folder}`` in the store, as ``(path in the tree, source)``.

    Each source lends the file through
    :meth:`~uws_service.storage.FileStorage.local_copy` when it is read (the
    file itself in a local store, a temporary download from an object
    store).  Symbolic links and vocloud's reserved names are left out (see
    :meth:`~uws_service.storage.FileStorage.listdir`).  A file given as
    ``folder`` is packed alone.
    """
    info = storage.stat(owner, folder)
    if not info.is_dir:
        return [(folder.as_posix(), partial(storage.local_copy, owner, folder))]
    found: list[tuple[str, FileSource]] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        subfolders = []
        for node in storage.listdir(owner, current):
            if node.is_dir:
                subfolders.append(node.path)
            elif fnmatch.fnmatchcase(node.name, pattern):
                found.append((node.path.as_posix(),
                              partial(storage.local_copy, owner, node.path)))
        if recursive:
            pending.extend(reversed(subfolders))
    found.sort(key=lambda item: item[0])
    return found


def run(params: Mapping[str, Any], ctx: JobContext) -> None:
    """Pack the owner's folder ``params['input']``; see the module docstring."""
    try:
        folder = clean_path(str(params["input"]).strip("/"))
        storage = make_storage(Config.from_env())
        files = store_files(storage, ctx.owner, folder, bool(params.get("recursive", True)),
                            str(params.get("pattern", "*")))
    except PathError as exc:
        raise JobUsageError(f"input {params['input']!r} is not a folder of yours: {exc}",
                            "Give a path inside your own folder, such as 'demo'.") from None
    except (FileNotFoundError, NotADirectoryError):
        raise JobUsageError(f"input {params['input']!r}: no such folder in your store",
                            "Upload the spectra first (PUT /files/{user}/{path}).") from None
    ctx.progress(0.0, f"{len(files)} files to read")
    fmt = str(params.get("format", "parquet"))
    try:
        report = pack_files(files, ctx.results_dir, fmt, ctx.progress)
    except NothingToPack as exc:
        raise JobFatalError(f"nothing to pack in {folder.as_posix()!r}: {exc}",
                            "\n".join(f"{f['path']}: {f['reason']}"
                                      for f in exc.report.skipped[:50]) or None) from None
    for path in report.parquet_files:
        ctx.add_result(f"parquet-{path.stem.removeprefix('part-')}",
                       path.relative_to(ctx.results_dir).as_posix(), PARQUET_MIME)
    if report.avro_file is not None:
        ctx.add_result("avro", AVRO_FILE, AVRO_MIME)
    if params.get("store_as"):
        stored = _store_outputs(ctx, report, str(params["store_as"]))
        ctx.progress(1.0, f"{report.spectra} spectra packed, kept in {stored!r} of your store")
    manifest = report.manifest(ctx.results_dir, input=folder.as_posix(), format=fmt,
                               recursive=bool(params.get("recursive", True)),
                               pattern=str(params.get("pattern", "*")))
    ctx.add_result("manifest", MANIFEST_FILE, "application/json").write_text(
        json.dumps(manifest, indent=2))


def _store_outputs(ctx: JobContext, report: PackReport, store_as: str) -> str:
    """Put the packed outputs into the owner's store under ``store_as``; returns the folder."""
    from uws_service.errors import ServiceError
    from uws_service.storage import file_chunks

    try:
        folder = clean_path(store_as.strip("/"))
    except PathError as exc:
        raise JobUsageError(f"store_as {store_as!r}: {exc}") from None
    files, owner = owner_store(ctx)
    outputs = [*report.parquet_files, *([report.avro_file] if report.avro_file else [])]
    for path in outputs:
        relative = path.relative_to(ctx.results_dir).as_posix()
        try:
            files.put(owner, owner.name, f"{folder.as_posix()}/{relative}", file_chunks(path),
                      content_length=path.stat().st_size,
                      content_type=PARQUET_MIME if path.suffix == ".parquet" else AVRO_MIME)
        except ServiceError as exc:
            raise JobFatalError(f"could not keep {relative!r} in {folder.as_posix()!r}: "
                                f"{exc.message}") from None
    return folder.as_posix()


JOB_TYPE = JobType(name="pack", queue="io", run=run,
                   title="Pack a folder of spectra into Parquet (Spark, ML) and/or Avro")
