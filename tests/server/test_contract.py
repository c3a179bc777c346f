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
    # 12 operations, plus PUT .../visibility (private modules) and GET /tasks (the task vocabulary).
    assert "Selected: 14/14" in summary and "Tested: 14" in summary, summary
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


# Names around every edge of the rule: lengths, ends, doubled separators, reserved words,
# a final newline (Python's "$" alone lets it through), non-ASCII look-alikes.
_EDGE_NAMES = [
    "a", "ab", "a" * 64, "a" * 65, "-a", "a-", ".a", "a.", "_a", "a_", "a-b", "a--b", "a..b", "a.-b",
    "a_b", "A", "aB", "a b", "a\n", "a\nb", "", "api", "apis", "api.x", "static", "robots.txt",
    "robots-txt", "\u0430pi", "a\u00e9", "9", "0-0", "x" * 63 + ".", "a/b",
]  # fmt: skip


def _node_matches(pattern: str, names: list[str]) -> list[bool]:
    """What an ECMA-262 engine (Node.js, as JSON Schema validators use) says of ``pattern``."""
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("no node (Debian package nodejs) to check the pattern's ECMA-262 meaning")
    script = "const [p, n] = JSON.parse(process.argv[1]); const r = new RegExp(p, 'u');" \
        "console.log(JSON.stringify(n.map((s) => r.test(s))));"  # fmt: skip
    out = subprocess.run(
        [node, "-e", script, json.dumps([pattern, names])], capture_output=True, text=True, check=True
    )
    return [bool(x) for x in json.loads(out.stdout)]


def test_the_spec_states_the_name_rule_the_routes_apply(client: object) -> None:
    """Every publisher and module name in the spec (paths, the token body) carries the pattern of
    handles.validate_name, and that pattern accepts exactly what validate_name accepts, in Python
    and in ECMA-262 (what schemathesis and other JSON Schema tools read)."""
    import re

    from fastapi.testclient import TestClient

    from modhub.errors import InvalidHandle
    from modhub.handles import validate_name

    assert isinstance(client, TestClient)
    spec = client.get("/api/v1/openapi.json").json()
    schemas: dict[str, list[dict[str, object]]] = {"publisher": [], "name": []}
    for item in spec["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["name"] in schemas:
                    schemas[param["name"]].append(param["schema"])
    token_body = spec["components"]["schemas"]["TokenCreate"]["properties"]["publishers"]["items"]
    schemas["publisher"].append(token_body)
    assert len(schemas["publisher"]) >= 8 and len(schemas["name"]) >= 6

    def accepted(name: str, what: str) -> bool:
        try:
            validate_name(name, what)
        except InvalidHandle:
            return False
        return True

    for what, found in schemas.items():
        patterns = {str(schema["pattern"]) for schema in found}
        assert len(patterns) == 1, patterns  # one rule, stated the same way everywhere
        pattern = patterns.pop()
        expected = [accepted(n, f"{what} name") for n in _EDGE_NAMES]
        assert [re.fullmatch(pattern, n) is not None for n in _EDGE_NAMES] == expected
        assert [re.search(pattern, n) is not None for n in _EDGE_NAMES] == expected
        assert _node_matches(pattern, _EDGE_NAMES) == expected
    assert spec["components"]["schemas"]["TokenCreate"]["properties"]["publishers"]["maxItems"] == 100


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"publishers": ["acme"]}, 201),
        ({"publishers": ["acme", "acme"]}, 201),
        ({"publishers": ["api"]}, 400),
        ({"publishers": ["a--b"]}, 400),
        ({"publishers": ["acme\n"]}, 400),
        ({"admin": True, "scope": "read"}, 400),
    ],
)
def test_the_token_route_accepts_what_its_schema_accepts(
    client: object, body: dict[str, object], status: int
) -> None:
    """Each body is valid for the spec exactly when the route does not refuse it as malformed."""
    from fastapi.testclient import TestClient
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

    from tests.server.conftest import new_token

    assert isinstance(client, TestClient)
    spec = client.get("/api/v1/openapi.json").json()
    schema = {**spec["components"]["schemas"]["TokenCreate"], "components": spec["components"]}
    try:
        Draft202012Validator(schema).validate(body)
        valid = True
    except ValidationError:
        valid = False
    admin = new_token(client, admin=True)
    response = client.post("/api/v1/tokens", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == status, response.text
    assert valid == (status != 400)
