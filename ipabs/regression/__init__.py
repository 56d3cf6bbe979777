"""Deal terms under regression: ``snapshot``, ``check`` and ``diff`` (see docs/regression.md)."""

from __future__ import annotations

from ipabs.regression.core import (
    CheckResult,
    DiffResult,
    Moved,
    TermChange,
    check,
    deal_terms,
    diff,
    fingerprint,
    snapshot,
)

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
