"""``ipabs roll-rates``: monthly roll and cure rates estimated from a history of reports
(docs/surveillance.md#roll-rates-from-a-history-of-reports)."""

from __future__ import annotations

import argparse
import json
from typing import Any

DESCRIPTION = """\
Estimate the monthly roll and cure rates of the risk model's delinquency chain (current, 30, 60,
90+ days behind, defaulted) from two or more state files of a deal, by maximum likelihood of
each loan's moves between consecutive reports, with standard errors; print them with the moves
seen and the `delinquency:` block to put in the deal's `risk` section. Rates the reports cannot
pin down are flagged."""


def register(subparsers: Any) -> None:
    """Add the ``roll-rates`` command."""
    p = subparsers.add_parser(
        "roll-rates",
        help="estimate monthly roll and cure rates from a history of state files",
        description=DESCRIPTION,
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    p.add_argument(
        "--states", required=True, nargs="+", metavar="FILE", help="state files, two or more, in date order"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=run)


def roll_rates_text(r: Any) -> str:
    """The estimate as text."""
    from ipabs.analytics.rollrates import RATES, STATES
    from ipabs.commands._common import _table
    from ipabs.format import pct_estimate

    lines = [
        f"roll and cure rates from {len(r.reports)} reports ({', '.join(r.reports)}; "
        f"{', '.join(str(m) for m in r.months)} months apart), monthly:",
        "",
    ]
    rows = [[k, pct_estimate(r.rates[k], r.se[k]), r.flags[k] or "-"] for k in RATES]
    lines.append(_table(["rate", "estimate", "flag"], rows))
    lines += ["", "loans by state on a report (rows) and on the next (columns):"]
    rows = [[STATES[i]] + [str(int(x)) for x in r.moves[i]] for i in range(4)]
    lines.append(_table(["from", *STATES], rows))
    lines += ["", "for the deal's `risk` section (sudden defaults of current loans are the copula's PDs):"]
    lines.append(r.risk_yaml().rstrip())
    if r.warnings:
        lines += ["", "warnings: these estimates cannot be taken as printed"]
        lines += [f"  - {w}" for w in r.warnings]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``ipabs roll-rates``."""
    from ipabs.analytics.rollrates import estimate_roll_rates
    from ipabs.commands._common import EXIT_OK, _warn
    from ipabs.deal.load import load_deal
    from ipabs.deal.state import load_state

    deal = load_deal(args.deal)
    _warn(deal.warnings, "deal")
    states = [load_state(deal, path) for path in args.states]
    result = estimate_roll_rates(states)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(roll_rates_text(result))
    return EXIT_OK
