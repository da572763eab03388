"""Benchmark of SOM training: the vocloud engine versus minisom, somoclu and xpysom.

What is measured
----------------
One synthetic set of ``--n`` spectra (default 10000) of ``--d`` float32 points
(default 1000) is trained on a ``--rows`` x ``--columns`` map (default 20 x 20)
for ``--epochs`` epochs (default 10) by every backend of ``--backends``, one
after the other, each in a fresh subprocess:

``vocloud``
    :func:`jobs.som_engine.train_som`, whose time includes its PCA start and the
    final assignment with both errors (the others are handed that start, untimed).
``minisom``
    three trainings of MiniSom for the same number of epochs: ``train(data,
    epochs, random_order=..., use_epochs=True)`` in data order (``train_batch``'s
    order) and in random order (``train_random``'s), ``N * epochs`` single-sample
    updates each, and ``train_batch_offline(data, epochs)`` (Kohonen's batch
    algorithm, one sample at a time).  The fastest is "minisom" in the ratios.
    Before them, a short probe (``min(N, 2000)`` steps) picks minisom's fastest
    setting: glibc tuned with
    ``MALLOC_MMAP_THRESHOLD_=64 MiB`` + ``MALLOC_TRIM_THRESHOLD_=256 MiB`` (its
    per-sample temporaries can otherwise make glibc map and unmap memory each step)
    unless glibc's defaults are more than 5% faster, and float64 or float32 weights.
``somoclu``
    ``Somoclu(...).train`` (dense CPU kernel, OpenMP), when it is installed with its
    compiled core.
``xpysom``
    ``XPySom(..., xp=numpy).train`` (its CPU mode), when it is installed.

Equal work: every backend starts from the engine's own PCA codebook, uses a
Gaussian neighbourhood ``exp(-d^2 / 2 sigma^2)`` on the rectangular grid without
cut-off, and the same per-epoch schedules ``sigma_t = sigma_start * (sigma_end /
sigma_start) ** (t / (epochs - 1))``, likewise for the learning rate.  minisom takes
them as decay functions (the sigma one set on the object, since its constructor
only accepts names); somoclu and xpysom cool as ``start * (end / start) ** (t /
epochs)``, so they are given the ``end`` that makes this the same sequence, and
``std_coeff=1`` (their Gaussian is ``exp(-d^2 / 2 (std_coeff sigma)^2)``).  The batch
algorithms of vocloud, somoclu and xpysom replace each prototype by a weighted
mean, which no learning rate changes; minisom's online trainings use it, and its
offline one blends old and new prototypes with it.
Quantization and topographic errors of every codebook are computed by
:func:`jobs.som_engine.quantization_error` and :func:`~jobs.som_engine.topographic_error`
on the same data, so they compare like for like.

Time is the training call alone (data generation, imports and the start codebook
excluded); s/epoch is that time / epochs.  Peak memory is the peak RSS during
training minus the RSS after imports, taken before the data are made, so the
data count once: ``x input`` is that peak over ``N * D * 4`` bytes.  The data are
made in 512-row chunks, freed heap is returned (``malloc_trim``) and the kernel's
high-water mark is reset once they exist (``/proc/self/clear_refs``), so the peak
is training's own; where the kernel refuses the reset, the peak covers making the
data too (the table says which).

The float32 matrix-product rate is timed with ``np.dot`` of
``(chunk_size, D) x (D, K)`` blocks, shaped as the engine's distance products,
and of square 2048^3 products; the machine's rate is the faster.  The distance
products of one epoch alone take ``2 * N * D * K / rate`` seconds; the engine's
epoch is the mean of its own per-epoch times (``SOMResult.epoch_seconds``).

A second run of the engine alone on ``--large-n`` spectra (default 200000)
reports its time, per-epoch time and peak memory.

Targets (issue 4): at least 50x faster than minisom (its fastest training), 20x
faster than somoclu and not slower than xpysom (ratio = their time / ours), each at
equal or lower quantization error (ours at most 0.5% above theirs: equivalent
float32 batch trainings already differ by about 0.2%); peak memory under 3x the
input matrix; an epoch at most 2x its distance products at the machine's rate.
The exit status is 0 either way (this is a measurement), unless the engine fails.
The last line of output is all figures as one JSON object.

Run: ``.venv/bin/python bench/som.py`` (``--quick`` for a smoke run at tiny sizes).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKENDS = ("vocloud", "minisom", "somoclu", "xpysom")
MINISOM_MODES = ("batch", "random", "offline")
#: The glibc settings that keep minisom's per-sample temporaries off mmap/munmap.
MINISOM_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "268435456"}
TARGET_MINISOM = 50.0
TARGET_SOMOCLU = 20.0
TARGET_XPYSOM = 1.0
TARGET_MEMORY = 3.0
TARGET_GEMM = 2.0
#: "Equal" quantization error: ours at most this much (relative) above the other's.  The same
#: batch algorithm differs by about 0.2% between float32 implementations (rounding changes a
#: few BMUs, and the maps drift apart from there).
QE_TOLERANCE = 5e-3
#: A minisom setting other than the malloc-tuned one is chosen only when faster by this much.
PROBE_MARGIN = 0.05
GEN_CHUNK = 512

# Synthetic spectra --------------------------------------------------------------------

HALPHA = 6562.8
C_KMS = 299792.458
HALF_WIDTH = 62.5  # Angstrom either side of H-alpha
#: The uniform parameters of a spectrum, in column order: absorption depth, FWHM (Angstrom)
#: and Lorentz fraction; emission height over the continuum, FWHM and Lorentz fraction; peak
#: separation (km/s), ln(V/R), emission FWHM per separation, core height per absorption
#: depth, and height per peak (1: each of two peaks; 0.5: the two halves of one peak).
PARAMETERS = ("depth", "fwhm", "eta", "height", "efwhm", "eeta", "sep", "lnvr", "frac",
              "core", "peak")
_DEFAULT_RANGE = {"fwhm": (1.0, 1.0), "efwhm": (1.0, 1.0), "peak": (0.5, 0.5)}
_PHOTOSPHERE = {"depth": (0.0, 0.15), "fwhm": (5.0, 10.0), "eta": (0.5, 0.5)}
_DOUBLE = {**_PHOTOSPHERE, "height": (0.3, 1.5), "efwhm": (0.0, 0.0), "eeta": (0.0, 0.3),
           "lnvr": (-0.4, 0.4), "frac": (0.5, 0.9), "peak": (1.0, 1.0)}
_CORE = {"depth": (0.3, 0.6), "fwhm": (6.0, 14.0), "eta": (0.3, 0.7), "efwhm": (1.0, 2.5),
         "eeta": (0.0, 0.3)}
#: (low, high) of each class's parameters; any not named is :data:`_DEFAULT_RANGE` or 0.
CLASS_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "emission-single-weak": {**_PHOTOSPHERE, "height": (0.3, 1.0), "efwhm": (2.0, 5.0),
                             "eeta": (0.0, 0.5)},
    "emission-single-strong": {**_PHOTOSPHERE, "height": (1.5, 4.0), "efwhm": (3.0, 8.0),
                               "eeta": (0.0, 0.5)},
    "emission-double-narrow": {**_DOUBLE, "sep": (60.0, 150.0)},
    "emission-double-wide": {**_DOUBLE, "sep": (200.0, 400.0)},
    "absorption-shallow": {"depth": (0.15, 0.3), "fwhm": (10.0, 18.0), "eta": (0.3, 0.7)},
    "absorption-deep": {"depth": (0.4, 0.65), "fwhm": (4.0, 9.0), "eta": (0.3, 0.7)},
    "absorption-weak-core": {**_CORE, "core": (0.2, 0.5)},
    "absorption-strong-core": {**_CORE, "core": (0.8, 1.4)},
}
#: The profile classes of the synthetic set, in label order.
CLASSES = tuple(CLASS_RANGES)
_P = np.array([[ranges.get(name, _DEFAULT_RANGE.get(name, (0.0, 0.0))) for name in PARAMETERS]
               for ranges in CLASS_RANGES.values()], dtype=np.float32)


def _pseudo_voigt(x: np.ndarray, centre: np.ndarray, fwhm: np.ndarray,
                  eta: np.ndarray) -> np.ndarray:
    """Unit-height pseudo-Voigt profiles, one per row (all arguments broadcast)."""
    z2 = np.square((x - centre) / fwhm)
    gauss = np.exp(np.float32(-4.0 * math.log(2.0)) * z2)
    return eta / (1.0 + 4.0 * z2) + (1.0 - eta) * gauss


def make_spectra(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic H-alpha spectra of ``d`` float32 points, and their class labels.

    Eight classes (:data:`CLASSES`): single- and double-peaked emission,
    absorption, and absorption with an emission core, two of each, as
    pseudo-Voigt profiles over a gently sloped continuum near 1, shifted by a
    radial velocity of -80..+80 km/s, with photon-like noise (S/N 20-300,
    log-uniform).  The grid is ``d`` points over H-alpha +- 62.5 Angstrom.
    Made in chunks of :data:`GEN_CHUNK` rows, each from its own seed
    ``[seed, chunk]``, so the first rows of a larger set are the smaller set.
    """
    out = np.empty((n, d), dtype=np.float32)
    labels = np.empty(n, dtype=np.int8)
    x = np.linspace(-HALF_WIDTH, HALF_WIDTH, d, dtype=np.float32)[None, :]
    low, span = _P[:, :, 0], _P[:, :, 1] - _P[:, :, 0]
    for chunk, first in enumerate(range(0, n, GEN_CHUNK)):
        m = min(GEN_CHUNK, n - first)
        rng = np.random.default_rng([seed, chunk])
        # Full-chunk draws, so that a set's first rows never depend on its length.
        cls = rng.integers(0, len(CLASSES), GEN_CHUNK)[:m]
        p = low[cls] + span[cls] * rng.random((GEN_CHUNK, _P.shape[1]), dtype=np.float32)[:m]
        col = [p[:, i:i + 1] for i in range(_P.shape[1])]
        depth, fwhm, eta, height, efwhm, eeta, sep_kms, lnvr, frac, core, peak = col
        extra = rng.random((GEN_CHUNK, 3), dtype=np.float32)[:m]
        centre = (extra[:, 0:1] * 160.0 - 80.0) * np.float32(HALPHA / C_KMS)
        snr = np.exp(np.float32(math.log(20.0)) + extra[:, 1:2] * np.float32(math.log(15.0)))
        slope = extra[:, 2:3] * 0.06 - 0.03
        sep = sep_kms * np.float32(HALPHA / C_KMS)
        efwhm = efwhm + frac * sep
        height = (height + core * depth) * peak
        ratio = np.exp(lnvr)
        blue = height * (2.0 * ratio / (1.0 + ratio))
        red = height * (2.0 / (1.0 + ratio))
        model = 1.0 + slope * (x / np.float32(HALF_WIDTH))
        model -= depth * _pseudo_voigt(x, centre, fwhm, eta)
        model += blue * _pseudo_voigt(x, centre - sep / 2, efwhm, eeta)
        model += red * _pseudo_voigt(x, centre + sep / 2, efwhm, eeta)
        noise = rng.standard_normal((GEN_CHUNK, d), dtype=np.float32)[:m]
        noise *= np.sqrt(np.maximum(model, np.float32(0.05))) / snr
        np.add(model, noise, out=out[first:first + m])
        labels[first:first + m] = cls
    return out, labels


# Memory -------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; False where refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 1024


def _malloc_trim() -> None:
    """Give freed heap back to the system (glibc), so data generation leaves nothing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# Schedules ----------------------------------------------------------------------------


def scheduled(start: float, end: float, t: int, epochs: int) -> float:
    """The engine's per-epoch value: ``start * (end / start) ** (t / (epochs - 1))``."""
    if epochs <= 1:
        return start
    return start * (end / start) ** (t / (epochs - 1))


def end_for_per_epochs_cooling(start: float, end: float, epochs: int) -> float:
    """The ``end`` that makes ``start * (end / start) ** (t / epochs)`` match :func:`scheduled`.

    somoclu's and xpysom's exponential cooling divide by ``epochs``, not
    ``epochs - 1``: with this end their sequence for t = 0 .. epochs - 1 is the
    engine's.
    """
    if epochs <= 1:
        return start
    return start * (end / start) ** (epochs / (epochs - 1))


# Workers (each backend in its own process) --------------------------------------------


def _decay(end: float) -> Callable[[float, int, int], float]:
    """A minisom decay function following :func:`scheduled` (``t``: epoch; ``max_iter``: epochs)."""

    def decay(start: float, t: int, max_iter: int) -> float:
        return scheduled(start, end, t, max_iter)

    return decay


def _train_vocloud(data: np.ndarray, init: np.ndarray | None, spec: dict[str, Any],
                   modules: dict[str, Any]) -> tuple[np.ndarray, float, dict[str, Any]]:
    engine = modules["engine"]
    parameters = engine.SOMParameters(**spec["parameters"])
    start = time.perf_counter()
    result = engine.train_som(data, parameters)
    seconds = time.perf_counter() - start
    extra = {"epoch_seconds": [float(s) for s in result.epoch_seconds],
             "quantization_error": float(result.quantization_error),
             "topographic_error": float(result.topographic_error)}
    return np.asarray(result.codebook, dtype=np.float32), seconds, extra


def _train_minisom(data: np.ndarray, init: np.ndarray | None, spec: dict[str, Any],
                   modules: dict[str, Any]) -> tuple[np.ndarray, float, dict[str, Any]]:
    assert init is not None
    s = spec["schedule"]
    rows, columns, epochs = spec["rows"], spec["columns"], spec["epochs"]
    som = modules["minisom"].MiniSom(
        rows, columns, data.shape[1], sigma=s["sigma_start"], learning_rate=s["lr_start"],
        decay_function=_decay(s["lr_end"]), neighborhood_function="gaussian",
        topology="rectangular", activation_distance="euclidean", random_seed=spec["seed"])
    som._sigma_decay_function = _decay(s["sigma_end"])  # its constructor takes names only
    som._weights = init.astype(spec["minisom_dtype"], copy=True)
    mode = spec["minisom_mode"]
    start = time.perf_counter()
    if mode == "offline":
        som.train_batch_offline(data, epochs)
    else:
        som.train(data, epochs, random_order=mode == "random", use_epochs=True)
    seconds = time.perf_counter() - start
    return np.asarray(som.get_weights(), dtype=np.float32), seconds, {}


def _train_somoclu(data: np.ndarray, init: np.ndarray | None, spec: dict[str, Any],
                   modules: dict[str, Any]) -> tuple[np.ndarray, float, dict[str, Any]]:
    assert init is not None
    s = spec["schedule"]
    rows, columns, epochs = spec["rows"], spec["columns"], spec["epochs"]
    codebook = np.array(init.reshape(rows * columns, -1), dtype=np.float32, order="C")
    som = modules["somoclu"].Somoclu(
        columns, rows, initialcodebook=codebook, kerneltype=0, maptype="planar",
        gridtype="rectangular", compactsupport=False, neighborhood="gaussian",
        std_coeff=1.0, verbose=0)
    start = time.perf_counter()
    som.train(data, epochs,
              radius0=s["sigma_start"],
              radiusN=end_for_per_epochs_cooling(s["sigma_start"], s["sigma_end"], epochs),
              radiuscooling="exponential",
              scale0=s["lr_start"],
              scaleN=end_for_per_epochs_cooling(s["lr_start"], s["lr_end"], epochs),
              scalecooling="exponential")
    seconds = time.perf_counter() - start
    return np.asarray(som.codebook, dtype=np.float32).reshape(rows, columns, -1), seconds, {}


def _train_xpysom(data: np.ndarray, init: np.ndarray | None, spec: dict[str, Any],
                  modules: dict[str, Any]) -> tuple[np.ndarray, float, dict[str, Any]]:
    assert init is not None
    s = spec["schedule"]
    rows, columns, epochs = spec["rows"], spec["columns"], spec["epochs"]
    som = modules["xpysom"].XPySom(
        rows, columns, data.shape[1], sigma=s["sigma_start"],
        sigmaN=end_for_per_epochs_cooling(s["sigma_start"], s["sigma_end"], epochs),
        learning_rate=s["lr_start"],
        learning_rateN=end_for_per_epochs_cooling(s["lr_start"], s["lr_end"], epochs),
        decay_function="exponential", neighborhood_function="gaussian", std_coeff=1.0,
        topology="rectangular", activation_distance="euclidean", random_seed=spec["seed"],
        compact_support=False, xp=np)
    som._weights = init.astype(np.float32, copy=True)
    start = time.perf_counter()
    som.train(data, epochs)
    seconds = time.perf_counter() - start
    return np.asarray(som.get_weights(), dtype=np.float32), seconds, {}


_TRAINERS = {"vocloud": _train_vocloud, "minisom": _train_minisom,
             "somoclu": _train_somoclu, "xpysom": _train_xpysom}


def _import_backend(backend: str) -> dict[str, Any]:
    if backend == "vocloud":
        return {"engine": importlib.import_module("jobs.som_engine")}
    if backend == "somoclu":
        module = importlib.import_module("somoclu")
        importlib.import_module("_somoclu_wrap")  # the compiled core, not the fallback stub
        return {"somoclu": module}
    return {backend: importlib.import_module(backend)}


def worker(spec_path: Path) -> None:
    """Run one training as ``spec_path`` (JSON) says; write its figures and codebook."""
    spec = json.loads(spec_path.read_text())
    modules = _import_backend(spec["backend"])
    rss_imports = _status_kib("VmRSS")
    data, _ = make_spectra(spec["n"], spec["d"], spec["data_seed"])
    init = np.load(spec["init"]) if spec.get("init") else None
    _malloc_trim()
    peak_reset = _reset_peak()
    codebook, seconds, extra = _TRAINERS[spec["backend"]](data, init, spec, modules)
    peak = _status_kib("VmHWM")
    np.save(spec["codebook"], codebook)
    result = {"seconds": seconds, "rss_imports_kib": rss_imports, "peak_kib": peak,
              "peak_reset": peak_reset, **extra}
    Path(spec["result"]).write_text(json.dumps(result))


# Parent -------------------------------------------------------------------------------


def _run_worker(spec: dict[str, Any], workdir: Path, name: str, timeout: float,
                env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Start a worker process for ``spec``; its figures, or ``{"error": ...}``."""
    spec = {**spec, "codebook": str(workdir / f"{name}.npy"),
            "result": str(workdir / f"{name}.json")}
    spec_path = workdir / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, **(env_extra or {})}
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                               str(spec_path)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0 or not Path(spec["result"]).exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return {"error": f"exit {done.returncode}: {tail[0][:200]}"}
    result: dict[str, Any] = json.loads(Path(spec["result"]).read_text())
    result["codebook_path"] = spec["codebook"]
    return result


def gemm_rate(chunk: int, d: int, k: int, min_seconds: float = 1.0) -> dict[str, Any]:
    """Float32 matrix-product rates in GFLOP/s: engine-shaped blocks and square 2048^3."""
    rng = np.random.default_rng(1)

    def rate(a: np.ndarray, b: np.ndarray) -> float:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
        np.dot(a, b, out=out)  # warm-up
        best, spent, reps = math.inf, 0.0, 0
        while spent < min_seconds or reps < 3:
            start = time.perf_counter()
            np.dot(a, b, out=out)
            took = time.perf_counter() - start
            best, spent, reps = min(best, took), spent + took, reps + 1
        return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9

    block = rate(rng.random((chunk, d), dtype=np.float32),
                 rng.random((k, d), dtype=np.float32).T)
    square = rate(rng.random((2048, 2048), dtype=np.float32),
                  rng.random((2048, 2048), dtype=np.float32))
    return {"block_gflops": block, "square_gflops": square, "gflops": max(block, square),
            "block_shape": [chunk, d, k]}


def _installed(backend: str) -> str | None:
    """None when ``backend`` can run here, else why not."""
    module = {"vocloud": "jobs.som_engine", "somoclu": "_somoclu_wrap"}.get(backend, backend)
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        return None
    if backend == "somoclu" and importlib.util.find_spec("somoclu") is not None:
        return "installed without its compiled core"
    return "not installed"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("MET" if met else "MISSED")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _rounded(value: Any) -> Any:
    """``value`` with every float rounded to 6 significant digits (for the JSON line)."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _errors(engine: Any, data: np.ndarray, codebook: np.ndarray,
            parameters: Any) -> tuple[float, float]:
    """Quantization and topographic error of ``codebook`` by the engine's functions."""
    qe = float(engine.quantization_error(data, codebook, parameters.chunk_size))
    te = float(engine.topographic_error(data, codebook, parameters))
    return qe, te


def _memory(result: dict[str, Any], input_bytes: int) -> dict[str, Any]:
    peak = (result["peak_kib"] - result["rss_imports_kib"]) * 1024
    return {"peak_mib": peak / 2**20, "peak_x_input": peak / input_bytes}


def _minisom_setting(base: dict[str, Any], workdir: Path, timeout: float,
                     say: Callable[..., None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Time minisom's settings on a few thousand steps; the fastest, and every probe."""
    steps = min(base["n"], 2000)
    probes: list[dict[str, Any]] = []
    for malloc in (True, False):
        for dtype in ("float64", "float32"):
            name = f"{'malloc 64M/256M' if malloc else 'glibc default'}, {dtype}"
            spec = {**base, "backend": "minisom", "n": steps, "epochs": 1,
                    "minisom_mode": "batch", "minisom_dtype": dtype}
            result = _run_worker(spec, workdir, f"probe-{len(probes)}", timeout,
                                 MINISOM_MALLOC if malloc else None)
            probe: dict[str, Any] = {"setting": name, "malloc_tuned": malloc, "dtype": dtype}
            if "error" in result:
                probe["error"] = result["error"]
                say(f"   minisom probe, {name}: {result['error']}")
            else:
                probe["ms_per_step"] = result["seconds"] / steps * 1e3
                say(f"   minisom probe, {name}: {probe['ms_per_step']:.3f} ms a step "
                    f"({steps} steps)")
            probes.append(probe)
    timed = [p for p in probes if "ms_per_step" in p]
    if not timed:
        return probes[0], probes
    tuned = [p for p in timed if p["malloc_tuned"]]
    best = min(timed, key=lambda p: p["ms_per_step"])
    if tuned:
        best_tuned = min(tuned, key=lambda p: p["ms_per_step"])
        if best["ms_per_step"] >= best_tuned["ms_per_step"] * (1.0 - PROBE_MARGIN):
            best = best_tuned
    return best, probes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=10000, help="spectra (default 10000)")
    parser.add_argument("--d", type=int, default=1000, help="points per spectrum (default 1000)")
    parser.add_argument("--rows", type=int, default=20, help="map rows (default 20)")
    parser.add_argument("--columns", type=int, default=20, help="map columns (default 20)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    parser.add_argument("--sigma-start", type=float, default=None,
                        help="default: the engine's, max(rows, columns) / 2")
    parser.add_argument("--sigma-end", type=float, default=0.5)
    parser.add_argument("--learning-rate-start", type=float, default=0.5)
    parser.add_argument("--learning-rate-end", type=float, default=0.01)
    parser.add_argument("--chunk-size", type=int, default=4096,
                        help="the engine's rows per distance block (default 4096)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
    parser.add_argument("--large-n", type=int, default=200000,
                        help="spectra of the engine-only run (default 200000, 0 to skip)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma list of {', '.join(BACKENDS)} (default all)")
    parser.add_argument("--minisom-modes", default=",".join(MINISOM_MODES),
                        help=f"comma list of {', '.join(MINISOM_MODES)} (default all)")
    parser.add_argument("--timeout", type=float, default=7200.0,
                        help="seconds one training may take (default 7200)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 600 x 120, 6 x 5 map, 3 epochs, large run 3000")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker)
        return 0
    if args.quick:
        args.n, args.d, args.rows, args.columns, args.epochs = 600, 120, 6, 5, 3
        args.large_n = min(args.large_n, 3000)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    modes = [m.strip() for m in args.minisom_modes.split(",") if m.strip()]
    unknown = [b for b in backends if b not in BACKENDS] + \
        [m for m in modes if m not in MINISOM_MODES]
    if unknown:
        parser.error(f"unknown backend or minisom mode: {', '.join(unknown)}")
    if min(args.n, args.d, args.rows * args.columns, args.epochs) < 1 or args.large_n < 0:
        parser.error("--n, --d, --rows, --columns and --epochs must be at least 1")
    say: Callable[..., None] = (lambda *a, **k: None) if args.json_only else \
        (lambda *a, **k: print(*a, **k, flush=True))

    from jobs import som_engine as engine

    n, d, k, epochs = args.n, args.d, args.rows * args.columns, args.epochs
    parameters = engine.SOMParameters(
        rows=args.rows, columns=args.columns, topology="rectangular", neighbourhood="gaussian",
        epochs=epochs, sigma_start=args.sigma_start, sigma_end=args.sigma_end,
        learning_rate_start=args.learning_rate_start, learning_rate_end=args.learning_rate_end,
        initialisation="pca", seed=args.seed, chunk_size=args.chunk_size, backend="vocloud")
    parameters.validate()
    schedule = {"sigma_start": engine.resolved_sigma_start(parameters),
                "sigma_end": args.sigma_end, "lr_start": args.learning_rate_start,
                "lr_end": args.learning_rate_end}
    input_bytes = n * d * 4
    load_before = _load()
    say(f"== SOM training: N={n} spectra x D={d} float32 ({input_bytes / 2**20:.1f} MiB), "
        f"{args.rows}x{args.columns} map, {epochs} epochs")
    say(f"   {os.cpu_count()} CPUs ({_cpu_model()}), numpy {np.__version__}")
    say(f"   sigma {schedule['sigma_start']:g} -> {args.sigma_end:g}, learning rate "
        f"{args.learning_rate_start:g} -> {args.learning_rate_end:g} (exponential per epoch), "
        f"Gaussian, rectangular, PCA start; engine chunk {args.chunk_size}")
    say(f"   load average before {' '.join(map(str, load_before))}")

    gemm = gemm_rate(min(args.chunk_size, n), d, k)
    rate = gemm["gflops"] * 1e9
    say(f"   float32 products: ({gemm['block_shape'][0]} x {d}) x ({d} x {k}) "
        f"{gemm['block_gflops']:.1f} GFLOP/s, 2048^3 {gemm['square_gflops']:.1f} GFLOP/s "
        f"(the machine's rate: {gemm['gflops']:.1f})")

    rows: list[dict[str, Any]] = []
    large: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="vocloud-bench-som-") as tmp:
        workdir = Path(tmp)
        began = time.perf_counter()
        data, _ = make_spectra(n, d, args.seed)
        generation_s = time.perf_counter() - began
        init_path = workdir / "init.npy"
        np.save(init_path, engine.initial_codebook(data, parameters))
        base: dict[str, Any] = {
            "n": n, "d": d, "data_seed": args.seed, "rows": args.rows, "columns": args.columns,
            "epochs": epochs, "seed": args.seed, "schedule": schedule, "init": str(init_path),
            "parameters": asdict(parameters)}
        say(f"   data made in {generation_s:.1f} s (not timed below)")

        def measure(name: str, backend: str, setting: str, spec: dict[str, Any],
                    env: dict[str, str] | None = None) -> None:
            say(f"   {name} ({setting}) ...", end="")
            result = _run_worker(spec, workdir, name, args.timeout, env)
            row: dict[str, Any] = {"name": name, "backend": backend, "setting": setting}
            if "error" in result:
                row["error"] = result["error"]
                say(f" {result['error']}")
            else:
                codebook = np.load(result.pop("codebook_path"))
                row.update(result)
                row.update(_memory(result, input_bytes))
                row["per_epoch_s"] = result["seconds"] / epochs
                row["qe"], row["te"] = _errors(engine, data, codebook, parameters)
                say(f" {result['seconds']:.2f} s")
            rows.append(row)

        for backend in backends:
            why = _installed(backend)
            if why is not None:
                rows.append({"name": backend, "backend": backend, "setting": "-", "error": why})
                say(f"   {backend}: {why}")
            elif backend == "vocloud":
                measure("vocloud", backend, "batch, train_som", {**base, "backend": backend})
            elif backend == "minisom":
                best, probes = _minisom_setting(base, workdir, args.timeout, say)
                for mode in modes:
                    label = {"batch": "train_batch order", "random": "train_random order",
                             "offline": "train_batch_offline"}[mode]
                    measure(f"minisom-{mode}", backend, f"{label}; {best['setting']}",
                            {**base, "backend": backend, "minisom_mode": mode,
                             "minisom_dtype": best["dtype"]},
                            MINISOM_MALLOC if best["malloc_tuned"] else None)
                rows[-1]["probes"] = probes
            else:
                measure(backend, backend,
                        "xp=numpy" if backend == "xpysom" else "dense CPU kernel, OpenMP",
                        {**base, "backend": backend})
        if args.large_n and "vocloud" in backends and _installed("vocloud") is None:
            say(f"   vocloud at N={args.large_n} ...", end="")
            result = _run_worker({**base, "backend": "vocloud", "n": args.large_n},
                                 workdir, "vocloud-large", args.timeout)
            large = {"n": args.large_n, "input_mib": args.large_n * d * 4 / 2**20}
            if "error" in result:
                large["error"] = result["error"]
                say(f" {result['error']}")
            else:
                result.pop("codebook_path")
                large.update(result)
                large.update(_memory(result, args.large_n * d * 4))
                large["per_epoch_s"] = result["seconds"] / epochs
                large["epoch_s"] = float(np.mean(result["epoch_seconds"]))
                large["products_s"] = 2.0 * args.large_n * d * k / rate
                large["gemm_ratio"] = large["epoch_s"] / large["products_s"]
                say(f" {result['seconds']:.2f} s")
    load_after = _load()

    by_name = {row["name"]: row for row in rows}
    ours = by_name.get("vocloud")
    if ours is not None and "error" in ours:
        ours = None
    failed = "vocloud" in backends and ours is None
    minisoms = [r for r in rows if r["backend"] == "minisom" and "error" not in r]
    peers = {"minisom": min(minisoms, key=lambda r: r["seconds"]) if minisoms
             else by_name.get("minisom"),
             "somoclu": by_name.get("somoclu"), "xpysom": by_name.get("xpysom")}
    for row in rows:
        if ours is not None and "error" not in row:
            row["speedup"] = row["seconds"] / ours["seconds"]
    products_s = 2.0 * n * d * k / rate
    targets: dict[str, Any] = {}
    for label, target in (("minisom", TARGET_MINISOM), ("somoclu", TARGET_SOMOCLU),
                          ("xpysom", TARGET_XPYSOM)):
        peer = peers[label]
        entry: dict[str, Any] = {"target": target}
        if ours is None or peer is None or "error" in peer:
            entry["met"] = None
            entry["why"] = "vocloud not measured" if ours is None else \
                (peer or {}).get("error", "not run")
        else:
            qe_ok = ours["qe"] <= peer["qe"] * (1.0 + QE_TOLERANCE)
            entry.update(peer=peer["name"], ratio=peer["speedup"], qe_ours=ours["qe"],
                         qe_peer=peer["qe"], qe_ok=qe_ok,
                         met=peer["speedup"] >= target and qe_ok)
        targets[f"vs_{label}"] = entry
    if ours is not None:
        epoch_s = float(np.mean(ours["epoch_seconds"]))
        ours["epoch_s"] = epoch_s
        targets["memory"] = {"target": TARGET_MEMORY, "ratio": ours["peak_x_input"],
                             "met": ours["peak_x_input"] < TARGET_MEMORY}
        targets["epoch_vs_products"] = {
            "target": TARGET_GEMM, "epoch_s": epoch_s, "products_s": products_s,
            "ratio": epoch_s / products_s, "met": epoch_s / products_s <= TARGET_GEMM,
            "ratio_at_block_rate": epoch_s / (2.0 * n * d * k / (gemm["block_gflops"] * 1e9))}
    else:
        targets["memory"] = {"target": TARGET_MEMORY, "met": None}
        targets["epoch_vs_products"] = {"target": TARGET_GEMM, "products_s": products_s,
                                        "met": None}
    if large is not None and "error" not in large:
        targets["memory_large"] = {"target": TARGET_MEMORY, "n": large["n"],
                                   "ratio": large["peak_x_input"],
                                   "met": large["peak_x_input"] < TARGET_MEMORY}

    if not args.json_only:
        _print_results(rows, large, ours, targets, n, load_after)
    report = {
        "bench": "som", "n": n, "d": d, "rows": args.rows, "columns": args.columns,
        "epochs": epochs, "chunk_size": args.chunk_size, "seed": args.seed,
        "schedule": schedule, "cpus": os.cpu_count(), "cpu": _cpu_model(),
        "numpy": np.__version__, "load_before": load_before,
        "load_after": load_after, "input_mib": input_bytes / 2**20,
        "generate_s": generation_s, "gemm": gemm,
        "backends": {row["name"]: {key: value for key, value in row.items() if key != "name"}
                     for row in rows},
        "large": large, "targets": targets,
        "verdicts": {name: _verdict(entry["met"]) for name, entry in targets.items()},
    }
    print(json.dumps(_rounded(report), separators=(",", ":")))
    return 1 if failed else 0


def _print_results(rows: list[dict[str, Any]], large: dict[str, Any] | None,
                   ours: dict[str, Any] | None, targets: dict[str, Any], n: int,
                   load_after: list[float]) -> None:
    print(f"   load average after {' '.join(map(str, load_after))}")
    print(f"\n   {'backend':<16} {'N':>7} {'train s':>9} {'s/epoch':>8} {'peak MiB':>9} "
          f"{'x input':>8} {'QE':>8} {'TE':>7} {'ours x faster':>14}  setting")
    table = [(row, n) for row in rows]
    if large is not None:
        table.append(({"name": "vocloud", "setting": "batch, train_som", **large}, large["n"]))
    for row, size in table:
        if "error" in row:
            print(f"   {row['name']:<16} {size:>7} {row['error']}")
            continue
        qe = row.get("qe", row.get("quantization_error", math.nan))
        te = row.get("te", row.get("topographic_error", math.nan))
        speedup = f"{row['speedup']:.1f}" if "speedup" in row and size == n else "-"
        print(f"   {row['name']:<16} {size:>7} {row['seconds']:>9.2f} {row['per_epoch_s']:>8.3f} "
              f"{row['peak_mib']:>9.1f} {row['peak_x_input']:>8.2f} {qe:>8.4f} {te:>7.4f} "
              f"{speedup:>14}  {row['setting']}")
    resets = {bool(row.get("peak_reset")) for row, _ in table if "error" not in row}
    print("   train s: the training call alone; peak: peak RSS in training - RSS after imports "
          "(the data count once);\n   peak mark reset once the data were made: "
          + ("yes" if resets == {True} else "no" if resets == {False} else "for some"))
    if ours is not None:
        spent = float(np.sum(ours["epoch_seconds"]))
        print(f"   vocloud: {spent:.2f} s in its epochs (mean {ours['epoch_s']:.3f} s), "
              f"{ours['seconds'] - spent:.2f} s in PCA start and final assignment")
    if large is not None and "error" not in large:
        print(f"   vocloud at N={large['n']}: {large['epoch_s']:.3f} s an epoch = "
              f"{large['gemm_ratio']:.2f}x its distance products at the machine's rate")

    print("\n== targets")
    print(f"   {'target':<58} {'ratio':>7}  verdict")
    for label in ("minisom", "somoclu", "xpysom"):
        entry = targets[f"vs_{label}"]
        goal = (f"train >= {entry['target']:g}x faster than {label}" if entry["target"] > 1
                else f"train not slower than {label}") + ", QE <= its"
        if entry["met"] is None:
            print(f"   {goal:<58} {'-':>7}  {_verdict(None)} ({entry['why']})")
        else:
            excess = entry["qe_ours"] / entry["qe_peer"] - 1.0
            print(f"   {goal:<58} {entry['ratio']:>7.2f}  {_verdict(entry['met'])} "
                  f"(vs {entry['peer']}; QE {entry['qe_ours']:.4f} vs {entry['qe_peer']:.4f}, "
                  f"{excess:+.2%}{'' if entry['qe_ok'] else ', higher'})")
    for key, goal in (("memory", f"peak memory < {TARGET_MEMORY:g}x input (N={n})"),
                      ("memory_large", f"peak memory < {TARGET_MEMORY:g}x input "
                                       f"(N={large['n'] if large else '-'})")):
        if key in targets:
            entry = targets[key]
            ratio = f"{entry['ratio']:>7.2f}" if entry["met"] is not None else f"{'-':>7}"
            print(f"   {goal:<58} {ratio}  {_verdict(entry['met'])}")
    entry = targets["epoch_vs_products"]
    goal = f"epoch <= {TARGET_GEMM:g}x its distance products (2NDK flops)"
    if entry["met"] is None:
        print(f"   {goal:<58} {'-':>7}  {_verdict(None)}")
    else:
        print(f"   {goal:<58} {entry['ratio']:>7.2f}  {_verdict(entry['met'])} "
              f"({entry['epoch_s']:.3f} s vs {entry['products_s']:.3f} s; "
              f"{entry['ratio_at_block_rate']:.2f} at the block rate)")


if __name__ == "__main__":
    sys.exit(main())
