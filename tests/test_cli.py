from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

import vega_trio
from vega_trio.cli import main


def test_version() -> None:
    """`vega-trio --version` prints the package version."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"vega-trio, version {vega_trio.__version__}\n"


def test_help() -> None:
    """`vega-trio --help` (and -h) describes the tool."""
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0
        assert "fault-tolerant AI agent orchestration" in result.output


def test_python_dash_m() -> None:
    """`python -m vega_trio --version` works like the console script."""
    out = subprocess.run(
        [sys.executable, "-m", "vega_trio", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert vega_trio.__version__ in out.stdout
