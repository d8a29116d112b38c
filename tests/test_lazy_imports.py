"""What the package and the CLI import: only the backend in use, and none of the server,
store-engine, MCP or test-double dependencies a command does not touch.

Every check runs in a fresh interpreter (``sys.modules`` of the test process is full of
everything), with this checkout first on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
import trio

from tests.benchmarks._cli import ONE_STEP  # the same one-step document B13 times
from vega_trio.testing import (
    FakeChatResponse,
    FakeResponse,
    open_fake_anthropic_server,
    open_fake_openai_server,
)

ROOT = Path(__file__).resolve().parents[1]

#: Heavy third-party packages, each needed by one feature only.
HEAVY = frozenset({"anthropic", "openai", "quart", "hypercorn", "psycopg", "mcp", "opentelemetry"})
#: ...and what only the fake servers (or an HTTP client's connection) need.
OFFLINE_UNUSED = HEAVY | {"h11"}

# Runs the CLI in-process (so sys.modules can be read after it), then prints the
# top-level packages that were imported as the last line of stderr.
_RUN_CLI = """
import json, sys
from vega_trio.cli import main
try:
    main(sys.argv[1:], prog_name="vega-trio")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
sys.stderr.write("\\n" + json.dumps({"status": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def _environment(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "OPENAI_", "VEGA_", "OTEL_", "TELEGRAM_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["VEGA_HOME"] = extra.pop("VEGA_HOME", str(ROOT / "tests" / "no-such-vega-home"))
    env.update(extra)
    return env


async def _imported_by_cli(args: Iterable[str], **env: str) -> set[str]:
    """The top-level packages imported by ``vega-trio ARGS`` (it must succeed)."""
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-c", _RUN_CLI, *args],
            capture_stdout=True,
            capture_stderr=True,
            env=_environment(**env),
        )
    lines = result.stderr.decode().strip().splitlines()
    report = json.loads(lines[-1])
    assert report["status"] == 0, result.stderr.decode()
    return {name.split(".")[0] for name in report["modules"]}


async def _imported_by(code: str) -> set[str]:
    """The top-level packages imported by running ``code``."""
    program = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-c", program], capture_stdout=True, env=_environment()
        )
    return {name.split(".")[0] for name in json.loads(result.stdout.decode().splitlines()[-1])}


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    """A one-step workflow file."""
    path = tmp_path / "one.vega.yaml"
    path.write_text(ONE_STEP)
    return path


@pytest.mark.slow
async def test_importing_the_package_imports_no_heavy_dependency() -> None:
    """`import vega_trio` (and its testing doubles' scripted model) loads none of them."""
    imported = await _imported_by("import vega_trio, vega_trio.llm, vega_trio.testing")
    assert not imported & OFFLINE_UNUSED


@pytest.mark.slow
async def test_lazy_names_still_resolve() -> None:
    """A lazily exported name imports its module on first use and is the real object."""
    imported = await _imported_by(
        "import vega_trio, vega_trio.testing\n"
        "from vega_trio.testing._fake_server import FakeAnthropicServer\n"
        "assert vega_trio.testing.FakeAnthropicServer is FakeAnthropicServer\n"
        "assert vega_trio.AnthropicLLM is vega_trio.llm.AnthropicLLM"
    )
    assert {"anthropic", "h11"} <= imported
    assert "openai" not in imported


@pytest.mark.slow
async def test_help_and_validate_import_no_heavy_dependency(workflow: Path) -> None:
    """`vega-trio --help` and `vega-trio validate` load no SDK, server or test double."""
    assert not await _imported_by_cli(["--help"]) & OFFLINE_UNUSED
    assert not await _imported_by_cli(["validate", str(workflow)]) & OFFLINE_UNUSED


@pytest.mark.slow
async def test_a_scripted_run_imports_no_heavy_dependency(workflow: Path) -> None:
    """`vega-trio run --llm scripted` loads no SDK, server, store engine or fake server."""
    imported = await _imported_by_cli(["run", str(workflow), "--llm", "scripted", "-t", "hi"])
    assert not imported & OFFLINE_UNUSED


@pytest.mark.slow
async def test_an_anthropic_run_imports_only_the_anthropic_sdk(workflow: Path) -> None:
    """A run on the anthropic backend against a local server loads its SDK and no other
    heavy package (the openai SDK included)."""
    async with open_fake_anthropic_server(responder=lambda _: FakeResponse.text("ok")) as server:
        imported = await _imported_by_cli(
            ["run", str(workflow), "--llm", "anthropic", "-t", "hi"],
            ANTHROPIC_API_KEY="test",
            ANTHROPIC_BASE_URL=server.base_url,
        )
    assert imported & HEAVY == {"anthropic"} | (imported & {"opentelemetry"})
    # NOTE: the anthropic SDK itself imports opentelemetry's API package when present.


@pytest.mark.slow
async def test_an_openai_run_imports_only_the_openai_sdk(workflow: Path) -> None:
    """A run on the OpenAI-compatible backend against a local server loads the openai
    SDK and not the anthropic one (their classifiers share helpers)."""
    async with open_fake_openai_server(responder=lambda _: FakeChatResponse.text("ok")) as server:
        imported = await _imported_by_cli(
            ["run", str(workflow), "--llm", "openai", "-t", "hi"],
            OPENAI_API_KEY="test",
            OPENAI_BASE_URL=server.base_url,
        )
    assert imported & HEAVY == {"openai"}
