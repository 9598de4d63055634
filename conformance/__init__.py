"""Bulkhead's conformance suite: black-box checks of an OCI runtime binary.

Run it with ``pytest --pyargs conformance --runtime=runc`` (or crun, or a path). One module per
isolation area; each test names the runtime-spec v1.3.0 requirement ids it checks with
``@pytest.mark.spec(...)``. The suite reaches the runtime only through its command line, the
bundle it is given, what probes inside the container report and what the host can see.
"""
