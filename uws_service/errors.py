"""Service errors and how each protocol writes them.

Handlers and services raise :class:`ServiceError` subclasses; each blueprint
chooses a renderer: DALI/UWS ``text/plain`` ("UsageError: message"), or
JSON for ``/api``.  An unauthenticated request gets 401 with a Basic
challenge, because TOPCAT and pyvo send credentials only after one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Response

REALM = "vocloud"


class ServiceError(Exception):
    """An error with its HTTP status and DALI error code."""

    status = 500
    code = "Error"

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class UsageError(ServiceError):
    """Malformed or invalid request parameters."""

    status = 400
    code = "UsageError"


class AuthenticationRequired(ServiceError):
    status = 401
    code = "AuthenticationError"


class LoginFailed(ServiceError):
    """Wrong name or password at the portal's log-in (401, but no Basic challenge)."""

    status = 401
    code = "AuthenticationError"


class PermissionDenied(ServiceError):
    status = 403
    code = "AuthorizationError"


class InvalidPhase(ServiceError):
    """A request the job's phase does not allow (UWS 1.1 section 2.2: 403)."""

    status = 403
    code = "InvalidPhase"


class NotFound(ServiceError):
    status = 404
    code = "NotFoundFault"


class Conflict(ServiceError):
    status = 409
    code = "Conflict"


class PayloadTooLarge(ServiceError):
    """An upload over the owner's quota or the size limit of one file (HTTP 413)."""

    status = 413
    code = "Error"


class RangeNotSatisfiable(ServiceError):
    """A byte range beyond the end of a file (HTTP 416, ``Content-Range: bytes */{size}``).

    Parameters
    ----------
    message : str
        What is wrong.
    size : int
        Size of the file.
    """

    status = 416
    code = "UsageError"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def _challenge(response: Response, error: ServiceError) -> Response:
    if isinstance(error, AuthenticationRequired):
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


def render_text(error: ServiceError) -> Response:
    """The DALI form (section 5.2): ``text/plain``, code first, then the message."""
    body = f"{error.code}: {error.message}\n"
    if error.detail:
        body += f"\n{error.detail}\n"
    from flask import Response  # services raise these errors in worker processes too

    response = Response(body, status=error.status, mimetype="text/plain")
    return _challenge(response, error)


def render_json(error: ServiceError) -> Response:
    from flask import jsonify

    response = jsonify({"error": error.code, "message": error.message,
                        "detail": error.detail})
    response.status_code = error.status
    return _challenge(response, error)


ErrorRenderer = Callable[[ServiceError], "Response"]
