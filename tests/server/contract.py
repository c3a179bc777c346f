"""Run schemathesis against a real hub on loopback (shared by the test suite and bench/).

``contract_run(work, module_dir, max_examples=..)`` starts ``modhub serve`` on a
fresh data directory, publishes ``module_dir`` as ``acme/tiny`` so that the
read operations have something to find, creates a publish token for ``acme``,
and runs ``schemathesis run --checks all`` (examples, coverage, fuzzing and
stateful phases, OpenAPI links included) with that token. It returns the exit
code and the output.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.harness import admin_cli, running_hub, serve_env

# The schemathesis token's id: far from the small ids fuzzing tries first, so that
# DELETE /tokens/{id} with a generated id never revokes the token the run depends on.
TOKEN_ID = 1_900_000_000


@dataclass
class ContractResult:
    returncode: int
    output: str


def _move_token(data_dir: Path, token_id: int) -> None:
    engine = create_engine(f"sqlite:///{data_dir / 'modhub.db'}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tokens SET id = :new WHERE id = (SELECT max(id) FROM tokens)"), {"new": token_id}
        )
    engine.dispose()


def contract_run(
    work: Path,
    module_dir: Path,
    *,
    max_examples: int,
    phases: str = "examples,coverage,fuzzing,stateful",
    seed: int = 1,
    extra: tuple[str, ...] = (),
    timeout: float = 600,
) -> ContractResult:
    data_dir = work / "data"
    with running_hub(data_dir, env={"MODHUB_SERVER_AUTH_FAILURE_LIMIT": "1000000"}) as hub:
        token = admin_cli(data_dir, "--publisher", "acme", "--name", "schemathesis")
        _move_token(data_dir, TOKEN_ID)
        publish = [sys.executable, "-m", "modhub", "publish", str(module_dir), "acme/tiny"]
        env = {**serve_env(), "MODHUB_ENDPOINT": hub.url, "MODHUB_TOKEN": token}
        subprocess.run(publish, env=env, check=True, capture_output=True, timeout=120)
        assert httpx.get(f"{hub.url}/api/v1/modules/acme/tiny").status_code == 200
        cmd = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{hub.url}/api/v1/openapi.json",
            "--checks",
            "all",
            "--phases",
            phases,
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--workers",
            "1",
            "--no-color",
            "-H",
            f"Authorization: Bearer {token}",
            *extra,
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=serve_env(), cwd=work, check=False
        )
        return ContractResult(result.returncode, result.stdout + result.stderr)
