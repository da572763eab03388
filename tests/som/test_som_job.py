"""The ``som`` job type end to end on a live service (issue 4, "Job type", "Results",
"Proof"): generated classes land in separate regions of the map, the results are
well-formed and readable, a re-run that changes only the map reuses the preprocessing
cache, the same seed gives the same map, and bad parameters are refused clearly.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.wcs import WCS
from sqlalchemy import create_engine, text

from tests.conftest import Account, LiveService, assert_valid
from tests.live.helpers import UWSClient
from vo.spectra.model import Spectrum, SpectrumMeta
from vo.spectra.writers import write_spectrum

pytestmark = pytest.mark.live

CLASSES = ("emission", "absorption", "double-peak")
PER_CLASS = 12
PNG = b"\x89PNG\r\n\x1a\n"


def _profile(kind: str, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shift = rng.normal(0.0, 0.3)
    line = np.exp(-0.5 * ((wave - 6564.6 - shift) / 2.5) ** 2)
    if kind == "emission":
        flux = 1.0 + 2.0 * line
    elif kind == "absorption":
        flux = 1.0 - 0.6 * line
    else:
        peaks = (np.exp(-0.5 * ((wave - 6560.0 - shift) / 1.8) ** 2)
                 + np.exp(-0.5 * ((wave - 6569.0 - shift) / 1.8) ** 2))
        flux = 1.0 + 1.2 * peaks
    return flux + rng.normal(0.0, 0.02, wave.size)


@pytest.fixture(scope="module")
def labelled_folder(live: LiveService, tmp_path_factory: pytest.TempPathFactory) -> str:
    """36 spectra of three known classes, uploaded to alice's ``somdata`` folder."""
    rng = np.random.default_rng(11)
    folder = tmp_path_factory.mktemp("somdata")
    alice = live.accounts["alice"]
    layouts = ("fits-table", "fits-image-linear", "csv")
    for index in range(PER_CLASS * len(CLASSES)):
        kind = CLASSES[index % len(CLASSES)]
        wave = np.linspace(6450.0, 6680.0, 900)
        spectrum = Spectrum(wave, _profile(kind, wave, rng), meta=SpectrumMeta(
            id=f"{kind}-{index:02d}", target=f"HD {1000 + index}", ra=10.0 + index,
            dec=20.0, mjd=60000.0 + index, exposure=600.0, medium="vacuum"))
        layout = layouts[index % len(layouts)]
        suffix = ".csv" if layout == "csv" else ".fits"
        path = write_spectrum(spectrum, folder / f"{kind}-{index:02d}{suffix}", layout)
        r = requests.put(f"{live.url}/files/alice/somdata/{path.name}", data=path.read_bytes(),
                         headers=alice.headers, timeout=30)
        assert r.status_code == 201, r.text
    return "somdata"


@pytest.fixture(scope="module")
def client(live: LiveService) -> Iterator[UWSClient]:
    yield UWSClient(live, live.accounts["alice"], job_type="som")


def _result(client: UWSClient, job_url: str, result_id: str) -> requests.Response:
    r = client.http.get(f"{job_url}/results/{result_id}", timeout=30)
    assert r.status_code == 200, f"{result_id}: {r.status_code} {r.text[:200]}"
    return r


def _run(client: UWSClient, params: dict[str, object], timeout: float = 180) -> tuple[str, dict]:
    job_url = client.submit(params)
    doc = client.wait_final(job_url, timeout=timeout)
    return job_url, doc


BASE = {"input": "somdata", "window_min": 6500, "window_max": 6630, "points": 260,
        "rows": 6, "columns": 6, "epochs": 15, "seed": 3}


def test_classes_map_to_separate_regions_and_results_are_complete(
        client: UWSClient, labelled_folder: str, live: LiveService) -> None:
    job_url, doc = _run(client, BASE)
    assert doc["phase"] == "COMPLETED", doc.get("errorSummary")
    results = {r["id"]: r for r in doc["results"]}
    expected = {"codebook": "application/fits", "assignments": "application/x-votable+xml",
                "assignments-csv": "text/csv", "members": "application/x-votable+xml",
                "members-csv": "text/csv", "quality": "application/json",
                "rejected": "application/x-votable+xml", "rejected-csv": "text/csv",
                "umatrix": "image/png", "hitmap": "image/png", "prototypes": "image/png"}
    for result_id, mime in expected.items():
        assert result_id in results, sorted(results)
        assert _result(client, job_url, result_id).headers["Content-Type"].startswith(mime)

    assignments_xml = _result(client, job_url, "assignments").content
    assert_valid(assignments_xml, "VOTable-1.4.xsd")
    table = parse_single_table(io.BytesIO(assignments_xml)).to_table()
    assert len(table) == PER_CLASS * len(CLASSES)
    # The catalogue says which file (so which class) each DID is.
    engine = create_engine(f"sqlite:///{live.home / 'vocloud.db'}")
    with engine.connect() as connection:
        urls = {did: url for did, url in connection.execute(text(
            "SELECT obs_publisher_did, access_url FROM obscore WHERE owner = 'alice' "
            "AND access_url LIKE '%/somdata/%'"))}
    engine.dispose()
    assert set(table["obs_publisher_did"]) == set(urls)
    nodes_of: dict[str, set[int]] = defaultdict(set)
    for did, node in zip(table["obs_publisher_did"], table["node"], strict=True):
        name = urls[str(did)].rsplit("/", 1)[1]
        nodes_of[name.rsplit("-", 1)[0]].add(int(node))
    assert set(nodes_of) == set(CLASSES)
    for first in CLASSES:
        for second in CLASSES:
            if first < second:
                assert not nodes_of[first] & nodes_of[second], nodes_of

    with fits.open(io.BytesIO(_result(client, job_url, "codebook").content)) as hdus:
        cube = hdus[0].data
        assert cube.shape == (6, 6, 260)
        wavelength = hdus["WAVELENGTH"].data["WAVELENGTH"]
        world = WCS(hdus[0].header).sub([1]).pixel_to_world_values(np.arange(260))
        np.testing.assert_allclose(np.asarray(world).ravel() * 1e10, wavelength, rtol=1e-9)
        assert hdus[0].header["SOMROWS"] == 6 and hdus[0].header["SOMSEED"] == 3
        assert int(np.sum(hdus["NODES"].data["HITS"])) == len(table)
        assert hdus[0].header["AIRORVAC"] == "vac"

    members = _result(client, job_url, "members-csv").text.splitlines()
    assert members[0].split(",")[:4] == ["node", "row", "column", "rank"]
    assert len(members) == 1 + len(table)
    quality = _result(client, job_url, "quality").json()
    assert 0 < quality["quantization_error"] < 1
    assert 0 <= quality["topographic_error"] <= 1
    assert quality["spectra_used"] == len(table)
    for plot in ("umatrix", "hitmap", "prototypes"):
        assert _result(client, job_url, plot).content.startswith(PNG)


def test_rerun_with_other_map_reuses_the_preprocessing_and_seed_reproduces(
        client: UWSClient, labelled_folder: str) -> None:
    first_url, first = _run(client, BASE)
    assert first["phase"] == "COMPLETED", first.get("errorSummary")
    again_url, again = _run(client, BASE)
    assert again["phase"] == "COMPLETED"
    q_first = _result(client, first_url, "quality").json()
    q_again = _result(client, again_url, "quality").json()
    assert q_again["preprocessing"]["from_cache"] is True
    assert q_again["preprocessing"]["cache_key"] == q_first["preprocessing"]["cache_key"]
    cubes = [fits.getdata(io.BytesIO(_result(client, url, "codebook").content))
             for url in (first_url, again_url)]
    assert cubes[0].tobytes() == cubes[1].tobytes()

    job_url = client.submit([("from_job", first_url.rsplit("/", 1)[1]), ("rows", "4"),
                             ("columns", "5")])
    doc = client.wait_final(job_url, timeout=180)
    assert doc["phase"] == "COMPLETED", doc.get("errorSummary")
    quality = _result(client, job_url, "quality").json()
    assert quality["preprocessing"]["from_cache"] is True
    assert (quality["som"]["rows"], quality["som"]["columns"]) == (4, 5)
    assert quality["preprocessing"]["points"] == 260

    changed_url, changed = _run(client, {**BASE, "points": 200})
    assert changed["phase"] == "COMPLETED"
    assert _result(client, changed_url, "quality").json()["preprocessing"]["from_cache"] \
        is False


def test_bad_parameters_are_refused_clearly(client: UWSClient, labelled_folder: str,
                                           live: LiveService) -> None:
    alice: Account = live.accounts["alice"]
    for params, needle in (({**BASE, "rows": 0}, "rows"),
                           ({"input": "somdata", "ids": "ivo://x/y?z"}, "input"),
                           ({"window_min": 6500}, "window_max"),
                           ({**BASE, "topology": "triangular"}, "topology")):
        r = requests.post(f"{live.url}/uws/som", data=params, headers=alice.headers,
                          allow_redirects=False, timeout=30)
        assert r.status_code == 400, (params, r.status_code, r.text)
        assert needle in r.text, r.text

    _, doc = _run(client, {**BASE, "window_min": 7000, "window_max": 7100})
    assert doc["phase"] == "ERROR"
    assert "7000" in doc["errorSummary"]["message"], doc["errorSummary"]

    requests.post(f"{live.url}/api/files/mkdir", json={"path": "empty-som"},
                  headers=alice.headers, timeout=30)
    _, doc = _run(client, {**BASE, "input": "empty-som"})
    assert doc["phase"] == "ERROR"
    assert "no spectra" in doc["errorSummary"]["message"]

    _, doc = _run(client, {**BASE, "input": "no-such-folder"})
    assert doc["phase"] == "ERROR"
    assert "no such file or folder" in doc["errorSummary"]["message"]


def test_identifiers_as_input(client: UWSClient, labelled_folder: str,
                              live: LiveService) -> None:
    engine = create_engine(f"sqlite:///{live.home / 'vocloud.db'}")
    with engine.connect() as connection:
        dids = list(connection.execute(text(
            "SELECT obs_publisher_did FROM obscore WHERE owner = 'alice' "
            "AND access_url LIKE '%/somdata/emission-%' ORDER BY obs_publisher_did")).scalars())
    engine.dispose()
    params: list[tuple[str, object]] = [("ids", did) for did in dids]
    params += [("ids", "ivo://vocloud.local/vocloud?00000000-0000-0000-0000-000000000000")]
    params += [(k, v) for k, v in BASE.items() if k != "input"]
    params = [(k, v) for k, v in params if k not in ("rows", "columns")]
    params += [("rows", 3), ("columns", 3)]
    job_url = client.submit(params)
    doc = client.wait_final(job_url, timeout=180)
    assert doc["phase"] == "COMPLETED", doc.get("errorSummary")
    quality = _result(client, job_url, "quality").json()
    assert quality["spectra_used"] == len(dids) == PER_CLASS
    [rejected] = quality["rejected"]
    assert "no such spectrum" in rejected["reason"]
    assert rejected["label"].endswith("00000000-0000-0000-0000-000000000000")


def test_packed_data_set_from_the_pack_job(client: UWSClient, labelled_folder: str,
                                           live: LiveService) -> None:
    """pack with ``store_as`` keeps the Parquet set in the store; som reads it as ``packed``
    and maps the same spectra as from the folder."""
    packer = UWSClient(live, live.accounts["alice"], job_type="pack")
    pack_url = packer.submit({"input": labelled_folder, "store_as": "packed/somdata"})
    doc = packer.wait_final(pack_url, timeout=120)
    assert doc["phase"] == "COMPLETED", doc.get("errorSummary")
    listing = client.http.get(f"{live.url}/files/alice/packed/somdata/spectra.parquet/",
                              timeout=30).json()
    assert [e["name"] for e in listing["entries"]] == ["part-00000.parquet"]

    params = {**BASE, "packed": "packed/somdata/spectra.parquet"}
    del params["input"]
    job_url, doc = _run(client, params)
    assert doc["phase"] == "COMPLETED", doc.get("errorSummary")
    quality = _result(client, job_url, "quality").json()
    assert quality["spectra_used"] == PER_CLASS * len(CLASSES)
    assert quality["rejected"] == []
