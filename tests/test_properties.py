"""Property tests: invariants of every run over randomly generated valid deals.

Deals are built as dicts (random loans, 1-3 tranches, optional fee, reserve, deficiency payment,
liquidity facility, trigger, clean-up call, note options: coupon schedule, planned
amortisation, investor put, issuer call; a random CDR / CPR / recovery / lag scenario, maybe a
named default), dumped with ``yaml.safe_dump`` and loaded like a deal file. Hypothesis runs
derandomized so that a run is repeatable.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import col, compile_text, run_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipabs import api
from ipabs.dates import add_months, from_day
from ipabs.engine import layout as L
from ipabs.engine.layout import (
    C_ARREARS_PRINCIPAL,
    C_BALANCE_END,
    C_BALANCE_START,
    C_DEFAULT,
    C_DELINQUENT_30,
    C_DELINQUENT_60,
    C_DELINQUENT_90,
    C_GUARANTEE,
    C_INSURANCE,
    C_PREPAYMENT,
    C_RECOVERY,
    C_RISK_SHARING,
    C_ROYALTY,
    C_SCHED_PRINCIPAL,
)
from ipabs.results import RunResult, conservation_residual

# When a property fails, hypothesis's pytest plugin imports libcst to suggest a patch; libcst's
# import raises a DeprecationWarning (mypy_extensions.TypedDict), which the project's
# warnings-as-errors setting turns into an INTERNALERROR that hides the failure. Import it once
# here with that warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import libcst  # noqa: F401
    except ImportError:  # pragma: no cover - libcst is optional
        pass

FREQUENCIES = {"monthly": 1, "quarterly": 3, "semi-annual": 6, "annual": 12}
AMORTISATIONS = ["bullet", "interest_only_then_bullet", "annuity", "equal_principal", "custom"]
DAY_COUNTS = ["ACT/365", "ACT/360", "30/360", "ACT/ACT"]
CLOSING = dt.date(2025, 1, 15)

PROPERTY = settings(
    deadline=None,
    max_examples=int(os.environ.get("IPABS_PROPERTY_EXAMPLES", "40")),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pct(draw: Any, lo: int, hi: int, scale: float = 1000.0) -> float:
    """A rate drawn on a grid: ``k / scale`` for k in [lo, hi]."""
    return draw(st.integers(lo, hi)) / scale


@st.composite
def loans(draw: Any, total_months: int, guarantor: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        term = draw(st.integers(1, total_months))
        amort = draw(st.sampled_from(AMORTISATIONS))
        if amort == "custom" and term < 2:
            amort = "bullet"
        loan: dict[str, Any] = {
            "obligor": f"L{i}",
            "balance": draw(st.integers(5, 500)) * 10_000,
            "rate": _pct(draw, 0, 120),
            "term_months": term,
            "amortisation": amort,
            "payment_frequency": draw(st.sampled_from(list(FREQUENCIES))),
            "day_count": draw(st.sampled_from(DAY_COUNTS)),
        }
        if amort in ("annuity", "equal_principal"):
            loan["interest_only_months"] = draw(st.integers(0, term // 2))
        if amort == "custom":
            offsets = sorted(draw(st.sets(st.integers(1, term), min_size=1, max_size=min(4, term))))
            share = _pct(draw, 100, 990) / len(offsets)  # the schedule never exceeds the balance
            loan["schedule"] = [
                {"date": add_months(CLOSING, k), "principal": round(loan["balance"] * share, 2)}
                for k in offsets
            ]
        if draw(st.booleans()):
            loan["pledged_ip"] = {"appraised_value": draw(st.integers(0, 300)) * 10_000}
        if guarantor and draw(st.booleans()):
            loan["guarantee"] = {
                "guarantor": "Guar",
                "share": _pct(draw, 0, 100, 100.0),
                "lag_months": draw(st.integers(0, 12)),
            }
        out.append(loan)
    return out


@st.composite
def deals(
    draw: Any,
    zero_cdr: bool = False,
    safe: bool = False,
    with_trap: bool = False,
    dscr_switch: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A random valid deal and facts about it (``pool``, ``initial_accounts``...).

    ``safe``: a deal in which the senior cannot lose with zero defaults: notes at most 70% of
    the pool, senior coupon at most 5% over at most 5 years, no fees, no triggers, and a
    waterfall that pays senior interest then senior principal from the collections (or from
    all cash) before anything junior. ``with_trap``: always a trigger with a cash-trap effect.
    ``dscr_switch``: always a DSCR trigger that switches the waterfall.
    """
    freq = draw(st.sampled_from(list(FREQUENCIES)))
    m = FREQUENCIES[freq]
    n_periods = draw(st.integers(2, max(2, min(16, 60 // m))))
    total_months = m * n_periods
    use_guarantor = draw(st.booleans())
    pool_loans = draw(loans(total_months, use_guarantor))
    pool = float(sum(x["balance"] for x in pool_loans))

    n_tranches = draw(st.integers(1, 3))
    notes = pool * (_pct(draw, 300, 700) if safe else _pct(draw, 500, 1000))
    names = {1: ["senior"], 2: ["senior", "sub"], 3: ["senior", "mezz", "sub"]}[n_tranches]
    shares = {1: [1.0], 2: [0.85, 0.15], 3: [0.7, 0.2, 0.1]}[n_tranches]
    tranches = []
    for name, share in zip(names, shares, strict=True):
        coupon = _pct(draw, 0, 50) if name == "senior" and safe else _pct(draw, 0, 80)
        t: dict[str, Any] = {"name": name, "balance": round(notes * share, 2), "coupon": coupon}
        if name == "mezz":
            t["defer_interest"] = draw(st.booleans())
        if name == "sub" and draw(st.booleans()):
            t["coupon"] = 0.0
        tranches.append(t)
    last = names[-1]
    juniors = [n for n in names[1:] if n != last]

    obligors = []
    if use_guarantor:
        obligors.append({"name": "Guar"})
    fees, accounts, support, triggers = [], [], [], []
    if not safe and draw(st.booleans()):
        if draw(st.booleans()):
            fees.append({"name": "trustee", "annual_amount": round(pool * _pct(draw, 0, 10), 2)})
        else:
            fees.append({"name": "servicer", "rate": _pct(draw, 0, 10)})
    reserve = draw(st.booleans())
    if reserve:
        target: Any = (
            {"share": _pct(draw, 0, 50), "of": "balance(senior)"}
            if draw(st.booleans())
            else round(pool * _pct(draw, 0, 30), 2)
        )
        accounts.append({"name": "reserve", "initial": round(pool * _pct(draw, 0, 20), 2), "target": target})
    dpu = draw(st.booleans())
    if dpu:
        obligors.append({"name": "Gov"})
        d: dict[str, Any] = {"name": "dpu", "kind": "deficiency_payment", "provider": "Gov"}
        if draw(st.booleans()):
            d["cap_per_period"] = round(pool * _pct(draw, 0, 50), 2)
        if draw(st.booleans()):
            d["cap_total"] = round(pool * _pct(draw, 0, 200), 2)
        reimburse = draw(st.booleans())  # the payer is paid back from excess cash
        if reimburse:
            d["reimbursement_rate"] = _pct(draw, 0, 100)
        support.append(d)
    liquidity = draw(st.booleans())
    if liquidity:
        obligors.append({"name": "Bank"})
        support.append(
            {
                "name": "lf",
                "kind": "liquidity_facility",
                "provider": "Bank",
                "limit": round(pool * _pct(draw, 0, 50), 2),
                "rate": _pct(draw, 0, 100),
            }
        )
    loss_cover: list[dict[str, Any]] = []
    if draw(st.booleans()):  # a risk-sharing pool on the whole pool, or insurance of one borrower
        if draw(st.booleans()):
            obligors.append({"name": "Fund"})
            payer: dict[str, Any] = {"obligor": "Fund", "share": _pct(draw, 0, 100, 100.0)}
            if draw(st.booleans()):
                payer["cap_per_year"] = round(pool * _pct(draw, 0, 100), 2)
            if draw(st.booleans()):
                payer["cap_total"] = round(pool * _pct(draw, 0, 200), 2)
            loss_cover.append(
                {
                    "name": "sharing",
                    "kind": "risk_sharing",
                    "covers": ["pool"],
                    "payers": [payer],
                    "basis": draw(st.sampled_from(["realised_loss", "defaulted_principal"])),
                    "lag_months": draw(st.integers(0, 12)),
                }
            )
        else:
            obligors.append({"name": "Insurer"})
            cover: dict[str, Any] = {
                "name": "insurance",
                "kind": "insurance",
                "insurer": "Insurer",
                "covers": [pool_loans[0]["obligor"]],
                "share": _pct(draw, 0, 100, 100.0),
                "waiting_months": draw(st.integers(0, 6)),
            }
            if draw(st.booleans()):
                cover["cap_total"] = round(pool * _pct(draw, 0, 100), 2)
            loss_cover.append(cover)
    accelerated = False
    trap = False
    if with_trap or dscr_switch or (not safe and draw(st.booleans())):
        kind = draw(
            st.sampled_from(
                ["cumulative_default_rate", "dscr", "overcollateralisation", "interest_shortfall"]
            )
        )
        kind = "dscr" if dscr_switch else kind
        trig: dict[str, Any] = {
            "name": "trigger",
            "kind": kind,
            "consecutive": draw(st.integers(1, 2)),
            "curable": draw(st.booleans()),
        }
        if kind == "cumulative_default_rate":
            trig["threshold"] = _pct(draw, 0, 200)
        elif kind == "dscr":
            trig["threshold"] = _pct(draw, 800, 2000)
        elif kind == "overcollateralisation":
            trig["threshold"] = _pct(draw, 900, 1500)
        if kind != "cumulative_default_rate":
            trig["tranches"] = ["senior"]
        effect = "trap" if with_trap else draw(st.sampled_from(["waterfall", "sequential", "trap"]))
        effect = "waterfall" if dscr_switch else effect
        if effect == "waterfall":
            trig["effect"] = {"waterfall": "accelerated"}
            accelerated = True
        elif effect == "sequential":
            trig["effect"] = {"sequential": True}
        else:
            trig["effect"] = {"trap": _pct(draw, 100, 1000)}
            accounts.append({"name": "trap", "kind": "trap"})
            trap = True
        triggers.append(trig)

    normal: list[Any] = []
    if liquidity:
        normal.append({"repay_liquidity": "lf"})
    if fees:
        normal.append({"pay_fee": [f["name"] for f in fees]})
    normal.append({"pay_interest": "senior"})
    if reserve:
        normal.append({"draw": {"from": "reserve", "covers": ["senior.interest"]}})
    if dpu:
        principal = ["senior.principal", "senior.principal_at_maturity", "senior.principal_at_final"]
        covers = ["senior.interest"] + ([draw(st.sampled_from(principal))] if draw(st.booleans()) else [])
        normal.append({"draw": {"from": "dpu", "covers": covers}})
    if liquidity:
        normal.append({"draw": {"from": "lf", "covers": ["senior.interest"]}})
    if safe:
        limit = draw(st.sampled_from(["available", "principal_collections"]))
        normal.append({"pay_principal": {"tranches": ["senior"], "limit": limit}})
        for j in juniors:
            normal.append({"pay_interest": j})
            normal.append({"pay_principal": {"tranches": [j], "limit": "principal_collections"}})
        if reserve:
            normal.append({"fund_account": "reserve"})
    else:
        for j in juniors:
            normal.append({"pay_interest": j})
        if reserve:
            normal.append({"fund_account": "reserve"})
        if trap:
            normal.append({"trap_cash": "trap"})
        step: dict[str, Any] = {
            "tranches": ["senior", *juniors],
            "mode": draw(st.sampled_from(["sequential", "pro_rata"])),
            "limit": draw(st.sampled_from(["available", "principal_collections", "due"])),
        }
        if draw(st.booleans()):
            step["down_to"] = {"share": _pct(draw, 0, 1000), "of": "pool_balance"}
        normal.append({"pay_principal": step})
    if dpu and reimburse:
        normal.append({"reimburse": "dpu"})
    normal.append({"pay_residual": last})
    waterfalls: dict[str, Any] = {"normal": normal}
    if accelerated:
        acc: list[Any] = []
        if fees:
            acc.append({"pay_fee": [f["name"] for f in fees]})
        acc.append({"pay_interest": ["senior", *juniors]})
        acc.append({"pay_principal": {"tranches": names, "mode": "sequential"}})
        acc.append({"pay_residual": last})
        waterfalls["accelerated"] = acc

    scenario: dict[str, Any] = {
        "defaults": {"cdr": 0.0 if zero_cdr else _pct(draw, 0, 300)},
        "prepayment": {"cpr": _pct(draw, 0, 300)},
        "recovery": {
            "rate": _pct(draw, 0, 100, 100.0),
            "lag_months": draw(st.integers(0, 18)),
            "basis": draw(st.sampled_from(["balance", "appraisal"])),
        },
    }
    if not zero_cdr and draw(st.booleans()):
        who = draw(st.sampled_from([x["obligor"] for x in pool_loans] + [o["name"] for o in obligors]))
        scenario["defaults"]["obligors"] = {who: draw(st.integers(1, n_periods))}

    spec: dict[str, Any] = {
        "deal": {
            "name": "random deal",
            "closing_date": CLOSING,
            "first_payment_date": add_months(CLOSING, m),
            "payment_frequency": freq,
            "legal_final_date": add_months(CLOSING, total_months),
        },
        "pools": [{"name": "pool", "loans": pool_loans}],
        "scenarios": {"base": scenario},
        "tranches": tranches,
        "waterfalls": waterfalls,
    }
    if obligors:
        spec["obligors"] = obligors
    if fees:
        spec["fees"] = fees
    if accounts:
        spec["accounts"] = accounts
    if support:
        spec["support"] = support
    if triggers:
        spec["triggers"] = triggers
    if loss_cover:
        spec["loss_cover"] = loss_cover
    if draw(st.booleans()):
        spec["clean_up_call"] = {
            "threshold": _pct(draw, 0, 300),
            "price": 1.0 if safe else _pct(draw, 800, 1000),
        }
    royalty = draw(royalties(spec["deal"]["legal_final_date"])) if draw(st.booleans()) else None
    if royalty is not None:
        spec["pools"][0]["royalties"] = [royalty]
    draw(note_options(spec, pool, m, n_periods, safe))
    if not safe:
        _with_ledgers(draw, spec, pool)
        draw(rate_hedges(spec, pool, m, n_periods))
    _with_calendar(draw, spec)
    _with_time_varying(draw, spec, n_periods)
    if not safe:
        _with_covenants(draw, spec, n_periods)
        _with_collateral_value(draw, spec, n_periods)
        _with_delinquency(draw, spec, n_periods)
    facts = {
        "pool": pool,
        "initial_accounts": float(sum(a.get("initial", 0.0) for a in accounts)),
        "support": spec.get("support", []),
        "royalty": royalty,
    }
    return spec, facts


# ---- calendars
def _with_calendar(draw: Any, spec: dict[str, Any]) -> None:
    """Maybe give ``spec`` seasoned loans (an age or an origination date), a cut-off date before
    closing and business-day adjusted payment dates (not with a revolving period)."""
    if "revolving" in spec:
        return
    if draw(st.booleans()):
        for loan in spec["pools"][0]["loans"]:
            if draw(st.booleans()):
                loan["age_months"] = draw(st.integers(0, 130))
            elif draw(st.booleans()):
                loan["origination_date"] = add_months(CLOSING, -draw(st.integers(0, 60)))
    custom = any("schedule" in loan for loan in spec["pools"][0]["loans"])  # dated from closing
    if not custom and draw(st.booleans()):
        spec["deal"]["cut_off_date"] = CLOSING - dt.timedelta(days=draw(st.integers(0, 90)))
        for loan in spec["pools"][0]["loans"]:  # schedules must start after the cut-off
            if "origination_date" in loan and loan["origination_date"] > spec["deal"]["cut_off_date"]:
                del loan["origination_date"]
    # puts and calls name adjusted payment dates; the generator writes them on the regular grid
    dated = "issuer_call" in spec or any("put" in t for t in spec["tranches"])
    if not dated and draw(st.booleans()):
        calendar: dict[str, Any] = {
            "holidays": draw(st.sampled_from(["china_exchange", "weekends"])),
            "business_day": draw(st.sampled_from(["following", "modified_following", "preceding"])),
            "extra_holidays": [add_months(CLOSING, draw(st.integers(1, 24)))],
        }
        info = spec["deal"]
        if draw(st.booleans()):  # collection periods end a few days before each payment date
            first = info["first_payment_date"] - dt.timedelta(days=draw(st.integers(1, 10)))
            if first > info.get("cut_off_date", CLOSING) and first > CLOSING:
                calendar["determination_dates"] = {
                    "first": first,
                    "payment_delay_business_days": draw(st.integers(1, 3)),
                }
        spec["deal"]["calendar"] = calendar
        if "determination_dates" in calendar:
            from ipabs.deal.calendar import deal_calendar_dates
            from ipabs.deal.schema import DealInfo

            dates = deal_calendar_dates(DealInfo.model_validate(info)).payments
            info["first_payment_date"] = dates[0]


# ---- time-varying scenarios


def _with_time_varying(draw: Any, spec: dict[str, Any], n_periods: int) -> None:
    """Maybe recover in instalments instead of after one lag, and maybe move the royalty base
    along a random path: growth or level vectors by period and dated shocks (a jump and a new
    growth rate) between closing and legal final."""
    if "revolving" not in spec and draw(st.booleans()):
        recovery = spec["scenarios"]["base"]["recovery"]
        months = sorted(set(draw(st.lists(st.integers(0, 30), min_size=1, max_size=3))))
        tenths = [1] * len(months)
        for _ in range(10 - len(months)):  # shares in tenths, adding up to exactly 1
            tenths[draw(st.integers(0, len(months) - 1))] += 1
        recovery.pop("lag_months", None)
        recovery["timing"] = [{"months": m, "share": k / 10} for m, k in zip(months, tenths, strict=True)]
    if "royalties" not in spec["pools"][0] or not draw(st.booleans()):
        return
    path: dict[str, Any] = {}
    if draw(st.booleans()):
        path["growth_vector"] = [_pct(draw, -500, 500) for _ in range(draw(st.integers(1, n_periods)))]
    if draw(st.booleans()):
        path["level_vector"] = [_pct(draw, 0, 1500) for _ in range(draw(st.integers(1, n_periods)))]
    span = (spec["deal"]["legal_final_date"] - CLOSING).days
    days = sorted(set(draw(st.lists(st.integers(-30, span), min_size=1, max_size=3))))
    path["shocks"] = [
        {
            "from": CLOSING + dt.timedelta(days=d),
            "level": _pct(draw, -900, 500),
            "growth": _pct(draw, -300, 300),
        }
        for d in days
    ]
    spec["scenarios"]["base"]["royalty"] = path


def _with_ledgers(draw: Any, spec: dict[str, Any], pool: float) -> None:
    """Maybe give ``spec`` the structures of Chinese trust plans: a revolving period, income and
    principal ledgers with a principal deficiency ledger, write-down loss allocation, fees on
    collections and an annual fee cap."""
    fees = spec.get("fees", [])
    normal = spec["waterfalls"]["normal"]
    if draw(st.booleans()):
        template = {
            "name": "new",
            "share": 1.0,
            "loan_size": round(pool * _pct(draw, 10, 500), 2),
            "rate": _pct(draw, 0, 100),
            "term_months": draw(st.sampled_from([3, 6, 12, 24])),
            "payment_frequency": draw(st.sampled_from(["monthly", "quarterly"])),
            "amortisation": draw(st.sampled_from(["interest_only_then_bullet", "annuity", "bullet"])),
            "pd": _pct(draw, 0, 200),
        }
        if draw(st.booleans()):
            template["max_share_of_pool"] = _pct(draw, 100, 1000)
        spec["revolving"] = {"periods": draw(st.integers(1, 4)), "templates": [template]}
        if draw(st.booleans()):
            spec["revolving"]["price"] = _pct(draw, 900, 1000)
        if draw(st.booleans()):
            spec["revolving"]["limits"] = {"max_term_months": draw(st.sampled_from([6, 12]))}
        at = next(i for i, x in enumerate(normal) if "pay_principal" in x or "pay_residual" in x)
        normal.insert(at, {"buy_assets": "all"})
        if spec.get("triggers"):
            spec["triggers"][0]["effect"]["end_revolving"] = True
    if draw(st.booleans()):
        fees.append(
            {"name": "vat", "period_amount": {"share": _pct(draw, 0, 40), "of": "interest_collections"}}
        )
        normal.insert(0, {"pay_fee": "vat"})
    if fees and draw(st.booleans()):
        fees[0]["cap_per_year"] = round(pool * _pct(draw, 0, 5), 2)
        normal.insert(len(normal) - 1, {"pay_fee_above_cap": fees[0]["name"]})
    if fees:
        spec["fees"] = fees
    if draw(st.booleans()):
        spec["loss_allocation"] = {
            "method": "write_down",
            "at": draw(st.sampled_from(["default", "liquidation"])),
        }
    if draw(st.booleans()):
        income = [x for x in normal if not {"pay_principal", "pay_residual", "buy_assets"} & x.keys()]
        amount: Any = draw(st.sampled_from(["deficiency", "all", "amount"]))
        if amount == "amount":
            amount = {"share": _pct(draw, 0, 1000), "of": "income_collections"}
        income.append({"to_principal": amount})
        residual = normal[-1]
        if draw(st.booleans()):
            income.append(residual)
        principal: list[Any] = []
        if fees:
            principal.append({"pay_fee": [f["name"] for f in fees]})
        principal.append({"pay_interest": "senior"})
        principal += [
            x for x in normal if "pay_principal" in x or "pay_fee_above_cap" in x or "buy_assets" in x
        ]
        principal.append(residual)
        spec["waterfalls"]["normal"] = {"income": income, "principal": principal}
        recoveries = draw(st.sampled_from(["principal", "income", "split"]))
        debits = draw(st.sampled_from([[], ["defaults"], ["realised_losses"]]))
        spec["ledgers"] = {
            "recoveries": {"principal": _pct(draw, 0, 1000)} if recoveries == "split" else recoveries,
            "principal_deficiency_debits": debits,
        }


# ---- hedges


@st.composite
def rate_hedges(draw: Any, spec: dict[str, Any], pool: float, m: int, n_periods: int) -> None:
    """Maybe add to ``spec`` in place an interest-rate swap, a cap or both with one counterparty
    (maybe defaulted by the scenario) on a stepped index: notionals following the senior or
    pool balance, fixed or scheduled; their steps at random ranks of the normal waterfall (and
    of the accelerated one, if any)."""
    if not draw(st.booleans()):
        return
    starts = [add_months(CLOSING, m * j) for j in range(n_periods)]
    curve = [{"from": CLOSING, "rate": _pct(draw, 0, 80)}]
    if draw(st.booleans()):
        curve.append({"from": draw(st.sampled_from(starts[1:])), "rate": _pct(draw, 0, 80)})
    spec.setdefault("indices", {})["HEDGE_IX"] = curve
    spec.setdefault("obligors", []).append({"name": "Swapper"})
    hedges: list[dict[str, Any]] = []
    for kind in draw(st.sampled_from([["swap"], ["cap"], ["swap", "cap"]])):
        basis = draw(st.sampled_from(["senior", "pool", "fixed", "schedule"]))
        notional: Any = {
            "senior": {"of": "balance(senior)"},
            "pool": {"share": _pct(draw, 0, 1000), "of": "pool_balance_start"},
            "fixed": round(pool * _pct(draw, 0, 1000), 2),
            "schedule": {"schedule": [round(pool * _pct(draw, 0, 1000), 2) for _ in range(3)]},
        }[basis]
        h: dict[str, Any] = {
            "name": kind,
            "counterparty": "Swapper",
            "index": "HEDGE_IX",
            "notional": notional,
        }
        if kind == "swap":
            h["kind"] = "interest_rate_swap"
            h["trust_pays"] = draw(st.sampled_from(["fixed", "floating"]))
            h["fixed_rate"] = _pct(draw, 0, 80)
            if draw(st.booleans()):
                h["spread"] = _pct(draw, 0, 20)
        else:
            h["kind"] = "interest_rate_cap"
            h["strike"] = _pct(draw, 0, 80)
            if draw(st.booleans()):
                h["premium_rate"] = _pct(draw, 0, 10)
        if draw(st.booleans()):
            h["day_count"] = draw(st.sampled_from(DAY_COUNTS))
        if draw(st.booleans()):
            h["start_date"] = draw(st.sampled_from(starts))
        h["terminate_on_switch"] = draw(st.booleans())
        h["termination_recovery"] = _pct(draw, 0, 1000)
        hedges.append(h)
    spec["hedges"] = hedges
    for name, wf in spec["waterfalls"].items():
        if name != "normal" and not draw(st.booleans()):
            continue
        paying = wf["income"] if isinstance(wf, dict) else wf
        junior = wf["principal"] if isinstance(wf, dict) else wf
        for h in hedges:
            paying.insert(draw(st.integers(0, len(paying) - 1)), {"pay_hedge": h["name"]})
            if h["kind"] == "interest_rate_swap":
                junior.insert(draw(st.integers(0, len(junior) - 1)), {"pay_hedge_termination": h["name"]})
    if draw(st.booleans()):
        spec["scenarios"]["base"]["defaults"].setdefault("obligors", {})["Swapper"] = draw(
            st.integers(1, n_periods)
        )


@st.composite
def note_options(draw: Any, spec: dict[str, Any], pool: float, m: int, n_periods: int, safe: bool) -> None:
    """Add note options to ``spec`` in place: maybe a step-up coupon schedule, a planned
    amortisation band, an investor put (its supporter a new obligor, maybe with a
    `put_unfunded` trigger) and an issuer call. A safe deal keeps coupons at most 5%, calls at
    par and gets no trigger."""
    tranches = spec["tranches"]
    dates = [add_months(CLOSING, m * j) for j in range(1, n_periods + 1)]
    top = 50 if safe else 80
    if draw(st.booleans()):
        k = draw(st.integers(0, len(tranches) - 1))
        starts = sorted(draw(st.sets(st.sampled_from(dates), min_size=1, max_size=2)))
        tranches[k]["coupon"] = [{"from": CLOSING, "rate": tranches[k]["coupon"]}] + [
            {"from": d - dt.timedelta(days=draw(st.integers(0, 20))), "rate": _pct(draw, 0, top)}
            for d in starts
        ]
    if draw(st.booleans()):
        speeds = [{"cpr": _pct(draw, 0, 400)}, {"psa": draw(st.integers(0, 500))}]
        tranches[0]["planned_amortisation"] = {"band": {"low": speeds[0], "high": speeds[1]}}
    if draw(st.booleans()):
        k = draw(st.integers(0, len(tranches) - 1))
        put: dict[str, Any] = {
            "date": draw(st.sampled_from(dates)),
            "share": _pct(draw, 0, 1000),
            "supporter": "backer",
        }
        if draw(st.booleans()):
            put["reset_coupon"] = _pct(draw, 0, top)
        tranches[k]["put"] = put
        spec.setdefault("obligors", []).append({"name": "Backer"})
        limit = round(pool * _pct(draw, 0, 1000), 2)
        spec.setdefault("support", []).append(
            {"name": "backer", "kind": "liquidity_support", "provider": "Backer", "limit": limit}
        )
        if draw(st.booleans()):
            spec["scenarios"]["base"]["defaults"].setdefault("obligors", {})["Backer"] = draw(
                st.integers(1, n_periods)
            )
        if not safe and draw(st.booleans()):
            effect = (
                {"waterfall": "accelerated"} if "accelerated" in spec["waterfalls"] else {"sequential": True}
            )
            trigger = {"name": "put_eod", "kind": "put_unfunded", "curable": False, "effect": effect}
            spec.setdefault("triggers", []).append(trigger)
    if draw(st.booleans()):
        exercise = draw(st.sampled_from(["always", "never", "factor", "refinancing"]))
        call: dict[str, Any] = {
            "from": draw(st.sampled_from(dates)),
            "price": 1.0 if safe else _pct(draw, 800, 1000),
        }
        if exercise == "factor":
            call["exercise"] = {"pool_factor_below": _pct(draw, 0, 1000)}
        elif exercise == "refinancing":
            spec["indices"] = {"REFI": _pct(draw, 0, 80)}
            call["exercise"] = {"refinancing_below_coupon": {"index": "REFI", "spread": _pct(draw, 0, 30)}}
        else:
            call["exercise"] = exercise
        spec["issuer_call"] = call


# ---- collateral value


def _with_collateral_value(draw: Any, spec: dict[str, Any], n_periods: int) -> None:
    """Maybe appraise loans' pledged IP and the royalty stream's catalogue (an amount or one
    per payment date), and test the notes against the collateral value."""
    pool = spec["pools"][0]
    if not draw(st.booleans()):
        return
    for loan in pool["loans"]:
        if "pledged_ip" not in loan and draw(st.booleans()):
            loan["pledged_ip"] = {"appraised_value": draw(st.integers(0, 300)) * 10_000}
    balance = sum(float(x["balance"]) for x in pool["loans"])
    for stream in pool.get("royalties", []):
        if draw(st.booleans()):
            stream["valuation"] = (
                round(balance * _pct(draw, 0, 1500), 2)
                if draw(st.booleans())
                else [round(balance * _pct(draw, 0, 1500), 2) for _ in range(draw(st.integers(1, n_periods)))]
            )
    if draw(st.booleans()):
        spec.setdefault("triggers", []).append(
            {
                "name": "collateral_test",
                "kind": "loan_to_value",
                "threshold": _pct(draw, 300, 1500),
                "valuation": {"share": 1.0, "of": "collateral_value"},
                "effect": {"sequential": True},
            }
        )


@st.composite
def royalties(draw: Any, final: dt.date) -> dict[str, Any]:
    """A flat running royalty paying on its own dates: its start is up to 20 days before or 40
    days after closing (so its dates are mostly off the note dates), any frequency, a lag."""
    stream: dict[str, Any] = {
        "obligor": "Licensee",
        "kind": "running",
        "rate": _pct(draw, 10, 100),
        "sales": {"initial": draw(st.integers(1, 50)) * 100_000, "growth": 0.0},
        "payment_frequency": draw(st.sampled_from(list(FREQUENCIES))),
        "start_date": CLOSING + dt.timedelta(days=draw(st.integers(-20, 40))),
        "payment_lag_months": draw(st.integers(0, 2)),
    }
    if draw(st.booleans()):  # a licence ending before legal final (and after its start)
        end = final - dt.timedelta(days=draw(st.integers(0, 200)))
        stream["end_date"] = max(end, stream["start_date"] + dt.timedelta(days=1))
    return stream


def own_royalty_payments(stream: dict[str, Any], final: dt.date, cut_off: dt.date = CLOSING) -> float:
    """What a flat stream pays on its own dates on or before legal final, from the calendar:
    on ``start + k x frequency`` (plus the lag) what accrued since the previous date (and
    since the cut-off date, by default closing), up to its end."""
    start = stream["start_date"]
    end = min(stream.get("end_date", final), final)
    months = FREQUENCIES[stream["payment_frequency"]]
    annual = stream["rate"] * stream["sales"]["initial"]
    total = 0.0
    prev, k = start, 1
    while prev < end:
        own = add_months(start, k * months)
        days = (min(own, end) - max(prev, cut_off)).days
        if days > 0 and add_months(own, stream["payment_lag_months"]) <= final:
            total += annual * days / 365.0
        prev, k = own, k + 1
    return total


def run_spec(spec: dict[str, Any]) -> RunResult:
    return run_text(yaml.safe_dump(spec, sort_keys=False))


# --------------------------------------------------------------------------- the invariants


@PROPERTY
@given(deals())
def test_cash_is_conserved_every_period(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, facts = case
    res = run_spec(spec)
    residual = conservation_residual(res.tables)
    assert np.all(np.abs(residual) < 1e-6 * facts["pool"]), residual


@PROPERTY
@given(deals())
def test_no_negative_amounts_and_nothing_paid_beyond_what_is_owed(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, facts = case
    res = run_spec(spec)
    tol = 1e-9 * facts["pool"]
    t = res.tables
    for name, table in (
        ("tranche", t.tranche),
        ("fee", t.fee),
        ("account", t.account),
        ("support", t.support),
    ):
        assert np.all(table >= -tol), f"negative {name} amount: {table.min()}"
    money = [
        L.D_COLLECTIONS,
        L.D_CALL_PROCEEDS,
        L.D_CARRY_IN,
        L.D_SUPPORT_DRAWS,
        L.D_ACCOUNT_WITHDRAWALS,
        L.D_PAYMENTS,
        L.D_ACCOUNT_DEPOSITS,
        L.D_CARRY_OUT,
        L.D_POOL_BALANCE,
        L.D_INCOME_COLLECTIONS,
        L.D_PRINCIPAL_COLLECTIONS,
        L.D_TO_PRINCIPAL,
        L.D_PRINCIPAL_USED,
        L.D_PRINCIPAL_DEFICIENCY,
        L.D_PRINCIPAL_CARRIED,
        L.D_WRITE_DOWN,
    ]
    assert np.all(t.deal[:, money] >= -tol)
    # the ledgers split the collections; the principal ledger's cash is part of the carry
    np.testing.assert_allclose(
        t.deal[:, L.D_INCOME_COLLECTIONS] + t.deal[:, L.D_PRINCIPAL_COLLECTIONS],
        t.deal[:, L.D_COLLECTIONS] + t.deal[:, L.D_CALL_PROCEEDS] + t.deal[:, L.D_HEDGE_RECEIVED],
        atol=tol,
    )
    assert np.all(t.deal[:, L.D_PRINCIPAL_CARRIED] <= t.deal[:, L.D_CARRY_OUT] + tol)
    tr_write_down = t.tranche[:, :, L.TR_WRITE_DOWN].sum(axis=1)
    np.testing.assert_allclose(t.deal[:, L.D_WRITE_DOWN], tr_write_down, atol=tol)
    np.testing.assert_allclose(
        np.cumsum(t.tranche[:, :, L.TR_WRITE_DOWN], axis=0), t.tranche[:, :, L.TR_WRITTEN_DOWN], atol=tol
    )
    # written down: at most what defaulted (purchased assets' defaults included)
    assert tr_write_down.sum() <= t.deal[-1, L.D_CUMULATIVE_DEFAULTS] + tol
    assert t.deal[-1, L.D_CUMULATIVE_DEFAULTS] >= res.collections[:, :, C_DEFAULT].sum() - tol
    assert np.all(res.collections >= -tol), "negative asset cash flow"
    # what defaults bring (guarantees, recoveries, loss cover) never exceeds what defaulted (a
    # clean-up call drops the later defaults of the assets sold)
    c = res.collections.sum(axis=(0, 1))
    brought = c[C_GUARANTEE] + c[C_RECOVERY] + c[C_RISK_SHARING] + c[C_INSURANCE]
    # after a call the collections keep guarantee and cover payments on later defaults too
    assert "clean_up_call" in spec or "issuer_call" in spec or brought <= c[C_DEFAULT] + tol

    tr = t.tranche
    assert np.all(tr[:, :, L.TR_INTEREST_PAID] <= tr[:, :, L.TR_INTEREST_DUE] + tol)
    assert np.all(tr[:, :, L.TR_PRINCIPAL_PAID] <= tr[:, :, L.TR_BALANCE_START] + tol)
    np.testing.assert_allclose(
        tr[:, :, L.TR_BALANCE_END],
        tr[:, :, L.TR_BALANCE_START] - tr[:, :, L.TR_WRITE_DOWN] - tr[:, :, L.TR_PRINCIPAL_PAID],
        atol=1e-6 * facts["pool"],
    )
    np.testing.assert_allclose(
        tr[:, :, L.TR_INTEREST_ARREARS],
        np.where(
            tr[:, :, L.TR_INTEREST_DUE] - tr[:, :, L.TR_INTEREST_PAID] > 1e-9,
            tr[:, :, L.TR_INTEREST_DUE] - tr[:, :, L.TR_INTEREST_PAID],
            0.0,
        ),
        atol=1e-6 * facts["pool"],
    )
    assert np.all(
        tr[:, :, L.TR_SUPPORT_RECEIVED] <= tr[:, :, L.TR_INTEREST_PAID] + tr[:, :, L.TR_PRINCIPAL_PAID] + tol
    )
    assert np.all(t.fee[:, :, L.FEE_PAID] <= t.fee[:, :, L.FEE_DUE] + tol)

    # support caps and limits
    for s, sup in enumerate(facts["support"]):
        draws = t.support[:, s, L.SUP_DRAW]
        back = t.support[:, s, L.SUP_REIMBURSED]
        paid_back = t.support[:, s, L.SUP_INTEREST_PAID] + t.support[:, s, L.SUP_REPAID]
        np.testing.assert_allclose(back, paid_back, atol=tol)
        # draws owed back: drawn less repaid so far (a payer no step reimburses is owed nothing)
        owed = np.cumsum(draws) - np.cumsum(t.support[:, s, L.SUP_REPAID])
        if sup["kind"] == "deficiency_payment" and "reimbursement_rate" not in sup:
            owed = np.zeros_like(owed)
            assert np.all(back == 0.0)
        np.testing.assert_allclose(t.support[:, s, L.SUP_OUTSTANDING], owed, atol=1e-6 * facts["pool"])
        assert np.all(t.support[:, s, L.SUP_UNREIMBURSED] >= t.support[:, s, L.SUP_OUTSTANDING] - tol)
        if sup["kind"] == "deficiency_payment":
            assert np.all(draws <= sup.get("cap_per_period", np.inf) + tol)
            assert draws.sum() <= sup.get("cap_total", np.inf) + tol
        else:
            assert np.all(t.support[:, s, L.SUP_OUTSTANDING] <= sup["limit"] + tol)


@PROPERTY
@given(deals())
def test_puts_are_the_share_put_and_the_supporter_buys_within_its_limit(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, facts = case
    res = run_spec(spec)
    tol = 1e-9 * facts["pool"]
    tr = res.tables.tranche
    for k, t in enumerate(spec["tranches"]):
        put = t.get("put")
        if put is None:
            assert np.all(tr[:, k, L.TR_PUT_EXERCISED] == 0.0)
            continue
        when = res.periods.index[res.periods["payment_date"] == np.datetime64(put["date"])][0]
        exercised = tr[:, k, L.TR_PUT_EXERCISED]
        assert exercised[when] == pytest.approx(put["share"] * tr[when, k, L.TR_BALANCE_END], abs=tol)
        assert np.count_nonzero(exercised) <= 1
        assert np.all(tr[:, k, L.TR_PUT_UNFUNDED] <= exercised + tol)
    for s, sup in enumerate(facts["support"]):
        if sup["kind"] == "liquidity_support":
            bought = res.tables.support[:, s, L.SUP_PUT_BOUGHT]
            assert bought.sum() <= sup["limit"] + tol
            funded = tr[:, :, L.TR_PUT_EXERCISED] - tr[:, :, L.TR_PUT_UNFUNDED]
            assert bought.sum() == pytest.approx(funded.sum(), abs=tol)


@PROPERTY
@given(deals())
def test_tranche_balances_never_increase(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, facts = case
    res = run_spec(spec)
    tol = 1e-9 * facts["pool"]
    tr = res.tables.tranche
    end = tr[:, :, L.TR_BALANCE_END]
    start = tr[:, :, L.TR_BALANCE_START]
    assert np.all(np.diff(end, axis=0) <= tol)
    np.testing.assert_allclose(start[1:], end[:-1], atol=tol)
    original = np.array([x["balance"] for x in spec["tranches"]])
    np.testing.assert_allclose(start[0], original, atol=tol)
    assert np.all(end >= -tol)


@PROPERTY
@given(deals())
def test_payments_never_exceed_the_cash_that_came_in(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, facts = case
    res = run_spec(spec)
    t = res.tables
    d = t.deal
    to_notes = (
        t.tranche[:, :, L.TR_INTEREST_PAID].sum()
        + t.tranche[:, :, L.TR_PRINCIPAL_PAID].sum()
        + t.tranche[:, :, L.TR_RESIDUAL_PAID].sum()
    )
    to_fees = t.fee[:, :, L.FEE_PAID].sum() + t.fee[:, :, L.FEE_ABOVE_CAP_PAID].sum()
    to_liquidity = t.support[:, :, L.SUP_REPAID].sum() + t.support[:, :, L.SUP_INTEREST_PAID].sum()
    kept = t.account[-1, :, L.ACC_END].sum() if t.account.shape[1] else 0.0
    to_hedges = t.hedge[:, :, L.HG_PAID].sum() + t.hedge[:, :, L.HG_TERMINATION_PAID].sum()
    cash_in = (
        d[:, L.D_COLLECTIONS].sum()
        + d[:, L.D_CALL_PROCEEDS].sum()
        + facts["initial_accounts"]
        + d[:, L.D_SUPPORT_DRAWS].sum()
        + d[:, L.D_HEDGE_RECEIVED].sum()
        # ---- delinquency: advances net of their repayment
        + d[:, L.D_ADVANCED_INTEREST].sum()
        + d[:, L.D_ADVANCED_PRINCIPAL].sum()
        - d[:, L.D_ADVANCES_REPAID].sum()
    )
    tol = 1e-6 * facts["pool"]
    # what went out (payments, cash still in accounts, cash carried past legal final) is
    # exactly what came in, so the payments alone never exceed it
    bought = d[:, L.D_PURCHASE_PRICE].sum()  # cash paid for assets in a revolving period
    out = to_notes + to_fees + to_liquidity + to_hedges + kept + bought + d[-1, L.D_CARRY_OUT]
    assert out == pytest.approx(cash_in, abs=tol)
    assert to_notes + to_fees + to_liquidity + to_hedges <= cash_in + tol
    # the payment column of the deal table agrees with the tranche, fee, support and hedge tables
    assert d[:, L.D_PAYMENTS].sum() == pytest.approx(to_notes + to_fees + to_liquidity + to_hedges, abs=tol)


@PROPERTY
@given(deals(with_trap=True))
def test_no_cash_is_left_in_accounts_after_legal_final(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # Every account is released at legal final (reserve and trap alike): nothing may stay
    # behind after the deal ends. Deals here always have a cash-trap trigger.
    spec, facts = case
    res = run_spec(spec)
    left = res.tables.account[-1, :, L.ACC_END]
    assert np.all(np.abs(left) <= 1e-9 * facts["pool"]), f"left in accounts: {left}"


@PROPERTY
@given(deals(dscr_switch=True))
def test_dscr_divides_by_the_interest_and_principal_due_of_the_tranche_table(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # Before and after a waterfall switch alike, a DSCR test's debt service is what the
    # tranche table says is due (the whole balance once the waterfall has switched).
    # A trailing DSCR (`periods`) divides the window's sums.
    spec, facts = case
    t = run_spec(spec).tables
    service = t.tranche[:, 0, L.TR_INTEREST_DUE] + t.tranche[:, 0, L.TR_PRINCIPAL_DUE]
    net = t.deal[:, L.D_COLLECTIONS] - t.fee[:, :, L.FEE_DUE].sum(axis=1)  # every fee is senior
    window = spec["triggers"][0].get("periods", 1)
    if window > 1:
        kernel = np.ones(window)
        service = np.convolve(service, kernel)[: len(service)]
        net = np.convolve(net, kernel)[: len(net)]
    value = t.trigger[:, 0, L.TRG_VALUE]
    live = service > 1e-6
    assert np.all(np.isinf(value[~live]))
    np.testing.assert_allclose(value[live] * service[live], net[live], rtol=1e-9, atol=1e-9 * facts["pool"])


@PROPERTY
@given(deals())
def test_the_collateral_value_is_the_appraisals_at_most_and_the_loan_to_value_test_reads_it(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, _facts = case
    res = run_spec(spec)
    value = col(res, "pool.collateral_value")
    loans = spec["pools"][0]["loans"]
    appraised = sum(float(x.get("pledged_ip", {}).get("appraised_value", 0.0)) for x in loans)
    streams = [x for x in spec["pools"][0].get("royalties", []) if "valuation" in x]
    assert np.all(value >= 0.0)
    if not streams:  # a pledge never counts more than its appraisal (q <= 1)
        assert np.all(value <= appraised * (1.0 + 1e-12) + 1e-6)
        # nothing has defaulted, prepaid or been sold before the first period
        if not res.periods["deal.called"].iloc[0] > 0:
            assert value[0] == pytest.approx(appraised, rel=1e-12, abs=1e-6)
    # the test also counts assets bought while revolving, which the pool's column does not
    if "collateral_test" in res.periods.columns.str.split(".").str[0] and "revolving" not in spec:
        # the notes when the triggers are tested: after a write-down at default
        notes = sum(
            col(res, f"{t['name']}.balance_start") - col(res, f"{t['name']}.write_down")
            for t in spec["tranches"]
        )
        ltv = col(res, "collateral_test.value")
        live = (value > 1e-6) & (col(res, "deal.called") == 0)
        np.testing.assert_allclose(ltv[live] * value[live], notes[live], rtol=1e-9, atol=1e-6)


@PROPERTY
@given(deals(zero_cdr=True))
def test_royalty_collected_is_the_streams_own_payments(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # A stream whose dates differ from the note dates loses nothing and gains nothing: the
    # collections are the sum of its own payments on or before legal final. (A clean-up call
    # sells the stream with the pool: its later payments are not the deal's.)
    spec, facts = case
    # a call sells the pool, royalty streams and all
    spec.pop("issuer_call", None)
    spec.pop("clean_up_call", None)
    stream = facts["royalty"]
    # a clean-up call sells the pool, royalty streams included (docs/outputs.md): not here
    spec.pop("clean_up_call", None)
    spec["scenarios"]["base"].pop("royalty", None)  # the stream's own flat base
    res = run_spec(spec)
    collected = res.collections[..., C_ROYALTY].sum()
    # the last collection period ends on the legal final date, or on the last determination
    # date when that is the last payment date's (docs/calendars.md): later cash is not the deal's
    text = yaml.safe_dump(spec, sort_keys=False)
    end = from_day(int(compile_text(text).collection_grid[-1]))
    expected = (
        0.0
        if stream is None
        else own_royalty_payments(stream, end, spec["deal"].get("cut_off_date", CLOSING))
    )
    assert collected == pytest.approx(expected, abs=0.005), (stream, res.collections[..., C_ROYALTY])


@PROPERTY
@given(deals())
def test_the_pool_balance_rolls_forward(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Whatever falls behind, cures or defaults: start - principal collected - prepayments -
    defaults = end, the end is the next start, and the delinquent buckets are part of it."""
    spec, facts = case
    # the pool's own cash, before a call sells it
    c = api.collections(compile_text(yaml.safe_dump(spec, sort_keys=False))).sum(axis=0)
    tol = 1e-9 * facts["pool"]
    start, end = c[:, C_BALANCE_START], c[:, C_BALANCE_END]
    np.testing.assert_allclose(
        start - c[:, C_SCHED_PRINCIPAL] - c[:, C_PREPAYMENT] - c[:, C_DEFAULT], end, rtol=0, atol=tol
    )
    np.testing.assert_allclose(start[1:], end[:-1], rtol=0, atol=tol)
    behind = c[:, C_DELINQUENT_30] + c[:, C_DELINQUENT_60] + c[:, C_DELINQUENT_90]
    assert np.all(behind <= end + tol)
    assert np.all(c[:, C_ARREARS_PRINCIPAL] <= behind + tol)


@PROPERTY
@given(deals(zero_cdr=True, safe=True))
def test_senior_has_no_loss_without_defaults_when_fully_collateralised(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, facts = case
    res = run_spec(spec)
    assert res.collections[..., C_DEFAULT].sum() == 0.0  # no defaults at all
    assert res.summary.loc["senior", "loss"] <= 1e-6 * facts["pool"], res.summary.loc["senior"]


@st.composite
def payment_grids(draw: Any) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Days from closing to each date (first gap a stub, then 28-92 day gaps), cash per date
    (non-negative, some dates without cash) and a price."""
    n = draw(st.integers(1, 60))
    first = draw(st.integers(1, 120))
    regular = draw(st.sampled_from([(28, 29, 30, 31), (89, 90, 91, 92), (30,), (181, 182, 183, 184)]))
    gaps = [first] + [draw(st.sampled_from(regular)) for _ in range(n - 1)]
    cash = [draw(st.sampled_from([0.0, 1.0, 3.5, 100.0, 2500.0])) for _ in range(n)]
    price = draw(st.sampled_from([50.0, 1000.0, 5000.0, 20000.0]))
    guess = draw(st.sampled_from([0.0, 0.03, 0.2, -0.5]))
    return np.cumsum(gaps), np.array(cash), price, guess


@PROPERTY
@given(payment_grids())
def test_yield_on_grid_matches_per_date_discounting(
    case: tuple[np.ndarray, np.ndarray, float, float],
) -> None:
    from ipabs.engine.metrics_numba_fns import yield_at_price, yield_on_grid

    days, cash, price, guess = case
    times = days / 365.0
    gap_days, gap_id = np.unique(np.diff(np.concatenate([[0], days])), return_inverse=True)
    factor = np.empty(len(gap_days))
    got = yield_on_grid(gap_id.astype(np.int64), gap_days / 365.0, factor, times, cash, price, guess)
    want = yield_at_price(times, cash, price, guess)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-11, nan_ok=True)
    if -0.9 < got < 5.0:  # the yield prices the cash at the price (far out, powers lose digits)
        assert np.sum(cash * (1.0 + got) ** -times) == pytest.approx(price, rel=1e-9)


# ---- hedges


@PROPERTY
@given(deals())
def test_hedges_settle_net_and_a_defaulted_counterparty_pays_only_its_recovery(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, facts = case
    res = run_spec(spec)
    tol = 1e-9 * facts["pool"]
    t = res.tables
    hg = t.hedge
    hedges = spec.get("hedges", [])
    assert hg.shape[1] == len(hedges)
    np.testing.assert_allclose(t.deal[:, L.D_HEDGE_RECEIVED], hg[:, :, L.HG_RECEIVED].sum(axis=1), atol=tol)
    paid = hg[:, :, L.HG_PAID] + hg[:, :, L.HG_TERMINATION_PAID]
    np.testing.assert_allclose(t.deal[:, L.D_HEDGE_PAID], paid.sum(axis=1), atol=tol)
    defaulted_at = spec["scenarios"]["base"]["defaults"].get("obligors", {}).get("Swapper")
    for j, h in enumerate(hedges):
        x = hg[:, j, :]
        money = [f for f in range(L.N_HEDGE_FIELDS) if f != L.HG_TERMINATION]
        assert np.all(x[:, money] >= -tol), f"negative {h['name']} amount"
        assert np.all(x[:, L.HG_PAID] <= x[:, L.HG_DUE] + tol)
        np.testing.assert_allclose(
            x[:, L.HG_UNPAID], x[:, L.HG_DUE] - x[:, L.HG_PAID], atol=1e-6 * facts["pool"]
        )
        # what is owed on a date is what was left unpaid before plus the date's net payment
        before = np.concatenate(([0.0], x[:-1, L.HG_UNPAID]))
        owed = np.maximum(x[:, L.HG_TRUST_LEG] - x[:, L.HG_COUNTERPARTY_LEG], 0.0)
        np.testing.assert_allclose(x[:, L.HG_DUE], before + owed, atol=1e-6 * facts["pool"])
        done = x[:, L.HG_TERMINATED]
        assert np.all(np.diff(done) >= 0.0)
        ends = np.nonzero(np.diff(np.concatenate(([0.0], done))) > 0)[0]
        assert np.count_nonzero(x[:, L.HG_TERMINATION]) <= 1
        value = x[:, L.HG_TERMINATION]
        gone = x[:, L.HG_DEFAULTED] > 0
        share = np.where(gone, h["termination_recovery"], 1.0)
        # settled net while it runs; on its termination date the counterparty pays its share of
        # a positive value; after that nothing
        expected = np.where(
            done > 0,
            0.0,
            np.maximum(x[:, L.HG_COUNTERPARTY_LEG] - x[:, L.HG_TRUST_LEG], 0.0),
        )
        expected[ends] = np.maximum(value[ends], 0.0) * share[ends]
        np.testing.assert_allclose(x[:, L.HG_RECEIVED], expected, atol=1e-6 * facts["pool"])
        assert np.all(x[done > 0, L.HG_NOTIONAL] == 0.0)
        # a termination owed by the trust is paid at most once, in all
        owed_total = -value[value < 0].sum()
        assert x[:, L.HG_TERMINATION_PAID].sum() <= owed_total + tol
        if defaulted_at is not None:
            assert_defaulted = x[:, L.HG_DEFAULTED]
            assert np.all(assert_defaulted[: defaulted_at - 1] == 0.0)
            assert np.all(assert_defaulted[defaulted_at - 1 :] == 1.0)


# ---- covenants


def _with_delinquency(draw: Any, spec: dict[str, Any], n_periods: int) -> None:
    """Maybe let loans fall behind and cure (random monthly roll and cure rates), with a
    servicer that advances interest and maybe principal and may default, and a delinquency
    trigger on a trailing average."""
    if not draw(st.booleans()):
        return
    roll = [_pct(draw, 0, 300)] + [_pct(draw, 0, 1000) for _ in range(3)]
    cure = [round(draw(st.floats(0.0, 1.0)) * (1.0 - r), 4) for r in roll[1:]]
    spec["scenarios"]["base"]["delinquency"] = {"roll_rates": roll, "cure_rates": cure}
    if draw(st.booleans()):
        spec.setdefault("obligors", []).append({"name": "servicer", "pd": 0.01})
        spec["servicer_advances"] = {"servicer": "servicer", "principal": draw(st.booleans())}
        if draw(st.booleans()):
            defaults = spec["scenarios"]["base"]["defaults"]
            if "cdr" in defaults and defaults["cdr"] > 0:
                defaults.setdefault("obligors", {})["servicer"] = draw(st.integers(1, n_periods))
    if draw(st.booleans()):
        spec.setdefault("triggers", []).append(
            {
                "name": "delinquency",
                "kind": "delinquency",
                "days_past_due": draw(st.sampled_from([30, 60, 90])),
                "periods": draw(st.integers(1, 3)),
                "threshold": _pct(draw, 0, 200),
                "effect": {"sequential": True},
            }
        )


def _with_covenants(draw: Any, spec: dict[str, Any], n_periods: int) -> None:
    """Maybe make a DSCR trailing, add a covenant test (excess spread, loan-to-value against a
    valuation, collections against the contractual projection or a table), give a reserve a
    forward-looking target of the next months' interest or fees, or keep it funded after a
    waterfall switch."""
    for trig in spec.get("triggers", []):
        if trig["kind"] == "dscr" and draw(st.booleans()):
            trig["periods"] = draw(st.integers(1, 6))
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["excess_spread", "loan_to_value", "collections_vs_projection"]))
        test: dict[str, Any] = {"name": "covenant", "kind": kind, "effect": {"sequential": True}}
        pool = sum(float(x["balance"]) for x in spec["pools"][0]["loans"])
        if kind == "excess_spread":
            test["threshold"] = _pct(draw, 0, 100)
            test["periods"] = draw(st.integers(1, 4))
        elif kind == "loan_to_value":
            test["threshold"] = _pct(draw, 500, 1000)
            test["valuation"] = (
                {"share": _pct(draw, 800, 1500), "of": "pool_balance_start"}
                if draw(st.booleans())
                else {"schedule": [round(pool * _pct(draw, 300, 1200), 2) for _ in range(3)]}
            )
        else:
            test["of"] = draw(st.sampled_from(["collections", "income_collections", "interest_collections"]))
            test["threshold"] = _pct(draw, 500, 1000)
            test["periods"] = draw(st.integers(1, 4))
            # a calendar's short last period can add a payment date: a table then needs one more
            if "calendar" not in spec["deal"] and draw(st.booleans()):
                test["projection"] = [round(pool * _pct(draw, 0, 100), 2) for _ in range(n_periods)]
        spec.setdefault("triggers", []).append(test)
    for acc in spec.get("accounts", []):
        if acc.get("kind", "reserve") != "reserve":
            continue
        if draw(st.booleans()):
            months = draw(st.integers(1, 24))
            acc["target"] = {
                "share": _pct(draw, 0, 200, 100.0),
                "of": draw(st.sampled_from([f"next_interest(senior, {months})", f"next_fees({months})"])),
            }
        if draw(st.booleans()):
            acc["after_switch"] = "keep_funded"
