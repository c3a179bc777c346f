"""Hundreds of hostile modules through the real paths: ``hub.load`` in a fresh process, and publishing.

The loading process holds a canary: a secret in its environment and a marker
file path that the payloads try to create. Every module must be refused with
a modhub error, the marker must not exist, and the secret must appear nowhere
in what the process printed. Cases are batched: two subprocesses, not 300.
"""

from __future__ import annotations

import secrets
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.format.corpus import (
    Case,
    NotApplicable,
    accepted_by_publish_check,
    copy_module,
    image_cases,
    load_in_processes,
    rehash,
    text_cases,
)

RUNNER = textwrap.dedent(
    """
    import faulthandler, json, sys
    import modhub as hub
    results = {}
    for name, path in json.loads(open(sys.argv[1]).read()).items():
        # A case that hangs (a FIFO read, a decompression bomb) ends the process with its traceback.
        faulthandler.dump_traceback_later(60, exit=True)
        print("case", name, file=sys.stderr, flush=True)
        try:
            # The torch runtime reads the graph, labels and tokenizer: every file an attack targets.
            module = hub.load(path, runtime="torch")
        except hub.HubError as exc:
            results[name] = ["refused", type(exc).__name__, str(exc)]
        except BaseException as exc:
            results[name] = ["crashed", type(exc).__name__, str(exc)]
        else:
            results[name] = ["LOADED", repr(getattr(module, "labels", None)), ""]
        faulthandler.cancel_dump_traceback_later()
    print(json.dumps(results))
    """
)


def _build(source: Path, cases: dict[str, Case], out: Path, marker: Path) -> dict[str, str]:
    paths = {}
    for i, (name, case) in enumerate(sorted(cases.items())):
        module = out / f"case{i:03d}"
        copy_module(source, module)
        try:
            edited = case(module, marker)
        except NotApplicable:
            shutil.rmtree(module)
            continue
        if edited is not False:
            rehash(module)
        paths[name] = str(module)
    return paths


@pytest.fixture(scope="module")
def corpus(image_module: Path, text_module: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("corpus")
    marker = root / "MARKER"
    paths = _build(image_module, image_cases(), root / "image", marker)
    paths.update(_build(text_module, text_cases(), root / "text", marker))
    return paths


def test_the_corpus_is_large_and_every_case_is_real(corpus: dict[str, str], image_module: Path) -> None:
    assert len(corpus) >= 300
    # The harness itself makes loadable modules: an unmodified, re-hashed copy loads.
    import modhub as hub

    copy = Path(next(iter(corpus.values()))).parent / "pristine"
    shutil.copytree(image_module, copy)
    rehash(copy)
    assert hub.load(copy).labels == ["ant", "bee", "cat", "dog", "eel"]


def test_every_hostile_module_is_refused_by_hub_load_without_touching_the_canary(
    corpus: dict[str, str], tmp_path: Path
) -> None:
    secret = f"canary-{secrets.token_hex(16)}"
    marker = Path(next(iter(corpus.values()))).parents[1] / "MARKER"
    reports, output = load_in_processes(corpus, RUNNER, tmp_path, {"CANARY_SECRET": secret}, timeout=600)
    results: dict[str, list[str]] = {k: v for report in reports for k, v in report.items()}
    assert set(results) == set(corpus)
    not_refused = {n: r for n, r in results.items() if r[0] != "refused"}
    assert not not_refused
    assert not marker.exists()
    assert secret not in output


def test_every_hostile_module_is_refused_by_the_publish_check(corpus: dict[str, str]) -> None:
    assert not accepted_by_publish_check(corpus)
