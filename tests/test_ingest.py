"""``vocloud ingest`` and the demo data that ``make run`` loads (issue 3, "Catalogue",
"Demo data"; DESIGN "Access": demo data belongs to ``system`` and is public).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from tests.conftest import PASSWORD, make_config
from uws_service.cli import _bootstrap, main
from uws_service.db import get_database
from uws_service.filestore import FileService
from uws_service.models import FileNode, ObsCore
from vo.spectra.demo import generate_collection, write_collection


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("VOCLOUD_")]:
        monkeypatch.delenv(name)
    values = {"VOCLOUD_HOME": str(tmp_path / "home"), "VOCLOUD_LOG_LEVEL": "WARNING"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def _files(env: dict[str, str]) -> FileService:
    config = make_config(Path(env["VOCLOUD_HOME"]))
    return FileService.from_config(config, get_database(config.database_url))


def test_ingest_stores_catalogues_flags_and_skips(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "archive"
    write_collection(source / "night1", generate_collection(5, seed=1))
    (source / "night1" / "broken.fits").write_bytes(b"not a FITS file")
    (source / "readme.txt").write_text("observing notes, not a spectrum\n")
    (source / "link.fits").symlink_to(source / "night1" / "broken.fits")
    assert run(env, "db", "upgrade").exit_code == 0
    assert run(env, "user", "create", "dana", input=PASSWORD + "\n").exit_code == 0

    result = run(env, "ingest", str(source), "--owner", "dana", "--into", "ondrejov")
    assert result.exit_code == 0, result.output
    assert "stored 7 files (5 spectra)" in result.output
    assert "refused 1" in result.output and "link.fits: a symbolic link" in result.output
    assert "flagged: ondrejov/night1/broken.fits" in result.output
    assert "flagged: ondrejov/readme.txt" in result.output  # .txt is an ASCII spectrum format

    files = _files(env)
    with files.database.read() as session:
        rows = session.scalars(select(ObsCore)).all()
        assert len(rows) == 5
        assert {row.owner for row in rows} == {"dana"}
        assert {row.visibility for row in rows} == {"private"}
        assert all("/files/dana/ondrejov/night1/" in row.access_url for row in rows)
    assert not files.storage.path_of("dana", "ondrejov/link.fits").exists()
    stored = files.storage.path_of("dana", "ondrejov/night1/broken.fits")
    assert stored.read_bytes() == b"not a FITS file"

    again = run(env, "ingest", str(source), "--owner", "dana", "--into", "ondrejov")
    assert again.exit_code == 0, again.output
    assert "stored 0 files (0 spectra), skipped 7 unchanged" in again.output
    with files.database.read() as session:
        assert session.scalar(select(func.count()).select_from(ObsCore)) == 5


def test_ingest_public_and_errors(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "pub"
    write_collection(source, generate_collection(2, seed=2))
    assert run(env, "db", "upgrade").exit_code == 0
    missing_user = run(env, "ingest", str(source), "--owner", "nobody")
    assert missing_user.exit_code != 0 and "no such user: 'nobody'" in missing_user.output
    assert run(env, "user", "create", "dana", input=PASSWORD + "\n").exit_code == 0
    bad_target = run(env, "ingest", str(source), "--owner", "dana", "--into", "../x")
    assert bad_target.exit_code != 0
    result = run(env, "ingest", str(source), "--owner", "dana", "--into", "pub", "--public")
    assert result.exit_code == 0, result.output
    with _files(env).database.read() as session:
        assert set(session.scalars(select(ObsCore.visibility))) == {"public"}
        assert set(session.scalars(select(FileNode.visibility))) == {"public"}


def test_demo_data_loads_once_into_an_empty_store(env: dict[str, str]) -> None:
    """What ``make run`` does: the demo collection goes to ``system/demo``, public and
    catalogued, only while the store is empty; the admin ``local`` is still created."""
    assert run(env, "db", "upgrade").exit_code == 0
    result = run(env, "demo-data", "--load", "--if-empty", "--count", "12")
    assert result.exit_code == 0, result.output
    assert "loaded 12 demo files (12 spectra)" in result.output
    again = run(env, "demo-data", "--load", "--if-empty", "--count", "12")
    assert "holds data already" in again.output
    files = _files(env)
    with files.database.read() as session:
        rows = session.scalars(select(ObsCore)).all()
        assert len(rows) == 12
        assert {(row.owner, row.visibility) for row in rows} == {("system", "public")}
        assert {row.dataproduct_type for row in rows} == {"spectrum"}
    config = make_config(Path(env["VOCLOUD_HOME"]))
    _bootstrap(config)
    from uws_service.users import UserService

    users = UserService(get_database(config.database_url), config.secret_key)
    local = users.get_user("local")
    assert local is not None and local.is_admin
    system = users.get_user("system")
    assert system is not None and not system.is_admin
