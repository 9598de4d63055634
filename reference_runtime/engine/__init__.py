"""The engine: what docker and containerd are above runc, over any OCI runtime binary.

It loads images into an overlay2 layer store, writes each container's files, wires a bridge
network inside a namespace of its own, and calls an OCI runtime's command line to run the bundle.
Its state is laid out as docker's is (layout.py), so what is written about docker's internals can
be looked at and checked here. docs/engine.md walks through it.
"""
