"""The one writer of result tables: VOTable 1.4 (TABLEDATA) and CSV from the same columns.

Job results that are tables (import manifests, SOM assignments and member
lists) describe their columns once as :class:`TableColumn` and write both
forms with :func:`votable_bytes` and :func:`csv_text`, so the two never
disagree.  Values are written as given; ``None`` and non-finite floats
become empty cells (VOTable 1.4, section 6.1 "TABLEDATA": an empty TD is
a null value).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

__all__ = ["VOTABLE_MIME", "VOTABLE_NS", "TableColumn", "csv_text", "votable_bytes"]

VOTABLE_NS = "http://www.ivoa.net/xml/VOTable/v1.3"
VOTABLE_MIME = "application/x-votable+xml"
_DATATYPES = frozenset({"boolean", "short", "int", "long", "float", "double", "char",
                        "unicodeChar"})


@dataclass(frozen=True)
class TableColumn:
    """One column: a VOTable FIELD and a CSV header.

    Parameters
    ----------
    name : str
        Column name (FIELD ``name``, CSV header).
    datatype : str
        VOTable datatype: ``char``, ``unicodeChar``, ``int``, ``long``,
        ``float``, ``double`` or ``boolean``.
    unit, ucd, utype, description : str, optional
        Metadata of the FIELD.
    """

    name: str
    datatype: str = "char"
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.datatype not in _DATATYPES:
            raise ValueError(f"column {self.name!r}: unknown VOTable datatype "
                             f"{self.datatype!r}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def votable_bytes(columns: Sequence[TableColumn], rows: Iterable[Mapping[str, Any]], *,
                  name: str, description: str | None = None,
                  infos: Mapping[str, str] | None = None) -> bytes:
    """A VOTable 1.4 document holding one table.

    Parameters
    ----------
    columns : sequence of TableColumn
        The FIELDs, in order.
    rows : iterable of mapping
        One mapping per row, from column name to value.
    name : str
        The TABLE ``name``.
    description : str, optional
        The TABLE's DESCRIPTION.
    infos : mapping, optional
        ``INFO`` elements of the RESOURCE (name to value), such as the
        parameters that produced the table.
    """
    root = etree.Element(f"{{{VOTABLE_NS}}}VOTABLE", nsmap={None: VOTABLE_NS},
                         version="1.4")
    resource = etree.SubElement(root, f"{{{VOTABLE_NS}}}RESOURCE", type="results")
    for info_name, value in (infos or {}).items():
        etree.SubElement(resource, f"{{{VOTABLE_NS}}}INFO", name=info_name, value=str(value))
    table = etree.SubElement(resource, f"{{{VOTABLE_NS}}}TABLE", name=name)
    if description:
        etree.SubElement(table, f"{{{VOTABLE_NS}}}DESCRIPTION").text = description
    for column in columns:
        attributes = {"name": column.name, "datatype": column.datatype}
        if column.datatype in ("char", "unicodeChar"):
            attributes["arraysize"] = "*"
        for key in ("unit", "ucd", "utype"):
            value = getattr(column, key)
            if value:
                attributes[key] = value
        field = etree.SubElement(table, f"{{{VOTABLE_NS}}}FIELD", attributes)
        if column.description:
            etree.SubElement(field, f"{{{VOTABLE_NS}}}DESCRIPTION").text = column.description
    data = etree.SubElement(table, f"{{{VOTABLE_NS}}}DATA")
    tabledata = etree.SubElement(data, f"{{{VOTABLE_NS}}}TABLEDATA")
    names = [column.name for column in columns]
    for row in rows:
        tr = etree.SubElement(tabledata, f"{{{VOTABLE_NS}}}TR")
        for column_name in names:
            etree.SubElement(tr, f"{{{VOTABLE_NS}}}TD").text = _cell(row.get(column_name))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


def csv_text(columns: Sequence[TableColumn], rows: Iterable[Mapping[str, Any]]) -> str:
    """The same table as CSV (RFC 4180, a header line of the column names)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = [column.name for column in columns]
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(column_name)) for column_name in names])
    return out.getvalue()
