"""Command line: ``ipabs validate``, ``ipabs run``, ``ipabs mc``; the analysis commands live in
:mod:`ipabs.commands`.

Exit codes: 0 success, 2 invalid input (deal file, scenario name, output path), 1 internal error.
A user mistake never ends in a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ipabs.commands._common import (
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    _check_out,
    _fmt_money,
    _fmt_pct,
    _positive,
    _progress,
    _quiet,
    _seed,
    _table,
    _warn,
    check_paths_fit,
    compile_notice,
)
from ipabs.errors import DealError, IpabsError
from ipabs.format import estimate, number, pct, pct_estimate


def _summary_text(result: Any) -> str:
    s = result.summary
    rows = []
    for name, r in s.iterrows():
        wal = r["wal_years"]
        rows.append(
            [
                str(name),
                _fmt_money(r.get("report_date_balance", r["original_balance"])),
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
    if "report_date_balance" in s.columns:  # ---- surveillance: from a report date
        first = result.periods["period"].iloc[0]
        head = (
            f"{result.deal_name} | scenario: {result.scenario} | from the report date after period "
            f"{first - 1}: balances then; WAL and yield from then\n\n"
        )
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
            _warn(deal.warnings, result=True)
            print(f"{f}: ok ({deal.name})")
    return EXIT_INVALID if bad else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run a deterministic scenario and print (or write) the results."""
    from ipabs.api import run
    from ipabs.deal.load import load_deal

    deal = load_deal(args.deal)
    # the scenarios' warnings, and the calendar's (the dates a run uses)
    _warn(deal.warnings, ("scenarios", "deal"))
    if args.scenario is not None and args.scenario not in deal.spec.scenarios:
        known = ", ".join(deal.spec.scenarios)
        raise IpabsError(f"{args.deal}: no scenario {args.scenario!r}; known scenarios: {known}")
    _check_out(args.out)
    state = None
    if args.state is not None:  # ---- surveillance: from a report date
        from ipabs.deal.state import load_state

        state = load_state(deal, args.state)
    compile_notice(False, quiet=_quiet(args))
    if state is None:
        result = run(deal, scenario=args.scenario)
    else:
        from ipabs.analytics.reproject import reproject

        result = reproject(deal, state, args.scenario)
    return _emit(args, result, _summary_text)


def _mc_text(result: Any) -> str:
    rows = []
    for r in result.tranche_summary:
        rows.append(
            [
                str(r["tranche"]),
                _fmt_money(r["original_balance"]),
                pct_estimate(r["expected_loss"], r["expected_loss_se"]),
                pct_estimate(r["probability_of_loss"], r["probability_of_loss_se"]),
                "n/a"
                if r["expected_wal_years"] != r["expected_wal_years"]
                else f"{r['expected_wal_years']:.3f}",
                _fmt_pct(r["mean_yield"]),
                "ok" if r.get("reliable", True) else "see warnings",
            ]
        )
    head = (
        f"{result.deal_name} | Monte Carlo: {result.paths:,} paths, seed {result.seed}, "
        f"{result.elapsed_seconds:.2f} s\n"
    )
    sampling = result.sampling
    if sampling is not None and sampling.method == "importance":
        vrf = {r["tranche"]: r["expected_loss_vrf"] for r in result.tranche_summary}
        shift = ", ".join(f"{x:.3f}" for x in sampling.shift)
        head += (
            f"importance sampling: {sampling.reason}; factor shift [{shift}]; variance reduction "
            f"of {sampling.tranche}'s expected loss {number(vrf[sampling.tranche])}x\n"
        )
        p = result.pool_summary
        head += (
            f"estimators: expected loss and P(loss) are mean(w x); E[WAL] and mean yield are "
            f"self-normalised sum(w x) / sum(w); they differ by the mean weight "
            f"{estimate(p['mean_weight'], p['mean_weight_se'])}\n"
        )
    elif sampling is not None and sampling.fallbacks:
        head += f"sampling: {sampling.reason}\n"
    head += "\n"
    text = head + _table(
        ["tranche", "balance", "expected loss ± se", "P(loss) ± se", "E[WAL] (y)", "mean yield", "checks"],
        rows,
    )
    p = result.pool_summary
    text += (
        f"\n\npool: expected loss {pct_estimate(p['expected_loss'], p['expected_loss_se'])} "
        f"of the original balance; loss quantiles 95% {pct(p['loss_q95'])}, "
        f"99% {pct(p['loss_q99'])}, 99.9% {pct(p['loss_q99.9'])}; expected shortfall "
        f"95% {pct(p['expected_shortfall_95'])}, 99% {pct(p['expected_shortfall_99'])}, "
        f"99.9% {pct(p['expected_shortfall_99.9'])}; "
        f"expected defaults {number(p['expected_defaults'])}"
    )
    warnings = getattr(result, "warnings", [])
    if warnings:
        text += "\n\nwarnings (these estimates cannot be taken as printed):\n"
        text += "\n".join(f"  - {w}" for w in warnings)
    return text


def _path_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give path numbers separated by commas, e.g. 0,17"
        ) from None


def cmd_mc(args: argparse.Namespace) -> int:
    """Run the Monte Carlo and print (or write) per-tranche and pool risk."""
    from ipabs.deal.load import load_deal, load_risk, risk_file_warnings
    from ipabs.montecarlo import simulate

    deal = load_deal(args.deal)
    risk = load_risk(args.risk) if args.risk else None
    _warn(risk_file_warnings(deal, args.risk) if args.risk else deal.warnings, "risk")
    _check_out(args.out)
    model = check_paths_fit(deal, args.paths, writing=args.out is not None, outcomes=args.outcomes)
    if args.state is not None:  # ---- surveillance: from a report date
        from ipabs.analytics.reproject import delinquent_loans_note, started_model
        from ipabs.console import is_quiet
        from ipabs.deal.state import load_state

        model = started_model(model, load_state(deal, args.state))
        note = delinquent_loans_note(model, risk)
        if note is not None and not is_quiet():
            print(f"warning: {note}", file=sys.stderr)
    compile_notice(True, quiet=_quiet(args))
    try:  # the files are written as the run ends (a streamed run's paths.parquet as it goes)
        result = simulate(
            model,
            paths=args.paths,
            seed=args.seed,
            threads=args.threads,
            risk=risk,
            keep=args.keep,
            progress=_progress(args),
            importance_sampling={"auto": "auto", "on": True, "off": False}[args.importance_sampling],
            importance_tranche=args.is_tranche,
            outcomes=args.outcomes,
            out=args.out,
        )
    except OSError as exc:
        raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    return _emit(args, result, _mc_text, written=args.out is not None)


def _emit(args: argparse.Namespace, result: Any, text: Any, written: bool = False) -> int:
    """Write the files asked for (unless ``written`` already), then print JSON or the text
    summary."""
    files: list[Any] = []
    if args.out is not None and not written:
        try:
            files = result.write(args.out)
        except OSError as exc:
            raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    elif args.out is not None:
        files = list(result.written)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(text(result))
        if args.out is not None:
            print(f"\nwrote {len(files)} files to {args.out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from ipabs._version import __version__

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
    r.add_argument(
        "--state",
        metavar="STATE.yaml",
        help="run from the report date of this state file (docs/surveillance.md), not from closing",
    )
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("mc", help="Monte Carlo: tranche expected loss, loss probability, WAL, yield")
    m.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file with a `risk` section")
    m.add_argument("--paths", type=_positive, default=10_000, help="number of paths (default 10,000)")
    m.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    m.add_argument(
        "--state",
        metavar="STATE.yaml",
        help="simulate from the report date of this state file (docs/surveillance.md), not from closing",
    )
    m.add_argument("--threads", type=_positive, help="threads (default: one per core)")
    m.add_argument("--risk", metavar="FILE", help="risk assumptions file replacing the deal's `risk`")
    m.add_argument("--keep", type=_path_list, default=[], metavar="I,J", help="paths whose tables to keep")
    m.add_argument("--out", metavar="DIR", help="write per-path outcomes (Parquet) and summaries into DIR")
    m.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    m.add_argument(
        "--outcomes",
        choices=("auto", "keep", "stream"),
        default="auto",
        help="keep every path's outcomes in memory, or stream the paths through mergeable sums in "
        "bounded memory (default auto: keep when they take under half the free memory)",
    )
    m.add_argument(
        "--importance-sampling",
        nargs="?",
        const="on",
        default="auto",
        choices=("auto", "on", "off"),
        help="shift the systematic factors towards a senior tranche's losses and weight the paths "
        "(default auto: only when a plain pilot run sees too few of its losses)",
    )
    m.add_argument(
        "--is-tranche", metavar="NAME", help="tranche importance sampling aims at (default: most senior)"
    )
    m.set_defaults(func=cmd_mc)

    from ipabs.commands import register_all

    register_all(sub)
    for command in sub.choices.values():
        _console_options(command)
    from ipabs.cluster import CLUSTER_COMMANDS, add_cluster_options

    for name in CLUSTER_COMMANDS:
        add_cluster_options(sub.choices[name])
    return p


def _console_options(p: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--lang``, which every command has (added here so that no command
    can miss them)."""
    from ipabs.labels import LANGUAGES

    taken = {o for a in p._actions for o in a.option_strings}
    if "--quiet" not in taken:
        p.add_argument(
            *(["--quiet"] if "-q" in taken else ["-q", "--quiet"]),
            action="store_true",
            help="print only the result (and errors): no progress bar, notice or warning",
        )
    if "--lang" not in taken:
        p.add_argument(
            "--lang",
            choices=LANGUAGES,
            default="en",
            help="language of the text tables' headings (default en; zh: Chinese). --json is unchanged",
        )


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (temporary files removed)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Any:
    """While a command runs, SIGTERM unwinds like Ctrl-C instead of killing the process where
    it stands (in the middle of writing files, say)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipabs`` command."""
    from ipabs.console import settings

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from ipabs.cluster import connect

        with (
            _sigterm_raises(),
            settings(getattr(args, "lang", "en"), getattr(args, "quiet", False)),
            connect(getattr(args, "cluster", None), getattr(args, "scheduler", None)),
        ):
            return int(args.func(args))
    except DealError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_INVALID
    except IpabsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug in ipabs, not a user mistake
        if os.environ.get("IPABS_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "this is a bug in ipabs; rerun with IPABS_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def run() -> None:
    """Console entry point: :func:`main` with the command's fast start-up and exit (see
    :mod:`ipabs._entry`)."""
    from ipabs._entry import run_and_exit

    run_and_exit(main)


if __name__ == "__main__":
    run()
