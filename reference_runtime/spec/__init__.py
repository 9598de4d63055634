"""The runtime-spec as typed data: load config.json, validate it, normalise it (no syscalls)."""
