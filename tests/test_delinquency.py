"""Delinquency as a state: roll rates between days-past-due buckets, cures that pay the arrears,
servicer advances and the delinquency trigger.

The deterministic chain is checked against an exact loan-level Markov chain written here in a
different form: each delinquent loan is tracked with the period of its first missed payment,
so its arrears are the schedule's payments since then (the kernel keeps pooled arrears
amounts per bucket instead)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.errors import DealError

# A 12% loan of 100 on 30/360: 1.00 of interest a month while it is interest-only.
DEAL = """
deal:
  name: delinquency
  closing_date: 2025-01-01
  first_payment_date: 2025-02-01
  payment_frequency: FREQ
  legal_final_date: 2028-01-01
  day_count: 30/360
obligors:
  - {name: S, pd: 1%}
pools:
  - name: p
    loans:
      - {obligor: A, balance: 100, rate: 12%, term_months: 24, amortisation: AMORT,
         payment_frequency: FREQ, day_count: 30/360}
scenarios:
  base: {}
  late:
    delinquency: {roll_rates: [10%, 50%, 50%, 50%], cure_rates: [20%, 10%, 5%]}
  late_cdr:
    defaults: {cdr: 6%}
    prepayment: {cpr: 12%}
    delinquency: {roll_rates: [4%, 40%, 60%, 30%], cure_rates: [30%, 20%, 10%]}
  still:
    delinquency: {roll_rates: [0, 0, 0, 0]}
  servicer_fails:
    delinquency: {roll_rates: [10%, 50%, 50%, 50%], cure_rates: [20%, 10%, 5%]}
    defaults: {obligors: {S: 3}}
ADVANCES
tranches:
  - {name: senior, balance: 80, coupon: 5%}
  - {name: sub, balance: 20}
triggers:
  - {name: dq60, kind: delinquency, days_past_due: 60, periods: 3, threshold: 5%,
     effect: {sequential: true}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: [senior]}
    - pay_residual: sub
"""

ROLL = [0.10, 0.50, 0.50, 0.50]
CURE = [0.20, 0.10, 0.05]


def _deal(freq: str = "monthly", amort: str = "interest_only_then_bullet", advances: str = "") -> str:
    return DEAL.replace("FREQ", freq).replace("AMORT", amort).replace("ADVANCES", advances)


def loan_chain(
    interest: np.ndarray,
    principal: np.ndarray,
    balance_end: np.ndarray,
    balance: float,
    months: np.ndarray,
    roll: list[float],
    cure: list[float],
    mdr: np.ndarray | None = None,
    smm: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Expected flows of one loan over an exact chain on (bucket, first missed period) states."""
    n = len(interest)
    mdr = np.zeros(n) if mdr is None else mdr
    smm = np.zeros(n) if smm is None else smm
    b_start = np.concatenate([[balance], balance_end[:-1]])
    current = 1.0
    behind: dict[tuple[int, int], float] = {}  # (bucket 1..3, first missed period) -> mass
    keys = ("interest", "principal", "prepayment", "defaults", "start", "end", "d30", "d60", "d90")
    out = {k: np.zeros(n) for k in keys}

    def owed(j: int, t: int, flow: np.ndarray) -> float:  # the schedule's payments j .. t-1
        return float(flow[j:t].sum())

    for t in range(n):
        out["start"][t] = current * b_start[t] + sum(m * b_start[j] for (_, j), m in behind.items())
        c_start = current
        direct = current * mdr[t]
        current -= direct
        out["defaults"][t] += direct * b_start[t]
        for _ in range(int(months[t])):
            moved: dict[tuple[int, int], float] = {}
            cured = current * (1 - roll[0])
            moved[(1, t)] = moved.get((1, t), 0.0) + current * roll[0]
            for (b, j), m in behind.items():
                r, c = roll[b], cure[b - 1]
                out["interest"][t] += m * c * owed(j, t, interest)  # the arrears, paid on cure
                out["principal"][t] += m * c * owed(j, t, principal)
                cured += m * c
                if b == 3:
                    out["defaults"][t] += m * r * b_start[j]  # balance when it stopped paying
                else:
                    moved[(b + 1, j)] = moved.get((b + 1, j), 0.0) + m * r
                moved[(b, j)] = moved.get((b, j), 0.0) + m * (1 - r - c)
            current, behind = cured, moved
        out["interest"][t] += current * interest[t]
        out["principal"][t] += current * principal[t]
        prepaid = min(c_start * smm[t], current)
        out["prepayment"][t] = prepaid * balance_end[t]
        current -= prepaid
        out["end"][t] = current * balance_end[t]
        for (b, j), m in behind.items():
            out["end"][t] += m * b_start[j]
            out[f"d{30 * b}"][t] += m * b_start[j]
    return out


def _check_chain(freq: str, amort: str, scenario: str, mdr_cdr: float = 0.0, cpr: float = 0.0) -> None:
    from ipabs.risk.deterministic import period_months, period_rate

    model = compile_text(_deal(freq, amort))
    coll = api.collections(model, scenario).sum(axis=0)
    sc = model.spec.scenarios[scenario]
    months = period_months(model.collection_grid)
    n = model.n_periods
    mdr = np.array([period_rate(np.array([mdr_cdr]), int(m))[0] for m in months]) if mdr_cdr else None
    smm = np.array([period_rate(np.array([cpr]), int(m))[0] for m in months]) if cpr else None
    ref = loan_chain(
        model.sched_interest[0],
        model.sched_principal[0],
        model.sched_balance[0],
        100.0,
        months,
        sc.delinquency.roll_rates,
        sc.delinquency.cure_rates,
        mdr,
        smm,
    )
    from ipabs.engine.layout import COLLECTION_COLUMNS

    names = {
        "interest": "interest",
        "principal": "scheduled_principal",
        "prepayment": "prepayment",
        "defaults": "defaults",
        "start": "balance_start",
        "end": "balance_end",
        "d30": "delinquent_30",
        "d60": "delinquent_60",
        "d90": "delinquent_90",
    }
    for k, c in names.items():
        got = coll[:, COLLECTION_COLUMNS.index(c)]
        np.testing.assert_allclose(got, ref[k][:n], rtol=0, atol=1e-9, err_msg=f"{freq} {amort} {k}")


@pytest.mark.parametrize(
    ("freq", "amort"),
    [("monthly", "interest_only_then_bullet"), ("monthly", "annuity"), ("quarterly", "equal_principal")],
)
def test_the_chain_matches_an_exact_loan_level_chain(freq: str, amort: str) -> None:
    _check_chain(freq, amort, "late")


def test_direct_defaults_and_prepayments_combine_with_the_chain() -> None:
    _check_chain("monthly", "annuity", "late_cdr", mdr_cdr=0.06, cpr=0.12)


def test_first_periods_by_hand() -> None:
    # period 1: 10% of the loan falls 30 days behind: it pays 0.90 of the 1.00 interest
    # period 2: 20% of those cure and pay 0.02 of arrears; 0.81 + 0.02 is current again and
    #   pays 0.83; 0.09 newly behind + 0.03 still 30 days behind, 0.05 rolled to 60
    # period 4: the 2.5 that reached 90+ in period 3 rolls into default at 50%: 1.25
    r = run_text(_deal(), "late")
    assert_cents(col(r, "pool.interest")[:2], [0.90, 0.85], "interest")
    assert_cents(col(r, "pool.delinquent_30")[:2], [10.0, 12.0], "30 days")
    assert_cents(col(r, "pool.delinquent_60")[:3], [0.0, 5.0, 8.0], "60 days")
    assert_cents(col(r, "pool.delinquent_90")[:3], [0.0, 0.0, 2.5], "90 days")
    assert_cents(col(r, "pool.defaults")[:4], [0.0, 0.0, 0.0, 1.25], "defaults")
    assert_cents(col(r, "pool.missed_interest")[:2], [0.10, 0.17], "missed")
    # the 60+ ratio averaged over three periods: (0 + 5% + 10.5%) / 3
    assert_cents(col(r, "dq60.value")[:3] * 1e4, [0.0, 250.0, (0.05 + 0.105) / 3 * 1e4], "ratio")
    assert col(r, "dq60.breached")[:4].tolist() == [0, 0, 1, 1]
    assert_conserved(r)


def test_zero_roll_rates_are_the_deal_without_delinquency() -> None:
    still = run_text(_deal(amort="annuity"), "still")
    base = run_text(_deal(amort="annuity"), "base")
    for c in ("pool.interest", "pool.scheduled_principal", "pool.balance_end", "senior.balance_end"):
        np.testing.assert_array_equal(col(still, c), col(base, c))
    assert not col(still, "pool.delinquent_30").any()


ADVANCES = "servicer_advances: {servicer: S}"


def test_the_servicer_advances_missed_interest_and_is_repaid_as_arrears_clear() -> None:
    r = run_text(_deal(advances=ADVANCES), "late")
    missed = col(r, "pool.missed_interest")
    np.testing.assert_allclose(col(r, "deal.advanced_interest"), missed, atol=1e-12)
    # period 2: 20% of the 0.10 of arrears cured: 0.02 of the advances are repaid
    assert_cents(col(r, "deal.advances_repaid")[:2], [0.0, 0.02], "repaid")
    # what the servicer is owed follows the interest arrears while it advances them all
    arrears = col(r, "pool.arrears_interest")
    np.testing.assert_allclose(col(r, "deal.advances_outstanding")[:12], arrears[:12], atol=1e-9)
    # the notes' interest (80 x 5% / 12 = 0.3333) is paid in full either way; the 0.10
    # advanced in period 1 pays down the senior note, the 0.02 repaid in period 2 does not
    assert_conserved(r)
    plain = run_text(_deal(), "late")
    extra = col(r, "senior.principal_paid") - col(plain, "senior.principal_paid")
    assert_cents(extra[:2], [0.10, 0.17 - 0.02], "extra principal")


def test_a_defaulted_servicer_advances_nothing_more() -> None:
    r = run_text(_deal(advances=ADVANCES), "servicer_fails")
    adv = col(r, "deal.advanced_interest")
    assert adv[:2].tolist() == pytest.approx(col(r, "pool.missed_interest")[:2].tolist())
    assert not adv[2:].any()
    assert_conserved(r)


def test_principal_advances() -> None:
    r = run_text(
        _deal(amort="annuity", advances="servicer_advances: {servicer: S, interest: false, principal: true}"),
        "late",
    )
    np.testing.assert_allclose(col(r, "deal.advanced_principal"), col(r, "pool.missed_principal"), atol=1e-12)
    assert not col(r, "deal.advanced_interest").any()
    assert_conserved(r)


def test_formulas_read_delinquent_balances() -> None:
    text = _deal().replace(
        "  - {name: dq60,",
        "  - {name: dq_amount, kind: reserve_below_target, account: r, threshold: 1,"
        " effect: {sequential: true}}\n  - {name: dq60,",
    )
    text = text.replace(
        "tranches:\n",
        "accounts:\n  - {name: r, target: {share: 50%, of: delinquent_60}}\ntranches:\n",
    ).replace("    - pay_residual: sub", "    - fund_account: r\n    - pay_residual: sub")
    r = run_text(text, "late")
    d60 = col(r, "pool.delinquent_60") + col(r, "pool.delinquent_90")
    assert_cents(col(r, "r.target")[:6], 0.5 * d60[:6], "target")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("roll_rates: [0, 0, 0, 0]", "roll_rates: [0, 0, 0]", "at least 4"),
        (
            "roll_rates: [4%, 40%, 60%, 30%], cure_rates: [30%, 20%, 10%]",
            "roll_rates: [4%, 80%, 60%, 30%], cure_rates: [30%, 20%, 10%]",
            "more than 100% a month together",
        ),
        ("ADVANCES", "servicer_advances: {servicer: Nobody}", "unknown obligor 'Nobody'"),
        (
            "ADVANCES",
            "servicer_advances: {servicer: S, interest: false}",
            "set `interest` or `principal` to true",
        ),
        ("days_past_due: 60, periods: 3", "days_past_due: 45, periods: 3", "days_past_due"),
    ],
)
def test_bad_delinquency_input_is_located(old: str, new: str, message: str) -> None:
    text = DEAL.replace("FREQ", "monthly").replace("AMORT", "annuity")
    text = text.replace(old, new).replace("ADVANCES", "")
    with pytest.raises(DealError) as err:
        parse_deal(text, "deal.yaml")
    assert message in str(err.value), str(err.value)
    assert re.search(r"deal\.yaml:\d+", str(err.value)), str(err.value)


def test_the_documented_example_runs_as_described() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "delinquency.md").read_text(encoding="utf-8")
    example = re.findall(r"```yaml\n(.*?)```", text, re.S)[-1]
    r = run_text(example, "stress")
    base = run_text(example, "base")
    assert not col(base, "dq60.breached").any()
    assert col(r, "dq60.breached").any()
    assert col(r, "deal.advanced_interest").sum() > 0
    assert_conserved(r)


# ---- Monte Carlo


def _mc_deal(roll: list[float], cure: list[float], pd: float = 0.0) -> str:
    rates = f"{{roll_rates: {roll}, cure_rates: {cure}}}"
    text = _deal(amort="annuity", advances=ADVANCES)
    text = text.replace("{obligor: A,", f"{{obligor: A, pd: {pd},")
    text = text.replace("{name: S, pd: 1%}", "{name: S, pd: 0}")
    text = text.replace("  base: {}", f"  base: {{}}\n  chain:\n    delinquency: {rates}")
    risk = f"risk:\n  factors: {{global: 0.3}}\n  delinquency: {rates}\n"
    return text.replace("waterfalls:", risk + "waterfalls:", 1)


def _cured_chain(roll: list[float], cure: list[float]) -> tuple[list[float], list[float]]:
    """The chain conditioned on curing, from the absorption probabilities of the chain on
    (30, 60, 90+) with absorbing states cure and default: h = (I - Q)^-1 b."""
    q = np.array(
        [
            [1 - roll[1] - cure[0], roll[1], 0.0],
            [0.0, 1 - roll[2] - cure[1], roll[2]],
            [0.0, 0.0, 1 - roll[3] - cure[2]],
        ]
    )
    h = np.linalg.solve(np.eye(3) - q, np.array(cure))
    new_roll = [float(x) for x in (roll[0] * h[0], roll[1] * h[1] / h[0], roll[2] * h[2] / h[1], 0.0)]
    new_cure = [float(cure[k] / h[k]) for k in range(3)]
    return new_roll, new_cure


def test_zero_pd_monte_carlo_paths_equal_the_deterministic_chain() -> None:
    from test_montecarlo import assert_periods_equal

    from ipabs.montecarlo import simulate

    # no roll into default: the survivors' chain is the scenario's
    text = _mc_deal([0.1, 0.5, 0.5, 0.0], [0.2, 0.1, 0.05])
    det = run_text(text, "chain")
    assert col(det, "dq60.breached").any() and col(det, "deal.advanced_interest").any()
    res = simulate(compile_text(text), paths=4, seed=3, keep=[0, 2])
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")


def test_survivors_follow_the_chain_conditioned_on_curing() -> None:
    from test_montecarlo import assert_periods_equal

    from ipabs.montecarlo import simulate

    roll, cure = [0.1, 0.5, 0.5, 0.5], [0.2, 0.1, 0.05]
    text = _mc_deal(roll, cure)
    new_roll, new_cure = _cured_chain(roll, cure)
    cured = text.replace(
        f"  chain:\n    delinquency: {{roll_rates: {roll}, cure_rates: {cure}}}",
        f"  chain:\n    delinquency: {{roll_rates: {new_roll}, cure_rates: {new_cure}}}",
    )
    det = run_text(cured, "chain")
    res = simulate(compile_text(text), paths=2, seed=3, keep=[0])
    assert_periods_equal(res.kept[0].periods, det.periods, "survivor")


def test_a_defaulter_stops_paying_for_the_months_its_roll_takes() -> None:
    from ipabs.montecarlo import simulate

    text = _mc_deal([0.1, 0.5, 0.5, 0.5], [0.2, 0.1, 0.05], pd=0.5)
    model = compile_text(text)
    res = simulate(model, paths=60, seed=11, keep=range(60))
    seen = 0
    for kept in res.kept.values():
        p = kept.periods
        defaults = p["pool.defaults"].to_numpy()
        if not defaults.any():
            continue
        tau = int(np.nonzero(defaults)[0][0])
        if tau >= 20:  # near the loan's maturity (24 months) the balance left is small
            continue
        behind = p["pool.delinquent_30"] + p["pool.delinquent_60"] + p["pool.delinquent_90"]
        # the loan is behind (and not paying) without a break up to its default, at least
        # three months: 30, 60 and 90+ days
        run = 0
        while tau - run - 1 >= 0 and behind.iloc[tau - run - 1] > 0.99 * defaults[tau]:
            run += 1
        assert run >= min(3, tau), (tau, run)
        if run >= 3:
            assert p["pool.delinquent_90"].iloc[tau - 1] == pytest.approx(defaults[tau])
            assert p["pool.interest"].iloc[tau - run : tau].abs().max() < 1e-9
            seen += 1
        assert_conserved(kept)
    assert seen >= 10


def test_the_months_behind_before_default_are_geometric_sojourns() -> None:
    from ipabs.numerics.rng_numba_fns import seed_state
    from ipabs.risk.delinquency_numba_fns import months_to_default

    exit_rate = np.array([0.7, 0.6, 0.55])  # roll + cure of the 30, 60 and 90+ buckets
    state = np.zeros(4, dtype=np.uint64)
    seed_state(state, 7, 0, 0)
    draws = np.array([months_to_default(state, exit_rate) for _ in range(20_000)])
    # each bucket's sojourn given that it rolls on is geometric: mean 1/p, variance (1-p)/p^2
    mean = (1 / exit_rate).sum()
    var = ((1 - exit_rate) / exit_rate**2).sum()
    se = np.sqrt(var / len(draws))
    assert abs(draws.mean() - mean) < 4 * se
    assert draws.min() == 3
    assert abs(draws.var() - var) < 0.1 * var


def test_the_workbook_shows_the_buckets_when_a_scenario_has_them() -> None:
    from types import SimpleNamespace

    import openpyxl

    from ipabs.report.workbook import _pool

    text = _deal(advances=ADVANCES)
    for lang, heading in (("en", "delinquent 60-89 days"), ("zh", "逾期60-89天")):
        wb = openpyxl.Workbook()
        data = SimpleNamespace(
            lang=lang, runs={"late": run_text(text, "late"), "base": run_text(text, "base")}
        )
        _pool(wb.active, data)
        headers = [c.value for c in wb.active[1]]
        assert heading in headers
        column = headers.index(heading) + 1
        assert wb.active.cell(row=3, column=column).value == pytest.approx(5.0)  # period 2 of "late"
    wb = openpyxl.Workbook()
    _pool(wb.active, SimpleNamespace(lang="en", runs={"base": run_text(text, "base")}))
    assert "delinquent 60-89 days" not in [c.value for c in wb.active[1]]
