"""What every command shares: exit codes, argument types, text tables, progress and notices."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ipabs.format import money, pct

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


def _fmt_money(v: float) -> str:
    return money(v)


def _fmt_pct(v: float) -> str:
    return pct(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table of formatted cells, aligned by display width (wide characters count
    twice), headings in the language of ``--lang``; see :func:`ipabs.console.render_table`."""
    from ipabs.console import render_table

    return render_table(headers, rows)


def _quiet(args: argparse.Namespace) -> bool:
    """Whether a command prints nothing but its result: ``--quiet``, or ``--json`` (whose
    output is read by programs)."""
    from ipabs.console import is_quiet

    return bool(getattr(args, "json", False)) or is_quiet()


def _progress(args: argparse.Namespace) -> bool | None:
    """The ``progress`` argument of a long computation: None (a bar when standard error is a
    terminal), or False when the command is :func:`_quiet`."""
    return False if _quiet(args) else None


def _warn(warnings: Any, section: str | tuple[str, ...] = "", *, result: bool = False) -> None:
    """Print located validation warnings (of the top-level ``section`` or sections when given)
    to stderr; with ``--quiet`` only when they are the ``result`` of the command (``validate``)."""
    from ipabs.console import is_quiet

    if is_quiet() and not result:
        return
    sections = (section,) if isinstance(section, str) else section
    for w in warnings:
        if not section or w.path.split(".", 1)[0] in sections:
            print(f"warning: {w}", file=sys.stderr)


def _compiled_before(kernel: Any) -> bool:
    """Whether ``kernel`` has an entry in numba's disk cache (so it loads instead of
    compiling). Anything that is not a cached dispatcher (the pure-Python twin) needs no
    compiling."""
    try:
        return os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:
        return True


def _kernels_cached(kernels: Sequence[Any]) -> bool:
    """Whether every one of ``kernels`` loads from the disk cache."""
    return all(_compiled_before(k) for k in kernels)


def compile_notice(
    monte_carlo: bool,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    deterministic: bool = False,
) -> bool:
    """Say on a terminal that the kernels are about to be compiled, which takes a minute or two in
    silence the first time (once per ipabs version); say nothing when their disk cache is
    warm, on a pipe, with ``quiet`` (``--json``), with ``--quiet`` or with the pure-Python twin.

    Parameters
    ----------
    monte_carlo : bool
        The command runs the Monte Carlo kernel (else the deterministic waterfall).
    quiet : bool
        Print nothing (machine-readable output was asked for).
    stream : file, optional
        Where to print (default standard error).
    deterministic : bool
        With ``monte_carlo``: the command runs the deterministic waterfall too (``rate``'s
        breakeven), so its kernels count as well.

    Returns
    -------
    bool
        Whether the notice was printed.
    """
    import numba

    from ipabs.console import is_quiet

    stream = sys.stderr if stream is None else stream
    if quiet or is_quiet() or numba.config.DISABLE_JIT or not stream.isatty():
        return False
    kernels: list[Any] = []
    if monte_carlo:
        from ipabs.risk.montecarlo_numba_fns import simulate_chunk

        kernels.append(simulate_chunk)
    if deterministic or not monte_carlo:
        from ipabs.engine.waterfall_numba_fns import run_waterfall
        from ipabs.risk.collections_numba_fns import deterministic_collections

        kernels += [run_waterfall, deterministic_collections]
    if _kernels_cached(kernels):
        return False
    print(
        "compiling the simulation kernels (first run of this ipabs version only; a minute or two)...",
        file=stream,
        flush=True,
    )
    return True


def check_paths_fit(deal: Any, paths: int, *, writing: bool = False, outcomes: str | None = None) -> Any:
    """Refuse a Monte Carlo whose per-path arrays cannot fit in the memory available (or, when
    it streams its paths, whose quantile columns cannot fit on disk), before it starts (exit 2
    instead of a MemoryError after minutes); see :func:`ipabs.montecarlo.outcome_mode`.

    Returns
    -------
    CompiledModel
        The compiled deal (to pass on, so it is not compiled twice).
    """
    from ipabs.api import _model
    from ipabs.montecarlo import check_outcomes_fit, outcome_mode

    model = _model(deal)
    if outcomes is None:  # a command that needs every path's outcomes
        check_outcomes_fit(model, paths, f"--paths {paths:,}", writing=writing)
    else:
        outcome_mode(model, paths, outcomes, f"--paths {paths:,}", writing=writing)
    return model


def _check_out(out_dir: str | None) -> None:
    """An --out folder that cannot be written is refused before any simulation."""
    if out_dir is not None:
        from ipabs.io import check_out_dir

        check_out_dir(out_dir)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 2^63)")
    return value
