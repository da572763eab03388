"""Service configuration, read once from ``VOCLOUD_*`` environment variables.

Embedded defaults (SQLite file and stored files under ``var/``, Celery's
``filesystem://`` transport, workers started by ``vocloud serve``) need no
setting at all; the scaled-out mode sets the database and broker URLs.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

#: Job families, each with its own Celery queue, so that a long job of one
#: family cannot starve the short jobs of another.
QUEUES = ("io", "ml", "spark")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"VOCLOUD_{name}")
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    return float(value) if value is not None else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Parse a byte count: ``"10000"``, ``"10GB"``, ``"500 MB"``, ``"2GiB"`` (decimal kB/MB/GB/TB).

    Raises
    ------
    ValueError
        For anything else, or a negative size.
    """
    value = text.strip().lower()
    number = value.rstrip("kmgtib ")
    unit = value[len(number):].strip()
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(f"not a size: {text!r} (write e.g. 10GB, 500MB or 1000000)")
    size = int(float(number) * _SIZE_UNITS[unit])
    if size < 0:
        raise ValueError(f"a size may not be negative: {text!r}")
    return size


def _env_size(name: str, default: int) -> int:
    value = _env(name)
    return parse_size(value) if value is not None else default


def _env_networks(name: str) -> tuple[str, ...]:
    """A comma- or space-separated list of CIDR networks, each checked."""
    value = _env(name)
    if value is None:
        return ()
    networks = tuple(item for item in value.replace(",", " ").split() if item)
    for item in networks:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"VOCLOUD_{name}: {item!r} is not an IP network "
                             "(write e.g. 127.0.0.0/8,::1/128)") from None
    return networks


def _is_local_storage(value: str) -> bool:
    """Whether a ``VOCLOUD_STORAGE`` value names a local folder (a path or a ``file://`` URL)."""
    return value.startswith("file://") or ("://" not in value and "::" not in value)


def check_storage_url(value: str | None) -> None:
    """Refuse a ``VOCLOUD_STORAGE`` URL whose protocol fsspec cannot serve.

    Parameters
    ----------
    value : str or None
        The setting; None, a path and a ``file://`` URL always pass.

    Raises
    ------
    ValueError
        For a protocol fsspec does not know, or one whose package is not
        installed (``s3://`` needs s3fs, ``gs://`` gcsfs...).
    """
    if not value or _is_local_storage(value):
        return
    import fsspec
    from fsspec.core import split_protocol

    for part in value.split("::"):
        protocol, _ = split_protocol(part)
        if protocol is None:
            continue
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            raise ValueError(f"VOCLOUD_STORAGE={value!r}: the {protocol!r} storage needs a "
                             f"package that is not installed ({exc})") from None
        except ValueError:
            raise ValueError(f"VOCLOUD_STORAGE={value!r}: unknown storage protocol "
                             f"{protocol!r}; give a folder, a file:// URL or an fsspec URL "
                             "such as s3://bucket/prefix") from None


def parse_worker_spec(spec: str) -> dict[str, int]:
    """Parse ``"io:2,ml:1,spark:1"`` into ``{"io": 2, "ml": 1, "spark": 1}``."""
    result: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        queue, _, count = item.partition(":")
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r} in worker spec {spec!r}")
        result[queue] = int(count or 1)
    return result


@dataclass(frozen=True)
class Config:
    """Every setting of a vocloud process.

    Build it with :meth:`from_env`; tests use :func:`dataclasses.replace` or
    :meth:`from_env` with overrides.
    """

    home: Path
    database_url: str
    broker_url: str | None
    public_url: str = "http://127.0.0.1:8000"
    authority: str = "vocloud.local"
    secret_key: str = ""
    #: Seconds a ``WAIT`` may block at most; ``WAIT=-1`` means this.
    wait_max: float = 300.0
    #: Default and maximum executionDuration in seconds; 0 (unlimited) means
    #: the maximum, which stays below the broker's visibility timeout.
    execution_duration_default: int = 3600
    execution_duration_max: int = 12 * 3600
    #: Default and maximum lifetime of a job (destruction - creation), seconds.
    destruction_default: int = 7 * 86400
    destruction_max: int = 30 * 86400
    #: Jobs of one owner executing at the same time.
    user_concurrency: int = 4
    #: Lease of an executing job: heartbeat period and expiry, seconds.
    heartbeat_interval: float = 5.0
    lease_timeout: float = 30.0
    #: Period of the dispatcher/reaper pass when nothing wakes it.
    dispatch_interval: float = 1.0
    #: Period of the database poll of the notifier when there is no Redis.
    notify_poll_interval: float = 0.05
    #: Worker processes ``vocloud serve`` starts in the embedded mode.
    embedded_workers: dict[str, int] = field(default_factory=lambda: {"io": 2, "ml": 1, "spark": 1})
    #: Whether ``vocloud serve`` starts and supervises its own workers.
    start_workers: bool = True
    server_threads: int = 64
    #: Seconds a password check is cached (under an HMAC of the credentials).
    auth_cache_seconds: float = 30.0
    #: Where users' files live: a local folder (a path or a ``file://`` URL) or
    #: any other fsspec URL (``s3://bucket/prefix``); None means ``home / "files"``.
    storage: str | None = None
    #: Bytes each user may store under ``/files/{user}`` (decimal: 10 GB).
    quota_bytes: int = 10 * 10**9
    #: Most parts one multipart upload (``POST /files/{user}/{folder}``) may have.
    upload_max_parts: int = 1000
    #: Largest single file the store accepts (``VOCLOUD_MAX_FILE_SIZE``), bytes.
    max_file_bytes: int = 20 * 10**9
    #: Bytes of preprocessed SOM inputs kept per user under ``home/cache`` (LRU).
    cache_bytes: int = 5 * 10**9
    #: Networks (CIDR) that imports may connect to although the default policy
    #: denies them (loopback, private ranges...); link-local needs its own entry.
    import_allow_networks: tuple[str, ...] = ()
    #: Networks that imports may never connect to, besides the default denials.
    import_deny_networks: tuple[str, ...] = ()
    #: Largest file (or archive member) one import fetches.
    import_max_file_size: int = 5 * 10**9
    #: Most downloads of one import at a time (the ``concurrency`` parameter's cap).
    import_max_concurrency: int = 16
    #: Most files one import takes; a longer listing is cut there.
    import_max_files: int = 10000
    #: Most folders one walk of an import (HTML index or FTP) reads.
    import_max_folders: int = 2000
    #: Most entries read from one FTP folder listing; a longer one is cut there.
    import_max_listing: int = 100000
    #: Seconds an import waits to connect, or for the next bytes.
    import_timeout: float = 60.0
    #: Seconds before the first retry of a file; doubled at each further one.
    import_retry_delay: float = 1.0
    strict: bool = False

    @classmethod
    def from_env(cls, **overrides: Any) -> Config:
        home = Path(_env("HOME", "var") or "var").resolve()
        values: dict[str, Any] = {
            "home": home,
            "database_url": _env("DATABASE_URL", f"sqlite:///{home / 'vocloud.db'}"),
            "broker_url": _env("BROKER_URL"),
            "public_url": (_env("PUBLIC_URL", "http://127.0.0.1:8000") or "").rstrip("/"),
            "authority": _env("AUTHORITY", "vocloud.local"),
            "secret_key": _env("SECRET_KEY", ""),
            "wait_max": _env_float("WAIT_MAX", 300.0),
            "execution_duration_default": _env_int("EXECUTION_DURATION_DEFAULT", 3600),
            "execution_duration_max": _env_int("EXECUTION_DURATION_MAX", 12 * 3600),
            "destruction_default": _env_int("DESTRUCTION_DEFAULT", 7 * 86400),
            "destruction_max": _env_int("DESTRUCTION_MAX", 30 * 86400),
            "user_concurrency": _env_int("USER_CONCURRENCY", 4),
            "heartbeat_interval": _env_float("HEARTBEAT_INTERVAL", 5.0),
            "lease_timeout": _env_float("LEASE_TIMEOUT", 30.0),
            "dispatch_interval": _env_float("DISPATCH_INTERVAL", 1.0),
            "notify_poll_interval": _env_float("NOTIFY_POLL_INTERVAL", 0.05),
            "embedded_workers": parse_worker_spec(_env("WORKERS", "io:2,ml:1,spark:1") or ""),
            "start_workers": _env_bool("START_WORKERS", True),
            "server_threads": _env_int("SERVER_THREADS", 64),
            "auth_cache_seconds": _env_float("AUTH_CACHE_SECONDS", 30.0),
            "storage": _env("STORAGE"),
            "quota_bytes": _env_size("QUOTA", 10 * 10**9),
            "upload_max_parts": _env_int("UPLOAD_MAX_PARTS", 1000),
            "max_file_bytes": _env_size("MAX_FILE_SIZE", 20 * 10**9),
            "cache_bytes": _env_size("CACHE_SIZE", 5 * 10**9),
            "import_allow_networks": _env_networks("IMPORT_ALLOW_NETWORKS"),
            "import_deny_networks": _env_networks("IMPORT_DENY_NETWORKS"),
            "import_max_file_size": _env_size("IMPORT_MAX_FILE_SIZE", 5 * 10**9),
            "import_max_concurrency": _env_int("IMPORT_MAX_CONCURRENCY", 16),
            "import_max_files": _env_int("IMPORT_MAX_FILES", 10000),
            "import_max_folders": _env_int("IMPORT_MAX_FOLDERS", 2000),
            "import_max_listing": _env_int("IMPORT_MAX_LISTING", 100000),
            "import_timeout": _env_float("IMPORT_TIMEOUT", 60.0),
            "import_retry_delay": _env_float("IMPORT_RETRY_DELAY", 1.0),
            "strict": _env_bool("STRICT", False),
        }
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values.update(overrides)
        config = cls(**values)
        if not 0 < config.execution_duration_default <= config.execution_duration_max:
            raise ValueError("VOCLOUD_EXECUTION_DURATION_DEFAULT must be between 1 and "
                             f"VOCLOUD_EXECUTION_DURATION_MAX ({config.execution_duration_max})")
        if not 0 < config.destruction_default <= config.destruction_max:
            raise ValueError("VOCLOUD_DESTRUCTION_DEFAULT must be between 1 and "
                             f"VOCLOUD_DESTRUCTION_MAX ({config.destruction_max})")
        check_storage_url(config.storage)  # an unknown protocol fails at start-up
        if not config.secret_key:
            config = replace(config, secret_key=config.load_or_create_secret())
        return config

    # Paths -----------------------------------------------------------------

    @property
    def jobs_dir(self) -> Path:
        """Folder holding one sub-folder of files per job."""
        return self.home / "jobs"

    @property
    def cache_dir(self) -> Path:
        """Folder of the preprocessing caches, one sub-folder per user."""
        return self.home / "cache"

    @property
    def broker_dir(self) -> Path:
        """Folder of Celery's ``filesystem://`` transport in the embedded mode."""
        return self.home / "broker"

    @property
    def storage_url(self) -> str | None:
        """The fsspec URL of the users' files, or None when they are in a local folder.

        ``VOCLOUD_STORAGE`` unset, a path or a ``file://`` URL means a local
        folder (:attr:`storage_root`); any other URL (``s3://bucket/prefix``,
        ``memory://name``...) is returned as it is.
        """
        if not self.storage or _is_local_storage(self.storage):
            return None
        return self.storage

    @property
    def storage_root(self) -> Path:
        """Root of the users' files in a local folder: ``VOCLOUD_STORAGE`` when it is
        a path or a ``file://`` URL, else ``home / "files"``.

        Raises
        ------
        ValueError
            When ``VOCLOUD_STORAGE`` is another URL (see :attr:`storage_url`).
        """
        if not self.storage:
            return self.home / "files"
        if self.storage.startswith("file://"):
            return Path(self.storage[len("file://"):]).resolve()
        if not _is_local_storage(self.storage):
            raise ValueError(f"VOCLOUD_STORAGE={self.storage!r} is not a local folder; "
                             "the store is reached through its URL (Config.storage_url)")
        return Path(self.storage).resolve()

    @property
    def embedded(self) -> bool:
        """True when no external broker is configured."""
        return self.broker_url is None

    @property
    def redis_url(self) -> str | None:
        """The Redis URL used for notifications, when the broker is Redis."""
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def load_or_create_secret(self) -> str:
        """Read the secret key kept under ``home``, creating it on first use."""
        path = self.home / "secret_key"
        self.home.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(key)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # first writer wins when processes race
        except FileExistsError:
            pass
        tmp.unlink(missing_ok=True)
        return path.read_text().strip()
