"""The SOM engine: cluster recovery, reproducibility, exact errors, grids and validation."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pytest

from jobs import som_engine as engine
from jobs.som_engine import SOMParameters

CLASSES = 4


def clusters(seed: int = 0, per_class: int = 40,
             dimension: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated Gaussian classes: centres ~30 apart, spread ~3.5."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLASSES, dimension)) * 3.0
    labels = np.repeat(np.arange(CLASSES), per_class)
    data = centres[labels] + rng.standard_normal((len(labels), dimension)) * 0.5
    return data.astype(np.float32), labels


def reachable(start: Iterable[int], allowed: set[int], edges: np.ndarray) -> set[int]:
    """Nodes reachable from ``start`` over ``edges`` without leaving ``allowed``."""
    neighbours: dict[int, set[int]] = {node: set() for node in allowed}
    for a, b in edges.tolist():
        if a in allowed and b in allowed:
            neighbours[a].add(b)
            neighbours[b].add(a)
    seen = set(start)
    stack = list(seen)
    while stack:
        for other in neighbours[stack.pop()] - seen:
            seen.add(other)
            stack.append(other)
    return seen


def brute_force(data: np.ndarray, codebook: np.ndarray, rows: int, columns: int,
                topology: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """BMU, distance, QE and TE in float64 from the full distance matrix."""
    x = data.astype(np.float64)
    w = codebook.reshape(-1, data.shape[1]).astype(np.float64)
    distances = np.sqrt(((x[:, None, :] - w[None, :, :]) ** 2).sum(axis=2))
    order = np.argsort(distances, axis=1, kind="stable")
    bmu, second = order[:, 0], order[:, 1]
    r1, c1 = np.divmod(bmu, columns)
    r2, c2 = np.divmod(second, columns)
    if topology == "rectangular":
        adjacent = (np.abs(r1 - r2) <= 1) & (np.abs(c1 - c2) <= 1)
    else:
        dx = (c1 + 0.5 * (r1 % 2)) - (c2 + 0.5 * (r2 % 2))
        dy = (r1 - r2) * math.sqrt(3.0) / 2.0
        adjacent = np.isclose(np.hypot(dx, dy), 1.0)
    best = distances[np.arange(len(x)), bmu]
    return bmu, best, float(best.mean()), float(np.mean(~adjacent))


# Training ---------------------------------------------------------------------------


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("neighbourhood", ["gaussian", "bubble"])
def test_separated_classes_map_to_their_own_regions(topology: str, neighbourhood: str) -> None:
    data, labels = clusters()
    # A bubble keeps its nearest neighbours to the end, as usual for that function.
    sigma_end = 1.0 if neighbourhood == "bubble" else 0.5
    parameters = SOMParameters(6, 6, topology=topology,  # type: ignore[arg-type]
                               neighbourhood=neighbourhood,  # type: ignore[arg-type]
                               epochs=10, sigma_end=sigma_end)
    result = engine.train_som(data, parameters)

    nodes = parameters.nodes
    edges = engine.grid_edges(6, 6, topology)  # type: ignore[arg-type]
    hits = [set(result.bmu[labels == k].tolist()) for k in range(CLASSES)]
    for k in range(CLASSES):
        for j in range(k + 1, CLASSES):
            assert not hits[k] & hits[j], f"classes {k} and {j} share nodes"
    for k in range(CLASSES):
        others = set().union(*(hits[j] for j in range(CLASSES) if j != k))
        region = reachable([min(hits[k])], set(range(nodes)) - others, edges)
        assert hits[k] <= region, f"class {k} is split by another class"
    assert result.quantization_error < 0.5 * math.sqrt(data.shape[1])  # within-class spread
    assert result.codebook.shape == (6, 6, data.shape[1])
    assert result.codebook.dtype == np.float32
    assert result.bmu.dtype == np.int64
    assert result.distance.dtype == np.float64
    assert len(result.epoch_seconds) == 10


@pytest.mark.parametrize("initialisation", ["pca", "random"])
def test_same_seed_gives_the_same_map(initialisation: str) -> None:
    data, _ = clusters(seed=3)
    parameters = SOMParameters(5, 7, topology="hexagonal", epochs=5, seed=11, chunk_size=37,
                               initialisation=initialisation)  # type: ignore[arg-type]
    first = engine.train_som(data, parameters)
    second = engine.train_som(data.copy(), parameters)
    assert first.codebook.tobytes() == second.codebook.tobytes()
    assert np.array_equal(first.bmu, second.bmu)


def test_random_initialisation_depends_on_the_seed() -> None:
    data, _ = clusters(seed=3)
    one = engine.train_som(data, SOMParameters(5, 5, epochs=3, initialisation="random", seed=1))
    two = engine.train_som(data, SOMParameters(5, 5, epochs=3, initialisation="random", seed=2))
    assert one.codebook.tobytes() != two.codebook.tobytes()
    start = engine.initial_codebook(data, SOMParameters(5, 5, initialisation="random", seed=1))
    rows = {row.tobytes() for row in data}
    assert all(prototype.tobytes() in rows for prototype in start.reshape(25, -1))
    assert len({prototype.tobytes() for prototype in start.reshape(25, -1)}) == 25


def test_chunk_size_does_not_change_the_assignment() -> None:
    data, _ = clusters(seed=5)
    whole = engine.train_som(data, SOMParameters(6, 6, epochs=6, chunk_size=10_000))
    chunked = engine.train_som(data, SOMParameters(6, 6, epochs=6, chunk_size=37))
    assert np.array_equal(whole.bmu, chunked.bmu)
    np.testing.assert_allclose(whole.codebook, chunked.codebook, rtol=1e-5, atol=1e-5)


def test_progress_is_reported_once_per_epoch() -> None:
    data, _ = clusters()
    calls: list[tuple[float, str]] = []
    engine.train_som(data, SOMParameters(4, 4, epochs=4),
                     progress=lambda fraction, message: calls.append((fraction, message)))
    assert [fraction for fraction, _ in calls] == [0.25, 0.5, 0.75, 1.0]
    assert calls[2][1].startswith("epoch 3/4, mean BMU distance ")


def test_sigma_schedule_decays_exponentially() -> None:
    parameters = SOMParameters(8, 4, epochs=5, sigma_end=0.25)
    np.testing.assert_allclose(parameters.sigma_schedule(), [4.0, 2.0, 1.0, 0.5, 0.25])
    assert parameters.resolved().sigma_start == 4.0
    assert SOMParameters(3, 3, epochs=1).sigma_schedule().tolist() == [1.5]
    np.testing.assert_allclose(
        SOMParameters(2, 2, epochs=3, learning_rate_start=0.4,
                      learning_rate_end=0.1).learning_rate_schedule(), [0.4, 0.2, 0.1])


def test_far_nodes_do_not_underflow() -> None:
    """A narrow Gaussian on a large map: far nodes still get a finite update."""
    data, _ = clusters(per_class=5, dimension=8)
    result = engine.train_som(data, SOMParameters(12, 12, epochs=4, sigma_end=0.05,
                                                  initialisation="random"))
    assert np.isfinite(result.codebook).all()


def test_a_single_node_is_the_mean() -> None:
    data, _ = clusters(per_class=10, dimension=6)
    result = engine.train_som(data, SOMParameters(1, 1, epochs=2))
    np.testing.assert_allclose(result.codebook[0, 0], data.mean(axis=0, dtype=np.float64),
                               atol=1e-5)
    assert math.isnan(result.topographic_error)
    assert (result.bmu == 0).all()


def test_other_dtypes_and_layouts_give_the_same_map() -> None:
    data, _ = clusters(seed=2, dimension=20)
    parameters = SOMParameters(4, 5, epochs=3)
    reference = engine.train_som(data, parameters)
    as_float64 = data.astype(np.float64)
    wide = np.zeros((len(data), 40), dtype=np.float32)
    wide[:, ::2] = data
    for variant in (as_float64, np.asfortranarray(data), wide[:, ::2]):
        before = variant.copy()
        result = engine.train_som(variant, parameters)
        assert result.codebook.tobytes() == reference.codebook.tobytes()
        assert np.array_equal(variant, before)


def test_float32_input_is_used_in_place() -> None:
    data = np.ones((3, 4), dtype=np.float32)
    assert engine._as_matrix(data) is data
    assert engine._as_matrix(data.astype(np.float64)).dtype == np.float32


# Initialisation ---------------------------------------------------------------------


def test_pca_initialisation_spans_the_leading_components() -> None:
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 2.0, 0.3, 0.1, 0.1])
    data = (rng.standard_normal((4000, 5)) * scales + 10.0).astype(np.float32)
    codebook = engine.initial_codebook(data, SOMParameters(3, 5, chunk_size=333))
    mean = data.mean(axis=0, dtype=np.float64)
    centre = codebook[1, 2].astype(np.float64)
    np.testing.assert_allclose(centre, mean, atol=1e-4)
    along_columns = (codebook[1, 4] - codebook[1, 0]) / 2.0   # longer side: first component
    along_rows = (codebook[2, 2] - codebook[0, 2]) / 2.0
    standard = data.std(axis=0, dtype=np.float64)
    assert abs(abs(along_columns[0]) - standard[0]) < 0.05 * standard[0]
    assert abs(abs(along_rows[1]) - standard[1]) < 0.05 * standard[1]
    assert np.abs(along_columns[1:]).max() < 0.2 and np.abs(along_rows[[0, 2, 3, 4]]).max() < 0.2


def test_subspace_iteration_finds_the_leading_eigenvectors() -> None:
    rng = np.random.default_rng(4)
    dimension = engine._EXACT_EIGEN_LIMIT + 44
    basis, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
    spectrum = 10.0 * 0.8 ** np.arange(dimension)
    covariance = (basis * spectrum) @ basis.T
    values, vectors = engine._leading_components(covariance, 2)
    np.testing.assert_allclose(values, spectrum[:2], rtol=1e-8)
    for k in range(2):
        assert abs(abs(vectors[:, k] @ basis[:, k]) - 1.0) < 1e-8
        assert vectors[np.argmax(np.abs(vectors[:, k])), k] > 0


# Assignment and errors --------------------------------------------------------------


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_bmu_qe_te_equal_a_float64_brute_force(topology: str) -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((500, 12)).astype(np.float32)
    codebook = (rng.standard_normal((4, 5, 12)) * 0.8).astype(np.float32)
    bmu, distance, qe, te = brute_force(data, codebook, 4, 5, topology)

    got_bmu, got_distance = engine.best_matching_units(data, codebook.reshape(20, 12), 64)
    assert np.array_equal(got_bmu, bmu)
    np.testing.assert_allclose(got_distance, distance, rtol=1e-12)
    assert engine.quantization_error(data, codebook.reshape(20, 12), 64) == \
        pytest.approx(qe, rel=1e-12)
    got_te = engine.topographic_error(data, codebook.reshape(20, 12), 4, 5,
                                      topology, 64)  # type: ignore[arg-type]
    assert got_te == te
    assert 0.0 < te < 1.0
    parameters = SOMParameters(4, 5, topology=topology, chunk_size=64)  # type: ignore[arg-type]
    assert engine.topographic_error(data, codebook, parameters) == te


@pytest.mark.parametrize(("topology", "rows", "columns"),
                         [("rectangular", 4, 5), ("hexagonal", 4, 5), ("hexagonal", 5, 4)])
def test_errors_agree_with_minisom(topology: str, rows: int, columns: int) -> None:
    minisom = pytest.importorskip("minisom")
    rng = np.random.default_rng(8)
    data = rng.standard_normal((400, 6)).astype(np.float32)
    codebook = rng.standard_normal((rows * columns, 6)).astype(np.float32)
    x, y, order = engine.minisom_node_order(rows, columns, topology)  # type: ignore[arg-type]
    som = minisom.MiniSom(x, y, 6, topology=topology)
    som.get_weights().reshape(-1, 6)[:] = codebook[order]
    assert engine.quantization_error(data, codebook) == \
        pytest.approx(som.quantization_error(data), rel=1e-6)
    assert engine.topographic_error(data, codebook, rows, columns,
                                    topology) == som.topographic_error(data)  # type: ignore[arg-type]
    # The grids are the same up to a translation or a reflection.
    xx, yy = som.get_euclidean_coordinates()
    theirs = np.stack([xx.ravel(), yy.ravel()], axis=1)
    ours = engine.node_coordinates(rows, columns, topology)[order]  # type: ignore[arg-type]
    spans = [np.linalg.norm(p[:, None, :] - p[None, :, :], axis=2) for p in (theirs, ours)]
    np.testing.assert_allclose(spans[0], spans[1], atol=1e-12)


def test_chunks_that_do_not_divide_the_data_give_the_same_bmus() -> None:
    rng = np.random.default_rng(9)
    data = rng.standard_normal((1001, 16)).astype(np.float32)
    codebook = rng.standard_normal((30, 16)).astype(np.float32)
    whole = engine.best_matching_units(data, codebook, 5000)
    for chunk in (1, 64, 97, 1000):
        part = engine.best_matching_units(data, codebook, chunk)
        assert np.array_equal(part[0], whole[0])
        np.testing.assert_array_equal(part[1], whole[1])
    assert engine.topographic_error(data, codebook, 5, 6, "hexagonal", 97) == \
        engine.topographic_error(data, codebook, 5, 6, "hexagonal", 5000)


def test_ties_go_to_the_lower_node() -> None:
    codebook = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    bmu, distance = engine.best_matching_units(np.zeros((1, 2), dtype=np.float32), codebook)
    assert bmu.tolist() == [1]
    assert distance.tolist() == [0.0]


# Grids and maps ---------------------------------------------------------------------


def test_hexagonal_coordinates_and_neighbours() -> None:
    coordinates = engine.node_coordinates(3, 4, "hexagonal")
    half = math.sqrt(3.0) / 2.0
    assert coordinates[0].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(coordinates[4], [0.5, half])    # (1, 0): odd row, shifted
    np.testing.assert_allclose(coordinates[11], [3.0, 2 * half])
    edges = engine.grid_edges(3, 4, "hexagonal")
    span = np.linalg.norm(coordinates[:, None, :] - coordinates[None, :, :], axis=2)
    expected = np.argwhere(np.triu(np.isclose(span, 1.0), k=1))
    assert edges.tolist() == expected.tolist()
    degree = np.bincount(edges.ravel(), minlength=12).reshape(3, 4)
    assert degree.tolist() == [[2, 4, 4, 3],
                               [5, 6, 6, 3],
                               [2, 4, 4, 3]]


def test_rectangular_coordinates_and_neighbours() -> None:
    coordinates = engine.node_coordinates(2, 3, "rectangular")
    assert coordinates.tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]
    edges = engine.grid_edges(3, 3, "rectangular")
    degree = np.bincount(edges.ravel(), minlength=9).reshape(3, 3)
    assert degree.tolist() == [[2, 3, 2], [3, 4, 3], [2, 3, 2]]


@pytest.mark.parametrize(("topology", "expected"),
                         [("rectangular", [[2.0, 3.5], [3.5, 5.0]]),
                          ("hexagonal", [[2.0, 3.0], [3.0, 5.0]])])
def test_u_matrix_of_a_handmade_codebook(topology: str, expected: list[list[float]]) -> None:
    codebook = np.array([[[0.0], [1.0]], [[3.0], [7.0]]], dtype=np.float32)
    # Rectangular: 4-neighbours.  Hexagonal: row 1 is shifted right, so (0, 1)-(1, 0)
    # are neighbours and (0, 0)-(1, 1) are not.
    u = engine.u_matrix(codebook, topology)  # type: ignore[arg-type]
    assert u.shape == (2, 2)
    np.testing.assert_allclose(u, expected)
    assert engine.u_matrix(np.zeros((1, 1, 3)), "rectangular").tolist() == [[0.0]]


def test_hit_map_counts_samples_per_node() -> None:
    counts = engine.hit_map(np.array([0, 0, 3, 1]), 2, 2)
    assert counts.dtype == np.int64
    assert counts.tolist() == [[2, 1], [0, 1]]
    with pytest.raises(ValueError, match="outside the 2 x 2 map"):
        engine.hit_map(np.array([4]), 2, 2)


# Validation -------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"rows": 0}, "a map of 0 nodes"),
    ({"columns": -2}, "a map of 0 nodes"),
    ({"epochs": 0}, "epochs must be an integer of at least 1, got 0"),
    ({"sigma_start": 0.0}, "sigma_start must be a positive finite number"),
    ({"sigma_end": -1.0}, "sigma_end must be a positive finite number"),
    ({"sigma_end": float("nan")}, "sigma_end must be"),
    ({"learning_rate_start": 1.5}, r"learning_rate_start must be in \(0, 1\]"),
    ({"chunk_size": 0}, "chunk_size must be an integer of at least 1"),
    ({"seed": -1}, "seed must be an integer"),
    ({"topology": "triangular"}, "topology must be one of"),
    ({"neighbourhood": "mexican_hat"}, "neighbourhood must be one of"),
    ({"initialisation": "linear"}, "initialisation must be one of"),
    ({"backend": "somoclu"}, "backend must be one of"),
])
def test_invalid_parameters_are_refused(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"rows": 3, "columns": 3, **changes}
    parameters = SOMParameters(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        parameters.validate()
    with pytest.raises(ValueError, match=message):
        engine.train_som(np.zeros((4, 2), dtype=np.float32), parameters)


@pytest.mark.parametrize(("data", "message"), [
    (np.zeros((0, 5), dtype=np.float32), "data are empty"),
    (np.zeros((5, 0), dtype=np.float32), "no features"),
    (np.zeros(5, dtype=np.float32), "2-D array"),
    (np.array([[0.0, 1.0], [np.nan, 2.0]]), "not finite: row 1"),
    (np.array([[0.0, 1.0], [1.0, 2.0], [3.0, -np.inf]], dtype=np.float32), "not finite: row 2"),
    (np.array([[1e300, 0.0]]), "not finite: row 0"),
    (np.array([[3e19, 0.0]], dtype=np.float32), "too large"),
    (np.array([[1 + 1j, 0]]), "real numbers"),
])
def test_invalid_data_are_refused(data: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine.train_som(data, SOMParameters(2, 2, epochs=1))


def test_a_codebook_of_the_wrong_size_is_refused() -> None:
    data = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="codebook must have the shape"):
        engine.quantization_error(data, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="a 2 x 2 map has 4 nodes"):
        engine.topographic_error(data, np.zeros((6, 4)), 2, 2)


# The minisom backend ----------------------------------------------------------------


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("neighbourhood", ["gaussian", "bubble"])
def test_minisom_backend_trains_a_comparable_map(topology: str, neighbourhood: str) -> None:
    pytest.importorskip("minisom")
    data, labels = clusters()
    common = {"rows": 6, "columns": 5, "topology": topology, "neighbourhood": neighbourhood,
              "epochs": 5, "sigma_end": 1.0 if neighbourhood == "bubble" else 0.5}
    ours = engine.train_som(data, SOMParameters(**common))  # type: ignore[arg-type]
    calls: list[tuple[float, str]] = []
    theirs = engine.train_som(data, SOMParameters(**common, backend="minisom"),  # type: ignore[arg-type]
                              progress=lambda fraction, message: calls.append((fraction, message)))
    assert theirs.codebook.shape == (6, 5, data.shape[1])
    assert theirs.codebook.dtype == np.float32
    assert theirs.quantization_error < 1.25 * ours.quantization_error
    assert ours.quantization_error < 1.25 * theirs.quantization_error
    assert [fraction for fraction, _ in calls] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert len(theirs.epoch_seconds) == 5
    hits = [set(theirs.bmu[labels == k].tolist()) for k in range(CLASSES)]
    assert all(not hits[k] & hits[j] for k in range(CLASSES) for j in range(k + 1, CLASSES))
    again = engine.train_som(data, SOMParameters(**common, backend="minisom"))  # type: ignore[arg-type]
    assert again.codebook.tobytes() == theirs.codebook.tobytes()


def test_maps_larger_than_the_node_limit_are_refused() -> None:
    """The batch update holds a nodes x nodes matrix, so a map is at most MAX_NODES nodes."""
    from jobs.som_engine import MAX_NODES

    SOMParameters(rows=64, columns=MAX_NODES // 64).validate()
    with pytest.raises(ValueError, match=f"more than {MAX_NODES}"):
        SOMParameters(rows=100, columns=100).validate()
