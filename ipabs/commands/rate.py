"""``ipabs rate``: implied ratings of every tranche, by expected loss, by default probability
and by breakeven against target default rates, with the tables used."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``rate`` command."""
    from ipabs.commands._common import _positive, _seed

    p = subparsers.add_parser(
        "rate",
        help="implied ratings two ways: expected loss / default probability, and BDR against TDR",
        description="Rate every tranche by its Monte Carlo expected loss and default probability "
        "against a rating table, and by its breakeven default rate against target default rates.",
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file with a `risk` section")
    p.add_argument("--paths", type=_positive, default=100_000, help="Monte Carlo paths (default 100,000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=_positive, help="threads (default: one per core)")
    p.add_argument("--table", metavar="FILE", help="rating table (YAML or CSV; default: the shipped one)")
    p.add_argument("--risk", metavar="FILE", help="risk assumptions file replacing the deal's `risk`")
    p.add_argument(
        "--stresses", metavar="FILE", help="stress scenarios for the BDR (default: the shipped set)"
    )
    p.add_argument(
        "--multiples",
        metavar="FILE",
        help="YAML mapping of rating to stress multiple for the multiple-based TDR",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=run)


def _text(r: Any) -> str:
    from ipabs.commands._common import _table
    from ipabs.format import pct_estimate

    lines = [
        f"{r.deal_name} | implied ratings | rating table {r.table_name!r}; {r.paths:,} paths, seed {r.seed} "
        f"({r.sampling} sampling)",
        "",
        "1. expected loss and default probability against the rating table (at each tranche's "
        "expected WAL; the range covers the estimate's 95% interval):",
    ]
    rows = []
    for t in r.tranches:
        rows.append(
            [
                t.tranche,
                pct_estimate(t.expected_loss, t.expected_loss_se),
                str(t.el_rating or "below table"),
                " .. ".join(str(x or "below") for x in t.el_rating_range),
                pct_estimate(t.probability_of_loss, t.probability_of_loss_se),
                str(t.pd_rating or "below table"),
                f"{t.horizon_years:.2f}",
            ]
        )
    lines.append(
        _table(["tranche", "expected loss", "EL rating", "range", "P(loss)", "PD rating", "WAL (y)"], rows)
    )
    if not r.breakeven_applies:
        lines += [
            "",
            "2. breakeven default rate against target default rates: does not apply to this deal: "
            f"{r.breakeven_reason}.",
        ]
    else:
        lines += _breakeven_lines(r)
    for t in r.tranches:
        if t.note:
            lines.append(f"\nnote ({t.tranche}): {t.note}")
    for note in r.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _breakeven_lines(r: Any) -> list[str]:
    """Section 2 of the text: BDR per tranche against both kinds of TDR, and the TDRs used."""
    from ipabs.commands._common import _table
    from ipabs.format import pct

    lines: list[str] = []
    lines += [
        "",
        "2. breakeven default rate (lowest over the stress scenarios) against target default rates "
        f"(base case {pct(r.base_rate)}: {r.base_basis}):",
    ]
    rows = []
    for t in r.tranches:
        rows.append(
            [
                t.tranche,
                pct(t.bdr),
                t.bdr_stress or "-",
                "n/a" if math.isnan(t.bdr_multiple) else f"{t.bdr_multiple:.2f}x",
                str(t.bdr_rating_quantile or ("n/a" if math.isnan(t.bdr) else "below table")),
                str(t.bdr_rating_multiple or ("n/a" if math.isnan(t.bdr) else "below table")),
            ]
        )
    lines.append(
        _table(
            ["tranche", "BDR", "stress", "multiple", "rating (TDR quantile)", "rating (TDR multiple)"], rows
        )
    )
    lines += ["", "target default rates used (TDR quantile: pool default rate at 1 - the rating's PD):"]
    for t in r.tranches:
        sub = r.tdr[r.tdr["tranche"] == t.tranche]
        lines.append(f"  {t.tranche} (horizon {t.horizon_years:.2f} years):")
        body = _table(
            ["rating", "PD", "TDR quantile", "95% interval", "multiple", "TDR multiple"],
            [
                [
                    row.rating,
                    pct(row.default_probability),
                    pct(row.tdr_quantile),
                    f"{pct(row.tdr_quantile_ci_low)} .. {pct(row.tdr_quantile_ci_high)}",
                    "n/a" if math.isnan(row.multiple) else f"{row.multiple:g}x",
                    pct(row.tdr_multiple),
                ]
                for row in sub.itertuples()
            ],
        )
        lines += ["    " + line for line in body.splitlines()]
    return lines


def run(args: argparse.Namespace) -> int:
    """Run ``ipabs rate``."""
    from ipabs.analytics.implied import implied_ratings
    from ipabs.commands._common import EXIT_OK, _progress, _quiet, check_paths_fit, compile_notice

    check_paths_fit(args.deal, args.paths)
    # the breakeven runs the deterministic waterfall too
    compile_notice(True, quiet=_quiet(args), deterministic=True)

    report = implied_ratings(
        args.deal,
        paths=args.paths,
        seed=args.seed,
        threads=args.threads,
        table=args.table,
        stresses=args.stresses,
        multiples=args.multiples,
        risk=args.risk,
        progress=_progress(args),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(_text(report))
    return EXIT_OK
