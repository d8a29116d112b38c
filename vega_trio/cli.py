"""The ``vega-trio`` command line.

Click commands stay thin: they parse arguments and hand over to async functions
(``trio.run`` at the edge only), so tests can call those functions directly.
"""

from __future__ import annotations

import click

from ._version import __version__

__all__ = ["main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="vega-trio")
def main() -> None:
    """vega-trio: fault-tolerant AI agent orchestration on Trio.

    Agents run as supervised processes (Erlang/OTP style). Use the library from
    Python (see the README's quick start); the `run`, `validate`, `repl` and `serve`
    commands for `.vega.yaml` files arrive in later releases.
    """


if __name__ == "__main__":  # pragma: no cover
    main()
