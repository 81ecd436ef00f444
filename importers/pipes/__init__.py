"""Underground pipe networks: CJJ 61 tables, GIS layers, EPANET and SWMM into one 3D network."""

from importers.pipes.importer import FORMATS, PipeImportOptions, detect_format, import_pipes

__all__ = ["FORMATS", "PipeImportOptions", "detect_format", "import_pipes"]
