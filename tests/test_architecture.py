"""The package's layers (ARCHITECTURE.md): no import cycles, no import from a lower layer up.

Every ``import modhub...`` in ``src/modhub`` is read from the source (module
level and inside functions alike: a lazy import is still an arrow). A module
may import its own package's modules and anything in a lower layer, never a
higher one; the only cycles allowed are inside ``zoo/`` (its registry imports
the starters that register themselves).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first; a package may import from its own layer's other packages only where listed in SIDEWAYS.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("modhub.errors", "modhub.settings", "modhub.handles"),
    ("modhub.graph",),
    ("modhub.format",),
    ("modhub.client",),
    ("modhub.runtimes",),
    ("modhub.loading", "modhub.exporting"),
    ("modhub.predict", "modhub.retrain", "modhub.server"),
    ("modhub.zoo", "modhub.cluster"),
    ("modhub.cli",),
    ("modhub.__main__",),
)
SIDEWAYS = {
    ("modhub.handles", "modhub.errors"),
    ("modhub.settings", "modhub.errors"),
}
# The root package is imported before any submodule; reading ``modhub.__version__`` from it is no arrow up.
ROOT_NAMES = {"__version__"}
CYCLES_ALLOWED_IN = ("modhub.zoo",)


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "modhub").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _target(name: str) -> str:
    """The module an imported dotted name lives in (``modhub.a.b.func`` -> ``modhub.a.b``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> Iterator[tuple[str, int]]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("modhub"):
                    yield _target(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("modhub"):
                continue
            if node.module == "modhub" and {a.name for a in node.names} <= ROOT_NAMES:
                continue
            for alias in node.names:
                yield _target(f"{node.module}.{alias.name}"), node.lineno


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in _imports(m) if t != m} for m in MODULES}


def _layer(module: str) -> int:
    best, depth = -1, -1
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and len(package) > depth:
                best, depth = index, len(package)
    return best


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if m != "modhub" and _layer(m) < 0)
    assert not unplaced, f"add these to LAYERS (and ARCHITECTURE.md): {unplaced}"


def test_no_import_from_a_lower_layer_up() -> None:
    wrong = []
    for module in MODULES:
        if module == "modhub":
            continue  # the public surface imports (lazily) from every layer
        for target, line in _imports(module):
            if target == "modhub":
                wrong.append(f"{module}:{line} imports the root package (import the submodule instead)")
                continue
            if _package(target) == _package(module) or (_package(module), _package(target)) in SIDEWAYS:
                continue
            if _layer(target) >= _layer(module):
                wrong.append(f"{module}:{line} -> {target}")
    assert not wrong, "imports against the layers of ARCHITECTURE.md:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    cycles = [c for c in _cycles(_graph()) if not all(m.startswith(CYCLES_ALLOWED_IN) for m in c)]
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert _cycles(graph) == expected


def test_top_level_holds_only_the_entry_points() -> None:
    top = sorted(p.name for p in (SRC / "modhub").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "errors.py", "handles.py", "settings.py"]


ARCHITECTURE = SRC.parent / "ARCHITECTURE.md"


def test_architecture_md_maps_every_package_and_layer() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    packages = sorted(p.name for p in (SRC / "modhub").iterdir() if (p / "__init__.py").is_file())
    missing = [name for name in packages if f"`{name}/`" not in text]
    assert not missing, f"ARCHITECTURE.md does not map these packages: {missing}"
    for packages_of_layer in LAYERS:
        for package in packages_of_layer:
            short = package.removeprefix("modhub.")
            if short.startswith("__"):
                continue
            assert f"`{short}/`" in text or f"`{short}.py`" in text, f"ARCHITECTURE.md omits {package}"


def test_architecture_md_names_files_that_exist() -> None:
    import re

    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py)`", text))
    named |= {f"{pkg}/{mod}.py" for pkg, mod in re.findall(r"`([a-z_]+)/\{?([a-z_]+)\}?`", text)}
    assert named, "the pattern finds no file names: fix this test"
    roots = (SRC / "modhub", SRC, SRC.parent)
    gone = sorted(rel for rel in named if not any((root / rel).is_file() for root in roots))
    assert not gone, f"ARCHITECTURE.md names files that do not exist: {gone}"


# The public entry points: the only functions below the CLI that may read the environment
# (Settings.from_env()); everything they call is handed the settings object.
READS_ENVIRONMENT = {
    "modhub.loading.loader": {"load"},
    "modhub.loading.layer": {"Layer.__init__"},
    "modhub.loading.keras_layer": {"KerasLayer.__init__"},
    "modhub.client.resolve": {"resolve"},
    "modhub.client.publish": {"publish"},
    "modhub.predict.runner": {"predict"},
    "modhub.retrain.run": {"retrain_images", "retrain_text"},
    "modhub.retrain.audio": {"retrain_audio"},
    "modhub.zoo.build": {"build_zoo"},
    "modhub.cluster.batch": {"submit_predict", "predict_on_ray"},
    "modhub.cluster.retrain_job": {"submit_retrain"},
}


def _environment_reads(module: str) -> Iterator[str]:
    """The qualified names of the functions in ``module`` that call ``Settings.from_env()``."""

    def walk(node: ast.AST, scope: list[str]) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from walk(child, [*scope, child.name])
                continue
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr == "from_env"
            ):
                yield ".".join(scope) or "<module>"
            yield from walk(child, scope)

    yield from walk(ast.parse(MODULES[module].read_text(encoding="utf-8")), [])


def test_only_public_entry_points_read_the_environment() -> None:
    wrong = []
    for module in MODULES:
        if module.startswith(("modhub.cli", "modhub.settings")):
            continue
        allowed = READS_ENVIRONMENT.get(module, set())
        wrong += [f"{module}.{where}" for where in _environment_reads(module) if where not in allowed]
    assert not wrong, (
        "Settings.from_env() below the public entry points (pass the settings down instead): "
        f"{sorted(set(wrong))}"
    )
    assert list(_environment_reads("modhub.loading.loader")) == ["load"], "the scan finds nothing: fix it"
