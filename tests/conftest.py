"""Shared fixtures: an in-process app on SQLite, users with tokens, and live vocloud processes.

Real parts only: the in-process app uses a real SQLite database; the live
fixtures start ``vocloud serve`` (and ``vocloud worker``) as separate
processes against the embedded ``filesystem://`` broker or real Redis and
PostgreSQL.  Service URLs come from environment variables with loopback
defaults; with ``VOCLOUD_STRICT=1`` a missing component fails the test
instead of skipping it.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from lxml import etree

from uws_service.config import Config

ROOT = Path(__file__).resolve().parent.parent
XSD_DIR = Path(__file__).resolve().parent / "xsd"
STRICT = os.environ.get("VOCLOUD_STRICT") == "1"
POSTGRES_URL = os.environ.get("VOCLOUD_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("VOCLOUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "correct horse battery"


def unavailable(what: str) -> None:
    """Skip, or fail under VOCLOUD_STRICT=1, when a needed component is missing."""
    if STRICT:
        pytest.fail(f"{what} is not reachable (VOCLOUD_STRICT=1)")
    pytest.skip(f"{what} is not reachable")


# XML schemas -----------------------------------------------------------------

_schemas: dict[str, etree.XMLSchema] = {}


def xml_schema(name: str) -> etree.XMLSchema:
    if name not in _schemas:
        _schemas[name] = etree.XMLSchema(etree.parse(str(XSD_DIR / name)))
    return _schemas[name]


def assert_valid(xml: bytes, schema: str) -> etree._Element:
    """Parse ``xml`` and validate it against ``tests/xsd/{schema}``."""
    doc = etree.fromstring(xml)
    xml_schema(schema).assertValid(doc)
    return doc


# In-process application ---------------------------------------------------------


def basic(name: str, secret: str) -> dict[str, str]:
    value = base64.b64encode(f"{name}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


@dataclass
class Account:
    name: str
    token: str
    password: str = PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def basic(self) -> dict[str, str]:
        return basic(self.name, self.password)


def make_config(home: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "home": home,
        "database_url": f"sqlite:///{home / 'vocloud.db'}",
        "broker_url": None,
        "public_url": "http://testserver",
        "secret_key": "test-secret",
        "start_workers": False,
    }
    values.update(overrides)
    return Config.from_env(**values)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "home")


@dataclass
class Template:
    """A migrated SQLite database with the test accounts, made once per session."""

    database: Path
    accounts: dict[str, Account]


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    # Migrating and hashing three passwords with argon2 costs about 0.5 s; do it once
    # and give every test a copy of the resulting database file.
    from uws_service.db import get_database
    from uws_service.migrations import upgrade
    from uws_service.users import UserService

    home = tmp_path_factory.mktemp("template")
    config = make_config(home)
    upgrade(config.database_url)
    database = get_database(config.database_url)
    users = UserService(database, config.secret_key)
    accounts = {}
    for name, admin in (("alice", False), ("bob", False), ("carol", False), ("root", True)):
        users.create_user(name, PASSWORD, admin=admin)
        accounts[name] = Account(name, users.create_token(name, "tests"))
    with database.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.engine.dispose()
    return Template(home / "vocloud.db", accounts)


@pytest.fixture
def app(config: Config, _template: Template):  # type: ignore[no-untyped-def]
    """The application on a fresh copy of the template database (users alice, bob, root)."""
    from uws_service.app import create_app

    config.home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template.database, config.home / "vocloud.db")
    application = create_app(config)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def accounts(app, _template: Template) -> dict[str, Account]:  # type: ignore[no-untyped-def]
    """Users alice, bob and carol, and the admin root, each with a token."""
    return dict(_template.accounts)


# Live processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveService:
    """A running ``vocloud serve`` (plus any extra workers) and its accounts."""

    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    accounts: dict[str, Account] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run([sys.executable, "-m", "uws_service.cli", *args],
                                env=self.env, input=input, capture_output=True, text=True,
                                timeout=60, check=True)
        return result.stdout

    def add_account(self, name: str, admin: bool = False) -> Account:
        self.cli("user", "create", name, *(["--admin"] if admin else []),
                 input=PASSWORD + "\n")
        token = self.cli("token", "create", name).strip().splitlines()[-1]
        account = Account(name, token)
        self.accounts[name] = account
        return account

    def start_worker(self, queues: str = "io", concurrency: int = 2) -> subprocess.Popen[bytes]:
        with open(self.home / f"worker-{len(self.workers)}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "uws_service.cli", "worker", "-Q", queues,
                 "--concurrency", str(concurrency)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(process)
        return process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        for process in [self.process, *self.workers]:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in [self.process, *self.workers]:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(5)


def start_service(home: Path, *, database_url: str | None = None,
                  broker_url: str | None = None, start_workers: bool = True,
                  extra_env: dict[str, str] | None = None) -> LiveService:
    """Start ``vocloud serve`` on a free port and wait until it answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOCLOUD_")}
    env.update({
        "VOCLOUD_HOME": str(home),
        "VOCLOUD_PUBLIC_URL": url,
        "VOCLOUD_SECRET_KEY": "live-test-secret",
        "VOCLOUD_START_WORKERS": "1" if start_workers else "0",
        "VOCLOUD_WORKERS": "io:2,ml:1,spark:1",
        "VOCLOUD_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    if database_url:
        env["VOCLOUD_DATABASE_URL"] = database_url
    if broker_url:
        env["VOCLOUD_BROKER_URL"] = broker_url
    env.update(extra_env or {})
    if database_url and not database_url.startswith("sqlite"):
        subprocess.run([sys.executable, "-m", "uws_service.cli", "db", "upgrade"], env=env,
                       check=True, capture_output=True, timeout=60)
    log_path = home / "serve.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uws_service.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    service = LiveService(url=url, home=home, env=env, process=process, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vocloud serve exited:\n{service.log()}")
        try:
            if requests.get(f"{url}/availability", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        service.stop()
        raise RuntimeError(f"vocloud serve did not start:\n{service.log()}")
    return service


def wait_for_workers(service: LiveService, account: Account, timeout: float = 60) -> None:
    """Run one trivial job through, which proves a worker consumes the io queue."""
    response = requests.post(f"{service.url}/uws/selftest", headers=account.headers,
                             data={"PHASE": "RUN"}, allow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    job_url = response.headers["Location"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{job_url}/phase", headers=account.headers, timeout=10)
        if r.text == "COMPLETED":
            return
        time.sleep(0.2)
    raise RuntimeError(f"no worker ran a job within {timeout} s:\n{service.log()}")


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """One embedded ``vocloud serve`` (SQLite, filesystem broker, its own workers)."""
    service = start_service(tmp_path_factory.mktemp("live"), extra_env={
        "VOCLOUD_LEASE_TIMEOUT": "10", "VOCLOUD_HEARTBEAT_INTERVAL": "1"})
    try:
        service.add_account("alice")
        service.add_account("bob")
        service.add_account("root", admin=True)
        wait_for_workers(service, service.accounts["alice"])
        yield service
    finally:
        service.stop()


def postgres_database() -> str:
    """A fresh PostgreSQL database for one test, dropped by the caller."""
    import psycopg

    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"vocloud_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        unavailable(f"PostgreSQL at {admin_url}")
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    import psycopg

    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = url.rpartition("/")[2]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False
