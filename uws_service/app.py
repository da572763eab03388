"""The Flask application factory: wires configuration, services and one blueprint per concern.

``create_app`` has no side effects beyond building objects: it creates no
tables, runs no migrations and starts no thread (the notifier starts when
the first WAIT needs it; the dispatcher and workers belong to
``vocloud serve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from uws_service.auth import authenticate_request
from uws_service.config import Config
from uws_service.db import Database, get_database
from uws_service.errors import ServiceError, render_text
from uws_service.filestore import FileService
from uws_service.models import utcnow
from uws_service.notify import Notifier, get_notifier
from uws_service.store import JobStore
from uws_service.users import UserService
from uws_service.uws.routes import UWSMount, make_blueprint
from uws_service.uws.service import JobService


@dataclass
class Services:
    """Everything a request handler may need, built once per application."""

    config: Config
    database: Database
    notifier: Notifier
    store: JobStore
    jobs: JobService
    users: UserService
    files: FileService
    started_at: datetime


def build_services(config: Config) -> Services:
    database = get_database(config.database_url)
    notifier = get_notifier(database, config.redis_url, config.notify_poll_interval)
    store = JobStore(database, notifier)
    return Services(config=config, database=database, notifier=notifier, store=store,
                    jobs=JobService(config, store),
                    users=UserService(database, config.secret_key, config.auth_cache_seconds),
                    files=FileService.from_config(config, database),
                    started_at=utcnow())


def create_app(config: Config | None = None) -> Flask:
    """Build the vocloud web application."""
    config = config or Config.from_env()
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="vocloud_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        MAX_CONTENT_LENGTH=None,
        JSON_SORT_KEYS=False,
    )
    app.extensions["vocloud"] = build_services(config)

    @app.before_request
    def _authenticate() -> None:
        authenticate_request()

    @app.after_request
    def _no_sniffing(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        return render_text(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        # Protocol clients must never receive an HTML error page.
        response = Response(f"{error.name}: {error.description}\n",
                            status=error.code or 500, mimetype="text/plain")
        if error.code == 405 and isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        app.logger.exception("unexpected error", exc_info=error)
        return Response("Error: internal error of the service; it has been logged\n",
                        status=500, mimetype="text/plain")

    from uws_service import api, files, vosi, vospace

    app.register_blueprint(vosi.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(vospace.bp)
    app.register_blueprint(make_blueprint(UWSMount(name="uws", url_prefix="/uws")))
    return app
