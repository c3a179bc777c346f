"""Strict grammars for the expression strings a ``graph.pt2`` carries.

torch hands some strings of an exported program to interpreters when it
loads or runs it:

- symbolic sizes (``expr_str`` of SymInt/SymFloat/SymBool values) go to
  ``sympy.sympify``, which is ``eval``;
- ``guards_code`` lines are pasted into Python source and ``exec``-ed;
- ``range_constraints`` keys name symbols and derived dimensions.

Each string is tokenised and parsed here with a small recursive-descent
parser that accepts only what torch 2.13 itself writes for shape arithmetic:
integer literals, shape symbols (``s0``, ``s77``), ``+ - * // %`` and an
allow-listed set of sympy constructors. No attribute access except the
``.size()``/``.stride()`` of a guard source, no strings except a symbol's or
an input's name, no dunders, bounded length, nesting and integer size.
Anything else raises :class:`ExprRefused` with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ExprRefused", "check_guard", "check_symbol_key", "check_sympy_repr"]

MAX_EXPR_CHARS = 8192
MAX_DEPTH = 64
MAX_NODES = 2048
# Literals beyond int64 are not shapes.
MAX_INT_DIGITS = 19

_SYMBOL_NAME = re.compile(r"s[0-9]{1,9}")
_INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

# sympy constructors (``srepr`` names) that shape arithmetic uses, with (min, max) arity.
_SYMPY_FUNCS: dict[str, tuple[int, int]] = {
    "Add": (2, 64),
    "Mul": (2, 64),
    "Pow": (2, 2),  # exponent must be a small Integer (checked below)
    "FloorDiv": (2, 2),
    "Mod": (2, 2),
    "PythonMod": (2, 2),
    "CleanDiv": (2, 2),
    "CeilDiv": (2, 2),
    "Max": (2, 64),
    "Min": (2, 64),
    # Relations and logic, for SymBool runtime asserts.
    "Equality": (2, 2),
    "Unequality": (2, 2),
    "LessThan": (2, 2),
    "StrictLessThan": (2, 2),
    "GreaterThan": (2, 2),
    "StrictGreaterThan": (2, 2),
    "And": (2, 64),
    "Or": (2, 64),
    "Not": (1, 1),
}
_SYMPY_CONSTANTS = {"true", "false"}
_SYMBOL_ASSUMPTIONS = {"positive", "integer", "nonnegative", "real", "finite"}
_MAX_POW_EXPONENT = 64

_TOKEN = re.compile(
    r"""
    (?P<ws>[ ]+)
  | (?P<int>[0-9]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>'[A-Za-z0-9_]*')
  | (?P<op>//|==|!=|<=|>=|[-+*%()\[\],=.<>])
    """,
    re.VERBOSE,
)


class ExprRefused(ValueError):
    """An expression string outside the grammar; the message says what was wrong."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # "int", "name", "str", "op", "end"
    text: str
    pos: int


def _tokenize(text: object) -> list[_Tok]:
    if not isinstance(text, str):
        raise ExprRefused(f"expected a string, got {type(text).__name__}")
    if not text or len(text) > MAX_EXPR_CHARS:
        raise ExprRefused(f"length {len(text)} outside 1..{MAX_EXPR_CHARS}")
    if "__" in text:
        raise ExprRefused("contains '__'")
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprRefused(f"unexpected character {text[pos]!r} at offset {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: object) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.nodes = 0
        self.pow_base_depth = 0

    # -- helpers -------------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, what: str) -> ExprRefused:
        tok = self.tok
        found = "end of text" if tok.kind == "end" else repr(tok.text)
        return ExprRefused(f"{what}, found {found} at offset {tok.pos}")

    def peek(self, text: str, kind: str = "op") -> bool:
        return self.tok.kind == kind and self.tok.text == text

    def accept(self, text: str, kind: str = "op") -> bool:
        if self.peek(text, kind):
            self.i += 1
            return True
        return False

    def expect(self, text: str, kind: str = "op") -> None:
        if not self.accept(text, kind):
            raise self.fail(f"expected {text!r}")

    def enter(self) -> None:
        self.depth += 1
        self.nodes += 1
        if self.depth > MAX_DEPTH:
            raise ExprRefused(f"nested deeper than {MAX_DEPTH}")
        if self.nodes > MAX_NODES:
            raise ExprRefused(f"more than {MAX_NODES} terms")

    def leave(self) -> None:
        self.depth -= 1

    def integer(self) -> int:
        if self.tok.kind != "int":
            raise self.fail("expected an integer")
        if len(self.tok.text) > MAX_INT_DIGITS:
            raise self.fail(f"integer longer than {MAX_INT_DIGITS} digits")
        value = int(self.tok.text)
        self.i += 1
        return value

    def finish(self) -> None:
        if self.tok.kind != "end":
            raise self.fail("expected end of expression")

    # -- sympy srepr: Add(Symbol('s0', positive=True, integer=True), Integer(1)) ----
    def sympy_node(self) -> None:
        self.enter()
        tok = self.tok
        if tok.kind != "name":
            raise self.fail("expected a sympy constructor")
        name = tok.text
        self.i += 1
        if name in _SYMPY_CONSTANTS:
            self.leave()
            return
        self.expect("(")
        if name == "Symbol":
            self.sympy_symbol()
        elif name == "Integer":
            self.accept("-")
            self.integer()
        elif name in _SYMPY_FUNCS:
            if name == "Pow" and self.pow_base_depth:
                raise ExprRefused("a power inside the base of a power")
            lo, hi = _SYMPY_FUNCS[name]
            count = 0
            while True:
                if name == "Pow" and count == 1:
                    self.sympy_exponent()
                elif name == "Pow":
                    # A power inside a power's base multiplies exponents: Pow(Pow(Pow(9, 64), 64), 64)
                    # is an integer sympy would spend forever computing.
                    self.pow_base_depth += 1
                    self.sympy_node()
                    self.pow_base_depth -= 1
                else:
                    self.sympy_node()
                count += 1
                if not self.accept(","):
                    break
            if not lo <= count <= hi:
                raise ExprRefused(f"{name} takes {lo}..{hi} arguments, got {count}")
        else:
            raise ExprRefused(f"sympy constructor {name!r} is not allowed")
        self.expect(")")
        self.leave()

    def sympy_symbol(self) -> None:
        tok = self.tok
        if tok.kind != "str" or not _SYMBOL_NAME.fullmatch(tok.text[1:-1]):
            raise self.fail("expected a shape symbol name like 's0'")
        self.i += 1
        while self.accept(","):
            key = self.tok
            if key.kind != "name" or key.text not in _SYMBOL_ASSUMPTIONS:
                raise self.fail("expected a symbol assumption (positive=, integer=, ...)")
            self.i += 1
            self.expect("=")
            if not (self.accept("True", "name") or self.accept("False", "name")):
                raise self.fail("expected True or False")

    def sympy_exponent(self) -> None:
        self.enter()
        if not (self.tok.kind == "name" and self.tok.text == "Integer"):
            raise self.fail("Pow exponent must be an Integer")
        self.i += 1
        self.expect("(")
        if self.integer() > _MAX_POW_EXPONENT:
            raise ExprRefused(f"Pow exponent larger than {_MAX_POW_EXPONENT}")
        self.expect(")")
        self.leave()

    # -- Python-like infix: guards and range-constraint keys -------------------
    def boolean(self) -> None:
        self.enter()
        self.conjunction()
        while self.accept("or", "name"):
            self.conjunction()
        self.leave()

    def conjunction(self) -> None:
        self.negation()
        while self.accept("and", "name"):
            self.negation()

    def negation(self) -> None:
        if self.accept("not", "name"):
            self.enter()
            self.negation()
            self.leave()
            return
        self.comparison()

    def comparison(self) -> None:
        self.arith()
        while self.tok.kind == "op" and self.tok.text in ("==", "!=", "<=", ">=", "<", ">"):
            self.i += 1
            self.arith()

    def arith(self) -> None:
        self.enter()
        self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            self.i += 1
            self.term()
        self.leave()

    def term(self) -> None:
        self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "//", "%"):
            self.i += 1
            self.unary()

    def unary(self) -> None:
        if self.accept("-"):
            self.enter()
            self.unary()
            self.leave()
            return
        self.atom()

    def atom(self) -> None:
        tok = self.tok
        if tok.kind == "int":
            self.integer()
        elif self.accept("("):
            self.boolean()
            self.expect(")")
        elif tok.kind == "name" and tok.text in ("max", "min", "Max", "Min"):
            self.i += 1
            self.expect("(")
            self.arith()
            while self.accept(","):
                self.arith()
            self.expect(")")
        else:
            self.leaf()

    def leaf(self) -> None:  # overridden per grammar
        raise self.fail("expected a number or '('")


class _GuardParser(_Parser):
    """``L['x'].size()[1] == L['mask'].size()[1]`` and friends."""

    def leaf(self) -> None:
        if not self.accept("L", "name"):
            raise self.fail("expected an input reference L['name']")
        self.subscript(names_only=True)
        while self.peek("["):
            self.subscript(names_only=False)
        if self.accept("."):
            method = self.tok
            if method.kind != "name" or method.text not in ("size", "stride", "storage_offset"):
                raise self.fail("only .size(), .stride() or .storage_offset() may follow an input")
            self.i += 1
            self.expect("(")
            self.expect(")")
            if method.text != "storage_offset":
                self.subscript(names_only=False, ints_only=True)

    def subscript(self, *, names_only: bool, ints_only: bool = False) -> None:
        self.expect("[")
        tok = self.tok
        if tok.kind == "str" and not ints_only and _INPUT_NAME.fullmatch(tok.text[1:-1]):
            self.i += 1
        elif tok.kind == "int" and not names_only:
            self.integer()
        else:
            raise self.fail("expected a quoted input name or an index")
        self.expect("]")


class _SymbolKeyParser(_Parser):
    """``s27`` or a derived dimension such as ``2*s24``."""

    def leaf(self) -> None:
        tok = self.tok
        if tok.kind != "name" or not _SYMBOL_NAME.fullmatch(tok.text):
            raise self.fail("expected a shape symbol like 's0'")
        self.i += 1


def check_sympy_repr(text: object) -> None:
    """Accept a sympy ``srepr`` of integer shape arithmetic, as torch serialises SymInts."""
    parser = _Parser(text)
    parser.sympy_node()
    parser.finish()


def check_guard(text: object) -> None:
    """Accept one line of export guard code (comparisons over input sizes)."""
    parser = _GuardParser(text)
    parser.boolean()
    parser.finish()


def check_symbol_key(text: object) -> None:
    """Accept a ``range_constraints`` key: a symbol or integer arithmetic over symbols."""
    parser = _SymbolKeyParser(text)
    parser.arith()
    parser.finish()
