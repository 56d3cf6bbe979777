"""Covenant tests: trailing DSCR, collections against a projection fixed at closing, excess
spread, loan-to-value against a valuation, forward-looking reserve targets, a reserve kept
funded after a waterfall switch, and test quantities read by formulas. Hand-computed to the
cent, the Monte Carlo against the deterministic run, and located errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs import api
from ipabs.deal.load import load_deal, parse_deal
from ipabs.engine.compile import compile_deal
from ipabs.errors import DealError
from ipabs.montecarlo import simulate

# Annual periods counted 30/360: every year fraction is exactly 1. Two bullet loans at 12% pay
# 7.2 and 4.8 of interest a year; B (40) defaults in period 2 with nothing recovered. The senior
# note (80 at 5%) is due down to 75, 70, 65, 60 and then to zero at legal final; the trustee
# is paid 1 a year.
DEAL = """
deal:
  name: covenants
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2030-01-01
  day_count: 30/360
pools:
  - name: p
    loans:
      - {obligor: A, balance: 60, rate: 12%, term_months: 60,
         payment_frequency: annual, day_count: 30/360}
      - {obligor: B, balance: 40, rate: 12%, term_months: 60,
         payment_frequency: annual, day_count: 30/360}
scenarios:
  b_defaults:
    defaults: {obligors: {B: 2}}
tranches:
  - {name: senior, balance: 80, coupon: 5%, amortisation_schedule: [75, 70, 65, 60, 0]}
  - {name: sub, balance: 20}
fees:
  - {name: trustee, annual_amount: 1}
ACCOUNTS
triggers:
TRIGGERS
waterfalls:
  normal:
    - pay_fee: trustee
    - pay_interest: senior
    - pay_principal: {tranches: [senior], limit: due}
STEPS
    - pay_residual: sub
"""


def _deal(triggers: str, accounts: str = "", steps: str = "") -> str:
    return DEAL.replace("TRIGGERS", triggers).replace("ACCOUNTS", accounts).replace("STEPS", steps)


def _trigger(r, name: str, field: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    return col(r, f"{name}.{field}")


# Hand-computed cash of the b_defaults scenario:
#   period 1: 12.0 collected: fee 1, interest 4.00 (80 x 5%), principal 5 due and paid
#   period 2: 7.2 collected: fee 1, interest 3.75 (75 x 5%), 5 due, 2.45 paid -> 72.55 left
#   period 3: 7.2 collected: fee 1, interest 3.6275 (72.55 x 5%), 7.55 due (to 65), 2.5725 paid
COLL = [12.0, 7.2, 7.2]
FEES = [1.0, 1.0, 1.0]
SERVICE = [4.0 + 5.0, 3.75 + 5.0, 72.55 * 0.05 + 7.55]


def test_a_trailing_dscr_sums_numerators_and_denominators_over_its_window() -> None:
    triggers = "\n".join(
        f"  - {{name: dscr{n}, kind: dscr, tranches: [senior], threshold: 0.9, periods: {n},"
        " effect: {sequential: true}}"
        for n in (1, 2, 3)
    )
    r = run_text(_deal(triggers), "b_defaults")
    num = [c - f for c, f in zip(COLL, FEES, strict=True)]
    one = [num[t] / SERVICE[t] for t in range(3)]
    two = [num[0] / SERVICE[0], (num[0] + num[1]) / (SERVICE[0] + SERVICE[1])]
    two.append((num[1] + num[2]) / (SERVICE[1] + SERVICE[2]))
    three = [two[0], two[1], sum(num) / sum(SERVICE)]
    np.testing.assert_allclose(_trigger(r, "dscr1", "value")[:3], one, rtol=1e-12)
    np.testing.assert_allclose(_trigger(r, "dscr2", "value")[:3], two, rtol=1e-12)
    np.testing.assert_allclose(_trigger(r, "dscr3", "value")[:3], three, rtol=1e-12)
    # 0.709 breaches a 0.9 covenant on its own; averaged with the good first year it is 0.969
    assert list(_trigger(r, "dscr1", "breached")[:3]) == [0, 1, 1]
    assert list(_trigger(r, "dscr2", "breached")[:3]) == [0, 0, 1]
    assert list(_trigger(r, "dscr3", "breached")[:3]) == [0, 0, 1]
    assert three[2] == pytest.approx(23.4 / 28.9275)


def test_excess_spread_is_annualised_over_the_start_pool_and_averaged_over_its_window() -> None:
    triggers = (
        "  - {name: es, kind: excess_spread, threshold: 3%, effect: {sequential: true}}\n"
        "  - {name: es3, kind: excess_spread, threshold: 3%, periods: 3, effect: {sequential: true}}"
    )
    r = run_text(_deal(triggers), "b_defaults")
    # (income - senior fees - note interest) / pool balance at the start of the period
    spread = [(12 - 1 - 4.0) / 100, (7.2 - 1 - 3.75) / 100, (7.2 - 1 - 3.6275) / 60]
    np.testing.assert_allclose(_trigger(r, "es", "value")[:3], spread, rtol=1e-12)
    avg = [spread[0], (spread[0] + spread[1]) / 2, sum(spread) / 3]
    np.testing.assert_allclose(_trigger(r, "es3", "value")[:3], avg, rtol=1e-12)
    assert list(_trigger(r, "es", "breached")[:3]) == [0, 1, 0]
    assert list(_trigger(r, "es3", "breached")[:3]) == [0, 0, 0]


def test_loan_to_value_compares_the_notes_with_a_valuation_schedule() -> None:
    triggers = (
        "  - {name: ltv, kind: loan_to_value, tranches: [senior], threshold: 90%,\n"
        "     valuation: {schedule: [100, 90, 80, 70, 60]}, effect: {sequential: true}}"
    )
    r = run_text(_deal(triggers), "b_defaults")
    # the senior balance at the start of each period against the appraiser's value
    np.testing.assert_allclose(_trigger(r, "ltv", "value")[:3], [0.8, 75 / 90, 72.55 / 80], rtol=1e-12)
    assert list(_trigger(r, "ltv", "breached")[:3]) == [0, 0, 1]


def test_a_formula_reads_a_trigger_value_and_the_test_quantities() -> None:
    triggers = (
        "  - {name: dscr2, kind: dscr, tranches: [senior], threshold: 0.5, periods: 2,"
        " effect: {sequential: true}}"
    )
    accounts = (
        "accounts:\n"
        "  - {name: r1, target: {share: 10, of: trigger(dscr2)}, release_excess: false}\n"
        "  - {name: r2, target: {share: 100, of: excess_spread}, release_excess: false}\n"
        "  - {name: r3, target: {share: 10, of: dscr(senior)}, release_excess: false}"
    )
    steps = "    - fund_account: r1\n    - fund_account: r2\n    - fund_account: r3"
    r = run_text(_deal(triggers, accounts, steps), "b_defaults")
    num = [c - f for c, f in zip(COLL, FEES, strict=True)]
    np.testing.assert_allclose(col(r, "r1.target")[:2], [10 * num[0] / SERVICE[0], 10 * 17.2 / 17.75])
    np.testing.assert_allclose(col(r, "r2.target")[:2], [100 * 0.07, 100 * 0.0245])
    np.testing.assert_allclose(col(r, "r3.target")[:2], [10 * num[0] / SERVICE[0], 10 * num[1] / SERVICE[1]])


def test_collections_against_a_projection_table_over_a_trailing_window() -> None:
    text = """
deal:
  name: royalty covenant
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2030-01-01
  day_count: 30/360
pools:
  - name: r
    royalties:
      - {obligor: L, kind: running, rate: 10%, sales: {initial: 1000}, payment_frequency: annual,
         valuation: 400}
scenarios:
  base: {}
  cut:
    royalty: {haircut: 20%}
tranches:
  - {name: senior, balance: 300, coupon: 5%}
triggers:
  - {name: sales, kind: collections_vs_projection, projection: [100, 110, 120, 130, 140],
     threshold: 85%, effect: {sequential: true}}
  - {name: sales2, kind: collections_vs_projection, projection: [100, 110, 120, 130, 140],
     periods: 2, threshold: 85%, effect: {sequential: true}}
  - {name: contractual, kind: collections_vs_projection, threshold: 85%, effect: {sequential: true}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
"""
    base = run_text(text)
    cut = run_text(text, "cut")
    # 10% of 1,000 of sales a year, accrued ACT/365: 2028 has 366 days
    royalty = [100, 100, 100, 100 * 366 / 365, 100]
    assert_cents(col(base, "pool.royalty"), royalty, "royalties")
    projection = [100, 110, 120, 130, 140]
    np.testing.assert_allclose(
        _trigger(base, "sales", "value"),
        [r / p for r, p in zip(royalty, projection, strict=True)],
        rtol=1e-12,
    )
    trailing = [1.0] + [
        (royalty[t - 1] + royalty[t]) / (projection[t - 1] + projection[t]) for t in range(1, 5)
    ]
    np.testing.assert_allclose(_trigger(base, "sales2", "value"), trailing, rtol=1e-12)
    assert list(_trigger(base, "sales", "breached")) == [0, 0, 1, 1, 1]
    assert list(_trigger(base, "sales2", "breached")) == [0, 0, 0, 1, 1]
    # the contractual projection is the stream's own sales process: the haircut shows as 80%
    np.testing.assert_allclose(_trigger(base, "contractual", "value"), [1] * 5, rtol=1e-12)
    np.testing.assert_allclose(_trigger(cut, "contractual", "value"), [0.8] * 5, rtol=1e-12)
    assert list(_trigger(cut, "contractual", "breached")) == [1] * 5
    assert_conserved(cut, 400)


QUARTERLY = """
deal:
  name: forward reserve
  closing_date: 2025-01-15
  first_payment_date: 2025-04-15
  payment_frequency: quarterly
  legal_final_date: 2026-07-15
pools:
  - name: p
    loans:
      - {obligor: A, balance: 100, rate: 8%, term_months: 18, amortisation: interest_only_then_bullet}
tranches:
  - {name: senior, balance: 90, coupon: [{from: 2025-01-15, rate: 4%}, {from: 2025-10-15, rate: 6%}]}
  - {name: sub, balance: 10}
fees:
  - {name: trustee, annual_amount: 2}
  - {name: servicer, period_amount: 0.3}
  - {name: junior_fee, annual_amount: 5, rank: junior}
accounts:
  - {name: interest_reserve, target: {of: "next_interest(senior, 12)"}}
  - {name: fee_reserve, target: {of: next_fees(6)}}
waterfalls:
  normal:
    - pay_fee: [trustee, servicer]
    - pay_interest: senior
    - fund_account: interest_reserve
    - fund_account: fee_reserve
    - pay_fee: junior_fee
    - pay_principal: senior
    - pay_residual: sub
"""


def test_a_reserve_target_of_the_next_twelve_months_interest_and_six_months_fees() -> None:
    r = run_text(QUARTERLY)
    # payment dates 2025-04-15, 07-15, 10-15, 2026-01-15, 04-15, 07-15 (ACT/365); the coupon
    # steps from 4% to 6% for the interest periods starting on or after 2025-10-15
    days = [90, 91, 92, 92, 90, 91]
    yf = [d / 365 for d in days]
    rate = [0.04, 0.04, 0.04, 0.06, 0.06, 0.06]
    # nothing amortises before legal final: the senior owes 90 throughout
    target = [sum(90 * rate[u] * yf[u] for u in range(t + 1, min(t + 5, 6))) for t in range(5)]
    assert_cents(col(r, "interest_reserve.target")[:5], target, "next 12 months' interest")
    fees = [sum(2 * yf[u] + 0.3 for u in range(t + 1, min(t + 3, 6))) for t in range(5)]
    assert_cents(col(r, "fee_reserve.target")[:5], fees, "next 6 months' senior fees")
    assert col(r, "interest_reserve.target")[5] == 0.0  # legal final: released
    assert_conserved(r, 100)


SWITCH = """
deal:
  name: keep funded
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2029-01-01
  day_count: 30/360
pools:
  - name: p
    loans:
      - {obligor: A, balance: 60, rate: 10%, term_months: 48,
         payment_frequency: annual, day_count: 30/360}
      - {obligor: B, balance: 40, rate: 10%, term_months: 48,
         payment_frequency: annual, day_count: 30/360}
scenarios:
  b_defaults:
    defaults: {obligors: {B: 2}}
tranches:
  - {name: senior, balance: 90, coupon: 5%}
  - {name: sub, balance: 10}
accounts:
  - {name: reserve, initial: 3, target: 3, AFTER}
triggers:
  - {name: cdr, kind: cumulative_default_rate, threshold: 10%, effect: {waterfall: accelerated}}
waterfalls:
  normal:
    - pay_interest: senior
    - fund_account: reserve
    - pay_residual: sub
  accelerated:
    - pay_interest: senior
    - fund_account: reserve
    - pay_principal: senior
    - pay_residual: sub
"""


@pytest.mark.parametrize("after", ["release", "keep_funded"])
def test_a_reserve_kept_funded_after_the_switch_stays_at_its_target(after: str) -> None:
    r = run_text(SWITCH.replace("AFTER", f"after_switch: {after}"), "b_defaults")
    assert list(r.periods["deal.waterfall"]) == ["normal"] + ["accelerated"] * 3
    end = col(r, "reserve.balance_end")
    if after == "release":
        # period 2: the 3 joins the accelerated waterfall's cash and pays the senior down
        assert_cents(end, [3, 0, 0, 0], "released")
        assert_cents(col(r, "senior.principal_paid")[1:2], [6 - 4.5 + 3], "principal")
    else:
        assert_cents(end, [3, 3, 3, 0], "kept")  # released at legal final only
        assert_cents(col(r, "senior.principal_paid")[1:2], [6 - 4.5], "principal")
    assert_conserved(r, 100)


def test_zero_pd_monte_carlo_paths_equal_the_deterministic_run_with_covenants() -> None:
    triggers = (
        "  - {name: dscr2, kind: dscr, tranches: [senior], threshold: 1.5, periods: 2,"
        " effect: {waterfall: accelerated}}\n"
        "  - {name: es, kind: excess_spread, threshold: 6.5%, periods: 2, effect: {sequential: true}}\n"
        "  - {name: ltv, kind: loan_to_value, threshold: 80%, valuation: {share: 1.1, of: pool_balance},"
        " effect: {sequential: true}}\n"
        "  - {name: coll, kind: collections_vs_projection, of: collections, threshold: 99%, periods: 2,"
        " effect: {sequential: true}}"
    )
    accounts = (
        "accounts:\n  - {name: r, target: {of: 'next_interest(senior, 24)'}, after_switch: keep_funded}"
    )
    text = _deal(triggers, accounts, "    - fund_account: r")
    text = text.replace(
        "pay_residual: sub\n",
        "pay_residual: sub\n  accelerated:\n    - pay_interest: senior\n"
        "    - fund_account: r\n    - pay_principal: senior\n    - pay_residual: sub\n",
        1,
    )
    text = text.replace("{obligor: A,", "{obligor: A, pd: 0,").replace("{obligor: B,", "{obligor: B, pd: 0,")
    text = text.replace("defaults: {obligors: {B: 2}}", "prepayment: {cpr: 0}")
    text = text.replace("waterfalls:", "risk:\n  factors: {global: 0.3}\nwaterfalls:", 1)
    model = compile_text(text)
    det = run_text(text)
    assert (det.periods["deal.waterfall"] == "accelerated").any()  # the trailing DSCR switches it
    res = simulate(model, paths=4, seed=5, keep=[0, 3])
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (
            "{name: t, kind: overcollateralisation, tranches: [senior], periods: 3, threshold: 1,"
            " effect: {sequential: true}}",
            "applies to dscr, collections_vs_projection, excess_spread",
        ),
        ("{name: t, kind: loan_to_value, threshold: 1, effect: {sequential: true}}", "needs `valuation`"),
        (
            "{name: t, kind: dscr, tranches: [senior], threshold: 1, projection: [1],"
            " effect: {sequential: true}}",
            "belong to collections_vs_projection",
        ),
        (
            "{name: t, kind: collections_vs_projection, projection: [1, 2], threshold: 1,"
            " effect: {sequential: true}}",
            "the deal has 5 payment dates",
        ),
        (
            "{name: t, kind: loan_to_value, threshold: 1, valuation: {of: trigger(nope)},"
            " effect: {sequential: true}}",
            "unknown trigger 'nope'",
        ),
    ],
)
def test_bad_covenants_are_located_errors(trigger: str, message: str) -> None:
    with pytest.raises(DealError) as err:
        parse_deal(_deal(f"  - {trigger}"), "deal.yaml")
    text = str(err.value)
    assert message in text, text
    assert "deal.yaml:" in text and "triggers" in text


@pytest.mark.parametrize(
    ("fee", "message"),
    [
        ("{name: f, period_amount: {share: 1%, of: excess_spread}}", "fees fall due before the triggers"),
        ("{name: f, rate: 1%, base: 'dscr(senior)'}", "fees fall due before the triggers"),
        ("{name: f, rate: 1%, base: next_fees(3)}", "sums fees and interest of future dates"),
        ("{name: f, period_amount: {of: 'next_interest(senior, 0)'}}", "whole number from 1 to"),
    ],
)
def test_fees_cannot_read_test_quantities(fee: str, message: str) -> None:
    text = _deal("  - {name: t, kind: dscr, tranches: [senior], threshold: 1, effect: {sequential: true}}")
    text = text.replace(
        "  - {name: trustee, annual_amount: 1}", f"  - {{name: trustee, annual_amount: 1}}\n  - {fee}"
    )
    with pytest.raises(DealError) as err:
        parse_deal(text, "deal.yaml")
    assert message in str(err.value), str(err.value)
    assert "deal.yaml:" in str(err.value)


def test_the_documented_covenant_example_runs_as_described() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "covenants.md").read_text(encoding="utf-8")
    example = re.findall(r"```yaml\n(.*?)```", text, re.S)[-1]
    base = run_text(example)
    cut = run_text(example, "cut")
    # as projected, royalties fall behind the rising table only from period 4 on two-year sums
    assert _trigger(base, "sales", "breached").tolist() == [0, 0, 0, 1, 1]
    # a 20% haircut breaches the 85% covenant at once: every note is then due
    assert _trigger(cut, "sales", "value")[0] == pytest.approx(0.8)
    assert (cut.periods["deal.waterfall"] == "amortise").all()
    assert cut.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=1e-9)
    assert_conserved(cut, 400)


def test_the_shipped_royalty_deal_breaches_its_covenants_as_its_comments_say() -> None:
    path = Path(__file__).resolve().parents[1] / "scenarios" / "royalty_sales_covenant.yaml"
    model = compile_deal(load_deal(path))
    first = {}
    for name in model.spec.scenarios:
        p = api.run(model, name).periods
        first[name] = {
            t: int(np.argmax(p[f"{t}.active"].to_numpy() > 0)) + 1 if (p[f"{t}.active"] > 0).any() else None
            for t in ("sales_covenant", "trailing_dscr", "loan_to_value")
        }
    assert first["base"] == {"sales_covenant": None, "trailing_dscr": None, "loan_to_value": None}
    assert first["destocking_2027"] == {"sales_covenant": 9, "trailing_dscr": None, "loan_to_value": None}
    assert first["slow_growth"]["trailing_dscr"] is None
    assert first["licensee_default"]["sales_covenant"] == 7
    assert first["licensee_default"]["trailing_dscr"] == 15
