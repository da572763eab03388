"""End-to-end smoke test of the embedded service: a job runs through all phases."""

from __future__ import annotations

import requests

from tests.conftest import LiveService, assert_valid


def test_selftest_job_runs_to_completion(live: LiveService) -> None:
    alice = live.accounts["alice"]
    r = requests.post(f"{live.url}/uws/selftest", headers=alice.headers,
                      data={"PHASE": "RUN", "duration": "0.2", "values": ["1", "2.5"]},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 303
    job_url = r.headers["Location"]
    r = requests.get(job_url, params={"WAIT": "30"}, headers=alice.headers, timeout=40)
    doc = assert_valid(r.content, "UWS.xsd")
    ns = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
    phase = doc.findtext("uws:phase", namespaces=ns)
    if phase != "COMPLETED":
        r = requests.get(job_url, params={"WAIT": "30"}, headers=alice.headers, timeout=40)
        doc = assert_valid(r.content, "UWS.xsd")
    assert doc.findtext("uws:phase", namespaces=ns) == "COMPLETED"
    report = requests.get(f"{job_url}/results/report", headers=alice.headers, timeout=10)
    assert report.json()["values"] == [1.0, 2.5]
