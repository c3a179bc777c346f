"""The "try it" panel's files: its scripts, its sample photos and the browser runtime it runs on.

The panel on a module page runs the module's ``model.onnx`` in the visitor's browser with
onnxruntime-web (WASM) and tokenises text with @huggingface/tokenizers. The hub serves those
files itself, from a pinned npm install (``package.json`` + ``package-lock.json``; ``make web``),
never from a CDN, so the page works with no internet. Only the few files the panel loads are
served (onnxruntime-web's dist folder is 136 MB), each from an allow-list, under a URL that
carries the package's version (``/static/vendor/onnxruntime-web@1.30.0/ort.wasm.min.mjs``), so
they can be cached for a year.

Where the files are: ``MODHUB_SERVER_WEB_RUNTIME_DIR`` (a ``node_modules`` directory), else the
``node_modules`` of the source checkout the hub runs from. A hub without them (a pip install)
shows no panel; the module page says how to add it (:data:`MISSING_HINT`).

    /static/tryit/<file>.js                       the panel's ES modules (static/tryit/)
    /static/tryit/samples/<name>.jpg              sample photos (scikit-image's data, when installed)
    /static/tryit/samples/<name>.wav              sample sounds (server/web/samples.py)
    /static/vendor/<package>@<version>/<file>     the runtime's allow-listed files
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from modhub.server.config import ServerSettings
from modhub.server.deps import get_hub
from modhub.server.web.render import environment

__all__ = [
    "MAX_DOWNLOAD_BYTES",
    "MISSING_HINT",
    "SAMPLE_PHOTOS",
    "TRYIT_CSP",
    "WebRuntime",
    "find_runtime",
    "router",
    "task_files",
    "tryit_csp",
]

TRYIT_DIR = Path(__file__).parent / "static" / "tryit"
# The source checkout's root, when modhub runs from one (src/modhub/server/web/vendor.py).
_CHECKOUT = Path(__file__).resolve().parents[4]
# The panel refuses modules whose files to download (graph, weights, labels, tokenizer) add up
# to more than this: a visitor's browser tab would fetch and hold them all in memory. MiniLM-L6
# (90 MB) fits; larger modules say so and point to Python instead.
MAX_DOWNLOAD_BYTES = 120 * 2**20
MISSING_HINT = (
    'this hub does not serve the browser runtime (onnxruntime-web). To add it, run "make web" '
    "(npm ci) in the modhub source checkout the hub runs from, or install modhub's package-lock.json "
    "with npm ci elsewhere and set MODHUB_SERVER_WEB_RUNTIME_DIR to that node_modules directory."
)
# The module page's policy when the panel is shown: the site's own (render.CSP) plus WebAssembly
# compilation (onnxruntime-web) and blob: images (the visitor's own photo, drawn results).
TRYIT_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' https: data: blob:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_YEAR = "public, max-age=31536000, immutable"
_JS = "text/javascript; charset=utf-8"


def tryit_csp(settings: ServerSettings) -> str:
    """TRYIT_CSP, plus the object store's origin when file downloads redirect there (presigned URLs).

    The panel fetches module files with ``fetch``; an S3 hub answers them 307 to the object store,
    which must then allow the hub's origin in its CORS rules (docs/web.md).
    """
    if not (settings.blob_url or "").startswith("s3://") or settings.s3_presign_seconds == 0:
        return TRYIT_CSP
    endpoint = settings.s3_public_endpoint or settings.s3_endpoint
    if endpoint:
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
    else:
        origin = "https://*.amazonaws.com"
    return f"{TRYIT_CSP}; connect-src 'self' {origin}"


@dataclass(frozen=True)
class _Package:
    npm: str  # the npm package name (its folder under node_modules)
    files: dict[str, tuple[str, str]]  # served name -> (path in the package, media type)


# Everything the browser may fetch from node_modules: ort.wasm.min.mjs is onnxruntime-web's
# WASM-only build; it loads the two ort-wasm-simd-threaded files from ort.env.wasm.wasmPaths.
PACKAGES: dict[str, _Package] = {
    "onnxruntime-web": _Package(
        "onnxruntime-web",
        {
            "ort.wasm.min.mjs": ("dist/ort.wasm.min.mjs", _JS),
            "ort-wasm-simd-threaded.mjs": ("dist/ort-wasm-simd-threaded.mjs", _JS),
            "ort-wasm-simd-threaded.wasm": ("dist/ort-wasm-simd-threaded.wasm", "application/wasm"),
        },
    ),
    "tokenizers": _Package(
        "@huggingface/tokenizers", {"tokenizers.min.mjs": ("dist/tokenizers.min.mjs", _JS)}
    ),
}

# Sample photos of the image tasks: scikit-image's sample data (public domain / CC0), made at
# serve time when scikit-image is installed (never stored in the repository).
SAMPLE_PHOTOS: dict[str, str] = {
    "chelsea": "Chelsea the cat",
    "coffee": "A cup of coffee",
    "astronaut": "An astronaut",
    "immunohistochemistry": "Stained tissue",  # the style picture of style transfer
}


@dataclass(frozen=True)
class WebRuntime:
    """The browser runtime found in a node_modules directory."""

    root: Path
    versions: dict[str, str]  # short package name (PACKAGES) -> installed version

    def url(self, package: str, filename: str = "") -> str:
        return f"/static/vendor/{package}@{self.versions[package]}/{filename}"

    def path(self, package: str, filename: str) -> Path:
        return self.root / PACKAGES[package].npm / PACKAGES[package].files[filename][0]


def _default_root() -> Path | None:
    root = _CHECKOUT / "node_modules"
    is_checkout = (_CHECKOUT / "package.json").is_file() and (_CHECKOUT / "src" / "modhub").is_dir()
    return root if is_checkout and root.is_dir() else None


def find_runtime(settings: ServerSettings) -> WebRuntime | None:
    """The runtime of ``settings.web_runtime_dir`` (else the checkout's), None when incomplete."""
    root = settings.web_runtime_dir if settings.web_runtime_dir is not None else _default_root()
    return None if root is None else _runtime_at(root.resolve())


@cache
def _runtime_at(root: Path) -> WebRuntime | None:
    versions = {}
    for short, package in PACKAGES.items():
        folder = root / package.npm
        try:
            version = json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(version, str) or not re.fullmatch(r"[0-9A-Za-z.+-]{1,40}", version):
            return None
        if not all((folder / path).is_file() for path, _ in package.files.values()):
            return None
        versions[short] = version
    return WebRuntime(root=root, versions=versions)


@cache
def _tryit_files() -> dict[str, Path]:
    return {p.name: p for p in sorted(TRYIT_DIR.glob("*.js")) if re.fullmatch(r"[a-z][a-z0-9-]*\.js", p.name)}


def task_files() -> list[str]:
    """The panel's task scripts present (core.js imports these)."""
    return [name for name in _tryit_files() if name.startswith("tasks-")]


@cache
def _sample_photo(name: str) -> bytes | None:
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return None
    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def sample_photos_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
        import skimage.data  # noqa: F401
    except ImportError:
        return False
    return True


router = APIRouter(include_in_schema=False)
environment().globals["tryit_missing_hint"] = MISSING_HINT


def _not_found() -> Response:
    return Response("not found\n", status_code=404, media_type="text/plain")


@router.api_route("/static/tryit/{filename}", methods=["GET", "HEAD"])
def tryit_script(filename: str) -> Response:
    path = _tryit_files().get(filename)
    if path is None:
        return _not_found()
    return FileResponse(
        path,
        media_type=_JS,
        # Revalidated on every use (ETag): the scripts import each other by their plain names, so
        # their URLs carry no version that a change would bump.
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.api_route("/static/tryit/samples/{filename}", methods=["GET", "HEAD"])
def sample_photo(filename: str) -> Response:
    name = filename.removesuffix(".jpg")
    body = _sample_photo(name) if name in SAMPLE_PHOTOS and filename.endswith(".jpg") else None
    media_type = "image/jpeg"
    if filename.endswith(".wav"):  # the audio tasks' sample sounds (server/web/samples.py)
        from modhub.server.web.samples import SAMPLE_SOUNDS, sample_sound

        sound = filename.removesuffix(".wav")
        body, media_type = (sample_sound(sound) if sound in SAMPLE_SOUNDS else None), "audio/wav"
    if body is None:
        return _not_found()
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.api_route("/static/vendor/{package}/{filename}", methods=["GET", "HEAD"])
def vendor_file(package: str, filename: str, request: Request) -> Response:
    runtime = find_runtime(get_hub(request).settings)
    short, _, version = package.partition("@")
    # Names are looked up in the allow-list, never joined into a path as given.
    if (
        runtime is None
        or short not in PACKAGES
        or runtime.versions.get(short) != version
        or filename not in PACKAGES[short].files
    ):
        return _not_found()
    return FileResponse(
        runtime.path(short, filename),
        media_type=PACKAGES[short].files[filename][1],
        headers={"Cache-Control": _YEAR, "X-Content-Type-Options": "nosniff"},
    )
