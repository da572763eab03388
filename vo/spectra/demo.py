"""Synthetic demo collection of Be-star-like H-alpha spectra, and its files.

:func:`generate_collection` makes a deterministic (per seed) collection of
continuum-normalised spectra around H-alpha (6250-6770 Angstrom in air,
about 0.25 Angstrom per pixel) of four classes seen in Be and B stars:

``single-peak``
    one emission peak (pseudo-Voigt, equivalent width 3-40 Angstrom) over a
    weak photospheric absorption (so the net equivalent width is always
    emission);
``double-peak``
    two emission peaks split by 50-300 km/s with a V/R height ratio of
    0.5-2, total equivalent width 3-40 Angstrom;
``absorption-emission-core``
    a broad photospheric absorption (depth 0.2-0.6) with a narrow emission
    core in its centre;
``absorption``
    a pure broad photospheric absorption, depth 0.2-0.6.

All spectra have a gently sloped continuum near 1, He I 6678 absorption,
instrumental broadening, photon-like noise (S/N 20-300, returned as
``error``) and a radial velocity of -80..+80 km/s.  Even-numbered spectra
come from an Ondřejov-like coudé spectrograph (air wavelengths on a linear
grid, R ~ 13000), odd-numbered ones from LAMOST (vacuum wavelengths on a
log10-uniform grid, R ~ 7500), with plausible positions (concentrated
towards the Galactic plane, visible from each site), observation times
(MJD 55000-60500, at night for the site) and target names.  The truth is in
``meta.extra``: ``class``, ``rv_kms``, ``snr``, ``ew`` (net H-alpha
equivalent width of the noiseless profile in Angstrom, negative for net
emission) and, for double peaks, ``sep_kms`` and ``vr``.

:func:`write_collection` writes such a collection in all file layouts of
:mod:`vo.spectra.writers`, in rotation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from vo.spectra.media import air_to_vacuum
from vo.spectra.model import Medium, Spectrum, SpectrumMeta
from vo.spectra.writers import EXTENSIONS, LAYOUTS, write_spectrum

#: The profile classes of the demo collection, in this order.
CLASSES = ("single-peak", "double-peak", "absorption-emission-core", "absorption")

#: H-alpha and He I 6678 rest wavelengths in standard air, Angstrom.
HALPHA_AIR = 6562.801
HEI_AIR = 6678.151
#: Speed of light in km/s.
C_KMS = 299792.458

#: The air wavelength range of every demo spectrum, Angstrom, and its pixel count.
RANGE_AIR = (6250.0, 6770.0)
NPIX = 2081

#: Metadata of the two demo instruments.
ONDREJOV = {"instrument": "CCD700 coude spectrograph", "telescope": "Ondrejov 2m Perek",
            "medium": "air", "resolution": 13000.0, "min_dec": -25.0,
            "night_ut": 19.0, "min_mjd": 55000}
LAMOST = {"instrument": "LAMOST MRS", "telescope": "LAMOST", "medium": "vacuum",
          "resolution": 7500.0, "min_dec": -10.0, "night_ut": 12.0, "min_mjd": 55927}

_GAUSS_AREA = math.sqrt(math.pi / (4.0 * math.log(2.0)))  # area / (height * FWHM)


def _pseudo_voigt(x: np.ndarray, centre: float, fwhm: float, eta: float) -> np.ndarray:
    """Unit-height pseudo-Voigt: ``eta`` Lorentzian plus ``1 - eta`` Gaussian."""
    z = (x - centre) / fwhm
    gauss = np.exp(-4.0 * math.log(2.0) * z**2)
    lorentz = 1.0 / (1.0 + 4.0 * z**2)
    return eta * lorentz + (1.0 - eta) * gauss


def _pv_area(fwhm: float, eta: float) -> float:
    """Area of a unit-height pseudo-Voigt of the given FWHM."""
    return fwhm * ((1.0 - eta) * _GAUSS_AREA + eta * math.pi / 2.0)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _grid(medium: str) -> np.ndarray:
    """The demo wavelength grid: linear in air, or log10-uniform in vacuum."""
    if medium == "air":
        return np.linspace(RANGE_AIR[0], RANGE_AIR[1], NPIX)
    start, stop = (math.log10(float(w)) for w in air_to_vacuum(np.array(RANGE_AIR)))
    step = (stop - start) / (NPIX - 1)
    return np.asarray(10.0 ** (start + step * np.arange(NPIX)))


def _line_profile(rng: np.random.Generator, kind: str, wave: np.ndarray, centre: float,
                  extra: dict[str, Any]) -> np.ndarray:
    """The normalised H-alpha profile (1 = continuum) of one class."""
    profile = np.ones_like(wave)
    if kind in ("absorption", "absorption-emission-core"):
        depth = rng.uniform(0.2, 0.6)
        profile -= depth * _pseudo_voigt(wave, centre, rng.uniform(5.0, 15.0),
                                          rng.uniform(0.3, 0.7))
        if kind == "absorption-emission-core":
            height = depth * rng.uniform(0.3, 1.2)
            profile += height * _pseudo_voigt(wave, centre, rng.uniform(1.0, 3.0),
                                              rng.uniform(0.0, 0.3))
        return profile
    # Emission classes: weak underlying photospheric absorption first.
    # (at most ~2 Angstrom of equivalent width, so the net profile is in emission)
    profile -= rng.uniform(0.0, 0.15) * _pseudo_voigt(wave, centre, rng.uniform(5.0, 10.0), 0.5)
    if kind == "single-peak":
        fwhm = rng.uniform(2.0, 10.0)
        eta = rng.uniform(0.0, 0.5)
        area = _pv_area(fwhm, eta)
        ew = rng.uniform(max(3.0, 0.6 * area), min(40.0, 8.0 * area))
        profile += ew / area * _pseudo_voigt(wave, centre, fwhm, eta)
        return profile
    if kind == "double-peak":
        sep_kms = rng.uniform(50.0, 300.0)
        vr = _log_uniform(rng, 0.5, 2.0)
        sep = centre * sep_kms / C_KMS
        fwhm = sep * rng.uniform(0.5, 0.9)
        eta = rng.uniform(0.0, 0.3)
        area = _pv_area(fwhm, eta)
        red = _log_uniform(rng, 0.5, 6.0) / max(vr, 1.0)
        ew = float(np.clip((1.0 + vr) * red * area, 3.0, 40.0))
        red = ew / ((1.0 + vr) * area)
        profile += vr * red * _pseudo_voigt(wave, centre - sep / 2, fwhm, eta)
        profile += red * _pseudo_voigt(wave, centre + sep / 2, fwhm, eta)
        extra["sep_kms"] = round(sep_kms, 3)
        extra["vr"] = round(vr, 4)
        return profile
    raise ValueError(f"unknown class {kind!r}")


def _broaden(model: np.ndarray, wave: np.ndarray, resolution: float) -> np.ndarray:
    """Convolve with the Gaussian instrumental profile of resolving power ``resolution``."""
    step = float(np.median(np.diff(wave)))
    sigma = float(np.median(wave)) / resolution / (2.0 * math.sqrt(2.0 * math.log(2.0))) / step
    half = math.ceil(4 * sigma)
    x = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(model, half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _position(rng: np.random.Generator, min_dec: float) -> tuple[float, float]:
    """ICRS (ra, dec) in degrees, concentrated to the Galactic plane, dec >= min_dec."""
    while True:
        lon = rng.uniform(0.0, 360.0, 8)
        lat = np.clip(rng.normal(0.0, 10.0, 8), -80.0, 80.0)
        icrs = SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic").icrs
        ok = np.flatnonzero(icrs.dec.deg >= min_dec)
        if ok.size:
            k = int(ok[0])
            return round(float(icrs.ra.deg[k]), 6), round(float(icrs.dec.deg[k]), 6)


def _target(rng: np.random.Generator, dec: float) -> str:
    """A synthetic HD or BD catalogue name (BD only north of -22 degrees)."""
    if dec >= -22.0 and rng.uniform() < 0.4:
        zone = int(dec) if dec >= 0 else -int(-dec)
        sign = "-" if dec < 0 else "+"
        return f"BD{sign}{abs(zone):02d} {int(rng.integers(1, 5000))}"
    return f"HD {int(rng.integers(1, 225301))}"


def generate_collection(n: int, seed: int = 0) -> list[Spectrum]:
    """A synthetic collection of Be-star-like H-alpha spectra.

    Parameters
    ----------
    n : int
        Number of spectra (0 or more).  With ``n >= 4`` every class of
        :data:`CLASSES` occurs (classes are dealt evenly, in shuffled order).
    seed : int
        Seed of the random numbers; the same ``n`` and ``seed`` give the same
        collection.

    Returns
    -------
    list of Spectrum
        Spectra ``demo-0001``, ``demo-0002``, ...: continuum-normalised flux,
        errors, all values finite; even positions (0-based) are Ondřejov-like
        (air, linear grid), odd ones LAMOST (vacuum, log10 grid).  See the
        module docstring for the classes and the ``meta.extra`` keys.

    Raises
    ------
    ValueError
        For a negative ``n``.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    master = np.random.default_rng(seed)
    classes = [str(c) for c in np.resize(np.array(CLASSES), n)]
    master.shuffle(classes)
    children = np.random.SeedSequence(seed).spawn(n)
    spectra = []
    for index, (kind, child) in enumerate(zip(classes, children, strict=True)):
        spectra.append(_one_spectrum(index, kind, np.random.default_rng(child)))
    return spectra


def _one_spectrum(index: int, kind: str, rng: np.random.Generator) -> Spectrum:
    site: dict[str, Any] = ONDREJOV if index % 2 == 0 else LAMOST
    medium: Medium = "air" if site["medium"] == "air" else "vacuum"
    wave = _grid(medium)
    rv = rng.uniform(-80.0, 80.0)
    doppler = 1.0 + rv / C_KMS
    halpha = float(air_to_vacuum(HALPHA_AIR)) if medium == "vacuum" else HALPHA_AIR
    hei = float(air_to_vacuum(HEI_AIR)) if medium == "vacuum" else HEI_AIR
    extra: dict[str, Any] = {"class": kind}
    line = _line_profile(rng, kind, wave, halpha * doppler, extra)
    ew = float(np.trapezoid(1.0 - line, wave))
    helium = 1.0 - rng.uniform(0.03, 0.15) * _pseudo_voigt(wave, hei * doppler,
                                                            rng.uniform(2.0, 6.0), 0.2)
    x = (wave - wave.mean()) / (wave[-1] - wave[0]) * 2.0
    continuum = 1.0 + rng.uniform(-0.05, 0.05) * x + rng.uniform(-0.02, 0.02) * x**2
    model = _broaden(continuum * line * helium, wave, float(site["resolution"]))
    snr = _log_uniform(rng, 20.0, 300.0)
    error = np.sqrt(np.maximum(model, 0.05) * continuum) / snr
    flux = model + rng.normal(0.0, 1.0, wave.size) * error

    ra, dec = _position(rng, float(site["min_dec"]))
    day = int(rng.integers(int(site["min_mjd"]), 60500))
    mjd = round(day + (float(site["night_ut"]) + rng.uniform(0.0, 8.0)) / 24.0, 6)
    mjd = min(mjd, 60500.0)
    if site is LAMOST:
        exposure = float(rng.choice([600.0, 900.0, 1200.0, 1800.0]))
    else:
        exposure = float(round(rng.uniform(300.0, 3600.0)))
    extra.update(rv_kms=round(rv, 4), snr=round(snr, 3), ew=round(ew, 4))
    meta = SpectrumMeta(
        id=f"demo-{index + 1:04d}", target=_target(rng, dec), ra=ra, dec=dec, mjd=mjd,
        exposure=exposure, instrument=str(site["instrument"]),
        telescope=str(site["telescope"]), flux_unit="", medium=medium, frame="heliocentric",
        extra=extra)
    return Spectrum(wave, flux, error, meta)


def plan_layouts(spectra: Sequence[Spectrum],
                 layouts: Sequence[str] = LAYOUTS) -> list[str]:
    """The layout :func:`write_collection` uses for each spectrum.

    LAMOST spectra (``meta.telescope == "LAMOST"``) get ``"lamost"`` when it
    is among ``layouts``; the other spectra take the remaining layouts in
    rotation (all of ``layouts`` in rotation when ``"lamost"`` is the only
    one, or absent).

    Parameters
    ----------
    spectra : sequence of Spectrum
        The spectra, in file order.
    layouts : sequence of str
        Layout names of :data:`vo.spectra.writers.LAYOUTS`.

    Returns
    -------
    list of str
        One layout per spectrum.

    Raises
    ------
    ValueError
        For an empty or unknown layout list.
    """
    if not layouts:
        raise ValueError("no layouts given")
    unknown = [name for name in layouts if name not in LAYOUTS]
    if unknown:
        raise ValueError(f"unknown layouts {unknown}; use {', '.join(LAYOUTS)}")
    others = [name for name in layouts if name != "lamost"] or list(layouts)
    plan: list[str] = []
    turn = 0
    for spectrum in spectra:
        if "lamost" in layouts and spectrum.meta.telescope == "LAMOST":
            plan.append("lamost")
        else:
            plan.append(others[turn % len(others)])
            turn += 1
    return plan


def write_collection(directory: str | os.PathLike[str], spectra: Sequence[Spectrum],
                     layouts: Sequence[str] = LAYOUTS) -> list[Path]:
    """Write each spectrum to ``directory`` in one of ``layouts``.

    Parameters
    ----------
    directory : str or os.PathLike
        Target folder, created when missing; existing files of the same
        names are replaced.
    spectra : sequence of Spectrum
        The spectra; the i-th (0-based) is written to ``demo-{i+1:04d}`` with
        the extension of its layout (``.fits``, ``.xml`` for VOTable,
        ``.csv``).
    layouts : sequence of str
        Layouts to use, assigned by :func:`plan_layouts`.

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of ``spectra``.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (spectrum, layout) in enumerate(
            zip(spectra, plan_layouts(spectra, layouts), strict=True)):
        path = folder / f"demo-{index + 1:04d}{EXTENSIONS[layout]}"
        paths.append(write_spectrum(spectrum, path, layout))
    return paths
