"""Packing many small spectra into a few big files: Parquet data sets and Avro containers.

Machine-learning jobs read the same collection of spectra many times, and
opening hundreds of thousands of small FITS files each time costs far more
than reading their few kilobytes of samples.  This module packs a
collection of canonical :class:`~vo.spectra.model.Spectrum` objects into

Parquet data sets (:func:`write_parquet`, :func:`read_parquet`, :func:`iter_parquet_batches`)
    A folder of ``part-00000.parquet``, ``part-00001.parquet``, ... files
    (at most ``rows_per_file`` spectra each), one row per spectrum: one
    column per :class:`~vo.spectra.model.SpectrumMeta` field (``id``,
    ``target``, ``ra``, ``dec``, ``mjd``, ``exposure``, ``instrument``,
    ``telescope``, ``flux_unit``, ``medium``, ``frame``, ``source``,
    ``layout``; ``extra`` as a JSON object string) and the ``list<double>``
    columns ``wavelength`` (Angstrom), ``flux`` and ``error`` (null when the
    spectrum has no error).  This is what a prepared collection is stored
    as, and what Spark reads.
Avro container files (:func:`write_avro`, :func:`read_avro`)
    One file, one record ``vocloud.Spectrum`` (schema :data:`AVRO_SCHEMA`,
    with a doc string on every field) per spectrum, with the same fields;
    for exchanging millions of small spectra.

Both formats carry the format version :data:`FORMAT_VERSION` and the units
(:data:`UNITS`) in their file-level metadata (Parquet key-value metadata
``vocloud.format`` / ``vocloud.units``; Avro header metadata of the same
names).  Readers refuse files of another format version, and files that are
not readable, with :class:`PackedFormatError` (a :class:`ValueError`) whose
message names the file.

A spectrum read back is bit-identical to the one written: the same float64
samples (NaN pixels included), the same metadata (``extra`` as far as JSON
keeps it: string keys; tuples come back as lists).

Reading Parquet is columnar: each list column is converted through its
flattened values and offsets (one NumPy copy per row group), and every
spectrum's arrays are views into that copy.  Keeping one spectrum of a
batch therefore keeps its whole row group in memory.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vo.spectra.model import Spectrum, SpectrumMeta

PathLike = str | os.PathLike[str]

#: Format version written into, and required from, every packed file.
FORMAT_VERSION = "vocloud-spectra/1"
#: Units of the packed columns (flux and error are in each row's ``flux_unit``).
UNITS: dict[str, str] = {"wavelength": "Angstrom", "flux": "flux_unit", "error": "flux_unit",
                         "ra": "deg", "dec": "deg", "mjd": "d", "exposure": "s"}
#: Key of the format version in the file-level metadata (Parquet and Avro).
FORMAT_KEY = "vocloud.format"
#: Key of the units (a JSON object) in the file-level metadata.
UNITS_KEY = "vocloud.units"

#: SpectrumMeta fields held as strings, and whether they may be null.
_STRING_FIELDS: dict[str, bool] = {
    "id": True, "target": True, "instrument": True, "telescope": True, "flux_unit": False,
    "medium": True, "frame": True, "source": False, "layout": False}
#: SpectrumMeta fields held as float64 (all may be null).
_FLOAT_FIELDS = ("ra", "dec", "mjd", "exposure")
#: SpectrumMeta fields in packed column order (``extra`` comes after them).
META_FIELDS = ("id", "target", "ra", "dec", "mjd", "exposure", "instrument", "telescope",
               "flux_unit", "medium", "frame", "source", "layout")
#: Sample columns.
ARRAY_FIELDS = ("wavelength", "flux", "error")

_DOCS: dict[str, str] = {
    "id": "Identifier given by the source (archive obsid, file name stem...).",
    "target": "Name of the observed object.",
    "ra": "ICRS right ascension, degrees.",
    "dec": "ICRS declination, degrees.",
    "mjd": "Mid-exposure (or start) time, Modified Julian Date (days).",
    "exposure": "Exposure time, seconds.",
    "instrument": "Instrument the spectrum comes from.",
    "telescope": "Telescope the spectrum comes from.",
    "flux_unit": "Unit of flux and error as an astropy unit string; empty when relative "
                 "or unknown.",
    "medium": "Medium the wavelengths are measured in: 'air' or 'vacuum'; null when unknown.",
    "frame": "Rest frame of the wavelengths: 'topocentric', 'heliocentric' or "
             "'barycentric'; null when unknown.",
    "source": "The file or URL the spectrum was read from.",
    "layout": "The reader layout that recognised the file (for example 'fits-table').",
    "extra": "Further header values as a JSON object (string keys).",
    "wavelength": "Wavelengths in Angstrom, float64, increasing.",
    "flux": "Flux in flux_unit, float64, NaN where there is no data; as long as wavelength.",
    "error": "1-sigma flux error in flux_unit, float64, NaN where unknown; as long as "
             "wavelength; null when the spectrum has no error.",
}

#: Largest number of samples of one column in one Parquet row group (int32 list offsets).
_MAX_GROUP_SAMPLES = 1 << 28


class PackedFormatError(ValueError):
    """A packed file is unreadable, not a vocloud spectra file, or of another format version.

    The message starts with the file name.
    """


# Shared helpers ----------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """JSON encoding of NumPy scalars and arrays in ``meta.extra``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"meta.extra value of type {type(value).__name__} is not JSON-able")


def _extra_json(extra: dict[str, Any]) -> str:
    return json.dumps(extra, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _units_json() -> str:
    return json.dumps(UNITS, separators=(",", ":"))


def _check_version(found: str | None, path: Path, kind: str) -> None:
    """Refuse a file without, or with another, vocloud format version."""
    if found is None:
        raise PackedFormatError(
            f"{path}: not a vocloud spectra {kind} file (no '{FORMAT_KEY}' in its metadata)")
    if found != FORMAT_VERSION:
        raise PackedFormatError(
            f"{path}: written in format '{found}' by another version of vocloud; "
            f"this version reads '{FORMAT_VERSION}' only (repack the spectra)")


# Parquet -------------------------------------------------------------------------------


def _field_meta(name: str) -> dict[bytes, bytes]:
    meta = {b"doc": _DOCS[name].encode()}
    if name in UNITS:
        meta[b"unit"] = UNITS[name].encode()
    return meta


def _arrow_schema() -> pa.Schema:
    fields = []
    for name in META_FIELDS:
        if name in _STRING_FIELDS:
            typ, nullable = pa.string(), _STRING_FIELDS[name]
        else:
            typ, nullable = pa.float64(), True
        fields.append(pa.field(name, typ, nullable=nullable, metadata=_field_meta(name)))
    fields.append(pa.field("extra", pa.string(), nullable=False, metadata=_field_meta("extra")))
    for name in ARRAY_FIELDS:
        fields.append(pa.field(name, pa.list_(pa.field("item", pa.float64(), nullable=False)),
                               nullable=name == "error", metadata=_field_meta(name)))
    return pa.schema(fields, metadata={FORMAT_KEY: FORMAT_VERSION, UNITS_KEY: _units_json()})


#: The Arrow schema of a packed Parquet file (with the format version in its metadata).
ARROW_SCHEMA = _arrow_schema()
_COLUMNS = [*META_FIELDS, "extra", *ARRAY_FIELDS]


def _list_array(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """A ``list<double>`` array from per-spectrum arrays (None -> null)."""
    lengths = np.fromiter((0 if a is None else a.size for a in arrays), dtype=np.int64,
                          count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [a for a in arrays if a is not None]
    values = (np.concatenate(present) if present else np.zeros(0)).astype(np.float64, copy=False)
    nulls = np.fromiter((a is None for a in arrays), dtype=bool, count=len(arrays))
    typ = ARROW_SCHEMA.field("wavelength").type
    if nulls.any():
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), type=typ,
                                        mask=pa.array(nulls))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), type=typ)


def _to_table(spectra: Sequence[Spectrum]) -> pa.Table:
    """One Arrow table (schema :data:`ARROW_SCHEMA`) holding ``spectra``."""
    columns: list[pa.Array] = []
    metas = [s.meta for s in spectra]
    for name in META_FIELDS:
        typ = ARROW_SCHEMA.field(name).type
        values = [getattr(m, name) for m in metas]
        if name in _FLOAT_FIELDS:
            values = [None if v is None else float(v) for v in values]
        columns.append(pa.array(values, type=typ))
    columns.append(pa.array([_extra_json(m.extra) for m in metas], type=pa.string()))
    columns.append(_list_array([s.wavelength for s in spectra]))
    columns.append(_list_array([s.flux for s in spectra]))
    columns.append(_list_array([s.error for s in spectra]))
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def _batches(spectra: Iterable[Spectrum], rows: int) -> Iterator[list[Spectrum]]:
    """Groups of at most ``rows`` spectra and at most ``_MAX_GROUP_SAMPLES`` samples."""
    batch: list[Spectrum] = []
    samples = 0
    for spectrum in spectra:
        if batch and (len(batch) >= rows or samples + len(spectrum) > _MAX_GROUP_SAMPLES):
            yield batch
            batch, samples = [], 0
        batch.append(spectrum)
        samples += len(spectrum)
    if batch:
        yield batch


def write_parquet(spectra: Iterable[Spectrum], directory: PathLike, *,
                  rows_per_file: int = 100_000, row_group_size: int = 8192,
                  compression: str = "snappy", overwrite: bool = False) -> list[Path]:
    """Write spectra as a Parquet data set (one row per spectrum).

    Parameters
    ----------
    spectra : iterable of Spectrum
        The spectra, in row order; consumed once, so a generator of any
        length works (at most one row group is held in memory).
    directory : str or os.PathLike
        Folder of the data set, created when missing.  Files are named
        ``part-00000.parquet``, ``part-00001.parquet``, ...
    rows_per_file : int
        Largest number of spectra in one file.
    row_group_size : int
        Largest number of spectra in one row group (the unit of
        :func:`iter_parquet_batches` reads and of parallel reads in Spark).
    compression : str
        Parquet codec (``"snappy"``, ``"zstd"``, ``"none"``, ...).
    overwrite : bool
        Delete ``*.parquet`` files already in ``directory`` first; without
        it such files are an error (they would be read as part of the set).

    Returns
    -------
    list of pathlib.Path
        The written files, in order (none for no spectra).

    Raises
    ------
    FileExistsError
        When ``directory`` already holds Parquet files and ``overwrite`` is false.
    ValueError
        For ``rows_per_file`` or ``row_group_size`` below 1, or a
        ``meta.extra`` that JSON cannot encode.

    Notes
    -----
    Each file is written under a hidden temporary name and renamed when
    complete, so a reader never sees half a file.  File-level metadata:
    ``vocloud.format`` = :data:`FORMAT_VERSION`, ``vocloud.units`` = the
    JSON of :data:`UNITS`; each column also has ``doc`` (and ``unit``) field
    metadata.
    """
    if rows_per_file < 1 or row_group_size < 1:
        raise ValueError("rows_per_file and row_group_size must be at least 1")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.parquet"))
    if existing and not overwrite:
        raise FileExistsError(
            f"{folder} already holds Parquet files ({existing[0].name}, ...); "
            "pass overwrite=True to replace them")
    for old in existing:
        old.unlink()

    written: list[Path] = []
    writer: pq.ParquetWriter | None = None
    tmp = target = folder
    rows_in_file = 0
    try:
        for batch in _batches(spectra, row_group_size):
            while batch:
                if writer is None:
                    target = folder / f"part-{len(written):05d}.parquet"
                    tmp = folder / f".{target.name}.tmp"
                    writer = pq.ParquetWriter(tmp, ARROW_SCHEMA, compression=compression)
                    rows_in_file = 0
                take = batch[: rows_per_file - rows_in_file]
                batch = batch[len(take):]
                try:
                    table = _to_table(take)
                except TypeError as exc:
                    raise ValueError(str(exc)) from exc
                writer.write_table(table, row_group_size=row_group_size)
                rows_in_file += len(take)
                if rows_in_file >= rows_per_file:
                    writer.close()
                    writer = None
                    os.replace(tmp, target)
                    written.append(target)
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, target)
            written.append(target)
    finally:
        if writer is not None:
            writer.close()
            tmp.unlink(missing_ok=True)
    return written


def parquet_files(directory_or_file: PathLike) -> list[Path]:
    """The files of a Parquet data set, in row order.

    Parameters
    ----------
    directory_or_file : str or os.PathLike
        A data set folder (its ``*.parquet`` files, sorted by name; hidden
        and ``_``-prefixed files are left out) or one Parquet file.

    Returns
    -------
    list of pathlib.Path
        At least one file.

    Raises
    ------
    FileNotFoundError
        When the path does not exist.
    ValueError
        For a folder without Parquet files.
    """
    path = Path(directory_or_file)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.parquet")
                       if p.is_file() and not p.name.startswith((".", "_")))
        if not files:
            raise ValueError(f"{path}: no Parquet files in this folder")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return [path]


def _open_parquet(path: Path) -> pq.ParquetFile:
    """Open one packed file, checking it is readable and of this format version."""
    try:
        handle = pq.ParquetFile(path, memory_map=True)
        schema = handle.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise PackedFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    metadata = schema.metadata or {}
    raw = metadata.get(FORMAT_KEY.encode())
    _check_version(None if raw is None else raw.decode("utf-8", "replace"), path, "Parquet")
    for name in _COLUMNS:
        index = schema.get_field_index(name)
        if index < 0:
            raise PackedFormatError(f"{path}: column '{name}' is missing")
        want = ARROW_SCHEMA.field(name).type
        got = schema.field(index).type
        if name in ARRAY_FIELDS:
            ok = ((pa.types.is_list(got) or pa.types.is_large_list(got))
                  and pa.types.is_float64(got.value_type))
        else:
            ok = got.equals(want) or (pa.types.is_large_string(got) and want == pa.string())
        if not ok:
            raise PackedFormatError(f"{path}: column '{name}' is {got}, expected {want}")
    return handle


def _flat_values(values: pa.Array) -> np.ndarray:
    """The float64 values of a list column chunk as a writable NumPy array.

    Decoded Parquet pages sit in freshly allocated, mutable Arrow buffers
    that only this table references: those are wrapped without a copy.
    Anything else (nulls, another type, read-only memory) is copied once.
    """
    if values.null_count == 0 and pa.types.is_float64(values.type):
        buffer = values.buffers()[1]
        if buffer is not None and buffer.is_mutable:
            flat = np.frombuffer(buffer, dtype=np.float64, count=len(values),
                                 offset=values.offset * 8)
            if flat.flags.writeable:
                return flat
    return np.array(values.to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass
class _ListColumn:
    """A ``list<double>`` column split into rows.

    Attributes
    ----------
    rows : list of numpy.ndarray or None
        One array (a view into the column's flat values) per row; None for null.
    lengths : numpy.ndarray
        Samples per row (0 for null).
    unsorted : numpy.ndarray
        True for rows whose values decrease somewhere (only when asked for).
    """

    rows: list[np.ndarray | None]
    lengths: np.ndarray
    unsorted: np.ndarray


def _split_lists(column: pa.ChunkedArray, *, check_order: bool = False) -> _ListColumn:
    """Split a ``list<double>`` column by its offsets, without a loop over the samples."""
    rows: list[np.ndarray | None] = []
    lengths: list[np.ndarray] = []
    unsorted: list[np.ndarray] = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        offsets = chunk.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        start, stop = int(offsets[0]), int(offsets[-1])
        flat = _flat_values(chunk.values.slice(start, stop - start))
        bounds = offsets - start
        lengths.append(np.diff(bounds))
        chunk_rows: list[np.ndarray | None] = [
            flat[a:b] for a, b in itertools.pairwise(bounds.tolist())]
        if chunk.null_count:
            nulls = chunk.is_null().to_numpy(zero_copy_only=False)
            lengths[-1][nulls] = 0
            chunk_rows = [None if null else row
                          for row, null in zip(chunk_rows, nulls.tolist(), strict=True)]
        rows.extend(chunk_rows)
        flags = np.zeros(len(chunk), dtype=bool)
        if check_order and flat.size > 1:
            # A decrease at position p (flat[p + 1] < flat[p]) is inside row r unless
            # p + 1 is where a row starts.
            drops = np.flatnonzero(flat[1:] < flat[:-1])
            if drops.size:
                inside = ~np.isin(drops + 1, bounds)
                flags[np.searchsorted(bounds, drops[inside], side="right") - 1] = True
        unsorted.append(flags)
    empty = np.zeros(0, dtype=np.int64)
    return _ListColumn(rows, np.concatenate(lengths) if lengths else empty,
                       np.concatenate(unsorted) if unsorted else np.zeros(0, dtype=bool))


def _table_to_spectra(table: pa.Table, path: Path) -> list[Spectrum]:
    """Canonical spectra from a table of the packed schema.

    The invariants :class:`~vo.spectra.model.Spectrum` checks on
    construction (float64, equal lengths, increasing wavelengths) are
    checked here for the whole table at once; rows that hold them become
    spectra without running the per-spectrum checks again, the others go
    through the constructor (which sorts them, as it does for any reader).
    """
    n = table.num_rows
    meta_columns = [table.column(name).to_pylist() for name in META_FIELDS]
    extras = table.column("extra").to_pylist()
    waves = _split_lists(table.column("wavelength"), check_order=True)
    fluxes = _split_lists(table.column("flux"))
    errors = _split_lists(table.column("error"))
    null = [i for i in range(n) if waves.rows[i] is None or fluxes.rows[i] is None]
    if null:
        raise PackedFormatError(f"{path}: row {null[0]} has a null wavelength or flux")
    has_error = np.fromiter((e is not None for e in errors.rows), dtype=bool, count=n)
    bad = (fluxes.lengths != waves.lengths) | (has_error & (errors.lengths != waves.lengths))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PackedFormatError(
            f"{path}: row {i}: wavelength ({waves.lengths[i]}), flux ({fluxes.lengths[i]}) "
            f"and error ({errors.lengths[i] if has_error[i] else None}) differ in length")
    slow = waves.unsorted.tolist()
    wave_rows = cast(list[np.ndarray], waves.rows)  # no nulls: checked above
    flux_rows = cast(list[np.ndarray], fluxes.rows)
    spectra: list[Spectrum] = []
    new = object.__new__
    for i, values in enumerate(zip(*meta_columns, strict=True)):
        text = extras[i]
        try:
            extra = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise PackedFormatError(f"{path}: row {i}: extra is not JSON ({exc})") from exc
        meta = SpectrumMeta(**dict(zip(META_FIELDS, values, strict=True)), extra=extra)
        if meta.flux_unit is None:
            meta.flux_unit = ""
        if slow[i]:
            spectra.append(Spectrum(wave_rows[i], flux_rows[i], errors.rows[i], meta))
            continue
        spectrum = new(Spectrum)
        spectrum.wavelength = wave_rows[i]
        spectrum.flux = flux_rows[i]
        spectrum.error = errors.rows[i]
        spectrum.meta = meta
        spectra.append(spectrum)
    return spectra


def read_parquet(directory_or_file: PathLike) -> list[Spectrum]:
    """Read a Parquet data set written by :func:`write_parquet`.

    Parameters
    ----------
    directory_or_file : str or os.PathLike
        The data set folder, or one of its files.

    Returns
    -------
    list of Spectrum
        All spectra, in the order written.  The arrays of the spectra of one
        row group are views into one NumPy array per column (writable).

    Raises
    ------
    PackedFormatError
        (a ValueError) naming the file, when a file is unreadable, not a
        vocloud spectra file, of another format version, or lacks a column.
    FileNotFoundError
        When the path does not exist.
    """
    spectra: list[Spectrum] = []
    for path in parquet_files(directory_or_file):
        handle = _open_parquet(path)
        try:
            table = handle.read(columns=_COLUMNS)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise PackedFormatError(f"{path}: corrupt Parquet file ({exc})") from exc
        finally:
            handle.close()
        spectra.extend(_table_to_spectra(table, path))
    return spectra


def iter_parquet_batches(path: PathLike, batch_size: int = 1024) -> Iterator[list[Spectrum]]:
    """Stream a Parquet data set in lists of spectra, for jobs that do not hold it all.

    Parameters
    ----------
    path : str or os.PathLike
        The data set folder, or one of its files.
    batch_size : int
        Spectra per list; every list but the last has exactly this many,
        across file boundaries.

    Yields
    ------
    list of Spectrum
        The next ``batch_size`` spectra, in the order written.

    Raises
    ------
    PackedFormatError
        As :func:`read_parquet`, when the file being reached is unusable.
    ValueError
        For ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    pending: list[Spectrum] = []
    for file in parquet_files(path):
        handle = _open_parquet(file)
        try:
            batches = handle.iter_batches(batch_size=batch_size, columns=_COLUMNS)
            while True:
                try:
                    record_batch = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError, ValueError) as exc:
                    raise PackedFormatError(f"{file}: corrupt Parquet file ({exc})") from exc
                pending.extend(_table_to_spectra(pa.Table.from_batches([record_batch]), file))
                while len(pending) >= batch_size:
                    yield pending[:batch_size]
                    pending = pending[batch_size:]
        finally:
            handle.close()
    if pending:
        yield pending


# Avro ---------------------------------------------------------------------------------


def _avro_field(name: str) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "doc": _DOCS[name]}
    array = {"type": "array", "items": "double"}
    if name in ("wavelength", "flux"):
        field["type"] = array
    elif name == "error":
        field.update(type=["null", array], default=None)
    elif name == "extra":
        field.update(type="string", default="{}")
    elif name in _FLOAT_FIELDS:
        field.update(type=["null", "double"], default=None)
    elif _STRING_FIELDS[name]:
        field.update(type=["null", "string"], default=None)
    else:
        field.update(type="string", default="")
    return field


#: The Avro schema of one packed spectrum (record ``vocloud.Spectrum``).
AVRO_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Spectrum",
    "namespace": "vocloud",
    "doc": ("One astronomical spectrum in vocloud's canonical form: wavelengths in Angstrom "
            "(increasing), flux and optional error as float64 (NaN where there is no data), "
            f"and its metadata. Format {FORMAT_VERSION}."),
    "fields": [_avro_field(name) for name in (*META_FIELDS, "extra", *ARRAY_FIELDS)],
}
_PARSED_AVRO = fastavro.parse_schema(AVRO_SCHEMA)


def default_avro_codec() -> str:
    """The codec :func:`write_avro` uses by default.

    Returns
    -------
    str
        ``"snappy"`` when a snappy implementation (cramjam or python-snappy)
        is installed, else ``"deflate"`` (built into every Avro reader).
    """
    for module in ("cramjam", "snappy"):
        try:
            __import__(module)
        except ImportError:
            continue
        return "snappy"
    return "deflate"


def _avro_record(spectrum: Spectrum) -> dict[str, Any]:
    meta = spectrum.meta
    record: dict[str, Any] = {name: getattr(meta, name) for name in META_FIELDS}
    for name in _FLOAT_FIELDS:
        value = record[name]
        record[name] = None if value is None else float(value)
    record["extra"] = _extra_json(meta.extra)
    record["wavelength"] = spectrum.wavelength.tolist()
    record["flux"] = spectrum.flux.tolist()
    record["error"] = None if spectrum.error is None else spectrum.error.tolist()
    return record


def write_avro(spectra: Iterable[Spectrum], path: PathLike, *, codec: str | None = None,
               sync_interval: int = 1 << 20) -> Path:
    """Write spectra to an Avro container file (one ``vocloud.Spectrum`` record each).

    Parameters
    ----------
    spectra : iterable of Spectrum
        The spectra, in order; consumed once.
    path : str or os.PathLike
        File to write (replaced when it exists, only once complete).
    codec : str, optional
        Block codec; default :func:`default_avro_codec` (snappy when
        available, else deflate).
    sync_interval : int
        Approximate block size in bytes before compression.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For an unknown or unavailable codec, or a ``meta.extra`` that JSON
        cannot encode.

    Notes
    -----
    The header metadata holds ``vocloud.format`` = :data:`FORMAT_VERSION`
    and ``vocloud.units`` (JSON of :data:`UNITS`) besides the schema
    :data:`AVRO_SCHEMA`.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    records = (_avro_record(s) for s in spectra)
    try:
        with tmp.open("wb") as out:
            fastavro.writer(out, _PARSED_AVRO, records, codec=codec or default_avro_codec(),
                            sync_interval=sync_interval,
                            metadata={FORMAT_KEY: FORMAT_VERSION, UNITS_KEY: _units_json()})
    except TypeError as exc:
        tmp.unlink(missing_ok=True)
        raise ValueError(str(exc)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def _avro_spectrum(record: dict[str, Any]) -> Spectrum:
    meta = SpectrumMeta(**{name: record[name] for name in META_FIELDS},
                        extra=json.loads(record["extra"]) if record["extra"] else {})
    error = record["error"]
    return Spectrum(np.array(record["wavelength"], dtype=np.float64),
                    np.array(record["flux"], dtype=np.float64),
                    None if error is None else np.array(error, dtype=np.float64), meta)


def read_avro(path: PathLike) -> list[Spectrum]:
    """Read an Avro container file written by :func:`write_avro`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    list of Spectrum
        The spectra, in the order written.

    Raises
    ------
    PackedFormatError
        (a ValueError) naming the file, when it is not a readable Avro
        file, not a vocloud spectra file, or of another format version.
    FileNotFoundError
        When the file does not exist.
    """
    source = Path(path)
    spectra: list[Spectrum] = []
    with source.open("rb") as handle:
        try:
            reader = fastavro.reader(handle)
        except Exception as exc:  # fastavro raises many types for a bad header
            raise PackedFormatError(f"{source}: not a readable Avro file ({exc})") from exc
        _check_version(reader.metadata.get(FORMAT_KEY), source, "Avro")
        schema = reader.writer_schema
        name = schema.get("name") if isinstance(schema, dict) else None
        if name not in ("vocloud.Spectrum", "Spectrum"):
            raise PackedFormatError(f"{source}: records are '{name}', not 'vocloud.Spectrum'")
        index = 0
        try:
            for record in reader:
                if not isinstance(record, dict):
                    raise TypeError(f"record of type {type(record).__name__}")
                spectra.append(_avro_spectrum(record))
                index += 1
        except Exception as exc:  # truncated or damaged blocks, bad JSON, bad lengths
            raise PackedFormatError(
                f"{source}: corrupt Avro file at record {index} ({exc})") from exc
    return spectra


__all__ = [
    "ARROW_SCHEMA",
    "AVRO_SCHEMA",
    "FORMAT_VERSION",
    "UNITS",
    "PackedFormatError",
    "default_avro_codec",
    "iter_parquet_batches",
    "parquet_files",
    "read_avro",
    "read_parquet",
    "write_avro",
    "write_parquet",
]
