"""JSON endpoints for people and the portal: API tokens, portal log-in, job type schemas."""

from __future__ import annotations

from typing import cast

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
from uws_service.errors import LoginFailed, NotFound, ServiceError, render_json
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
