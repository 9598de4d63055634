"""``python -m reference_runtime ...``: the same command line as the console script."""

from __future__ import annotations

import sys

from reference_runtime.cli import main

sys.exit(main())
