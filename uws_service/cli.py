"""The ``vocloud`` command: serve, worker, db, user, token, jobs and upload."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from uws_service.config import QUEUES, Config
from uws_service.storage import file_md5


def _config() -> Config:
    return Config.from_env()


@click.group()
@click.option("--log-level", default=lambda: os.environ.get("VOCLOUD_LOG_LEVEL", "INFO"),
              show_default="INFO", help="Python logging level.")
def main(log_level: str) -> None:
    """vocloud: machine learning on astronomical spectra, as IVOA services."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


# serve and worker -------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the web service (and, embedded, its dispatcher and workers)."""
    from uws_service.migrations import upgrade
    from uws_service.server import serve as run_server

    config = _config()
    if config.database_url.startswith("sqlite"):
        upgrade(config.database_url)
    _bootstrap(config)
    try:
        run_server(config, host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise click.ClickException(f"{host}:{port} is already in use (is another vocloud "
                                   "running?); stop it, or choose another port with --port") \
            from None


def _bootstrap(config: Config) -> None:
    """On a database without users (or only ``system``, the owner of the demo data),
    create the admin ``local`` and print its token once."""
    from uws_service.db import get_database
    from uws_service.ingest import DEMO_OWNER
    from uws_service.users import UserError, UserService

    users = UserService(get_database(config.database_url), config.secret_key)
    if users.count_users() > (1 if users.get_user(DEMO_OWNER) else 0):
        return
    try:
        users.create_user("local", None, admin=True)
    except UserError:
        return
    token = users.create_token("local", "created by vocloud serve on an empty database")
    click.echo("vocloud: created the admin user 'local'. Its API token (shown only once):")
    click.echo(f"    {token}")
    click.echo("Use it as a Bearer token, or as the password of 'local' in HTTP Basic.")


@main.command()
@click.option("-Q", "--queues", default=",".join(QUEUES), show_default=True,
              help="Comma-separated job families to take jobs from.")
@click.option("--concurrency", default=2, show_default=True, type=int,
              help="Jobs this worker runs at the same time.")
def worker(queues: str, concurrency: int) -> None:
    """Run a Celery worker that executes jobs."""
    from celery.signals import worker_ready

    from jobs.celery_app import app
    from uws_service.db import get_database
    from uws_service.dispatcher import Dispatcher, celery_sender
    from uws_service.store import JobStore

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(wanted) - set(QUEUES)
    if unknown:
        raise click.BadParameter(f"unknown queues {sorted(unknown)}; use {', '.join(QUEUES)}")
    config = _config()

    @worker_ready.connect(weak=False)
    def _ready(**_: object) -> None:
        # Requests held by a worker that died (or a broker that restarted)
        # are gone: have every queued job sent again.
        store = JobStore(get_database(config.database_url))
        Dispatcher(config, store, celery_sender()).redispatch_all()
        click.echo(f"vocloud: worker {name} ready (queues {', '.join(wanted)}, "
                   f"concurrency {concurrency})")

    name = f"vocloud-{'-'.join(wanted)}-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(["worker", "-Q", ",".join(wanted), "--concurrency", str(concurrency),
                     "--pool", "prefork", "-n", name,
                     "--loglevel", logging.getLevelName(logging.getLogger().level),
                     "--without-gossip", "--without-mingle", "--without-heartbeat"])


# db -----------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations."""
    from uws_service.migrations import upgrade

    config = _config()
    config.home.mkdir(parents=True, exist_ok=True)
    upgrade(config.database_url)
    click.echo("database is up to date")


# users and tokens ---------------------------------------------------------------


@main.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Give the user access to everything.")
def user_create(name: str, admin: bool) -> None:
    """Create user NAME; the password comes from a prompt, or stdin when piped."""
    from uws_service.db import get_database
    from uws_service.users import UserError, UserService

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    config = _config()
    try:
        UserService(get_database(config.database_url), config.secret_key).create_user(
            name, password, admin=admin)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {'admin ' if admin else ''}user {name}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
def token_create(name: str, label: str) -> None:
    """Print a new API token for user NAME."""
    from uws_service.db import get_database
    from uws_service.users import UserError, UserService

    config = _config()
    try:
        value = UserService(get_database(config.database_url), config.secret_key).create_token(
            name, label)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(value)


# jobs ---------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """UWS jobs."""


@jobs.command("list")
@click.option("--owner", default=None, help="Only this user's jobs.")
@click.option("--phase", "phases", multiple=True, help="Only jobs in this phase (repeatable).")
@click.option("--last", type=int, default=None, help="Only the N most recent jobs.")
def jobs_list(owner: str | None, phases: tuple[str, ...], last: int | None) -> None:
    """List jobs of all types."""
    from uws_service.db import get_database
    from uws_service.store import JobStore
    from uws_service.users import UserService
    from vo.timefmt import format_time

    config = _config()
    database = get_database(config.database_url)
    owner_id = None
    if owner:
        principal = UserService(database, config.secret_key).get_user(owner)
        if principal is None:
            raise click.ClickException(f"no user {owner!r}")
        owner_id = principal.id
    rows = JobStore(database).list_jobs(owner_id=owner_id, phases=[p.upper() for p in phases],
                                   last=last)
    click.echo(f"{'JOB':<18} {'TYPE':<10} {'OWNER':<12} {'PHASE':<10} {'CREATED':<25} RUNID")
    for job in rows:
        click.echo(f"{job.id:<18} {job.job_type:<10} {job.owner.name:<12} {job.phase:<10} "
                   f"{format_time(job.creation_time):<25} {job.run_id or ''}")


# demo data ----------------------------------------------------------------------


@main.command("demo-data")
@click.argument("directory", required=False,
                type=click.Path(file_okay=False, writable=True))
@click.option("--count", default=200, show_default=True, type=click.IntRange(min=0),
              help="How many spectra to write.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the random numbers (same seed, same files).")
@click.option("--load", is_flag=True,
              help="Load the collection into the store instead, public, as the user "
                   "'system' (folder 'demo').")
@click.option("--if-empty", is_flag=True,
              help="With --load: only when nobody has stored anything yet.")
def demo_data(directory: str | None, count: int, seed: int, load: bool,
              if_empty: bool) -> None:
    """Write a synthetic collection of Be-star H-alpha spectra to DIRECTORY.

    The spectra are written in every supported file layout in turn (FITS
    table, FITS images with linear/log10/ln wavelength scales, LAMOST-like
    images, VOTable, CSV).  With --load they go into the store instead,
    where anyone can read them and every spectrum is in the catalogue.
    """
    from collections import Counter

    from vo.spectra.demo import generate_collection, plan_layouts, write_collection

    if load:
        from uws_service.db import get_database
        from uws_service.filestore import FileService
        from uws_service.ingest import DEMO_FOLDER, DEMO_OWNER, load_demo_data, store_is_empty
        from uws_service.users import UserService

        config = _config()
        database = get_database(config.database_url)
        files = FileService.from_config(config, database)
        if if_empty and not store_is_empty(files):
            click.echo("vocloud: the store holds data already; demo data not loaded")
            return
        report = load_demo_data(files, UserService(database, config.secret_key), count, seed)
        click.echo(f"vocloud: loaded {len(report.stored)} demo files ({report.spectra} "
                   f"spectra) into {config.public_url}/files/{DEMO_OWNER}/{DEMO_FOLDER}/")
        return
    if directory is None:
        raise click.UsageError("give a DIRECTORY to write to, or --load")
    spectra = generate_collection(count, seed=seed)
    paths = write_collection(directory, spectra)
    click.echo(f"wrote {len(paths)} demo spectra to {directory}")
    for layout, number in sorted(Counter(plan_layouts(spectra)).items()):
        click.echo(f"    {layout:<18} {number}")


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--owner", required=True, help="User who will own the files.")
@click.option("--into", "target", default="", show_default="the owner's top folder",
              help="Folder of the owner's tree to put the files in.")
@click.option("--public", is_flag=True, help="Make the ingested folder readable by anyone.")
def ingest(path: Path, owner: str, target: str, public: bool) -> None:
    """Load a server-side folder PATH into a user's store, cataloguing every spectrum.

    Files already stored with the same content are skipped; files of a
    spectrum format that cannot be read are stored and flagged.
    """
    from uws_service.db import get_database
    from uws_service.errors import ServiceError
    from uws_service.filestore import FileService
    from uws_service.ingest import ingest_directory
    from uws_service.users import UserService

    config = _config()
    database = get_database(config.database_url)
    principal = UserService(database, config.secret_key).get_user(owner)
    if principal is None:
        raise click.ClickException(f"no such user: {owner!r} (create it with "
                                   f"'vocloud user create {owner}')")
    if public and not target:
        raise click.UsageError("--public needs --into FOLDER (the top folder stays private)")
    try:
        report = ingest_directory(FileService.from_config(config, database), principal, path,
                                  target, public=public)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"stored {len(report.stored)} files ({report.spectra} spectra), "
               f"skipped {len(report.skipped)} unchanged, refused {len(report.refused)}, "
               f"flagged {len(report.flagged)} unreadable")
    for name, reason in sorted(report.flagged.items()):
        click.echo(f"    flagged: {name}: {reason}")
    for name, reason in sorted(report.refused.items()):
        click.echo(f"    refused: {name}: {reason}")


# client commands (HTTP only) ----------------------------------------------------

#: Files per multipart request of ``vocloud upload`` (below VOCLOUD_UPLOAD_MAX_PARTS).
UPLOAD_BATCH_FILES = 100
#: Bytes per multipart request of ``vocloud upload`` (one larger file goes alone).
UPLOAD_BATCH_BYTES = 256 * 1024 * 1024


def _local_files(top: Path) -> Iterator[tuple[str, Path]]:
    """``(relative posix path, path)`` of every regular file under ``top``; links skipped."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(top).as_posix(), path


def _remote_md5s(session: Any, url: str, timeout: float) -> dict[str, str | None]:
    """MD5 of every file under the folder at ``url`` (recursively), by relative path."""
    found: dict[str, str | None] = {}
    pending = [("", url.rstrip("/") + "/")]
    while pending:
        prefix, folder_url = pending.pop()
        response = session.get(folder_url, timeout=timeout)
        if response.status_code == 404:
            continue
        if response.status_code != 200:
            raise click.ClickException(f"cannot list {folder_url}: {response.status_code} "
                                       f"{response.text.strip()}")
        for entry in response.json()["entries"]:
            rel = prefix + entry["name"]
            if entry["is_dir"]:
                pending.append((rel + "/", entry["url"]))
            else:
                found[rel] = entry.get("md5")
    return found


def _batches(files: list[tuple[str, Path, int]], max_files: int,
             max_bytes: int) -> Iterator[list[tuple[str, Path, int]]]:
    batch: list[tuple[str, Path, int]] = []
    size = 0
    for item in files:
        if batch and (len(batch) >= max_files or size + item[2] > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[2]
    if batch:
        yield batch


class _MultipartFiles:
    """A ``multipart/form-data`` body of local files, read from disk as it is sent.

    requests' own ``files=`` builds the whole body in memory; this object
    has a length (so the request carries ``Content-Length``) and a
    :meth:`read` that opens each file only when its turn comes.

    Parameters
    ----------
    files : list of (str, Path, int)
        Relative path sent as the part's file name, local path, size.
    """

    def __init__(self, files: list[tuple[str, Path, int]]) -> None:
        self.boundary = f"vocloud-{os.urandom(12).hex()}"
        self._segments: list[bytes | tuple[Path, int]] = []
        for rel, path, size in files:
            name = rel.replace("\\", "\\\\").replace('"', '\\"')
            self._segments.append(
                (f"--{self.boundary}\r\n"
                 f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode())
            self._segments.append((path, size))
            self._segments.append(b"\r\n")
        self._segments.append(f"--{self.boundary}--\r\n".encode())
        self._length = sum(len(s) if isinstance(s, bytes) else s[1] for s in self._segments)
        self._index = 0
        self._offset = 0
        self._handle: Any = None

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, with the boundary."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all that is left when negative)."""
        out: list[bytes] = []
        want = size if size >= 0 else self._length
        while want > 0 and self._index < len(self._segments):
            segment = self._segments[self._index]
            if isinstance(segment, bytes):
                piece = segment[self._offset:self._offset + want]
                self._offset += len(piece)
                done = self._offset >= len(segment)
            else:
                if self._handle is None:
                    self._handle = open(segment[0], "rb")  # noqa: SIM115 (closed below)
                piece = self._handle.read(min(want, 1024 * 1024))
                done = not piece
                if done:
                    self._handle.close()
                    self._handle = None
            out.append(piece)
            want -= len(piece)
            if done:
                self._index += 1
                self._offset = 0
        return b"".join(out)

    def close(self) -> None:
        """Close the file being read, if any."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@main.command()
@click.argument("local_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("remote_dir")
@click.option("--url", default=lambda: os.environ.get("VOCLOUD_URL", "http://127.0.0.1:8000"),
              show_default="$VOCLOUD_URL or http://127.0.0.1:8000", help="vocloud service.")
@click.option("--token", default=lambda: os.environ.get("VOCLOUD_TOKEN", ""),
              show_default="$VOCLOUD_TOKEN", help="API token.")
@click.option("--batch-files", default=UPLOAD_BATCH_FILES, show_default=True,
              type=click.IntRange(min=1), help="Most files per request.")
@click.option("--batch-bytes", default=UPLOAD_BATCH_BYTES, show_default=True,
              type=click.IntRange(min=1), help="Most bytes per request (a larger file goes alone).")
@click.option("--timeout", default=600.0, show_default=True, type=float,
              help="Seconds to wait for each response.")
def upload(local_dir: Path, remote_dir: str, url: str, token: str, batch_files: int,
           batch_bytes: int, timeout: float) -> None:
    """Upload LOCAL_DIR recursively into REMOTE_DIR of your folder.

    Files already there with the same MD5 are skipped; the rest go in
    batches of multipart requests, streamed from disk.
    """
    import requests

    if not token:
        raise click.ClickException("no token: pass --token or set VOCLOUD_TOKEN")
    base = url.rstrip("/")
    remote = remote_dir.strip("/")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        who = session.get(f"{base}/api/whoami", timeout=timeout)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from None
    if who.status_code != 200:
        raise click.ClickException(f"{base}/api/whoami: {who.status_code} {who.text.strip()}")
    me = who.json()["user"]
    folder_url = f"{base}/files/{quote(me, safe='')}/{quote(remote, safe='/')}"
    there = _remote_md5s(session, folder_url, timeout)
    todo: list[tuple[str, Path, int]] = []
    skipped = 0
    for rel, path in _local_files(local_dir):
        if there.get(rel) is not None and there[rel] == file_md5(path):
            skipped += 1
        else:
            todo.append((rel, path, path.stat().st_size))
    uploaded = failed = 0
    for batch in _batches(todo, batch_files, batch_bytes):
        body = _MultipartFiles(batch)
        try:
            response = session.post(folder_url, data=body, timeout=timeout,
                                    headers={"Content-Type": body.content_type})
        except (requests.RequestException, OSError) as exc:
            click.echo(f"failed: {len(batch)} file(s): {exc}", err=True)
            failed += len(batch)
            continue
        finally:
            body.close()
        if response.headers.get("Content-Type", "").startswith("application/json"):
            body = response.json()
            uploaded += len(body.get("stored", []))
            for refusal in body.get("refused", []):
                click.echo(f"failed: {refusal['part']}: {refusal['reason']}", err=True)
            failed += len(body.get("refused", []))
        else:
            click.echo(f"failed: {len(batch)} file(s): {response.status_code} "
                       f"{response.text.strip()}", err=True)
            failed += len(batch)
    click.echo(f"uploaded {uploaded}, skipped {skipped}, failed {failed}")
    if failed:
        sys.exit(1)


# pack ---------------------------------------------------------------------------


@main.command()
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["parquet", "avro", "both"]),
              default="parquet", show_default=True,
              help="Parquet data set (OUTPUT is its folder), Avro file (OUTPUT is the file) "
                   "or both (OUTPUT is a folder receiving spectra.parquet/ and spectra.avro).")
@click.option("--pattern", default="*", show_default=True, help="Glob on file names.")
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Also read the files in sub-folders.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON manifest (per-file outcome) to this file.")
def pack(input_dir: Path, output: Path, fmt: str, pattern: str, recursive: bool,
         manifest: Path | None) -> None:
    """Pack the spectra files of INPUT_DIR into OUTPUT, locally (no server needed).

    Files that cannot be read are skipped and listed with the reason.
    """
    import json
    import shutil
    import tempfile

    from jobs.pack import AVRO_FILE, PARQUET_DIR, NothingToPack, local_files, pack_files

    files = local_files(input_dir, recursive=recursive, pattern=pattern)
    output = output.resolve()
    if fmt == "parquet" and output.exists() and not (output.is_dir()
                                                      and not any(output.iterdir())):
        raise click.ClickException(f"{output} exists and is not an empty folder")
    if fmt == "both":
        work, parent = output, None
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        parent = Path(tempfile.mkdtemp(prefix=".vocloud-pack-", dir=output.parent))
        work = parent
    try:
        try:
            report = pack_files(files, work, fmt)
        except NothingToPack as exc:
            for entry in exc.report.skipped:
                click.echo(f"skipped: {entry['path']}: {entry['reason']}", err=True)
            raise click.ClickException(str(exc)) from None
        if fmt == "parquet":
            if output.exists():
                output.rmdir()
            (work / PARQUET_DIR).rename(output)
        elif fmt == "avro":
            (work / AVRO_FILE).replace(output)
    finally:
        if parent is not None:
            shutil.rmtree(parent, ignore_errors=True)
    for entry in report.skipped:
        click.echo(f"skipped: {entry['path']}: {entry['reason']}", err=True)
    if manifest is not None:
        manifest.write_text(json.dumps(report.manifest(work, input=str(input_dir), format=fmt),
                                       indent=2))
    click.echo(f"packed {report.spectra} spectra from {report.read} of {len(report.files)} "
               f"files into {output} ({fmt}); skipped {len(report.skipped)}")


if __name__ == "__main__":
    main()
