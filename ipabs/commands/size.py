"""``ipabs size``: the tranche size (subordination), reserve or deficiency payment cap that
reaches a target rating."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ipabs.analytics.sizing import BY, CRITERIA


def register(subparsers: Any) -> None:
    """Add the ``size`` command."""
    from ipabs.commands._common import _positive, _seed

    p = subparsers.add_parser(
        "size",
        help="size a tranche (subordination), a reserve or a deficiency cap to a target rating",
        description="Find the structure that just reaches a target rating for a tranche, by Monte "
        "Carlo with the same random numbers for every structure tried.",
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file with a `risk` section")
    p.add_argument("--tranche", required=True, help="tranche whose rating is targeted")
    p.add_argument("--target", required=True, metavar="RATING", help="target rating, e.g. Aaa or AAA")
    p.add_argument(
        "--by",
        choices=BY,
        default="tranche",
        help="what to size: the tranche's balance against the one below it (default), a reserve "
        "account's initial balance, or a deficiency payment's total cap",
    )
    p.add_argument("--name", metavar="NAME", help="the account or support to size (default: the first)")
    p.add_argument(
        "--criterion",
        choices=CRITERIA,
        default="expected_loss",
        help="compare the expected loss (default) or the probability of any loss with the table",
    )
    p.add_argument("--table", metavar="FILE", help="rating table (YAML or CSV; default: the shipped one)")
    p.add_argument("--paths", type=_positive, default=20_000, help="paths per structure (default 20,000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=_positive, help="threads (default: one per core)")
    p.add_argument("--risk", metavar="FILE", help="risk assumptions file replacing the deal's `risk`")
    p.add_argument(
        "--importance-sampling",
        nargs="?",
        const="on",
        default="auto",
        choices=("auto", "on", "off"),
        help="aim importance sampling at the tranche's losses, chosen once on the deal as given and "
        "used for every structure (default auto, as for `mc`: only when a plain pilot run sees too "
        "few of its losses)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=run)


def _text(r: Any) -> str:
    from ipabs.commands._common import _table
    from ipabs.format import money, pct, pct_estimate

    what = {
        "tranche": f"{r.tranche}'s balance",
        "reserve": f"reserve {r.target_name}",
        "deficiency_cap": (f"deficiency cap of {r.target_name}"),
    }[r.by]
    metric = "expected loss" if r.criterion == "expected_loss" else "probability of loss"
    lines = [
        f"sizing {what} for {r.tranche} at {r.rating} ({metric}, rating table {r.table!r}); "
        f"{r.paths:,} paths per structure, seed {r.seed}, {r.sampling} sampling",
        "",
    ]
    if r.size is None:
        lines.append(f"no size in the range searched reaches {r.rating}; the best structure tried:")
    else:
        lines.append(f"size found: {money(r.size)}")
    lines.append(
        f"{r.tranche}: {metric} {pct_estimate(r.metric, r.metric_se)} against the "
        f"{r.rating} limit {pct(r.limit)} at {r.horizon_years:.2f} years (its expected WAL); "
        f"subordination {100 * r.subordination:.2f}%"
    )
    lines.append("")
    lines.append(_table(["tranche", "balance"], [[k, money(v)] for k, v in r.balances.items()]))
    lines.append("")
    lines.append(f"{len(r.trials)} structures tried:")
    lines.append(
        _table(
            ["size", f"{metric} ± se", "limit", "WAL (y)", "meets"],
            [
                [
                    money(t.size),
                    pct_estimate(t.metric, t.metric_se),
                    pct(t.limit),
                    f"{t.horizon_years:.2f}",
                    "yes" if t.meets else "no",
                ]
                for t in r.trials
            ],
        )
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``ipabs size``."""
    from ipabs.analytics.sizing import size_structure
    from ipabs.commands._common import EXIT_OK, _progress, _quiet, check_paths_fit, compile_notice

    check_paths_fit(args.deal, args.paths)
    compile_notice(True, quiet=_quiet(args))

    result = size_structure(
        args.deal,
        args.tranche,
        args.target,
        by=args.by,
        target_name=args.name,
        criterion=args.criterion,
        paths=args.paths,
        seed=args.seed,
        threads=args.threads,
        table=args.table,
        importance_sampling={"auto": "auto", "on": True, "off": False}[args.importance_sampling],
        risk=args.risk,
        progress=_progress(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(_text(result))
    sys.stdout.flush()
    return EXIT_OK
