"""The ``pack`` job type and ``vocloud pack`` command (issue 3, "Bulk packing")."""

from __future__ import annotations

import json
import time
from pathlib import Path
from xml.etree import ElementTree

import requests
from click.testing import CliRunner

from tests.conftest import LiveService
from uws_service.cli import main
from vo.spectra.demo import generate_collection, write_collection
from vo.spectra.packing import read_avro, read_parquet

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}


def test_cli_packs_a_folder_and_reports_the_junk(tmp_path: Path) -> None:
    """``vocloud pack`` turns 12 demo files plus one junk file into a Parquet data set of
    12 spectra, naming the junk file as skipped; ``--format avro`` writes one Avro file."""
    source = tmp_path / "demo"
    write_collection(source, generate_collection(12))
    (source / "junk.txt").write_text("this is not a spectrum\n")
    runner = CliRunner()
    result = runner.invoke(main, ["pack", str(source), str(tmp_path / "out.parquet"),
                                  "--manifest", str(tmp_path / "manifest.json")])
    assert result.exit_code == 0, result.output
    assert "packed 12 spectra from 12 of 13 files" in result.output
    assert "skipped: junk.txt" in result.output
    spectra = read_parquet(tmp_path / "out.parquet")
    assert len(spectra) == 12
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["files_read"], manifest["files_skipped"]) == (12, 1)
    assert [f["path"] for f in manifest["files"] if f["status"] == "skipped"] == ["junk.txt"]

    result = runner.invoke(main, ["pack", str(source), str(tmp_path / "out.avro"),
                                  "--format", "avro"])
    assert result.exit_code == 0, result.output
    assert len(read_avro(tmp_path / "out.avro")) == 12


def test_cli_fails_clearly_without_spectra(tmp_path: Path) -> None:
    """A folder with nothing readable is an error, and no output is left behind."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "junk.txt").write_text("nothing\n")
    result = CliRunner().invoke(main, ["pack", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "none of the 1 files holds a readable spectrum" in result.output
    assert not (tmp_path / "out").exists()


def _wait_final(job_url: str, headers: dict[str, str]) -> ElementTree.Element:
    deadline = time.monotonic() + 90
    phase = ""
    while time.monotonic() < deadline:
        r = requests.get(job_url, params={"WAIT": "30", "PHASE": phase} if phase else
                         {"WAIT": "30"}, headers=headers, timeout=40)
        assert r.status_code == 200, r.text
        doc = ElementTree.fromstring(r.content)
        phase = doc.findtext("uws:phase", namespaces=UWS) or ""
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return doc
    raise AssertionError(f"job {job_url} still {phase} after 90 s")


def test_live_pack_job(live: LiveService, tmp_path: Path) -> None:
    """Files PUT into alice's store are packed by a pack job: Parquet parts and a manifest
    as results, 6 spectra; an input outside her folder ends in ERROR with a clear message."""
    alice = live.accounts["alice"]
    local = tmp_path / "demo"
    paths = write_collection(local, generate_collection(6, seed=3))
    for path in paths:
        r = requests.put(f"{live.url}/files/alice/packdemo/{path.name}", data=path.read_bytes(),
                         headers=alice.headers, timeout=10)
        assert r.status_code in (200, 201), r.text
    r = requests.put(f"{live.url}/files/alice/packdemo/notes.txt", data=b"not a spectrum",
                     headers=alice.headers, timeout=10)
    assert r.status_code in (200, 201), r.text

    r = requests.post(f"{live.url}/uws/pack", headers=alice.headers,
                      data={"input": "packdemo", "PHASE": "RUN"}, allow_redirects=False,
                      timeout=10)
    assert r.status_code == 303, r.text
    job_url = r.headers["Location"]
    doc = _wait_final(job_url, alice.headers)
    assert doc.findtext("uws:phase", namespaces=UWS) == "COMPLETED", \
        ElementTree.tostring(doc).decode()
    results = {res.get("id", ""): res.get(f"{{{UWS['xlink']}}}href", "")
               for res in doc.iterfind("uws:results/uws:result", UWS)}
    parts = sorted(rid for rid in results if rid.startswith("parquet-"))
    assert parts and "manifest" in results
    spectra = []
    for index, rid in enumerate(parts):
        r = requests.get(f"{job_url}/results/{rid}", headers=alice.headers, timeout=10)
        assert r.status_code == 200
        part = tmp_path / "dl" / f"part-{index:05d}.parquet"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(r.content)
        spectra.extend(read_parquet(part))
    assert len(spectra) == 6
    manifest = requests.get(f"{job_url}/results/manifest", headers=alice.headers,
                            timeout=10).json()
    assert (manifest["spectra"], manifest["files_read"], manifest["files_skipped"]) == (6, 6, 1)
    assert manifest["files"][-1]["path"] == "packdemo/notes.txt"

    r = requests.post(f"{live.url}/uws/pack", headers=alice.headers,
                      data={"input": "../bob", "PHASE": "RUN"}, allow_redirects=False,
                      timeout=10)
    if r.status_code == 400:
        assert "input" in r.text
        return
    assert r.status_code == 303, r.text
    doc = _wait_final(r.headers["Location"], alice.headers)
    assert doc.findtext("uws:phase", namespaces=UWS) == "ERROR"
    summary = requests.get(f"{r.headers['Location']}/error", headers=alice.headers, timeout=10)
    text = ElementTree.tostring(doc).decode() + summary.text
    assert "'..' is not allowed" in text
