"""Reader for LAMOST DR multi-row image spectra.

The primary HDU is a 2-D image of NAXIS2 = 5 rows (flux, inverse variance,
wavelength in vacuum Angstrom, andmask, ormask) by NAXIS1 pixels.  Inverse
variance 0 means no data: flux and error are NaN there.  OBSID, DESIG,
RA, DEC and MJD come from the header.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from vo.spectra.model import Spectrum
from vo.spectra.readers._common import (
    LayoutMismatch,
    error_from_ivar,
    make_spectrum,
    meta_from_header,
)

LAYOUT = "lamost-image"
ROW_FLUX, ROW_IVAR, ROW_WAVE, ROW_ANDMASK, ROW_ORMASK = range(5)


def looks_like_lamost(data: np.ndarray | None) -> bool:
    """Whether an image has the LAMOST DR row layout.

    Parameters
    ----------
    data : numpy.ndarray or None
        Image data (numpy order: rows first).

    Returns
    -------
    bool
        True for a 2-D image of 3 to 5 rows whose third row is a strictly
        increasing positive wavelength vector and whose second row (inverse
        variance) is nowhere negative.
    """
    if data is None or data.ndim != 2 or not 3 <= data.shape[0] <= 5 or data.shape[1] < 2:
        return False
    wave = np.asarray(data[ROW_WAVE], dtype=np.float64)
    ivar = np.asarray(data[ROW_IVAR], dtype=np.float64)
    if not np.isfinite(wave).all() or wave[0] <= 0:
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.diff(wave) > 0) and not np.any(ivar < 0))


def read_lamost_image(hdu: fits.PrimaryHDU | fits.ImageHDU, primary: fits.Header | None, *,
                      source: str, stem: str) -> list[Spectrum]:
    """Read a LAMOST DR 5-row image spectrum.

    Parameters
    ----------
    hdu : astropy.io.fits.PrimaryHDU or ImageHDU
        The 2-D image.
    primary : astropy.io.fits.Header or None
        The primary header when ``hdu`` is an extension.
    source : str
        The file name recorded in the metadata.
    stem : str
        Default identifier (used when there is no OBSID).

    Returns
    -------
    list of Spectrum
        One spectrum; medium 'vacuum' unless a VACUUM/AIRORVAC keyword says otherwise.

    Raises
    ------
    LayoutMismatch
        When the image does not have the LAMOST layout.
    """
    if not looks_like_lamost(hdu.data):
        raise LayoutMismatch("not a LAMOST multi-row image (needs flux, ivar, wavelength rows)")
    data = np.array(hdu.data, dtype=np.float64)
    flux, ivar, wave = data[ROW_FLUX], data[ROW_IVAR], data[ROW_WAVE]
    headers = [hdu.header] + ([primary] if primary is not None else [])
    wave = _wavelengths_from_coefficients(headers, wave)
    meta = meta_from_header(headers, source=source, layout=LAYOUT, default_id=stem)
    explicit = any(k in h for h in headers for k in ("VACUUM", "AIRORVAC"))
    if not explicit:
        meta.medium = "vacuum"
    meta.extra["rows"] = int(data.shape[0])
    if data.shape[0] > ROW_ANDMASK:
        meta.extra["andmask_pixels"] = int(np.count_nonzero(data[ROW_ANDMASK]))
    mask = ~(np.isfinite(ivar) & (ivar > 0))
    return [make_spectrum(wave, flux, error_from_ivar(ivar), meta, mask=mask)]


def _wavelengths_from_coefficients(headers: list[fits.Header], row: np.ndarray) -> np.ndarray:
    """The wavelength row recomputed from COEFF0/COEFF1 when the header has them.

    LAMOST stores the rows as float32, good to about 5e-4 Angstrom; its
    log-linear dispersion (log10 lambda = COEFF0 + COEFF1 * i, i from 0)
    is exact.  The coefficients are used only when they reproduce the
    stored row, so a header that does not belong to the data is ignored.
    """
    for header in headers:
        if "COEFF0" in header and "COEFF1" in header:
            try:
                coeff0, coeff1 = float(header["COEFF0"]), float(header["COEFF1"])
            except (TypeError, ValueError):
                return row
            exact = 10.0 ** (coeff0 + coeff1 * np.arange(row.size))
            if np.allclose(exact, row, rtol=1e-6, atol=0.01):
                return exact
            return row
    return row
