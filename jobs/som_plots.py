"""PNG plots of self-organizing-map results: U-matrix, hit map and prototype spectra.

The inputs follow the SOM engine's conventions: a codebook of shape
``(rows, columns, D)``, best-matching units ``bmu`` of shape ``(N,)`` holding
the flat node index ``r * columns + c``, and a topology ``"rectangular"`` or
``"hexagonal"``.  Hexagonal maps use offset coordinates: node ``(r, c)`` sits
at ``x = c + 0.5 * (r % 2)``, ``y = r * sqrt(3) / 2``.  Every plot draws row 0
at the top, as in the member tables.

matplotlib is imported inside the functions and only its Agg canvas is used
(no pyplot, no global state), so importing this module is cheap and the plots
may be drawn from any thread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

__all__ = [
    "TOPOLOGIES",
    "node_positions",
    "plot_hit_map",
    "plot_node_members",
    "plot_prototypes",
    "plot_u_matrix",
    "select_members",
]

#: Map topologies the plots understand.
TOPOLOGIES = ("rectangular", "hexagonal")

#: Largest map (rows and columns) whose hit counts are written into the cells.
ANNOTATE_MAX = 30

#: Resolution of every PNG.
_DPI = 150
#: Widest figure, in inches (3000 px at ``_DPI``).
_MAX_WIDTH_IN = 20.0
_HEX_ROW = math.sqrt(3.0) / 2.0
_MEMBER_COLOUR = "#1f77b4"
_PROTOTYPE_COLOUR = "#d62728"
_EMPTY_COLOUR = "#d9d9d9"


# --------------------------------------------------------------------------- checks


def _check_topology(topology: str) -> None:
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; expected one of {TOPOLOGIES}")


def _check_grid(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty (rows, columns) array, got shape "
                         f"{array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    return array


def _check_bmu(bmu: np.ndarray, n_nodes: int) -> np.ndarray:
    array = np.asarray(bmu)
    if array.ndim != 1:
        raise ValueError(f"bmu must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"bmu must hold integer node indices, got dtype {array.dtype}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= n_nodes:
        raise ValueError(f"bmu holds node indices from {low} to {high}; the map has "
                         f"{n_nodes} nodes (0 to {n_nodes - 1})")
    return array.astype(np.int64, copy=False)


def _check_max_members(max_members: int) -> int:
    if isinstance(max_members, bool) or not isinstance(max_members, (int, np.integer)):
        raise ValueError(f"max_members must be an integer, got {max_members!r}")
    if max_members < 0:
        raise ValueError(f"max_members must be >= 0, got {max_members}")
    return int(max_members)


def _check_wavelength(wavelength: np.ndarray, n_pixels: int) -> np.ndarray:
    array = np.asarray(wavelength, dtype=np.float64)
    if array.ndim != 1 or array.size != n_pixels:
        raise ValueError(f"wavelength must have shape ({n_pixels},), got {array.shape}")
    if n_pixels < 2:
        raise ValueError("spectra need at least two pixels")
    if not np.all(np.isfinite(array)):
        raise ValueError("wavelength must be finite")
    if array[0] == array[-1]:
        raise ValueError("wavelength must span a non-empty range")
    return array


# --------------------------------------------------------------------------- geometry


def node_positions(rows: int, columns: int, topology: str) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the map's nodes in plot coordinates.

    Parameters
    ----------
    rows, columns : int
        Size of the map.
    topology : {'rectangular', 'hexagonal'}
        Rectangular nodes sit on a unit square grid; hexagonal nodes use
        offset coordinates (odd rows shifted by +0.5 in x, rows
        ``sqrt(3) / 2`` apart).

    Returns
    -------
    x, y : numpy.ndarray
        Arrays of shape ``(rows, columns)``; ``y`` grows with the row index
        (row 0 is drawn at the top by inverting the axis).

    Raises
    ------
    ValueError
        If the topology is unknown or the map is empty.
    """
    _check_topology(topology)
    if rows < 1 or columns < 1:
        raise ValueError(f"the map must have at least one node, got {rows} x {columns}")
    r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    if topology == "hexagonal":
        return c + 0.5 * (r % 2), r * _HEX_ROW
    return c.astype(np.float64), r.astype(np.float64)


def _cell_vertices(rows: int, columns: int, topology: str) -> np.ndarray:
    """Polygons of the cells, shape ``(rows * columns, k, 2)`` in row-major order."""
    x, y = node_positions(rows, columns, topology)
    if topology == "hexagonal":
        # Pointy-top hexagons of circumradius 1/sqrt(3) tile the offset grid exactly.
        angles = np.pi / 6.0 + np.arange(6) * np.pi / 3.0
        radius = 1.0 / math.sqrt(3.0)
        dx, dy = radius * np.cos(angles), radius * np.sin(angles)
    else:
        dx = np.array([-0.5, 0.5, 0.5, -0.5])
        dy = np.array([-0.5, -0.5, 0.5, 0.5])
    xs = x.reshape(-1, 1) + dx
    ys = y.reshape(-1, 1) + dy
    return np.stack([xs, ys], axis=-1)


def _index_ticks(n: int, most: int = 15) -> np.ndarray:
    """Every k-th index from 0, k in 1, 2, 5, 10, 20, 50, ..., so at most ``most`` remain."""
    step = 1
    while math.ceil(n / step) > most:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2
    return np.arange(0, n, step)


def _grid_extent(rows: int, columns: int, topology: str) -> tuple[float, float]:
    """Width and height of the drawn map in plot units."""
    if topology == "hexagonal":
        width = columns + (0.5 if rows > 1 else 0.0)
        height = (rows - 1) * _HEX_ROW + 2.0 / math.sqrt(3.0)
        return width, height
    return float(columns), float(rows)


# --------------------------------------------------------------------------- figures


def _new_figure(width_in: float, height_in: float, *, constrained: bool) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=_DPI,
                    layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path | str, title: str) -> Path:
    target = Path(path)
    figure.savefig(target, format="png", dpi=_DPI, metadata={"Title": title})
    return target


def _map_figure(rows: int, columns: int, topology: str) -> tuple[Figure, Axes, Axes, float]:
    """A figure holding the map with square-ish cells, and a colour bar beside it.

    Returns the figure, the map's axes, the colour bar's axes and the size of
    one cell in inches.  The layout is fixed in inches, so the map's box has
    exactly the map's aspect and the colour bar hugs it.
    """
    width, height = _grid_extent(rows, columns, topology)
    cell_in = min(9.0 / max(width, height), max(0.6, 3.5 / width))
    map_w, map_h = width * cell_in, height * cell_in
    left, right, bottom, top = 0.75, 1.35, 0.65, 0.85
    fig_w = max(6.5, left + map_w + right)
    bar_h = max(map_h, 3.3)  # the longest colour bar label needs about 3.2 in
    fig_h = bottom + max(map_h, bar_h) + top
    figure = _new_figure(fig_w, fig_h, constrained=False)
    x0 = left + (fig_w - left - map_w - right) / 2.0
    y0 = bottom + (fig_h - bottom - map_h - top) / 2.0
    axes = figure.add_axes((x0 / fig_w, y0 / fig_h, map_w / fig_w, map_h / fig_h))
    bar_y = y0 + (map_h - bar_h) / 2.0
    bar = figure.add_axes(((x0 + map_w + 0.2) / fig_w, bar_y / fig_h, 0.18 / fig_w,
                           bar_h / fig_h))
    return figure, axes, bar, cell_in


def _colour_range(values: np.ndarray) -> tuple[float, float]:
    """Limits of the colour scale; a (nearly) constant map gets a small symmetric range."""
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-6 * max(1.0, abs(high)):
        half = 0.05 * abs(high) if high != 0.0 else 0.5
        return (high + low) / 2.0 - half, (high + low) / 2.0 + half
    return low, high


def _colour_bar(figure: Figure, mappable: ScalarMappable, bar: Axes, label: str, *,
                integer: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    colour_bar = figure.colorbar(mappable, cax=bar)
    colour_bar.set_label(label, fontsize=9)
    if integer:
        colour_bar.locator = MaxNLocator(integer=True)
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_powerlimits((-3, 4))
    colour_bar.formatter = formatter
    colour_bar.update_ticks()
    bar.tick_params(labelsize=8)


def _draw_cells(axes: Axes, values: np.ndarray, topology: str, *, cmap: str,
                empty: np.ndarray, vmin: float, vmax: float) -> PolyCollection:
    """Fill the map's cells with colours of ``values``; ``empty`` cells are grey and hatched.

    Returns the collection carrying the colour scale (for the colour bar).
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    rows, columns = values.shape
    vertices = _cell_vertices(rows, columns, topology)
    flat = values.reshape(-1).astype(np.float64)
    empty_flat = empty.reshape(-1)
    edge_width = 0.4 if max(rows, columns) <= 40 else 0.0

    filled = PolyCollection(list(vertices[~empty_flat]), cmap=cmap,
                            norm=Normalize(vmin=vmin, vmax=vmax),
                            edgecolors="white", linewidths=edge_width)
    filled.set_array(flat[~empty_flat])
    axes.add_collection(filled)
    if empty_flat.any():
        blank = PolyCollection(list(vertices[empty_flat]), facecolors=_EMPTY_COLOUR,
                               edgecolors="white", linewidths=edge_width, hatch="////")
        axes.add_collection(blank)

    width, height = _grid_extent(rows, columns, topology)
    x0 = -0.5
    y0 = -1.0 / math.sqrt(3.0) if topology == "hexagonal" else -0.5
    axes.set_xlim(x0, x0 + width)
    axes.set_ylim(y0 + height, y0)  # inverted: row 0 at the top
    axes.set_aspect("equal")

    row_ticks = _index_ticks(rows)
    column_ticks = _index_ticks(columns)
    x, y = node_positions(rows, columns, topology)
    axes.set_xticks(x[0, column_ticks], [str(c) for c in column_ticks])
    axes.set_yticks(y[row_ticks, 0], [str(r) for r in row_ticks])
    axes.set_xlabel("column")
    axes.set_ylabel("row (0 at top)")
    axes.tick_params(length=2, labelsize=8)
    for spine in axes.spines.values():
        spine.set_visible(False)
    return filled


def _subtitle(rows: int, columns: int, topology: str) -> str:
    return f"{rows} \N{MULTIPLICATION SIGN} {columns} {topology} map, row 0 at top"


def plot_u_matrix(u_matrix: np.ndarray, topology: str, path: Path, *,
                  title: str = "U-matrix") -> Path:
    """Draw the U-matrix: each node coloured by its mean distance to its neighbours.

    Parameters
    ----------
    u_matrix : numpy.ndarray
        Shape ``(rows, columns)``; mean distance of each prototype to its
        neighbouring prototypes.  NaN cells are drawn grey and hatched.
    topology : {'rectangular', 'hexagonal'}
        Rectangles or offset-coordinate hexagons.
    path : pathlib.Path
        PNG file to write.
    title : str, optional
        First line of the title.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the array is not a non-empty 2-D numeric array or the topology is
        unknown.
    """
    _check_topology(topology)
    values = _check_grid(u_matrix, "u_matrix").astype(np.float64)
    rows, columns = values.shape
    missing = ~np.isfinite(values)
    vmin, vmax = _colour_range(values[~missing])

    figure, axes, bar, _ = _map_figure(rows, columns, topology)
    mappable = _draw_cells(axes, values, topology, cmap="viridis", empty=missing,
                           vmin=vmin, vmax=vmax)
    _colour_bar(figure, mappable, bar, "mean distance to neighbouring prototypes")
    subtitle = _subtitle(rows, columns, topology)
    if missing.any():
        subtitle += "; grey: undefined"
    axes.set_title(f"{title}\n{subtitle}", fontsize=10)
    return _save(figure, path, title)


def _text_colour(rgba: tuple[float, float, float, float]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "black" if luminance > 0.5 else "white"


def plot_hit_map(hits: np.ndarray, topology: str, path: Path, *,
                 title: str = "Hits per node") -> Path:
    """Draw how many spectra each node won.

    Parameters
    ----------
    hits : numpy.ndarray
        Shape ``(rows, columns)``; non-negative counts per node.  Empty nodes
        are drawn grey and hatched; on maps of at most 30 x 30 nodes every
        cell carries its count.
    topology : {'rectangular', 'hexagonal'}
        Rectangles or offset-coordinate hexagons.
    path : pathlib.Path
        PNG file to write.
    title : str, optional
        First line of the title.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the counts are not a non-empty 2-D array of non-negative whole
        numbers or the topology is unknown.
    """
    _check_topology(topology)
    values = _check_grid(hits, "hits")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values != np.round(values)):
        raise ValueError("hits must hold non-negative whole numbers")
    counts = values.astype(np.int64)
    rows, columns = counts.shape
    empty = counts == 0
    vmax = max(1.0, float(counts.max()))

    figure, axes, bar, cell_in = _map_figure(rows, columns, topology)
    mappable = _draw_cells(axes, counts, topology, cmap="viridis", empty=empty,
                           vmin=0.0, vmax=vmax)
    _colour_bar(figure, mappable, bar, "spectra", integer=True)

    if rows <= ANNOTATE_MAX and columns <= ANNOTATE_MAX:
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        cmap = colormaps["viridis"]
        norm = Normalize(vmin=0.0, vmax=vmax)
        cell_pt = cell_in * 72.0
        digits = len(str(int(counts.max())))
        size = max(3.0, min(9.0, 0.8 * cell_pt / (0.62 * max(digits, 2))))
        x, y = node_positions(rows, columns, topology)
        for r in range(rows):
            for c in range(columns):
                count = int(counts[r, c])
                colour = "#555555" if count == 0 else _text_colour(cmap(norm(count)))
                axes.text(float(x[r, c]), float(y[r, c]), str(count), ha="center",
                          va="center", fontsize=size, color=colour)
    n_empty = int(empty.sum())
    empties = {0: "no empty nodes", 1: "1 empty node (grey)"}.get(
        n_empty, f"{n_empty} empty nodes (grey)")
    axes.set_title(f"{title}\n{_subtitle(rows, columns, topology)}; {int(counts.sum())} "
                   f"spectra, {empties}", fontsize=10)
    return _save(figure, path, title)


# --------------------------------------------------------------------------- members


def select_members(bmu: np.ndarray, n_nodes: int, *, max_members: int = 50,
                   seed: int = 0) -> list[np.ndarray]:
    """Pick at most ``max_members`` spectra of every node, reproducibly.

    Parameters
    ----------
    bmu : numpy.ndarray
        Shape ``(N,)``; flat index of each spectrum's best-matching node.
    n_nodes : int
        Number of nodes of the map (``rows * columns``).
    max_members : int, optional
        Most spectra kept per node; nodes with fewer keep all of them.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng`; the same ``bmu``, limit
        and seed always give the same selection.

    Returns
    -------
    list of numpy.ndarray
        ``n_nodes`` sorted ``int64`` arrays of row indices into the data.

    Raises
    ------
    ValueError
        If ``bmu`` is not 1-D integer within ``[0, n_nodes)`` or
        ``max_members`` is negative.
    """
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be positive, got {n_nodes}")
    nodes = _check_bmu(bmu, n_nodes)
    limit = _check_max_members(max_members)
    rng = np.random.default_rng(seed)
    keys = rng.random(nodes.size)
    order = np.lexsort((keys, nodes))  # by node, random within a node
    counts = np.bincount(nodes, minlength=n_nodes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(nodes.size) - starts[nodes[order]]
    kept = order[rank < limit]
    pieces = np.split(kept, np.cumsum(np.minimum(counts, limit))[:-1])
    return [np.sort(piece).astype(np.int64, copy=False) for piece in pieces]


def _decimate(wavelength: np.ndarray, flux: np.ndarray, n_bins: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Keep each bin's minimum and maximum (in pixel order), so narrow lines survive.

    ``flux`` has shape ``(k, D)``; the result has shape ``(k, 2 * n_bins)``
    (or ``(k, D)`` when there are fewer pixels than that) for both the
    wavelengths and the fluxes.  NaN stays NaN and breaks the drawn line.
    """
    k, n_pixels = flux.shape
    if n_pixels <= 2 * n_bins:
        return np.broadcast_to(wavelength, flux.shape), flux.astype(np.float64)
    width = math.ceil(n_pixels / n_bins)
    n_bins = math.ceil(n_pixels / width)
    pad = n_bins * width - n_pixels
    values = np.pad(flux.astype(np.float64), ((0, 0), (0, pad)), constant_values=np.nan)
    waves = np.pad(wavelength, (0, pad), mode="edge")
    blocks = values.reshape(k, n_bins, width)
    nan = np.isnan(blocks)
    low = np.where(nan, np.inf, blocks).argmin(axis=2)
    high = np.where(nan, -np.inf, blocks).argmax(axis=2)
    first, second = np.minimum(low, high), np.maximum(low, high)
    base = (np.arange(n_bins) * width)[None, :]
    index = np.stack([base + first, base + second], axis=2).reshape(k, 2 * n_bins)
    return waves[index], np.take_along_axis(values, index, axis=1)


def _flux_range(prototypes: np.ndarray, members: list[np.ndarray]) -> tuple[float, float]:
    """Shared y-range: all of the prototypes, the central 99 % of the member fluxes."""
    finite = prototypes[np.isfinite(prototypes)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (np.inf, -np.inf)
    if members:
        pooled = np.concatenate([m.reshape(-1) for m in members])
        pooled = pooled[np.isfinite(pooled)]
        if pooled.size:
            p_low, p_high = np.percentile(pooled, [0.5, 99.5])
            low, high = min(low, float(p_low)), max(high, float(p_high))
    if not np.isfinite(low) or not np.isfinite(high):
        return 0.0, 1.0
    if high <= low:
        return low - 0.5, high + 0.5
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def _nice_ticks(low: float, high: float, most: int) -> np.ndarray:
    from matplotlib.ticker import MaxNLocator

    locator = MaxNLocator(nbins=most, steps=[1, 2, 2.5, 5, 10])
    ticks = np.asarray(locator.tick_values(low, high), dtype=np.float64)
    inside = ticks[(ticks >= low) & (ticks <= high)]
    return inside[:most + 1]


def _tick_label(value: float) -> str:
    return f"{value:g}"


def plot_prototypes(wavelength: np.ndarray, codebook: np.ndarray, data: np.ndarray,
                    bmu: np.ndarray, topology: str, path: Path, *, max_members: int = 50,
                    seed: int = 0, title: str = "Prototype spectra") -> Path:
    """Draw every node's prototype over a sample of its member spectra, laid out as the map.

    Each node gets a small panel at its place in the map (on hexagonal maps
    odd rows are shifted right by half a panel).  Up to ``max_members``
    members per node, chosen with :func:`select_members`, are drawn thin and
    translucent; the prototype is drawn bold on top; the node's number of
    spectra is written in the panel's corner and empty nodes have a grey
    background.  All panels share one wavelength and one flux range; only
    the outer panels carry tick labels.

    Parameters
    ----------
    wavelength : numpy.ndarray
        Shape ``(D,)``; wavelengths in Å shared by all spectra.
    codebook : numpy.ndarray
        Shape ``(rows, columns, D)``; the prototypes.
    data : numpy.ndarray
        Shape ``(N, D)``; the (normalised) spectra the map was trained on.
    bmu : numpy.ndarray
        Shape ``(N,)``; flat best-matching node index ``r * columns + c``.
    topology : {'rectangular', 'hexagonal'}
        Layout of the panels.
    path : pathlib.Path
        PNG file to write.
    max_members : int, optional
        Most member spectra drawn per node.
    seed : int, optional
        Seed of the member selection.
    title : str, optional
        First line of the title.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the shapes disagree, a ``bmu`` is out of range, ``max_members``
        is negative or the topology is unknown.
    """
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import to_rgb

    _check_topology(topology)
    prototypes = np.asarray(codebook)
    if prototypes.ndim != 3 or min(prototypes.shape) < 1:
        raise ValueError(f"codebook must have shape (rows, columns, D), got {prototypes.shape}")
    rows, columns, n_pixels = prototypes.shape
    waves = _check_wavelength(wavelength, n_pixels)
    spectra = np.asarray(data)
    if spectra.ndim != 2 or spectra.shape[1] != n_pixels:
        raise ValueError(f"data must have shape (N, {n_pixels}), got {spectra.shape}")
    nodes = _check_bmu(bmu, rows * columns)
    if nodes.size != spectra.shape[0]:
        raise ValueError(f"bmu has {nodes.size} entries but data has {spectra.shape[0]} "
                         f"spectra")
    limit = _check_max_members(max_members)
    members = select_members(nodes, rows * columns, max_members=limit, seed=seed)
    hits = np.bincount(nodes, minlength=rows * columns)

    # Layout in inches: panels 1.4 times wider than tall, the whole figure <= 20 in.
    hexagonal = topology == "hexagonal" and rows > 1
    span = columns + (0.5 if hexagonal else 0.0)
    left_in, right_in, bottom_in, top_in = 0.95, 0.55, 0.7, 1.0
    panel_w = min(1.5, (_MAX_WIDTH_IN - left_in - right_in) / span)
    panel_h = panel_w / 1.4
    figure = _new_figure(left_in + right_in + span * panel_w,
                         bottom_in + top_in + rows * panel_h, constrained=False)
    fig_w, fig_h = figure.get_size_inches()
    axes = figure.add_axes((left_in / fig_w, bottom_in / fig_h, span * panel_w / fig_w,
                            rows * panel_h / fig_h))

    # Plot units: one panel pitch = 1 in x and `aspect` in y; row 0 at the top.
    aspect = panel_h / panel_w
    gap_x, gap_y = 0.05, 0.05 * aspect / 0.72
    inner_w, inner_h = 1.0 - 2 * gap_x, aspect - 2 * gap_y
    wave_lo, wave_hi = float(waves.min()), float(waves.max())
    n_bins = max(16, int(panel_w * _DPI))

    thinned: list[tuple[np.ndarray, np.ndarray]] = []
    for node in range(rows * columns):
        chosen = members[node]
        if chosen.size:
            thinned.append(_decimate(waves, spectra[chosen], n_bins))
        else:
            thinned.append((np.empty((0, 2)), np.empty((0, 2))))
    proto_w, proto_f = _decimate(waves, prototypes.reshape(rows * columns, n_pixels), n_bins)
    flux_lo, flux_hi = _flux_range(proto_f, [f for _, f in thinned if f.size])

    def origin(r: int, c: int) -> tuple[float, float]:
        x0 = c + (0.5 if hexagonal and r % 2 else 0.0) + gap_x
        y0 = (rows - 1 - r) * aspect + gap_y
        return x0, y0

    def to_plot(r: int, c: int, w: np.ndarray, f: np.ndarray) -> np.ndarray:
        x0, y0 = origin(r, c)
        x = x0 + (w - wave_lo) / (wave_hi - wave_lo) * inner_w
        y = y0 + (np.clip(f, flux_lo, flux_hi) - flux_lo) / (flux_hi - flux_lo) * inner_h
        return np.stack([x, y], axis=-1)

    frames, frame_colours = [], []
    member_lines: list[np.ndarray] = []
    member_colours: list[np.ndarray] = []
    proto_lines: list[np.ndarray] = []
    base_rgb = np.array(to_rgb(_MEMBER_COLOUR))
    for r in range(rows):
        for c in range(columns):
            node = r * columns + c
            x0, y0 = origin(r, c)
            frames.append([(x0, y0), (x0 + inner_w, y0), (x0 + inner_w, y0 + inner_h),
                           (x0, y0 + inner_h)])
            frame_colours.append(_EMPTY_COLOUR if hits[node] == 0 else "white")
            w, f = thinned[node]
            if f.size:
                segments = to_plot(r, c, w, f)
                member_lines.extend(segments)
                alpha = float(np.clip(4.0 / len(segments), 0.08, 0.6))
                member_colours.append(np.tile(np.append(base_rgb, alpha), (len(segments), 1)))
            proto_lines.append(to_plot(r, c, proto_w[node], proto_f[node]))

    axes.add_collection(PolyCollection(frames, facecolors=frame_colours,
                                       edgecolors="#999999", linewidths=0.4, zorder=1))
    if member_lines:
        axes.add_collection(LineCollection(member_lines, colors=np.concatenate(member_colours),
                                           linewidths=0.4, zorder=2))
    axes.add_collection(LineCollection(proto_lines, colors=_PROTOTYPE_COLOUR,
                                       linewidths=1.1 if panel_w >= 0.6 else 0.8, zorder=3))

    count_size = float(np.clip(panel_h * 72 * 0.16, 3.5, 8.0))
    if panel_h * 72 >= 18:  # too small to read below about a quarter inch
        for r in range(rows):
            for c in range(columns):
                x0, y0 = origin(r, c)
                axes.text(x0 + inner_w - 0.02, y0 + inner_h - 0.02 * aspect,
                          str(int(hits[r * columns + c])), ha="right", va="top",
                          fontsize=count_size, color="#222222", zorder=4,
                          bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                                "edgecolor": "none", "alpha": 0.7})

    axes.set_xlim(0.0, span)
    axes.set_ylim(0.0, rows * aspect)
    for spine in axes.spines.values():
        spine.set_visible(False)
    tick_size = float(np.clip(panel_h * 72 * 0.13, 4.5, 7.0))

    # Wavelength ticks under the bottom row, flux ticks left of each row's first panel.
    wave_ticks = _nice_ticks(wave_lo, wave_hi, 2 if panel_w < 1.0 else 3)
    bottom = rows - 1
    x_pos, x_lab = [], []
    for c in range(columns):
        x0, _ = origin(bottom, c)
        for tick in wave_ticks:
            x_pos.append(x0 + (tick - wave_lo) / (wave_hi - wave_lo) * inner_w)
            x_lab.append(_tick_label(tick))
    axes.set_xticks(x_pos, x_lab, fontsize=tick_size, rotation=90 if panel_w < 0.9 else 0)
    flux_ticks = _nice_ticks(flux_lo, flux_hi, 2)
    y_pos, y_lab = [], []
    for r in range(rows):
        _, y0 = origin(r, 0)
        for tick in flux_ticks:
            y_pos.append(y0 + (tick - flux_lo) / (flux_hi - flux_lo) * inner_h)
            y_lab.append(_tick_label(tick))
    axes.set_yticks(y_pos, y_lab, fontsize=tick_size)
    axes.tick_params(length=2, pad=1)
    axes.set_xlabel("wavelength (Å)")
    axes.set_ylabel("normalised flux")

    # Node indices on the top and right edges.
    top = axes.secondary_xaxis("top")
    column_ticks = _index_ticks(columns, most=40)
    top.set_xticks([origin(0, int(c))[0] + inner_w / 2 for c in column_ticks],
                   [str(c) for c in column_ticks], fontsize=tick_size)
    top.set_xlabel("column", fontsize=8)
    top.tick_params(length=0, pad=1)
    right = axes.secondary_yaxis("right")
    row_ticks = _index_ticks(rows, most=40)
    right.set_yticks([origin(int(r), 0)[1] + inner_h / 2 for r in row_ticks],
                     [str(r) for r in row_ticks], fontsize=tick_size)
    right.set_ylabel("row (0 at top)", fontsize=8)
    right.tick_params(length=0, pad=1)
    for secondary in (top, right):
        for spine in secondary.spines.values():
            spine.set_visible(False)

    shown = sum(m.size for m in members)
    figure.suptitle(f"{title}\n{_subtitle(rows, columns, topology)}; red: prototype, blue: "
                    f"{shown} of {nodes.size} member spectra (at most {limit} per node), "
                    f"number: spectra in node", fontsize=10, y=1.0 - 0.08 / fig_h,
                    va="top")
    return _save(figure, path, title)


def plot_node_members(wavelength: np.ndarray, data: np.ndarray, members_index: np.ndarray,
                      prototype: np.ndarray, path: Path, *, title: str = "Node members",
                      max_members: int = 50, seed: int = 0) -> Path:
    """Draw one node in detail: a sample of its member spectra under its prototype.

    Parameters
    ----------
    wavelength : numpy.ndarray
        Shape ``(D,)``; wavelengths in Å.
    data : numpy.ndarray
        Shape ``(N, D)``; all spectra.
    members_index : numpy.ndarray
        Integer row indices into ``data`` of the node's members.
    prototype : numpy.ndarray
        Shape ``(D,)``; the node's prototype.
    path : pathlib.Path
        PNG file to write.
    title : str, optional
        First line of the title (for example the node's row and column).
    max_members : int, optional
        Most member spectra drawn; a larger node is sampled reproducibly.
    seed : int, optional
        Seed of :func:`numpy.random.default_rng` for that sample.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the shapes disagree, an index is out of range or ``max_members``
        is negative.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    spectra = np.asarray(data)
    if spectra.ndim != 2:
        raise ValueError(f"data must have shape (N, D), got {spectra.shape}")
    n_pixels = spectra.shape[1]
    waves = _check_wavelength(wavelength, n_pixels)
    proto = np.asarray(prototype, dtype=np.float64)
    if proto.shape != (n_pixels,):
        raise ValueError(f"prototype must have shape ({n_pixels},), got {proto.shape}")
    index = np.asarray(members_index)
    if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
        raise ValueError("members_index must be a 1-D array of integer row indices")
    if index.size and (index.min() < 0 or index.max() >= spectra.shape[0]):
        raise ValueError(f"members_index must lie in [0, {spectra.shape[0]})")
    limit = _check_max_members(max_members)
    chosen = index[select_members(np.zeros(index.size, dtype=np.int64), 1,
                                  max_members=limit, seed=seed)[0]]

    figure = _new_figure(9.0, 4.8, constrained=True)
    axes = figure.add_subplot()
    n_bins = 1200
    proto_w, proto_f = _decimate(waves, proto[None, :], n_bins)
    member_f: list[np.ndarray] = []
    if chosen.size:
        member_w, flux = _decimate(waves, spectra[chosen], n_bins)
        member_f.append(flux)
        alpha = float(np.clip(6.0 / chosen.size, 0.12, 0.7))
        axes.add_collection(LineCollection(list(np.stack([member_w, flux], axis=-1)),
                                           colors=_MEMBER_COLOUR, alpha=alpha,
                                           linewidths=0.6))
    axes.plot(proto_w[0], proto_f[0], color=_PROTOTYPE_COLOUR, linewidth=1.6, zorder=3)
    low, high = _flux_range(proto_f, member_f)
    axes.set_xlim(float(waves.min()), float(waves.max()))
    axes.set_ylim(low, high)
    axes.set_xlabel("wavelength (Å)")
    axes.set_ylabel("normalised flux")
    axes.legend([Line2D([], [], color=_MEMBER_COLOUR, linewidth=1.0),
                 Line2D([], [], color=_PROTOTYPE_COLOUR, linewidth=1.6)],
                [f"members ({chosen.size} of {index.size} shown)", "prototype"],
                loc="best", fontsize=8)
    axes.set_title(title)
    return _save(figure, path, title)
