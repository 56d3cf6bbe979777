"""SIFMA (Bond Market Association) standard-formula conventions on a monthly level-pay pool.

The expected cash flows come from an independent month-by-month implementation written here
(``sifma_cash_flows``): each month the monthly default rate hits the previous performing
balance before amortisation, the level payment is recomputed on the surviving balance over the
remaining term (which is the amortisation-factor rule for a level-pay loan), prepayments apply
to the balance after scheduled principal, and ``(1 - severity) x defaults`` is recovered
``lag`` months later (lost when that falls after legal final).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import collections_of, compile_text

from ipabs.risk.deterministic import psa_cpr, sda_cdr
from ipabs.risk.scenario import scenario_inputs

BALANCE = 10_000_000.0
RATE = 0.06
TERM = 48  # months: 2025-01-15 -> 2029-01-15
PERIODS = 54  # legal final 2029-07-15 leaves room for lagged recoveries


def pool_deal(
    scenarios: str,
    term: int = TERM,
    extra_loans: str = "",
    frequency: str = "monthly",
    first_payment: str = "2025-02-15",
) -> str:
    """A monthly level-pay (annuity) pool, 30/360 so that interest is balance x rate / 12."""
    return f"""
deal:
  name: sifma pool
  closing_date: 2025-01-15
  first_payment_date: {first_payment}
  payment_frequency: {frequency}
  legal_final_date: 2029-07-15
pools:
  - name: pool
    loans:
      - {{obligor: A, balance: {BALANCE}, rate: {RATE}, term_months: {term}, amortisation: annuity,
         payment_frequency: monthly, day_count: 30/360,
         pledged_ip: {{appraised_value: 4m}}}}
{extra_loans}
scenarios:
{scenarios}
tranches:
  - {{name: senior, balance: 9m, coupon: 3%}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
"""


# --------------------------------------------------------------------------- the formulas


def smm_of(cpr: float | np.ndarray) -> np.ndarray:
    """Single monthly mortality from an annual rate: 1 - (1 - CPR)^(1/12)."""
    return 1.0 - (1.0 - np.asarray(cpr, dtype=float)) ** (1.0 / 12.0)


def psa_formula(month: int, psa: float) -> float:
    """PSA: CPR = PSA/100 x 0.2% x min(max(month, 1), 30)."""
    return psa / 100.0 * 0.002 * min(max(month, 1), 30)


def sda_formula(month: int, sda: float) -> float:
    """SDA: 0.02% x m to month 30, 0.6% to 60, down 0.0095% a month to 0.03% at 120, flat after."""
    if month <= 30:
        cdr = 0.0002 * month
    elif month <= 60:
        cdr = 0.006
    elif month <= 120:
        cdr = 0.006 - 0.000095 * (month - 60)
    else:
        cdr = 0.0003
    return sda / 100.0 * cdr


def sifma_cash_flows(
    mdr: np.ndarray,
    smm: np.ndarray,
    severity: float,
    lag: int,
    balance: float = BALANCE,
    rate: float = RATE,
    term: int = TERM,
    periods: int = PERIODS,
    appraisal_cap: float | None = None,
) -> dict[str, np.ndarray]:
    """Month-by-month SIFMA cash flows of one level-pay loan (rates per month, 1-based months).

    ``appraisal_cap``: recovery of a whole-loan default is ``min(cap, balance)``; a fraction f
    of the loan defaulting recovers ``f x`` that (expected value).
    """
    r = rate / 12.0
    out = {
        k: np.zeros(periods)
        for k in (
            "interest",
            "scheduled_principal",
            "prepayment",
            "defaults",
            "recovery",
            "balance_start",
            "balance_end",
        )
    }
    perf = balance  # performing balance
    sched = balance  # contractual balance (no default, no prepayment)
    for m in range(1, periods + 1):
        i = m - 1
        out["balance_start"][i] = perf
        defaulted = mdr[i] * perf
        share_defaulting = defaulted / sched if sched > 0 else 0.0
        survivors = perf - defaulted
        interest = survivors * r
        remaining = term - m + 1
        if remaining >= 1 and survivors > 0:
            payment = survivors * r / (1.0 - (1.0 + r) ** -remaining)
            scheduled = min(payment - interest, survivors)
            sched_payment = sched * r / (1.0 - (1.0 + r) ** -remaining)
            sched -= min(sched_payment - sched * r, sched)
        else:
            scheduled = 0.0
            sched = 0.0
        prepaid = smm[i] * (survivors - scheduled)
        perf = survivors - scheduled - prepaid
        out["defaults"][i] = defaulted
        out["interest"][i] = interest
        out["scheduled_principal"][i] = scheduled
        out["prepayment"][i] = prepaid
        out["balance_end"][i] = perf
        if m + lag <= periods:
            rec = (1.0 - severity) * defaulted
            if appraisal_cap is not None:
                rec = min(defaulted, share_defaulting * appraisal_cap)
            out["recovery"][i + lag] += rec
    return out


def _compare(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    scale = BALANCE * 1e-9  # values that should be zero
    for k, e in expected.items():
        a = actual[k]
        assert a.shape == e.shape, k
        bad = np.nonzero(np.abs(a - e) > np.maximum(1e-6 * np.abs(e), scale))[0]
        assert len(bad) == 0, f"{k}: months {(bad + 1).tolist()[:8]} got {a[bad][:4]} expected {e[bad][:4]}"


# --------------------------------------------------------------------------- rate conversions


@pytest.mark.parametrize("annual", [0.0, 0.01, 0.06, 0.2, 0.5, 0.9])
def test_smm_and_mdr_from_annual_rates(annual: float) -> None:
    text = pool_deal(f"  base: {{defaults: {{cdr: {annual}}}, prepayment: {{cpr: {annual}}}}}")
    inp = scenario_inputs(compile_text(text), "base")
    expected = 1.0 - (1.0 - annual) ** (1.0 / 12.0)
    np.testing.assert_allclose(inp.smm[0], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(inp.mdr[0], expected, rtol=1e-12, atol=1e-15)
    # twelve months of SMM compound back to the CPR
    assert 1.0 - (1.0 - inp.smm[0, 0]) ** 12 == pytest.approx(annual, abs=1e-12)


def test_quarterly_period_rates_compound_the_monthly_ones() -> None:
    text = pool_deal(
        "  base: {defaults: {cdr: 0.1}, prepayment: {cpr: 0.2}}\n"
        "  ramp: {defaults: {sda: 100}, prepayment: {psa: 100}}",
        frequency="quarterly",
        first_payment="2025-04-15",
    )
    model = compile_text(text)
    inp = scenario_inputs(model, "base")
    np.testing.assert_allclose(inp.smm[0], 1.0 - 0.8**0.25, rtol=1e-12)
    np.testing.assert_allclose(inp.mdr[0], 1.0 - 0.9**0.25, rtol=1e-12)
    ramp = scenario_inputs(model, "ramp")
    for q in range(3):
        months = range(3 * q + 1, 3 * q + 4)
        smm = 1.0 - np.prod([1.0 - smm_of(psa_formula(m, 100)) for m in months])
        mdr = 1.0 - np.prod([1.0 - smm_of(sda_formula(m, 100)) for m in months])
        assert ramp.smm[0, q] == pytest.approx(smm, rel=1e-12)
        assert ramp.mdr[0, q] == pytest.approx(mdr, rel=1e-12)


@pytest.mark.parametrize("psa", [50.0, 100.0, 165.0, 300.0])
def test_psa_ramp(psa: float) -> None:
    months = np.array([0, 1, 2, 15, 29, 30, 31, 60, 360])
    expected = [psa_formula(int(m), psa) for m in months]
    np.testing.assert_allclose(psa_cpr(months, psa), expected, rtol=1e-12, atol=0)
    # 100% PSA: 0.2% in month 1, 6% from month 30
    assert psa_cpr(np.array([1, 30, 100]), 100.0) == pytest.approx([0.002, 0.06, 0.06])


@pytest.mark.parametrize("sda", [100.0, 200.0, 50.0])
def test_sda_curve(sda: float) -> None:
    months = np.array([1, 10, 30, 31, 45, 60, 61, 90, 119, 120, 121, 240])
    expected = [sda_formula(int(m), sda) for m in months]
    np.testing.assert_allclose(sda_cdr(months, sda), expected, rtol=1e-12, atol=1e-15)
    # 100% SDA anchors: 0.6% peak on months 30-60, 0.03% at and after month 120
    assert sda_cdr(np.array([30, 60, 120, 200]), 100.0) == pytest.approx([0.006, 0.006, 0.0003, 0.0003])


# --------------------------------------------------------------------------- the pool


@pytest.mark.parametrize(
    ("cdr", "cpr", "severity", "lag"),
    [
        (0.05, 0.10, 0.60, 6),
        (0.0, 0.20, 0.40, 0),
        (0.30, 0.0, 0.25, 0),
        (0.10, 0.15, 1.0, 12),
        (0.02, 0.06, 0.35, 3),
    ],
)
def test_level_pay_pool_matches_month_by_month_sifma(
    cdr: float, cpr: float, severity: float, lag: int
) -> None:
    text = pool_deal(
        f"  base: {{defaults: {{cdr: {cdr}}}, prepayment: {{cpr: {cpr}}}, "
        f"recovery: {{rate: {1 - severity}, lag_months: {lag}}}}}"
    )
    actual = collections_of(compile_text(text), "base")
    mdr = np.full(PERIODS, smm_of(cdr))
    smm = np.full(PERIODS, smm_of(cpr))
    expected = sifma_cash_flows(mdr, smm, severity, lag)
    _compare(actual, expected)
    # the ledger closes: start - defaults - scheduled - prepaid = end
    np.testing.assert_allclose(
        actual["balance_start"] - actual["defaults"] - actual["scheduled_principal"] - actual["prepayment"],
        actual["balance_end"],
        atol=1e-6,
    )


def test_no_default_no_prepayment_is_the_level_annuity() -> None:
    actual = collections_of(compile_text(pool_deal("  base: {}")), "base")
    r = RATE / 12
    payment = BALANCE * r / (1 - (1 + r) ** -TERM)
    total = actual["interest"] + actual["scheduled_principal"]
    np.testing.assert_allclose(total[:TERM], payment, rtol=1e-10)
    np.testing.assert_allclose(total[TERM:], 0.0, atol=1e-9)


@pytest.mark.parametrize(("sda", "psa", "lag"), [(100.0, 100.0, 6), (300.0, 150.0, 12), (200.0, 0.0, 0)])
def test_sda_psa_pool_with_zero_defaults_in_the_last_lag_months(sda: float, psa: float, lag: int) -> None:
    text = pool_deal(
        f"  base: {{defaults: {{sda: {sda}}}, prepayment: {{psa: {psa}}}, "
        f"recovery: {{rate: 0.5, lag_months: {lag}}}}}"
    )
    model = compile_text(text)
    months = np.arange(1, PERIODS + 1)
    # SDA: no new defaults in the asset's last `lag` months (months TERM - lag + 1 .. TERM)
    # nor after it matures
    cdr = np.array([0.0 if m > TERM - lag else sda_formula(int(m), sda) for m in months])
    mdr = smm_of(cdr)
    smm = smm_of([psa_formula(int(m), psa) for m in months])
    inp = scenario_inputs(model, "base")
    np.testing.assert_allclose(inp.mdr[0], mdr, rtol=1e-12, atol=1e-16)
    assert np.all(inp.mdr[0, TERM - lag :] == 0.0)
    assert np.all(inp.mdr[0, : TERM - lag] > 0.0)
    _compare(collections_of(model, "base"), sifma_cash_flows(mdr, smm, 0.5, lag))


def test_sda_lag_rule_uses_each_assets_own_maturity() -> None:
    second = (
        "      - {obligor: B, balance: 5m, rate: 0.06, term_months: 36, amortisation: annuity,\n"
        "         payment_frequency: monthly, day_count: 30/360}"
    )
    text = pool_deal(
        "  base: {defaults: {sda: 100}, recovery: {rate: 0.4, lag_months: 6}}", extra_loans=second
    )
    mdr = scenario_inputs(compile_text(text), "base").mdr
    # loan A matures in month 48: zero from month 43; loan B in month 36: zero from month 31
    assert np.all(mdr[0, 42:] == 0.0)
    assert mdr[0, 41] == pytest.approx(smm_of(sda_formula(42, 100)))
    assert np.all(mdr[1, 30:] == 0.0)
    assert mdr[1, 29] == pytest.approx(smm_of(sda_formula(30, 100)))


def test_appraisal_recovery_scales_with_the_surviving_share() -> None:
    # Recovery basis appraisal: a whole-loan default recovers 30% x 4m appraisal = 1.2m (capped
    # at the balance). In expected-value terms, month m's defaults are a fraction
    # f = defaulted / scheduled balance of the loan, which recovers f x 1.2m: the cap must
    # shrink with the share of the loan that is still performing, not only with the MDR.
    text = pool_deal(
        "  base: {defaults: {cdr: 0.3}, prepayment: {cpr: 0.1}, "
        "recovery: {rate: 0.3, basis: appraisal, lag_months: 0}}"
    )
    actual = collections_of(compile_text(text), "base")
    mdr = np.full(PERIODS, smm_of(0.3))
    smm = np.full(PERIODS, smm_of(0.1))
    expected = sifma_cash_flows(mdr, smm, 0.0, 0, appraisal_cap=0.3 * 4_000_000)
    # month 1: nothing has defaulted or prepaid yet, so the two conventions agree
    assert actual["recovery"][0] == pytest.approx(expected["recovery"][0], rel=1e-9)
    _compare({"recovery": actual["recovery"]}, {"recovery": expected["recovery"]})
