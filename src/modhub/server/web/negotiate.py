"""Who is asking: a browser gets HTML, the modhub client (or anyone asking for JSON) gets JSON.

A handle's URL (``/publisher/name/version``) is both the module's documentation
page and, for programs, its machine answer, as on tfhub.dev.
"""

from __future__ import annotations

from starlette.requests import Request

from modhub.server.errors import ApiError, BadRequest

# The modhub client sends this header on every request (see client/api.py).
CLIENT_HEADER = "x-modhub-client"
# Caches must keep the HTML and JSON answers of one URL apart.
VARY = "Accept, User-Agent, X-Modhub-Client"
# tensorflow_hub asks for a module's tarball with ?tf-hub-format=compressed.
TF_HUB_FORMAT = "tf-hub-format"


def wants_json(request: Request) -> bool:
    """True for the modhub client and for requests that accept JSON but not HTML."""
    headers = request.headers
    if headers.get(CLIENT_HEADER):
        return True
    if headers.get("user-agent", "").lower().startswith("modhub/"):
        return True
    accept = headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


def tf_hub_format_error(request: Request) -> ApiError | None:
    """The error for a ``tf-hub-format`` request (not served yet), or None if none was asked."""
    if TF_HUB_FORMAT not in request.query_params:
        return None
    wanted = request.query_params.get(TF_HUB_FORMAT, "")
    if wanted == "compressed":
        return ApiError(
            "this hub does not serve TF Hub SavedModel tarballs (?tf-hub-format=compressed) yet: its modules "
            "are modhub modules. Load them with `import modhub as hub; hub.load(URL)` (pip install modhub).",
            code="format_not_supported",
            status=501,
        )
    return BadRequest(
        f"unknown tf-hub-format {wanted[:50]!r}: the only format tensorflow_hub asks for is 'compressed' "
        "(not served by this hub yet). Drop the parameter to get the module page."
    )
