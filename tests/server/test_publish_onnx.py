"""Publishing a module with model.onnx + model.onnx.data; an ONNX graph naming other files is refused."""

from __future__ import annotations

from pathlib import Path

import onnx
from fastapi.testclient import TestClient
from onnx import TensorProto

from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME
from modhub.server.config import ServerSettings
from tests.server.conftest import API, copy_module, error_code, publish, relist


def test_module_with_onnx_weights_publishes_and_downloads(
    client: TestClient, token: str, image_module: Path
) -> None:
    response = publish(client, token, image_module)
    assert response.status_code == 201, response.text
    module = client.get(f"{API}/modules/acme/tiny").json()
    assert module["formats"] == ["pt2", "onnx"]
    got = client.get(f"{API}/modules/acme/tiny/versions/1/files/{ONNX_DATA_NAME}")
    assert got.status_code == 200 and got.content == (image_module / ONNX_DATA_NAME).read_bytes()


def test_model_onnx_naming_another_file_is_refused(
    client: TestClient, token: str, image_module: Path, tmp_path: Path, settings: ServerSettings
) -> None:
    module = copy_module(image_module, tmp_path / "hostile")
    model = onnx.load(str(module / ONNX_NAME), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    (module / ONNX_NAME).write_bytes(model.SerializeToString())
    response = publish(client, token, relist(module))
    assert response.status_code == 422, response.text
    assert error_code(response) == "unsafe_module"
    message = response.json()["error"]["message"]
    assert "model.onnx is refused" in message and "only model.onnx.data" in message
    assert client.get(f"{API}/modules/acme/tiny").status_code == 404
    assert list(settings.staging_dir.glob("*")) == []
