"""CPU seconds per role of a benchmark run, from /proc: process groups and PostgreSQL backends.

Each child the benchmark starts leads its own process group (a Celery worker's pool processes
are in its group); a run's PostgreSQL backends are found by their title, which names the
database. Processes are sampled every half second, so one that exits between two samples loses
at most its last half second; one that lived before the run counts from its first sample.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float] | None:
    """(process group, user + system CPU seconds) of one process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK


def _serves(pid: str, database: str) -> bool:
    """True for a PostgreSQL backend of ``database`` ("postgres: [cluster:] user db host …")."""
    try:
        if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
            return False
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return title.startswith("postgres:") and f" {database} " in title


class CpuMeter:
    """Samples the CPU of some process groups (by role) and one database's backends."""

    def __init__(self, groups: dict[str, int], database: str | None) -> None:
        self._role_of_group = {pgid: role for role, pgid in groups.items()}
        self._database = database
        self._start: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._own = time.process_time()

    def start(self) -> None:
        """Take the first sample (the baseline) and keep sampling in the background."""
        self._sample(first=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds each role spent since start(); "bench" is this process."""
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        used: dict[str, float] = {}
        for pid, (role, seconds) in self._last.items():
            used[role] = used.get(role, 0.0) + seconds - self._start.get(pid, 0.0)
        used["bench"] = time.process_time() - self._own
        return used

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample(first=False)

    def _sample(self, *, first: bool) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            stat = _stat(entry)
            if stat is None:
                continue
            pgid, seconds = stat
            role = self._role_of_group.get(pgid)
            if role is None and self._database and _serves(entry, self._database):
                role = "postgres"
            if role is None:
                continue
            if first:
                self._start[int(entry)] = seconds
            self._last[int(entry)] = (role, seconds)
