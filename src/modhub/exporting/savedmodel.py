"""Wrap a plain TensorFlow SavedModel directory into a modhub module (framework "tensorflow").

``wrap_saved_model(src, out, task=..., license=...)`` copies the SavedModel to
``out/saved_model/``, reads every SignatureDef from ``saved_model.pb``
(protobuf only, no TensorFlow) as the manifest's signatures (``serving_default``
is ``default``, the others keep their keys), adds a model card and lists every
file. A dtype or shape a module signature cannot carry is an ExportError, and
nothing is written. The result is
checked like any module (contract for TF layouts, every op of the graph) before
it is returned, so ``modhub publish`` refuses locally what the hub would refuse.
With ``tfjs_python`` (``modhub publish --tfjs``: the TensorFlow venv's python) the
module also carries the SavedModel as a TF.js graph model in ``tfjs/``
(:mod:`modhub.exporting.tfjs`), which the hub serves to ``tf.loadGraphModel``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modhub.errors import ExportError, ManifestError
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
from modhub.format.savedmodel import (
    SAVED_MODEL_PB,
    SignatureInfo,
    TensorInfo,
    signature_defs,
    verify_saved_model_dir,
)

__all__ = ["is_saved_model_dir", "wrap_saved_model"]

_DTYPES = {
    "DT_FLOAT": "float32",
    "DT_HALF": "float16",
    "DT_DOUBLE": "float64",
    "DT_BFLOAT16": "bfloat16",
    "DT_INT8": "int8",
    "DT_INT16": "int16",
    "DT_INT32": "int32",
    "DT_INT64": "int64",
    "DT_UINT8": "uint8",
    "DT_BOOL": "bool",
    "DT_STRING": "string",
}
SERVING = "serving_default"


def is_saved_model_dir(path: Path) -> bool:
    return (path / SAVED_MODEL_PB).is_file()


def _identifier(key: str) -> str:
    made = key if key.isidentifier() else "".join(c if c.isalnum() or c == "_" else "_" for c in key)
    return made if made[:1].isalpha() or made[:1] == "_" else f"t_{made}"


def _spec(info: TensorInfo, image: bool, signature: str = SERVING) -> TensorSpec:
    dtype = _DTYPES.get(info.dtype)
    where = f"signature {signature!r}: {info.key!r}"
    if dtype is None:
        raise ExportError(
            f"the SavedModel's {where} has dtype {info.dtype}, which a module signature cannot carry; "
            f"use one of {', '.join(sorted(set(_DTYPES.values())))} (tf.cast it in the signature function)"
        )
    if info.shape is None:
        raise ExportError(
            f"the SavedModel's {where} has an unknown rank; give the signature function an input_signature "
            "with a shape (tf.TensorSpec([None, ...]))"
        )
    names = ["batch", "height", "width", "channels"] if image and len(info.shape) == 4 else []
    key = _identifier(info.key)
    shape = tuple(
        d if d >= 0 else (names[i] if i < len(names) else ("batch" if i == 0 else f"{key.lower()}_dim{i}"))
        for i, d in enumerate(info.shape)
    )
    return TensorSpec(
        name=key,
        dtype=dtype,  # type: ignore[arg-type]
        shape=shape,
        layout="NHWC" if image and len(shape) == 4 else None,
        value_range=(0.0, 1.0) if image and len(shape) == 4 else None,
        description=f"TF tensor {info.name}",
    )


def _signatures(serving: SignatureInfo, others: list[SignatureInfo], image: bool) -> dict[str, Signature]:
    """Every SignatureDef as a module signature: serving_default is "default", the others keep
    their keys (as identifiers). All of them run from the one saved_model/ directory."""
    made = {
        "default": Signature(
            inputs=tuple(_spec(i, image) for i in serving.inputs),
            outputs=tuple(_spec(o, False) for o in serving.outputs),
        )
    }
    for sig in others:
        name = _identifier(sig.key)
        if name in made:
            raise ExportError(
                f"the SavedModel's signatures {sig.key!r} and another both become {name!r}; rename one"
            )
        if not sig.inputs or not sig.outputs:
            raise ExportError(
                f"the SavedModel's signature {sig.key!r} has no inputs or no outputs; a module signature "
                "needs both"
            )
        made[name] = Signature(
            inputs=tuple(_spec(i, False, sig.key) for i in sig.inputs),
            outputs=tuple(_spec(o, False, sig.key) for o in sig.outputs),
        )
    return made


def _with_meaning(
    signatures: dict[str, Signature], meaning: Mapping[str, Mapping[str, Any]]
) -> dict[str, Signature]:
    from pydantic import ValidationError

    names = {spec.name for sig in signatures.values() for spec in (*sig.inputs, *sig.outputs)}
    unknown = sorted(set(meaning) - names)
    if unknown:
        raise ExportError(f"name_meaning names {unknown}, which no signature has; they have {sorted(names)}")

    def apply(spec: TensorSpec) -> TensorSpec:
        if spec.name not in meaning:
            return spec
        try:
            return TensorSpec.model_validate({**spec.model_dump(), **dict(meaning[spec.name])})
        except ValidationError as exc:
            raise ExportError(f"name_meaning for {spec.name!r} is not valid: {exc}") from None

    return {
        name: sig.model_copy(
            update={"inputs": tuple(map(apply, sig.inputs)), "outputs": tuple(map(apply, sig.outputs))}
        )
        for name, sig in signatures.items()
    }


def wrap_saved_model(
    saved_model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    task: str,
    license: str,
    title: str = "",
    name_meaning: Mapping[str, Mapping[str, Any]] | None = None,
    tfjs_python: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a module directory at ``out_dir`` holding the SavedModel; return it (checked).

    ``name_meaning``: what tensors hold, by name (in every signature that has the name), e.g.
    ``{"images": {"kind": "image", "layout": "NHWC", "value_range": (0, 1)}}``.
    ``tfjs_python``: the TensorFlow venv's python, to add the TF.js format (``tfjs/``).
    """
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
    # The original image tasks' one NHWC image input takes TF Hub's names (height, width, ...).
    image = image and len(sigs[SERVING].inputs) == 1
    # TF2 lists its initialiser as "__saved_model_init_op", a SignatureDef no caller calls.
    others = [s for key, s in sigs.items() if key != SERVING and not key.startswith("__")]
    signatures = _with_meaning(_signatures(sigs[SERVING], others, image), name_meaning or {})
    inputs, outputs = signatures["default"].inputs, signatures["default"].outputs
    target = Path(out_dir)
    with atomic_directory(target) as staging:  # replaces target in one step; removed on error
        shutil.copytree(source, staging / SAVED_MODEL_DIR, symlinks=True)
        for path in (staging / SAVED_MODEL_DIR).rglob("*"):
            if path.is_symlink():
                raise ManifestError(
                    f"{path} is a symbolic link; a SavedModel holds plain files only", path=path
                )
        if tfjs_python is not None:
            from modhub.exporting.tfjs import TFJS_DIR, convert_saved_model

            convert_saved_model(staging / SAVED_MODEL_DIR, staging / TFJS_DIR, tfjs_python)
        manifest = Manifest(
            task=task,
            framework="tensorflow",
            torch_version="",
            signatures=signatures,
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
