"""The sandbox: path resolution, symlinks, and refusing everything outside the root."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from vega_trio import ToolError
from vega_trio.tools import Sandbox, SandboxViolation


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """tmp/sandbox (the root), tmp/outside/secret.txt, and tmp/sandbox-evil/loot.txt."""
    root = tmp_path / "sandbox"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "a.txt").write_text("a")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    (tmp_path / "sandbox-evil").mkdir()
    (tmp_path / "sandbox-evil" / "loot.txt").write_text("loot")
    os.symlink(tmp_path / "outside", root / "link_out")
    os.symlink(tmp_path / "outside" / "secret.txt", root / "file_link_out")
    os.symlink(tmp_path / "outside" / "not-yet.txt", root / "dangling_out")
    os.symlink(root / "inner", root / "link_in")
    os.symlink("../..", root / "inner" / "up_two")
    return tmp_path


ESCAPES: list[tuple[str, Callable[[Path], str]]] = [
    ("dotdot", lambda tmp: "../outside/secret.txt"),
    ("dotdot-after-dir", lambda tmp: "inner/../../outside/secret.txt"),
    ("dotdot-new-file", lambda tmp: "../new.txt"),
    ("absolute-outside", lambda tmp: str(tmp / "outside" / "secret.txt")),
    ("absolute-etc", lambda tmp: "/etc/passwd"),
    ("absolute-root", lambda tmp: "/"),
    ("sibling-prefix", lambda tmp: str(tmp / "sandbox-evil" / "loot.txt")),
    ("sibling-prefix-dotdot", lambda tmp: "../sandbox-evil/loot.txt"),
    ("symlink-dir-out", lambda tmp: "link_out/secret.txt"),
    ("symlink-dir-out-new-file", lambda tmp: "link_out/new/deeper.txt"),
    ("symlink-file-out", lambda tmp: "file_link_out"),
    ("dangling-symlink-out", lambda tmp: "dangling_out"),
    ("relative-symlink-up", lambda tmp: "inner/up_two/outside/secret.txt"),
]


@pytest.mark.parametrize("make_path", [m for _, m in ESCAPES], ids=[i for i, _ in ESCAPES])
def test_escapes_are_refused(layout: Path, make_path: Callable[[Path], str]) -> None:
    """Every way out of the root (.., absolute, sibling prefix, symlinks) is refused."""
    sandbox = Sandbox(layout / "sandbox")
    requested = make_path(layout)
    with pytest.raises(SandboxViolation) as caught:
        sandbox.resolve(requested)
    error = caught.value
    assert isinstance(error, ToolError)
    assert error.requested == requested
    assert error.root == str(sandbox.root)
    assert error.resolved is not None
    assert not Path(error.resolved).is_relative_to(sandbox.root)
    message = str(error)
    assert repr(requested) in message
    assert repr(error.resolved) in message
    assert str(sandbox.root) in message
    assert "Use a path relative to the sandbox root" in message


def test_symlink_escape_is_named_as_such(layout: Path) -> None:
    """A path that only escapes through a link says a symbolic link points outside."""
    sandbox = Sandbox(layout / "sandbox")
    with pytest.raises(SandboxViolation, match="symbolic link on the way points outside"):
        sandbox.resolve("link_out/secret.txt")
    with pytest.raises(SandboxViolation, match="it is outside the sandbox"):
        sandbox.resolve("../outside/secret.txt")


def test_sibling_with_the_root_as_string_prefix_is_outside(tmp_path: Path) -> None:
    """'/x/sandbox-evil' is not inside '/x/sandbox' although the string starts with it."""
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox-evil").mkdir()
    sandbox = Sandbox(tmp_path / "sandbox")
    evil = str(tmp_path / "sandbox-evil")
    assert evil.startswith(str(sandbox.root))
    with pytest.raises(SandboxViolation):
        sandbox.resolve(evil)


INVALID: list[tuple[str, str, str]] = [
    ("nul-byte", "notes\x00.txt", "NUL byte"),
    ("nul-byte-dotdot", "../\x00", "NUL byte"),
    ("long-component", "a" * 300, "limited to"),
    ("long-path", "d/" * 3000 + "f.txt", "limited to"),
    ("lone-surrogate", "bad\udcff\ud800.txt", "not a valid file name"),
]


@pytest.mark.parametrize(
    ("requested", "expected"), [(p, e) for _, p, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_paths_are_refused_clearly(tmp_path: Path, requested: str, expected: str) -> None:
    """NUL bytes, over-long paths and unencodable names get a SandboxViolation, not OSError."""
    sandbox = Sandbox(tmp_path)
    with pytest.raises(SandboxViolation, match=expected) as caught:
        sandbox.resolve(requested)
    assert caught.value.resolved is None
    assert str(tmp_path.resolve()) in str(caught.value)


INSIDE: list[tuple[str, str, str]] = [
    ("relative-file", "inner/a.txt", "inner/a.txt"),
    ("dot-slash", "./inner/a.txt", "inner/a.txt"),
    ("dotdot-staying-inside", "inner/../inner/a.txt", "inner/a.txt"),
    ("root-itself", ".", "."),
    ("empty-is-root", "", "."),
    ("new-file-in-new-dirs", "new/dir/file.txt", "new/dir/file.txt"),
    ("symlink-inside", "link_in/a.txt", "inner/a.txt"),
]


@pytest.mark.parametrize(
    ("requested", "relative"), [(p, r) for _, p, r in INSIDE], ids=[i for i, _, _ in INSIDE]
)
def test_paths_inside_resolve(layout: Path, requested: str, relative: str) -> None:
    """Paths that stay inside (also through inner links, or not existing yet) resolve."""
    sandbox = Sandbox(layout / "sandbox")
    resolved = sandbox.resolve(requested)
    assert resolved.is_absolute()
    assert sandbox.relative(resolved) == relative


def test_absolute_path_inside_is_allowed(layout: Path) -> None:
    """An absolute path that names a file inside the root resolves to that file."""
    sandbox = Sandbox(layout / "sandbox")
    inside = sandbox.root / "inner" / "a.txt"
    assert sandbox.resolve(str(inside)) == inside


def test_root_is_canonical(tmp_path: Path) -> None:
    """A root reached through a symlink is stored resolved, so checks compare real paths."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    sandbox = Sandbox(tmp_path / "alias")
    assert sandbox.root == (tmp_path / "real").resolve()
    assert sandbox.resolve("x.txt") == sandbox.root / "x.txt"


def test_missing_root_is_an_error_and_create_makes_it(tmp_path: Path) -> None:
    """Sandbox() wants an existing directory; Sandbox.create makes it."""
    missing = tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="not an existing directory"):
        Sandbox(missing)
    sandbox = Sandbox.create(missing)
    assert missing.is_dir()
    assert sandbox.root == missing.resolve()


def test_open_refuses_outside_and_opens_inside(layout: Path) -> None:
    """Sandbox.open resolves first: inside opens, a link out is refused before any open."""
    sandbox = Sandbox(layout / "sandbox")
    fd = sandbox.open("link_in/a.txt", os.O_RDONLY)
    try:
        assert os.read(fd, 10) == b"a"
    finally:
        os.close(fd)
    with pytest.raises(SandboxViolation):
        sandbox.open("dangling_out", os.O_WRONLY | os.O_CREAT)
    assert not (layout / "outside" / "not-yet.txt").exists()
