"""The UWS 1.1 REST binding (section 2.2) as a Flask blueprint factory.

Each view parses the request, calls :class:`JobService` and renders: XML by
default, JSON when the client asks for it explicitly, plain text for the
atomic resources, 303 See Other after every change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, send_file

from uws_service.auth import require_principal
from uws_service.errors import ErrorRenderer, ServiceError, UsageError, render_text
from uws_service.models import Job
from uws_service.negotiation import wants_json
from uws_service.params import read_params
from uws_service.uws.service import JobService, take_control
from vo import uws_xml
from vo.timefmt import format_time

UWS_XML = "application/xml"


@dataclass(frozen=True)
class UWSMount:
    """Where a UWS job list lives and how its errors look.

    Parameters
    ----------
    name : str
        Blueprint name.
    url_prefix : str
        Path of the job lists: ``/uws`` serves ``/uws/{jobtype}``; with
        ``job_type`` set, the prefix itself is the one job list.
    job_type : str, optional
        A fixed job type (``/tap/async`` -> ``tap``).
    render_error : callable
        Renders a :class:`ServiceError` in the protocol's own form.
    """

    name: str
    url_prefix: str
    job_type: str | None = None
    render_error: ErrorRenderer = render_text

    def list_path(self, job_type: str) -> str:
        return self.url_prefix if self.job_type else f"{self.url_prefix}/{job_type}"


def _service() -> JobService:
    return cast(JobService, current_app.extensions["vocloud"].jobs)


def _public_url() -> str:
    return cast(str, current_app.extensions["vocloud"].config.public_url)


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype=UWS_XML)


def _text(body: str) -> Response:
    return Response(body, mimetype="text/plain")


def see_other(url: str) -> Response:
    """303 See Other with an empty body (no HTML on protocol endpoints)."""
    return Response("", status=303, headers={"Location": url}, mimetype="text/plain")


def _sandboxed(response: Response) -> Response:
    """A file a job wrote may be HTML or SVG: never let it script this origin."""
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


def make_blueprint(mount: UWSMount) -> Blueprint:
    """A blueprint serving the UWS job list(s) of ``mount``."""
    bp = Blueprint(mount.name, __name__, url_prefix=mount.url_prefix)

    def list_url(job_type: str) -> str:
        return _public_url() + mount.list_path(job_type)

    def job_url(job_type: str, job_id: str) -> str:
        return f"{list_url(job_type)}/{job_id}"

    def see_job(job_type: str, job_id: str) -> Response:
        return see_other(job_url(job_type, job_id))

    def route(rule: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            if mount.job_type:
                bp.add_url_rule(rule, view_func=view, defaults={"job_type": mount.job_type},
                                **options)
            else:
                bp.add_url_rule(f"/<job_type>{rule}", view_func=view, **options)
            return view
        return decorator

    @bp.errorhandler(ServiceError)
    def _error(error: ServiceError) -> Response:
        return mount.render_error(error)

    def load(job_type: str, job_id: str) -> Job:
        return _service().get(require_principal(), job_type, job_id)

    # Job list -----------------------------------------------------------------

    @route("", methods=["GET"], strict_slashes=False)
    def job_list(job_type: str) -> Response:
        jobs = _service().list_jobs(require_principal(), job_type, read_params())
        refs = [uws_xml.ShortJobDescription(
            job_id=j.id, href=job_url(job_type, j.id), phase=j.phase, run_id=j.run_id,
            owner_id=j.owner.name, creation_time=j.creation_time) for j in jobs]
        if wants_json():
            return jsonify(uws_xml.jobs_to_json(refs))
        return _xml(uws_xml.jobs_to_xml(refs))

    @route("", methods=["POST"], strict_slashes=False)
    def create_job(job_type: str) -> Response:
        job = _service().create(require_principal(), job_type, read_params())
        return see_job(job_type, job.id)

    # Job ----------------------------------------------------------------------

    @route("/<job_id>", methods=["GET"])
    def get_job(job_type: str, job_id: str) -> Response:
        service = _service()
        params = read_params()
        timeout = service.parse_wait(params.get("wait"))
        if timeout is not None:
            job = service.wait(require_principal(), job_type, job_id, timeout,
                               params.get("phase"))
        else:
            job = load(job_type, job_id)
        summary = service.summary(job, job_url(job_type, job_id))
        if wants_json():
            return jsonify(uws_xml.job_to_json(summary))
        return _xml(uws_xml.job_to_xml(summary))

    @route("/<job_id>", methods=["POST"])
    def post_job(job_type: str, job_id: str) -> Response:
        service = _service()
        job = load(job_type, job_id)
        params = read_params()
        action = params.pop("action")
        if action is not None:
            if action.upper() != "DELETE":
                raise UsageError(f"ACTION={action!r}: only ACTION=DELETE is understood")
            service.delete(job)
            return see_other(list_url(job_type))
        control = take_control(params)
        if params.items or params.uploads:
            service.update_parameters(job, params)
            job = load(job_type, job_id)
        service.apply_control(job, control)
        return see_job(job_type, job_id)

    @route("/<job_id>", methods=["DELETE"])
    def delete_job(job_type: str, job_id: str) -> Response:
        _service().delete(load(job_type, job_id))
        return see_other(list_url(job_type))

    # Job children ---------------------------------------------------------------

    @route("/<job_id>/phase", methods=["GET"])
    def get_phase(job_type: str, job_id: str) -> Response:
        return _text(load(job_type, job_id).phase)

    @route("/<job_id>/phase", methods=["POST"])
    def post_phase(job_type: str, job_id: str) -> Response:
        _service().set_phase(load(job_type, job_id), read_params().get("phase"))
        return see_job(job_type, job_id)

    @route("/<job_id>/executionduration", methods=["GET"])
    def get_execution_duration(job_type: str, job_id: str) -> Response:
        return _text(str(load(job_type, job_id).execution_duration))

    @route("/<job_id>/executionduration", methods=["POST"])
    def post_execution_duration(job_type: str, job_id: str) -> Response:
        _service().set_execution_duration(load(job_type, job_id),
                                          read_params().get("executionduration"))
        return see_job(job_type, job_id)

    @route("/<job_id>/destruction", methods=["GET"])
    def get_destruction(job_type: str, job_id: str) -> Response:
        return _text(format_time(load(job_type, job_id).destruction) or "")

    @route("/<job_id>/destruction", methods=["POST"])
    def post_destruction(job_type: str, job_id: str) -> Response:
        _service().set_destruction(load(job_type, job_id), read_params().get("destruction"))
        return see_job(job_type, job_id)

    @route("/<job_id>/error", methods=["GET"])
    def get_error(job_type: str, job_id: str) -> Response:
        return _text(_service().error_text(load(job_type, job_id)))

    @route("/<job_id>/quote", methods=["GET"])
    def get_quote(job_type: str, job_id: str) -> Response:
        return _text(format_time(load(job_type, job_id).quote) or "")

    @route("/<job_id>/owner", methods=["GET"])
    def get_owner(job_type: str, job_id: str) -> Response:
        return _text(load(job_type, job_id).owner.name)

    @route("/<job_id>/parameters", methods=["GET"])
    def get_parameters(job_type: str, job_id: str) -> Response:
        job = load(job_type, job_id)
        parameters = _service().parameters(job, job_url(job_type, job_id))
        if wants_json():
            return jsonify(uws_xml.parameters_to_json(parameters))
        return _xml(uws_xml.parameters_to_xml(parameters))

    @route("/<job_id>/parameters", methods=["POST"])
    def post_parameters(job_type: str, job_id: str) -> Response:
        service = _service()
        job = load(job_type, job_id)
        params = read_params()
        control = take_control(params)
        service.update_parameters(job, params)
        service.apply_control(load(job_type, job_id), control)
        return see_job(job_type, job_id)

    @route("/<job_id>/parameters/<name>", methods=["GET"])
    def get_uploaded_parameter(job_type: str, job_id: str, name: str) -> Response:
        path = _service().upload_path(load(job_type, job_id), name.lower())
        return _sandboxed(send_file(path, mimetype="application/octet-stream",
                                    conditional=True))

    @route("/<job_id>/results", methods=["GET"])
    def get_results(job_type: str, job_id: str) -> Response:
        job = load(job_type, job_id)
        results = _service().results(job, job_url(job_type, job_id))
        if wants_json():
            return jsonify(uws_xml.results_to_json(results))
        return _xml(uws_xml.results_to_xml(results))

    @route("/<job_id>/results/<path:result_id>", methods=["GET"])
    def get_result(job_type: str, job_id: str, result_id: str) -> Response:
        path, mime_type = _service().result_path(load(job_type, job_id), result_id)
        return _sandboxed(send_file(path, mimetype=mime_type or "application/octet-stream",
                                    conditional=True, etag=True))

    return bp
