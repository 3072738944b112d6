"""Publishing: DISPATCH wake-ups sent once per window plus one trailing send, the rest as is;
beat's messages may wait in a busy queue for a while and still run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import Settings
from orchestrator.taskqueue import (
    COALESCE_SECONDS,
    GATHER_LATE_SECONDS,
    NEW_JOBS_COALESCE_SECONDS,
    VISIBILITY_TIMEOUT,
    Enqueuer,
    TaskName,
    beat_schedule,
)


class FakeApp:
    """Records what send_task was asked to publish."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.options: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def send_task(self, name: str, args: list[Any], queue: str, **options: Any) -> None:
        with self.lock:
            self.sent.append((name, args))
            self.options.append(options)


def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def stopped_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[float], list[tuple[float, Callable[[], None]]]]:
    """The publisher's clock, moved by hand, and its timers kept (interval, fire) unstarted."""
    clock = [100.0]
    timers: list[tuple[float, Callable[[], None]]] = []

    class RecordedTimer:
        def __init__(self, interval: float, function: Any, args: Any) -> None:
            timers.append((interval, lambda: function(*args)))
            self.daemon = False

        def start(self) -> None:
            pass

    monkeypatch.setattr("orchestrator.taskqueue.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("orchestrator.taskqueue.threading.Timer", RecordedTimer)
    return clock, timers


def test_a_burst_of_dispatch_wake_ups_publishes_one_now_and_one_at_the_end() -> None:
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    for _ in range(50):
        enqueue(TaskName.DISPATCH)

    assert app.sent == [(TaskName.DISPATCH.value, [])]
    wait_until(lambda: len(app.sent) == 2)  # the trailing one, after the window
    time.sleep(2 * COALESCE_SECONDS[TaskName.DISPATCH])  # nothing else is due: a quiet period
    assert app.sent == [(TaskName.DISPATCH.value, [])] * 2


def test_the_trailing_wake_up_goes_one_window_after_the_send_not_after_the_last_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found in the pipeline benchmark: a poll that freed 100 slots 0.14 s after another
    # poll's wake-up waited a whole window from its own call, 0.25 s, before dispatch ran.
    clock, timers = stopped_clock(monkeypatch)
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]
    window = COALESCE_SECONDS[TaskName.DISPATCH]

    enqueue(TaskName.DISPATCH)
    clock[0] += 0.6 * window
    enqueue(TaskName.DISPATCH)
    clock[0] += 0.2 * window
    enqueue(TaskName.DISPATCH)  # a trailing one is already due: nothing more

    assert app.sent == [(TaskName.DISPATCH.value, [])]
    assert [interval for interval, _ in timers] == [pytest.approx(0.4 * window)]


def test_wake_ups_for_new_jobs_gather_over_their_own_longer_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A service sending 200 jobs one at a time reached dispatch every 0.25 s: 5 submit
    # batches per node for one wave, each with its /files/info and upload_setup.
    clock, timers = stopped_clock(monkeypatch)
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]
    dispatch = (TaskName.DISPATCH.value, [])

    enqueue(TaskName.DISPATCH, new_jobs=True)  # the first of a quiet period goes at once
    for _ in range(40):
        clock[0] += 0.02
        enqueue(TaskName.DISPATCH, new_jobs=True)
    enqueue(TaskName.DISPATCH)  # freed slots: their own window, not held behind new jobs
    assert app.sent == [dispatch, dispatch]
    assert app.options == [{}, {}]  # new_jobs is ours, not a publish option
    assert [interval for interval, _ in timers] == [pytest.approx(NEW_JOBS_COALESCE_SECONDS - 0.02)]

    clock[0] += NEW_JOBS_COALESCE_SECONDS
    timers[0][1]()  # the window ends: one trailing send for all forty
    assert app.sent == [dispatch] * 3


def test_delayed_dispatch_wake_ups_gather_into_the_one_still_to_come() -> None:
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    for _ in range(30):  # polls freeing slots while the first delayed wake-up waits
        enqueue(TaskName.DISPATCH, countdown=0.3)

    assert app.sent == [(TaskName.DISPATCH.value, [])]
    assert app.options == [{"countdown": 0.3}]
    enqueue(TaskName.DISPATCH)  # a plain wake-up (a new job) is not held back by it
    assert len(app.sent) == 2

    def sent_again_once_due() -> bool:
        enqueue(TaskName.DISPATCH, countdown=0.3)
        return app.options.count({"countdown": 0.3}) == 2

    wait_until(sent_again_once_due)


def test_a_quicker_delayed_wake_up_is_not_held_behind_a_slower_one() -> None:
    # A poll that saw long transfers end gathers for 2 s; one that then sees a 1 s transfer end
    # asks for 0.1 s: waiting for the pending 2 s one would idle its slot twenty times longer.
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    enqueue(TaskName.DISPATCH, countdown=2.0)
    enqueue(TaskName.DISPATCH, countdown=0.1)
    enqueue(TaskName.DISPATCH, countdown=1.0)  # the 0.1 s one comes first: it does this one's work

    assert app.options == [{"countdown": 2.0}, {"countdown": 0.1}]


def test_a_planned_tick_is_gathered_only_into_one_due_a_little_later() -> None:
    # A tick claims only the nodes due when it runs: one sent for 0.2 s cannot claim a node
    # planned for 0.5 s, but one for 0.52 s may claim a node planned for 0.5 s as well.
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    enqueue(TaskName.POLL_DUE, countdown=0.52)
    enqueue(TaskName.POLL_DUE, countdown=0.5)  # within GATHER_LATE_SECONDS before it: gathered
    enqueue(TaskName.POLL_DUE, countdown=0.2)  # too soon for the 0.52 s one to be on time
    enqueue(TaskName.POLL_DUE, countdown=0.9)  # later than every pending one: its own

    late = GATHER_LATE_SECONDS[TaskName.POLL_DUE]
    assert late is not None and 0.02 <= late < 0.3
    assert app.options == [{"countdown": 0.52}, {"countdown": 0.2}, {"countdown": 0.9}]
    assert {name for name, _ in app.sent} == {TaskName.POLL_DUE.value}


def test_tasks_with_arguments_are_never_coalesced() -> None:
    app = FakeApp()
    enqueue = Enqueuer(app)  # type: ignore[arg-type]

    for n in range(5):
        enqueue(TaskName.SUBMIT, f"job-{n}")
        enqueue(TaskName.POLL, n)

    assert len(app.sent) == 10


def test_beat_messages_outlive_several_intervals_of_queue_wait(tmp_path: Path) -> None:
    # Found by the soak (seed 21, 600 jobs, PostgreSQL): each message expired after one interval,
    # the busy default queue stayed more than a second behind, and every sweep was dropped unrun:
    # none ran for 73 s, and jobs a killed worker left SUBMITTING waited 116 s, not the lease.
    # The polls fanned out from poll-all-nodes take the same expiry (workers/tasks/polling.py).
    settings = Settings(
        data_dir=tmp_path, poll_interval=0.5, sweep_interval=1.0, replication_tick_seconds=5.0
    )
    schedule = beat_schedule(settings)
    assert set(schedule) == {
        "poll-all-nodes",
        "poll-due-nodes",  # adaptive polling's tick (the default)
        "sweep",
        "replication-tick",
        "prune-history",
        "check-nodes",
        "maintenance-tick",
        "admission",  # other clients' transfers per node (node_load_seconds, on by default)
    }
    assert "poll-due-nodes" not in beat_schedule(settings.model_copy(update={"poll_mode": "fixed"}))
    for name, entry in schedule.items():
        expires = entry["options"]["expires"]
        assert expires < VISIBILITY_TIMEOUT, name  # never redelivered by the broker
        if name != "prune-history":  # hourly: its expiry is capped below that timeout
            assert 5 * entry["schedule"] <= expires, name
