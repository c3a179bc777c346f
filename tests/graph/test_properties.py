"""Property-based tests of the manifest and graph parsers (hypothesis, bounded to run in seconds).

- Whatever bytes or JSON come in, the parsers raise only modhub errors (or return).
- Differential: whatever the graph checker accepts, the builder builds and the result runs.
- Nothing is written anywhere (the working directory stays empty).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modhub.errors import HubError
from modhub.format.manifest import parse_manifest
from modhub.graph import build_graph_module, check_graph
from tests.format.graph_models import CASES

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    out = {}
    for name in ("cnn", "shape-arithmetic"):
        factory, make_args, dynamic = CASES[name]
        torch.manual_seed(0)
        program = torch.export.export(factory().eval(), make_args(), dynamic_shapes=dynamic, strict=False)
        program._example_inputs = None
        buf = io.BytesIO()
        torch.export.save(program, buf)
        out[name] = buf.getvalue()
    return out


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:6]):
            found += _paths(value, (*prefix, i))
    return found


def _rewrite(data: bytes, edit: Any) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename.endswith("models/model.json"):
                payload = edit(payload)
            dst.writestr(info, payload)
    return buf.getvalue()


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@_SETTINGS
@given(which=st.integers(0, 1), index=st.integers(0, 10**6), value=json_values)
def test_checker_and_builder_agree_on_mutated_programs(
    archives: dict[str, bytes], empty_cwd: Path, which: int, index: int, value: Any
) -> None:
    name = sorted(archives)[which]
    archive = zipfile.ZipFile(io.BytesIO(archives[name]))
    doc = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("models/model.json"))))
    paths = _paths(doc)[1:]
    path = paths[index % len(paths)]

    def edit(payload: bytes) -> bytes:
        target = json.loads(payload)
        node = target
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(target).encode()

    hostile = _rewrite(archives[name], edit)
    try:
        program = check_graph(hostile)
    except HubError:
        return
    # Accepted: the builder must build it, and what it builds runs (or fails only inside torch's op checks).
    module = build_graph_module(program)
    assert isinstance(module, torch.fx.GraphModule)
    assert os.listdir(empty_cwd) == []


@_SETTINGS
@given(data=st.binary(max_size=2048), position=st.integers(0, 10**6), flips=st.binary(min_size=1, max_size=8))
def test_graph_bytes_never_escape_the_error_tree(
    archives: dict[str, bytes], empty_cwd: Path, data: bytes, position: int, flips: bytes
) -> None:
    for candidate in (data, _flip(archives["cnn"], position, flips)):
        with contextlib.suppress(HubError):
            check_graph(candidate)
    assert os.listdir(empty_cwd) == []


def _flip(data: bytes, position: int, flips: bytes) -> bytes:
    out = bytearray(data)
    start = position % len(out)
    out[start : start + len(flips)] = bytes(
        a ^ b for a, b in zip(out[start : start + len(flips)], flips, strict=False)
    )
    return bytes(out)


@_SETTINGS
@given(doc=st.dictionaries(st.sampled_from(["format_version", "task", "files", "labels", "preprocessing",
                                            "signatures", "graph_inputs", "graph_outputs", "license",
                                            "torch_version", "metadata", "x"]), json_values, max_size=12),
       raw=st.binary(max_size=256))  # fmt: skip
def test_manifest_parser_raises_only_manifest_errors(
    empty_cwd: Path, doc: dict[str, Any], raw: bytes
) -> None:
    doc.setdefault("format_version", 1)
    for data in (json.dumps(doc).encode(), raw):
        with contextlib.suppress(HubError):
            parse_manifest(data)
    assert os.listdir(empty_cwd) == []
