"""``modhub predict --cluster`` on the real Ray cluster (Ray Data): the same output as the local run
(whose own tests, which need no Ray, are in tests/predict/test_predict.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from ray.job_submission import JobSubmissionClient

from modhub.cluster import LocalCluster, submit_predict
from modhub.predict import predict
from tests.cluster.conftest import Hub
from tests.harness import serve_env


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
