"""Model cards: Markdown to HTML with nothing that can run script (no server needed)."""

from __future__ import annotations

import pytest

from modhub.server.web.cards import markdown_to_html, render_card

ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    '<img src="x" onerror="alert(1)">',
    "<img src=x onerror=alert(1)//>",
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "[x](javascript:alert(1))",
    "![x](javascript:alert(1))",
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<form action="https://evil.example"><input name=p><button>go</button></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<details open ontoggle=alert(1)>x</details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<!--<img src=x onerror=alert(1)>-->",
    '<code class="language-python x" onmouseover="alert(1)">x</code>',
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_script_survives(attack: str) -> None:
    html = markdown_to_html(f"# Card\n\n{attack}\n\nafter").lower()
    for bad in (
        "<script",
        "onerror",
        "onload",
        "ontoggle",
        "onmouseover",
        "<iframe",
        "<object",
        "<embed",
        "<style",
        "style=",
        "<form",
        "<input",
        "<meta",
        "<base",
        "<link",
        "<svg",
    ):
        assert bad not in html, (attack, html)
    for scheme in ('="javascript:', '="data:', '="jav'):
        assert scheme not in html, (attack, html)
    assert "after" in html


def test_markdown_features_render() -> None:
    html = markdown_to_html(
        "## Head\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```\n\n~~old~~ [link](https://example.com)\n"
        "\n<details><summary>More</summary>hidden</details>\n"
    )
    assert "<h2>Head</h2>" in html and "<td>1</td>" in html
    assert '<code class="language-python">x = 1' in html
    assert "<s>old</s>" in html
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer">link</a>' in html
    assert "<details><summary>More</summary>hidden</details>" in html


def test_front_matter_is_split_off() -> None:
    card = render_card("---\ntask: image-classification\nlicense: MIT\n---\n\n# Title\n\nBody.\n")
    assert card.meta == {"task": "image-classification", "license": "MIT"}
    assert card.html.startswith("<h1>Title</h1>") and "task:" not in card.html
    assert card.problem == ""


def test_broken_front_matter_is_reported_not_fatal() -> None:
    card = render_card("---\ntask: [unclosed\n---\n\n# Title\n")
    assert card.problem and "YAML" in card.problem
    assert "<h1>Title</h1>" in card.html
    unclosed = render_card("---\ntask: x\n\n# never closed\n")
    assert "never closes" in unclosed.problem


def test_empty_card() -> None:
    assert render_card("").html == "" and render_card("  \n").meta == {}
