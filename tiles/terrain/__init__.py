"""Quantized-mesh-1.0 terrain for CesiumJS from the imported DEMs (``cim tiles build``)."""

from tiles.terrain.build import build_terrain

__all__ = ["build_terrain"]
