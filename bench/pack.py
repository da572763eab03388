"""Benchmark of bulk packing: reading many small FITS spectra versus the packed data set.

What is measured
----------------
``--count`` small spectra (default 100000; ``--pixels`` samples each,
default 500, float64 WAVE/FLUX/ERR) are written as FITS binary tables laid
out exactly like :func:`vo.spectra.writers.write_fits_table` writes them
(metadata in the primary and the table header).  Generating them is not
timed; they are written straight from a template (astropy headers, NumPy
big-endian rows, all CPUs) because ``write_fits_table`` takes about 7 ms a
file, and cached under ``--workdir`` (default ``/tmp/vocloud-bench-pack``)
in a folder keyed by count, pixels and seed, so a rerun starts at once.
Every 37th spectrum has NaN pixels (flux and error), so missing data
travels through every path.

Then, in this order, each timed with :func:`time.perf_counter`:

(a) **FITS**: every file read one by one with
    :func:`vo.spectra.readers.read_spectrum` (which really reads the data:
    the arrays are copied out of the file, nothing lazily opened), in file
    order.
(p) **packing**: the spectra of (a) written as a Parquet data set with
    :func:`vo.spectra.packing.write_parquet`; packing FITS -> Parquet costs
    (a) + (p), both printed.  Likewise the Avro file with
    :func:`vo.spectra.packing.write_avro`.
(b) **Parquet**: the data set read back with :func:`vo.spectra.packing.read_parquet`.
(c) **Avro**: the container file read back with :func:`vo.spectra.packing.read_avro`.

The three lists are checked equal: same length and order, and for every
spectrum ``np.array_equal`` (NaN positions included) on wavelength, flux
and error, and equal metadata.  The first 200 spectra of (a) are also
checked against the generated values, so the FITS files hold what was meant.
All reads are from a warm page cache (the files were just written or read):
the comparison is of decoding work, not of disk speed.

Target (from the issue): reading the packed set at least 50x faster than
the FITS files, ratio = (spectra/s of (b)) / (spectra/s of (a)), MET when
>= 50.  The Avro ratio is printed beside it for information.  The exit
status is 0 either way (this is a measurement), unless the lists differ.
The last line of output is all figures as one JSON object.

Run: ``.venv/bin/python bench/pack.py --count 100000`` (load average and
CPU count are printed with the figures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vo.spectra.model import Spectrum, SpectrumMeta  # noqa: E402
from vo.spectra.packing import (  # noqa: E402 - needs ROOT on sys.path when run as a script
    read_avro,
    read_parquet,
    write_avro,
    write_parquet,
)
from vo.spectra.readers import read_spectrum  # noqa: E402
from vo.spectra.writers import write_fits_table  # noqa: E402

TARGET_RATIO = 50.0
FILES_PER_FOLDER = 1000
CHUNK = 2000
_BLOCK = 2880
_MJD0 = dt.datetime(1858, 11, 17)


# Generation ----------------------------------------------------------------------------


def make_spectrum(index: int, pixels: int, seed: int) -> Spectrum:
    """The ``index``-th synthetic spectrum (deterministic per ``seed``).

    A continuum near 1 with one Gaussian emission or absorption line, photon-like
    noise and its error; every 37th spectrum has five NaN pixels.
    """
    rng = np.random.default_rng([seed, index])
    start = 6250.0 + rng.uniform(-5.0, 5.0)
    wave = start + 0.25 * np.arange(pixels, dtype=np.float64)
    centre = start + 0.25 * pixels * rng.uniform(0.3, 0.7)
    line = rng.uniform(-0.5, 2.0) * np.exp(-0.5 * ((wave - centre) / rng.uniform(1.0, 5.0)) ** 2)
    snr = float(round(rng.uniform(20.0, 300.0), 3))
    model = 1.0 + line
    error = np.sqrt(np.maximum(model, 0.05)) / snr
    flux = model + rng.normal(0.0, 1.0, pixels) * error
    if index % 37 == 0:
        gap = int(rng.integers(0, pixels - 5))
        flux[gap:gap + 5] = np.nan
        error[gap:gap + 5] = np.nan
    lamost = index % 2 == 1
    meta = SpectrumMeta(
        id=f"bench-{index:07d}", target=f"HD {int(rng.integers(1, 225301))}",
        ra=round(float(rng.uniform(0.0, 360.0)), 6), dec=round(float(rng.uniform(-10.0, 80.0)), 6),
        mjd=round(float(rng.uniform(55000.0, 60500.0)), 6),
        exposure=600.0 if lamost else float(round(rng.uniform(300.0, 3600.0))),
        instrument="LAMOST MRS" if lamost else "CCD700 coude spectrograph",
        telescope="LAMOST" if lamost else "Ondrejov 2m Perek", medium="air",
        frame="heliocentric", extra={"snr": snr})
    return Spectrum(wave, flux, error, meta)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % _BLOCK)


def _templates(pixels: int, seed: int) -> tuple[fits.Header, fits.Header]:
    """Primary and table headers as ``write_fits_table`` writes them."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"vocloud-bench-template-{os.getpid()}.fits"
    write_fits_table(make_spectrum(0, pixels, seed), path)
    with fits.open(path) as hdus:
        primary, table = hdus[0].header.copy(), hdus[1].header.copy()
    path.unlink()
    return primary, table


def _write_chunk(args: tuple[Path, int, int, int, int]) -> int:
    """Write spectra ``first .. first + n - 1`` as FITS tables; returns how many."""
    folder, first, n, pixels, seed = args
    primary, table = _templates(pixels, seed)
    rows = np.empty(pixels, dtype=[("WAVE", ">f8"), ("FLUX", ">f8"), ("ERR", ">f8")])
    for index in range(first, first + n):
        spectrum = make_spectrum(index, pixels, seed)
        meta = spectrum.meta
        assert meta.mjd is not None and spectrum.error is not None
        date = (_MJD0 + dt.timedelta(days=meta.mjd)).isoformat(timespec="milliseconds")
        values = {"OBSID": meta.id, "OBJECT": meta.target, "RA": meta.ra, "DEC": meta.dec,
                  "MJD-OBS": meta.mjd, "DATE-OBS": date, "EXPTIME": meta.exposure,
                  "INSTRUME": meta.instrument, "TELESCOP": meta.telescope,
                  "SNR": meta.extra["snr"]}
        for header in (primary, table):
            for key, value in values.items():
                header[key] = value
        rows["WAVE"] = spectrum.wavelength
        rows["FLUX"] = spectrum.flux
        rows["ERR"] = spectrum.error
        blob = (_pad(primary.tostring().encode("ascii")) + _pad(table.tostring().encode("ascii"))
                + _pad(rows.tobytes()))
        fits_path(folder, index).write_bytes(blob)
    return n


def fits_path(folder: Path, index: int) -> Path:
    """Where the ``index``-th FITS file lives (1000 files per subfolder)."""
    return folder / f"{index // FILES_PER_FOLDER:04d}" / f"bench-{index:07d}.fits"


def ensure_fits(workdir: Path, count: int, pixels: int, seed: int) -> tuple[Path, float, bool]:
    """The cached FITS folder, generating it first when missing or incomplete.

    Returns
    -------
    tuple
        The folder, seconds spent generating (0 when cached), whether it was cached.
    """
    folder = workdir / f"fits-n{count}-p{pixels}-s{seed}"
    marker = folder / "complete.json"
    if marker.exists():
        return folder, 0.0, True
    shutil.rmtree(folder, ignore_errors=True)
    for sub in range((count + FILES_PER_FOLDER - 1) // FILES_PER_FOLDER):
        (folder / f"{sub:04d}").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(folder, first, min(CHUNK, count - first), pixels, seed)
            for first in range(0, count, CHUNK)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        written = sum(pool.map(_write_chunk, jobs))
    elapsed = time.perf_counter() - start
    marker.write_text(json.dumps({"count": written, "pixels": pixels, "seed": seed}))
    return folder, elapsed, False


# Checks --------------------------------------------------------------------------------


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b, equal_nan=True))


def first_difference(left: Sequence[Spectrum], right: Sequence[Spectrum],
                     *, meta: bool = True) -> str | None:
    """Where two lists of spectra differ (None when equal, NaN positions included)."""
    if len(left) != len(right):
        return f"{len(left)} spectra against {len(right)}"
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        for name in ("wavelength", "flux", "error"):
            if not _same_array(getattr(a, name), getattr(b, name)):
                return f"spectrum {i} ({a.meta.id}): {name} differs"
        if meta and a.meta != b.meta:
            return f"spectrum {i} ({a.meta.id}): metadata differs: {a.meta} != {b.meta}"
    return None


def check_generated(spectra: Sequence[Spectrum], pixels: int, seed: int,
                    n: int = 200) -> str | None:
    """Compare the first ``n`` spectra read from FITS with freshly generated ones."""
    expected = [make_spectrum(i, pixels, seed) for i in range(min(n, len(spectra)))]
    problem = first_difference(spectra[: len(expected)], expected, meta=False)
    if problem:
        return problem
    for got, want in zip(spectra, expected, strict=False):
        for name in ("id", "target", "ra", "dec", "mjd", "exposure", "telescope"):
            if getattr(got.meta, name) != getattr(want.meta, name):
                return f"{want.meta.id}: {name} {getattr(got.meta, name)!r} read from FITS"
    return None


# Main ----------------------------------------------------------------------------------


def _timed(label: str, func: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    print(f"   {label} ...", end="", flush=True)
    start = time.perf_counter()
    result = func(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f" {elapsed:.2f} s", flush=True)
    return result, elapsed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=100_000, help="number of FITS spectra")
    parser.add_argument("--pixels", type=int, default=500, help="samples per spectrum")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated spectra")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vocloud-bench-pack"),
                        help="cache of generated FITS files and packed outputs")
    parser.add_argument("--rows-per-file", type=int, default=100_000,
                        help="spectra per Parquet file")
    args = parser.parse_args(argv)
    if args.count < 1 or args.pixels < 10:
        parser.error("--count must be at least 1 and --pixels at least 10")

    print(f"== bulk packing: {args.count} FITS spectra of {args.pixels} pixels "
          f"(seed {args.seed}), {os.cpu_count()} CPUs")
    folder, gen_s, cached = ensure_fits(args.workdir, args.count, args.pixels, args.seed)
    print(f"   FITS files in {folder} ({'cached' if cached else f'generated in {gen_s:.1f} s'}"
          f", {_size(folder) / 1e6:.0f} MB)")
    paths = [fits_path(folder, i) for i in range(args.count)]
    packed = args.workdir / f"packed-n{args.count}-p{args.pixels}-s{args.seed}"
    packed.mkdir(parents=True, exist_ok=True)
    parquet_dir, avro_path = packed / "parquet", packed / "spectra.avro"
    load_before = os.getloadavg()

    def read_all_fits() -> list[Spectrum]:
        out: list[Spectrum] = []
        for path in paths:
            out.extend(read_spectrum(path))
        return out

    fits_spectra, fits_s = _timed("(a) read FITS one by one (read_spectrum)", read_all_fits)
    _, parquet_write_s = _timed("(p) write Parquet data set (write_parquet)", write_parquet,
                                fits_spectra, parquet_dir, rows_per_file=args.rows_per_file,
                                overwrite=True)
    _, avro_write_s = _timed("    write Avro file (write_avro)", write_avro, fits_spectra,
                             avro_path)
    parquet_spectra, parquet_s = _timed("(b) read Parquet data set (read_parquet)",
                                        read_parquet, parquet_dir)
    avro_spectra, avro_s = _timed("(c) read Avro file (read_avro)", read_avro, avro_path)
    load_after = os.getloadavg()

    problems = {
        "fits_vs_generated": check_generated(fits_spectra, args.pixels, args.seed),
        "parquet_vs_fits": first_difference(fits_spectra, parquet_spectra),
        "avro_vs_fits": first_difference(fits_spectra, avro_spectra),
    }
    equal = not any(problems.values())
    n = len(fits_spectra)
    rates = {"fits": n / fits_s, "parquet": n / parquet_s, "avro": n / avro_s}
    ratio = rates["parquet"] / rates["fits"]
    avro_ratio = rates["avro"] / rates["fits"]
    sizes = {"fits": _size(folder) - (folder / "complete.json").stat().st_size,
             "parquet": _size(parquet_dir), "avro": _size(avro_path)}

    print(f"   load average before {' '.join(f'{v:.2f}' for v in load_before)}, "
          f"after {' '.join(f'{v:.2f}' for v in load_after)}")
    print(f"\n   {'read':<34} {'seconds':>9} {'spectra/s':>11} {'MB on disk':>11}")
    for label, key, seconds in (("(a) FITS files, read_spectrum", "fits", fits_s),
                                ("(b) Parquet data set, read_parquet", "parquet", parquet_s),
                                ("(c) Avro file, read_avro", "avro", avro_s)):
        print(f"   {label:<34} {seconds:>9.2f} {rates[key]:>11.0f} {sizes[key] / 1e6:>11.1f}")
    print(f"\n   packing FITS -> Parquet: {fits_s + parquet_write_s:.2f} s "
          f"(read FITS {fits_s:.2f} s + write_parquet {parquet_write_s:.2f} s, "
          f"{n / parquet_write_s:.0f} spectra/s written)")
    print(f"   packing FITS -> Avro:    {fits_s + avro_write_s:.2f} s "
          f"(read FITS {fits_s:.2f} s + write_avro {avro_write_s:.2f} s, "
          f"{n / avro_write_s:.0f} spectra/s written)")
    print(f"   same spectra in (a), (b), (c): {'yes' if equal else 'NO'} ({n} spectra, "
          "same order, wavelength/flux/error array_equal incl. NaN, metadata equal)")
    for name, problem in problems.items():
        if problem:
            print(f"   ! {name}: {problem}")

    print("\n== targets")
    print(f"   {'target':<52} {'ratio':>7}  verdict")
    print(f"   {'packed set read >= 50x faster than FITS (Parquet)':<52} {ratio:>7.1f}  "
          f"{_verdict(ratio >= TARGET_RATIO)}")
    print(f"   {'  for information: Avro file against FITS':<52} {avro_ratio:>7.1f}  "
          f"{_verdict(avro_ratio >= TARGET_RATIO)}")

    result = {
        "bench": "pack", "cpus": os.cpu_count(), "count": n, "pixels": args.pixels,
        "seed": args.seed, "fits_cached": cached, "generate_s": round(gen_s, 2),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "read_s": {"fits": round(fits_s, 3), "parquet": round(parquet_s, 3),
                   "avro": round(avro_s, 3)},
        "spectra_per_s": {k: round(v, 1) for k, v in rates.items()},
        "write_s": {"parquet": round(parquet_write_s, 3), "avro": round(avro_write_s, 3)},
        "pack_parquet_s": round(fits_s + parquet_write_s, 3),
        "bytes": sizes, "equal": equal, "problems": {k: v for k, v in problems.items() if v},
        "ratio_parquet_vs_fits": round(ratio, 2), "ratio_avro_vs_fits": round(avro_ratio, 2),
        "target_ratio": TARGET_RATIO, "target": _verdict(ratio >= TARGET_RATIO),
    }
    print(json.dumps(result, separators=(",", ":")))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
