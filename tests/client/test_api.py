"""raise_for_status maps hub errors to modhub exceptions; HubClient sends modhub's headers."""

from __future__ import annotations

import httpx
import pytest

from modhub.client.api import HubClient, client_headers, open_http_client, raise_for_status
from modhub.errors import (
    AuthenticationError,
    Conflict,
    HubError,
    HubHTTPError,
    ModuleNotFound,
    PermissionDenied,
)
from modhub.handles import Handle

URL = "http://hub.test/api/v1/modules/acme/tiny"


def _answer(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("GET", URL)
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(
    ("status", "cls", "base"),
    [
        (404, ModuleNotFound, LookupError),
        (401, AuthenticationError, OSError),
        (403, PermissionDenied, OSError),
        (409, Conflict, OSError),
        (422, HubHTTPError, OSError),
        (500, HubHTTPError, OSError),
    ],
)
def test_status_maps_to_exception(status: int, cls: type[Exception], base: type[Exception]) -> None:
    body = {"error": {"code": "some_code", "message": "do the thing differently"}}
    with pytest.raises(cls) as info:
        raise_for_status(_answer(status, body), handle="acme/tiny")
    error = info.value
    assert isinstance(error, HubError)
    assert isinstance(error, base)
    assert error.handle == "acme/tiny"
    assert error.url == URL
    assert error.status == status  # type: ignore[attr-defined]
    assert error.code == "some_code"  # type: ignore[attr-defined]
    assert "do the thing differently" in str(error)
    assert str(status) in str(error)


def test_success_is_silent() -> None:
    raise_for_status(_answer(200, {"ok": True}))
    raise_for_status(_answer(206, {"ok": True}))


def test_conflict_is_not_a_module_not_found() -> None:
    with pytest.raises(Conflict) as info:
        raise_for_status(_answer(409, {"error": {"code": "version_exists", "message": "bump it"}}))
    assert not isinstance(info.value, LookupError)


def test_non_json_error_body_gets_a_hint() -> None:
    with pytest.raises(ModuleNotFound) as info:
        raise_for_status(_answer(404, text="<html>Not Found</html>"))
    assert "MODHUB_ENDPOINT" in str(info.value)
    assert info.value.code is None  # type: ignore[attr-defined]


def test_auth_error_without_hub_message_says_how_to_get_a_token() -> None:
    with pytest.raises(AuthenticationError) as info:
        raise_for_status(_answer(401, {"detail": "Not authenticated"}))
    assert "MODHUB_TOKEN" in str(info.value)


def test_streamed_error_answer_is_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": {"code": "forbidden", "message": "wrong publisher"}})

    with open_http_client(transport=httpx.MockTransport(handler)) as http:
        hub = HubClient(http, "http://hub.test")
        with pytest.raises(PermissionDenied, match="wrong publisher"), hub.stream(URL):
            pass


def test_requests_carry_client_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "total": 0})

    with open_http_client(transport=httpx.MockTransport(handler), token="t0k") as http:
        page = HubClient(http, "http://hub.test/").search("cats", task="image-classification")
    assert page.total == 0
    request = seen[0]
    assert request.headers["user-agent"].startswith("modhub/")
    assert request.headers["x-modhub-client"] == client_headers()["X-Modhub-Client"]
    assert request.headers["authorization"] == "Bearer t0k"
    assert request.url.path == "/api/v1/modules"
    assert dict(request.url.params) == {
        "q": "cats",
        "task": "image-classification",
        "page": "1",
        "per_page": "20",
    }


def test_unreachable_hub_says_what_to_check() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        open_http_client(transport=httpx.MockTransport(handler)) as http,
        pytest.raises(HubHTTPError) as info,
    ):
        HubClient(http, "http://hub.test").version(Handle("acme", "tiny", 1))
    message = str(info.value)
    assert "MODHUB_ENDPOINT" in message and "MODHUB_OFFLINE" in message


def test_file_url_quotes_paths() -> None:
    with open_http_client() as http:
        hub = HubClient(http, "http://hub.test/prefix")
        url = hub.file_url(Handle("acme", "tiny", 3), "assets/my labels.txt")
    assert url == "http://hub.test/prefix/api/v1/modules/acme/tiny/versions/3/files/assets/my%20labels.txt"


def test_redirects_keep_the_token_only_at_the_hub() -> None:
    """The hub's token follows a redirect within the hub (however its URL is spelled) and
    never to another origin, such as an object store's presigned URL."""
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        if request.url.path.endswith("/files/model.onnx"):
            return httpx.Response(307, headers={"location": "/prefix/api/v1/blobs/abc"})
        if request.url.path.endswith("/blobs/abc"):
            return httpx.Response(307, headers={"location": "https://store.test/abc?X-Amz-Signature=s"})
        return httpx.Response(200, content=b"bytes")

    with open_http_client(transport=httpx.MockTransport(handler), token="t0k") as http:
        hub = HubClient(http, "HTTP://Hub.Test:80/prefix/")
        with hub.stream(hub.file_url(Handle("acme", "tiny", 1), "model.onnx")) as response:
            assert response.read() == b"bytes"
    assert [auth for _, auth in seen] == ["Bearer t0k", "Bearer t0k", None]
    assert seen[-1][0].startswith("https://store.test/")


def test_hub_error_codes_become_typed_exceptions() -> None:
    from modhub.errors import InvalidModule, TooLarge

    body = {"error": {"code": "contract_error", "message": "image-classification needs logits"}}
    with pytest.raises(InvalidModule, match="needs logits") as info:
        raise_for_status(_answer(422, body), handle="acme/tiny")
    assert isinstance(info.value, HubHTTPError) and isinstance(info.value, ValueError)
    assert (info.value.status, info.value.code) == (422, "contract_error")
    with pytest.raises(TooLarge):
        raise_for_status(_answer(413, {"error": {"code": "too_large", "message": "over 2 GiB"}}))
