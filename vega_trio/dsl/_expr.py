"""The expression language inside ``{{ ... }}`` and in conditions: tokenizer, recursive-descent
parser; the tree it builds is in :mod:`._expr_tree`.

Grammar (lowest precedence first)::

    expression  := and_expr ( "or" and_expr )*
    and_expr    := not_expr ( "and" not_expr )*
    not_expr    := "not" not_expr | comparison
    comparison  := filtered [ COMPARE filtered ]
    COMPARE     := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
    filtered    := primary ( "|" NAME [ ":" argument ] )*
    primary     := STRING | NUMBER | "true" | "false" | "none" | "null"
                 | PATH                      # name, .name, user.name, items.0
                 | "(" expression ")"
                 | "{{" expression "}}"      # a template placeholder inside a condition

Nothing here calls ``eval``: the tree's nodes look variables up in a mapping and apply the
filters of :data:`FILTERS`. Parse errors are :class:`TemplateError` with the offset of the
offending character; render-time failures (an undefined variable) are :class:`_RenderFailure`
until the template or condition that owns the text turns them into a ``TemplateError``.
"""

from __future__ import annotations

import difflib
import re
from typing import Final, NamedTuple

import attrs

from ._errors import TemplateError
from ._expr_tree import (
    FILTER_LIST,
    FILTER_TABLE,
    And,
    Compare,
    FilterCall,
    Filtered,
    Interpolation,
    Literal,
    Node,
    Not,
    Or,
    Path,
    VariableRef,
)

__all__ = ["Parser", "parse_parts"]

# -- tokenizer --------------------------------------------------------------------------------

_IDENT: Final = r"[^\W\d]\w*(?:-\w+)*"
_TOKEN: Final = re.compile(
    rf"""
      (?P<open>\{{\{{)
    | (?P<close>\}}\}})
    | (?P<number>[+-]?(?:\d+\.\d+|\d+)(?:[eE][+-]?\d+)?)
    | (?P<path>\.?{_IDENT}(?:\.(?:{_IDENT}|\d+))*)
    | (?P<op>==|!=|<=|>=|<|>)
    | (?P<punct>[|():])
    """,
    re.VERBOSE,
)
_SPACE: Final = re.compile(r"\s*")
# An unquoted filter argument: `default:anon`, `join:,`, `truncate:100`, `default:n/a`.
_BARE_ARGUMENT: Final = re.compile(r"(?:[^\s|()'\"=!<>{}]|\{(?!\{)|\}(?!\}))+")
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "none", "null"})
_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")
MAX_DEPTH: Final = 40
"""How deeply parentheses, ``not`` and placeholders may nest (it keeps recursion bounded)."""

_CHAR_HINTS: Final = {
    "=": "to compare, write '==' (one '=' is not an operator)",
    "!": "write 'not x' to negate, or '!=' to compare",
    "&": "write 'and' to combine conditions",
    "[": "index a list with a dot: items.0",
    "]": "index a list with a dot: items.0",
    "}": "a placeholder ends with '}}'",
    "{": "a placeholder starts with '{{'",
    ".": "a path needs a name after each dot: user.name, items.0",
    "-": "there is no arithmetic in templates; a negative number is written -5",
    "+": "there is no arithmetic in templates",
    "*": "there is no arithmetic in templates",
    "/": "there is no arithmetic in templates; quote text that contains '/'",
    ",": "quote text that contains ',' (for example join:\", \")",
}


_VALUE_HINT: Final = "a value is a variable, a quoted text, a number, true, false or none"


class Token(NamedTuple):
    kind: str  # open close number path keyword op | ( ) : string argument end
    value: object
    start: int
    end: int


def _describe(token: Token, text: str) -> str:
    if token.kind == "end":
        return "the end of the text"
    if token.kind == "close":
        return "'}}'"
    return repr(text[token.start : token.end])


# -- parser -----------------------------------------------------------------------------------


class Parser:
    """Parses one expression of ``content`` from ``start``.

    ``source`` is the text errors show and ``base`` the offset of ``content`` in it (they
    differ only for a quoted template inside a condition). Every node and reference gets its
    offset in ``source``.
    """

    def __init__(
        self,
        content: str,
        start: int,
        *,
        source: str,
        base: int,
        refs: list[VariableRef],
        filters: set[str],
        in_placeholder: bool,
    ) -> None:
        self.text = content
        self.pos = start
        self.source = source
        self.base = base
        self.refs = refs
        self.filters = filters
        self.placeholders = 1 if in_placeholder else 0
        self.depth = 0
        self._peeked: Token | None = None

    # -- errors

    def error(self, summary: str, position: int, hint: str = "") -> TemplateError:
        return TemplateError(summary, text=self.source, position=self.base + position, hint=hint)

    def _unexpected(self, token: Token, expected: str, hint: str = "") -> TemplateError:
        found = _describe(token, self.text)
        if token.kind == "end" and self.placeholders:
            hint = hint or "close the placeholder with '}}'"
        return self.error(f"expected {expected}, found {found}", token.start, hint)

    # -- tokens

    def peek(self) -> Token:
        if self._peeked is None:
            self._peeked = self._scan()
        return self._peeked

    def take(self) -> Token:
        token = self.peek()
        self._peeked = None
        return token

    def _skip_space(self) -> int:
        match = _SPACE.match(self.text, self.pos)
        assert match is not None
        return match.end()

    def _scan(self) -> Token:
        text = self.text
        pos = self._skip_space()
        if pos >= len(text):
            self.pos = pos
            return Token("end", None, pos, pos)
        char = text[pos]
        if char in "\"'":
            token = self._string(pos)
        else:
            match = _TOKEN.match(text, pos)
            if match is None:
                raise self._bad_character(pos)
            kind = match.lastgroup
            assert kind is not None
            value: object = match.group()
            if kind == "number":
                raw = match.group()
                value = float(raw) if any(c in raw for c in ".eE") else int(raw)
            elif kind == "punct":
                kind = match.group()
            elif kind == "path" and match.group().lower() in _KEYWORDS:
                kind, value = "keyword", match.group().lower()
            token = Token(kind, value, pos, match.end())
        self.pos = token.end
        return token

    def _bad_character(self, pos: int) -> TemplateError:
        char = self.text[pos]
        if self.text.startswith("&&", pos):
            hint = "write 'and' to combine conditions"
        elif self.text.startswith("||", pos):
            hint = "write 'or' to combine conditions"
        else:
            hint = _CHAR_HINTS.get(char, "")
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        return self.error(f"unexpected character {shown}", pos, hint)

    def _string(self, start: int) -> Token:
        text = self.text
        quote = text[start]
        out: list[str] = []
        i = start + 1
        end = len(text)
        while i < end:
            char = text[i]
            if char == quote:
                return Token("string", "".join(out), start, i + 1)
            if char == "\\" and i + 1 < end:
                escaped = text[i + 1]
                if escaped in _ESCAPES:
                    out.append(_ESCAPES[escaped])
                    i += 2
                    continue
                if escaped == "u":
                    digits = text[i + 2 : i + 6]
                    if len(digits) != 4 or not _HEX.issuperset(digits):
                        raise self.error(
                            "bad \\u escape in a string",
                            i,
                            "write \\u followed by four hex digits, like \\u00e9",
                        )
                    out.append(chr(int(digits, 16)))
                    i += 6
                    continue
                # NOTE: an unknown escape is kept as written (`"\d"` is backslash, d) so
                # that text pasted from elsewhere does not fail on a harmless backslash.
                out.append(char)
                i += 1
                continue
            out.append(char)
            i += 1
        raise self.error(
            "unterminated string",
            start,
            f"close the string with {quote}; write \\{quote} for a {quote} inside it",
        )

    def _argument(self, colon: Token, filter_name: str) -> Token:
        """The argument after ``name:``: a quoted string or an unquoted word."""
        pos = self._skip_space()
        if pos < len(self.text) and self.text[pos] in "\"'":
            token = self._string(pos)
        else:
            match = _BARE_ARGUMENT.match(self.text, pos)
            if match is None:
                example = FILTER_TABLE[filter_name].example
                raise self.error(
                    f"filter {filter_name!r} is missing its argument after ':'",
                    colon.end,
                    f"write it like {example}",
                )
            token = Token("argument", match.group(), pos, match.end())
        self.pos = token.end
        return token

    # -- grammar

    def placeholder(self, opened_at: int) -> tuple[Node, int]:
        """After ``{{``: one expression and the ``}}``; returns the node and the offset
        just past ``}}``."""
        if self.peek().kind == "close":
            raise self.error(
                "empty placeholder '{{ }}'",
                opened_at,
                "put a variable inside, like {{ topic }}; to write '{{' as text, use {{ \"{{\" }}",
            )
        node = self.expression()
        token = self.take()
        if token.kind == "end":
            raise self.error(
                "'{{' is never closed",
                opened_at,
                "close the placeholder with '}}'; to write '{{' as text, use {{ \"{{\" }}",
            )
        if token.kind != "close":
            raise self._unexpected(token, "'}}' or a filter ('| upper')")
        return node, token.end

    def condition(self) -> Node:
        """The whole text as one condition."""
        if self.peek().kind == "end":
            raise self.error(
                "empty condition", self.pos, "write a condition like: status == 'done'"
            )
        node = self.expression()
        token = self.take()
        if token.kind != "end":
            raise self._unexpected(
                token,
                "the end of the condition",
                "combine conditions with 'and' / 'or'; quote text that contains spaces",
            )
        return node

    def _nest(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"nested more than {MAX_DEPTH} levels deep",
                position,
                "split the condition into simpler steps",
            )

    def expression(self) -> Node:
        node = self._and()
        while self._is_keyword(self.peek(), "or"):
            self.take()
            node = Or(node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._is_keyword(self.peek(), "and"):
            self.take()
            node = And(node, self._not())
        return node

    def _not(self) -> Node:
        token = self.peek()
        if self._is_keyword(token, "not"):
            self.take()
            self._nest(token.start)
            node = Not(self._not())
            self.depth -= 1
            return node
        return self._comparison()

    @staticmethod
    def _is_keyword(token: Token, word: str) -> bool:
        return token.kind == "keyword" and token.value == word

    def _comparison_operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op":
            self.take()
            return str(token.value)
        if self._is_keyword(token, "in"):
            self.take()
            return "in"
        if self._is_keyword(token, "not"):
            self.take()
            follow = self.take()
            if not self._is_keyword(follow, "in"):
                raise self._unexpected(follow, "'in' after 'not'", "write: x not in items")
            return "not in"
        return None

    def _comparison(self) -> Node:
        left = self._filtered()
        op = self._comparison_operator()
        if op is None:
            return left
        right = self._filtered()
        token = self.peek()
        if token.kind == "op" or self._is_keyword(token, "in"):
            raise self.error(
                "comparisons cannot be chained",
                token.start,
                "combine them with 'and': a < b and b < c",
            )
        return Compare(op, left, right)

    def _filtered(self) -> Node:
        first_ref = len(self.refs)
        node = self._primary()
        calls: list[FilterCall] = []
        while self.peek().kind == "|":
            self.take()
            calls.append(self._filter_call())
        if not calls:
            return node
        if any(call.name == "default" for call in calls):
            for index in range(first_ref, len(self.refs)):
                self.refs[index] = attrs.evolve(self.refs[index], defaulted=True)
        return Filtered(node, tuple(calls))

    def _filter_call(self) -> FilterCall:
        token = self.take()
        if token.kind == "|":
            raise self.error("unexpected '||'", token.start - 1, "write 'or' to combine conditions")
        name = str(token.value) if token.kind in ("path", "keyword") else ""
        if not name or name.startswith(".") or "." in name:
            raise self._unexpected(
                token, "a filter name after '|'", f"the filters are: {FILTER_LIST}"
            )
        spec = FILTER_TABLE.get(name)
        if spec is None:
            matches = difflib.get_close_matches(name, FILTER_TABLE, n=1, cutoff=0.6)
            guess = f"did you mean {matches[0]!r}? " if matches else ""
            raise self.error(
                f"unknown filter {name!r}", token.start, f"{guess}The filters are: {FILTER_LIST}"
            )
        self.filters.add(name)
        if self.peek().kind != ":":
            if spec.takes == "required":
                raise self.error(
                    f"filter {name!r} needs an argument", token.start, f"write {spec.example}"
                )
            return FilterCall(name, spec.function, spec.default_argument)
        colon = self.take()
        if spec.takes == "none":
            raise self.error(
                f"filter {name!r} takes no argument",
                colon.start,
                f"remove the ':' and what follows: | {name}",
            )
        argument = self._argument(colon, name)
        return FilterCall(name, spec.function, self._filter_argument(name, argument))

    def _filter_argument(self, name: str, token: Token) -> object:
        raw = str(token.value)
        if name == "truncate":
            if not raw.strip().isdecimal() or int(raw) < 1:
                raise self.error(
                    f"truncate needs a whole number of characters (1 or more), got {raw!r}",
                    token.start,
                    "write it like truncate:100",
                )
            return int(raw)
        if name == "default" and token.kind == "argument":
            return _bare_literal(raw)
        return raw

    def _primary(self) -> Node:
        token = self.take()
        kind = token.kind
        if kind == "string":
            value = str(token.value)
            if self.placeholders == 0 and "{{" in value:
                return self._interpolation(value, token.start)
            return Literal(value)
        if kind == "number":
            return Literal(token.value)
        if kind == "keyword":
            word = token.value
            if word in ("true", "false"):
                return Literal(word == "true")
            if word in ("none", "null"):
                return Literal(None)
            raise self._unexpected(
                token, "a value", "a value is a variable, a quoted text or a number"
            )
        if kind == "path":
            return self._path(str(token.value), token.start)
        if kind == "(":
            self._nest(token.start)
            node = self.expression()
            closing = self.take()
            if closing.kind == "end":
                raise self.error("'(' is never closed", token.start, "add the missing ')'")
            if closing.kind != ")":
                raise self._unexpected(closing, "')'")
            self.depth -= 1
            return node
        if kind == "open":
            self._nest(token.start)
            self.placeholders += 1
            node = self.expression()
            closing = self.take()
            if closing.kind != "close":
                raise self._unexpected(closing, "'}}'")
            self.placeholders -= 1
            self.depth -= 1
            return node
        raise self._unexpected(token, "a value", _VALUE_HINT)

    def _path(self, written: str, start: int) -> Node:
        keys = tuple(written.removeprefix(".").split("."))
        if len(keys) > 1 and keys[0].lower() in _KEYWORDS:
            raise self.error(
                f"{keys[0]!r} is a keyword and cannot start a path",
                start,
                f"write .{written} to read a variable named {keys[0]!r}",
            )
        position = self.base + start
        node = Path(keys, position)
        self.refs.append(VariableRef(name=keys[0], path=node.path, position=position))
        return node

    def _interpolation(self, value: str, start: int) -> Node:
        # NOTE: offsets inside the string are exact unless an escape precedes them; then
        # they are off by the escape's length, which still points near the problem.
        parts = parse_parts(
            value,
            source=self.source,
            base=self.base + start + 1,
            refs=self.refs,
            filters=self.filters,
        )
        return Interpolation(tuple(parts))


def _bare_literal(raw: str) -> object:
    """An unquoted ``default:`` argument: none/null, true/false, a number, else text."""
    word = raw.lower()
    if "_" in raw:
        return raw
    if word in ("none", "null"):
        return None
    if word in ("true", "false"):
        return word == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if raw[-1:].isdigit() else raw  # "inf", "nan" stay text


def parse_parts(
    text: str,
    *,
    source: str,
    base: int,
    refs: list[VariableRef],
    filters: set[str],
) -> list[str | Node]:
    """Split a template into literal text and placeholder trees (adjacent text merged)."""
    parts: list[str | Node] = []
    position = 0
    while True:
        opened = text.find("{{", position)
        if opened < 0:
            if position < len(text):
                parts.append(text[position:])
            return parts
        if opened > position:
            parts.append(text[position:opened])
        parser = Parser(
            text,
            opened + 2,
            source=source,
            base=base,
            refs=refs,
            filters=filters,
            in_placeholder=True,
        )
        node, position = parser.placeholder(opened)
        parts.append(node)
