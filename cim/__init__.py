"""cim core: domain types, configuration, errors, database models and services.

This package imports no other first-party package (importers, tiles, api, cli) and never
fastapi, typer or ifcopenshell; the composition roots (``api``, ``cli``) build on it.
"""

__version__ = "0.1.0"
