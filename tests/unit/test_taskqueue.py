"""Publishing wake-ups: DISPATCH sent once per window plus one trailing send; the rest as is."""

from __future__ import annotations

import threading
import time
from typing import Any

from orchestrator.taskqueue import COALESCE_SECONDS, Enqueuer, TaskName


class FakeApp:
    """Records what send_task was asked to publish."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.lock = threading.Lock()

    def send_task(self, name: str, args: list[Any], queue: str, **_: Any) -> None:
        with self.lock:
            self.sent.append((name, args))


def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_a_burst_of_dispatch_wake_ups_publishes_one_now_and_one_at_the_end() -> None:
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    for _ in range(50):
        enqueue(TaskName.DISPATCH)

    assert app.sent == [(TaskName.DISPATCH.value, [])]
    wait_until(lambda: len(app.sent) == 2)  # the trailing one, after the window
    time.sleep(2 * COALESCE_SECONDS[TaskName.DISPATCH])  # nothing else is due: a quiet period
    assert app.sent == [(TaskName.DISPATCH.value, [])] * 2


def test_tasks_with_arguments_are_never_coalesced() -> None:
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    for n in range(5):
        enqueue(TaskName.SUBMIT, f"job-{n}")
        enqueue(TaskName.POLL, n)

    assert len(app.sent) == 10
