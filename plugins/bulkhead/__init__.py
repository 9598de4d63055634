"""Bulkhead: a black-box conformance suite for OCI container runtimes.

This package is the machinery behind the pytest plugin (``bulkhead.plugin``): a runtime client,
a bundle builder, a container factory, host probes, the leak sentinel and reports. Everything
except ``plugin.py`` works without pytest.
"""
