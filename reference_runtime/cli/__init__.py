"""runc's command line. The only place that decides exit codes and prints errors.

Arguments are parsed by hand (cli/args.py): ``argparse`` alone costs ~7 ms per call
(design.md §5), and every verb is a fresh interpreter. Each verb lives in its own module,
imported only when that verb runs.
"""

from __future__ import annotations

from reference_runtime.cli.main import leave, main

__all__ = ["leave", "main"]
