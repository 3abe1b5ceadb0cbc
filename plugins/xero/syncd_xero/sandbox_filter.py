"""The sandbox's reading of Xero's ``where`` filter: enough of its C#-like syntax for Contacts.

Supported: ``Field==value``, ``Field!=value`` (strings, ``null``, ``true``/``false``, numbers,
``Guid("...")``), ``Field.Contains("x")``, ``.StartsWith``, ``.EndsWith``, ``.ToLower()`` and
``.ToUpper()`` on the left side, ``AND``/``&&``, ``OR``/``||``, ``!``/``NOT`` and parentheses.

String comparisons ignore case. Xero does not document this; its filter is evaluated by a
database with a case-insensitive collation as far as integrators report, so the sandbox does the
same and the connector compares emails again itself (vendors.md does not cover it: inferred).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


class FilterError(ValueError):
    """The filter could not be parsed (Xero answers ``QueryParseException``)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|&&|\|\||[()!.,])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)

_METHODS = {"contains", "startswith", "endswith"}
_TRANSFORMS = {"tolower", "toupper"}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise FilterError(f"unexpected text at position {position}: {text[position:][:20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("the filter ends too early")
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        _kind, got = self.take()
        if got != value:
            raise FilterError(f"expected {value!r}, found {got!r}")

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        if token is None:
            return False
        return (token[0] == "word" and token[1].upper() in words) or token[1] in words

    def parse(self) -> Predicate:
        predicate = self.any_of()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def any_of(self) -> Predicate:
        parts = [self.all_of()]
        while self.at_word("OR", "||"):
            self.take()
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else (lambda c: any(p(c) for p in parts))

    def all_of(self) -> Predicate:
        parts = [self.negation()]
        while self.at_word("AND", "&&"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda c: all(p(c) for p in parts))

    def negation(self) -> Predicate:
        if self.at_word("NOT", "!"):
            self.take()
            inner = self.negation()
            return lambda c: not inner(c)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.any_of()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, field = self.take()
        if kind != "word":
            raise FilterError(f"expected a field name, found {field!r}")
        path = [field]
        transforms: list[str] = []
        while self.peek() == ("op", "."):
            self.take()
            _, name = self.take()
            lowered = name.lower()
            if lowered in _METHODS:
                self.expect("(")
                argument = self.literal()
                self.expect(")")
                return _method(path, transforms, lowered, argument)
            if lowered in _TRANSFORMS:
                self.expect("(")
                self.expect(")")
                transforms.append(lowered)
            else:
                path.append(name)
        kind, op = self.take()
        if op not in ("==", "!="):
            raise FilterError(f"expected == or !=, found {op!r}")
        value = self.literal()
        return _compare(path, transforms, op, value)

    def literal(self) -> object:
        kind, value = self.take()
        if kind == "string":
            return value
        if kind == "number":
            return float(value)
        if kind == "word":
            lowered = value.lower()
            if lowered == "null":
                return None
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "guid":
                self.expect("(")
                inner = self.literal()
                self.expect(")")
                return inner
        raise FilterError(f"expected a value, found {value!r}")


def _lookup(contact: Mapping[str, Any], path: list[str]) -> object:
    value: object = contact
    for name in path:
        if not isinstance(value, Mapping):
            return None
        # Xero's field names are case-insensitive in filters
        value = next((v for k, v in value.items() if k.lower() == name.lower()), None)
    return value


def _fold(value: object, transforms: list[str]) -> object:
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value


def _compare(path: list[str], transforms: list[str], op: str, expected: object) -> Predicate:
    def predicate(contact: Mapping[str, Any]) -> bool:
        actual = _lookup(contact, path)
        if actual == "" and expected is None:
            actual = None
        equal = _fold(actual, transforms) == _fold(expected, transforms)
        return equal if op == "==" else not equal

    return predicate


def _method(path: list[str], transforms: list[str], method: str, argument: object) -> Predicate:
    needle = str(argument or "").casefold()

    def predicate(contact: Mapping[str, Any]) -> bool:
        actual = _lookup(contact, path)
        if not isinstance(actual, str):
            return False
        haystack = actual.casefold()
        if method == "contains":
            return needle in haystack
        if method == "startswith":
            return haystack.startswith(needle)
        return haystack.endswith(needle)

    return predicate


def parse_where(text: str) -> Predicate:
    """A predicate over stored contacts for a ``where`` expression."""
    if not text.strip():
        return lambda contact: True
    return _Parser(text).parse()
