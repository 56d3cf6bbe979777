"""Re-projection from a report date: a deal's deterministic cash flows from the state a trustee
or servicer report gives (``ipabs run DEAL --state FILE``).

A state is the deal part-way through its life, compiled into the same arrays as the deal
itself: the deal keeps its periods, and the waterfall starts in the period after the report
date from the state's balances, arrears, accounts, ledgers, triggers and support used
(:func:`ipabs.engine.layout.work_layout`). The asset side keeps each loan's contract:

- a ``current`` or delinquent loan pays its schedule from the report date, scaled to its
  reported balance (a partial prepayment or a late payment shortens nothing: what is owed
  is re-spread over the remaining instalments in proportion);
- a ``defaulted`` loan defaulted in the period of its default date with its reported balance:
  its recovery instalments, guarantee and loss cover still due after the report date arrive
  as the scenario's recovery terms place them;
- a ``repaid`` loan pays nothing more;
- a loan's ``appraised_value`` (a revaluation of its pledged IP) replaces its appraisal: a
  recovery on an appraisal basis and the collateral value follow it;
- the scenario's default and prepayment rates apply to the performing loans from the period
  after the report date (its rate vectors keep their periods since closing).

What a report does not give starts from zero: cash carried forward, the annual fee caps' use
in the current deal year, servicer advances and unpaid hedge amounts. A deal cannot be
re-projected after a put date (the state does not record the put's outcome) or when a trigger
averages its test over several periods (nor the tests before the report date).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from ipabs.dates import to_day
from ipabs.deal.load import LoadedDeal
from ipabs.deal.state import LoadedState, deal_assets
from ipabs.engine import layout as L
from ipabs.engine.compile import CompiledModel, StartState
from ipabs.errors import IpabsError
from ipabs.risk.scenario import DriverInputs

BUCKETS_BEHIND = {"dpd_1_30": 1, "dpd_31_60": 2, "dpd_61_90": 3, "dpd_90_plus": 3}
"""A delinquent status's bucket in the risk model's delinquency chain (30, 60, 90+ days behind;
docs/delinquency.md): a month's missed payment per bucket, 61 days or more in the last."""


def delinquent_loans_note(model: CompiledModel, risk: Any = None) -> str | None:
    """A note when a state's delinquent loans are simulated as current: the risk model has no
    delinquency chain to roll them with (None when there is nothing to say)."""
    start = model.start
    if start is None or start.obligor_behind is None or not (start.obligor_behind > 0).any():
        return None
    risk = risk if risk is not None else model.spec.risk
    if risk is not None and risk.delinquency is not None:
        return None
    n = int((start.obligor_behind > 0).sum())
    return (
        f"{n} obligor(s) are behind on the report date, but the risk model has no `delinquency` "
        "section: they are simulated as current (their PDs conditional on surviving); give "
        "`risk.delinquency` roll and cure rates to let them roll to default (docs/surveillance.md)"
    )


def _period_of(model: CompiledModel, date: dt.date) -> int:
    """The 0-based payment period whose dates contain ``date`` (``closing < date <= d_1`` is 0)."""
    day = to_day(date)
    return int(np.searchsorted(model.grid[1:], day, side="left"))


def start_deal(model: CompiledModel, state: LoadedState) -> L.CompiledDeal:
    """The compiled deal of ``model`` starting after ``state``'s report date.

    Parameters
    ----------
    model : CompiledModel
        The compiled deal the state belongs to.
    state : LoadedState
        A state checked against the deal (:func:`ipabs.deal.state.load_state`).

    Returns
    -------
    CompiledDeal
        ``model.cd`` with ``start_period`` the period after the report date and the
        waterfall's state there.
    """
    cd = model.cd
    spec = state.spec
    t0 = state.period
    if not 1 <= t0 < cd.n_periods:
        raise IpabsError(
            f"the state follows period {t0}; a re-projection needs a period from 1 to {cd.n_periods - 1}"
        )
    if cd.rv_last >= 0:
        raise IpabsError(
            "a re-projection of a revolving deal is not supported: the state does not record the "
            "assets bought in the revolving period"
        )
    puts = [k for k in range(cd.tr_put_period.shape[0]) if 0 <= cd.tr_put_period[k] < t0]
    if puts:
        k = puts[0]
        raise IpabsError(
            f"tranche {model.tranche_names[k]!r} has a put date in period {cd.tr_put_period[k] + 1}, "
            f"on or before the report date: a state does not record the put's outcome, so the deal "
            f"cannot be re-projected after it; give a report date before period {cd.tr_put_period[k] + 1}"
        )
    for g, name in enumerate(model.trigger_names):
        if cd.trg_kind[g] in _AVERAGED and cd.trg_periods[g] > 1:
            raise IpabsError(
                f"trigger {name!r} averages its test over {cd.trg_periods[g]} periods: a state does not "
                "record the tests of the periods before the report date, so the deal cannot be "
                "re-projected without changing when it fires"
            )
    work = np.zeros(_work_size(cd))
    where = L.work_layout(cd)
    names = model.tranche_names
    for k, name in enumerate(names):
        tr = spec.tranches[name]
        work[where["balance"]][k] = tr.balance
        work[where["arrears"]][k] = tr.interest_arrears
        work[where["written_down"]][k] = tr.written_down or 0.0
    for k, name in enumerate(model.account_names):
        work[where["account"]][k] = spec.accounts[name]
    for f, name in enumerate(model.fee_names):
        if name in spec.fees:
            work[where["fee_arrears"]][f] = spec.fees[name].arrears
    for s, name in enumerate(model.support_names):
        used = spec.support_used[name]
        work[where["support_total"]][s] = used.drawn
        work[where["facility_outstanding"]][s] = used.outstanding
    n_trg = cd.trg_kind.shape[0]
    flags = np.zeros(4 * n_trg, dtype=np.int64)
    for g, name in enumerate(model.trigger_names):
        trig = spec.triggers[name]
        count = trig.consecutive_breaches
        if count is None:
            count = 1 if trig.breached else 0
        active = trig.active if trig.active is not None else bool(count >= cd.trg_consecutive[g])
        flags[g] = count
        flags[2 * n_trg + g] = 1 if active else 0
    scalars = np.zeros(L.N_START_SCALARS)
    scalars[L.START_PDL] = spec.ledgers.principal_deficiency if spec.ledgers is not None else 0.0
    loans = spec.loans if isinstance(spec.loans, list) else []
    cumulative = spec.cumulative_defaults
    if cumulative is None:
        cumulative = sum(x.balance for x in loans if x.status == "defaulted")
    scalars[L.START_CUMULATIVE_DEFAULTS] = cumulative
    scalars[L.START_YEAR] = float(cd.year_id[t0 - 1])
    return cd._replace(start_period=t0, start_work=work, start_flags=flags, start_scalars=scalars)


# triggers whose test is an average over a trailing window of periods
_AVERAGED = (L.TRG_DSCR, L.TRG_COLLECTIONS_VS_PROJECTION, L.TRG_EXCESS_SPREAD, L.TRG_DELINQUENCY)


def _work_size(cd: L.CompiledDeal) -> int:
    return max(s.stop for s in L.work_layout(cd).values())


def started_model(model: CompiledModel, state: LoadedState) -> CompiledModel:
    """``model`` as of ``state``'s report date, for a deterministic run and the Monte Carlo.

    Returns
    -------
    CompiledModel
        A copy whose compiled deal starts after the report date (:func:`start_deal`), whose
        loans' schedules, balances and appraisals are the state's (see the module; rows
        before the report date mean nothing: the waterfall starts after them) and whose
        ``start`` records the defaults before it and the tranche balances then.
    """
    t0 = state.period
    spec = state.spec
    cd = start_deal(model, state)
    by_id = {x.id: x for x in spec.loans} if isinstance(spec.loans, list) else {}
    interest = model.sched_interest.copy()
    principal = model.sched_principal.copy()
    balance_end = model.sched_balance.copy()
    balance = model.assets.balance.copy()
    appraised = model.assets.appraised_value.copy()
    defaulted_in = np.full(len(model.assets), -1, dtype=np.int64)
    asset_behind = np.zeros(len(model.assets), dtype=np.int64)  # delinquency buckets behind
    for a, asset in enumerate(deal_assets(model.deal)):
        if asset.kind == "licence":
            continue  # a fixed licence pays its schedule; its licensee's fate is the scenario's
        loan = by_id.get(asset.id)
        status = loan.status if loan is not None else "repaid"
        if status == "repaid" or (loan is not None and loan.balance <= 0.0 and status != "defaulted"):
            interest[a] = 0.0
            principal[a] = 0.0
            balance_end[a] = 0.0
            balance[a] = 0.0
            continue
        assert loan is not None
        if loan.appraised_value is not None and appraised[a] > 0.0:
            appraised[a] = loan.appraised_value  # a revaluation of the pledged IP
        if status == "defaulted":
            assert loan.default_date is not None
            tau = min(_period_of(model, loan.default_date), t0 - 1)
            # the reported balance defaulted in its period: the recovery, guarantee and cover
            # terms then place what is still due after the report date
            interest[a] = 0.0
            principal[a] = 0.0
            balance_end[a, :tau] = loan.balance
            balance_end[a, tau:] = 0.0
            balance[a] = loan.balance
            defaulted_in[a] = tau
            continue
        asset_behind[a] = BUCKETS_BEHIND.get(status, 0)
        scheduled = float(model.sched_balance[a, t0 - 1])
        if scheduled <= 0.0:
            raise IpabsError(
                f"loan {asset.id!r}: its schedule is repaid by period {t0} but the state gives it a "
                f"balance of {loan.balance:,.2f}; a loan past its maturity is defaulted or repaid"
            )
        ratio = loan.balance / scheduled
        # before the report date it sits at its reported balance, paying nothing
        interest[a, :t0] = 0.0
        principal[a, :t0] = 0.0
        balance_end[a, :t0] = loan.balance
        balance[a] = loan.balance
        if ratio != 1.0:
            interest[a, t0:] *= ratio
            principal[a, t0:] *= ratio
            balance_end[a, t0:] *= ratio
    behind = np.zeros(len(model.obligors.names), dtype=np.int64)  # its most delinquent loan's
    np.maximum.at(behind, model.assets.obligor.astype(np.int64), asset_behind)
    obligor_in = np.full(len(model.obligors.names), -1, dtype=np.int64)
    for a in np.flatnonzero(defaulted_in >= 0).tolist():
        o = int(model.assets.obligor[a])
        tau = int(defaulted_in[a])
        obligor_in[o] = tau if obligor_in[o] < 0 else min(obligor_in[o], tau)
    start = StartState(
        period=t0,
        asset_default_period=defaulted_in,
        obligor_default_period=obligor_in,
        tranche_balance=np.array([spec.tranches[n].balance for n in model.tranche_names], dtype=np.float64),
        obligor_behind=behind,
        asset_behind=asset_behind,
    )
    assets = dataclasses.replace(model.assets, balance=balance, appraised_value=appraised)
    return dataclasses.replace(
        model,
        cd=cd,
        assets=assets,
        sched_interest=interest,
        sched_principal=principal,
        sched_balance=balance_end,
        start=start,
    )


def started_inputs(model: CompiledModel, started: CompiledModel, inputs: DriverInputs) -> DriverInputs:
    """A deterministic scenario's inputs (of ``model``) for ``started`` (:func:`started_model`):
    no default or prepayment of a loan before the report date (the state says what happened),
    each defaulted loan defaulting whole in its period, appraisal-basis recoveries and
    collateral values following the state's revaluations."""
    assert started.start is not None
    t0 = started.start.period
    mdr = inputs.mdr.copy()
    smm = inputs.smm.copy()
    cap = inputs.recovery_cap.copy()
    value = inputs.asset_value.copy()
    loans = np.array([k != "licence" for k in model.assets.kind], dtype=bool)
    mdr[loans, :t0] = 0.0
    smm[loans, :t0] = 0.0
    for a in np.flatnonzero(started.start.asset_default_period >= 0).tolist():
        mdr[a] = 0.0
        mdr[a, started.start.asset_default_period[a]] = 1.0
        smm[a] = 0.0
    old = model.assets.appraised_value
    new = started.assets.appraised_value
    moved = np.flatnonzero((old > 0.0) & (new != old))
    cap[moved] *= new[moved] / old[moved]
    value[moved] *= (new[moved] / old[moved])[:, None]
    # ---- delinquency: the chain takes no steps before the report date (the state says where
    # each loan is), and a loan behind on it starts in its bucket
    months = inputs.months.copy()
    months[:t0] = 0
    bucket = inputs.dq_bucket.copy()
    if started.start.asset_behind is not None:
        bucket = started.start.asset_behind.copy()
    return dataclasses.replace(
        inputs, mdr=mdr, smm=smm, recovery_cap=cap, asset_value=value, months=months, dq_bucket=bucket
    )


def reproject(deal: LoadedDeal | CompiledModel | str | Path, state: LoadedState, scenario: str | None = None):  # type: ignore[no-untyped-def]
    """Run a deal's deterministic cash flows from a report date.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
        The deal.
    state : LoadedState
        Its state on the report date (:func:`ipabs.load_state`).
    scenario : str, optional
        Scenario name; default the deal's first.

    Returns
    -------
    RunResult
        As :func:`ipabs.run`, with the periods after the report date only; the summary's
        WAL and yield are measured from the report date, the yield at a price of the
        tranche's balance then.
    """
    from ipabs.api import _model, collections
    from ipabs.engine.compile import scenario_deal
    from ipabs.engine.layout import allocate_tables
    from ipabs.engine.waterfall_numba_fns import run_waterfall
    from ipabs.results import build_result
    from ipabs.risk.scenario import scenario_inputs

    model = _model(deal)
    name = scenario if scenario is not None else next(iter(model.spec.scenarios))
    started = started_model(model, state)
    inputs = started_inputs(model, started, scenario_inputs(model, name))
    coll = collections(started, inputs=inputs)
    cd = started.cd
    scen = scenario_deal(model, name)
    if scen is not model.cd:  # the scenario's call and put terms
        cd = scen._replace(
            start_period=cd.start_period,
            start_work=cd.start_work,
            start_flags=cd.start_flags,
            start_scalars=cd.start_scalars,
        )
    tables = allocate_tables(cd)
    run_waterfall(cd, coll.sum(axis=0), inputs.support_stop, tables, inputs.revolving)
    return build_result(model, name, coll, tables, start=state.period)
