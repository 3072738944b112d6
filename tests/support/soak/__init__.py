"""The soak: many jobs across node pairs on real processes while a seeded chaos driver kills
workers, beat and Redis, cuts the database, restarts nodes and arms their faults; then an
independent checker (node admin APIs, database tables, docroots) says what held.

``benchmarks/soak.py`` runs it at any size; ``tests/workers/test_soak.py`` runs a short one.
"""

from tests.support.soak.plan import SoakConfig, make_plan
from tests.support.soak.run import SoakResult, run_soak

__all__ = ["SoakConfig", "SoakResult", "make_plan", "run_soak"]
