"""Analysis commands of the ``ipabs`` command line, one module each.

Each module (but ``_common``, what they share) defines ``register(subparsers)``, which adds
its sub-command and sets ``func`` (a function of the parsed arguments returning an exit
code). :func:`ipabs.cli.build_parser` registers every module of this package in name order;
modules import their heavy dependencies inside the command function so that ``ipabs --help``
stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def register_all(subparsers: Any) -> None:
    """Register every command module of this package."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(subparsers)
