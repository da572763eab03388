"""Conversion of wavelengths between air and vacuum.

Ground-based archives usually give wavelengths in standard air, LAMOST and
space missions in vacuum; at H-alpha the two differ by about 1.8 Angstrom,
so spectra are brought to one medium before they are compared.

The refractive index of standard air (dry air, 15 C, 101 325 Pa, 450 ppm
CO2) is the one of Morton (2000, ApJS 130, 403, eq. 8), which follows
Birch & Downs (1994, Metrologia 31, 315) as adopted by the IAU and used by
VALD and SDSS::

    s = 1e4 / lambda_vac                      (lambda_vac in Angstrom, s in 1/um)
    n = 1 + 8.34254e-5 + 2.406147e-2 / (130 - s**2) + 1.5998e-4 / (38.9 - s**2)
    lambda_air = lambda_vac / n

The inverse (air to vacuum) is solved by fixed-point iteration of the same
formula, ``lambda_vac = lambda_air * n(lambda_vac)``, so that the two
functions are exact inverses of each other (round trip well below 1e-6
Angstrom) rather than two approximations that disagree slightly.  The
formula is meant for wavelengths above 2000 Angstrom.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def refractive_index_air(wavelength_vacuum: ArrayLike) -> np.ndarray:
    """Refractive index of standard air at the given vacuum wavelengths.

    Parameters
    ----------
    wavelength_vacuum : array_like
        Vacuum wavelengths in Angstrom.

    Returns
    -------
    numpy.ndarray
        The refractive index ``n`` (Morton 2000, eq. 8), float64.
    """
    s2 = (1e4 / np.asarray(wavelength_vacuum, dtype=np.float64)) ** 2
    return 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)


def vacuum_to_air(wavelength: ArrayLike) -> np.ndarray:
    """Convert vacuum wavelengths to standard air wavelengths.

    Parameters
    ----------
    wavelength : array_like
        Vacuum wavelengths in Angstrom (above 2000 Angstrom).

    Returns
    -------
    numpy.ndarray
        Air wavelengths in Angstrom, float64, same shape (0-d for a scalar).

    Examples
    --------
    >>> round(float(vacuum_to_air(6564.614)), 2)
    6562.8
    """
    vac = np.asarray(wavelength, dtype=np.float64)
    return vac / refractive_index_air(vac)


def air_to_vacuum(wavelength: ArrayLike) -> np.ndarray:
    """Convert standard air wavelengths to vacuum wavelengths.

    Parameters
    ----------
    wavelength : array_like
        Air wavelengths in Angstrom (above 2000 Angstrom).

    Returns
    -------
    numpy.ndarray
        Vacuum wavelengths in Angstrom, float64, same shape (0-d for a
        scalar); ``vacuum_to_air(air_to_vacuum(x))`` gives back ``x`` to
        better than 1e-9 Angstrom.

    Examples
    --------
    >>> round(float(air_to_vacuum(6562.80)), 2)
    6564.61
    """
    air = np.asarray(wavelength, dtype=np.float64)
    vac = air * refractive_index_air(air)
    # n depends only weakly on wavelength: each step gains ~4 digits.
    for _ in range(4):
        vac = air * refractive_index_air(vac)
    return vac
