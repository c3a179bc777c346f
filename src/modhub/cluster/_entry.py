"""The job side: ``python -m modhub.cluster._entry spec.json``, run by the cluster in the job's directory.

It reads (and deletes) the hub token, checks that the cluster's modhub and Ray
are the client's, then runs the command. A modhub error is printed as one
``modhub-job-error: {json}`` line (the client raises the same class) and the
job exits 1; the result is printed as one ``modhub-job-result: {json}`` line.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from modhub.cluster.jobs import ERROR_MARKER, RESULT_MARKER, SPEC_FORMAT, TOKEN_FILE
from modhub.errors import ClusterError, HubError


def _read_token(spec: dict[str, Any]) -> str | None:
    secret = Path.cwd() / TOKEN_FILE
    if not spec.get("publish_token"):
        return None
    try:
        token = secret.read_text(encoding="utf-8").strip()
    finally:
        # Read once, then gone from the job's directory; it is never printed.
        secret.unlink(missing_ok=True)
    return token or None


def _check_versions(spec: dict[str, Any]) -> None:
    import ray

    from modhub import __version__

    if spec.get("format") != SPEC_FORMAT:
        raise ClusterError(
            f"this cluster's modhub {__version__} reads job spec format {SPEC_FORMAT}, the client "
            f"sent {spec.get('format')}: install the same modhub version on both"
        )
    theirs, ours = spec.get("modhub_version"), __version__
    if theirs != ours:
        raise ClusterError(
            f"modhub versions differ: the client has modhub {theirs}, the cluster has {ours}. Install the "
            f"same version on both (on the cluster: pip install 'modhub[cluster]=={theirs}')"
        )
    if spec.get("ray_version") != ray.__version__:
        raise ClusterError(
            f"Ray versions differ: the client has Ray {spec.get('ray_version')}, "
            f"the cluster {ray.__version__}"
        )


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from modhub.settings import Settings

    token = _read_token(spec)
    _check_versions(spec)
    overrides: dict[str, Any] = {"progress": True}
    if spec.get("endpoint"):
        overrides["endpoint"] = spec["endpoint"]
    if token is not None:
        overrides["token"] = token
    settings = Settings(**overrides)
    command, args = spec["command"], spec["args"]
    if command == "retrain":
        from modhub.cluster.retrain_job import run_retrain

        return run_retrain(args, settings)
    if command == "predict":
        from modhub.cluster.batch import run_predict_job

        return run_predict_job(args, settings)
    raise ClusterError(f"unknown job command {command!r}: install the same modhub version on both sides")


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1] if len(argv) > 1 else "spec.json")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        result = run(spec)
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        line = json.dumps({"type": type(exc).__name__, "message": str(exc)})
        print(f"{ERROR_MARKER}{line}", flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    print(f"{RESULT_MARKER}{json.dumps(result, sort_keys=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
