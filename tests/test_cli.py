"""The ``vocloud`` command line: database, users, tokens and the job listing.

Runs the real click commands in-process with ``CliRunner`` against a SQLite
database under a temporary ``VOCLOUD_HOME``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from tests.conftest import PASSWORD, make_config
from uws_service.cli import main

TOKEN_RE = re.compile(r"^vct_\d+_[A-Za-z0-9_-]{20,}$")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A VOCLOUD_HOME of its own and no other VOCLOUD_ setting from the caller."""
    import os

    for name in [n for n in os.environ if n.startswith("VOCLOUD_")]:
        monkeypatch.delenv(name)
    return {"VOCLOUD_HOME": str(tmp_path / "home"), "VOCLOUD_LOG_LEVEL": "WARNING"}


def run(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_db_upgrade(env: dict[str, str]) -> None:
    """``vocloud db upgrade`` creates the database with its tables, and is idempotent."""
    for _ in range(2):
        result = run(env, "db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
    config = make_config(Path(env["VOCLOUD_HOME"]))
    from uws_service.db import get_database

    with get_database(config.database_url).read() as session:
        tables = set(session.scalars(text("SELECT name FROM sqlite_master WHERE type='table'")))
    assert {"user_account", "api_token", "job", "job_parameter", "job_result"} <= tables


def test_user_and_token_create(env: dict[str, str]) -> None:
    """``user create NAME`` reads the password from stdin; ``token create NAME`` prints a
    vct_ token that the service then accepts for that user."""
    assert run(env, "db", "upgrade").exit_code == 0
    result = run(env, "user", "create", "dana", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created user dana" in result.output
    result = run(env, "token", "create", "dana", "--label", "cli test")
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert TOKEN_RE.match(token)

    from uws_service.db import get_database
    from uws_service.users import UserService

    config = make_config(Path(env["VOCLOUD_HOME"]))
    users = UserService(get_database(config.database_url), "any")
    principal = users.check_token(token)
    assert principal is not None and principal.name == "dana"
    assert users.check_password("dana", PASSWORD) is not None


def test_user_create_admin(env: dict[str, str]) -> None:
    """``user create NAME --admin`` makes an admin."""
    run(env, "db", "upgrade")
    result = run(env, "user", "create", "boss", "--admin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "admin" in result.output
    from uws_service.db import get_database
    from uws_service.users import UserService

    config = make_config(Path(env["VOCLOUD_HOME"]))
    principal = UserService(get_database(config.database_url), "x").get_user("boss")
    assert principal is not None and principal.is_admin


def test_user_create_rejects_duplicate_and_short_password(env: dict[str, str]) -> None:
    """A second ``user create`` of the same name fails with a message, as does a password
    shorter than 8 characters; neither changes anything."""
    run(env, "db", "upgrade")
    assert run(env, "user", "create", "erin", input=PASSWORD + "\n").exit_code == 0
    result = run(env, "user", "create", "erin", input="another password\n")
    assert result.exit_code != 0
    assert "already exists" in result.output
    result = run(env, "user", "create", "frank", input="short\n")
    assert result.exit_code != 0
    assert "8 characters" in result.output
    assert run(env, "token", "create", "frank").exit_code != 0  # frank does not exist


def test_token_create_for_unknown_user_fails(env: dict[str, str]) -> None:
    """``token create`` for a user that does not exist fails and prints no token."""
    run(env, "db", "upgrade")
    result = run(env, "token", "create", "ghost")
    assert result.exit_code != 0
    assert "ghost" in result.output
    assert "vct_" not in result.output


def test_jobs_list(env: dict[str, str]) -> None:
    """``jobs list`` prints every job with type, owner, phase and run id; --owner, --phase
    and --last filter it."""
    run(env, "db", "upgrade")
    run(env, "user", "create", "hana", input=PASSWORD + "\n")
    run(env, "user", "create", "ivan", input=PASSWORD + "\n")

    from uws_service.app import create_app

    config = make_config(Path(env["VOCLOUD_HOME"]))
    app = create_app(config)
    users = app.extensions["vocloud"].users
    client = app.test_client()
    ids = {}
    for name in ("hana", "ivan"):
        token = users.create_token(name)
        r = client.post("/uws/selftest", headers={"Authorization": f"Bearer {token}"},
                        data={"RUNID": f"run-{name}", "duration": "0"})
        assert r.status_code == 303
        ids[name] = r.headers["Location"].rsplit("/", 1)[1]
    app.extensions["vocloud"].store.queue(ids["ivan"])

    result = run(env, "jobs", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:4] == ["JOB", "TYPE", "OWNER", "PHASE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[ids["hana"]][1:4] == ["selftest", "hana", "PENDING"]
    assert rows[ids["hana"]][-1] == "run-hana"
    assert rows[ids["ivan"]][1:4] == ["selftest", "ivan", "QUEUED"]

    only_hana = run(env, "jobs", "list", "--owner", "hana").output
    assert ids["hana"] in only_hana and ids["ivan"] not in only_hana
    queued = run(env, "jobs", "list", "--phase", "queued").output
    assert ids["ivan"] in queued and ids["hana"] not in queued
    last = run(env, "jobs", "list", "--last", "1").output
    assert ids["ivan"] in last and ids["hana"] not in last
    assert run(env, "jobs", "list", "--owner", "nobody").exit_code != 0


def test_serve_on_a_port_in_use_fails_clearly(tmp_path: Path) -> None:
    """A second ``vocloud serve`` on a busy port says so and starts no worker."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOCLOUD_")}
        env.update({"VOCLOUD_HOME": str(tmp_path / "home"), "VOCLOUD_START_WORKERS": "1",
                    "VOCLOUD_LOG_LEVEL": "INFO"})
        result = subprocess.run([sys.executable, "-m", "uws_service.cli", "serve", "--port",
                                 str(port)], env=env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode != 0
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "starting worker" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
