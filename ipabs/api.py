"""The Python API: load a deal, compile it, run a scenario."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ipabs.deal.load import LoadedDeal, load_deal
from ipabs.engine.compile import CompiledModel, compile_deal, scenario_deal
from ipabs.engine.layout import N_COLLECTION_COLUMNS, allocate_tables
from ipabs.engine.waterfall_numba_fns import run_waterfall
from ipabs.risk.collections_numba_fns import deterministic_collections
from ipabs.risk.scenario import DriverInputs, scenario_inputs

if TYPE_CHECKING:
    from ipabs.results import RunResult


def _model(deal: LoadedDeal | CompiledModel | str | Path) -> CompiledModel:
    if isinstance(deal, CompiledModel):
        return deal
    if isinstance(deal, (str, Path)):
        deal = load_deal(deal)
    return compile_deal(deal)


def collections(
    model: CompiledModel, scenario: str | None = None, inputs: DriverInputs | None = None
) -> np.ndarray:
    """Asset cash flows per pool under a deterministic scenario (or resolved ``inputs``).

    Returns
    -------
    ndarray, shape (P, T, N_COLLECTION_COLUMNS)
        Columns as in :data:`ipabs.engine.layout.COLLECTION_COLUMNS`.
    """
    inp = inputs if inputs is not None else scenario_inputs(model, scenario)
    out = np.zeros((len(model.pool_names), model.n_periods, N_COLLECTION_COLUMNS))
    a = model.assets
    deterministic_collections(
        a.pool,
        model.sched_interest,
        model.sched_principal,
        model.sched_balance,
        a.balance,
        inp.mdr,
        inp.smm,
        inp.recovery_rate,
        inp.recovery_cap,
        inp.recovery_lag,
        a.guarantee_share,
        inp.guarantee_lag,
        inp.guarantee_stop,
        inp.lag_period,
        model.royalties.pool,
        inp.roy_accrual,
        inp.roy_pay_period,
        inp.roy_mdr,
        out,
        model.cover,
        inp.cover_period,
        inp.cover_stop,
        inp.rec_piece_ptr,
        inp.rec_piece_lag,
        inp.rec_piece_share,
        inp.asset_value,
        inp.roy_value,
        inp.dq_on,
        inp.dq_roll,
        inp.dq_cure,
        inp.months,
        inp.dq_bucket,
    )
    return out


def run(deal: LoadedDeal | CompiledModel | str | Path, scenario: str | None = None) -> RunResult:
    """Run a deal's deterministic cash flows under one scenario.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
        A loaded deal, a compiled one (reused across scenarios), or a deal file.
    scenario : str, optional
        Scenario name; default the deal's first scenario.

    Returns
    -------
    RunResult
        ``summary`` (per tranche), ``periods`` (one row per period) and tidy tables.

    Examples
    --------
    >>> import ipabs
    >>> deal = ipabs.load_deal("scenarios/caohejing_ip_pledge.yaml")  # doctest: +SKIP
    >>> result = ipabs.run(deal, scenario="base")  # doctest: +SKIP
    >>> result.summary[["wal_years", "yield", "loss"]]  # doctest: +SKIP
    """
    from ipabs.results import build_result  # pandas: loaded when results are built

    model = _model(deal)
    name = scenario if scenario is not None else next(iter(model.spec.scenarios))
    inputs = scenario_inputs(model, name)
    coll = collections(model, inputs=inputs)
    cd = scenario_deal(model, name)  # the scenario's issuer call policy and put terms
    tables = allocate_tables(cd)
    run_waterfall(cd, coll.sum(axis=0), inputs.support_stop, tables, inputs.revolving)
    return build_result(model, name, coll, tables)
