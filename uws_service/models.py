"""Database tables of vocloud: users, API tokens, UWS jobs, stored files and the catalogue.

Plain SQLAlchemy 2 declarative models with no Flask, so that the Celery
side (``jobs/``) can use them.  Times are naive UTC ``datetime`` values;
``phase_changed_at`` is an epoch float because the notifier compares it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Now, as the naive UTC datetime stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Phase(enum.StrEnum):
    """UWS 1.1 execution phases (section 2.1.3, "Execution Phase")."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


#: Phases in which a job may still change (ABORT and errors apply to these).
ACTIVE_PHASES = frozenset({Phase.PENDING, Phase.QUEUED, Phase.EXECUTING, Phase.HELD,
                           Phase.SUSPENDED})
#: Phases a job never leaves (except by destruction).
FINAL_PHASES = frozenset({Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.ARCHIVED})


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user",
                                                  cascade="all, delete-orphan")


class ApiToken(Base):
    """An API token ``vct_{id}_{secret}``; only the SHA-256 of the secret is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         nullable=False, index=True)
    label: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship(back_populates="tokens")


class Job(Base):
    """One UWS job; the database row is the truth about its state."""

    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_type: Mapped[str] = mapped_column(String(64), nullable=False)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                          nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(255))
    phase: Mapped[str] = mapped_column(String(16), nullable=False, default=Phase.PENDING)
    creation_time: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(DateTime)
    end_time: Mapped[datetime | None] = mapped_column(DateTime)
    execution_duration: Mapped[int] = mapped_column(Integer, nullable=False)
    destruction: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    quote: Mapped[datetime | None] = mapped_column(DateTime)
    queue: Mapped[str] = mapped_column(String(16), nullable=False)

    error_type: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_detail: Mapped[str | None] = mapped_column(Text)

    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(Text)

    #: When the job was queued (phase set to QUEUED); orders the dispatcher.
    queued_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: When a run request was last handed to the broker, and how often.
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime)
    dispatch_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Lease of an executing job: who runs it and when it last said so.
    lease_host: Mapped[str | None] = mapped_column(String(255))
    lease_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: Epoch seconds of the last phase change, read by the notifier's poll.
    phase_changed_at: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)

    owner: Mapped[User] = relationship(lazy="joined")
    parameters: Mapped[list[JobParameter]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobParameter.position",
        passive_deletes=True)
    results: Mapped[list[JobResult]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobResult.position",
        passive_deletes=True)

    __table_args__ = (
        Index("ix_job_owner_phase_creation", "owner_id", "phase", "creation_time"),
        Index("ix_job_type_owner_creation", "job_type", "owner_id", "creation_time"),
        Index("ix_job_phase_queued", "phase", "queued_at"),
        Index("ix_job_phase_changed", "phase_changed_at"),
        Index("ix_job_destruction", "destruction"),
    )


class JobParameter(Base):
    __tablename__ = "job_parameter"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"),
                                        primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False, default="")
    is_post: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    by_reference: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    job: Mapped[Job] = relationship(back_populates="parameters")


class JobResult(Base):
    """A result file of a job; ``path`` is relative to the job's folder."""

    __tablename__ = "job_result"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"),
                                        primary_key=True)
    result_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mime_type: Mapped[str | None] = mapped_column(String(128))

    job: Mapped[Job] = relationship(back_populates="results")


class Visibility(enum.StrEnum):
    """Who may read a stored file or folder besides its owner and the admins.

    ``shared`` means the users listed in ``file_share`` (VOSpace
    ``core#groupread``); ``public`` means anyone (``core#publicread``).
    """

    PRIVATE = "private"
    SHARED = "shared"
    PUBLIC = "public"


class FileNode(Base):
    """A file or folder of a user's store: the catalogue entry of ``{owner}/{path}``.

    The bytes live in a :class:`uws_service.storage.FileStorage`; this row
    keeps what the storage cannot: checksums (the MD5 is the HTTP ETag), the
    media type given at upload, the visibility, and whether the file could
    be read as a spectrum (``spectra``: how many it holds, None for a file
    that is not a spectrum format; ``catalogue_error``: why it could not
    be read).
    """

    __tablename__ = "file_node"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                          nullable=False, index=True)
    #: Path inside the owner's tree, without a leading ``/`` (``spectra/a.fits``).
    path: Mapped[str] = mapped_column(Text, nullable=False)
    is_dir: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    md5: Mapped[str | None] = mapped_column(String(32))
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    visibility: Mapped[str] = mapped_column(String(16), nullable=False,
                                            default=Visibility.PRIVATE)
    spectra: Mapped[int | None] = mapped_column(Integer)
    catalogue_error: Mapped[str | None] = mapped_column(Text)

    owner: Mapped[User] = relationship()
    #: Users the node is shared with; loaded with the row, written through FileShare.
    readers: Mapped[list[User]] = relationship(secondary="file_share", viewonly=True,
                                               lazy="selectin", order_by="User.name")

    __table_args__ = (
        UniqueConstraint("owner_id", "path", name="uq_file_node_owner_path"),
    )


class FileShare(Base):
    """A user a node is shared with for reading (VOSpace ``core#groupread``)."""

    __tablename__ = "file_share"

    node_id: Mapped[int] = mapped_column(ForeignKey("file_node.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


class ObsCore(Base):
    """One spectrum of a stored file: a row of the ObsCore 1.1 catalogue (``ivoa.obscore``).

    The columns are the mandatory ObsCore 1.1 ones in their standard units
    (metres for ``em_*``, MJD for ``t_*``, degrees, kB for
    ``access_estsize``), plus what vocloud needs: the file (``node_id``)
    and the spectrum's place in it, the owner and the visibility, which
    every query path filters on.  ``obs_publisher_did`` is
    ``ivo://{AUTHORITY}/vocloud?{uuid}``: it survives a move of the file, a
    copy gets a new one, and the row goes with the file.
    """

    __tablename__ = "obscore"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("file_node.id", ondelete="CASCADE"),
                                         nullable=False, index=True)
    spectrum_index: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                          nullable=False, index=True)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    visibility: Mapped[str] = mapped_column(String(16), nullable=False,
                                            default=Visibility.PRIVATE)
    dataproduct_type: Mapped[str] = mapped_column(String(16), nullable=False)
    calib_level: Mapped[int] = mapped_column(Integer, nullable=False)
    obs_collection: Mapped[str] = mapped_column(String(255), nullable=False)
    obs_id: Mapped[str] = mapped_column(String(255), nullable=False)
    obs_publisher_did: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    access_url: Mapped[str] = mapped_column(Text, nullable=False)
    access_format: Mapped[str] = mapped_column(String(128), nullable=False)
    access_estsize: Mapped[int] = mapped_column(BigInteger, nullable=False)
    target_name: Mapped[str | None] = mapped_column(String(255))
    s_ra: Mapped[float | None] = mapped_column(Float)
    s_dec: Mapped[float | None] = mapped_column(Float)
    s_fov: Mapped[float | None] = mapped_column(Float)
    s_region: Mapped[str | None] = mapped_column(Text)
    s_resolution: Mapped[float | None] = mapped_column(Float)
    s_xel1: Mapped[int | None] = mapped_column(BigInteger)
    s_xel2: Mapped[int | None] = mapped_column(BigInteger)
    t_min: Mapped[float | None] = mapped_column(Float)
    t_max: Mapped[float | None] = mapped_column(Float)
    t_exptime: Mapped[float | None] = mapped_column(Float)
    t_resolution: Mapped[float | None] = mapped_column(Float)
    t_xel: Mapped[int | None] = mapped_column(BigInteger)
    em_min: Mapped[float | None] = mapped_column(Float)
    em_max: Mapped[float | None] = mapped_column(Float)
    em_res_power: Mapped[float | None] = mapped_column(Float)
    em_xel: Mapped[int | None] = mapped_column(BigInteger)
    em_ucd: Mapped[str | None] = mapped_column(String(64))
    o_ucd: Mapped[str | None] = mapped_column(String(128))
    o_unit: Mapped[str | None] = mapped_column(String(64))
    pol_states: Mapped[str | None] = mapped_column(String(64))
    pol_xel: Mapped[int | None] = mapped_column(BigInteger)
    facility_name: Mapped[str | None] = mapped_column(String(255))
    instrument_name: Mapped[str | None] = mapped_column(String(255))
    #: Wavelength medium of the file (``air`` or ``vacuum``); ``em_*`` are in it.
    em_medium: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        Index("ix_obscore_position", "s_ra", "s_dec"),
        Index("ix_obscore_visibility", "visibility"),
    )
