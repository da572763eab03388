"""The ObsCore 1.1 view of a spectrum: column metadata and the values of one row.

ObsCore 1.1 (IVOA Recommendation 2017-05-09), section 3 "Data model
overview" and table 6 ("ObsCore mandatory fields"), fixes the names, units
and UCDs used here: ``em_min``/``em_max`` in metres, ``t_min``/``t_max`` in
MJD, positions in degrees, ``access_estsize`` in kB.  The catalogue table
(:class:`uws_service.models.ObsCore`) and TAP's ``ivoa.obscore`` take their
column descriptions from :data:`OBSCORE_COLUMNS`.

What a spectrum file does not say stays NULL rather than being guessed:
the spatial resolution, the field of view of a slit or fibre, the
resolving power (a pixel spacing is not a resolution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vo.spectra.model import Spectrum

__all__ = ["OBSCORE_COLUMNS", "ObsCoreColumn", "obscore_values"]

#: One Angstrom in metres.
ANGSTROM_M = 1e-10
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class ObsCoreColumn:
    """Description of one ObsCore column, as TAP_SCHEMA and VOTable FIELDs need it."""

    name: str
    datatype: str
    unit: str | None
    ucd: str
    utype: str
    description: str
    principal: bool = False


OBSCORE_COLUMNS: tuple[ObsCoreColumn, ...] = (
    ObsCoreColumn("dataproduct_type", "char", None, "meta.code.class",
                  "obscore:ObsDataset.dataProductType", "Data product type: spectrum", True),
    ObsCoreColumn("calib_level", "int", None, "meta.code;obs.calib",
                  "obscore:ObsDataset.calibLevel",
                  "Calibration level: 2 = calibrated, science ready", True),
    ObsCoreColumn("obs_collection", "char", None, "meta.id",
                  "obscore:DataID.Collection", "Collection the data belong to", True),
    ObsCoreColumn("obs_id", "char", None, "meta.id", "obscore:DataID.observationID",
                  "Identifier of the observation in its collection", True),
    ObsCoreColumn("obs_publisher_did", "char", None, "meta.ref.ivoid",
                  "obscore:Curation.PublisherDID",
                  "IVOA dataset identifier given by this service", True),
    ObsCoreColumn("access_url", "char", None, "meta.ref.url",
                  "obscore:Access.Reference", "URL of the data file", True),
    ObsCoreColumn("access_format", "char", None, "meta.code.mime",
                  "obscore:Access.Format", "Media type of the data file", True),
    ObsCoreColumn("access_estsize", "long", "kbyte", "phys.size;meta.file",
                  "obscore:Access.Size", "Size of the data file", True),
    ObsCoreColumn("target_name", "char", None, "meta.id;src", "obscore:Target.Name",
                  "Name of the observed object", True),
    ObsCoreColumn("s_ra", "double", "deg", "pos.eq.ra", "obscore:Char.SpatialAxis.Coverage"
                  ".Location.Coord.Position2D.Value2.C1", "Right ascension (ICRS)", True),
    ObsCoreColumn("s_dec", "double", "deg", "pos.eq.dec", "obscore:Char.SpatialAxis.Coverage"
                  ".Location.Coord.Position2D.Value2.C2", "Declination (ICRS)", True),
    ObsCoreColumn("s_fov", "double", "deg", "phys.angSize;instr.fov",
                  "obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
                  "Diameter of the field of view"),
    ObsCoreColumn("s_region", "char", None, "pos.outline;obs.field",
                  "obscore:Char.SpatialAxis.Coverage.Support.Area", "Region covered"),
    ObsCoreColumn("s_resolution", "double", "arcsec", "pos.angResolution",
                  "obscore:Char.SpatialAxis.Resolution.Refval.value", "Spatial resolution"),
    ObsCoreColumn("s_xel1", "long", None, "meta.number",
                  "obscore:Char.SpatialAxis.numBins1", "Pixels along the first axis"),
    ObsCoreColumn("s_xel2", "long", None, "meta.number",
                  "obscore:Char.SpatialAxis.numBins2", "Pixels along the second axis"),
    ObsCoreColumn("t_min", "double", "d", "time.start;obs.exposure",
                  "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
                  "Start of the exposure (MJD)", True),
    ObsCoreColumn("t_max", "double", "d", "time.end;obs.exposure",
                  "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
                  "End of the exposure (MJD)", True),
    ObsCoreColumn("t_exptime", "double", "s", "time.duration;obs.exposure",
                  "obscore:Char.TimeAxis.Coverage.Support.Extent", "Exposure time"),
    ObsCoreColumn("t_resolution", "double", "s", "time.resolution",
                  "obscore:Char.TimeAxis.Resolution.Refval.value", "Time resolution"),
    ObsCoreColumn("t_xel", "long", None, "meta.number", "obscore:Char.TimeAxis.numBins",
                  "Samples along the time axis"),
    ObsCoreColumn("em_min", "double", "m", "em.wl;stat.min",
                  "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
                  "Shortest wavelength with data", True),
    ObsCoreColumn("em_max", "double", "m", "em.wl;stat.max",
                  "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
                  "Longest wavelength with data", True),
    ObsCoreColumn("em_res_power", "double", None, "spect.resolution",
                  "obscore:Char.SpectralAxis.Resolution.ResolPower.refVal",
                  "Spectral resolving power"),
    ObsCoreColumn("em_xel", "long", None, "meta.number", "obscore:Char.SpectralAxis.numBins",
                  "Samples along the spectral axis"),
    ObsCoreColumn("em_ucd", "char", None, "meta.ucd", "obscore:Char.SpectralAxis.ucd",
                  "UCD of the spectral axis"),
    ObsCoreColumn("o_ucd", "char", None, "meta.ucd", "obscore:Char.ObservableAxis.ucd",
                  "UCD of the observable (flux)"),
    ObsCoreColumn("o_unit", "char", None, "meta.unit", "obscore:Char.ObservableAxis.unit",
                  "Unit of the observable"),
    ObsCoreColumn("pol_states", "char", None, "meta.code;phys.polarization",
                  "obscore:Char.PolarizationAxis.stateList", "Polarization states"),
    ObsCoreColumn("pol_xel", "long", None, "meta.number",
                  "obscore:Char.PolarizationAxis.numBins", "Polarization samples"),
    ObsCoreColumn("facility_name", "char", None, "meta.id;instr.tel",
                  "obscore:Provenance.ObsConfig.Facility.name", "Telescope", True),
    ObsCoreColumn("instrument_name", "char", None, "meta.id;instr",
                  "obscore:Provenance.ObsConfig.Instrument.name", "Instrument", True),
)


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: str | None, limit: int = 255) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value[:limit] or None


def _o_ucd(flux_unit: str) -> str:
    """The observable's UCD from its unit: a flux density unless the unit says otherwise."""
    unit = flux_unit.replace(" ", "").lower()
    if not unit:
        return "phot.flux.density;arith.ratio"
    if "count" in unit or unit in ("adu", "ct", "electron"):
        return "phot.count"
    return "phot.flux.density;em.wl"


def obscore_values(spectrum: Spectrum, *, publisher_did: str, access_url: str,
                   access_format: str, size_bytes: int, collection: str,
                   default_id: str) -> dict[str, Any]:
    """The ObsCore columns of one spectrum.

    Parameters
    ----------
    spectrum : Spectrum
        The spectrum as a reader returned it.
    publisher_did : str
        ``obs_publisher_did``: ``ivo://{AUTHORITY}/vocloud?{uuid}``.
    access_url, access_format : str
        Where the file can be downloaded and its media type.
    size_bytes : int
        Size of the file; ``access_estsize`` is in kB, rounded up.
    collection : str
        ``obs_collection`` when the file names no instrument or telescope.
    default_id : str
        ``obs_id`` when the file gives no identifier (the file's name).

    Returns
    -------
    dict
        Column name to value; None for what the file does not say.

    Notes
    -----
    ``em_min``/``em_max`` span the samples with finite flux (the whole axis
    when no sample is finite), converted from Angstrom to metres, in the
    medium the file uses (``em_medium`` records it).  ``t_max`` is
    ``t_min`` plus the exposure when both are known.
    """
    meta = spectrum.meta
    wavelength = spectrum.wavelength
    finite = np.isfinite(spectrum.flux) & np.isfinite(wavelength)
    covered = wavelength[finite] if finite.any() else wavelength[np.isfinite(wavelength)]
    em_min = float(covered.min()) * ANGSTROM_M if covered.size else None
    em_max = float(covered.max()) * ANGSTROM_M if covered.size else None
    t_min = _finite(meta.mjd)
    exposure = _finite(meta.exposure)
    t_max = t_min + exposure / _SECONDS_PER_DAY if t_min is not None and exposure else t_min
    ra, dec = _finite(meta.ra), _finite(meta.dec)
    position_known = ra is not None and dec is not None
    return {
        "dataproduct_type": "spectrum",
        "calib_level": 2,
        "obs_collection": _text(meta.telescope) or _text(meta.instrument) or collection,
        "obs_id": _text(meta.id) or default_id,
        "obs_publisher_did": publisher_did,
        "access_url": access_url,
        "access_format": access_format,
        "access_estsize": max(1, math.ceil(size_bytes / 1024)) if size_bytes else 0,
        "target_name": _text(meta.target),
        "s_ra": ra if position_known else None,
        "s_dec": dec if position_known else None,
        "s_fov": None,
        "s_region": None,
        "s_resolution": None,
        "s_xel1": 1,
        "s_xel2": 1,
        "t_min": t_min,
        "t_max": t_max,
        "t_exptime": exposure,
        "t_resolution": None,
        "t_xel": 1,
        "em_min": em_min,
        "em_max": em_max,
        "em_res_power": None,
        "em_xel": int(wavelength.size),
        "em_ucd": "em.wl",
        "o_ucd": _o_ucd(meta.flux_unit),
        "o_unit": _text(meta.flux_unit, 64),
        "pol_states": None,
        "pol_xel": 1,
        "facility_name": _text(meta.telescope),
        "instrument_name": _text(meta.instrument),
        "em_medium": meta.medium,
    }
