"""VOSpace 2.1 (a subset) over the per-user file store: ``/vospace/...``.

The node ``vos://{AUTHORITY}!vospace/{user}/{path}`` is the stored file or
folder ``/files/{user}/{path}``; a file is a ``vos:DataNode``, a folder a
``vos:ContainerNode``, and the root of the space a container whose only
child is the caller's own folder.  Implemented (section names of VOSpace
2.1): "getProtocols", "getViews", "getProperties", "createNode",
"deleteNode", "getNode" (``detail``, ``limit``, ``uri``), "setNode"
(``core#publicread`` and ``core#groupread``), and the synchronous
"pushToVoSpace" and "pullFromVoSpace" transfers at ``/vospace/synctrans``,
both as a transfer document (303 to ``transfers/{id}/results/transferDetails``)
and as "URL Parameter Transfers" (the document in the response, or with
``REQUEST=redirect`` a 303 to the data).  Transfer endpoints are the
``/files`` URLs, so bytes move with a plain HTTP GET (with Range) or PUT.

The handlers only translate: who may read or change what is decided by
:class:`~uws_service.filestore.FileService` alone.  Faults are written as
the standard asks in "Web service operations": ``text/plain``, the fault
name, whitespace, then the details (never HTML); an anonymous request for a
protected node gets 401 with a Basic challenge (DESIGN, "Access").
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, cast
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

from uws_service.auth import current_principal, require_principal
from uws_service.config import Config
from uws_service.errors import (
    REALM,
    AuthenticationRequired,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServiceError,
    UsageError,
)
from uws_service.filestore import FileMeta, FileService
from uws_service.models import Visibility
from uws_service.storage import OWNER_FOLDER
from uws_service.users import Principal
from vo.timefmt import format_time
from vo.vospace_xml import (
    ANY_VIEW,
    BINARY_VIEW,
    CORE,
    DEFAULT_VIEW,
    MAX_DOCUMENT_BYTES,
    ContainerNode,
    DataNode,
    ForbiddenXML,
    InvalidVOSURI,
    LinkNode,
    Node,
    Property,
    Protocol,
    Transfer,
    UnsupportedNodeType,
    View,
    VOSpaceXMLError,
    node_to_xml,
    parse_node,
    parse_transfer,
    parse_vos_uri,
    properties_to_xml,
    protocols_to_xml,
    transfer_to_xml,
    views_to_xml,
    vos_uri,
)

__all__ = ["VOSpaceFault", "bp"]

bp = Blueprint("vospace", __name__)

XML = "text/xml"

LENGTH = CORE + "length"
DATE = CORE + "date"
MD5 = CORE + "MD5"
TYPE = CORE + "type"
CREATOR = CORE + "creator"
PUBLICREAD = CORE + "publicread"
GROUPREAD = CORE + "groupread"
AVAILABLE_SPACE = CORE + "availableSpace"
QUOTA = CORE + "quota"

#: Properties the service keeps and lets clients set.
SETTABLE = (PUBLICREAD, GROUPREAD)
#: Properties the service writes and clients may not change.
READ_ONLY = (LENGTH, DATE, MD5, TYPE, CREATOR, AVAILABLE_SPACE, QUOTA)

HTTPGET, HTTPPUT = CORE + "httpget", CORE + "httpput"
HTTPSGET, HTTPSPUT = CORE + "httpsget", CORE + "httpsput"
PUSH, PULL = "pushToVoSpace", "pullFromVoSpace"

#: Security methods the /files endpoints take (IVOA SSO): Basic, Bearer token,
#: the portal's cookie, none (public data).
SECURITY_METHODS = frozenset({
    "ivo://ivoa.net/sso#BasicAA",
    "http://www.w3.org/Protocols/HTTP/1.0/spec/html#BasicAA",
    "ivo://ivoa.net/sso#token",
    "ivo://ivoa.net/sso#cookie",
    "ivo://ivoa.net/sso#anon",
})

#: Reserved node names (section 3.1): ``.auto`` is honoured by createNode only.
AUTO, NULL = ".auto", ".null"

#: How long the transferDetails of a synchronous transfer stay readable, in seconds.
TRANSFER_LIFETIME = 24 * 3600


# Faults -----------------------------------------------------------------------------


class VOSpaceFault(ServiceError):
    """A VOSpace fault (section 6.5, "Fault arguments"): its name and HTTP status.

    Parameters
    ----------
    fault : str
        The exact fault name, e.g. ``"NodeNotFound"``.
    status : int
        HTTP status.
    message : str
        The details: the node URI for NodeNotFound, DuplicateNode and
        ContainerNotFound, the reason otherwise.
    """

    def __init__(self, fault: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = fault
        self.status = status


def _fault_of(error: ServiceError) -> tuple[str, int]:
    """The fault name and status of an error raised by the file store."""
    if isinstance(error, VOSpaceFault):
        return error.code, error.status
    if isinstance(error, AuthenticationRequired):
        return "PermissionDenied", 401
    if isinstance(error, PermissionDenied):
        return "PermissionDenied", 403
    if isinstance(error, NotFound):
        return "NodeNotFound", 404
    if isinstance(error, Conflict):
        return "DuplicateNode", 409
    if isinstance(error, UsageError):
        return "InvalidArgument", 400
    if isinstance(error, PayloadTooLarge):
        return "PermissionDenied", 413
    return "InternalFault", error.status


@bp.errorhandler(ServiceError)
def _error(error: ServiceError) -> Response:
    """The fault name, whitespace, the details (section 6, "Web service operations")."""
    fault, status = _fault_of(error)
    response = Response(f"{fault} {error.message}\n", status=status, mimetype="text/plain")
    if isinstance(error, AuthenticationRequired):
        response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


def _invalid_uri(message: str) -> VOSpaceFault:
    return VOSpaceFault("InvalidURI", 400, message)


def _invalid_argument(message: str) -> VOSpaceFault:
    return VOSpaceFault("InvalidArgument", 400, message)


# Services and addresses --------------------------------------------------------------


def _files() -> FileService:
    return cast(FileService, current_app.extensions["vocloud"].files)


def _config() -> Config:
    return cast(Config, current_app.extensions["vocloud"].config)


@dataclass(frozen=True)
class _Target:
    """A node address: a user's tree and a path in it, or (``user`` None) the root of the space."""

    user: str | None
    rel: PurePosixPath = OWNER_FOLDER

    @property
    def path(self) -> str:
        """The path inside the user's tree ("" for the user's own folder)."""
        return self.rel.as_posix() if self.rel.parts else ""

    @property
    def node_path(self) -> str:
        """``user/path``, as in the node URI ("" for the root of the space)."""
        if self.user is None:
            return ""
        return f"{self.user}/{self.path}" if self.path else self.user

    @property
    def uri(self) -> str:
        return vos_uri(_config().authority, self.node_path)

    @property
    def url(self) -> str:
        """The node's URL under ``/vospace/nodes``, absolute."""
        tail = quote(self.node_path, safe="/")
        return f"{_config().public_url}/vospace/nodes" + (f"/{tail}" if tail else "")

    def parent(self) -> _Target | None:
        if self.user is None:
            return None
        if not self.rel.parts:
            return _Target(None)
        return _Target(self.user, self.rel.parent)


def _target(node_path: str) -> _Target:
    """The node at ``user/path`` (one trailing ``/`` allowed); InvalidURI for a bad path."""
    if node_path.endswith("/"):
        node_path = node_path[:-1]
    if not node_path:
        return _Target(None)
    user, _, rest = node_path.partition("/")
    try:
        FileService.parse_path(user, folder_ok=False)
        rel = FileService.parse_path(rest, folder_ok=True) if rest else OWNER_FOLDER
    except UsageError as exc:
        raise _invalid_uri(exc.message) from None
    return _Target(user, rel)


def _target_of_uri(uri: str) -> _Target:
    try:
        return _target(parse_vos_uri(uri, _config().authority))
    except InvalidVOSURI as exc:
        raise _invalid_uri(str(exc)) from None


def _xml(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype=XML)


def _see_other(url: str) -> Response:
    return Response("", status=303, headers={"Location": url}, mimetype="text/plain")


def _body() -> bytes:
    """The request body (a node or transfer document), at most MAX_DOCUMENT_BYTES."""
    data = request.stream.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _invalid_argument(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    return cast(bytes, data)


def _xml_fault(exc: VOSpaceXMLError) -> VOSpaceFault:
    if isinstance(exc, UnsupportedNodeType):
        return VOSpaceFault("TypeNotSupported", 400, exc.qname)
    if isinstance(exc, ForbiddenXML):
        return _invalid_argument(f"refused XML document: {exc}")
    return _invalid_argument(str(exc))


# Node representations ------------------------------------------------------------------


def _properties(meta: FileMeta, principal: Principal | None) -> tuple[Property, ...]:
    """The properties of a stored node (section 3.2.4, "Standard properties")."""
    props: list[Property] = []
    if not meta.is_dir:
        props.append(Property(LENGTH, str(meta.size), read_only=True))
        if meta.md5:
            props.append(Property(MD5, meta.md5, read_only=True))
        props.append(Property(TYPE, meta.content_type, read_only=True))
    props.append(Property(DATE, format_time(meta.modified) or "", read_only=True))
    props.append(Property(CREATOR, meta.owner, read_only=True))
    props.append(Property(PUBLICREAD, "true" if meta.visibility == Visibility.PUBLIC
                          else "false"))
    if meta.shared_with:
        props.append(Property(GROUPREAD, " ".join(meta.shared_with)))
    if meta.is_dir and not meta.path.parts and principal is not None:
        try:
            quota = _files().quota(principal, meta.owner)
        except ServiceError:
            quota = None
        if quota is not None:
            props.append(Property(AVAILABLE_SPACE, str(quota.free), read_only=True))
            props.append(Property(QUOTA, str(quota.quota), read_only=True))
    return tuple(props)


def _views(is_dir: bool) -> tuple[tuple[View, ...], tuple[View, ...]]:
    """What a node accepts and provides: any format into a file, the original bytes out.

    A folder accepts no data (no archive unpacking, section 3.4.5 "Container
    views") and provides its content as a ZIP archive through the default view.
    """
    if is_dir:
        return (), (View(DEFAULT_VIEW),)
    return (View(ANY_VIEW), View(BINARY_VIEW)), (View(DEFAULT_VIEW), View(BINARY_VIEW))


def _node_of(meta: FileMeta, detail: str, principal: Principal | None,
             children: Sequence[Node] = ()) -> Node:
    """A stored node as the ``detail`` level of getNode asks for.

    ``max``: properties, views and capabilities; ``properties``: properties
    only; ``min``: neither.  A ContainerNode always carries its ``nodes``
    element, which the schema requires of that type.
    """
    uri = _Target(meta.owner, meta.path).uri
    properties = _properties(meta, principal) if detail != "min" else None
    full = detail == "max"
    accepts, provides = _views(meta.is_dir)
    common: dict[str, Any] = {
        "uri": uri, "properties": properties,
        "accepts": accepts if full else None, "provides": provides if full else None,
        "capabilities": () if full else None, "busy": False if detail != "min" else None,
    }
    if meta.is_dir:
        return ContainerNode(nodes=tuple(children), **common)
    return DataNode(**common)


def _detail() -> str:
    detail = request.args.get("detail", "max").strip().lower()
    if detail not in ("min", "max", "properties"):
        raise _invalid_argument(f"detail must be min, max or properties, not {detail!r}")
    return detail


def _limit() -> int | None:
    value = request.args.get("limit")
    if value is None or value.strip() == "":
        return None
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise _invalid_argument(f"limit must be a non-negative integer, not {value!r}")
    return limit


def _page(target: _Target, entries: list[FileMeta]) -> list[FileMeta]:
    """The children from the one named by ``uri`` on, at most ``limit`` of them.

    Section 6.3.1, "getNode": the page "begins at the node matching the
    specified value of the uri parameter", drawn from one ordered sequence:
    here the children sorted by name, as the store lists them.
    """
    start = request.args.get("uri")
    if start:
        child = _target_of_uri(start)
        if child.parent() != target or child.user is None or not child.rel.parts:
            raise _invalid_uri(f"{start!r} is not a child of {target.uri}")
        entries = [entry for entry in entries if entry.name >= child.rel.name]
    limit = _limit()
    return entries if limit is None else entries[:limit]


def _node_document(target: _Target, meta: FileMeta, principal: Principal | None,
                   detail: str = "max", paged: bool = False) -> Node:
    children: list[Node] = []
    if meta.is_dir:
        entries = _files().listing(principal, meta)
        if paged:
            entries = _page(target, entries)
        children = [_node_of(entry, detail, principal) for entry in entries]
    return _node_of(meta, detail, principal, children)


def _space_root(principal: Principal | None, detail: str) -> Node:
    """The root of the space: a container whose child is the caller's own folder."""
    children: list[Node] = []
    if principal is not None:
        own = _files().lookup(principal, principal.name, "")
        children.append(_node_of(own, detail, principal))
    full = detail == "max"
    return ContainerNode(uri=_Target(None).uri, properties=() if detail != "min" else None,
                         accepts=() if full else None,
                         provides=() if full else None,
                         capabilities=() if full else None,
                         busy=False if detail != "min" else None, nodes=tuple(children))


@contextmanager
def _node_faults(target: _Target, principal: Principal | None,
                 containers: bool = True) -> Iterator[None]:
    """NotFound from the store as NodeNotFound, or ContainerNotFound when a parent is missing.

    Sections 5.2.4 "deleteNode" and 5.3.2 "setNode": a missing parent is a
    ContainerNotFound fault (getNode and pullFromVoSpace, with
    ``containers=False``, only know NodeNotFound).  The parent is looked up
    as the same client, so the answer tells nothing the client could not
    read anyway.
    """
    try:
        yield
    except NotFound:
        parent = target.parent()
        if containers and parent is not None and parent.user is not None and parent.rel.parts:
            try:
                found = _files().lookup(principal, parent.user, parent.path)
            except NotFound:
                found = None
            if found is None or not found.is_dir:
                raise VOSpaceFault("ContainerNotFound", 404, parent.uri) from None
        raise VOSpaceFault("NodeNotFound", 404, target.uri) from None


def _check_parent(target: _Target, principal: Principal) -> None:
    """ContainerNotFound unless the parent of a new node is a folder the client can see."""
    parent = target.parent()
    if parent is None or parent.user is None:
        return
    try:
        meta = _files().lookup(principal, parent.user, parent.path)
    except NotFound:
        raise VOSpaceFault("ContainerNotFound", 404, parent.uri) from None
    if not meta.is_dir:
        raise VOSpaceFault("ContainerNotFound", 404, f"{parent.uri} is not a container")


def _check_writable_parent(target: _Target, principal: Principal) -> None:
    """PermissionDenied when the client may read the new node's folder but not write in it."""
    parent = target.parent()
    if parent is None or parent.user is None:
        return
    with _node_faults(parent, principal):
        _files().check_writable(principal, parent.user, parent.path)


def _exists(target: _Target, principal: Principal) -> FileMeta | None:
    try:
        return _files().lookup(principal, cast(str, target.user), target.path)
    except NotFound:
        return None


# Properties sent by clients -------------------------------------------------------------


@dataclass
class _AccessChange:
    """What the properties of a createNode or setNode request ask to change."""

    publicread: bool | None = None
    groupread: list[str] | None = None
    content_type: str | None = None


def _bool_property(prop: Property) -> bool:
    if prop.nil:
        return False
    value = prop.value.strip().lower()
    if value not in ("true", "false"):
        raise _invalid_argument(f"{prop.uri} must be true or false, not {prop.value!r}")
    return value == "true"


def _access_change(node: Node, current: dict[str, str] | None, is_dir: bool) -> _AccessChange:
    """Check the properties of a request and say what they change.

    ``current`` holds the node's properties for setNode (None for
    createNode).  Read-only properties sent back with their present value
    are accepted unchanged, so a client may post the document getNode gave
    it; changing one, or setting a property the service does not keep, is
    a PermissionDenied fault (section 6.2.1, "createNode": "Attempting to
    set a Property that the service considers to be 'readOnly' SHALL cause
    a PermissionDenied fault").  A property with ``xsi:nil="true"`` is
    deleted (section 6.3.2, "setNode").
    """
    change = _AccessChange()
    for prop in node.properties or ():
        if prop.uri == PUBLICREAD:
            change.publicread = _bool_property(prop)
        elif prop.uri == GROUPREAD:
            change.groupread = [] if prop.nil else [
                name for name in re.split(r"[\s,]+", prop.value) if name]
        elif prop.uri == TYPE and current is None and not is_dir and not prop.nil:
            change.content_type = prop.value.strip() or None
        elif current is not None and not prop.nil and current.get(prop.uri) == prop.value:
            continue
        elif prop.uri in READ_ONLY:
            raise VOSpaceFault("PermissionDenied", 403, f"{prop.uri} is read-only")
        elif prop.nil:
            continue
        else:
            raise VOSpaceFault(
                "PermissionDenied", 403,
                f"{prop.uri} cannot be set: this service keeps only "
                f"{' and '.join(SETTABLE)} (see /vospace/properties)")
    return change


def _recursive() -> bool:
    """``?recursive=true|false`` on setNode/createNode: whether the subtree changes too.

    Without it only the node itself changes (the standard's setNode names
    one node); ``recursive=true`` is an extension of this service.
    """
    value = request.args.get("recursive")
    if value is None:
        return False
    value = value.strip().lower()
    if value not in ("true", "false"):
        raise _invalid_argument(f"recursive must be true or false, not {value!r}")
    return value == "true"


def _apply(principal: Principal, target: _Target, meta: FileMeta,
           change: _AccessChange) -> FileMeta:
    """Set publicread and groupread through the store, each independently of the other."""
    service = _files()
    user = cast(str, target.user)
    recursive = _recursive()
    if change.publicread is not None:
        meta = service.set_public(principal, user, target.path, change.publicread,
                                  recursive=recursive)
    if change.groupread is not None:
        meta = service.share(principal, user, target.path, change.groupread,
                             recursive=recursive)
    return meta


def _request_node(target: _Target) -> Node:
    """The node document of a createNode or setNode request, its URI checked against the URL."""
    try:
        node = parse_node(_body())
    except VOSpaceXMLError as exc:
        raise _xml_fault(exc) from None
    if _target_of_uri(node.uri) != target:
        raise _invalid_uri(f"the node URI {node.uri!r} does not match the URL, which names "
                           f"{target.uri}")
    return node


# Nodes ----------------------------------------------------------------------------------

_NODE_ROUTES = {"merge_slashes": False}


@bp.get("/vospace/nodes", strict_slashes=False, defaults={"node_path": ""})
@bp.get("/vospace/nodes/<path:node_path>", **_NODE_ROUTES)
def get_node(node_path: str) -> Response:
    """getNode (section 6.3.1): the node, and for a container its children.

    ``view=data`` (deprecated by 2.1, section 6.4.3 "pullFromVoSpace") is a
    303 to the data.
    """
    principal = current_principal()
    target = _target(node_path)
    detail = _detail()
    if target.user is None:
        return _xml(node_to_xml(_space_root(principal, detail)))
    service = _files()
    with _node_faults(target, principal, containers=False):
        meta = service.lookup(principal, target.user, target.path)
    view = request.args.get("view")
    if view is not None:
        if view != "data":
            raise VOSpaceFault("ViewNotSupported", 400, view)
        return _see_other(_data_url(meta))
    return _xml(node_to_xml(_node_document(target, meta, principal, detail, paged=True)))


@bp.put("/vospace/nodes", strict_slashes=False, defaults={"node_path": ""})
@bp.put("/vospace/nodes/<path:node_path>", **_NODE_ROUTES)
def create_node(node_path: str) -> Response:
    """createNode (section 6.2.1): a ContainerNode is a folder, a data node an empty file; 201.

    A generic Node (no ``xsi:type``) becomes a DataNode, the default type
    of this space; a LinkNode is TypeNotSupported.  ``.auto`` as the last
    name makes a new unique name.
    """
    principal = require_principal()
    target = _target(node_path)
    user = target.user
    if user is None or not target.rel.parts:
        if user is None or user == principal.name:
            raise VOSpaceFault("DuplicateNode", 409, target.uri)
        raise VOSpaceFault("PermissionDenied", 403,
                           "a user's own folder is made with the account")
    node = _request_node(target)
    if isinstance(node, LinkNode):
        raise VOSpaceFault("TypeNotSupported", 400, "vos:LinkNode")
    is_dir = isinstance(node, ContainerNode)
    if target.rel.name == NULL:
        raise _invalid_uri(f"{target.uri}: the reserved name {NULL!r} is not supported")
    if target.rel.name == AUTO:
        target = _Target(user, target.rel.parent / uuid.uuid4().hex)
    change = _access_change(node, None, is_dir)
    _check_parent(target, principal)
    if _exists(target, principal) is not None:
        raise VOSpaceFault("DuplicateNode", 409, target.uri)
    _check_writable_parent(target, principal)
    service = _files()
    try:
        if is_dir:
            meta = service.mkdir(principal, user, target.path)
        else:
            meta, _ = service.put(principal, user, target.path, iter(()),
                                  content_type=change.content_type, content_length=0)
    except Conflict:
        raise VOSpaceFault("DuplicateNode", 409, target.uri) from None
    meta = _apply(principal, target, meta, change)
    response = _xml(node_to_xml(_node_document(target, meta, principal)), status=201)
    response.headers["Location"] = target.url
    return response


@bp.post("/vospace/nodes", strict_slashes=False, defaults={"node_path": ""})
@bp.post("/vospace/nodes/<path:node_path>", **_NODE_ROUTES)
def set_node(node_path: str) -> Response:
    """setNode (section 6.3.2): change ``core#publicread`` and ``core#groupread``.

    The type cannot change; properties not sent keep their values.  With
    ``?recursive=true`` (an extension) a folder's subtree changes too.
    """
    principal = require_principal()
    target = _target(node_path)
    if target.user is None:
        raise VOSpaceFault("PermissionDenied", 403, "the root of the space cannot be changed")
    node = _request_node(target)
    service = _files()
    with _node_faults(target, principal):
        meta = service.lookup(principal, target.user, target.path)
    changes_type = type(node) is not Node and isinstance(node, ContainerNode) != meta.is_dir
    if changes_type or isinstance(node, LinkNode):
        raise _invalid_argument(f"setNode cannot change the type of {target.uri}")
    with _node_faults(target, principal):
        service.check_writable(principal, target.user, target.path)
    current = {prop.uri: prop.value for prop in _properties(meta, principal)}
    change = _access_change(node, current, meta.is_dir)
    with _node_faults(target, principal):
        meta = _apply(principal, target, meta, change)
    return _xml(node_to_xml(_node_document(target, meta, principal)))


@bp.delete("/vospace/nodes", strict_slashes=False, defaults={"node_path": ""})
@bp.delete("/vospace/nodes/<path:node_path>", **_NODE_ROUTES)
def delete_node(node_path: str) -> Response:
    """deleteNode (section 6.2.4): a container goes with everything in it; 204."""
    principal = require_principal()
    target = _target(node_path)
    if target.user is None or not target.rel.parts:
        raise VOSpaceFault("PermissionDenied", 403,
                           f"{target.uri} cannot be deleted: it is "
                           + ("the root of the space" if target.user is None
                              else "a user's own folder"))
    with _node_faults(target, principal):
        _files().delete(principal, target.user, target.path, recursive=True)
    return Response(status=204)


# Service metadata -----------------------------------------------------------------------


def _secure() -> bool:
    return urlsplit(_config().public_url).scheme == "https"


@bp.get("/vospace/protocols")
def get_protocols() -> Response:
    """getProtocols (section 6.1.1): the service serves HTTP GET and PUT; it fetches nothing."""
    provided = (HTTPSGET, HTTPSPUT) if _secure() else (HTTPGET, HTTPPUT)
    return _xml(protocols_to_xml([], [Protocol(uri) for uri in provided]))


@bp.get("/vospace/views")
def get_views() -> Response:
    """getViews (section 6.1.2): any format is stored as it comes and given back as it is."""
    return _xml(views_to_xml([View(ANY_VIEW), View(BINARY_VIEW)],
                             [View(DEFAULT_VIEW), View(BINARY_VIEW)]))


@bp.get("/vospace/properties")
def get_properties() -> Response:
    """getProperties (section 6.1.3): the properties set by clients and those written."""
    provided = [LENGTH, DATE, MD5, TYPE, CREATOR, PUBLICREAD, GROUPREAD, AVAILABLE_SPACE, QUOTA]
    return _xml(properties_to_xml(list(SETTABLE), provided, provided))


# Transfers ------------------------------------------------------------------------------


def _data_url(meta: FileMeta) -> str:
    """Where the bytes of a node are read: the file, or a folder as a ZIP archive."""
    url = _files().url_of(meta.owner, meta.path, meta.is_dir)
    return url + "?format=zip" if meta.is_dir else url


def _offered(direction: str, requested: Sequence[Protocol], endpoint: str) -> tuple[Protocol, ...]:
    """The requested protocols the service serves, with their endpoint.

    Section 3.6.4, "Client-initiated transfers": protocols and security
    methods the service does not support are left out, and the security
    methods are echoed only when the client gave some (section 5, "Access
    Control").  None left is a ProtocolNotSupported fault.
    """
    secure = _secure()
    if direction == PUSH:
        wanted = HTTPSPUT if secure else HTTPPUT
    else:
        wanted = HTTPSGET if secure else HTTPGET
    offered: list[Protocol] = []
    for protocol in requested:
        if protocol.uri != wanted:
            continue
        methods = tuple(m for m in protocol.security_methods if m in SECURITY_METHODS)
        if protocol.security_methods and not methods:
            continue
        choice = Protocol(wanted, endpoint, security_methods=methods)
        if choice not in offered:
            offered.append(choice)
    if not offered:
        asked = ", ".join(p.uri for p in requested) or "none"
        raise VOSpaceFault("ProtocolNotSupported", 400,
                           f"{direction} is offered over {wanted} only (asked for: {asked})")
    return tuple(offered)


def _negotiate(transfer: Transfer) -> Transfer:
    """The result of a pushToVoSpace or pullFromVoSpace request: endpoints under /files.

    pushToVoSpace (section 6.4.1) needs an authenticated client and a
    target that is a file or a new name in an existing folder; the node is
    made when the bytes are PUT.  pullFromVoSpace (section 6.4.3) needs a
    node the client can read; a folder is served as a ZIP archive.
    """
    direction = transfer.direction
    if direction not in (PUSH, PULL):
        if direction in ("pullToVoSpace", "pushFromVoSpace") or "://" in direction:
            raise VOSpaceFault("OperationNotSupported", 400,
                               f"{direction!r}: only pushToVoSpace and pullFromVoSpace "
                               "transfers are offered (no /vospace/transfers job list)")
        raise _invalid_argument(f"unknown direction {direction!r}")
    target = _target_of_uri(transfer.target)
    view = transfer.view.uri if transfer.view is not None else None
    service = _files()
    if direction == PULL:
        if view not in (None, DEFAULT_VIEW, BINARY_VIEW):
            raise VOSpaceFault("ViewNotSupported", 400, cast(str, view))
        principal = current_principal()
        if target.user is None:
            raise _invalid_argument(f"{target.uri} has no data to read")
        with _node_faults(target, principal, containers=False):
            meta = service.lookup(principal, target.user, target.path)
        endpoint = _data_url(meta)
    else:
        if view == DEFAULT_VIEW:
            # Section 3.4.4, "Default views": the default view is for exports only.
            raise VOSpaceFault("ViewNotSupported", 400, DEFAULT_VIEW)
        principal = require_principal()
        if target.user is None or not target.rel.parts:
            raise _invalid_argument(f"{target.uri} is a container: push to a node inside it")
        if target.rel.name in (AUTO, NULL):
            raise _invalid_uri(f"{target.uri}: reserved names are not supported in transfers")
        existing = _exists(target, principal)
        if existing is None:
            _check_parent(target, principal)
            _check_writable_parent(target, principal)
        elif existing.is_dir:
            raise _invalid_argument(f"{target.uri} is a container: push to a node inside it")
        else:
            with _node_faults(target, principal):
                service.check_writable(principal, cast(str, target.user), target.path)
        endpoint = service.url_of(target.user, target.rel)
    return Transfer(target=target.uri, direction=direction, view=transfer.view,
                    protocols=_offered(direction, transfer.protocols, endpoint))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_config().secret_key, salt="vocloud.vospace.transfer")


def _parameters() -> dict[str, list[str]]:
    """Query (and urlencoded form) parameters, names upper-cased."""
    params: dict[str, list[str]] = {}
    sources = [request.args]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sources.append(request.form)
    for source in sources:
        for name in source:
            params.setdefault(name.upper(), []).extend(source.getlist(name))
    return params


def _one(params: dict[str, list[str]], name: str, required: bool = True) -> str | None:
    values = params.get(name, [])
    if len(values) > 1:
        raise _invalid_argument(f"{name} may be given only once")
    if not values or not values[0].strip():
        if required:
            raise _invalid_argument(f"{name} is required")
        return None
    return values[0].strip()


@bp.route("/vospace/synctrans", methods=["GET", "POST"])
def synctrans() -> Response:
    """A synchronous transfer (section 3.6 "Transfers", 6.4 "Transferring data").

    A transfer document (POST) is answered with a 303 to
    ``/vospace/transfers/{id}/results/transferDetails``; the parameters
    TARGET, DIRECTION, PROTOCOL (exactly one), VIEW and SECURITYMETHOD
    (section 3.6.2, "URL Parameter Transfers") with the transfer document
    itself, or, with ``REQUEST=redirect`` for pullFromVoSpace, a 303 to the
    data.  Faults come back directly with their HTTP status (there is no
    job to hold them).
    """
    params = _parameters()
    if "TARGET" in params or request.method == "GET":
        return _parameter_transfer(params)
    try:
        transfer = parse_transfer(_body())
    except VOSpaceXMLError as exc:
        raise _xml_fault(exc) from None
    result = _negotiate(transfer)
    principal = current_principal()
    token = _serializer().dumps({
        "t": result.target, "d": result.direction,
        "v": result.view.uri if result.view is not None else None,
        "p": [[p.uri, p.endpoint, list(p.security_methods)] for p in result.protocols],
        "u": principal.name if principal is not None else None,
    })
    return _see_other(f"{_config().public_url}/vospace/transfers/{token}/results/"
                      "transferDetails")


def _parameter_transfer(params: dict[str, list[str]]) -> Response:
    target = cast(str, _one(params, "TARGET"))
    direction = cast(str, _one(params, "DIRECTION"))
    if direction not in (PUSH, PULL):
        raise _invalid_argument(f"DIRECTION must be {PUSH} or {PULL} in a parameter "
                                f"transfer, not {direction!r}")
    protocol = cast(str, _one(params, "PROTOCOL"))
    view = _one(params, "VIEW", required=False)
    method = _one(params, "SECURITYMETHOD", required=False)
    redirect = (_one(params, "REQUEST", required=False) or "").lower()
    if redirect and redirect != "redirect":
        raise _invalid_argument(f"REQUEST must be 'redirect', not {redirect!r}")
    if redirect and direction != PULL:
        raise _invalid_argument("REQUEST=redirect applies to pullFromVoSpace only")
    result = _negotiate(Transfer(
        target=target, direction=direction, view=View(view) if view else None,
        protocols=(Protocol(protocol, security_methods=(method,) if method else ()),)))
    if redirect:
        return _see_other(cast(str, result.protocols[0].endpoint))
    return _xml(transfer_to_xml(result))


@bp.get("/vospace/transfers/<token>/results/transferDetails")
def transfer_details(token: str) -> Response:
    """The negotiated transfer of a synchronous transfer document, for the one who asked."""
    try:
        data = _serializer().loads(token, max_age=TRANSFER_LIFETIME)
    except BadData:
        raise VOSpaceFault("NotFoundFault", 404, f"no such transfer: {token[:40]!r}") from None
    owner = data.get("u")
    if owner is not None:
        principal = current_principal()
        if principal is None:
            raise AuthenticationRequired("authentication required")
        if principal.name != owner and not principal.is_admin:
            raise VOSpaceFault("NotFoundFault", 404, f"no such transfer: {token[:40]!r}")
    view = data.get("v")
    return _xml(transfer_to_xml(Transfer(
        target=data["t"], direction=data["d"], view=View(view) if view else None,
        protocols=tuple(Protocol(uri, endpoint, security_methods=tuple(methods))
                        for uri, endpoint, methods in data["p"]))))
