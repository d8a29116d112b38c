"""JSON schemas from signatures and docstrings (``vega_trio.tools._schema``)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import pathlib
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict

import attrs
import pytest
import trio

from vega_trio import ToolSchemaError
from vega_trio.llm._protocol import ToolSchema
from vega_trio.tools import function_schema, tool_schema
from vega_trio.tools._docstrings import parse_docstring

# --------------------------------------------------------------------------------------------
# Types used by the table (module level, so `from __future__ import annotations` resolves them)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Point:
    """A point on the plane.

    Attributes:
        x: horizontal position.
        y: vertical position.
    """

    x: int
    y: int = 0


@attrs.define
class Labelled:
    text: str = attrs.field(metadata={"description": "the label"})
    _secret: str = "s"
    derived: int = attrs.field(init=False, default=0)


@dataclasses.dataclass
class Box:
    width: float
    tags: list[str] = dataclasses.field(default_factory=list)


class Options(TypedDict):
    mode: str
    depth: NotRequired[int]


class Partial(TypedDict, total=False):
    a: int
    b: typing.Required[str]


@attrs.frozen
class Node:
    value: int
    child: Node | None = None


UserId = typing.NewType("UserId", int)


# --------------------------------------------------------------------------------------------
# The table: signature → expected input schema


def scalars(s: str, i: int, f: float, b: bool, n: None) -> None:
    """Scalars."""


def defaults(
    a: int, b: str = "x", c: bool = False, d: float = 0.5, e: list[int] | None = None
) -> None:
    """Defaults."""


def containers(
    a: list[int],
    b: tuple[int, ...],
    c: tuple[str, int],
    d: set[str],
    e: frozenset[int],
    f: dict[str, float],
    g: list,  # type: ignore[type-arg]
    h: dict,  # type: ignore[type-arg]
    i: Sequence[str],
    j: Mapping[str, bool],
) -> None:
    """Containers."""


def optionals(a: Optional[int], b: str | None, c: int | str, d: Any) -> None:  # noqa: UP045
    """Unions."""


def choices(
    a: Literal["x", "y"], b: Literal[1, 2], c: Color, d: Level, e: Color = Color.BLUE
) -> None:
    """Enums."""


def objects(p: Point, box: Box, opts: Options, part: Partial, lab: Labelled) -> None:
    """Objects."""


def annotated(
    a: Annotated[int, "how many"], b: list[Annotated[str, "a tag"]], path: pathlib.Path, uid: UserId
) -> None:
    """Annotated and friends."""


def no_params() -> None:
    """Nothing."""


POINT_SCHEMA = {
    "type": "object",
    "description": "A point on the plane.",
    "properties": {
        "x": {"type": "integer", "description": "horizontal position."},
        "y": {"type": "integer", "description": "vertical position."},
    },
    "required": ["x"],
    "additionalProperties": False,
}

TABLE: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (
        scalars,
        {
            "type": "object",
            "properties": {
                "s": {"type": "string"},
                "i": {"type": "integer"},
                "f": {"type": "number"},
                "b": {"type": "boolean"},
                "n": {"type": "null"},
            },
            "required": ["s", "i", "f", "b", "n"],
            "additionalProperties": False,
        },
    ),
    (
        defaults,
        {
            "type": "object",
            "properties": {
                "a": {"type": "integer"},
                "b": {"type": "string", "default": "x"},
                "c": {"type": "boolean", "default": False},
                "d": {"type": "number", "default": 0.5},
                "e": {
                    "anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}],
                    "default": None,
                },
            },
            "required": ["a"],
            "additionalProperties": False,
        },
    ),
    (
        containers,
        {
            "type": "object",
            "properties": {
                "a": {"type": "array", "items": {"type": "integer"}},
                "b": {"type": "array", "items": {"type": "integer"}},
                "c": {
                    "type": "array",
                    "prefixItems": [{"type": "string"}, {"type": "integer"}],
                    "items": False,
                    "minItems": 2,
                    "maxItems": 2,
                },
                "d": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "e": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
                "f": {"type": "object", "additionalProperties": {"type": "number"}},
                "g": {"type": "array"},
                "h": {"type": "object"},
                "i": {"type": "array", "items": {"type": "string"}},
                "j": {"type": "object", "additionalProperties": {"type": "boolean"}},
            },
            "required": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
            "additionalProperties": False,
        },
    ),
    (
        optionals,
        {
            "type": "object",
            "properties": {
                "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "c": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "d": {},
            },
            "required": ["a", "b", "c", "d"],
            "additionalProperties": False,
        },
    ),
    (
        choices,
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "enum": ["x", "y"]},
                "b": {"type": "integer", "enum": [1, 2]},
                "c": {"type": "string", "enum": ["red", "blue"]},
                "d": {"type": "integer", "enum": [1, 2]},
                "e": {"type": "string", "enum": ["red", "blue"], "default": "blue"},
            },
            "required": ["a", "b", "c", "d"],
            "additionalProperties": False,
        },
    ),
    (
        objects,
        {
            "type": "object",
            "properties": {
                "p": POINT_SCHEMA,
                "box": {
                    "type": "object",
                    "properties": {
                        "width": {"type": "number"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["width"],
                    "additionalProperties": False,
                },
                "opts": {
                    "type": "object",
                    "properties": {"mode": {"type": "string"}, "depth": {"type": "integer"}},
                    "required": ["mode"],
                    "additionalProperties": False,
                },
                "part": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                    "required": ["b"],
                    "additionalProperties": False,
                },
                "lab": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "description": "the label"},
                        "secret": {"type": "string"},
                    },
                    "required": ["text"],
                    "additionalProperties": False,
                },
            },
            "required": ["p", "box", "opts", "part", "lab"],
            "additionalProperties": False,
        },
    ),
    (
        annotated,
        {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "description": "how many"},
                "b": {"type": "array", "items": {"type": "string", "description": "a tag"}},
                "path": {"type": "string"},
                "uid": {"type": "integer"},
            },
            "required": ["a", "b", "path", "uid"],
            "additionalProperties": False,
        },
    ),
    (no_params, {"type": "object", "properties": {}, "additionalProperties": False}),
]


@pytest.mark.parametrize(("fn", "expected"), TABLE, ids=[fn.__name__ for fn, _ in TABLE])
def test_signature_to_schema(fn: Callable[..., Any], expected: dict[str, Any]) -> None:
    """Each signature in the table produces exactly the expected JSON schema."""
    assert tool_schema(fn).input_schema == expected


def test_tool_schema_name_and_description() -> None:
    """tool_schema uses the function name and docstring summary, and honours overrides."""
    assert tool_schema(no_params) == ToolSchema(
        name="no_params", description="Nothing.", input_schema=TABLE[-1][1]
    )
    overridden = tool_schema(no_params, name="nothing_at_all", description="Does nothing.")
    assert (overridden.name, overridden.description) == ("nothing_at_all", "Does nothing.")


def test_annotations_without_future_import() -> None:
    """Real (non-string) annotations work as well as postponed ones."""
    namespace: dict[str, Any] = {}
    exec(
        "from typing import Literal\n"
        "def f(a: int, b: 'list[str]', c: Literal['x'] = 'x') -> None:\n"
        "    '''Real annotations.'''\n",
        namespace,
    )
    assert tool_schema(namespace["f"]).input_schema == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "array", "items": {"type": "string"}},
            "c": {"type": "string", "enum": ["x"], "default": "x"},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    }


def test_methods_partials_and_callable_objects() -> None:
    """Bound methods, partials and callable objects are analysed without self / bound args."""

    class Greeter:
        def greet(self, who: str) -> str:
            """Greet someone."""
            return who

        async def __call__(self, times: int) -> str:
            """Say hello a few times."""
            return "hi" * times

    bound = function_schema(Greeter().greet)
    assert (bound.name, bound.description, bound.is_async) == ("greet", "Greet someone.", False)
    assert bound.input_schema["required"] == ["who"]

    partial = function_schema(functools.partial(defaults, 1))
    assert partial.name == "defaults"
    assert list(partial.input_schema["properties"]) == ["b", "c", "d", "e"]

    instance = function_schema(Greeter(), name="hello")
    assert (instance.name, instance.description, instance.is_async) == (
        "hello",
        "Say hello a few times.",
        True,
    )
    assert instance.input_schema["properties"] == {"times": {"type": "integer"}}


# --------------------------------------------------------------------------------------------
# Docstrings


def google_doc(query: str, limit: int = 10, *, exact: bool = False) -> None:
    """Search the index
    for documents.

    Longer explanation that is not part of the summary.

    Args:
        query (str): what to look for;
            may span lines.
        limit: at most this many results.
        exact: match whole words only.

    Returns:
        Nothing.
    """


def sphinx_doc(query: str, limit: int = 10) -> None:
    """Search the index.

    :param str query: what to look for;
        may span lines.
    :param limit: at most this many results.
    :returns: nothing.
    """


def numpy_doc(query: str, limit: int = 10) -> None:
    """Search the index.

    Parameters
    ----------
    query : str
        what to look for;
        may span lines.
    limit : int, optional
        at most this many results.

    Returns
    -------
    None
    """


def no_blank_line_doc(query: str) -> None:
    """Search the index.
    Args:
        query: what to look for.
    """


def annotated_wins_doc(query: Annotated[str, "from Annotated"]) -> None:
    """Search.

    Args:
        query: from the docstring.
    """


@pytest.mark.parametrize("fn", [google_doc, sphinx_doc, numpy_doc])
def test_parameter_descriptions_from_docstring_styles(fn: Callable[..., Any]) -> None:
    """Google, Sphinx and NumPy docstrings all yield the same per-parameter descriptions."""
    properties = tool_schema(fn).input_schema["properties"]
    assert properties["query"]["description"] == "what to look for; may span lines."
    assert properties["limit"]["description"] == "at most this many results."


def test_summary_is_first_paragraph_joined() -> None:
    """The description is the first paragraph, its lines joined with spaces."""
    assert tool_schema(google_doc).description == "Search the index for documents."
    assert tool_schema(google_doc).input_schema["properties"]["exact"] == {
        "type": "boolean",
        "description": "match whole words only.",
        "default": False,
    }


def test_summary_stops_at_section_header_without_blank_line() -> None:
    """An Args: header right after the summary ends the summary and is still parsed."""
    schema = tool_schema(no_blank_line_doc)
    assert schema.description == "Search the index."
    assert schema.input_schema["properties"]["query"]["description"] == "what to look for."


def test_annotated_description_wins_over_docstring() -> None:
    """Annotated[T, "..."] is preferred to the docstring's description of the parameter."""
    properties = tool_schema(annotated_wins_doc).input_schema["properties"]
    assert properties["query"]["description"] == "from Annotated"


def test_missing_docstring_gives_empty_description() -> None:
    """A function without a docstring gets an empty description and no parameter docs."""

    def bare(x: int) -> None:
        pass

    assert tool_schema(bare).description == ""
    assert tool_schema(bare).input_schema["properties"] == {"x": {"type": "integer"}}


def test_parse_docstring_attributes_and_sphinx_ivar() -> None:
    """Attributes sections and :ivar: fields describe class fields, not parameters."""
    parsed = parse_docstring(
        """Thing.

        Attributes:
            a: first.
        :ivar b: second.
        """
    )
    assert parsed.summary == "Thing."
    assert dict(parsed.attributes) == {"a": "first.", "b": "second."}
    assert dict(parsed.params) == {}


# --------------------------------------------------------------------------------------------
# Errors


def star_args(a: int, *rest: int) -> None:
    """Bad."""


def star_kwargs(a: int, **extra: int) -> None:
    """Bad."""


def unannotated(a: int, b) -> None:  # type: ignore[no-untyped-def]
    """Bad."""


def positional_only(a: int, /) -> None:
    """Bad."""


def unsupported(data: bytes) -> None:
    """Bad."""


def int_keys(data: dict[int, str]) -> None:
    """Bad."""


def recursive(node: Node) -> None:
    """Bad."""


def nested_unsupported(box: Labelled, when: list[complex]) -> None:
    """Bad."""


@pytest.mark.parametrize(
    ("fn", "fragments"),
    [
        (star_args, ["parameter 'rest'", "star_args", "*rest", "explicit annotated parameters"]),
        (star_kwargs, ["parameter 'extra'", "star_kwargs", "**extra", "explicit annotated"]),
        (unannotated, ["parameter 'b'", "unannotated", "no type annotation", "'b: str'"]),
        (positional_only, ["parameter 'a'", "positional-only", "Remove the '/'"]),
        (unsupported, ["parameter 'data'", "unsupported", "<class 'bytes'>", "Use str, int"]),
        (int_keys, ["parameter 'data'", "JSON object keys are always strings"]),
        (recursive, ["parameter 'node'", "field Node.child", "refers to itself"]),
        (nested_unsupported, ["parameter 'when'", "<class 'complex'>"]),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_schema_errors_name_function_parameter_and_fix(
    fn: Callable[..., Any], fragments: list[str]
) -> None:
    """Signatures that can't become schemas raise ToolSchemaError saying where and what to do."""
    with pytest.raises(ToolSchemaError) as info:
        tool_schema(fn)
    message = str(info.value)
    assert f"tests.tools.test_schema.{fn.__qualname__}" in message
    for fragment in fragments:
        assert fragment in message


def test_unresolvable_annotation_explains_module_level_rule() -> None:
    """A type defined inside a function can't be resolved; the error says to move it."""

    class Local:
        pass

    def uses_local(x: Local) -> None:
        """Bad."""

    with pytest.raises(ToolSchemaError, match="move types defined inside a function to module"):
        tool_schema(uses_local)


def test_lambda_needs_a_name() -> None:
    """A lambda has no usable tool name unless one is given."""
    with pytest.raises(ToolSchemaError, match=r"register\(fn, name='...'\)"):
        tool_schema(lambda: None)
    assert tool_schema(lambda: None, name="noop").name == "noop"


def test_async_generator_is_refused() -> None:
    """An async generator can't be a tool; the error says to return a list."""

    async def stream() -> typing.AsyncIterator[int]:
        await trio.lowlevel.checkpoint()
        yield 1

    with pytest.raises(ToolSchemaError, match="return a list instead"):
        tool_schema(stream)


def test_non_json_literal_and_enum_values_are_refused() -> None:
    """Literal and Enum values must be JSON scalars."""

    def bad_literal(x: Literal[b"raw"]) -> None:
        """Bad."""

    with pytest.raises(ToolSchemaError, match="not a JSON scalar"):
        tool_schema(bad_literal)
