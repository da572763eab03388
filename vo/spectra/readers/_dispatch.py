"""The dispatcher behind :func:`vo.spectra.readers.read_spectrum`.

It resolves the input (path, bytes or binary file object), recognises the
format from the first bytes (FITS, XML/VOTable, text; gzip-compressed ones
too) rather than from the extension, hands the content to the layout readers
and turns every failure into :class:`SpectrumReadError`.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
from typing import IO, Any

import numpy as np
from astropy.io import fits

from vo.spectra.model import Spectrum
from vo.spectra.readers._common import (
    ERROR_NAMES,
    IVAR_NAMES,
    VAR_NAMES,
    LayoutMismatch,
    SpectrumReadError,
)
from vo.spectra.readers.ascii import read_ascii
from vo.spectra.readers.fits_image import read_fits_image
from vo.spectra.readers.fits_table import read_fits_table
from vo.spectra.readers.lamost import looks_like_lamost, read_lamost_image
from vo.spectra.readers.votable import UnsafeXML, read_votable

#: What :func:`read_spectrum` accepts: a path, the file's bytes, or a binary file object.
SpectrumSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

#: Largest text or XML document read into memory (bytes, after decompression).
MAX_TEXT_BYTES = 512 * 1024 * 1024
_HEAD = 65536
_MAGIC = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x89HDF", "an HDF5 file"),
    (b"PAR1", "a Parquet file"), (b"Obj\x01", "an Avro file"), (b"BZh", "a bzip2 file"),
    (b"\xfd7zXZ", "an xz file"),
)
_EXTENSIONS = (".fits", ".fit", ".fts", ".xml", ".vot", ".votable", ".csv", ".txt", ".dat",
               ".ascii", ".tsv")
_ERROR_EXTNAMES = frozenset(ERROR_NAMES + IVAR_NAMES + VAR_NAMES)


def _stem(label: str) -> str:
    base = os.path.basename(label)
    if base.lower().endswith(".gz"):
        base = base[:-3]
    for ext in _EXTENSIONS:
        if base.lower().endswith(ext):
            return base[: -len(ext)] or base
    return base


class _Input:
    """A resolved input: a path on disk or bytes in memory, and the names to report."""

    def __init__(self, source: SpectrumSource, name: str | None) -> None:
        self.path: str | None = None
        self.data: bytes | None = None
        if isinstance(source, str | os.PathLike):
            self.path = os.fspath(source)
            self.label = name or os.path.basename(self.path) or self.path
            self.origin = name or self.path
        elif isinstance(source, bytes | bytearray | memoryview):
            self.data = bytes(source)
            self.label = self.origin = name or "<bytes>"
        elif hasattr(source, "read"):
            given = getattr(source, "name", None)
            given = given if isinstance(given, str) else None
            self.label = name or (os.path.basename(given) if given else "<stream>")
            self.origin = name or given or "<stream>"
            try:
                raw: Any = source.read()
                self.data = raw.encode() if isinstance(raw, str) else bytes(raw)
            except Exception as exc:
                raise SpectrumReadError(self.label, f"cannot read stream ({exc})") from exc
        else:
            raise SpectrumReadError(name or repr(source)[:60],
                                    f"cannot read a {type(source).__name__}: give a path, "
                                    "bytes or a binary file object")
        self.stem = _stem(self.label) if not self.label.startswith("<") else "spectrum"

    def head(self) -> bytes:
        """First bytes (decompressed when gzip)."""
        if self.data is not None:
            raw = self.data[:_HEAD]
        else:
            assert self.path is not None
            with open(self.path, "rb") as fh:
                raw = fh.read(_HEAD)
        if raw[:2] == b"\x1f\x8b":
            src: Any = io.BytesIO(self.data) if self.data is not None else self.path
            with gzip.open(src, "rb") as gz:
                return gz.read(_HEAD)
        return raw

    def gzipped(self) -> bool:
        if self.data is not None:
            return self.data[:2] == b"\x1f\x8b"
        assert self.path is not None
        with open(self.path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"

    def content(self) -> bytes:
        """The whole (decompressed) content, refused beyond :data:`MAX_TEXT_BYTES`."""
        if self.gzipped():
            src: Any = io.BytesIO(self.data) if self.data is not None else self.path
            with gzip.open(src, "rb") as gz:
                out = gz.read(MAX_TEXT_BYTES + 1)
        elif self.data is not None:
            out = self.data
        else:
            assert self.path is not None
            with open(self.path, "rb") as fh:
                out = fh.read(MAX_TEXT_BYTES + 1)
        if len(out) > MAX_TEXT_BYTES:
            raise LayoutMismatch(f"text larger than {MAX_TEXT_BYTES} bytes")
        return out


def _read_hdul(hdul: fits.HDUList, inp: _Input) -> list[Spectrum]:
    primary = hdul[0].header
    reasons: list[tuple[int, str, str]] = []
    for i, hdu in enumerate(hdul):
        try:
            if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                return read_fits_table(hdu, primary if i else None, source=inp.origin,
                                       stem=inp.stem)
            if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU):
                continue
            if int(hdu.header.get("NAXIS", 0) or 0) == 0:
                continue
            if i and str(hdu.header.get("EXTNAME", "")).strip().upper() in _ERROR_EXTNAMES:
                continue
            data = hdu.data
            if data is not None and data.ndim == 2 and data.shape[0] > 1:
                if looks_like_lamost(data):
                    return read_lamost_image(hdu, primary if i else None, source=inp.origin,
                                             stem=inp.stem)
                raise LayoutMismatch(
                    f"2-D image ({data.shape[1]} x {data.shape[0]}) is neither a 1-D spectrum "
                    "nor a LAMOST image (flux, ivar, wavelength rows)")
            return read_fits_image(hdu, hdul, source=inp.origin, stem=inp.stem)
        except LayoutMismatch as exc:
            reasons.append((i, hdu.name or "", str(exc)))
    if not reasons:
        raise LayoutMismatch("FITS file holds no image or table data")
    if len(reasons) == 1:
        raise LayoutMismatch(reasons[0][2])
    raise LayoutMismatch("; ".join(f"HDU {i} ({n}): {r}" if n else f"HDU {i}: {r}"
                                   for i, n, r in reasons))


def _read_fits(inp: _Input) -> list[Spectrum]:
    target: Any = io.BytesIO(inp.data) if inp.data is not None else inp.path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(target, memmap=inp.data is None, lazy_load_hdus=False) as hdul:
                return _read_hdul(hdul, inp)
        except LayoutMismatch:
            raise
        except Exception as exc:
            truncated = [str(w.message) for w in caught if "truncated" in str(w.message)]
            if truncated:
                raise LayoutMismatch(f"truncated FITS file ({truncated[0]})") from exc
            raise LayoutMismatch(f"corrupt FITS file ({type(exc).__name__}: {exc})") from exc


def _sniff(head: bytes) -> str:
    if not head:
        raise LayoutMismatch("empty file")
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise LayoutMismatch(f"not a spectrum file ({what})")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise LayoutMismatch("file holds only blank space")
    if stripped.startswith(b"<"):
        return "xml"
    if b"\0" in head:
        raise LayoutMismatch("binary content of unknown format (not FITS, VOTable or text)")
    return "text"


def read_spectrum(source: SpectrumSource, *, name: str | None = None) -> list[Spectrum]:
    """Read the spectra in a file, recognising its layout from its content.

    Supported: FITS binary tables (WAVE/FLUX-like columns, one row per pixel or
    array cells), FITS 1-D images with a linear or log-linear wavelength WCS,
    LAMOST multi-row images, VOTable spectra (SSA / Spectrum DM) and two- or
    three-column ASCII/CSV, each optionally gzip-compressed.

    Parameters
    ----------
    source : str, os.PathLike, bytes-like or binary file object
        A path (``str`` is always a path), the file's content, or an open file.
    name : str, optional
        Name used in error messages, as ``meta.source`` and for the default
        identifier; defaults to the path's base name (``meta.source`` then
        holds the full path), ``getattr(file, "name")`` or ``"<bytes>"``.

    Returns
    -------
    list of Spectrum
        Usually one spectrum; several for tables of array-valued rows. Arrays
        are in-memory float64 copies (nothing stays open).

    Raises
    ------
    SpectrumReadError
        For anything that is not a readable spectrum (also a missing file);
        the message names the file and the reason.
    """
    inp = _Input(source, name)
    try:
        kind = _sniff(inp.head())
        if kind == "fits":
            spectra = _read_fits(inp)
        elif kind == "xml":
            spectra = read_votable(inp.content(), source=inp.origin, stem=inp.stem)
        else:
            raw = inp.content()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            spectra = read_ascii(text, source=inp.origin, stem=inp.stem)
    except (LayoutMismatch, UnsafeXML) as exc:
        raise SpectrumReadError(inp.label, str(exc)) from exc
    except SpectrumReadError:
        raise
    except OSError as exc:
        raise SpectrumReadError(inp.label, f"cannot read file ({exc.strerror or exc})") from exc
    except Exception as exc:
        raise SpectrumReadError(inp.label, f"unreadable ({type(exc).__name__}: {exc})") from exc
    if not spectra:
        raise SpectrumReadError(inp.label, "no spectrum found")
    for s in spectra:
        if not np.isfinite(s.wavelength).all():  # pragma: no cover - make_spectrum ensures
            raise SpectrumReadError(inp.label, "non-finite wavelengths")
    return spectra
