"""Note options computed by hand: step-up coupon schedules, the issuer call, investor puts with
a coupon reset and a liquidity supporter, and planned amortisation classes.

Annual deals run 2025-01-01 -> 2026-01-01 -> 2027-01-01 -> 2028-01-01 (365 days each, ACT/365
year fraction exactly 1). Expected numbers are plain arithmetic written out in comments; the
planned amortisation schedule is recomputed in numpy from the loans' contractual amortisation
and the SIFMA PSA/CPR formulas, without ipabs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.engine.layout import allocate_tables
from ipabs.errors import DealError
from ipabs.montecarlo import simulate
from ipabs.risk.model import compile_risk
from ipabs.risk.montecarlo_numba_fns import O_PUT_UNFUNDED, allocate_scratch, simulate_path

ANNUAL_3Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2028-01-01
"""


# --------------------------------------------------------------------------- 1. coupon schedules

COUPON_DEAL = (
    ANNUAL_3Y.format(name="step-up")
    + """
indices:
  LPR1Y: [{from: 2025-01-01, rate: 3.1%}, {from: 2026-01-01, rate: 2.9%}]
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 6%, term_months: 36, payment_frequency: annual}
tranches:
  - name: senior
    balance: 8m
    coupon:
      - {from: 2024-12-01, rate: 3%}
      - {from: 2025-06-30, rate: {index: LPR1Y, spread: 1%}}
      - {from: 2026-12-31, rate: 5%}
  - {name: sub, balance: 2m}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: senior, limit: due}
    - pay_residual: sub
"""
)


def test_coupon_schedule_pays_the_coupon_in_force_on_the_first_day_of_each_period() -> None:
    res = run_text(COUPON_DEAL)
    # period 1 starts 2025-01-01: 3% (the 2025-06-30 step starts mid-period, so waits):
    #   8m x 3% = 240,000
    # period 2 starts 2026-01-01: LPR1Y 2.9% on that day + 1% = 3.9%: 8m x 3.9% = 312,000
    # period 3 starts 2027-01-01, after the 2026-12-31 step: 5%: 8m x 5% = 400,000
    assert_cents(col(res, "senior.interest_due"), [240_000, 312_000, 400_000], "senior interest due")
    assert_cents(col(res, "senior.interest_paid"), [240_000, 312_000, 400_000], "senior interest paid")
    assert_cents(col(res, "senior.principal_paid"), [0, 0, 8_000_000], "senior principal")
    # the summary's coupon is the first period's
    assert res.summary.loc["senior", "coupon"] == pytest.approx(0.03)
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 2. issuer call

CALL_DEAL = (
    ANNUAL_3Y.format(name="issuer call")
    + """
indices:
  REFI: [{from: 2025-01-01, rate: 6%}, {from: 2026-06-30, rate: 2%}]
pools:
  - name: park
    loans:
      - {obligor: A, balance: 9m, rate: 6%, term_months: 36, payment_frequency: annual,
         amortisation: equal_principal}
tranches:
  - {name: senior, balance: 7.2m, coupon: 4%}
  - {name: sub, balance: 1.8m}
issuer_call: {from: 2026-01-01, price: 98%, exercise: {pool_factor_below: 0.5}}
scenarios:
  factor: {}
  never: {issuer_call: never}
  always: {issuer_call: always}
  cheap_refinancing:
    issuer_call: {refinancing_below_coupon: {index: REFI, spread: 0.5%}}
  dear_refinancing:
    issuer_call: {refinancing_below_coupon: {index: REFI, spread: 1%}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
"""
)
# The loan pays 3m principal a year and 6% interest on 9m, 6m, 3m: 540k, 360k, 180k.
# Period 1: senior interest 7.2m x 4% = 288k, principal 3m -> 4.2m; sub gets 540k - 288k =
# 252k of principal -> 1.548m. The pool factor after it is 6m / 9m = 0.667.

CALLED_IN_PERIOD_2 = {
    # Period 2: the pool falls to 3m = 0.333 of 9m < 0.5: sold at 98% x 3m = 2.94m. Cash
    # 360k + 3m + 2.94m = 6.3m: senior interest 4.2m x 4% = 168k, principal 4.2m (all of it:
    # the call makes every balance due, and the call proceeds are principal collections);
    # sub: 6.3m - 168k - 4.2m = 1.932m, of which 1.548m principal and 384k residual.
    "senior.interest_paid": [288_000, 168_000, 0],
    "senior.principal_paid": [3_000_000, 4_200_000, 0],
    "sub.principal_paid": [252_000, 1_548_000, 0],
    "sub.residual_paid": [0, 384_000, 0],
    "deal.call_proceeds": [0, 2_940_000, 0],
    "deal.called": [0, 1, 1],
    "deal.call_kind": [0, 2, 0],
}
NOT_CALLED = {
    # Period 2: senior 168k interest, 3m principal -> 1.2m; sub 360k - 168k = 192k principal.
    # Period 3: senior 1.2m x 4% = 48k interest, 1.2m principal; sub gets 180k + 3m - 48k -
    # 1.2m = 1.932m: its 1.356m balance and 576k residual.
    "senior.interest_paid": [288_000, 168_000, 48_000],
    "senior.principal_paid": [3_000_000, 3_000_000, 1_200_000],
    "sub.principal_paid": [252_000, 192_000, 1_356_000],
    "sub.residual_paid": [0, 0, 576_000],
    "deal.call_proceeds": [0, 0, 0],
    "deal.called": [0, 0, 0],
    "deal.call_kind": [0, 0, 0],
}
CALLED_IN_PERIOD_1 = {
    # Period 1: sold at 98% x 6m = 5.88m; cash 540k + 3m + 5.88m = 9.42m: senior 288k
    # interest and its whole 7.2m; sub 9.42m - 288k - 7.2m = 1.932m: 1.8m principal, 132k residual.
    "senior.interest_paid": [288_000, 0, 0],
    "senior.principal_paid": [7_200_000, 0, 0],
    "sub.principal_paid": [1_800_000, 0, 0],
    "sub.residual_paid": [132_000, 0, 0],
    "deal.call_proceeds": [5_880_000, 0, 0],
    "deal.called": [1, 1, 1],
    "deal.call_kind": [2, 0, 0],
}


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("factor", CALLED_IN_PERIOD_2),
        ("never", NOT_CALLED),
        ("always", CALLED_IN_PERIOD_1),
        # on 2026-01-01 refinancing costs 6% + 0.5% = 6.5%, above the notes' 3.2% average
        # coupon (7.2m at 4% and 1.8m at 0%); on 2027-01-01 2% + 0.5% = 2.5% is below their
        # 168k / 5.748m = 2.923%: called in period 2
        ("cheap_refinancing", CALLED_IN_PERIOD_2),
        # 2% + 1% = 3% stays above 2.923%: never called
        ("dear_refinancing", NOT_CALLED),
    ],
)
def test_issuer_call_by_exercise_policy(scenario: str, expected: dict[str, list[float]]) -> None:
    res = run_text(CALL_DEAL, scenario)
    for column, values in expected.items():
        assert_cents(col(res, column), values, f"{scenario}: {column}")
    assert_conserved(res, 1e7)


def test_issuer_call_makes_every_balance_due() -> None:
    res = run_text(CALL_DEAL, "always")
    # without a call nothing is due before legal final (no schedule, no expected maturity)
    assert_cents(col(run_text(CALL_DEAL, "never"), "senior.principal_due"), [0, 0, 1_200_000], "never")
    assert_cents(col(res, "senior.principal_due"), [7_200_000, 0, 0], "always")


def test_issuer_call_is_the_deal_policy_in_a_scenario_that_names_none() -> None:
    text = CALL_DEAL.replace("  factor: {}\n", "  factor: {description: the deal's own policy}\n")
    assert_cents(col(run_text(text, "factor"), "deal.call_kind"), [0, 2, 0], "deal policy")


# --------------------------------------------------------------------------- 3. investor puts

PUT_DEAL = (
    ANNUAL_3Y.format(name="3+N put")
    + """
obligors:
  - {name: Supporter, pd: 2%}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 6%, term_months: 36, payment_frequency: annual}
tranches:
  - name: senior
    balance: 8m
    coupon: 3%
    put: {date: 2026-01-01, reset_coupon: 5%, share: 60%, supporter: backstop}
  - {name: sub, balance: 2m}
support:
  - {name: backstop, kind: liquidity_support, provider: Supporter, limit: 3m}
triggers:
  - {name: put_eod, kind: put_unfunded, curable: false, effect: {waterfall: accelerated}}
scenarios:
  base: {}
  small_put:
    puts: {senior: {share: 25%, reset_coupon: 4%}}
  supporter_fails:
    defaults: {obligors: {Supporter: 1}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: senior, limit: due}
    - pay_residual: sub
  accelerated:
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
"""
)


def test_put_beyond_the_supporters_limit_is_an_event_of_default() -> None:
    res = run_text(PUT_DEAL)
    # 2026-01-01: interest 8m x 3% = 240k; then 60% of the 8m balance is put: 4.8m. The
    # supporter buys up to its 3m limit; 1.8m is unfunded.
    assert_cents(col(res, "senior.put_exercised"), [4_800_000, 0, 0], "put")
    assert_cents(col(res, "senior.put_unfunded"), [1_800_000, 0, 0], "unfunded")
    assert_cents(col(res, "backstop.put_bought"), [3_000_000, 0, 0], "bought")
    # the event of default accelerates from the next date: period 2 interest at the reset
    # coupon 8m x 5% = 400k, and the other 200k of the 600k collected repays principal;
    # period 3 interest 7.8m x 5% = 390k and the 7.8m balance.
    assert list(res.periods["deal.waterfall"]) == ["normal", "accelerated", "accelerated"]
    assert_cents(col(res, "put_eod.value"), [0, 1_800_000, 1_800_000], "trigger value")
    assert_cents(col(res, "senior.interest_paid"), [240_000, 400_000, 390_000], "interest")
    assert_cents(col(res, "senior.principal_paid"), [0, 200_000, 7_800_000], "principal")
    # the supporter holds 3m of the 8m: 3m x 7.8m / 8m = 2.925m after period 2
    assert_cents(col(res, "backstop.notes_held"), [3_000_000, 2_925_000, 0], "held")
    assert_conserved(res, 1e7)


def test_put_within_the_limit_changes_only_the_holders() -> None:
    res = run_text(PUT_DEAL, "small_put")
    # the scenario's 25% puts 2m, all bought; its reset coupon 4%: 8m x 4% = 320k
    assert_cents(col(res, "senior.put_exercised"), [2_000_000, 0, 0], "put")
    assert_cents(col(res, "senior.put_unfunded"), [0, 0, 0], "unfunded")
    assert_cents(col(res, "backstop.notes_held"), [2_000_000, 2_000_000, 0], "held")
    assert_cents(col(res, "senior.interest_paid"), [240_000, 320_000, 320_000], "interest")
    assert set(res.periods["deal.waterfall"]) == {"normal"}
    # the trust's cash flows are those of the same notes without a put
    plain = run_text(
        PUT_DEAL.replace(
            "coupon: 3%\n", "coupon: [{from: 2025-01-01, rate: 3%}, {from: 2026-01-01, rate: 4%}]\n"
        )
        .replace("    put: {date: 2026-01-01, reset_coupon: 5%, share: 60%, supporter: backstop}\n", "")
        .replace(
            "  - {name: put_eod, kind: put_unfunded, curable: false, effect: {waterfall: accelerated}}\n", ""
        )
        .replace("triggers:\n", "")
        .replace("    puts: {senior: {share: 25%, reset_coupon: 4%}}\n", "    description: none\n"),
        "small_put",
    )
    for field in ("interest_paid", "principal_paid", "residual_paid", "balance_end"):
        for tranche in ("senior", "sub"):
            name = f"{tranche}.{field}"
            assert_cents(col(res, name), col(plain, name), name)


def test_a_defaulted_supporter_funds_nothing() -> None:
    res = run_text(PUT_DEAL, "supporter_fails")
    assert_cents(col(res, "senior.put_unfunded"), [4_800_000, 0, 0], "unfunded")
    assert_cents(col(res, "backstop.put_bought"), [0, 0, 0], "bought")
    assert list(res.periods["deal.waterfall"]) == ["normal", "accelerated", "accelerated"]


# --------------------------------------------------------------------------- 4. planned amortisation

PAC_DEAL = """
deal:
  name: pac
  closing_date: 2025-01-01
  first_payment_date: 2025-04-01
  payment_frequency: quarterly
  legal_final_date: 2027-01-01
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 5%, term_months: 24, amortisation: equal_principal}
      - {obligor: B, balance: 4m, rate: 5%, term_months: 12, amortisation: equal_principal}
tranches:
  - {name: pac, balance: 6m, coupon: 4.5%, planned_amortisation: {band: {low: {psa: 300}, high: {cpr: 40%}}}}
  - {name: companion, balance: 3m, coupon: 5%}
  - {name: equity, balance: 1m}
scenarios:
  at_300_psa: {prepayment: {psa: 300}}
  at_600_psa: {prepayment: {psa: 600}}
  at_20_cpr: {prepayment: {cpr: 20%}}
  at_40_cpr: {prepayment: {cpr: 40%}}
  no_prepayment: {}
waterfalls:
  normal:
    - pay_interest: [pac, companion]
    - pay_principal: {tranches: pac, limit: due}
    - pay_principal: companion
    - pay_principal: pac
    - pay_residual: equity
"""


def _pool_principal_by_hand(quarter_smm: np.ndarray) -> np.ndarray:
    """Pool principal per quarter with no defaults: scheduled principal and SMM x the
    scheduled balance after amortisation, on the share of the pool still performing."""
    t = np.arange(1, 9)
    sched_a = 6e6 * (1 - t / 8)  # 8 equal quarterly payments
    sched_b = np.maximum(4e6 * (1 - t / 4), 0.0)  # 4 equal quarterly payments
    balance = sched_a + sched_b
    principal = -np.diff(np.concatenate(([10e6], balance)))
    performing = np.concatenate(([1.0], np.cumprod(1 - quarter_smm)[:-1]))
    return performing * (principal + quarter_smm * balance)


def _psa_quarter_smm(psa: float) -> np.ndarray:
    month = np.arange(1, 25)
    cpr = psa / 100 * 0.002 * np.minimum(month, 30)  # PSA: 0.2% a month to 6% at month 30
    smm = 1 - (1 - cpr) ** (1 / 12)
    return 1 - np.prod((1 - smm).reshape(8, 3), axis=1)


def _pac_schedule_by_hand() -> np.ndarray:
    low = _pool_principal_by_hand(_psa_quarter_smm(300))
    high = _pool_principal_by_hand(np.full(8, 1 - (1 - 0.40) ** 0.25))
    return np.maximum(6e6 - np.cumsum(np.minimum(low, high)), 0.0)


def test_planned_amortisation_schedule_is_the_smaller_band_principal() -> None:
    model = compile_text(PAC_DEAL)
    expected = _pac_schedule_by_hand()
    assert_cents(model.cd.tr_schedule[0], expected, "PAC schedule")
    # the band crosses over: the fast speed pays more early and less late
    low = _pool_principal_by_hand(_psa_quarter_smm(300))
    high = _pool_principal_by_hand(np.full(8, 1 - 0.6**0.25))
    assert (high > low).any() and (high < low).any(), "this pool should cross over inside the band"


# 600% PSA (1.2% CPR in month 1 to 28.8% in month 24) and 20% CPR lie between 300% PSA and
# 40% CPR in every month
@pytest.mark.parametrize("scenario", ["at_300_psa", "at_600_psa", "at_20_cpr", "at_40_cpr"])
def test_planned_amortisation_schedule_is_met_at_any_speed_inside_the_band(scenario: str) -> None:
    res = api.run(compile_text(PAC_DEAL), scenario)
    assert_cents(col(res, "pac.balance_end"), _pac_schedule_by_hand(), scenario)
    assert_conserved(res, 1e7)


def test_planned_amortisation_falls_behind_below_the_band() -> None:
    res = api.run(compile_text(PAC_DEAL), "no_prepayment")
    behind = col(res, "pac.balance_end") - _pac_schedule_by_hand()
    assert behind.max() > 1.0, "with no prepayments the pool cannot keep the schedule"


# --------------------------------------------------------------------------- validation


def _issues(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    return [(i.line, i.path, i.message) for i in info.value.issues]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


MISTAKES = [
    (
        COUPON_DEAL,
        "{from: 2024-12-01, rate: 3%}",
        "{from: 2025-02-01, rate: 3%}",
        "tranches[0].coupon[0].from",
        "after the closing date",
    ),
    (
        COUPON_DEAL,
        "{from: 2026-12-31, rate: 5%}",
        "{from: 2025-05-01, rate: 5%}",
        "tranches[0].coupon[2].from",
        "must increase",
    ),
    (
        COUPON_DEAL,
        "{index: LPR1Y, spread: 1%}",
        "{index: LPR5Y, spread: 1%}",
        "tranches[0].coupon[1].rate.index",
        "unknown index 'LPR5Y'",
    ),
    (
        COUPON_DEAL,
        "{from: 2026-12-31, rate: 5%}",
        "{from: 2026-12-31, rate: -1%}",
        "tranches[0].coupon[2].rate",
        "must not be negative",
    ),
    (
        PUT_DEAL,
        "put: {date: 2026-01-01,",
        "put: {date: 2026-02-01,",
        "tranches[0].put.date",
        "is not a payment date",
    ),
    (
        PUT_DEAL,
        "supporter: backstop}",
        "supporter: backstp}",
        "tranches[0].put.supporter",
        "unknown support 'backstp'",
    ),
    (
        PUT_DEAL,
        "kind: liquidity_support, provider: Supporter, limit: 3m}",
        "kind: deficiency_payment, provider: Supporter}",
        "tranches[0].put.supporter",
        "must be of kind liquidity_support|supporter: backstop}",
    ),
    (
        PUT_DEAL,
        "puts: {senior: {share:",
        "puts: {sub: {share:",
        "scenarios.small_put.puts.sub",
        "tranche 'sub' has no put",
    ),
    (
        PUT_DEAL,
        "kind: put_unfunded,",
        "kind: put_unfunded, tranches: [sub],",
        "triggers[0].tranches[0]",
        "tranche 'sub' has no put",
    ),
    (
        CALL_DEAL,
        "issuer_call: {from: 2026-01-01,",
        "issuer_call: {from: 2029-01-01,",
        "issuer_call.from",
        "on or before legal final",
    ),
    (
        CALL_DEAL,
        "{index: REFI, spread: 0.5%}",
        "{index: REFY, spread: 0.5%}",
        "scenarios.cheap_refinancing.issuer_call.refinancing_below_coupon.index",
        "unknown index 'REFY'",
    ),
    (
        CALL_DEAL,
        "  never: {issuer_call: never}",
        "  never: {issuer_call: sometimes}",
        "scenarios.never.issuer_call",
        "expected",
    ),
    (
        PAC_DEAL,
        "planned_amortisation: {band: {low: {psa: 300}, high: {cpr: 40%}}}",
        "planned_amortisation: {band: {low: {psa: 300}, high: {cpr: 40%}}}, amortisation_schedule: [4m]",
        "tranches[0].planned_amortisation",
        "cannot be combined with amortisation_schedule",
    ),
    (
        PAC_DEAL,
        "high: {cpr: 40%}",
        "high: {cpr: 40%, psa: 100}",
        "tranches[0].planned_amortisation.band.high",
        "give one of cpr, cpr_vector or psa",
    ),
]


@pytest.mark.parametrize(
    ("text", "old", "new", "path", "message"), MISTAKES, ids=[f"{i}-{m[3]}" for i, m in enumerate(MISTAKES)]
)
def test_note_option_mistakes_are_located(text: str, old: str, new: str, path: str, message: str) -> None:
    assert text.count(old) == 1, old
    bad = text.replace(old, new)
    issues = _issues(bad)
    assert len(issues) == 1, issues
    line, where, msg = issues[0]
    assert where == path, issues
    message, _, at = message.partition("|")  # at: text on the line of the issue, if not `new`
    assert message in msg, issues
    assert line == _line_of(bad, at or new.strip()[:30]), issues


def test_a_liquidity_support_is_not_drawn() -> None:
    bad = PUT_DEAL.replace(
        "    - pay_principal: {tranches: senior, limit: due}\n",
        "    - draw: {from: backstop, covers: [senior.interest]}\n"
        "    - pay_principal: {tranches: senior, limit: due}\n",
    )
    issues = _issues(bad)
    assert [(p, "liquidity_support" in m) for _, p, m in issues] == [("waterfalls.normal[1].draw.from", True)]


# --------------------------------------------------------------------------- Monte Carlo

OPTIONS_DEAL = """
deal:
  name: every note option
  closing_date: 2025-01-01
  first_payment_date: 2025-04-01
  payment_frequency: quarterly
  legal_final_date: 2028-01-01
indices:
  LPR1Y: [{from: 2025-01-01, rate: 3.1%}, {from: 2026-01-01, rate: 2.6%}]
obligors:
  - {name: Supporter}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 5%, term_months: 36, amortisation: equal_principal}
      - {obligor: B, balance: 4m, rate: 5.5%, term_months: 24, amortisation: annuity}
      - {obligor: C, balance: 3m, rate: 4.5%, term_months: 30, amortisation: equal_principal}
tranches:
  - {name: pac, balance: 6m, coupon: 3%, planned_amortisation: {band: {low: {psa: 100}, high: {cpr: 30%}}}}
  - name: companion
    balance: 4m
    coupon: [{from: 2025-01-01, rate: 3.5%}, {from: 2025-06-30, rate: {index: LPR1Y, spread: 1.5%}}]
    put: {date: 2026-01-01, reset_coupon: 4.8%, share: 80%, supporter: backstop}
  - {name: equity, balance: 3m}
support:
  - {name: backstop, kind: liquidity_support, provider: Supporter, limit: 2m}
triggers:
  - {name: put_eod, kind: put_unfunded, curable: false, effect: {waterfall: accelerated}}
issuer_call: {from: 2026-07-01, price: 99%, exercise: {pool_factor_below: 0.25}}
scenarios:
  base: {prepayment: {cpr: 10%}}
risk:
  correlation: 0.3
  default_pd: {pd}
  prepayment: {cpr: 10%}
  recovery: {model: constant, rate: 0.3, lag_months: 3}
waterfalls:
  normal:
    - pay_interest: [pac, companion]
    - pay_principal: {tranches: pac, limit: due}
    - pay_principal: companion
    - pay_principal: pac
    - pay_residual: equity
  accelerated:
    - pay_interest: [pac, companion]
    - pay_principal: [pac, companion]
    - pay_residual: equity
"""


def _numeric_periods_equal(actual: Any, expected: Any, what: str) -> None:
    assert list(actual.columns) == list(expected.columns), what
    for c in expected.columns:
        e = expected[c]
        if e.dtype.kind in "fiu":
            assert_cents(actual[c].to_numpy(np.float64), e.to_numpy(np.float64), f"{what}: {c}")
        else:
            assert list(actual[c]) == list(e), f"{what}: {c}"


def test_zero_pd_paths_with_every_note_option_equal_the_deterministic_run() -> None:
    model = compile_text(OPTIONS_DEAL.replace("{pd}", "0"))
    det = api.run(model, "base")
    # every option is at work in the deterministic run
    assert col(det, "companion.put_unfunded")[3] > 0, "the put should be partly unfunded"
    assert (det.periods["deal.waterfall"] == "accelerated").any()
    assert np.isfinite(model.cd.tr_schedule[0]).all()
    assert len(set(model.cd.tr_rate[1].round(6))) == 3, "step-up then reset coupons"
    result = simulate(model, paths=8, seed=5, threads=1, keep=[0, 7])
    for i, kept in result.kept.items():
        _numeric_periods_equal(kept.periods, det.periods, f"path {i}")
    tr = result.tranche_outcomes
    assert np.all(tr[:, 1, O_PUT_UNFUNDED] == col(det, "companion.put_unfunded").sum())


def test_zero_pd_issuer_call_path_equals_the_deterministic_run() -> None:
    # no put trouble (a large limit): the pool amortises to the call
    text = OPTIONS_DEAL.replace("{pd}", "0").replace("limit: 2m", "limit: 10m")
    model = compile_text(text)
    det = api.run(model, "base")
    assert (col(det, "deal.call_kind") == 2).sum() == 1, "the issuer call should be exercised"
    result = simulate(model, paths=4, seed=5, threads=1, keep=[3])
    _numeric_periods_equal(result.kept[3].periods, det.periods, "path 3")


def test_put_is_unfunded_on_exactly_the_paths_where_the_supporter_defaulted_first() -> None:
    # the supporter alone may default (half of them by legal final); a limit above any put
    text = (
        OPTIONS_DEAL.replace("{pd}", "0")
        .replace("limit: 2m", "limit: 10m")
        .replace("{name: Supporter}", "{name: Supporter, cumulative_pd: {pd: 0.5}}")
    )
    model = compile_text(text)
    paths = 400
    result = simulate(model, paths=paths, seed=21, threads=1)
    unfunded = result.tranche_outcomes[:, 1, O_PUT_UNFUNDED]
    # each path's supporter default period, drawn again path by path with the same generator
    arrays = compile_risk(model)
    scratch = allocate_scratch(model.cd, arrays)
    tables = allocate_tables(model.cd)
    supporter = model.obligors.index["Supporter"]
    put_period = int(model.cd.tr_put_period[1])  # 2026-01-01 is the 4th payment date
    assert put_period == 3
    defaulted = np.zeros(paths, dtype=bool)
    for i in range(paths):
        simulate_path(model.cd, arrays, 21, 0, i, scratch, tables, False)
        defaulted[i] = scratch.ob_period[supporter] <= put_period
    assert ((unfunded > 0) == defaulted).all()
    assert 0 < defaulted.sum() < paths
    # and as often as its PD to the end of the put period says: 1 - 0.5^(days / days to legal final)
    days = (model.grid[put_period + 1] - model.grid[0]) / (model.grid[-1] - model.grid[0])
    p = 1 - 0.5**days
    assert abs(defaulted.mean() - p) < 4 * np.sqrt(p * (1 - p) / paths)


def test_the_documented_example_does_what_its_comments_say() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "structures.md").read_text(encoding="utf-8")
    block = re.search(r"### Example.*?```yaml\n(.*?)```", text, re.S)
    assert block is not None
    deal = parse_deal(block.group(1), "structures.md")
    base = api.run(deal, "base")
    put = 3  # 2026-01-01
    balance = col(base, "companion.balance_end")[put]
    assert balance == pytest.approx(3.04e6, abs=5e3)
    assert col(base, "companion.put_exercised")[put] == pytest.approx(0.8 * balance)
    assert col(base, "companion.put_unfunded")[put] == pytest.approx(0.8 * balance - 2e6)
    assert list(base.periods["deal.waterfall"])[put:] == ["normal"] + ["accelerated"] * 8
    full = api.run(deal, "full_support")
    assert col(full, "companion.put_exercised")[put] == pytest.approx(0.5 * balance)
    assert col(full, "companion.put_unfunded").sum() == 0.0
    assert set(full.periods["deal.waterfall"]) == {"normal"}
    called = int(np.argmax(col(full, "deal.call_kind") == 2))
    assert full.periods["payment_date"].iloc[called].date().isoformat() == "2027-01-01"
    assert col(full, "pool.balance_end")[called] < 0.25 * 13e6
    assert_conserved(base, 1e7)
    assert_conserved(full, 1e7)


def test_the_trigger_chart_tests_an_unfunded_put_against_zero() -> None:
    from ipabs.report.charts import trigger_thresholds

    # the kernel ignores a threshold here (any unfunded amount breaches): so does the chart
    deal = parse_deal(
        PUT_DEAL.replace("kind: put_unfunded,", "kind: put_unfunded, threshold: 0.5,"), "deal.yaml"
    )
    assert np.all(trigger_thresholds(deal)["put_eod"] == 0.0)


def test_pricing_reads_the_coupons_a_scenario_resets() -> None:
    from ipabs.analytics.pricing import tranche_flows

    model = compile_text(PUT_DEAL)
    assert list(tranche_flows(model, "senior", "base").coupon) == pytest.approx([0.03, 0.05, 0.05])
    assert list(tranche_flows(model, "senior", "small_put").coupon) == pytest.approx([0.03, 0.04, 0.04])


def test_call_kind_marks_the_clean_up_call_date_even_at_price_zero() -> None:
    text = CALL_DEAL.replace(
        "issuer_call: {from: 2026-01-01, price: 98%, exercise: {pool_factor_below: 0.5}}",
        "clean_up_call: {threshold: 0.5, price: 0}",
    )
    text = text[: text.index("scenarios:")] + text[text.index("waterfalls:") :]
    res = run_text(text)
    # the pool falls to 3m = 1/3 of 9m in period 2: called, for nothing
    assert_cents(col(res, "deal.called"), [0, 1, 1], "called")
    assert_cents(col(res, "deal.call_kind"), [0, 1, 0], "call kind")
    assert_cents(col(res, "deal.call_proceeds"), [0, 0, 0], "proceeds")
