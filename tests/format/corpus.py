"""A corpus of hostile *modules* (not just graphs), generated systematically.

Each case starts from a real exported module, applies one attack, and, as an
attacker who controls the whole module would, rewrites ``modhub.json`` so
that every listed size and sha256 matches. Families:

- every graph mutation of ``hostile.MUTATIONS`` (pickles, sympy, guard code, targets, zip tricks);
- operator swaps: a real node's target replaced by aten operators outside the allow-list;
- manifest path attacks (labels/tokenizer outside the module, ``..``, duplicates, links, FIFOs);
- wrong JSON types and oversized fields in the manifest;
- weights whose declared sizes, strides or offsets lie.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import modhub
from modhub.format.manifest import MANIFEST_NAME, list_files
from modhub.graph.operators import ALLOWED_OPERATORS
from tests.format.hostile import MUTATIONS, WEIGHTS, Archive, first_node, first_payload

# A case edits a copy of a module directory (after which the manifest is re-hashed unless it says not to).
Case = Callable[[Path, Path], bool | None]


def rehash(module: Path) -> None:
    """Rewrite the manifest's file list so every size and sha256 matches what is on disk."""
    doc = json.loads((module / MANIFEST_NAME).read_bytes())
    doc["files"] = [e.model_dump() for e in list_files(module)]
    (module / MANIFEST_NAME).write_text(json.dumps(doc))


def copy_module(source: Path, module: Path) -> None:
    """A writable copy of ``source`` at ``module``, for a case to attack."""
    shutil.copytree(source, module)
    for path in module.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def load_in_processes(
    corpus: Mapping[str, str], runner: str, tmp_path: Path, env: Mapping[str, str], timeout: float
) -> tuple[list[Any], str]:
    """Run ``runner`` (``python -c``: loads the modules of the JSON listing ``sys.argv[1]``, prints
    a JSON report as its last line) on each half of ``corpus``: two processes keep each one's
    memory small. Returns the two reports and everything the processes printed."""
    listing = tmp_path / "cases.json"
    names = sorted(corpus)
    reports = []
    output = ""
    for half in (names[::2], names[1::2]):
        listing.write_text(json.dumps({n: corpus[n] for n in half}))
        done = subprocess.run(
            [sys.executable, "-c", runner, str(listing)],
            cwd=tmp_path,
            # The modhub under test, whatever the working directory is.
            env={**os.environ, "PYTHONPATH": str(Path(modhub.__file__).parents[1]), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        output += done.stdout + done.stderr
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return reports, output


def accepted_by_publish_check(corpus: Mapping[str, str]) -> list[str]:
    """The cases the hub's publish check lets through (a hostile corpus: none)."""
    from modhub.server.errors import InvalidModule
    from modhub.server.services.publishing import _verify_module

    accepted = []
    for name, path in sorted(corpus.items()):
        try:
            _verify_module(Path(path))
        except InvalidModule:
            continue
        accepted.append(name)
    return accepted


def _edit_manifest(edit: Callable[[dict[str, Any]], None], *, rehash_first: bool = True) -> Case:
    def run(module: Path, marker: Path) -> bool:
        if rehash_first:
            rehash(module)
        doc = json.loads((module / MANIFEST_NAME).read_bytes())
        edit(doc)
        (module / MANIFEST_NAME).write_text(json.dumps(doc))
        return False  # do not rehash afterwards: the edit is the attack

    return run


class NotApplicable(Exception):
    """The attack needs a graph feature this base module lacks (e.g. tensor constants)."""


def _graph_case(mutate: Callable[[Archive, Path], None]) -> Case:
    def run(module: Path, marker: Path) -> None:
        graph = module / "graph.pt2"
        archive = Archive.read(graph)
        try:
            mutate(archive, marker)
        except (StopIteration, KeyError, IndexError) as exc:
            raise NotApplicable from exc
        graph.chmod(0o644)
        archive.write(graph)

    return run


def _swap_op(target: str) -> Callable[[Archive, Path], None]:
    def mutate(arc: Archive, marker: Path) -> None:
        first_node(arc)["target"] = target

    return mutate


def denied_operators(count: int, seed: int = 0) -> list[str]:
    """A deterministic sample of registered aten operators that are not on the allow-list."""
    import torch

    names = sorted(
        n[len("aten::") :] for n in torch._C._dispatch_get_all_op_names() if n.startswith("aten::")
    )
    outside = []
    for name in names:
        op, _, overload = name.partition(".")
        full = f"{op}.{overload or 'default'}"
        if full not in ALLOWED_OPERATORS:
            outside.append(full)
    must = ["to_dense.default", "_values.default", "as_strided.default", "empty.memory_format",
            "set_.source_Storage", "from_file.default", "_indices.default",
            "sparse_coo_tensor.indices"]  # fmt: skip
    rng = random.Random(seed)
    sample = rng.sample([o for o in outside if o not in must], count - len(must))
    return [*must, *sample]


def _symlink(rel: str, target: str) -> Case:
    def run(module: Path, marker: Path) -> bool:
        rehash(module)
        path = module / rel
        path.unlink()
        path.symlink_to(target)
        return False

    return run


def _fifo(rel: str) -> Case:
    def run(module: Path, marker: Path) -> bool:
        rehash(module)
        path = module / rel
        path.unlink()
        os.mkfifo(path)
        return False

    return run


def _symlinked_dir(module: Path, marker: Path) -> bool:
    rehash(module)
    outside = module.parent / f"{module.name}-outside"
    shutil.move(module / "assets", outside)
    (module / "assets").symlink_to(outside)
    return False


def _weight_lie(edit: Callable[[dict[str, Any]], None]) -> Callable[[Archive, Path], None]:
    def mutate(arc: Archive, marker: Path) -> None:
        _, meta = first_payload(arc, WEIGHTS)
        edit(meta["tensor_meta"])

    return mutate


def _set(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


SECRET_PATHS = ["/proc/self/environ", "../../../../proc/self/environ", "assets/../../../etc/passwd",
                "/etc/passwd", "./assets/labels.txt", "assets//labels.txt", "assets/./labels.txt",
                "C:/Windows/win.ini", "assets\\labels.txt", "..", "", "assets/labels.txt\u0000x",
                "~/.ssh/id_rsa", "file:///proc/self/environ", "ASSETS/LABELS.TXT"]  # fmt: skip


def image_cases() -> dict[str, Case]:
    """Attacks on an image-classification module (it has assets/labels.txt)."""
    cases: dict[str, Case] = {}
    for i, path in enumerate(SECRET_PATHS):
        cases[f"labels-path-{i}"] = _edit_manifest(_set(["labels"], path))
    for i, path in enumerate(SECRET_PATHS[:6]):
        cases[f"file-entry-path-{i}"] = _edit_manifest(
            lambda doc, p=path: doc["files"].append({"path": p, "size": 1, "sha256": "0" * 64})
        )
    cases["files-duplicate-entry"] = _edit_manifest(lambda doc: doc["files"].append(dict(doc["files"][0])))
    cases["files-duplicate-by-case"] = _edit_manifest(
        lambda doc: doc["files"].append({**doc["files"][0], "path": doc["files"][0]["path"].upper()})
    )
    cases["files-lists-manifest"] = _edit_manifest(
        lambda doc: doc["files"].append({"path": MANIFEST_NAME, "size": 1, "sha256": "0" * 64})
    )
    cases["labels-symlink-environ"] = _symlink("assets/labels.txt", "/proc/self/environ")
    cases["labels-symlink-dev-zero"] = _symlink("assets/labels.txt", "/dev/zero")
    cases["graph-symlink-elsewhere"] = _symlink("graph.pt2", "/etc/passwd")
    cases["labels-fifo"] = _fifo("assets/labels.txt")
    cases["graph-fifo"] = _fifo("graph.pt2")
    cases["assets-dir-symlink"] = _symlinked_dir
    cases["labels-huge-declared"] = _edit_manifest(
        lambda doc: next(f for f in doc["files"] if f["path"] == "assets/labels.txt").update(size=1 << 40)
    )
    cases["unlisted-extra-file"] = lambda module, marker: (
        (module / "evil.py").write_text("import os") and False
    )
    # Wrong JSON types and oversized fields.
    wrong: dict[str, Callable[[dict[str, Any]], None]] = {
        "format-version-string": _set(["format_version"], "1"),
        "task-int": _set(["task"], 7),
        "files-object": _set(["files"], {"graph.pt2": 1}),
        "file-size-string": lambda d: d["files"][0].update(size="12"),
        "file-size-negative": lambda d: d["files"][0].update(size=-1),
        "file-sha-int": lambda d: d["files"][0].update(sha256=12),
        "file-sha-uppercase": lambda d: d["files"][0].update(sha256=d["files"][0]["sha256"].upper()),
        "signatures-list": _set(["signatures"], []),
        "labels-int": _set(["labels"], 3),
        "labels-list": _set(["labels"], ["assets/labels.txt"]),
        # Unknown optional fields are ignored (forward compatibility); a newer format is not.
        "format-from-future": _set(["format_version"], 2),
        "requires-future-modhub": _set(["requires"], {"modhub": "999.0"}),
        "signature-path-escapes": lambda d: d["signatures"].update(
            other={**d["signatures"]["default"], "path": "../elsewhere"}
        ),
        "signature-without-graph": lambda d: d["signatures"].update(
            other={**d["signatures"]["default"], "path": "signatures/other"}
        ),
        "output-labels-outside": lambda d: d["signatures"]["default"]["outputs"][0].update(
            labels="/proc/self/environ"
        ),
        "graph-inputs-null": _set(["graph_inputs"], None),
        "shape-float": lambda d: d["graph_inputs"][0].update(shape=["batch", 3.5, 32, 32]),
        "dtype-unknown": lambda d: d["graph_inputs"][0].update(dtype="object"),
        "metadata-extra-huge": lambda d: d["metadata"].update(extra={"x": "a" * (17 << 20)}),
        "title-not-string": lambda d: d["metadata"].update(title={"$ne": 1}),
        "manifest-array": lambda d: d.clear(),
        "license-null": _set(["license"], None),
        "fine-tunable-string": _set(["fine_tunable"], "yes"),
        "preprocessing-image-zero": lambda d: d["preprocessing"]["image"].update(height=0),
    }
    for name, edit in wrong.items():
        cases[f"manifest-{name}"] = _edit_manifest(edit)
    cases["manifest-not-json"] = lambda module, marker: (
        (module / MANIFEST_NAME).write_bytes(b"\xff{") and False
    )
    cases["manifest-fifo"] = lambda module, marker: _replace_with_fifo(module / MANIFEST_NAME)
    cases["manifest-symlink"] = lambda module, marker: _replace_with_link(
        module / MANIFEST_NAME, "/etc/passwd"
    )
    return cases


def _replace_with_fifo(path: Path) -> bool:
    path.unlink()
    os.mkfifo(path)
    return False


def _replace_with_link(path: Path, target: str) -> bool:
    path.unlink()
    path.symlink_to(target)
    return False


def text_cases() -> dict[str, Case]:
    """Attacks on a text-embedding module: the graph corpus, operator swaps, tokenizer paths, weight lies."""
    cases: dict[str, Case] = {}
    for name, mutate in MUTATIONS.items():
        cases[f"graph-{name}"] = _graph_case(mutate)
    for op in denied_operators(150):
        cases[f"op-swap-{op}"] = _graph_case(_swap_op(f"torch.ops.aten.{op}"))
    for i, path in enumerate(SECRET_PATHS[:8]):
        cases[f"tokenizer-path-{i}"] = _edit_manifest(_set(["preprocessing", "tokenizer", "file"], path))
    cases["tokenizer-symlink-environ"] = _symlink("assets/tokenizer.json", "/proc/self/environ")
    cases["tokenizer-fifo"] = _fifo("assets/tokenizer.json")
    lies: dict[str, Callable[[dict[str, Any]], None]] = {
        "size-larger": lambda m: m["sizes"].__setitem__(0, {"as_int": m["sizes"][0]["as_int"] * 1000 + 7}),
        "offset-past-end": lambda m: m.update(storage_offset={"as_int": 1 << 30}),
        "offset-negative": lambda m: m.update(storage_offset={"as_int": -4}),
        "stride-huge": lambda m: m["strides"].__setitem__(0, {"as_int": 1 << 40}),
        "size-negative": lambda m: m["sizes"].__setitem__(0, {"as_int": -1}),
        "size-string": lambda m: m["sizes"].__setitem__(0, {"as_int": "8"}),
        "size-float": lambda m: m["sizes"].__setitem__(0, {"as_int": 8.0}),
        "size-bool": lambda m: m["sizes"].__setitem__(0, {"as_int": True}),
        "rank-mismatch": lambda m: m["strides"].append({"as_int": 1}),
        "dtype-complex": lambda m: m.update(dtype=10),
        "dtype-wider": lambda m: m.update(dtype=8),
        "layout-mkldnn": lambda m: m.update(layout=6),
        "layout-string": lambda m: m.update(layout="strided"),
        "device-cuda": lambda m: m.update(device={"type": "cuda", "index": 0}),
        "requires-grad-string": lambda m: m.update(requires_grad="true"),
        "sizes-null": lambda m: m.update(sizes=None),
    }
    for name, edit in lies.items():
        cases[f"weight-{name}"] = _graph_case(_weight_lie(edit))
    return cases
