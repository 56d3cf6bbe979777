"""Console output shared by every command: text tables and progress bars, both drawn with
``rich`` (which measures Chinese and other wide characters by the cells they take on screen).

Tables are plain text on a terminal and on a pipe alike (no colour codes, no box-drawing
characters): a heading line, a line of dashes, one line per row, columns separated by spaces,
the first column aligned left and the others right. Progress bars are drawn only on a terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import sys
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TextIO

from ipabs.labels import label

__all__ = ["ProgressBar", "is_quiet", "language", "render_table", "settings"]

# set by the command line for the command running (--lang, --quiet)
_LANG: contextvars.ContextVar[str] = contextvars.ContextVar("ipabs_console_lang", default="en")
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("ipabs_console_quiet", default=False)


def language() -> str:
    """Language of the headings of the command running (``--lang``; default ``"en"``)."""
    return _LANG.get()


def is_quiet() -> bool:
    """Whether the command running prints only its result (``--quiet``)."""
    return _QUIET.get()


@contextlib.contextmanager
def settings(lang: str = "en", quiet: bool = False) -> Iterator[None]:
    """Inside the block, tables have headings in ``lang`` (``"en"`` or ``"zh"``) and, with
    ``quiet``, no notice, warning or progress bar is printed."""
    label("tranche", lang)  # refuses an unknown language
    tokens = (_LANG.set(lang), _QUIET.set(bool(quiet)))
    try:
        yield
    finally:
        _QUIET.reset(tokens[1])
        _LANG.reset(tokens[0])


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], lang: str | None = None) -> str:
    """A plain-text table, aligned by display width.

    Parameters
    ----------
    headers : sequence of str
        Column headings, in English; printed in ``lang`` (see :func:`ipabs.labels.label`).
    rows : sequence of sequences of str
        Cells, already formatted (see :mod:`ipabs.format`), as many per row as headings.
    lang : {"en", "zh"}, optional
        Language of the headings (default: :func:`language`).

    Returns
    -------
    str
        Heading line, dashes, one line per row; no trailing newline or trailing spaces.
    """
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    lang = language() if lang is None else lang
    for r in rows:
        if len(r) != len(headers):
            raise ValueError(f"a row has {len(r)} cells for {len(headers)} headings: {list(r)}")
    # no box: rich pads each cell to its column's display width; the line of dashes under the
    # headings is a row of its own so that it spans each column's text only, as it always has
    headings = [label(h, lang) for h in headers]
    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in rows]) for i, h in enumerate(headings)]
    table = Table(box=None, pad_edge=False, padding=(0, 0, 0, 2), highlight=False)
    for i, h in enumerate(headings):
        table.add_column(Text(h), justify="left" if i == 0 else "right", no_wrap=True)
    table.add_row(*(Text("-" * w) for w in widths))
    for r in rows:
        table.add_row(*(Text(c) for c in r))  # Text: cells are never read as markup
    out = io.StringIO()
    console = Console(
        file=out,
        width=1_000_000,  # never wrap: a wide table scrolls rather than breaking its rows
        color_system=None,
        force_terminal=False,
        force_jupyter=False,
        legacy_windows=False,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


class ProgressBar:
    """A progress bar with the time left, on a terminal only.

    Parameters
    ----------
    total : int
        Units of work (paths, points, stresses).
    stream : file, optional
        Where to draw (default standard error).
    enabled : bool or None
        Draw the bar (None: only when ``stream`` is a terminal).
    what : str
        The unit counted, printed after the count (``"paths"``).
    description : str
        Printed before the bar.

    Notes
    -----
    Use it as a context manager, or call :meth:`close`: a drawn bar runs a refresh thread
    until it is closed.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        *,
        what: str = "",
        description: str = "",
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(self.stream.isatty()) if enabled is None else bool(enabled)
        self._progress = None
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # a terminal is whatever says so (not FORCE_COLOR): asked for on a pipe, the bar is
        # written once, finished, in plain text
        console = Console(
            file=self.stream,
            force_terminal=bool(self.stream.isatty()),
            force_jupyter=False,
            highlight=False,
            markup=False,
            emoji=False,
        )
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(what, markup=False),
            TimeElapsedColumn(),
            TextColumn("elapsed,", markup=False),
            TimeRemainingColumn(),
            TextColumn("left", markup=False),
            console=console,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def update(self, done: int) -> None:
        """``done`` units of the total are finished."""
        if self._progress is not None:
            self._progress.update(self._task, completed=done)

    def close(self) -> None:
        """Draw the final state and stop (the finished bar stays on screen)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
