"""The graph.pt2 validator: real exports pass, hostile archives are refused.

Hostile archives start from a real export and plant real payloads (see
``tests/format/hostile.py``); for several of them a subprocess shows that
plain ``torch.export.load`` does run the payload, so the refusals matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from modhub.errors import UnsafeModuleError
from modhub.graph.exprs import ExprRefused, check_guard, check_symbol_key, check_sympy_repr
from modhub.format.safety import validate_graph_archive
from tests.format.graph_models import BATCH, CASES, export_archive
from tests.format.hostile import MUTATIONS, Archive, pickle_payload


class Exports:
    """Each model of graph_models.CASES exported at most once per module, like modhub.export does."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.paths:
            factory, make_args, dynamic = CASES[name]
            torch.manual_seed(0)
            self.paths[name] = export_archive(factory(), make_args(), dynamic, self.directory / f"{name}.pt2")
        return self.paths[name]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(tmp_path_factory.mktemp("exported"))


@pytest.fixture(scope="module")
def base(exported: Exports) -> Archive:
    """The BERT-like export: weights, a tensor constant, SymInts, guards and range constraints."""
    return Archive.read(exported["bert-like"])


def refused(path: Path, **kwargs: int) -> UnsafeModuleError:
    with pytest.raises(UnsafeModuleError) as info:
        validate_graph_archive(path, **kwargs)
    return info.value


# -- real exports pass ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_real_exports_pass(exported: Exports, name: str) -> None:
    validate_graph_archive(exported[name])


def test_rewritten_base_still_passes_and_loads(base: Archive, tmp_path: Path) -> None:
    """The mutation harness itself produces loadable archives, so each refusal is the payload's doing."""
    path = base.copy().write(tmp_path / "graph.pt2")
    validate_graph_archive(path)
    program = torch.export.load(path)
    ids = torch.randint(0, 50, (3, 5))
    assert program.module()(ids, torch.ones_like(ids)).shape == (3, 32)


def test_geffnet_zoo_architectures_pass(tmp_path: Path) -> None:
    """EfficientNet-Lite0 and MobileNetV2 as the zoo builds them (random weights)."""
    geffnet = pytest.importorskip("geffnet")
    for arch in ("tf_efficientnet_lite0", "mobilenetv2_100"):
        model = geffnet.create_model(arch, pretrained=False)
        path = export_archive(model, (torch.rand(2, 3, 224, 224),), ({0: BATCH},), tmp_path / f"{arch}.pt2")
        validate_graph_archive(path)


def test_validation_is_fast_on_a_20mb_archive(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2500, 2000), torch.nn.ReLU(), torch.nn.Linear(2000, 10))
    path = export_archive(model, (torch.rand(2, 2500),), ({0: BATCH},), tmp_path / "big.pt2")
    assert path.stat().st_size > 20e6
    validate_graph_archive(path)  # warm the operator lookup cache
    start = time.perf_counter()
    validate_graph_archive(path)
    # Measured ~0.01 s; the bound only catches a validator that starts reading every weight byte.
    assert time.perf_counter() - start < 0.5


# -- hostile archives are refused -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_hostile_archive_is_refused(base: Archive, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "MARKER"
    archive = base.copy()
    MUTATIONS[name](archive, marker)
    path = archive.write(tmp_path / "graph.pt2")

    error = refused(path)

    assert error.path == path
    assert "is refused" in str(error)
    assert "re-export" in str(error)
    assert not marker.exists()


# Payloads that plain torch.export.load executes (measured with torch 2.13).
PROVEN = [
    "weight-use-pickle",
    "constant-use-pickle",
    "pickled-sample-inputs",
    "opaque-object-constant",
    "legacy-pickled-weights",
    *(
        f"sympy-{site}-{payload}"
        for site in ("tensor-size", "tensor-stride", "sym-int-value")
        for payload in ("dunder-import", "builtin-open", "symbol-kwarg")
    ),
]


def test_payloads_run_under_plain_torch_load(base: Archive, tmp_path: Path) -> None:
    """Without the validator these archives run code: torch.export.load creates the markers."""
    cases = {}
    for name in PROVEN:
        marker = tmp_path / f"{name}.marker"
        archive = base.copy()
        MUTATIONS[name](archive, marker)
        cases[name] = (str(archive.write(tmp_path / f"{name}.pt2")), str(marker))
        with pytest.raises(UnsafeModuleError):
            validate_graph_archive(Path(cases[name][0]))
    script = textwrap.dedent(
        """
        import json, sys, torch
        for path, _ in json.loads(sys.argv[1]).values():
            try:
                torch.export.load(path)
            except BaseException:
                pass
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=True,
    )
    ran = {name for name, (_, marker) in cases.items() if Path(marker).exists()}
    assert ran == set(PROVEN)


def test_pickle_file_posing_as_graph_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "graph.pt2"
    path.write_bytes(pickle_payload(marker))
    error = refused(path)
    assert "does not start with a zip entry" in str(error)
    assert not marker.exists()


def test_truncated_zip_is_refused(exported: Exports, tmp_path: Path) -> None:
    path = tmp_path / "graph.pt2"
    path.write_bytes(exported["cnn"].read_bytes()[:-100])
    assert "not a well-formed zip" in str(refused(path))


def test_archive_larger_than_max_bytes_is_refused(exported: Exports) -> None:
    error = refused(exported["cnn"], max_bytes=1000)
    assert "unpacks to more than 1000 bytes" in str(error)


def test_error_names_the_entry_and_the_reason(base: Archive, tmp_path: Path) -> None:
    archive = base.copy()
    MUTATIONS["target-torch.os.system"](archive, tmp_path / "MARKER")
    message = str(refused(archive.write(tmp_path / "graph.pt2")))
    assert "entry 'bert-like/models/model.json' is refused" in message
    assert "'torch.os.system'" in message
    assert "only torch.ops.aten operators" in message


def test_sample_inputs_may_be_absent(base: Archive, tmp_path: Path) -> None:
    archive = base.copy()
    del archive.entries["data/sample_inputs/model.pt"]
    validate_graph_archive(archive.write(tmp_path / "graph.pt2"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "graph.pt2"
    os.mkfifo(fifo)
    assert "not a regular file" in str(refused(fifo))


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        validate_graph_archive(tmp_path / "nope.pt2")


# -- the expression grammars ---------------------------------------------------------------

S0 = "Symbol('s27', positive=True, integer=True)"
REAL_SYMPY = [
    S0,
    f"Mul(Integer(4), Pow({S0}, Integer(2)))",
    f"Add({S0}, Mul(Integer(-1), Mod({S0}, Integer(4))), Integer(4))",
    f"Max(Integer(1), Add({S0}, Integer(-1)))",
    f"Min(Integer(8), Mul(Integer(8), {S0}))",
    f"Add(FloorDiv({S0}, Integer(3)), Integer(1))",
]
HOSTILE_SYMPY = [
    "__import__('os').system('id')",
    "open('x', 'w')",
    f"{S0}.func",
    "Symbol('os', positive=True)",
    "Symbol('s0', positive=True, commutative=Symbol('x'))",
    "Function('f')(Integer(1))",
    "Lambda(Symbol('s0'), Integer(1))",
    "Integer(1) + Integer(1)",
    "Pow(Integer(2), Integer(1000000))",
    "Pow(Pow(Pow(Integer(999999999), Integer(64)), Integer(64)), Integer(64))",
    "Integer(" + "9" * 40 + ")",
    "Add(Integer(1))",
    "Mul(" * 100 + "Integer(1)" + ")" * 100,
    "Integer(1); import os",
    "Integer(1)\nInteger(2)",
    "S('1')",
    "Integer(0x10)",
    "",
]
REAL_GUARDS = [
    "L['input_ids'].size()[0] == L['attention_mask'].size()[0]",
    "(L['x'].size()[1] % (L['x'].size()[1] // 2)) == 0",
    "L['x'].size()[1] == 2 or (L['x'].size()[1] % 2) == 0",
    "8*L['x'].size()[0]*(4 + L['x'].size()[1] + (-1)*(L['x'].size()[1] % 4)) >= 2",
    "1 + ((-3) + L['x'].size()[2] + max(0, 1 + (-1)*L['x'].size()[2])) // 2 <= 3",
]
HOSTILE_GUARDS = [
    "open('m', 'w')",
    "L['x'].size()[0] == 1 or __import__('os')",
    "L['x'].numpy()",
    'L["x"].size()[0] == 1',
    "L['x'].size()[0] == 1; import os",
    "(lambda: 1)()",
    "x == 1",
    "L['x'].size()[0] if 1 else 2",
    "L['x'].size()[0] == 1\nimport os",
    "L['x'].size()[0] == 1\", exec('1') or \"",
    "getattr(L, 'x') == 1",
]


@pytest.mark.parametrize("text", REAL_SYMPY)
def test_sympy_grammar_accepts_real_shapes(text: str) -> None:
    check_sympy_repr(text)


@pytest.mark.parametrize("text", HOSTILE_SYMPY)
def test_sympy_grammar_refuses(text: str) -> None:
    with pytest.raises(ExprRefused):
        check_sympy_repr(text)


@pytest.mark.parametrize("text", REAL_GUARDS)
def test_guard_grammar_accepts_real_guards(text: str) -> None:
    check_guard(text)


@pytest.mark.parametrize("text", HOSTILE_GUARDS)
def test_guard_grammar_refuses(text: str) -> None:
    with pytest.raises(ExprRefused):
        check_guard(text)


@pytest.mark.parametrize(
    ("text", "ok"), [("s27", True), ("2*s24", True), ("s1 + 1", True), ("os", False), ("s1.x", False)]
)
def test_range_constraint_keys(text: str, ok: bool) -> None:
    if ok:
        check_symbol_key(text)
    else:
        with pytest.raises(ExprRefused):
            check_symbol_key(text)
