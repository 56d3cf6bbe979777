"""Seasoned pools and cut-off dates: PSA and SDA ramps by loan age (SIFMA), a seasoned loan's
first interest payment, collections between the cut-off and closing, loan tapes with ages, and
located errors for inconsistent seasoning.

The ramps are SIFMA's (Uniform Practices, chapter SF, "Standard Formulas"): 100% PSA is a CPR of
0.2% in the first month of a loan's life rising 0.2% a month to 6% in month 30 (SMM 0.5143% from
then on); 100% SDA is a CDR of 0.02% a month of age to 0.6% in month 30, flat to month 60, then
down 0.0095% a month to 0.03% in month 120. The CPRs and CDRs below are read off those published
ramps by hand, not computed by ipabs.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, collections_of, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs.deal.load import parse_deal
from ipabs.errors import DealError
from ipabs.montecarlo import simulate

BALANCE = 1_000_000.0


def smm(cpr: float) -> float:
    """SIFMA: SMM = 1 - (1 - CPR)^(1/12)."""
    return 1.0 - (1.0 - cpr) ** (1.0 / 12.0)


def pool(loans: str, scenarios: str, cut_off: str = "", closing: str = "2026-03-31", risk: str = "") -> str:
    """A monthly deal closing (or cut off) on 2026-03-31 with the given loans (YAML lines)."""
    return f"""
deal:
  name: seasoned
  closing_date: {closing}
{cut_off}  first_payment_date: 2026-04-30
  payment_frequency: monthly
  legal_final_date: 2029-04-30
pools:
  - name: pool
    loans:
{textwrap.indent(textwrap.dedent(loans).strip(), "      ")}
scenarios:
{textwrap.indent(textwrap.dedent(scenarios).strip(), "  ")}
tranches:
  - {{name: senior, balance: 900000, coupon: 3%}}
  - {{name: sub, balance: 100000}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: [senior, sub]
    - pay_residual: sub
{risk}"""


# interest-only loans paying monthly: no scheduled principal, so the prepayment base is the balance
IO_LOAN = (
    "- {{obligor: {name}, balance: 1000000, rate: 6%, term_months: 36, payment_frequency: monthly, "
    "day_count: 30/360{extra}}}"
)


def io_loan(name: str, extra: str = "") -> str:
    return IO_LOAN.format(name=name, extra=extra)


# --------------------------------------------------------------------------- PSA and SDA by age


@pytest.mark.parametrize(
    ("age", "cprs"),
    [
        (0, [0.002, 0.004, 0.006]),  # months 1-3 of the ramp
        (20, [0.042, 0.044, 0.046]),  # a loan aged 20 starts in month 21
        (28, [0.058, 0.060, 0.060]),  # reaches 6% in month 30 and stays
        (40, [0.060, 0.060, 0.060]),
    ],
)
def test_psa_ramp_counts_from_the_loans_age(age: int, cprs: list[float]) -> None:
    loans = io_loan("A", f", age_months: {age}")
    text = pool(loans, "base: {prepayment: {psa: 100}}")
    c = collections_of(compile_text(text))
    expected = []
    bal = BALANCE
    for cpr in cprs:
        expected.append(bal * smm(cpr))
        bal -= expected[-1]
    assert_cents(c["prepayment"][:3], expected, f"prepayments of a loan aged {age}")


def test_psa_100_at_month_30_is_the_published_smm() -> None:
    # SIFMA's tables: 6% CPR is an SMM of 0.5143% (four decimals of a percent)
    c = collections_of(compile_text(pool(io_loan("A", ", age_months: 35"), "base: {prepayment: {psa: 100}}")))
    assert c["prepayment"][0] / BALANCE == pytest.approx(0.005143, abs=5e-7)


def test_origination_date_gives_the_age() -> None:
    # originated 2024-07-15: 20 whole months before the cut-off 2026-03-31
    by_date = pool(io_loan("A", ", origination_date: 2024-07-15"), "base: {prepayment: {psa: 100}}")
    c = collections_of(compile_text(by_date))
    assert c["prepayment"][0] == pytest.approx(BALANCE * smm(0.042), abs=0.005)


@pytest.mark.parametrize(
    ("age", "cdr"),
    [
        (0, 0.0002),  # month 1
        (40, 0.006),  # month 41: flat part
        (70, 0.006 - 0.000095 * 11),  # month 71: 0.4955%
        (130, 0.0003),  # month 131: the tail
    ],
)
def test_sda_ramp_counts_from_the_loans_age(age: int, cdr: float) -> None:
    text = pool(io_loan("A", f", age_months: {age}"), "base: {defaults: {sda: 100}, recovery: {rate: 0}}")
    c = collections_of(compile_text(text))
    assert c["defaults"][0] == pytest.approx(BALANCE * smm(cdr), abs=0.005)


def test_loans_of_different_ages_in_one_pool() -> None:
    loans = io_loan("A", ", age_months: 0") + "\n" + io_loan("B", ", age_months: 20")
    c = collections_of(compile_text(pool(loans, "base: {prepayment: {psa: 150}}")))
    # 150% PSA: month 1 is 0.3% CPR, month 21 is 6.3% CPR
    assert c["prepayment"][0] == pytest.approx(BALANCE * (smm(0.003) + smm(0.063)), abs=0.005)


def test_monte_carlo_prepays_by_age_and_zero_pd_paths_equal_the_deterministic_run() -> None:
    risk = """risk:
  default_pd: 0
  factors: {global: 0.3}
  prepayment: {psa: 100}
  recovery: {model: constant, rate: 0}
"""
    text = pool(
        io_loan("A", ", age_months: 20") + "\n" + io_loan("B", ", origination_date: 2025-12-31"),
        "base: {prepayment: {psa: 100}}",
        cut_off="  cut_off_date: 2026-02-28\n",
        closing="2026-03-31",
        risk=risk,
    )
    model = compile_text(text)
    det = run_text(text)
    res = simulate(model, paths=3, seed=1, keep=[0, 2])
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    # period 1 collects March and April (cut-off 2026-02-28 to 2026-04-30): ages 20 and 2
    first = BALANCE * (1 - (1 - smm(0.042)) * (1 - smm(0.044)))
    first += BALANCE * (1 - (1 - smm(0.006)) * (1 - smm(0.008)))
    assert col(det, "pool.prepayment")[0] == pytest.approx(first, abs=0.005)


# --------------------------------------------------------------------------- interest of a seasoned loan


def test_first_interest_of_a_seasoned_loan_accrues_from_its_last_payment_date() -> None:
    # originated 2025-11-15, quarterly interest on the 15th of Feb/May/Aug/Nov, 2 years: at the
    # cut-off 2026-03-31 it last paid on 2026-02-15, so 2026-05-15 pays 89 days (ACT/365)
    loan = (
        "- {obligor: A, balance: 1000000, rate: 7.3%, maturity_date: 2027-11-15, "
        "origination_date: 2025-11-15, original_term_months: 24, original_balance: 1000000}"
    )
    c = collections_of(compile_text(pool(loan, "base: {}")))
    assert_cents(c["interest"][:2], [0.0, 1_000_000 * 0.073 * 89 / 365], "interest")
    # without an age the loan accrues from the cut-off: 45 days
    plain = "- {obligor: A, balance: 1000000, rate: 7.3%, maturity_date: 2027-11-15}"
    c = collections_of(compile_text(pool(plain, "base: {}")))
    assert_cents(c["interest"][:2], [0.0, 1_000_000 * 0.073 * 45 / 365], "interest, new loan")


def test_interest_only_months_count_from_origination() -> None:
    # 12 months interest-only from 2025-09-30, then equal principal over the remaining 24 months:
    # at the cut-off 2026-03-31 (age 6) the first principal is due on 2026-10-31
    loan = (
        "- {obligor: A, balance: 1200000, rate: 6%, term_months: 30, payment_frequency: monthly, "
        "amortisation: equal_principal, interest_only_months: 12, age_months: 6, day_count: 30/360}"
    )
    c = collections_of(compile_text(pool(loan, "base: {}")))
    principal = c["scheduled_principal"]
    assert_cents(principal[:6], [0.0] * 6, "interest-only to 2026-09-30")
    assert_cents(principal[6:8], [50_000.0, 50_000.0], "1,200,000 over 24 months")


# --------------------------------------------------------------------------- cut-off before closing

CUT_OFF_DEAL = """
deal:
  name: cut-off
  cut_off_date: 2026-03-31
  closing_date: 2026-05-20
  first_payment_date: 2026-07-15
  payment_frequency: quarterly
  legal_final_date: 2027-07-15
pools:
  - name: pool
    loans:
      - {obligor: A, balance: 1000000, rate: 6%, maturity_date: 2027-07-15, payment_frequency: monthly,
         day_count: 30/360, age_months: 2}
scenarios:
  base: {}
tranches:
  - {name: senior, balance: 900000, coupon: 3%}
  - {name: sub, balance: 100000}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: [senior, sub]
    - pay_residual: sub
"""


def test_collections_between_cut_off_and_closing_reach_the_first_payment_date() -> None:
    r = run_text(CUT_OFF_DEAL)
    assert_conserved(r, 1e6)
    # the loan pays 6%/12 x 1,000,000 = 5,000 on the 15th of each month; the trust owns what it
    # pays after the cut-off: 04-15 and 05-15 (before closing), 06-15 and 07-15 -> 20,000 on
    # 2026-07-15; the notes accrue from closing: 900,000 x 3% x 56/365
    assert col(r, "pool.interest")[0] == pytest.approx(20_000.0, abs=0.005)
    senior = 900_000 * 0.03 * 56 / 365
    assert col(r, "senior.interest_paid")[0] == pytest.approx(senior, abs=0.005)
    # the rest of the income pays senior principal (a combined waterfall)
    assert col(r, "senior.principal_paid")[0] == pytest.approx(20_000.0 - senior, abs=0.005)
    # later quarters collect three payments
    assert_cents(col(r, "pool.interest")[1:4], [15_000.0] * 3, "later quarters")


def test_without_a_cut_off_date_the_pool_starts_at_closing() -> None:
    text = CUT_OFF_DEAL.replace("  cut_off_date: 2026-03-31\n", "").replace(", age_months: 2", "")
    r = run_text(text)
    # 2026-06-15 accrues from the cut-off = closing 2026-05-20: 25 days (30/360); 07-15 a month
    assert col(r, "pool.interest")[0] == pytest.approx(1e6 * 0.06 * 25 / 360 + 5_000.0, abs=0.005)


# --------------------------------------------------------------------------- tapes


def write_tape(tmp_path, rows: str) -> str:  # type: ignore[no-untyped-def]
    (tmp_path / "loans.csv").write_text(rows, encoding="utf-8")
    deal = pool(
        "[]", "base: {prepayment: {psa: 100}}", cut_off="  cut_off_date: 2026-03-31\n", closing="2026-04-20"
    )
    deal = deal.replace(
        "    loans:\n      []\n",
        "    tape: {path: loans.csv, defaults: {payment_frequency: monthly, day_count: 30/360}}\n",
    )
    path = tmp_path / "deal.yaml"
    path.write_text(deal, encoding="utf-8")
    return str(path)


def test_tape_carries_ages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ipabs.deal.load import load_deal
    from ipabs.engine.compile import compile_deal

    path = write_tape(
        tmp_path,
        "obligor,balance,rate,term_months,age_months,origination_date,original_balance,original_term_months\n"
        "A,1000000,6%,36,20,,1200000,56\n"
        "B,1000000,6%,36,,2024-07-15,,\n"
        "C,1000000,6%,36,,,,\n",
    )
    model = compile_deal(load_deal(path))
    assert model.assets.age_months.tolist() == [20, 20, 0]
    c = collections_of(model)
    assert c["prepayment"][0] == pytest.approx(BALANCE * (2 * smm(0.042) + smm(0.002)), abs=0.005)


@pytest.mark.parametrize(
    ("row", "where", "message"),
    [
        ("A,1000000,6%,36,x,,,", ":2:5", "age_months"),
        ("A,1000000,6%,36,3,2025-01-15,,", ":2:5", "both age_months"),
        ("A,1000000,6%,36,,2026-05-01,,", ":2:6", "after the cut-off date"),
        ("A,1000000,6%,36,,,900000,", ":2:7", "below the balance"),
        ("A,1000000,6%,36,20,,,50", ":2:8", "is not the age (20) plus the remaining term (36"),
        ("A,1000000,6%,36,,2026-13-01,,", ":2:6", "not a date"),
    ],
)
def test_tape_seasoning_errors_are_located(tmp_path, row: str, where: str, message: str) -> None:  # type: ignore[no-untyped-def]
    from ipabs.deal.load import load_deal

    path = write_tape(
        tmp_path,
        "obligor,balance,rate,term_months,age_months,origination_date,original_balance,original_term_months\n"
        + row
        + "\n",
    )
    with pytest.raises(DealError) as err:
        load_deal(path)
    text = str(err.value)
    assert f"loans.csv{where}" in text, text
    assert message in text, text


# --------------------------------------------------------------------------- located YAML errors


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (", age_months: 3, origination_date: 2025-12-31", "loans[0].age_months", "origination_date are both"),
        (", original_balance: 900000", "loans[0].original_balance", "below the current balance"),
        (", age_months: 5, original_term_months: 40", "loans[0].original_term_months", "plus the remaining"),
        (", origination_date: 2026-04-01", "loans[0].origination_date", "after the cut-off date"),
        (", age_months: -1", "loans[0].age_months", "must be at least 0"),
    ],
)
def test_inconsistent_seasoning_is_a_located_error(extra: str, path: str, message: str) -> None:
    text = pool(io_loan("A", extra), "base: {}")
    with pytest.raises(DealError) as err:
        parse_deal(text, "deal.yaml")
    issue = err.value.issues[0]
    assert issue.path.endswith(path), issue
    assert message in str(issue), issue
    assert issue.line == 11 and issue.column > 0, issue


def test_cut_off_after_closing_is_a_located_error() -> None:
    text = pool(io_loan("A"), "base: {}", cut_off="  cut_off_date: 2026-04-15\n")
    with pytest.raises(DealError) as err:
        parse_deal(text, "deal.yaml")
    issue = err.value.issues[0]
    assert issue.path == "deal.cut_off_date" and issue.line == 5, issue
    assert "must not be after closing_date" in str(issue)


def test_deals_without_seasoning_are_unchanged() -> None:
    # an explicit age of 0 is a new loan: same flows as no age at all
    a = collections_of(compile_text(pool(io_loan("A"), "base: {prepayment: {psa: 200}}")))
    b = collections_of(compile_text(pool(io_loan("A", ", age_months: 0"), "base: {prepayment: {psa: 200}}")))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_planned_amortisation_band_counts_psa_from_the_loans_age() -> None:
    from test_note_options import PAC_DEAL, _pool_principal_by_hand

    text = PAC_DEAL.replace(
        "amortisation: equal_principal}", "amortisation: equal_principal, age_months: 10}"
    )
    assert text.count("age_months: 10") == 2
    month = np.arange(1, 25) + 10  # months 11-34 of the ramp
    cpr = 3.0 * 0.002 * np.minimum(month, 30)  # 300% PSA
    quarter = 1 - np.prod(((1 - cpr) ** (1 / 12)).reshape(8, 3), axis=1)
    low = _pool_principal_by_hand(quarter)
    high = _pool_principal_by_hand(np.full(8, 1 - (1 - 0.40) ** 0.25))
    expected = np.maximum(6e6 - np.cumsum(np.minimum(low, high)), 0.0)
    assert_cents(compile_text(text).cd.tr_schedule[0], expected, "PAC schedule of a seasoned pool")


def test_a_seasoned_bullet_pays_interest_since_origination_and_a_custom_schedule_since_the_cut_off() -> None:
    # bullet originated 2025-03-31, maturing 2026-09-30 (ACT/365): 548 days of interest at maturity
    bullet = (
        "- {obligor: A, balance: 1000000, rate: 7.3%, maturity_date: 2026-09-30, amortisation: bullet, "
        "origination_date: 2025-03-31}"
    )
    c = collections_of(compile_text(pool(bullet, "base: {}")))
    assert c["interest"].sum() == pytest.approx(1_000_000 * 0.073 * 548 / 365, abs=0.005)
    # a custom schedule (dates after the cut-off only) accrues from the cut-off: 2026-03-31 to
    # 2026-06-30 is 91 days
    custom = (
        "- {obligor: A, balance: 1000000, rate: 7.3%, maturity_date: 2026-09-30, amortisation: custom, "
        "schedule: [{date: 2026-06-30, principal: 500000}], age_months: 12}"
    )
    c = collections_of(compile_text(pool(custom, "base: {}")))
    assert c["interest"][2] == pytest.approx(1_000_000 * 0.073 * 91 / 365, abs=0.005)
