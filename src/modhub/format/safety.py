"""Check a ``graph.pt2`` file on disk: read it once, then :func:`modhub.graph.check_graph` on those bytes.

Loading never goes through here (it reads the graph with
:func:`modhub.format.verify.read_module_file` and builds from the checked
parse); this is for checking a loose file, e.g. one just written by export.
"""

from __future__ import annotations

from pathlib import Path

from modhub.errors import UnsafeModuleError
from modhub.format._files import Changed, NotRegular, TooLarge, read_regular
from modhub.graph import GraphProgram, check_graph
from modhub.graph.limits import MAX_GRAPH_BYTES

__all__ = ["validate_graph_archive"]


def validate_graph_archive(path: Path | str, *, max_bytes: int | None = None) -> GraphProgram:
    """Raise :class:`UnsafeModuleError` unless ``path`` is a plain, allow-listed ``graph.pt2``.

    ``max_bytes`` bounds the total uncompressed size (default 8 GiB). Reading
    failures of the file itself (missing, permissions) raise ``OSError``.
    """
    path = Path(path)
    limit = MAX_GRAPH_BYTES if max_bytes is None else max_bytes
    try:
        data = read_regular(path.parent, path.name, limit)
    except NotRegular as exc:  # a FIFO or device would block or never end
        raise UnsafeModuleError(
            f"{path.name} is refused: it is {exc.kind}, not a regular file", path=path
        ) from None
    except TooLarge as exc:
        raise UnsafeModuleError(
            f"{path.name} is refused: it has {exc.size} bytes and unpacks to more than {limit} bytes",
            path=path,
        ) from None
    except Changed:
        raise UnsafeModuleError(f"{path.name} changed while it was read", path=path) from None
    return check_graph(data, path=path, max_bytes=limit)
