"""Users, passwords and API tokens: the rules, independent of HTTP.

Passwords are hashed with argon2.  An API token reads ``vct_{id}_{secret}``;
the database keeps only the SHA-256 of the secret and finds the row by id,
so checking a token costs one indexed read and one hash, not a KDF run.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from uws_service.db import Database
from uws_service.models import ApiToken, User, utcnow

TOKEN_PREFIX = "vct_"
_TOKEN_RE = re.compile(r"^vct_(\d{1,18})_([A-Za-z0-9_-]{20,200})$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_hasher = PasswordHasher()


class UserError(ValueError):
    """A user or token request that cannot be honoured (bad name, duplicate...)."""


@dataclass(frozen=True)
class Principal:
    """Who is making a request, once authenticated."""

    id: int
    name: str
    is_admin: bool


@dataclass(frozen=True)
class TokenInfo:
    """A token as its owner may see it (never the secret)."""

    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UserService:
    """Creates users and tokens and checks credentials.

    Parameters
    ----------
    database : Database
        Where users live.
    secret_key : str
        Keys the HMAC under which successful password checks are cached.
    cache_seconds : float
        How long a successful password check is remembered.
    """

    def __init__(self, database: Database, secret_key: str, cache_seconds: float = 60.0) -> None:
        self.database = database
        self._key = secret_key.encode()
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_lock = threading.Lock()

    # Users --------------------------------------------------------------------

    def create_user(self, name: str, password: str | None, *, admin: bool = False) -> Principal:
        if not _NAME_RE.match(name):
            raise UserError(f"invalid user name {name!r}: use lower-case letters, digits, "
                            "'.', '_' or '-', starting with a letter")
        if password is not None and len(password) < 8:
            raise UserError("a password needs at least 8 characters")
        with self.database.write() as session:
            if session.scalar(select(User.id).where(User.name == name)) is not None:
                raise UserError(f"user {name!r} already exists")
            user = User(name=name, is_admin=admin,
                        password_hash=_hasher.hash(password) if password else None)
            session.add(user)
            session.flush()
            return Principal(user.id, user.name, user.is_admin)

    def get_user(self, name: str) -> Principal | None:
        with self.database.read() as session:
            user = session.scalars(select(User).where(User.name == name)).first()
            return Principal(user.id, user.name, user.is_admin) if user else None

    def get_user_by_id(self, user_id: int) -> Principal | None:
        with self.database.read() as session:
            user = session.get(User, user_id)
            return Principal(user.id, user.name, user.is_admin) if user else None

    def count_users(self) -> int:
        with self.database.read() as session:
            return len(session.scalars(select(User.id)).all())

    # Tokens -------------------------------------------------------------------

    def create_token(self, user_name: str, label: str = "") -> str:
        """A new token for ``user_name``; the only time its secret is shown."""
        secret = secrets.token_urlsafe(32)
        with self.database.write() as session:
            user = session.scalars(select(User).where(User.name == user_name)).first()
            if user is None:
                raise UserError(f"no user {user_name!r}")
            token = ApiToken(user_id=user.id, label=label[:200], secret_sha256=_sha256(secret))
            session.add(token)
            session.flush()
            return f"{TOKEN_PREFIX}{token.id}_{secret}"

    def list_tokens(self, user_id: int) -> list[TokenInfo]:
        with self.database.read() as session:
            tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                                     .order_by(ApiToken.id))
            return [TokenInfo(t.id, t.label, t.created_at, t.last_used_at, t.revoked_at)
                    for t in tokens]

    def revoke_token(self, user_id: int, token_id: int) -> bool:
        """Revoke one of the user's tokens; False when there is no such token."""
        with self.database.write() as session:
            token = session.get(ApiToken, token_id)
            if token is None or token.user_id != user_id:
                return False
            if token.revoked_at is None:
                token.revoked_at = utcnow()
        self._clear_cache()
        return True

    # Checking credentials -------------------------------------------------------

    def check_token(self, token: str) -> Principal | None:
        """The token's user, or None for an unknown, wrong or revoked token.

        A valid token is remembered for ``cache_seconds`` under an HMAC of
        it: every pyvo request carries one, and two database reads per
        request would be most of a small request's cost.  A revocation
        takes effect at once in the process that made it, elsewhere within
        ``cache_seconds``.
        """
        match = _TOKEN_RE.match(token.strip())
        if match is None:
            return None
        key = self._cache_key("token", token.strip())
        cached = self._cached(key)
        if cached is not None:
            return cached
        token_id, secret = int(match.group(1)), match.group(2)
        with self.database.read() as session:
            row = session.scalars(select(ApiToken).options(selectinload(ApiToken.user))
                                  .where(ApiToken.id == token_id)).first()
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.secret_sha256, _sha256(secret)):
                return None
            user = row.user
            principal = Principal(user.id, user.name, user.is_admin)
            last_used = row.last_used_at
        if last_used is None or (utcnow() - last_used).total_seconds() > 300:
            with self.database.write() as session:
                token_row = session.get(ApiToken, token_id)
                if token_row is not None:
                    token_row.last_used_at = utcnow()
        self._remember(key, principal)
        return principal

    def check_password(self, name: str, password: str) -> Principal | None:
        key = self._cache_key("password", f"{name}\0{password}")
        cached = self._cached(key)
        if cached is not None:
            return cached
        with self.database.read() as session:
            user = session.scalars(select(User).where(User.name == name)).first()
            if user is None or not user.password_hash:
                _hasher.hash("timing-equaliser")  # the same cost for unknown users
                return None
            try:
                _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            principal = Principal(user.id, user.name, user.is_admin)
        self._remember(key, principal)
        return principal

    def check_basic(self, name: str, secret: str) -> Principal | None:
        """HTTP Basic: ``secret`` may be the password or one of the user's tokens."""
        if secret.startswith(TOKEN_PREFIX):
            principal = self.check_token(secret)
            if principal is not None and principal.name == name:
                return principal
            return None
        return self.check_password(name, secret)

    # Cache of successful checks -------------------------------------------------

    def _cache_key(self, kind: str, credentials: str) -> str:
        return hmac.new(self._key, f"{kind}\0{credentials}".encode(),
                        hashlib.sha256).hexdigest()

    def _cached(self, key: str) -> Principal | None:
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def _remember(self, key: str, principal: Principal) -> None:
        with self._cache_lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (principal, time.monotonic() + self._cache_seconds)

    def _clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()
