"""Queries and analyses: each takes a keyword-only ``session`` and never commits."""
