"""VOSI 1.1 documents: capabilities and availability.

Capabilities follow ``VOSICapabilities-v1.0.xsd`` with VOResource 1.1
capability and interface types (``vs:ParamHTTP`` from VODataService); only
the root element is namespace-qualified (VOSI 1.1 section 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from vo.timefmt import format_time

VOSI_CAP_NS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_AVAIL_NS = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
VR_NS = "http://www.ivoa.net/xml/VOResource/v1.0"
VS_NS = "http://www.ivoa.net/xml/VODataService/v1.1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI_NS}}}type"

VOSI_CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
VOSI_AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"


@dataclass(frozen=True)
class Interface:
    """A ``vs:ParamHTTP`` interface: one access URL."""

    access_url: str
    role: str | None = "std"
    version: str | None = None
    result_type: str | None = None


@dataclass(frozen=True)
class Capability:
    """One ``capability``: a standard (or none) and its interfaces."""

    standard_id: str | None
    interfaces: list[Interface] = field(default_factory=list)
    description: str | None = None


def capabilities_to_xml(capabilities: list[Capability]) -> bytes:
    root = etree.Element(f"{{{VOSI_CAP_NS}}}capabilities",
                         nsmap={"vosi": VOSI_CAP_NS, "vr": VR_NS, "vs": VS_NS, "xsi": XSI_NS})
    for cap in capabilities:
        element = etree.SubElement(root, "capability")
        if cap.standard_id:
            element.set("standardID", cap.standard_id)
        if cap.description:
            etree.SubElement(element, "description").text = cap.description
        for iface in cap.interfaces:
            i = etree.SubElement(element, "interface")
            i.set(_XSI_TYPE, "vs:ParamHTTP")
            if iface.role:
                i.set("role", iface.role)
            if iface.version:
                i.set("version", iface.version)
            url = etree.SubElement(i, "accessURL", use="base")
            url.text = iface.access_url
            if iface.result_type:
                etree.SubElement(i, "resultType").text = iface.result_type
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True)
class Availability:
    available: bool
    up_since: datetime | None = None
    notes: list[str] = field(default_factory=list)


def availability_to_xml(availability: Availability) -> bytes:
    ns = f"{{{VOSI_AVAIL_NS}}}"
    root = etree.Element(ns + "availability", nsmap={"vosi": VOSI_AVAIL_NS})
    etree.SubElement(root, ns + "available").text = "true" if availability.available else "false"
    if availability.up_since is not None:
        etree.SubElement(root, ns + "upSince").text = format_time(availability.up_since)
    for note in availability.notes:
        etree.SubElement(root, ns + "note").text = note
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
