"""Handles and names: one parser and one validator for client and server."""

from __future__ import annotations

from pathlib import Path

import pytest

from modhub.errors import InvalidHandle
from modhub.handles import Handle, fold_name, is_local, parse_handle, validate_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modhub/minilm-l6/1", Handle("modhub", "minilm-l6", 1)),
        ("modhub/minilm-l6", Handle("modhub", "minilm-l6", None)),
        (
            "http://127.0.0.1:8000/modhub/minilm-l6/3",
            Handle("modhub", "minilm-l6", 3, "http://127.0.0.1:8000"),
        ),
        (
            "https://hub.example/models/acme/x.y_z/12",
            Handle("acme", "x.y_z", 12, "https://hub.example/models"),
        ),
        ("http://hub.example/acme/net", Handle("acme", "net", None, "http://hub.example")),
    ],
)
def test_parse_handle(text: str, expected: Handle) -> None:
    assert parse_handle(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("justone", "expected publisher/name/version"),
        ("a/b/c/d", "expected publisher/name/version"),
        ("acme/net/0", "positive integers"),
        ("acme/net/01", "positive integers"),
        ("acme/net/v1", "positive integers"),
        ("Acme/net/1", "invalid publisher"),
        ("acme/-net/1", "invalid module name"),
        ("acme/ne t/1", "invalid module name"),
        ("acme/../1", "invalid module name"),
        ("api/net/1", "reserved"),
        ("http://hub.example/acme/net/1?x=1", "query"),
        ("http://hub.example/", "no publisher/name"),
    ],
)
def test_bad_handles_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidHandle, match=message):
        parse_handle(text)


@pytest.mark.parametrize("name", ["a", "efficientnet-lite0", "x.y_z", "a" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "a--b", "a..b", "A", "a" * 65, "a/b", "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidHandle):
        validate_name(name)


def test_lookalike_names_fold_together() -> None:
    assert fold_name("my_model") == fold_name("my-model") == fold_name("my.model")
    assert fold_name("resnet50") == fold_name("resnet5o")
    assert fold_name("vit-l16") == fold_name("vit-116")
    assert fold_name("bert") != fold_name("bart")


def test_local_paths_are_handles(tmp_path: Path) -> None:
    assert is_local(tmp_path)
    assert is_local(str(tmp_path))
    assert is_local("./module")
    assert not is_local("modhub/minilm-l6/1")
    assert not is_local("http://127.0.0.1:8000/modhub/minilm-l6/1")


def test_parse_version_takes_ascii_digits_only() -> None:
    import pytest

    from modhub.errors import InvalidHandle
    from modhub.handles import MAX_VERSION, is_version, parse_handle, parse_version

    assert parse_version("1") == 1 and parse_version(str(MAX_VERSION)) == MAX_VERSION
    assert parse_version(7) == 7
    for bad in ("²", "٣", "1_0", " 1", "+1", "1.0", "0", "01", "-1", "", str(MAX_VERSION + 1), "9" * 40):
        assert not is_version(bad)
        with pytest.raises(InvalidHandle, match="positive integers"):
            parse_version(bad)
    for bad_int in (0, -3, MAX_VERSION + 1, True):
        with pytest.raises(InvalidHandle):
            parse_version(bad_int)
    with pytest.raises(InvalidHandle):
        parse_handle("acme/tiny/²")
    with pytest.raises(InvalidHandle):
        parse_handle("http://hub.example/acme/tiny/٣")


def test_one_list_of_reserved_names() -> None:
    from modhub.handles import RESERVED_PUBLISHERS
    from modhub.server.web.routes import RESERVED

    assert RESERVED is RESERVED_PUBLISHERS


@pytest.mark.parametrize(
    ("url", "endpoint", "same"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/", True),
        ("HTTP://Hub.Example:80/prefix/", "http://hub.example/prefix", True),
        ("https://hub.example:443/api/v1/blobs/ab?x=1", "https://hub.example", True),
        ("http://hub.example/prefix/api/v1/modules", "http://hub.example/prefix", True),
        ("http://[::1]:8000/api", "http://[::1]:8000", True),
        # Another scheme, port, host or path prefix is another hub: its token stays home.
        ("https://hub.example", "http://hub.example", False),
        ("http://hub.example:8001", "http://hub.example:8000", False),
        ("http://hub.example.evil", "http://hub.example", False),
        ("http://hub.example@evil.test/", "http://hub.example", False),
        ("http://hub.example/prefixed", "http://hub.example/prefix", False),
        ("http://hub.example/other", "http://hub.example/prefix", False),
        ("https://bucket.s3.example/blob?X-Amz-Signature=1", "http://hub.example", False),
        ("http://hub.example:notaport/", "http://hub.example", False),
    ],
)
def test_same_hub(url: str, endpoint: str, same: bool) -> None:
    from modhub.handles import same_hub

    assert same_hub(url, endpoint) is same


def test_hub_key_is_canonical() -> None:
    from modhub.handles import hub_key

    assert hub_key("HTTP://Hub.Example:80/prefix/") == "http://hub.example/prefix"
    assert hub_key("https://hub.example:443") == "https://hub.example"
    assert hub_key("http://[::1]:8000") == "http://[::1]:8000"
    # The endpoint a handle URL names is the hub it was parsed from.
    assert hub_key(parse_handle("http://Hub.Example:80/models/acme/net/2").endpoint or "") == (
        "http://hub.example/models"
    )
