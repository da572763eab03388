"""``selftest``: a diagnostic job for operators and for testing the job service itself.

It waits for a while in steps, reporting progress, writes a small result
file, and can fail or ignore SIGTERM on request, so that every path of the
UWS machinery (results, errors, ABORT, executionDuration, lost workers) can
be exercised on a live installation without touching any data.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Mapping
from typing import Any

from jobs.base import JobContext, JobType
from jobs.errors import JobFatalError, JobTransientError


def run(params: Mapping[str, Any], ctx: JobContext) -> None:
    duration = float(params["duration"])
    steps = max(1, int(params["steps"]))
    if params["ignore_sigterm"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for step in range(steps):
        if duration > 0:
            time.sleep(duration / steps)
        if steps > 1:
            ctx.progress((step + 1) / steps, f"step {step + 1} of {steps}")
        if params["partial_results"]:
            (ctx.results_dir / f"step-{step + 1:04d}.txt").write_text(f"{step + 1}\n")
    if params["fail"]:
        error = JobTransientError if params["fail"] == "transient" else JobFatalError
        raise error(params["message"] or "The selftest job failed as it was asked to.",
                    "Requested with the 'fail' parameter.")
    report = {"job_id": ctx.job_id, "owner": ctx.owner, "duration": duration,
              "steps": steps, "message": params["message"], "values": params["values"]}
    path = ctx.add_result("report", "report.json", "application/json")
    path.write_text(json.dumps(report, indent=2))


def estimate(params: Mapping[str, Any]) -> float:
    return float(params.get("duration", 0.0))


JOB_TYPE = JobType(name="selftest", queue="io", run=run, estimate=estimate,
                   title="Check the job service: wait, report progress, write a result")
