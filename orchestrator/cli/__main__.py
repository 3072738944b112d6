"""``python -m orchestrator.cli``: the same as the ``hsts-orchestrator`` command."""

from orchestrator.cli.main import main

raise SystemExit(main())
