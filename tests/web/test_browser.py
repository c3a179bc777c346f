"""The website in a real browser: Debian's chromium driven by Playwright against a real hub.

Screenshots of every page at desktop (1280) and phone (390) widths are written
to ``test-artifacts/web/`` for people to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import CHROMIUM
from tests.web.conftest import ARTIFACTS, WebHub

sync_api = pytest.importorskip("playwright.sync_api")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)


class Tab:
    """A page plus the console errors and dialogs it produced (CSP violations show up as errors)."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def no_horizontal_scroll(self) -> None:
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the {self.page.viewport_size} viewport"


def _tab(browser: Any, web_hub: WebHub, viewport: dict[str, int], **options: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(15_000)
    try:
        yield Tab(context.new_page(), web_hub.url)
    finally:
        context.close()


@pytest.fixture
def desktop(browser: Any, web_hub: WebHub) -> Iterator[Tab]:
    yield from _tab(browser, web_hub, DESKTOP, permissions=["clipboard-read", "clipboard-write"])


@pytest.fixture
def phone(browser: Any, web_hub: WebHub) -> Iterator[Tab]:
    yield from _tab(browser, web_hub, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)


@pytest.fixture
def no_js(browser: Any, web_hub: WebHub) -> Iterator[Tab]:
    yield from _tab(browser, web_hub, DESKTOP, java_script_enabled=False)


def card_titles(tab: Tab) -> list[str]:
    return [t.strip() for t in tab.page.locator(".card .card-title").all_inner_texts()]


def test_search_from_the_home_page(desktop: Tab) -> None:
    desktop.goto("/")
    assert set(card_titles(desktop)) == {
        "acme/tiny-cnn",
        "textco/tiny-embedder",
        "vision-lab/tiny-features",
        "mallory/evil-card",
    }
    desktop.shot("home-desktop")
    desktop.page.fill("input.search-input", "animal")
    desktop.page.press("input.search-input", "Enter")
    desktop.page.wait_for_url(re.compile(r"\?q=animal$"))
    assert card_titles(desktop) == ["acme/tiny-cnn"]
    assert "1 module matching “animal”" in desktop.page.inner_text(".count")
    desktop.shot("search-desktop")
    assert desktop.errors == []


def test_filters_combine_and_live_in_the_url(desktop: Tab) -> None:
    desktop.goto("/")
    desktop.page.select_option("select[name=task]", "image-feature-vector")
    desktop.page.wait_for_url(re.compile(r"task=image-feature-vector"))
    assert set(card_titles(desktop)) == {"vision-lab/tiny-features", "mallory/evil-card"}
    desktop.page.select_option("select[name=license]", "MIT")
    desktop.page.wait_for_url(re.compile(r"license=MIT"))
    assert card_titles(desktop) == ["mallory/evil-card"]
    url = desktop.page.url
    # Empty fields and the default sort stay out of the shareable URL.
    assert url == f"{desktop.base}/?task=image-feature-vector&license=MIT"
    desktop.shot("filters-desktop")
    # The shared URL shows the same listing; removing one filter keeps the other.
    desktop.goto("/?license=MIT&task=image-feature-vector")
    assert card_titles(desktop) == ["mallory/evil-card"]
    desktop.page.click(".pill:has-text('Licence: MIT')")
    desktop.page.wait_for_url(re.compile(r"/\?task=image-feature-vector$"))
    assert len(card_titles(desktop)) == 2
    # Sorting by name.
    desktop.page.select_option("select[name=sort]", "name")
    desktop.page.wait_for_url(re.compile(r"sort=name"))
    assert card_titles(desktop) == ["mallory/evil-card", "vision-lab/tiny-features"]
    assert desktop.errors == []


def test_pagination(desktop: Tab) -> None:
    desktop.goto("/?sort=name&per_page=1")
    assert card_titles(desktop) == ["acme/tiny-cnn"]
    desktop.page.click("a[rel=next]")
    desktop.page.wait_for_url(re.compile(r"page=2"))
    assert card_titles(desktop) == ["mallory/evil-card"]
    desktop.page.click(".pager-numbers a:has-text('4')")
    assert card_titles(desktop) == ["vision-lab/tiny-features"]
    assert desktop.page.locator("a[rel=next]").count() == 0


def test_open_a_module_and_copy_the_snippet(desktop: Tab) -> None:
    desktop.goto("/")
    desktop.page.click(".card-title:has-text('acme/tiny-cnn')")
    desktop.page.wait_for_url(f"{desktop.base}/acme/tiny-cnn")
    page = desktop.page
    assert page.inner_text("h1") == "acme/tiny-cnn"
    assert "v3 · latest" in page.inner_text(".module-title")
    # The card is rendered Markdown: a heading, a table, a code block.
    assert page.locator(".prose h1").inner_text() == "Tiny CNN"
    assert page.locator(".prose table td").first.inner_text() == "top-1"
    # The signature table, the versions (2 yanked) and the files with their sha256.
    assert "images" in page.inner_text("#signatures") and "logits" in page.inner_text("#signatures")
    yanked = page.locator("#versions li.is-yanked")
    assert (
        yanked.count() == 1 and "Version 2" in yanked.inner_text() and "yanked" in yanked.inner_text().lower()
    )
    assert page.locator("#files code.hash").count() >= 4
    desktop.shot("module-desktop")

    button = page.locator("button[data-copy=snippet-load]")
    assert button.is_visible()
    button.click()
    sync_api.expect(button).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.inner_text("#snippet-load")
    assert f'hub.load("{desktop.base}/acme/tiny-cnn/3")' in copied
    layer_button = page.locator("button[data-copy=snippet-layer]")
    layer_button.click()
    sync_api.expect(layer_button).to_have_text("Copied")
    assert "hub.Layer(" in page.evaluate("navigator.clipboard.readText()")
    assert desktop.errors == []


def test_yanked_version_page(desktop: Tab) -> None:
    desktop.goto("/acme/tiny-cnn")
    desktop.page.click("#versions a:has-text('Version 2')")
    desktop.page.wait_for_url(f"{desktop.base}/acme/tiny-cnn/2")
    notice = desktop.page.inner_text(".notice-warn")
    assert "Version 2 is yanked" in notice and "broken build" in notice
    desktop.shot("module-yanked-desktop")


def test_a_card_cannot_run_script(desktop: Tab) -> None:
    desktop.goto("/mallory/evil-card")
    desktop.page.wait_for_load_state("load")
    desktop.page.click(".prose >> text=click anywhere")
    desktop.page.click(".prose >> text=a javascript link")
    assert desktop.page.evaluate("window.__pwned === undefined")
    assert desktop.dialogs == []
    assert "Plain text that must survive." in desktop.page.inner_text(".prose")
    assert desktop.page.locator(".prose iframe, .prose script, .prose style, .prose form").count() == 0
    desktop.shot("module-evil-card-desktop")


def test_publisher_and_not_found_pages(desktop: Tab) -> None:
    desktop.goto("/acme")
    assert card_titles(desktop) == ["acme/tiny-cnn"]
    desktop.shot("publisher-desktop")
    response = desktop.goto("/acme/tiny-ccn")
    assert response.status == 404
    assert desktop.page.locator(".suggest a").first.inner_text() == "acme/tiny-cnn"
    desktop.shot("not-found-desktop")
    desktop.page.click(".suggest a >> nth=0")
    desktop.page.wait_for_url(f"{desktop.base}/acme/tiny-cnn")


@pytest.mark.parametrize(
    "path",
    ["/", "/?task=image-classification", "/acme/tiny-cnn", "/acme/tiny-cnn/2", "/textco", "/nope/nothing"],
)
def test_phone_width(phone: Tab, path: str) -> None:
    phone.goto(path)
    phone.no_horizontal_scroll()
    name = path.strip("/").replace("/", "-").replace("?", "").replace("=", "-") or "home"
    phone.shot(f"phone-{name}")
    assert phone.errors == [] or all("404" in e for e in phone.errors)


def test_readable_without_javascript(no_js: Tab) -> None:
    no_js.goto("/")
    no_js.page.select_option("select[name=task]", "text-embedding")
    no_js.page.click("button:has-text('Apply filters')")
    no_js.page.wait_for_url(re.compile(r"task=text-embedding"))
    assert card_titles(no_js) == ["textco/tiny-embedder"]
    no_js.goto("/textco/tiny-embedder")
    # No copy button without script, but the snippet is there to select.
    assert not no_js.page.locator("button[data-copy]").first.is_visible()
    assert 'hub.load("' in no_js.page.inner_text("#snippet-load")
    assert "module([" in no_js.page.inner_text("#snippet-load")
    no_js.shot("module-nojs-desktop")
