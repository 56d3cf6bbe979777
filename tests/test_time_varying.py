"""Time-varying scenarios: royalty bases along growth and level vectors and dated shocks.

The expected royalties are built here from the calendar and the closed form of the base (a
running royalty of 10% accrues ``10% x sales(mid-slot) x days / 365``), not from the
engine's slots or its path function.
"""

from __future__ import annotations

import datetime as dt
import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from helpers import CENT, assert_cents, col, compile_text

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.deal.risk import RiskModel
from ipabs.errors import DealError
from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import P_ROYALTY

CLOSING = dt.date(2000, 1, 1)
# quarterly note dates; the stream pays on the same dates
DATES = [dt.date(2000 + (3 * k // 12), 1 + (3 * k) % 12, 1) for k in range(1, 9)]
SALES = 1_200_000.0
RATE = 0.10


def deal(royalty: str = "{}", overrides: str = "", risk: str = "", second_stream: bool = False) -> str:
    """A flat-rate running royalty on sales of 1.2m growing 5% a year, quarterly from
    2000-01-01 to 2002-01-01, and a zero-coupon note taking all cash."""
    second = (
        "\n      - {obligor: Other, kind: running, rate: 10%, sales: {initial: 1.2m, growth: 5%}}"
        if second_stream
        else ""
    )
    return f"""deal:
  name: time-varying royalties
  closing_date: 2000-01-01
  first_payment_date: 2000-04-01
  payment_frequency: quarterly
  legal_final_date: 2002-01-01
  collateral_shortfall_reason: the streams are valued by appraisal
pools:
  - name: pool
    royalties:
      - {{obligor: Licensee, kind: running, rate: 10%, sales: {{initial: 1.2m, growth: 5%}}}}{second}
tranches:
  - {{name: notes, balance: 1m}}
waterfalls:
  normal:
    - pay_principal: notes
    - pay_residual: notes
scenarios:
  base:
    royalty: {royalty}
{overrides}{risk}"""


def days(a: dt.date, b: dt.date) -> float:
    return float((b - a).days)


def expected(sales_at, cuts: tuple[dt.date, ...] = ()) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Royalty per quarter: each quarter (cut at ``cuts``) accrues 10% x sales at the middle
    of each piece x its days / 365, paid at the quarter's end."""
    out = []
    prev = CLOSING
    for end in DATES:
        bounds = [prev, *(c for c in cuts if prev < c < end), end]
        total = 0.0
        for s, e in pairwise(bounds):
            mid = days(CLOSING, s) + days(s, e) / 2.0  # days from closing to the middle
            total += RATE * sales_at(mid) * days(s, e) / 365.0
        out.append(total)
        prev = end
    return np.array(out)


def test_destocking_shock_cuts_the_base_by_40_percent_then_10_percent_a_year() -> None:
    # from 2001-01-01 the licensee destocks: sales drop 40% at once, then fall 10% a year
    shock_day = days(CLOSING, dt.date(2001, 1, 1))

    def sales(mid: float) -> float:
        if mid <= shock_day:
            return SALES * 1.05 ** (mid / 365.0)
        return SALES * 1.05 ** (shock_day / 365.0) * 0.6 * 0.9 ** ((mid - shock_day) / 365.0)

    text = deal("{shocks: [{from: 2001-01-01, level: -40%, growth: -10%}]}")
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    assert_cents(royalty, expected(sales), "royalty per quarter")
    # the first four quarters are untouched: 10% x 1.2m x 1.05^(mid) x days/365
    q1 = RATE * SALES * 1.05 ** (45.5 / 365.0) * 91 / 365.0
    assert royalty[0] == pytest.approx(q1, abs=CENT)


def test_a_shock_inside_a_quarter_splits_the_quarters_accrual_at_its_date() -> None:
    # a level-only shock on 2001-02-15 (mid-quarter): the base keeps growing 5% a year
    shock = dt.date(2001, 2, 15)
    shock_day = days(CLOSING, shock)

    def sales(mid: float) -> float:
        return SALES * 1.05 ** (mid / 365.0) * (0.5 if mid > shock_day else 1.0)

    text = deal("{shocks: [{from: 2001-02-15, level: -50%}]}")
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    want = expected(sales, cuts=(shock,))
    assert_cents(royalty, want, "royalty per quarter")
    # Jan 1 -> Feb 15 (45 days) at full sales, Feb 15 -> Apr 1 (45 days) at half
    q5 = RATE * SALES * (1.05 ** ((366 + 22.5) / 365) * 45 + 0.5 * 1.05 ** ((366 + 67.5) / 365) * 45) / 365
    assert royalty[4] == pytest.approx(q5, abs=CENT)


def test_growth_vector_by_payment_period() -> None:
    # flat for the first four quarters, then 20% a year from 2001-01-01 (the 5th period)
    start_5 = days(CLOSING, dt.date(2001, 1, 1))

    def sales(mid: float) -> float:
        return SALES * 1.2 ** (max(mid - start_5, 0.0) / 365.0)

    text = deal("{growth_vector: [0%, 0%, 0%, 0%, 20%]}")
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    assert_cents(royalty, expected(sales), "royalty per quarter")
    assert royalty[0] == pytest.approx(RATE * SALES * 91 / 365, abs=CENT)


def test_level_vector_scales_the_projected_base_by_period() -> None:
    def sales(mid: float) -> float:
        level = 1.0 if mid < days(CLOSING, DATES[2]) else 0.5  # periods 4.. at half
        return SALES * 1.05 ** (mid / 365.0) * level

    text = deal("{level_vector: [1, 1, 1, 50%]}")
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    assert_cents(royalty, expected(sales), "royalty per quarter")


def test_shock_on_one_stream_through_an_obligor_override() -> None:
    flat = expected(lambda mid: SALES * 1.05 ** (mid / 365.0))
    shock_day = days(CLOSING, dt.date(2001, 1, 1))

    def shocked(mid: float) -> float:
        return SALES * 1.05 ** (mid / 365.0) * (0.6 if mid > shock_day else 1.0)

    shock = "{shocks: [{from: 2001-01-01, level: -40%}]}"
    overrides = f"    overrides:\n      - {{obligor: Other, royalty: {shock}}}\n"
    text = deal(overrides=overrides, second_stream=True)
    royalty = col(api.run(compile_text(text)), "pool.royalty")
    assert_cents(royalty, flat + expected(shocked), "royalty per quarter")


def test_monte_carlo_base_follows_the_risk_models_path() -> None:
    # risk.royalty carries the same shock as the scenario: with no volatility and no defaults
    # every path collects the deterministic royalties, period by period
    shock = "{from: 2001-01-01, level: -40%, growth: -10%}"
    risk = (
        f"risk:\n  default_pd: 0\n  royalty: {{volatility: 0, invalidation_hazard: 0, shocks: [{shock}]}}\n"
    )
    model = compile_text(deal(f"{{shocks: [{shock}]}}", risk=risk))
    det = col(api.run(model), "pool.royalty")
    result = simulate(model, paths=3, seed=5, threads=1, keep=[1])
    assert np.allclose(result.pool_outcomes[:, P_ROYALTY], det.sum(), rtol=0, atol=CENT)
    kept = result.kept[1].periods["pool.royalty"].to_numpy(dtype=np.float64)
    assert_cents(kept, det, "path royalty per quarter")
    # a risk model without the shock projects the unshocked base
    flat = RiskModel.model_validate({"default_pd": 0.0, "royalty": {"volatility": 0.0}})
    plain = simulate(model, paths=1, seed=5, threads=1, risk=flat)
    unshocked = expected(lambda mid: SALES * 1.05 ** (mid / 365.0)).sum()
    assert math.isclose(plain.pool_outcomes[0, P_ROYALTY], unshocked, abs_tol=CENT)


BAD = [
    # (id, royalty, field path, words)
    (
        "shocks out of date order",
        "{shocks: [{from: 2001-06-01, level: -10%}, {from: 2001-01-01, level: -40%}]}",
        "scenarios.base.royalty.shocks",
        "date order",
    ),
    ("shock of -100%", "{shocks: [{from: 2001-01-01, level: -100%}]}", "shocks[0].level", "greater than -1"),
    ("growth and growth_vector", "{growth: 2%, growth_vector: [1%]}", "scenarios.base.royalty", "not both"),
    ("empty level_vector", "{level_vector: []}", "royalty.level_vector", "at least 1"),
    ("negative level", "{level_vector: [1, -0.5]}", "royalty.level_vector[1]", "negative"),
]


@pytest.mark.parametrize(("royalty", "path", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_royalty_path_is_a_located_error(royalty: str, path: str, words: str) -> None:
    text = deal(royalty)
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    (issue,) = info.value.issues
    assert issue.path.endswith(path), issue
    assert words in issue.message, issue
    assert issue.line == next(n for n, line in enumerate(text.splitlines(), 1) if "royalty: {" in line)
    assert issue.column > 0, issue


def test_the_documented_destocking_example_runs() -> None:
    import re
    from pathlib import Path

    from helpers import assert_conserved

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text(encoding="utf-8")
    text = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    model = compile_text(text)
    runs = {name: api.run(model, name) for name in ("base", "destocking", "slowdown")}
    for result in runs.values():
        assert_conserved(result, 1e6)
    base, destocked = (col(runs[n], "pool.royalty") for n in ("base", "destocking"))
    assert_cents(destocked[:4], base[:4], "before the shock")
    assert np.all(destocked[4:] < base[4:])


# --------------------------------------------------------------------------- recovery timing


def recovery_deal(recovery: str, default_period: int, risk_recovery: str = "{rate: 50%}") -> str:
    """Two 1m zero-rate bullet loans due 2026-01-01, monthly notes; A defaults in the given
    period; the principal deficiency ledger records realised losses."""
    return f"""deal:
  name: recovery timing
  closing_date: 2024-01-01
  first_payment_date: 2024-02-01
  payment_frequency: monthly
  legal_final_date: 2026-01-01
pools:
  - name: pool
    loans:
      - {{obligor: A, balance: 1m, rate: 0, term_months: 24, amortisation: bullet,
         payment_frequency: monthly}}
      - {{obligor: B, balance: 1m, rate: 0, term_months: 24, amortisation: bullet,
         payment_frequency: monthly}}
scenarios:
  base:
    defaults: {{obligors: {{A: {default_period}}}}}
    recovery: {recovery}
tranches:
  - {{name: notes, balance: 2m}}
ledgers:
  principal_deficiency_debits: [realised_losses]
waterfalls:
  normal:
    income:
      - pay_residual: notes
    principal:
      - pay_principal: notes
      - pay_residual: notes
risk:
  default_pd: 0
  recovery: {risk_recovery}
"""


def period_of(day: dt.date) -> int:
    """0-based monthly note period ending on ``day`` (a first of the month)."""
    return (day.year - 2024) * 12 + day.month - 2


def test_recovery_split_30_70_at_6_and_18_months() -> None:
    # A defaults in period 3 (Mar 1 -> Apr 1, 2024) with 1m outstanding; 50% is recovered,
    # 30% of it on 2024-10-01 (6 months after the period's end), 70% on 2025-10-01 (18 months)
    text = recovery_deal("{rate: 50%, timing: [{months: 6, share: 30%}, {months: 18, share: 70%}]}", 3)
    res = api.run(compile_text(text))
    n = 24
    recovery = np.zeros(n)
    recovery[period_of(dt.date(2024, 10, 1))] = 150_000.0
    recovery[period_of(dt.date(2025, 10, 1))] = 350_000.0
    assert period_of(dt.date(2024, 10, 1)) == 8 and period_of(dt.date(2025, 10, 1)) == 20
    assert_cents(col(res, "pool.recovery"), recovery, "recovery")
    loss = np.zeros(n)
    loss[2] = 500_000.0  # the expected loss is known at default
    assert_cents(col(res, "pool.loss"), loss, "loss")
    realised = np.zeros(n)
    realised[20] = 500_000.0  # the loss is realised with the last instalment
    assert_cents(col(res, "pool.realised_loss"), realised, "realised loss")
    # the deficiency ledger records the realised loss at the end of the liquidation
    ledger = np.where(np.arange(n) >= 20, 500_000.0, 0.0)
    ledger[-1] = col(res, "deal.principal_deficiency")[-1]  # legal final: the ledger may close
    assert_cents(col(res, "deal.principal_deficiency")[:-1], ledger[:-1], "principal deficiency")


def test_an_instalment_after_legal_final_is_lost_and_the_loss_never_realised() -> None:
    # A defaults in period 12 (ends 2025-01-01): 30% arrives 2025-07-01, 70% would come on
    # 2026-07-01, after legal final, and is lost
    text = recovery_deal("{rate: 50%, timing: [{months: 6, share: 30%}, {months: 18, share: 70%}]}", 12)
    res = api.run(compile_text(text))
    recovery = np.zeros(24)
    recovery[period_of(dt.date(2025, 7, 1))] = 150_000.0
    assert_cents(col(res, "pool.recovery"), recovery, "recovery")
    assert col(res, "pool.loss")[11] == pytest.approx(850_000.0, abs=CENT)
    assert col(res, "pool.realised_loss").sum() == 0.0


def test_timing_in_one_instalment_equals_lag_months() -> None:
    lag = api.run(compile_text(recovery_deal("{rate: 50%, lag_months: 7}", 4)))
    timing = api.run(compile_text(recovery_deal("{rate: 50%, timing: [{months: 7, share: 1}]}", 4)))
    for name in ("pool.recovery", "pool.loss", "pool.realised_loss", "notes.principal_paid"):
        assert np.array_equal(col(lag, name), col(timing, name)), name


def test_monte_carlo_recovers_in_the_same_instalments() -> None:
    # every obligor defaults with probability 60% a year; on each kept path a default in
    # period tau brings 30% of the recovery 6 months after tau's end and 70% 18 months after
    text = recovery_deal(
        "{rate: 50%}", 3, "{rate: 50%, timing: [{months: 6, share: 30%}, {months: 18, share: 70%}]}"
    )
    model = compile_text(text.replace("default_pd: 0", "default_pd: 60%"))
    result = simulate(model, paths=24, seed=11, threads=1, keep=list(range(24)))
    seen = 0
    for kept in result.kept.values():
        defaults = kept.periods["pool.defaults"].to_numpy(dtype=np.float64)
        recovery = np.zeros(24)
        realised = np.zeros(24)
        for tau in np.nonzero(defaults)[0]:
            end = int(tau) + 1  # months from closing (2024-01-01) to the end of period tau
            rec = 0.5 * defaults[tau]
            for months, share in ((6, 0.3), (18, 0.7)):
                if end + months <= 24:
                    recovery[end + months - 1] += share * rec
            if end + 18 <= 24:
                realised[end + 18 - 1] += defaults[tau] - rec
            seen += 1
        assert_cents(kept.periods["pool.recovery"].to_numpy(dtype=np.float64), recovery, "path recovery")
        assert_cents(kept.periods["pool.realised_loss"].to_numpy(dtype=np.float64), realised, "realised")
    assert seen >= 5  # the paths did default


BAD_TIMING = [
    # (id, recovery, field path, words)
    (
        "shares not adding to 100%",
        "{rate: 50%, timing: [{months: 6, share: 30%}, {months: 18, share: 60%}]}",
        "recovery.timing",
        "add up to 100%",
    ),
    (
        "months out of order",
        "{rate: 50%, timing: [{months: 18, share: 70%}, {months: 6, share: 30%}]}",
        "recovery.timing",
        "month order",
    ),
    (
        "timing and lag_months",
        "{rate: 50%, lag_months: 6, timing: [{months: 6, share: 1}]}",
        "scenarios.base.recovery",
        "not both",
    ),
    ("negative months", "{rate: 50%, timing: [{months: -1, share: 1}]}", "timing[0].months", "0"),
]


@pytest.mark.parametrize(
    ("recovery", "path", "words"), [b[1:] for b in BAD_TIMING], ids=[b[0] for b in BAD_TIMING]
)
def test_bad_recovery_timing_is_a_located_error(recovery: str, path: str, words: str) -> None:
    text = recovery_deal(recovery, 3)
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    (issue,) = info.value.issues
    assert issue.path.endswith(path), issue
    assert words in issue.message, issue
    assert issue.line == next(n for n, line in enumerate(text.splitlines(), 1) if "recovery: {rate" in line)
    assert issue.column > 0, issue


def test_bad_risk_recovery_timing_is_a_located_error() -> None:
    text = recovery_deal("{rate: 50%}", 3, "{rate: 50%, timing: [{months: 6, share: 50%}]}")
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    (issue,) = info.value.issues
    assert issue.path == "risk.recovery.timing", issue
    assert "add up to 100%" in issue.message
    assert issue.line == len(text.splitlines())


def test_an_instalment_after_legal_final_is_warned() -> None:
    # the last instalment 18 months after default: defaults in the last 18 months lose it
    text = recovery_deal("{rate: 50%, timing: [{months: 6, share: 30%}, {months: 18, share: 70%}]}", 3)
    deal = parse_deal(text, "deal.yaml")
    warned = [w for w in deal.warnings if "instalment" in w.message]
    assert warned and warned[0].path == "scenarios.base.recovery.timing", deal.warnings


# --------------------------------------------------------------------------- twin


@pytest.mark.slow
def test_python_twin_matches_compiled_with_instalments_and_shocks(tmp_path: Path) -> None:
    """The Monte Carlo twin deal without its revolving period, recovering in instalments and
    with a shocked royalty base, in a scenario and in the risk model."""
    import os
    import subprocess
    import sys

    from test_twin import MC_DEAL, MC_TWIN_SCRIPT, ROOT, TWIN_SCRIPT, twin_sampling

    timing = "timing: [{months: 3, share: 25%}, {months: 9, share: 75%}]"
    shocks = "shocks: [{from: 2025-09-01, level: -40%, growth: -10%}]"
    text = MC_DEAL.split("revolving:")[0] + MC_DEAL.split("appraisal_ratio: 2}\n")[1]
    text = text.replace("      - buy_assets: all\n", "").replace("lag_months: 6", timing)
    text = text.replace("invalidation_cut: 0.5}", f"invalidation_cut: 0.5, {shocks}}}")
    text += f"scenarios:\n  base:\n    defaults: {{cdr: 20%}}\n    recovery: {{rate: 40%, {timing}}}\n"
    text += f"    royalty: {{{shocks}}}\n"
    deal = tmp_path / "twin.yaml"
    deal.write_text(text, encoding="utf-8")
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error"}
    det_target, mc_target = tmp_path / "det.npz", tmp_path / "mc.npz"
    subprocess.run(
        [sys.executable, "-c", TWIN_SCRIPT, str(deal), str(det_target)], check=True, env=env, cwd=ROOT
    )
    env.pop("PYTHONWARNINGS")
    subprocess.run(
        [sys.executable, "-c", MC_TWIN_SCRIPT, str(deal), str(mc_target), "40", "plain"],
        check=True,
        env=env,
        cwd=ROOT,
    )
    det_twin, mc_twin = np.load(det_target), np.load(mc_target)
    r = api.run(compile_text(text))
    assert r.collections[..., 3].sum() > 0  # recoveries in instalments were paid
    for field, arr in {**r.tables._asdict(), "collections": r.collections}.items():
        np.testing.assert_allclose(arr, det_twin[f"base/{field}"], rtol=1e-12, atol=1e-7, err_msg=field)
    compiled = simulate(deal, paths=40, seed=11, sampling=twin_sampling(str(deal), "plain"))
    assert compiled.pool_outcomes[:, 2].sum() > 0, "the twin check needs paths with defaults"
    np.testing.assert_allclose(compiled.tranche_outcomes, mc_twin["tranche"], rtol=1e-12, atol=1e-7)
    np.testing.assert_allclose(compiled.pool_outcomes, mc_twin["pool"], rtol=1e-12, atol=1e-9)


def test_instalments_are_refused_with_a_revolving_period() -> None:
    from ipabs.errors import IpabsError

    path = Path(__file__).resolve().parents[1] / "scenarios" / "pudong_revolving_ip_pledge.yaml"
    text = path.read_text(encoding="utf-8")
    timing = "timing: [{months: 6, share: 50%}, {months: 18, share: 50%}]"
    text = text.replace("recovery: {rate: 15%, lag_months: 18}", f"recovery: {{rate: 15%, {timing}}}", 1)
    model = compile_text(text)
    with pytest.raises(IpabsError, match="not supported with a revolving period"):
        api.run(model, "defaults_2pct")
    pieces = [{"months": 6, "share": 0.5}, {"months": 18, "share": 0.5}]
    risk = RiskModel.model_validate({"default_pd": 0.01, "recovery": {"rate": 0.1, "timing": pieces}})
    with pytest.raises(IpabsError, match="not supported with a revolving period"):
        simulate(model, paths=2, seed=1, threads=1, risk=risk)


def test_the_documented_workout_example_recovers_in_instalments() -> None:
    import re

    from helpers import assert_conserved

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text(encoding="utf-8")
    text = re.findall(r"```yaml\n(.*?)```", doc, re.S)[1]
    res = api.run(compile_text(text), "workout")
    assert_conserved(res, 1e6)
    recovery = np.zeros(24)
    recovery[[8, 20]] = [150_000.0, 350_000.0]  # periods ending 2024-10-01 and 2025-10-01
    assert_cents(col(res, "pool.recovery"), recovery, "recovery")
    realised = np.zeros(24)
    realised[20] = 500_000.0
    assert_cents(col(res, "pool.realised_loss"), realised, "realised loss")
    # the ledger takes the realised loss in period 21; that period's income starts clearing it
    ledger = col(res, "deal.principal_deficiency")
    assert_cents(ledger[:20], np.zeros(20), "no deficiency before the liquidation ends")
    assert ledger[20] == pytest.approx(500_000.0 - col(res, "pool.interest")[20], abs=CENT)
