"""Tilers: cim.db -> OGC 3D Tiles and quantized-mesh terrain on disk. Imports cim only."""
