"""Content negotiation: XML unless the client asks for JSON explicitly.

A protocol client (TOPCAT, pyvo, STILTS) must always get XML; the portal
asks for ``application/json``.  JSON is chosen only when the Accept header
names it explicitly with a quality no lower than any XML type (wildcards
count for XML).
"""

from __future__ import annotations

from flask import request

_XML_TYPES = ("application/xml", "text/xml", "application/x-votable+xml", "*/*",
              "application/*", "text/*")


def wants_json() -> bool:
    json_q = 0.0
    xml_q = 0.0
    for mimetype, quality in request.accept_mimetypes:
        if mimetype == "application/json":
            json_q = max(json_q, quality)
        elif mimetype in _XML_TYPES:
            xml_q = max(xml_q, quality)
    return json_q > 0 and json_q >= xml_q
