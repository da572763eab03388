"""Reader for 1-D FITS image spectra with a wavelength WCS on axis 1.

The wavelength of pixel ``p`` (1-based, as CRPIX is) comes from:

* LAMOST ``COEFF0``/``COEFF1``: ``log10(lambda) = COEFF0 + COEFF1 * i`` (``i = p - 1``);
* ``CTYPE1`` with the ``-LOG`` algorithm (FITS WCS Paper III):
  ``lambda = CRVAL1 * exp(CDELT1 * (p - CRPIX1) / CRVAL1)``;
* ``DC-FLAG = 1`` (IRAF log-linear): ``log10(lambda) = CRVAL1 + CDELT1 * (p - CRPIX1)``;
* otherwise linear: ``lambda = CRVAL1 + CDELT1 * (p - CRPIX1)``.

``CD1_1`` takes precedence over ``CDELT1`` (times ``PC1_1``) as the standard says.
Values are in ``CUNIT1`` (or the IRAF ``WAT1_001 units=``); without a unit they
are taken as Angstrom, as archives write them, except that a ``WAVE`` axis with
values below 1e-3 is read in metres (the FITS default).  Other algorithms
(``-F2W``, ``-TAB``...) go through :mod:`astropy.wcs`.
"""

from __future__ import annotations

import re
import warnings

import astropy.units as u
import numpy as np
from astropy.io import fits

from vo.spectra.model import Spectrum
from vo.spectra.readers._common import (
    ERROR_NAMES,
    IVAR_NAMES,
    VAR_NAMES,
    LayoutMismatch,
    error_from_ivar,
    error_from_var,
    make_spectrum,
    meta_from_header,
    parse_unit,
    to_angstrom,
)

LAYOUT = "fits-image-wcs"
_SPECTRAL_PREFIXES = {"WAVE", "AWAV", "FREQ", "ENER", "WAVN"}
_NONSTANDARD_SPECTRAL = {"", "LINEAR", "WAVELENGTH", "LAMBDA", "WAVELEN", "MULTISPE"}
_DEFAULT_UNITS = {"FREQ": u.Hz, "ENER": u.eV, "WAVN": 1 / u.m}


def _float(header: fits.Header, key: str) -> float | None:
    value = header.get(key)
    if value is None or isinstance(value, bool | str):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _axis_unit(header: fits.Header, prefix: str, crval: float) -> u.UnitBase:
    text = header.get("CUNIT1")
    if isinstance(text, str) and text.strip():
        unit = parse_unit(text)
        if unit is None:
            raise LayoutMismatch(f"CUNIT1 = '{text.strip()}' not understood")
        return unit
    wat = header.get("WAT1_001")
    if isinstance(wat, str):
        m = re.search(r"units=(\S+)", wat)
        if m:
            unit = parse_unit(m.group(1))
            if unit is not None:
                return unit
    if prefix in _DEFAULT_UNITS:
        return _DEFAULT_UNITS[prefix]
    if prefix in {"WAVE", "AWAV"} and 0 < abs(crval) < 1e-3:
        return u.m
    return u.AA


def _astropy_wavelengths(header: fits.Header, n: int) -> np.ndarray:
    """Wavelengths (Angstrom) of pixels 1..n through astropy.wcs, for other algorithms."""
    from astropy.wcs import WCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=[1])
            world = wcs.wcs_pix2world(np.arange(n, dtype=np.float64), 0)[0]
            unit = u.Unit(wcs.wcs.cunit[0] or "m")
    except Exception as exc:
        raise LayoutMismatch(f"spectral WCS CTYPE1 = '{header.get('CTYPE1')}' not usable: "
                             f"{exc}") from exc
    return to_angstrom(np.asarray(world, dtype=np.float64), unit)


def wcs_wavelengths(header: fits.Header, n: int) -> np.ndarray:
    """Wavelengths in Angstrom of the ``n`` pixels of axis 1 described by ``header``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header with CRVAL1/CDELT1 (or CD1_1)/CRPIX1, DC-FLAG, CTYPE1, CUNIT1, or
        LAMOST COEFF0/COEFF1.
    n : int
        Number of pixels (NAXIS1).

    Returns
    -------
    numpy.ndarray
        float64 wavelengths in Angstrom, in pixel order.

    Raises
    ------
    LayoutMismatch
        When the header has no usable spectral solution.
    """
    c0, c1 = _float(header, "COEFF0"), _float(header, "COEFF1")
    if c0 is not None and c1 is not None:
        return np.asarray(10.0 ** (c0 + c1 * np.arange(n, dtype=np.float64)))

    ctype = str(header.get("CTYPE1", "") or "").strip().upper()
    prefix, algorithm = ctype, ""
    if len(ctype) > 4 and ctype[4] == "-":
        prefix, algorithm = ctype[:4], ctype[5:].strip("-")
    if prefix not in _SPECTRAL_PREFIXES and ctype not in _NONSTANDARD_SPECTRAL:
        raise LayoutMismatch(f"axis 1 is not a spectral axis (CTYPE1 = '{ctype}')")

    crval = _float(header, "CRVAL1")
    cdelt = _float(header, "CD1_1")
    if cdelt is None and _float(header, "CDELT1") is not None:
        cdelt = float(_float(header, "CDELT1") or 0.0) * (_float(header, "PC1_1") or 1.0)
    if crval is None or cdelt is None:
        raise LayoutMismatch("no wavelength solution (looked for CRVAL1 with CDELT1 or CD1_1, "
                             "and for COEFF0/COEFF1)")
    if cdelt == 0:
        raise LayoutMismatch("CDELT1 is 0: no wavelength solution")
    crpix = _float(header, "CRPIX1")
    crpix = 1.0 if crpix is None else crpix
    pix = np.arange(1, n + 1, dtype=np.float64)

    if algorithm == "LOG":
        if crval == 0:
            raise LayoutMismatch("CRVAL1 = 0 with the -LOG algorithm")
        values = crval * np.exp(cdelt * (pix - crpix) / crval)
        return to_angstrom(values, _axis_unit(header, prefix, crval))
    if algorithm:
        return _astropy_wavelengths(header, n)
    dcflag = header.get("DC-FLAG")
    if dcflag is not None and not isinstance(dcflag, str) and int(dcflag) == 1:
        values = 10.0 ** (crval + cdelt * (pix - crpix))
        return to_angstrom(values, _axis_unit(header, prefix, 10.0**crval))
    values = crval + cdelt * (pix - crpix)
    return to_angstrom(values, _axis_unit(header, prefix, crval))


def _error_extension(hdul: fits.HDUList, n: int) -> tuple[np.ndarray, str] | None:
    """Error array from an image extension named ERR/IVAR/VAR... of length n."""
    for hdu in hdul[1:]:
        if not isinstance(hdu, fits.ImageHDU) or hdu.data is None:
            continue
        name = str(hdu.header.get("EXTNAME", "")).strip().upper()
        if hdu.data.size != n:
            continue
        values = np.array(hdu.data, dtype=np.float64).ravel()
        if name in ERROR_NAMES:
            return values, "sigma"
        if name in IVAR_NAMES:
            return values, "ivar"
        if name in VAR_NAMES:
            return values, "var"
    return None


def spectrum_vector(data: np.ndarray) -> np.ndarray:
    """The 1-D flux vector of an image whose axes beyond the first have length 1.

    Parameters
    ----------
    data : numpy.ndarray
        Image data (numpy axis order, NAXIS1 last).

    Returns
    -------
    numpy.ndarray
        A float64 copy of the vector.

    Raises
    ------
    LayoutMismatch
        For a genuinely 2-D (or more) image.
    """
    if data.ndim == 0 or data.size == 0:
        raise LayoutMismatch("image has no pixels")
    if data.ndim > 1 and any(s != 1 for s in data.shape[:-1]):
        shape = " x ".join(str(s) for s in reversed(data.shape))
        raise LayoutMismatch(f"{data.ndim}-D image ({shape}) is not a 1-D spectrum")
    return np.array(data, dtype=np.float64).ravel()


def read_fits_image(hdu: fits.PrimaryHDU | fits.ImageHDU, hdul: fits.HDUList, *,
                    source: str, stem: str) -> list[Spectrum]:
    """Read a 1-D image spectrum with a wavelength WCS.

    Parameters
    ----------
    hdu : astropy.io.fits.PrimaryHDU or ImageHDU
        The image.
    hdul : astropy.io.fits.HDUList
        The whole file (primary header for metadata; ERR/IVAR/VAR extensions).
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
        When the image is not 1-D or has no wavelength solution.
    """
    if hdu.data is None:
        raise LayoutMismatch("no data")
    flux = spectrum_vector(hdu.data)
    wave = wcs_wavelengths(hdu.header, flux.size)
    err = None
    mask = None
    found = _error_extension(hdul, flux.size)
    if found is not None:
        values, kind = found
        if kind == "ivar":
            mask = ~(np.isfinite(values) & (values > 0))
            err = error_from_ivar(values)
        elif kind == "var":
            err = error_from_var(values)
        else:
            err = values
    headers = [hdu.header] if hdu is hdul[0] else [hdu.header, hdul[0].header]
    meta = meta_from_header(headers, source=source, layout=LAYOUT, default_id=stem)
    ctype = str(hdu.header.get("CTYPE1", "") or "").strip()
    if ctype:
        meta.extra["ctype1"] = ctype
    return [make_spectrum(wave, flux, err, meta, mask=mask)]
