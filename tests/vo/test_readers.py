"""Tests of vo.spectra.readers: every layout written with astropy, read back and checked."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable.tree import Field, Param, Resource, TableElement, VOTableFile
from astropy.time import Time
from astropy.wcs import WCS

from vo.spectra import Spectrum
from vo.spectra.readers import SpectrumReadError, SpectrumSource, read_spectrum, wcs_wavelengths

RTOL = 1e-9


def _flux(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1.0 + 0.1 * rng.standard_normal(n)


def _one(path: SpectrumSource, **kw: str) -> Spectrum:
    spectra = read_spectrum(path, **kw)
    assert len(spectra) == 1
    return spectra[0]


def _assert_in_memory(arr: np.ndarray) -> None:
    assert type(arr) is np.ndarray
    assert arr.dtype == np.float64
    assert arr.base is None or not isinstance(arr.base, np.memmap)


# --------------------------------------------------------------------------- FITS tables

def test_table_pixel_rows_nm_ivar_and_metadata(tmp_path: Path) -> None:
    wave_nm = np.linspace(625.0, 677.0, 400)
    flux = _flux(400)
    ivar = np.full(400, 4.0)
    ivar[[3, 50, 399]] = 0.0
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="WAVELENGTH", format="D", unit="nm", array=wave_nm),
        fits.Column(name="FLUX", format="D", unit="erg/s/cm2/A", array=flux),
        fits.Column(name="IVAR", format="D", array=ivar),
    ])
    primary = fits.PrimaryHDU()
    h = primary.header
    h["OBJECT"] = "HD 12345"
    h["RA"] = "01:02:03.0"
    h["DEC"] = "-10:20:30"
    h["DATE-OBS"] = "2020-01-02T03:04:05"
    h["EXPTIME"] = 600.0
    h["INSTRUME"] = "Ondrejov 2m coude"
    h["TELESCOP"] = "Perek 2m"
    h["AIRORVAC"] = "air"
    h["SPECSYS"] = "HELIOCEN"
    h["VELOSYS"] = 12345.0
    path = tmp_path / "spectrum.fits"
    fits.HDUList([primary, hdu]).writeto(path)

    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave_nm * 10.0, rtol=RTOL)
    good = ivar > 0
    np.testing.assert_allclose(s.flux[good], flux[good], rtol=RTOL)
    assert np.isnan(s.flux[~good]).all()
    assert s.error is not None
    np.testing.assert_allclose(s.error[good], 0.5, rtol=RTOL)
    assert np.isnan(s.error[~good]).all()
    m = s.meta
    assert m.layout == "fits-table"
    assert m.target == "HD 12345"
    assert m.ra == pytest.approx(15.5125, abs=1e-9)
    assert m.dec == pytest.approx(-(10 + 20 / 60 + 30 / 3600), abs=1e-9)
    assert m.mjd == pytest.approx(Time("2020-01-02T03:04:05", scale="utc").mjd, abs=1e-9)
    assert m.exposure == 600.0
    assert m.instrument == "Ondrejov 2m coude"
    assert m.telescope == "Perek 2m"
    assert m.medium == "air"
    assert m.frame == "heliocentric"
    assert m.extra["velosys"] == 12345.0
    assert u.Unit(m.flux_unit) == u.erg / u.s / u.cm**2 / u.AA
    assert m.id == "spectrum"
    assert m.source == str(path)
    _assert_in_memory(s.wavelength)
    _assert_in_memory(s.flux)


def test_table_sdss_like_loglam_array_cells(tmp_path: Path) -> None:
    loglam = np.log10(3800.0) + 1e-4 * np.arange(3000)
    flux = _flux(3000)
    ivar = np.full(3000, 25.0)
    ivar[:10] = 0
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name="flux", format="3000E", array=flux[None, :].astype(np.float32)),
        fits.Column(name="loglam", format="3000D", array=loglam[None, :]),
        fits.Column(name="ivar", format="3000E", array=ivar[None, :].astype(np.float32)),
    ], name="COADD")
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "SDSS 2.5-M"
    primary.header["PLUG_RA"] = 180.5
    primary.header["PLUG_DEC"] = 12.25
    primary.header["MJD"] = 55000
    primary.header["BUNIT"] = "1E-17 erg/cm^2/s/Angstrom"
    path = tmp_path / "spec-1234-55000-0001.fits"
    fits.HDUList([primary, coadd]).writeto(path)

    s = _one(path)
    np.testing.assert_allclose(s.wavelength, 10.0**loglam, rtol=RTOL)
    np.testing.assert_allclose(s.flux[10:], flux[10:].astype(np.float32), rtol=1e-6)
    assert np.isnan(s.flux[:10]).all() and s.error is not None and np.isnan(s.error[:10]).all()
    np.testing.assert_allclose(s.error[10:], 0.2, rtol=1e-6)
    assert s.meta.medium == "vacuum"
    assert (s.meta.ra, s.meta.dec, s.meta.mjd) == (180.5, 12.25, 55000.0)
    assert u.Unit(s.meta.flux_unit) == 1e-17 * u.erg / u.cm**2 / u.s / u.AA
    assert s.meta.id == "spec-1234-55000-0001"


def test_table_several_rows_give_several_spectra(tmp_path: Path) -> None:
    n = 200
    waves = np.vstack([np.linspace(6250.0, 6770.0, n) + k for k in range(3)])
    fluxes = np.vstack([_flux(n, k) for k in range(3)])
    errs = np.full((3, n), 0.05)
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="OBSID", format="10A", array=np.array(["a1", "b2", "c3"])),
        fits.Column(name="WAVE", format=f"{n}D", unit="Angstrom", array=waves),
        fits.Column(name="FLUX", format=f"{n}D", array=fluxes),
        fits.Column(name="ERR", format=f"{n}D", array=errs),
    ])
    path = tmp_path / "many.fits"
    hdu.writeto(path)
    spectra = read_spectrum(path)
    assert [s.meta.id for s in spectra] == ["a1", "b2", "c3"]
    for k, s in enumerate(spectra):
        np.testing.assert_allclose(s.wavelength, waves[k], rtol=RTOL)
        np.testing.assert_allclose(s.flux, fluxes[k], rtol=RTOL)
        assert s.error is not None
        np.testing.assert_allclose(s.error, 0.05, rtol=RTOL)


@pytest.mark.parametrize(("unit", "factor"), [("um", 1e4), ("m", 1e10), ("Angstrom", 1.0),
                                              ("A", 1.0), ("nm", 10.0)])
def test_table_wavelength_units(tmp_path: Path, unit: str, factor: float) -> None:
    wave_aa = np.linspace(6250.0, 6770.0, 100)
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="LAMBDA", format="D", unit=unit, array=wave_aa / factor),
        fits.Column(name="FLUX_DENSITY", format="D", array=_flux(100)),
        fits.Column(name="SIGMA", format="D", array=np.full(100, 0.1)),
    ])
    path = tmp_path / "units.fits"
    hdu.writeto(path)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave_aa, rtol=RTOL)
    assert s.error is not None
    np.testing.assert_allclose(s.error, 0.1, rtol=RTOL)


def test_table_frequency_column_is_converted_and_sorted(tmp_path: Path) -> None:
    wave_aa = np.linspace(6250.0, 6770.0, 50)
    freq = (wave_aa * u.AA).to_value(u.Hz, equivalencies=u.spectral())
    flux = _flux(50)
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="WAVE", format="D", unit="Hz", array=freq),
        fits.Column(name="FLUX", format="D", array=flux),
    ])
    path = tmp_path / "freq.fits"
    hdu.writeto(path)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave_aa, rtol=RTOL)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)


# --------------------------------------------------------------------------- FITS images

def _image(path: Path, flux: np.ndarray, **cards: object) -> fits.Header:
    hdu = fits.PrimaryHDU(flux)
    for key, value in cards.items():
        hdu.header[key.replace("_", "-") if key == "DC_FLAG" else key] = value
    hdu.writeto(path)
    return hdu.header


def _astropy_wave(header: fits.Header, n: int) -> np.ndarray:
    return WCS(header).spectral.pixel_to_world(np.arange(n)).to_value(u.AA)


def test_image_linear_wcs_matches_formula_and_astropy(tmp_path: Path) -> None:
    n = 1040
    flux = _flux(n)
    path = tmp_path / "linear.fits"
    header = _image(path, flux, CTYPE1="WAVE", CUNIT1="Angstrom", CRVAL1=6250.0,
                    CDELT1=0.5, CRPIX1=10.5, OBJECT="Vega", BUNIT="adu")
    s = _one(path)
    expected = 6250.0 + 0.5 * (np.arange(1, n + 1) - 10.5)
    np.testing.assert_allclose(s.wavelength, expected, rtol=RTOL)
    np.testing.assert_allclose(s.wavelength, _astropy_wave(header, n), rtol=RTOL)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)
    assert s.error is None
    assert s.meta.layout == "fits-image-wcs"
    assert s.meta.target == "Vega"
    assert s.meta.flux_unit == "adu"


def test_image_cd1_1_in_nm_matches_astropy(tmp_path: Path) -> None:
    n = 520
    path = tmp_path / "cd.fits"
    header = _image(path, _flux(n), CTYPE1="WAVE", CUNIT1="nm", CRVAL1=625.0, CD1_1=0.01,
                    CRPIX1=1.0)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, 6250.0 + 0.1 * np.arange(n), rtol=RTOL)
    np.testing.assert_allclose(s.wavelength, _astropy_wave(header, n), rtol=RTOL)


def test_image_without_ctype_and_cunit_is_angstrom(tmp_path: Path) -> None:
    path = tmp_path / "iraf.fits"
    _image(path, _flux(100), CRVAL1=6250.0, CDELT1=0.25, CRPIX1=1.0)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, 6250.0 + 0.25 * np.arange(100), rtol=RTOL)


def test_image_dc_flag_is_log10(tmp_path: Path) -> None:
    n = 500
    path = tmp_path / "dcflag.fits"
    hdu = fits.PrimaryHDU(_flux(n))
    hdu.header.update({"CRVAL1": np.log10(6250.0), "CDELT1": 1e-4, "CRPIX1": 1.0,
                       "DC-FLAG": 1})
    hdu.writeto(path)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, 10 ** (np.log10(6250.0) + 1e-4 * np.arange(n)),
                               rtol=RTOL)


def test_image_wave_log_is_natural_log_and_matches_astropy(tmp_path: Path) -> None:
    n = 800
    path = tmp_path / "wavelog.fits"
    header = _image(path, _flux(n), CTYPE1="WAVE-LOG", CUNIT1="Angstrom", CRVAL1=6500.0,
                    CDELT1=0.3, CRPIX1=400.0)
    s = _one(path)
    p = np.arange(1, n + 1)
    expected = 6500.0 * np.exp(0.3 * (p - 400.0) / 6500.0)
    np.testing.assert_allclose(s.wavelength, expected, rtol=RTOL)
    np.testing.assert_allclose(s.wavelength, _astropy_wave(header, n), rtol=RTOL)
    # read as log10 (IRAF DC-FLAG=1) the same numbers would not be wavelengths at all
    assert s.wavelength[0] == pytest.approx(6500.0 * np.exp(-399 * 0.3 / 6500.0), rel=RTOL)


def test_image_lamost_coeff(tmp_path: Path) -> None:
    n = 3909
    path = tmp_path / "coeff.fits"
    _image(path, _flux(n), COEFF0=3.5682, COEFF1=1e-4)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, 10 ** (3.5682 + 1e-4 * np.arange(n)), rtol=RTOL)


def test_image_error_extension_and_degenerate_axes(tmp_path: Path) -> None:
    n = 300
    flux = _flux(n)
    primary = fits.PrimaryHDU(flux.reshape(1, 1, n))
    primary.header.update({"CRVAL1": 6250.0, "CDELT1": 1.0, "CRPIX1": 1.0, "CUNIT1": "Angstrom"})
    err = fits.ImageHDU(np.full(n, 0.02), name="ERR")
    path = tmp_path / "witherr.fits"
    fits.HDUList([primary, err]).writeto(path)
    s = _one(path)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)
    assert s.error is not None
    np.testing.assert_allclose(s.error, 0.02, rtol=RTOL)


def test_wcs_wavelengths_direct() -> None:
    header = fits.Header({"CTYPE1": "AWAV", "CUNIT1": "um", "CRVAL1": 0.625, "CDELT1": 1e-5,
                          "CRPIX1": 1})
    np.testing.assert_allclose(wcs_wavelengths(header, 5), 6250.0 + 0.1 * np.arange(5),
                               rtol=RTOL)


# --------------------------------------------------------------------------- LAMOST

def _lamost(path: Path, n: int = 3909) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wave = 10 ** (3.5682 + 1e-4 * np.arange(n))
    flux = 100.0 * _flux(n)
    ivar = np.full(n, 0.04)
    ivar[[0, 1, 2, 1000, n - 1]] = 0.0
    data = np.vstack([flux, ivar, wave, np.zeros(n), np.zeros(n)]).astype(np.float32)
    hdu = fits.PrimaryHDU(data)
    hdu.header.update({"TELESCOP": "LAMOST", "OBSID": 123456789,
                       "DESIG": "LAMOST J123456.78+012345.6", "RA": 188.736583,
                       "DEC": 1.395999, "MJD": 57000, "COEFF0": 3.5682, "COEFF1": 1e-4,
                       "CRVAL1": 3.5682, "CD1_1": 1e-4, "CRPIX1": 1, "DC-FLAG": 1})
    hdu.writeto(path)
    return data[2].astype(np.float64), data[0].astype(np.float64), data[1].astype(np.float64)


def test_lamost_multirow_image(tmp_path: Path) -> None:
    path = tmp_path / "spec-57000-test.fits"
    wave, flux, ivar = _lamost(path)
    s = _one(path)
    # The float32 wavelength row holds ~5e-4 A; COEFF0/COEFF1 give the exact solution.
    np.testing.assert_allclose(s.wavelength, 10 ** (3.5682 + 1e-4 * np.arange(wave.size)),
                               rtol=RTOL)
    np.testing.assert_allclose(s.wavelength, wave, rtol=1e-7)
    assert 3690 < s.wavelength[0] < 3710 and 9090 < s.wavelength[-1] < 9110
    good = ivar > 0
    np.testing.assert_allclose(s.flux[good], flux[good], rtol=RTOL)
    assert np.isnan(s.flux[~good]).all()
    assert s.error is not None
    np.testing.assert_allclose(s.error[good], 1 / np.sqrt(ivar[good]), rtol=RTOL)
    assert np.isnan(s.error[~good]).all()
    m = s.meta
    assert m.layout == "lamost-image"
    assert m.medium == "vacuum"
    assert m.id == "123456789"
    assert m.target == "LAMOST J123456.78+012345.6"
    assert m.extra["desig"] == "LAMOST J123456.78+012345.6"
    assert (m.ra, m.dec, m.mjd) == (188.736583, 1.395999, 57000.0)
    assert m.telescope == "LAMOST"


# --------------------------------------------------------------------------- VOTable

def _votable(path: Path, wave: np.ndarray, flux: np.ndarray, err: np.ndarray | None, *,
             wave_kw: dict[str, str], flux_kw: dict[str, str],
             params: bool = True) -> None:
    vot = VOTableFile()
    res = Resource()
    vot.resources.append(res)
    table = TableElement(vot)
    res.tables.append(table)
    if params:
        table.params.extend([
            Param(vot, name="TargetName", datatype="char", arraysize="*", value="NGC 1234",
                  utype="spec:Target.Name"),
            Param(vot, name="Position", datatype="double", arraysize="2",
                  value=[150.25, -30.5], unit="deg",
                  utype="spec:Char.SpatialAxis.Coverage.Location.Value"),
            Param(vot, name="MJD", datatype="double", value=58000.25, unit="d",
                  utype="spec:Char.TimeAxis.Coverage.Location.Value"),
            Param(vot, name="RefPos", datatype="char", arraysize="*", value="BARYCENTER",
                  utype="spec:CoordSys.SpectralFrame.RefPos"),
        ])
    table.fields.extend([
        Field(vot, name="x", datatype="double", **wave_kw),
        Field(vot, name="y", datatype="double", **flux_kw),
    ])
    if err is not None:
        table.fields.append(Field(vot, name="dy", datatype="double", ucd="stat.error;phot.flux",
                                  utype="spec:Data.FluxAxis.Accuracy.StatError",
                                  unit=flux_kw.get("unit")))
    table.create_arrays(wave.size)
    table.array["x"] = wave
    table.array["y"] = flux
    if err is not None:
        table.array["dy"] = err
    vot.to_xml(str(path))


@pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")
def test_votable_by_utype(tmp_path: Path) -> None:
    wave_nm = np.linspace(625.0, 677.0, 300)
    flux = _flux(300)
    path = tmp_path / "ssa.xml"
    _votable(path, wave_nm, flux, np.full(300, 0.03),
             wave_kw={"unit": "nm", "utype": "spec:Data.SpectralAxis.Value"},
             flux_kw={"unit": "erg/(s.cm2.Angstrom)", "utype": "SPEC:data.fluxaxis.value"})
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave_nm * 10, rtol=RTOL)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)
    assert s.error is not None
    np.testing.assert_allclose(s.error, 0.03, rtol=RTOL)
    m = s.meta
    assert m.layout == "votable"
    assert m.target == "NGC 1234"
    assert (m.ra, m.dec, m.mjd) == (150.25, -30.5, 58000.25)
    assert m.frame == "barycentric"
    assert u.Unit(m.flux_unit) == u.erg / u.s / u.cm**2 / u.AA


@pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")
def test_votable_by_ucd_frequency_and_air(tmp_path: Path) -> None:
    wave_aa = np.linspace(6250.0, 6770.0, 100)
    freq = (wave_aa * u.AA).to_value(u.GHz, equivalencies=u.spectral())
    flux = _flux(100)
    path = tmp_path / "ucd.vot"
    _votable(path, freq, flux, None, wave_kw={"unit": "GHz", "ucd": "em.freq"},
             flux_kw={"unit": "Jy", "ucd": "phot.flux.density;em.freq"}, params=False)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave_aa, rtol=RTOL)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)
    assert s.meta.flux_unit == "Jy"

    path2 = tmp_path / "air.vot"
    _votable(path2, wave_aa, flux, None, wave_kw={"unit": "Angstrom", "ucd": "em.wl;obs.atmos"},
             flux_kw={"ucd": "phot.flux.density"}, params=False)
    assert _one(path2).meta.medium == "air"


@pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")
def test_votable_by_name(tmp_path: Path) -> None:
    vot = VOTableFile()
    res = Resource()
    vot.resources.append(res)
    table = TableElement(vot)
    res.tables.append(table)
    table.fields.extend([Field(vot, name="WAVELENGTH", datatype="double", unit="Angstrom"),
                         Field(vot, name="FLUX", datatype="double")])
    table.create_arrays(10)
    table.array["WAVELENGTH"] = np.linspace(6500, 6600, 10)
    table.array["FLUX"] = np.arange(10.0)
    path = tmp_path / "named.xml"
    vot.to_xml(str(path))
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, np.linspace(6500, 6600, 10), rtol=RTOL)


_ENTITY_VOTABLE = b"""<?xml version="1.0"?>
<!DOCTYPE VOTABLE [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
 <RESOURCE><TABLE>
  <FIELD name="WAVE" datatype="double" unit="Angstrom"/>
  <FIELD name="FLUX" datatype="char" arraysize="*"/>
  <DATA><TABLEDATA><TR><TD>6563</TD><TD>&xxe;</TD></TR></TABLEDATA></DATA>
 </TABLE></RESOURCE>
</VOTABLE>
"""

_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<VOTABLE version="1.4"><RESOURCE><TABLE><FIELD name="WAVE" datatype="char" arraysize="*"/>
<DATA><TABLEDATA><TR><TD>&lol2;</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>
"""

_STREAM = b"""<?xml version="1.0"?>
<VOTABLE version="1.4"><RESOURCE><TABLE>
<FIELD name="WAVE" datatype="double"/><FIELD name="FLUX" datatype="double"/>
<DATA><BINARY><STREAM href="http://127.0.0.1:9/secret"/></BINARY></DATA>
</TABLE></RESOURCE></VOTABLE>
"""


@pytest.mark.parametrize("doc", [_ENTITY_VOTABLE, _LAUGHS, _STREAM],
                         ids=["xxe", "laughs", "stream-href"])
def test_votable_unsafe_documents_are_refused(tmp_path: Path, doc: bytes) -> None:
    path = tmp_path / "evil.xml"
    path.write_bytes(doc)
    with pytest.raises(SpectrumReadError, match=r"^evil\.xml: .*(DOCTYPE|href)"):
        read_spectrum(path)


def test_votable_without_spectral_field(tmp_path: Path) -> None:
    vot = VOTableFile()
    res = Resource()
    vot.resources.append(res)
    table = TableElement(vot)
    res.tables.append(table)
    table.fields.extend([Field(vot, name="access_url", datatype="char", arraysize="*"),
                         Field(vot, name="FLUX", datatype="double")])
    table.create_arrays(1)
    table.array["access_url"] = ["http://example.org/spec.fits"]
    table.array["FLUX"] = [1.0]
    path = tmp_path / "ssa_response.xml"
    vot.to_xml(str(path))
    with pytest.raises(SpectrumReadError, match=r"ssa_response\.xml: no spectral axis FIELD"):
        read_spectrum(path)


# --------------------------------------------------------------------------- ASCII

def test_csv_with_header_in_nm(tmp_path: Path) -> None:
    wave = np.linspace(625.0, 677.0, 50)
    flux = _flux(50)
    lines = ["# OBJECT = HD 1", "# EXPTIME = 120", "wavelength(nm),flux,error"]
    lines += [f"{float(w)!r},{float(f)!r},0.01" for w, f in zip(wave, flux, strict=True)]
    path = tmp_path / "spec.csv"
    path.write_text("\n".join(lines) + "\n")
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave * 10, rtol=RTOL)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)
    assert s.error is not None
    np.testing.assert_allclose(s.error, 0.01, rtol=RTOL)
    assert s.meta.layout == "ascii"
    assert s.meta.target == "HD 1"
    assert s.meta.exposure == 120.0


def test_whitespace_two_columns_without_header(tmp_path: Path) -> None:
    wave = np.linspace(6250.0, 6770.0, 40)
    flux = _flux(40)
    text = "# a plain spectrum\n\n" + "\n".join(
        f"  {float(w)!r}\t {float(f)!r}" for w, f in zip(wave, flux, strict=True))
    path = tmp_path / "plain.dat"
    path.write_text(text)
    s = _one(path)
    np.testing.assert_allclose(s.wavelength, wave, rtol=RTOL)
    np.testing.assert_allclose(s.flux, flux, rtol=RTOL)
    assert s.error is None


def test_ascii_unit_from_comment_and_header_order(tmp_path: Path) -> None:
    text = "# wavelength unit: um\nflux err wave\n1.0 0.1 0.6500\n2.0 0.2 0.6501\n"
    s = _one(text.encode(), name="order.txt")
    np.testing.assert_allclose(s.wavelength, [6500.0, 6501.0], rtol=RTOL)
    np.testing.assert_allclose(s.flux, [1.0, 2.0])
    assert s.error is not None
    np.testing.assert_allclose(s.error, [0.1, 0.2])
    assert s.meta.source == "order.txt"


# --------------------------------------------------------------------------- inputs

def test_bytes_file_object_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "linear.fits"
    _image(path, _flux(100), CRVAL1=6250.0, CDELT1=1.0, CRPIX1=1.0)
    raw = path.read_bytes()
    expected: np.ndarray = 6250.0 + np.arange(100, dtype=np.float64)
    sources: list[SpectrumSource] = [raw, io.BytesIO(raw)]
    for source in sources:
        np.testing.assert_allclose(_one(source, name="x.fits").wavelength, expected)
    gz = tmp_path / "linear.fits.gz"
    gz.write_bytes(gzip.compress(raw))
    s = _one(gz)
    np.testing.assert_allclose(s.wavelength, expected)
    assert s.meta.id == "linear"
    csv = tmp_path / "t.csv.gz"
    csv.write_bytes(gzip.compress(b"6563,1\n6564,2\n"))
    np.testing.assert_allclose(_one(csv).flux, [1.0, 2.0])


def test_data_really_read_file_can_go(tmp_path: Path) -> None:
    path = tmp_path / "gone.fits"
    _image(path, _flux(5000), CRVAL1=3700.0, CDELT1=1.0, CRPIX1=1.0)
    s = _one(path)
    os.remove(path)
    _assert_in_memory(s.flux)
    assert np.isfinite(s.flux).all() and s.wavelength[-1] == 3700.0 + 4999


# --------------------------------------------------------------------------- errors

def _expect_error(source: Path | bytes, pattern: str, name: str | None = None) -> None:
    with pytest.raises(SpectrumReadError, match=pattern) as info:
        read_spectrum(source, name=name)
    assert type(info.value) is SpectrumReadError
    assert isinstance(info.value, ValueError)


def test_error_png(tmp_path: Path) -> None:
    path = tmp_path / "picture.fits"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    _expect_error(path, r"^picture\.fits: not a spectrum file \(a PNG image\)")


def test_error_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    _expect_error(path, r"^empty\.fits: empty file")


def test_error_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.fits", r"^nope\.fits: cannot read file")


def test_error_truncated_fits(tmp_path: Path) -> None:
    full = tmp_path / "full.fits"
    _image(full, _flux(5000), CRVAL1=3700.0, CDELT1=1.0, CRPIX1=1.0)
    raw = full.read_bytes()
    for cut in (2880 + 4000, 1000, 2880):
        path = tmp_path / "cut.fits"
        path.write_bytes(raw[:cut])
        _expect_error(path, r"^cut\.fits: (truncated|corrupt) FITS")


def test_error_table_without_wavelength(tmp_path: Path) -> None:
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="X", format="D", array=np.ones(5)),
                                         fits.Column(name="FLUX", format="D",
                                                     array=np.ones(5))])
    path = tmp_path / "spectrum.fits"
    hdu.writeto(path)
    _expect_error(path, r"^spectrum\.fits: no wavelength column \(looked for WAVE, "
                        r"WAVELENGTH, LAMBDA.*LOGLAM")


def test_error_table_without_flux(tmp_path: Path) -> None:
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="WAVE", format="D",
                                                     array=np.arange(1.0, 6.0))])
    path = tmp_path / "noflux.fits"
    hdu.writeto(path)
    _expect_error(path, r"^noflux\.fits: no flux column")


def test_error_nan_only(tmp_path: Path) -> None:
    path = tmp_path / "nan.fits"
    _image(path, np.full(100, np.nan), CRVAL1=6250.0, CDELT1=1.0, CRPIX1=1.0)
    _expect_error(path, r"^nan\.fits: no finite flux values")
    path2 = tmp_path / "lamost0.fits"
    wave = np.linspace(3700, 9100, 100)
    data = np.vstack([np.ones(100), np.zeros(100), wave, np.zeros(100), np.zeros(100)])
    fits.PrimaryHDU(data).writeto(path2)
    _expect_error(path2, r"^lamost0\.fits: no finite flux values")


def test_error_mismatched_lengths(tmp_path: Path) -> None:
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name="WAVE", format="100D", array=np.linspace(6250, 6770, 100)[None, :]),
        fits.Column(name="FLUX", format="90D", array=np.ones((1, 90))),
    ])
    path = tmp_path / "mismatch.fits"
    hdu.writeto(path)
    _expect_error(path, r"^mismatch\.fits: array lengths differ \(wavelength 100, flux 90\)")
    _expect_error(b"6563 1 0.1\n6564 2\n", r"^bad\.txt: line 2: 2 columns, expected 3",
                  name="bad.txt")


def test_error_text_and_images(tmp_path: Path) -> None:
    _expect_error(b"hello world\nthis is not a spectrum\n", r"^notes\.txt: line 2: not a number",
                  name="notes.txt")
    _expect_error(b"6563\n6564\n", r"only one column", name="one.txt")
    _expect_error(b"\x00\x01\x02garbage", r"^blob: binary content", name="blob")
    path = tmp_path / "sky.fits"
    fits.PrimaryHDU(np.ones((64, 64))).writeto(path)
    _expect_error(path, r"^sky\.fits: 2-D image \(64 x 64\)")
    path2 = tmp_path / "celestial.fits"
    _image(path2, np.ones(10), CTYPE1="RA---TAN", CRVAL1=10.0, CDELT1=1.0, CRPIX1=1.0)
    _expect_error(path2, r"not a spectral axis")
    path3 = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones(10)).writeto(path3)
    _expect_error(path3, r"^nowcs\.fits: no wavelength solution")
    _expect_error(b"<html><body>no</body></html>", r"not a VOTable", name="page.html")
    _expect_error(b"<VOTABLE><unclosed>", r"not well-formed XML", name="broken.xml")


def test_error_wrong_input_type() -> None:
    with pytest.raises(SpectrumReadError):
        read_spectrum(12345)  # type: ignore[arg-type]
