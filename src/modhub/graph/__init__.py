"""The one reader of ``graph.pt2``: check its bytes, then build a GraphModule from the same parse.

:func:`check_graph` parses the bytes once (zip layout, JSON, weights configs)
and checks every field against the allow-lists (operators in
:mod:`modhub.graph.operators`, codes in :mod:`modhub.graph.tables`),
returning a :class:`GraphProgram` or raising
:class:`~modhub.errors.UnsafeModuleError`. :func:`build_graph_module` builds
a ``torch.fx.GraphModule`` with weights of its own from that very structure.
Nothing here opens a file: the bytes come from
:func:`modhub.format.verify.read_module_file`, which hashed them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch.fx

    from modhub.graph.archive import GraphProgram

__all__ = ["GraphProgram", "build_graph_module", "check_graph"]


def check_graph(data: bytes, *, path: Path | None = None, max_bytes: int | None = None) -> GraphProgram:
    """Parse and check the bytes of a ``graph.pt2``; raises UnsafeModuleError naming what is refused."""
    from modhub.graph.archive import read_archive

    return read_archive(data, path=path, max_bytes=max_bytes)


def build_graph_module(source: bytes | GraphProgram, *, take_buffer: bool = False) -> torch.fx.GraphModule:
    """A runnable GraphModule, with weights of its own, from checked bytes (``bytes`` are checked first).

    ``take_buffer=True``: when the program was read into a writable buffer (as
    ``read_module_file`` does), the weights are views of that very buffer, not
    copies, so a load holds the weights once. The buffer then belongs to the
    GraphModule: build from it once.
    """
    from modhub.graph.archive import GraphProgram
    from modhub.graph.build import build

    program = source if isinstance(source, GraphProgram) else check_graph(source)
    return build(program, take_buffer=take_buffer)


def __getattr__(name: str) -> Any:
    # The reader (sympy-free, but ~20 ms of imports) loads when a graph is read, not when a
    # module that only names the package (format/, for its size cap) is imported.
    if name == "GraphProgram":
        from modhub.graph.archive import GraphProgram

        return GraphProgram
    raise AttributeError(f"module 'modhub.graph' has no attribute {name!r}")
