"""More than 150 hostile ``model.onnx`` graphs through the real paths: ``hub.load`` in a fresh
process (a canary, a memory bound) and the hub's publish check. All refused.

The loading processes hold a secret in their environment and a marker path that
external-data payloads name; each case is loaded with ``runtime="onnx"`` (so
nothing but the ONNX path is tried). Cases run in two batched processes, each
under an address-space limit so that a bomb the check missed fails there
instead of taking the machine down, and each reports its peak RSS.
"""

from __future__ import annotations

import secrets
import shutil
import textwrap
from pathlib import Path

import onnx
import pytest

from modhub.format.manifest import ONNX_NAME
from tests.format.corpus import accepted_by_publish_check, copy_module, load_in_processes, rehash
from tests.format.onnx_corpus import OnnxCase, onnx_cases

# Peak RSS a loading process may reach: Python, numpy, onnxruntime and the tiny modules
# (about 150 MiB here), far below any bomb of the corpus (the smallest is 1.3 GiB).
MAX_RSS_MIB = 512

RUNNER = textwrap.dedent(
    """
    import faulthandler, json, resource, sys
    # A bomb the check missed fails here (std::bad_alloc) instead of swapping the machine.
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    import modhub as hub
    results = {}
    for name, path in json.loads(open(sys.argv[1]).read()).items():
        faulthandler.dump_traceback_later(120, exit=True)
        print("case", name, file=sys.stderr, flush=True)
        try:
            module = hub.load(path, runtime="onnx")
        except hub.HubError as exc:
            results[name] = ["refused", type(exc).__name__, str(exc)]
        except BaseException as exc:
            results[name] = ["crashed", type(exc).__name__, str(exc)[:500]]
        else:
            results[name] = ["LOADED", "", ""]
        faulthandler.cancel_dump_traceback_later()
    # VmHWM: this process's own peak (ru_maxrss would include the forking pytest's, kept across exec).
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    rss = int(status.split()[0]) >> 10
    print(json.dumps({"results": results, "rss_mib": rss}))
    """
)


def _build(source: Path, cases: dict[str, OnnxCase], out: Path, marker: Path) -> dict[str, str]:
    paths = {}
    for i, (name, case) in enumerate(sorted(cases.items())):
        module = out / f"case{i:03d}"
        copy_module(source, module)
        model = onnx.load(str(module / ONNX_NAME), load_external_data=False)
        case(model, marker)
        (module / ONNX_NAME).write_bytes(model.SerializeToString())
        rehash(module)
        paths[name] = str(module)
    return paths


@pytest.fixture(scope="module")
def onnx_corpus(image_module: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("onnx-corpus")
    return _build(image_module, onnx_cases(), root / "image", root / "MARKER")


def test_the_corpus_is_large_and_spans_every_family(onnx_corpus: dict[str, str], image_module: Path) -> None:
    assert len(onnx_corpus) >= 150
    ops = [name for name in onnx_corpus if name.startswith("op ")]
    domains = {name.split()[1].split("/")[0] for name in ops}
    assert {"ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"} <= domains
    assert sum(name.startswith("bomb") for name in onnx_corpus) >= 30
    # The harness itself makes loadable modules: an unmodified, re-written and re-hashed copy loads.
    import modhub as hub

    copy = Path(next(iter(onnx_corpus.values()))).parent / "pristine"
    shutil.copytree(image_module, copy)
    model = onnx.load(str(copy / ONNX_NAME), load_external_data=False)
    (copy / ONNX_NAME).write_bytes(model.SerializeToString())
    rehash(copy)
    assert hub.load(copy, runtime="onnx").runtime == "onnx"


def test_operators_outside_the_list_do_run_on_onnxruntime(tmp_path: Path) -> None:
    """What the list stands in front of is real: onnxruntime loads and runs such nodes."""
    import numpy as np
    import onnxruntime
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    for node, opsets in (
        (helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="MAX"), [("ai.onnx.ml", 3)]),
        (helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft"), [("com.microsoft", 1)]),
    ):
        graph = helper.make_graph([node], "g", [x], [y])
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 18)] + [helper.make_opsetid(*o) for o in opsets]
        )
        model.ir_version = 9
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        assert session.run(None, {"x": np.ones((2, 3), np.float32)})[0].shape == (2, 3)


def test_every_hostile_graph_is_refused_by_hub_load_within_memory(
    onnx_corpus: dict[str, str], tmp_path: Path
) -> None:
    secret = f"canary-{secrets.token_hex(16)}"
    marker = Path(next(iter(onnx_corpus.values()))).parents[1] / "MARKER"
    env = {"CANARY_SECRET": secret, "MODHUB_CACHE": str(tmp_path / "cache")}
    reports, output = load_in_processes(onnx_corpus, RUNNER, tmp_path, env, timeout=900)
    results: dict[str, list[str]] = {}
    for report in reports:
        results.update(report["results"])
        assert report["rss_mib"] < MAX_RSS_MIB, report["rss_mib"]
    assert set(results) == set(onnx_corpus)
    not_refused = {n: r for n, r in results.items() if r[0] != "refused"}
    assert not not_refused
    assert all(r[1] == "UnsafeModuleError" for r in results.values()), {
        n: r[:2] for n, r in results.items() if r[1] != "UnsafeModuleError"
    }
    assert not marker.exists()
    assert secret not in output


def test_every_hostile_graph_is_refused_by_the_publish_check(onnx_corpus: dict[str, str]) -> None:
    assert not accepted_by_publish_check(onnx_corpus)
