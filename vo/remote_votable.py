"""Reading VOTables that come from elsewhere: safely, and for the links they carry.

:func:`parse_votable` refuses any document type declaration (so no
external entity, XXE, and no entity expansion, "billion laughs"), parses
with entities unresolved and the network off, and refuses ``STREAM``
elements that point to other URLs.  :func:`parse_votable_limited` does the
same but keeps only the first rows (``TR``) of a long table, dropping the
others as the parser reaches them, so that a long list costs neither the
memory nor the time of a tree of every row.  The rest reads what an import
needs: the tables (``TABLEDATA`` directly; ``BINARY``/``BINARY2`` through
astropy once the document is known to be safe), the column of URLs (UCD
``meta.ref.url``, utype ``Access.Reference``, legacy UCDs, or a usual
name), the ``QUERY_STATUS`` of a DAL response, service descriptors
(``RESOURCE type="meta" utype="adhoc:service"``) and DataLink links
documents.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

__all__ = ["DATALINK_IVOID", "SODA_SYNC_IVOID", "Field", "InputParam", "Link",
           "ServiceDescriptor", "Table", "VOTableError", "find_format_column",
           "find_url_column", "links", "parse_votable", "parse_votable_limited", "query_status",
           "service_descriptors", "tables"]

#: Standard identifiers of the services an import knows how to use.
DATALINK_IVOID = "ivo://ivoa.net/std/DataLink#links-1.1"
SODA_SYNC_IVOID = "ivo://ivoa.net/std/SODA#sync-1.0"

_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
#: Names that usually hold the URL of a dataset, when no UCD or utype says so.
_URL_NAMES = ("access_url", "accessurl", "accref", "access_reference", "accessreference",
              "url", "link", "href")
_LEGACY_URL_UCDS = ("vox:image_accessreference", "vox:spectrum_accessreference", "data_link")
_FORMAT_NAMES = ("access_format", "accessformat", "format", "content_type", "mime")


class VOTableError(ValueError):
    """A VOTable that is refused or cannot be read; the message says why."""


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_votable(data: bytes) -> etree._Element:
    """Parse a VOTable from untrusted bytes.

    Parameters
    ----------
    data : bytes
        The document.

    Returns
    -------
    lxml.etree._Element
        The ``VOTABLE`` root element.

    Raises
    ------
    VOTableError
        For a document type declaration or entity declaration (refused:
        they serve XXE and entity-expansion attacks), an XML error, a root
        that is not ``VOTABLE``, or a ``STREAM`` with an ``href``.
    """
    return _parse(data, None)[0]


def parse_votable_limited(data: bytes, max_rows: int) -> tuple[etree._Element, int]:
    """Parse a VOTable from untrusted bytes, keeping only its first ``max_rows`` rows.

    As :func:`parse_votable`, except that the ``TABLEDATA`` rows (``TR``)
    after the first ``max_rows`` of the document are dropped as they are
    parsed.

    Returns
    -------
    tuple of (lxml.etree._Element, int)
        The ``VOTABLE`` root element, and the number of rows dropped.

    Raises
    ------
    VOTableError
        As :func:`parse_votable`.
    """
    return _parse(data, max(0, max_rows))


def _parse(data: bytes, max_rows: int | None) -> tuple[etree._Element, int]:
    for text in (data[:65536], data[:131072].replace(b"\x00", b"")):
        match = _DECLARATION.search(text)
        if match:
            raise VOTableError(f"refused: the VOTable has a <!{match.group(1).decode().upper()}"
                               " ...> declaration; document type and entity declarations are "
                               "not accepted (they allow XXE and entity-expansion attacks)")
    options: dict[str, bool] = {
        "resolve_entities": False, "no_network": True, "load_dtd": False,
        "dtd_validation": False, "huge_tree": False, "remove_comments": True,
        "remove_pis": True}
    dropped = 0
    try:
        if max_rows is None:
            root = etree.fromstring(data, parser=etree.XMLParser(**options))
        else:
            kept = 0
            events = etree.iterparse(io.BytesIO(data), events=("end",), tag="{*}TR", **options)
            for _event, row in events:
                if kept < max_rows:
                    kept += 1
                    continue
                parent = row.getparent()
                if parent is not None:
                    parent.remove(row)
                dropped += 1
            root = events.root
    except etree.XMLSyntaxError as exc:
        raise VOTableError(f"not a well-formed XML document: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise VOTableError("refused: the VOTable has a document type declaration; it is not "
                           "accepted (it allows XXE and entity-expansion attacks)")
    if _local(root.tag) != "VOTABLE":
        raise VOTableError(f"not a VOTable: the root element is <{_local(root.tag)}>")
    for element in root.iter():
        if not isinstance(element.tag, str):
            raise VOTableError("refused: the VOTable holds an entity reference; entities are "
                               "not accepted")
        if _local(element.tag) == "STREAM" and element.get("href"):
            raise VOTableError("refused: the VOTable's data is a STREAM at another URL "
                               f"({element.get('href')!r}); send the data inline")
    return root, dropped


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local(child.tag) == name]


def _descendants(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element.iter() if _local(child.tag) == name]


@dataclass(frozen=True)
class Field:
    """A column of a VOTable table (the attributes an import looks at)."""

    name: str
    id: str | None = None
    ucd: str | None = None
    utype: str | None = None
    datatype: str | None = None


@dataclass
class Table:
    """A table of a VOTable: its fields and its rows as strings (None for an empty cell)."""

    fields: list[Field]
    rows: list[list[str | None]] = field(default_factory=list)

    def index_of(self, key: str) -> int | None:
        """Column index of the field whose ID (or else name) is ``key``."""
        for index, column in enumerate(self.fields):
            if column.id == key:
                return index
        for index, column in enumerate(self.fields):
            if column.name == key:
                return index
        return None

    def value(self, row: Sequence[str | None], key: str) -> str | None:
        """The cell of ``row`` in the column ``key`` (ID or name), or None."""
        index = self.index_of(key)
        return None if index is None or index >= len(row) else row[index]


def _field(element: etree._Element) -> Field:
    return Field(name=element.get("name") or element.get("ID") or "",
                 id=element.get("ID"), ucd=element.get("ucd"), utype=element.get("utype"),
                 datatype=element.get("datatype"))


def _tabledata(table: etree._Element, width: int) -> list[list[str | None]]:
    rows: list[list[str | None]] = []
    for tabledata in _descendants(table, "TABLEDATA"):
        for tr in _children(tabledata, "TR"):
            cells: list[str | None] = []
            for td in _children(tr, "TD"):
                text = "".join(td.itertext()).strip()
                cells.append(text or None)
            cells.extend([None] * (width - len(cells)))
            rows.append(cells)
    return rows


def _astropy_rows(data: bytes, position: int) -> list[list[str | None]]:
    """Rows of the ``position``-th table, read by astropy (BINARY, BINARY2, FITS)."""
    from astropy.io import votable as astropy_votable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = astropy_votable.parse(io.BytesIO(data), verify="ignore")
        except Exception as exc:
            raise VOTableError(f"cannot read the VOTable's binary data: {exc}") from None
        table = list(parsed.iter_tables())[position]
        rows: list[list[str | None]] = []
        array = table.array
        for record in array:
            cells: list[str | None] = []
            for index in range(len(array.dtype.names or ())):
                value = record[index]
                if value is None or getattr(value, "mask", False) is True or \
                        str(value) == "--":
                    cells.append(None)
                elif isinstance(value, bytes):
                    cells.append(value.decode("utf-8", "replace").strip() or None)
                else:
                    cells.append(str(value).strip() or None)
            rows.append(cells)
        return rows


def tables(root: etree._Element, data: bytes | None = None) -> list[Table]:
    """The data tables of a VOTable, in document order (``meta`` resources left out).

    Parameters
    ----------
    root : lxml.etree._Element
        From :func:`parse_votable`.
    data : bytes, optional
        The document's bytes; needed for tables serialised as BINARY,
        BINARY2 or FITS (read by astropy).

    Raises
    ------
    VOTableError
        For a binary table when ``data`` is not given.
    """
    found: list[Table] = []
    position = 0
    for table in _descendants(root, "TABLE"):
        resource = table.getparent()
        if resource is not None and (resource.get("type") or "").lower() == "meta":
            position += 1
            continue
        fields = [_field(f) for f in _children(table, "FIELD")]
        result = Table(fields)
        data_elements = _children(table, "DATA")
        if data_elements and any(_local(child.tag) in ("BINARY", "BINARY2", "FITS")
                                  for child in data_elements[0]):
            if data is None:
                raise VOTableError("the VOTable's data is binary; pass its bytes to read it")
            result.rows = _astropy_rows(data, position)
        else:
            result.rows = _tabledata(table, len(fields))
        found.append(result)
        position += 1
    return found


def query_status(root: etree._Element) -> tuple[str | None, str | None]:
    """``(value, message)`` of the ``QUERY_STATUS`` INFO of a DAL response, if any."""
    for resource in _children(root, "RESOURCE"):
        if (resource.get("type") or "results").lower() != "results":
            continue
        for info in _children(resource, "INFO"):
            if (info.get("name") or "").upper() == "QUERY_STATUS":
                message = "".join(info.itertext()).strip() or None
                return (info.get("value") or "").upper() or None, message
    for info in _children(root, "INFO"):
        if (info.get("name") or "").upper() == "QUERY_STATUS":
            return (info.get("value") or "").upper() or None, \
                "".join(info.itertext()).strip() or None
    return None, None


def _ucd_words(ucd: str | None) -> list[str]:
    return [word.strip().lower() for word in (ucd or "").split(";") if word.strip()]


def find_url_column(table: Table) -> int | None:
    """Index of the column holding dataset URLs, or None.

    In order: UCD exactly ``meta.ref.url``; utype ending in
    ``Access.Reference``; a UCD whose primary word is ``meta.ref.url``
    (not a preview); a legacy UCD (``VOX:Image_AccessReference``,
    ``DATA_LINK``); a column named like ``access_url``, ``url`` or
    ``accref``.
    """
    candidates: list[tuple[int, int]] = []
    for index, column in enumerate(table.fields):
        words = _ucd_words(column.ucd)
        utype = (column.utype or "").lower()
        name = column.name.lower()
        if words == ["meta.ref.url"]:
            candidates.append((0, index))
        elif utype.endswith("access.reference"):
            candidates.append((1, index))
        elif words and words[0] == "meta.ref.url" and "meta.preview" not in words:
            candidates.append((2, index))
        elif any(word in _LEGACY_URL_UCDS for word in words):
            candidates.append((3, index))
        elif name in _URL_NAMES:
            candidates.append((4 + _URL_NAMES.index(name), index))
    return min(candidates)[1] if candidates else None


def find_format_column(table: Table) -> int | None:
    """Index of the column giving each dataset's media type, or None."""
    candidates: list[tuple[int, int]] = []
    for index, column in enumerate(table.fields):
        utype = (column.utype or "").lower()
        name = column.name.lower()
        if utype.endswith("access.format"):
            candidates.append((0, index))
        elif "meta.code.mime" in _ucd_words(column.ucd):
            candidates.append((1, index))
        elif name in _FORMAT_NAMES:
            candidates.append((2 + _FORMAT_NAMES.index(name), index))
    return min(candidates)[1] if candidates else None


@dataclass(frozen=True)
class InputParam:
    """An input parameter of a service descriptor: a fixed value, or a column reference."""

    name: str
    value: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class ServiceDescriptor:
    """A ``RESOURCE type="meta" utype="adhoc:service"`` of a VOTable.

    Attributes
    ----------
    id : str or None
        The resource's ``ID`` (what a links row's ``service_def`` names).
    standard_id : str or None
        The ``standardID`` PARAM (e.g. :data:`DATALINK_IVOID`).
    access_url : str or None
        The ``accessURL`` PARAM.
    inputs : tuple of InputParam
        The PARAMs of the ``inputParams`` GROUP.
    """

    id: str | None
    standard_id: str | None
    access_url: str | None
    inputs: tuple[InputParam, ...] = ()

    def is_service(self, ivoid: str) -> bool:
        """Whether the descriptor is for the standard ``ivoid`` (any minor version)."""
        mine = (self.standard_id or "").strip().lower()
        want = ivoid.lower()
        return mine == want or mine.rsplit("-", 1)[0] == want.rsplit("-", 1)[0]


def service_descriptors(root: etree._Element) -> list[ServiceDescriptor]:
    """Every service descriptor of the document."""
    found = []
    for resource in _descendants(root, "RESOURCE"):
        if (resource.get("type") or "").lower() != "meta" or \
                (resource.get("utype") or "").lower() != "adhoc:service":
            continue
        params = {(p.get("name") or ""): (p.get("value") or "").strip()
                  for p in _children(resource, "PARAM")}
        inputs = []
        for group in _children(resource, "GROUP"):
            if (group.get("name") or "") != "inputParams":
                continue
            for param in _children(group, "PARAM"):
                inputs.append(InputParam(param.get("name") or "",
                                         (param.get("value") or "").strip() or None,
                                         param.get("ref")))
        found.append(ServiceDescriptor(resource.get("ID"), params.get("standardID") or None,
                                       params.get("accessURL") or None, tuple(inputs)))
    return found


@dataclass(frozen=True)
class Link:
    """A row of a DataLink links document (DataLink 1.1, section 3.2)."""

    id: str | None
    access_url: str | None
    service_def: str | None
    error_message: str | None
    semantics: str | None
    content_type: str | None = None
    content_length: int | None = None


def links(root: etree._Element) -> list[Link]:
    """The rows of a DataLink links document.

    Raises
    ------
    VOTableError
        When the document has no table with an ``access_url`` and a
        ``semantics`` column.
    """
    for table in tables(root):
        names = {column.name.lower() for column in table.fields}
        if not {"access_url", "semantics"} <= names:
            continue
        index = {column.name.lower(): i for i, column in enumerate(table.fields)}
        found = []
        for row in table.rows:
            cells = {name: row[i] if i < len(row) else None for name, i in index.items()}
            length = cells.get("content_length")
            found.append(Link(cells.get("id"), cells.get("access_url"),
                              cells.get("service_def"), cells.get("error_message"),
                              cells.get("semantics"), cells.get("content_type"),
                              int(length) if length and length.isdigit() else None))
        return found
    raise VOTableError("not a DataLink links document: no table with access_url and semantics")
