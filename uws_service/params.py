"""Reading protocol parameters from a request, the same way for every endpoint.

DALI 1.1 section 3.1: parameter *names* are case-insensitive, values are
not.  Query string and form body are read together (GET or POST); a
multipart file part becomes an upload that is stored by reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import request
from werkzeug.datastructures import FileStorage

from uws_service.errors import UsageError


@dataclass
class RequestParams:
    """The request's parameters, names in lower case, in the order sent."""

    items: list[tuple[str, str]] = field(default_factory=list)
    uploads: list[tuple[str, FileStorage]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        """The single value of ``name``; 400 when it was given more than once."""
        values = self.getlist(name)
        if not values:
            return None
        if len(set(values)) > 1:
            raise UsageError(f"parameter {name.upper()} was given more than once")
        return values[0]

    def getlist(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.items if key == name]

    def pop(self, name: str) -> str | None:
        value = self.get(name)
        name = name.lower()
        self.items = [(k, v) for k, v in self.items if k != name]
        return value

    def __contains__(self, name: str) -> bool:
        name = name.lower()
        return any(key == name for key, _ in self.items)


def read_params(*, include_body: bool = True) -> RequestParams:
    """Parameters of the current request (query string, then form body)."""
    params = RequestParams()
    for key, value in request.args.items(multi=True):
        params.items.append((key.lower(), value))
    if include_body and request.method in ("POST", "PUT"):
        for key, value in request.form.items(multi=True):
            if key == "csrf_token":  # the portal's, checked by auth; never a parameter
                continue
            params.items.append((key.lower(), value))
        for key, upload in request.files.items(multi=True):
            params.uploads.append((key.lower(), upload))
    return params
