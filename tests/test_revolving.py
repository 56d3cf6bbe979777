"""The revolving period: purchases, idle cash, early amortisation, purchased assets' cash flows
(hand-computed to the cent), and purchased loans as new obligors in the Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs.deal.load import parse_deal
from ipabs.errors import DealError
from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import P_DEFAULT_RATE, P_DEFAULTS, P_PURCHASED

Y1 = 366 / 365  # 2024 is a leap year; later years have 365 days

DEAL = """
deal:
  name: revolving
  closing_date: 2024-01-01
  first_payment_date: 2025-01-01
  payment_frequency: annual
  legal_final_date: 2027-01-01
obligors:
  - {name: Seller, pd: 0}
pools:
  - name: p
    loans:
      - {obligor: A, balance: 100, rate: 10%, term_months: 12, payment_frequency: annual, pd: PD_A}
scenarios:
  base:
    defaults: {cdr: CDR}
    recovery: {rate: 0}
SCENARIOS
revolving:
  periods: 1
  templates:
    - {name: one_year, share: 100%, loan_size: 10, rate: 8%, term_months: 12,
       payment_frequency: annual, pd: PD_T, industry: software}
  LIMITS
tranches:
  - {name: senior, balance: 90, coupon: 5%}
  - {name: sub, balance: 10}
TRIGGERS
risk:
  factors: {global: LOADING, industry: 0.0}
  recovery: {model: constant, rate: 0}
waterfalls:
  normal:
    - pay_interest: senior
    - buy_assets: all
    - pay_principal: [senior, sub]
    - pay_residual: sub
"""


def deal(
    cdr: float = 0.0,
    limits: str = "",
    triggers: str = "",
    scenarios: str = "",
    pd_a: float = 0.0,
    pd_t: float = 0.0,
    loading: float = 0.3,
) -> str:
    return (
        DEAL.replace("CDR", str(cdr))
        .replace("  LIMITS", limits)
        .replace("TRIGGERS", triggers)
        .replace("SCENARIOS", scenarios)
        .replace("PD_A", str(pd_a))
        .replace("PD_T", str(pd_t))
        .replace("LOADING", str(loading))
    )


def test_principal_collections_buy_new_loans_that_repay_the_notes_later() -> None:
    r = run_text(deal())
    cash1 = 100 * 0.10 * Y1 + 100
    bought = cash1 - 90 * 0.05 * Y1  # all cash after the senior's interest
    assert_cents(col(r, "deal.revolving"), [1, 0, 0], "revolving")
    assert_cents(col(r, "deal.purchased"), [bought, 0, 0], "par bought")
    assert_cents(col(r, "deal.purchase_price"), [bought, 0, 0], "price paid")
    assert_cents(col(r, "deal.uninvested_cash"), [0, 0, 0], "idle cash")
    assert_cents(col(r, "deal.purchased_balance"), [bought, 0, 0], "purchased balance")
    # the loans bought pay 8% for a year and their principal at maturity
    assert_cents(col(r, "deal.purchased_collections"), [0, bought * 1.08, 0], "their collections")
    assert_cents(col(r, "deal.collections"), [cash1, bought * 1.08, 0], "collections")
    assert_cents(col(r, "senior.principal_paid"), [0, 90, 0], "senior principal")
    assert_cents(col(r, "sub.principal_paid"), [0, 10, 0], "sub principal")
    assert_cents(col(r, "sub.residual_paid"), [0, bought * 1.08 - 4.5 - 100, 0], "sub residual")
    assert_cents(col(r, "deal.pool_balance"), [bought, 0, 0], "pool balance")
    assert_conserved(r, 100)


def test_purchased_loans_default_at_the_scenarios_rate() -> None:
    r = run_text(deal(cdr=0.1))
    # period 1: 10% of A defaults at the start; the survivors pay interest and principal
    cash1 = 90 * 0.10 * Y1 + 90
    bought = cash1 - 90 * 0.05 * Y1
    # period 2: 10% of the purchased loans default; the rest pay 8% and their principal
    cash2 = 0.9 * bought * 1.08
    senior2 = cash2 - 4.5
    assert_cents(col(r, "deal.purchased"), [bought, 0, 0], "par bought")
    assert_cents(col(r, "deal.purchased_defaults"), [0, 0.1 * bought, 0], "their defaults")
    assert_cents(col(r, "deal.cumulative_defaults"), [10, 10 + 0.1 * bought, 10 + 0.1 * bought], "defaults")
    assert_cents(col(r, "senior.principal_paid"), [0, senior2, 0], "senior principal")
    assert r.summary.loc["senior", "principal_loss"] == pytest.approx(90 - senior2, abs=1e-9)
    assert_conserved(r, 100)


def test_ineligible_assets_are_not_bought_and_the_cash_waits() -> None:
    r = run_text(deal(limits="  limits: {max_term_months: 6}"))
    cash1 = 100 * 0.10 * Y1 + 100
    idle = cash1 - 90 * 0.05 * Y1
    assert_cents(col(r, "deal.purchased"), [0, 0, 0], "par bought")
    assert_cents(col(r, "deal.uninvested_cash"), [idle, 0, 0], "idle cash")
    assert_cents(col(r, "deal.cash_carried_forward"), [idle, 0, 0], "carried")
    # the cash waits through the revolving period, then repays the notes
    assert_cents(col(r, "senior.principal_paid"), [0, 90, 0], "senior principal")
    assert_cents(col(r, "sub.residual_paid"), [0, idle - 4.5 - 100, 0], "sub residual")
    assert_conserved(r, 100)


def test_a_minimum_rate_limit_keeps_low_coupon_assets_out() -> None:
    ok = run_text(deal(limits="  limits: {min_rate: 8%}"))
    out = run_text(deal(limits="  limits: {min_rate: 8.01%}"))
    assert col(ok, "deal.purchased")[0] > 100
    assert col(out, "deal.purchased")[0] == 0.0


def test_uninvested_cash_trigger_fires_after_cash_sat_idle() -> None:
    trigger = """triggers:
  - name: idle
    kind: uninvested_cash
    threshold: 50%
    effect: {sequential: true}"""
    r = run_text(deal(limits="  limits: {max_term_months: 6}", triggers=trigger))
    # tested with the previous date's idle cash (105.5 of an original pool of 100)
    assert_cents(col(r, "idle.breached"), [0, 1, 0], "breached")


def test_a_seller_default_ends_the_revolving_period() -> None:
    trigger = """triggers:
  - name: seller
    kind: obligor_default
    obligor: Seller
    curable: false
    effect: {end_revolving: true}"""
    scenarios = """  seller_fails:
    defaults: {cdr: 0, obligors: {Seller: 1}}
    recovery: {rate: 0}"""
    text = deal(triggers=trigger, scenarios=scenarios)
    base = run_text(text)
    failed = run_text(text, "seller_fails")
    assert_cents(col(base, "seller.active"), [0, 0, 0], "seller fine")
    assert_cents(col(failed, "seller.active"), [1, 1, 1], "seller in default")
    assert_cents(col(failed, "deal.revolving"), [0, 0, 0], "revolving ended")
    assert_cents(col(failed, "deal.purchased"), [0, 0, 0], "nothing bought")
    # the cash amortises the notes at once
    assert_cents(col(failed, "senior.principal_paid"), [90, 0, 0], "senior principal")
    assert_conserved(failed, 100)


def test_without_revolving_the_buy_step_does_nothing() -> None:
    text = deal().replace("revolving:\n  periods: 1", "revolving:\n  until: 2024-06-30")
    r = run_text(text)
    assert_cents(col(r, "deal.purchased"), [0, 0, 0], "par bought")
    assert_cents(col(r, "senior.principal_paid"), [90, 0, 0], "senior principal")


# ------------------------------------------------------------------------- the Monte Carlo


def test_zero_pd_paths_equal_the_deterministic_run() -> None:
    text = deal()
    model = compile_text(text)
    det = run_text(text)
    res = simulate(model, paths=4, seed=5, keep=[0, 3])
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    assert np.all(res.pool_outcomes[:, P_PURCHASED] == pytest.approx(col(det, "deal.purchased")[0]))


@pytest.mark.parametrize("loading", [0.0, 0.5])
def test_purchased_loans_default_at_their_pd(loading: float) -> None:
    # 11 loans bought on 2025-01-01, each with a 20% PD over its one year (365 days): the
    # pool's own loan cannot default, so every default is a purchased loan's
    pd = 0.2
    model = compile_text(deal(pd_t=pd, loading=loading))
    paths = 4000
    res = simulate(model, paths=paths, seed=21)
    n = res.pool_outcomes[:, P_DEFAULTS]
    assert set(np.unique(n)) <= set(range(12))
    mean, se = n.mean(), n.std(ddof=1) / np.sqrt(paths)
    assert abs(mean - 11 * pd) < 4 * se, (mean, se)
    if loading == 0.0:  # independent: the count is binomial(11, pd)
        assert n.var(ddof=1) == pytest.approx(11 * pd * (1 - pd), rel=0.1)
    else:  # correlated through the factor: more dispersed than the binomial
        assert n.var(ddof=1) > 1.5 * 11 * pd * (1 - pd)
    # a default is a default of all that was bought: the default rate counts it over all ever owned
    bought = res.pool_outcomes[:, P_PURCHASED]
    np.testing.assert_allclose(res.pool_outcomes[:, P_DEFAULT_RATE], n * bought / 11 / (100 + bought))


def test_purchased_loans_draw_from_their_own_stream() -> None:
    # the pool's own defaults on a path do not change with what the path buys
    keep = list(range(40))
    a = simulate(compile_text(deal(pd_a=0.3, pd_t=0.1)), paths=40, seed=3, keep=keep)
    limits = "  limits: {max_term_months: 6}"
    b = simulate(compile_text(deal(pd_a=0.3, pd_t=0.1, limits=limits)), paths=40, seed=3, keep=keep)
    assert np.any(a.pool_outcomes[:, P_PURCHASED] > 0) and np.all(b.pool_outcomes[:, P_PURCHASED] == 0)
    own = [a.kept[i].periods["pool.defaults"].sum() for i in keep]
    assert 0 < sum(x > 0 for x in own) < 40
    assert own == [b.kept[i].periods["pool.defaults"].sum() for i in keep]


def test_runs_do_not_depend_on_threads() -> None:
    model = compile_text(deal(pd_a=0.05, pd_t=0.1))
    one = simulate(model, paths=300, seed=8, threads=1)
    two = simulate(model, paths=300, seed=8, threads=2, batch_size=37)
    np.testing.assert_array_equal(one.tranche_outcomes, two.tranche_outcomes)
    np.testing.assert_array_equal(one.pool_outcomes, two.pool_outcomes)


# ------------------------------------------------------------------------- located errors


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("  periods: 1\n", "", "revolving", "exactly one of `until`"),
        ("share: 100%", "share: 60%", "revolving", "add up to 100%"),
        ("loan_size: 10", "loan_size: 0", "revolving.templates[0].loan_size", ""),
        ("    - buy_assets: all\n", "    - buy_assets: some\n", "waterfalls.normal[1].buy_assets", ""),
        (
            "    - pay_residual: sub\n",
            "    - buy_assets: all\n    - pay_residual: sub\n",
            "waterfalls.normal[3].buy_assets",
            "buys assets twice",
        ),
    ],
)
def test_revolving_mistakes_are_located(old: str, new: str, where: str, message: str) -> None:
    text = deal().replace(old, new)
    with pytest.raises(DealError) as err:
        parse_deal(text)
    issues = err.value.issues
    assert any(i.path.startswith(where) and message in i.message for i in issues), [str(i) for i in issues]


def test_an_obligor_default_trigger_names_a_known_obligor() -> None:
    trigger = """triggers:
  - name: seller
    kind: obligor_default
    obligor: Sellr
    effect: {end_revolving: true}"""
    with pytest.raises(DealError) as err:
        parse_deal(deal(triggers=trigger))
    assert any(i.path == "triggers[0].obligor" and "Seller" in i.hint for i in err.value.issues)


def test_the_revolving_example_of_the_docs_runs_and_buys() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "structures.md").read_text(encoding="utf-8")
    body = text.split("## Revolving purchase\n", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```yaml\n(.*?)```", body, flags=re.S)
    r = run_text(example)
    assert col(r, "deal.purchased").sum() > 50e6
    # payment dates to 2025-04-01 buy; 2025-07-01 is after `until`
    assert col(r, "deal.revolving")[:5].all() and not col(r, "deal.revolving")[5:].any()
    assert_conserved(r, 1e8)
    res = simulate(compile_text(example), paths=200, seed=1)
    assert res.pool_outcomes[:, P_PURCHASED].mean() > 50e6


def test_breakeven_stresses_refuse_a_revolving_deal_rather_than_miss_its_purchases() -> None:
    # a stress of the pool's defaults would leave purchased assets at the scenario's rates
    from pathlib import Path

    from ipabs.cli import EXIT_INVALID, main

    deal = Path(__file__).resolve().parents[1] / "scenarios" / "pudong_revolving_ip_pledge.yaml"
    assert main(["breakeven", str(deal), "--tranche", "senior"]) == EXIT_INVALID


def test_ratings_of_a_revolving_deal_say_why_they_skip_the_breakeven(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pathlib import Path

    from ipabs.cli import EXIT_OK, main

    deal = Path(__file__).resolve().parents[1] / "scenarios" / "pudong_revolving_ip_pledge.yaml"
    assert main(["rate", str(deal), "--paths", "2000"]) == EXIT_OK
    assert "do not reach the assets a revolving period buys" in " ".join(capsys.readouterr().out.split())
