"""The SQLite engine: its settings, group commit, migrations and faults (SPEC §12)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio.store import (
    SCHEMA_VERSION,
    StoreClosed,
    StoredEvent,
    StoreHealth,
    StoreOpenError,
    open_store,
)
from vega_trio.store._migrations import LATEST, MIGRATIONS
from vega_trio.store._sqlite import migrate

ROOT = Path(__file__).parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _event(seq: int) -> StoredEvent:
    return StoredEvent(seq=seq, type="x", timestamp=1.0, data={"seq": seq})


# --------------------------------------------------------------------- settings
async def test_writer_uses_wal_and_synchronous_normal(tmp_path: Path) -> None:
    """The file is in WAL mode with synchronous=NORMAL and a busy timeout (STACK.md)."""
    async with open_store(tmp_path / "v.db") as store:
        pragmas = await store._on_writer(  # type: ignore[attr-defined]
            lambda c: [
                c.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout", "application_id")
            ]
        )
    assert pragmas == ["wal", 1, 30000, 0x56454741]


async def test_group_commit_shares_transactions(tmp_path: Path) -> None:
    """500 concurrent writes cost far fewer than 500 commits, and all are there."""
    async with open_store(tmp_path / "v.db") as store:
        async with trio.open_nursery() as nursery:
            for i in range(500):
                nursery.start_soon(store.put_state, f"k{i}", i)
        commits = store._committer.commits  # type: ignore[attr-defined]
        assert (await store.counts())["state"] == 500
    assert commits <= 50, commits


async def test_locations_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path, sqlite:///relative, sqlite:////absolute and :memory: all open a store."""
    monkeypatch.chdir(tmp_path)
    for location, file in [
        ("rel.db", tmp_path / "rel.db"),
        ("sqlite:///url.db", tmp_path / "url.db"),
        (f"sqlite:///{tmp_path}/abs.db", tmp_path / "abs.db"),
        (":memory:", None),
        ("sqlite:///:memory:", None),
    ]:
        async with open_store(location) as store:
            assert store.engine == "sqlite"
            await store.put_state("k", location)
            assert await store.get_state("k") == location
        if file is not None:
            assert file.is_file(), location


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("mysql://db/x", "use a file path"),
        ("sqlite://relative.db", "not a SQLite URL"),
        ("", "use a file path"),
    ],
)
async def test_bad_locations_say_what_to_write(location: str, words: str) -> None:
    """A location no engine takes is refused with the forms that work."""
    with pytest.raises(StoreOpenError, match=words) as info:
        async with open_store(location):
            pass
    assert info.value.kind == "invalid"


async def test_missing_directory_and_directory_path(tmp_path: Path) -> None:
    """A --db in a directory that does not exist, or naming a directory, is refused."""
    with pytest.raises(StoreOpenError, match="does not exist") as missing:
        async with open_store(tmp_path / "nope" / "v.db"):
            pass
    assert missing.value.kind == "invalid" and not (tmp_path / "nope").exists()
    with pytest.raises(StoreOpenError, match="is a directory"):
        async with open_store(tmp_path):
            pass


async def test_memory_stores_are_separate() -> None:
    """Two :memory: stores do not share data."""
    async with open_store(":memory:") as one, open_store(":memory:") as two:
        await one.put_state("k", 1)
        assert await two.get_state("k") is None


# -------------------------------------------------------------------- migrations
def test_migrations_are_numbered_in_order() -> None:
    """Versions are 1, 2, 3… with no gaps (forward-only, each applied once)."""
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST == SCHEMA_VERSION == MIGRATIONS[-1].version


async def test_a_version_1_database_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    """A database written at schema version 1 opens with the current code, data kept."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, 0, target=1) == 1
    conn.execute("INSERT INTO events VALUES (1, 'run.started', 5.0, '{\"seq\":1}')")
    conn.execute("INSERT INTO messages VALUES ('a', '=bob', 0, '{\"role\":\"user\"}')")
    conn.execute(
        "INSERT INTO runs VALUES ('r1', 'wf', 'interrupted', '{}', NULL, 1.0, NULL, 'null', "
        "NULL, NULL, NULL, 0.5, 0)"
    )
    conn.execute("INSERT INTO state VALUES ('budget', '{\"spent\":2.5}')")
    conn.close()
    async with open_store(path) as store:
        assert [e.data for e in await store.read_events()] == [{"seq": 1}]
        assert await store.load_conversation("a", "bob") == [{"role": "user"}]
        run = await store.get_run("r1")
        assert run is not None and run.status == "interrupted" and run.cost_usd == 0.5
        assert await store.get_state("budget") == {"spent": 2.5}
    conn = sqlite3.connect(path)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert versions == list(range(1, LATEST + 1))
    assert "events_type" in indexes


# ------------------------------------------------------------------------ faults
async def test_a_corrupt_file_is_refused_untouched(tmp_path: Path) -> None:
    """Random bytes, or SQLite's header over garbage: a clear error, the file unchanged."""
    for name, content in [
        ("random.db", os.urandom(8192)),
        ("header.db", b"SQLite format 3\x00" + b"\xff" * 8000),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(StoreOpenError) as info:
            async with open_store(path):
                pass
        assert info.value.kind == "corrupt"
        assert str(path) in str(info.value) and "--db" in str(info.value)
        assert path.read_bytes() == content


async def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    """A SQLite file with someone else's tables is never written into."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ann')")
    conn.commit()
    conn.close()
    before = _digest(path)
    with pytest.raises(StoreOpenError, match="another program's") as info:
        async with open_store(path):
            pass
    assert info.value.kind == "foreign" and "users" in str(info.value)
    assert _digest(path) == before


async def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    """A database written by a newer vega-trio is refused, and not modified."""
    path = tmp_path / "new.db"
    async with open_store(path) as store:
        await store.put_state("k", 1)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 0, 'from the future')", (LATEST + 1,))
    conn.commit()
    conn.close()
    before = _digest(path)
    with pytest.raises(StoreOpenError, match=f"schema version {LATEST + 1}") as info:
        async with open_store(path):
            pass
    assert info.value.kind == "newer_schema" and "Upgrade vega-trio" in str(info.value)
    assert _digest(path) == before


_READ_ONLY_PROBE = textwrap.dedent(
    """
    import sys, trio
    from vega_trio.store import StoreOpenError, open_store

    async def main(path):
        try:
            async with open_store(path):
                print("opened")
        except StoreOpenError as exc:
            print(exc.kind, "|", exc)

    trio.run(main, sys.argv[1])
    """
)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory an unprivileged user can traverse (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="vega-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.chmod(0o644)
            child.unlink()
        path.rmdir()


def _probe_read_only(path: Path) -> str:
    """Open ``path`` in a subprocess that cannot write there (root can write anywhere:
    then the probe runs as ``nobody``)."""
    command = [sys.executable, "-c", _READ_ONLY_PROBE, str(path)]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_a_read_only_directory_or_file_is_refused(shared_tmp: Path) -> None:
    """A new database in a directory it can't write, or a read-only file: a clear error."""
    if os.geteuid() != 0:
        shared_tmp.chmod(0o555)
    out = _probe_read_only(shared_tmp / "new.db")
    assert out.startswith("read_only |"), out
    assert "writable" in out and str(shared_tmp) in out
    assert not (shared_tmp / "new.db").exists()
    # A read-only file in a directory the user may write into.
    shared_tmp.chmod(0o777)

    existing = shared_tmp / "existing.db"
    conn = sqlite3.connect(existing)
    migrate(conn, 0)
    conn.close()
    existing.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    before = _digest(existing)
    out = _probe_read_only(existing)
    assert out.startswith("read_only |"), out
    assert _digest(existing) == before


class _Disk:
    """Simulates a full disk on the writer connection (``PRAGMA max_page_count``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def fill(self) -> None:
        await self.store._on_writer(
            lambda c: c.execute(
                f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}"
            )
        )

    async def free(self) -> None:
        await self.store._on_writer(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))


async def test_a_full_disk_degrades_retries_and_recovers(tmp_path: Path) -> None:
    """Writes on a full disk wait and retry; health says why; after space frees, every
    write commits and each caller returns only then."""
    changes: list[StoreHealth] = []
    degraded = trio.Event()

    def on_health(health: StoreHealth) -> None:
        changes.append(health)
        if health.status == "degraded":
            degraded.set()

    path = tmp_path / "v.db"
    done: list[int] = []

    async def turn(i: int) -> None:
        await store.append_messages("chat", None, [{"role": "user", "content": "x" * 5000}])
        done.append(i)

    with trio.fail_after(20):
        async with open_store(path, on_health=on_health) as store:
            disk = _Disk(store)
            await store.put_state("before", 1)
            await disk.fill()
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(turn, i)
                nursery.start_soon(store.append_events, [_event(1), _event(2)])
                await degraded.wait()
                health = store.health()
                assert health.status == "degraded" and "full" in (health.detail or "")
                assert health.pending_writes == 21
                assert done == []
                assert await store.read_events() == []
                await disk.free()
            assert store.health() == StoreHealth(status="ok", engine="sqlite")
            assert sorted(done) == list(range(20))
    assert [c.status for c in changes] == ["degraded", "ok", "closed"]
    async with open_store(path) as again:
        assert len(await again.load_conversation("chat", None)) == 20
        assert await again.last_event_seq() == 2


async def test_shutdown_on_a_full_disk_is_bounded_and_tells_the_callers(tmp_path: Path) -> None:
    """Closing while the disk stays full returns within the flush bound; the waiting
    writes fail with StoreClosed (never acknowledged), nothing hangs."""
    outcomes: list[str] = []
    degraded = trio.Event()

    async def write(store: Any, i: int) -> None:
        try:
            await store.put_state(f"k{i}", "x" * 5000)
        except StoreClosed as exc:
            outcomes.append(str(exc))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            async with open_store(
                tmp_path / "v.db",
                flush_seconds=0.5,
                on_health=lambda h: degraded.set() if h.status == "degraded" else None,
            ) as store:
                await _Disk(store).fill()
                for i in range(5):
                    nursery.start_soon(write, store, i)  # noqa: ASYNC111 - on purpose
                nursery.start_soon(_expect_closed, store, 99, outcomes)  # noqa: ASYNC111
                await degraded.wait()
                closing_at = trio.current_time()
            assert trio.current_time() - closing_at < 5
    assert len(outcomes) == 6
    assert all("not acknowledged" in o or "before event" in o for o in outcomes)
    assert store.health().status == "closed"
    async with open_store(tmp_path / "v.db") as again:
        assert (await again.counts())["state"] == 0


async def _expect_closed(store: Any, seq: int, outcomes: list[str]) -> None:
    try:
        await store.wait_events_committed(seq)
    except StoreClosed as exc:
        outcomes.append(str(exc))
