"""Who is asking: a browser gets HTML, the modhub client (or anyone asking for JSON) gets JSON.

A handle's URL (``/publisher/name/version``) is both the module's documentation
page and, for programs, its machine answer, as on tfhub.dev.
"""

from __future__ import annotations

from starlette.requests import Request

# The modhub client sends this header on every request (see client/api.py).
CLIENT_HEADER = "x-modhub-client"
# Caches must keep the HTML and JSON answers of one URL apart.
VARY = "Accept, User-Agent, X-Modhub-Client"


def wants_json(request: Request) -> bool:
    """True for the modhub client and for requests that accept JSON but not HTML."""
    headers = request.headers
    if headers.get(CLIENT_HEADER):
        return True
    if headers.get("user-agent", "").lower().startswith("modhub/"):
        return True
    accept = headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept
