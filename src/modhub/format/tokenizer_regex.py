"""Tokenizer regexes that could hang a module's caller, refused when a module is verified.

A ``tokenizer.json`` carries regular expressions (``pre_tokenizer`` ``Split``, ``normalizer``
``Replace``, ...) that the ``tokenizers`` library runs with Oniguruma, a backtracking engine. A
regex whose backtracking is exponential in the text length -- an unbounded quantifier over a
group that itself repeats or alternates (``(a+)+``, ``(a|aa)*``, ``(\\w+\\s?)*``) -- is refused
with ``UnsafeModuleError``, by ``verify_module`` (every load) and so at publish. A repeated group
that starts with a separator none of its own repeats can match (``(?:[.,][\\p{L}]+)*``) is
allowed: where one repetition ends is then never ambiguous. Atomic groups and possessive
quantifiers are allowed (they do not backtrack). A regex in syntax this reader does not follow
(back-references, nested classes) is refused too, as an operator outside an allow-list is.

This is a static heuristic, not a proof: a polynomial pattern (``\\s*\\s*x``) passes, and is left
to the text cap and the panic handling of ``modhub.runtimes.tokenizer_guard``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modhub.errors import UnsafeModuleError

__all__ = ["backtracking_risk", "check_tokenizer_regexes"]

# A bounded repeat ``{n,m}`` with m at least this counts as unbounded for the check.
_MANY = 10
# Every regex of a tokenizer.json: the string value of a "Regex" key. Found by a scan, not by
# parsing the JSON (a 7 MB GloVe tokenizer takes ~20 ms to scan, over a second to parse).
_REGEX_VALUE = re.compile(rb'"Regex"\s*:\s*("(?:[^"\\]|\\.)*")')
# A JSON escape of one of the letters of "Regex" (R, e, g, x).
_ESCAPED_LETTER = re.compile(rb"\\u00(?:52|65|67|78)", re.IGNORECASE)


def check_tokenizer_regexes(data: bytes, file: str, root: Path | None = None) -> None:
    """Raise ``UnsafeModuleError`` if a regex in the tokenizer file ``data`` can backtrack exponentially
    (``root``: the module directory, for the error's path)."""
    for pattern in _patterns(data):
        reason = backtracking_risk(pattern)
        if reason is not None:
            raise UnsafeModuleError(
                f"{file}: the regex {pattern[:200]!r} could take exponential time on a crafted "
                f"text: {reason}. Rewrite it without a repeated group that repeats or alternates "
                "inside (an atomic group (?>...) or a possessive quantifier *+ is fine), and export "
                "the module again",
                path=(root / file) if root is not None else file,
            )


def _patterns(data: bytes) -> Iterator[str]:
    """Every "Regex" string of the tokenizer JSON ``data``."""
    if _ESCAPED_LETTER.search(data):
        # "Regex" spelled with an escape ("\u0052egex"): no serializer writes that, so the file
        # was made to hide it; parse it in full (slow, but only for such files).
        try:
            yield from _walk(json.loads(data))
        except ValueError:
            return  # not JSON: the tokenizers library refuses the file when it reads it
        return
    if b'"Regex"' not in data:
        return
    for match in _REGEX_VALUE.finditer(data):
        try:
            yield json.loads(match.group(1))
        except ValueError:
            continue  # not a JSON string: the tokenizers library refuses the file when it reads it


def _walk(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Regex" and isinstance(value, str):
                yield value
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --- the regex structure ----------------------------------------------------------------------

Matcher = Callable[[str], "bool | None"]  # does this atom match one character (None: cannot tell)


@dataclass
class _Item:
    group: list[list[_Item]] | None = None  # alternatives of a group, or None for a one-char atom
    matcher: Matcher | None = None  # one-char atoms: the character test
    literals: frozenset[str] | None = None  # one-char atoms that are a known set of characters
    backtracks: bool = True  # False for atomic groups (?>...): they never give back
    low: int = 1
    high: int | None = 1  # None: unbounded
    possessive: bool = False
    zero_width: bool = False

    @property
    def repeats(self) -> bool:
        return not self.possessive and (self.high is None or self.high >= _MANY)


class _Unknown(Exception):
    """The pattern uses syntax this reader does not follow: no verdict."""


def backtracking_risk(pattern: str) -> str | None:
    """Why ``pattern`` can backtrack exponentially, or None if the check finds nothing."""
    try:
        parser = _Parser(pattern)
        alternatives = parser.alternatives()
        if parser.pos != len(pattern):
            raise _Unknown
    except (_Unknown, ValueError, IndexError):
        # Syntax this reader does not follow (back-references, nested classes, ...): refused, as
        # an operator outside the allow-list is, rather than run unread.
        return "it uses syntax the check cannot read (a back-reference, a nested class, ...)"
    return _risk_in(alternatives)


def _risk_in(alternatives: list[list[_Item]]) -> str | None:
    for sequence in alternatives:
        for item in sequence:
            if item.group is None:
                continue
            if item.repeats and item.backtracks:
                reason = _repeated_group_risk(item.group)
                if reason is not None:
                    return reason
            inner = _risk_in(item.group)
            if inner is not None:
                return inner
    return None


def _repeated_group_risk(alternatives: list[list[_Item]]) -> str | None:
    if len(alternatives) > 1:
        return "an alternation inside a repeated group"
    inner = list(_repeating_atoms(alternatives))
    if not inner:
        return None
    if any(atom is None for atom in inner):
        return "a repeated group inside a repeated group"
    sequence = [item for item in alternatives[0] if not item.zero_width]
    if sequence and _separates(sequence[0], inner):
        return None
    return "a quantifier inside a repeated group"


def _separates(first: _Item, inner: list[_Item | None]) -> bool:
    """Whether ``first`` starts every repetition with a character no repeat in ``inner`` can match."""
    if first.group is not None or first.low < 1 or first.high != 1 or not first.literals:
        return False
    matchers = [atom.matcher for atom in inner if atom is not None and atom is not first]
    if len(matchers) != len(inner) or any(test is None for test in matchers):
        return False
    return not any(test(ch) is not False for test in matchers if test is not None for ch in first.literals)


def _repeating_atoms(alternatives: list[list[_Item]]) -> Iterator[_Item | None]:
    """The one-char atoms that repeat inside; None for a repeating (or alternating) group."""
    for sequence in alternatives:
        for item in sequence:
            if item.group is None:
                if item.repeats:
                    yield item
            elif item.backtracks:
                if item.repeats or len(item.group) > 1:
                    yield None
                else:
                    yield from _repeating_atoms(item.group)


class _Parser:
    """Reads the structure of an Oniguruma (Ruby syntax) pattern: groups, atoms, quantifiers."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def alternatives(self) -> list[list[_Item]]:
        result = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            result.append(self.sequence())
        return result

    def sequence(self) -> list[_Item]:
        items: list[_Item] = []
        while self.peek() not in ("", "|", ")"):
            item = self.atom()
            self.quantifiers(item)
            items.append(item)
        return items

    def quantifiers(self, item: _Item) -> None:
        while True:
            ch = self.peek()
            if ch in ("*", "+", "?"):
                self.pos += 1
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
                self._apply(item, low, high)
                if self.peek() == "?":
                    self.pos += 1
                elif self.peek() == "+":  # possessive: never gives back what it took
                    self.pos += 1
                    item.possessive = True
            elif ch == "{" and self._bounds() is not None:
                low, high = self._bounds()  # type: ignore[misc]
                self.pos = self.text.index("}", self.pos) + 1
                self._apply(item, low, high)
                if self.peek() == "?":
                    self.pos += 1
            else:
                return

    @staticmethod
    def _apply(item: _Item, low: int, high: int | None) -> None:
        if item.high != 1 or item.low != 1:
            # A quantified quantifier (a+{2,}): the repetition nests; wrap it in a group.
            inner = _Item(
                group=item.group,
                matcher=item.matcher,
                literals=item.literals,
                backtracks=item.backtracks,
                low=item.low,
                high=item.high,
                possessive=item.possessive,
            )
            item.group, item.matcher, item.literals, item.possessive = [[inner]], None, None, False
            item.backtracks = True
        item.low *= low
        item.high = None if item.high is None or high is None else item.high * high

    def _bounds(self) -> tuple[int, int | None] | None:
        end = self.text.find("}", self.pos)
        if end < 0:
            return None
        body = self.text[self.pos + 1 : end]
        low, comma, high = body.partition(",")
        if not (low.isdigit() or (comma and not low)) or (high and not high.isdigit()):
            return None
        return int(low or 0), (int(high) if high else (None if comma else int(low)))

    def atom(self) -> _Item:
        ch = self.peek()
        self.pos += 1
        if ch == "(":
            return self.group()
        if ch == "[":
            return self.char_class()
        if ch == "\\":
            return self.escape(in_class=False)
        if ch in ("^", "$"):
            return _Item(zero_width=True)
        if ch == ".":
            return _Item(matcher=lambda c: c != "\n")
        if ch in ("*", "+", "?", "{"):
            raise _Unknown  # a quantifier with nothing to repeat
        return _Item(matcher=_equals(ch), literals=frozenset(ch))

    def group(self) -> _Item:
        backtracks, zero_width = True, False
        if self.peek() == "?":
            self.pos += 1
            kind = self.peek()
            if kind == "#":
                self.pos = self.text.index(")", self.pos) + 1
                return _Item(zero_width=True)
            if kind == ":":
                self.pos += 1
            elif kind == ">":
                self.pos += 1
                backtracks = False
            elif kind in ("=", "!"):
                self.pos += 1
                zero_width = True
            elif kind == "<" and self.peek(1) in ("=", "!"):
                self.pos += 2
                zero_width = True
            elif kind in ("<", "P", "'"):
                close = {"<": ">", "P": ">", "'": "'"}[kind]
                self.pos = self.text.index(close, self.pos + 1) + 1
            else:  # inline flags: (?i) or (?i-m:...)
                while self.peek() and (self.peek().isalpha() or self.peek() == "-"):
                    self.pos += 1
                if self.peek() == ")":
                    self.pos += 1
                    return _Item(zero_width=True)
                if self.peek() != ":":
                    raise _Unknown
                self.pos += 1
        alternatives = self.alternatives()
        if self.peek() != ")":
            raise _Unknown
        self.pos += 1
        return _Item(group=alternatives, backtracks=backtracks, zero_width=zero_width)

    def escape(self, *, in_class: bool) -> _Item:
        ch = self.peek()
        self.pos += 1
        if ch in ("p", "P"):
            negate = ch == "P"
            if self.peek() != "{":
                raise _Unknown
            end = self.text.index("}", self.pos)
            name = self.text[self.pos + 1 : end]
            self.pos = end + 1
            if name.startswith("^"):
                negate, name = not negate, name[1:]
            category = _CATEGORIES.get(name, name if len(name) <= 2 and name[:1].isupper() else None)
            if category is None:
                return _Item(matcher=lambda c: None)
            return _Item(matcher=lambda c: unicodedata.category(c).startswith(category) != negate)
        if ch in _CLASS_ESCAPES:
            test = _CLASS_ESCAPES[ch]
            return _Item(matcher=test)
        if not in_class and ch in "bBAzZG":
            return _Item(zero_width=True)
        if ch in ("x", "u"):
            return self.code_point(ch)
        if ch.isdigit() or ch in "kgc":
            raise _Unknown  # back-references, subexpression calls, control characters
        literal = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "e": "\x1b", "a": "\a"}.get(ch, ch)
        return _Item(matcher=_equals(literal), literals=frozenset(literal))

    def code_point(self, kind: str) -> _Item:
        if kind == "x" and self.peek() == "{":
            end = self.text.index("}", self.pos)
            digits, self.pos = self.text[self.pos + 1 : end], end + 1
        else:
            width = 2 if kind == "x" else 4
            digits = self.text[self.pos : self.pos + width]
            self.pos += width
        try:
            literal = chr(int(digits, 16))
        except ValueError:
            raise _Unknown from None
        return _Item(matcher=lambda c: c == literal, literals=frozenset(literal))

    def char_class(self) -> _Item:
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        tests: list[Matcher] = []
        literals: set[str] = set()
        first = True
        while self.peek() != "]" or first:
            first = False
            ch = self.peek()
            if ch == "" or ch == "[" or self.text.startswith("&&", self.pos):
                raise _Unknown  # nested classes, POSIX brackets, intersections
            self.pos += 1
            if ch == "\\":
                item = self.escape(in_class=True)
                if item.literals is None:
                    tests.append(item.matcher)  # type: ignore[arg-type]
                    continue
                (ch,) = item.literals
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.peek()
                self.pos += 1
                if high == "\\":
                    bound = self.escape(in_class=True).literals
                    if bound is None:
                        raise _Unknown  # a range up to a class ([a-\w])
                    (high,) = bound
                elif high == "[":
                    raise _Unknown
                tests.append(_between(ch, high))
                continue
            literals.add(ch)
        self.pos += 1
        frozen = frozenset(literals)

        def matcher(c: str) -> bool | None:
            verdicts = [c in frozen, *(test(c) for test in tests)]
            if True in verdicts:
                return not negate
            if None in verdicts:
                return None
            return negate

        known = frozen if not tests and not negate else None
        return _Item(matcher=matcher, literals=known)


_CATEGORIES = {
    "Letter": "L",
    "Number": "N",
    "Punctuation": "P",
    "Symbol": "S",
    "Separator": "Z",
    "Mark": "M",
    "Other": "C",
    "Alpha": None,
}


def _equals(literal: str) -> Matcher:
    return lambda c: c == literal


def _between(low: str, high: str) -> Matcher:
    return lambda c: low <= c <= high


def _word(c: str) -> bool:
    return c.isalnum() or c == "_" or unicodedata.category(c).startswith("M")


_CLASS_ESCAPES: dict[str, Matcher] = {
    "d": lambda c: unicodedata.category(c) == "Nd",
    "D": lambda c: unicodedata.category(c) != "Nd",
    "w": _word,
    "W": lambda c: not _word(c),
    "s": lambda c: c.isspace(),
    "S": lambda c: not c.isspace(),
    "h": lambda c: c in "0123456789abcdefABCDEF",
    "H": lambda c: c not in "0123456789abcdefABCDEF",
}
