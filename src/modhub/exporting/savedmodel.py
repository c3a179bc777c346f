"""Wrap a plain TensorFlow SavedModel directory into a modhub module (framework "tensorflow").

``wrap_saved_model(src, out, task=..., license=...)`` copies the SavedModel to
``out/saved_model/``, reads the ``serving_default`` SignatureDef from
``saved_model.pb`` (protobuf only, no TensorFlow), writes it as the manifest's
default signature, adds a model card and lists every file. The result is
checked like any module (contract for TF layouts, every op of the graph) before
it is returned, so ``modhub publish`` refuses locally what the hub would refuse.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modhub.errors import ManifestError
from modhub.format.atomic import atomic_directory
from modhub.format.manifest import (
    CARD_NAME,
    SAVED_MODEL_DIR,
    Manifest,
    Metadata,
    Signature,
    TensorSpec,
    detect_formats,
    list_files,
    write_manifest,
)
from modhub.format.modelcard import render_card
from modhub.format.savedmodel import SAVED_MODEL_PB, TensorInfo, signature_defs, verify_saved_model_dir

__all__ = ["is_saved_model_dir", "wrap_saved_model"]

_DTYPES = {
    "DT_FLOAT": "float32",
    "DT_HALF": "float16",
    "DT_BFLOAT16": "bfloat16",
    "DT_INT64": "int64",
    "DT_INT32": "int32",
    "DT_BOOL": "bool",
    "DT_STRING": "string",
}
SERVING = "serving_default"


def is_saved_model_dir(path: Path) -> bool:
    return (path / SAVED_MODEL_PB).is_file()


def _spec(info: TensorInfo, image: bool) -> TensorSpec:
    dtype = _DTYPES.get(info.dtype)
    if dtype is None:
        raise ManifestError(
            f"the SavedModel's {info.key!r} has dtype {info.dtype}, which modhub does not list"
        )
    if info.shape is None:
        raise ManifestError(f"the SavedModel's {info.key!r} has an unknown rank; give it a shape when saving")
    names = ["batch", "height", "width", "channels"] if image and len(info.shape) == 4 else []
    shape = tuple(
        d if d >= 0 else (names[i] if i < len(names) else ("batch" if i == 0 else f"dim{i}"))
        for i, d in enumerate(info.shape)
    )
    key = info.key if info.key.isidentifier() else "".join(c if c.isalnum() else "_" for c in info.key)
    return TensorSpec(
        name=key,
        dtype=dtype,  # type: ignore[arg-type]
        shape=shape,
        layout="NHWC" if image and len(shape) == 4 else None,
        value_range=(0.0, 1.0) if image and len(shape) == 4 else None,
        description=f"TF tensor {info.name}",
    )


def wrap_saved_model(
    saved_model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    task: str,
    license: str,
    title: str = "",
) -> Path:
    """Write a module directory at ``out_dir`` holding the SavedModel; return it (checked)."""
    from modhub.format.tasks import get_contract
    from modhub.format.verify import check_module

    source = Path(saved_model_dir)
    # The op check comes first: a hostile SavedModel is refused for what it does.
    names = [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
    model = verify_saved_model_dir(source, names)
    image = get_contract(task).modality == "image"
    sigs = {s.key: s for s in signature_defs(model)}
    if SERVING not in sigs:
        raise ManifestError(
            f"{source} has no {SERVING!r} signature (it has {sorted(sigs)}); save it with "
            "tf.saved_model.save(obj, dir, signatures={'serving_default': fn})",
            path=source,
        )
    serving = sigs[SERVING]
    inputs = tuple(_spec(i, image) for i in serving.inputs)
    outputs = tuple(_spec(o, False) for o in serving.outputs)
    target = Path(out_dir)
    with atomic_directory(target) as staging:  # replaces target in one step; removed on error
        shutil.copytree(source, staging / SAVED_MODEL_DIR, symlinks=True)
        for path in (staging / SAVED_MODEL_DIR).rglob("*"):
            if path.is_symlink():
                raise ManifestError(
                    f"{path} is a symbolic link; a SavedModel holds plain files only", path=path
                )
        signature = Signature(inputs=inputs, outputs=outputs)
        manifest = Manifest(
            task=task,
            framework="tensorflow",
            torch_version="",
            signatures={"default": signature},
            graph_inputs=inputs,
            graph_outputs=outputs,
            license=license,
            fine_tunable=True,
            metadata=Metadata(title=title or source.resolve().name, tags=("tensorflow", "savedmodel")),
            files=(),
        )
        body = (
            "A TensorFlow SavedModel published with `modhub publish`. Load it with tensorflow_hub:\n\n"
            "```python\nimport tensorflow_hub as hub\n\nmodule = hub.load(URL)\n```\n"
        )
        (staging / CARD_NAME).write_text(
            render_card(manifest, body, manifest.metadata.title), encoding="utf-8"
        )
        files = list_files(staging)
        manifest = Manifest.model_validate(
            {**manifest.model_dump(), "files": files, "formats": detect_formats(f.path for f in files)}
        )
        write_manifest(staging, manifest)
        check_module(staging, saved_model=True)
        if target.exists():
            raise ManifestError(f"{target} exists already; choose an empty place for the module", path=target)
    return target
