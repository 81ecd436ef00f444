"""Dataset versions: a re-import is a new version; history, time travel and differences."""
