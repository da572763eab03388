"""The canonical spectrum every reader returns and every job consumes.

Wavelengths are float64 in Angstrom, in increasing order; flux and error are
float64 arrays of the same length, NaN where there is no data (for example
LAMOST pixels with inverse variance 0).  Metadata keeps what archives need
for the catalogue (ObsCore-shaped: position in degrees, time in MJD) and
what preprocessing needs to compare spectra: the wavelength *medium* (air or
vacuum: LAMOST is vacuum, most ground archives air, about 1.8 Angstrom apart
at H-alpha) and the *frame* of the wavelengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import astropy.units as u
import numpy as np

Medium = Literal["air", "vacuum"]
Frame = Literal["topocentric", "heliocentric", "barycentric"]


@dataclass
class SpectrumMeta:
    """What is known about a spectrum besides its samples.

    Attributes
    ----------
    id : str, optional
        Identifier given by the source (archive obsid, file name stem...).
    target : str, optional
        Name of the observed object.
    ra, dec : float, optional
        ICRS position in degrees.
    mjd : float, optional
        Mid-exposure (or start) time, Modified Julian Date.
    exposure : float, optional
        Exposure time in seconds.
    instrument, telescope : str, optional
        Where the spectrum comes from.
    flux_unit : str
        Unit of ``flux`` and ``error`` as an astropy unit string ("" when
        relative or unknown).
    medium : {'air', 'vacuum'}, optional
        Medium the wavelengths are measured in; None when the file does not say.
    frame : {'topocentric', 'heliocentric', 'barycentric'}, optional
        Rest frame of the wavelengths; None when unknown.
    source : str
        The file (or URL) the spectrum was read from.
    layout : str
        Which reader layout recognised the file (for example ``"fits-image-wcs"``).
    extra : dict
        Further header values worth keeping (string keys, JSON-able values).
    """

    id: str | None = None
    target: str | None = None
    ra: float | None = None
    dec: float | None = None
    mjd: float | None = None
    exposure: float | None = None
    instrument: str | None = None
    telescope: str | None = None
    flux_unit: str = ""
    medium: Medium | None = None
    frame: Frame | None = None
    source: str = ""
    layout: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Spectrum:
    """One spectrum: wavelength (Angstrom), flux, optional error, metadata.

    The constructor checks shapes and sorts by wavelength, so every
    spectrum in vocloud satisfies the same invariants.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray | None = None
    meta: SpectrumMeta = field(default_factory=SpectrumMeta)

    def __post_init__(self) -> None:
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64).ravel()
        self.flux = np.asarray(self.flux, dtype=np.float64).ravel()
        if self.error is not None:
            self.error = np.asarray(self.error, dtype=np.float64).ravel()
        n = self.wavelength.size
        if self.flux.size != n or (self.error is not None and self.error.size != n):
            raise ValueError(
                f"wavelength ({n}), flux ({self.flux.size}) and error "
                f"({None if self.error is None else self.error.size}) differ in length")
        if n and np.any(np.diff(self.wavelength) < 0):
            order = np.argsort(self.wavelength, kind="stable")
            self.wavelength = self.wavelength[order]
            self.flux = self.flux[order]
            if self.error is not None:
                self.error = self.error[order]

    def __len__(self) -> int:
        return int(self.wavelength.size)

    @property
    def spectral_axis(self) -> u.Quantity:
        """The wavelengths as an astropy Quantity in Angstrom."""
        return self.wavelength * u.AA

    @property
    def flux_quantity(self) -> u.Quantity:
        """The flux as an astropy Quantity in ``meta.flux_unit``."""
        return self.flux * u.Unit(self.meta.flux_unit or "")
