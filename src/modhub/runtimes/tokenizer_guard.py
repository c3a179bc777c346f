"""What a module's tokenizer may do to its caller: the text cap, and panics as InputErrors.

A ``tokenizer.json``'s regexes run on Oniguruma, a backtracking engine. Three bounds keep a
hostile one from hanging or killing the process that calls the module:

- **Refused when verified**: a regex whose backtracking is exponential in the text length
  (``modhub.format.tokenizer_regex``, checked by ``verify_module`` on every load and at publish).
- **Texts are capped**: at most ``MAX_TEXT_CHARS`` characters per text (longer ones raise
  ``InputError`` naming the item), so the work per call is bounded for every other regex.
- **A panic is an InputError**: Oniguruma gives up on a match after its retry limit and
  ``tokenizers`` then raises ``pyo3_runtime.PanicException``, a ``BaseException``;
  :func:`encode_or_input_error` turns it (and the library's other errors) into an ``InputError``
  naming the text. KeyboardInterrupt and SystemExit pass through.

docs/security.md says what this does not bound (polynomial patterns on long texts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modhub.errors import InputError

__all__ = ["MAX_TEXT_CHARS", "check_text_lengths", "encode_or_input_error", "is_panic"]

# The longest text (in characters) a module call tokenises: 100,000 characters is ~20,000
# tokens, 40x the window of a 512-token encoder; a 10 MB string is refused, not tokenised.
MAX_TEXT_CHARS = 100_000


def is_panic(exc: BaseException) -> bool:
    """True for the ``PanicException`` a Rust library (pyo3) raises when its code panics."""
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def encode_or_input_error(encode: Callable[[list[str]], Any], texts: list[str], file: str) -> Any:
    """``encode(texts)``; a tokenizer error or panic becomes an ``InputError`` naming the text.

    On a failed batch each text is tokenised alone to find the one that fails (bounded: every
    text is under ``MAX_TEXT_CHARS``). KeyboardInterrupt, SystemExit and the like pass through.
    """
    try:
        return encode(texts)
    except BaseException as exc:
        if not _ours(exc):
            raise
        failure = exc
    index = 0
    if len(texts) > 1:
        for index, text in enumerate(texts):  # noqa: B007 - the index is used after the loop
            try:
                encode([text])
            except BaseException as exc:
                if not _ours(exc):
                    raise
                failure = exc
                break
    message = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
    raise InputError(
        f"the module's tokenizer ({file}) cannot tokenise text item {index} "
        f"({len(texts[index]):,} characters, starting {texts[index][:40]!r}): {message}. "
        "Leave that text out, shorten it, or report the module to its publisher"
    ) from None


def _ours(exc: BaseException) -> bool:
    """An error of the tokenizer (an Exception, or a Rust panic), not an interrupt or exit."""
    return isinstance(exc, Exception) or is_panic(exc)


def check_text_lengths(texts: list[str]) -> None:
    """Refuse a text longer than ``MAX_TEXT_CHARS``, naming the item and the fix."""
    for index, text in enumerate(texts):
        if len(text) > MAX_TEXT_CHARS:
            raise InputError(
                f"text item {index} has {len(text):,} characters, over the limit of "
                f"{MAX_TEXT_CHARS:,} per text (a module reads only its first max_length tokens): "
                f"cut it (text[:{MAX_TEXT_CHARS}]) or split it into parts and call the module on each"
            )
