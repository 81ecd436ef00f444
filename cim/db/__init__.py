"""Database layer: declarative base, engine factory, embedded cluster, models and migrations."""
