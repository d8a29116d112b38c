"""The sandbox: path resolution, symlinks, and refusing everything outside the root.

Every test runs twice: with openat2 where the kernel offers it, and with the portable
O_NOFOLLOW component walk (what other POSIX systems, and kernels without openat2, use).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from vega_trio import ToolError
from vega_trio.tools import Sandbox, SandboxViolation, _sandbox


@pytest.fixture(autouse=True, params=["openat2", "component-walk"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Resolve with openat2 (skipped where the kernel lacks it) or with the component walk."""
    if request.param == "openat2" and not _sandbox._use_openat2():
        pytest.skip("this kernel does not offer openat2 (the component walk is tested)")
    if request.param == "component-walk":
        monkeypatch.setattr(_sandbox, "_use_openat2", lambda: False)
    return str(request.param)


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
    ("below-a-file", "inner/a.txt/x", "inner/a.txt/x"),
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


# -- operations through directory fds ------------------------------------------------------


def _read(sandbox: Sandbox, path: str) -> tuple[bytes, Path]:
    fd, resolved = sandbox.open_resolved(path, os.O_RDONLY)
    try:
        return os.read(fd, 100), resolved
    finally:
        os.close(fd)


def test_links_inside_are_followed_step_by_step(layout: Path) -> None:
    """Relative and absolute links that stay inside work, for existing and new files."""
    sandbox = Sandbox(layout / "sandbox")
    root = sandbox.root
    os.symlink("inner/a.txt", root / "rel_file")
    os.symlink("../inner", root / "inner" / "self")  # inner/self -> inner
    os.symlink("inner/new-target.txt", root / "dangling_in")
    assert _read(sandbox, "rel_file") == (b"a", root / "inner" / "a.txt")
    assert _read(sandbox, "inner/self/self/a.txt") == (b"a", root / "inner" / "a.txt")
    assert _read(sandbox, str(root / "link_in" / "a.txt"))[0] == b"a"
    fd, resolved = sandbox.open_resolved("dangling_in", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    assert resolved == root / "inner" / "new-target.txt"
    assert (root / "inner" / "new-target.txt").is_file()
    fd, resolved = sandbox.open_resolved(
        "link_in/made/deeper.txt", os.O_WRONLY | os.O_CREAT, make_parents=True
    )
    os.close(fd)
    assert resolved == root / "inner" / "made" / "deeper.txt"
    assert (root / "inner" / "made" / "deeper.txt").is_file()


DOTDOT: list[tuple[str, str, str]] = [
    ("missing-then-up", "missing/../b.txt", "b.txt"),
    ("deep-missing-then-up", "m1/m2/../../b.txt", "b.txt"),
    ("up-after-link", "link_in/../b.txt", "b.txt"),
    ("back-in-by-name", "../sandbox/b.txt", "b.txt"),
    ("absolute-with-dotdot", "{root}/inner/../b.txt", "b.txt"),
    ("ends-in-dotdot", "inner/new/..", "inner"),
]


@pytest.mark.parametrize(
    ("requested", "relative"), [(p, r) for _, p, r in DOTDOT], ids=[i for i, _, _ in DOTDOT]
)
def test_dotdot_means_what_it_means_to_the_os(layout: Path, requested: str, relative: str) -> None:
    """'..' goes up from the directory the walk reached (links resolved), as realpath does."""
    sandbox = Sandbox(layout / "sandbox")
    requested = requested.format(root=sandbox.root)
    assert sandbox.relative(sandbox.resolve(requested)) == relative
    if relative == "b.txt":
        fd, resolved = sandbox.open_resolved(requested, os.O_WRONLY | os.O_CREAT, make_parents=True)
        os.close(fd)
        assert sandbox.relative(resolved) == "b.txt"
        assert (sandbox.root / "b.txt").is_file()
    # a directory that only appeared to be walked through is not made
    assert sorted(p.name for p in sandbox.root.iterdir()) == sorted(
        ["inner", "link_out", "file_link_out", "dangling_out", "link_in"]
        + (["b.txt"] if relative == "b.txt" else [])
    )


def test_absolute_path_through_another_name_for_the_root(tmp_path: Path) -> None:
    """An absolute path spelled through a link to the root's parent still reaches inside."""
    (tmp_path / "real" / "sandbox").mkdir(parents=True)
    os.symlink(tmp_path / "real", tmp_path / "alias")
    sandbox = Sandbox(tmp_path / "real" / "sandbox")
    fd, resolved = sandbox.open_resolved(
        str(tmp_path / "alias" / "sandbox" / "x.txt"), os.O_WRONLY | os.O_CREAT
    )
    os.close(fd)
    assert resolved == sandbox.root / "x.txt"


def test_operations_through_a_link_out_act_on_nothing_outside(layout: Path) -> None:
    """open (create, truncate, append), make_directory and open_directory refuse a link out
    at any position and leave the outside untouched."""
    sandbox = Sandbox(layout / "sandbox")
    outside = layout / "outside"
    before = sorted(p.name for p in outside.rglob("*"))
    attempts: list[Callable[[], object]] = [
        lambda: sandbox.open("link_out/secret.txt", os.O_WRONLY | os.O_TRUNC),
        lambda: sandbox.open("file_link_out", os.O_WRONLY | os.O_APPEND),
        lambda: sandbox.open("link_out/new.txt", os.O_WRONLY | os.O_CREAT),
        lambda: sandbox.open_resolved("link_out/a/b.txt", os.O_CREAT, make_parents=True),
        lambda: sandbox.make_directory("link_out/made"),
        lambda: sandbox.make_directory("dangling_out"),
        lambda: sandbox.open_directory("link_out"),
        lambda: sandbox.open_directory("inner/up_two"),
    ]
    for attempt in attempts:
        with pytest.raises(SandboxViolation, match="points outside the sandbox"):
            attempt()
    assert sorted(p.name for p in outside.rglob("*")) == before
    assert (outside / "secret.txt").read_text() == "secret"


def test_make_directory_makes_every_missing_level(layout: Path) -> None:
    """make_directory is makedirs(exist_ok=True), each level made relative to its parent."""
    sandbox = Sandbox(layout / "sandbox")
    assert sandbox.make_directory("x/y/z") == sandbox.root / "x" / "y" / "z"
    assert sandbox.make_directory("x/y/z") == sandbox.root / "x" / "y" / "z"
    assert sandbox.make_directory("link_in/w") == sandbox.root / "inner" / "w"
    assert (sandbox.root / "x" / "y" / "z").is_dir()
    assert (sandbox.root / "inner" / "w").is_dir()
    with pytest.raises(NotADirectoryError):
        sandbox.make_directory("inner/a.txt/sub")


def test_link_loops_are_a_clear_error(tmp_path: Path) -> None:
    """A link loop ends with ELOOP (a refusal from resolve), never a hang."""
    sandbox = Sandbox(tmp_path)
    os.symlink("loop_b", tmp_path / "loop_a")
    os.symlink("loop_a", tmp_path / "loop_b")
    with pytest.raises(OSError, match="symbolic links") as caught:
        sandbox.open("loop_a/x", os.O_RDONLY)
    assert caught.value.errno == errno.ELOOP
    with pytest.raises(SandboxViolation, match="without symbolic link loops"):
        sandbox.resolve("loop_a")


def test_open_beneath_never_follows_a_link(layout: Path) -> None:
    """open_beneath opens plain names below a directory fd and refuses any link on the way."""
    sandbox = Sandbox(layout / "sandbox")
    root_fd = os.open(sandbox.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = _sandbox.open_beneath(root_fd, ["inner", "a.txt"], os.O_RDONLY)
        assert os.read(fd, 10) == b"a"
        os.close(fd)
        for names in (["link_in", "a.txt"], ["link_in"], ["file_link_out"]):
            with pytest.raises(OSError) as caught:
                os.close(_sandbox.open_beneath(root_fd, names, os.O_RDONLY))
            assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
        with pytest.raises(ValueError, match="plain names"):
            _sandbox.open_beneath(root_fd, ["..", "outside"], os.O_RDONLY)
    finally:
        os.close(root_fd)


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM, errno.EINVAL])
def test_openat2_refused_by_the_kernel_or_seccomp_means_the_walk(code: int) -> None:
    """A kernel without openat2 (ENOSYS) or a seccomp filter (EPERM) selects the walk."""

    def refusing(dir_fd: int, path: bytes, flags: int, resolve: int) -> int:
        raise OSError(code, os.strerror(code))

    assert not _sandbox._works(refusing)


def test_platform_without_dir_fd_refuses_to_make_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where os lacks dir_fd support, Sandbox says why instead of confining racily."""
    monkeypatch.setattr(_sandbox, "_DIR_FD_SUPPORTED", False)
    with pytest.raises(OSError, match="dir_fd"):
        Sandbox(tmp_path)


def test_a_missing_root_is_a_clear_tool_error(tmp_path: Path) -> None:
    """If the root disappears later, operations say so instead of 'file not found'."""
    sandbox = Sandbox.create(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    with pytest.raises(ToolError, match=r"sandbox root .* could not be opened"):
        sandbox.open("x.txt", os.O_RDONLY)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open fds in /proc")
def test_walks_leave_no_file_descriptor_open(layout: Path) -> None:
    """Successful, refused and failing walks all close every directory fd they opened."""
    sandbox = Sandbox(layout / "sandbox")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        os.close(sandbox.open("link_in/a.txt", os.O_RDONLY))
        sandbox.resolve("inner/../link_in/x/y")
        sandbox.make_directory("inner/made/deeper")
        for attempt in (
            lambda: sandbox.open("link_out/secret.txt", os.O_RDONLY),
            lambda: sandbox.open("inner/a.txt/x", os.O_RDONLY),
            lambda: sandbox.open("inner/missing/x", os.O_RDONLY),
            lambda: sandbox.resolve("../outside"),
        ):
            with pytest.raises((OSError, SandboxViolation)):
                attempt()
    assert len(os.listdir("/proc/self/fd")) == before
