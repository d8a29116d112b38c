"""``python -m vega_trio`` runs the command line."""

from .cli import main

main()
