"""``ipabs monitor``: early warning of a live deal on a report date (docs/monitor.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

DESCRIPTION = """\
Early warning from a trustee report: per tranche, the Monte Carlo expected loss and
probability of loss now (from the state) against at closing, with the implied rating and its
drift; per trigger, the probability that it is in effect within 3, 6 and 12 months; a watch
list of the obligors contributing most to the senior tranche's expected loss, with standard
errors, status, days past due and pledged-IP coverage; and the pool's concentration."""


def register(subparsers: Any) -> None:
    """Add the ``monitor`` command."""
    from ipabs.commands._common import _positive, _seed

    p = subparsers.add_parser(
        "monitor",
        help="early warning on a report date: EL and rating drift, trigger odds, watch list",
        description=DESCRIPTION,
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file with a `risk` section")
    p.add_argument("--state", required=True, metavar="FILE", help="state file of the report date")
    p.add_argument("--paths", type=_positive, default=20_000, help="Monte Carlo paths (default 20,000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=_positive, help="threads (default: one per core)")
    p.add_argument(
        "--tranche", help="tranche whose expected loss the watch list allocates (default: the most senior)"
    )
    p.add_argument("--watch", type=_positive, default=10, help="obligors on the watch list (default 10)")
    p.add_argument("--table", metavar="FILE", help="rating table (YAML or CSV; default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=run)


def monitor_text(r: Any) -> str:
    """The monitor report as text tables."""
    from ipabs.commands._common import _table
    from ipabs.format import money, pct, pct_estimate

    lines = [
        f"{r.deal_name} | early warning on {r.report_date} (after period {r.period}) | "
        f"{r.paths:,} paths, seed {r.seed}, rating table {r.rating_table!r}",
        "",
        "1. tranches now against closing (expected loss as a share of the balance at each date; "
        "implied rating by expected loss at the expected WAL):",
    ]
    rows = []
    for t in r.tranches:
        drift = "-" if t.drift_notches is None else _drift(t.drift_notches)
        rows.append(
            [
                t.tranche,
                pct_estimate(t.expected_loss_closing, t.expected_loss_closing_se),
                pct_estimate(t.expected_loss_now, t.expected_loss_now_se),
                pct_estimate(t.probability_of_loss_now, t.probability_of_loss_now_se),
                str(t.rating_closing or "below table"),
                str(t.rating_now or "below table"),
                " .. ".join(str(x or "below") for x in t.rating_now_range),
                drift,
            ]
        )
    headers = ["tranche", "EL at closing", "EL now", "P(loss) now", "rating at closing", "now"]
    lines.append(_table([*headers, "range now", "drift"], rows))
    lines += ["", "2. triggers: probability of being in effect at a payment date within:"]
    horizons = list(r.triggers[0].probability) if r.triggers else []
    rows = [
        [t.trigger, "yes" if t.in_effect_now else "no"]
        + [pct_estimate(t.probability[h], t.probability_se[h]) for h in horizons]
        for t in r.triggers
    ]
    if rows:
        lines.append(_table(["trigger", "in effect now"] + [f"{h} months" for h in horizons], rows))
    else:
        lines.append("(the deal has no triggers)")
    lines += [
        "",
        f"3. watch list: contributions to {r.target}'s expected loss (shares of its balance on the "
        "report date; coverage = pledged value / balance):",
    ]
    rows = [
        [
            o.obligor + ("" if o.trusted else " *"),
            o.status,
            "-" if o.days_past_due is None else str(o.days_past_due),
            money(o.balance),
            "-" if o.coverage != o.coverage else f"{o.coverage:.2f}",
            pct_estimate(o.contribution, o.contribution_se),
            "-" if o.share_of_expected_loss != o.share_of_expected_loss else pct(o.share_of_expected_loss, 3),
        ]
        for o in r.watch_list
    ]
    if rows:
        headers = ["obligor", "status", "dpd", "balance", "coverage", "contribution", "of EL"]
        lines.append(_table(headers, rows))
        if any(not o.trusted for o in r.watch_list):
            lines.append("* seen on too few paths: its standard error cannot be trusted")
    else:
        lines.append(
            f"(no loan or lease defaults with a loss on the paths where {r.target} loses: "
            "its expected loss is unallocated below)"
        )
    if r.unallocated > 0.0:
        share = pct_estimate(r.unallocated, r.unallocated_se)
        lines.append(f"unallocated (losses on paths without a defaulter's loss): {share}")
    c = r.concentration
    lines += ["", "4. concentration of the performing pool:"]
    if c.obligors:
        lines.append(
            f"balance {money(c.balance)} in {c.obligors} obligors; Herfindahl {c.herfindahl:.4f} "
            f"(effective number {c.effective_obligors:.1f})"
        )
        lines.append(
            _table(
                ["largest obligors", "balance", "share"],
                [[x["obligor"], money(x["balance"]), pct(x["share"], 3)] for x in c.largest[:5]],
            )
        )
        lines.append(
            _table(
                ["industry", "balance", "share"],
                [[x["industry"], money(x["balance"]), pct(x["share"], 3)] for x in c.industries],
            )
        )
    else:
        lines.append("(no performing loans or leases)")
    lines += ["", f"sampling from the report date: {r.sampling_now}"]
    for note in r.notes:
        lines.append(f"note: {note}")
    if r.warnings:
        lines += ["", "warnings: these estimates cannot be taken as printed"]
        lines += [f"  - {w}" for w in r.warnings]
    return "\n".join(lines)


def _drift(notches: int) -> str:
    if notches == 0:
        return "none"
    word = "notch" if abs(notches) == 1 else "notches"
    return f"down {notches} {word}" if notches > 0 else f"up {-notches} {word}"


def run(args: argparse.Namespace) -> int:
    """Run ``ipabs monitor``."""
    from ipabs.analytics.monitor import monitor
    from ipabs.commands._common import EXIT_OK, _progress, _quiet, _warn, compile_notice
    from ipabs.deal.load import load_deal
    from ipabs.deal.state import load_state

    deal = load_deal(args.deal)
    _warn(deal.warnings, "risk")
    state = load_state(deal, args.state)
    compile_notice(True, quiet=_quiet(args))
    report = monitor(
        deal,
        state,
        paths=args.paths,
        seed=args.seed,
        threads=args.threads,
        tranche=args.tranche,
        table=args.table,
        watch=args.watch,
        progress=_progress(args),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(monitor_text(report))
    return EXIT_OK
