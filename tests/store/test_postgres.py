"""The PostgreSQL engine's own behaviour: the test server finder, opening (unreachable,
newer or foreign schema, psycopg missing), group commit, and the commit whose outcome is
unknown. The shared contract suite (test_contract.py) covers the Store protocol itself."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from vega_trio._errors import StoreError, StoreOpenError
from vega_trio.store import StoredEvent, open_store
from vega_trio.store._migrations import LATEST

from ._postgres_server import (
    PostgresServer,
    PostgresUnavailable,
    find_pg_bin,
    postgres_missing_reason,
)

psycopg = pytest.importorskip("psycopg")

from vega_trio.store._postgres import INSTALL_HINT, _Writer, open_postgres  # noqa: E402


def _fake_bin(root: Path, version: str) -> Path:
    """A directory that looks like Debian's /usr/lib/postgresql/VERSION/bin."""
    directory = root / version / "bin"
    directory.mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres"):
        path = directory / name
        path.write_text("#!/bin/sh\nexit 1\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


# ---------------------------------------------------------------- the finder
def test_finder_finds_this_machines_postgresql() -> None:
    """On this machine (Debian with postgresql 15) the finder finds a usable bin dir."""
    found = find_pg_bin()
    assert found is not None
    assert (found / "initdb").exists() and (found / "pg_ctl").exists()
    assert postgres_missing_reason() is None


def test_finder_picks_the_newest_major_version(tmp_path: Path) -> None:
    """Several installed major versions: the newest one's binaries (15 over 9 and 13)."""
    for version in ("9", "13", "15"):
        _fake_bin(tmp_path, version)
    (tmp_path / "16" / "bin").mkdir(parents=True)  # no binaries: not a candidate
    assert find_pg_bin([str(tmp_path / "*" / "bin")]) == tmp_path / "15" / "bin"


def test_finder_reports_a_missing_package_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the package (searched elsewhere, nothing on PATH): None, and a skip reason
    that says what to install and that nox does it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    search = [str(tmp_path / "*" / "bin")]
    assert find_pg_bin(search) is None
    reason = postgres_missing_reason(search)
    assert reason is not None
    assert "apt-get install -y postgresql" in reason and "nox -s tests" in reason
    with pytest.raises(PostgresUnavailable):
        PostgresServer(search=search)


# ---------------------------------------------------------------- opening
async def test_unreachable_server_is_a_clear_error_at_start(
    postgres_server: PostgresServer,
) -> None:
    """No server on the port: StoreOpenError(unreachable) at once, naming the host and
    port, with the URL's password masked."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://vega:sekrit-password-1@127.0.0.1:{port}/nothing"
    with trio.fail_after(20):
        with pytest.raises(StoreOpenError) as info:
            async with open_postgres(url):
                pytest.fail("opened a store on a port where no server listens")
    assert info.value.kind == "unreachable"
    message = str(info.value)
    assert "sekrit-password-1" not in message and "***@127.0.0.1" in message
    assert f"{port}" in message and "server is running" in message


async def test_newer_schema_is_refused_untouched(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A database whose schema_version is newer than this code's is refused, unchanged."""
    async with open_postgres(postgres_url) as store:
        await store.put_state("k", 1)
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.psql(
        database,
        f"INSERT INTO schema_version VALUES ({LATEST + 1}, 0, 'from the future')",
    )
    with trio.fail_after(20):
        with pytest.raises(StoreOpenError) as info:
            async with open_postgres(postgres_url):
                pytest.fail("opened a database of a newer schema")
    assert info.value.kind == "newer_schema"
    assert f"schema version {LATEST + 1}" in str(info.value)
    assert "Upgrade vega-trio" in str(info.value)
    assert postgres_server.psql(database, "SELECT value FROM state") == "1"


async def test_another_programs_tables_are_refused(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Tables named like ours but no schema_version: foreign, nothing created."""
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.psql(database, "CREATE TABLE events (id int)")
    with pytest.raises(StoreOpenError) as info:
        async with open_postgres(postgres_url):
            pytest.fail("opened another program's database")
    assert info.value.kind == "foreign"
    assert postgres_server.psql(database, "SELECT to_regclass('schema_version')") == ""


async def test_opening_twice_migrates_once(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Two stores opening one empty database at once (two nodes): one migrates, the other
    finds the schema made; both work."""
    async with trio.open_nursery() as nursery:
        for _ in range(2):

            async def one() -> None:
                async with open_postgres(postgres_url) as store:
                    await store.put_state("x", 1)

            nursery.start_soon(one)
    database = postgres_url.rsplit("/", 1)[1]
    versions = postgres_server.psql(database, "SELECT count(*) FROM schema_version")
    assert int(versions) == LATEST


async def test_missing_psycopg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, open_store("postgresql://...") fails with the pip command to run
    (and the SQLite engine does not need it)."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreOpenError) as info:
        async with open_store("postgresql://vega:a-password-123@127.0.0.1:1/db"):
            pytest.fail("opened a PostgreSQL store without psycopg")
    assert INSTALL_HINT in str(info.value)
    assert "a-password-123" not in str(info.value)
    assert info.value.kind == "invalid"
    async with open_store(":memory:") as store:
        await store.put_state("k", 1)


# ------------------------------------------------------------- group commit
async def test_concurrent_writers_share_commits(postgres_url: str) -> None:
    """200 concurrent writes commit in far fewer transactions, each caller acknowledged
    only once its row is readable."""
    async with open_postgres(postgres_url) as store:
        seen: list[int] = []

        async def write(i: int) -> None:
            await store.append_messages("a", f"u{i % 7}", [{"role": "user", "content": i}])
            seen.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(write, i)
        assert sorted(seen) == list(range(200))
        assert store._committer.commits < 100
        total = sum(n for _, _, n in await store.list_conversations())
        assert total == 200


async def test_text_with_nul_is_stored_as_on_sqlite_not_refused(postgres_url: str) -> None:
    """PostgreSQL's text can't hold NUL: an error message or a name with one is stored
    with U+FFFD instead of failing the write (SQLite stores it), and looking it up with
    the original string still finds it."""
    from vega_trio.store import ProcessRecord

    async with open_postgres(postgres_url) as store:
        await store.save_processes(
            [ProcessRecord(id="p\x00", agent="a", status="failed", error="bad\x00output")]
        )
        await store.put_state("key\x00", "value\x00")
        await store.append_messages("agent\x00", "user\x00", [{"content": "x\x00"}])
        process = await store.get_process("p\x00")
        assert process is not None and process.error == "bad\ufffdoutput"
        assert await store.get_state("key\x00") == "value\x00"  # JSON escapes it
        assert await store.load_conversation("agent\x00", "user\x00") == [{"content": "x\x00"}]
        assert store.health().status == "ok"


async def test_events_wait_for_commit(postgres_url: str) -> None:
    """wait_events_committed returns once the events up to seq are readable."""
    async with open_postgres(postgres_url) as store:
        events = [StoredEvent(seq=i, type="t.x", timestamp=time.time(), data={}) for i in (1, 2)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.append_events, events)
            with trio.fail_after(10):
                await store.wait_events_committed(2)
            assert [e.seq for e in await store.read_events()] == [1, 2]
        assert await store.last_event_seq() == 2


async def test_reopen_continues_event_numbering(postgres_url: str) -> None:
    """Events survive closing the store; last_event_seq continues from the stored ones."""
    async with open_postgres(postgres_url) as store:
        await store.append_events([StoredEvent(seq=7, type="a", timestamp=1.0, data={"k": "v"})])
    async with open_postgres(postgres_url) as store:
        assert await store.last_event_seq() == 7
        assert (await store.read_events())[0].data == {"k": "v"}


# ----------------------------------------------- a commit of unknown outcome
class _CommitThenBreak:
    """A connection whose next COMMIT succeeds on the server but is reported lost (the
    connection broke before the answer arrived)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def commit(self) -> None:
        self._conn.commit()
        self._conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly")


def test_a_commit_that_did_commit_is_not_applied_twice(postgres_url: str) -> None:
    """The connection breaks during COMMIT after the server committed: the retry finds the
    batch's token and does not append the message a second time; new writes still run."""

    def connect() -> Any:
        return psycopg.connect(postgres_url)

    setup = connect()
    from vega_trio.store._postgres import _migrate

    _migrate(setup, "test")
    setup.close()
    writer = _Writer(connect, _CommitThenBreak(connect()), psycopg, "test")

    def append(cur: Any) -> str:
        cur.execute(
            "INSERT INTO messages (agent, user_key, position, message) VALUES "
            "('a', '', (SELECT count(*) FROM messages), '{}')"
        )
        return "appended"

    def other(cur: Any) -> str:
        cur.execute("INSERT INTO state (key, value) VALUES ('other', '1')")
        return "other"

    with pytest.raises(StoreError, match="unreachable"):
        writer.run_batch([append])
    # The committer retries the same writes (plus what was queued meanwhile).
    assert writer.run_batch([append, other]) == [(True, "appended"), (True, "other")]
    check = connect()
    assert check.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    assert check.execute("SELECT count(*) FROM state").fetchone()[0] == 1
    check.close()
    assert writer.conn is not None
    writer.conn.close()


def test_a_commit_that_did_not_commit_is_applied_on_retry(postgres_url: str) -> None:
    """The connection breaks before COMMIT reached the server: the retry applies it."""

    def connect() -> Any:
        return psycopg.connect(postgres_url)

    from vega_trio.store._postgres import _migrate

    setup = connect()
    _migrate(setup, "test")
    setup.close()

    class _BreakBeforeCommit(_CommitThenBreak):
        def commit(self) -> None:
            self._conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    writer = _Writer(connect, _BreakBeforeCommit(connect()), psycopg, "test")

    def put(cur: Any) -> None:
        cur.execute("INSERT INTO state (key, value) VALUES ('k', '1')")

    with pytest.raises(StoreError, match="unreachable"):
        writer.run_batch([put])
    assert writer.run_batch([put]) == [(True, None)]
    check = connect()
    assert check.execute("SELECT count(*) FROM state").fetchone()[0] == 1
    check.close()
    assert writer.conn is not None
    writer.conn.close()


async def test_listings_sort_like_sqlite(postgres_url: str, tmp_path: Path) -> None:
    """Agents, conversations, same-time runs and cost buckets come back in the same order
    and shape from PostgreSQL as from SQLite (byte-wise text order, truncated buckets),
    whatever the server's locale."""
    from vega_trio.store import AgentRecord, CostRecord, RunRecord

    names = ["b", "B", "a", "_z", "Z", "é", "a b"]

    async def snapshot(location: str) -> tuple[Any, ...]:
        async with open_store(location) as store:
            for name in names:
                await store.save_agent(AgentRecord(name=name, definition={}))
                await store.append_messages("agent", name, [{"content": name}])
                await store.save_run(RunRecord(id=name, workflow="w", status="completed"))
            await store.append_messages("agent", None, [{"content": "nobody"}])
            await store.record_costs(
                [
                    CostRecord(seq=1, timestamp=119.0, model="m", cost_usd=1.0),
                    CostRecord(seq=2, timestamp=61.0, model="m", cost_usd=2.0),
                ]
            )
            return (
                [a.name for a in await store.list_agents()],
                await store.list_conversations(),
                [r.id for r in (await store.list_runs()).items],
                await store.cost_series(bucket_seconds=60),
            )

    postgres = await snapshot(postgres_url)
    sqlite = await snapshot(str(tmp_path / "vega.db"))
    assert postgres == sqlite
    assert postgres[3] == [{"start": 60.0, "cost_usd": 3.0, "calls": 2}]


@pytest.mark.slow
def test_servers_of_dead_sessions_are_reaped(tmp_path: Path) -> None:
    """A server whose test session died without teardown (its owner pid is gone) is stopped
    and its directory removed by the next session; a live session's server is left alone."""
    import subprocess

    from ._postgres_server import reap_stale_servers

    gone = subprocess.Popen(["true"])
    gone.wait()
    with PostgresServer() as live, PostgresServer() as stale:
        (stale.base / "owner").write_text(str(gone.pid))
        stale_pid = int(stale.pid_file.read_text().splitlines()[0])
        reaped = reap_stale_servers(str(stale.base.parent))
        assert stale.base in reaped and live.base not in reaped
        assert not stale.base.exists()
        with pytest.raises(ProcessLookupError):
            os.kill(stale_pid, 0)
        assert live.psql("postgres", "SELECT 1") == "1"


async def test_reset_command_on_postgresql(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """`vega-trio reset --db postgresql://… --yes` shows the counts under the URL with its
    password masked, and empties the database."""
    import io

    from vega_trio._cli._reset import reset_command

    async with open_store(postgres_url) as store:
        await store.append_messages("a", None, [{"content": "hi"}, {"content": "there"}])
    out, err = io.StringIO(), io.StringIO()
    status = await reset_command(postgres_url, yes=True, ask=None, out=out, err=err)
    text = out.getvalue() + err.getvalue()
    assert status == 0, text
    assert postgres_server.password not in text and "***@127.0.0.1" in text
    assert "messages" in text
    async with open_store(postgres_url) as store:
        assert (await store.counts())["messages"] == 0
