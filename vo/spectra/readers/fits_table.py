"""Reader for spectra in FITS binary tables.

Two shapes are recognised: one row per pixel (scalar WAVE, FLUX, ERR columns)
and one row per spectrum with array cells (SDSS ``COADD``, LAMOST DR table
files, ESO SDP files), which gives one spectrum per row.  Columns are found by
their common names; ``LOGLAM`` is log10 Angstrom (SDSS); IVAR becomes
``1/sqrt(ivar)`` with ivar = 0 meaning no data (NaN flux and error).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.io import fits

from vo.spectra.model import Spectrum
from vo.spectra.readers._common import (
    AIR_WAVE_NAMES,
    ERROR_NAMES,
    FLUX_NAMES,
    IVAR_NAMES,
    LOG10_WAVE_NAMES,
    VACUUM_WAVE_NAMES,
    VAR_NAMES,
    WAVE_NAMES,
    LayoutMismatch,
    error_from_ivar,
    error_from_var,
    find_name,
    looked_for,
    make_spectrum,
    meta_from_header,
    parse_unit,
    to_angstrom,
    unit_string,
)

LAYOUT = "fits-table"
_ID_COLUMNS = ("OBSID", "SPECOBJID", "OBJID", "ID", "NAME", "TARGETID")


def _column_values(data: fits.FITS_rec, name: str, null: Any) -> np.ndarray:
    """A column as float64 (a copy), with integer TNULL values as NaN."""
    raw = data[name]
    if raw.dtype == object:  # variable-length arrays
        return np.array([np.asarray(cell, dtype=np.float64) for cell in raw], dtype=object)
    values = np.array(raw, dtype=np.float64)
    if null is not None and np.issubdtype(np.asarray(raw).dtype, np.integer):
        values[np.asarray(raw) == null] = np.nan
    return values


def _log_unit_inner(unit_text: str | None) -> str | None:
    """``"log10(Angstrom)"`` -> ``"Angstrom"``; other text unchanged."""
    if not unit_text:
        return None
    text = unit_text.strip()
    for prefix in ("log10(", "log(", "[", "dex("):
        if text.lower().startswith(prefix) and text.endswith((")", "]")):
            return text[len(prefix):-1]
    if text.lower() in {"dex", "log", "log10"}:
        return None
    return text


def read_fits_table(hdu: fits.BinTableHDU, primary: fits.Header | None, *, source: str,
                    stem: str) -> list[Spectrum]:
    """Read the spectra held in one FITS binary table HDU.

    Parameters
    ----------
    hdu : astropy.io.fits.BinTableHDU
        The table.
    primary : astropy.io.fits.Header or None
        The primary header (for metadata the table header lacks).
    source : str
        The file name recorded in the metadata.
    stem : str
        Default identifier (file name without extension).

    Returns
    -------
    list of Spectrum
        One spectrum for a pixel-per-row table, one per row for array cells.

    Raises
    ------
    LayoutMismatch
        When the table has no wavelength or flux column or its data are unusable.
    """
    columns = hdu.columns
    names = list(columns.names)
    wave_name = find_name(names, WAVE_NAMES)
    log10 = False
    if wave_name is None:
        wave_name = find_name(names, LOG10_WAVE_NAMES)
        log10 = wave_name is not None
    if wave_name is None:
        raise LayoutMismatch(
            f"no wavelength column (looked for {looked_for(WAVE_NAMES + LOG10_WAVE_NAMES)})")
    flux_name = find_name(names, FLUX_NAMES)
    if flux_name is None:
        raise LayoutMismatch(f"no flux column (looked for {looked_for(FLUX_NAMES)})")
    err_kind = "sigma"
    err_name = find_name(names, ERROR_NAMES)
    if err_name is None:
        err_name, err_kind = find_name(names, IVAR_NAMES), "ivar"
    if err_name is None:
        err_name, err_kind = find_name(names, VAR_NAMES), "var"

    col = {c.name: c for c in columns}
    wave_unit_text = col[wave_name].unit
    if log10:
        wave_unit_text = _log_unit_inner(wave_unit_text)
    wave_unit = parse_unit(wave_unit_text)
    if wave_unit_text and wave_unit is None:
        raise LayoutMismatch(f"wavelength unit '{wave_unit_text}' not understood")

    data = hdu.data
    if data is None or len(data) == 0:
        raise LayoutMismatch("table has no rows")
    wave_all = _column_values(data, wave_name, col[wave_name].null)
    flux_all = _column_values(data, flux_name, col[flux_name].null)
    err_all = None if err_name is None else _column_values(data, err_name, col[err_name].null)

    headers = [hdu.header] + ([primary] if primary is not None else [])
    per_row = wave_all.dtype == object or wave_all.ndim > 1
    id_name = find_name(names, _ID_COLUMNS) if per_row else None
    if per_row:
        rows = [(wave_all[i], flux_all[i], None if err_all is None else err_all[i])
                for i in range(len(data))]
    else:
        if flux_all.ndim > 1 or flux_all.dtype == object:
            raise LayoutMismatch(f"column {wave_name} holds scalars but {flux_name} holds arrays")
        rows = [(wave_all, flux_all, err_all)]

    spectra: list[Spectrum] = []
    for i, (w, f, e) in enumerate(rows):
        w = np.asarray(w, dtype=np.float64).ravel()
        f = np.asarray(f, dtype=np.float64).ravel()
        e = None if e is None else np.asarray(e, dtype=np.float64).ravel()
        if log10:
            w = 10.0 ** w
        w = to_angstrom(w, wave_unit)
        mask = None
        if e is not None and err_kind == "ivar":
            if e.size == f.size:
                mask = ~(np.isfinite(e) & (e > 0))
            e = error_from_ivar(e)
        elif e is not None and err_kind == "var":
            e = error_from_var(e)
        row_id = stem if len(rows) == 1 else f"{stem}_{i}"
        if id_name is not None:
            value = data[id_name][i]
            text = value.decode() if isinstance(value, bytes) else str(value)
            row_id = text.strip() or row_id
        meta = meta_from_header(headers, source=source, layout=LAYOUT, default_id=row_id)
        if per_row and len(rows) > 1:
            meta.id = row_id
        upper = wave_name.upper()
        if upper in AIR_WAVE_NAMES:
            meta.medium = "air"
        elif upper in VACUUM_WAVE_NAMES:
            meta.medium = "vacuum"
        if col[flux_name].unit:
            meta.flux_unit = unit_string(col[flux_name].unit, meta.extra)
        meta.extra.update({"wave_column": wave_name, "flux_column": flux_name})
        if err_name is not None:
            meta.extra["error_column"] = err_name
        try:
            spectra.append(make_spectrum(w, f, e, meta, mask=mask))
        except LayoutMismatch as exc:
            if len(rows) == 1:
                raise
            raise LayoutMismatch(f"row {i}: {exc}") from exc
    return spectra
