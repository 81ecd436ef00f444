"""Simulations on the stored networks: EPANET export and WNTR shutdown impact (issue 19)."""
