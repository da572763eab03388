"""The UWS state machine: every transition of ``store.TRANSITIONS``, allowed and refused.

UWS 1.1 section 2.1.3 ("Execution Phase") and its state diagram: each action
moves a job only from the phases listed for it, and a refused change leaves
the job exactly as it was (a late or repeated worker message cannot move a
job out of a final phase).
"""

from __future__ import annotations

import pytest
from flask import Flask

from tests.conftest import Account
from uws_service.models import Phase
from uws_service.store import TRANSITIONS, JobStore, destruction_after

#: How to bring a new job into each phase, as a list of store actions.
_PATHS: dict[Phase, list[str]] = {
    Phase.PENDING: [],
    Phase.QUEUED: ["queue"],
    Phase.HELD: ["hold"],
    Phase.EXECUTING: ["queue", "start"],
    Phase.COMPLETED: ["queue", "start", "complete"],
    Phase.ERROR: ["fail"],
    Phase.ABORTED: ["abort"],
    Phase.ARCHIVED: ["abort", "archive"],
}


def _new_job(store: JobStore, owner_id: int) -> str:
    job = store.create(job_type="selftest", owner_id=owner_id, queue="io", parameters=[],
                       run_id=None, execution_duration=60, destruction=destruction_after(60))
    return job.id


def _apply(store: JobStore, job_id: str, action: str) -> bool:
    if action == "start":
        return store.start(job_id, "testhost", 1) is not None
    if action == "complete":
        return store.complete(job_id, [])
    if action == "fail":
        return store.fail(job_id, "failed on purpose")
    if action == "abort":
        return store.abort(job_id, "aborted on purpose")
    if action == "queue":
        return store.queue(job_id)
    return store.transition(job_id, action)


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
@pytest.mark.parametrize("phase", list(_PATHS), ids=str)
def test_transition_table(app: Flask, accounts: dict[str, Account], action: str,
                          phase: Phase) -> None:
    """``action`` succeeds exactly from the phases the table lists, and a refused
    action changes nothing."""
    store: JobStore = app.extensions["vocloud"].store
    owner = app.extensions["vocloud"].users.get_user("alice")
    job_id = _new_job(store, owner.id)
    for step in _PATHS[phase]:
        assert _apply(store, job_id, step), f"could not reach {phase} by {step}"
    assert store.phase(job_id) == phase
    sources, target = TRANSITIONS[action]
    before = store.get(job_id)
    changed = _apply(store, job_id, action)
    after = store.get(job_id)
    assert before is not None and after is not None
    if phase in sources:
        assert changed
        assert after.phase == target
        assert after.phase_changed_at >= before.phase_changed_at
    else:
        assert not changed
        assert after.phase == before.phase
        assert after.end_time == before.end_time
        assert after.error_message == before.error_message


def test_final_phases_are_never_left(app: Flask, accounts: dict[str, Account]) -> None:
    """No action leads out of COMPLETED, ERROR or ABORTED except archiving."""
    for action, (sources, _target) in TRANSITIONS.items():
        if action == "archive":
            continue
        assert not sources & {Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.ARCHIVED}, action
