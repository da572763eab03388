"""Who is asking: HTTP Basic (password or token), Bearer tokens and the portal's session cookie.

Every request is authenticated once, before its view runs; views declare
what they need with :func:`login_required`.  Requests authenticated by the
session cookie that change something must carry the session's CSRF token
(header ``X-CSRF-Token`` or form field ``csrf_token``).  Browsers also
resend HTTP Basic credentials by themselves once a user has typed them, so
every authenticated request that changes something is refused when the
browser says it comes from another site (``Origin`` or ``Sec-Fetch-Site``);
pyvo, TOPCAT and curl send neither header.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import current_app, g, request, session

from uws_service.errors import AuthenticationRequired, PermissionDenied
from uws_service.users import Principal, UserService

F = TypeVar("F", bound=Callable[..., Any])
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def user_service() -> UserService:
    return cast(UserService, current_app.extensions["vocloud"].users)


def authenticate_request() -> None:
    """Resolve ``g.principal`` (None when anonymous); 401 for bad credentials."""
    g.principal = None
    g.via_cookie = False
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationRequired("malformed Basic credentials") from None
        name, sep, secret = decoded.partition(":")
        principal = user_service().check_basic(name, secret) if sep else None
        if principal is None:
            raise AuthenticationRequired("wrong user name, password or token")
        g.principal = principal
        return
    if scheme == "bearer":
        principal = user_service().check_token(credentials)
        if principal is None:
            raise AuthenticationRequired("unknown or revoked token")
        g.principal = principal
        return
    user_id = session.get("user_id")
    if user_id is not None:
        principal = user_service().get_user_by_id(int(user_id))
        if principal is None:
            session.clear()
            return
        g.principal = principal
        g.via_cookie = True


def current_principal() -> Principal | None:
    return cast(Principal | None, g.get("principal"))


def require_principal() -> Principal:
    """The authenticated user; 401 with a challenge when anonymous."""
    principal = current_principal()
    if principal is None:
        raise AuthenticationRequired("authentication required")
    if request.method not in _SAFE_METHODS:
        check_same_site()
        if g.get("via_cookie"):
            check_csrf()
    return principal


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_principal()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def csrf_token() -> str:
    """The CSRF token of the portal session, made on first use."""
    token = session.get("csrf_token")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf_token"] = token
    return str(token)


def check_same_site() -> None:
    """Refuse a state-changing request a browser made on behalf of another site."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise PermissionDenied("cross-site request refused")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    public = urlsplit(current_app.extensions["vocloud"].config.public_url)
    if origin.rstrip("/") != f"{public.scheme}://{public.netloc}":
        raise PermissionDenied(f"request from another site ({origin}) refused")


def check_csrf() -> None:
    expected = session.get("csrf_token")
    sent = request.headers.get("X-CSRF-Token")
    if not sent and request.mimetype == "application/x-www-form-urlencoded":
        # Only a small form may carry the token as a field: parsing a multipart
        # or raw body here would consume an upload before its handler streams it.
        sent = request.form.get("csrf_token")
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise PermissionDenied("missing or wrong CSRF token")


def log_in(principal: Principal) -> None:
    session.clear()
    session["user_id"] = principal.id
    session.permanent = True
    csrf_token()


def log_out() -> None:
    session.clear()
