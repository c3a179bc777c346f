"""``modhub predict``: locally (streaming, Parquet) and on the real Ray cluster (Ray Data), same output."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ray.job_submission import JobSubmissionClient

import modhub as hub
from modhub.cluster import LocalCluster, submit_predict
from modhub.errors import InputError
from modhub.predict import predict
from tests.cluster.conftest import Hub
from tests.server.conftest import serve_env

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


def test_cluster_equals_local(
    ray_cluster: LocalCluster,
    hub: Hub,
    hub_image_handle: str,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray Data with 2 actors: the handle resolves on the cluster against the hub, the photo folder
    is uploaded with the job, and the Parquet file equals the local run's."""
    monkeypatch.setenv("MODHUB_ENDPOINT", hub.endpoint)
    local = predict(hub_image_handle, photos, tmp_path / "local.parquet", batch_size=5)
    job = submit_predict(
        hub_image_handle, photos, tmp_path / "cluster.parquet", cluster=ray_cluster.address,
        batch_size=5, workers=2,
    )  # fmt: skip
    logs = job.wait(timeout=180)
    assert "wrote 18 rows" in logs
    assert job.result()["rows"] == 18
    assert pq.read_table(tmp_path / "cluster.parquet").equals(pq.read_table(local.out))
    # Every process of the cluster (GCS, raylet, agents, workers, the job's driver) listens on and
    # talks to loopback only.
    import ipaddress

    sockets = ray_cluster.sockets()
    assert len(sockets) > 10
    outside = [s for s in sockets if not all(_loopback(ipaddress, a) for a in s)]
    assert not outside, outside


def _loopback(ipaddress: Any, address: str) -> bool:
    host, port = address.rsplit(":", 1)
    ip = ipaddress.ip_address(host)
    return bool(ip.is_loopback or (ip.is_unspecified and port == "0"))  # a listener's "remote" is 0.0.0.0:0


def test_ctrl_c_stops_the_job(ray_cluster: LocalCluster, text_module: Path, tmp_path: Path) -> None:
    """Ctrl-C in `modhub predict --cluster` stops the job on the cluster; nothing is written."""
    texts = tmp_path / "many.txt"
    texts.write_text("the cat sat on the mat\n" * 20000, encoding="utf-8")
    out = tmp_path / "never.parquet"
    cmd = [sys.executable, "-m", "modhub", "predict", str(text_module), str(texts), "--out", str(out),
           "--batch-size", "1", "--workers", "1", "--cluster", ray_cluster.address]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=serve_env())
    assert proc.stderr is not None
    seen = []
    while not (match := re.search(r"job (\S+) submitted", seen[-1] if seen else "")):
        seen.append(proc.stderr.readline())
        assert seen[-1], seen  # the command ended without submitting
    client = JobSubmissionClient(ray_cluster.address)
    deadline = time.monotonic() + 60
    while client.get_job_status(match.group(1)).value != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert client.get_job_status(match.group(1)).value == "STOPPED"
    assert not out.exists()
