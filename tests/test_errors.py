"""The error tree and the hub's error codes: written once, answered by the server, raised by the client."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx
import pytest

import modhub
import modhub.errors as errors
from modhub.client.api import raise_for_status
from modhub.errors import (
    ERROR_CODES,
    HubError,
    HubHTTPError,
    InvalidModule,
    InvalidRequest,
    ModuleNotFound,
    RateLimited,
    TooLarge,
)

SRC = Path(modhub.__file__).parent
URL = "http://hub.test/api/v1/modules/acme/tiny/versions"
# Codes that do not deserve their own exception: the client handles 416 itself, and
# the rest say "the hub cannot do this" with a message for its operator.
UNTYPED = {"method_not_allowed", "range_not_satisfiable", "unavailable", "safety_unavailable", "blob_damaged"}


def _answer(status: int, code: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": "what to do"}} if code else {"detail": "what to do"}
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("POST", URL))


def _hub_errors() -> dict[str, type[HubError]]:
    return {
        name: obj
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, HubError) and obj.__module__ == errors.__name__
    }


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_code_raises_its_exception(code: str) -> None:
    entry = ERROR_CODES[code]
    status = entry.status or 418
    with pytest.raises(entry.error) as info:
        raise_for_status(_answer(status, code), handle="acme/tiny")
    error = info.value
    assert type(error) is entry.error
    assert (error.status, error.code, error.handle, error.url) == (status, code, "acme/tiny", URL)
    assert "what to do" in str(error)


def test_every_code_but_a_few_has_a_typed_exception() -> None:
    untyped = {code for code, entry in ERROR_CODES.items() if entry.error is HubHTTPError}
    assert untyped == UNTYPED | {"http_error"}
    for entry in ERROR_CODES.values():
        assert issubclass(entry.error, HubHTTPError | ModuleNotFound)


@pytest.mark.parametrize(
    ("code", "cls", "stdlib"),
    [
        ("invalid_manifest", InvalidModule, ValueError),
        ("contract_error", InvalidModule, ValueError),
        ("unsafe_module", InvalidModule, ValueError),
        ("integrity_error", InvalidModule, ValueError),
        ("too_large", TooLarge, OSError),
        ("invalid_name", InvalidRequest, ValueError),
        ("version_not_found", ModuleNotFound, LookupError),
    ],
)
def test_codes_are_caught_as_before_and_by_kind(
    code: str, cls: type[Exception], stdlib: type[Exception]
) -> None:
    status = ERROR_CODES[code].status or 418
    with pytest.raises(cls) as info:
        raise_for_status(_answer(status, code))
    assert isinstance(info.value, stdlib)
    # Every error from the hub is still a HubHTTPError, as before the codes were mapped
    # (ModuleNotFound stays a LookupError only, as it always was).
    assert isinstance(info.value, HubHTTPError) is (cls is not ModuleNotFound)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, ModuleNotFound), (413, TooLarge), (422, InvalidModule), (429, RateLimited), (503, HubHTTPError)],
)
def test_an_answer_without_a_known_code_is_mapped_by_status(status: int, cls: type[Exception]) -> None:
    for code in (None, "a_code_from_a_newer_hub"):
        with pytest.raises(cls) as info:
            raise_for_status(_answer(status, code))
        assert type(info.value) is cls


def test_rate_limited_says_when_to_retry() -> None:
    with pytest.raises(RateLimited) as info:
        raise_for_status(_answer(429, "rate_limited", {"Retry-After": "30"}))
    assert info.value.retry_after == 30.0
    with pytest.raises(RateLimited) as info:
        raise_for_status(_answer(429, "rate_limited", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert info.value.retry_after is None


def test_the_server_answers_every_code_with_its_status_and_the_client_raises_its_exception() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from modhub.server.errors import ApiError, install_handlers

    app = FastAPI()
    install_handlers(app)

    @app.get("/api/fail/{code}")
    def fail(code: str) -> None:
        raise ApiError(f"failed with {code}", code=code, status=None if code != "http_error" else 418)

    with TestClient(app) as client:
        for code, entry in ERROR_CODES.items():
            response = client.get(f"/api/fail/{code}")
            assert response.status_code == (entry.status or 418), code
            assert response.json() == {"error": {"code": code, "message": f"failed with {code}"}}
            with pytest.raises(entry.error):
                raise_for_status(response)


def test_the_server_refuses_a_code_missing_from_the_table() -> None:
    from modhub.server.errors import ApiError, NotFound

    with pytest.raises(KeyError, match="ERROR_CODES"):
        NotFound("no such thing", code="no_such_code")
    assert ApiError("x", code="http_error", status=418).status == 418


def _server_codes() -> set[str]:
    """Every code the server's source names: ``code="..."`` arguments, ``code = "..."`` class
    attributes, the ``code`` argument of ``_unauthorized`` and the routing handler's ``codes``.
    (A code built at run time, ``f"{what}_not_found"``, is checked by ApiError itself.)"""
    found: set[str] = set()

    def constants(value: ast.expr | None) -> list[ast.expr]:
        if isinstance(value, ast.Dict):
            return list(value.values)
        if isinstance(value, ast.Call):  # codes.get(status, "http_error")
            return list(value.args)
        return [value] if value is not None else []

    for path in (SRC / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "code":
                values += constants(node.value)
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign | ast.AnnAssign) and "code" in _names(stmt):
                        values += constants(stmt.value)
            elif isinstance(node, ast.Assign) and "codes" in _names(node):
                values += constants(node.value)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_unauthorized":
                values += node.args[1:]
            found.update(v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return found


def _names(stmt: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return {t.id for t in targets if isinstance(t, ast.Name)}


def test_every_code_the_server_sends_is_in_the_table() -> None:
    codes = _server_codes()
    assert {"invalid_manifest", "contract_error", "too_large", "token_expired", "http_error"} <= codes
    assert codes <= set(ERROR_CODES), codes - set(ERROR_CODES)


_TREE_LINE = re.compile(r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)(?: +\((?P<mixin>\w+)\))?")


def test_the_tree_in_the_docstring_is_the_classes() -> None:
    doc = errors.__doc__ or ""
    lines = doc[doc.index("    HubError\n") :].splitlines()
    parents: dict[int, str] = {0: "HubError"}
    drawn = {"HubError"}
    for line in lines[1:]:
        match = _TREE_LINE.match(line.strip("\n")[4:])
        if match is None:
            break
        depth = len(match["indent"]) // 5 + 1
        name = match["name"]
        cls = getattr(errors, name)
        parent = getattr(errors, parents[depth - 1])
        assert cls.__bases__[0] is parent, f"{name} is drawn under {parent.__name__}"
        mixins = [b.__name__ for b in cls.__bases__[1:]]
        assert mixins == ([match["mixin"]] if match["mixin"] else []), name
        parents[depth] = name
        drawn.add(name)
    assert drawn == set(_hub_errors())
    assert set(_hub_errors()) <= set(errors.__all__)


def test_every_hub_error_lives_in_errors_py() -> None:
    names = set(_hub_errors())
    elsewhere = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & names:
                    elsewhere.append(f"{path.relative_to(SRC)}: {node.name}")
    assert not elsewhere, f"define these in modhub/errors.py: {elsewhere}"
