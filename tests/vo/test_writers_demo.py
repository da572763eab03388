"""Spectrum writers, the synthetic demo collection and ``vocloud demo-data``.

Every written file is read back with astropy or numpy only (not with
vocloud's readers), so the files are checked against independent parsers.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import ascii as astropy_ascii
from astropy.io import fits
from astropy.io.votable import parse
from astropy.units import UnitsWarning
from astropy.wcs import WCS
from click.testing import CliRunner

from uws_service.cli import main
from vo.spectra.demo import CLASSES, HALPHA_AIR, generate_collection, plan_layouts, write_collection
from vo.spectra.media import air_to_vacuum, vacuum_to_air
from vo.spectra.model import Spectrum, SpectrumMeta
from vo.spectra.writers import (
    LAYOUTS,
    NODATA_MASK,
    resample_to_uniform_grid,
    write_csv,
    write_fits_image,
    write_fits_table,
    write_lamost,
    write_votable,
)

WAVE_TOL = 1e-6  # Angstrom


def _meta(**changes: object) -> SpectrumMeta:
    values: dict[str, object] = dict(
        id="spec-1", target="HD 12345", ra=83.8221, dec=-5.3911, mjd=58000.25,
        exposure=1200.0, instrument="CCD700", telescope="Ondřejov 2m", flux_unit="erg/(s cm2 AA)",
        medium="air", frame="heliocentric", extra={"class": "single-peak", "rv_kms": 12.5})
    values.update(changes)
    return SpectrumMeta(**values)  # type: ignore[arg-type]


@pytest.fixture
def linear() -> Spectrum:
    """A spectrum on a uniform linear grid with errors."""
    wave = 6250.0 + 0.25 * np.arange(401)
    flux = 1.0 + np.exp(-0.5 * ((wave - 6300.0) / 3.0) ** 2)
    return Spectrum(wave, flux, 0.01 * np.sqrt(flux), _meta())


@pytest.fixture
def irregular() -> Spectrum:
    """A spectrum on a non-uniform grid (needs resampling for images)."""
    rng = np.random.default_rng(3)
    wave = np.sort(6400.0 + 200.0 * rng.random(300))
    flux = 1.0 + 0.001 * (wave - 6500.0) + 0.5 * np.exp(-0.5 * ((wave - 6500.0) / 5.0) ** 2)
    return Spectrum(wave, flux, np.full(wave.size, 0.02), _meta(medium="vacuum"))


# air and vacuum -------------------------------------------------------------------


def test_air_vacuum_halpha() -> None:
    assert float(air_to_vacuum(6562.80)) == pytest.approx(6564.61, abs=0.005)
    assert float(vacuum_to_air(6564.61)) == pytest.approx(6562.80, abs=0.005)


def test_air_vacuum_roundtrip() -> None:
    air = np.linspace(3000.0, 11000.0, 5001)
    assert np.max(np.abs(vacuum_to_air(air_to_vacuum(air)) - air)) < 1e-6
    assert np.max(np.abs(air_to_vacuum(vacuum_to_air(air)) - air)) < 1e-6
    assert np.all(air_to_vacuum(air) > air)


# FITS table -------------------------------------------------------------------------


def test_fits_table_roundtrip(tmp_path: Path, linear: Spectrum) -> None:
    path = write_fits_table(linear, tmp_path / "t.fits")
    with fits.open(path) as hdul:
        table = hdul[1]
        np.testing.assert_allclose(table.data["WAVE"], linear.wavelength, rtol=0, atol=WAVE_TOL)
        np.testing.assert_array_equal(table.data["FLUX"], linear.flux)
        np.testing.assert_array_equal(table.data["ERR"], linear.error)
        assert table.columns["WAVE"].unit == "Angstrom"
        assert table.columns["FLUX"].unit == "erg/(s cm2 AA)"
        for header in (hdul[0].header, table.header):
            assert header["OBJECT"] == "HD 12345"
            assert header["RA"] == pytest.approx(83.8221)
            assert header["DEC"] == pytest.approx(-5.3911)
            assert header["MJD-OBS"] == pytest.approx(58000.25)
            assert header["EXPTIME"] == 1200.0
            assert header["INSTRUME"] == "CCD700"
            assert header["TELESCOP"] == "Ondrejov 2m"
            assert header["BUNIT"] == "erg/(s cm2 AA)"
            assert header["AIRORVAC"] == "air"
            assert header["SPECSYS"] == "HELIOCEN"
            assert header["CLASS"] == "single-peak"
            assert header["RV_KMS"] == 12.5


def test_fits_table_without_error(tmp_path: Path, linear: Spectrum) -> None:
    linear.error = None
    path = write_fits_table(linear, tmp_path / "t.fits")
    with fits.open(path) as hdul:
        assert hdul[1].columns.names == ["WAVE", "FLUX"]


# FITS images ------------------------------------------------------------------------


def _pixel_wavelengths(header: fits.Header, n: int) -> np.ndarray:
    """Wavelengths of a 1D image from its header, by the conventions' formulas."""
    p = np.arange(1, n + 1, dtype=np.float64)
    crval, cdelt, crpix = header["CRVAL1"], header["CDELT1"], header["CRPIX1"]
    if header.get("DC-FLAG") == 1:
        return np.asarray(10.0 ** (crval + cdelt * (p - crpix)))
    if header["CTYPE1"] == "WAVE-LOG":
        return np.asarray(crval * np.exp(cdelt * (p - crpix) / crval))
    return np.asarray(crval + cdelt * (p - crpix))


@pytest.mark.parametrize("scale", ["linear", "log10", "ln"])
def test_fits_image_on_grid(tmp_path: Path, linear: Spectrum, scale: str) -> None:
    expected = resample_to_uniform_grid(linear, scale)  # type: ignore[arg-type]
    if scale == "linear":
        assert expected is linear
    path = write_fits_image(linear, tmp_path / "i.fits", scale=scale)  # type: ignore[arg-type]
    with fits.open(path) as hdul:
        header = hdul[0].header
        flux = hdul[0].data
        error = hdul["ERROR"].data
        assert header["NAXIS"] == 1 and header["CRPIX1"] == 1.0
        assert header["OBJECT"] == "HD 12345" and header["AIRORVAC"] == "air"
        wave = _pixel_wavelengths(header, flux.size)
    np.testing.assert_allclose(wave, expected.wavelength, rtol=0, atol=WAVE_TOL)
    assert wave[0] == pytest.approx(linear.wavelength[0], abs=WAVE_TOL)
    assert wave[-1] == pytest.approx(linear.wavelength[-1], abs=WAVE_TOL)
    np.testing.assert_allclose(flux, expected.flux, rtol=1e-12)
    assert expected.error is not None
    np.testing.assert_allclose(error, expected.error, rtol=1e-12)
    # The resampled flux is the linear interpolation of the original.
    np.testing.assert_allclose(flux, np.interp(wave, linear.wavelength, linear.flux),
                               rtol=1e-9)


@pytest.mark.parametrize("scale", ["linear", "ln"])
def test_fits_image_wcs_agrees_with_astropy(tmp_path: Path, irregular: Spectrum,
                                            scale: str) -> None:
    path = write_fits_image(irregular, tmp_path / "i.fits", scale=scale)  # type: ignore[arg-type]
    with fits.open(path) as hdul:
        header = hdul[0].header
        n = hdul[0].data.size
    spectral = WCS(header).spectral
    world = spectral.pixel_to_world(np.arange(n))  # 0-based pixels in astropy
    astropy_wave = u.Quantity(world).to_value(u.AA)
    ours = _pixel_wavelengths(header, n)
    np.testing.assert_allclose(astropy_wave, ours, rtol=0, atol=WAVE_TOL)
    expected = resample_to_uniform_grid(irregular, scale)  # type: ignore[arg-type]
    np.testing.assert_allclose(astropy_wave, expected.wavelength, rtol=0, atol=WAVE_TOL)
    assert astropy_wave[0] == pytest.approx(irregular.wavelength[0], abs=WAVE_TOL)
    assert astropy_wave[-1] == pytest.approx(irregular.wavelength[-1], abs=WAVE_TOL)
    if scale == "ln":
        steps = np.diff(np.log(astropy_wave))
        np.testing.assert_allclose(steps, steps[0], rtol=1e-6)


def test_fits_image_resamples_irregular_grid(tmp_path: Path, irregular: Spectrum) -> None:
    path = write_fits_image(irregular, tmp_path / "i.fits", scale="log10")
    with fits.open(path) as hdul:
        header, flux = hdul[0].header, hdul[0].data
    wave = _pixel_wavelengths(header, flux.size)
    assert flux.size == len(irregular)
    np.testing.assert_allclose(np.diff(np.log10(wave)), header["CDELT1"], rtol=1e-6)
    np.testing.assert_allclose(flux, np.interp(wave, irregular.wavelength, irregular.flux),
                               rtol=1e-9)


# LAMOST -----------------------------------------------------------------------------


def test_lamost_layout(tmp_path: Path) -> None:
    spectrum = generate_collection(2, seed=5)[1]
    assert spectrum.meta.telescope == "LAMOST" and spectrum.meta.medium == "vacuum"
    assert spectrum.error is not None
    spectrum.error[10] = np.nan
    path = write_lamost(spectrum, tmp_path / "l.fits")
    with fits.open(path) as hdul:
        assert len(hdul) == 1
        header, data = hdul[0].header, hdul[0].data
    assert data.shape == (5, len(spectrum)) and data.dtype == np.dtype(">f4")
    index = np.arange(data.shape[1])
    wave = 10.0 ** (header["COEFF0"] + header["COEFF1"] * index)
    np.testing.assert_allclose(wave, spectrum.wavelength, rtol=0, atol=WAVE_TOL)
    np.testing.assert_allclose(data[2], spectrum.wavelength, rtol=1e-7)
    good = np.isfinite(spectrum.error)
    np.testing.assert_allclose(data[0][good], spectrum.flux[good], rtol=1e-6)
    np.testing.assert_allclose(data[1][good], 1.0 / spectrum.error[good] ** 2, rtol=1e-6)
    assert data[1][10] == 0.0 and data[3][10] == NODATA_MASK and data[4][10] == NODATA_MASK
    assert np.count_nonzero(data[3]) == 1
    assert header["VACUUM"] is True and header["AIRORVAC"] == "vacuum"
    assert header["OBSID"] == spectrum.meta.id
    assert header["DESIG"].startswith("LAMOST J")
    assert header["RA"] == pytest.approx(spectrum.meta.ra)
    assert header["DEC"] == pytest.approx(spectrum.meta.dec)
    assert header["MJD"] == pytest.approx(spectrum.meta.mjd)
    assert header["CLASS"] == spectrum.meta.extra["class"]
    assert header["DC-FLAG"] == 1 and header["CRVAL1"] == header["COEFF0"]


def test_lamost_converts_air_to_vacuum(tmp_path: Path, linear: Spectrum) -> None:
    path = write_lamost(linear, tmp_path / "l.fits")
    with fits.open(path) as hdul:
        header, data = hdul[0].header, hdul[0].data
    wave = 10.0 ** (header["COEFF0"] + header["COEFF1"] * np.arange(data.shape[1]))
    assert wave[0] == pytest.approx(float(air_to_vacuum(linear.wavelength[0])), abs=WAVE_TOL)
    assert wave[-1] == pytest.approx(float(air_to_vacuum(linear.wavelength[-1])), abs=WAVE_TOL)
    assert header["AIRORVAC"] == "vacuum"


def test_lamost_designation_format(tmp_path: Path, linear: Spectrum) -> None:
    path = write_lamost(linear, tmp_path / "l.fits")
    # 83.8221 deg = 05h35m17.30s, -5.3911 deg = -05d23m27.9s
    assert fits.getheader(path)["DESIG"] == "LAMOST J053517.30-052327.9"


# VOTable ----------------------------------------------------------------------------


def test_votable_roundtrip(tmp_path: Path, linear: Spectrum) -> None:
    path = write_votable(linear, tmp_path / "s.xml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        votable = parse(str(path))
    table = votable.get_first_table()
    fields = {f.name: f for f in table.fields}
    params = {p.name: p for p in table.params}
    assert fields["WAVE"].utype == "spec:Data.SpectralAxis.Value"
    assert fields["WAVE"].ucd == "em.wl"
    assert str(fields["WAVE"].unit) in ("Angstrom", "AA")
    assert fields["FLUX"].utype == "spec:Data.FluxAxis.Value"
    assert fields["FLUX"].ucd == "phot.flux.density"
    assert fields["ERR"].utype == "spec:Data.FluxAxis.Accuracy.StatError"
    assert fields["ERR"].ucd == "stat.error;phot.flux.density"
    assert u.Unit(fields["FLUX"].unit) == u.Unit("erg/(s cm2 AA)")
    assert params["Telescope"].value == "Ondřejov 2m"
    data = table.array
    np.testing.assert_allclose(np.asarray(data["WAVE"]), linear.wavelength, rtol=0,
                               atol=WAVE_TOL)
    np.testing.assert_array_equal(np.asarray(data["FLUX"]), linear.flux)
    np.testing.assert_array_equal(np.asarray(data["ERR"]), linear.error)
    assert params["Target"].value == "HD 12345"
    assert params["Target"].utype == "spec:Target.Name"
    position = params["Position"]
    assert position.utype == "spec:Char.SpatialAxis.Coverage.Location.Value"
    np.testing.assert_allclose(np.asarray(position.value), [83.8221, -5.3911])
    assert params["MJD"].value == pytest.approx(58000.25)
    assert params["MJD"].utype == "spec:Char.TimeAxis.Coverage.Location.Value"
    assert params["Exposure"].value == pytest.approx(1200.0)
    assert params["AIRORVAC"].value == "air"
    assert params["SpectralFrame"].value == "HELIOCENTER"
    assert params["class"].value == "single-peak"
    assert params["rv_kms"].value == pytest.approx(12.5)


# CSV ----------------------------------------------------------------------------------


def test_csv_roundtrip(tmp_path: Path, linear: Spectrum) -> None:
    path = write_csv(linear, tmp_path / "s.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [line for line in lines if line.startswith("#")]
    assert "# target: HD 12345" in comments
    assert "# medium: air" in comments
    assert '# extra.class: "single-peak"' in comments
    assert lines[len(comments)] == "wavelength_angstrom,flux,error"
    data = np.loadtxt(path, delimiter=",", skiprows=len(comments) + 1)
    np.testing.assert_allclose(data[:, 0], linear.wavelength, rtol=0, atol=WAVE_TOL)
    np.testing.assert_array_equal(data[:, 1], linear.flux)
    np.testing.assert_array_equal(data[:, 2], linear.error)
    table = astropy_ascii.read(path, format="csv", comment="#")
    assert table.colnames == ["wavelength_angstrom", "flux", "error"]
    np.testing.assert_array_equal(np.asarray(table["flux"]), linear.flux)


def test_csv_without_error(tmp_path: Path, linear: Spectrum) -> None:
    linear.error = None
    path = write_csv(linear, tmp_path / "s.csv")
    table = astropy_ascii.read(path, format="csv", comment="#")
    assert table.colnames == ["wavelength_angstrom", "flux"]
    np.testing.assert_allclose(np.asarray(table["wavelength_angstrom"]), linear.wavelength,
                               rtol=0, atol=WAVE_TOL)


# demo collection ---------------------------------------------------------------------


def test_collection_deterministic() -> None:
    first, second = generate_collection(12, seed=7), generate_collection(12, seed=7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.wavelength, b.wavelength)
        np.testing.assert_array_equal(a.flux, b.flux)
        assert a.meta == b.meta
    other = generate_collection(12, seed=8)
    assert not np.array_equal(first[0].flux, other[0].flux)


def test_collection_contents() -> None:
    spectra = generate_collection(40, seed=0)
    assert [s.meta.id for s in spectra][:2] == ["demo-0001", "demo-0002"]
    assert Counter(s.meta.extra["class"] for s in spectra) == {c: 10 for c in CLASSES}
    for index, s in enumerate(spectra):
        meta, extra = s.meta, s.meta.extra
        assert s.error is not None
        assert np.all(np.isfinite(s.flux)) and np.all(np.isfinite(s.error))
        assert np.all(s.error > 0)
        assert np.all(np.diff(s.wavelength) > 0)
        step = np.median(np.diff(s.wavelength))
        assert 0.2 < step < 0.3
        if index % 2 == 0:
            assert meta.medium == "air" and meta.telescope != "LAMOST"
            assert s.wavelength[0] == pytest.approx(6250.0)
            assert s.wavelength[-1] == pytest.approx(6770.0)
        else:
            assert meta.medium == "vacuum" and meta.telescope == "LAMOST"
            assert s.wavelength[0] == pytest.approx(float(air_to_vacuum(6250.0)))
            steps = np.diff(np.log10(s.wavelength))
            np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
        assert meta.frame == "heliocentric"
        assert 0.0 <= meta.ra < 360.0 and -25.0 <= meta.dec <= 90.0  # type: ignore[operator]
        assert 55000.0 <= meta.mjd <= 60500.0  # type: ignore[operator]
        assert meta.target.startswith(("HD ", "BD+", "BD-"))  # type: ignore[union-attr]
        assert -80.0 <= extra["rv_kms"] <= 80.0
        assert 20.0 <= extra["snr"] <= 300.0
        continuum = np.median(s.flux[(s.wavelength < 6450.0)])
        assert 0.9 < continuum < 1.1
        # Measured S/N of the flat blue region is roughly the stated one.
        blue = s.flux[s.wavelength < 6400.0]
        measured = 1.0 / np.std(np.diff(blue) / math.sqrt(2.0))
        assert 0.6 < measured / extra["snr"] < 1.6
        kind = extra["class"]
        rest = HALPHA_AIR if meta.medium == "air" else float(air_to_vacuum(HALPHA_AIR))
        centre = rest * (1.0 + extra["rv_kms"] / 299792.458)
        window = np.abs(s.wavelength - centre) < 25.0
        smooth = np.convolve(s.flux, np.ones(5) / 5.0, mode="same")
        if kind in ("single-peak", "double-peak"):
            assert extra["ew"] < 0.0
            peak = s.wavelength[window][np.argmax(smooth[window])]
            tolerance = 1.0 if kind == "single-peak" else 1.0 + centre * extra["sep_kms"] / 2 / 3e5
            assert abs(peak - centre) < tolerance
            assert extra["ew"] > -45.0
        if kind == "double-peak":
            assert 50.0 <= extra["sep_kms"] <= 300.0 and 0.5 <= extra["vr"] <= 2.0
        if kind == "absorption":
            assert extra["ew"] > 0.0
            wide = np.convolve(s.flux, np.ones(21) / 21.0, mode="same")
            trough = s.wavelength[window][np.argmin(wide[window])]
            assert abs(trough - centre) < 3.0
            assert 0.2 * 0.6 < 1.0 - np.min(smooth[window]) < 0.7


def test_plan_layouts_rotation() -> None:
    spectra = generate_collection(14, seed=0)
    plan = plan_layouts(spectra)
    assert all(layout == "lamost" for layout in plan[1::2])
    assert plan[0::2] == [name for name in LAYOUTS if name != "lamost"] + ["fits-table"]
    assert set(plan) == set(LAYOUTS)
    assert plan_layouts(spectra, ["csv"]) == ["csv"] * 14
    with pytest.raises(ValueError):
        plan_layouts(spectra, ["nope"])


def test_write_collection_files_read_back(tmp_path: Path) -> None:
    spectra = generate_collection(14, seed=2)
    paths = write_collection(tmp_path / "demo", spectra)
    assert [p.name for p in paths][:3] == ["demo-0001.fits", "demo-0002.fits", "demo-0003.fits"]
    assert sorted(p.suffix for p in paths).count(".xml") == 1
    for spectrum, layout, path in zip(spectra, plan_layouts(spectra), paths, strict=True):
        assert path.is_file() and path.stat().st_size > 10000
        if path.suffix == ".fits":
            with fits.open(path) as hdul:
                if layout == "fits-table":
                    np.testing.assert_array_equal(hdul[1].data["FLUX"], spectrum.flux)
                elif layout == "lamost":
                    np.testing.assert_allclose(hdul[0].data[0], spectrum.flux, rtol=1e-6)
                else:
                    assert hdul[0].data.size == len(spectrum)


# CLI ------------------------------------------------------------------------------------


def test_cli_demo_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo-data", str(tmp_path / "out"), "--count", "14"])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 14
    assert "wrote 14 demo spectra" in result.output
    for layout in LAYOUTS:
        assert layout in result.output
    assert "lamost             7" in result.output
    again = tmp_path / "again"
    CliRunner().invoke(main, ["demo-data", str(again), "--count", "14"])
    assert (again / "demo-0003.fits").read_bytes() == (tmp_path / "out" /
                                                        "demo-0003.fits").read_bytes()
