"""The size bound of a graph archive, importable without the graph reader (no imports here)."""

from __future__ import annotations

__all__ = ["MAX_GRAPH_BYTES"]

# Largest graph.pt2 (and the most its members may unpack to) that modhub reads.
MAX_GRAPH_BYTES = 8 << 30
