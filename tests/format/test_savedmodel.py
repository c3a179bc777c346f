"""The SavedModel checker: parsed with protobuf only, every op of every graph and function allow-listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from modhub.errors import ManifestError, UnsafeModuleError
from modhub.format import savedmodel
from modhub.format.savedmodel import (
    check_saved_model,
    parse_saved_model,
    read_saved_model,
    render_signature_defs,
    signature_defs,
    verify_saved_model_dir,
)
from tests.format.saved_models import SAVE_FN, SERVING_FN, saved_model_bytes, write_saved_model
from tests.zoo.conftest import zoo_dir  # noqa: F401  (the built starter modules)

# One hostile op per class the hub must refuse, and what the refusal must say.
HOSTILE = [
    # files
    ("ReadFile", "reads or writes files"),
    ("WriteFile", "reads or writes files"),
    ("MatchingFiles", "reads or writes files"),
    ("ImmutableConst", "reads or writes files"),
    ("WholeFileReaderV2", "reads or writes files"),
    ("ReaderReadV2", "reads or writes files"),
    ("TFRecordDatasetV2", "reads or writes files"),
    ("FixedLengthRecordDatasetV2", "reads or writes files"),
    ("SaveDatasetV2", "reads or writes files"),
    ("InitializeTableFromTextFileV2", "reads or writes files"),
    ("CreateSummaryFileWriter", "reads or writes files"),
    ("PrintV2", "reads or writes files"),
    ("LoadAndRemapMatrix", "reads or writes files"),
    # network
    ("DebugIdentityV2", "network"),
    ("DebugNumericSummary", "network"),
    ("RpcCall", "network"),
    ("DataServiceDatasetV4", "network"),
    ("CollectiveReduceV2", "network"),
    # python
    ("PyFunc", "runs Python code"),
    ("PyFuncStateless", "runs Python code"),
    ("EagerPyFunc", "runs Python code"),
    # anything else not on the list
    ("SomeCustomOp", "allow-list"),
]


def test_a_tf2_shaped_savedmodel_passes() -> None:
    model = parse_saved_model(saved_model_bytes())
    check_saved_model(model)


@pytest.mark.parametrize(("op", "reason"), HOSTILE, ids=[op for op, _ in HOSTILE])
@pytest.mark.parametrize("place", ["main", "serving", "wrapper"])
def test_hostile_op_is_refused_naming_op_and_function(op: str, reason: str, place: str) -> None:
    model = parse_saved_model(saved_model_bytes(inject=(op, place)))
    with pytest.raises(UnsafeModuleError, match=reason) as caught:
        check_saved_model(model)
    message = str(caught.value)
    assert f"op {op} " in message
    assert "injected" in message
    if place == "serving":
        assert SERVING_FN in message
    elif place == "main":
        assert "main graph" in message


@pytest.mark.parametrize("op", ["ReadFile", "PyFunc", "WriteFile", "DebugIdentityV2"])
@pytest.mark.parametrize("place", ["save", "restore"])
def test_saver_functions_get_no_wider_allowance(op: str, place: str) -> None:
    with pytest.raises(UnsafeModuleError, match=op):
        check_saved_model(parse_saved_model(saved_model_bytes(inject=(op, place))))


@pytest.mark.parametrize(
    ("op", "place"),
    [
        ("SaveV2", "serving"),
        ("SaveV2", "main"),
        ("MergeV2Checkpoints", "serving"),
        ("ShardedFilename", "wrapper"),
        ("RestoreV2", "serving"),
        ("RestoreV2", "save"),  # restore belongs to the restore function only
        ("SaveV2", "restore"),  # and saving to the save function only
    ],
)
def test_checkpoint_ops_only_inside_their_saver_function(op: str, place: str) -> None:
    with pytest.raises(UnsafeModuleError, match=f"op {op} reads or writes files"):
        check_saved_model(parse_saved_model(saved_model_bytes(inject=(op, place))))


def test_checkpoint_ops_are_allowed_in_the_saver_functions() -> None:
    # The base model has SaveV2 & co. in SAVE_FN and RestoreV2 in the restore function.
    model = parse_saved_model(saved_model_bytes())
    ops = {n.op for f in model.meta_graphs[0].graph_def.library.function for n in f.node_def
           if f.signature.name == SAVE_FN}
    assert {"SaveV2", "MergeV2Checkpoints", "ShardedFilename"} <= ops
    check_saved_model(model)


def test_a_function_named_like_an_op_is_refused() -> None:
    model = parse_saved_model(saved_model_bytes())
    function = model.meta_graphs[0].graph_def.library.function.add()
    function.signature.name = "ReadFile"
    with pytest.raises(UnsafeModuleError, match="shadows a TensorFlow op"):
        check_saved_model(model)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_asset_outside_assets_dir_is_refused(name: str) -> None:
    model = parse_saved_model(saved_model_bytes())
    asset = model.meta_graphs[0].asset_file_def.add()
    asset.filename = name
    with pytest.raises(UnsafeModuleError, match="asset"):
        check_saved_model(model)


def test_garbage_is_not_a_savedmodel() -> None:
    with pytest.raises(ManifestError, match="not a SavedModel"):
        parse_saved_model(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(ManifestError, match="no MetaGraphDef"):
        parse_saved_model(b"")


def test_files_that_are_not_part_of_a_savedmodel_are_refused(tmp_path: Path) -> None:
    root = write_saved_model(tmp_path / "sm")
    names = ["saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001"]
    verify_saved_model_dir(root, names)
    for extra in ("libevil.so", "variables/run.py", "saved_model.pbtxt", "keras_metadata.sh"):
        with pytest.raises(UnsafeModuleError, match="not part of a SavedModel"):
            verify_saved_model_dir(root, [*names, extra])


def test_oversized_graph_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_saved_model(tmp_path / "sm")
    monkeypatch.setattr(savedmodel, "MAX_SAVED_MODEL_PB_BYTES", 100)
    with pytest.raises(UnsafeModuleError, match="over the 100-byte limit"):
        read_saved_model(root)


def test_signature_defs_print_like_saved_model_cli() -> None:
    model = parse_saved_model(saved_model_bytes(features=8, size=32))
    (sig,) = signature_defs(model)
    assert sig.key == "serving_default"
    assert sig.inputs[0].shape == (-1, 32, 32, 3)
    text = render_signature_defs(model)
    assert "MetaGraphDef with tag-set: 'serve' contains the following SignatureDefs:" in text
    assert "signature_def['serving_default']:" in text
    images = "    inputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 32, 32, 3)\n"
    assert images in text
    assert "        name: serving_default_images:0" in text
    assert "    outputs['features'] tensor_info:" in text
    assert "  Method name is: tensorflow/serving/predict" in text


@pytest.mark.skipif(not os.environ.get("MODHUB_TF_PYTHON"), reason="the zoo has SavedModels only with TF")
def test_real_tf_exports_of_the_zoo_pass(zoo_dir: Path) -> None:  # noqa: F811
    found = sorted(zoo_dir.glob("*/saved_model"))
    assert len(found) >= 5  # four image modules and GloVe
    for directory in found:
        names = [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()]
        model = verify_saved_model_dir(directory, names)
        assert "serving_default" in {s.key for s in signature_defs(model)}

