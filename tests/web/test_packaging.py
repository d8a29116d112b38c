"""The dashboard ships inside the wheel: a wheel built from the sdist holds every file of
web/ as vega_trio/web, and the installed package finds it there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=600, env=env, check=False, cwd=cwd
    )


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_contains_web_and_serves_it(tmp_path: Path) -> None:
    """sdist (hatchling) → wheel (pip, build isolation): the wheel has vega_trio/web with
    index.html, the app and the vendored libraries with their licenses; installed from
    the wheel, find_web_root() is the packaged copy."""
    tools = tmp_path / "tools"
    got = _run(sys.executable, "-m", "pip", "install", "-q", "--target", str(tools), "hatchling")
    if got.returncode != 0:
        pytest.skip(f"hatchling cannot be installed here (no package index?): {got.stderr[-300:]}")
    env = {**os.environ, "PYTHONPATH": str(tools)}
    sdist_dir = tmp_path / "sdist"
    built = _run(
        sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(sdist_dir), env=env
    )
    assert built.returncode == 0, built.stderr
    (sdist,) = sdist_dir.glob("vega_trio-*.tar.gz")
    wheel_dir = tmp_path / "wheel"
    wheel = _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(sdist)
    )
    assert wheel.returncode == 0, wheel.stderr
    (wheel_file,) = wheel_dir.glob("vega_trio-*.whl")
    with zipfile.ZipFile(wheel_file) as archive:
        names = set(archive.namelist())
    expected = {
        f"vega_trio/web/{path.relative_to(ROOT / 'web').as_posix()}"
        for path in (ROOT / "web").rglob("*")
        if path.is_file()
    }
    assert expected <= names, sorted(expected - names)
    assert "vega_trio/web/index.html" in names
    assert any(
        n.startswith("vega_trio/web/vendor/preact-") and n.endswith("LICENSE") for n in names
    )

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel_file) as archive:
        archive.extractall(site)
    code = "from vega_trio.serve._web import find_web_root; print(find_web_root())"
    # Run from the unpacked wheel, not the checkout (whose web/ would be found instead).
    found = _run(sys.executable, "-c", code, env={**os.environ, "PYTHONPATH": str(site)}, cwd=site)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == site / "vega_trio" / "web"
