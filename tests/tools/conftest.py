"""Fixtures of the tool tests: the npm-installed reference MCP filesystem server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NPM_PREFIX = ROOT / ".cache" / "npm"
FILESYSTEM_SERVER = "@modelcontextprotocol/server-filesystem"
FILESYSTEM_SERVER_VERSION = "2026.8.31"


@pytest.fixture(scope="session")
def filesystem_server_js() -> Path:
    """The entry point of ``@modelcontextprotocol/server-filesystem`` (pinned), installed
    with npm under ``<repo>/.cache/npm`` the first time it is needed."""
    package = NPM_PREFIX / "node_modules" / FILESYSTEM_SERVER
    entry = package / "dist" / "index.js"
    manifest = package / "package.json"
    if entry.exists() and manifest.exists():
        installed = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if installed == FILESYSTEM_SERVER_VERSION:
            return entry
    for tool in ("npm", "node"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool!r} is not on PATH: the MCP tests run the reference filesystem server "
                f"({FILESYSTEM_SERVER}) with Node.js. Install Node.js 20+ with npm and run "
                "the tests again.",
                pytrace=False,
            )
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(NPM_PREFIX),
            "--no-audit",
            "--no-fund",
            "--no-save",
            f"{FILESYSTEM_SERVER}@{FILESYSTEM_SERVER_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 or not entry.exists():
        pytest.fail(
            f"npm could not install {FILESYSTEM_SERVER}@{FILESYSTEM_SERVER_VERSION} into "
            f"{NPM_PREFIX} (exit {result.returncode}); check access to the npm registry.\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return entry
