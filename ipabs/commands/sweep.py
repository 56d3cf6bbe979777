"""``ipabs sweep``: run a deal over a grid of parameter values (sensitivities)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ipabs.commands._common import (
    EXIT_OK,
    _positive,
    _progress,
    _quiet,
    _seed,
    _table,
    check_paths_fit,
    compile_notice,
)
from ipabs.errors import IpabsError

DESCRIPTION = """\
Run a deal at every combination of the values given with --set (the Cartesian product) and
print one row per point and tranche. PATH addresses any deal or risk parameter by its place in
the YAML file: dotted keys, list elements by index or by name, e.g. tranches.senior.balance,
tranches[0].coupon, risk.pd_multiplier, risk.recovery.rate, pools.park.loans[3].rate,
accounts.reserve.initial. Values are read as YAML (0.2, 5%, 12.5m). With --paths each point
runs the Monte Carlo with the same seed (common random numbers); without, the deterministic
scenario."""


def _setting(text: str) -> tuple[str, list[Any]]:
    from ipabs.analytics.sweep import parse_setting

    try:
        return parse_setting(text)
    except IpabsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    """Add the ``sweep`` sub-command."""
    p = subparsers.add_parser(
        "sweep",
        help="sensitivities: run a deal over a grid of parameter values",
        description=DESCRIPTION,
    )
    p.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=_setting,
        required=True,
        metavar="PATH=V1,V2,...",
        help="a parameter and its values (repeat for a grid)",
    )
    p.add_argument("--paths", type=_positive, help="Monte Carlo paths per point (default: deterministic run)")
    p.add_argument("--seed", type=_seed, help="Monte Carlo seed, the same at every point (default 0)")
    p.add_argument("--threads", type=_positive, help="Monte Carlo threads (default: one per core)")
    p.add_argument("--scenario", help="deterministic scenario (default: the deal's first)")
    p.add_argument("--risk", metavar="FILE", help="risk assumptions file replacing the deal's `risk`")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list of rows)")
    p.add_argument("--out", metavar="FILE.csv", help="write the rows to a CSV (or .parquet) file")
    p.set_defaults(func=cmd_sweep)


def _check_out(out: str | None) -> Path | None:
    """An --out file that cannot be written is refused before the sweep runs."""
    if out is None:
        return None
    from ipabs.io import check_out_file

    target = Path(out)
    if target.suffix not in (".csv", ".parquet"):
        raise IpabsError(f"--out {out}: give a .csv (or .parquet) file name")
    return check_out_file(target)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the sweep and print (or write) its rows."""
    from ipabs.analytics.sweep import sweep
    from ipabs.io import json_value, write_frame

    settings: dict[str, list[Any]] = {}
    for path, values in args.settings:
        if path in settings:
            raise IpabsError(f"--set {path} is given twice; give all its values in one --set")
        settings[path] = values
    if args.paths is None:
        for flag, value in (("--seed", args.seed), ("--threads", args.threads), ("--risk", args.risk)):
            if value is not None:
                raise IpabsError(f"{flag} applies to the Monte Carlo: add --paths N")
    elif args.scenario is not None:
        raise IpabsError("--scenario applies to the deterministic run; the Monte Carlo uses the risk section")
    out = _check_out(args.out)
    if args.paths is not None:
        check_paths_fit(args.deal, args.paths)
    compile_notice(args.paths is not None, quiet=_quiet(args))
    frame = sweep(
        args.deal,
        settings,
        paths=args.paths,
        seed=args.seed or 0,
        scenario=args.scenario,
        risk=args.risk,
        threads=args.threads,
        progress=_progress(args),
    )
    if out is not None:
        try:
            write_frame(frame, out)
        except OSError as exc:
            raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    if args.json:
        rows = [{k: json_value(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(sweep_text(frame))
        if out is not None:
            print(f"\nwrote {len(frame)} rows to {args.out}")
    return EXIT_OK


def _num(v: float, digits: int = 3) -> str:
    return "n/a" if v != v else f"{v:.{digits}f}"


def sweep_text(frame: Any) -> str:
    """The rows of a sweep as a text table, with a header line."""
    from ipabs.analytics.sweep import MC_METRICS, RUN_METRICS, format_value
    from ipabs.format import pct, pct_estimate

    a = frame.attrs
    mc = a.get("mode") == "monte_carlo"
    swept = [c for c in frame.columns if c not in ("tranche", *(MC_METRICS if mc else RUN_METRICS))]
    rows = []
    for r in frame.to_dict(orient="records"):
        cells = [format_value(r[c]) for c in swept] + [str(r["tranche"]), f"{r['original_balance']:,.2f}"]
        if mc:
            cells += [
                pct_estimate(r["expected_loss"], r["expected_loss_se"]),
                pct_estimate(r["probability_of_loss"], r["probability_of_loss_se"]),
                _num(r["expected_wal_years"]),
                pct(r["mean_yield"]),
                pct_estimate(r["pool_expected_loss"], r["pool_expected_loss_se"]),
            ]
        else:
            wal = r["wal_years"]
            cells += [
                f"{r['loss']:,.2f}",
                pct(r["loss_pct"]),
                "n/a" if wal != wal or math.isinf(wal) else f"{wal:.3f}",
                pct(r["yield"]),
            ]
        rows.append(cells)
    points = a.get("points", len(frame))
    if mc:
        head = (
            f"{a.get('deal', '')} | sweep: {points} point(s), Monte Carlo {a['paths']:,} paths each, "
            f"seed {a['seed']} at every point, {a.get('elapsed_seconds', 0.0):.2f} s"
        )
        headers = ["expected loss ± se", "P(loss) ± se", "E[WAL] (y)", "mean yield", "pool loss ± se"]
    else:
        head = f"{a.get('deal', '')} | sweep: {points} point(s), scenario: {a.get('scenario')}"
        headers = ["loss", "loss %", "WAL (y)", "yield"]
    return head + "\n\n" + _table([*swept, "tranche", "balance", *headers], rows)
