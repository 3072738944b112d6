"""Soak: N jobs across node pairs on real processes while a seeded chaos driver breaks things.

Starts, on this machine, a redis-server of its own, `hstssim` (two nodes per pair) in its own
process, two Celery workers and beat, and the database (a SQLite file, or PostgreSQL). It
creates the jobs at random times while the chaos driver SIGKILLs workers, beat and Redis, cuts
the database's sessions, restarts source nodes and arms hstssim's faults; then it waits for
every job to settle and an independent checker (node admin APIs, database tables, docroots)
prints one table: the faults injected and every invariant's result. Exit status 1 if one broke.
The chaos schedule and the jobs derive from --seed alone (printed first); docs/reliability.md.

    python benchmarks/soak.py --seed 7 --jobs 2000 --minutes 10 --db postgresql
    python benchmarks/soak.py --jobs 40 --minutes 1          # a random seed, printed
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.soak import SoakConfig, run_soak  # noqa: E402

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/hsts_soak"


def main() -> None:
    """Parse arguments, run one soak, print its table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, help="default: a random one (printed)")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=2.0, help="of chaos")
    parser.add_argument("--pairs", type=int, default=2, help="source → destination node pairs")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--database-url", help=f"PostgreSQL database to use (emptied!); default {POSTGRES_URL}"
    )
    parser.add_argument("--fault-gap", type=float, default=2.0, help="mean s between faults")
    parser.add_argument("--settle", type=float, default=180.0, help="s allowed after the chaos")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    work = Path(tempfile.mkdtemp(prefix=f"soak-{seed}-"))
    url = (
        (args.database_url or POSTGRES_URL)
        if args.db == "postgresql"
        else f"sqlite:///{work / 'orchestrator.db'}"
    )
    config = SoakConfig(
        seed=seed,
        jobs=args.jobs,
        chaos_seconds=args.minutes * 60,
        database_url=url,
        workdir=work,
        pairs=args.pairs,
        fault_gap=args.fault_gap,
        settle_seconds=args.settle,
    )
    result = run_soak(config)
    print(result.table())
    if not result.ok:
        print(f"\nlogs under {work}", file=sys.stderr)
    elif not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
