"""Bulkhead's reference OCI runtime (runc's command line, in Python).

Not built yet: ``pytest --runtime=reference`` says so. The conformance suite never imports this
package; it judges the runtime only through its command line, as it judges runc and crun.
"""
