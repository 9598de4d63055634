"""Bulkhead's reference OCI runtime: runc's command line, runtime-spec v1.3.0, in Python.

Entry point: ``reference_runtime.cli:main`` (``python -m reference_runtime`` works too). The
flow of ``create`` is in lifecycle/create.py; the map of the packages is in design.md §3. The
conformance suite never imports this package; it judges the runtime only through its command
line, as it judges runc and crun.
"""
