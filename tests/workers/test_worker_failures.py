"""Each failure class of the node, through real worker and beat processes, ends as it should."""

from __future__ import annotations

from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.jobs import get_job
from orchestrator.services.views.jobs import attempts_of
from tests.workers.conftest import Rig

SIZES = [20_000, 100]


def test_failure_classes_end_as_they_should(rig: Rig) -> None:
    rig.admin_a.settings(max_retries=0)  # the node gives up at once; the orchestrator decides
    rig.worker()

    rig.admin_a.fault(kind="fail_transfers", error_code=36)  # DISK_WRITE: retryable
    (retried,) = rig.jobs(["retryable"], sizes=SIZES)
    rig.wait(lambda: rig.states().get(retried) == JobState.COMPLETED, "retried job completes")

    rig.admin_a.fault(kind="fail_transfers", error_code=5)  # NO_PERMS: needs a person's fix
    (failed,) = rig.jobs(["permanent"], sizes=SIZES)
    rig.wait(lambda: rig.states().get(failed) == JobState.FAILED, "permanent code fails")

    rig.admin_a.fault(kind="failed_code_zero")  # failed, no reason: a person looks
    (odd,) = rig.jobs(["unexplained"], sizes=SIZES)
    rig.wait(lambda: rig.states().get(odd) == JobState.NEEDS_ATTENTION, "code 0 needs attention")

    with rig.ctx.sessions() as session:
        first, second = attempts_of(session, retried)
        assert (first.status, first.error_code) == ("failed", 36)
        assert second.status == "completed"
        job = get_job(session, failed)
        assert job.error_code == 5
        assert job.error_text, "the node's own text is kept"
        assert job.reason is not None and "NO_PERMS" in job.reason
        assert len(attempts_of(session, failed)) == 1, "a permanent code is not retried"
        assert "no error code" in (get_job(session, odd).reason or "")
    assert rig.admin_a.counters()["transfers_created"] == 4
