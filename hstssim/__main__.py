"""Run the simulator with python -m hstssim."""

import sys

from hstssim.cli import main

sys.exit(main())
