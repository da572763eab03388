"""VOSI ``/capabilities`` and ``/availability`` for the whole service (anonymous)."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, current_app
from sqlalchemy import text

from jobs import registry
from uws_service.config import Config
from vo.vosi import (
    VOSI_AVAILABILITY,
    VOSI_CAPABILITIES,
    Availability,
    Capability,
    Interface,
    availability_to_xml,
    capabilities_to_xml,
)

bp = Blueprint("vosi", __name__)

#: VOSpace 2.1 standard identifiers and the resources that implement them.
VOSPACE_CAPABILITIES = (
    ("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "nodes"),
    ("ivo://ivoa.net/std/VOSpace/v2.0#protocols", "protocols"),
    ("ivo://ivoa.net/std/VOSpace/v2.0#views", "views"),
    ("ivo://ivoa.net/std/VOSpace/v2.0#properties", "properties"),
    ("ivo://ivoa.net/std/VOSpace#sync-2.1", "synctrans"),
)


@bp.get("/capabilities")
def capabilities() -> Response:
    config = cast(Config, current_app.extensions["vocloud"].config)
    base = config.public_url
    caps = [
        Capability(VOSI_CAPABILITIES, [Interface(f"{base}/capabilities")]),
        Capability(VOSI_AVAILABILITY, [Interface(f"{base}/availability")]),
    ]
    # VOSpace 2.1, section 3.1 "Service capabilities": one capability per resource.
    for standard_id, path in VOSPACE_CAPABILITIES:
        caps.append(Capability(standard_id, [Interface(f"{base}/vospace/{path}",
                                                       version="2.1")]))
    for name, registered in sorted(registry.job_types().items()):
        caps.append(Capability(
            None, [Interface(f"{base}/uws/{name}", role=None, version="1.1")],
            description=f"UWS 1.1 job list for '{name}' jobs: {registered.job_type.title}. "
                        f"Parameters: {base}/schemas/{name}.json"))
    return Response(capabilities_to_xml(caps), mimetype="application/xml")


@bp.get("/availability")
def availability() -> Response:
    services = current_app.extensions["vocloud"]
    notes: list[str] = []
    available = True
    try:
        with services.database.read() as session:
            session.execute(text("SELECT 1"))
        notes.append("database reachable")
    except Exception as exc:  # the whole point is to report it
        available = False
        notes.append(f"database unreachable: {type(exc).__name__}")
    redis_url = services.config.redis_url
    if redis_url:
        try:
            import redis

            redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
            notes.append("broker reachable")
        except Exception as exc:
            available = False
            notes.append(f"broker unreachable: {type(exc).__name__}")
    doc = Availability(available=available, up_since=services.started_at, notes=notes)
    return Response(availability_to_xml(doc), mimetype="application/xml")
