"""The container's processes: the parent/child protocol, the init sequence, process attributes."""
