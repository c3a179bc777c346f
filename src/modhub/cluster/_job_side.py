"""What the job side's commands share: where a job reads its inputs, and the CPUs it may ask for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modhub.errors import InputError

__all__ = ["check_cpus", "cluster_module", "cluster_path"]


def cluster_path(location: dict[str, Any], what: str) -> Path:
    """Where the job reads an input: inside the uploaded package, or a path of the cluster's own."""
    path = str(location["path"])
    if "://" in path:
        raise InputError(
            f"the {what} {path} is a URL; modhub jobs read {what}s from the cluster's filesystem for now: "
            "copy it to a shared filesystem the cluster mounts, or pass a local folder to upload"
        )
    resolved = Path.cwd() / path if location["where"] == "upload" else Path(path)
    if not resolved.exists():
        raise InputError(
            f"the {what} {path} does not exist on the cluster (node {os.uname().nodename}); pass a path "
            "the cluster can read (a shared filesystem), or a local one that is uploaded with the job",
            path=path,
        )
    return resolved


def cluster_module(location: dict[str, Any]) -> str | Path:
    """The module a job loads: a handle (resolved against the hub) or a directory it can read."""
    return location["path"] if location["where"] == "hub" else cluster_path(location, "module")


def check_cpus(workers: int, what: str) -> None:
    """Refuse ``workers`` the cluster cannot place (Ray would wait for them forever)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if workers > cpus:
        raise InputError(
            f"--workers {workers} needs {workers} CPUs for its {what}, but the cluster has {cpus}: "
            f"pass --workers {max(cpus, 1)} or fewer, or add nodes"
        )
