"""``ipabs check``: run the deals of snapshot files again and say what moved (docs/regression.md)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ipabs.commands._common import EXIT_INVALID, EXIT_OK, _positive, _quiet, compile_notice

EXIT_MOVED = 1

DESCRIPTION = """\
Run the deal of each snapshot file again and compare: deterministic figures to 1e-9 relative,
Monte Carlo figures bit for bit on the snapshot's engine (ipabs and numba versions, kernel
sources, compiled or not) and within K combined standard errors otherwise. Says which terms
changed since the snapshot (by field path) and which figures moved, by how much. Exit 0 when
every snapshot holds, 1 when something moved, 2 for bad input. A folder stands for every
*.snapshot.yaml file in it."""


def _k(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: give a positive number of standard errors")
    return value


def register(subparsers: Any) -> None:
    """Add the ``check`` sub-command."""
    p = subparsers.add_parser(
        "check", help="check snapshot files: what moved since they were recorded", description=DESCRIPTION
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="snapshot files (or folders of them)")
    p.add_argument(
        "-k",
        type=_k,
        default=4.0,
        metavar="K",
        help="standard errors a Monte Carlo figure may move on another engine (default 4)",
    )
    p.add_argument(
        "--update", action="store_true", help="rewrite the snapshots with the new terms and results"
    )
    p.add_argument("--threads", type=_positive, help="Monte Carlo threads")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list, one per file)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Check every file; print what moved; exit 0, 1 (moved) or 2 (bad input)."""
    from ipabs.errors import DealError, IpabsError
    from ipabs.regression.core import check_file, snapshot_files

    files = snapshot_files(args.files)
    if not files:
        raise IpabsError(f"no *.snapshot.yaml files in {', '.join(args.files)}")
    compile_notice(True, quiet=_quiet(args), deterministic=True)
    results = []
    bad = 0
    for f in files:
        try:
            results.append(check_file(f, k=args.k, update=args.update, threads=args.threads))
        except DealError as exc:
            bad += 1
            for issue in exc.issues:
                print(issue, file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        for r in results:
            print(r.text())
    if bad:
        return EXIT_INVALID
    if args.update:
        return EXIT_OK
    return EXIT_OK if all(r.ok for r in results) else EXIT_MOVED
