"""The only package that talks to the kernel directly (ctypes over libc, plus ``os`` calls).

Each wrapper raises ``SyscallError(errno, syscall, path)``; constants are named and say where
they come from. Everything above this package receives these functions as injectable
boundaries, so unit tests can record calls instead of making them.
"""
