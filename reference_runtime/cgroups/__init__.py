"""cgroups behind one manager interface (v1, v2, or none), chosen by probing the host."""
