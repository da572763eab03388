"""Reader for VOTable spectra (SSA query results' data sets, IVOA Spectrum DM).

The spectral and flux FIELDs are found by utype (``spec:Data.SpectralAxis.Value``,
``spec:Data.FluxAxis.Value`` and the ``ssa:``/``ssldm:``/``sdm:`` variants, any
case), else by UCD (``em.wl``, ``em.freq``, ``em.energy``, ``em.wavenumber``;
``phot.flux...``, ``phot.count``; ``stat.error``), else by name.  Units come from
the FIELD ``unit``.  The XML is first parsed with lxml with entity resolution and
network access off; a document with a DOCTYPE (entity declarations) or a STREAM
that points outside the file is refused before astropy sees it.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from lxml import etree

from vo.spectra.model import Spectrum
from vo.spectra.readers._common import (
    ERROR_NAMES,
    FLUX_NAMES,
    IVAR_NAMES,
    LOG10_WAVE_NAMES,
    WAVE_NAMES,
    LayoutMismatch,
    error_from_ivar,
    find_name,
    frame_from_text,
    json_value,
    make_spectrum,
    meta_from_header,
    parse_unit,
    to_angstrom,
    unit_string,
)

LAYOUT = "votable"
_SPECTRAL_UCDS = ("em.wl", "em.freq", "em.energy", "em.wavenumber")
_FLUX_UCD_PREFIXES = ("phot.flux", "phot.count", "phot.fluxdens")


class UnsafeXML(Exception):
    """Internal: the XML document is refused (DOCTYPE, entities, external streams)."""


def check_safe_votable(data: bytes) -> None:
    """Parse ``data`` with a locked-down lxml parser and refuse unsafe documents.

    Parameters
    ----------
    data : bytes
        The XML document.

    Raises
    ------
    UnsafeXML
        For a DOCTYPE (which may declare entities) or a STREAM with an href.
    LayoutMismatch
        For XML that is not well-formed or whose root is not VOTABLE.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        if b"<!DOCTYPE" in data[:65536] or b"<!ENTITY" in data[:65536]:
            raise UnsafeXML("XML with a DOCTYPE or entity declarations is refused") from exc
        raise LayoutMismatch(f"not well-formed XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.system_url:
        raise UnsafeXML("XML with a DOCTYPE or entity declarations is refused")
    if etree.QName(root).localname != "VOTABLE":
        raise LayoutMismatch(f"XML document is not a VOTable (root element "
                             f"<{etree.QName(root).localname}>)")
    for el in root.iter("{*}STREAM", "STREAM"):
        if el.get("href"):
            raise UnsafeXML("VOTable STREAM with an external href is refused")


def _ucd_words(ucd: str | None) -> list[str]:
    return [w.strip().lower() for w in (ucd or "").split(";") if w.strip()]


def _utype(obj: Any) -> str:
    return (getattr(obj, "utype", None) or "").strip().lower()


def _pick(fields: list[Any], by_utype: tuple[str, ...], by_ucd: Any,
          names: tuple[str, ...]) -> Any:
    for f in fields:
        if _utype(f).endswith(by_utype):
            return f
    for f in fields:
        if by_ucd(_ucd_words(f.ucd)):
            return f
    found = find_name([f.name or f.ID or "" for f in fields], names)
    if found is not None:
        for f in fields:
            if (f.name or f.ID or "") == found:
                return f
    return None


def _is_spectral_ucd(words: list[str]) -> bool:
    return bool(words) and words[0] in _SPECTRAL_UCDS


def _is_flux_ucd(words: list[str]) -> bool:
    return bool(words) and words[0].startswith(_FLUX_UCD_PREFIXES)


def _is_error_ucd(words: list[str]) -> bool:
    return (bool(words) and words[0] == "stat.error"
            and not any(w.startswith("em.") for w in words[1:]))


def _column(array: Any, index: int) -> np.ndarray:
    """A VOTable column as float64 (object array of float64 arrays for variable cells)."""
    col = array[array.dtype.names[index]]
    if col.dtype == object:
        return np.array([np.ma.filled(np.ma.asarray(c, dtype=np.float64), np.nan)
                         for c in col], dtype=object)
    return np.asarray(np.ma.filled(np.ma.asarray(col).astype(np.float64), np.nan))


def _param_value(param: Any) -> Any:
    value = param.value
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if np.ma.isMaskedArray(value):
        value = np.ma.filled(value.astype(object) if value.dtype.kind in "SU" else value,
                             np.nan)
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size > 1 else (value.item() if value.size else None)
    return json_value(value)


def _params_meta(params: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword-like header from PARAM names, values recognised by utype/UCD)."""
    header: dict[str, Any] = {}
    found: dict[str, Any] = {}
    for p in params:
        value = _param_value(p)
        if value is None:
            continue
        if p.name:
            header.setdefault(str(p.name).upper(), value)
        ut, words = _utype(p), _ucd_words(p.ucd)
        if ut.endswith("target.name") or words[:2] == ["meta.id", "src"]:
            found.setdefault("target", str(value))
        elif ut.endswith("char.spatialaxis.coverage.location.value") and isinstance(value, list):
            found.setdefault("ra", value[0])
            found.setdefault("dec", value[1])
        elif words and words[0] == "pos.eq.ra":
            found.setdefault("ra", value)
        elif words and words[0] == "pos.eq.dec":
            found.setdefault("dec", value)
        elif ut.endswith("char.timeaxis.coverage.location.value") or (
                words and words[0] in {"time.epoch", "time.start"}):
            found.setdefault("mjd", value)
        elif ut.endswith("char.timeaxis.coverage.support.extent") or "obs.exposure" in words:
            found.setdefault("exposure", value)
        elif ut.endswith("dataid.instrument") or words[:1] == ["instr.setup"]:
            found.setdefault("instrument", str(value))
        elif ut.endswith(("dataid.creatordid", "curation.publisherdid", "dataid.datasetid")):
            found.setdefault("id", str(value))
        elif ut.endswith(("spectralframe.refpos", "spectralframe.name")):
            found.setdefault("frame", frame_from_text(str(value)))
    return header, found


def _float_or_none(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _read_table(table: Any, params: list[Any], *, source: str, stem: str) -> list[Spectrum]:
    fields = list(table.fields)
    spec = _pick(fields, ("data.spectralaxis.value",), _is_spectral_ucd,
                 WAVE_NAMES + LOG10_WAVE_NAMES)
    if spec is None:
        raise LayoutMismatch(
            "no spectral axis FIELD (looked for utype spec:Data.SpectralAxis.Value, UCD "
            f"{'/'.join(_SPECTRAL_UCDS)}, names {', '.join(WAVE_NAMES + LOG10_WAVE_NAMES)})")
    flux = _pick([f for f in fields if f is not spec], ("data.fluxaxis.value",), _is_flux_ucd,
                 FLUX_NAMES)
    if flux is None:
        raise LayoutMismatch("no flux FIELD (looked for utype spec:Data.FluxAxis.Value, UCD "
                             f"phot.flux..., names {', '.join(FLUX_NAMES)})")
    rest = [f for f in fields if f is not spec and f is not flux]
    err = _pick(rest, ("data.fluxaxis.accuracy.staterror", "data.fluxaxis.accuracy.staterr"),
                _is_error_ucd, ERROR_NAMES)
    ivar = err is None and find_name([f.name or "" for f in rest], IVAR_NAMES) is not None
    if ivar:
        err = _pick(rest, ("\0",), lambda w: False, IVAR_NAMES)

    spec_unit_text = None if spec.unit is None else str(spec.unit)
    spec_words = _ucd_words(spec.ucd)
    log10 = find_name([spec.name or ""], LOG10_WAVE_NAMES) is not None
    unit = parse_unit(spec_unit_text) if spec_unit_text and not log10 else None
    if spec_unit_text and not log10 and unit is None:
        raise LayoutMismatch(f"spectral FIELD unit '{spec_unit_text}' not understood")
    if unit is None and not log10 and spec_words[:1] == ["em.freq"]:
        raise LayoutMismatch("frequency FIELD without a unit")

    array = table.array
    if array is None or len(array) == 0:
        raise LayoutMismatch("table has no rows")
    index = {id(f): i for i, f in enumerate(fields)}
    w_all, f_all = _column(array, index[id(spec)]), _column(array, index[id(flux)])
    e_all = None if err is None else _column(array, index[id(err)])
    per_row = w_all.dtype == object or w_all.ndim > 1
    rows = ([(w_all[i], f_all[i], None if e_all is None else e_all[i]) for i in range(len(array))]
            if per_row else [(w_all, f_all, e_all)])

    header, found = _params_meta(params)
    spectra: list[Spectrum] = []
    for i, (w, f, e) in enumerate(rows):
        w = np.asarray(w, dtype=np.float64).ravel()
        if log10:
            w = 10.0 ** w
        w = to_angstrom(w, unit, "spectral FIELD")
        f = np.asarray(f, dtype=np.float64).ravel()
        mask = None
        if e is not None:
            e = np.asarray(e, dtype=np.float64).ravel()
            if ivar:
                mask = ~(np.isfinite(e) & (e > 0))
                e = error_from_ivar(e)
        row_id = stem if len(rows) == 1 else f"{stem}_{i}"
        meta = meta_from_header([header], source=source, layout=LAYOUT, default_id=row_id)
        if found.get("target"):
            meta.target = found["target"]
        if found.get("id") and len(rows) == 1:
            meta.id = found["id"]
        if found.get("instrument"):
            meta.instrument = found["instrument"]
        for key in ("ra", "dec", "exposure"):
            value = _float_or_none(found.get(key))
            if value is not None:
                setattr(meta, key, value)
        mjd = _float_or_none(found.get("mjd"))
        if mjd is not None and mjd > 0:
            meta.mjd = mjd - 2400000.5 if mjd > 2400000.5 else mjd
        if found.get("frame"):
            meta.frame = found["frame"]
        if "obs.atmos" in spec_words:
            meta.medium = "air"
        if flux.unit is not None:
            meta.flux_unit = unit_string(str(flux.unit), meta.extra)
        meta.extra.update({"spectral_field": spec.name or spec.ID,
                           "flux_field": flux.name or flux.ID})
        try:
            spectra.append(make_spectrum(w, f, e, meta, mask=mask))
        except LayoutMismatch as exc:
            if len(rows) == 1:
                raise
            raise LayoutMismatch(f"row {i}: {exc}") from exc
    return spectra


def read_votable(data: bytes, *, source: str, stem: str) -> list[Spectrum]:
    """Read the spectra of a VOTable document.

    The first TABLE that holds a spectrum is read: one spectrum for a
    row-per-pixel table, one per row for array-valued cells.

    Parameters
    ----------
    data : bytes
        The whole document.
    source : str
        The file name recorded in the metadata.
    stem : str
        Default identifier.

    Returns
    -------
    list of Spectrum
        The spectra of the first usable table.

    Raises
    ------
    UnsafeXML
        For documents with a DOCTYPE or an external STREAM.
    LayoutMismatch
        When no table holds a spectrum.
    """
    check_safe_votable(data)
    from astropy.io.votable import parse

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vot = parse(io.BytesIO(data), verify="ignore", invalid="mask")
    except Exception as exc:
        raise LayoutMismatch(f"VOTable not readable: {exc}") from exc
    params = [p for p in vot.iter_fields_and_params() if type(p).__name__ == "Param"]
    reasons: list[str] = []
    tables = list(vot.iter_tables())
    if not tables:
        raise LayoutMismatch("VOTable has no TABLE")
    for number, table in enumerate(tables):
        try:
            return _read_table(table, params, source=source, stem=stem)
        except LayoutMismatch as exc:
            reasons.append(str(exc) if len(tables) == 1 else f"TABLE {number}: {exc}")
    raise LayoutMismatch("; ".join(reasons))
