"""``modhub predict`` on this machine: streaming, Parquet out, every input kind. No Ray needed
(the same run on a Ray cluster is in tests/cluster/test_predict.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import modhub as hub
from modhub.errors import InputError
from modhub.predict import predict
from tests.retrain.conftest import write_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three colours, six photos each."""
    return write_photos(tmp_path_factory.mktemp("predict-photos") / "photos", per_class=6)


TEXTS = ["the cat sat on the mat", "a dog ran fast", "", "red car", "blue house", "the mat", "a cat"]


def _texts(path: Path) -> Path:
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def test_local_text_file(text_module: Path, tmp_path: Path) -> None:
    result = predict(text_module, _texts(tmp_path / "texts.txt"), tmp_path / "out.parquet", batch_size=2)
    table = pq.read_table(result.out)
    assert result.rows == table.num_rows == 6  # the empty line is no input
    assert table.column("key").to_pylist() == ["1", "2", "4", "5", "6", "7"]
    expected = np.asarray(hub.load(text_module)([t for t in TEXTS if t]))
    got = np.array(table.column("output").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert "top_labels" not in table.column_names  # embeddings have no labels
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left


def test_local_image_folder_classifier(image_module: Path, photos: Path, tmp_path: Path) -> None:
    result = predict(image_module, photos, tmp_path / "out.parquet", batch_size=4, top_k=3)
    assert result.skipped == 0
    table = pq.read_table(result.out)
    keys = table.column("key").to_pylist()
    assert keys == sorted(keys) and keys[0].startswith("blue/") and len(keys) == 18
    labels = hub.load(image_module).labels
    top = table.column("top_labels").to_pylist()
    scores = np.array(table.column("top_scores").to_pylist())
    assert all(len(row) == 3 and set(row) <= set(labels) for row in top)
    assert np.all(np.diff(scores, axis=1) <= 0) and np.all(scores.sum(1) <= 1 + 1e-6)
    logits = np.array(table.column("output").to_pylist())
    assert [labels[i] for i in logits.argmax(1)] == [row[0] for row in top]
    # Frozen prediction runs on onnxruntime and takes the photos as hub.load does (resize policy).
    from modhub.predict.runner import load_for_inference

    assert load_for_inference(image_module, None).runtime == "onnx"
    direct = hub.load(image_module, runtime="onnx")([str(photos / key) for key in keys])
    np.testing.assert_allclose(logits, direct, rtol=1e-5, atol=1e-6)


def test_unreadable_images_are_skipped_and_named(image_module: Path, tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "sub" / "good.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image either, and not an image suffix")
    result = predict(image_module, folder, tmp_path / "out.parquet")
    assert result.rows == 1 and result.skipped == 1
    assert "broken.jpg: not a readable image" in result.skipped_examples[0]
    assert pq.read_table(result.out).column("key").to_pylist() == ["sub/good.png"]


def test_local_csv_and_parquet_columns(text_module: Path, tmp_path: Path) -> None:
    with open(tmp_path / "in.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "sentence"])
        writer.writerows([[f"r{i}", text] for i, text in enumerate(TEXTS) if text])
    pq.write_table(pa.table({"sentence": [t for t in TEXTS if t]}), tmp_path / "in.parquet")
    a = predict(text_module, tmp_path / "in.csv", tmp_path / "a.parquet", column="sentence", key_column="id")
    b = predict(text_module, tmp_path / "in.parquet", tmp_path / "b.parquet", column="sentence")
    ta, tb = pq.read_table(a.out), pq.read_table(b.out)
    assert ta.column("key").to_pylist() == [f"r{i}" for i, t in enumerate(TEXTS) if t]
    assert tb.column("key").to_pylist() == [str(i) for i in range(6)]
    assert ta.column("output").equals(tb.column("output"))
    with pytest.raises(InputError, match=r"no column.*'text'.*--column"):
        predict(text_module, tmp_path / "in.csv", tmp_path / "c.parquet")
    with pytest.raises(InputError, match="exists; choose another --out or pass --overwrite"):
        predict(text_module, tmp_path / "in.parquet", tmp_path / "b.parquet", column="sentence")


def test_wrong_input_kind(text_module: Path, image_module: Path, photos: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder, but this is a text module"):
        predict(text_module, photos, tmp_path / "x.parquet")
    with pytest.raises(InputError, match="is a text file, but this is an image module"):
        predict(image_module, _texts(tmp_path / "t.txt"), tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_cli_local(text_module: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    out = tmp_path / "cli.parquet"
    args = [
        "predict",
        str(text_module),
        str(_texts(tmp_path / "t.txt")),
        "--out",
        str(out),
        "--batch-size",
        "3",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 6 rows" in result.stdout
    assert pq.read_table(out).num_rows == 6
