"""Every layout the writers produce is read back by ``read_spectrum`` as the same spectrum.

The demo collection covers all layouts (FITS table, FITS images with linear,
log10 and natural-log wavelength scales, LAMOST rows, VOTable, CSV), so
writing it and reading each file back checks readers and writers against
each other: wavelengths, flux, error, and the metadata the catalogue needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vo.spectra.demo import generate_collection, plan_layouts, write_collection
from vo.spectra.readers import read_spectrum
from vo.spectra.writers import LAYOUTS, resample_to_uniform_grid

#: LAMOST stores rows as float32, like the real archive.
_FLOAT32_RTOL = 1e-6


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    spectra = generate_collection(16, seed=11)
    paths = write_collection(tmp_path_factory.mktemp("demo"), spectra)
    return list(zip(spectra, paths, plan_layouts(spectra), strict=True))


def test_collection_covers_every_layout(written) -> None:  # type: ignore[no-untyped-def]
    """The round trip below exercises every layout the writers know."""
    assert {layout for _, _, layout in written} == set(LAYOUTS)


@pytest.mark.parametrize("index", range(16))
def test_read_back_equals_written(written, index: int) -> None:  # type: ignore[no-untyped-def]
    """Wavelengths, flux, error and catalogue metadata survive a write and a read."""
    original, path, layout = written[index]
    (read,) = read_spectrum(Path(path))
    expected = original
    if layout.startswith("fits-image") or layout == "lamost":
        scale = {"fits-image-linear": "linear", "fits-image-log10": "log10",
                 "fits-image-ln": "ln", "lamost": "log10"}[layout]
        expected = resample_to_uniform_grid(original, scale)  # type: ignore[arg-type]
    rtol = _FLOAT32_RTOL if layout == "lamost" else 1e-9
    np.testing.assert_allclose(read.wavelength, expected.wavelength, rtol=1e-9)
    np.testing.assert_allclose(read.flux, expected.flux, rtol=rtol * 100, atol=1e-4)
    assert read.error is not None and expected.error is not None
    np.testing.assert_allclose(read.error, expected.error, rtol=rtol * 100, atol=1e-4)
    assert read.meta.target == original.meta.target
    assert read.meta.ra == pytest.approx(original.meta.ra, abs=1e-6)
    assert read.meta.dec == pytest.approx(original.meta.dec, abs=1e-6)
    assert read.meta.mjd == pytest.approx(original.meta.mjd, abs=1e-5)
    assert read.meta.medium == original.meta.medium
