"""Plain HTTP access to stored files: ``/files/{user}/{path}`` (GET, HEAD, PUT, POST, DELETE).

GET of a folder gives its listing as JSON, or with ``?format=zip`` (or
``Accept: application/zip``) the whole folder as a streamed ZIP64 archive.
POST of ``multipart/form-data`` to a folder stores many files at once, each
part streamed to storage (at most ``VOCLOUD_UPLOAD_MAX_PARTS`` parts).

The blueprint only translates HTTP (conditional and ranged requests,
streaming bodies, status codes); the rules are in
:class:`uws_service.filestore.FileService`.  Errors are written in the
DALI ``text/plain`` form, never HTML.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.http import http_date, parse_date
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from uws_service.auth import current_principal, require_principal
from uws_service.errors import RangeNotSatisfiable, ServiceError, UsageError, render_text
from uws_service.filestore import FileMeta, FileService, UploadPart, _aware
from uws_service.storage import CHUNK_SIZE, RangeError, parse_range_header
from vo.timefmt import format_time

__all__ = ["FileMeta", "FileService", "bp"]


# HTTP ------------------------------------------------------------------------------

bp = Blueprint("files", __name__)


def _files() -> FileService:
    return cast(FileService, current_app.extensions["vocloud"].files)


@bp.errorhandler(ServiceError)
def _error(error: ServiceError) -> Response:
    response = render_text(error)
    if isinstance(error, RangeNotSatisfiable):
        response.headers["Content-Range"] = f"bytes */{error.size}"
    return response


def _request_chunks() -> Iterator[bytes]:
    """The request body in chunks of at most 1 MiB, never the whole of it."""
    stream = request.stream
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def _validators(meta: FileMeta) -> dict[str, str]:
    return {"ETag": f'"{meta.md5}"', "Last-Modified": http_date(meta.modified),
            "Accept-Ranges": "bytes"}


def _seconds(value: datetime) -> datetime:
    return _aware(value).replace(microsecond=0)


def _not_modified(meta: FileMeta) -> bool:
    """RFC 9110 13.1.2 / 13.1.3: If-None-Match wins over If-Modified-Since."""
    if request.headers.get("If-None-Match") is not None:
        return request.if_none_match.contains_weak(meta.md5 or "")
    since = request.if_modified_since
    return since is not None and _seconds(meta.modified) <= _aware(since)


def _range_applies(meta: FileMeta) -> bool:
    """RFC 9110 13.1.5: If-Range with a strong ETag or the exact Last-Modified date."""
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == f'"{meta.md5}"'
    if value.startswith("W/"):
        return False
    date = parse_date(value)
    return date is not None and _aware(date) == _seconds(meta.modified)


def _send_file(service: FileService, meta: FileMeta) -> Response:
    headers = _validators(meta)
    if _not_modified(meta):
        return Response(status=304, headers=headers)
    start, end, status = 0, meta.size - 1, 200
    header = request.headers.get("Range")
    if header and _range_applies(meta):
        try:
            wanted = parse_range_header(header, meta.size)
        except RangeError as exc:
            raise RangeNotSatisfiable(str(exc), exc.size) from None
        if wanted is not None:
            start, end = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{meta.size}"
    length = max(end - start + 1, 0)
    if request.method == "HEAD":
        response = Response(status=status, headers=headers, content_type=meta.content_type)
        response.headers["Content-Length"] = str(length)
        return response
    data = service.open(meta, start, end if status == 206 else None)
    response = Response(data, status=status, headers=headers, content_type=meta.content_type,
                        direct_passthrough=True)
    response.headers["Content-Length"] = str(data.length)
    return response


def _listing(service: FileService, meta: FileMeta) -> Response:
    entries: list[dict[str, Any]] = [
        {"name": entry.name, "size": entry.size, "is_dir": entry.is_dir, "md5": entry.md5,
         "modified": format_time(entry.modified),
         "url": service.url_of(entry.owner, entry.path, entry.is_dir),
         "visibility": entry.visibility, "shared_with": list(entry.shared_with),
         "spectra": entry.spectra, "catalogue_error": entry.catalogue_error}
        for entry in service.listing(current_principal(), meta)]
    return jsonify({"owner": meta.owner, "path": meta.path.as_posix() if meta.path.parts else "",
                    "url": service.url_of(meta.owner, meta.path, True), "entries": entries})


# merge_slashes=False: "a//b" is refused, never redirected (with an HTML body) to "a/b".
@bp.get("/files/<user>/", strict_slashes=False, merge_slashes=False, defaults={"path": ""})
@bp.get("/files/<user>/<path:path>", merge_slashes=False)
def get_node(user: str, path: str) -> Response:
    """A file (ranged, conditional), or a folder: its listing as JSON by default, a
    streamed ZIP64 archive with ``?format=zip`` or ``Accept: application/zip``."""
    service = _files()
    meta = service.lookup(current_principal(), user, path)
    if meta.is_dir:
        if _wants_zip():
            return _send_zip(service, meta)
        return _listing(service, meta)
    return _send_file(service, meta)


def _wants_zip() -> bool:
    wanted = request.args.get("format")
    if wanted is not None:
        if wanted.lower() not in ("zip", "json"):
            raise UsageError(f"format must be 'zip' or 'json', not {wanted!r}")
        return wanted.lower() == "zip"
    best = request.accept_mimetypes.best_match(["application/json", "application/zip"])
    return best == "application/zip"


def _send_zip(service: FileService, meta: FileMeta) -> Response:
    name = (meta.name or meta.owner).replace('"', "_")
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    disposition = f'attachment; filename="{ascii_name}.zip"'
    if ascii_name != name:
        disposition += f"; filename*=UTF-8''{quote(name + '.zip', safe='')}"
    return Response(service.zip_stream(current_principal(), meta), mimetype="application/zip",
                    headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
                    direct_passthrough=True)


class _PartBody:
    """The data of one multipart part, read from the events shared by all parts."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while not self.done:
            event = next(self._events, None)
            if not isinstance(event, Data):
                raise UsageError("malformed multipart body: a part ends without its data")
            if not event.more_data:
                self.done = True
            if event.data:
                return bytes(event.data)
        raise StopIteration

    def skip(self) -> None:
        """Read past whatever the consumer left unread."""
        for _ in self:
            pass


def _multipart_events(boundary: str) -> Iterator[Event]:
    """Events of the multipart request body, parsed as the bytes arrive (1 MiB at a time)."""
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    stream = request.stream
    ended = False
    while True:
        try:
            event = decoder.next_event()
        except ValueError as exc:
            raise UsageError(f"malformed multipart body: {exc}") from None
        if isinstance(event, NeedData):
            if ended:
                raise UsageError("malformed multipart body: it ends before its last boundary")
            data = stream.read(CHUNK_SIZE)
            ended = not data
            decoder.receive_data(data or None)
            continue
        if isinstance(event, Epilogue):
            return
        yield event


def _multipart_parts() -> Iterator[UploadPart]:
    """The parts of a ``multipart/form-data`` request, streamed: never held in memory.

    Each part's data is only read when its consumer iterates it; what is
    left unread is skipped when the next part is asked for.
    """
    boundary = request.mimetype_params.get("boundary")
    if request.mimetype != "multipart/form-data" or not boundary:
        raise UsageError("send the files as multipart/form-data (with a boundary); "
                         "PUT /files/{user}/{path} uploads one file as the raw body")
    events = _multipart_events(boundary)
    for event in events:
        if not isinstance(event, (Field, File)):
            continue  # the preamble
        body = _PartBody(events)
        filename = event.filename if isinstance(event, File) else None
        yield UploadPart(field=event.name, filename=filename,
                         content_type=event.headers.get("Content-Type"), chunks=body)
        body.skip()


@bp.post("/files/<user>/", strict_slashes=False, merge_slashes=False, defaults={"path": ""})
@bp.post("/files/<user>/<path:path>", merge_slashes=False)
def post_files(user: str, path: str) -> Response:
    """Upload many files at once as ``multipart/form-data`` into a folder.

    Each file part's file name is its path under the folder.  201 with the
    files stored (path, size, md5) and the parts refused (with why); when
    nothing was stored, the status of the first refusal.
    """
    principal = require_principal()
    service = _files()
    result = service.put_many(principal, user, path, _multipart_parts())
    response = jsonify({
        "stored": [{"path": meta.path.as_posix(), "size": meta.size, "md5": meta.md5,
                    "url": service.url_of(meta.owner, meta.path)} for meta in result.stored],
        "refused": [{"part": refusal.part, "reason": refusal.reason, "status": refusal.status}
                    for refusal in result.refused]})
    response.status_code = result.status
    return response


@bp.put("/files/<user>/<path:path>", merge_slashes=False)
def put_file(user: str, path: str) -> Response:
    """Upload a file: 201 when new, 204 when replaced; the body is streamed to storage."""
    principal = require_principal()
    service = _files()
    meta, created = service.put(principal, user, path, _request_chunks(),
                                content_type=request.headers.get("Content-Type"),
                                content_length=request.content_length)
    response = Response(status=201 if created else 204, headers=_validators(meta))
    if created:
        response.headers["Location"] = service.url_of(meta.owner, meta.path)
    return response


@bp.delete("/files/<user>/<path:path>", merge_slashes=False)
def delete_node(user: str, path: str) -> Response:
    """Delete a file, or a folder with ``?recursive=true`` unless it is empty: 204."""
    principal = require_principal()
    recursive = request.args.get("recursive", "").strip().lower() in ("true", "1", "yes")
    _files().delete(principal, user, path, recursive=recursive)
    return Response(status=204)
