"""Running modhub on a Ray cluster: retraining as a job, batch prediction on Ray Data,
fine-tuning on Ray Train.

    from modhub.cluster import submit_predict, submit_retrain
    job = submit_predict("modhub/minilm-l6/1", "texts.txt", "/shared/out.parquet",
                         cluster="http://HOST:8265")
    job.wait(echo=print)     # streams the job's log; raises the job's error if it failed

The cluster is any Ray cluster with the same Ray and modhub versions as this
machine (``pip install 'modhub[cluster]'`` on both): ``ray start --head`` on a
VM, KubeRay on Kubernetes, or Ray on Azure ML. ``LocalCluster`` starts one here.
See docs/cluster.md.
"""

from __future__ import annotations

from modhub.cluster.batch import submit_predict
from modhub.cluster.jobs import ClusterJob, check_cluster
from modhub.cluster.local import LocalCluster
from modhub.cluster.retrain_job import submit_retrain
from modhub.errors import ClusterError, JobFailed

__all__ = [
    "ClusterError",
    "ClusterJob",
    "JobFailed",
    "LocalCluster",
    "check_cluster",
    "submit_predict",
    "submit_retrain",
]
