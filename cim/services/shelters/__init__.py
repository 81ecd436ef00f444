"""Disaster-shelter zoning (防灾避难场所责任区): plans, zones, site suggestion."""
