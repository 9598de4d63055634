"""The container's root filesystem: a plan of mount steps (pure data) and their execution."""
