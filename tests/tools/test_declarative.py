"""Declarative tools: parameters, templates and definition errors, shared by HTTP and exec."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from vega_trio import ToolSchemaError
from vega_trio.tools import (
    DeclarativeTool,
    ExecImplementation,
    HttpImplementation,
    ToolArgumentError,
    ToolCall,
    ToolDefinitionError,
    ToolParam,
    Tools,
)

ECHO_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"


def echo_tool(*args: str, params: list[ToolParam], **options: Any) -> DeclarativeTool:
    """An exec tool that prints its arguments (after the program) as a JSON list."""
    return DeclarativeTool(
        name="echo",
        description="Echo the arguments.",
        params=params,
        implementation=ExecImplementation(
            command=[sys.executable, "-c", ECHO_ARGV, *args], **options
        ),
    )


def http_tool(url: str, params: list[ToolParam], **options: Any) -> DeclarativeTool:
    """An HTTP tool with the given URL template."""
    return DeclarativeTool(
        name="fetch", params=params, implementation=HttpImplementation(url=url, **options)
    )


def test_input_schema_has_types_enums_defaults_and_required() -> None:
    """The JSON schema lists every parameter with its type, enum and default; only params
    without a default are required, and no other arguments are allowed."""
    tool = echo_tool(
        "{{city}}",
        "{{units}}",
        "{{days}}",
        params=[
            ToolParam(name="city", description="City name"),
            ToolParam(name="units", enum=["metric", "imperial"], default="metric"),
            ToolParam(name="days", type="integer", required=False),
        ],
    ).to_tool()
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "units": {"type": "string", "enum": ["metric", "imperial"], "default": "metric"},
            "days": {"type": "integer"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert tool.description == "Echo the arguments."
    assert tool.timeout == 60.0


def test_unknown_placeholder_names_it_the_place_and_the_known_params() -> None:
    """A placeholder that names no parameter fails when the tool is defined, and the message
    names the placeholder, the field and the parameters there are (the seed's api_key case)."""
    with pytest.raises(ToolDefinitionError) as caught:
        http_tool(
            "https://api.weather.com/v1/current?city={{.city}}",
            params=[ToolParam(name="city")],
            headers={"Authorization": "Bearer {{.api_key}}"},
        )
    message = str(caught.value)
    assert "'{{.api_key}}'" in message
    assert "implementation.headers['Authorization']" in message
    assert "its parameters are: 'city'" in message
    assert "${API_KEY}" in message
    assert caught.value.tool == "fetch"
    assert caught.value.where == "implementation.headers['Authorization']"
    assert isinstance(caught.value, ToolSchemaError)


@pytest.mark.parametrize(
    ("command", "where"),
    [
        (["prog", "--city={{town}}"], "implementation.command[1]"),
        ("prog {{ .town }}", "implementation.command[1]"),
    ],
)
def test_unknown_placeholder_in_exec_command(command: Any, where: str) -> None:
    """Exec commands are checked too, with the argument's position in the message."""
    with pytest.raises(ToolDefinitionError, match=r"no parameter 'town'") as caught:
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="city")],
            implementation=ExecImplementation(command=command),
        )
    assert caught.value.where == where


@pytest.mark.parametrize(
    "url",
    [
        "https://x.test/{{ city | upper }}",
        "https://x.test/{{city",
        "https://x.test/city}}",
        "https://x.test/{{}}",
        "https://x.test/{{city.name}}",
    ],
)
def test_malformed_placeholders_are_definition_errors(url: str) -> None:
    """Filters, unbalanced braces and dotted paths are refused, not sent as text."""
    with pytest.raises(ToolDefinitionError, match=r"placeholder|unbalanced|without a matching"):
        http_tool(url, params=[ToolParam(name="city")])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"type": "integer", "default": "3"}, r"type 'integer' but its default is '3'"),
        ({"enum": ["a", "b"], "default": "c"}, r"default 'c' is not one of its enum"),
        ({"type": "integer", "enum": [1, "2"]}, r"its enum has '2'"),
        ({"enum": []}, r"empty enum"),
        ({"default": "x", "required": True}, r"required but has a default"),
        ({"type": "str"}, r"use one of 'string'"),
        ({"type": "boolean", "enum": [1]}, r"its enum has 1"),
    ],
)
def test_parameters_that_contradict_themselves_are_refused(
    options: dict[str, Any], match: str
) -> None:
    """A default or enum that doesn't fit the type, or a required param with a default."""
    with pytest.raises(ToolDefinitionError, match=match):
        ToolParam(name="p", **options)


@pytest.mark.parametrize("name", ["1st", "a-b", "a b", "", "x" * 65])
def test_parameter_names_must_be_template_names(name: str) -> None:
    """Names a template can't refer to are refused."""
    with pytest.raises(ToolDefinitionError, match=r"parameter name"):
        ToolParam(name=name)


def test_default_makes_a_param_optional() -> None:
    """``required`` is True exactly when there is no default, unless set to False."""
    assert ToolParam(name="a").required is True
    assert ToolParam(name="a", default=0, type="integer").required is False
    assert ToolParam(name="a", required=False).required is False


def test_duplicate_parameter_names_are_refused() -> None:
    """Two parameters with one name are an error naming it."""
    with pytest.raises(ToolDefinitionError, match=r"two parameters named 'x'"):
        echo_tool("{{x}}", params=[ToolParam(name="x"), ToolParam(name="x", type="integer")])


def test_invalid_tool_name_is_refused() -> None:
    """The tool name follows the registry's rules, checked when the tool is defined."""
    with pytest.raises(ToolDefinitionError, match=r"tool name 'my tool' is invalid"):
        DeclarativeTool(name="my tool", implementation=ExecImplementation(command="true"))


async def test_defaults_are_applied_and_enums_checked() -> None:
    """A missing optional argument gets its default; a value outside the enum, a wrong type,
    a missing required argument and an unknown argument are argument errors the model sees."""
    tools = Tools()
    tools.register(
        echo_tool(
            "{{city}}",
            "{{units}}",
            "{{days}}",
            "[{{note}}]",
            params=[
                ToolParam(name="city"),
                ToolParam(name="units", enum=["metric", "imperial"], default="metric"),
                ToolParam(name="days", type="integer", default=3),
                ToolParam(name="note", required=False),
            ],
        ).to_tool()
    )
    out = await tools.execute(ToolCall(id="1", name="echo", arguments={"city": "Oslo"}))
    assert out.strip() == '["Oslo", "metric", "3", "[]"]'
    out = await tools.execute(
        ToolCall(id="2", name="echo", arguments={"city": "Oslo", "units": "imperial", "days": 5})
    )
    assert out.strip() == '["Oslo", "imperial", "5", "[]"]'
    bad: list[tuple[dict[str, Any], str]] = [
        ({"city": "Oslo", "units": "kelvin"}, r"'units' must be one of \"metric\", \"imperial\""),
        ({"city": "Oslo", "days": "3"}, r"'days' must be an integer"),
        ({}, r"missing required argument 'city'"),
        ({"city": "Oslo", "country": "NO"}, r"unknown argument 'country'"),
    ]
    for arguments, match in bad:
        with pytest.raises(ToolArgumentError, match=match):
            await tools.execute(ToolCall(id="3", name="echo", arguments=arguments))


def test_string_command_is_split_before_interpolation() -> None:
    """A string command is split before interpolation: a quoted placeholder argument with
    spaces around it stays one argument of the program (which the timeout applies to)."""
    tool = DeclarativeTool(
        name="run_script",
        params=[ToolParam(name="script")],
        implementation=ExecImplementation(command="python3 '{{ .script }}' --", timeout=60),
    )
    assert tool.to_tool().timeout == 60


def test_program_cannot_be_a_placeholder() -> None:
    """The model may not choose the program."""
    with pytest.raises(ToolDefinitionError, match=r"the program '\{\{prog\}\}' is a placeholder"):
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="prog")],
            implementation=ExecImplementation(command="{{prog}} --help"),
        )


@pytest.mark.parametrize(
    "command",
    [
        "bash -c 'echo {{x}}'",
        "/bin/sh -ec 'ls {{x}}'",
        ["sh", "-c", "cat -- {{x}}"],
    ],
)
def test_placeholder_inside_a_shell_script_argument_is_refused(command: Any) -> None:
    """``sh -c 'echo {{x}}'`` would run the value as code; it is refused with a hint."""
    with pytest.raises(ToolDefinitionError, match=r"would run as shell code") as caught:
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="x")],
            implementation=ExecImplementation(command=command),
        )
    assert '"$1"' in str(caught.value)


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("echo '{{x}}'", "inside quotes"),
        ('echo "{{x}}"', "inside quotes"),
        ("echo hi # {{x}}", "inside a comment"),
        ("cat <<EOF\n{{x}}\nEOF", "here-document"),
        ("echo $(( {{x}} + 1 ))", "arithmetic"),
        ("echo \\{{x}}", "after a backslash"),
        ("echo ${{x}}", "after '$'"),
    ],
)
def test_shell_placeholders_only_where_quoting_is_safe(command: str, problem: str) -> None:
    """With shell: true a placeholder must stand where a shell-quoted word is one word."""
    with pytest.raises(ToolDefinitionError, match=re.escape(problem)):
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="x")],
            implementation=ExecImplementation(command=command, shell=True),
        )


def test_shell_placeholders_after_quotes_close_and_in_hash_words_are_allowed() -> None:
    """Quotes that close, and a ``#`` inside a word, leave the placeholder in plain context."""
    DeclarativeTool(
        name="t",
        params=[ToolParam(name="x")],
        implementation=ExecImplementation(command="echo 'a' \"b\" a#b {{x}} | tr a b", shell=True),
    )


def test_exec_command_that_cannot_be_split_is_refused() -> None:
    """An unclosed quote is a definition error, not a crash at call time."""
    with pytest.raises(ToolDefinitionError, match=r"can't be split"):
        DeclarativeTool(name="t", implementation=ExecImplementation(command="echo 'oops"))


@pytest.mark.parametrize(
    "url",
    ["https://{{host}}/x", "https://api.{{host}}.com/", "{{host}}://x.test/", "x.test/{{host}}"],
)
def test_url_scheme_and_host_cannot_be_placeholders(url: str) -> None:
    """The model may not choose the server by filling in part of the host or scheme."""
    with pytest.raises(ToolDefinitionError, match=r"scheme|http:// or https://"):
        http_tool(url, params=[ToolParam(name="host")])


def test_json_body_as_string_template_is_refused() -> None:
    """A JSON Content-Type with a text body would paste values into JSON: refused."""
    with pytest.raises(ToolDefinitionError, match=r"write the JSON body as a mapping"):
        http_tool(
            "https://x.test/",
            params=[ToolParam(name="q")],
            method="POST",
            headers={"Content-Type": "application/json"},
            body='{"q": "{{q}}"}',
        )


def test_body_keys_cannot_be_placeholders() -> None:
    """Placeholders go in body values, not keys."""
    with pytest.raises(ToolDefinitionError, match=r"body keys must be plain"):
        http_tool("https://x.test/", params=[ToolParam(name="q")], body={"{{q}}": 1})


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"method": "GE T"}, r"HTTP method"),
        ({"timeout": 0}, r"timeout must be a positive"),
        ({"max_response_bytes": -1}, r"max_response_bytes must be a positive"),
        ({"allowed_hosts": ["https://x.test/"]}, r"allowed host"),
        ({"headers": {"X-Env": "${BROKEN"}}, r"malformed environment reference"),
        ({"headers": {"Bad Name": "v"}}, r"header name"),
    ],
)
def test_invalid_http_settings_are_definition_errors(options: dict[str, Any], match: str) -> None:
    """Method, limits, host patterns, headers: each mistake is named."""
    with pytest.raises(ToolDefinitionError, match=match):
        http_tool("https://x.test/", params=[], **options)


# -- what will run: placeholders that would become code (SPEC §5.3) ---------------------------

SHELL_HINT = "sh -c 'echo \"$1\"' _ {{x}}"

# (command, the argument the error names, a text of the hint)
CODE_PLACEHOLDERS = [
    # wrappers in front of a shell
    ("env sh -c 'echo {{x}}'", "implementation.command[3]", SHELL_HINT),
    ("env -i PATH=/bin FOO=1 sh -c 'echo {{x}}'", "implementation.command[6]", SHELL_HINT),
    ("/usr/bin/env bash -c {{x}}", "implementation.command[3]", SHELL_HINT),
    ("timeout 5 sh -c 'echo {{x}}'", "implementation.command[4]", SHELL_HINT),
    ("timeout -s KILL --preserve-status 5 bash -c {{x}}", "implementation.command[7]", SHELL_HINT),
    ("nice sh -c 'echo {{x}}'", "implementation.command[3]", SHELL_HINT),
    ("nice -n 10 sh -c 'echo {{x}}'", "implementation.command[5]", SHELL_HINT),
    ("busybox sh -c 'echo {{x}}'", "implementation.command[3]", SHELL_HINT),
    ("busybox ash -c {{x}}", "implementation.command[3]", SHELL_HINT),
    ("nohup setsid ionice -c 3 stdbuf -oL sh -c {{x}}", "implementation.command[9]", SHELL_HINT),
    ("xargs -0 sh -c 'echo {{x}}'", "implementation.command[4]", SHELL_HINT),
    ("sudo -u nobody dash -c {{x}}", "implementation.command[5]", SHELL_HINT),
    ("find . -name '*.py' -exec sh -c 'wc {{x}}' ';'", "implementation.command[7]", SHELL_HINT),
    ("firejail --quiet sh -c {{x}}", "implementation.command[4]", SHELL_HINT),
    # shells: the -- form, a whole-placeholder script (the Go README), combined flags
    ("sh -c -- 'echo {{x}}'", "implementation.command[3]", SHELL_HINT),
    ("sh -c {{x}}", "implementation.command[2]", SHELL_HINT),
    ("bash -c '{{.x}}'", "implementation.command[2]", SHELL_HINT),
    ("sh -ec 'ls {{x}}'", "implementation.command[2]", SHELL_HINT),
    ("bash -xc {{x}}", "implementation.command[2]", SHELL_HINT),
    ("bash -o pipefail -c {{x}}", "implementation.command[4]", SHELL_HINT),
    (["zsh", "-c", "print {{x}}"], "implementation.command[2]", SHELL_HINT),
    # wrappers that hand a command line to a shell
    ("sudo -s echo {{x}}", "implementation.command[3]", SHELL_HINT),
    ("ssh host ls {{x}}", "implementation.command[3]", SHELL_HINT),
    ("flock /tmp/lock -c {{x}}", "implementation.command[3]", SHELL_HINT),
    ("env -S {{x}}", "implementation.command[2]", SHELL_HINT),
    ("env --split-string={{x}}", "implementation.command[1]", SHELL_HINT),
    ("su -c{{x}} nobody", "implementation.command[1]", SHELL_HINT),
    # interpreters
    ("python3 -c 'print({{x}})'", "implementation.command[2]", "sys.argv[1]"),
    ("python -c {{x}}", "implementation.command[2]", "sys.argv[1]"),
    ("python3.12 -I -c {{x}}", "implementation.command[3]", "sys.argv[1]"),
    ("python3 -Ic {{x}}", "implementation.command[2]", "sys.argv[1]"),
    ("timeout 5 python3 -c {{x}}", "implementation.command[4]", "sys.argv[1]"),
    ("node -e {{x}}", "implementation.command[2]", "process.argv[1]"),
    ("node --eval 'run({{x}})'", "implementation.command[2]", "process.argv[1]"),
    ("node --eval={{x}}", "implementation.command[1]", "process.argv[1]"),
    ("node -pe {{x}}", "implementation.command[2]", "process.argv[1]"),
    ("perl -e 'print {{x}}'", "implementation.command[2]", "$ARGV[0]"),
    ("perl -lne 'print if /{{x}}/'", "implementation.command[2]", "$ARGV[0]"),
    ("ruby -e {{x}}", "implementation.command[2]", "ARGV[0]"),
    ("php -r {{x}}", "implementation.command[2]", "$argv[1]"),
    ("lua -e {{x}}", "implementation.command[2]", "arg[1]"),
    ("osascript -e {{x}}", "implementation.command[2]", "argv"),
    ("awk '/{{x}}/ { print }' f", "implementation.command[1]", "awk -v"),
    ("sed 's/a/{{x}}/' f", "implementation.command[1]", "sed script"),
]


@pytest.mark.parametrize(("command", "where", "hint"), CODE_PLACEHOLDERS)
def test_placeholder_in_code_is_refused_whatever_runs_it(
    command: Any, where: str, hint: str
) -> None:
    """A placeholder inside code that a shell or interpreter will run is refused at definition
    time, reached directly or through wrappers, with the argument named and a hint to pass
    the value as an argument."""
    with pytest.raises(ToolDefinitionError, match=r"would run as") as caught:
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="x")],
            implementation=ExecImplementation(command=command),
        )
    assert caught.value.where == where
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    "command", ["env {{x}} --help", "timeout 5 {{x}}", "xargs {{x}}", "busybox {{x}}"]
)
def test_wrapped_program_cannot_be_a_placeholder(command: str) -> None:
    """The program a wrapper runs is the program: the model may not choose it either."""
    with pytest.raises(ToolDefinitionError, match=r"must not choose which program"):
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="x")],
            implementation=ExecImplementation(command=command),
        )


SHELL_CODE_PLACEHOLDERS = [
    ("eval {{x}}", "shell builtin 'eval'"),
    ("trap {{x}} EXIT", "shell builtin 'trap'"),
    ("source {{x}}", "shell builtin 'source'"),
    (". {{x}}", "shell builtin '.'"),
    ("ls && eval $(printf %s {{x}})", "shell builtin 'eval'"),
    ("read {{x}}", "as a variable name"),
    ("echo {{x}} | sh", "piped into a shell"),
    ("printf '%s' {{x}} | tr a b | bash -s", "piped into a shell"),
    ("cat {{x}} | timeout 5 python3", "piped into a shell"),
    ("echo {{x}} | xargs -I{} sh -c 'echo {}'", "piped into a shell"),
    ("echo {{x}} | sh -s -- a b", "piped into a shell"),
    ("echo {{x}} | python3 - arg", "piped into a shell"),
    ("{{x}}", "command word"),
    ("echo hi; {{x}} -l", "command word"),
    ("if true; then {{x}}; fi", "command word"),
    ("FOO=1 {{x}}", "command word"),
    ("exec {{x}}", "must not choose"),
    ("sh -c {{x}}", "script that sh -c runs"),
    ("env timeout 5 bash -c {{x}}", "script that bash -c runs"),
    ("python3 -c {{x}} | cat", "code that python runs"),
]


@pytest.mark.parametrize(("command", "problem"), SHELL_CODE_PLACEHOLDERS)
def test_shell_true_refuses_placeholders_that_become_code(command: str, problem: str) -> None:
    """With shell: true a (quoted) value is still code as the command word, given to eval,
    trap, source and the like, piped into a shell, or as a -c script."""
    with pytest.raises(ToolDefinitionError, match=re.escape(problem)):
        DeclarativeTool(
            name="t",
            params=[ToolParam(name="x")],
            implementation=ExecImplementation(command=command, shell=True),
        )


@pytest.mark.parametrize(
    ("command", "shell"),
    [
        ("sh -c 'echo \"$1\"' _ {{x}}", False),
        ("bash -ec 'grep -- \"$1\" notes' bash {{x}}", False),
        ("env FOO={{x}} sh -c 'echo \"$FOO\"'", False),
        ("timeout 5 grep -- {{x}} file", False),
        ("grep -- {{x}} file", False),
        ("echo {{x}}", False),
        ("python3 -c 'import sys; print(sys.argv[1])' {{x}}", False),
        ("python3 script.py {{x}}", False),
        ("node app.js --name={{x}}", False),
        ("awk -v value={{x}} 'BEGIN { print value }'", False),
        ("grep sh {{x}}", False),
        ("find . -name {{x}} -exec ls '{}' ';'", False),
        ("echo {{x}} | wc -c", True),
        ("echo {{x}} | xargs -I{} echo {}", True),
        ("grep -- {{x}} file | sort | uniq -c", True),
        ("export NAME={{x}}; sh -c 'echo \"$NAME\"'", True),
        ('for f in {{x}}; do echo "$f"; done', True),
        ("echo $(date) {{x}} > out.txt 2>&1", True),
    ],
)
def test_values_as_arguments_of_code_are_accepted(command: str, shell: bool) -> None:
    """Safe forms stay accepted: values passed as arguments ("$1"), after --, in env
    assignments, as data of plain programs, or piped into programs that don't run code."""
    DeclarativeTool(
        name="t",
        params=[ToolParam(name="x")],
        implementation=ExecImplementation(command=command, shell=shell),
    )
