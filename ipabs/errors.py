"""User-facing errors: every problem a user can fix says where it is and what to do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def format_path(path: Iterable[Any]) -> str:
    """Render a field path as ``tranches[0].coupon``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Issue:
    """One located problem in a deal file.

    Attributes
    ----------
    file, line, column
        Where the problem is (line and column 1-based; 0 when not applicable).
    path : str
        Field path, e.g. ``tranches[1].balance``.
    message : str
        What is wrong.
    hint : str
        What to do about it (may be empty).
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        text = f"{where}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class IpabsError(Exception):
    """Base class of errors ipabs reports to users without a traceback."""


class DealError(IpabsError):
    """A deal (or scenario, or loan tape) failed validation.

    Parameters
    ----------
    issues : sequence of Issue
        Every problem found, in file order.
    """

    def __init__(self, issues: Sequence[Issue]):
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column))
        super().__init__("\n".join(str(i) for i in self.issues))
