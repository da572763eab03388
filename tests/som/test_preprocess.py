"""Preprocessing for the ``som`` job (DESIGN "Spectra and SOM", "Store and catalogue").

Spectra come to vacuum before they are compared, land on one linear or
log grid, are normalised, and gaps and missing coverage are interpolated
or rejected with a reason.  Prepared sets are cached under a hash of the
inputs' DIDs and checksums, the parameters and the code version, with LRU
eviction.  Inputs come from a real store on SQLite: a folder, catalogue
DIDs (own, public, shared, someone else's private) and packed Parquet sets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from jobs.preprocess import (
    PREPROCESS_VERSION,
    PreparedSet,
    PreprocessCache,
    PreprocessParameters,
    Rejected,
    SpectrumSource,
    cache_key,
    prepare,
    sources_from_store,
    vacuum_wavelength,
)
from tests.conftest import Template, make_config
from uws_service.filestore import FileService
from uws_service.models import FileNode, ObsCore
from uws_service.users import Principal
from vo.spectra import readers
from vo.spectra.demo import generate_collection, write_collection
from vo.spectra.media import air_to_vacuum
from vo.spectra.model import Spectrum, SpectrumMeta
from vo.spectra.packing import write_parquet
from vo.spectra.readers import read_spectrum

DID = re.compile(r"^ivo://vocloud\.local/vocloud\?[0-9a-f-]{36}$")
H_ALPHA_AIR = 6562.80


def _spectrum(wave: np.ndarray, flux: np.ndarray, medium: str | None = "vacuum",
              target: str | None = None) -> Spectrum:
    return Spectrum(wave, flux, meta=SpectrumMeta(medium=medium,  # type: ignore[arg-type]
                                                  target=target))


class Counted:
    """A source factory that counts how often spectra are read."""

    def __init__(self) -> None:
        self.opens = 0

    def source(self, label: str, spectrum: Spectrum, checksum: str = "c0") -> SpectrumSource:
        def open_() -> list[Spectrum]:
            self.opens += 1
            return [spectrum]
        return SpectrumSource(label=label, did=None, checksum=checksum, open=open_)


def _sources(spectra: list[Spectrum], counter: Counted | None = None) -> list[SpectrumSource]:
    counter = counter or Counted()
    return [counter.source(f"s{i}", s, f"sum{i}") for i, s in enumerate(spectra)]


def _file_sources(paths: list[Path]) -> list[SpectrumSource]:
    def opener(path: Path) -> Callable[[], list[Spectrum]]:
        return lambda: read_spectrum(path)
    return [SpectrumSource(label=p.name, did=None,
                           checksum=hashlib.sha256(p.read_bytes()).hexdigest(),
                           open=opener(p)) for p in paths]


def _line(wave: np.ndarray, centre: float, height: float, sigma: float) -> np.ndarray:
    return np.asarray(height * np.exp(-0.5 * ((wave - centre) / sigma) ** 2))


# Parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"points": 1}, "points must be an integer of at least 2"),
    ({"window": (6600.0, 6500.0)}, "window low (6600 Å) must be below high (6500 Å)"),
    ({"window": (6500.0,)}, "window must be two wavelengths"),
    ({"grid": "cubic"}, "grid must be one of linear, log"),
    ({"normalisation": "max"}, "normalisation must be one of none, median, continuum"),
    ({"continuum_order": -1}, "continuum_order must be an integer from 0 to 10"),
    ({"max_gap": -1.0}, "max_gap must be a finite number"),
    ({"max_missing": 1.5}, "max_missing must be a fraction from 0 to 1"),
])
def test_invalid_parameters_are_refused_clearly(kwargs: dict[str, object],
                                                message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        PreprocessParameters(**kwargs).validate()  # type: ignore[arg-type]


def test_window_given_as_a_list_becomes_a_tuple() -> None:
    parameters = PreprocessParameters(window=[6500, 6600])  # type: ignore[arg-type]
    parameters.validate()
    assert parameters.window == (6500, 6600)
    assert parameters.key()["window"] == [6500.0, 6600.0]


# Processing -------------------------------------------------------------------------


def test_air_wavelengths_are_brought_to_vacuum_at_h_alpha() -> None:
    wave = np.arange(6500.0, 6620.0, 0.05)
    flux = 1.0 + _line(wave, H_ALPHA_AIR, 2.0, 1.0)
    parameters = PreprocessParameters(window=(6540.0, 6590.0), points=5001,
                                      normalisation="none")
    prepared = prepare(_sources([_spectrum(wave, flux, "air"), _spectrum(wave, flux, "vacuum"),
                                 _spectrum(wave, flux, None)]), parameters)
    excess = prepared.matrix.astype(np.float64) - 1.0
    centres = (excess * prepared.wavelength).sum(axis=1) / excess.sum(axis=1)
    assert centres[0] == pytest.approx(float(air_to_vacuum(H_ALPHA_AIR)), abs=0.01)
    assert centres[0] - centres[1] == pytest.approx(1.81, abs=0.01)
    assert centres[2] == pytest.approx(centres[1], abs=1e-6)  # unknown medium: as given
    assert centres[1] == pytest.approx(H_ALPHA_AIR, abs=0.01)


def test_air_below_2000_angstrom_stays_vacuum() -> None:
    wave = np.arange(1800.0, 2200.0, 0.5)
    spectrum = _spectrum(wave, np.ones_like(wave), "air")
    vacuum = vacuum_wavelength(spectrum)
    below = wave < 2000.0
    np.testing.assert_array_equal(vacuum[below], wave[below])
    np.testing.assert_allclose(vacuum[~below], air_to_vacuum(wave[~below]))
    assert np.all(np.diff(vacuum) > 0)


def test_several_spectra_of_one_source_get_numbered_rows() -> None:
    wave = np.arange(6500.0, 6600.0, 0.5)
    many = [_spectrum(wave, np.full(wave.size, 1.0 + i), target=f"t{i}") for i in range(40)]
    reads = Counted()

    def open_bundle() -> list[Spectrum]:
        reads.opens += 1
        return many

    source = SpectrumSource("bundle.fits", did=None, checksum="b", open=open_bundle)
    single = reads.source("one", _spectrum(wave, np.ones_like(wave)))
    prepared = prepare([source, single], PreprocessParameters(
        window=(6510.0, 6590.0), points=50, normalisation="none"))
    assert prepared.matrix.shape == (41, 50) and prepared.matrix.flags.c_contiguous
    assert prepared.labels == [*(f"bundle.fits#{i}" for i in range(40)), "one"]
    assert prepared.targets[:2] == ["t0", "t1"] and prepared.dids == [None] * 41
    np.testing.assert_array_equal(prepared.matrix[:, 0], [*(1.0 + i for i in range(40)), 1.0])
    assert reads.opens == 2


def test_linear_and_log_grids() -> None:
    wave = np.linspace(6000.0, 7000.0, 4001)
    spectra = [_spectrum(wave, 1.0 + 0.0001 * (wave - 6000.0))]
    linear = prepare(_sources(spectra), PreprocessParameters(window=(6100.0, 6900.0),
                                                             points=801, grid="linear"))
    assert linear.wavelength[0] == 6100.0 and linear.wavelength[-1] == 6900.0
    np.testing.assert_allclose(np.diff(linear.wavelength), 1.0, rtol=1e-9)
    log = prepare(_sources(spectra), PreprocessParameters(window=(6100.0, 6900.0),
                                                          points=801, grid="log"))
    assert log.wavelength[0] == 6100.0 and log.wavelength[-1] == 6900.0
    steps = np.diff(np.log(log.wavelength))
    np.testing.assert_allclose(steps, np.log(6900.0 / 6100.0) / 800, rtol=1e-6)
    assert np.diff(log.wavelength)[-1] > np.diff(log.wavelength)[0] * 1.1
    for prepared in (linear, log):
        assert prepared.matrix.dtype == np.float32 and prepared.matrix.flags.c_contiguous
        assert prepared.matrix.shape == (1, 801)
        assert prepared.wavelength.dtype == np.float64


def test_normalisations() -> None:
    wave = np.arange(6400.0, 6800.0, 0.25)
    continuum = 2.0 + 0.002 * (wave - 6400.0)
    flux = continuum + _line(wave, 6563.0, 3.0, 2.0) - _line(wave, 6678.0, 0.8, 1.5)
    spectrum = _spectrum(wave, flux)
    window = (6450.0, 6750.0)

    def run(normalisation: str) -> PreparedSet:
        return prepare(_sources([spectrum]), PreprocessParameters(
            window=window, points=1201, normalisation=normalisation))  # type: ignore[arg-type]

    none = run("none")
    np.testing.assert_allclose(none.matrix[0], np.interp(none.wavelength, wave, flux),
                               rtol=1e-6)
    median = run("median")
    assert float(np.median(median.matrix[0])) == pytest.approx(1.0, rel=1e-6)
    fitted = run("continuum")
    w, row = fitted.wavelength, fitted.matrix[0].astype(np.float64)
    free = (np.abs(w - 6563.0) > 12) & (np.abs(w - 6678.0) > 10)
    np.testing.assert_allclose(row[free], 1.0, atol=0.005)
    peak = 1.0 + 3.0 / (2.0 + 0.002 * (6563.0 - 6400.0))
    assert row[np.argmin(np.abs(w - 6563.0))] == pytest.approx(peak, rel=0.01)
    dip = 1.0 - 0.8 / (2.0 + 0.002 * (6678.0 - 6400.0))
    assert row[np.argmin(np.abs(w - 6678.0))] == pytest.approx(dip, rel=0.01)


def test_median_that_is_not_positive_rejects_the_spectrum() -> None:
    wave = np.arange(6500.0, 6600.0, 0.5)
    spectra = [_spectrum(wave, np.zeros_like(wave)), _spectrum(wave, -np.ones_like(wave)),
               _spectrum(wave, np.ones_like(wave))]
    prepared = prepare(_sources(spectra), PreprocessParameters(window=(6510.0, 6590.0)))
    assert prepared.labels == ["s2"]
    assert prepared.rejected == [Rejected("s0", "median flux is 0"),
                                 Rejected("s1", "median flux is negative (-1)")]


def test_short_gaps_are_interpolated_long_ones_missing() -> None:
    wave = np.arange(6480.0, 6620.0, 0.25)
    ramp = 1.0 + 0.001 * (wave - 6500.0)
    parameters = PreprocessParameters(window=(6500.0, 6600.0), points=401,
                                      normalisation="none", max_gap=5.0, max_missing=0.1)

    def with_gap(low: float, high: float) -> Spectrum:
        flux = ramp.copy()
        flux[(wave >= low) & (wave <= high)] = np.nan
        return _spectrum(wave, flux)

    prepared = prepare(_sources([with_gap(6550.0, 6553.0), with_gap(6550.0, 6558.0),
                                 with_gap(6520.0, 6580.0)]), parameters)
    assert prepared.labels == ["s0", "s1"]
    grid = prepared.wavelength
    # 3 Å gap: interpolated across, linear like the ramp.
    np.testing.assert_allclose(prepared.matrix[0], 1.0 + 0.001 * (grid - 6500.0), rtol=1e-6)
    # 8 Å gap (8 % of the grid): kept, each missing point takes its nearest neighbour.
    inside = (grid > 6549.75) & (grid < 6558.25)
    row = prepared.matrix[1]
    edges = {float(row[np.flatnonzero(inside)[0] - 1]), float(row[np.flatnonzero(inside)[-1] + 1])}
    assert set(row[inside].tolist()) == edges
    np.testing.assert_allclose(row[~inside], 1.0 + 0.001 * (grid[~inside] - 6500.0), rtol=1e-6)
    [rejected] = prepared.rejected
    assert rejected.label == "s2"
    assert rejected.reason.startswith("60.1% of the grid missing (more than 10%): ")
    assert "in gaps wider than 5 Å (widest 60.5 Å at 6519.75-6580.25 Å)" in rejected.reason


def test_partial_coverage_is_filled_or_rejected() -> None:
    def ending_at(last: float) -> Spectrum:
        wave = np.arange(6400.0, last + 0.01, 0.25)
        return _spectrum(wave, 1.0 + 0.001 * (wave - 6500.0))

    parameters = PreprocessParameters(window=(6500.0, 6600.0), points=101,
                                      normalisation="none", max_missing=0.1)
    prepared = prepare(_sources([ending_at(6595.0), ending_at(6580.0)]), parameters)
    assert prepared.labels == ["s0"]
    row = prepared.matrix[0]
    assert np.all(row[-5:] == row[-6])  # 6596..6600 take the value at 6595
    assert prepared.rejected == [Rejected(
        "s1", "window 6500-6600 Å not covered enough: spectrum spans 6400-6580 Å, 19.8% of "
              "the grid outside it (more than 10%)")]


def test_window_outside_the_data_rejects_every_spectrum(tmp_path: Path) -> None:
    paths = write_collection(tmp_path / "demo", generate_collection(4, seed=7))
    parameters = PreprocessParameters(window=(9000.0, 9100.0))
    with pytest.raises(ValueError, match=r"^no usable spectra in the window 9000-9100 Å: "
                                         r"all 4 rejected") as caught:
        prepare(_file_sources(paths), parameters)
    message = str(caught.value)
    for path in paths:
        assert f"{path.name}: window 9000-9100 Å not covered: spectrum spans 62" in message


def test_window_from_the_data_is_the_common_range(tmp_path: Path) -> None:
    spectra = generate_collection(4, seed=4)
    paths = write_collection(tmp_path / "demo", spectra)
    counter = Counted()
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a spectrum")
    sources = _file_sources([*paths, junk])
    counted = [counter.source(s.label, s.open()[0]) if s.label != "junk.fits" else s
               for s in sources]
    reports: list[tuple[float, str]] = []
    prepared = prepare(counted, PreprocessParameters(points=500),
                       progress=lambda f, m: reports.append((f, m)))
    assert counter.opens == 8  # two passes: the range first, then the rows
    low = max(float(air_to_vacuum(6250.0)), float(spectra[1].wavelength[0]))
    assert prepared.wavelength[0] == pytest.approx(low, abs=1e-6)
    assert prepared.matrix.shape == (4, 500)
    assert np.isfinite(prepared.matrix).all()
    assert prepared.targets == [s.meta.target for s in spectra]
    assert [r.label for r in prepared.rejected] == ["junk.fits"]
    assert "junk.fits" in prepared.rejected[0].reason
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_nothing_in_common_is_an_error() -> None:
    blue = np.arange(5000.0, 5100.0, 1.0)
    red = np.arange(6000.0, 6100.0, 1.0)
    with pytest.raises(ValueError, match=r"no common wavelength range: s1 starts at 6000 Å, "
                                         r"after s0 ends at 5099 Å; give a window"):
        prepare(_sources([_spectrum(blue, np.ones(100)), _spectrum(red, np.ones(100))]),
                PreprocessParameters())


# The cache --------------------------------------------------------------------------


def test_cache_hit_reads_no_spectrum_and_changes_miss(tmp_path: Path) -> None:
    spectra = generate_collection(5, seed=11)
    spectra[2].flux[:] = 0.0  # rejected: median flux is 0
    counter = Counted()
    sources = [counter.source(f"s{i}", s, f"sum{i}") for i, s in enumerate(spectra)]
    cache = PreprocessCache(tmp_path / "cache" / "alice", 10**8)
    parameters = PreprocessParameters(window=(6300.0, 6700.0), points=300)

    first = prepare(sources, parameters, cache=cache)
    assert (first.from_cache, counter.opens) == (False, 5)
    assert first.rejected == [Rejected("s2", "median flux is 0")]
    assert first.cache_key == cache_key(sources, parameters)
    assert cache.keys() == [first.cache_key]

    second = prepare(sources, parameters, cache=cache)
    assert (second.from_cache, counter.opens) == (True, 5)
    assert second.cache_key == first.cache_key
    np.testing.assert_array_equal(second.matrix, first.matrix)
    np.testing.assert_array_equal(second.wavelength, first.wavelength)
    assert second.matrix.dtype == np.float32 and second.matrix.flags.c_contiguous
    assert (second.labels, second.dids, second.targets, second.rejected) == \
        (first.labels, first.dids, first.targets, first.rejected)
    second.matrix[0, 0] = 42.0  # copy-on-write: the cached file stays as it was
    third = cache.get(first.cache_key)
    assert third is not None and third.matrix[0, 0] == first.matrix[0, 0]

    other = prepare(sources, dataclasses.replace(parameters, points=301), cache=cache)
    assert (other.from_cache, counter.opens) == (False, 10)
    changed = [*sources[:4], counter.source("s4", spectra[4], "sum4-modified")]
    assert prepare(changed, parameters, cache=cache).from_cache is False
    assert counter.opens == 15
    assert len(cache.keys()) == 3


def test_cache_key_covers_inputs_parameters_and_version() -> None:
    counter = Counted()
    wave = np.arange(6500.0, 6600.0)
    a = counter.source("a", _spectrum(wave, np.ones(100)), "x")
    b = counter.source("b", _spectrum(wave, np.ones(100)), "y")
    base = PreprocessParameters()
    key = cache_key([a, b], base)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert cache_key([b, a], base) != key
    assert cache_key([a, dataclasses.replace(b, did="ivo://x/y")], base) != key
    for change in ({"window": (6500.0, 6600.0)}, {"grid": "log"}, {"max_gap": 4.0},
                   {"max_missing": 0.2}, {"normalisation": "continuum"}):
        assert cache_key([a, b], dataclasses.replace(base, **change)) != key  # type: ignore
    # The continuum order only matters for the continuum normalisation.
    assert cache_key([a, b], dataclasses.replace(base, continuum_order=3)) == key
    continuum = dataclasses.replace(base, normalisation="continuum")
    assert cache_key([a, b], dataclasses.replace(continuum, continuum_order=3)) != \
        cache_key([a, b], continuum)
    assert PREPROCESS_VERSION == "1"


def _fake_set(value: float) -> PreparedSet:
    return PreparedSet(wavelength=np.linspace(6500.0, 6600.0, 100),
                       matrix=np.full((20, 100), value, dtype=np.float32),
                       labels=[f"r{i}" for i in range(20)], dids=[None] * 20,
                       targets=[None] * 20, rejected=[], cache_key="", from_cache=False)


def test_cache_evicts_the_least_recently_used(tmp_path: Path) -> None:
    keys = [hashlib.sha256(name.encode()).hexdigest() for name in "abcd"]
    probe = PreprocessCache(tmp_path / "probe", 10**9)
    probe.put(keys[0], _fake_set(0.0))
    size = probe.total_bytes()
    cache = PreprocessCache(tmp_path / "cache", int(2.5 * size))
    cache.put(keys[0], _fake_set(0.0))
    cache.put(keys[1], _fake_set(1.0))
    assert cache.get(keys[0]) is not None  # now a is the most recently used
    cache.put(keys[2], _fake_set(2.0))
    assert cache.keys() == [keys[0], keys[2]]
    assert cache.get(keys[1]) is None
    assert cache.total_bytes() <= cache.max_bytes
    hit = cache.get(keys[2])
    assert hit is not None and float(hit.matrix[0, 0]) == 2.0
    cache.put(keys[3], _fake_set(3.0))
    assert cache.keys() == [keys[2], keys[3]]
    # A set larger than the whole cache is not kept; a damaged entry is a miss.
    PreprocessCache(tmp_path / "small", size // 2).put(keys[0], _fake_set(0.0))
    assert PreprocessCache(tmp_path / "small", size // 2).keys() == []
    (cache.root / keys[3] / "matrix.npy").write_bytes(b"damaged")
    assert cache.get(keys[3]) is None
    assert cache.keys() == [keys[2]]
    with pytest.raises(ValueError, match="not a cache key"):
        cache.get("../../etc")


# Sources from the store -------------------------------------------------------------


@dataclasses.dataclass
class Store:
    files: FileService
    users: dict[str, Principal]

    def put(self, user: str, path: str, data: bytes) -> None:
        self.files.put(self.users[user], user, path, [data])

    def did(self, user: str, path: str, index: int = 0) -> str:
        with self.files.database.read() as session:
            return str(session.scalars(
                select(ObsCore.obs_publisher_did).join(FileNode, ObsCore.node_id == FileNode.id)
                .where(ObsCore.owner == user, FileNode.path == path,
                       ObsCore.spectrum_index == index)).one())


@pytest.fixture
def store(tmp_path: Path, _template: Template) -> Store:
    config = make_config(tmp_path / "home")
    config.home.mkdir(parents=True)
    shutil.copyfile(_template.database, config.home / "vocloud.db")
    files = FileService.from_config(config)
    users = {name: files.principal(name) for name in ("alice", "bob", "carol")}
    return Store(files, {name: user for name, user in users.items() if user is not None})


def test_folder_sources_label_by_did_and_reject_with_reasons(store: Store,
                                                             tmp_path: Path) -> None:
    spectra = generate_collection(5, seed=3)
    paths = write_collection(tmp_path / "demo", spectra)
    for path in paths[:4]:
        store.put("alice", f"night/{path.name}", path.read_bytes())
    store.put("alice", f"night/deeper/{paths[4].name}", paths[4].read_bytes())
    store.put("alice", "night/notes.json", b'{"seeing": 1.2}')
    store.put("alice", "night/broken.fits", b"SIMPLE  = not FITS at all")
    alice = store.users["alice"]

    sources, rejected = sources_from_store(store.files, alice, folder="night")
    names = [f"night/deeper/{paths[4].name}", *(f"night/{p.name}" for p in paths[:4])]
    assert len(sources) == 5  # in path order
    for source, name, path in zip(sources, names, [paths[4], *paths[:4]], strict=True):
        assert source.did == source.label == store.did("alice", name)
        assert DID.match(source.label)
        assert source.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
        assert source.coverage is not None
    by_label = {r.label: r.reason for r in rejected}
    assert set(by_label) == {"night/notes.json", "night/broken.fits"}
    assert by_label["night/notes.json"].startswith("not a spectrum file")
    assert "broken.fits" in by_label["night/broken.fits"]

    flat, _ = sources_from_store(store.files, alice, folder="/night/", recursive=False)
    assert len(flat) == 4
    fits_only, skipped = sources_from_store(store.files, alice, folder="night",
                                            pattern="demo-*")
    assert len(fits_only) == 5 and skipped == []

    prepared = prepare(sources, PreprocessParameters(points=400))
    assert prepared.labels == prepared.dids == [s.label for s in sources]
    assert prepared.targets == [s.meta.target for s in (spectra[4], *spectra[:4])]
    # The window from the catalogue's ranges equals the one found by reading every file.
    unknown = [dataclasses.replace(s, coverage=None) for s in sources]
    read_all = prepare(unknown, PreprocessParameters(points=400))
    np.testing.assert_allclose(prepared.wavelength, read_all.wavelength, rtol=1e-12)
    np.testing.assert_allclose(prepared.matrix, read_all.matrix, rtol=1e-5)

    with pytest.raises(ValueError, match="folder 'nowhere': no such file or folder"):
        sources_from_store(store.files, alice, folder="nowhere")
    with pytest.raises(ValueError, match="give exactly one of folder, dids or packed"):
        sources_from_store(store.files, alice, folder="night", packed="x")


def test_a_file_of_several_spectra_is_read_once(store: Store, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    wave = np.linspace(6400.0, 6700.0, 600)
    table = fits.BinTableHDU.from_columns([
        fits.Column(name="WAVE", format="600D", array=np.vstack([wave, wave, wave])),
        fits.Column(name="FLUX", format="600D",
                    array=np.vstack([np.full(600, 1.0), np.full(600, 2.0), np.zeros(600)]))])
    path = tmp_path / "multi.fits"
    table.writeto(path)
    store.put("alice", "multi/three.fits", path.read_bytes())
    sources, rejected = sources_from_store(store.files, store.users["alice"], folder="multi")
    dids = [store.did("alice", "multi/three.fits", index) for index in range(3)]
    assert [s.did for s in sources] == dids and rejected == []
    calls: list[str] = []
    real = readers.read_spectrum

    def spy(source: object, *, name: str | None = None) -> list[Spectrum]:
        calls.append(str(name))
        return real(source, name=name)  # type: ignore[arg-type]

    monkeypatch.setattr(readers, "read_spectrum", spy)
    prepared = prepare(sources, PreprocessParameters(window=(6450.0, 6650.0), points=100))
    assert calls == ["multi/three.fits"]
    assert prepared.dids == dids[:2]
    assert prepared.rejected == [Rejected(dids[2], "median flux is 0")]


def test_folder_of_another_user_follows_their_access(store: Store, tmp_path: Path) -> None:
    """``~bob/obs`` reads bob's folder as alice may see it: nothing while it is private,
    everything once public, and only the shared part when shared with her."""
    paths = write_collection(tmp_path / "demo", generate_collection(3, seed=4))
    for path in paths:
        store.put("bob", f"obs/{path.name}", path.read_bytes())
    store.put("bob", "obs/private/x.fits", paths[0].read_bytes())
    alice = store.users["alice"]
    with pytest.raises(ValueError, match="no such file or folder"):
        sources_from_store(store.files, alice, folder="~bob/obs")
    with pytest.raises(ValueError, match="no such file or folder"):
        sources_from_store(store.files, alice, folder="~nobody/obs")
    store.files.share(store.users["bob"], None, "obs", ["alice"], recursive=False)
    for path in paths:
        store.files.share(store.users["bob"], None, f"obs/{path.name}", ["alice"])
    sources, rejected = sources_from_store(store.files, alice, folder="~bob/obs")
    assert sorted(s.did for s in sources) == sorted(
        store.did("bob", f"obs/{p.name}") for p in paths)
    assert rejected == []
    store.files.change_visibility(store.users["bob"], None, "obs", "public", recursive=True)
    sources, _ = sources_from_store(store.files, alice, folder="~bob/obs")
    assert len(sources) == len(paths) + 1


def test_did_sources_follow_ownership_visibility_and_sharing(store: Store,
                                                            tmp_path: Path) -> None:
    paths = write_collection(tmp_path / "demo", generate_collection(4, seed=9))
    store.put("alice", "mine/a.fits", paths[0].read_bytes())
    store.put("bob", "pub/b.fits", paths[1].read_bytes())
    store.put("carol", "team/c.fits", paths[2].read_bytes())
    store.put("bob", "secret/d.fits", paths[3].read_bytes())
    store.files.change_visibility(store.users["bob"], None, "pub", "public", recursive=True)
    store.files.share(store.users["carol"], None, "team", ["alice"])
    own, public, shared, private = (store.did("alice", "mine/a.fits"),
                                    store.did("bob", "pub/b.fits"),
                                    store.did("carol", "team/c.fits"),
                                    store.did("bob", "secret/d.fits"))
    unknown = "ivo://vocloud.local/vocloud?00000000-0000-0000-0000-000000000000"

    sources, rejected = sources_from_store(
        store.files, store.users["alice"], dids=[shared, own, unknown, public, private, own])
    assert [s.label for s in sources] == [shared, own, public]
    assert [s.did for s in sources] == [shared, own, public]
    assert rejected == [Rejected(unknown, "no such spectrum"),
                        Rejected(private, "no such spectrum")]
    prepared = prepare(sources, PreprocessParameters(points=200))
    assert prepared.dids == [shared, own, public]
    expected = [read_spectrum(p)[0].meta.target for p in (paths[2], paths[0], paths[1])]
    assert prepared.targets == expected
    # Bob reads his own private spectrum but not Carol's, shared with Alice only.
    bob_sources, bob_rejected = sources_from_store(store.files, store.users["bob"],
                                                   dids=[private, shared])
    assert [s.did for s in bob_sources] == [private]
    assert bob_rejected == [Rejected(shared, "no such spectrum")]


def test_packed_sources_one_per_row(store: Store, tmp_path: Path) -> None:
    spectra = generate_collection(5, seed=13)
    parts = write_parquet(spectra, tmp_path / "set", rows_per_file=3)
    assert len(parts) == 2
    for part in parts:
        store.put("alice", f"sets/spectra.parquet/{part.name}", part.read_bytes())
    store.put("alice", "sets/junk.parquet", b"PAR1 but not really")
    alice = store.users["alice"]

    sources, rejected = sources_from_store(store.files, alice, packed="sets/spectra.parquet")
    assert rejected == []
    assert [s.label for s in sources] == [
        f"sets/spectra.parquet/{parts[0].name}#0", f"sets/spectra.parquet/{parts[0].name}#1",
        f"sets/spectra.parquet/{parts[0].name}#2", f"sets/spectra.parquet/{parts[1].name}#0",
        f"sets/spectra.parquet/{parts[1].name}#1"]
    sums = [hashlib.sha256(p.read_bytes()).hexdigest() for p in parts]
    assert [s.checksum for s in sources] == [f"{sums[0]}:0", f"{sums[0]}:1", f"{sums[0]}:2",
                                             f"{sums[1]}:0", f"{sums[1]}:1"]
    assert all(s.did is None for s in sources)
    parameters = PreprocessParameters(points=300)
    packed = prepare(sources, parameters)
    direct = prepare(_sources(spectra), parameters)
    np.testing.assert_array_equal(packed.matrix, direct.matrix)
    assert packed.targets == [s.meta.target for s in spectra]

    single, _ = sources_from_store(store.files, alice,
                                   packed=f"sets/spectra.parquet/{parts[1].name}")
    assert len(single) == 2
    none, bad = sources_from_store(store.files, alice, packed="sets/junk.parquet")
    assert none == [] and [r.label for r in bad] == ["sets/junk.parquet"]
    assert "sets/junk.parquet" in bad[0].reason and str(tmp_path) not in bad[0].reason
