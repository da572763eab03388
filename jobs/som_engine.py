"""Self-organizing map engine of the ``som`` job type: batch training, BMUs, errors, maps.

The default backend (``"vocloud"``) is Kohonen's batch SOM written for speed.  Each
epoch assigns every sample to its best-matching unit (BMU) in blocks of
``chunk_size`` rows with one float32 matrix product per block, using

    ||x - w||^2 = ||x||^2 - 2 x . w + ||w||^2        (clamped at 0),

accumulates the per-node sums ``S`` (K x D, float64) and counts ``n`` (K) of its
samples, and replaces the codebook by the neighbourhood-weighted means

    W = (H @ S) / (H @ n)[:, None]

where ``H`` (K x K) is the neighbourhood at this epoch's sigma; a node whose
denominator is 0 (a bubble reaching no sample) keeps its prototype.  Memory stays
bounded for any number of samples: the data are read in place (a C-contiguous
float32 array is never copied, any other array is converted once) and the
temporaries are one ``chunk_size x K`` distance block, a few K x D and K x K
arrays and 64-row blocks of samples (plus, for the PCA initialisation, the
D x D covariance and blocks of at most 2**20 values).

The ``"minisom"`` backend trains :class:`minisom.MiniSom` (online updates, one
sample at a time) on the same grid, from the same initial codebook, with the same
sigma and learning-rate schedules, so the two can be compared on equal work.
Either way the BMUs, distances and errors of the result are computed by this
module's own functions.

Conventions
-----------
Grid and node order
    A map has ``rows x columns`` nodes; node ``(r, c)`` has the flat index
    ``r * columns + c`` and the codebook has the shape ``(rows, columns, D)``.
Coordinates
    :func:`node_coordinates` gives each node's position ``(x, y)``: ``(c, r)`` on a
    rectangular grid; on a hexagonal grid the offset coordinates
    ``(c + 0.5 * (r % 2), r * sqrt(3) / 2)`` (odd rows shifted half a node to the
    right, rows ``sqrt(3) / 2`` apart), so that all six neighbours of a node are at
    distance 1.  Neighbourhoods, topographic errors and plots all use these positions.
Neighbourhood
    With ``d`` the distance between two nodes' positions: ``"gaussian"`` is
    ``exp(-d^2 / (2 sigma^2))`` (no cut-off), ``"bubble"`` is 1 where ``d <= sigma``
    and 0 elsewhere.
Schedules
    Sigma decays exponentially from ``sigma_start`` (default ``max(rows, columns) / 2``)
    to ``sigma_end`` over the epochs, ``sigma_t = sigma_start * (sigma_end /
    sigma_start) ** (t / max(epochs - 1, 1))`` for ``t = 0 .. epochs - 1``; the
    learning rate of the online backend decays the same way.  The batch algorithm
    has no learning rate (its update is a weighted mean).
Initialisation
    ``"pca"``: the mean plus the two leading principal components of the data, from
    a D x D covariance accumulated in chunks, spread over +-sqrt(eigenvalue) along
    the map (the first component along the map's longer side).  The components
    come from ``numpy.linalg.eigh`` up to D = 256, above that from a fixed number
    of subspace iterations on the same matrix (``eigh`` would cost O(D^3)).  ``"random"``:
    ``K`` distinct samples (with repetition only when there are fewer than ``K``)
    drawn with ``numpy.random.default_rng(seed)``.
Errors
    The quantization error is the mean Euclidean distance of the samples to their
    BMUs, computed in float64 as ``||x - w||`` (BMUs are found in float32).  The
    topographic error is the fraction of samples whose best and second-best units
    are not neighbours, with minisom's definition of neighbours: on a rectangular
    grid the 8 surrounding nodes (positions within ``sqrt(2)``), on a hexagonal
    grid the 6 at distance 1.  It is NaN for a 1 x 1 map.
Reproducibility
    The same data, parameters, chunk size and BLAS thread count give the same
    codebook bit for bit: every reduction runs in a fixed order.

Only numpy is imported at module level; minisom is imported when its backend runs.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np

Topology = Literal["rectangular", "hexagonal"]
Neighbourhood = Literal["gaussian", "bubble"]
Initialisation = Literal["pca", "random"]
Backend = Literal["vocloud", "minisom"]

#: ``progress(fraction, message)``, called once per epoch.
ProgressCallback = Callable[[float, str], None]

#: Rows of data per distance block unless told otherwise.
DEFAULT_CHUNK_SIZE = 4096
#: Vertical distance between the rows of a hexagonal grid.
HEX_ROW_SPACING = math.sqrt(3.0) / 2.0

# Rows of sorted samples summed per small matrix product when accumulating node sums.
_SUM_BLOCK = 64
# Up to this dimension the principal components come from a full ``eigh``; above it,
# from a subspace iteration on the same covariance matrix (``eigh`` costs O(D^3)).
_EXACT_EIGEN_LIMIT = 256
_SUBSPACE_OVERSAMPLING = 10
_SUBSPACE_ITERATIONS = 12
# Values per block of centred rows when accumulating the covariance (4 MiB of float32),
# and rows per step when subtracting the outer product of the mean from it.
_COVARIANCE_BLOCK = 2**20
_OUTER_ROWS = 256
# Bytes of float64 temporaries per block when computing exact distances.
_EXACT_BLOCK_BYTES = 2**21
# Slack on grid-distance comparisons (positions are sums of halves and sqrt(3) / 2).
_GRID_EPS = 1e-9


def decay_schedule(start: float, end: float, epochs: int) -> np.ndarray:
    """Exponential decay from ``start`` to ``end`` over ``epochs`` epochs.

    Parameters
    ----------
    start, end : float
        First and last value, both positive.
    epochs : int
        Number of epochs, at least 1.

    Returns
    -------
    numpy.ndarray
        ``(epochs,)`` float64: ``start * (end / start) ** (t / max(epochs - 1, 1))``
        for ``t = 0 .. epochs - 1`` (just ``start`` for a single epoch).
    """
    steps = np.arange(epochs, dtype=np.float64) / max(epochs - 1, 1)
    return np.asarray(start * (end / start) ** steps, dtype=np.float64)


#: Most nodes of a map: the batch update keeps a nodes x nodes float32 matrix (64 MB here).
MAX_NODES = 4096


@dataclass(frozen=True)
class SOMParameters:
    """Everything that defines a SOM training.

    Attributes
    ----------
    rows, columns : int
        Size of the map (``rows * columns`` nodes).
    topology : {"rectangular", "hexagonal"}
        Grid of the nodes (see the module documentation for the positions).
    neighbourhood : {"gaussian", "bubble"}
        Neighbourhood function.
    epochs : int
        Passes over the data.
    sigma_start : float or None
        Neighbourhood radius of the first epoch, in node spacings; ``None`` means
        ``max(rows, columns) / 2``.
    sigma_end : float
        Neighbourhood radius of the last epoch.
    learning_rate_start, learning_rate_end : float
        Learning rate of the first and last epoch, in (0, 1]; only the online
        (``"minisom"``) backend uses it.
    initialisation : {"pca", "random"}
        How the codebook starts.
    seed : int
        Seed of the random initialisation (and of minisom's sample order), 0 to 2**32 - 1.
    chunk_size : int
        Rows of data per distance block; bounds the memory used besides the data.
    backend : {"vocloud", "minisom"}
        Batch engine of this module, or minisom's online training.
    """

    rows: int
    columns: int
    topology: Topology = "rectangular"
    neighbourhood: Neighbourhood = "gaussian"
    epochs: int = 10
    sigma_start: float | None = None
    sigma_end: float = 0.5
    learning_rate_start: float = 0.5
    learning_rate_end: float = 0.01
    initialisation: Initialisation = "pca"
    seed: int = 0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    backend: Backend = "vocloud"

    @property
    def nodes(self) -> int:
        """Number of nodes, ``rows * columns``."""
        return self.rows * self.columns

    def validate(self) -> None:
        """Check every parameter.

        Raises
        ------
        ValueError
            With a message naming the parameter, its value and what is allowed.
        """
        if not (_is_int(self.rows) and _is_int(self.columns)) or self.rows < 1 \
                or self.columns < 1:
            nodes = (max(self.rows, 0) * max(self.columns, 0)
                     if _is_int(self.rows) and _is_int(self.columns) else "no")
            raise ValueError(f"rows and columns must be integers of at least 1: "
                             f"{self.rows!r} x {self.columns!r} is a map of {nodes} nodes")
        if self.rows * self.columns > MAX_NODES:
            raise ValueError(f"a map of {self.rows} x {self.columns} = "
                             f"{self.rows * self.columns} nodes is more than {MAX_NODES}: the "
                             "batch update holds a nodes x nodes neighbourhood matrix")
        _check_choice("topology", self.topology, Topology)
        _check_choice("neighbourhood", self.neighbourhood, Neighbourhood)
        _check_choice("initialisation", self.initialisation, Initialisation)
        _check_choice("backend", self.backend, Backend)
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer of at least 1, got {self.epochs!r}")
        if self.sigma_start is not None:
            _check_positive("sigma_start", self.sigma_start)
        _check_positive("sigma_end", self.sigma_end)
        _check_positive("learning_rate_start", self.learning_rate_start, upper=1.0)
        _check_positive("learning_rate_end", self.learning_rate_end, upper=1.0)
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, got {self.seed!r}")
        if not _is_int(self.chunk_size) or self.chunk_size < 1:
            raise ValueError(
                f"chunk_size must be an integer of at least 1, got {self.chunk_size!r}")

    def resolved(self) -> SOMParameters:
        """These parameters with ``sigma_start`` filled in when it was ``None``."""
        return replace(self, sigma_start=resolved_sigma_start(self))

    def sigma_schedule(self) -> np.ndarray:
        """Sigma of every epoch, ``(epochs,)`` float64 (see :func:`decay_schedule`)."""
        return decay_schedule(resolved_sigma_start(self), float(self.sigma_end), self.epochs)

    def learning_rate_schedule(self) -> np.ndarray:
        """Learning rate of every epoch, ``(epochs,)`` float64 (online backend only)."""
        return decay_schedule(float(self.learning_rate_start), float(self.learning_rate_end),
                              self.epochs)


def resolved_sigma_start(parameters: SOMParameters) -> float:
    """The first epoch's sigma: ``sigma_start``, or ``max(rows, columns) / 2`` when unset."""
    if parameters.sigma_start is not None:
        return float(parameters.sigma_start)
    return max(parameters.rows, parameters.columns) / 2.0


@dataclass
class SOMResult:
    """A trained map and where every sample falls on it.

    Attributes
    ----------
    codebook : numpy.ndarray
        ``(rows, columns, D)`` float32 prototypes.
    bmu : numpy.ndarray
        ``(N,)`` int64 flat index ``r * columns + c`` of each sample's best-matching unit.
    distance : numpy.ndarray
        ``(N,)`` float64 Euclidean distance of each sample to its BMU.
    quantization_error : float
        Mean of ``distance``.
    topographic_error : float
        Fraction of samples whose best and second-best units are not neighbours
        (NaN on a 1 x 1 map).
    node_coordinates : numpy.ndarray
        ``(K, 2)`` float64 node positions ``(x, y)`` (see :func:`node_coordinates`).
    parameters : SOMParameters
        The parameters trained with, ``sigma_start`` resolved.
    epoch_seconds : list of float
        Wall-clock time of each epoch.
    """

    codebook: np.ndarray
    bmu: np.ndarray
    distance: np.ndarray
    quantization_error: float
    topographic_error: float
    node_coordinates: np.ndarray
    parameters: SOMParameters
    epoch_seconds: list[float] = field(default_factory=list)


# Grid geometry ------------------------------------------------------------------------


def node_coordinates(rows: int, columns: int, topology: Topology) -> np.ndarray:
    """Positions of the nodes of a grid.

    Parameters
    ----------
    rows, columns : int
        Size of the map.
    topology : {"rectangular", "hexagonal"}
        Rectangular: node ``(r, c)`` sits at ``(c, r)``.  Hexagonal (offset
        coordinates): at ``(c + 0.5 * (r % 2), r * sqrt(3) / 2)``.

    Returns
    -------
    numpy.ndarray
        ``(rows * columns, 2)`` float64 ``(x, y)``, in flat node order.
    """
    _check_grid(rows, columns, topology)
    r, c = np.divmod(np.arange(rows * columns, dtype=np.int64), columns)
    x = c.astype(np.float64)
    y = r.astype(np.float64)
    if topology == "hexagonal":
        x += 0.5 * (r % 2)
        y *= HEX_ROW_SPACING
    return np.stack([x, y], axis=1)


def grid_edges(rows: int, columns: int, topology: Topology) -> np.ndarray:
    """Pairs of adjacent nodes: those whose positions are 1 apart.

    A node has up to 4 neighbours on a rectangular grid (left, right, above,
    below) and up to 6 on a hexagonal one.  These are the neighbours of
    :func:`u_matrix`; the topographic error also counts diagonal nodes of a
    rectangular grid (see the module documentation).

    Parameters
    ----------
    rows, columns : int
        Size of the map.
    topology : {"rectangular", "hexagonal"}
        Grid of the nodes.

    Returns
    -------
    numpy.ndarray
        ``(E, 2)`` int64 flat node indices ``(a, b)`` with ``a < b``, each pair once.
    """
    _check_grid(rows, columns, topology)
    r, c = np.divmod(np.arange(rows * columns, dtype=np.int64), columns)
    index = r * columns + c
    pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def link(mask: np.ndarray, dr: int, dc: int) -> None:
        pairs.append((index[mask], index[mask] + dr * columns + dc))

    link(c < columns - 1, 0, 1)                    # same row, to the right
    below = r < rows - 1
    link(below, 1, 0)                              # next row, same column
    if topology == "hexagonal":
        # An odd row is shifted half a node right of its even neighbours.
        odd = (r % 2) == 1
        link(below & ~odd & (c > 0), 1, -1)
        link(below & odd & (c < columns - 1), 1, 1)
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    edges = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


# Map summaries ------------------------------------------------------------------------


def u_matrix(codebook: np.ndarray, topology: Topology) -> np.ndarray:
    """Unified distance matrix: how far each prototype is from its neighbours'.

    Parameters
    ----------
    codebook : numpy.ndarray
        ``(rows, columns, D)`` prototypes.
    topology : {"rectangular", "hexagonal"}
        Grid of the nodes.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` float64: for each node, the mean Euclidean distance of
        its prototype to those of its grid neighbours (:func:`grid_edges`: 4 on a
        rectangular grid, 6 on a hexagonal one, fewer at the edges).  A node with
        no neighbours (a 1 x 1 map) gets 0.
    """
    weights = np.asarray(codebook)
    if weights.ndim != 3:
        raise ValueError(f"codebook must have the shape (rows, columns, D), got {weights.shape}")
    rows, columns, dimension = weights.shape
    edges = grid_edges(rows, columns, topology)
    flat = weights.reshape(rows * columns, dimension).astype(np.float64, copy=False)
    lengths = np.empty(len(edges), dtype=np.float64)
    step = max(1, _EXACT_BLOCK_BYTES // (8 * max(dimension, 1)))
    for start in range(0, len(edges), step):
        block = edges[start:start + step]
        diff = flat[block[:, 0]] - flat[block[:, 1]]
        lengths[start:start + step] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    nodes = rows * columns
    totals = np.bincount(edges.ravel(), weights=np.repeat(lengths, 2), minlength=nodes)
    counts = np.bincount(edges.ravel(), minlength=nodes)
    mean = np.divide(totals, counts, out=np.zeros(nodes, dtype=np.float64), where=counts > 0)
    return mean.reshape(rows, columns)


def hit_map(bmu: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Number of samples whose best-matching unit is each node.

    Parameters
    ----------
    bmu : numpy.ndarray
        ``(N,)`` flat node indices.
    rows, columns : int
        Size of the map.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns)`` int64 counts.
    """
    _check_grid(rows, columns, "rectangular")
    indices = np.asarray(bmu)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
        raise ValueError("bmu must be a 1-D array of integer node indices")
    nodes = rows * columns
    if indices.size and (indices.min() < 0 or indices.max() >= nodes):
        raise ValueError(f"bmu holds indices outside the {rows} x {columns} map "
                         f"(0 to {nodes - 1})")
    counts = np.bincount(indices.astype(np.int64), minlength=nodes)
    return counts.astype(np.int64).reshape(rows, columns)


# Assignment and errors ----------------------------------------------------------------


def best_matching_units(data: np.ndarray, codebook_flat: np.ndarray,
                        chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Best-matching unit of every sample and the distance to it.

    BMUs are the nearest prototypes by the float32 matrix-product form of the
    squared distance (ties go to the lower node index); the distances are then
    computed in float64 as ``||x - w||``.

    Parameters
    ----------
    data : numpy.ndarray
        ``(N, D)`` samples.
    codebook_flat : numpy.ndarray
        ``(K, D)`` prototypes (a ``(rows, columns, D)`` codebook is flattened).
    chunk_size : int
        Rows of data per distance block.

    Returns
    -------
    bmu : numpy.ndarray
        ``(N,)`` int64 flat node indices.
    distance : numpy.ndarray
        ``(N,)`` float64 Euclidean distances.
    """
    matrix = _as_matrix(data)
    weights = _as_codebook(codebook_flat, matrix.shape[1])
    _check_chunk_size(chunk_size)
    _squared_norms(matrix, chunk_size)
    bmu, distance, _ = _assign(matrix, weights, chunk_size, with_second=False)
    return bmu, distance


def quantization_error(data: np.ndarray, codebook_flat: np.ndarray,
                       chunk_size: int = DEFAULT_CHUNK_SIZE) -> float:
    """Mean Euclidean distance of the samples to their best-matching units (float64).

    Parameters
    ----------
    data : numpy.ndarray
        ``(N, D)`` samples.
    codebook_flat : numpy.ndarray
        ``(K, D)`` or ``(rows, columns, D)`` prototypes.
    chunk_size : int
        Rows of data per distance block.

    Returns
    -------
    float
        The quantization error.
    """
    _, distance = best_matching_units(data, codebook_flat, chunk_size)
    return float(distance.mean())


def topographic_error(data: np.ndarray, codebook_flat: np.ndarray,
                      rows: int | SOMParameters, columns: int | None = None,
                      topology: Topology = "rectangular",
                      chunk_size: int = DEFAULT_CHUNK_SIZE) -> float:
    """Fraction of samples whose best and second-best units are not grid neighbours.

    Neighbours as minisom counts them: on a rectangular grid the 8 surrounding
    nodes, on a hexagonal grid the 6 nodes at distance 1.

    Parameters
    ----------
    data : numpy.ndarray
        ``(N, D)`` samples.
    codebook_flat : numpy.ndarray
        ``(K, D)`` or ``(rows, columns, D)`` prototypes, ``K = rows * columns``.
    rows : int or SOMParameters
        Rows of the map; or the training parameters, which then give ``rows``,
        ``columns``, ``topology`` and ``chunk_size``.
    columns : int, optional
        Columns of the map (required unless ``rows`` is a :class:`SOMParameters`).
    topology : {"rectangular", "hexagonal"}
        Grid of the nodes.
    chunk_size : int
        Rows of data per distance block.

    Returns
    -------
    float
        The topographic error in [0, 1]; NaN for a 1 x 1 map.
    """
    if isinstance(rows, SOMParameters):
        grid = rows
        rows, columns, topology, chunk_size = (grid.rows, grid.columns, grid.topology,
                                               grid.chunk_size)
    if columns is None:
        raise ValueError("columns is required unless rows is a SOMParameters")
    _check_grid(rows, columns, topology)
    matrix = _as_matrix(data)
    weights = _as_codebook(codebook_flat, matrix.shape[1])
    if len(weights) != rows * columns:
        raise ValueError(f"the codebook has {len(weights)} prototypes, a {rows} x {columns} "
                         f"map has {rows * columns} nodes")
    _check_chunk_size(chunk_size)
    _squared_norms(matrix, chunk_size)
    if len(weights) == 1:
        return math.nan
    bmu, _, second = _assign(matrix, weights, chunk_size, with_second=True)
    assert second is not None
    return _topographic_error(bmu, second, node_coordinates(rows, columns, topology), topology)


# Training -----------------------------------------------------------------------------


def initial_codebook(data: np.ndarray, parameters: SOMParameters) -> np.ndarray:
    """The codebook a training with ``parameters`` starts from.

    Parameters
    ----------
    data : numpy.ndarray
        ``(N, D)`` samples.
    parameters : SOMParameters
        Map size, topology, initialisation, seed and chunk size are used.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns, D)`` float32.
    """
    parameters.validate()
    matrix = _as_matrix(data)
    _squared_norms(matrix, parameters.chunk_size)
    coordinates = node_coordinates(parameters.rows, parameters.columns, parameters.topology)
    flat = _initial_flat(matrix, parameters, coordinates)
    return flat.reshape(parameters.rows, parameters.columns, matrix.shape[1])


def train_som(data: np.ndarray, parameters: SOMParameters, *,
              progress: ProgressCallback | None = None) -> SOMResult:
    """Train a self-organizing map.

    Parameters
    ----------
    data : numpy.ndarray
        ``(N, D)`` samples, all finite.  A C-contiguous float32 array is used in
        place; any other is converted to one once.
    parameters : SOMParameters
        What to train (validated here).
    progress : callable, optional
        ``progress(fraction, message)``, called after each epoch with
        ``fraction = epoch / epochs`` and, for the batch backend, the mean BMU
        distance of that epoch's assignment step (before its update).

    Returns
    -------
    SOMResult
        The codebook, every sample's BMU and distance, and both errors, computed
        for the final codebook.

    Raises
    ------
    ValueError
        Invalid parameters, or data that are empty, not 2-D or not finite.
    """
    parameters.validate()
    matrix = _as_matrix(data)
    squared_norms = _squared_norms(matrix, parameters.chunk_size)
    resolved = parameters.resolved()
    coordinates = node_coordinates(resolved.rows, resolved.columns, resolved.topology)
    start = _initial_flat(matrix, resolved, coordinates)
    if resolved.backend == "minisom":
        weights, epoch_seconds = _train_minisom(matrix, start, resolved, coordinates, progress)
    else:
        weights, epoch_seconds = _train_batch(matrix, squared_norms, start, resolved,
                                              coordinates, progress)
    two = len(weights) > 1
    bmu, distance, second = _assign(matrix, weights, resolved.chunk_size, with_second=two)
    te = (_topographic_error(bmu, second, coordinates, resolved.topology)
          if second is not None else math.nan)
    return SOMResult(
        codebook=weights.reshape(resolved.rows, resolved.columns, matrix.shape[1]),
        bmu=bmu, distance=distance, quantization_error=float(distance.mean()),
        topographic_error=te, node_coordinates=coordinates, parameters=resolved,
        epoch_seconds=epoch_seconds)


def _train_batch(data: np.ndarray, squared_norms: np.ndarray, start: np.ndarray,
                 parameters: SOMParameters, coordinates: np.ndarray,
                 progress: ProgressCallback | None) -> tuple[np.ndarray, list[float]]:
    """Kohonen's batch algorithm; the trained ``(K, D)`` float32 codebook and epoch times."""
    samples, dimension = data.shape
    nodes = len(start)
    chunk = min(parameters.chunk_size, samples)
    node_distance2 = _squared_grid_distances(coordinates)
    weights = start
    block = np.empty((chunk, nodes), dtype=np.float32)
    indicator = np.zeros((_SUM_BLOCK, _SUM_BLOCK), dtype=np.float32)
    sums = np.empty((nodes, dimension), dtype=np.float64)
    counts = np.empty(nodes, dtype=np.int64)
    sigmas = parameters.sigma_schedule()
    epoch_seconds: list[float] = []
    for epoch, sigma in enumerate(sigmas):
        began = time.perf_counter()
        minus_two_t, w_squared = _distance_terms(weights)
        sums.fill(0.0)
        counts.fill(0)
        distance_sum = 0.0
        for first in range(0, samples, chunk):
            rows = data[first:first + chunk]
            distances = _partial_distances(rows, minus_two_t, w_squared, block)
            bmu = distances.argmin(axis=1)
            best = distances[np.arange(len(rows)), bmu]
            best += squared_norms[first:first + chunk]
            np.maximum(best, 0.0, out=best)
            distance_sum += float(np.sqrt(best).sum(dtype=np.float64))
            _accumulate(rows, bmu, sums, counts, indicator)
        weights = _batch_update(weights, sums, counts, node_distance2, float(sigma),
                                parameters.neighbourhood)
        epoch_seconds.append(time.perf_counter() - began)
        if progress is not None:
            progress((epoch + 1) / parameters.epochs,
                     f"epoch {epoch + 1}/{parameters.epochs}, "
                     f"mean BMU distance {distance_sum / samples:.6g}")
    return weights, epoch_seconds


def _distance_terms(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(-2 W)^T`` (D, K) and ``||w||^2`` (K,) in float32, for :func:`_partial_distances`."""
    minus_two = np.multiply(weights, np.float32(-2.0))
    w_squared = np.einsum("ij,ij->i", weights, weights).astype(np.float32, copy=False)
    return minus_two.T, w_squared


def _partial_distances(rows: np.ndarray, minus_two_t: np.ndarray, w_squared: np.ndarray,
                       block: np.ndarray) -> np.ndarray:
    """``||w||^2 - 2 x . w`` for a chunk of rows, written into ``block`` (one GEMM).

    Adding ``||x||^2`` gives the squared distance; the BMU does not depend on it.
    """
    out = block[:len(rows)]
    np.matmul(rows, minus_two_t, out=out)
    out += w_squared
    return out


def _accumulate(rows: np.ndarray, bmu: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                indicator: np.ndarray) -> None:
    """Add each row to its node's sum and count.

    The rows are visited in order of node, ``_SUM_BLOCK`` at a time; the rows of
    such a block fall on few nodes, and a small 0/1 matrix times the block gives
    their per-node sums in one product.  The order of every addition is fixed.
    """
    nodes = len(counts)
    counts += np.bincount(bmu, minlength=nodes)
    order = np.argsort(bmu, kind="stable")
    sorted_bmu = bmu[order]
    change = sorted_bmu[1:] != sorted_bmu[:-1]
    segment = np.zeros(len(order), dtype=np.int64)   # run number of every sorted row
    np.cumsum(change, out=segment[1:])
    segment_node = sorted_bmu[np.concatenate(([0], np.flatnonzero(change) + 1))]
    for first in range(0, len(order), _SUM_BLOCK):
        last = min(first + _SUM_BLOCK, len(order))
        local = segment[first:last] - segment[first]
        count = int(local[-1]) + 1
        ones = indicator[:count, :last - first]
        ones.fill(0.0)
        ones[local, np.arange(last - first)] = 1.0
        targets = segment_node[segment[first]:segment[first] + count]
        sums[targets] += ones @ rows[order[first:last]]


def _batch_update(weights: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                  node_distance2: np.ndarray, sigma: float,
                  neighbourhood: Neighbourhood) -> np.ndarray:
    """``(H @ S) / (H @ n)`` over the nodes that won samples; float32 ``(K, D)``.

    Each row of a Gaussian ``H`` is scaled so that its nearest winning node weighs 1
    (the ratio does not change), which keeps far nodes from underflowing to 0/0.
    ``H @ S`` is a float32 product of the sums taken about the data mean ``m``,
    ``W = m + (H @ (S - n m)) / (H @ n)``, so its rounding scales with the spread of
    the data, not with their offset.  ``sums`` is centred in place.
    """
    won = np.flatnonzero(counts)
    everywhere = len(won) == len(counts)
    distance2 = node_distance2 if everywhere else node_distance2[:, won]
    if neighbourhood == "gaussian":
        nearest = distance2.min(axis=1, keepdims=True)
        h = np.exp((nearest - distance2) / (2.0 * sigma * sigma))
    else:
        h = (distance2 <= (sigma + _GRID_EPS) ** 2).astype(np.float64)
    won_counts = counts[won].astype(np.float64)
    centre = sums.sum(axis=0) / won_counts.sum()
    sums -= np.multiply.outer(counts.astype(np.float64), centre)   # rows of no sample stay 0
    centred = (sums if everywhere else sums[won]).astype(np.float32)
    numerator = h.astype(np.float32) @ centred
    denominator = h @ won_counts
    if neighbourhood == "gaussian":             # the nearest winner weighs 1: all reached
        numerator /= denominator.astype(np.float32)[:, None]
        numerator += centre.astype(np.float32)
        return numerator
    updated = weights.copy()
    reached = denominator > 0
    updated[reached] = centre + numerator[reached] / denominator[reached, None]
    return updated


def _squared_grid_distances(coordinates: np.ndarray) -> np.ndarray:
    """``(K, K)`` float64 squared distances between node positions."""
    dx = coordinates[:, 0, None] - coordinates[None, :, 0]
    dy = coordinates[:, 1, None] - coordinates[None, :, 1]
    dx *= dx
    dy *= dy
    dx += dy
    return dx


def _assign(data: np.ndarray, weights: np.ndarray, chunk_size: int, *,
            with_second: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """BMU, exact float64 distance and (optionally) second-best unit of every sample.

    The second-best unit is the nearest node after the BMU is excluded (so, of two
    equally near nodes, the lower index is the BMU and the other the second).
    """
    samples, dimension = data.shape
    nodes = len(weights)
    chunk = min(chunk_size, samples)
    minus_two_t, w_squared = _distance_terms(weights)
    weights64 = weights.astype(np.float64)
    block = np.empty((chunk, nodes), dtype=np.float32)
    bmu = np.empty(samples, dtype=np.int64)
    distance = np.empty(samples, dtype=np.float64)
    second = np.empty(samples, dtype=np.int64) if with_second else None
    exact_rows = max(1, _EXACT_BLOCK_BYTES // (8 * dimension))
    for first in range(0, samples, chunk):
        rows = data[first:first + chunk]
        count = len(rows)
        distances = _partial_distances(rows, minus_two_t, w_squared, block)
        best = distances.argmin(axis=1)
        bmu[first:first + count] = best
        if second is not None:
            distances[np.arange(count), best] = np.inf
            second[first:first + count] = distances.argmin(axis=1)
        for low in range(0, count, exact_rows):
            high = min(low + exact_rows, count)
            diff = rows[low:high].astype(np.float64)
            diff -= weights64[best[low:high]]
            distance[first + low:first + high] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return bmu, distance, second


def _topographic_error(bmu: np.ndarray, second: np.ndarray | None, coordinates: np.ndarray,
                       topology: Topology) -> float:
    """Share of samples whose two best units are farther apart than grid neighbours."""
    if second is None:
        return math.nan
    delta = coordinates[bmu] - coordinates[second]
    apart = np.hypot(delta[:, 0], delta[:, 1])
    limit = math.sqrt(2.0) if topology == "rectangular" else 1.0
    return float(np.mean(apart > limit + _GRID_EPS, dtype=np.float64))


# Initialisation -----------------------------------------------------------------------


def _initial_flat(data: np.ndarray, parameters: SOMParameters,
                  coordinates: np.ndarray) -> np.ndarray:
    """Initial ``(K, D)`` float32 codebook."""
    nodes = parameters.nodes
    if parameters.initialisation == "random":
        rng = np.random.default_rng(parameters.seed)
        samples = len(data)
        chosen = rng.choice(samples, size=nodes, replace=samples < nodes)
        return np.ascontiguousarray(data[chosen], dtype=np.float32)
    mean, covariance = _chunked_covariance(data, parameters.chunk_size)
    values, vectors = _leading_components(covariance, 2)
    spread = vectors * np.sqrt(values)[None, :]   # (D, m): one standard deviation each
    x = _unit_interval(coordinates[:, 0])
    y = _unit_interval(coordinates[:, 1])
    longer, shorter = (x, y) if np.ptp(coordinates[:, 0]) >= np.ptp(coordinates[:, 1]) else (y, x)
    weights = np.repeat(mean[None, :], nodes, axis=0)
    weights += longer[:, None] * spread[None, :, 0]
    if spread.shape[1] > 1:
        weights += shorter[:, None] * spread[None, :, 1]
    return np.ascontiguousarray(weights, dtype=np.float32)


def _unit_interval(values: np.ndarray) -> np.ndarray:
    """``values`` mapped linearly onto [-1, 1] (all 0 when they are all equal)."""
    low, high = float(values.min()), float(values.max())
    if high - low <= _GRID_EPS:
        return np.zeros_like(values)
    return (2.0 * (values - low) / (high - low) - 1.0).astype(np.float64)


def _chunked_covariance(data: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and population covariance ``(D, D)`` in float64, in chunks.

    Each block of rows is centred on the first block's mean before its float32
    product ``X^T X`` (a symmetric rank-k update) is added to a float64 sum, which
    keeps the cancellation small.  Blocks hold at most ``chunk_size`` rows and
    ``_COVARIANCE_BLOCK`` values, so the temporaries besides the two D x D
    matrices stay small.
    """
    samples, dimension = data.shape
    rows_per_block = min(chunk_size, samples, max(1, _COVARIANCE_BLOCK // dimension))
    reference = data[:rows_per_block].mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = np.empty((rows_per_block, dimension), dtype=np.float32)
    total = np.zeros(dimension, dtype=np.float64)
    product = np.zeros((dimension, dimension), dtype=np.float64)
    for first in range(0, samples, rows_per_block):
        rows = data[first:first + rows_per_block]
        block = centred[:len(rows)]
        np.subtract(rows, reference, out=block)
        total += block.sum(axis=0, dtype=np.float64)
        product += block.T @ block
    del centred
    shift = total / samples
    product /= samples
    for low in range(0, dimension, _OUTER_ROWS):     # product -= outer(shift, shift)
        product[low:low + _OUTER_ROWS] -= np.multiply.outer(shift[low:low + _OUTER_ROWS], shift)
    return reference.astype(np.float64) + shift, product


def _leading_components(covariance: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues (clipped at 0) and their unit eigenvectors.

    Up to ``_EXACT_EIGEN_LIMIT`` dimensions from ``numpy.linalg.eigh``; above, from
    a fixed number of subspace (block power) iterations from a fixed start, then
    ``eigh`` of the projected matrix (Rayleigh-Ritz).  Each eigenvector's sign is
    chosen so that its largest-magnitude element is positive.

    Returns
    -------
    values : numpy.ndarray
        ``(m,)`` in decreasing order, ``m = min(count, D)``.
    vectors : numpy.ndarray
        ``(D, m)``.
    """
    dimension = covariance.shape[0]
    count = min(count, dimension)
    if dimension <= _EXACT_EIGEN_LIMIT:
        values, vectors = np.linalg.eigh(covariance)
    else:
        width = min(dimension, count + _SUBSPACE_OVERSAMPLING)
        start = np.random.default_rng(0).standard_normal((dimension, width))
        basis, _ = np.linalg.qr(covariance @ start)
        for _ in range(_SUBSPACE_ITERATIONS):
            basis, _ = np.linalg.qr(covariance @ basis)
        projected = basis.T @ (covariance @ basis)
        values, small = np.linalg.eigh((projected + projected.T) / 2.0)
        vectors = basis @ small
    values = np.clip(values[::-1][:count], 0.0, None)
    vectors = vectors[:, ::-1][:, :count]
    largest = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[largest, np.arange(count)])
    signs[signs == 0] = 1.0
    return values, vectors * signs[None, :]


# The minisom backend ------------------------------------------------------------------


def minisom_node_order(rows: int, columns: int, topology: Topology) -> tuple[int, int, np.ndarray]:
    """How a MiniSom grid matches this module's grid.

    A rectangular map is ``MiniSom(rows, columns)`` in the same node order.
    minisom's hexagonal grids shift alternate rows of its *second* index, so a
    hexagonal map is ``MiniSom(columns, rows)``, its node ``(i, j)`` being node
    ``(r, c) = (j, i)`` here, or ``(j, columns - 1 - i)`` when ``rows`` is even (the
    mirror image, for minisom shifts the rows counted from its last one).  The node
    positions then agree up to a translation or reflection, so every distance between
    nodes is the same.

    Parameters
    ----------
    rows, columns : int
        Size of the map here.
    topology : {"rectangular", "hexagonal"}
        Grid of the nodes.

    Returns
    -------
    x, y : int
        minisom's map size (its ``x`` and ``y`` arguments).
    order : numpy.ndarray
        ``(K,)`` int64: ``order[i * y + j]`` is the flat index here of minisom's node ``(i, j)``.
    """
    _check_grid(rows, columns, topology)
    if topology == "rectangular":
        return rows, columns, np.arange(rows * columns, dtype=np.int64)
    i, j = np.divmod(np.arange(rows * columns, dtype=np.int64), rows)
    c = i if rows % 2 == 1 else columns - 1 - i
    return columns, rows, j * columns + c


class _EpochClock:
    """minisom learning-rate decay that also times epochs and reports progress.

    minisom calls its decay function before every single-sample update with ``t``,
    the epoch (``use_epochs=True``); a new ``t`` means the previous epoch ended.
    """

    def __init__(self, rates: np.ndarray, progress: ProgressCallback | None) -> None:
        self.rates = rates
        self.progress = progress
        self.epoch = -1
        self.began = 0.0
        self.seconds: list[float] = []

    def __call__(self, learning_rate: float, t: int, max_iter: int) -> float:
        epoch = min(int(t), len(self.rates) - 1)
        if epoch != self.epoch:
            self.finish()
            self.epoch = epoch
            self.began = time.perf_counter()
        return float(self.rates[epoch])

    def finish(self) -> None:
        """Close the running epoch, if any."""
        if self.epoch < 0 or len(self.seconds) > self.epoch:
            return
        self.seconds.append(time.perf_counter() - self.began)
        if self.progress is not None:
            epochs = len(self.rates)
            self.progress((self.epoch + 1) / epochs,
                          f"epoch {self.epoch + 1}/{epochs} (minisom)")


def _train_minisom(data: np.ndarray, start: np.ndarray, parameters: SOMParameters,
                   coordinates: np.ndarray,
                   progress: ProgressCallback | None) -> tuple[np.ndarray, list[float]]:
    """Online training by minisom from ``start``; the ``(K, D)`` float32 codebook and epoch times.

    Same grid geometry (:func:`minisom_node_order`), initial codebook, sigma and
    learning-rate schedules (decay functions indexed by epoch, ``use_epochs=True``),
    samples in an order shuffled once with ``seed``.  minisom's own Gaussian is
    this module's; its bubble is a square of open side ``2 sigma`` on grid indices,
    so the bubble of this module is handed to it instead.
    """
    import minisom

    nodes, dimension = start.shape
    x, y, order = minisom_node_order(parameters.rows, parameters.columns, parameters.topology)
    sigmas = parameters.sigma_schedule()
    clock = _EpochClock(parameters.learning_rate_schedule(), progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # sigma advice for its own bubble
        som = minisom.MiniSom(
            x, y, dimension, sigma=float(sigmas[0]), learning_rate=float(clock.rates[0]),
            decay_function=clock, neighborhood_function=parameters.neighbourhood,
            topology=parameters.topology, activation_distance="euclidean",
            random_seed=parameters.seed)
    if not hasattr(som, "_sigma_decay_function"):
        raise RuntimeError("this minisom has no sigma decay hook (minisom 2.3.5 or later "
                           "is needed)")

    def sigma_decay(sigma: float, t: int, max_iter: int) -> float:
        return float(sigmas[min(int(t), len(sigmas) - 1)])

    som._sigma_decay_function = sigma_decay  # its constructor accepts names only
    if parameters.neighbourhood == "bubble":
        positions = coordinates[order]
        radius_eps = _GRID_EPS

        def bubble(c: tuple[Any, Any], sigma: float) -> np.ndarray:
            centre = positions[int(c[0]) * y + int(c[1])]
            d2 = ((positions - centre) ** 2).sum(axis=1)
            return (d2 <= (sigma + radius_eps) ** 2).astype(np.float64).reshape(x, y)

        som.neighborhood = bubble
    weights = som.get_weights()
    weights.reshape(nodes, dimension)[:] = start[order]
    som.train(data, parameters.epochs, random_order=True, use_epochs=True)
    clock.finish()
    trained = np.empty((nodes, dimension), dtype=np.float32)
    trained[order] = som.get_weights().reshape(nodes, dimension)
    return trained, clock.seconds


# Checks and conversions ---------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_choice(name: str, value: object, choices: Any) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _check_positive(name: str, value: object, upper: float | None = None) -> None:
    ok = isinstance(value, int | float | np.integer | np.floating) and \
        not isinstance(value, bool) and math.isfinite(float(value)) and float(value) > 0
    if ok and upper is not None:
        ok = float(value) <= upper  # type: ignore[arg-type]
    if not ok:
        bound = f"in (0, {upper:g}]" if upper is not None else "a positive finite number"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def _check_grid(rows: int, columns: int, topology: str) -> None:
    if not (_is_int(rows) and _is_int(columns)) or rows < 1 or columns < 1:
        raise ValueError(f"rows and columns must be integers of at least 1, "
                         f"got {rows!r} x {columns!r}")
    _check_choice("topology", topology, Topology)


def _check_chunk_size(chunk_size: int) -> None:
    if not _is_int(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer of at least 1, got {chunk_size!r}")


def _as_matrix(data: np.ndarray) -> np.ndarray:
    """``data`` as a C-contiguous float32 ``(N, D)`` array, copied only if it is not one."""
    array = np.asarray(data)
    if array.ndim != 2:
        raise ValueError(f"data must be a 2-D array (samples x features), got shape "
                         f"{array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"data are empty: no samples (shape {array.shape})")
    if array.shape[1] == 0:
        raise ValueError(f"data have no features (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"data must be real numbers, got dtype {array.dtype}")
    if array.dtype == np.float32 and array.flags.c_contiguous:
        return array
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(array, dtype=np.float32)


def _as_codebook(codebook: np.ndarray, dimension: int) -> np.ndarray:
    """A ``(K, D)`` or ``(rows, columns, D)`` codebook as C-contiguous float32 ``(K, D)``."""
    array = np.asarray(codebook)
    if array.ndim not in (2, 3) or array.shape[-1] != dimension or array.size == 0:
        raise ValueError(f"codebook must have the shape (K, {dimension}) or "
                         f"(rows, columns, {dimension}), got {array.shape}")
    flat = np.ascontiguousarray(array.reshape(-1, dimension), dtype=np.float32)
    if not np.isfinite(flat).all():
        raise ValueError("codebook contains non-finite values (NaN or infinity)")
    return flat


def _squared_norms(data: np.ndarray, chunk_size: int) -> np.ndarray:
    """``||x||^2`` of every row in float32; checks on the way that all are finite.

    Raises
    ------
    ValueError
        Naming the first row that holds NaN or infinity (or that overflows float32).
    """
    samples = len(data)
    norms = np.empty(samples, dtype=np.float32)
    chunk = min(chunk_size, samples)
    for first in range(0, samples, chunk):
        rows = data[first:first + chunk]
        with np.errstate(over="ignore", invalid="ignore"):
            part = np.einsum("ij,ij->i", rows, rows)
        if not np.isfinite(part).all():
            bad_rows = np.flatnonzero(~np.isfinite(rows).all(axis=1))
            if len(bad_rows):
                row = first + int(bad_rows[0])
                raise ValueError(f"data are not finite: row {row} holds NaN or infinity "
                                 f"(in float32); remove or fill such values before training")
            row = first + int(np.flatnonzero(~np.isfinite(part))[0])
            raise ValueError(f"data are too large: the squared norm of row {row} overflows "
                             f"float32; scale the data before training")
        norms[first:first + len(rows)] = part
    return norms
