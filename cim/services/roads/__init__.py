"""The imported road network as a graph, shared by the shelter analyses and the road importer."""
