"""The home page's query string: lenient parsing and shareable URLs (no server needed)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from modhub.server.web.params import MAX_Q_CHARS, MAX_Q_WORDS, Listing, clean_text, page_numbers


def parse(query: str) -> Listing:
    return Listing.parse(dict(parse_qsl(query, keep_blank_values=True)))


def test_defaults() -> None:
    listing = parse("")
    assert listing == Listing()
    assert listing.is_default_view and listing.url() == "/"


@pytest.mark.parametrize(
    ("query", "page", "per_page", "sort"),
    [
        ("page=-1", 1, 24, "downloads"),
        ("page=abc&per_page=xyz", 1, 24, "downloads"),
        ("page=3&per_page=12&sort=name", 3, 12, "name"),
        ("page=0&per_page=0", 1, 1, "downloads"),
        ("page=99999999999&per_page=1000000", 1, 96, "downloads"),
        ("page=12345678&per_page=100000", 10_000, 96, "downloads"),
        ("page=%EF%BC%92", 1, 24, "downloads"),
        ("page= 4 ", 4, 24, "downloads"),
        ("sort=evil", 1, 24, "downloads"),
        ("sort=NEWEST", 1, 24, "downloads"),
        ("sort=newest", 1, 24, "newest"),
    ],
)
def test_bad_numbers_and_sorts_fall_back(query: str, page: int, per_page: int, sort: str) -> None:
    listing = parse(query)
    assert (listing.page, listing.per_page, listing.sort) == (page, per_page, sort)


def test_text_is_cleaned_and_bounded() -> None:
    assert clean_text("  a\x00b\tc\u202e d\ud800 ", 100) == "a b c d"
    listing = parse("q=" + "word " * 1000 + "&task=" + "t" * 500)
    assert len(listing.q.split()) == MAX_Q_WORDS and len(listing.q) <= MAX_Q_CHARS
    assert len(listing.task) == 100


def test_urls_round_trip_and_leave_defaults_out() -> None:
    listing = parse("q=tiny+cnn&task=image-classification&license=MIT&sort=name&per_page=12&page=3")
    url = listing.url()
    assert url == "/?q=tiny+cnn&task=image-classification&license=MIT&sort=name&per_page=12&page=3"
    assert parse(urlsplit(url).query) == listing
    assert listing.url(page=1) == "/?q=tiny+cnn&task=image-classification&license=MIT&sort=name&per_page=12"
    assert listing.without("license") == "/?q=tiny+cnn&task=image-classification&sort=name&per_page=12"
    assert listing.without("q") == "/?task=image-classification&license=MIT&sort=name&per_page=12"
    assert (
        listing.url(q="a&b=c")
        == "/?q=a%26b%3Dc&task=image-classification&license=MIT&sort=name&per_page=12&page=3"
    )


def test_search_query_maps_empty_filters_to_none() -> None:
    query = parse("q=x&format=onnx").search_query()
    assert (query.q, query.format, query.task, query.publisher) == ("x", "onnx", None, None)


@pytest.mark.parametrize(
    ("page", "pages", "expected"),
    [
        (1, 0, []),
        (1, 1, [1]),
        (1, 3, [1, 2, 3]),
        (1, 10, [1, 2, 3, None, 10]),
        (5, 10, [1, None, 3, 4, 5, 6, 7, None, 10]),
        (10, 10, [1, None, 8, 9, 10]),
        (4, 7, [1, 2, 3, 4, 5, 6, 7]),
    ],
)
def test_page_numbers(page: int, pages: int, expected: list[int | None]) -> None:
    assert page_numbers(page, pages) == expected
