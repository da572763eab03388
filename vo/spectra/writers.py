"""Writers of a :class:`~vo.spectra.model.Spectrum` in each supported file layout.

Every layout the readers accept can also be written, so that demo data,
test fixtures and exported results exercise the same code paths as files
from real archives:

==========================  ==================================================
layout                      writer
==========================  ==================================================
``fits-table``              :func:`write_fits_table` (BinTable WAVE/FLUX/ERR)
``fits-image-linear``       :func:`write_fits_image` with ``scale="linear"``
``fits-image-log10``        :func:`write_fits_image` with ``scale="log10"``
                            (IRAF ``DC-FLAG = 1``)
``fits-image-ln``           :func:`write_fits_image` with ``scale="ln"``
                            (FITS WCS ``WAVE-LOG``)
``lamost``                  :func:`write_lamost` (LAMOST DR-like 5-row image)
``votable``                 :func:`write_votable` (SSA / Spectrum DM style)
``csv``                     :func:`write_csv` (commented header, 2-3 columns)
==========================  ==================================================

Image layouts need a uniform wavelength grid (linear, log10 or ln).  When
the spectrum is not already on such a grid, it is resampled with
:func:`numpy.interp` onto the grid of the same number of pixels spanning the
same first and last wavelength (see :func:`resample_to_uniform_grid`); flux
and error are interpolated linearly, so pixels next to a missing (NaN)
sample become missing too.  Table, VOTable and CSV layouts keep the samples
as they are.

Metadata goes where archives put it: FITS header keywords (OBJECT, RA, DEC,
MJD-OBS, EXPTIME, INSTRUME, TELESCOP, BUNIT, AIRORVAC, SPECSYS, ...),
VOTable PARAMs with SSA utypes and UCDs, ``# key: value`` lines in CSV.
Entries of ``meta.extra`` are written too: as plain FITS keywords when the
key is a valid unused keyword of at most 8 characters, as ``HIERARCH``
cards otherwise.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from astropy.io.votable import tree as vot
from astropy.time import Time
from astropy.units import Unit, UnitsWarning

from vo.spectra.media import air_to_vacuum
from vo.spectra.model import Spectrum, SpectrumMeta

Scale = Literal["linear", "log10", "ln"]
PathLike = str | os.PathLike[str]

#: FITS ``SPECSYS`` values (WCS paper III, table 1) for ``SpectrumMeta.frame``.
SPECSYS = {"topocentric": "TOPOCENT", "heliocentric": "HELIOCEN", "barycentric": "BARYCENT"}
#: Spectrum DM / SSA ``SpectralFrame.RefPos`` values for ``SpectrumMeta.frame``.
REFPOS = {"topocentric": "TOPOCENTER", "heliocentric": "HELIOCENTER",
          "barycentric": "BARYCENTER"}

#: Grid positions that differ by less than this (Angstrom) count as on the grid.
GRID_TOLERANCE = 1e-7

_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")


# uniform grids ----------------------------------------------------------------


def _uniform_grid(wavelength: np.ndarray, scale: Scale) -> np.ndarray:
    """The uniform grid (in ``scale``) with the same size and end points."""
    n = wavelength.size
    first, last = float(wavelength[0]), float(wavelength[-1])
    index = np.arange(n, dtype=np.float64)
    if scale == "linear":
        step = (last - first) / (n - 1)
        return first + step * index
    if scale == "log10":
        step = (math.log10(last) - math.log10(first)) / (n - 1)
        return np.asarray(10.0 ** (math.log10(first) + step * index))
    if scale == "ln":
        step = (math.log(last) - math.log(first)) / (n - 1)
        return np.asarray(first * np.exp(step * index))
    raise ValueError(f"unknown scale {scale!r}; use 'linear', 'log10' or 'ln'")


def is_uniform(wavelength: np.ndarray, scale: Scale) -> bool:
    """Whether wavelengths lie on a uniform grid in ``scale``.

    Parameters
    ----------
    wavelength : numpy.ndarray
        Increasing wavelengths in Angstrom, at least two.
    scale : {'linear', 'log10', 'ln'}
        The grid: uniform in wavelength, in log10 or in natural log of it
        (log10 and ln grids are the same grids, only the header differs).

    Returns
    -------
    bool
        True when every wavelength is within ``GRID_TOLERANCE`` Angstrom of
        the uniform grid with the same size and end points.
    """
    if wavelength.size < 2:
        return False
    grid = _uniform_grid(wavelength, scale)
    return bool(np.max(np.abs(grid - wavelength)) < GRID_TOLERANCE)


def resample_to_uniform_grid(spectrum: Spectrum, scale: Scale) -> Spectrum:
    """The spectrum on a uniform grid in ``scale``, as the image writers store it.

    Parameters
    ----------
    spectrum : Spectrum
        At least two samples with positive wavelengths.
    scale : {'linear', 'log10', 'ln'}
        Uniform in wavelength, in log10(wavelength) or in ln(wavelength).

    Returns
    -------
    Spectrum
        ``spectrum`` itself when it is already on such a grid; otherwise a new
        spectrum with the same number of pixels, the same first and last
        wavelength and flux and error interpolated linearly
        (:func:`numpy.interp`) at the grid wavelengths.  Metadata is shared.

    Raises
    ------
    ValueError
        For fewer than two samples, non-positive wavelengths with a log
        scale, or an unknown scale.
    """
    wavelength = spectrum.wavelength
    if wavelength.size < 2:
        raise ValueError("a wavelength grid needs at least two samples")
    if scale != "linear" and wavelength[0] <= 0:
        raise ValueError("a logarithmic grid needs positive wavelengths")
    if wavelength[-1] <= wavelength[0]:
        raise ValueError("wavelengths must increase")
    if is_uniform(wavelength, scale):
        return spectrum
    grid = _uniform_grid(wavelength, scale)
    flux = np.interp(grid, wavelength, spectrum.flux)
    error = None if spectrum.error is None else np.interp(grid, wavelength, spectrum.error)
    return Spectrum(grid, flux, error, spectrum.meta)


# headers ------------------------------------------------------------------------


def _ascii(text: str) -> str:
    """FITS header strings are ASCII: drop accents (Ondřejov -> Ondrejov)."""
    normal = unicodedata.normalize("NFKD", text)
    return normal.encode("ascii", "ignore").decode("ascii")


def _card_value(value: Any) -> Any:
    if isinstance(value, str):
        return _ascii(value)
    if isinstance(value, bool | int | float | np.integer | np.floating | np.bool_):
        return value.item() if isinstance(value, np.generic) else value
    return _ascii(json.dumps(value, default=str))


def _meta_header(meta: SpectrumMeta, header: fits.Header, *, medium_keyword: bool = True) -> None:
    """Add the standard metadata keywords of ``meta`` to ``header``."""
    cards: list[tuple[str, Any, str]] = [
        ("OBSID", meta.id, "identifier of the spectrum"),
        ("OBJECT", meta.target, "target name"),
        ("RA", meta.ra, "[deg] ICRS right ascension"),
        ("DEC", meta.dec, "[deg] ICRS declination"),
    ]
    if meta.ra is not None and meta.dec is not None:
        cards += [("RADESYS", "ICRS", "reference system of RA, DEC"),
                  ("EQUINOX", 2000.0, "equinox of RA, DEC")]
    if meta.mjd is not None:
        cards += [("MJD-OBS", meta.mjd, "[d] time of observation, MJD"),
                  ("DATE-OBS", Time(meta.mjd, format="mjd", scale="utc").isot,
                   "time of observation, UTC")]
    cards += [
        ("EXPTIME", meta.exposure, "[s] exposure time"),
        ("INSTRUME", meta.instrument, "instrument"),
        ("TELESCOP", meta.telescope, "telescope"),
        ("BUNIT", meta.flux_unit or None, "unit of the flux"),
    ]
    if medium_keyword:
        cards.append(("AIRORVAC", meta.medium, "wavelengths in air or vacuum"))
    if meta.frame is not None:
        cards.append(("SPECSYS", SPECSYS[meta.frame], "reference frame of the wavelengths"))
    for key, value, comment in cards:
        if value is not None:
            header[key] = (_card_value(value), comment)
    _extra_header(meta.extra, header)


def _extra_header(extra: dict[str, Any], header: fits.Header) -> None:
    """Write ``meta.extra``: short keys as keywords, others as HIERARCH cards."""
    for key, value in extra.items():
        if value is None:
            continue
        name = _ascii(str(key)).upper()
        if _KEYWORD.match(name) and name not in header:
            header[name] = _card_value(value)
        else:
            header[f"HIERARCH {name.replace('=', '_')}"] = _card_value(value)


# FITS binary table --------------------------------------------------------------


def write_fits_table(spectrum: Spectrum, path: PathLike) -> Path:
    """Write ``spectrum`` as a FITS binary table (layout ``fits-table``).

    The first extension (EXTNAME ``SPECTRUM``) has float64 columns ``WAVE``
    (TUNIT ``Angstrom``), ``FLUX`` (TUNIT the flux unit, when known) and,
    when the spectrum has errors, ``ERR``.  The metadata keywords (OBJECT,
    RA, DEC, MJD-OBS, EXPTIME, INSTRUME, TELESCOP, BUNIT, AIRORVAC, SPECSYS,
    OBSID and ``meta.extra``) are in the primary header and repeated in the
    table header.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum; samples are written as they are.
    path : str or os.PathLike
        File to write (replaced when it exists).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    unit = spectrum.meta.flux_unit or None
    columns = [
        fits.Column(name="WAVE", format="D", unit="Angstrom", array=spectrum.wavelength),
        fits.Column(name="FLUX", format="D", unit=unit, array=spectrum.flux),
    ]
    if spectrum.error is not None:
        columns.append(fits.Column(name="ERR", format="D", unit=unit, array=spectrum.error))
    table = fits.BinTableHDU.from_columns(columns, name="SPECTRUM")
    primary = fits.PrimaryHDU()
    _meta_header(spectrum.meta, primary.header)
    _meta_header(spectrum.meta, table.header)
    target = Path(path)
    fits.HDUList([primary, table]).writeto(target, overwrite=True)
    return target


# FITS 1D image ------------------------------------------------------------------


def write_fits_image(spectrum: Spectrum, path: PathLike, *, scale: Scale = "linear") -> Path:
    """Write ``spectrum`` as a FITS 1D image with a wavelength WCS.

    The flux is the float64 primary image; the error, when present, is a
    float64 image extension ``ERROR`` on the same grid.  Pixel ``p`` (FITS,
    1-based, ``CRPIX1 = 1`` at the first sample) has the wavelength:

    ``scale="linear"`` (layout ``fits-image-linear``)
        ``CTYPE1 = 'WAVE'``, ``CUNIT1 = 'Angstrom'``:
        ``lambda = CRVAL1 + CDELT1 * (p - CRPIX1)``.
    ``scale="log10"`` (layout ``fits-image-log10``)
        IRAF/SDSS convention ``DC-FLAG = 1``, ``CTYPE1 = 'LINEAR'``; CRVAL1 and
        CDELT1 (also CD1_1) are in log10(Angstrom):
        ``lambda = 10 ** (CRVAL1 + CDELT1 * (p - CRPIX1))``.
    ``scale="ln"`` (layout ``fits-image-ln``)
        FITS WCS paper III (Greisen et al. 2006) ``-LOG`` algorithm,
        ``CTYPE1 = 'WAVE-LOG'``, ``CUNIT1 = 'Angstrom'``:
        ``lambda = CRVAL1 * exp(CDELT1 * (p - CRPIX1) / CRVAL1)``.

    A spectrum that is not on a uniform grid in ``scale`` is first resampled
    with :func:`resample_to_uniform_grid` (same number of pixels and end
    wavelengths, :func:`numpy.interp`); the file then holds the resampled
    values.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum, at least two samples.
    path : str or os.PathLike
        File to write (replaced when it exists).
    scale : {'linear', 'log10', 'ln'}
        Which uniform grid and header convention to use.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    on_grid = resample_to_uniform_grid(spectrum, scale)
    wave = on_grid.wavelength
    n = wave.size
    primary = fits.PrimaryHDU(on_grid.flux.astype(np.float64))
    header = primary.header
    if scale == "linear":
        header["CTYPE1"] = ("WAVE", "wavelength, linear")
        header["CUNIT1"] = ("Angstrom", "unit of CRVAL1, CDELT1")
        header["CRPIX1"] = (1.0, "reference pixel (1-based)")
        header["CRVAL1"] = (float(wave[0]), "[Angstrom] wavelength at CRPIX1")
        header["CDELT1"] = (float((wave[-1] - wave[0]) / (n - 1)), "[Angstrom] per pixel")
    elif scale == "log10":
        start = math.log10(float(wave[0]))
        step = (math.log10(float(wave[-1])) - start) / (n - 1)
        header["CTYPE1"] = ("LINEAR", "log10(wavelength) linear in pixel, see DC-FLAG")
        header["CRPIX1"] = (1.0, "reference pixel (1-based)")
        header["CRVAL1"] = (start, "log10(wavelength/Angstrom) at CRPIX1")
        header["CDELT1"] = (step, "log10(wavelength/Angstrom) per pixel")
        header["CD1_1"] = (step, "log10(wavelength/Angstrom) per pixel")
        header["DC-FLAG"] = (1, "dispersion is log10-linear")
        header["WAT0_001"] = "system=equispec"
        header["WAT1_001"] = "wtype=linear label=Wavelength units=angstroms"
    elif scale == "ln":
        start = float(wave[0])
        dln = (math.log(float(wave[-1])) - math.log(start)) / (n - 1)
        header["CTYPE1"] = ("WAVE-LOG", "wavelength, logarithmic (WCS paper III)")
        header["CUNIT1"] = ("Angstrom", "unit of CRVAL1, CDELT1")
        header["CRPIX1"] = (1.0, "reference pixel (1-based)")
        header["CRVAL1"] = (start, "[Angstrom] wavelength at CRPIX1")
        header["CDELT1"] = (start * dln, "[Angstrom] CRVAL1 * dln(lambda) per pixel")
    else:
        raise ValueError(f"unknown scale {scale!r}; use 'linear', 'log10' or 'ln'")
    _meta_header(on_grid.meta, header)
    hdus: list[fits.PrimaryHDU | fits.ImageHDU] = [primary]
    if on_grid.error is not None:
        hdus.append(fits.ImageHDU(on_grid.error.astype(np.float64), name="ERROR"))
    target = Path(path)
    fits.HDUList(hdus).writeto(target, overwrite=True)
    return target


# LAMOST ---------------------------------------------------------------------------


def lamost_designation(ra: float, dec: float) -> str:
    """LAMOST-style designation ``J HHMMSS.ss+DDMMSS.s`` of an ICRS position (degrees).

    Parameters
    ----------
    ra, dec : float
        Position in degrees.

    Returns
    -------
    str
        For example ``"J012345.67+123456.7"`` (truncated, not rounded, as in
        IAU designations).
    """
    total = (ra % 360.0) / 15.0 * 3600.0
    hours, rest = divmod(total, 3600.0)
    minutes, seconds = divmod(rest, 60.0)
    sec_ra = math.floor(seconds * 100) / 100
    sign = "-" if dec < 0 else "+"
    total = abs(dec) * 3600.0
    degrees, rest = divmod(total, 3600.0)
    arcmin, arcsec = divmod(rest, 60.0)
    sec_dec = math.floor(arcsec * 10) / 10
    return (f"J{int(hours):02d}{int(minutes):02d}{sec_ra:05.2f}"
            f"{sign}{int(degrees):02d}{int(arcmin):02d}{sec_dec:04.1f}")


#: Bit set in the LAMOST-like and/or masks where a pixel has no data.
NODATA_MASK = 1 << 5


def write_lamost(spectrum: Spectrum, path: PathLike) -> Path:
    """Write ``spectrum`` like a LAMOST DR spectrum (layout ``lamost``).

    The primary HDU is a float32 image of 5 rows and N columns, as in LAMOST
    low-resolution data releases: row 1 flux, row 2 inverse variance
    (``1 / error**2``; 0 where the error or flux is missing or there is no
    error at all), row 3 vacuum wavelength in Angstrom, rows 4 and 5 the
    and-mask and or-mask (0, or ``NODATA_MASK`` where a pixel has no data;
    its flux is then 0).  The wavelengths are log10-uniform: ``COEFF0`` and
    ``COEFF1`` (repeated as ``CRVAL1``/``CD1_1`` with ``CRPIX1 = 1`` and
    ``DC-FLAG = 1``) give ``lambda = 10 ** (COEFF0 + COEFF1 * i)`` for the
    0-based column ``i``.  Use them rather than row 3, which float32 rounds
    to about 5e-4 Angstrom.

    Air wavelengths are converted to vacuum first
    (:func:`vo.spectra.media.air_to_vacuum`), and a spectrum that is not
    log10-uniform is resampled with :func:`resample_to_uniform_grid`.

    Header: OBSID, DESIG, OBJNAME/OBJECT, RA, DEC, MJD (the float MJD of the
    spectrum), MJD-OBS, EXPTIME, TELESCOP, INSTRUME, BUNIT, VACUUM = T,
    AIRORVAC = 'vacuum', SPECSYS, and ``meta.extra``.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum, at least two samples.
    path : str or os.PathLike
        File to write (replaced when it exists).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    meta = spectrum.meta
    if meta.medium == "air":
        spectrum = Spectrum(air_to_vacuum(spectrum.wavelength), spectrum.flux,
                            spectrum.error, meta)
    on_grid = resample_to_uniform_grid(spectrum, "log10")
    wave = on_grid.wavelength
    n = wave.size
    flux = on_grid.flux.copy()
    if on_grid.error is None:
        ivar = np.zeros(n)
        missing = ~np.isfinite(flux)
    else:
        error = on_grid.error
        missing = ~np.isfinite(flux) | ~np.isfinite(error) | (error <= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = np.where(missing, 0.0, 1.0 / error**2)
    flux[missing] = 0.0
    mask = np.where(missing, NODATA_MASK, 0).astype(np.float64)
    data = np.vstack([flux, ivar, wave, mask, mask]).astype(np.float32)

    primary = fits.PrimaryHDU(data)
    header = primary.header
    coeff0 = math.log10(float(wave[0]))
    coeff1 = (math.log10(float(wave[-1])) - coeff0) / (n - 1)
    if meta.id is not None:
        header["OBSID"] = (int(meta.id) if meta.id.isdigit() else _ascii(meta.id),
                           "unique observation identifier")
    if meta.ra is not None and meta.dec is not None:
        header["DESIG"] = (f"LAMOST {lamost_designation(meta.ra, meta.dec)}",
                           "designation of the target")
    if meta.target is not None:
        header["OBJNAME"] = (_ascii(meta.target), "name of the object")
    header["ROW1"] = "flux"
    header["ROW2"] = "inverse variance"
    header["ROW3"] = "wavelength (vacuum, Angstrom)"
    header["ROW4"] = "andmask"
    header["ROW5"] = "ormask"
    if meta.mjd is not None:
        header["MJD"] = (float(meta.mjd), "[d] modified Julian day of the observation")
    header["VACUUM"] = (True, "wavelengths are in vacuum")
    header["COEFF0"] = (coeff0, "log10(wavelength/Angstrom) of the first pixel")
    header["COEFF1"] = (coeff1, "log10(wavelength/Angstrom) per pixel")
    header["CRPIX1"] = (1.0, "reference pixel (1-based)")
    header["CRVAL1"] = (coeff0, "log10(wavelength/Angstrom) at CRPIX1")
    header["CD1_1"] = (coeff1, "log10(wavelength/Angstrom) per pixel")
    header["DC-FLAG"] = (1, "dispersion is log10-linear")
    vacuum_meta = SpectrumMeta(**{**vars(meta), "medium": "vacuum", "id": None,
                                  "extra": {}})
    _meta_header(vacuum_meta, header)
    _extra_header(meta.extra, header)
    target = Path(path)
    fits.HDUList([primary]).writeto(target, overwrite=True)
    return target


# VOTable ------------------------------------------------------------------------


def _param(votable: vot.VOTableFile, name: str, value: Any, *, ucd: str | None = None,
           utype: str | None = None, unit: str | None = None) -> vot.Param:
    """A PARAM holding a scalar (or a 2-vector of doubles)."""
    if isinstance(value, bool | np.bool_):
        datatype, arraysize, value = "boolean", None, bool(value)
    elif isinstance(value, int | np.integer):
        datatype, arraysize, value = "long", None, int(value)
    elif isinstance(value, float | np.floating):
        datatype, arraysize, value = "double", None, float(value)
    elif isinstance(value, tuple | list) and all(isinstance(v, float | int) for v in value):
        datatype, arraysize, value = "double", str(len(value)), [float(v) for v in value]
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        datatype = "char" if text.isascii() else "unicodeChar"
        arraysize, value = "*", text
    return vot.Param(votable, name=name, datatype=datatype, arraysize=arraysize,
                     value=value, ucd=ucd, utype=utype, unit=unit)


def write_votable(spectrum: Spectrum, path: PathLike) -> Path:
    """Write ``spectrum`` as a VOTable in the SSA / Spectrum DM style (layout ``votable``).

    One RESOURCE (``type="results"``, utype ``spec:Spectrum``) holds one
    TABLE with the FIELDs

    ==========  ===========================  ====================================
    name        ucd                          utype
    ==========  ===========================  ====================================
    WAVE        em.wl (unit Angstrom)        spec:Data.SpectralAxis.Value
    FLUX        phot.flux.density            spec:Data.FluxAxis.Value
    ERR         stat.error;phot.flux.density spec:Data.FluxAxis.Accuracy.StatError
    ==========  ===========================  ====================================

    (ERR only with errors; the flux unit on FLUX and ERR when known) and
    PARAMs for the target (``spec:Target.Name``), position
    (``spec:Char.SpatialAxis.Coverage.Location.Value``, plus RA and DEC),
    time (``spec:Char.TimeAxis.Coverage.Location.Value``, MJD), exposure,
    dataset id, instrument, telescope, medium (``AIRORVAC``), frame
    (``spec:CoordSys.SpectralFrame.RefPos``) and one PARAM per
    ``meta.extra`` entry.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum; samples are written as they are.
    path : str or os.PathLike
        File to write (replaced when it exists).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    meta = spectrum.meta
    votable = vot.VOTableFile(version="1.4")
    resource = vot.Resource(type="results", utype="spec:Spectrum")
    votable.resources.append(resource)
    table = vot.TableElement(votable, name="spectrum", utype="spec:Spectrum")
    resource.tables.append(table)

    params: list[vot.Param] = []

    def add(name: str, value: Any, **kwargs: Any) -> None:
        if value is not None:
            params.append(_param(votable, name, value, **kwargs))

    add("DatasetID", meta.id, ucd="meta.id;meta.dataset", utype="spec:DataID.DatasetID")
    add("Target", meta.target, ucd="meta.id;src", utype="spec:Target.Name")
    if meta.ra is not None and meta.dec is not None:
        add("Position", [meta.ra, meta.dec], ucd="pos.eq", unit="deg",
            utype="spec:Char.SpatialAxis.Coverage.Location.Value")
        add("RA", float(meta.ra), ucd="pos.eq.ra;meta.main", unit="deg")
        add("DEC", float(meta.dec), ucd="pos.eq.dec;meta.main", unit="deg")
    if meta.mjd is not None:
        add("MJD", float(meta.mjd), ucd="time.epoch", unit="d",
            utype="spec:Char.TimeAxis.Coverage.Location.Value")
    if meta.exposure is not None:
        add("Exposure", float(meta.exposure), ucd="time.duration;obs.exposure", unit="s",
            utype="spec:Char.TimeAxis.Coverage.Bounds.Extent")
    add("Instrument", meta.instrument, ucd="meta.id;instr", utype="spec:DataID.Instrument")
    add("Telescope", meta.telescope, ucd="instr.tel")
    add("AIRORVAC", meta.medium, ucd="meta.code;em.wl")
    if meta.frame is not None:
        add("SpectralFrame", REFPOS[meta.frame], ucd="meta.code;em.wl",
            utype="spec:CoordSys.SpectralFrame.RefPos")
    for key, value in meta.extra.items():
        add(str(key), value)
    table.params.extend(params)

    unit = _vounit(meta.flux_unit)
    with warnings.catch_warnings():
        # "Angstrom" is a deprecated VOUnit, yet what SSA services and clients use.
        warnings.simplefilter("ignore", UnitsWarning)
        fields = _votable_fields(votable, unit, spectrum.error is not None)
    table.fields.extend(fields)
    table.create_arrays(len(spectrum))
    table.array["WAVE"] = spectrum.wavelength
    table.array["FLUX"] = spectrum.flux
    if spectrum.error is not None:
        table.array["ERR"] = spectrum.error
    target = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        votable.to_xml(str(target))
    return target


def _vounit(unit: str) -> str | None:
    """``unit`` as a VOUnit string (as given when astropy cannot parse it)."""
    if not unit:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        try:
            return str(Unit(unit).to_string("vounit"))
        except ValueError:
            return unit


def _votable_fields(votable: vot.VOTableFile, unit: str | None,
                    with_error: bool) -> list[vot.Field]:
    """The WAVE, FLUX (and ERR) FIELDs of a Spectrum DM table."""
    fields = [
        vot.Field(votable, name="WAVE", datatype="double", unit="Angstrom", ucd="em.wl",
                  utype="spec:Data.SpectralAxis.Value"),
        vot.Field(votable, name="FLUX", datatype="double", unit=unit, ucd="phot.flux.density",
                  utype="spec:Data.FluxAxis.Value"),
    ]
    if with_error:
        fields.append(vot.Field(votable, name="ERR", datatype="double", unit=unit,
                                ucd="stat.error;phot.flux.density",
                                utype="spec:Data.FluxAxis.Accuracy.StatError"))
    return fields


# CSV --------------------------------------------------------------------------------


def write_csv(spectrum: Spectrum, path: PathLike) -> Path:
    """Write ``spectrum`` as CSV with commented metadata (layout ``csv``).

    The file starts with ``# key: value`` lines (``id``, ``target``, ``ra``,
    ``dec`` in degrees, ``mjd``, ``exposure`` in seconds, ``instrument``,
    ``telescope``, ``flux_unit``, ``medium``, ``frame``; unknown ones left out;
    each ``meta.extra`` entry as ``# extra.KEY: VALUE`` with a JSON value),
    then the column line ``wavelength_angstrom,flux[,error]`` and one line
    per sample (``repr`` precision, ``nan`` for missing values).  Read it
    with ``astropy.io.ascii.read(path, format="csv")`` or with
    :func:`numpy.loadtxt` skipping the comment lines and the column line.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum; samples are written as they are.
    path : str or os.PathLike
        File to write (replaced when it exists).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    meta = spectrum.meta
    lines = ["# vocloud spectrum"]
    for key in ("id", "target", "ra", "dec", "mjd", "exposure", "instrument", "telescope",
                "flux_unit", "medium", "frame"):
        value = getattr(meta, key)
        if value is not None and value != "":
            lines.append(f"# {key}: {value}")
    for key, value in meta.extra.items():
        lines.append(f"# extra.{key}: {json.dumps(value, default=str)}")
    columns = [spectrum.wavelength, spectrum.flux]
    names = ["wavelength_angstrom", "flux"]
    if spectrum.error is not None:
        columns.append(spectrum.error)
        names.append("error")
    lines.append(",".join(names))
    data = np.column_stack(columns)
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in data)
    target = Path(path)
    target.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")
    return target


#: The layout names :func:`write_spectrum` accepts.
LAYOUTS = ("fits-table", "fits-image-linear", "fits-image-log10", "fits-image-ln", "lamost",
           "votable", "csv")
#: File name extension for each layout.
EXTENSIONS = {"fits-table": ".fits", "fits-image-linear": ".fits", "fits-image-log10": ".fits",
              "fits-image-ln": ".fits", "lamost": ".fits", "votable": ".xml", "csv": ".csv"}


def write_spectrum(spectrum: Spectrum, path: PathLike, layout: str) -> Path:
    """Write ``spectrum`` in the named layout.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum.
    path : str or os.PathLike
        File to write (replaced when it exists).
    layout : str
        One of :data:`LAYOUTS`.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For an unknown layout.
    """
    if layout == "fits-table":
        return write_fits_table(spectrum, path)
    if layout == "fits-image-linear":
        return write_fits_image(spectrum, path, scale="linear")
    if layout == "fits-image-log10":
        return write_fits_image(spectrum, path, scale="log10")
    if layout == "fits-image-ln":
        return write_fits_image(spectrum, path, scale="ln")
    if layout == "lamost":
        return write_lamost(spectrum, path)
    if layout == "votable":
        return write_votable(spectrum, path)
    if layout == "csv":
        return write_csv(spectrum, path)
    raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
