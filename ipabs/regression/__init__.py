"""Deal terms under regression: ``snapshot``, ``check`` and ``diff`` (see docs/regression.md).

The names load on first use, so that the pytest plugin (:mod:`ipabs.regression.plugin`), which
pytest imports at every start where ipabs is installed, costs nothing until a snapshot is found.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CheckResult",
    "DiffResult",
    "Moved",
    "TermChange",
    "check",
    "deal_terms",
    "diff",
    "fingerprint",
    "snapshot",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ipabs.regression import core

        return getattr(core, name)
    raise AttributeError(f"module 'ipabs.regression' has no attribute {name!r}")
