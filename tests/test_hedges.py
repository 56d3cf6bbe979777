"""Rate hedges: interest-rate swaps and caps, their net payments at the deal's ranks, the
counterparty's default and the termination amount (see docs/hedges.md).

Every deal is annual with ACT/365 year fractions and dates on 1 January, so that year
fractions are 1 except 366/365 for the year through 29 February 2028. The pool is one 10m
loan at 6% repaying 2.5m a year, whose principal retires the senior notes: the senior
balance at the start of the four periods is 8m, 5.5m, 3m and 0.5m. The index steps 3%, 4%,
2%, 2% (its level on each period's first day). Expected numbers are written out by hand and
recomputed by plain arithmetic; no ipabs function produces them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal, default_periods

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.errors import DealError, Issue
from ipabs.montecarlo import simulate

ROOT = Path(__file__).resolve().parents[1]
LEAP = 366 / 365
YF = [1.0, 1.0, 1.0, LEAP]
INDEX = [0.03, 0.04, 0.02, 0.02]
SENIOR = [8_000_000.0, 5_500_000.0, 3_000_000.0, 500_000.0]
POOL_INTEREST = [600_000.0, 450_000.0, 300_000.0, 2_500_000 * 0.06 * LEAP]

DEAL = """deal:
  name: swap by hand
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2029-01-01
indices:
  LPR1Y: [{from: 2025-01-01, rate: 3%}, {from: 2026-01-01, rate: 4%}, {from: 2027-01-01, rate: 2%}]
obligors:
  - {name: Bank}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 6%, term_months: 48, payment_frequency: annual,
         amortisation: equal_principal}
scenarios:
  base: {}
  bank_defaults:
    defaults: {obligors: {Bank: 3}}
tranches:
  - {name: senior, balance: 8m, coupon: {index: LPR1Y, spread: 1%}}
  - {name: sub, balance: 2m, coupon: 13%}
hedges:
  - name: swap
    kind: interest_rate_swap
    counterparty: Bank
    index: LPR1Y
    fixed_rate: 3.5%
    notional: {of: balance(senior)}
waterfalls:
  normal:
    income:
      - pay_interest: senior
      - pay_interest: sub
      - pay_hedge: swap
      - pay_residual: sub
    principal:
      - pay_principal: senior
      - pay_hedge_termination: swap
      - pay_principal: sub
"""


def _swap(**terms: str) -> str:
    """DEAL with the swap's ``key: value`` lines replaced or added."""
    return _swap_in(DEAL, **terms)


def _first(text: str, hedge: str) -> str:
    """``text`` with the hedge's net payment moved to the top of the income steps."""
    text = text.replace(f"      - pay_hedge: {hedge}\n", "")
    return text.replace("    income:\n", f"    income:\n      - pay_hedge: {hedge}\n")


# --------------------------------------------------------------------------- 1. payments by hand


def test_swap_pays_fixed_against_a_stepped_index_on_the_senior_balance() -> None:
    res = run_text(_first(DEAL, "swap"))
    assert_conserved(res, 1e7)
    assert_cents(col(res, "senior.balance_start"), SENIOR, "senior balance")
    assert_cents(col(res, "swap.notional"), SENIOR, "notional follows the senior balance")
    fixed = [n * 0.035 * y for n, y in zip(SENIOR, YF, strict=True)]
    floating = [n * r * y for n, r, y in zip(SENIOR, INDEX, YF, strict=True)]
    # by hand: 280,000 / 192,500 / 105,000 / 17,547.95 against 240,000 / 220,000 / 60,000 / 10,027.40
    assert_cents(col(res, "swap.trust_leg"), [280_000, 192_500, 105_000, 17_547.95], "fixed leg")
    assert_cents(col(res, "swap.trust_leg"), fixed, "fixed leg")
    assert_cents(col(res, "swap.counterparty_leg"), [240_000, 220_000, 60_000, 10_027.40], "index leg")
    assert_cents(col(res, "swap.counterparty_leg"), floating, "index leg")
    # net settlement: the trust pays 40,000, receives 27,500, pays 45,000 and 7,520.55
    assert_cents(col(res, "swap.received"), [0, 27_500, 0, 0], "received")
    assert_cents(col(res, "swap.due"), [40_000, 0, 45_000, 7_500 * LEAP], "due")
    assert_cents(col(res, "deal.hedge_received"), [0, 27_500, 0, 0], "deal received")
    # the receipt is an income collection of the period
    assert_cents(
        col(res, "deal.income_collections"),
        np.array(POOL_INTEREST) + np.array([0, 27_500, 0, 0]),
        "income collections",
    )
    assert col(res, "swap.counterparty_defaulted").sum() == 0.0
    assert col(res, "swap.terminated").sum() == 0.0


def test_swap_in_which_the_trust_pays_the_index_plus_a_spread_on_a_fixed_notional() -> None:
    text = _swap(trust_pays="floating", spread="0.5%", notional="4m")
    res = run_text(_first(text, "swap"))
    assert_conserved(res, 1e7)
    # the trust pays 4m x (index + 0.5%) and receives 4m x 3.5%: 3.5% - 3.5% = 0, 3.5% - 4.5%,
    # 3.5% - 2.5%, 3.5% - 2.5% (the last over 366 days)
    assert_cents(col(res, "swap.trust_leg"), [140_000, 180_000, 100_000, 100_000 * LEAP], "index leg")
    assert_cents(col(res, "swap.counterparty_leg"), [140_000] * 3 + [140_000 * LEAP], "fixed leg")
    assert_cents(col(res, "swap.paid"), [0, 40_000, 0, 0], "paid")
    assert_cents(col(res, "swap.received"), [0, 0, 40_000, 40_000 * LEAP], "received")


CAP = """hedges:
  - name: cap
    kind: interest_rate_cap
    counterparty: Bank
    index: LPR1Y
    strike: 3.5%
    premium_rate: 0.1%
    upfront_premium: 25k
    notional: {schedule: [6m, 6m, 4m]}
"""


def test_cap_pays_the_index_above_the_strike_and_the_trust_its_premium() -> None:
    text = DEAL.split("hedges:\n")[0] + CAP + "waterfalls:" + DEAL.split("waterfalls:")[1]
    text = text.replace("pay_hedge: swap", "pay_hedge: cap").replace(
        "      - pay_hedge_termination: swap\n", ""
    )
    res = run_text(_first(text, "cap"))
    assert_conserved(res, 1e7)
    notional = [6e6, 6e6, 4e6, 4e6]  # the schedule's last value repeats
    assert_cents(col(res, "cap.notional"), notional, "notional")
    # caplets: max(index - 3.5%, 0): only 4% - 3.5% = 0.5% in period 2, on 6m: 30,000
    assert_cents(col(res, "cap.counterparty_leg"), [0, 30_000, 0, 0], "caplets")
    premium = [6_000, 6_000, 4_000, 4_000 * LEAP]
    assert_cents(col(res, "cap.trust_leg"), premium, "premium")
    assert_cents(col(res, "cap.received"), [0, 24_000, 0, 0], "net received")
    assert_cents(col(res, "cap.paid"), [6_000, 0, 4_000, 4_000 * LEAP], "premium paid")
    # the upfront premium is paid at closing, outside the waterfall
    assert col(res, "deal.hedge_paid").sum() == pytest.approx(10_000 + 4_000 * LEAP, abs=0.005)


# --------------------------------------------------------------------------- 2. the rank


def test_net_payment_ranks_where_the_deal_puts_it() -> None:
    """Income pays senior interest, then the 13% sub coupon (260,000 a year), then the swap:
    the swap gets what is left and carries the rest; put first, it is paid in full and the sub
    gets less."""
    junior = run_text(DEAL)
    # 1: 600,000 - 320,000 - 260,000 = 20,000 of 40,000; 2: 477,500 - 275,000 = 202,500 < 260,000
    # of sub interest (57,500 unpaid); 3: 300,000 - 90,000 = 210,000 < 317,500; 4: 150,410.96 -
    # 15,041.10 = 135,369.86 < 260,712.33 + 107,500
    assert_cents(col(junior, "swap.paid"), [20_000, 0, 0, 0], "junior swap paid")
    assert_cents(col(junior, "swap.unpaid"), [20_000, 20_000, 65_000, 65_000 + 7_500 * LEAP], "carried")
    assert_cents(col(junior, "swap.due"), [40_000, 20_000, 65_000, 65_000 + 7_500 * LEAP], "due")
    senior_int = [320_000, 275_000, 90_000, 500_000 * 0.03 * LEAP]
    assert_cents(col(junior, "senior.interest_paid"), senior_int, "senior interest")
    left = [p + r - s for p, r, s in zip(POOL_INTEREST, [0, 27_500, 0, 0], senior_int, strict=True)]
    assert_cents(col(junior, "sub.interest_paid"), [260_000, *left[1:]], "sub interest")

    first = run_text(_first(DEAL, "swap"))
    assert_conserved(first, 1e7)
    paid = [40_000, 0, 45_000, 7_500 * LEAP]
    assert_cents(col(first, "swap.paid"), paid, "senior swap paid")
    assert_cents(col(first, "swap.unpaid"), [0, 0, 0, 0], "nothing carried")
    cash = [
        p + r - h - s for p, r, h, s in zip(POOL_INTEREST, [0, 27_500, 0, 0], paid, senior_int, strict=True)
    ]
    # 560,000 - 320,000 = 240,000; 202,500; 165,000; 127,849.32
    assert_cents(col(first, "sub.interest_paid"), cash, "sub interest after the swap")
    assert_cents(col(first, "sub.interest_paid"), [240_000, 202_500, 165_000, 127_849.32], "by hand")
    assert_cents(col(first, "deal.hedge_paid"), paid, "deal hedge paid")


# --------------------------------------------------------------------------- 3. termination


def test_counterparty_default_terminates_the_swap_at_its_mark_to_market() -> None:
    """The trust pays the index and receives 3.5%: from period 3 it would receive 1.5% of 3m.
    The bank defaults in period 3: it pays nothing from then on, and the swap ends at its value
    to the trust, the net payments of periods 3 and 4 on the period-3 notional (3m, held) each
    discounted on the index to the default date: 45,000 + 45,123.29 / (1 + 2% x 366/365)."""
    text = _swap(trust_pays="floating", termination_recovery="40%")
    base = run_text(text, "base")
    assert_cents(col(base, "swap.received"), [40_000, 0, 45_000, 7_500 * LEAP], "received without default")
    res = run_text(text, "bank_defaults")
    assert_conserved(res, 1e7)
    value = 45_000 + 3e6 * 0.015 * LEAP / (1 + 0.02 * LEAP)
    assert value == pytest.approx(89_236.14, abs=0.005)
    assert_cents(col(res, "swap.termination"), [0, 0, value, 0], "termination value")
    # a defaulted counterparty pays the stated 40% of what it owes, once; nothing after
    assert_cents(col(res, "swap.received"), [40_000, 0, 0.4 * value, 0], "received")
    assert_cents(col(res, "swap.counterparty_defaulted"), [0, 0, 1, 1], "defaulted")
    assert_cents(col(res, "swap.terminated"), [0, 0, 1, 1], "terminated")
    assert_cents(col(res, "swap.notional"), [8e6, 5.5e6, 0, 0], "no notional after termination")


def test_termination_owed_by_the_trust_is_paid_at_the_junior_step() -> None:
    """The trust pays 3.5% and receives the index (2% from period 3): the swap is worth
    -45,000 - 45,123.29 / 1.0200548 to the trust when the bank defaults; the principal steps
    pay it after the senior's principal: in period 3 the senior takes all 2.5m, so the
    termination is carried and paid in period 4 after the senior's last 0.5m."""
    res = run_text(DEAL, "bank_defaults")
    assert_conserved(res, 1e7)
    owed = 45_000 + 3e6 * 0.015 * LEAP / (1 + 0.02 * LEAP)
    assert_cents(col(res, "swap.termination"), [0, 0, -owed, 0], "termination value")
    assert_cents(col(res, "swap.termination_paid"), [0, 0, 0, owed], "paid from principal")
    assert_cents(col(res, "swap.termination_unpaid"), [0, 0, owed, 0], "carried")
    assert_cents(col(res, "senior.principal_paid"), [2.5e6, 2.5e6, 2.5e6, 0.5e6], "senior principal")
    assert_cents(col(res, "deal.principal_used_for_income"), [0, 0, 0, owed], "recorded as used")
    assert_cents(col(res, "deal.hedge_paid"), [20_000, 0, 0, owed], "deal hedge paid")


def test_a_waterfall_switch_terminates_the_swap_when_the_deal_says_so() -> None:
    """A cumulative-default trigger switches to an accelerated waterfall when the borrower
    defaults in period 2: the swap ends there at its value (the trust receives the fixed
    rate, the counterparty pays in full)."""
    text = _swap(trust_pays="floating", terminate_on_switch="true").replace(
        "  bank_defaults:\n", "  a_defaults:\n    defaults: {obligors: {A: 2}}\n  bank_defaults:\n"
    )
    text = text.replace(
        "waterfalls:\n",
        "triggers:\n  - {name: eod, kind: cumulative_default_rate, threshold: 1%,\n"
        "     effect: {waterfall: accelerated}}\n"
        "waterfalls:\n",
    )
    text += (
        "  accelerated:\n    - pay_interest: senior\n    - pay_principal: senior\n"
        "    - pay_hedge: swap\n    - pay_hedge_termination: swap\n    - pay_residual: sub\n"
    )
    res = run_text(text, "a_defaults")
    assert_conserved(res, 1e7)
    # period 2: the senior's balance at the start is 5.5m; fixed 3.5% against 4%, 2%, 2%
    n = 5_500_000.0
    d3 = 1 / (1 + 0.02)
    d4 = d3 / (1 + 0.02 * LEAP)
    value = n * (-0.005) + n * 0.015 * d3 + n * 0.015 * LEAP * d4
    assert_cents(col(res, "swap.termination"), [0, value, 0, 0], "termination value")
    assert_cents(col(res, "swap.received"), [40_000, value, 0, 0], "paid in full by the counterparty")
    assert_cents(col(res, "swap.counterparty_defaulted"), [0, 0, 0, 0], "no default")


def test_swap_value_is_the_closed_form_annuity() -> None:
    """A flat 4% index, a fixed 3% rate and a fixed 1m notional on a 30/360 clock (year
    fractions exactly 1): at the default in period 2 of 4, the trust that receives the index is
    owed ``N (r - K) (1 + r) (1 - (1 + r)^-3) / r``, the value of an annuity-due of 3 payments."""
    text = DEAL.replace(
        "  LPR1Y: [{from: 2025-01-01, rate: 3%}, {from: 2026-01-01, rate: 4%}, {from: 2027-01-01, rate: 2%}]",
        "  LPR1Y: 4%",
    )
    text = text.replace("defaults: {obligors: {Bank: 3}}", "defaults: {obligors: {Bank: 2}}")
    text = _swap_in(text, fixed_rate="3%", notional="1m", day_count="30/360", termination_recovery="100%")
    res = run_text(text, "bank_defaults")
    r, k, n = 0.04, 0.03, 1e6
    closed = n * (r - k) * (1 + r) * (1 - (1 + r) ** -3) / r
    assert closed == pytest.approx(28_860.95, abs=0.005)
    assert_cents(col(res, "swap.termination"), [0, closed, 0, 0], "value")
    assert_cents(col(res, "swap.received"), [10_000, closed, 0, 0], "received")


def _swap_in(text: str, **terms: str) -> str:
    """``text`` with the first hedge's ``key: value`` lines replaced or added."""
    for key, value in terms.items():
        line = re.search(rf"\n    {key}: [^\n]*", text)
        new = f"\n    {key}: {value}"
        if line:
            text = text.replace(line.group(0), new)
        else:
            text = text.replace("\n    index: LPR1Y", new + "\n    index: LPR1Y")
    return text


# --------------------------------------------------------------------------- 4. Monte Carlo

# the trust pays the index and receives 3.5%: it receives in periods 1, 3 and 4
MC_DEAL = _first(_swap(trust_pays="floating"), "swap").replace("  - {name: Bank}", "  - {name: Bank, pd: PD}")
MC_DEAL = MC_DEAL.replace("      - {obligor: A,", "      - {obligor: A, pd: 0,")
MC_DEAL += "risk:\n  correlation: 0\n  recovery: {model: constant, rate: 0}\n"


def test_zero_pd_paths_equal_the_deterministic_run() -> None:
    model = compile_text(MC_DEAL.replace("PD", "0"))
    det = api.run(model, "base")
    assert col(det, "swap.received").sum() > 0.0 and col(det, "swap.paid").sum() > 0.0
    result = simulate(model, paths=8, seed=5, threads=2, keep=[0, 7])
    for i, kept in result.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    assert np.all(result.tranche_outcomes == result.tranche_outcomes[:1])


def test_a_defaulted_counterparty_pays_nothing_from_its_default_period_on_every_path() -> None:
    """On each path where the bank defaults, the tables are those of the deterministic scenario
    that defaults it in the same period: receipts stop exactly there (it recovers nothing of
    the termination amount), and the swap is settled as usual before."""
    model = compile_text(MC_DEAL.replace("PD", "0.3"))
    seed, n_paths = 4, 40
    named = {i: default_periods(model, seed, i) for i in range(n_paths)}
    hit = [i for i in range(n_paths) if "Bank" in named[i]]
    periods = {named[i]["Bank"] for i in hit}
    assert {0, 2} <= periods, f"paths defaulting the bank in periods 1 and 3: {named}"
    chosen = sorted({next(i for i in hit if named[i]["Bank"] == t) for t in periods} | {0})
    scenarios = "".join(
        f"  path_{i}:\n    defaults: {{obligors: {{Bank: {named[i]['Bank'] + 1}}}}}\n"
        for i in chosen
        if i in hit
    )
    det_model = compile_text(MC_DEAL.replace("PD", "0.3").replace("scenarios:\n", "scenarios:\n" + scenarios))
    base = col(api.run(det_model, "base"), "swap.received")
    result = simulate(model, paths=n_paths, seed=seed, threads=2, keep=chosen)
    for i in chosen:
        kept = result.kept[i].periods
        if i not in hit:
            assert_periods_equal(kept, api.run(det_model, "base").periods, f"path {i}")
            continue
        tau = named[i]["Bank"]
        det = api.run(det_model, f"path_{i}")
        assert_periods_equal(kept, det.periods, f"path {i} (bank defaults in period {tau + 1})")
        received = kept["swap.received"].to_numpy(dtype=np.float64)
        expected = np.where(np.arange(model.n_periods) < tau, base, 0.0)
        assert_cents(received, expected, f"path {i}")
        assert kept["swap.counterparty_defaulted"].to_numpy()[tau] == 1.0


# --------------------------------------------------------------------------- 5. located errors


def _issues(text: str) -> list[Issue]:
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    return info.value.issues


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "path", "message", "hint"),
    [
        (
            "    index: LPR1Y\n",
            "    index: LPR2Y\n",
            "hedges[0].index",
            "unknown index 'LPR2Y'",
            "did you mean 'LPR1Y'?",
        ),
        (
            "    counterparty: Bank",
            "    counterparty: Bnak",
            "hedges[0].counterparty",
            "unknown obligor 'Bnak'",
            "did you mean 'Bank'?",
        ),
        (
            "      - pay_hedge: swap",
            "      - pay_hedge: swop",
            "waterfalls.normal.income[2].pay_hedge",
            "unknown hedge 'swop'",
            "did you mean 'swap'?",
        ),
        (
            "      - pay_hedge_termination: swap",
            "      - pay_hedge_termination: cap",
            "waterfalls.normal.principal[1].pay_hedge_termination",
            "unknown hedge 'cap'",
            "known hedges: swap",
        ),
        (
            "    notional: {of: balance(senior)}",
            "    notional: {schedule: [8m, -5m]}",
            "hedges[0].notional",
            "",
            "",
        ),
        (
            "    notional: {of: balance(senior)}",
            "    notional: {of: balance(senoir)}",
            "hedges[0].notional.of",
            "unknown tranche 'senoir'",
            "did you mean 'senior'?",
        ),
        (
            "    fixed_rate: 3.5%",
            "    fixed_rate: 3.5%\n    end_date: 2030-01-01",
            "hedges[0].end_date",
            "end_date 2030-01-01 is outside the deal's life",
            "give a date from 2025-01-01 to 2029-01-01",
        ),
        (
            "    kind: interest_rate_swap",
            "    kind: interest_rate_swop",
            "hedges[0]",
            "",
            "",
        ),
        (
            "    fixed_rate: 3.5%",
            "    fixed_rate: 3.5%\n    termination_recovery: 140%",
            "hedges[0].termination_recovery",
            "",
            "",
        ),
    ],
)
def test_hedge_mistakes_are_located(old: str, new: str, path: str, message: str, hint: str) -> None:
    assert DEAL.count(old) == 1
    text = DEAL.replace(old, new)
    issues = _issues(text)
    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert issue.file == "deal.yaml"
    assert issue.path.startswith(path), str(issue)
    assert issue.line == _line(text, new.splitlines()[-1].strip()), str(issue)
    assert issue.column > 0
    assert message in issue.message, str(issue)
    assert hint in (issue.hint or ""), str(issue)


def test_a_swap_no_step_pays_is_refused() -> None:
    text = DEAL.replace("      - pay_hedge: swap\n", "").replace("      - pay_hedge_termination: swap\n", "")
    issues = _issues(text)
    assert [i.path for i in issues] == ["hedges[0].name", "hedges[0].name"], "\n".join(map(str, issues))
    assert issues[0].line == _line(text, "  - name: swap")
    assert "no waterfall pays what the trust owes hedge 'swap'" in issues[0].message
    assert issues[0].hint == "add a step `- pay_hedge: swap` where the deal ranks its net payment"
    assert "termination amount" in issues[1].message
    assert issues[1].hint == "add a step `- pay_hedge_termination: swap` (usually junior)"


def test_a_bad_hedge_exits_2_with_the_location(tmp_path: Path) -> None:
    path = tmp_path / "deal.yaml"
    path.write_text(DEAL.replace("    counterparty: Bank", "    counterparty: Bnak"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "ipabs", "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    out = proc.stdout + proc.stderr
    line = _line(DEAL, "    counterparty: Bank")
    assert f"deal.yaml:{line}:19" in out, out
    assert "unknown obligor 'Bnak'" in out and "Traceback" not in out


# --------------------------------------------------------------------------- 6. the documented example

DOCS = ROOT / "docs" / "hedges.md"


def _documented() -> str:
    block = re.search(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block is not None
    return block.group(1)


def test_the_documented_example_runs_as_described() -> None:
    model = compile_text(_documented())
    base = api.run(model, "base")
    assert_conserved(base, 1e8)
    assert base.summary["loss"].sum() == 0.0
    assert not base.periods.filter(like=".active").to_numpy().any()  # no trigger in the base case
    # 3.2% fixed against 3.0% then 3.4% and 4.3%: the trust pays first, then receives
    assert col(base, "swap.paid")[:3].min() > 0.0 and col(base, "swap.received")[:3].sum() == 0.0
    assert col(base, "swap.received")[3:10].min() > 0.0
    assert_cents(col(base, "swap.notional"), col(base, "senior.balance_start"), "swap notional")
    # the cap pays 4.3% - 4% from the third quarter of 2027
    start = np.array([d.date() for d in base.periods["payment_date"]]) > np.datetime64("2027-07-15")
    assert np.all(col(base, "cap.received")[start] > 0.0) and col(base, "cap.received")[~start].sum() == 0.0
    stressed = api.run(model, "bank_defaults")
    assert_conserved(stressed, 1e8)
    for name in ("swap", "cap"):
        assert_cents(col(stressed, f"{name}.counterparty_defaulted"), [0] * 4 + [1] * 8, name)
        assert col(stressed, f"{name}.received")[4:].sum() == 0.0
        assert col(stressed, f"{name}.termination")[4] > 0.0  # owed to the trust, recovered at 0


TWIN_SCRIPT = """
import sys, numpy as np, numba
assert numba.config.DISABLE_JIT
import ipabs
from ipabs.api import run
deal = ipabs.load_deal(sys.argv[1])
out = {}
for name in deal.spec.scenarios:
    for field, arr in run(deal, name).tables._asdict().items():
        out[f"{name}/{field}"] = arr
np.savez(sys.argv[2], **out)
"""


def test_python_twin_matches_compiled_with_hedges(tmp_path: Path) -> None:
    """The documented example with a swap that terminates on a waterfall switch and a cap
    with a premium: the pure-Python kernel and the compiled one agree to rounding."""
    text = _documented().replace("    termination_recovery: 0\n", "    terminate_on_switch: true\n")
    text = text.replace("    upfront_premium: 80k\n", "    premium_rate: 0.2%\n")
    text = text.replace("    - pay_hedge: swap\n", "    - pay_hedge: swap\n    - pay_hedge: cap\n")
    text = text.replace("  bank_defaults:", "  late:\n    defaults: {cdr: 0.2}\n  bank_defaults:")
    text = text.replace(
        "risk:\n",
        "triggers:\n  - {name: eod, kind: cumulative_default_rate, threshold: 5%, "
        "effect: {waterfall: accelerated}}\nrisk:\n",
    )
    text += "  accelerated:\n" + "".join(
        f"    - {s}\n"
        for s in (
            "pay_fee: trustee",
            "pay_interest: [senior, mezz]",
            "pay_principal: {tranches: [senior, mezz]}",
            "pay_hedge: swap",
            "pay_hedge: cap",
            "pay_hedge_termination: swap",
            "pay_residual: sub",
        )
    )
    deal_path = tmp_path / "deal.yaml"
    deal_path.write_text(text, encoding="utf-8")
    target = tmp_path / "twin.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", TWIN_SCRIPT, str(deal_path), str(target)], check=True, env=env, cwd=ROOT
    )
    twin = np.load(target)
    model = compile_text(text)
    late = api.run(model, "late")
    assert col(late, "swap.terminated").max() == 1.0 and col(late, "swap.counterparty_defaulted").max() == 0.0
    for name in model.spec.scenarios:
        for field, arr in api.run(model, name).tables._asdict().items():
            np.testing.assert_allclose(
                arr, twin[f"{name}/{field}"], rtol=1e-12, atol=1e-7, err_msg=f"{name}/{field}"
            )


def test_swap_value_on_a_stepped_curve_matches_quantlib() -> None:
    """QuantLib bootstraps the curve from a one-year deposit and two FRAs quoted at the index's
    later levels (2%, 2.5%, 3.5%), projects the floating coupons from it and discounts the
    swap's remaining flows, today's included (the coupon fixed at 4% a year earlier), to the
    termination date."""
    ql = pytest.importorskip("QuantLib")
    text = DEAL.replace("legal_final_date: 2029-01-01", "legal_final_date: 2030-01-01").replace(
        "{from: 2027-01-01, rate: 2%}]",
        "{from: 2027-01-01, rate: 2%},\n    {from: 2028-01-01, rate: 2.5%}, {from: 2029-01-01, rate: 3.5%}]",
    )
    text = text.replace("defaults: {obligors: {Bank: 3}}", "defaults: {obligors: {Bank: 2}}")
    text = _swap_in(text, fixed_rate="3%", notional="1m")
    ours = col(run_text(text, "bank_defaults"), "swap.termination")

    today = ql.Date(1, 1, 2027)
    ql.Settings.instance().evaluationDate = today
    ql.Settings.instance().includeReferenceDateEvents = True
    try:
        dc, cal = ql.Actual365Fixed(), ql.NullCalendar()
        quote = ql.QuoteHandle
        helpers = [
            ql.DepositRateHelper(
                quote(ql.SimpleQuote(0.02)), ql.Period(1, ql.Years), 0, cal, ql.Unadjusted, False, dc
            ),
            ql.FraRateHelper(quote(ql.SimpleQuote(0.025)), 12, 24, 0, cal, ql.Unadjusted, False, dc),
            ql.FraRateHelper(quote(ql.SimpleQuote(0.035)), 24, 36, 0, cal, ql.Unadjusted, False, dc),
        ]
        curve = ql.YieldTermStructureHandle(ql.PiecewiseLogLinearDiscount(today, helpers, dc))
        index = ql.IborIndex(
            "LPR1Y", ql.Period(1, ql.Years), 0, ql.CNYCurrency(), cal, ql.Unadjusted, False, dc, curve
        )
        index.addFixing(ql.Date(1, 1, 2026), 0.04)
        schedule = ql.Schedule(
            ql.Date(1, 1, 2026),
            ql.Date(1, 1, 2030),
            ql.Period(1, ql.Years),
            cal,
            ql.Unadjusted,
            ql.Unadjusted,
            ql.DateGeneration.Forward,
            False,
        )
        # the trust pays fixed: a payer swap
        swap = ql.VanillaSwap(ql.VanillaSwap.Payer, 1e6, schedule, 0.03, dc, schedule, index, 0.0, dc)
        swap.setPricingEngine(ql.DiscountingSwapEngine(curve, True))
        npv = swap.NPV()
    finally:
        ql.Settings.instance().includeReferenceDateEvents = False
        ql.Settings.instance().evaluationDate = ql.Date()
    assert abs(npv) > 1.0
    assert_cents(ours, [0, npv, 0, 0, 0], "termination value")


def test_sources_and_uses_count_hedge_receipts_and_payments() -> None:
    """The cash chart's sources equal its uses with hedges: receipts are a source, net and
    termination payments a use (and a hedge is not a fee)."""
    from ipabs.report.charts import cash_sources_and_uses

    text = _documented().replace("    termination_recovery: 0\n", "    termination_recovery: 50%\n")
    for scenario in ("base", "bank_defaults"):
        res = api.run(compile_text(text), scenario)
        sources, uses = cash_sources_and_uses(res)
        assert_cents(sources.sum(axis=1).to_numpy(), uses.sum(axis=1).to_numpy(), scenario)
        assert_cents(uses["fees"].to_numpy(), col(res, "trustee.paid"), "fees are the trustee's")
        assert_cents(sources["deal.hedge_received"].to_numpy(), col(res, "deal.hedge_received"), "in")
        assert_cents(uses["deal.hedge_paid"].to_numpy(), col(res, "deal.hedge_paid"), "out")


def test_a_swap_settles_only_between_its_dates_and_a_forward_start_is_valued() -> None:
    """Start 2026-01-01, end 2028-01-01: the swap settles periods 2 and 3 only. When the bank
    defaults in period 1, the forward-starting swap ends at the value of those two periods on
    the period-1 notional (8m): 8m x 0.5% / 1.04 - 8m x 1.5% / (1.04 x 1.02), owed by the trust."""
    text = _swap(start_date="2026-01-01", end_date="2028-01-01")
    res = run_text(_first(text, "swap"))
    assert_cents(col(res, "swap.notional"), [0, 5.5e6, 3e6, 0], "notional")
    assert_cents(col(res, "swap.received"), [0, 27_500, 0, 0], "received")
    assert_cents(col(res, "swap.paid"), [0, 0, 45_000, 0], "paid")
    early = run_text(
        text.replace("defaults: {obligors: {Bank: 3}}", "defaults: {obligors: {Bank: 1}}"), "bank_defaults"
    )
    value = 8e6 * 0.005 / 1.04 - 8e6 * 0.015 / (1.04 * 1.02)
    assert value == pytest.approx(-74_660.63, abs=0.005)
    assert_cents(col(early, "swap.termination"), [value, 0, 0, 0], "forward value")
    assert_cents(col(early, "swap.termination_unpaid")[:1], [-value], "owed by the trust")
