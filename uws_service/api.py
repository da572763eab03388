"""JSON endpoints for people and the portal: API tokens, portal log-in, job type schemas,
file management (``/api/files/...``: mkdir, move, copy, visibility, share, quota).

Handlers only translate JSON; the rules live in the services.  Errors are
JSON (:func:`~uws_service.errors.render_json`), never HTML.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, request

from jobs import registry
from uws_service.auth import (
    csrf_token,
    current_principal,
    log_in,
    log_out,
    login_required,
    require_principal,
)
from uws_service.errors import LoginFailed, NotFound, ServiceError, UsageError, render_json
from uws_service.filestore import FileMeta, FileService
from uws_service.users import UserService
from vo.timefmt import format_time

bp = Blueprint("api", __name__)


def _users() -> UserService:
    return cast(UserService, current_app.extensions["vocloud"].users)


@bp.errorhandler(ServiceError)
def _error(error: ServiceError) -> Response:
    return render_json(error)


@bp.get("/api/tokens")
@login_required
def list_tokens() -> Response:
    principal = require_principal()
    return jsonify({"tokens": [
        {"id": t.id, "label": t.label, "created": format_time(t.created_at),
         "lastUsed": format_time(t.last_used_at), "revoked": format_time(t.revoked_at)}
        for t in _users().list_tokens(principal.id)]})


@bp.post("/api/tokens")
@login_required
def create_token() -> Response:
    principal = require_principal()
    body = request.get_json(silent=True) or {}
    label = str(body.get("label") or request.form.get("label") or "")
    token = _users().create_token(principal.name, label)
    response = jsonify({"token": token, "label": label,
                        "note": "Keep this token: it is shown only once."})
    response.status_code = 201
    return response


@bp.delete("/api/tokens/<int:token_id>")
@login_required
def revoke_token(token_id: int) -> Response:
    principal = require_principal()
    if not _users().revoke_token(principal.id, token_id):
        raise NotFound(f"no token {token_id}")
    return Response(status=204)


@bp.post("/api/login")
def login() -> Response:
    """Portal log-in: name and password give a session cookie."""
    body = request.get_json(silent=True) or request.form
    name = str(body.get("name") or body.get("username") or "")
    password = str(body.get("password") or "")
    principal = _users().check_password(name, password)
    if principal is None:
        raise LoginFailed("wrong user name or password")
    log_in(principal)
    return jsonify({"user": principal.name, "admin": principal.is_admin,
                    "csrfToken": csrf_token()})


@bp.post("/api/logout")
def logout() -> Response:
    if current_principal() is not None:
        require_principal()  # checks the CSRF token of a cookie session
    log_out()
    return Response(status=204)


@bp.get("/api/whoami")
@login_required
def whoami() -> Response:
    principal = require_principal()
    return jsonify({"user": principal.name, "admin": principal.is_admin})


@bp.get("/schemas/<name>.json")
def job_schema(name: str) -> Response:
    """The JSON Schema of a job type's parameters (public)."""
    registered = registry.get(name)
    if registered is None:
        raise NotFound(f"no job type {name!r}")
    return jsonify(registered.schema)


# File management (/api/files) ---------------------------------------------------------


def _files() -> FileService:
    return cast(FileService, current_app.extensions["vocloud"].files)


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UsageError("the request body must be a JSON object "
                         "(Content-Type: application/json)")
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise UsageError(f"{key!r} is required and must be a string")
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise UsageError(f"{key!r} must be true or false")
    return value


def _owner(body: dict[str, Any] | None = None) -> str | None:
    """The ``owner`` of the tree to work on (body, else query); None for one's own."""
    value = (body or {}).get("owner", request.args.get("owner"))
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError("'owner' must be a user name")
    return value


def _node(meta: FileMeta, status: int = 200) -> Response:
    service = _files()
    response = jsonify({
        "owner": meta.owner, "path": meta.path.as_posix(), "isDir": meta.is_dir,
        "size": meta.size, "md5": meta.md5, "sha256": meta.sha256,
        "contentType": None if meta.is_dir else meta.content_type,
        "modified": format_time(meta.modified), "visibility": meta.visibility,
        "sharedWith": list(meta.shared_with), "spectra": meta.spectra,
        "catalogueError": meta.catalogue_error,
        "url": service.url_of(meta.owner, meta.path, meta.is_dir)})
    response.status_code = status
    if status == 201:
        response.headers["Location"] = service.url_of(meta.owner, meta.path, meta.is_dir)
    return response


@bp.post("/api/files/mkdir")
def files_mkdir() -> Response:
    """Create a folder and its parents: 201 with the folder."""
    principal = require_principal()
    body = _json_body()
    return _node(_files().mkdir(principal, _owner(body), _text(body, "path")), 201)


@bp.post("/api/files/move")
def files_move() -> Response:
    """Move a file or folder: 200 with the node at its new path."""
    principal = require_principal()
    body = _json_body()
    return _node(_files().move(principal, _owner(body), _text(body, "from"), _text(body, "to"),
                               overwrite=_flag(body, "overwrite")))


@bp.post("/api/files/copy")
def files_copy() -> Response:
    """Copy a file or folder within the quota: 201 with the copy."""
    principal = require_principal()
    body = _json_body()
    return _node(_files().copy(principal, _owner(body), _text(body, "from"), _text(body, "to"),
                               overwrite=_flag(body, "overwrite")), 201)


@bp.post("/api/files/visibility")
def files_visibility() -> Response:
    """Make a node (``recursive``: and what is under it) public or private: 200."""
    principal = require_principal()
    body = _json_body()
    return _node(_files().change_visibility(principal, _owner(body), _text(body, "path"),
                                            _text(body, "visibility"),
                                            recursive=_flag(body, "recursive")))


@bp.post("/api/files/share")
def files_share() -> Response:
    """Share a node with named users (``users``: a list; empty ends the sharing): 200.

    A folder is shared with everything under it unless ``recursive`` is false.
    """
    principal = require_principal()
    body = _json_body()
    users = body.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise UsageError("'users' must be a list of user names (empty to stop sharing)")
    recursive = body.get("recursive", True)
    if not isinstance(recursive, bool):
        raise UsageError("'recursive' must be true or false")
    return _node(_files().share(principal, _owner(body), _text(body, "path"), users,
                                recursive=recursive))


@bp.get("/api/files/quota")
def files_quota() -> Response:
    """The quota, the bytes used and the bytes left, of one's own tree (or ``?owner=``)."""
    principal = require_principal()
    quota = _files().quota(principal, _owner())
    return jsonify({"owner": quota.owner, "quota": quota.quota, "used": quota.used,
                    "free": quota.free})
