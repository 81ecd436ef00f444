"""Fault tests: SIGKILL, disk full, unwritable folders, read replicas."""
