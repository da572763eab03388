"""Packing spectra into Parquet data sets and Avro files gives them back bit for bit.

The demo collection, plus spectra with NaN pixels, without error, with a
unicode target name and with an empty ``extra``, is written and read back
through both formats; a data set of several files, streaming in batches,
a file of another format version and a corrupt file are checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vo.spectra.demo import generate_collection
from vo.spectra.model import Spectrum, SpectrumMeta
from vo.spectra.packing import (
    ARROW_SCHEMA,
    AVRO_SCHEMA,
    FORMAT_VERSION,
    PackedFormatError,
    iter_parquet_batches,
    read_avro,
    read_parquet,
    write_avro,
    write_parquet,
)

UNICODE_TARGET = "ζ Tau, Ondřejov 東京 ★"


def _collection() -> list[Spectrum]:
    spectra = generate_collection(50, seed=3)
    spectra[1].flux[100:110] = np.nan  # missing pixels
    assert spectra[1].error is not None
    spectra[1].error[105:120] = np.nan
    spectra[2].error = None  # no error at all
    spectra[3].meta.target = UNICODE_TARGET  # unicode
    spectra[4].meta.extra = {}  # empty extra
    spectra[5].meta.extra["nested"] = {"list": [1, 2.5, "x"], "flag": True, "none": None}
    spectra[6].meta = SpectrumMeta()  # every optional field unknown
    spectra.append(Spectrum(np.zeros(0), np.zeros(0), None, SpectrumMeta(id="empty")))
    return spectra


def assert_same(got: list[Spectrum], expected: list[Spectrum]) -> None:
    """Bit-identical samples (NaN positions included) and equal metadata, in order."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.wavelength.dtype == np.float64 and a.flux.dtype == np.float64
        assert np.array_equal(a.wavelength, b.wavelength, equal_nan=True)
        assert np.array_equal(a.flux, b.flux, equal_nan=True)
        assert (a.error is None) == (b.error is None)
        if b.error is not None:
            assert a.error is not None
            assert np.array_equal(a.error, b.error, equal_nan=True)
            assert np.array_equal(np.isnan(a.error), np.isnan(b.error))
        assert np.array_equal(np.isnan(a.flux), np.isnan(b.flux))
        assert a.meta == b.meta


@pytest.fixture(scope="module")
def spectra() -> list[Spectrum]:
    return _collection()


def test_parquet_round_trip(spectra: list[Spectrum], tmp_path: Path) -> None:
    """One file: everything comes back bit-identical, arrays writable."""
    files = write_parquet(spectra, tmp_path / "set")
    assert [f.name for f in files] == ["part-00000.parquet"]
    back = read_parquet(tmp_path / "set")
    assert_same(back, spectra)
    assert back[3].meta.target == UNICODE_TARGET
    assert back[4].meta.extra == {} and back[2].error is None
    assert np.isnan(back[1].flux[100:110]).all()
    back[0].flux[0] = 42.0  # writable, and independent of the next spectrum
    assert back[1].flux[0] != 42.0
    assert_same(read_parquet(files[0]), spectra)  # a file works as well as its folder


def test_parquet_metadata(spectra: list[Spectrum], tmp_path: Path) -> None:
    """Format version, units and column docs are in the file; columns are as documented."""
    (path,) = write_parquet(spectra[:3], tmp_path)
    schema = pq.read_schema(path)
    assert schema.metadata[b"vocloud.format"] == FORMAT_VERSION.encode()
    assert json.loads(schema.metadata[b"vocloud.units"])["wavelength"] == "Angstrom"
    assert schema.field("wavelength").metadata[b"unit"] == b"Angstrom"
    assert schema.field("wavelength").type == pa.list_(pa.field("item", pa.float64(), False))
    assert schema.names == ARROW_SCHEMA.names
    table = pq.read_table(path)
    assert table.column("error").null_count == 1
    assert json.loads(table.column("extra")[0].as_py()) == spectra[0].meta.extra


def test_parquet_multi_file_and_batches(spectra: list[Spectrum], tmp_path: Path) -> None:
    """A data set of several files (and row groups) reads back whole and in batches."""
    files = write_parquet(iter(spectra), tmp_path, rows_per_file=12, row_group_size=5)
    assert [f.name for f in files] == [f"part-{i:05d}.parquet" for i in range(5)]
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [12, 12, 12, 12, 3]
    assert_same(read_parquet(tmp_path), spectra)
    batches = list(iter_parquet_batches(tmp_path, batch_size=8))
    assert [len(b) for b in batches] == [8] * 6 + [3]
    assert_same([s for batch in batches for s in batch], spectra)
    assert_same([s for b in iter_parquet_batches(files[1], 100) for s in b], spectra[12:24])


def test_parquet_refuses_to_mix_with_old_files(spectra: list[Spectrum], tmp_path: Path) -> None:
    """Writing into a folder that holds a data set needs overwrite=True, which replaces it."""
    write_parquet(spectra, tmp_path, rows_per_file=10)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_parquet(spectra[:3], tmp_path)
    write_parquet(spectra[:3], tmp_path, overwrite=True)
    assert_same(read_parquet(tmp_path), spectra[:3])


def test_avro_round_trip(spectra: list[Spectrum], tmp_path: Path) -> None:
    """Deflate and uncompressed Avro files give the spectra back bit-identical."""
    for codec in ("deflate", "null"):
        path = write_avro(spectra, tmp_path / f"{codec}.avro", codec=codec)
        assert_same(read_avro(path), spectra)
    assert_same(read_avro(write_avro(iter(spectra), tmp_path / "default.avro")), spectra)


def test_avro_schema_is_documented(spectra: list[Spectrum], tmp_path: Path) -> None:
    """The file holds the vocloud.Spectrum schema with doc strings and the format version."""
    path = write_avro(spectra[:2], tmp_path / "s.avro")
    with path.open("rb") as handle:
        reader = fastavro.reader(handle)
        assert reader.metadata["vocloud.format"] == FORMAT_VERSION
        assert reader.codec in ("deflate", "snappy")
        schema = reader.writer_schema
        records = list(reader)
    assert isinstance(schema, dict) and schema["name"] == "vocloud.Spectrum"
    assert all(field.get("doc") for field in AVRO_SCHEMA["fields"])
    names = [field["name"] for field in AVRO_SCHEMA["fields"]]
    assert names == [*ARROW_SCHEMA.names]
    assert records[0]["wavelength"] == spectra[0].wavelength.tolist()


def _foreign_parquet(path: Path, version: str | None) -> None:
    table = pa.table({name: pa.array([], type=ARROW_SCHEMA.field(name).type)
                      for name in ARROW_SCHEMA.names})
    metadata = {} if version is None else {"vocloud.format": version}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_other_format_version_is_refused(spectra: list[Spectrum], tmp_path: Path) -> None:
    """Files of another format version (or none) are refused with a clear message."""
    _foreign_parquet(tmp_path / "v2.parquet", "vocloud-spectra/2")
    with pytest.raises(PackedFormatError, match=r"v2\.parquet.*'vocloud-spectra/2'.*"
                                                r"reads 'vocloud-spectra/1'"):
        read_parquet(tmp_path / "v2.parquet")
    _foreign_parquet(tmp_path / "plain.parquet", None)
    with pytest.raises(ValueError, match=r"plain\.parquet: not a vocloud spectra Parquet file"):
        read_parquet(tmp_path / "plain.parquet")
    with pytest.raises(PackedFormatError, match="vocloud-spectra/2"):
        list(iter_parquet_batches(tmp_path / "v2.parquet"))

    path = tmp_path / "v2.avro"
    with path.open("wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema(AVRO_SCHEMA), [],
                        metadata={"vocloud.format": "vocloud-spectra/2"})
    with pytest.raises(PackedFormatError, match=r"v2\.avro.*'vocloud-spectra/2'"):
        read_avro(path)


def test_corrupt_files_name_the_file(spectra: list[Spectrum], tmp_path: Path) -> None:
    """A truncated or damaged file gives a ValueError that names it."""
    (parquet,) = write_parquet(spectra, tmp_path / "set")
    data = parquet.read_bytes()
    parquet.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"part-00000\.parquet"):
        read_parquet(tmp_path / "set")
    parquet.write_bytes(data[:4] + b"\0" * (len(data) - 8) + data[-4:])
    with pytest.raises(ValueError, match=r"part-00000\.parquet"):
        read_parquet(parquet)

    avro = write_avro(spectra, tmp_path / "s.avro")
    data = avro.read_bytes()
    avro.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"s\.avro: corrupt Avro file"):
        read_avro(avro)
    avro.write_bytes(b"not avro at all")
    with pytest.raises(ValueError, match=r"s\.avro: not a readable Avro file"):
        read_avro(avro)
    avro.write_bytes(data[:200] + bytes(b ^ 0x5A for b in data[200:2000]) + data[2000:])
    with pytest.raises(ValueError, match=r"s\.avro"):
        read_avro(avro)


def test_unsorted_rows_are_sorted_like_any_reader(tmp_path: Path) -> None:
    """A foreign file with decreasing wavelengths gives canonical (sorted) spectra."""
    good = Spectrum(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    (path,) = write_parquet([good, good], tmp_path)
    table = pq.read_table(path)
    wave = pa.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], type=ARROW_SCHEMA.field("flux").type)
    table = table.set_column(table.schema.get_field_index("wavelength"),
                             ARROW_SCHEMA.field("wavelength"), wave)
    pq.write_table(table, path)
    first, second = read_parquet(path)
    assert first.wavelength.tolist() == [1.0, 2.0, 3.0]
    assert first.flux.tolist() == [3.0, 2.0, 1.0]
    assert second.flux.tolist() == [1.0, 2.0, 3.0]


def test_empty_input(tmp_path: Path) -> None:
    """No spectra: no files; an empty folder is an error that names it."""
    assert write_parquet([], tmp_path / "none") == []
    with pytest.raises(ValueError, match="no Parquet files"):
        read_parquet(tmp_path / "none")
    assert read_avro(write_avro([], tmp_path / "none.avro")) == []
