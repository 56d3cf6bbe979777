"""Turn a named deterministic scenario into the per-asset arrays of the collections kernel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipabs.collateral.royalty import base_path, royalty_schedule
from ipabs.collateral.value import asset_values, royalty_values
from ipabs.dates import from_day
from ipabs.deal.assumptions import last_recovery_months, recovery_pieces
from ipabs.deal.schema import Scenario
from ipabs.engine.compile import CompiledModel
from ipabs.engine.revolving_numba_fns import MODE_EXPECTED, MODE_NONE, RevolvingPath, revolving_path
from ipabs.errors import IpabsError
from ipabs.risk.deterministic import (
    default_curve,
    default_period,
    lag_table,
    period_months,
    prepayment_curve,
    resolve,
)


@dataclass(frozen=True)
class DriverInputs:
    """Scenario-dependent inputs of :func:`deterministic_collections` (shapes as there)."""

    mdr: np.ndarray
    smm: np.ndarray
    recovery_rate: np.ndarray
    recovery_cap: np.ndarray
    recovery_lag: np.ndarray
    guarantee_lag: np.ndarray
    guarantee_stop: np.ndarray
    lag_period: np.ndarray
    roy_accrual: np.ndarray
    roy_pay_period: np.ndarray
    roy_mdr: np.ndarray
    support_stop: np.ndarray
    revolving: RevolvingPath
    # ---- support
    cover_period: np.ndarray  # (A, T) period paying the loss cover of a default in t; -1 none
    cover_stop: np.ndarray  # (Q,) period from which each loss-cover payer pays nothing
    # ---- recovery timing: asset a's recovery comes in instalments k in
    # rec_piece_ptr[a]:rec_piece_ptr[a+1], share rec_piece_share[k] after lag id rec_piece_lag[k]
    # (recovery_lag is the last instalment's: the loss is realised then)
    rec_piece_ptr: np.ndarray  # (A+1,)
    rec_piece_lag: np.ndarray  # (S,)
    rec_piece_share: np.ndarray  # (S,)
    # ---- collateral value (see ipabs.collateral.value)
    asset_value: np.ndarray  # (A, T) what each asset is worth at the start of a period on schedule
    roy_value: np.ndarray  # (R, T) each stream's valuation on the scenario's path, haircut applied
    # ---- delinquency: assets whose loans follow the roll-rate chain, its rates, and the
    # chain's monthly steps in each collection period
    dq_on: np.ndarray  # (A,) int
    dq_roll: np.ndarray  # (A, 4)
    dq_cure: np.ndarray  # (A, 3)
    months: np.ndarray  # (T,) int
    dq_bucket: np.ndarray  # (A,) int: the bucket each asset's loans start in (0: current)


def revolving_inputs(model: CompiledModel, scenario: Scenario) -> RevolvingPath:
    """Expected-value assumptions for the assets a revolving period buys: the scenario's
    default, prepayment and recovery assumptions of the revolving pool (by period of the deal)."""
    spec = model.spec
    grid = model.grid
    n = len(grid) - 1
    rv = spec.revolving
    if rv is None or model.cd.rv_last < 0:
        return revolving_path(MODE_NONE, 0, n, 0)
    pool = rv.pool or spec.pools[0].name
    asm = resolve(scenario, pool, "")
    months = period_months(grid)
    rec = asm.recovery
    if len(recovery_pieces(rec)) > 1:
        raise IpabsError(
            f"{model.deal.source.file}: recovery.timing in instalments is not supported with a "
            "revolving period (the purchased assets recover in one payment); use lag_months"
        )
    rates = []
    for tpl in rv.templates:
        if rec.basis == "appraisal":  # the pledged IP's appraisal is `appraisal_ratio` x the loan
            rates.append(rec.rate * (tpl.appraisal_ratio or 0.0))
        else:
            rates.append(rec.rate)
    n_templates = len(rv.templates)
    return revolving_path(
        MODE_EXPECTED,
        n_templates,
        n,
        (model.cd.rv_last + 1) * n_templates,
        mdr=default_curve(asm.defaults, months, None, rec.lag_months),
        smm=prepayment_curve(asm.prepayment, months),
        rec_rate=np.minimum(np.array(rates, dtype=np.float64), 1.0),
        rec_lag=lag_table(grid, [rec.lag_months])[0],
        # ---- collateral value: the purchased loans' pledged IP
        appraisal_ratio=np.array(
            [np.nan if t.appraisal_ratio is None else float(t.appraisal_ratio) for t in rv.templates],
            dtype=np.float64,
        ),
    )


def cover_periods(model: CompiledModel, recovery_lag_months: np.ndarray) -> np.ndarray:
    """(A, T): the period in which an asset's loss cover pays for a default in each period, or
    -1 (no cover, or a payment after legal final). A realised loss is paid ``lag_months`` after
    the recovery (the asset's recovery lag after the default period); a defaulted balance
    ``lag_months`` (insurance: ``waiting_months``) after the default period."""
    from ipabs.engine.layout import COVER_REALISED_LOSS

    cover = model.cover
    out = np.full((len(model.assets), model.n_periods), -1, dtype=np.int64)
    covered = np.nonzero(cover.a_cover >= 0)[0]
    if not len(covered):
        return out
    lags = {}
    for a in covered.tolist():
        c = int(cover.a_cover[a])
        lag = int(cover.cv_lag_months[c])
        if cover.cv_kind[c] == COVER_REALISED_LOSS:
            lag += int(recovery_lag_months[a])
        lags[a] = lag
    distinct = sorted(set(lags.values()))
    table = lag_table(model.collection_grid, distinct)
    for a, lag in lags.items():
        out[a] = table[distinct.index(lag)]
    return out


def cover_stops(model: CompiledModel, named: dict[int, int]) -> np.ndarray:
    """(Q,): the period from which each loss-cover payer pays nothing: its named default, or T."""
    n = model.n_periods
    return np.array([named.get(int(o), n) for o in model.cover.py_obligor], dtype=np.int64)


def scenario_inputs(model: CompiledModel, name: str | None = None) -> DriverInputs:
    """Resolve scenario ``name`` (default: the first) for every asset.

    Raises
    ------
    IpabsError
        If the deal has no scenario of that name (the message lists the known ones).
    """
    spec = model.spec
    names = list(spec.scenarios)
    if name is None:
        name = names[0]
    if name not in spec.scenarios:
        raise IpabsError(f"no scenario {name!r} in {model.deal.source.file}; known: {', '.join(names)}")
    sc = spec.scenarios[name]
    grid = model.collection_grid  # asset cash flows fall in collection periods
    n = len(grid) - 1
    months = period_months(grid)
    assets = model.assets
    ob_names = model.obligors.names
    pools = model.pool_names
    overridden = {ov.obligor for ov in sc.overrides if ov.obligor is not None}
    named = {model.obligors.index[o]: default_period(w, grid) for o, w in sc.defaults.obligors.items()}

    # months from closing to each asset's maturity (for the SDA lag rule)
    close = from_day(int(grid[0]))
    a_count = len(assets)
    mdr = np.zeros((a_count, n))
    smm = np.zeros((a_count, n))
    rec_rate = np.zeros(a_count)
    rec_cap = np.full(a_count, np.inf)
    rec_lag_m = np.zeros(a_count, dtype=np.int64)
    cache: dict[tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}
    pieces: list[list[tuple[int, float]]] = []
    dq_on = np.zeros(a_count, dtype=np.int64)  # ---- delinquency
    dq_roll = np.zeros((a_count, 4))
    dq_cure = np.zeros((a_count, 3))
    assumptions = {}
    for a in range(a_count):
        o = int(assets.obligor[a])
        p = int(assets.pool[a])
        key_src = o if ob_names[o] in overridden else -1 - p
        if key_src not in assumptions:
            assumptions[key_src] = resolve(sc, pools[p], ob_names[o])
        asm = assumptions[key_src]
        mat_month = -1
        if asm.defaults.sda is not None:
            m = from_day(int(assets.maturity_day[a]))
            mat_month = (m.year - close.year) * 12 + m.month - close.month
        age = int(assets.age_months[a])  # ---- seasoned pools: PSA and SDA count loan age
        last = last_recovery_months(asm.recovery)  # the liquidation ends then (SDA's lag rule)
        key = (key_src, mat_month, last, age)
        if key not in cache:
            cache[key] = (
                default_curve(asm.defaults, months, None if mat_month < 0 else mat_month, last, age),
                prepayment_curve(asm.prepayment, months, age),
            )
        mdr[a], smm[a] = cache[key]
        rec_lag_m[a] = last
        if asm.delinquency is not None:
            dq_on[a] = 1
            dq_roll[a] = asm.delinquency.roll_rates
            dq_cure[a] = asm.delinquency.cure_rates
        pieces.append(recovery_pieces(asm.recovery))
        if asm.recovery.basis == "appraisal":
            appraisal = assets.appraised_value[a]
            rec_rate[a] = 1.0
            rec_cap[a] = asm.recovery.rate * (0.0 if np.isnan(appraisal) else appraisal)
        else:
            rec_rate[a] = asm.recovery.rate
        if o in named and named[o] < n:
            mdr[a, named[o]] = 1.0
            mdr[a, named[o] + 1 :] = 0.0

    g_lag_m = assets.guarantee_lag_months
    piece_months = {m for asset in pieces for m, _ in asset}
    lags = sorted(set(rec_lag_m.tolist()) | set(g_lag_m.tolist()) | {0} | piece_months)
    lag_id = {lag: i for i, lag in enumerate(lags)}
    table = lag_table(grid, lags)
    g_stop = np.array([named.get(int(g), n) if g >= 0 else n for g in assets.guarantor], dtype=np.int64)

    roy = model.royalties
    roy_mdr = np.zeros((len(roy), n))
    growth = []
    haircut = []
    paths = []
    for r in range(len(roy)):
        o = int(roy.obligor[r])
        asm = resolve(sc, pools[int(roy.pool[r])], ob_names[o])
        roy_mdr[r] = default_curve(asm.defaults, months, None, 0)
        if o in named and named[o] < n:
            roy_mdr[r, named[o]] = 1.0
        growth.append(roy.growth[r] if asm.royalty.growth is None else asm.royalty.growth)
        haircut.append(asm.royalty.haircut)
        paths.append(base_path(asm.royalty, float(roy.growth[r])))
    accrual, pay_period = royalty_schedule(roy, grid, np.array(growth), np.array(haircut), paths)

    sup_stop = np.array([named.get(int(p), n) for p in model.support_provider], dtype=np.int64)
    return DriverInputs(
        mdr=mdr,
        smm=smm,
        recovery_rate=rec_rate,
        recovery_cap=rec_cap,
        recovery_lag=np.array([lag_id[x] for x in rec_lag_m.tolist()], dtype=np.int64),
        guarantee_lag=np.array([lag_id[x] for x in g_lag_m.tolist()], dtype=np.int64),
        guarantee_stop=g_stop,
        lag_period=table,
        roy_accrual=accrual,
        roy_pay_period=pay_period,
        roy_mdr=roy_mdr,
        support_stop=sup_stop,
        revolving=revolving_inputs(model, sc),
        cover_period=cover_periods(model, rec_lag_m),
        cover_stop=cover_stops(model, named),
        rec_piece_ptr=np.cumsum([0] + [len(x) for x in pieces]).astype(np.int64),
        rec_piece_lag=np.array([lag_id[m] for x in pieces for m, _ in x], dtype=np.int64),
        rec_piece_share=np.array([w for x in pieces for _, w in x], dtype=np.float64),
        asset_value=asset_values(assets, n),
        roy_value=royalty_values(roy, grid, paths) * (1.0 - np.array(haircut, dtype=np.float64))[:, None],
        dq_on=dq_on,
        dq_roll=dq_roll,
        dq_cure=dq_cure,
        months=months,
        dq_bucket=np.zeros(a_count, dtype=np.int64),
    )
