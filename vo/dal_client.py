"""Client side of SSAP 1.1, DataLink 1.1 and SODA 1.0 sync, for fetching datasets.

No network access happens here: :func:`ssa_query_url` builds the query,
:func:`dataset_refs` reads a query response (or any VOTable of links) into
one :class:`DatasetRef` per row, saying how to fetch the row's dataset (the
access reference directly, a DataLink links document to resolve, a SODA
cutout), and :func:`choose_link` picks, from a links document, the URL to
download: the ``#this`` row, or a SODA sync call with ``ID`` and ``BAND``
when a cutout was asked for.  Units follow the standards: SSAP ``BAND`` is
``lo/hi`` in metres, SODA ``BAND`` is ``lo hi`` in metres, SSAP ``TIME``
is an ISO 8601 range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from astropy.time import Time
from lxml import etree

from vo.remote_votable import (
    DATALINK_IVOID,
    SODA_SYNC_IVOID,
    ServiceDescriptor,
    Table,
    VOTableError,
    find_format_column,
    find_url_column,
    links,
    service_descriptors,
    tables,
)

__all__ = ["DataLinkError", "DatasetRef", "choose_link", "dataset_refs", "parse_band",
           "parse_time_range", "soda_url", "ssa_query_url"]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?$")


class DataLinkError(Exception):
    """A dataset that DataLink (or SODA) cannot give; the message is the service's."""


def parse_band(text: str, *, what: str = "band") -> tuple[float | None, float | None]:
    """A wavelength interval ``lo/hi`` (or ``lo hi``) in metres; either end may be open.

    Raises
    ------
    ValueError
        For anything else, a non-positive wavelength, or ``lo > hi``.
    """
    value = text.strip()
    match = re.fullmatch(rf"({_NUMBER})?\s*[/ ]\s*({_NUMBER})?", value)
    if not match or value in ("", "/"):
        raise ValueError(f"{what} {text!r}: write 'lo/hi' in metres, e.g. 6.5e-7/6.6e-7")
    low = float(match.group(1)) if match.group(1) else None
    high = float(match.group(2)) if match.group(2) else None
    for end in (low, high):
        if end is not None and (not math.isfinite(end) or end <= 0):
            raise ValueError(f"{what} {text!r}: wavelengths must be positive (metres)")
    if low is not None and high is not None and low > high:
        raise ValueError(f"{what} {text!r}: the lower end is above the upper end")
    return low, high


def _iso(end: str, what: str) -> str:
    end = end.strip()
    if re.fullmatch(_NUMBER, end):
        return str(Time(float(end), format="mjd", scale="utc").isot)
    if _ISO.match(end):
        return end.replace(" ", "T").rstrip("Z")
    raise ValueError(f"{what}: {end!r} is neither an MJD nor an ISO 8601 date")


def parse_time_range(text: str) -> str:
    """An SSAP ``TIME`` range (ISO 8601 ``start/end``) from MJD or ISO ends.

    ``"55000/55010.5"``, ``"2010-01-01/2010-12-31T12:00:00"`` and open
    ends (``"55000/"``) are accepted.

    Raises
    ------
    ValueError
        For anything else, or an end before the start.
    """
    if "/" not in text:
        raise ValueError(f"time {text!r}: write 'start/end' as MJD or ISO 8601 dates")
    start, end = text.split("/", 1)
    if not start.strip() and not end.strip():
        raise ValueError(f"time {text!r}: give at least one end")
    iso_start = _iso(start, "time") if start.strip() else ""
    iso_end = _iso(end, "time") if end.strip() else ""
    if iso_start and iso_end and Time(iso_start) > Time(iso_end):
        raise ValueError(f"time {text!r}: the start is after the end")
    return f"{iso_start}/{iso_end}"


def ssa_query_url(base_url: str, *, ra: float | None = None, dec: float | None = None,
                  size: float | None = None, band: str | None = None, time: str | None = None,
                  maxrec: int | None = None) -> str:
    """The URL of an SSAP 1.1 ``queryData`` request.

    Parameters
    ----------
    base_url : str
        The service's query URL (it may already hold parameters).
    ra, dec : float, optional
        ICRS position in degrees (``POS``).
    size : float, optional
        Diameter of the search region in degrees (``SIZE``).
    band : str, optional
        ``lo/hi`` in metres (``BAND``).
    time : str, optional
        ``start/end``, MJD or ISO 8601 (``TIME``, sent as ISO 8601).
    maxrec : int, optional
        Most records wanted (``MAXREC``).
    """
    params: list[tuple[str, str]] = [("REQUEST", "queryData")]
    if ra is not None and dec is not None:
        params.append(("POS", f"{ra!r},{dec!r}"))
    if size is not None:
        params.append(("SIZE", repr(size)))
    if band:
        low, high = parse_band(band)
        params.append(("BAND", f"{'' if low is None else repr(low)}/"
                               f"{'' if high is None else repr(high)}"))
    if time:
        params.append(("TIME", parse_time_range(time)))
    if maxrec is not None:
        params.append(("MAXREC", str(maxrec)))
    separator = "&" if "?" in base_url else "?"
    if base_url.endswith(("?", "&")):
        separator = ""
    return base_url + separator + urlencode(params)


def soda_url(access_url: str, params: dict[str, str], band: tuple[float | None, float | None]) \
        -> str:
    """A SODA 1.0 sync request: ``params`` (``ID``...) plus ``BAND=lo hi`` in metres."""
    low, high = band
    query = [*params.items(), ("BAND", f"{'-Inf' if low is None else repr(low)} "
                                       f"{'+Inf' if high is None else repr(high)}")]
    separator = "&" if "?" in access_url else "?"
    return access_url + separator + urlencode(query)


@dataclass(frozen=True)
class DatasetRef:
    """How to fetch the dataset of one row of a VOTable of links.

    Attributes
    ----------
    row : int
        Row number (0-based) in the table.
    url : str or None
        The access reference of the row (None when the cell is empty).
    links_url : str or None
        A DataLink links document to resolve instead of ``url``.
    cutout_url : str or None
        A SODA sync request for the cutout asked for, from a descriptor of
        the table's own document.
    """

    row: int
    url: str | None
    links_url: str | None = None
    cutout_url: str | None = None

    @property
    def label(self) -> str:
        """What the manifest shows for the row."""
        return self.url or self.links_url or f"row {self.row + 1}"


def _input_values(descriptor: ServiceDescriptor, table: Table,
                  row: list[str | None]) -> dict[str, str] | None:
    """Values of the descriptor's inputs for one row; None when a referenced cell is empty."""
    values: dict[str, str] = {}
    for param in descriptor.inputs:
        if param.ref:
            value = table.value(row, param.ref)
            if value is None:
                if param.name.upper() == "ID":
                    return None
                continue
            values[param.name] = value
        elif param.value is not None:
            values[param.name] = param.value
    return values


def dataset_refs(root: etree._Element, data: bytes | None = None, *,
                 cutout_band: tuple[float | None, float | None] | None = None) -> list[DatasetRef]:
    """One :class:`DatasetRef` per row of the first table that has a URL column.

    When the document carries a DataLink service descriptor whose ``ID``
    input refers to a column, each row's dataset is resolved through
    DataLink; a row whose format says ``content=datalink`` is a links
    document itself.  With ``cutout_band`` and a SODA sync descriptor in
    the document, the row's cutout request is prepared.

    Raises
    ------
    VOTableError
        When no table has a column of URLs (nor a DataLink descriptor).
    """
    descriptors = service_descriptors(root)
    datalink = next((d for d in descriptors if d.is_service(DATALINK_IVOID) and d.access_url),
                    None)
    soda = next((d for d in descriptors if d.is_service(SODA_SYNC_IVOID) and d.access_url),
                None)
    for table in tables(root, data):
        url_column = find_url_column(table)
        if url_column is None and datalink is None:
            continue
        format_column = find_format_column(table)
        refs = []
        for number, row in enumerate(table.rows):
            url = row[url_column] if url_column is not None else None
            media = (row[format_column] or "") if format_column is not None else ""
            links_url = None
            if datalink is not None and datalink.access_url:
                values = _input_values(datalink, table, row)
                if values:
                    separator = "&" if "?" in datalink.access_url else "?"
                    links_url = datalink.access_url + separator + urlencode(values)
            if links_url is None and url and "content=datalink" in media.replace(" ", "").lower():
                links_url, url = url, None
            cutout_url = None
            if cutout_band is not None and soda is not None and soda.access_url:
                values = _input_values(soda, table, row)
                if values and "ID" in {k.upper() for k in values}:
                    cutout_url = soda_url(soda.access_url, values, cutout_band)
            if url is None and links_url is None and cutout_url is None:
                refs.append(DatasetRef(number, None))
                continue
            refs.append(DatasetRef(number, url, links_url, cutout_url))
        return refs
    raise VOTableError("no column of URLs found: expected a FIELD with ucd 'meta.ref.url' or "
                       "utype 'ssa:Access.Reference', or one named access_url, url or accref")


def choose_link(root: etree._Element, *,
                cutout_band: tuple[float | None, float | None] | None = None) \
        -> tuple[str, str | None]:
    """The URL to download from a DataLink links document, and a note.

    With ``cutout_band`` and a row whose ``service_def`` names a SODA sync
    descriptor of the document, the SODA request (``ID`` and ``BAND``) is
    returned; otherwise the ``#this`` row's ``access_url``.

    Returns
    -------
    tuple of (str, str or None)
        The URL, and a note for the manifest (e.g. that no cutout service
        was offered), or None.

    Raises
    ------
    DataLinkError
        With the service's own message when the ``#this`` row (or, without
        one, any row) is an error row (``NotFoundFault: ...``), or when no
        ``#this`` link exists.
    VOTableError
        When the document is not a links document.
    """
    rows = links(root)
    note = None
    if cutout_band is not None:
        by_id = {d.id: d for d in service_descriptors(root) if d.id}
        for link in rows:
            descriptor = by_id.get(link.service_def or "")
            if descriptor is None or not descriptor.is_service(SODA_SYNC_IVOID) or \
                    not descriptor.access_url:
                continue
            values: dict[str, str] = {}
            for param in descriptor.inputs:
                if param.value is not None:
                    values[param.name] = param.value
                elif param.ref and param.name.upper() == "ID" and link.id:
                    values[param.name] = link.id
            if "ID" not in {k.upper() for k in values} and link.id:
                values["ID"] = link.id
            return soda_url(descriptor.access_url, values, cutout_band), None
        note = "no SODA cutout service offered; the whole dataset was fetched"
    this = [link for link in rows if (link.semantics or "").strip() == "#this"]
    for link in this:
        if link.access_url and not link.error_message:
            return link.access_url, note
    errors = [link.error_message for link in this + rows if link.error_message]
    if errors:
        raise DataLinkError(errors[0])
    raise DataLinkError("DataLink: the links document has no #this link")
