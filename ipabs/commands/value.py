"""``ipabs value``: income-approach valuation of pledged IP, its volatility, and revaluation on a
date after events (docs/ip-valuation.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from typing import Any

from ipabs.commands._common import EXIT_OK, _table
from ipabs.format import money, number, pct

DESCRIPTION = """\
Value each pledged patent, trademark, copyright or software item of an IP valuation file by
the income approach (relief from royalty or excess earnings, discounted), risk-adjusted for
technology readiness, legal status and market prospects; print its value, the value's
volatility, the discount rate and its build-up, each factor's effect and the remaining life.
--as-of and --events revalue on a later date after events (invalidation, licence termination,
litigation). --out writes assets.csv, flows.csv, loans.csv (loan_id, appraised_value,
value_volatility), pledged_ip.yaml (the deal's pledged_ip entries) and valuation.json, all
together or not at all (docs/ip-valuation.md)."""

EFFECT_LABELS = {
    "trl": "TRL",
    "legal": "legal",
    "market": "market",
    "expiry": "expiry",
    "licence": "licence",
    "tax_amortisation": "TAB",
}


def register(subparsers: Any) -> None:
    """Add the ``value`` sub-command."""
    p = subparsers.add_parser(
        "value",
        help="value pledged IP by the income approach; its volatility feeds the Monte Carlo's recoveries",
        description=DESCRIPTION,
    )
    p.add_argument("file", metavar="IP.yaml", help="IP valuation file")
    p.add_argument(
        "--as-of", metavar="DATE", help="revaluation date YYYY-MM-DD (default: the valuation date)"
    )
    p.add_argument("--events", metavar="FILE", help="events file (`events:` list) applied up to the date")
    p.add_argument(
        "--deal", metavar="DEAL.yaml", help="deal whose loans the IP secures: checks each asset's `loan`"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write assets.csv, flows.csv, loans.csv, pledged_ip.yaml and valuation.json",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_value)


def _as_of(text: str | None, start: dt.date) -> dt.date | None:
    from ipabs.errors import IpabsError

    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise IpabsError(f"--as-of {text}: not a date; write YYYY-MM-DD") from None
    if day < start:
        raise IpabsError(f"--as-of {text}: before the valuation date {start}; give a date on or after it")
    return day


def cmd_value(args: argparse.Namespace) -> int:
    """Value, print and write."""
    from ipabs.collateral.valuation import by_loan, value_file
    from ipabs.deal.valuation import load_events, load_ip_valuation
    from ipabs.io import check_out_dir

    if args.out:
        check_out_dir(args.out)
    deal = None
    if args.deal:
        from ipabs.deal.load import load_deal

        deal = load_deal(args.deal)
    spec = load_ip_valuation(args.file, deal)
    as_of = _as_of(args.as_of, spec.valuation.valuation_date)
    events = load_events(args.events, spec) if args.events else []
    values = value_file(spec, as_of, events)
    doc = valuation_document(spec, values, as_of or spec.valuation.valuation_date, by_loan(values))
    if args.out:
        _write(args.out, doc, values)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(value_text(doc))
    return EXIT_OK


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def valuation_document(spec: Any, values: list[Any], as_of: dt.date, loans: list[Any]) -> dict[str, Any]:
    """The result as one JSON-ready document: settings, assets, loans, totals."""
    s = spec.valuation
    assets = []
    for v in values:
        assets.append(
            {
                "id": v.id,
                "loan": v.loan,
                "kind": v.kind,
                "count": v.count,
                "method": v.method,
                "legal_status": v.legal_status,
                "trl": v.trl,
                "market": v.market,
                "value": v.value,
                "value_sd": v.value_sd,
                "value_volatility": v.value_volatility,
                "pv_before_risk": v.pv_before_risk,
                "discount_rate": v.discount_rate,
                "discount_rate_build_up": v.build_up,
                "remaining_life_years": _finite(v.remaining_life_years),
                "success_probability": v.success_probability,
                "survival_probability": v.survival_probability,
                "revenue_kept": v.revenue_kept,
                "tab_factor": v.tab_factor,
                "effects": v.effects,
                "events": list(v.events),
            }
        )
    total = sum(v.value for v in values)
    return {
        "name": s.name,
        "currency": s.currency,
        "valuation_date": s.valuation_date.isoformat(),
        "as_of": as_of.isoformat(),
        "tax_rate": s.tax_rate,
        "mid_year": s.mid_year,
        "tax_amortisation_years": None if s.tax_amortisation is None else s.tax_amortisation.years,
        "assets": assets,
        "loans": [
            {
                "loan_id": ln.loan_id,
                "kind": ln.kind,
                "count": ln.count,
                "appraised_value": ln.appraised_value,
                "value_sd": ln.value_sd,
                "value_volatility": ln.value_volatility,
                "assets": list(ln.assets),
            }
            for ln in loans
        ],
        "totals": {"value": total, "value_sd_sum": sum(v.value_sd for v in values)},
    }


def _years(x: float | None) -> str:
    return "none" if x is None else f"{x:.2f}"


def value_text(doc: dict[str, Any]) -> str:
    """The text report of :func:`valuation_document`."""
    cur = doc["currency"]
    head = f"{doc['name']} | valued {doc['valuation_date']}"
    if doc["as_of"] != doc["valuation_date"]:
        head += f", revalued as of {doc['as_of']}"
    head += f" | {cur} | tax {pct(doc['tax_rate'])}"
    head += " | mid-year discounting" if doc["mid_year"] else " | year-end discounting"
    if doc["tax_amortisation_years"]:
        head += f" | TAB over {doc['tax_amortisation_years']} years"
    rows = [
        [
            a["id"],
            a["loan"] or "-",
            a["kind"],
            a["method"].replace("_", " "),
            money(a["value"]),
            pct(a["value_volatility"]),
            pct(a["discount_rate"]),
            _years(a["remaining_life_years"]),
            pct(a["success_probability"]),
            f"{a['legal_status']} {pct(a['survival_probability'])}",
        ]
        for a in doc["assets"]
    ]
    total = doc["totals"]["value"]
    rows.append(["total", "", "", "", money(total), "", "", "", "", ""])
    text = (
        head
        + "\n\n"
        + _table(
            [
                "asset",
                "loan",
                "kind",
                "method",
                "value",
                "volatility",
                "discount",
                "life (y)",
                "P(success)",
                "legal",
            ],
            rows,
        )
    )
    # the discount-rate build-up: one column per component
    parts: list[str] = []
    for a in doc["assets"]:
        for k in a["discount_rate_build_up"]:
            if k not in parts:
                parts.append(k)
    text += "\n\ndiscount rate build-up\n" + _table(
        ["asset", *parts, "total"],
        [
            [a["id"], *(pct(a["discount_rate_build_up"].get(k, 0.0)) for k in parts), pct(a["discount_rate"])]
            for a in doc["assets"]
        ],
    )
    text += "\n\neffect of each factor (value with it minus value without it)\n" + _table(
        ["asset", "before risk", *EFFECT_LABELS.values()],
        [
            [a["id"], money(a["pv_before_risk"]), *(money(a["effects"][k]) for k in EFFECT_LABELS)]
            for a in doc["assets"]
        ],
    )
    if doc["loans"]:
        text += "\n\npledged IP by loan (for the deal's pledged_ip)\n" + _table(
            ["loan", "kind", "count", "appraised_value", "value_volatility"],
            [
                [
                    ln["loan_id"],
                    ln["kind"],
                    str(ln["count"]),
                    money(ln["appraised_value"]),
                    number(ln["value_volatility"]),
                ]
                for ln in doc["loans"]
            ],
        )
    events = [f"  {a['id']}: {e}" for a in doc["assets"] for e in a["events"]]
    if events:
        text += "\n\nevents applied:\n" + "\n".join(events)
    text += (
        "\n\nvolatility: log-sd of the lognormal with the value's mean and variance (revenue volatility and "
        "the binary legal and technical risks); P(success) by TRL and P(survive) by legal status are "
        "modelling conventions (docs/ip-valuation.md)"
    )
    return text


def _pledged_ip_yaml(doc: dict[str, Any]) -> str:
    import yaml

    head = (
        f"# Pledged IP written by `ipabs value` ({doc['name']}, as of {doc['as_of']}): copy each entry's\n"
        "# pledged_ip into the deal's loan of that id (docs/ip-valuation.md).\n"
    )
    loans = [
        {
            "loan": ln["loan_id"],
            "pledged_ip": {
                "kind": ln["kind"],
                "count": ln["count"],
                "appraised_value": round(ln["appraised_value"], 2),
                "value_volatility": round(ln["value_volatility"], 6),
            },
        }
        for ln in doc["loans"]
    ]
    return head + yaml.safe_dump({"loans": loans}, sort_keys=False, allow_unicode=True)


def _write(out: str, doc: dict[str, Any], values: list[Any]) -> None:
    import pandas as pd

    from ipabs.io import write_tables

    assets = []
    for a in doc["assets"]:
        row = {k: a[k] for k in a if k not in ("discount_rate_build_up", "effects", "events")}
        row.update({f"rate_{k}": v for k, v in a["discount_rate_build_up"].items()})
        row.update({f"effect_{k}": v for k, v in a["effects"].items()})
        row["events"] = "; ".join(a["events"])
        assets.append(row)
    flows = [{"asset": v.id, **f} for v in values for f in v.flows]
    loans = pd.DataFrame(
        [
            {
                "loan_id": ln["loan_id"],
                "appraised_value": ln["appraised_value"],
                "value_volatility": ln["value_volatility"],
            }
            for ln in doc["loans"]
        ],
        columns=["loan_id", "appraised_value", "value_volatility"],
    )
    write_tables(
        out,
        {
            "assets.csv": pd.DataFrame(assets),
            "flows.csv": pd.DataFrame(flows),
            "loans.csv": loans,
            "pledged_ip.yaml": _pledged_ip_yaml(doc),
            "valuation.json": json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
        },
    )
