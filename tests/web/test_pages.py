"""The website over HTTP against a real hub: pages, content negotiation, 404s, odd query strings."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from tests.web.conftest import WebHub


def titles(html: str) -> list[str]:
    """The handles of the module cards on a listing page, in order."""
    found = re.findall(r'class="card-title" href="/([^"]+)"', html)
    return found


def get(http: httpx.Client, url: str, status: int = 200) -> str:
    response = http.get(url)
    assert response.status_code == status, (url, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


# --- home: search, filters, sort, pagination ---------------------------------------


def test_home_lists_visible_modules_most_downloaded_first(http: httpx.Client) -> None:
    html = get(http, "/")
    listed = titles(html)
    # Downloads: tiny-embedder 3, tiny-cnn 1, the others 0 (then by name); the all-yanked module is hidden.
    assert listed == [
        "textco/tiny-embedder",
        "acme/tiny-cnn",
        "mallory/evil-card",
        "vision-lab/tiny-features",
    ]
    assert "ghost/all-yanked" not in html
    assert "<strong>4</strong> modules" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=animal", ["acme/tiny-cnn"]),
        ("q=TINY+features", ["vision-lab/tiny-features"]),
        ("q=nothing-like-this", []),
        ("task=text-embedding", ["textco/tiny-embedder"]),
        ("format=onnx", ["acme/tiny-cnn"]),
        ("publisher=mallory", ["mallory/evil-card"]),
        ("license=bsd-3-clause", ["vision-lab/tiny-features"]),
        (
            "framework=pytorch&sort=name",
            ["acme/tiny-cnn", "mallory/evil-card", "textco/tiny-embedder", "vision-lab/tiny-features"],
        ),
        ("task=image-feature-vector&license=MIT", ["mallory/evil-card"]),
        ("task=image-feature-vector&license=Apache-2.0", []),
        ("task=image-feature-vector&q=script", ["mallory/evil-card"]),
        (
            "sort=name",
            ["acme/tiny-cnn", "mallory/evil-card", "textco/tiny-embedder", "vision-lab/tiny-features"],
        ),
        (
            "sort=newest",
            ["mallory/evil-card", "vision-lab/tiny-features", "textco/tiny-embedder", "acme/tiny-cnn"],
        ),
        ("sort=name&per_page=2&page=2", ["textco/tiny-embedder", "vision-lab/tiny-features"]),
    ],
)
def test_filters_combine(http: httpx.Client, query: str, expected: list[str]) -> None:
    assert titles(get(http, f"/?{query}")) == expected


def test_filters_show_counts_and_the_current_choice(http: httpx.Client) -> None:
    html = get(http, "/?task=image-feature-vector")
    assert '<option value="image-feature-vector" selected>image-feature-vector (2)</option>' in html
    assert '<option value="MIT">MIT (2)</option>' in html
    # The active filter can be removed with one link that keeps the rest of the URL.
    html = get(http, "/?task=image-feature-vector&license=MIT&sort=name")
    assert 'href="/?task=image-feature-vector&amp;sort=name" title="Remove this filter">Licence: MIT' in html


def test_pagination_links_keep_the_query(http: httpx.Client) -> None:
    html = get(http, "/?sort=name&per_page=1&page=2&q=tiny")
    assert titles(html) == ["textco/tiny-embedder"]
    assert 'rel="prev" href="/?q=tiny&amp;sort=name&amp;per_page=1"' in html
    assert 'rel="next" href="/?q=tiny&amp;sort=name&amp;per_page=1&amp;page=3"' in html


def test_a_page_past_the_end_offers_the_last_page(http: httpx.Client) -> None:
    html = get(http, "/?per_page=2&page=50")
    assert titles(html) == []
    assert "past the end" in html and 'href="/?per_page=2&amp;page=2"' in html


# --- module pages -------------------------------------------------------------------


def test_module_page_shows_everything_a_user_needs(http: httpx.Client, web_hub: WebHub) -> None:
    html = get(http, "/acme/tiny-cnn")
    text = unescape(html)
    assert "<title>acme/tiny-cnn · Tiny CNN · modhub</title>" in html
    assert "v3 · latest" in text
    # Card rendered from Markdown, front matter not shown as text.
    assert "<h2>Training data</h2>" in html and "<td>top-1</td>" in html
    assert "task: image-classification" not in text
    # Signature table: names, dtypes, shapes.
    assert "<code>images</code>" in html and "<code>[batch, 3, 32, 32]</code>" in html
    assert "<code>logits</code>" in html and "<code>[batch, 5]</code>" in html
    # Usage for hub.load and hub.Layer, with this page's URL as the handle.
    assert f'hub.load("{web_hub.url}/acme/tiny-cnn/3")' in text
    assert f'hub.Layer("{web_hub.url}/acme/tiny-cnn/3", trainable=False)' in text
    # Versions, the yanked one marked; files with sizes and sha256; licence; downloads.
    assert re.search(r'class=" is-yanked">\s*<a href="/acme/tiny-cnn/2">Version 2</a>', html)
    assert 'badge-yanked" title="broken build">yanked' in html
    manifest = http.get("/api/v1/modules/acme/tiny-cnn/versions/3").json()["manifest"]
    for entry in manifest["files"]:
        assert f'<code class="hash">{entry["sha256"]}</code>' in html
        assert f'href="/api/v1/modules/acme/tiny-cnn/versions/3/files/{entry["path"]}"' in html
    assert "<dt>Licence</dt><dd>Apache-2.0</dd>" in html
    downloads = http.get("/api/v1/modules/acme/tiny-cnn").json()["downloads"]
    assert downloads >= 1 and f"<dt>Downloads</dt><dd>{downloads}</dd>" in html


def test_version_pages(http: httpx.Client) -> None:
    html = unescape(get(http, "/acme/tiny-cnn/1"))
    assert "You are viewing version 1" in html and "v1</span>" in html and "v1 · latest" not in html
    html = unescape(get(http, "/acme/tiny-cnn/2"))
    assert "Version 2 is yanked." in html and "Reason: broken build." in html
    # A module whose every version is yanked still has its page, marked.
    html = unescape(get(http, "/ghost/all-yanked"))
    assert "Version 1 is yanked." in html and "Every version of this module is yanked." in html


def test_text_module_snippet_calls_with_strings(http: httpx.Client) -> None:
    html = unescape(get(http, "/textco/tiny-embedder"))
    assert 'module(["The quick brown fox.", "A lazy dog sleeps."])' in html
    assert "Max tokens" in html


def test_publisher_page(http: httpx.Client) -> None:
    assert titles(get(http, "/acme")) == ["acme/tiny-cnn"]
    assert titles(get(http, "/ghost")) == []


# --- the same URL for programs ------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Modhub-Client": "0.1.0"},
        {"User-Agent": "modhub/0.1.0"},
        {"Accept": "application/json"},
    ],
)
def test_the_handle_url_answers_programs_with_json(web_hub: WebHub, headers: dict[str, str]) -> None:
    with web_hub.client() as client:
        api_latest = client.get("/api/v1/modules/acme/tiny-cnn/versions/latest").json()
        api_v2 = client.get("/api/v1/modules/acme/tiny-cnn/versions/2").json()
        latest = client.get("/acme/tiny-cnn", headers=headers)
        v2 = client.get("/acme/tiny-cnn/2", headers=headers)
        missing = client.get("/acme/nope", headers=headers)
        publisher = client.get("/acme", headers=headers)
    assert latest.status_code == 200 and latest.headers["content-type"] == "application/json"
    assert latest.json() == api_latest and latest.json()["version"] == 3
    assert "Accept" in latest.headers["vary"]
    assert v2.json() == api_v2 and v2.json()["yanked"] is True
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "module_not_found"
    assert publisher.json()["modules"][0]["handle"] == "acme/tiny-cnn"


def test_the_modhub_client_resolves_the_page_url(web_hub: WebHub) -> None:
    """What `hub.load(<the page's URL>)` would do: the client reads JSON from the hub."""
    from modhub.client.api import client_headers

    with web_hub.client(headers=client_headers()) as client:
        body = client.get("/textco/tiny-embedder/1").json()
    assert body["handle"] == "textco/tiny-embedder/1" and body["manifest"]["task"] == "text-embedding"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        # tiny-cnn has no SavedModel (the tensorflow_hub protocol itself: tests/server/test_tfhub.py)
        ("/acme/tiny-cnn/3?tf-hub-format=compressed", 404),
        ("/acme/tiny-cnn/3?tf-hub-format=evil", 400),
        ("/acme/tiny-cnn/3?tf-hub-format=", 400),
        ("/acme/nope/1?tf-hub-format=compressed", 404),
    ],
)
def test_tf_hub_format_is_answered_by_the_protocol(http: httpx.Client, path: str, status: int) -> None:
    response = http.get(path)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_tf_hub_format_on_an_unversioned_handle_redirects(http: httpx.Client) -> None:
    response = http.get("/acme/tiny-cnn?tf-hub-format=compressed", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].endswith("/acme/tiny-cnn/3?tf-hub-format=compressed")


# --- 404s and routing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "suggestion"),
    [
        ("/acme/tiny-ccn", "acme/tiny-cnn"),
        ("/acme/tiny-cnn/99", "acme/tiny-cnn"),
        ("/acm/tiny-cnn", "acme/tiny-cnn"),
        ("/textco/tiny-embeder/1", "textco/tiny-embedder"),
        ("/tiny-features", "vision-lab/tiny-features"),
        ("/vision-lab/tiny-features/1/extra/segments", "vision-lab/tiny-features"),
        ("/Acme/Tiny-CNN", "acme/tiny-cnn"),
    ],
)
def test_404_suggests_the_closest_modules(http: httpx.Client, path: str, suggestion: str) -> None:
    html = get(http, path, status=404)
    suggested = re.findall(r'<li><a href="/([^"]+)">', html)
    assert suggested and suggested[0] == suggestion, suggested


def test_404_with_nothing_close_offers_popular_modules_and_a_search(http: httpx.Client) -> None:
    html = get(http, "/zzzz/qqqq-xxxx", status=404)
    assert "Popular modules" in html and '<li><a href="/textco/tiny-embedder">' in html
    assert 'name="q" value="qqqq xxxx"' in html


def test_404_for_a_missing_version_names_the_existing_ones(http: httpx.Client) -> None:
    html = get(http, "/acme/tiny-cnn/99", status=404)
    assert "acme/tiny-cnn has no version 99 (versions: 1, 2, 3)" in html


def test_the_site_does_not_shadow_the_server_paths(web_hub: WebHub) -> None:
    with web_hub.client() as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"
        assert client.get("/api/v1/modules").json()["total"] == 4
        assert client.get("/api/v1/docs").status_code == 200
        assert client.get("/api/v1/nope").json()["error"]["code"] == "not_found"
        assert client.get("/api/v1/modules/a/b/c/d/e").headers["content-type"] == "application/json"
        css = client.get("/static/site.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert client.get("/static/../routes.py").status_code == 404
        assert client.get("/static/nope.css").status_code == 404
        # Pages answer HEAD too (link checkers, uptime probes).
        for path in ("/", "/acme", "/acme/tiny-cnn", "/acme/tiny-cnn/3", "/static/site.css"):
            assert client.head(path).status_code == 200, path
        assert client.head("/acme/nope").status_code == 404
        # A reserved first segment is never a publisher; outside /api/ it still gets the helpful 404.
        docs = client.get("/docs")
        assert docs.status_code == 404 and docs.headers["content-type"].startswith("text/html")


def test_pages_send_security_headers(http: httpx.Client) -> None:
    response = http.get("/mallory/evil-card")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_malicious_card_is_defused(http: httpx.Client) -> None:
    html = get(http, "/mallory/evil-card")
    card = html[html.index('<div class="prose">') : html.index('<section class="panel" id="files"')]
    lowered = card.lower()
    for bad in ("<script", "onerror", "onclick", '="javascript:', "<iframe", "<style", "<form", "style="):
        assert bad not in lowered, bad
    # Markdown refuses the javascript: link; it stays visible as plain text.
    assert "[another](javascript:alert(4))" in card
    assert "Plain text that must survive." in card
    # The only script on the page is our own file.
    assert re.findall(r"<script[^>]*>", html) == [
        re.search(r'<script src="/static/site\.js\?v=\w+" defer>', html).group(0)
    ]


# --- odd query strings: never a 500 -------------------------------------------------

ODD_QUERIES = [
    "page=-1",
    "page=0",
    "page=abc",
    "page=1e9",
    "page=99999999999999999999999",
    "page=%EF%BC%92",  # fullwidth digit two
    "per_page=0",
    "per_page=-5",
    "per_page=1000000000",
    "per_page=",
    "sort=evil",
    "sort=name%00",
    "sort=",
    "q=" + "a" * 10_000,
    "q=" + "+".join(["x"] * 3000),
    "q=%00%01%02",
    "q=%ED%A0%80",  # a lone surrogate, as UTF-8 bytes
    "q=%FF%FE",
    "q=%",
    "q=%%25%",
    "q=caf%C3%A9+%F0%9F%A4%96+%E2%80%AE",
    "q=' OR 1=1 --",
    "q=%25_%5C",
    "q=<script>alert(1)</script>",
    "task=" + "t" * 5000,
    "task=%00",
    "license=%27%22",
    "publisher=../../etc/passwd",
    "format=%F0%9F%98%80",
    "task=a&task=b&task=text-embedding",
    "q[]=1&page[x]=2",
    "&&&===&",
    "tf-hub-format=compressed",
    "page=2&page=-3&per_page=1",
]


@pytest.mark.parametrize("query", ODD_QUERIES, ids=range(len(ODD_QUERIES)))
@pytest.mark.parametrize("path", ["/", "/acme", "/acme/tiny-cnn", "/acme/tiny-cnn/3", "/no/such/page"])
def test_odd_query_strings_never_break_a_page(web_hub: WebHub, path: str, query: str) -> None:
    with web_hub.client() as client:
        response = client.get(f"{path}?{query}")
    if "tf-hub-format" in query and path.count("/") >= 2 and path != "/no/such/page":
        # tensorflow_hub's protocol: the unversioned handle redirects, tiny-cnn has no SavedModel.
        assert response.status_code == (303 if path == "/acme/tiny-cnn" else 404)
    elif path == "/no/such/page":
        assert response.status_code == 404
    else:
        assert response.status_code == 200
        assert "<script>alert(1)</script>" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/%00",
        "/acme/%00",
        "/acme/tiny-cnn/%00",
        "/acme/tiny-cnn/-1",
        "/acme/tiny-cnn/0",
        "/acme/tiny-cnn/01",
        "/acme/tiny-cnn/latest",
        "/acme/tiny-cnn/99999999999999999999999999",
        "/" + "a" * 5000,
        "/%F0%9F%98%80/%E2%80%AE",
        "/acme/tiny-cnn/3/../../..",
        "/..%2F..%2Fetc/passwd",
        "/static",
    ],
)
def test_odd_paths_never_break(web_hub: WebHub, path: str) -> None:
    with web_hub.client() as client:
        response = client.get(path)
    assert response.status_code in (200, 404), (path, response.status_code, response.text[:500])


# --- the snippet works when pasted ----------------------------------------------------


def _snippets(html: str) -> dict[str, str]:
    found = re.findall(r'<code id="(snippet-[a-z]+)" class="language-python">(.*?)</code>', html, flags=re.S)
    return {key: unescape(code) for key, code in found}


@pytest.mark.parametrize(
    ("path", "load_shape", "layer_input"),
    [
        ("/acme/tiny-cnn", (2, 5), "torch.rand(2, 3, 32, 32)"),
        ("/textco/tiny-embedder", (2, 16), '["red car", "blue house"]'),
    ],
)
def test_the_snippets_run_as_pasted(
    http: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    path: str,
    load_shape: tuple[int, int],
    layer_input: str,
) -> None:
    snippets = _snippets(get(http, path))
    namespace: dict[str, object] = {}
    exec(snippets["snippet-load"], namespace)  # what a user pastes: loads from the live hub
    printed = capsys.readouterr().out
    # torch tensors in give torch out; text (a list of strings) comes back as numpy (default runtime onnx).
    rows, cols = load_shape
    assert f"torch.Size([{rows}, {cols}])" in printed or f"({rows}, {cols})" in printed, printed
    namespace = {}
    exec(snippets["snippet-layer"], namespace)
    out = eval(f"model({layer_input})", namespace)
    assert tuple(out.shape) == (2, 10)


def test_random_query_strings_never_break_the_home_page(web_hub: WebHub) -> None:
    """A seeded fuzz: random keys, random bytes (percent-encoded), numbers and unicode."""
    import random
    from urllib.parse import quote_from_bytes

    rng = random.Random(20240601)
    keys = ["q", "task", "format", "publisher", "license", "framework", "sort", "page", "per_page", "x", ""]
    pools = [
        lambda: quote_from_bytes(rng.randbytes(rng.randint(0, 40))),
        lambda: str(rng.randint(-(10**30), 10**30)),
        lambda: rng.choice(["name", "newest", "downloads", "NAME", "%", "%%", "+", "&", "=", "%00"]),
        lambda: quote_from_bytes(
            "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(8)).encode("utf-8", "surrogatepass")
        ),
    ]
    with web_hub.client() as client:
        for _ in range(150):
            pairs = [f"{rng.choice(keys)}={rng.choice(pools)()}" for _ in range(rng.randint(1, 6))]
            query = "&".join(pairs)
            response = client.get(f"/?{query}")
            assert response.status_code == 200, (query, response.status_code, response.text[:300])
