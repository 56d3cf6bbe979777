"""Command line: ``ipabs validate``, ``ipabs run``.

Exit codes: 0 success, 2 invalid input (deal file, scenario name, output path), 1 internal error.
A user mistake never ends in a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ipabs.errors import DealError, IpabsError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


def _fmt_money(v: float) -> str:
    return f"{v:,.2f}"


def _fmt_pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.3f}%"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _summary_text(result: Any) -> str:
    s = result.summary
    rows = []
    for name, r in s.iterrows():
        wal = r["wal_years"]
        rows.append(
            [
                str(name),
                _fmt_money(r["original_balance"]),
                _fmt_pct(r["coupon"]),
                "n/a" if wal != wal else f"{wal:.3f}",
                _fmt_pct(r["yield"]),
                _fmt_money(r["interest_paid"]),
                _fmt_money(r["principal_paid"] + r["residual_paid"]),
                _fmt_money(r["loss"]),
                str(r["final_payment_date"] or "-"),
            ]
        )
    head = f"{result.deal_name} | scenario: {result.scenario}\n\n"
    text = head + _table(
        [
            "tranche",
            "balance",
            "coupon",
            "WAL (y)",
            "yield",
            "interest paid",
            "principal+residual",
            "loss",
            "final payment",
        ],
        rows,
    )
    fired = result.triggers[result.triggers["periods_active"] > 0]
    if len(fired):
        text += "\n\ntriggers fired:\n" + "\n".join(
            f"  {r.trigger} ({r.kind}): active from period {r.first_active_period} "
            f"({r.first_active_date}), {r.periods_active} period(s)"
            for r in fired.itertuples()
        )
    else:
        text += "\n\ntriggers fired: none"
    return text


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate deal files; print every problem; exit 2 if any file is invalid."""
    from ipabs.deal.load import load_deal

    bad = 0
    for f in args.files:
        try:
            deal = load_deal(f)
        except DealError as exc:
            bad += 1
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            print(
                f"{f}: invalid ({len(exc.issues)} problem{'s' if len(exc.issues) != 1 else ''})",
                file=sys.stderr,
            )
        else:
            print(f"{f}: ok ({deal.name})")
    return EXIT_INVALID if bad else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run a deterministic scenario and print (or write) the results."""
    from ipabs.api import run
    from ipabs.deal.load import load_deal

    deal = load_deal(args.deal)
    if args.scenario is not None and args.scenario not in deal.spec.scenarios:
        known = ", ".join(deal.spec.scenarios)
        raise IpabsError(f"{args.deal}: no scenario {args.scenario!r}; known scenarios: {known}")
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise IpabsError(f"--out {args.out}: exists and is not a directory; give a directory")
    result = run(deal, scenario=args.scenario)
    if args.out is not None:
        try:
            written = result.write(args.out)
        except OSError as exc:
            raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(_summary_text(result))
        if args.out is not None:
            print(f"\nwrote {len(written)} files to {args.out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from ipabs import __version__

    p = argparse.ArgumentParser(prog="ipabs", description="Simulate intellectual-property securitizations.")
    p.add_argument("--version", action="version", version=f"ipabs {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check deal files and report every problem with its location")
    v.add_argument("files", nargs="+", metavar="FILE", help="deal YAML files")
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("run", help="run the deterministic cash flows of a deal under one scenario")
    r.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    r.add_argument("--scenario", help="scenario name (default: the deal's first scenario)")
    r.add_argument("--out", metavar="DIR", help="write per-period tables as CSV and Parquet into DIR")
    r.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    r.set_defaults(func=cmd_run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipabs`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except DealError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_INVALID
    except IpabsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in ipabs, not a user mistake
        if os.environ.get("IPABS_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in ipabs; rerun with IPABS_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
