"""``python -m ipabs`` runs the command line."""

from ipabs.cli import run

run()
