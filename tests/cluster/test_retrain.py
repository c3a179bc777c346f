"""Retraining as a job on the real Ray cluster: publish from the cluster, --out, Ray Train workers,
and the errors a user meets (unreachable cluster, failed job, missing module or data, versions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray.job_submission import JobSubmissionClient

import modhub
from modhub.cluster import ClusterError, JobFailed, LocalCluster, submit_predict, submit_retrain
from modhub.cluster.jobs import submit
from modhub.errors import InputError, ModuleNotFound
from modhub.format.verify import verify_module
from modhub.retrain import TrainConfig
from modhub.settings import Settings
from tests.cluster.conftest import Hub
from tests.harness import free_port, serve_env


@pytest.fixture(scope="module")
def features_handle(hub: Hub, features_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    from modhub.client.publish import publish

    settings = Settings(endpoint=hub.endpoint, token=hub.token, cache=tmp_path_factory.mktemp("pub"))
    return publish(features_dir, "acme/tiny-features", settings=settings)


def _settings(hub: Hub, tmp_path: Path, token: str | None = None) -> Settings:
    return Settings(endpoint=hub.endpoint, token=token, cache=tmp_path / "client-cache", progress=False)


def test_retrain_on_cluster_publish_out_and_workers(
    ray_cluster: LocalCluster,
    hub: Hub,
    features_handle: str,
    text_module: Path,
    photos: Path,
    topics_csv: Path,
    tmp_path: Path,
) -> None:
    """Two retraining jobs side by side on the cluster.

    Images (Python API): the handle resolves on the cluster, the photos are uploaded, the module is
    published from there with a token that appears nowhere. Text (CLI): `--fine-tune --workers 2`
    runs on Ray Train, its log streams to the terminal, the module lands in --out.
    """
    job = submit_retrain(
        "images",
        photos,
        features_handle,
        cluster=ray_cluster.address,
        publish="acme/colours",
        config=TrainConfig(epochs=15, lr=0.05),
        settings=_settings(hub, tmp_path, token=hub.token),
    )
    out = tmp_path / "topics-module"
    cmd = [
        sys.executable, "-m", "modhub", "retrain", "text", str(topics_csv), "-m", str(text_module),
        "--out", str(out), "--text-column", "sentence", "--label-column", "topic", "--epochs", "10",
        "--lr", "0.05", "--fine-tune", "--fine-tune-epochs", "1", "--workers", "2",
        "--cluster", ray_cluster.address,
    ]  # fmt: skip
    # The CLI's output goes to files: a full pipe would hold it up while this test follows the job.
    with open(tmp_path / "cli.out", "w") as fout, open(tmp_path / "cli.err", "w") as ferr:
        cli = subprocess.Popen(cmd, stdout=fout, stderr=ferr, text=True, env=serve_env())
    streamed: list[str] = []
    try:
        job.wait(echo=streamed.append, timeout=240)
        cli.wait(timeout=300)
    finally:
        cli.kill()
    stdout, stderr = (tmp_path / "cli.out").read_text(), (tmp_path / "cli.err").read_text()
    result = job.result()
    assert result["published"] == "acme/colours/1"
    assert result["report"]["validation"]["accuracy"] >= 2 / 3
    assert "100%|" in "".join(streamed)  # the progress bars were streamed
    # The published module loads from the hub here and classifies.
    settings = _settings(hub, tmp_path)
    module = modhub.load("acme/colours/1", settings=settings)
    assert module.labels == ["blue", "green", "red"]
    # The token is nowhere: not in the log, the job's record, nor any file of the cluster's.
    info = JobSubmissionClient(ray_cluster.address).get_job_info(job.job_id)
    assert hub.token not in job.logs()
    assert hub.token not in repr(info)
    found = [p for p in ray_cluster.temp_dir.rglob("*") if p.is_file() and hub.token.encode() in _read(p)]
    assert not found, found

    assert cli.returncode == 0, stdout + stderr
    assert "fine-tune epoch 1/1" in stderr  # Ray Train's workers, streamed
    assert f"module written to {out}" in stdout
    verify_module(out)
    import json

    report = json.loads((out / "assets" / "report" / "metrics.json").read_text())
    assert report["distributed"]["workers"] == 2
    assert [e["stage"] for e in report["history"]["epochs"]][-1:] == ["fine-tune"]
    assert modhub.load(out)(["the cat sat on the mat"]).shape == (1, 2)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_unreachable_cluster(tmp_path: Path, photos: Path) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ClusterError, match=r"cannot reach the Ray cluster at .*Is it running"):
        submit_retrain("images", photos, "acme/x/1", cluster=address, out=tmp_path / "o")


def test_ray_version_mismatch(ray_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "__version__", "2.0.0")
    with pytest.raises(
        ClusterError, match=r"Ray versions differ: this machine has Ray 2\.0\.0.*runs Ray 2\.60"
    ):
        submit(ray_cluster.address, "predict", {})


def test_cluster_side_errors(
    ray_cluster: LocalCluster,
    hub: Hub,
    features_handle: str,
    text_module: Path,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The errors the cluster side raises, from jobs submitted at once (they run side by side):
    a modhub version mismatch, a module or data missing on the cluster, more workers than CPUs,
    and a job that fails (its last log lines shown)."""
    settings = _settings(hub, tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(modhub, "__version__", "0.0.1")
        other_version = submit(ray_cluster.address, "predict", {})
    missing_module = submit_retrain(
        "images", photos, "acme/no-such-module/1", cluster=ray_cluster.address, out=tmp_path / "a",
        settings=settings,
    )  # fmt: skip
    missing_data = submit_retrain(
        "images", "/nonexistent/photos", features_handle, cluster=ray_cluster.address, out=tmp_path / "b",
        settings=settings,
    )  # fmt: skip
    texts = tmp_path / "t.txt"
    texts.write_text("a cat\nred car\n", encoding="utf-8")
    too_many = submit_predict(
        text_module, texts, tmp_path / "o.parquet", cluster=ray_cluster.address, workers=3
    )
    failing = submit(ray_cluster.address, "predict", {}, python=os.path.join(os.sep, "no", "such", "python"))

    with pytest.raises(ClusterError, match=r"modhub versions differ: the client has modhub 0\.0\.1"):
        other_version.wait(timeout=120)
    with pytest.raises(ModuleNotFound, match="on the cluster"):
        missing_module.wait(timeout=120)
    with pytest.raises(InputError, match="/nonexistent/photos does not exist on the cluster"):
        missing_data.wait(timeout=120)
    with pytest.raises(InputError, match=r"--workers 3 needs 3 CPUs .* the cluster has 2"):
        too_many.wait(timeout=120)
    with pytest.raises(JobFailed, match=r"failed.*the last lines of its log") as caught:
        failing.wait(timeout=60)
    assert any("/no/such/python" in line for line in caught.value.last_lines)
    assert not any((tmp_path / name).exists() for name in ("a", "b", "o.parquet"))


def test_local_retrain_publishes_and_workers_need_a_cluster(
    hub: Hub, features_dir: Path, photos: Path, tmp_path: Path
) -> None:
    """Without --cluster, --publish publishes the local result; --workers alone asks for --cluster."""
    env = {**serve_env(), "MODHUB_ENDPOINT": hub.endpoint, "MODHUB_TOKEN": hub.token,
           "MODHUB_CACHE": str(tmp_path / "cache")}  # fmt: skip
    base = [sys.executable, "-m", "modhub", "retrain", "images", str(photos), "-m", str(features_dir)]
    run = subprocess.run(
        [*base, "--epochs", "3", "--publish", "acme/local-colours", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "published acme/local-colours/1" in run.stdout
    assert hub.token not in run.stdout + run.stderr
    from typer.testing import CliRunner

    from modhub.cli import app

    refused = CliRunner().invoke(
        app, [*base[3:], "--out", str(tmp_path / "x"), "--fine-tune", "--workers", "2"]
    )
    assert refused.exit_code == 1 and "add --cluster http://HOST:8265" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_addresses_and_not_a_dashboard(hub: Hub) -> None:
    from modhub.cluster.jobs import check_cluster, normalise_address

    assert normalise_address("head.example:8265/") == "http://head.example:8265"
    with pytest.raises(ClusterError, match=r"Ray Client address.*dashboard.s HTTP address"):
        normalise_address("ray://head:10001")
    with pytest.raises(ClusterError, match="is not a Ray dashboard"):
        check_cluster(hub.endpoint)  # a modhub hub answers, but it is no Ray cluster
