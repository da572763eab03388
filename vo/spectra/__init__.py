"""Spectra: the canonical in-memory spectrum, readers of the supported file layouts, writers."""

from vo.spectra.model import Spectrum, SpectrumMeta
from vo.spectra.readers import SpectrumReadError, read_spectrum

__all__ = ["Spectrum", "SpectrumMeta", "SpectrumReadError", "read_spectrum"]
