"""The Monte Carlo of every shipped deal under its own `risk` section gives sane risk figures,
and docs/montecarlo.md documents every column the Monte Carlo returns."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from ipabs.deal.load import LoadedDeal, load_deal
from ipabs.deal.risk import RiskModel
from ipabs.montecarlo import SimulationResult, simulate
from ipabs.risk.montecarlo_numba_fns import (
    O_INTEREST_SHORTFALL,
    O_LOSS,
    O_PRINCIPAL_LOSS,
    O_WAL,
    O_YIELD,
    P_LOSS_RATE,
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
NAMES = [p.stem for p in SCENARIOS]
PATHS = 5_000
SEED = 20_240_101

# (deal, senior tranche, junior tranche): pairs whose expected losses are not ordered by
# seniority, by the deal's structure rather than by a fault.
LOSS_ORDER_EXCEPTIONS = {
    # The equity takes the residual every quarter from the start, so it is usually paid down
    # before the mezzanine (paid in years 9-11, its guarantee covering interest only after
    # rapid amortisation) is due; a main-licensee default costs the mezzanine more.
    ("royalty_dscr", "mezzanine", "equity"),
}


@cache
def _deal(name: str) -> LoadedDeal:
    return load_deal(ROOT / "scenarios" / f"{name}.yaml")


def _credit_only(risk: RiskModel) -> RiskModel:
    """The deal's risk view without sales volatility or patent invalidation: only defaults."""
    royalty = risk.royalty.model_copy(update={"volatility": 0.0, "invalidation_hazard": 0.0})
    return risk.model_copy(update={"royalty": royalty})


@cache
def _result(name: str, credit_only: bool = False) -> SimulationResult:
    deal = _deal(name)
    assert deal.spec.risk is not None, f"{name}: every shipped deal has a `risk` section"
    risk = _credit_only(deal.spec.risk) if credit_only else None
    if risk is not None and risk == deal.spec.risk:
        return _result(name)
    return simulate(deal, paths=PATHS, seed=SEED, risk=risk)


def test_every_shipped_deal_is_covered() -> None:
    assert len(NAMES) == 11, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_expected_losses_lie_in_the_unit_interval(name: str) -> None:
    result = _result(name)
    t = result.tranches
    assert ((t["expected_loss"] >= 0.0) & (t["expected_loss"] <= 1.0)).all(), t["expected_loss"]
    assert ((t["probability_of_loss"] >= 0.0) & (t["probability_of_loss"] <= 1.0)).all()
    assert (t["expected_loss_se"] >= 0.0).all()
    pool = result.pool.iloc[0]
    assert 0.0 <= pool["expected_loss"] <= 1.0
    assert 0.0 <= pool["expected_default_rate"] <= 1.0
    assert pool["expected_defaults"] >= 0.0


@pytest.mark.parametrize("name", NAMES)
def test_expected_losses_are_ordered_by_seniority(name: str) -> None:
    el = _result(name).tranches["expected_loss"]
    names = list(el.index)
    for i, senior in enumerate(names):
        for junior in names[i + 1 :]:
            if (name, senior, junior) in LOSS_ORDER_EXCEPTIONS:
                # keep the exception list true: drop an entry once the structure changes
                assert el[senior] > el[junior], (name, senior, junior, "no longer an exception")
                continue
            assert el[senior] <= el[junior], (name, senior, el[senior], junior, el[junior])
    # the most senior note is never worse than any tranche below it
    assert el.iloc[0] == el.min()


@pytest.mark.parametrize("name", NAMES)
def test_loss_quantiles_are_ordered(name: str) -> None:
    pool = _result(name).pool.iloc[0]
    q = [pool["loss_q95"], pool["loss_q99"], pool["loss_q99.9"]]
    assert 0.0 <= q[0] <= q[1] <= q[2] <= 1.0, q
    loss = _result(name).path_frame()["pool.loss_rate"].to_numpy()
    assert q[2] <= loss.max()


@pytest.mark.parametrize("name", NAMES)
def test_paths_without_defaults_lose_nothing(name: str) -> None:
    # sales volatility and invalidation cost money without any default, so they are switched
    # off here; what is left is the deal's credit risk
    frame = _result(name, credit_only=True).path_frame()
    quiet = frame["pool.defaults"] == 0
    assert quiet.sum() > PATHS // 10, "most paths of every shipped deal have no default"
    losses = frame.loc[quiet, [c for c in frame.columns if c.endswith(".loss")]]
    assert (losses.to_numpy() == 0.0).all(), losses.max()
    assert (frame.loc[quiet, "pool.loss_rate"] == 0.0).all()


def test_paths_do_not_depend_on_threads_or_batches() -> None:
    deal = _deal("caohejing_ip_pledge")
    one = simulate(deal, paths=1_500, seed=SEED, threads=1, batch_size=400)
    two = simulate(deal, paths=1_500, seed=SEED, threads=2, batch_size=1_000)
    np.testing.assert_array_equal(one.tranche_outcomes, two.tranche_outcomes)
    np.testing.assert_array_equal(one.pool_outcomes, two.pool_outcomes)
    np.testing.assert_array_equal(
        one.tranche_outcomes, _result("caohejing_ip_pledge").tranche_outcomes[:1_500]
    )


@pytest.mark.parametrize("name", NAMES)
def test_fast_paths_match_their_full_tables(name: str) -> None:
    """A Monte Carlo path fills only the tranche table and reduces it in the kernel; the same
    path kept in full goes through every table and the deterministic run's own summary. The
    two agree for the paths that lose most, where triggers, accounts and support act."""
    result = _result(name)
    first = result.tranche_outcomes[:300]
    keep = sorted({int(np.argmax(first[:, k, O_LOSS])) for k in range(first.shape[1])})
    keep += [int(np.argmax(result.pool_outcomes[:300, P_LOSS_RATE]))]
    kept = simulate(_deal(name), paths=max(keep) + 1, seed=SEED, keep=keep).kept
    assert any(first[keep, :, O_LOSS].ravel() > 0.0), "some kept path loses"
    for i in keep:
        summary = kept[i].summary
        for k, tranche in enumerate(result.tranche_names):
            row = summary.loc[tranche]
            got = result.tranche_outcomes[i, k]
            where = f"{name} path {i} {tranche}"
            for column, o in (
                ("principal_loss", O_PRINCIPAL_LOSS),
                ("interest_shortfall", O_INTEREST_SHORTFALL),
                ("loss", O_LOSS),
            ):
                assert got[o] == pytest.approx(row[column], abs=0.01), f"{where}: {column}"
            assert got[O_WAL] == pytest.approx(row["wal_years"], abs=1e-9, nan_ok=True), f"{where}: WAL"
            assert got[O_YIELD] == pytest.approx(row["yield"], abs=1e-8, nan_ok=True), f"{where}: yield"


def test_every_monte_carlo_column_is_documented() -> None:
    text = (ROOT / "docs" / "montecarlo.md").read_text(encoding="utf-8")
    missing = []
    for name in NAMES:
        result = _result(name)
        columns = [result.tranches.index.name, *result.tranches.columns, *result.pool.columns]
        for tranche in result.tranche_names:
            for column in result.path_frame().columns:
                if column.startswith(f"{tranche}."):
                    columns.append("TRANCHE." + column.removeprefix(f"{tranche}."))
        columns += [c for c in result.path_frame().columns if "." not in c or c.startswith("pool.")]
        columns += [*result.to_dict(), "name"]
        missing += [c for c in columns if f"`{c}`" not in text]
    assert not missing, f"undocumented Monte Carlo columns: {sorted(set(missing))}"
    # and the documented per-path outcomes are exactly the kernel's
    for outcome in TRANCHE_OUTCOMES:
        assert f"`TRANCHE.{outcome}`" in text
    for outcome in POOL_OUTCOMES:
        assert f"`pool.{outcome}`" in text
