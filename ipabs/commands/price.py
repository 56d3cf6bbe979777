"""``ipabs price``: price, yield and spreads of a tranche, with durations, WAL and accrued interest."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ipabs.commands._common import EXIT_OK, _positive, _seed, _table, check_paths_fit, compile_notice
from ipabs.errors import IpabsError
from ipabs.format import money, number, pct, pct_estimate

DESCRIPTION = """\
Price a tranche of a deterministic run from one of a clean price (percent of the balance
outstanding on the settlement date), an annual effective yield or a Z-spread over a curve (a
curve file, YAML or CSV, or a flat rate). Prints the price (clean and dirty), accrued interest,
yield, Z- and I-spread, Macaulay and modified duration and convexity at the yield, WAL, the
principal window, the loss and the coupon that prices the tranche at par at the same spread.
Conventions: docs/pricing.md."""


def rate(text: str) -> float:
    """A rate or spread from the command line: ``0.045``, ``4.5%`` or ``120bp``."""
    t = text.strip().lower().replace("_", "")
    try:
        if t.endswith("bp"):
            return float(t[:-2]) / 10_000.0
        if t.endswith("%"):
            return float(t[:-1]) / 100.0
        return float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: write 0.045, 4.5% or 120bp") from None


def price_number(text: str) -> float:
    """A price, percent of the balance (``99.5``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a price: write e.g. 99.5 (percent of the balance)"
        ) from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"{text}: a price must be a positive number (percent of the balance)"
        )
    return value


def curve_argument(text: str) -> Any:
    """``--curve``: a flat rate (``2.5%``) or a curve file."""
    try:
        return rate(text)
    except argparse.ArgumentTypeError:
        return text


def register(subparsers: Any) -> None:
    """Add the ``price`` sub-command."""
    p = subparsers.add_parser(
        "price", help="price, yield, spreads, duration and WAL of a tranche", description=DESCRIPTION
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    p.add_argument("--tranche", required=True, metavar="NAME", help="tranche to price")
    quote = p.add_mutually_exclusive_group(required=True)
    quote.add_argument("--price", type=price_number, metavar="P", help="clean price, percent of the balance")
    quote.add_argument("--yield", dest="yld", type=rate, metavar="Y", help="annual effective yield (4.5%%)")
    quote.add_argument("--spread", type=rate, metavar="S", help="Z-spread over --curve (1.2%% or 120bp)")
    p.add_argument(
        "--curve", type=curve_argument, metavar="FILE|RATE", help="curve file (YAML/CSV) or flat rate"
    )
    p.add_argument("--scenario", metavar="S", help="scenario name or speeds such as cdr=2%%,cpr=10%%")
    p.add_argument("--settle", metavar="DATE", help="settlement date YYYY-MM-DD (default: closing date)")
    p.add_argument(
        "--paths",
        type=_positive,
        metavar="N",
        help="also run N Monte Carlo paths: expected price at the curve plus the Z-spread, and the "
        "distribution of the yield (needs --curve and the deal's risk section)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="Monte Carlo seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_price)


def cmd_price(args: argparse.Namespace) -> int:
    """Price the tranche and print the result."""
    from ipabs.analytics.pricing import price
    from ipabs.deal.curve import load_curve
    from ipabs.deal.load import load_deal

    deal = load_deal(args.deal)
    curve = load_curve(args.curve) if isinstance(args.curve, str) else args.curve
    if args.paths is not None and curve is None:
        raise IpabsError("--paths prices at a curve: give --curve (a curve file or a flat rate)")
    if args.paths is not None and args.settle is not None:
        raise IpabsError("--paths prices at the closing date: leave out --settle")
    model = check_paths_fit(deal, args.paths) if args.paths is not None else deal
    compile_notice(False, quiet=args.json)
    result = price(
        model,
        args.tranche,
        price=args.price,
        yld=args.yld,
        spread=args.spread,
        curve=curve,
        scenario=args.scenario,
        settle=args.settle,
    )
    mc = None
    if args.paths is not None:
        from ipabs.analytics.pricing import mc_price

        if result.z_spread != result.z_spread:
            raise IpabsError("no Z-spread prices this tranche at the curve; the Monte Carlo needs one")
        compile_notice(True, quiet=args.json)
        mc = mc_price(model, args.tranche, curve, spread=result.z_spread, paths=args.paths, seed=args.seed)
    if args.json:
        doc = result.to_dict()
        if mc is not None:
            doc["monte_carlo"] = mc.to_dict()
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(price_text(result))
        if mc is not None:
            print("\n" + mc_text(mc))
    return EXIT_OK


def mc_text(mc: Any) -> str:
    """The text report of a :class:`ipabs.analytics.pricing.MonteCarloPrice`."""
    quantiles = ", ".join(f"{100 * q:g}% {pct(v)}" for q, (v, _) in mc.yield_quantiles.items())
    return (
        f"Monte Carlo: {mc.paths:,} paths, seed {mc.seed}; settles at closing, prices in percent of "
        f"the original balance\n"
        f"expected price at {mc.curve} + {mc.spread * 1e4:.2f} bp: "
        f"{number(mc.expected_price, 6)} ± {number(mc.expected_price_se, 2)}\n"
        f"yield at par: mean {pct_estimate(mc.mean_yield, mc.mean_yield_se)}; quantiles {quantiles}"
    )


def _years(v: float) -> str:
    return "n/a" if v != v else number(v)


def price_text(r: Any) -> str:
    """The text report of a :class:`ipabs.analytics.pricing.PriceResult`."""
    window = (
        f"{r.first_principal_date} to {r.last_principal_date}"
        if r.first_principal_date is not None
        else "none"
    )
    rows = [
        ["clean price", f"{r.price:.6f}"],
        ["accrued interest", f"{r.accrued_interest:.6f} ({money(r.accrued_amount)})"],
        ["dirty price", f"{r.dirty_price:.6f}"],
        ["yield (annual effective)", pct(r.yield_, 6)],
        ["Z-spread", "n/a" if r.z_spread != r.z_spread else f"{r.z_spread * 1e4:.2f} bp"],
        ["I-spread (at the WAL)", "n/a" if r.i_spread != r.i_spread else f"{r.i_spread * 1e4:.2f} bp"],
        ["Macaulay duration (y)", _years(r.macaulay_duration)],
        ["modified duration", _years(r.modified_duration)],
        ["convexity", _years(r.convexity)],
        ["WAL (y)", _years(r.wal_years)],
        ["principal window", window],
        ["loss", f"{money(r.loss)} ({pct(r.loss_pct)} of the original balance)"],
        ["coupon", pct(r.coupon)],
        ["par coupon at this spread", "n/a" if r.par_coupon != r.par_coupon else pct(r.par_coupon, 6)],
    ]
    head = (
        f"{r.deal} | tranche {r.tranche} | scenario: {r.scenario} | settles {r.settlement_date}"
        f"{'' if r.curve is None else ' | curve: ' + r.curve}\n"
        f"balance {money(r.current_balance)} (factor {number(r.factor)}); prices in percent of it\n\n"
    )
    return head + _table(["measure", "value"], rows)
