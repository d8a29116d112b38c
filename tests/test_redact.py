"""The one redaction layer (SPEC §11): what it masks and what it leaves alone."""

from __future__ import annotations

import logging

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

import vega_trio._redact as _redact
from vega_trio._redact import MASK, RedactingFilter, redact, redact_data, register_secret


def test_env_secret_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The value of a secret-named environment variable is masked wherever it appears."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "abcdef-not-a-real-key-123")
    assert (
        redact("server said: bad key abcdef-not-a-real-key-123!") == f"server said: bad key {MASK}!"
    )


def test_non_secret_env_values_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values of ordinary variables and short values are not masked."""
    monkeypatch.setenv("HOME_DIR_NAME", "workspace")
    monkeypatch.setenv("SOME_TOKEN", "1")
    assert redact("workspace 1") == "workspace 1"


def test_url_userinfo_is_masked() -> None:
    """A password in a URL never survives."""
    assert redact("connect to https://bob:hunter2@api.example:8443/v1 failed") == (
        f"connect to https://{MASK}@api.example:8443/v1 failed"
    )


def test_credential_shapes_are_masked() -> None:
    """Bearer tokens, key=value pairs and provider-shaped keys are masked."""
    text = (
        "Authorization: Bearer abc.def.ghi x-api-key: qwertyuiop api_key=zxcvbnm12 "
        "sk-ant-api03-AAAAAAAAAAAAAAAA"
    )
    out = redact(text)
    for secret in ("abc.def.ghi", "qwertyuiop", "zxcvbnm12", "sk-ant-api03-AAAAAAAAAAAAAAAA"):
        assert secret not in out


def test_registered_secret_and_data() -> None:
    """Registered values are masked inside nested JSON-like data; secret-named keys whole."""
    register_secret("registered-secret-value")
    data = {"a": ["x registered-secret-value y"], "token": "short", "input_tokens": 12}
    assert redact_data(data) == {"a": [f"x {MASK} y"], "token": MASK, "input_tokens": 12}


def test_logging_filter_redacts_message_and_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record's formatted message and string extras are redacted by the handler filter."""
    monkeypatch.setenv("MY_SECRET", "very-secret-thing")
    record = logging.makeLogRecord(
        {"msg": "key %s", "args": ("very-secret-thing",), "url": "http://u:p4ssword@h/"}
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == f"key {MASK}"
    assert record.url == f"http://{MASK}@h/"


# -- applied in the library: errors, LLM errors, events, settings -------------------------

PASSWORD = "pw-in-url-31337"


def test_every_vega_error_shows_redacted_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """str, repr and a printed traceback of any VegaError (subclasses with their own
    constructors too) mask secrets; the raw text stays in .args for code."""
    import traceback

    from vega_trio import LLMError, ProcessExited, VegaError
    from vega_trio._errors import ErrorClass
    from vega_trio.dsl import DSLError
    from vega_trio.dsl._diagnostics import Diagnostic
    from vega_trio.dsl._model import Source
    from vega_trio.skills import SkillError

    monkeypatch.setenv("DEPLOY_TOKEN", "env-secret-value-2718")
    text = f"at https://bob:{PASSWORD}@host with env-secret-value-2718"
    diagnostic = Diagnostic(severity="error", source=Source("f.yaml", 1, 1, ""), message=text)
    errors: list[VegaError] = [
        VegaError(text),
        LLMError(text, error_class=ErrorClass.TEMPORARY),
        ProcessExited(text, process_id="p1", reason=None),  # type: ignore[arg-type]
        SkillError(text),
        DSLError([diagnostic]),
    ]
    for error in errors:
        try:
            raise error
        except VegaError as caught:
            shown = "".join(traceback.format_exception(caught))
        for view in (str(error), repr(error), shown):
            assert PASSWORD not in view and "env-secret-value-2718" not in view, view
            assert MASK in view
    assert PASSWORD in errors[0].args[0]


def test_runtime_event_payloads_are_redacted_when_serialised() -> None:
    """A crash whose error names a URL with a password: the process.failed event's
    to_dict() masks it; the published event itself is untouched (no work on publish)."""
    import trio

    from vega_trio.runtime import Event, Runtime

    class Leaky:
        name = "leaky"

        async def handle(self, process: object, payload: object) -> object:
            raise ValueError(f"cannot reach https://admin:{PASSWORD}@db.internal/")

    async def main() -> list[Event]:
        async with trio.open_nursery() as nursery:
            runtime = Runtime(nursery)
            with runtime.bus.subscribe() as sub:
                proc = await runtime.spawn(Leaky())  # type: ignore[arg-type]
                proc.call_async("go")
                with trio.fail_after(5):
                    await proc.wait()
                events = []
                while (item := sub.receive_nowait()) is not None:
                    assert isinstance(item, Event)
                    events.append(item)
            await runtime.shutdown(grace=1.0)
        return events

    events = trio.run(main)
    failed = [e for e in events if e.type == "process.failed"]
    assert failed and PASSWORD in str(failed[0].data)  # raw on the bus
    import json

    wire = json.dumps([e.to_dict() for e in events])
    assert PASSWORD not in wire and f"https://{MASK}@db.internal" in wire


def test_agent_stream_events_are_redacted_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text, tool arguments, tool results and errors of chat events are masked in
    to_dict() and to_sse()."""
    from vega_trio import ErrorEvent, TextDeltaEvent, ToolEndEvent, ToolStartEvent

    monkeypatch.setenv("SERVICE_API_KEY", "svc-key-value-1618")
    events = [
        TextDeltaEvent(delta="your key is svc-key-value-1618"),
        ToolStartEvent(
            tool_call_id="c1",
            tool_name="fetch",
            arguments={"url": f"https://u:{PASSWORD}@h/", "api_key": "literal-key-77"},
        ),
        ToolEndEvent(
            tool_call_id="c1", tool_name="fetch", result="svc-key-value-1618", duration_ms=1
        ),
        ErrorEvent(error=f"failed at https://u:{PASSWORD}@h/", error_class="temporary"),
    ]
    for event in events:
        for wire in (str(event.to_dict()), event.to_sse()):
            for secret in (PASSWORD, "svc-key-value-1618", "literal-key-77"):
                assert secret not in wire, wire
    assert events[0].to_dict() == {"type": "text_delta", "delta": f"your key is {MASK}"}
    assert events[1].to_dict()["tool_name"] == "fetch"


def test_mcp_secret_values_from_variables_are_registered() -> None:
    """${VAR} values expanded into an MCP server's secret-named env entry or header are
    registered, even when the variable's own name does not look secret."""
    from vega_trio.tools.mcp import MCPServerConfig

    environ = {"GH_PAT": "ghp-plain-value-8080", "HDR": "hdr-value-9090", "MODE": "fast-mode"}
    stdio = MCPServerConfig(
        name="gh",
        command="gh-mcp",
        env={"GITHUB_TOKEN": "${GH_PAT}", "RUN_MODE": "${MODE}"},
    )
    http = MCPServerConfig(
        name="remote", url="http://127.0.0.1:1/mcp", headers={"Authorization": "Bearer ${HDR}"}
    )
    assert stdio.expanded(environ).env["GITHUB_TOKEN"] == "ghp-plain-value-8080"
    assert http.expanded(environ).headers["Authorization"] == "Bearer hdr-value-9090"
    assert redact("ghp-plain-value-8080 / hdr-value-9090 / fast-mode") == (
        f"{MASK} / {MASK} / fast-mode"
    )


def test_url_passwords_can_be_registered() -> None:
    """register_url_secret makes a base URL's password a secret on its own."""
    from vega_trio._redact import register_url_secret

    register_url_secret("http://user:bare-password-4040@127.0.0.1:9/v1")
    register_url_secret("not a url at all")
    assert redact("echo: user bare-password-4040") == f"echo: user {MASK}"


def test_logging_filter_redacts_a_logged_traceback() -> None:
    """A record logged with exc_info has its traceback text redacted too."""
    try:
        raise RuntimeError(f"db at postgres://app:{PASSWORD}@db/x refused")
    except RuntimeError as exc:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": (type(exc), exc, None)})
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "RuntimeError" in formatted and PASSWORD not in formatted


def test_redaction_is_linear_in_a_long_word() -> None:
    """A long word does not make redaction rescan it from every position (it did: about
    half a minute for this input, which the server's responses all go through), and a URL
    password after it and one glued to its end are still masked."""
    text = "x" * 150_000 + " https://user:hunter2secret@db.example/x " + "y" * 99 + "s://a:pw@h"
    out = redact(text)
    assert out.endswith(" https://***@db.example/x " + "y" * 99 + "s://***@h")


def test_environment_changes_are_seen_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret values taken from the environment are cached, yet a variable set,
    changed or removed after a redaction is seen by the next one."""
    assert redact("a s3cret-value-one b") == "a s3cret-value-one b"
    monkeypatch.setenv("BENCH_API_KEY", "s3cret-value-one")
    assert redact("a s3cret-value-one b") == f"a {MASK} b"
    monkeypatch.setenv("BENCH_API_KEY", "s3cret-value-two")
    assert redact("a s3cret-value-one b s3cret-value-two") == f"a s3cret-value-one b {MASK}"
    monkeypatch.delenv("BENCH_API_KEY")
    assert redact("a s3cret-value-two") == "a s3cret-value-two"


@given(
    st.lists(
        st.sampled_from(
            [
                *"abcxyzAB09-_./@:= \t\nsk\"'",
                "sk-",
                "SK-",
                "ant-",
                "Bearer ",
                "basic ",
                "://",
                "api_key=",
                "X-Api-Key",
                "password",
                "access-token",
                "secret",
                "abcdefghijkl",
            ]
        ),
        max_size=40,
    ).map("".join)
)
@example("key sk-abcdefghijkl here")
@example("see https://user:pw@host/x")
@example("Authorization: Bearer abcdefghijkl")
@example('{"password": "abcdefghijkl"}')
def test_the_quick_precheck_never_skips_a_pattern_that_would_match(text: str) -> None:
    """Skipping the credential patterns for text without ':', '=', whitespace or 'sk-',
    or in which one search for any of them finds nothing, gives exactly what applying
    every pattern gives."""
    expected = text
    for pattern in _redact._PATTERNS:
        expected = pattern.sub(lambda m: m.group(1) + MASK, expected)
    assert _redact._redact_with(text, ()) == expected


def test_redact_exception_masks_foreign_errors_and_leaves_vega_errors() -> None:
    """A foreign exception's args are masked in place, along its cause; a VegaError (which
    redacts itself when shown) keeps its raw args."""
    from vega_trio import VegaError
    from vega_trio._redact import redact_exception

    secret = "sk-ant-" + "x" * 30
    ours = VegaError(f"key {secret}")
    foreign = RuntimeError(f"server said {secret}")
    foreign.__cause__ = ours
    redact_exception(foreign)
    assert secret not in foreign.args[0]
    assert ours.args == (f"key {secret}",)
    assert secret not in str(ours)
