"""Scale and fault tests: SIGKILL, disk full, read replicas, tiles on dask and fsspec."""
