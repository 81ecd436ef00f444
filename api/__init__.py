"""The HTTP API: a FastAPI composition root over cim (and importers/tiles for background jobs)."""
