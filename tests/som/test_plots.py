"""PNG plots of SOM results: valid images for both topologies, member sampling, input checks."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs import som_plots
from jobs.som_plots import (
    node_positions,
    plot_hit_map,
    plot_node_members,
    plot_prototypes,
    plot_u_matrix,
    select_members,
)

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOPOLOGIES = ["rectangular", "hexagonal"]


def read_png(path: Path) -> np.ndarray:
    """Check the PNG signature and header, then decode the image."""
    import matplotlib.image

    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE
    assert raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width)
    assert width <= 3000
    assert float(image[..., :3].std()) > 0.05  # not a blank canvas
    return image


def synthetic(rows: int, columns: int, n: int, n_pixels: int = 400,
              seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wavelengths, a smooth codebook, noisy members of it and their best-matching nodes."""
    rng = np.random.default_rng(seed)
    wavelength = np.linspace(3800.0, 9000.0, n_pixels)
    r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    x = (wavelength - 6400.0) / 2600.0
    line = np.exp(-0.5 * ((wavelength - 6563.0) / 20.0) ** 2)
    codebook = (1.0 + (c / max(columns - 1, 1) - 0.5)[..., None] * x
                - 0.6 * (r / max(rows - 1, 1))[..., None] * line).astype(np.float32)
    bmu = rng.integers(0, rows * columns, n)
    bmu = bmu[bmu % 7 != 3]  # some nodes stay empty
    data = (codebook.reshape(-1, n_pixels)[bmu]
            + rng.normal(0.0, 0.03, (bmu.size, n_pixels))).astype(np.float32)
    return wavelength, codebook, data, bmu.astype(np.int64)


def grey_fraction(image: np.ndarray) -> float:
    """Share of pixels of the empty-node grey (#d9d9d9)."""
    grey = np.abs(image[..., :3] - 0xD9 / 255.0).max(axis=-1) < 0.02
    return float(grey.mean())


# --------------------------------------------------------------------------- module


def test_import_is_light_and_plots_avoid_pyplot(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import jobs.som_plots as p\n"
        "print('matplotlib' in sys.modules)\n"
        f"p.plot_hit_map(np.ones((2, 3), int), 'hexagonal', {str(tmp_path / 'h.png')!r})\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_node_positions_use_offset_coordinates() -> None:
    x, y = node_positions(3, 4, "hexagonal")
    assert x[0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert x[1].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert y[:, 0] == pytest.approx([0.0, np.sqrt(3) / 2, np.sqrt(3)])
    x, y = node_positions(3, 4, "rectangular")
    assert x[1].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert y[:, 0].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError):
        node_positions(3, 4, "triangular")


# --------------------------------------------------------------------------- U-matrix


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_u_matrix_png_follows_the_map_shape(tmp_path: Path, topology: str) -> None:
    r, c = np.meshgrid(np.arange(3), np.arange(12), indexing="ij")
    wide = np.exp(-((r - 1) ** 2 + (c - 8) ** 2) / 6.0) + 0.1
    written = plot_u_matrix(wide, topology, tmp_path / "wide.png")
    assert written == tmp_path / "wide.png"
    image = read_png(written)
    assert image.shape[1] > image.shape[0]

    tall = plot_u_matrix(wide.T.copy(), topology, tmp_path / "tall.png", title="U")
    image = read_png(tall)
    assert image.shape[0] > image.shape[1]


def test_u_matrix_copes_with_constant_and_undefined_cells(tmp_path: Path) -> None:
    read_png(plot_u_matrix(np.full((4, 4), 0.0384), "hexagonal", tmp_path / "flat.png"))
    values = np.linspace(0.0, 1.0, 16).reshape(4, 4)
    values[1, 2] = np.nan
    image = read_png(plot_u_matrix(values, "rectangular", tmp_path / "nan.png"))
    assert grey_fraction(image) > 0.001


@pytest.mark.parametrize("bad", [np.ones(5), np.ones((0, 3)), np.ones((2, 2, 2)),
                                 np.array([["a", "b"]])])
def test_u_matrix_rejects_bad_arrays(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        plot_u_matrix(bad, "rectangular", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------- hit map


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_hit_map_marks_empty_nodes(tmp_path: Path, topology: str) -> None:
    hits = np.arange(48).reshape(6, 8) * 3
    hits[2, 3] = hits[4, 5] = 0
    image = read_png(plot_hit_map(hits, topology, tmp_path / "hits.png"))
    assert grey_fraction(image) > 0.002

    full = np.full((6, 8), 7)
    assert grey_fraction(read_png(plot_hit_map(full, topology, tmp_path / "full.png"))) < 0.001


def test_hit_map_of_a_large_map_skips_annotations(tmp_path: Path) -> None:
    hits = np.random.default_rng(0).integers(0, 4, (40, 40))
    image = read_png(plot_hit_map(hits, "hexagonal", tmp_path / "large.png"))
    assert image.shape[1] <= 3000


@pytest.mark.parametrize("bad", [np.array([[1, -1]]), np.array([[1.5, 2.0]]),
                                 np.array([[np.nan, 1.0]]), np.arange(4)])
def test_hit_map_rejects_non_counts(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        plot_hit_map(bad, "rectangular", tmp_path / "bad.png")


@pytest.mark.parametrize("function", [plot_u_matrix, plot_hit_map])
def test_unknown_topology_is_refused(tmp_path: Path, function: object) -> None:
    with pytest.raises(ValueError, match="topology"):
        function(np.ones((2, 2), int), "triangular", tmp_path / "x.png")  # type: ignore[operator]


# --------------------------------------------------------------------------- members


def test_select_members_respects_the_limit_and_the_seed() -> None:
    rng = np.random.default_rng(5)
    bmu = rng.integers(0, 12, 3000)
    bmu[bmu == 4] = 5  # one empty node
    bmu[:3] = 7
    bmu[bmu == 9] = 8
    bmu[-2:] = 9  # one small node
    picked = select_members(bmu, 12, max_members=50, seed=3)
    assert len(picked) == 12
    for node, chosen in enumerate(picked):
        members = np.flatnonzero(bmu == node)
        assert chosen.size == min(50, members.size) <= 50
        assert np.isin(chosen, members).all()
        assert np.all(np.diff(chosen) > 0)
    assert picked[4].size == 0
    assert picked[9].tolist() == [2998, 2999]

    again = select_members(bmu, 12, max_members=50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(picked, again, strict=True))
    other = select_members(bmu, 12, max_members=50, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(picked, other, strict=True))

    assert all(p.size == 0 for p in select_members(bmu, 12, max_members=0))
    assert sum(p.size for p in select_members(bmu, 12, max_members=10_000)) == bmu.size
    assert [p.size for p in select_members(np.array([], dtype=np.int64), 3)] == [0, 0, 0]


@pytest.mark.parametrize(("bmu", "n_nodes", "limit"), [
    (np.array([0, 5]), 5, 50),
    (np.array([-1, 0]), 5, 50),
    (np.array([0.0, 1.0]), 5, 50),
    (np.zeros((2, 2), dtype=np.int64), 5, 50),
    (np.array([0, 1]), 5, -1),
    (np.array([0, 1]), 0, 50),
])
def test_select_members_rejects_bad_input(bmu: np.ndarray, n_nodes: int, limit: int) -> None:
    with pytest.raises(ValueError):
        select_members(bmu, n_nodes, max_members=limit)


# --------------------------------------------------------------------------- prototypes


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_prototype_grid_of_a_10x10_map_with_2000_members(tmp_path: Path, topology: str) -> None:
    wavelength, codebook, data, bmu = synthetic(10, 10, 2300)
    assert bmu.size > 1900
    written = plot_prototypes(wavelength, codebook, data, bmu, topology, tmp_path / "p.png")
    image = read_png(written)
    assert image.shape[1] > image.shape[0]
    assert grey_fraction(image) > 0.001  # the empty nodes


def test_prototype_grid_handles_nan_few_members_and_no_members(tmp_path: Path) -> None:
    wavelength, codebook, data, bmu = synthetic(4, 5, 60, n_pixels=3000)
    data[::3, 100:400] = np.nan
    read_png(plot_prototypes(wavelength, codebook, data, bmu, "hexagonal",
                             tmp_path / "nan.png", max_members=3, seed=2, title="Test"))
    read_png(plot_prototypes(wavelength, codebook, data[:0], bmu[:0], "rectangular",
                             tmp_path / "none.png"))
    read_png(plot_prototypes(wavelength[::-1].copy(), codebook, data, bmu, "hexagonal",
                             tmp_path / "descending.png", max_members=0))


def test_prototype_grid_of_a_single_row(tmp_path: Path) -> None:
    wavelength, codebook, data, bmu = synthetic(1, 6, 100)
    image = read_png(plot_prototypes(wavelength, codebook, data, bmu, "hexagonal",
                                     tmp_path / "row.png"))
    assert image.shape[1] > image.shape[0]


def test_prototype_grid_rejects_inconsistent_input(tmp_path: Path) -> None:
    wavelength, codebook, data, bmu = synthetic(3, 4, 200, n_pixels=50)
    target = tmp_path / "bad.png"
    cases: list[dict[str, object]] = [
        dict(codebook=codebook.reshape(12, 50)),
        dict(wavelength=wavelength[:-1]),
        dict(wavelength=np.full(50, 5000.0)),
        dict(data=data[:, :-1]),
        dict(bmu=bmu[:-1]),
        dict(bmu=np.where(bmu == 0, 12, bmu)),
        dict(bmu=bmu.astype(np.float64)),
        dict(topology="triangular"),
        dict(max_members=-1),
    ]
    for change in cases:
        arguments: dict[str, object] = dict(wavelength=wavelength, codebook=codebook,
                                            data=data, bmu=bmu, topology="rectangular",
                                            path=target)
        arguments.update(change)
        with pytest.raises(ValueError):
            plot_prototypes(**arguments)  # type: ignore[arg-type]
    assert not target.exists()


def test_node_members_plot(tmp_path: Path) -> None:
    wavelength, codebook, data, bmu = synthetic(3, 3, 900)
    members = np.flatnonzero(bmu == 4)
    assert members.size > 50
    image = read_png(plot_node_members(wavelength, data, members, codebook[1, 1],
                                       tmp_path / "node.png", title="Node (1, 1)"))
    assert image.shape[1] > image.shape[0]
    read_png(plot_node_members(wavelength, data, members[:0], codebook[1, 1],
                               tmp_path / "empty.png"))
    with pytest.raises(ValueError):
        plot_node_members(wavelength, data, np.array([data.shape[0]]), codebook[1, 1],
                          tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plot_node_members(wavelength, data, members, codebook[1, 1, :-1], tmp_path / "bad.png")


def test_decimation_keeps_narrow_lines() -> None:
    wavelength = np.linspace(4000.0, 5000.0, 4001)
    flux = np.ones((2, 4001))
    flux[0, 1234] = 5.0
    flux[1, 2345] = -3.0
    waves, thinned = som_plots._decimate(wavelength, flux, 100)
    assert thinned.shape == waves.shape
    assert thinned.shape[0] == 2 and 150 <= thinned.shape[1] <= 200
    assert thinned[0].max() == 5.0
    assert thinned[1].min() == -3.0
    assert np.all(np.diff(waves, axis=1) >= 0)
