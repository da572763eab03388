"""Reader for two- or three-column ASCII/CSV spectra.

Lines starting with ``#`` are comments (``# KEY = value`` or ``# KEY: value``
comments feed the metadata as header keywords would).  An optional header line
names the columns; wavelength, flux and error columns are then found by name,
otherwise they are the first two or three.  Values are separated by commas,
semicolons, tabs or blanks.  Wavelengths are Angstrom unless the header line
(``wavelength(nm)``, ``wave [um]``, ``lambda_nm``) or a comment
(``# wavelength unit: nm``) says otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vo.spectra.model import Spectrum
from vo.spectra.readers._common import (
    ERROR_NAMES,
    FLUX_NAMES,
    IVAR_NAMES,
    LOG10_WAVE_NAMES,
    VAR_NAMES,
    WAVE_NAMES,
    LayoutMismatch,
    error_from_ivar,
    error_from_var,
    find_name,
    make_spectrum,
    meta_from_header,
    parse_unit,
    to_angstrom,
)

LAYOUT = "ascii"
_UNIT_IN_NAME = re.compile(r"^(?P<name>[^\(\[]*?)\s*[\(\[]\s*(?P<unit>[^\)\]]*)\s*[\)\]]\s*$")
_UNIT_SUFFIX = re.compile(r"^(?P<name>.+?)_(?P<unit>nm|um|micron|microns|aa|a|angstrom|m)$",
                          re.IGNORECASE)
_COMMENT_KV = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_\-]{0,15})\s*[=:]\s*(.*?)\s*$")
_COMMENT_UNIT = re.compile(
    r"(?:wave\w*|lambda)\W+(?:unit|units)?\W*[\(\[=:]?\s*"
    r"(nm|um|\u00b5m|micron|microns|angstroms?|aa|a)\b", re.IGNORECASE)


def _split(line: str, sep: str | None) -> list[str]:
    return [t.strip() for t in (line.split(sep) if sep else line.split())]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _name_and_unit(token: str) -> tuple[str, str | None]:
    m = _UNIT_IN_NAME.match(token)
    if m:
        return m.group("name").strip(), m.group("unit").strip() or None
    m = _UNIT_SUFFIX.match(token)
    if m and m.group("name").upper() in {n.upper() for n in WAVE_NAMES}:
        return m.group("name"), m.group("unit")
    return token, None


def _comment_value(text: str) -> Any:
    text = text.strip().strip("'\"")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_ascii(text: str, *, source: str, stem: str) -> list[Spectrum]:
    """Read a two- or three-column text spectrum.

    Parameters
    ----------
    text : str
        The whole file, decoded.
    source : str
        The file name recorded in the metadata.
    stem : str
        Default identifier.

    Returns
    -------
    list of Spectrum
        One spectrum.

    Raises
    ------
    LayoutMismatch
        When the text is not a table of numbers with at least two columns.
    """
    header: dict[str, Any] = {}
    comment_unit: str | None = None
    names: list[str] | None = None
    rows: list[list[float]] = []
    sep: str | None = None
    ncols = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            m = _COMMENT_KV.match(body)
            if m and not rows:
                header.setdefault(m.group(1).upper(), _comment_value(m.group(2)))
            mu = _COMMENT_UNIT.search(body)
            if mu and comment_unit is None:
                comment_unit = mu.group(1)
            continue
        if sep is None and not rows:
            sep = "," if "," in line else ";" if ";" in line else "\t" if "\t" in line else None
        tokens = _split(line, sep)
        if not rows and names is None and not all(_is_number(t) for t in tokens if t):
            names = tokens
            continue
        try:
            values = [float(t) if t else np.nan for t in tokens]
        except ValueError as exc:
            raise LayoutMismatch(f"line {lineno}: not a number ({exc})") from exc
        if not rows:
            ncols = len(values)
            if ncols < 2:
                raise LayoutMismatch(f"line {lineno}: only one column (need wavelength and flux)")
        elif len(values) != ncols:
            raise LayoutMismatch(f"line {lineno}: {len(values)} columns, expected {ncols}")
        rows.append(values)
    if not rows:
        raise LayoutMismatch("no data lines")
    table = np.asarray(rows, dtype=np.float64)

    wave_i, flux_i = 0, 1
    err_i: int | None = 2 if ncols == 3 else None
    err_kind = "sigma"
    log10 = False
    unit_text: str | None = comment_unit
    if names is not None:
        if len(names) != ncols:
            raise LayoutMismatch(f"header names {len(names)} columns, data have {ncols}")
        parsed = [_name_and_unit(n) for n in names]
        bare = [p[0] for p in parsed]
        w = find_name(bare, WAVE_NAMES)
        if w is None and (w := find_name(bare, LOG10_WAVE_NAMES)) is not None:
            log10 = True
        f = find_name(bare, FLUX_NAMES)
        if w is not None:
            wave_i = bare.index(w)
            unit_text = parsed[wave_i][1] or unit_text
        if f is not None:
            flux_i = bare.index(f)
        elif w is not None:
            flux_i = next(i for i in range(ncols) if i != wave_i)
        err_i = None
        for cands, kind in ((ERROR_NAMES, "sigma"), (IVAR_NAMES, "ivar"), (VAR_NAMES, "var")):
            e = find_name(bare, cands)
            if e is not None:
                err_i, err_kind = bare.index(e), kind
                break
        if err_i is None and ncols == 3 and w is not None and f is not None:
            err_i = 3 - wave_i - flux_i
        if wave_i == flux_i:
            raise LayoutMismatch("header names no separate flux column")

    unit = None
    if unit_text and not log10:
        unit = parse_unit(unit_text)
        if unit is None:
            raise LayoutMismatch(f"wavelength unit '{unit_text}' not understood")
    wave = table[:, wave_i]
    if log10:
        wave = 10.0 ** wave
    wave = to_angstrom(wave, unit)
    flux = table[:, flux_i]
    err = None if err_i is None else table[:, err_i]
    mask = None
    if err is not None and err_kind == "ivar":
        mask = ~(np.isfinite(err) & (err > 0))
        err = error_from_ivar(err)
    elif err is not None and err_kind == "var":
        err = error_from_var(err)
    meta = meta_from_header([header], source=source, layout=LAYOUT, default_id=stem)
    if names is not None:
        meta.extra["columns"] = names
    return [make_spectrum(wave, flux, err, meta, mask=mask)]
