"""Database engines and transactions, shared by the web, dispatcher and worker processes.

Engines are created lazily per process and disposed after a fork.  On
SQLite (the embedded mode) the database runs in WAL mode with a busy
timeout, and write transactions start with ``BEGIN IMMEDIATE`` so that two
processes never both read and then fail to upgrade their locks; reads stay
deferred and never block.  On PostgreSQL a write transaction may take an
advisory lock to serialise a whole pass (the dispatcher's).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

_IMMEDIATE = "vocloud_begin_immediate"


class Database:
    """One engine and its sessions for one database URL in one process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        # Request threads and blocking WAITs borrow connections only briefly, but
        # many at once; connections beyond pool_size are closed on return, and a
        # new PostgreSQL connection costs a server process.
        kwargs.update(pool_size=30, max_overflow=40)
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self.engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False)
        self.pid = os.getpid()

    @staticmethod
    def _configure_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling would defeat BEGIN IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            if conn.get_execution_options().get(_IMMEDIATE):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; nothing it does is committed.

        Objects read stay usable after the block (closing expunges them
        without expiring their attributes).
        """
        session = self._sessions()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def write(self, lock: str | None = None) -> Iterator[Session]:
        """A write transaction, committed when the block ends without error.

        Parameters
        ----------
        lock : str, optional
            Name of a database-wide lock held until the transaction ends
            (a PostgreSQL advisory lock; SQLite's ``BEGIN IMMEDIATE`` already
            serialises writers).
        """
        session = self._write_sessions()
        try:
            if lock and not self.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                                {"name": lock})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose(close=False)


_databases: dict[str, Database] = {}
_lock = threading.Lock()


def get_database(url: str) -> Database:
    """The process's :class:`Database` for ``url``, made on first use.

    A database inherited over ``fork()`` is replaced, so that parent and
    child never share a connection.
    """
    with _lock:
        database = _databases.get(url)
        if database is None or database.pid != os.getpid():
            if database is not None:
                database.dispose()
            database = Database(url)
            _databases[url] = database
        return database


def reset_after_fork() -> None:
    """Forget every engine inherited from a parent process."""
    with _lock:
        for database in _databases.values():
            database.dispose()
        _databases.clear()
