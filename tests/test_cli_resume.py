"""``vega-trio run --db`` records a run and ``--resume`` continues it from its last
completed step, also after the process was killed (SIGKILL) mid-run."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio

from vega_trio._cli import run_command
from vega_trio.store import open_store
from vega_trio.testing import FakeResponse, open_fake_anthropic_server

SUBPROCESS_LIMIT = 60.0

CHAIN = """\
agents:
  researcher:
    system: You research.
  writer:
    system: You write.
workflows:
  report:
    steps:
      - researcher: {send: "Research {{ topic }}", save: findings}
      - writer: {send: "Summarise: {{ findings }}", save: summary}
      - writer: "Polish: {{ summary }}"
"""


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.pop("VEGA_LLM", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def _last_text(body: dict[str, object]) -> str:
    messages = body["messages"]
    assert isinstance(messages, list)
    content = messages[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


async def _run(file: Path, **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("llm", "scripted")
    with trio.fail_after(SUBPROCESS_LIMIT):
        status = await run_command(file, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return status, out.getvalue(), err.getvalue()


@pytest.mark.slow
async def test_a_killed_run_resumes_without_resending_completed_steps(tmp_path: Path) -> None:
    """A ``run --db`` SIGKILLed while its second step waits for the model resumes with
    ``--resume``: the model gets the interrupted step and the rest, never the first
    step again, and the store records the run as completed after one resume."""
    doc = tmp_path / "chain.vega.yaml"
    doc.write_text(CHAIN)
    db = tmp_path / "runs.db"
    async with open_fake_anthropic_server() as server:
        env = _child_env(ANTHROPIC_BASE_URL=server.base_url, ANTHROPIC_API_KEY="test")
        server.enqueue(
            FakeResponse.text("F"),
            FakeResponse.text("never", first_byte_delay=3600.0),  # in flight at the kill
        )
        command = [sys.executable, "-m", "vega_trio", "run", str(doc), "--db", str(db)]
        with trio.fail_after(SUBPROCESS_LIMIT):
            process = await trio.lowlevel.open_process(
                [*command, "--task", "topic=Go"], env=env, stderr=subprocess.PIPE
            )
            assert process.stderr is not None
            await server.wait_for_requests(2)
            process.send_signal(signal.SIGKILL)
            assert await process.wait() == -signal.SIGKILL
            stderr = b""
            while chunk := await process.stderr.receive_some():
                stderr += chunk
        found = re.search(rb"run (report-\w+) is recorded", stderr)
        assert found is not None, stderr.decode()
        run_id = found.group(1).decode()
        assert [_last_text(r.body) for r in server.requests] == ["Research Go", "Summarise: F"]

        server.enqueue(FakeResponse.text("S"), FakeResponse.text("Final."))
        with trio.fail_after(SUBPROCESS_LIMIT):
            done = await trio.run_process(
                [*command, "--resume", run_id, "--output", "json"],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    assert [_last_text(r.body) for r in server.requests] == [
        "Research Go",
        "Summarise: F",
        "Summarise: F",  # the step in flight at the kill runs again
        "Polish: S",
    ]
    result = json.loads(done.stdout)
    assert (result["output"], result["run_id"], result["steps_reused"]) == ("Final.", run_id, 1)
    assert "✓ report.steps[0] researcher (from its checkpoint)" in done.stderr.decode()
    async with open_store(db) as store:
        record = await store.get_run(run_id)
    assert record is not None
    assert (record.status, record.resumes, record.inputs) == ("completed", 1, {"topic": "Go"})


async def test_run_db_records_and_resume_refuses_a_completed_run(tmp_path: Path) -> None:
    """``run --db`` prints the run id and records the run; ``--resume`` of that completed
    run exits 2 saying there is nothing to resume (nothing runs)."""
    doc = tmp_path / "chain.vega.yaml"
    doc.write_text(CHAIN)
    db = str(tmp_path / "runs.db")
    status, out, err = await _run(doc, tasks=["topic=Go"], db=db, output="json")
    assert status == 0, err
    run_id = json.loads(out)["run_id"]
    assert f"vega-trio: run {run_id} is recorded in {db}" in err
    status, out, err = await _run(doc, db=db, resume=run_id)
    assert (status, out) == (2, "")
    assert f"workflow run {run_id!r} completed; there is nothing to resume" in err


async def test_resume_after_a_failed_run_from_the_cli(tmp_path: Path) -> None:
    """A run that failed (exit 1) says how to resume it; ``--resume`` then runs only
    the failed step and the rest (the offline model shows the reused step)."""
    doc = tmp_path / "chain.vega.yaml"
    doc.write_text(CHAIN.replace("Polish: {{ summary }}", "Polish: {{ summary }} {{ extra }}"))
    db = str(tmp_path / "runs.db")
    status, _, err = await _run(doc, tasks=["topic=Go"], db=db)
    assert status == 1
    found = re.search(r"--resume (report-\w+)", err)
    assert found is not None, err
    async with open_store(db) as store:
        record = await store.get_run(found.group(1))
        assert record is not None and record.status == "failed"
        # The cause is fixed (here: the missing variable is supplied in the record).
        await store.save_run(attrs.evolve(record, inputs={**record.inputs, "extra": "!"}))
    status, out, err = await _run(doc, db=db, resume=found.group(1))
    assert status == 0, err
    assert "✓ report.steps[0] researcher (from its checkpoint)" in err
    assert "✓ report.steps[1] writer (from its checkpoint)" in err
    assert "▶ report.steps[2] writer" in err
    assert out.endswith("!\n")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resume": "report-1"}, "--resume report-1 needs --db PATH"),
        (
            {"resume": "report-1", "db": "x.db", "tasks": ["a=b"]},
            "recorded workflow and inputs; drop --task",
        ),
    ],
)
async def test_resume_usage_problems(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    """``--resume`` without ``--db``, or with inputs of its own, is a usage error (2)."""
    doc = tmp_path / "chain.vega.yaml"
    doc.write_text(CHAIN)
    status, _, err = await _run(doc, **options)
    assert status == 2 and message in err, err
