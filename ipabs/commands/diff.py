"""``ipabs diff``: the terms that differ between two deal files and what they do to the numbers."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ipabs.commands._common import EXIT_OK, _positive, _quiet, _seed, _table, check_paths_fit, compile_notice

DESCRIPTION = """\
Compare two versions of a deal: the terms added, removed and changed by field path (tranches,
loans and other named elements by name), then each scenario's tranche figures side by side with
their deltas. With --paths, also the Monte Carlo metrics of both on the same random numbers, so
that the deltas are the change and not noise. See docs/regression.md."""


def register(subparsers: Any) -> None:
    """Add the ``diff`` sub-command."""
    p = subparsers.add_parser(
        "diff", help="changed terms of two deal files and the metric deltas", description=DESCRIPTION
    )
    p.add_argument("a", metavar="A.yaml", help="the reference deal file")
    p.add_argument("b", metavar="B.yaml", help="the changed deal file")
    p.add_argument("--paths", type=_positive, help="also compare Monte Carlo metrics on N common paths")
    p.add_argument("--seed", type=_seed, default=0, help="Monte Carlo seed (default 0)")
    p.add_argument("--threads", type=_positive, help="Monte Carlo threads")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_diff)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "n/a"
        # amounts to the cent; rates, years and errors to six significant digits
        return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.6g}"
    return str(v)


def diff_text(d: Any) -> str:
    """A diff as text: the changed terms, then the figures side by side."""
    lines = [f"{d.a} -> {d.b}", ""]
    if d.terms:
        lines.append(f"terms ({len(d.terms)} changed):")
        lines += [f"  {t}" for t in d.terms]
    else:
        lines.append("terms: the same")
    from ipabs.regression.core import _close

    rows = [
        [r["scenario"], r["tranche"], r["figure"], _cell(r["a"]), _cell(r["b"]), _cell(r["delta"])]
        for r in d.deterministic
        if not _close(r["a"], r["b"])
    ]
    lines.append("")
    if rows:
        lines.append("deterministic figures that differ:")
        lines.append(_table(["scenario", "tranche", "figure", "A", "B", "B - A"], rows))
    else:
        lines.append("deterministic figures: the same")
    if d.monte_carlo:
        lines += ["", f"Monte Carlo, {d.paths:,} paths on common random numbers (seed {d.seed}):"]
        mc_rows = [
            [
                r["subject"],
                r["metric"],
                f"{_cell(r['a'])} ± {_cell(r['a_se'])}",
                f"{_cell(r['b'])} ± {_cell(r['b_se'])}",
                _cell(r["delta"]) + ("" if r["delta_se"] is None else f" ± {_cell(r['delta_se'])}"),
            ]
            for r in d.monte_carlo
        ]
        lines.append(_table(["subject", "metric", "A ± se", "B ± se", "B - A (± se)"], mc_rows))
    return "\n".join(lines)


def cmd_diff(args: argparse.Namespace) -> int:
    """Compare the two deals and print the differences."""
    from ipabs.errors import IpabsError
    from ipabs.regression import diff

    if args.paths is None and args.seed != 0:
        raise IpabsError("--seed applies to the Monte Carlo: add --paths N")
    if args.paths is not None:
        check_paths_fit(args.a, args.paths)
    compile_notice(args.paths is not None, quiet=_quiet(args), deterministic=True)
    d = diff(args.a, args.b, paths=args.paths, seed=args.seed, threads=args.threads)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(diff_text(d))
    return EXIT_OK
