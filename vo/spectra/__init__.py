"""Spectra: the canonical in-memory spectrum, readers of the supported file layouts, writers."""

from vo.spectra.model import Spectrum, SpectrumMeta

__all__ = ["Spectrum", "SpectrumMeta"]
