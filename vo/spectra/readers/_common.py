"""Shared pieces of the spectrum readers: the error type, names, units, metadata.

Every layout reader (FITS table, FITS image, LAMOST, VOTable, ASCII) finds its
arrays its own way and then hands them to :func:`make_spectrum`, which applies
the same checks and conversions everywhere, and builds metadata from
header-like mappings with :func:`meta_from_header`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import astropy.units as u
import numpy as np

from vo.spectra.model import Frame, Medium, Spectrum, SpectrumMeta

# Column / FIELD names, compared case-insensitively, in order of preference.
WAVE_NAMES: tuple[str, ...] = (
    "WAVE", "WAVELENGTH", "LAMBDA", "WAVELEN", "WAVE_AIR", "AWAV", "WAVE_VAC", "VACWAVE",
    "LAM", "WL", "SPECTRAL_AXIS",
)
LOG10_WAVE_NAMES: tuple[str, ...] = ("LOGLAM", "LOGLAMBDA", "LOG_LAMBDA", "LOGWAVE", "LOG_WAVE")
FLUX_NAMES: tuple[str, ...] = (
    "FLUX", "FLUX_DENSITY", "FLUXDENSITY", "FLUX_LAMBDA", "F_LAMBDA", "FLAM", "SPECFLUX",
    "SPEC", "SPECTRUM", "INTENSITY", "COUNTS", "FLUX_REDUCED", "DATA",
)
ERROR_NAMES: tuple[str, ...] = (
    "ERR", "ERROR", "SIGMA", "FLUX_ERR", "FLUX_ERROR", "ERR_FLUX", "FLUXERR", "ERR_REDUCED",
    "UNCERTAINTY", "NOISE", "STDDEV", "STD",
)
IVAR_NAMES: tuple[str, ...] = ("IVAR", "INVVAR", "INV_VAR", "IVAR_FLUX", "FLUX_IVAR")
VAR_NAMES: tuple[str, ...] = ("VAR", "VARIANCE", "FLUX_VAR")

AIR_WAVE_NAMES = frozenset({"WAVE_AIR", "AWAV"})
VACUUM_WAVE_NAMES = frozenset({"WAVE_VAC", "VACWAVE"})

#: Header keywords copied into ``SpectrumMeta.extra`` when present.
EXTRA_KEYS: tuple[str, ...] = (
    "OBSID", "DESIG", "OBJNAME", "PLATEID", "FIBERID", "CLASS", "SUBCLASS", "Z", "Z_ERR",
    "SPECSYS", "VELOSYS", "HELIO", "HELIO_RV", "RADESYS", "EQUINOX", "AIRORVAC", "VACUUM",
)


class SpectrumReadError(ValueError):
    """A file could not be read as a spectrum.

    The message names the file and the reason, for example
    ``"spectrum.fits: no wavelength column (looked for WAVE, WAVELENGTH, ...)"``.

    Parameters
    ----------
    source : str
        The file name (as shown to the user).
    reason : str
        Why the file could not be read.

    Attributes
    ----------
    source, reason : str
        The two parts of the message.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class LayoutMismatch(Exception):
    """Internal: a reader does not apply to this HDU/table (carries the reason)."""


def looked_for(names: Iterable[str]) -> str:
    """Return ``"A, B, C"`` for messages that list the names searched.

    Parameters
    ----------
    names : iterable of str
        Candidate names.

    Returns
    -------
    str
        The names joined with commas.
    """
    return ", ".join(names)


def find_name(available: Iterable[str], candidates: Iterable[str]) -> str | None:
    """Find the first candidate among ``available`` names, ignoring case.

    Parameters
    ----------
    available : iterable of str
        Names present in the file (column names, FIELD names...).
    candidates : iterable of str
        Names to look for, in order of preference.

    Returns
    -------
    str or None
        The name as spelled in the file, or None.
    """
    by_upper: dict[str, str] = {}
    for name in available:
        by_upper.setdefault(name.strip().upper(), name)
    for cand in candidates:
        if cand.upper() in by_upper:
            return by_upper[cand.upper()]
    return None


# --------------------------------------------------------------------------- units

_ANGSTROM_ALIASES = {"a", "aa", "ang", "angs", "angstrom", "angstroms", "\u00c5", "\u212b"}
_MICRON_ALIASES = {"micron", "microns", "um", "\u00b5m", "\u03bcm", "mum"}
_NM_ALIASES = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}


def _fix_angstrom(text: str) -> str:
    """Read a lone ``A`` (ampere in FITS) as Angstrom, as spectroscopic archives mean it."""
    return re.sub(r"(?<![A-Za-z])(A|AA)(?![A-Za-z])", "Angstrom", text)


def parse_unit(text: str | None) -> u.UnitBase | None:
    """Parse a unit string leniently, as spectroscopic archives write them.

    Parameters
    ----------
    text : str or None
        The unit as written in the file ("Angstrom", "nm", "A", "erg/s/cm2/A"...).

    Returns
    -------
    astropy.units.UnitBase or None
        None for an empty or unparseable string.
    """
    if text is None:
        return None
    s = str(text).strip()
    if not s:
        return None
    low = s.lower()
    if low in _ANGSTROM_ALIASES:
        return u.AA
    if low in _MICRON_ALIASES:
        return u.um
    if low in _NM_ALIASES:
        return u.nm
    s = _fix_angstrom(s.replace("Angstroms", "Angstrom").replace("angstroms", "Angstrom"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in (None, "fits", "cds", "ogip", "vounit"):
            try:
                unit = u.Unit(s, format=fmt)
            except (ValueError, TypeError):
                continue
            if isinstance(unit, u.UnrecognizedUnit):
                continue
            return unit
    return None


def unit_string(text: str | None, extra: dict[str, Any], key: str = "flux_unit_raw") -> str:
    """Normalise a unit string to one that ``astropy.units.Unit`` reads back.

    Parameters
    ----------
    text : str or None
        The unit as written in the file.
    extra : dict
        Where the raw string is kept (under ``key``) when it cannot be parsed.
    key : str
        Key for the raw string in ``extra``.

    Returns
    -------
    str
        An astropy unit string, or "" when unknown.
    """
    if text is None or not str(text).strip():
        return ""
    unit = parse_unit(str(text))
    if unit is None:
        extra[key] = str(text).strip()
        return ""
    return unit.to_string()


def to_angstrom(values: np.ndarray, unit: u.UnitBase | None,
                what: str = "wavelength") -> np.ndarray:
    """Convert spectral coordinates to vacuum-or-air wavelengths in Angstrom.

    Lengths convert directly; frequencies, energies and wavenumbers through
    :func:`astropy.units.spectral`.

    Parameters
    ----------
    values : numpy.ndarray
        The spectral coordinate values.
    unit : astropy.units.UnitBase or None
        Their unit; None means Angstrom.
    what : str
        Name used in the error message.

    Returns
    -------
    numpy.ndarray
        float64 wavelengths in Angstrom.

    Raises
    ------
    LayoutMismatch
        When the unit is not a spectral one.
    """
    arr = np.asarray(values, dtype=np.float64)
    if unit is None or unit == u.AA:
        return arr
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((arr * unit).to_value(u.AA, equivalencies=u.spectral()),
                              dtype=np.float64)
    except u.UnitsError as exc:
        raise LayoutMismatch(f"{what} unit '{unit}' is not a spectral unit") from exc


def error_from_ivar(ivar: np.ndarray) -> np.ndarray:
    """Convert inverse variance to a 1-sigma error; ivar <= 0 or non-finite gives NaN.

    Parameters
    ----------
    ivar : numpy.ndarray
        Inverse variance.

    Returns
    -------
    numpy.ndarray
        ``1 / sqrt(ivar)``, NaN where there is no data.
    """
    iv = np.asarray(ivar, dtype=np.float64)
    out = np.full(iv.shape, np.nan)
    good = np.isfinite(iv) & (iv > 0)
    out[good] = 1.0 / np.sqrt(iv[good])
    return out


def error_from_var(var: np.ndarray) -> np.ndarray:
    """Convert a variance to a 1-sigma error; negative or non-finite gives NaN.

    Parameters
    ----------
    var : numpy.ndarray
        Variance.

    Returns
    -------
    numpy.ndarray
        ``sqrt(var)``.
    """
    v = np.asarray(var, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    good = np.isfinite(v) & (v >= 0)
    out[good] = np.sqrt(v[good])
    return out


# --------------------------------------------------------------------------- metadata

HeaderLike = Mapping[str, Any]


def _lookup(headers: Iterable[HeaderLike], *keys: str) -> Any:
    """First non-blank value of any of ``keys`` in the first header that has it."""
    for key in keys:
        for hdr in headers:
            try:
                value = hdr.get(key)
            except Exception:  # astropy headers raise on odd keys
                value = None
            if value is None:
                continue
            if isinstance(value, str) and not value.strip():
                continue
            if type(value).__name__ == "Undefined":
                continue
            return value
    return None


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def parse_angle(value: Any, *, hours: bool) -> float | None:
    """Parse an RA or Dec header value to degrees.

    Numbers are degrees; strings with ``:``, spaces or ``h``/``d`` markers are
    sexagesimal (hours for RA, degrees for Dec).

    Parameters
    ----------
    value : Any
        The header value.
    hours : bool
        Whether a sexagesimal string is in hours (RA).

    Returns
    -------
    float or None
        Degrees, or None when not parseable.
    """
    num = _as_float(value)
    if num is not None:
        return num
    if not isinstance(value, str) or not value.strip():
        return None
    from astropy.coordinates import Angle

    text = value.strip()
    try:
        if re.search(r"[hdms:\s]", text.lower()):
            unit = u.hourangle if hours and "d" not in text.lower() else u.deg
            return float(Angle(text, unit=unit).degree)
        return float(Angle(text, unit=u.deg).degree)
    except Exception:
        return None


_RADEC_PAIRS = (("RA_OBJ", "DEC_OBJ"), ("OBJRA", "OBJDEC"), ("RA_TARG", "DEC_TARG"),
                ("PLUG_RA", "PLUG_DEC"), ("RA", "DEC"), ("RA-OBJ", "DEC-OBJ"))


def _radec(headers: list[HeaderLike]) -> tuple[float | None, float | None]:
    for ra_key, dec_key in _RADEC_PAIRS:
        ra_v = _lookup(headers, ra_key)
        dec_v = _lookup(headers, dec_key)
        if ra_v is None or dec_v is None:
            continue
        ra = parse_angle(ra_v, hours=True)
        dec = parse_angle(dec_v, hours=False)
        if ra is None or dec is None or not -90.0 <= dec <= 90.0:
            continue
        return ra % 360.0, dec
    return None, None


def _mjd(headers: list[HeaderLike]) -> float | None:
    for key in ("MJD-AVG", "MJD-MID", "MJD-OBS", "MJD_OBS", "MJD"):
        value = _as_float(_lookup(headers, key))
        if value is not None and value > 0:
            return value
    from astropy.time import Time

    for key in ("DATE-AVG", "DATE-OBS", "DATE_OBS"):
        date = _as_str(_lookup(headers, key))
        if date is None:
            continue
        if "T" not in date and len(date) == 10:
            t = _as_str(_lookup(headers, "TIME-OBS", "UT", "UTSTART", "UT-START"))
            if t and re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d*)?)?", t):
                date = f"{date}T{t}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(Time(date, scale="utc").mjd)
        except Exception:
            continue
    return None


def _medium(headers: list[HeaderLike]) -> Medium | None:
    value = _lookup(headers, "AIRORVAC", "WAVEMED", "MEDIUM")
    if isinstance(value, str):
        v = value.strip().lower()
        if v.startswith("air"):
            return "air"
        if v.startswith("vac"):
            return "vacuum"
    vac = _lookup(headers, "VACUUM")
    if isinstance(vac, bool | np.bool_):
        return "vacuum" if vac else "air"
    if isinstance(vac, str) and vac.strip().upper() in {"T", "TRUE", "F", "FALSE"}:
        return "vacuum" if vac.strip().upper() in {"T", "TRUE"} else "air"
    ctype = _as_str(_lookup(headers, "CTYPE1"))
    if ctype and ctype.upper().startswith("AWAV"):
        return "air"
    telescope = (_as_str(_lookup(headers, "TELESCOP")) or "").upper()
    if "SDSS" in telescope or "LAMOST" in telescope:
        return "vacuum"
    return None


_SPECSYS = {"TOPOCENT": "topocentric", "HELIOCEN": "heliocentric", "BARYCENT": "barycentric"}


def frame_from_text(text: str | None) -> Frame | None:
    """Map a SPECSYS value or STC reference position to a :data:`Frame`.

    Parameters
    ----------
    text : str or None
        For example ``"BARYCENT"``, ``"HELIOCENTER"``, ``"topocentric"``.

    Returns
    -------
    {'topocentric', 'heliocentric', 'barycentric'} or None
    """
    if not text:
        return None
    t = text.strip().upper()
    for prefix, frame in _SPECSYS.items():
        if t.startswith(prefix[:5]):
            return frame  # type: ignore[return-value]
    return None


def _frame(headers: list[HeaderLike]) -> Frame | None:
    specsys = _as_str(_lookup(headers, "SPECSYS"))
    frame = frame_from_text(specsys)
    if frame is not None:
        return frame
    helio = _lookup(headers, "HELIO")
    if isinstance(helio, bool | np.bool_) and helio:
        return "heliocentric"
    return None


def json_value(value: Any) -> Any:
    """Convert a header value to a JSON-able Python value.

    Parameters
    ----------
    value : Any
        A header value (numpy scalar, str, bool...).

    Returns
    -------
    Any
        A ``str``, ``int``, ``float``, ``bool`` or None.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def meta_from_header(headers: list[HeaderLike], *, source: str, layout: str,
                     default_id: str | None = None) -> SpectrumMeta:
    """Build :class:`SpectrumMeta` from header-like mappings, most specific first.

    Parameters
    ----------
    headers : list of mapping
        FITS headers (for example the HDU's own header, then the primary header),
        or dictionaries of keyword values.
    source : str
        The file the spectrum was read from.
    layout : str
        Name of the layout that read it.
    default_id : str, optional
        Identifier when the header has none (usually the file stem).

    Returns
    -------
    SpectrumMeta
        The metadata; ``flux_unit`` comes from BUNIT when present.
    """
    extra: dict[str, Any] = {}
    for key in EXTRA_KEYS:
        value = _lookup(headers, key)
        if value is not None:
            extra[key.lower()] = json_value(value)
    ra, dec = _radec(headers)
    meta = SpectrumMeta(
        id=_as_str(_lookup(headers, "OBSID", "OBS_ID")) or default_id,
        target=_as_str(_lookup(headers, "OBJECT", "TARGET", "OBJNAME", "TARGNAME", "DESIG")),
        ra=ra,
        dec=dec,
        mjd=_mjd(headers),
        exposure=_as_float(_lookup(headers, "EXPTIME", "EXPOSURE", "EXP_TIME", "TEXPTIME")),
        instrument=_as_str(_lookup(headers, "INSTRUME", "INSTRUMENT")),
        telescope=_as_str(_lookup(headers, "TELESCOP", "TELESCOPE")),
        medium=_medium(headers),
        frame=_frame(headers),
        source=source,
        layout=layout,
        extra=extra,
    )
    meta.flux_unit = unit_string(_as_str(_lookup(headers, "BUNIT")), meta.extra)
    return meta


# --------------------------------------------------------------------------- building

def make_spectrum(wavelength: Any, flux: Any, error: Any | None, meta: SpectrumMeta,
                  *, mask: np.ndarray | None = None) -> Spectrum:
    """Check the arrays of one spectrum and build it.

    Pixels with a non-finite wavelength are dropped (table padding); ``mask``
    (True = no data) sets flux and error to NaN.

    Parameters
    ----------
    wavelength, flux : array_like
        Wavelength in Angstrom and flux, same length.
    error : array_like or None
        1-sigma flux error.
    meta : SpectrumMeta
        Metadata of the spectrum.
    mask : numpy.ndarray of bool, optional
        Pixels without data.

    Returns
    -------
    Spectrum
        A spectrum with its own (copied, in-memory) arrays.

    Raises
    ------
    LayoutMismatch
        On mismatched lengths, no finite wavelengths or flux, non-positive wavelengths.
    """
    wave = np.array(wavelength, dtype=np.float64, copy=True).ravel()
    flx = np.array(flux, dtype=np.float64, copy=True).ravel()
    err = None if error is None else np.array(error, dtype=np.float64, copy=True).ravel()
    if flx.size != wave.size or (err is not None and err.size != wave.size):
        sizes = f"wavelength {wave.size}, flux {flx.size}"
        if err is not None:
            sizes += f", error {err.size}"
        raise LayoutMismatch(f"array lengths differ ({sizes})")
    if wave.size == 0:
        raise LayoutMismatch("no data (0 pixels)")
    if mask is not None:
        m = np.asarray(mask, dtype=bool).ravel()
        flx[m] = np.nan
        if err is not None:
            err[m] = np.nan
    keep = np.isfinite(wave)
    if not keep.any():
        raise LayoutMismatch("no finite wavelength values")
    if not keep.all():
        wave, flx = wave[keep], flx[keep]
        err = None if err is None else err[keep]
    if np.any(wave <= 0):
        raise LayoutMismatch("non-positive wavelengths (wrong unit or not a wavelength axis?)")
    if not np.isfinite(flx).any():
        raise LayoutMismatch("no finite flux values (all NaN or infinite)")
    if err is not None:
        err[~np.isfinite(err)] = np.nan
        if np.isnan(err).all():
            err = None
    return Spectrum(wavelength=wave, flux=flx, error=err, meta=meta)

