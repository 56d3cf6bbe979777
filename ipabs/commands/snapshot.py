"""``ipabs snapshot``: record a deal's terms and results for later checks (docs/regression.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ipabs.commands._common import EXIT_OK, _positive, _quiet, _seed, check_paths_fit, compile_notice

DESCRIPTION = """\
Record in a YAML file the deal's terms (every value by field path, and their fingerprint), the
deterministic results of every scenario and, with --paths, the Monte Carlo metrics with their
standard errors, with the versions of ipabs and numba. `ipabs check FILE` runs the deal again and
says what moved. See docs/regression.md."""


def register(subparsers: Any) -> None:
    """Add the ``snapshot`` sub-command."""
    p = subparsers.add_parser(
        "snapshot", help="record a deal's terms and results for `ipabs check`", description=DESCRIPTION
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    p.add_argument(
        "-o", "--out", required=True, metavar="FILE", help="snapshot file to write (e.g. deal.snapshot.yaml)"
    )
    p.add_argument("--risk", metavar="FILE", help="risk assumptions file replacing the deal's `risk`")
    p.add_argument("--paths", type=_positive, help="also record a Monte Carlo of N paths")
    p.add_argument("--seed", type=_seed, default=0, help="Monte Carlo seed (default 0)")
    p.add_argument("--threads", type=_positive, help="Monte Carlo threads (the results do not depend on it)")
    p.add_argument(
        "--importance-sampling",
        choices=("auto", "on", "off"),
        default="auto",
        help="as for `ipabs mc` (default auto); recorded, and used again by `ipabs check`",
    )
    p.set_defaults(func=cmd_snapshot)


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write the snapshot and say what it holds."""
    from pathlib import Path

    from ipabs.errors import IpabsError
    from ipabs.io import check_out_file
    from ipabs.regression import snapshot

    if args.paths is None and args.seed != 0:
        raise IpabsError("--seed applies to the Monte Carlo: add --paths N")
    target = Path(args.out)
    if not target.name.endswith(".snapshot.yaml"):
        raise IpabsError(
            f"-o {args.out}: name snapshot files *.snapshot.yaml (so that `ipabs check DIR` and the "
            "pytest plugin find them)"
        )
    check_out_file(target, "-o")
    if args.paths is not None:
        check_paths_fit(args.deal, args.paths)
    compile_notice(args.paths is not None, quiet=_quiet(args), deterministic=True)
    record = snapshot(
        args.deal,
        target,
        risk=args.risk,
        paths=args.paths,
        seed=args.seed,
        importance_sampling=args.importance_sampling,
        threads=args.threads,
    )
    mc = record["monte_carlo"]
    what = f"{len(record['terms'])} terms, {len(record['scenarios'])} scenario(s)"
    if mc is not None:
        what += f", Monte Carlo {mc['paths']:,} paths (seed {mc['seed']}, {mc['sampling']} sampling)"
    print(f"wrote {args.out}: {what}; fingerprint {record['fingerprint'][:19]}")
    return EXIT_OK
