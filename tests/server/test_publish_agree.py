"""The hub refuses a module whose formats compute different outputs (422 formats_disagree)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import modhub as hub
from modhub.client.api import raise_for_status
from modhub.errors import InvalidModule
from modhub.server.config import ServerSettings
from tests.loading.test_agree import zeroed_onnx
from tests.server.conftest import API, error_code, publish


def test_a_model_onnx_that_returns_zeros_is_refused_with_both_outputs(
    client: TestClient, token: str, image_module: Path, tmp_path: Path, settings: ServerSettings
) -> None:
    hostile = zeroed_onnx(image_module, tmp_path / "zero")
    assert hub.load(hostile, runtime="onnx")(_photo()).max() == 0  # every other check passes
    response = publish(client, token, hostile)
    assert response.status_code == 422, response.text
    assert error_code(response) == "formats_disagree"
    message = response.json()["error"]["message"]
    assert "output 0: max abs difference" in message
    assert "torch: float32[2, 5] mean" in message and "onnx: float32[2, 5] mean 0 first" in message
    with pytest.raises(InvalidModule) as raised:  # the client's exception for the code
        raise_for_status(response)
    assert raised.value.code == "formats_disagree"
    assert client.get(f"{API}/modules/acme/tiny").status_code == 404
    assert list(settings.staging_dir.glob("*")) == []


def _photo() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 30, 200)).save(out, format="PNG")
    return out.getvalue()


def test_a_tokenizer_with_a_catastrophic_regex_is_refused_at_publish(
    client: TestClient, token: str, text_module: Path, tmp_path: Path
) -> None:
    from tests.runtimes.test_input_bombs import _tokenizer_json, _with_file

    hostile = _with_file(
        text_module, tmp_path / "m", "assets/tokenizer.json", _tokenizer_json(tmp_path, "(a+)+$")
    )
    response = publish(client, token, hostile)
    assert response.status_code == 422, response.text
    assert error_code(response) == "unsafe_module"
    assert "assets/tokenizer.json: the regex '(a+)+$' could take exponential time" in response.text
