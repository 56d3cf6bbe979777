"""``ipabs report``: one command writes a deal's whole analysis into a folder: a self-contained
HTML report, an Excel workbook and the charts as PNG files, all together or not at all."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Run a deal's every named scenario, a Monte Carlo, implied ratings both ways and breakeven default
rates (and, when asked, a sizing and a small sensitivity sweep), then write into DIR: report.html
(self-contained: charts embedded, no external files), report.xlsx (summary, pool cash flows, the
tranche cash-flow allocation table, Monte Carlo summary, loss distribution, sensitivities) and
charts/*.png. The files appear all together or not at all."""


def register(subparsers: Any) -> None:
    """Add the ``report`` command."""
    from ipabs.commands._common import _positive, _seed

    p = subparsers.add_parser(
        "report",
        help="write an HTML report, an Excel workbook and the charts of a deal into a folder",
        description=DESCRIPTION,
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file with a `risk` section")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the report into")
    p.add_argument("--paths", type=_positive, default=20_000, help="Monte Carlo paths (default 20,000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=_positive, help="threads (default: one per core)")
    p.add_argument("--risk", metavar="FILE", help="risk assumptions file replacing the deal's `risk`")
    p.add_argument(
        "--size",
        metavar="TRANCHE:TARGET",
        help="also size TRANCHE's balance to the TARGET rating (e.g. senior:AAA)",
    )
    p.add_argument(
        "--sensitivities",
        action="store_true",
        help="also run a small sweep of risk.pd_multiplier (1, 1.5, 2) for the sensitivities sheet",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="also add the early warning of ipabs monitor on this state file's report date",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``ipabs report``."""
    import sys

    from ipabs.commands._common import (
        EXIT_OK,
        _check_out,
        _progress,
        _quiet,
        _warn,
        check_paths_fit,
        compile_notice,
    )
    from ipabs.console import is_quiet, render_table
    from ipabs.deal.load import load_deal, load_risk, risk_file_warnings
    from ipabs.errors import IpabsError
    from ipabs.labels import label
    from ipabs.report.build import build_report, check_size
    from ipabs.report.output import write_report

    deal = load_deal(args.deal)
    if args.risk:
        load_risk(args.risk)  # located errors in the risk file, before any work
    _warn(risk_file_warnings(deal, args.risk) if args.risk else deal.warnings, "risk")
    size = check_size(deal, args.size) if args.size else None
    if args.state:
        from ipabs.deal.state import load_state

        load_state(deal, args.state)  # located errors in the state file, before any work
    _check_out(args.out)
    # each sizing trial and each sweep point is one more Monte Carlo of this many paths
    check_paths_fit(deal, args.paths)
    compile_notice(True, quiet=_quiet(args), deterministic=True)

    lang = args.lang
    data = build_report(
        deal,
        paths=args.paths,
        seed=args.seed,
        lang=lang,
        risk=args.risk,
        size=size,
        sensitivities=args.sensitivities,
        threads=args.threads,
        progress=_progress(args),
        state=args.state,
    )
    try:
        written = write_report(data, args.out)
    except OSError as exc:
        raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None

    rows = [
        [
            t.tranche,
            f"{100 * t.expected_loss:.4f}%",
            str(t.el_rating or "below table"),
            str(t.pd_rating or "below table"),
        ]
        for t in data.ratings.tranches
    ]
    print(f"{data.deal.spec.deal.name} | {label('report', lang)}\n")
    print(render_table(["tranche", "expected loss", "EL rating", "PD rating"], rows))
    if not is_quiet():
        for note in data.notes:
            print(f"{label('notes', lang)}: {note}", file=sys.stderr)
        for w in data.sim.warnings:
            print(f"{label('warnings', lang)}: {w}", file=sys.stderr)
    print(f"\n{label('files', lang)}: {len(written)} -> {args.out}")
    return EXIT_OK
