"""The ``vocloud`` command: serve, worker, db, user, token and jobs."""

from __future__ import annotations

import logging
import os
import socket
import sys

import click

from uws_service.config import QUEUES, Config


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
    run_server(config, host, port)


def _bootstrap(config: Config) -> None:
    """On an empty database, create the admin ``local`` and print its token once."""
    from uws_service.db import get_database
    from uws_service.users import UserError, UserService

    users = UserService(get_database(config.database_url), config.secret_key)
    if users.count_users():
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
@click.argument("directory", type=click.Path(file_okay=False, writable=True))
@click.option("--count", default=200, show_default=True, type=click.IntRange(min=0),
              help="How many spectra to write.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the random numbers (same seed, same files).")
def demo_data(directory: str, count: int, seed: int) -> None:
    """Write a synthetic collection of Be-star H-alpha spectra to DIRECTORY.

    The spectra are written in every supported file layout in turn (FITS
    table, FITS images with linear/log10/ln wavelength scales, LAMOST-like
    images, VOTable, CSV).
    """
    from collections import Counter

    from vo.spectra.demo import generate_collection, plan_layouts, write_collection

    spectra = generate_collection(count, seed=seed)
    paths = write_collection(directory, spectra)
    click.echo(f"wrote {len(paths)} demo spectra to {directory}")
    for layout, number in sorted(Counter(plan_layouts(spectra)).items()):
        click.echo(f"    {layout:<18} {number}")


if __name__ == "__main__":
    main()
