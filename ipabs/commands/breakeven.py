"""``ipabs breakeven``: breakeven default rates of a tranche under deterministic stresses."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ipabs.commands._common import EXIT_OK, _progress, _quiet, _table, compile_notice
from ipabs.format import pct, pct_given

DESCRIPTION = """\
Find, per stress scenario, the highest pool cumulative default rate (a share of the original
pool balance) the tranche survives without loss: defaults follow the stress's timing profile,
recoveries are cut and delayed, index curves shifted. Prepayments come from the base scenario;
recoveries from the deal's risk section when it has one (the base-case default rate then comes
from it too), otherwise from the base scenario (--recovery chooses). Prints the breakeven default
rate (BDR), its multiple of the base-case default rate and the tranche's loss just above it,
then the minimum over the stresses."""


def register(subparsers: Any) -> None:
    """Add the ``breakeven`` sub-command."""
    p = subparsers.add_parser(
        "breakeven",
        help="breakeven default rates of a tranche under deterministic stress scenarios",
        description=DESCRIPTION,
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    p.add_argument("--tranche", required=True, metavar="NAME", help="tranche to solve for")
    p.add_argument(
        "--stresses", metavar="FILE", help="YAML file with a `stresses` list (default: the built-in set)"
    )
    p.add_argument("--scenario", metavar="BASE", help="base scenario (default: the deal's first)")
    p.add_argument(
        "--recovery",
        choices=("risk", "scenario"),
        help="recoveries the stresses cut and delay: the risk section's (default when the deal has "
        "one, as the base-case default rate comes from it) or the base scenario's",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_breakeven)


def cmd_breakeven(args: argparse.Namespace) -> int:
    """Solve and print the breakeven default rates."""
    from ipabs.analytics.breakeven import breakeven
    from ipabs.analytics.stress import load_stresses
    from ipabs.deal.load import load_deal
    from ipabs.errors import IpabsError

    deal = load_deal(args.deal)
    stresses = load_stresses(args.stresses) if args.stresses else None
    if args.scenario is not None and args.scenario not in deal.spec.scenarios:
        known = ", ".join(deal.spec.scenarios)
        raise IpabsError(f"{args.deal}: no scenario {args.scenario!r}; known scenarios: {known}")
    compile_notice(False, quiet=_quiet(args))
    result = breakeven(
        deal,
        args.tranche,
        stresses,
        scenario=args.scenario,
        recovery=args.recovery,
        progress=_progress(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(breakeven_text(result))
    return EXIT_OK


def _money(v: float) -> str:
    return "-" if v != v else f"{v:,.2f}"


def _multiple(v: float) -> str:
    return "n/a" if v != v else f"{v:.2f}x"


def breakeven_text(result: Any) -> str:
    """The text report of a :class:`ipabs.analytics.breakeven.BreakevenResult`."""
    rows = []
    for r in result.table.itertuples():
        mark = "*" if r.survives_max else ("!" if r.loses_at_zero else "")
        rows.append(
            [
                r.stress,
                r.timing,
                pct_given(r.recovery_haircut),
                str(r.recovery_lag_months),
                pct_given(r.rate_shock),
                pct(r.max_default_rate),
                pct(r.bdr) + mark,
                _multiple(r.multiple),
                _money(r.loss_above),
            ]
        )
    base = result.base_rate
    head = (
        f"{result.deal_name} | breakeven default rates of tranche {result.tranche} | "
        f"base scenario: {result.scenario}\n"
        f"base case: {pct(base)} cumulative default rate ({result.base_basis})\n"
        f"recoveries: {result.recovery_basis}, before each stress's haircut and extra lag\n\n"
    )
    text = head + _table(
        [
            "stress",
            "timing",
            "recovery haircut",
            "lag +m",
            "rate shock",
            "max feasible",
            "BDR",
            "multiple",
            "loss above BDR",
        ],
        rows,
    )
    low = result.minimum
    text += (
        f"\n\nminimum BDR: {pct(low['bdr'])} (stress {low['stress']})"
        + ("" if math.isnan(low["multiple"]) else f", {low['multiple']:.2f}x the base case")
        + f"; loss tolerance {result.loss_tolerance:g}"
    )
    flags = result.table
    if flags["survives_max"].any():
        text += "\n* survives even the largest feasible default rate for that timing (BDR = that rate)"
    if flags["loses_at_zero"].any():
        text += "\n! loses even without defaults (BDR 0)"
    for note in result.notes:
        text += f"\nnote: {note}"
    return text
