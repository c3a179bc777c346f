"""The API contract: schemathesis (--checks all, a valid token, stateful links) against a real hub.

A bounded run (about 600 generated cases, ~30-60 s); bench/bench_contract.py runs a longer one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

from tests.server.contract import contract_run


def test_schemathesis_finds_no_failures(feature_module: Path, tmp_path: Path) -> None:
    result = contract_run(tmp_path, feature_module, max_examples=20, timeout=300)
    summary = result.output[-3000:]
    assert result.returncode == 0, result.output[-20000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated is not None, summary
    # The run really exercised the API (every operation, hundreds of cases) and all passed.
    assert int(generated.group(1)) >= 300 and generated.group(1) == generated.group(2), summary
    assert "Selected: 13/13" in summary and "Tested: 13" in summary, summary
    assert "✅ Stateful" in summary, summary


def test_the_spec_documents_the_error_body_everywhere(client: object) -> None:
    from fastapi.testclient import TestClient

    assert isinstance(client, TestClient)
    spec = client.get("/api/v1/openapi.json").json()
    assert "HTTPValidationError" not in str(spec)
    assert spec["components"]["schemas"]["ErrorBody"]["properties"]["error"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
            if path.endswith("/health"):
                continue
            assert errors, (method, path)
            for code in errors:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
