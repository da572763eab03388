"""Preprocessing of spectra for the ``som`` job: one common wavelength grid, one matrix.

:func:`prepare` turns a sequence of :class:`SpectrumSource` (files of a
user's store, catalogued spectra named by DID, or rows of a packed Parquet
data set: :func:`sources_from_store`) into a :class:`PreparedSet`: an
``(N, D)`` float32 matrix of spectra resampled onto one grid of ``D``
vacuum wavelengths, with a label, DID and target per row and the list of
spectra that were left out, each with the reason.

Each spectrum goes through these steps, in this order:

1. Wavelengths in air (``meta.medium == "air"``) are brought to vacuum
   (:func:`vo.spectra.media.air_to_vacuum`; about 1.8 Angstrom at H-alpha;
   below 2000 Angstrom wavelengths are vacuum by convention and stay).
   Spectra whose medium is vacuum or unknown are taken as they are.
2. Only the samples with finite flux inside the window (plus the nearest
   finite one on each side, for interpolating at the edges) are used.  The
   window is the one given, or else the wavelength range common to all
   spectra.  A spectrum that does not reach into the window, or leaves more
   than ``max_missing`` of the grid uncovered at its ends, is rejected.
3. The flux is resampled onto the grid (``points`` samples, equally spaced
   in wavelength or in log wavelength) by *linear interpolation*
   (:func:`numpy.interp` over the finite samples).  This is not flux
   conserving: it suits grids about as fine as the spectra or finer, and
   on a much coarser grid it keeps the noise of single pixels.  A run of
   NaN samples is interpolated across when its finite neighbours are at
   most ``max_gap`` Angstrom apart; grid points inside a wider run stay
   missing.
4. Grid points outside the spectrum and inside wide gaps are counted; more
   than ``max_missing`` of the grid rejects the spectrum.  The remaining
   missing points take the value of the *nearest grid point that has one*
   (the one on the blue side when both are as near).
5. The row is normalised: ``median`` divides by its median (rejected when
   the median is not positive), ``continuum`` divides by a Chebyshev
   polynomial of order ``continuum_order`` fitted with iterative
   sigma clipping on both sides (:data:`CONTINUUM_SIGMA`, at most
   :data:`CONTINUUM_ITERATIONS` refits), so that emission and absorption
   lines do not pull the fit; ``none`` keeps the flux.

The matrix is filled row by row, so besides it only the spectra of one
file (or one batch of :data:`PACKED_BATCH` rows of a packed set) are in
memory.  Prepared sets are cached per user (:class:`PreprocessCache`,
``$VOCLOUD_HOME/cache/{owner}``) under :func:`cache_key`: a hash of each
input's DID (or label) and stored checksum, the parameters and
:data:`PREPROCESS_VERSION`; a cache hit maps the stored matrix and reads no
spectrum.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

if TYPE_CHECKING:
    from uws_service.config import Config
    from uws_service.filestore import FileMeta, FileService
    from uws_service.storage import FileStorage
    from uws_service.users import Principal
    from vo.spectra.model import Spectrum

__all__ = [
    "AIR_MINIMUM",
    "CONTINUUM_ITERATIONS",
    "CONTINUUM_SIGMA",
    "GRIDS",
    "NORMALISATIONS",
    "PREPROCESS_VERSION",
    "PreparedSet",
    "PreprocessCache",
    "PreprocessParameters",
    "Rejected",
    "SpectrumSource",
    "cache_key",
    "fit_continuum",
    "make_grid",
    "prepare",
    "process_spectrum",
    "sources_from_store",
    "vacuum_wavelength",
]

_log = logging.getLogger("vocloud.preprocess")

#: Version of the preprocessing output; part of every cache key.  Bump it
#: whenever a change of this module changes what :func:`prepare` returns.
PREPROCESS_VERSION = "1"
#: Grid spacings of :attr:`PreprocessParameters.grid`.
GRIDS = ("linear", "log")
#: Normalisations of :attr:`PreprocessParameters.normalisation`.
NORMALISATIONS = ("none", "median", "continuum")
#: Shortest wavelength given in air by archives that use air (Angstrom); below it, vacuum.
AIR_MINIMUM = 2000.0
#: Highest polynomial order of the continuum fit.
MAX_CONTINUUM_ORDER = 10
#: Residuals beyond this many standard deviations (either side) leave the continuum fit.
CONTINUUM_SIGMA = 2.5
#: Most refits of the continuum after clipping (fewer when the clipping settles).
CONTINUUM_ITERATIONS = 5
#: Grid points this close to a spectrum's end (relative to the wavelength) count as inside.
_EDGE_TOLERANCE = 1e-9
#: Spectra read at a time from a packed data set.
PACKED_BATCH = 256
#: Reasons quoted in the error raised when no spectrum survives.
_REASONS_QUOTED = 5
#: Database ``IN (...)`` lists are split into batches of this many values.
_IN_BATCH = 500
_KEY = re.compile(r"^[0-9a-f]{64}$")
#: Temporary folders of an interrupted cache write older than this are removed (seconds).
_STALE_TMP = 3600.0

ProgressFunction = Callable[[float, str], None]


def _aa(value: float) -> str:
    """A wavelength in Angstrom for a message (no unit)."""
    return f"{value:.6g}"


def _pct(fraction: float) -> str:
    """A fraction as a percentage for a message."""
    return f"{100.0 * fraction:.3g}%"


# Parameters -------------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessParameters:
    """How spectra are brought onto the common grid.

    Parameters
    ----------
    window : tuple of float, optional
        ``(low, high)`` in vacuum Angstrom.  None: the wavelength range all
        spectra cover (the largest start to the smallest end).
    points : int
        Samples on the common grid (at least 2).
    grid : {'linear', 'log'}
        Grid spacing: constant in wavelength, or constant in log wavelength
        (constant velocity).
    normalisation : {'none', 'median', 'continuum'}
        What each resampled spectrum is divided by: nothing, its median, or
        a sigma-clipped polynomial fit of its continuum.
    continuum_order : int
        Order of the continuum polynomial (0 to :data:`MAX_CONTINUUM_ORDER`);
        used only with ``normalisation='continuum'``.
    max_gap : float
        Angstrom.  A run of NaN samples whose finite neighbours are at most
        this far apart is interpolated across; the grid points inside a
        wider run are missing (and count against ``max_missing``).
    max_missing : float
        Fraction of the grid (0 to 1) that may be missing, outside the
        spectrum or in wide gaps, before the spectrum is rejected.
    """

    window: tuple[float, float] | None = None
    points: int = 1000
    grid: Literal["linear", "log"] = "linear"
    normalisation: Literal["none", "median", "continuum"] = "median"
    continuum_order: int = 2
    max_gap: float = 5.0
    max_missing: float = 0.1

    def __post_init__(self) -> None:
        window: Any = self.window
        if window is not None and not isinstance(window, tuple):
            try:
                object.__setattr__(self, "window", tuple(window))
            except TypeError:
                pass  # validate() names the problem

    def validate(self) -> None:
        """Check the parameters.

        Raises
        ------
        ValueError
            Naming the first parameter out of its range.
        """
        window: Any = self.window
        if window is not None:
            try:
                low, high = (float(v) for v in window)
            except (TypeError, ValueError):
                raise ValueError(f"window must be two wavelengths (low, high) in Angstrom, "
                                 f"not {window!r}") from None
            if not (math.isfinite(low) and math.isfinite(high)) or low <= 0:
                raise ValueError(f"window must be positive finite wavelengths in Angstrom, "
                                 f"not {_aa(low)}-{_aa(high)}")
            if low >= high:
                raise ValueError(f"window low ({_aa(low)} Å) must be below high ({_aa(high)} Å)")
        points: Any = self.points
        if isinstance(points, bool) or not isinstance(points, int | np.integer) or points < 2:
            raise ValueError(f"points must be an integer of at least 2, not {points!r}")
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {', '.join(GRIDS)}, not {self.grid!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, "
                             f"not {self.normalisation!r}")
        order: Any = self.continuum_order
        if (isinstance(order, bool) or not isinstance(order, int | np.integer)
                or not 0 <= order <= MAX_CONTINUUM_ORDER):
            raise ValueError(f"continuum_order must be an integer from 0 to "
                             f"{MAX_CONTINUUM_ORDER}, not {order!r}")
        if self.normalisation == "continuum" and points <= order:
            raise ValueError(f"points ({points}) must exceed continuum_order ({order})")
        if not (isinstance(self.max_gap, int | float) and math.isfinite(self.max_gap)
                and self.max_gap >= 0):
            raise ValueError(f"max_gap must be a finite number of Angstrom, at least 0, "
                             f"not {self.max_gap!r}")
        if not (isinstance(self.max_missing, int | float) and 0 <= self.max_missing <= 1):
            raise ValueError(f"max_missing must be a fraction from 0 to 1, "
                             f"not {self.max_missing!r}")

    def key(self) -> dict[str, Any]:
        """The values that enter the cache key.

        Returns
        -------
        dict
            JSON-able values of the parameters that change the output;
            ``continuum_order`` only with ``normalisation='continuum'``.
        """
        window = self.window
        values: dict[str, Any] = {
            "window": None if window is None else [float(window[0]), float(window[1])],
            "points": int(self.points),
            "grid": self.grid,
            "normalisation": self.normalisation,
            "max_gap": float(self.max_gap),
            "max_missing": float(self.max_missing),
        }
        if self.normalisation == "continuum":
            values["continuum_order"] = int(self.continuum_order)
        return values


# Inputs and outputs -------------------------------------------------------------------


@dataclass(frozen=True)
class SpectrumSource:
    """One input of :func:`prepare`: where a spectrum (or a few) comes from.

    Attributes
    ----------
    label : str
        What reports name: the ``obs_publisher_did`` when known, else the
        store path (``path#row`` for a row of a packed data set).
    did : str or None
        The catalogue DID of the spectrum, when known.
    checksum : str
        The stored SHA-256 of the file (for a packed data set the part
        file's SHA-256 and ``:row``); with the DID or label it identifies
        the input in the cache key.
    open : callable
        Reads the spectrum (or spectra) when called; called once per
        :func:`prepare` (twice when the window comes from the data and
        ``coverage`` is unknown).
    coverage : tuple of float, optional
        ``(first, last)`` vacuum wavelength with finite flux, in Angstrom,
        when known without reading the file (from the catalogue); lets
        :func:`prepare` find the common window without a first pass.
    """

    label: str
    did: str | None
    checksum: str
    open: Callable[[], list[Spectrum]] = field(compare=False, repr=False)
    coverage: tuple[float, float] | None = None


@dataclass
class Rejected:
    """An input left out, and why.

    Attributes
    ----------
    label : str
        DID or store path (as :attr:`SpectrumSource.label`).
    reason : str
        Why, in words (for example ``"median flux is 0"``).
    """

    label: str
    reason: str


@dataclass
class PreparedSet:
    """Spectra on one common grid, ready for a SOM.

    Attributes
    ----------
    wavelength : numpy.ndarray
        ``(D,)`` float64, vacuum Angstrom, increasing.
    matrix : numpy.ndarray
        ``(N, D)`` float32, C-contiguous; one spectrum per row.  From the
        cache it is a copy-on-write memory map of the cached file (writable;
        writes stay in memory).
    labels : list of str
        One per row: the DID, or the store path.
    dids : list of str or None
        One per row.
    targets : list of str or None
        One per row: the target name the file gives.
    rejected : list of Rejected
        Inputs left out by preprocessing, in input order.
    cache_key : str
        The :func:`cache_key` of the inputs and parameters.
    from_cache : bool
        Whether the set came from the cache.
    """

    wavelength: np.ndarray
    matrix: np.ndarray
    labels: list[str]
    dids: list[str | None]
    targets: list[str | None]
    rejected: list[Rejected]
    cache_key: str
    from_cache: bool


def cache_key(sources: Sequence[SpectrumSource], parameters: PreprocessParameters) -> str:
    """The cache key of a preprocessing: what its output depends on.

    Parameters
    ----------
    sources : sequence of SpectrumSource
        The inputs, in order (the order of the rows).
    parameters : PreprocessParameters
        The parameters.

    Returns
    -------
    str
        SHA-256 (hex) over :data:`PREPROCESS_VERSION`,
        ``parameters.key()`` and each source's ``(did or label,
        checksum)`` in order.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": PREPROCESS_VERSION, "parameters": parameters.key()},
                             sort_keys=True).encode())
    for source in sources:
        digest.update(b"\n")
        digest.update(json.dumps([source.did or source.label, source.checksum]).encode())
    return digest.hexdigest()


# Processing of one spectrum ---------------------------------------------------------


def make_grid(window: tuple[float, float], points: int,
              grid: Literal["linear", "log"] = "linear") -> np.ndarray:
    """The common wavelength grid.

    Parameters
    ----------
    window : tuple of float
        ``(low, high)`` in Angstrom; the first and last grid points.
    points : int
        Number of grid points.
    grid : {'linear', 'log'}
        Equal steps in wavelength, or in log wavelength.

    Returns
    -------
    numpy.ndarray
        ``(points,)`` float64, increasing, ending exactly at ``low`` and ``high``.
    """
    low, high = float(window[0]), float(window[1])
    if grid == "log":
        values = np.exp(np.linspace(math.log(low), math.log(high), points))
    else:
        values = np.linspace(low, high, points)
    values[0], values[-1] = low, high
    return values


def _air_to_vacuum(wavelength: np.ndarray) -> np.ndarray:
    """Air wavelengths to vacuum, by the convention that air applies above 2000 Angstrom.

    Below :data:`AIR_MINIMUM` wavelengths are given in vacuum even by archives
    that use air, and the refractive index formula does not hold there.
    """
    from vo.spectra.media import air_to_vacuum

    above = wavelength >= AIR_MINIMUM
    if above.all():
        return air_to_vacuum(wavelength)
    converted = np.array(wavelength, dtype=np.float64)
    converted[above] = air_to_vacuum(converted[above])
    return converted


def vacuum_wavelength(spectrum: Spectrum) -> np.ndarray:
    """The wavelengths of a spectrum in vacuum (converted when ``meta.medium`` is air).

    Parameters
    ----------
    spectrum : Spectrum
        A spectrum as read.

    Returns
    -------
    numpy.ndarray
        Vacuum wavelengths in Angstrom; those of a spectrum in air are
        converted from :data:`AIR_MINIMUM` up, the others are returned as
        they are (also when the medium is unknown).
    """
    if spectrum.meta.medium == "air":
        return _air_to_vacuum(spectrum.wavelength)
    return spectrum.wavelength


def _finite_span(wavelength: np.ndarray, flux: np.ndarray) -> tuple[float, float] | None:
    finite = np.flatnonzero(np.isfinite(flux))
    if finite.size == 0:
        return None
    return float(wavelength[finite[0]]), float(wavelength[finite[-1]])


def _resample(wavelength: np.ndarray, flux: np.ndarray, grid: np.ndarray,
              parameters: PreprocessParameters) -> np.ndarray | str:
    """Steps 2 to 4 of the module docstring: the row on the grid, or why not."""
    low, high = float(grid[0]), float(grid[-1])
    window = f"window {_aa(low)}-{_aa(high)} Å"
    good = np.flatnonzero(np.isfinite(flux))
    if good.size == 0:
        return "no finite flux"
    first, last = float(wavelength[good[0]]), float(wavelength[good[-1]])
    tolerance = _EDGE_TOLERANCE * high
    spans = f"spectrum spans {_aa(first)}-{_aa(last)} Å"
    if last < low - tolerance or first > high + tolerance:
        return f"{window} not covered: {spans}"
    x_all = wavelength[good]
    # The finite samples in the window and the nearest finite one on each side.
    start = max(int(np.searchsorted(x_all, low, side="left")) - 1, 0)
    stop = min(int(np.searchsorted(x_all, high, side="right")) + 1, x_all.size)
    x = x_all[start:stop]
    y = flux[good[start:stop]]
    index = good[start:stop]
    at = grid.copy()
    at[(at < first) & (at >= first - tolerance)] = first
    at[(at > last) & (at <= last + tolerance)] = last
    outside = (at < first) | (at > last)
    n_out = int(outside.sum())
    if n_out / grid.size > parameters.max_missing:
        return (f"{window} not covered enough: {spans}, {_pct(n_out / grid.size)} of the grid "
                f"outside it (more than {_pct(parameters.max_missing)})")
    row = np.interp(at, x, y, left=np.nan, right=np.nan)
    missing = outside
    gap_note = ""
    if x.size > 1:
        # A gap: finite neighbours with NaN samples between them, too far apart.
        wide = (np.diff(index) > 1) & (np.diff(x) > parameters.max_gap)
        if wide.any():
            left = np.searchsorted(x, at, side="right") - 1
            inside = ~outside & (left >= 0) & (left < x.size - 1)
            in_gap = np.zeros(grid.size, dtype=bool)
            in_gap[inside] = wide[left[inside]] & (at[inside] > x[left[inside]])
            if in_gap.any():
                missing = outside | in_gap
                widths = np.where(wide, np.diff(x), 0.0)
                k = int(np.argmax(widths))
                gap_note = (f"{_pct(in_gap.sum() / grid.size)} in gaps wider than "
                            f"{parameters.max_gap:g} Å (widest {widths[k]:.1f} Å at "
                            f"{_aa(x[k])}-{_aa(x[k + 1])} Å)")
    n_missing = int(missing.sum())
    if n_missing / grid.size > parameters.max_missing:
        details = [gap_note] if gap_note else []
        if n_out:
            details.append(f"{_pct(n_out / grid.size)} outside the spectrum ({_aa(first)}-"
                           f"{_aa(last)} Å)")
        return (f"{_pct(n_missing / grid.size)} of the grid missing (more than "
                f"{_pct(parameters.max_missing)}): {', '.join(details)}")
    if n_missing == grid.size:
        return f"{window}: no grid point falls on the spectrum ({spans})"
    if n_missing:
        _fill_nearest(row, missing)
    return row


def _fill_nearest(row: np.ndarray, missing: np.ndarray) -> None:
    """Give each missing point the value of the nearest point that has one (blue side on ties)."""
    n = row.size
    index = np.arange(n)
    left = np.maximum.accumulate(np.where(missing, -1, index))
    right = np.minimum.accumulate(np.where(missing, n, index)[::-1])[::-1]
    use_right = (left < 0) | ((right < n) & (right - index < index - left))
    source = np.where(use_right, right, left)
    row[missing] = row[source[missing]]


def fit_continuum(wavelength: np.ndarray, flux: np.ndarray, order: int) -> np.ndarray:
    """The continuum of a spectrum: a polynomial fitted with sigma clipping on both sides.

    Parameters
    ----------
    wavelength : numpy.ndarray
        Grid (any increasing axis; mapped onto -1..1).
    flux : numpy.ndarray
        Finite values on the grid.
    order : int
        Order of the Chebyshev polynomial.

    Returns
    -------
    numpy.ndarray
        The fitted continuum on the grid.

    Notes
    -----
    The polynomial is fitted to all points, then points whose residual
    exceeds :data:`CONTINUUM_SIGMA` standard deviations of the kept
    residuals (above: emission lines; below: absorption lines) are left
    out and the fit repeated, at most :data:`CONTINUUM_ITERATIONS` times,
    stopping early when the kept points no longer change or fewer than
    ``order + 2`` would remain.
    """
    cheb = np.polynomial.chebyshev
    low, high = float(wavelength[0]), float(wavelength[-1])
    x = (2.0 * wavelength - (low + high)) / (high - low)
    keep = np.ones(flux.size, dtype=bool)
    coef = cheb.chebfit(x, flux, order)
    for _ in range(CONTINUUM_ITERATIONS):
        residual = flux - cheb.chebval(x, coef)
        sigma = float(residual[keep].std())
        if not sigma > 0:
            break
        new = np.abs(residual) <= CONTINUUM_SIGMA * sigma
        if int(new.sum()) < order + 2 or np.array_equal(new, keep):
            break
        keep = new
        coef = cheb.chebfit(x[keep], flux[keep], order)
    return np.asarray(cheb.chebval(x, coef), dtype=np.float64)


def _normalise(grid: np.ndarray, row: np.ndarray,
               parameters: PreprocessParameters) -> np.ndarray | str:
    """Step 5 of the module docstring: the normalised row, or why not."""
    if parameters.normalisation == "median":
        median = float(np.median(row))
        if not math.isfinite(median):
            return "median flux is not finite"
        if median == 0:
            return "median flux is 0"
        if median < 0:
            return f"median flux is negative ({median:.3g})"
        row = row / median
    elif parameters.normalisation == "continuum":
        continuum = fit_continuum(grid, row, int(parameters.continuum_order))
        lowest = float(continuum.min())
        if not (np.isfinite(continuum).all() and lowest > 0):
            return f"continuum fit is not positive over the window (minimum {lowest:.3g})"
        row = row / continuum
    return row


def process_spectrum(spectrum: Spectrum, grid: np.ndarray,
                     parameters: PreprocessParameters) -> np.ndarray | str:
    """One spectrum on the common grid, normalised; or the reason it is rejected.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum as read.
    grid : numpy.ndarray
        The common grid (vacuum Angstrom), from :func:`make_grid`.
    parameters : PreprocessParameters
        Gap, missing and normalisation settings.

    Returns
    -------
    numpy.ndarray or str
        The float32 row, or the reason (for :class:`Rejected`).
    """
    result = _resample(vacuum_wavelength(spectrum), spectrum.flux, grid, parameters)
    if isinstance(result, str):
        return result
    result = _normalise(grid, result, parameters)
    if isinstance(result, str):
        return result
    with np.errstate(over="ignore", invalid="ignore"):
        row = result.astype(np.float32)
    if not np.isfinite(row).all():
        return "values beyond the float32 range after normalisation"
    return row


# Preparing a set ---------------------------------------------------------------------


def _quiet(fraction: float, message: str) -> None:
    """Progress sink that ignores everything."""


def _read(source: SpectrumSource, rejected: list[Rejected]) -> list[Spectrum] | None:
    """The spectra of a source, or None after recording why they cannot be read."""
    try:
        spectra = source.open()
    except Exception as exc:  # a bad input must not stop the others
        from vo.spectra.readers import SpectrumReadError

        reason = str(exc) if isinstance(exc, SpectrumReadError | OSError | LookupError |
                                        ValueError) else f"{type(exc).__name__}: {exc}"
        rejected.append(Rejected(source.label, reason or type(exc).__name__))
        return None
    if not spectra:
        rejected.append(Rejected(source.label, "no spectrum"))
        return None
    return spectra


def _row_labels(source: SpectrumSource, count: int) -> list[str]:
    if count == 1:
        return [source.label]
    return [f"{source.label}#{number}" for number in range(count)]


class _Progress:
    """Calls ``progress`` about every 1 % of the sources."""

    def __init__(self, report: ProgressFunction, total: int, start: float,
                 share: float) -> None:
        self.report = report
        self.total = max(total, 1)
        self.start = start
        self.share = share
        self.step = max(1, total // 100)

    def __call__(self, done: int, message: str) -> None:
        if done % self.step == 0 or done == self.total:
            self.report(self.start + self.share * done / self.total, message)


def _common_window(sources: Sequence[SpectrumSource], rejected: list[Rejected],
                   unreadable: set[int], progress: _Progress) -> tuple[tuple[float, float], int]:
    """The range all spectra cover, and how many spectra there are (first pass)."""
    low, high = -math.inf, math.inf
    low_from = high_from = ""
    count = 0
    no_flux: list[str] = []
    for number, source in enumerate(sources):
        spans: list[tuple[str, tuple[float, float] | None]]
        if source.coverage is not None:
            spans = [(source.label, source.coverage)]
        else:
            spectra = _read(source, rejected)
            if spectra is None:
                unreadable.add(number)
                spans = []
            else:
                spans = [(label, _finite_span(vacuum_wavelength(s), s.flux))
                         for label, s in zip(_row_labels(source, len(spectra)), spectra,
                                             strict=True)]
                del spectra
        for label, span in spans:
            count += 1
            if span is None:  # rejected in the second pass
                no_flux.append(label)
                continue
            if span[0] > low:
                low, low_from = span[0], label
            if span[1] < high:
                high, high_from = span[1], label
        progress(number + 1, f"found the wavelength range of {number + 1} of "
                             f"{len(sources)} inputs")
    if not math.isfinite(low) or not math.isfinite(high):
        raise ValueError(_nothing_message(
            [*rejected, *(Rejected(label, "no finite flux") for label in no_flux)]))
    if low >= high:
        raise ValueError(
            f"no common wavelength range: {low_from} starts at {_aa(low)} Å, after "
            f"{high_from} ends at {_aa(high)} Å; give a window")
    return (low, high), count


def _nothing_message(rejected: Sequence[Rejected],
                     window: tuple[float, float] | None = None) -> str:
    where = f" in the window {_aa(window[0])}-{_aa(window[1])} Å" if window else ""
    if not rejected:
        return f"no usable spectra{where}: no input spectra"
    quoted = "; ".join(f"{r.label}: {r.reason}" for r in rejected[:_REASONS_QUOTED])
    more = f"; and {len(rejected) - _REASONS_QUOTED} more" if len(rejected) > _REASONS_QUOTED \
        else ""
    return f"no usable spectra{where}: all {len(rejected)} rejected ({quoted}{more})"


def prepare(sources: Sequence[SpectrumSource], parameters: PreprocessParameters, *,
            cache: PreprocessCache | None = None,
            progress: ProgressFunction | None = None) -> PreparedSet:
    """Bring spectra onto one wavelength grid as a float32 matrix (see the module docstring).

    Parameters
    ----------
    sources : sequence of SpectrumSource
        The inputs, in row order.
    parameters : PreprocessParameters
        How to preprocess.
    cache : PreprocessCache, optional
        Looked up first (a hit reads no spectrum); a new set is put there.
    progress : callable, optional
        ``progress(fraction, message)``, called about every 1 % of the inputs.

    Returns
    -------
    PreparedSet
        The rows that survived, in input order, and the rejected inputs.

    Raises
    ------
    ValueError
        For invalid parameters; ``"no usable spectra: ..."`` (quoting the
        first reasons) when every input is rejected; ``"no common
        wavelength range: ..."`` when no window is given and the spectra
        share no range.
    """
    parameters.validate()
    report = progress or _quiet
    key = cache_key(sources, parameters)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            report(1.0, f"found {hit.matrix.shape[0]} preprocessed spectra in the cache")
            return hit
    rejected: list[Rejected] = []
    unreadable: set[int] = set()
    window = parameters.window
    expected = len(sources)
    start = 0.0
    if window is None:
        if not sources:
            raise ValueError(_nothing_message(rejected))
        share = 0.5 if any(s.coverage is None for s in sources) else 0.0
        window, expected = _common_window(sources, rejected, unreadable,
                                          _Progress(report, len(sources), 0.0, share))
        start = share
    window = (float(window[0]), float(window[1]))
    grid = make_grid(window, int(parameters.points), parameters.grid)
    tick = _Progress(report, len(sources), start, 1.0 - start)
    matrix = np.empty((max(expected, 1), grid.size), dtype=np.float32)
    labels: list[str] = []
    dids: list[str | None] = []
    targets: list[str | None] = []
    for number, source in enumerate(sources):
        spectra = None if number in unreadable else _read(source, rejected)
        for label, spectrum in zip(_row_labels(source, len(spectra or ())), spectra or (),
                                   strict=True):
            row = process_spectrum(spectrum, grid, parameters)
            if isinstance(row, str):
                rejected.append(Rejected(label, row))
                continue
            if len(labels) == matrix.shape[0]:
                matrix.resize((matrix.shape[0] + max(16, matrix.shape[0] // 2), grid.size),
                              refcheck=False)
            matrix[len(labels)] = row
            labels.append(label)
            dids.append(source.did if len(spectra or ()) == 1 else None)
            targets.append(spectrum.meta.target)
        del spectra
        tick(number + 1, f"preprocessed {number + 1} of {len(sources)} inputs "
                         f"({len(labels)} spectra kept, {len(rejected)} rejected)")
    if not labels:
        raise ValueError(_nothing_message(rejected, window))
    if matrix.shape[0] != len(labels):
        matrix.resize((len(labels), grid.size), refcheck=False)
    prepared = PreparedSet(wavelength=grid, matrix=matrix, labels=labels, dids=dids,
                           targets=targets, rejected=rejected, cache_key=key, from_cache=False)
    if cache is not None:
        try:
            cache.put(key, prepared)
        except OSError as exc:
            _log.warning("preprocessed set %s not cached: %s", key, exc)
    return prepared


# The cache ---------------------------------------------------------------------------


def _tree_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())


class PreprocessCache:
    """Prepared sets of one user, kept on disk and evicted least recently used first.

    Each entry is a folder named by its :func:`cache_key` holding
    ``matrix.npy`` (mapped into memory on a hit, not read), ``wavelength.npy``
    and ``meta.json`` (labels, DIDs, targets, rejected inputs).  An entry is
    written under a temporary name and renamed into place, so readers never
    see half of one; its ``meta.json`` modification time is its last use.
    A damaged entry counts as a miss and is removed.

    Parameters
    ----------
    root : pathlib.Path
        The user's cache folder, ``$VOCLOUD_HOME/cache/{owner}``; created
        on the first write.
    max_bytes : int
        Most bytes the entries may take together; a set larger than this
        is not cached at all.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self._last_touch = 0

    @classmethod
    def for_owner(cls, config: Config, owner: str) -> PreprocessCache:
        """The cache of a user under ``config.cache_dir`` with ``config.cache_bytes``."""
        return cls(config.cache_dir / owner, config.cache_bytes)

    def _entry(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / key

    def _touch(self, path: Path) -> None:
        now = max(time.time_ns(), self._last_touch + 1000)
        self._last_touch = now
        os.utime(path, ns=(now, now))

    def get(self, key: str) -> PreparedSet | None:
        """The cached set of ``key``, marked as just used; None when absent or damaged."""
        entry = self._entry(key)
        meta_path = entry / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
            matrix = np.load(entry / "matrix.npy", mmap_mode="c")
            wavelength = np.load(entry / "wavelength.npy")
            labels = [str(v) for v in meta["labels"]]
            dids = [None if v is None else str(v) for v in meta["dids"]]
            targets = [None if v is None else str(v) for v in meta["targets"]]
            rejected = [Rejected(str(label), str(reason)) for label, reason in meta["rejected"]]
            if (meta.get("version") != PREPROCESS_VERSION or matrix.dtype != np.float32
                    or matrix.ndim != 2 or wavelength.shape != (matrix.shape[1],)
                    or not len(labels) == len(dids) == len(targets) == matrix.shape[0]):
                raise ValueError("inconsistent entry")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("damaged preprocessing cache entry %s removed: %s", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        try:
            self._touch(meta_path)
        except FileNotFoundError:
            pass  # evicted meanwhile; the mapping stays valid
        return PreparedSet(wavelength=np.asarray(wavelength, dtype=np.float64), matrix=matrix,
                           labels=labels, dids=dids, targets=targets, rejected=rejected,
                           cache_key=key, from_cache=True)

    def put(self, key: str, prepared: PreparedSet) -> None:
        """Store a set under ``key`` (atomically), then evict beyond ``max_bytes``.

        An entry already there (written by another job meanwhile) is kept.
        """
        target = self._entry(key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            np.save(tmp / "matrix.npy", np.ascontiguousarray(prepared.matrix, dtype=np.float32))
            np.save(tmp / "wavelength.npy", np.asarray(prepared.wavelength, dtype=np.float64))
            meta = {"version": PREPROCESS_VERSION, "key": key,
                    "rows": int(prepared.matrix.shape[0]),
                    "points": int(prepared.matrix.shape[1]), "labels": prepared.labels,
                    "dids": prepared.dids, "targets": prepared.targets,
                    "rejected": [[r.label, r.reason] for r in prepared.rejected]}
            (tmp / "meta.json").write_text(json.dumps(meta))
            size = _tree_bytes(tmp)
            if size > self.max_bytes:
                _log.info("preprocessed set %s (%d bytes) exceeds the cache size (%d bytes)",
                          key, size, self.max_bytes)
                return
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / "meta.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        try:
            self._touch(target / "meta.json")
        except FileNotFoundError:
            return
        self.evict(keep=key)

    def _entries(self) -> list[tuple[int, str, int]]:
        """``(last use in ns, key, bytes)`` of every complete entry, least recently used first."""
        found: list[tuple[int, str, int]] = []
        if not self.root.is_dir():
            return found
        for path in self.root.iterdir():
            try:
                if path.name.startswith(".tmp-"):
                    if time.time() - path.stat().st_mtime > _STALE_TMP:
                        shutil.rmtree(path, ignore_errors=True)
                    continue
                if not _KEY.match(path.name) or not path.is_dir():
                    continue
                meta = path / "meta.json"
                if not meta.exists():  # being removed, or left half removed
                    if time.time() - path.stat().st_mtime > _STALE_TMP:
                        shutil.rmtree(path, ignore_errors=True)
                    continue
                found.append((meta.stat().st_mtime_ns, path.name, _tree_bytes(path)))
            except FileNotFoundError:
                continue  # removed by another process meanwhile
        found.sort()
        return found

    def keys(self) -> list[str]:
        """Keys of the entries, least recently used first."""
        return [key for _, key, _ in self._entries()]

    def total_bytes(self) -> int:
        """Bytes the entries take."""
        return sum(size for _, _, size in self._entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used entries until the rest fit in ``max_bytes``.

        Parameters
        ----------
        keep : str, optional
            A key never removed (the entry just written).

        Returns
        -------
        list of str
            The keys removed.
        """
        entries = self._entries()
        total = sum(size for _, _, size in entries)
        removed: list[str] = []
        for _, key, size in entries:
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            shutil.rmtree(self.root / key, ignore_errors=True)
            total -= size
            removed.append(key)
        return removed


# Sources from the store --------------------------------------------------------------


class _FileReader:
    """Reads stored files, keeping the spectra of the file read last.

    The sources of the spectra of one file (one per catalogue row) share
    a reader, so a file holding several spectra is read once when its
    sources come one after the other, as they do in :func:`prepare`.
    """

    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage
        self._key: tuple[str, str] | None = None
        self._spectra: list[Spectrum] = []

    def _spectra_of(self, owner: str, path: str) -> list[Spectrum]:
        if self._key != (owner, path):
            from vo.spectra.readers import read_spectrum

            self._key, self._spectra = None, []
            with self.storage.local_copy(owner, PurePosixPath(path)) as local:
                spectra = read_spectrum(local, name=path)
            self._key, self._spectra = (owner, path), spectra
        return self._spectra

    def all(self, owner: str, path: str) -> list[Spectrum]:
        """Every spectrum of a file."""
        spectra = self._spectra_of(owner, path)
        self._key, self._spectra = None, []
        return spectra

    def one(self, owner: str, path: str, index: int) -> list[Spectrum]:
        """Spectrum ``index`` (0-based, ``ObsCore.spectrum_index``) of a file."""
        spectra = self._spectra_of(owner, path)
        if index >= len(spectra):
            raise LookupError(f"{path}: holds {len(spectra)} spectra, not a spectrum "
                              f"number {index + 1}")
        return [spectra[index]]


class _PackedReader:
    """Reads the rows of one Parquet part file in batches, in order.

    Rows asked for in increasing order cost one pass over the file; the
    file is lent by the storage until its last row has been read.
    """

    def __init__(self, storage: FileStorage, owner: str, path: PurePosixPath, rows: int,
                 batch_size: int = PACKED_BATCH) -> None:
        self.storage = storage
        self.owner = owner
        self.path = path
        self.rows = rows
        self.batch_size = batch_size
        self._stack: ExitStack | None = None
        self._batches: Generator[list[Spectrum], None, None] | None = None
        self._batch: list[Spectrum] = []
        self._start = 0
        self._local = ""

    def _restart(self) -> None:
        from vo.spectra.packing import iter_parquet_batches

        self.close()
        stack = ExitStack()
        local = stack.enter_context(self.storage.local_copy(self.owner, self.path))
        self._stack, self._local = stack, str(local)
        self._batches = cast(Generator[list["Spectrum"], None, None],
                             iter_parquet_batches(local, self.batch_size))

    def close(self) -> None:
        """Let go of the file."""
        if self._batches is not None:
            self._batches.close()
        self._batches, self._batch, self._start = None, [], 0
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def row(self, index: int) -> list[Spectrum]:
        """The spectrum of row ``index`` (0-based), as a list of one."""
        try:
            if not self._start <= index < self._start + len(self._batch):
                if self._batches is None or index < self._start:
                    self._restart()
                assert self._batches is not None
                while index >= self._start + len(self._batch):
                    self._start += len(self._batch)
                    try:
                        self._batch = next(self._batches)
                    except StopIteration:
                        raise LookupError(f"{self.path.as_posix()}: no row {index}") from None
            spectrum = self._batch[index - self._start]
        except ValueError as exc:  # PackedFormatError names the local file
            local = self._local
            self.close()
            if not local:
                raise
            raise ValueError(str(exc).replace(local, self.path.as_posix())) from None
        except BaseException:
            self.close()
            raise
        if index == self.rows - 1:
            self.close()
        return [spectrum]


def _service_error(what: str, path: str, exc: Exception) -> ValueError:
    from uws_service.errors import NotFound

    if isinstance(exc, NotFound):
        return ValueError(f"{what} {path!r}: no such file or folder in your store")
    return ValueError(f"{what} {path!r}: {exc}")


def _lookup(files: FileService, owner: Principal, path: str, what: str,
            tree: str | None = None) -> FileMeta:
    from uws_service.errors import ServiceError

    try:
        return files.lookup(owner, tree or owner.name, path.strip("/"))
    except ServiceError as exc:
        raise _service_error(what, path, exc) from None


def _tree_of(files: FileService, owner: Principal, folder: str) -> tuple[Principal, str]:
    """Whose tree a folder is in: ``~{user}/{path}`` names another user's, else the owner's.

    Reading another user's tree goes through the same access rules as
    ``/files``: only what is public or shared with the owner is seen.
    """
    if not folder.startswith("~"):
        return owner, folder
    name, _, rest = folder[1:].strip("/").partition("/")
    tree = files.principal(name) if name else None
    if tree is None:
        raise ValueError(f"folder {folder!r}: no such file or folder in your store")
    return tree, rest


def _coverage(em_min: float | None, em_max: float | None,
              medium: str | None) -> tuple[float, float] | None:
    """A catalogue row's wavelength range (metres, in its medium) as vacuum Angstrom."""
    if em_min is None or em_max is None:
        return None
    span = np.array([em_min, em_max], dtype=np.float64) * 1e10
    if medium == "air":
        span = _air_to_vacuum(span)
    if not np.isfinite(span).all():
        return None
    return float(span[0]), float(span[1])


def _batched(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _IN_BATCH):
        yield values[start:start + _IN_BATCH]


def _folder_sources(files: FileService, owner: Principal, folder: str, recursive: bool,
                    pattern: str) -> tuple[list[SpectrumSource], list[Rejected]]:
    from sqlalchemy import select

    from uws_service.errors import ServiceError
    from uws_service.models import FileNode, ObsCore

    tree, folder = _tree_of(files, owner, folder)
    top = _lookup(files, owner, folder, "folder", tree.name)
    found: list[FileMeta] = []
    if top.is_dir:
        pending = [top]
        while pending:
            current = pending.pop()
            for entry in files.listing(owner, current):
                if entry.is_dir:
                    if recursive:
                        pending.append(entry)
                elif fnmatch.fnmatchcase(entry.name, pattern):
                    found.append(entry)
    else:
        found.append(top)
    found.sort(key=lambda meta: meta.path.as_posix())
    rejected: list[Rejected] = []
    metas: list[FileMeta] = []
    for meta in found:
        if meta.sha256 is None:  # no row yet, or a stale one: checksum and catalogue it
            try:
                meta = files.lookup(owner, tree.name, meta.path.as_posix())
            except ServiceError as exc:
                rejected.append(Rejected(meta.path.as_posix(), exc.message))
                continue
        metas.append(meta)
    rows: dict[str, list[Any]] = {}
    paths = [m.path.as_posix() for m in metas if m.spectra]
    with files.database.read() as session:
        for batch in _batched(paths):
            for row in session.execute(
                    select(FileNode.path, ObsCore.spectrum_index, ObsCore.obs_publisher_did,
                           ObsCore.em_min, ObsCore.em_max, ObsCore.em_medium)
                    .join(ObsCore, ObsCore.node_id == FileNode.id)
                    .where(FileNode.owner_id == tree.id, FileNode.path.in_(batch))):
                rows.setdefault(row.path, []).append(row)
    reader = _FileReader(files.storage)
    sources: list[SpectrumSource] = []
    for meta in metas:
        path = meta.path.as_posix()
        checksum = str(meta.sha256)
        if meta.spectra is None:
            rejected.append(Rejected(path, "not a spectrum file (not a format the catalogue "
                                           "reads: FITS, VOTable, CSV or text)"))
        elif meta.catalogue_error:
            rejected.append(Rejected(path, meta.catalogue_error))
        elif meta.spectra == 0:
            rejected.append(Rejected(path, "no spectrum in the file"))
        elif path in rows:
            for row in sorted(rows[path], key=lambda r: r.spectrum_index):
                sources.append(SpectrumSource(
                    label=row.obs_publisher_did, did=row.obs_publisher_did, checksum=checksum,
                    open=partial(reader.one, tree.name, path, row.spectrum_index),
                    coverage=_coverage(row.em_min, row.em_max, row.em_medium)))
        else:
            sources.append(SpectrumSource(label=path, did=None, checksum=checksum,
                                          open=partial(reader.all, tree.name, path)))
    return sources, rejected


def _did_sources(files: FileService, owner: Principal,
                 dids: Sequence[str]) -> tuple[list[SpectrumSource], list[Rejected]]:
    from sqlalchemy import select

    from uws_service.models import FileNode, FileShare, ObsCore, Visibility

    wanted = list(dict.fromkeys(d.strip() for d in dids if d and d.strip()))
    found: dict[str, Any] = {}
    shared: set[int] = set()
    with files.database.read() as session:
        for batch in _batched(wanted):
            for record in session.execute(
                    select(ObsCore.obs_publisher_did, ObsCore.spectrum_index, ObsCore.owner,
                           ObsCore.owner_id, ObsCore.node_id, ObsCore.em_min, ObsCore.em_max,
                           ObsCore.em_medium, FileNode.path, FileNode.sha256,
                           FileNode.visibility)
                    .join(FileNode, ObsCore.node_id == FileNode.id)
                    .where(ObsCore.obs_publisher_did.in_(batch))):
                found[record.obs_publisher_did] = record
        nodes = sorted({record.node_id for record in found.values()
                        if record.visibility == Visibility.SHARED})
        for start in range(0, len(nodes), _IN_BATCH):
            shared.update(session.scalars(select(FileShare.node_id).where(
                FileShare.user_id == owner.id,
                FileShare.node_id.in_(nodes[start:start + _IN_BATCH]))))
    reader = _FileReader(files.storage)
    sources: list[SpectrumSource] = []
    rejected: list[Rejected] = []
    for did in wanted:
        row: Any = found.get(did)
        readable = row is not None and (
            owner.is_admin or row.owner_id == owner.id or row.visibility == Visibility.PUBLIC
            or (row.visibility == Visibility.SHARED and row.node_id in shared))
        if row is None or not readable:
            rejected.append(Rejected(did, "no such spectrum"))
            continue
        checksum = row.sha256
        if checksum is None:
            try:
                checksum = files.storage.checksums(row.owner, PurePosixPath(row.path)).sha256
            except (OSError, ValueError):
                rejected.append(Rejected(did, "no such spectrum"))
                continue
        sources.append(SpectrumSource(
            label=did, did=did, checksum=checksum,
            open=partial(reader.one, row.owner, row.path, row.spectrum_index),
            coverage=_coverage(row.em_min, row.em_max, row.em_medium)))
    return sources, rejected


def _parquet_rows(storage: FileStorage, owner: str, path: PurePosixPath) -> int:
    """Rows of a packed part file, after checking it is one (raises ValueError, OSError)."""
    import pyarrow.parquet as pq

    from vo.spectra.packing import iter_parquet_batches

    with storage.local_copy(owner, path) as local:
        try:
            batches = iter_parquet_batches(local, batch_size=1)
            next(iter(batches), None)
            getattr(batches, "close", lambda: None)()
            handle = pq.ParquetFile(local)
            try:
                return int(handle.metadata.num_rows)
            finally:
                handle.close()
        except ValueError as exc:
            raise ValueError(str(exc).replace(str(local), path.as_posix())) from None


def _packed_sources(files: FileService, owner: Principal,
                    packed: str) -> tuple[list[SpectrumSource], list[Rejected]]:
    from uws_service.errors import ServiceError

    top = _lookup(files, owner, packed, "packed data set")
    if top.is_dir:
        parts = sorted((m for m in files.listing(owner, top)
                        if not m.is_dir and m.name.endswith(".parquet")
                        and not m.name.startswith(("_", "."))),
                       key=lambda m: m.name)
        if not parts:
            raise ValueError(f"packed data set {packed!r}: no Parquet files in this folder")
    else:
        parts = [top]
    sources: list[SpectrumSource] = []
    rejected: list[Rejected] = []
    for part in parts:
        name = part.path.as_posix()
        try:
            meta = part if part.sha256 is not None else \
                files.lookup(owner, owner.name, name)
            rows = _parquet_rows(files.storage, owner.name, meta.path)
        except ServiceError as exc:
            rejected.append(Rejected(name, exc.message))
            continue
        except (OSError, ValueError) as exc:
            rejected.append(Rejected(name, str(exc)))
            continue
        reader = _PackedReader(files.storage, owner.name, meta.path, rows)
        sources.extend(SpectrumSource(label=f"{name}#{row}", did=None,
                                      checksum=f"{meta.sha256}:{row}",
                                      open=partial(reader.row, row))
                       for row in range(rows))
    return sources, rejected


def sources_from_store(files: FileService, owner: Principal, *, folder: str | None = None,
                       recursive: bool = True, pattern: str = "*",
                       dids: Sequence[str] | None = None,
                       packed: str | None = None) -> tuple[list[SpectrumSource], list[Rejected]]:
    """The inputs of :func:`prepare` from a user's store or from the catalogue.

    Parameters
    ----------
    files : FileService
        The store (``FileService.from_config``).
    owner : Principal
        The job's owner; only what they may read is used.
    folder : str, optional
        A folder of the owner's tree (or one file): every file in it (and
        below, with ``recursive``) whose name matches ``pattern``, in path
        order.  A file the catalogue knows gives one source per spectrum,
        labelled by its DID; files of other formats, and files the
        catalogue could not read, are rejected with the reason.
    recursive : bool
        With ``folder``: include sub-folders.
    pattern : str
        With ``folder``: glob on the file name (``fnmatch``, case-sensitive).
    dids : sequence of str, optional
        Catalogue ``obs_publisher_did`` values, in order (repeats are left
        out).  A DID is used when the owner owns the spectrum, it is
        public, or it is shared with the owner (an admin may use any);
        anything else, unknown DIDs included, is rejected as ``"no such
        spectrum"``.
    packed : str, optional
        A Parquet data set of the owner's tree (a folder of part files, or
        one ``.parquet`` file, as the ``pack`` job writes): one source per
        row, labelled ``{part path}#{row}``, checksum the part file's
        SHA-256 and the row.

    Returns
    -------
    tuple of (list of SpectrumSource, list of Rejected)
        The inputs, and what was left out before reading any spectrum.

    Raises
    ------
    ValueError
        Unless exactly one of ``folder``, ``dids``, ``packed`` is given;
        for a folder or data set that is not in the owner's tree.
    """
    given = [name for name, value in (("folder", folder), ("dids", dids), ("packed", packed))
             if value is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of folder, dids or packed"
                         + (f" (got {', '.join(given)})" if given else ""))
    if folder is not None:
        return _folder_sources(files, owner, folder, recursive, pattern)
    if dids is not None:
        if isinstance(dids, str):
            dids = [dids]
        return _did_sources(files, owner, dids)
    assert packed is not None
    return _packed_sources(files, owner, packed)
