"""tensorflow_hub's protocol on the hub: ?tf-hub-format=compressed at the handle URL.

The real tensorflow_hub client runs against a real hub in tests/compat; here the
archive, the redirects and the refusals are checked byte by byte in-process.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modhub.format.manifest import detect_formats, list_files, read_manifest
from modhub.server.models import Blob, TfHubArchive
from modhub.server.protocols.tfhub import build_archive
from modhub.server.storage import LocalBlobStorage
from tests.format.saved_models import write_saved_model
from tests.server.conftest import API, copy_module, error_code, publish, relist

TAR = "?tf-hub-format=compressed"


def with_saved_model(src: Path, dst: Path, inject: tuple[str, str] | None = None) -> Path:
    copy_module(src, dst)
    write_saved_model(dst / "saved_model", inject)
    (dst / "saved_model" / "assets").mkdir(exist_ok=True)
    (dst / "saved_model" / "assets" / "vocab.txt").write_text("a\nb\n")
    files = list_files(dst)
    return relist(dst, formats=detect_formats(f.path for f in files))


@pytest.fixture
def tf_module(feature_module: Path, tmp_path: Path) -> Path:
    return with_saved_model(feature_module, tmp_path / "with-sm")


@pytest.fixture
def tf_published(client: TestClient, token: str, tf_module: Path) -> str:
    response = publish(client, token, tf_module)
    assert response.status_code == 201, response.text
    return str(response.json()["handle"])


def members(body: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return tar.getmembers()


def test_archive_root_is_the_savedmodel_dirs_first_regular_files_fixed_metadata(
    client: TestClient, tf_published: str, tf_module: Path
) -> None:
    response = client.get(f"/{tf_published}{TAR}", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-type"] == "application/gzip"
    body = response.content
    assert body[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    infos = members(body)
    names = [m.name for m in infos]
    assert names == [
        ".",
        "./assets",
        "./assets/vocab.txt",
        "./saved_model.pb",
        "./variables",
        "./variables/variables.data-00000-of-00001",
        "./variables/variables.index",
    ]
    for info in infos:
        assert info.isdir() or info.isreg()
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.mode == (0o755 if info.isdir() else 0o644)
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for info in infos:
            if info.isreg():
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
                assert data == (tf_module / "saved_model" / info.name[2:]).read_bytes()


def test_archive_is_built_once_and_stored_as_a_blob(client: TestClient, tf_published: str) -> None:
    first = client.get(f"/{tf_published}{TAR}")
    hub = client.app.state.hub  # type: ignore[attr-defined]
    with hub.db.session() as session:
        (archive,) = session.query(TfHubArchive).all()
        assert session.get(Blob, archive.sha256) is not None
    blob_file = hub.storage.path_for(archive.sha256)
    stamp = blob_file.stat().st_mtime_ns
    second = client.get(f"/{tf_published}{TAR}")
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"] == f'"{archive.sha256}"'
    assert blob_file.stat().st_mtime_ns == stamp  # served from the stored blob, not rebuilt
    head = client.head(f"/{tf_published}{TAR}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(first.content))


def test_archive_bytes_depend_only_on_the_files(tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path / "blobs")
    files = []
    for path, data in (("variables/variables.index", b"i"), ("saved_model.pb", b"pb"), ("assets/x", b"x")):
        sha = storage.put_stream([data])
        files.append((path, sha, len(data)))
    a, b = io.BytesIO(), io.BytesIO()
    build_archive(storage, sorted(files), a)
    build_archive(storage, list(reversed(sorted(files))), b)
    assert a.getvalue() == b.getvalue()
    assert gzip.decompress(a.getvalue())  # a valid gzip stream


def test_unversioned_handle_redirects_to_the_concrete_version(
    client: TestClient, token: str, tf_published: str, tf_module: Path, tmp_path: Path
) -> None:
    response = client.get(f"/acme/tiny{TAR}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/acme/tiny/1?tf-hub-format=compressed"
    second = with_saved_model(tf_module, tmp_path / "v2")
    manifest = read_manifest(second)
    relist(second, metadata=manifest.metadata.model_copy(update={"description": "v2"}))
    assert publish(client, token, second).status_code == 201
    response = client.get(f"/acme/tiny{TAR}", follow_redirects=False)
    assert response.headers["location"] == "/acme/tiny/2?tf-hub-format=compressed"
    followed = client.get(f"/acme/tiny{TAR}")
    assert followed.status_code == 200 and members(followed.content)[0].name == "."


def test_uncompressed_and_unknown_formats_are_clear_4xx(client: TestClient, tf_published: str) -> None:
    response = client.get(f"/{tf_published}?tf-hub-format=uncompressed")
    assert response.status_code == 400
    assert "compressed" in response.json()["error"]["message"]
    assert "TFHUB_MODEL_LOAD_FORMAT" in response.json()["error"]["message"]
    response = client.get(f"/{tf_published}?tf-hub-format=zip")
    assert response.status_code == 400 and error_code(response) == "format_not_supported"
    assert client.get("/acme/tiny?tf-hub-format=uncompressed", follow_redirects=False).status_code == 400


def test_without_the_query_the_url_is_still_the_documentation_page(
    client: TestClient, tf_published: str
) -> None:
    page = client.get(f"/{tf_published}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "TensorFlow SavedModel" in page.text and "hub.KerasLayer(" in page.text
    as_json = client.get(f"/{tf_published}", headers={"Accept": "application/json"})
    assert as_json.json()["manifest"]["formats"] == ["pt2", "savedmodel"]


def test_module_without_a_savedmodel_and_unknown_handles_are_404(client: TestClient, published: str) -> None:
    response = client.get(f"/{published}{TAR}")
    assert response.status_code == 404 and error_code(response) == "format_not_available"
    assert "hub.load" in response.json()["error"]["message"]
    for path in (
        "/acme/nothing/1",
        "/acme/tiny/9",
        "/acme/tiny/0",
        "/acme/tiny/²",
        "/acme/Bad_Name/1",
        "/x/y",
    ):
        response = client.get(f"{path}{TAR}", follow_redirects=False)
        assert response.status_code == 404, path


def test_formats_reach_search_and_the_format_filter(client: TestClient, tf_published: str) -> None:
    found = client.get(f"{API}/modules", params={"format": "savedmodel"}).json()
    assert [m["handle"] for m in found["items"]] == ["acme/tiny"]
    assert found["items"][0]["formats"] == ["pt2", "savedmodel"]
    assert client.get(f"{API}/modules", params={"format": "tflite"}).json()["total"] == 0
    home = client.get("/", params={"format": "savedmodel"})
    assert "acme/tiny" in home.text


def test_publishing_a_hostile_savedmodel_is_refused(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    bad = with_saved_model(feature_module, tmp_path / "bad", inject=("ReadFile", "serving"))
    response = publish(client, token, bad)
    assert response.status_code == 422, response.text
    assert error_code(response) == "unsafe_module"
    message = response.json()["error"]["message"]
    assert "ReadFile" in message and "__inference_serving_11" in message
    assert client.get(f"{API}/modules/acme/tiny").status_code == 404


def test_a_plain_savedmodel_is_wrapped_published_and_served(
    client: TestClient, token: str, tmp_path: Path
) -> None:
    import modhub
    from modhub.errors import ManifestError
    from modhub.exporting.savedmodel import wrap_saved_model

    source = write_saved_model(tmp_path / "plain", features=8, size=32)
    module = wrap_saved_model(source, tmp_path / "module", task="image-feature-vector", license="MIT")
    manifest = read_manifest(module)
    assert (manifest.framework, manifest.torch_version, manifest.formats) == (
        "tensorflow",
        "",
        ("savedmodel",),
    )
    (images,) = manifest.default_signature.inputs
    assert (images.name, images.dtype, images.shape, images.layout) == (
        "images",
        "float32",
        ("batch", 32, 32, 3),
        "NHWC",
    )
    assert manifest.default_signature.outputs[0].shape == ("batch", 8)
    with pytest.raises(ManifestError, match="tensorflow_hub"):
        modhub.load(module)
    response = publish(client, token, module, repo="acme/plain")
    assert response.status_code == 201, response.text
    archive = client.get(f"/acme/plain/1{TAR}")
    assert archive.status_code == 200
    assert "./saved_model.pb" in [m.name for m in members(archive.content)]
    assert client.get(f"{API}/modules/acme/plain").json()["formats"] == ["savedmodel"]


def test_wrapping_refuses_what_the_hub_refuses(tmp_path: Path) -> None:
    from modhub.errors import UnsafeModuleError
    from modhub.exporting.savedmodel import wrap_saved_model

    source = write_saved_model(tmp_path / "evil", ("PyFunc", "serving"))
    with pytest.raises(UnsafeModuleError, match="PyFunc runs Python code"):
        wrap_saved_model(source, tmp_path / "module", task="image-feature-vector", license="MIT")
    assert not (tmp_path / "module").exists()
    text = write_saved_model(tmp_path / "text")
    from modhub.errors import ContractError

    with pytest.raises(ContractError, match="string"):
        wrap_saved_model(text, tmp_path / "t", task="text-embedding", license="MIT")


def test_cli_publish_of_a_savedmodel_needs_task_and_license(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    source = write_saved_model(tmp_path / "plain")
    result = CliRunner().invoke(app, ["publish", str(source), "acme/plain"])
    assert result.exit_code == 2
    assert "--task" in result.output and "--license" in result.output


def test_a_tensorflow_hub_fetch_counts_as_one_download(client: TestClient, tf_published: str) -> None:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    module = tf_published.rsplit("/", 1)[0]
    client.head(f"/{tf_published}{TAR}")  # not counted
    client.get(f"/{tf_published}{TAR}", headers={"Range": "bytes=10-"})  # a resumed fetch: not counted
    assert hub.downloads.pending == 0
    assert client.get(f"/{tf_published}{TAR}").status_code == 200
    redirect = client.get(f"/{module}{TAR}", follow_redirects=False)
    assert redirect.status_code == 303  # not a download itself: the fetch it leads to is
    assert hub.downloads.flush(hub.db) == 1
    assert client.get(f"{API}/modules/{module}").json()["downloads"] == 1
