"""``ipabs table``: a price-yield table of a tranche over scenarios."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ipabs.commands._common import EXIT_OK, compile_notice
from ipabs.commands.price import curve_argument, price_number, rate
from ipabs.errors import IpabsError

DESCRIPTION = """\
Price-yield table of a tranche: rows of clean prices (or Z-spreads over --curve), columns of
scenarios (the deal's named scenarios, or speeds such as cdr=2%,cpr=10% applied to its first
scenario); cells of yield and modified duration, then each scenario's WAL, principal window and
loss. Conventions: docs/pricing.md."""


def register(subparsers: Any) -> None:
    """Add the ``table`` sub-command."""
    p = subparsers.add_parser(
        "table", help="price-yield table of a tranche over scenarios", description=DESCRIPTION
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    p.add_argument("--tranche", required=True, metavar="NAME", help="tranche to price")
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument("--prices", type=price_number, nargs="+", metavar="P", help="clean prices (rows)")
    rows.add_argument("--spreads", type=rate, nargs="+", metavar="S", help="Z-spreads over --curve (rows)")
    p.add_argument(
        "--scenarios",
        nargs="+",
        metavar="S",
        help="scenario names or speeds such as cdr=2%%,cpr=10%% (default: every named scenario)",
    )
    p.add_argument(
        "--curve", type=curve_argument, metavar="FILE|RATE", help="curve file (YAML/CSV) or flat rate"
    )
    p.add_argument("--settle", metavar="DATE", help="settlement date YYYY-MM-DD (default: closing date)")
    p.add_argument("--json", action="store_true", help="print the tidy table as JSON records")
    p.add_argument("--out", metavar="FILE", help="also write the tidy table as CSV")
    p.set_defaults(func=cmd_table)


def cmd_table(args: argparse.Namespace) -> int:
    """Build and print the price-yield table."""
    from ipabs.analytics.pricing import format_price_table, price_table
    from ipabs.deal.curve import load_curve
    from ipabs.deal.load import load_deal
    from ipabs.io import json_value

    deal = load_deal(args.deal)
    curve = load_curve(args.curve) if isinstance(args.curve, str) else args.curve
    if args.out is not None and Path(args.out).is_dir():
        raise IpabsError(f"--out {args.out}: is a directory; give a CSV file name")
    compile_notice(False, quiet=args.json)
    table = price_table(
        deal,
        args.tranche,
        prices=args.prices,
        spreads=args.spreads,
        scenarios=args.scenarios,
        curve=curve,
        settle=args.settle,
    )
    if args.out is not None:
        try:
            table.to_csv(args.out, index=False)
        except OSError as exc:
            raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    if args.json:
        records = [{k: json_value(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
        print(json.dumps({"tranche": args.tranche, "rows": records}, indent=2, ensure_ascii=False))
    else:
        print(format_price_table(table))
        if args.out is not None:
            print(f"\nwrote {args.out}")
    return EXIT_OK
