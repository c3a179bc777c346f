"""The one reader of ``graph.pt2``: check the bytes, then build a GraphModule from the same parse.

``check_graph(data)`` returns a :class:`GraphProgram` (or raises
:class:`~modhub.errors.UnsafeModuleError`); ``build_graph_module`` builds a
``torch.fx.GraphModule`` with weights of its own from it. Both work on bytes
already read (and hashed) by :func:`modhub.format.verify.read_module_file`;
nothing here opens a file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.fx

__all__ = ["GraphProgram", "build_graph_module", "check_graph"]


@dataclass(frozen=True)
class GraphProgram:
    """A checked graph: the bytes it was parsed from."""

    data: bytes = field(repr=False)
    path: Path | None = None


def check_graph(data: bytes, *, path: Path | None = None, max_bytes: int | None = None) -> GraphProgram:
    from modhub.format.safety import validate_graph_bytes

    validate_graph_bytes(data, path=path, max_bytes=max_bytes)
    return GraphProgram(data, path)


def build_graph_module(source: bytes | GraphProgram) -> torch.fx.GraphModule:
    """A runnable GraphModule from checked bytes (``bytes`` are checked first)."""
    from modhub.graph_loader import load_graph_module

    program = source if isinstance(source, GraphProgram) else check_graph(source)
    return load_graph_module(io.BytesIO(program.data), program.path or Path("graph.pt2"))
