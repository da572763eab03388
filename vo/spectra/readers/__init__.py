"""Spectrum readers: one entry point for every supported file layout.

:func:`read_spectrum` recognises the layout from the content and returns a list
of canonical :class:`~vo.spectra.model.Spectrum` objects (usually one).  The
layouts live in their own modules: :mod:`.fits_table`, :mod:`.fits_image`,
:mod:`.lamost`, :mod:`.votable` and :mod:`.ascii`; shared checks, units and
metadata in :mod:`._common`.  Anything unreadable raises
:class:`SpectrumReadError`, whose message names the file and the reason.
"""

from vo.spectra.readers._common import SpectrumReadError
from vo.spectra.readers._dispatch import SpectrumSource, read_spectrum
from vo.spectra.readers.fits_image import wcs_wavelengths

__all__ = ["SpectrumReadError", "SpectrumSource", "read_spectrum", "wcs_wavelengths"]
