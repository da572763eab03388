"""The files a ``som`` job publishes: codebook FITS, assignment and member tables, quality.

The codebook is a FITS cube (rows x columns x wavelength) whose first axis
carries the wavelength WCS of the common grid (``WAVE`` for a linear grid,
``WAVE-LOG`` for a logarithmic one, as in FITS paper III, "Spectral
coordinate systems": lambda = CRVAL1 * exp(CDELT1 * (p - CRPIX1) / CRVAL1)),
vacuum wavelengths in Angstrom, and the SOM and preprocessing parameters as
header keywords; extensions give the grid explicitly (``WAVELENGTH``) and
one row per node (``NODES``).  Tables are written by :mod:`vo.votable` as
VOTable and CSV from the same columns; assignments carry the catalogue's
``obs_publisher_did`` and the node's row, column and grid position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from jobs.preprocess import PreparedSet, PreprocessParameters, Rejected
from jobs.som_engine import SOMParameters, SOMResult, hit_map, u_matrix
from vo.votable import TableColumn, csv_text, votable_bytes

__all__ = ["ASSIGNMENT_COLUMNS", "MEMBER_COLUMNS", "NODE_COLUMNS", "assignment_rows",
           "member_rows", "node_rows", "quality", "write_codebook", "write_table"]

ASSIGNMENT_COLUMNS = (
    TableColumn("label", description="the spectrum: its catalogue identifier or store path"),
    TableColumn("obs_publisher_did", ucd="meta.ref.ivoid",
                description="catalogue identifier (ivoa.obscore)"),
    TableColumn("target_name", ucd="meta.id;src"),
    TableColumn("node", "int", ucd="meta.id", description="node index: row * columns + column"),
    TableColumn("row", "int", description="map row of the best-matching node (0 at the top)"),
    TableColumn("column", "int", description="map column of the best-matching node"),
    TableColumn("x", "double", description="grid position of the node (hexagonal: offset)"),
    TableColumn("y", "double", description="grid position of the node"),
    TableColumn("distance", "double", ucd="stat.value",
                description="Euclidean distance to the node's prototype (normalised flux)"),
)
MEMBER_COLUMNS = (
    TableColumn("node", "int", ucd="meta.id"),
    TableColumn("row", "int"),
    TableColumn("column", "int"),
    TableColumn("rank", "int", description="1 = closest member to the prototype"),
    TableColumn("label"),
    TableColumn("obs_publisher_did", ucd="meta.ref.ivoid"),
    TableColumn("distance", "double", ucd="stat.value"),
)
NODE_COLUMNS = (
    TableColumn("node", "int", ucd="meta.id"),
    TableColumn("row", "int"),
    TableColumn("column", "int"),
    TableColumn("x", "double"),
    TableColumn("y", "double"),
    TableColumn("hits", "long", description="spectra whose best-matching node this is"),
    TableColumn("u_distance", "double",
                description="mean distance of the prototype to its neighbours' (U-matrix)"),
)


def assignment_rows(prepared: PreparedSet, result: SOMResult) -> list[dict[str, Any]]:
    """One row per spectrum used, in input order."""
    columns = result.parameters.columns
    coordinates = result.node_coordinates
    rows = []
    for index, node in enumerate(result.bmu.tolist()):
        rows.append({
            "label": prepared.labels[index], "obs_publisher_did": prepared.dids[index],
            "target_name": prepared.targets[index], "node": node,
            "row": node // columns, "column": node % columns,
            "x": float(coordinates[node, 0]), "y": float(coordinates[node, 1]),
            "distance": float(result.distance[index])})
    return rows


def member_rows(prepared: PreparedSet, result: SOMResult) -> list[dict[str, Any]]:
    """The member lists of every node as one table: by node, then closest first."""
    columns = result.parameters.columns
    order = np.lexsort((result.distance, result.bmu))
    rows: list[dict[str, Any]] = []
    rank = 0
    previous = -1
    for index in order.tolist():
        node = int(result.bmu[index])
        rank = rank + 1 if node == previous else 1
        previous = node
        rows.append({"node": node, "row": node // columns, "column": node % columns,
                     "rank": rank, "label": prepared.labels[index],
                     "obs_publisher_did": prepared.dids[index],
                     "distance": float(result.distance[index])})
    return rows


def node_rows(result: SOMResult) -> list[dict[str, Any]]:
    """One row per node: position, hits and U-matrix value."""
    parameters = result.parameters
    hits = hit_map(result.bmu, parameters.rows, parameters.columns).ravel()
    umatrix = u_matrix(result.codebook, parameters.topology).ravel()
    return [{"node": node, "row": node // parameters.columns,
             "column": node % parameters.columns,
             "x": float(result.node_coordinates[node, 0]),
             "y": float(result.node_coordinates[node, 1]),
             "hits": int(hits[node]), "u_distance": float(umatrix[node])}
            for node in range(parameters.rows * parameters.columns)]


def write_table(path_stem: Path, columns: Sequence[TableColumn],
                rows: Sequence[Mapping[str, Any]], *, name: str, description: str,
                infos: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Write ``{stem}.vot`` and ``{stem}.csv``; returns both paths."""
    votable = path_stem.with_suffix(".vot")
    votable.write_bytes(votable_bytes(columns, rows, name=name, description=description,
                                      infos=infos))
    table = path_stem.with_suffix(".csv")
    table.write_text(csv_text(columns, rows), newline="")
    return votable, table


def _wavelength_wcs(wavelength: np.ndarray, grid: str) -> dict[str, Any]:
    """Header cards of the spectral axis (axis 1) of the common grid."""
    first = float(wavelength[0])
    if wavelength.size < 2:
        step = 1.0
    elif grid == "log":
        step = first * float(np.log(wavelength[1] / wavelength[0]))
    else:
        step = float(wavelength[1] - wavelength[0])
    return {"CTYPE1": "WAVE-LOG" if grid == "log" else "WAVE", "CUNIT1": "Angstrom",
            "CRPIX1": 1.0, "CRVAL1": first, "CDELT1": step}


def write_codebook(path: Path, result: SOMResult, prepared: PreparedSet,
                   preprocessing: PreprocessParameters) -> Path:
    """The codebook as a FITS cube with the wavelength WCS and the parameters."""
    from astropy.io import fits

    som = result.parameters
    header = fits.Header()
    header.update(_wavelength_wcs(prepared.wavelength, preprocessing.grid))
    for axis, name in ((2, "SOM-COL"), (3, "SOM-ROW")):
        header.update({f"CTYPE{axis}": name, f"CRPIX{axis}": 1.0, f"CRVAL{axis}": 0.0,
                       f"CDELT{axis}": 1.0})
    header["AIRORVAC"] = ("vac", "wavelengths in vacuum")
    header["BUNIT"] = ("", "normalised flux" if preprocessing.normalisation != "none"
                       else "flux as read")
    cards: list[tuple[str, Any, str]] = [
        ("SOMROWS", som.rows, "map rows"), ("SOMCOLS", som.columns, "map columns"),
        ("SOMTOPO", som.topology, "grid topology"),
        ("SOMNEIGH", som.neighbourhood, "neighbourhood function"),
        ("SOMEPOCH", som.epochs, "training epochs"),
        ("SOMSIG0", som.sigma_start if som.sigma_start is not None
         else max(som.rows, som.columns) / 2, "initial neighbourhood radius (nodes)"),
        ("SOMSIG1", som.sigma_end, "final neighbourhood radius (nodes)"),
        ("SOMLR0", som.learning_rate_start, "initial learning rate (minisom)"),
        ("SOMLR1", som.learning_rate_end, "final learning rate (minisom)"),
        ("SOMINIT", som.initialisation, "initialisation"),
        ("SOMSEED", som.seed, "random seed"), ("SOMBACK", som.backend, "backend"),
        ("SOMCHUNK", som.chunk_size, "rows per distance block"),
        ("SOMQE", result.quantization_error, "quantization error"),
        ("SOMTE", result.topographic_error, "topographic error"),
        ("PPWMIN", float(prepared.wavelength[0]), "[Angstrom] window start"),
        ("PPWMAX", float(prepared.wavelength[-1]), "[Angstrom] window end"),
        ("PPPOINTS", int(prepared.wavelength.size), "grid points"),
        ("PPGRID", preprocessing.grid, "grid spacing"),
        ("PPNORM", preprocessing.normalisation, "normalisation"),
        ("PPCONT", preprocessing.continuum_order, "continuum polynomial order"),
        ("PPMAXGAP", preprocessing.max_gap, "[Angstrom] gaps interpolated up to"),
        ("PPMISS", preprocessing.max_missing, "most missing fraction"),
        ("NSPEC", int(prepared.matrix.shape[0]), "spectra used"),
        ("NREJECT", len(prepared.rejected), "spectra left out"),
    ]
    for key, value, comment in cards:
        header[key] = (value, comment)
    header["PPKEY"] = (prepared.cache_key[:64], "preprocessing cache key (sha256)")
    primary = fits.PrimaryHDU(np.ascontiguousarray(result.codebook, dtype=np.float32),
                              header=header)
    wavelength = fits.BinTableHDU.from_columns(
        [fits.Column(name="WAVELENGTH", format="D", unit="Angstrom",
                     array=prepared.wavelength)], name="WAVELENGTH")
    nodes = node_rows(result)
    node_table = fits.BinTableHDU.from_columns([
        fits.Column(name="NODE", format="J", array=[n["node"] for n in nodes]),
        fits.Column(name="ROW", format="J", array=[n["row"] for n in nodes]),
        fits.Column(name="COLUMN", format="J", array=[n["column"] for n in nodes]),
        fits.Column(name="X", format="D", array=[n["x"] for n in nodes]),
        fits.Column(name="Y", format="D", array=[n["y"] for n in nodes]),
        fits.Column(name="HITS", format="K", array=[n["hits"] for n in nodes]),
        fits.Column(name="U_DISTANCE", format="D", array=[n["u_distance"] for n in nodes]),
    ], name="NODES")
    fits.HDUList([primary, wavelength, node_table]).writeto(path, overwrite=True)
    return path


def quality(result: SOMResult, prepared: PreparedSet, rejected: Sequence[Rejected],
            preprocessing: PreprocessParameters, som: SOMParameters) -> dict[str, Any]:
    """The figures of a run, for ``quality.json``."""
    return {
        "quantization_error": result.quantization_error,
        "topographic_error": result.topographic_error,
        "spectra_used": int(prepared.matrix.shape[0]),
        "spectra_rejected": len(rejected),
        "epoch_seconds": result.epoch_seconds,
        "preprocessing": {"cache_key": prepared.cache_key, "from_cache": prepared.from_cache,
                          **preprocessing.key()},
        "som": asdict(som),
        "rejected": [{"label": r.label, "reason": r.reason} for r in rejected],
    }


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as indented JSON."""
    path.write_text(json.dumps(value, indent=2, default=str))
    return path
