"""Benchmarks: scripts that print figures and ratios against a named baseline in one run."""
