"""``som``: cluster spectra with a self-organizing map (issue 4).

The job reads its spectra from the owner's store (a folder, catalogue
identifiers, or a packed Parquet data set), prepares them with
:mod:`jobs.preprocess` (vacuum wavelengths, window, common grid,
normalisation; the prepared matrix is cached by a content hash of the
inputs and the preprocessing parameters, so a run that changes only the
map does not read the spectra again), trains the map with
:mod:`jobs.som_engine`, and publishes what :mod:`jobs.som_results` and
:mod:`jobs.som_plots` write.  Spectra that cannot be used are listed with
the reason in ``quality`` and ``rejected``; the job fails only when none is
left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from jobs.base import JobContext, JobType, owner_store
from jobs.errors import JobFatalError, JobUsageError
from jobs.preprocess import (
    PreparedSet,
    PreprocessCache,
    PreprocessParameters,
    Rejected,
    prepare,
    sources_from_store,
)
from jobs.som_engine import SOMParameters, SOMResult, hit_map, train_som, u_matrix
from jobs.som_results import (
    ASSIGNMENT_COLUMNS,
    MEMBER_COLUMNS,
    assignment_rows,
    member_rows,
    quality,
    write_codebook,
    write_json,
    write_table,
)
from uws_service.config import Config
from uws_service.errors import ServiceError
from uws_service.storage import PathError
from vo.votable import VOTABLE_MIME, TableColumn

FITS_MIME = "application/fits"
PNG_MIME = "image/png"
#: Shares of the progress bar: preparing the spectra, training, writing results.
_PREPARE, _TRAIN = 0.4, 0.5

REJECTED_COLUMNS = (TableColumn("label"), TableColumn("reason"))


def preprocessing_parameters(params: Mapping[str, Any]) -> PreprocessParameters:
    """The preprocessing part of the job's parameters, checked."""
    window = None
    if params.get("window_min") is not None and params.get("window_max") is not None:
        window = (float(params["window_min"]), float(params["window_max"]))
    parameters = PreprocessParameters(
        window=window, points=int(params.get("points", 1000)),
        grid=params.get("grid", "linear"), normalisation=params.get("normalisation", "median"),
        continuum_order=int(params.get("continuum_order", 2)),
        max_gap=float(params.get("max_gap", 5.0)),
        max_missing=float(params.get("max_missing", 0.1)))
    try:
        parameters.validate()
    except ValueError as exc:
        raise JobUsageError(str(exc)) from None
    return parameters


def som_parameters(params: Mapping[str, Any]) -> SOMParameters:
    """The map part of the job's parameters, checked."""
    sigma_start = params.get("sigma_start")
    parameters = SOMParameters(
        rows=int(params.get("rows", 10)), columns=int(params.get("columns", 10)),
        topology=params.get("topology", "rectangular"),
        neighbourhood=params.get("neighbourhood", "gaussian"),
        epochs=int(params.get("epochs", 10)),
        sigma_start=float(sigma_start) if sigma_start is not None else None,
        sigma_end=float(params.get("sigma_end", 0.5)),
        learning_rate_start=float(params.get("learning_rate_start", 0.5)),
        learning_rate_end=float(params.get("learning_rate_end", 0.01)),
        initialisation=params.get("initialisation", "pca"), seed=int(params.get("seed", 0)),
        backend=params.get("backend", "vocloud"))
    try:
        parameters.validate()
    except ValueError as exc:
        raise JobUsageError(str(exc)) from None
    return parameters


def _what(params: Mapping[str, Any]) -> str:
    if params.get("input"):
        return f"folder {params['input']!r}"
    if params.get("packed"):
        return f"packed data set {params['packed']!r}"
    return f"{len(params.get('ids') or [])} identifiers"


def _prepared(params: Mapping[str, Any], ctx: JobContext, config: Config,
              preprocessing: PreprocessParameters) -> tuple[PreparedSet, list[Rejected]]:
    files, owner = owner_store(ctx)
    ctx.progress(0.0, f"finding the spectra of the {_what(params)}")
    try:
        sources, refused = sources_from_store(
            files, owner, folder=params.get("input"),
            recursive=bool(params.get("recursive", True)),
            pattern=str(params.get("pattern", "*")), dids=params.get("ids"),
            packed=params.get("packed"))
    except (FileNotFoundError, NotADirectoryError):
        raise JobUsageError(f"{_what(params)}: no such folder or file in your store") \
            from None
    except (PathError, ServiceError) as exc:
        raise JobUsageError(f"{_what(params)}: {exc}") from None
    except ValueError as exc:
        raise JobUsageError(str(exc)) from None
    if not sources:
        raise JobFatalError(f"no spectra to map in the {_what(params)}",
                            _reasons(refused) or None)
    cache = PreprocessCache.for_owner(config, ctx.owner)
    try:
        prepared = prepare(sources, preprocessing, cache=cache,
                           progress=lambda f, m: ctx.progress(_PREPARE * f, m))
    except ValueError as exc:
        raise JobFatalError(str(exc), _reasons(refused) or None) from None
    return prepared, [*refused, *prepared.rejected]


def _reasons(rejected: list[Rejected], limit: int = 50) -> str:
    lines = [f"{r.label}: {r.reason}" for r in rejected[:limit]]
    if len(rejected) > limit:
        lines.append(f"... and {len(rejected) - limit} more")
    return "\n".join(lines)


def _train(prepared: PreparedSet, som: SOMParameters, ctx: JobContext) -> SOMResult:
    if prepared.matrix.shape[0] < 1:
        raise JobFatalError("no spectra left to map after preprocessing")
    try:
        return train_som(prepared.matrix, som,
                         progress=lambda f, m: ctx.progress(_PREPARE + _TRAIN * f, m))
    except ValueError as exc:
        raise JobUsageError(str(exc)) from None


def _publish(ctx: JobContext, prepared: PreparedSet, rejected: list[Rejected],
             result: SOMResult, preprocessing: PreprocessParameters) -> None:
    from jobs.som_plots import plot_hit_map, plot_prototypes, plot_u_matrix

    som = result.parameters
    write_codebook(ctx.add_result("codebook", "codebook.fits", FITS_MIME), result, prepared,
                   preprocessing)
    infos = {"quantization_error": f"{result.quantization_error:.6g}",
             "topographic_error": f"{result.topographic_error:.6g}",
             "rows": str(som.rows), "columns": str(som.columns), "topology": som.topology}
    ctx.add_result("assignments", "assignments.vot", VOTABLE_MIME)
    ctx.add_result("assignments-csv", "assignments.csv", "text/csv")
    write_table(ctx.results_dir / "assignments", ASSIGNMENT_COLUMNS,
                assignment_rows(prepared, result), name="assignments", infos=infos,
                description="The best-matching node of every spectrum used.")
    ctx.add_result("members", "members.vot", VOTABLE_MIME)
    ctx.add_result("members-csv", "members.csv", "text/csv")
    write_table(ctx.results_dir / "members", MEMBER_COLUMNS, member_rows(prepared, result),
                name="members", infos=infos,
                description="The members of every node, closest to the prototype first.")
    ctx.add_result("rejected", "rejected.vot", VOTABLE_MIME)
    ctx.add_result("rejected-csv", "rejected.csv", "text/csv")
    write_table(ctx.results_dir / "rejected", REJECTED_COLUMNS,
                [{"label": r.label, "reason": r.reason} for r in rejected],
                name="rejected", description="Spectra left out, with the reason.")
    write_json(ctx.add_result("quality", "quality.json", "application/json"),
               quality(result, prepared, rejected, preprocessing, som))
    ctx.progress(_PREPARE + _TRAIN + 0.02, "drawing the maps")
    plot_u_matrix(u_matrix(result.codebook, som.topology), som.topology,
                  ctx.add_result("umatrix", "umatrix.png", PNG_MIME),
                  title=f"U-matrix, {som.rows}x{som.columns} {som.topology}")
    plot_hit_map(hit_map(result.bmu, som.rows, som.columns), som.topology,
                 ctx.add_result("hitmap", "hitmap.png", PNG_MIME),
                 title=f"Spectra per node ({prepared.matrix.shape[0]} spectra)")
    plot_prototypes(prepared.wavelength, result.codebook, prepared.matrix, result.bmu,
                    som.topology, ctx.add_result("prototypes", "prototypes.png", PNG_MIME),
                    seed=som.seed,
                    title=f"Prototypes with up to 50 members each, QE "
                          f"{result.quantization_error:.4g}")


def run(params: Mapping[str, Any], ctx: JobContext) -> None:
    """Prepare the spectra, train the map, publish the results; see the module docstring."""
    preprocessing = preprocessing_parameters(params)
    som = som_parameters(params)
    config = Config.from_env()
    started = time.monotonic()
    prepared, rejected = _prepared(params, ctx, config, preprocessing)
    ctx.log.info("som %s: %d spectra prepared (%s) in %.1f s, %d left out", ctx.job_id,
                 prepared.matrix.shape[0], "cache hit" if prepared.from_cache else "read",
                 time.monotonic() - started, len(rejected))
    result = _train(prepared, som, ctx)
    _publish(ctx, prepared, rejected, result, preprocessing)
    ctx.progress(1.0, f"{prepared.matrix.shape[0]} spectra on a {som.rows}x{som.columns} map, "
                      f"QE {result.quantization_error:.4g}, TE {result.topographic_error:.3f}"
                      f"{', preprocessing from cache' if prepared.from_cache else ''}")


def estimate(params: Mapping[str, Any]) -> float:
    """Rough seconds for the UWS quote: reading dominates small maps, training large ones."""
    nodes = int(params.get("rows", 10)) * int(params.get("columns", 10))
    return 5.0 + 1e-4 * nodes * int(params.get("epochs", 10)) * int(params.get("points", 1000))


JOB_TYPE = JobType(name="som", queue="ml", run=run, estimate=estimate,
                   title="Cluster spectra with a self-organizing map")
