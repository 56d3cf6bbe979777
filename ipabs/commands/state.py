"""``ipabs check-state`` and ``ipabs state``: the deal's state on a report date
(docs/surveillance.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ipabs.commands._common import EXIT_OK, _positive, _quiet, _table, _warn, compile_notice

CHECK_DESCRIPTION = """\
Validate a deal and a state file of it (the deal on a report date: tranches, accounts,
triggers, support used, loans and their status) and print a summary of the state. Every
problem is located (file:line:column, a tape cell as file:row:column) and says what to do;
exit 2 when there is one."""

STATE_DESCRIPTION = """\
Run a deterministic scenario of the deal and write its state after period K's payments as a
state file (its loans in a CSV tape beside it when there are more than 50). Each loan is
recorded as performing, defaulted (with the payment date of the period it defaulted in and the
recoveries received by period K) or repaid; a scenario that defaults a fraction of each loan
(a CDR) is refused: name the defaulting obligors instead."""


def register(subparsers: Any) -> None:
    """Add the ``check-state`` and ``state`` sub-commands."""
    c = subparsers.add_parser(
        "check-state",
        help="validate a state file (the deal on a report date) and summarise it",
        description=CHECK_DESCRIPTION,
    )
    c.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    c.add_argument("--state", required=True, metavar="FILE", help="state YAML file")
    c.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    c.set_defaults(func=cmd_check_state)

    s = subparsers.add_parser(
        "state",
        help="write the deal's state after period K of a deterministic run",
        description=STATE_DESCRIPTION,
    )
    s.add_argument("deal", metavar="DEAL.yaml", help="deal YAML file")
    s.add_argument(
        "--period",
        required=True,
        type=_positive,
        metavar="K",
        help="payment period (1: the first payment date)",
    )
    s.add_argument("--scenario", help="scenario name (default: the deal's first scenario)")
    s.add_argument("--out", required=True, metavar="FILE", help="state YAML file to write")
    s.add_argument(
        "--tape",
        choices=("auto", "yes", "no"),
        default="auto",
        help="loans in a CSV tape beside the state file (default auto: when more than 50)",
    )
    s.set_defaults(func=cmd_state)


def state_summary(deal: Any, loaded: Any) -> dict[str, Any]:
    """The summary ``check-state`` prints, as plain values.

    Parameters
    ----------
    deal : LoadedDeal
    loaded : LoadedState

    Returns
    -------
    dict
        ``report_date``, ``period``, ``tranches`` (balance now and at closing), ``pool`` (count
        and balance by status, performing balance and its share of the pool at closing,
        defaulted balance, recovered), ``accounts``, ``triggers_breached``, ``triggers_active``.
    """
    from ipabs.deal.state import PERFORMING, STATUSES, deal_assets

    st = loaded.spec
    original = {t.name: t.balance for t in deal.spec.tranches}
    assets = [a for a in deal_assets(deal) if a.kind in ("loan", "lease")]
    listed = {loan.id for loan in st.loans}
    by_status = {s: {"count": 0, "balance": 0.0} for s in STATUSES}
    for loan in st.loans:
        by_status[loan.status]["count"] += 1
        by_status[loan.status]["balance"] += loan.balance
    by_status["repaid"]["count"] += sum(a.id not in listed for a in assets)  # unlisted_loans: repaid
    closing_pool = sum(a.balance for a in assets)
    performing = sum(by_status[s]["balance"] for s in PERFORMING)
    return {
        "deal": deal.name,
        "report_date": st.report_date.isoformat(),
        "period": loaded.period,
        "tranches": [
            {
                "tranche": n,
                "balance": t.balance,
                "original_balance": original[n],
                "interest_arrears": t.interest_arrears,
            }
            for n, t in st.tranches.items()
        ],
        "pool": {
            "by_status": [{"status": s, **v} for s, v in by_status.items()],
            "performing_balance": performing,
            "closing_balance": closing_pool,
            "pool_factor": performing / closing_pool if closing_pool > 0 else None,
            "defaulted_balance": by_status["defaulted"]["balance"],
            "recovered": sum(loan.recovered for loan in st.loans),
        },
        "accounts": dict(st.accounts),
        "principal_deficiency": None if st.ledgers is None else st.ledgers.principal_deficiency,
        "triggers_breached": [n for n, t in st.triggers.items() if t.breached],
        "triggers_active": [
            n for n, t in st.triggers.items() if (t.breached if t.active is None else t.active)
        ],
    }


def _summary_text(s: dict[str, Any], state_file: str) -> str:
    from ipabs.format import money, pct

    lines = [f"{state_file}: ok ({s['deal']}, report date {s['report_date']}, period {s['period']})", ""]
    rows = [
        [
            r["tranche"],
            money(r["balance"]),
            money(r["original_balance"]),
            pct(r["balance"] / r["original_balance"]) if r["original_balance"] else "-",
            money(r["interest_arrears"]),
        ]
        for r in s["tranches"]
    ]
    lines.append(_table(["tranche", "balance", "at closing", "factor", "interest arrears"], rows))
    pool = s["pool"]
    lines.append("")
    rows = [[r["status"], str(r["count"]), money(r["balance"])] for r in pool["by_status"] if r["count"]]
    lines.append(_table(["status", "loans", "balance"], rows))
    factor = "-" if pool["pool_factor"] is None else pct(pool["pool_factor"])
    lines.append("")
    lines.append(
        f"performing balance {money(pool['performing_balance'])} ({factor} of "
        f"{money(pool['closing_balance'])} at closing); defaulted {money(pool['defaulted_balance'])}, "
        f"recovered {money(pool['recovered'])}"
    )
    if s["accounts"]:
        lines.append("accounts: " + ", ".join(f"{n} {money(v)}" for n, v in s["accounts"].items()))
    if s["principal_deficiency"] is not None:
        lines.append(f"principal deficiency ledger: {money(s['principal_deficiency'])}")
    lines.append("triggers breached: " + (", ".join(s["triggers_breached"]) or "none"))
    if s["triggers_active"] != s["triggers_breached"]:
        lines.append("triggers in effect: " + (", ".join(s["triggers_active"]) or "none"))
    return "\n".join(lines)


def cmd_check_state(args: argparse.Namespace) -> int:
    """Validate the deal and the state; print the state's summary (exit 2 on a problem)."""
    from ipabs.deal.load import load_deal
    from ipabs.deal.state import load_state

    deal = load_deal(args.deal)
    _warn(deal.warnings)
    loaded = load_state(deal, args.state)
    summary = state_summary(deal, loaded)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(_summary_text(summary, args.state))
    return EXIT_OK


def cmd_state(args: argparse.Namespace) -> int:
    """Write the state after period K of a deterministic run."""
    from ipabs.analytics.state import state_at, write_state
    from ipabs.deal.load import load_deal
    from ipabs.errors import IpabsError
    from ipabs.io import check_out_file

    deal = load_deal(args.deal)
    _warn(deal.warnings, ("scenarios", "deal"))
    if args.scenario is not None and args.scenario not in deal.spec.scenarios:
        known = ", ".join(deal.spec.scenarios)
        raise IpabsError(f"{args.deal}: no scenario {args.scenario!r}; known scenarios: {known}")
    check_out_file(args.out)
    compile_notice(False, quiet=_quiet(args))
    scenario = args.scenario if args.scenario is not None else next(iter(deal.spec.scenarios))
    state = state_at(deal, args.period, scenario)
    header = (
        f"# State of {deal.name} after period {args.period} ({state.report_date}) under scenario "
        f"{scenario!r},\n# written by `ipabs state` from its deterministic run (not a trustee report).\n"
    )
    try:
        files = write_state(
            state, args.out, tape={"auto": None, "yes": True, "no": False}[args.tape], header=header
        )
    except OSError as exc:
        raise IpabsError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {', '.join(str(f) for f in files)} (period {args.period}, {state.report_date})")
    return EXIT_OK
