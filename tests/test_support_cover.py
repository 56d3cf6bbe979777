"""Support that pays and gets paid back, principal guarantees at maturity or legal final, and
loss cover (risk-sharing pools, guarantee insurance): small deals computed by hand to the cent.

Every deal uses ACT/365 and dates on the first of a month, so that annual year fractions are
365/365 or, for the year through 29 February 2028, 366/365. Expected numbers are written out
period by period and recomputed by plain arithmetic; no ipabs function produces them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.engine.compile import CompiledModel
from ipabs.errors import DealError, Issue
from ipabs.montecarlo import simulate

ANNUAL_4Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2029-01-01
"""

ANNUAL_3Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2028-01-01
"""

# --------------------------------------------------------------------------- 1. reimbursement

REIMBURSED_DEAL = (
    ANNUAL_4Y.format(name="reimbursed keepwell")
    + """obligors:
  - {name: Sponsor}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 5%, term_months: 48, payment_frequency: annual}
      - {obligor: B, balance: 4m, rate: 5%, term_months: 48, payment_frequency: annual}
      - {obligor: C, balance: 1m, rate: 0, maturity_date: 2028-01-01, payment_frequency: annual,
         amortisation: custom, schedule: [{date: 2028-01-01, principal: 1m}]}
scenarios:
  b_defaults:
    defaults: {obligors: {B: 2}}
    recovery: {rate: 0.5, lag_months: 24}
tranches:
  - {name: senior, balance: 5m}
  - {name: mezz, balance: 3m, coupon: 12%}
  - {name: equity, balance: 2m}
support:
  - {name: keepwell, kind: deficiency_payment, provider: Sponsor, reimbursement_rate: 10%}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_interest: mezz
    - draw: {from: keepwell, covers: [mezz.interest]}
    - pay_principal: senior
    - REIMBURSE
    - pay_principal: mezz
    - pay_residual: equity
"""
)


def test_deficiency_payer_is_paid_back_with_interest_before_the_residual() -> None:
    res = run_text(REIMBURSED_DEAL.replace("REIMBURSE", "reimburse: keepwell"))
    leap = 366 / 365  # 2028-01-01 -> 2029-01-01
    # Collections. A: 6m x 5% = 300,000 a year (x 366/365 in year 4), 6m at maturity. B: 200,000
    # in year 1, defaults in period 2 (no interest), recovers 50% x 4m = 2m 24 months after the end
    # of period 2, on 2029-01-01 (period 4). C: 1m principal in period 3.
    cash = [500_000, 300_000, 1_300_000, 300_000 * leap + 6_000_000 + 2_000_000]
    assert_cents(col(res, "deal.collections"), cash, "collections")
    # Mezz interest 3m x 12% = 360,000 (x 366/365 in year 4), paid first (the senior pays none).
    mezz_int = [360_000, 360_000, 360_000, 360_000 * leap]
    assert_cents(col(res, "mezz.interest_paid"), mezz_int, "mezz interest")
    # P1: 140,000 left -> senior principal. P2: 300,000 < 360,000: keepwell pays 60,000.
    # P3: 1.3m - 360,000 = 940,000 -> senior; nothing reaches the reimbursement step, whose
    # interest 60,000 x 10% x 1 = 6,000 stays unpaid. P4: senior's last 3,920,000; then interest
    # 60,000 x 10% x 366/365 + 6,000 and the 60,000; then mezz principal, the rest to equity.
    draw = [0, 60_000, 0, 0]
    assert_cents(col(res, "keepwell.draw"), draw, "draws")
    assert_cents(col(res, "mezz.support_received"), draw, "mezz support received")
    assert_cents(col(res, "senior.principal_paid"), [140_000, 0, 940_000, 3_920_000], "senior principal")
    interest_p4 = 60_000 * 0.10 * leap + 6_000
    assert_cents(col(res, "keepwell.interest_paid"), [0, 0, 0, interest_p4], "reimbursement interest")
    assert_cents(col(res, "keepwell.principal_repaid"), [0, 0, 0, 60_000], "draws reimbursed")
    assert_cents(col(res, "keepwell.reimbursed"), [0, 0, 0, 60_000 + interest_p4], "reimbursed")
    assert_cents(col(res, "keepwell.unreimbursed"), [0, 60_000, 66_000, 0], "unreimbursed")
    assert_cents(col(res, "mezz.principal_paid"), [0, 0, 0, 3_000_000], "mezz principal")
    equity = cash[3] - mezz_int[3] - 3_920_000 - interest_p4 - 60_000 - 3_000_000
    assert_cents(col(res, "equity.principal_paid"), [0, 0, 0, equity], "equity")
    assert_conserved(res, 1e7)


def test_a_deficiency_payer_no_step_reimburses_is_owed_nothing() -> None:
    res = run_text(REIMBURSED_DEAL.replace("    - REIMBURSE\n", ""))
    leap = 366 / 365
    assert_cents(col(res, "keepwell.draw"), [0, 60_000, 0, 0], "draws")
    assert_cents(col(res, "keepwell.reimbursed"), [0, 0, 0, 0], "reimbursed")
    assert_cents(col(res, "keepwell.unreimbursed"), [0, 0, 0, 0], "unreimbursed")
    equity = 300_000 * leap + 8_000_000 - 360_000 * leap - 3_920_000 - 3_000_000
    assert_cents(col(res, "equity.principal_paid"), [0, 0, 0, equity], "equity keeps the excess")
    assert_conserved(res, 1e7)


def test_reimbursing_a_liquidity_facility_is_repay_liquidity() -> None:
    facility = "  - {name: keepwell, kind: liquidity_facility, provider: Sponsor, limit: 1m, rate: 10%}\n"
    text = REIMBURSED_DEAL.replace(
        "  - {name: keepwell, kind: deficiency_payment, provider: Sponsor, reimbursement_rate: 10%}\n",
        facility,
    )
    a = run_text(text.replace("REIMBURSE", "reimburse: keepwell"))
    b = run_text(text.replace("REIMBURSE", "repay_liquidity: keepwell"))
    for field in ("draw", "interest_paid", "principal_repaid", "reimbursed", "unreimbursed"):
        assert np.array_equal(col(a, f"keepwell.{field}"), col(b, f"keepwell.{field}")), field
    assert col(a, "keepwell.reimbursed")[3] > 60_000


# --------------------------------------------------------------------------- 2. principal guarantees

# A 6m senior with a target balance of 4m after period 1 and an expected maturity at the end of
# period 2; collections 1m, 1m, then 8m (or nothing when the borrower defaults in period 3).
GUARANTEED_PRINCIPAL = (
    ANNUAL_3Y.format(name="principal guarantee")
    + """obligors:
  - {name: Guarantor}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 0, maturity_date: 2028-01-01, payment_frequency: annual,
         amortisation: custom, schedule: [{date: 2026-01-01, principal: 1m},
                                          {date: 2027-01-01, principal: 1m}]}
scenarios:
  base: {}
  default_p3:
    defaults: {obligors: {A: 3}}
tranches:
  - {name: senior, balance: 6m, amortisation_schedule: [4m], expected_maturity: 2027-01-01}
  - {name: sub, balance: 4m}
support:
  - {name: guarantee, kind: deficiency_payment, provider: Guarantor}
waterfalls:
  normal:
    - pay_principal: {tranches: [senior], limit: due}
    - draw: {from: guarantee, covers: [CLAIM]}
    - pay_principal: {tranches: [sub], limit: due}
    - pay_residual: sub
"""
)


def _guaranteed(claim: str, scenario: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    res = run_text(GUARANTEED_PRINCIPAL.replace("CLAIM", claim), scenario)
    assert_conserved(res, 1e7)
    return col(res, "guarantee.draw"), col(res, "senior.balance_end"), col(res, "sub.principal_paid")


def test_principal_guarantee_pays_each_period_s_principal_due() -> None:
    # P1: 2m due (6m -> 4m), 1m collected: 1m drawn. P2: expected maturity, 4m due, 1m
    # collected: 3m drawn. P3: 8m to the sub (4m principal, 4m residual).
    draw, senior, sub = _guaranteed("senior.principal", "base")
    assert_cents(draw, [1_000_000, 3_000_000, 0], "draws")
    assert_cents(senior, [4_000_000, 0, 0], "senior balance")
    assert_cents(sub, [0, 0, 4_000_000], "sub principal")


def test_principal_at_maturity_ignores_the_schedule_before_expected_maturity() -> None:
    # P1: nothing drawn (senior 5m). P2: expected maturity: 5m due, 1m collected, 4m drawn.
    draw, senior, _sub = _guaranteed("senior.principal_at_maturity", "base")
    assert_cents(draw, [0, 4_000_000, 0], "draws")
    assert_cents(senior, [5_000_000, 0, 0], "senior balance")
    # the borrower's default in period 3 does not matter: the senior was paid at maturity
    draw, senior, _sub = _guaranteed("senior.principal_at_maturity", "default_p3")
    assert_cents(draw, [0, 4_000_000, 0], "draws, default in period 3")


def test_principal_at_final_pays_only_at_legal_final() -> None:
    # base: 1m, 1m, then 8m repays the senior's last 4m at legal final: nothing drawn.
    draw, senior, sub = _guaranteed("senior.principal_at_final", "base")
    assert_cents(draw, [0, 0, 0], "draws")
    assert_cents(senior, [5_000_000, 4_000_000, 0], "senior balance")
    assert_cents(sub, [0, 0, 4_000_000], "sub principal")
    # the borrower defaults in period 3 (no recovery): the 4m unpaid at legal final is drawn
    draw, senior, sub = _guaranteed("senior.principal_at_final", "default_p3")
    assert_cents(draw, [0, 0, 4_000_000], "draws at legal final")
    assert_cents(senior, [5_000_000, 4_000_000, 0], "senior balance")
    assert_cents(sub, [0, 0, 0], "sub principal")


# --------------------------------------------------------------------------- located errors


def _issue(text: str) -> Issue:
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    issues = info.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def test_reimbursing_an_unknown_support_is_located(minimal_text: str) -> None:
    text = minimal_text.replace(
        "    - pay_residual: sub\n  accelerated",
        "    - reimburse: guarante\n    - pay_residual: sub\n  accelerated",
    )
    issue = _issue(text)
    assert (issue.line, issue.column) == (68, 18), str(issue)
    assert issue.path == "waterfalls.normal[5].reimburse"
    assert "unknown support 'guarante'" in issue.message
    assert issue.hint == "did you mean 'guarantee'?"


def test_a_misspelt_principal_claim_is_located_with_a_suggestion(minimal_text: str) -> None:
    text = minimal_text.replace("covers: [senior.interest]", "covers: [senior.principal_at_maturty]")
    issue = _issue(text)
    assert (issue.line, issue.column) == (65, 40), str(issue)
    assert "unknown claim 'senior.principal_at_maturty'" in issue.message
    assert issue.hint == "did you mean 'senior.principal_at_maturity'?"


def test_a_reimbursement_rate_out_of_range_is_located(minimal_text: str) -> None:
    text = minimal_text.replace(
        "    provider: StateGuarantor\n", "    provider: StateGuarantor\n    reimbursement_rate: 150%\n"
    )
    issue = _issue(text)
    assert issue.line == 54 and issue.path == "support[0].reimbursement_rate", str(issue)


# --------------------------------------------------------------------------- the documented examples

DOCS = Path(__file__).resolve().parents[1] / "docs" / "structures.md"


def _documented(section: str) -> str:
    """The YAML example under ``## section`` of docs/structures.md."""
    text = DOCS.read_text(encoding="utf-8")
    part = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", part, re.S)
    assert block is not None, f"no example under {section!r}"
    return block.group(1)


def test_support_example_of_the_docs_runs_and_pays_the_sponsor_back() -> None:
    model = compile_text(_documented("Support that pays and gets paid back"))
    res = api.run(model, "b_defaults")
    assert_conserved(res, 1e7)
    draws = col(res, "keepwell.draw")
    assert draws[0] == 0.0 and draws[1] > 0.0
    assert col(res, "keepwell.unreimbursed")[-1] == 0.0
    assert col(res, "keepwell.reimbursed")[-1] > draws.sum()
    assert col(res, "wrap.draw")[:2].sum() == 0.0 and col(res, "wrap.draw")[2] > 0.0
    assert col(res, "wrap.unreimbursed").max() == 0.0


# --------------------------------------------------------------------------- Monte Carlo: zero PD


def test_zero_pd_paths_equal_the_deterministic_run_with_reimbursement_and_maturity_guarantee() -> None:
    """A 50% mezzanine coupon the pool cannot pay: the keepwell pays every period and is paid
    back at legal final; the wrap pays the senior at its expected maturity, and the equity's
    principal is guaranteed at legal final only."""
    text = _documented("Support that pays and gets paid back").replace("coupon: 12%", "coupon: 50%")
    text = text.replace("scenarios:\n", "scenarios:\n  base: {recovery: {rate: 0.5, lag_months: 24}}\n")
    text = text.replace(
        "      - {obligor: B,",
        "      - {obligor: C, balance: 1m, rate: 0, term_months: 36, payment_frequency: annual,"
        " amortisation: bullet}\n      - {obligor: B,",
    )
    # and a guarantee of the equity's principal at legal final, which the pool falls short of
    # once the senior's wrap is capped at 3m
    text = text.replace(
        "  - {name: wrap, kind: deficiency_payment, provider: Sponsor}",
        "  - {name: final_wrap, kind: deficiency_payment, provider: Sponsor}\n"
        "  - {name: wrap, kind: deficiency_payment, provider: Sponsor, cap_total: 3m}",
    )
    text = text.replace(
        "    - pay_residual: equity\n",
        "    - pay_residual: equity\n    - draw: {from: final_wrap, covers: [equity.principal_at_final]}\n",
    )
    text += "risk:\n  default_pd: 0\n  recovery: {model: constant, rate: 0.5, lag_months: 24}\n"
    model = compile_text(text)
    det = api.run(model, "base")
    assert col(det, "final_wrap.draw")[:3].sum() == 0.0 and col(det, "final_wrap.draw")[3] > 0.0
    assert col(det, "keepwell.draw")[0] > 0.0 and col(det, "keepwell.reimbursed").sum() > 0.0
    assert col(det, "wrap.draw")[2] > 0.0
    result = simulate(model, paths=16, seed=3, threads=2, keep=[0, 15])
    for i, kept in result.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    assert np.all(result.tranche_outcomes == result.tranche_outcomes[:1])


# --------------------------------------------------------------------------- 3. loss cover

COVER_DEAL = (
    ANNUAL_4Y.format(name="loss cover")
    + """obligors:
  - {name: Fund, pd: 0.05}
  - {name: GuarCo, pd: 0.1}
  - {name: Insurer, pd: 0.02}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 4m, rate: 5%, term_months: 48, payment_frequency: annual, pd: 0.1}
      - {obligor: B, balance: 4m, rate: 5%, term_months: 48, payment_frequency: annual, pd: 0.1}
      - {obligor: C, balance: 2m, rate: 5%, term_months: 48, payment_frequency: annual, pd: 0.1}
scenarios:
  base:
    defaults: {obligors: {A: 1, C: 2}}
    recovery: {rate: 0.3, lag_months: 12}
  fund_defaults:
    defaults: {obligors: {A: 1, C: 2, Fund: 2}}
    recovery: {rate: 0.3, lag_months: 12}
  two_years:
    defaults: {obligors: {A: 1, B: 2}}
    recovery: {rate: 0.3, lag_months: 12}
tranches:
  - {name: senior, balance: 8m, coupon: 3%}
  - {name: sub, balance: 2m}
loss_cover:
  - name: pool_fund
    kind: risk_sharing
    covers: [A, B]
    BASIS
    payers:
      - {obligor: Fund, share: 40%, cap_per_year: 500k}
      - {obligor: GuarCo, share: 30%, cap_total: 1m}
  - {name: policy, kind: insurance, insurer: Insurer, covers: [C], waiting_months: 3, cap_total: 1.5m}
risk:
  correlation: 0.2
  recovery: {model: constant, rate: 0.3, lag_months: 12}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
"""
)
REALISED = COVER_DEAL.replace("    BASIS\n", "")
DEFAULTED = COVER_DEAL.replace("BASIS", "basis: defaulted_principal\n    lag_months: 6")


def _cover_columns(text: str, scenario: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    res = run_text(text, scenario)
    assert_conserved(res, 1e7)
    return col(res, "pool.risk_sharing"), col(res, "pool.insurance"), col(res, "pool.recovery")


def test_risk_sharing_of_realised_losses_and_insurance_with_a_policy_limit() -> None:
    # A (4m) defaults in period 1: 30% = 1.2m recovered 12 months after 2026-01-01, in period
    # 2; the realised loss 2.8m is shared then (lag 0): the fund 40% = 1.12m, capped at 500k for
    # the deal year; the guarantee company 30% = 840k. C (2m) defaults in period 2: the insurer
    # owes 100% x 2m three months after 2027-01-01 (period 3), paid up to its 1.5m limit; it
    # takes over 1.5m / 2m = 75% of C's 600k recovery (period 3): the deal keeps 150k.
    rs, ins, rec = _cover_columns(REALISED, "base")
    assert_cents(rs, [0, 500_000 + 840_000, 0, 0], "risk sharing")
    assert_cents(ins, [0, 0, 1_500_000, 0], "insurance")
    assert_cents(rec, [0, 1_200_000, 600_000 * 0.25, 0], "recovery kept")
    res = run_text(REALISED, "base")
    leap = 366 / 365
    # B pays 200,000 a year (x 366/365 in year 4) and 4m at maturity; C 100,000 in year 1
    cash = [300_000, 200_000 + 1_200_000 + 1_340_000, 200_000 + 150_000 + 1_500_000, 200_000 * leap + 4e6]
    assert_cents(col(res, "deal.collections"), cash, "collections")
    # loss cover is principal collections: everything left after interest pays the senior
    assert_cents(col(res, "pool.loss"), [2_800_000, 2_000_000 - 600_000, 0, 0], "loss before cover")


def test_a_defaulted_payer_pays_nothing_from_its_default_period() -> None:
    rs, _ins, _rec = _cover_columns(REALISED, "fund_defaults")
    assert_cents(rs, [0, 840_000, 0, 0], "only the guarantee company pays")


def test_caps_per_deal_year_and_in_total() -> None:
    # A's loss (2.8m) is shared in period 2 (deal year 2026-01-01 -> 2027-01-01), B's (B
    # defaults in period 2, recovers 1.2m in period 3) in period 3, the next deal year: the
    # fund pays 500k in each year; the guarantee company 840k, then the 160k left of its 1m cap.
    rs, _ins, _rec = _cover_columns(REALISED, "two_years")
    assert_cents(rs, [0, 500_000 + 840_000, 500_000 + 160_000, 0], "risk sharing")


def test_risk_sharing_of_defaulted_principal_takes_over_the_recovery() -> None:
    # A defaults in period 1: its 4m is shared 6 months after 2026-01-01 (period 2): the fund
    # pays 500k (cap), the guarantee company 30% x 4m = 1.2m, capped at 1m. They paid 1.5m / 4m
    # = 37.5% of it and take 37.5% of A's 1.2m recovery: the deal keeps 750k.
    rs, _ins, rec = _cover_columns(DEFAULTED, "base")
    assert_cents(rs, [0, 1_500_000, 0, 0], "risk sharing")
    assert_cents(rec, [0, 1_200_000 * (1 - 1_500_000 / 4_000_000), 150_000, 0], "recovery kept")


# --------------------------------------------------------------------------- loss cover: Monte Carlo


def test_zero_pd_paths_equal_the_deterministic_run_with_loss_cover() -> None:
    text = REALISED.replace("  correlation: 0.2\n", "  correlation: 0.2\n  pd_multiplier: 0\n")
    text = text.replace("scenarios:\n", "scenarios:\n  quiet: {recovery: {rate: 0.3, lag_months: 12}}\n")
    model = compile_text(text)
    det = api.run(model, "quiet")
    result = simulate(model, paths=8, seed=2, threads=2, keep=[0, 7])
    for i, kept in result.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")


def _named_defaults(model: CompiledModel, seed: int, path: int) -> dict[str, int]:
    from test_montecarlo import default_periods

    return default_periods(model, seed, path)


def test_paths_equal_deterministic_runs_with_the_same_named_defaults() -> None:
    """On each path, caps, payer defaults and the recoveries payers take over are those of the
    deterministic scenario in which the same obligors default in the same periods."""
    for text in (REALISED, DEFAULTED):
        hot = text.replace("pd: 0.1}", "pd: 0.3}").replace("pd: 0.05}", "pd: 0.3}")
        model = compile_text(hot)
        seed, n_paths = 7, 40
        named = {i: _named_defaults(model, seed, i) for i in range(n_paths)}
        borrowers = ("A", "B", "C")
        chosen = [i for i in range(n_paths) if any(b in named[i] for b in borrowers)][:10]
        payer_first = [
            i
            for i in range(n_paths)
            if named[i].get("Fund", 99) < max(named[i].get(b, -1) for b in ("A", "B"))
        ]
        assert payer_first, "a path where the fund defaults before a loss is paid"
        chosen = sorted({*chosen, payer_first[0]})
        recovery = "recovery: {rate: 0.3, lag_months: 12}"
        scenarios = "\n".join(
            f"  path_{i}: {{{recovery}, defaults: {{obligors: {{"
            + ", ".join(f"{name}: {t + 1}" for name, t in named[i].items())
            + "}}}"
            for i in chosen
        )
        det_model = compile_text(
            hot.split("scenarios:\n")[0]
            + "scenarios:\n"
            + scenarios
            + "\ntranches:"
            + hot.split("\ntranches:", 1)[1]
        )
        result = simulate(model, paths=n_paths, seed=seed, threads=2, keep=chosen)
        paid = 0.0
        for i in chosen:
            det = api.run(det_model, f"path_{i}")
            assert_periods_equal(result.kept[i].periods, det.periods, f"path {i} (defaults {named[i]})")
            paid += col(det, "pool.risk_sharing").sum() + col(det, "pool.insurance").sum()
        assert paid > 0.0


# One zero-coupon note on one bullet loan that recovers nothing: on a path the note loses the
# loan (1m) if the borrower defaults, less what the fund pays: 60% of the loss when the
# borrower defaults before the fund (in an earlier period), else nothing.
PAYER_DEFAULT_DEAL = (
    ANNUAL_3Y.format(name="payer default")
    + """obligors:
  - {name: Fund, pd: 0.25}
pools:
  - name: park
    loans:
      - {obligor: Borrower, pd: 0.3, balance: 1m, rate: 0, term_months: 36, amortisation: bullet}
tranches:
  - {name: notes, balance: 1m}
loss_cover:
  - {name: fund, kind: risk_sharing, covers: [park], payers: [{obligor: Fund, share: 60%}]}
risk:
  correlation: 0
  recovery: {model: constant, rate: 0}
waterfalls:
  normal:
    - pay_principal: notes
"""
)


def test_a_payer_that_defaulted_before_the_payment_pays_nothing_on_every_path() -> None:
    model = compile_text(PAYER_DEFAULT_DEAL)
    seed, n_paths = 11, 200
    result = simulate(model, paths=n_paths, seed=seed, threads=2, keep=list(range(60)))
    seen = set()
    for i, kept in result.kept.items():
        named = _named_defaults(model, seed, i)
        paid = col(kept, "pool.risk_sharing")
        expected = np.zeros(model.n_periods)
        if "Borrower" in named:
            tau = named["Borrower"]
            if named.get("Fund", model.n_periods) > tau:
                expected[tau] = 0.6 * 1_000_000
                seen.add("paid")
            else:
                seen.add("fund in default")
        assert_cents(paid, expected, f"path {i} (defaults {named})")
    assert seen == {"paid", "fund in default"}


def test_expected_cover_payment_matches_the_independent_closed_form() -> None:
    """Independent defaults (no correlation): the fund pays 60% x 1m for a default in year t
    when it survives year t: E = 0.6m x sum_t P(borrower defaults in t) x P(fund survives t)."""
    import mc_reference as ref
    from test_montecarlo import assert_within, mean_se

    from ipabs.risk.montecarlo_numba_fns import O_LOSS, P_DEFAULT_RATE

    model = compile_text(PAYER_DEFAULT_DEAL)
    result = simulate(model, paths=40_000, seed=4, threads=2)
    defaulted = result.pool_outcomes[:, P_DEFAULT_RATE] * 1_000_000
    cover = defaulted - result.tranche_outcomes[:, 0, O_LOSS]
    times = (model.grid[1:] - model.grid[0]) / 365.0
    borrower = np.diff(np.concatenate([[0.0], ref.cumulative_pd_annual(0.3, times)]))
    fund_alive = 1.0 - ref.cumulative_pd_annual(0.25, times)
    exact = 0.6 * 1_000_000 * float((borrower * fund_alive).sum())
    m, se = mean_se(cover)
    assert_within(m, exact, se, "expected payment by the fund")


# --------------------------------------------------------------------------- loss cover: located errors

MINIMAL_COVER = """loss_cover:
  - name: fund
    kind: risk_sharing
    covers: [BetaSoft]
    payers:
      - {obligor: StateGuarantor, share: 40%, cap_per_year: 1m}
      - {obligor: AlphaTech, share: 30%}
  - {name: policy, kind: insurance, insurer: StateGuarantor, covers: [AlphaTech]}

"""


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "path", "message", "hint"),
    [
        ("covers: [BetaSoft]", "covers: [BetaSof]", 58, 14, "loss_cover[0].covers[0]",
         "unknown pool, loan or obligor 'BetaSof'", "did you mean 'BetaSoft'?"),
        ("obligor: StateGuarantor, share", "obligor: StateGuarant, share", 60, 19,
         "loss_cover[0].payers[0].obligor", "unknown obligor 'StateGuarant'",
         "did you mean 'StateGuarantor'?"),
        ("insurer: StateGuarantor", "insurer: Nobody", 62, 46, "loss_cover[1].insurer",
         "unknown obligor 'Nobody'", ""),
        ("share: 30%", "share: 70%", 60, 7, "loss_cover[0].payers",
         "the payers' shares add up to 110.0000%, above 100%", ""),
        ("cap_per_year: 1m", "cap_per_year: -1m", 60, 61, "loss_cover[0].payers[0].cap_per_year",
         "", ""),
        ("covers: [AlphaTech]", "covers: [park]", 62, 71, "loss_cover[1].covers[0]",
         "'park' is already covered by 'fund'", ""),
        ("kind: insurance", "kind: insurence", 62, 26, "loss_cover[1].kind", "", ""),
        ("{name: policy", "{name: fund", 62, 12, "loss_cover[1].name", "duplicate name 'fund'", ""),
    ],
)  # fmt: skip
def test_loss_cover_mistakes_are_located(
    minimal_text: str, old: str, new: str, line: int, column: int, path: str, message: str, hint: str
) -> None:
    text = minimal_text.replace("\ntriggers:\n", "\n" + MINIMAL_COVER + "triggers:\n")
    parse_deal(text, "deal.yaml")  # valid as written
    assert text.count(old) == 1
    issue = _issue(text.replace(old, new))
    assert (issue.line, issue.column, issue.path) == (line, column, path), str(issue)
    assert message in issue.message, str(issue)
    if hint:
        assert issue.hint == hint, str(issue)


def test_loss_cover_example_of_the_docs_runs_as_described() -> None:
    model = compile_text(_documented("Risk-sharing pools and guarantee insurance"))
    base = api.run(model, "base")
    assert_conserved(base, 1e7)
    assert_cents(col(base, "pool.risk_sharing"), [0, 500_000 + 840_000, 0, 0], "risk sharing")
    assert_cents(col(base, "pool.insurance"), [0, 0, 1_500_000, 0], "insurance")
    assert_cents(col(base, "pool.recovery"), [0, 1_200_000, 150_000, 0], "recovery kept")
    fails = api.run(model, "guarantee_co_fails")
    assert_cents(col(fails, "pool.risk_sharing"), [0, 500_000, 0, 0], "only the fund pays")
    result = simulate(model, paths=2_000, seed=1, threads=2)
    assert 0.0 < result.tranches.loc["sub", "expected_loss"] < 1.0
