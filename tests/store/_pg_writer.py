"""A writer process for the kill -9 test: appends chat turns to a PostgreSQL store from
several tasks at once and prints ``ack TASK N`` after each is acknowledged (committed).

Usage: python _pg_writer.py URL TASKS
"""

from __future__ import annotations

import sys

import trio

from vega_trio.store._postgres import open_postgres


async def main(url: str, tasks: int) -> None:
    async with open_postgres(url) as store:

        async def turns(task: int) -> None:
            n = 0
            while True:
                await store.append_messages(
                    "agent", f"user{task}", [{"role": "user", "content": f"{task}:{n}"}]
                )
                print(f"ack {task} {n}", flush=True)
                n += 1

        async with trio.open_nursery() as nursery:
            for task in range(tasks):
                nursery.start_soon(turns, task)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
