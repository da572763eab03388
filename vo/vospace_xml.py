"""VOSpace 2.1 XML documents: node, transfer and service-metadata representations.

Typed dataclasses for the VOSpace data model (VOSpace 2.1 section 3, "VOSpace
data model"), written with lxml so that every document validates against
``VOSpace-2.1.xsd``, and a safe parser for the node and transfer documents
clients send.  Node identifiers (``vos://{authority}!vospace/{path}``,
section 2, "VOSpace identifiers") are built and checked here too.

Incoming XML is parsed without a DTD, entity expansion or network access; a
document that declares a DOCTYPE or uses entities is refused outright
(:class:`ForbiddenXML`), so neither entity-expansion bombs nor external
entities reach the parser's expansion logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

__all__ = [
    "ANY_VIEW",
    "BINARY_VIEW",
    "CORE",
    "DEFAULT_VIEW",
    "DIRECTIONS",
    "VOS_NS",
    "XSI_NS",
    "Capability",
    "ContainerNode",
    "DataNode",
    "ForbiddenXML",
    "InvalidVOSURI",
    "LinkNode",
    "Node",
    "Param",
    "Property",
    "Protocol",
    "StructuredDataNode",
    "Transfer",
    "UnstructuredDataNode",
    "UnsupportedNodeType",
    "VOSpaceXMLError",
    "View",
    "node_to_xml",
    "parse_node",
    "parse_transfer",
    "parse_vos_uri",
    "properties_to_xml",
    "protocols_to_xml",
    "transfer_to_xml",
    "views_to_xml",
    "vos_authority",
    "vos_uri",
]

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
VERSION = "2.1"

#: Prefix of the standard property, view and protocol URIs (section 3.2.4).
CORE = "ivo://ivoa.net/vospace/core#"
ANY_VIEW = CORE + "anyview"
BINARY_VIEW = CORE + "binaryview"
DEFAULT_VIEW = CORE + "defaultview"

#: The four external transfer directions (section 3.6).
DIRECTIONS = ("pushToVoSpace", "pullToVoSpace", "pushFromVoSpace", "pullFromVoSpace")

_V = f"{{{VOS_NS}}}"
_XSI_TYPE = f"{{{XSI_NS}}}type"
_XSI_NIL = f"{{{XSI_NS}}}nil"
_NSMAP = {"vos": VOS_NS, "xsi": XSI_NS}


# Errors ----------------------------------------------------------------------------


class VOSpaceXMLError(ValueError):
    """A document that is not a usable VOSpace node or transfer representation."""


class ForbiddenXML(VOSpaceXMLError):
    """A document with a DOCTYPE, entity declarations or entity references."""


class UnsupportedNodeType(VOSpaceXMLError):
    """A node whose ``xsi:type`` names none of the node types of VOSpace 2.1.

    Attributes
    ----------
    qname : str
        The type as written in the document.
    """

    def __init__(self, qname: str) -> None:
        super().__init__(f"unknown node type {qname!r}")
        self.qname = qname


class InvalidVOSURI(ValueError):
    """A string that is not a node identifier of this VOSpace."""


# Data model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A name-value parameter of a view, protocol, capability or transfer.

    Attributes
    ----------
    uri : str
        The parameter's identifier.
    value : str
        Its value.
    """

    uri: str
    value: str = ""


@dataclass(frozen=True)
class Property:
    """A node property (section 3.2): a URI, a string value and a read-only flag.

    Attributes
    ----------
    uri : str
        Property identifier, e.g. ``ivo://ivoa.net/vospace/core#length``.
    value : str
        The value ("" when blank).
    read_only : bool
        Whether clients may not change it.
    nil : bool
        ``xsi:nil="true"``: in a setNode request, delete the property
        (section 6.3.2, "setNode").
    """

    uri: str
    value: str = ""
    read_only: bool = False
    nil: bool = False


@dataclass(frozen=True)
class View:
    """A data format a node accepts or provides (section 3.4).

    Attributes
    ----------
    uri : str
        View identifier, e.g. :data:`DEFAULT_VIEW`.
    original : bool or None
        Whether the view gives the original bytes; None leaves it out.
    params : tuple of Param
        Extra arguments of the view.
    """

    uri: str
    original: bool | None = None
    params: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Capability:
    """A third-party interface to a node (section 3.3).

    Attributes
    ----------
    uri : str
        Capability identifier.
    endpoint : str or None
        Where the interface is.
    params : tuple of Param
        Its parameters.
    """

    uri: str
    endpoint: str | None = None
    params: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Protocol:
    """A transfer protocol (section 3.5) and, in a response, its endpoint.

    Attributes
    ----------
    uri : str
        Protocol identifier, e.g. ``ivo://ivoa.net/vospace/core#httpget``.
    endpoint : str or None
        The URL to transfer the bytes with; None in a request.
    params : tuple of Param
        Protocol-specific arguments.
    security_methods : tuple of str
        URIs of the authentication methods (section 3.5.5, "Security Methods").
    """

    uri: str
    endpoint: str | None = None
    params: tuple[Param, ...] = ()
    security_methods: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Node:
    """The most basic node type (section 3.1, "Nodes and node types").

    ``None`` for an optional part leaves its element out of the document
    (how the ``detail=min`` and ``detail=properties`` forms of getNode are
    written); an empty tuple writes an empty element.

    Attributes
    ----------
    uri : str
        The node identifier, ``vos://...``, URI-encoded.
    properties : tuple of Property or None
        The node's properties.
    """

    type_name: ClassVar[str] = "Node"

    uri: str
    properties: tuple[Property, ...] | None = None

    def property(self, uri: str) -> Property | None:
        """The property with this URI, None when the node has none."""
        for prop in self.properties or ():
            if prop.uri == uri:
                return prop
        return None


@dataclass(frozen=True, kw_only=True)
class DataNode(Node):
    """A node with data bytes (section 3.1).

    Attributes
    ----------
    accepts, provides : tuple of View or None
        The views the node can import and export.
    capabilities : tuple of Capability or None
        Third-party interfaces.
    busy : bool or None
        Whether the node's data cannot be accessed now; None leaves the
        attribute out.
    """

    type_name: ClassVar[str] = "DataNode"

    accepts: tuple[View, ...] | None = None
    provides: tuple[View, ...] | None = None
    capabilities: tuple[Capability, ...] | None = None
    busy: bool | None = None


@dataclass(frozen=True, kw_only=True)
class UnstructuredDataNode(DataNode):
    """A data node whose format the space does not interpret."""

    type_name: ClassVar[str] = "UnstructuredDataNode"


@dataclass(frozen=True, kw_only=True)
class StructuredDataNode(DataNode):
    """A data node whose format the space understands."""

    type_name: ClassVar[str] = "StructuredDataNode"


@dataclass(frozen=True, kw_only=True)
class ContainerNode(DataNode):
    """A node that holds other nodes; the schema requires its ``nodes`` element.

    Attributes
    ----------
    nodes : tuple of Node
        The direct children written in the document.
    """

    type_name: ClassVar[str] = "ContainerNode"

    nodes: tuple[Node, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LinkNode(Node):
    """A node that points to another resource.

    Attributes
    ----------
    target : str
        The URI it points to.
    """

    type_name: ClassVar[str] = "LinkNode"

    target: str = ""


_NODE_TYPES: dict[str, type[Node]] = {
    cls.type_name: cls
    for cls in (Node, DataNode, UnstructuredDataNode, StructuredDataNode, ContainerNode,
                LinkNode)}


@dataclass(frozen=True)
class Transfer:
    """A transfer request or its negotiated result (section 3.6, "Transfers").

    Attributes
    ----------
    target : str
        The node to or from which data moves.
    direction : str
        One of :data:`DIRECTIONS`, or a node URI for a move or copy.
    view : View or None
        The requested view.
    protocols : tuple of Protocol
        Requested protocols, or in a result the offered ones with endpoints.
    keep_bytes : bool or None
        For a move or copy: whether the source is kept.
    params : tuple of Param
        Other arguments of the transfer.
    """

    target: str
    direction: str
    view: View | None = None
    protocols: tuple[Protocol, ...] = ()
    keep_bytes: bool | None = None
    params: tuple[Param, ...] = ()


# Node identifiers ------------------------------------------------------------------


def vos_authority(authority: str) -> str:
    """The authority part of node URIs for the registry id ``ivo://{authority}/vospace``.

    Section 2: the ``ivo://`` prefix is dropped and every ``/`` of the resource
    key becomes ``!``; this service always writes ``!``.
    """
    return authority.strip("/").replace("/", "!") + "!vospace"


def vos_uri(authority: str, path: str) -> str:
    """The node identifier of ``path`` (``"user/a/b"``; ``""`` for the root of the space).

    Parameters
    ----------
    authority : str
        ``VOCLOUD_AUTHORITY``.
    path : str
        Node path, not encoded; it is percent-encoded here (RFC 3986).
    """
    base = f"vos://{vos_authority(authority)}"
    return f"{base}/{quote(path, safe='/')}" if path else base


def parse_vos_uri(uri: str, authority: str) -> str:
    """The node path named by a ``vos://`` identifier of this space.

    Either separator, ``!`` or ``~``, is accepted (section 2, "VOSpace
    identifiers": a service "SHALL accept either as valid in URIs in
    service requests"); the authority compares case-insensitively.  A
    fragment is dropped (section 2.1, "Identifier resolution").

    Parameters
    ----------
    uri : str
        The identifier, URI-encoded.
    authority : str
        ``VOCLOUD_AUTHORITY``.

    Returns
    -------
    str
        The decoded path without leading or trailing ``/``: ``"user/a/b"``,
        ``"user"``, or ``""`` for the root of the space.

    Raises
    ------
    InvalidVOSURI
        For another scheme or authority, a query part, a literal space or
        control character, or a path that is not valid percent-encoded UTF-8.
    """
    uri = uri.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise InvalidVOSURI(f"{uri!r}: literal spaces and control characters are not "
                            "allowed in a URI; percent-encode them")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidVOSURI(f"{uri!r}: {exc}") from None
    if parts.scheme.lower() != "vos":
        raise InvalidVOSURI(f"{uri!r} is not a vos:// node identifier")
    wanted = vos_authority(authority).replace("~", "!").casefold()
    if parts.netloc.replace("~", "!").casefold() != wanted:
        raise InvalidVOSURI(f"{uri!r} belongs to another VOSpace; nodes of this one are "
                            f"vos://{vos_authority(authority)}/...")
    if parts.query:
        raise InvalidVOSURI(f"{uri!r}: node identifiers of this space have no query part")
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidVOSURI(f"{uri!r}: the path is not percent-encoded UTF-8") from None
    if path.startswith("/"):
        path = path[1:]
    elif path:
        raise InvalidVOSURI(f"{uri!r}: the path must start with '/'")
    if path.endswith("/"):
        path = path[:-1]
    return path


# Writing ---------------------------------------------------------------------------


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _add_params(parent: etree._Element, params: Iterable[Param]) -> None:
    for param in params:
        etree.SubElement(parent, _V + "param", uri=param.uri).text = param.value


def _add_views(parent: etree._Element, tag: str, views: Sequence[View]) -> None:
    element = etree.SubElement(parent, _V + tag)
    for view in views:
        child = etree.SubElement(element, _V + "view", uri=view.uri)
        if view.original is not None:
            child.set("original", _bool(view.original))
        _add_params(child, view.params)


def _add_protocols(parent: etree._Element, protocols: Iterable[Protocol],
                   tag: str | None = None) -> None:
    holder = etree.SubElement(parent, _V + tag) if tag else parent
    for protocol in protocols:
        element = etree.SubElement(holder, _V + "protocol", uri=protocol.uri)
        if protocol.endpoint is not None:
            etree.SubElement(element, _V + "endpoint").text = protocol.endpoint
        _add_params(element, protocol.params)
        for method in protocol.security_methods:
            etree.SubElement(element, _V + "securityMethod", uri=method)


def _fill_node(element: etree._Element, node: Node) -> None:
    element.set("uri", node.uri)
    element.set(_XSI_TYPE, f"vos:{node.type_name}")
    if isinstance(node, DataNode) and node.busy is not None:
        element.set("busy", _bool(node.busy))
    if node.properties is not None:
        props = etree.SubElement(element, _V + "properties")
        for prop in node.properties:
            child = etree.SubElement(props, _V + "property", uri=prop.uri)
            if prop.read_only:
                child.set("readOnly", "true")
            if prop.nil:
                child.set(_XSI_NIL, "true")
            else:
                child.text = prop.value
    if isinstance(node, DataNode):
        if node.accepts is not None:
            _add_views(element, "accepts", node.accepts)
        if node.provides is not None:
            _add_views(element, "provides", node.provides)
        if node.capabilities is not None:
            caps = etree.SubElement(element, _V + "capabilities")
            for cap in node.capabilities:
                child = etree.SubElement(caps, _V + "capability", uri=cap.uri)
                if cap.endpoint is not None:
                    etree.SubElement(child, _V + "endpoint").text = cap.endpoint
                _add_params(child, cap.params)
    if isinstance(node, ContainerNode):
        nodes = etree.SubElement(element, _V + "nodes")
        for child_node in node.nodes:
            _fill_node(etree.SubElement(nodes, _V + "node"), child_node)
    if isinstance(node, LinkNode):
        etree.SubElement(element, _V + "target").text = node.target


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def node_to_xml(node: Node) -> bytes:
    """The ``vos:node`` document of a node, with ``xsi:type`` on it and on every child.

    Section 6.3.1, "getNode": "For the target node and for any children
    returned for a container node, the attribute xsi:type SHALL be included".
    """
    root = etree.Element(_V + "node", nsmap=_NSMAP)
    root.set("version", VERSION)
    _fill_node(root, node)
    return _serialize(root)


def transfer_to_xml(transfer: Transfer) -> bytes:
    """The ``vos:transfer`` document (tagged ``version="2.1"``, section 4, "REST bindings")."""
    root = etree.Element(_V + "transfer", nsmap={"vos": VOS_NS})
    root.set("version", VERSION)
    etree.SubElement(root, _V + "target").text = transfer.target
    etree.SubElement(root, _V + "direction").text = transfer.direction
    if transfer.view is not None:
        view = etree.SubElement(root, _V + "view", uri=transfer.view.uri)
        if transfer.view.original is not None:
            view.set("original", _bool(transfer.view.original))
        _add_params(view, transfer.view.params)
    _add_protocols(root, transfer.protocols)
    if transfer.keep_bytes is not None:
        etree.SubElement(root, _V + "keepBytes").text = _bool(transfer.keep_bytes)
    _add_params(root, transfer.params)
    return _serialize(root)


def protocols_to_xml(accepts: Sequence[Protocol], provides: Sequence[Protocol]) -> bytes:
    """The getProtocols document (section 6.1.1): ``vos:protocols`` with accepts and provides."""
    root = etree.Element(_V + "protocols", nsmap={"vos": VOS_NS})
    _add_protocols(root, accepts, "accepts")
    _add_protocols(root, provides, "provides")
    return _serialize(root)


def views_to_xml(accepts: Sequence[View], provides: Sequence[View]) -> bytes:
    """The getViews document (section 6.1.2): ``vos:views`` with accepts and provides."""
    root = etree.Element(_V + "views", nsmap={"vos": VOS_NS})
    _add_views(root, "accepts", accepts)
    _add_views(root, "provides", provides)
    return _serialize(root)


def properties_to_xml(accepts: Sequence[str], provides: Sequence[str],
                      contains: Sequence[str]) -> bytes:
    """The getProperties document (section 6.1.3): property URIs accepted, provided, in use."""
    root = etree.Element(_V + "properties", nsmap={"vos": VOS_NS})
    for tag, uris in (("accepts", accepts), ("provides", provides), ("contains", contains)):
        holder = etree.SubElement(root, _V + tag)
        for uri in uris:
            etree.SubElement(holder, _V + "property", uri=uri)
    return _serialize(root)


# Parsing ---------------------------------------------------------------------------

#: Largest node or transfer document accepted, in bytes.
MAX_DOCUMENT_BYTES = 1 << 20

_FORBIDDEN_MARKUP = (b"<!DOCTYPE", b"<!ENTITY")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


def _parse(data: bytes) -> etree._Element:
    """Parse a client document; refuse DTDs and entities before and after parsing."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise VOSpaceXMLError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    if any(marker in data for marker in _FORBIDDEN_MARKUP):
        raise ForbiddenXML("DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise VOSpaceXMLError(f"not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ForbiddenXML("DOCTYPE and entity declarations are not allowed")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise ForbiddenXML("entity references are not allowed")
    return root


def _local(element: etree._Element) -> str | None:
    """The local name of a VOSpace element (in the VOSpace namespace, or in none)."""
    if not isinstance(element.tag, str):
        return None
    qname = etree.QName(element)
    if qname.namespace not in (VOS_NS, None):
        return None
    return qname.localname


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local(child) == name]


def _child(element: etree._Element, name: str) -> etree._Element | None:
    found = _children(element, name)
    if len(found) > 1:
        raise VOSpaceXMLError(f"more than one <{name}> in <{_local(element)}>")
    return found[0] if found else None


def _text(element: etree._Element | None) -> str | None:
    return None if element is None else (element.text or "").strip()


def _required_attr(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise VOSpaceXMLError(f"<{_local(element)}> has no {name!r} attribute")
    return value


def _xml_bool(value: str | None, what: str) -> bool | None:
    if value is None:
        return None
    value = value.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise VOSpaceXMLError(f"{what} must be true or false, not {value!r}")


def _params(element: etree._Element) -> tuple[Param, ...]:
    return tuple(Param(_required_attr(p, "uri"), p.text or "")
                 for p in _children(element, "param"))


def _view(element: etree._Element) -> View:
    return View(_required_attr(element, "uri"),
                _xml_bool(element.get("original"), "original"), _params(element))


def _views(element: etree._Element | None) -> tuple[View, ...] | None:
    return None if element is None else tuple(_view(v) for v in _children(element, "view"))


def _node_type(element: etree._Element) -> type[Node]:
    qname = element.get(_XSI_TYPE)
    if qname is None:
        # Section 6.2.1, "createNode": no xsi:type implies a generic Node.
        return Node
    prefix, _, local = qname.strip().rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    if (prefix and namespace != VOS_NS) or local not in _NODE_TYPES:
        raise UnsupportedNodeType(qname)
    return _NODE_TYPES[local]


def _parse_node_element(element: etree._Element) -> Node:
    cls = _node_type(element)
    uri = _required_attr(element, "uri")
    props_element = _child(element, "properties")
    properties: tuple[Property, ...] | None = None
    if props_element is not None:
        props = []
        for prop in _children(props_element, "property"):
            nil = _xml_bool(prop.get(_XSI_NIL), "xsi:nil") or False
            props.append(Property(_required_attr(prop, "uri"),
                                  "" if nil else (prop.text or "").strip(),
                                  _xml_bool(prop.get("readOnly"), "readOnly") or False, nil))
        properties = tuple(props)
    if cls is Node:
        return Node(uri=uri, properties=properties)
    if cls is LinkNode:
        return LinkNode(uri=uri, properties=properties,
                        target=_text(_child(element, "target")) or "")
    data_cls: type[DataNode] = cls  # type: ignore[assignment]
    common = {
        "uri": uri, "properties": properties,
        "accepts": _views(_child(element, "accepts")),
        "provides": _views(_child(element, "provides")),
        "busy": _xml_bool(element.get("busy"), "busy"),
    }
    if data_cls is ContainerNode:
        nodes = _child(element, "nodes")
        children = () if nodes is None else tuple(
            _parse_node_element(child) for child in _children(nodes, "node"))
        return ContainerNode(nodes=children, **common)  # type: ignore[arg-type]
    return data_cls(**common)  # type: ignore[arg-type]


def parse_node(data: bytes) -> Node:
    """Parse a node representation (the body of createNode and setNode).

    All six node types of VOSpace 2.1 are parsed (section 3.1: a service
    "SHALL be able to parse XML representations of all the node types");
    deciding which the service supports is the caller's business.

    Raises
    ------
    ForbiddenXML
        For a DOCTYPE, an entity declaration or an entity reference.
    UnsupportedNodeType
        For an ``xsi:type`` that names no VOSpace node type.
    VOSpaceXMLError
        For anything else that makes it no node document.
    """
    root = _parse(data)
    if _local(root) != "node":
        raise VOSpaceXMLError(f"expected a <vos:node> document, not <{etree.QName(root)}>")
    return _parse_node_element(root)


def parse_transfer(data: bytes) -> Transfer:
    """Parse a transfer representation (the body of a synchronous transfer request).

    Raises
    ------
    ForbiddenXML
        For a DOCTYPE, an entity declaration or an entity reference.
    VOSpaceXMLError
        For a document that is no ``vos:transfer`` with a target and a direction.
    """
    root = _parse(data)
    if _local(root) != "transfer":
        raise VOSpaceXMLError(
            f"expected a <vos:transfer> document, not <{etree.QName(root)}>")
    target = _text(_child(root, "target"))
    if not target:
        raise VOSpaceXMLError("the transfer has no <vos:target>")
    direction = _text(_child(root, "direction"))
    if not direction:
        raise VOSpaceXMLError("the transfer has no <vos:direction>")
    view_element = _child(root, "view")
    protocols = []
    for element in _children(root, "protocol"):
        methods = tuple(m.get("uri", "").strip() for m in _children(element, "securityMethod"))
        protocols.append(Protocol(_required_attr(element, "uri").strip(),
                                  _text(_child(element, "endpoint")), _params(element),
                                  tuple(m for m in methods if m)))
    return Transfer(target=target, direction=direction,
                    view=None if view_element is None else _view(view_element),
                    protocols=tuple(protocols),
                    keep_bytes=_xml_bool(_text(_child(root, "keepBytes")), "keepBytes"),
                    params=_params(root))
