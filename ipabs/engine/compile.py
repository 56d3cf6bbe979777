"""Compile a validated deal into flat arrays: every name resolved to an index, every waterfall
step to an opcode. Scenarios and Monte Carlo paths reuse one compiled model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ipabs.collateral.assets import (
    AssetArrays,
    Obligors,
    RoyaltyArrays,
    build_assets,
    build_royalties,
    index_arrays,
)
from ipabs.collateral.prepayment import period_months, prepayment_curve
from ipabs.collateral.royalty import royalty_schedule
from ipabs.collateral.schedule_numba_fns import contractual_flows, index_rate
from ipabs.dates import DAY_COUNTS, add_months, add_months_day, from_day, grid_days, to_day, year_fraction
from ipabs.deal.calendar import deal_calendar_dates
from ipabs.deal.load import LoadedDeal
from ipabs.deal.schema import (
    Deal,
    DeficiencyPayment,
    FloatingRate,
    Formula,
    GuaranteeInsurance,
    InterestRateSwap,
    LiquiditySupport,
    PoolFactorBelow,
    RefinancingBelowCoupon,
    Schedule,
    Tranche,
)
from ipabs.deal.types import parse_quantity
from ipabs.engine import layout as L
from ipabs.engine.revolving import compile_revolving


@dataclass(frozen=True)
class StartState:
    """A run from a report date (docs/surveillance.md): what the Monte Carlo needs besides the
    deal's own arrays (see :func:`ipabs.analytics.reproject.started_model`).

    Attributes
    ----------
    period : int
        The first period run (0-based): the one after the report date.
    asset_default_period : ndarray, shape (A,)
        Period each asset defaulted in before the report date; -1 when it has not.
    obligor_default_period : ndarray, shape (O,)
        Period each obligor defaulted in before the report date (its first defaulted asset's);
        -1 when none.
    tranche_balance : ndarray, shape (N,)
        Tranche balances on the report date: what losses are measured against and the price of
        the yields.
    asset_behind : ndarray, shape (A,)
        Delinquency buckets each loan is behind on the report date (0 current, 1 for 1-30 days
        past due, 2 for 31-60, 3 for 61 or more).
    obligor_behind : ndarray, shape (O,)
        Delinquency buckets each performing obligor is behind on the report date (its most
        delinquent loan's: 0 current, 1 for 1-30 days past due, 2 for 31-60, 3 for 61 or more).
    """

    period: int
    asset_default_period: np.ndarray
    obligor_default_period: np.ndarray
    tranche_balance: np.ndarray
    obligor_behind: np.ndarray | None = None
    asset_behind: np.ndarray | None = None


@dataclass(frozen=True)
class CompiledModel:
    """Everything a run needs, as arrays, plus the names to label results with.

    Attributes
    ----------
    deal : LoadedDeal
        The source deal.
    cd : CompiledDeal
        Liabilities and waterfall for the kernel.
    grid : ndarray
        Period boundaries as day numbers ``[closing, d_1, ..., d_T]``.
    assets, royalties, obligors
        Collateral as arrays.
    sched_interest, sched_principal, sched_balance : ndarray, shape (A, T)
        Contractual asset cash flows per collection period.
    support_provider : ndarray, shape (S + K,)
        Obligor index of each support provider, then of the K obligors that
        ``obligor_default`` triggers watch.
    cover : CoverArrays
        Risk-sharing pools and guarantee insurance (``loss_cover``).
    """

    deal: LoadedDeal
    cd: L.CompiledDeal
    grid: np.ndarray
    assets: AssetArrays
    royalties: RoyaltyArrays
    obligors: Obligors
    sched_interest: np.ndarray
    sched_principal: np.ndarray
    sched_balance: np.ndarray
    support_provider: np.ndarray
    tranche_names: list[str]
    fee_names: list[str]
    account_names: list[str]
    support_names: list[str]
    trigger_names: list[str]
    waterfall_names: list[str]
    pool_names: list[str]
    # ---- support
    cover: L.CoverArrays
    cover_names: list[str]
    # ---- calendars
    collection_grid: np.ndarray  # [cut-off, end of collection period 1, ..., T] (day numbers)
    # ---- hedges
    hedge_names: list[str] = field(default_factory=list)
    # ---- surveillance: set for a run from a report date
    start: StartState | None = None

    @property
    def balances(self) -> np.ndarray:
        """Tranche balances losses are measured against: at closing, or on the report date of a
        run from a state."""
        return self.cd.tr_balance if self.start is None else self.start.tranche_balance

    @property
    def spec(self) -> Deal:
        """The typed deal."""
        return self.deal.spec

    @property
    def n_periods(self) -> int:
        """Number of payment periods."""
        return self.cd.n_periods

    @property
    def payment_dates(self) -> list:
        """Payment dates of the periods."""
        return [from_day(int(d)) for d in self.grid[1:]]


class _Lists:
    """Ragged lists of indices shared by steps, triggers and quantities."""

    def __init__(self) -> None:
        self.ptr = [0]
        self.items: list[int] = []
        self.cache: dict[tuple[int, ...], int] = {}

    def add(self, items: list[int]) -> int:
        key = tuple(items)
        if key not in self.cache:
            self.items.extend(items)
            self.ptr.append(len(self.items))
            self.cache[key] = len(self.ptr) - 2
        return self.cache[key]


class _Amounts:
    def __init__(
        self,
        grid: np.ndarray,
        lists: _Lists,
        tranche_index: dict[str, int],
        trigger_index: dict[str, int] | None = None,
    ):
        self.rows: list[tuple[int, int, int, float, float, float, np.ndarray]] = []
        self.horizons: list[np.ndarray] = []
        self.grid = grid
        self.n = len(grid) - 1
        self.lists = lists
        self.tranche_index = tranche_index
        self.trigger_index = trigger_index or {}

    def quantity(self, text: str) -> tuple[int, int]:
        kind, names, _months = parse_quantity(text)
        if kind == "trigger":  # ---- covenants: the group slot holds the trigger's index
            return L.Q_TRIGGER, self.trigger_index[names[0]]
        group = self.lists.add([self.tranche_index[n] for n in names]) if names else -1
        return L.QUANTITY_CODES[kind], group

    def horizon(self, months: int) -> np.ndarray:
        """For each period, the first period whose payment date falls more than ``months``
        months after its own payment date (``next_*`` quantities sum the periods before it)."""
        pay = self.grid[1:]
        ends = [add_months_day(int(pay[t]), months) for t in range(self.n)]
        return np.searchsorted(pay, np.array(ends, dtype=np.int64), side="right").astype(np.int64)

    def add(self, amount: Any) -> int:
        values = np.zeros(self.n)
        horizon = np.zeros(self.n, dtype=np.int64)
        if isinstance(amount, Formula):
            q, g = self.quantity(amount.of)
            months = parse_quantity(amount.of).months
            if months:
                horizon = self.horizon(months)
            cap = np.inf if amount.cap is None else amount.cap
            self.rows.append((L.AMT_FORMULA, q, g, amount.share, amount.floor, cap, values))
        elif isinstance(amount, Schedule):
            s = amount.schedule
            values[:] = [s[min(t, len(s) - 1)] for t in range(self.n)]
            self.rows.append((L.AMT_SCHEDULE, 0, -1, 1.0, 0.0, np.inf, values))
        else:
            values[:] = float(amount)
            self.rows.append((L.AMT_FIXED, 0, -1, 1.0, 0.0, np.inf, values))
        self.horizons.append(horizon)
        return len(self.rows) - 1


def _per_period(value: float | list[float], n: int) -> np.ndarray:
    if isinstance(value, list):
        return np.array([value[min(t, len(value) - 1)] for t in range(n)], dtype=np.float64)
    return np.full(n, float(value))


def _rate_path(
    coupon: Any, grid: np.ndarray, idx: tuple[np.ndarray, np.ndarray, np.ndarray], index_ids: dict[str, int]
) -> np.ndarray:
    n = len(grid) - 1
    if isinstance(coupon, list):  # ---- note options: a coupon schedule by date
        # each period pays the coupon in force on its first day
        out = np.zeros(n)
        for step in coupon:
            path = _rate_path(step.rate, grid, idx, index_ids)
            live = grid[:-1] >= to_day(step.date)
            out[live] = path[live]
        return out
    if isinstance(coupon, FloatingRate):
        ptr, days, rates = idx
        out = np.array(
            [
                index_rate(int(grid[t]), index_ids[coupon.index], ptr, days, rates) + coupon.spread
                for t in range(n)
            ]
        )
        if coupon.floor is not None:
            out = np.maximum(out, coupon.floor)
        return out
    return np.full(n, float(coupon))


def contractual_collections(
    sched_interest: np.ndarray, sched_principal: np.ndarray, royalties: RoyaltyArrays, grid: np.ndarray
) -> dict[str, np.ndarray]:
    """The base case fixed at closing, per payment period: the assets' scheduled interest and
    principal and the royalty streams' own sales or income processes, with no defaults,
    prepayments or haircuts (the ``contractual`` projection of a collections_vs_projection
    trigger).

    Returns
    -------
    dict
        ``interest_collections``, ``principal_collections``, ``royalty_collections``,
        ``income_collections`` and ``collections``, each of shape (T,).
    """
    n = len(grid) - 1
    royalty = np.zeros(n)
    if len(royalties):
        accrual, pay_period = royalty_schedule(
            royalties, grid, np.asarray(royalties.growth, dtype=np.float64), np.zeros(len(royalties))
        )
        paid = pay_period >= 0
        np.add.at(royalty, pay_period[paid], accrual[paid])
    interest = sched_interest.sum(axis=0) if sched_interest.size else np.zeros(n)
    principal = sched_principal.sum(axis=0) if sched_principal.size else np.zeros(n)
    return {
        "interest_collections": interest,
        "principal_collections": principal,
        "royalty_collections": royalty,
        "income_collections": interest + royalty,
        "collections": interest + principal + royalty,
    }


def deal_years(closing: dt.date, dates: list[dt.date]) -> np.ndarray:
    """The deal year of each payment date: 0 up to and including the first anniversary of
    closing, 1 up to the second, and so on (annual fee caps count per deal year)."""
    out = np.zeros(len(dates), dtype=np.int64)
    for t, d in enumerate(dates):
        k = 0
        while add_months(closing, 12 * (k + 1)) < d:
            k += 1
        out[t] = k
    return out


# ---- note options -----------------------------------------------------------------------


def _payment_period(grid: np.ndarray, day: int) -> int:
    """The period whose payment date is ``day``, or the first one after it (T: none)."""
    return int(np.searchsorted(grid[1:], day, side="left"))


def tranche_rates(
    tranche: Tranche,
    grid: np.ndarray,
    idx: tuple[np.ndarray, np.ndarray, np.ndarray],
    index_ids: dict[str, int],
    reset_coupon: Any = None,
) -> np.ndarray:
    """Annual coupon of ``tranche`` in each period: its coupon (or coupon schedule), then
    from its put date the put's reset coupon (``reset_coupon`` replaces the deal's).

    Returns
    -------
    ndarray, shape (T,)
    """
    out = _rate_path(tranche.coupon, grid, idx, index_ids)
    put = tranche.put
    reset = reset_coupon if reset_coupon is not None else (put.reset_coupon if put is not None else None)
    if put is not None and reset is not None:
        path = _rate_path(reset, grid, idx, index_ids)
        live = grid[:-1] >= to_day(put.date)  # the interest periods starting on or after it
        out[live] = path[live]
    return out


def issuer_call_arrays(
    spec: Deal,
    grid: np.ndarray,
    idx: tuple[np.ndarray, np.ndarray, np.ndarray],
    index_ids: dict[str, int],
    exercise: Any = None,
) -> tuple[int, float, float, int, np.ndarray]:
    """The issuer call as (first period, pool factor, price, refinancing test on, refinancing
    rate per payment date); ``exercise`` replaces the deal's exercise policy."""
    n = len(grid) - 1
    call = spec.issuer_call
    rate = np.zeros(n)
    if call is None:
        return n, np.inf, 1.0, 0, rate
    policy = call.exercise if exercise is None else exercise
    period = _payment_period(grid, to_day(call.date))
    if policy == "never":
        return n, np.inf, call.price, 0, rate
    if isinstance(policy, PoolFactorBelow):
        return period, float(policy.pool_factor_below), call.price, 0, rate
    if isinstance(policy, RefinancingBelowCoupon):
        r = policy.refinancing_below_coupon
        ptr, days, rates = idx
        rate = np.array(
            [index_rate(int(grid[t + 1]), index_ids[r.index], ptr, days, rates) for t in range(n)]
        )
        return period, np.inf, call.price, 1, rate + r.spread
    return period, np.inf, call.price, 0, rate


def put_arrays(
    spec: Deal, grid: np.ndarray, support_index: dict[str, int], shares: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tranche: the period of its put date (-1: no put), the share put (``shares``
    replaces the deal's) and the supporter's index (-1: no put)."""
    shares = shares or {}
    period, share, supporter = [], [], []
    for tr in spec.tranches:
        put = tr.put
        if put is None:
            period.append(-1)
            share.append(0.0)
            supporter.append(-1)
        else:
            period.append(_payment_period(grid, to_day(put.date)))
            share.append(float(shares.get(tr.name, put.share)))
            supporter.append(support_index[put.supporter])
    return (
        np.array(period, dtype=np.int64),
        np.array(share, dtype=np.float64),
        np.array(supporter, dtype=np.int64),
    )


def pool_principal(
    sched_principal: np.ndarray,
    sched_balance: np.ndarray,
    grid: np.ndarray,
    speed: Any,
    ages: np.ndarray | None = None,
) -> np.ndarray:
    """Principal (scheduled and prepaid) the whole pool pays in each period with no defaults at
    prepayment ``speed``, by the rules of the deterministic scenarios: a share ``q`` of each
    asset still performs, it pays ``q x`` its scheduled principal and prepays ``q x SMM x`` its
    scheduled balance at the end of the period, and ``q`` falls by ``1 - SMM``. ``ages`` (A,):
    each asset's age at the cut-off, from which a PSA ramp counts.

    Returns
    -------
    ndarray, shape (T,)
    """
    months = period_months(grid)
    if ages is None or not len(ages) or not ages.any():
        smm = prepayment_curve(speed, months)
        q = np.concatenate(([1.0], np.cumprod(1.0 - smm)[:-1]))  # performing share at each start
        return q * (sched_principal.sum(axis=0) + smm * sched_balance.sum(axis=0))
    out = np.zeros(sched_principal.shape[1])  # ---- seasoned pools: PSA counts each loan's age
    for age in np.unique(ages).tolist():
        mine = ages == age
        smm = prepayment_curve(speed, months, int(age))
        q = np.concatenate(([1.0], np.cumprod(1.0 - smm)[:-1]))
        out += q * (sched_principal[mine].sum(axis=0) + smm * sched_balance[mine].sum(axis=0))
    return out


def planned_schedule(balance: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A planned amortisation class's target balances: ``balance`` less the cumulative smaller
    of the two band speeds' pool principal in each period, never below 0."""
    return np.maximum(balance - np.cumsum(np.minimum(low, high)), 0.0)


def scenario_deal(model: CompiledModel, name: str) -> L.CompiledDeal:
    """The compiled deal as scenario ``name`` sees it: its issuer call exercise policy and its
    puts' shares and reset coupons replace the deal's (the Monte Carlo uses the deal's own).

    Returns
    -------
    CompiledDeal
        ``model.cd`` itself when the scenario changes none of them.
    """
    spec = model.spec
    sc = spec.scenarios[name]
    if sc.issuer_call is None and not sc.puts:
        return model.cd
    idx = index_arrays(spec)
    index_ids = {n: i for i, n in enumerate(spec.indices)}
    grid = model.grid
    rates = model.cd.tr_rate.copy()
    for k, tr in enumerate(spec.tranches):
        ov = sc.puts.get(tr.name)
        if ov is not None and ov.reset_coupon is not None:
            rates[k] = tranche_rates(tr, grid, idx, index_ids, ov.reset_coupon)
    shares = {t: float(ov.share) for t, ov in sc.puts.items() if ov.share is not None}
    support_index = {x.name: i for i, x in enumerate(spec.support)}
    _period, put_share, _supporter = put_arrays(spec, grid, support_index, shares)
    period, factor, price, refinance, rate = issuer_call_arrays(spec, grid, idx, index_ids, sc.issuer_call)
    return model.cd._replace(
        tr_rate=rates,
        tr_put_share=put_share,
        icall_period=period,
        icall_factor=factor,
        icall_price=price,
        icall_refinance=refinance,
        icall_rate=rate,
    )


def compile_deal(loaded: LoadedDeal) -> CompiledModel:
    """Compile a validated deal.

    Parameters
    ----------
    loaded : LoadedDeal
        From :func:`ipabs.load_deal`.

    Returns
    -------
    CompiledModel
    """
    spec = loaded.spec
    info = spec.deal
    # ---- calendars: note interest periods run between (adjusted) payment dates from closing;
    # collection periods from the cut-off to each determination date (default: the payment dates)
    calendar_dates = deal_calendar_dates(info)
    dates = calendar_dates.payments
    grid = grid_days(info.closing_date, dates)
    collection_grid = grid_days(info.cut_off, calendar_dates.collection_ends)
    n = len(dates)
    dc = DAY_COUNTS[info.day_count]
    year_frac = np.array([year_fraction(int(grid[t]), int(grid[t + 1]), dc) for t in range(n)])

    obligors = Obligors.build(spec, loaded.tapes)
    assets = build_assets(spec, obligors, loaded.tapes)
    royalties = build_royalties(spec, obligors)
    idx = index_arrays(spec)
    index_ids = {name: i for i, name in enumerate(spec.indices)}

    a = len(assets)
    s_int, s_prin, s_bal = np.zeros((a, n)), np.zeros((a, n)), np.zeros((a, n))
    contractual_flows(
        assets.balance,
        assets.fixed_rate,
        assets.index_id,
        assets.spread,
        assets.rate_floor,
        assets.maturity_day,
        assets.freq_months,
        assets.amortisation,
        assets.io_months,
        assets.day_count,
        assets.balloon,
        assets.custom_ptr,
        assets.custom_day,
        assets.custom_amount,
        idx[0],
        idx[1],
        idx[2],
        collection_grid,
        s_int,
        s_prin,
        s_bal,
        assets.start_day,
    )

    tranche_index = {t.name: i for i, t in enumerate(spec.tranches)}
    fee_index = {f.name: i for i, f in enumerate(spec.fees)}
    account_index = {x.name: i for i, x in enumerate(spec.accounts)}
    support_index = {x.name: i for i, x in enumerate(spec.support)}
    waterfall_index = {w: i for i, w in enumerate(spec.waterfalls)}
    lists = _Lists()
    trigger_index = {g.name: i for i, g in enumerate(spec.triggers)}
    amounts = _Amounts(grid, lists, tranche_index, trigger_index)

    # tranches
    due_period = []
    schedules = np.full((len(spec.tranches), n), np.inf)
    for i, tr in enumerate(spec.tranches):
        if tr.expected_maturity is not None:
            day = to_day(tr.expected_maturity)
            due_period.append(int(np.searchsorted(grid, day, side="left")) - 1)
        else:
            due_period.append(n - 1)
        if tr.amortisation_schedule:
            schedules[i] = _per_period(tr.amortisation_schedule, n)
        if tr.planned_amortisation is not None:  # ---- note options
            band = tr.planned_amortisation.band
            schedules[i] = planned_schedule(
                tr.balance,
                pool_principal(s_prin, s_bal, collection_grid, band.low, assets.age_months),
                pool_principal(s_prin, s_bal, collection_grid, band.high, assets.age_months),
            )
    tr_rate = np.array([tranche_rates(t, grid, idx, index_ids) for t in spec.tranches]).reshape(
        len(spec.tranches), n
    )

    # fees
    fee_kind, fee_amount, fee_base, fee_group = [], [], [], []
    for f in spec.fees:
        q, g = amounts.quantity(f.base)
        if f.annual_amount is not None:
            fee_kind.append(L.FEE_ANNUAL)
            fee_amount.append(f.annual_amount)
        elif isinstance(f.period_amount, Formula | Schedule):
            fee_kind.append(L.FEE_AMOUNT)
            fee_amount.append(0.0)
            q = amounts.add(f.period_amount)  # the kernel reads the amount's index from fee_base
        elif f.period_amount is not None:
            fee_kind.append(L.FEE_PERIOD)
            fee_amount.append(f.period_amount)
        else:
            fee_kind.append(L.FEE_RATE)
            fee_amount.append(float(f.rate or 0.0))
        fee_base.append(q)
        fee_group.append(g)

    # accounts
    acc_target = [amounts.add(x.target) for x in spec.accounts]

    # support
    sup_kind, cap_p, cap_t, sup_rate, provider = [], [], [], [], []
    for x in spec.support:
        if isinstance(x, DeficiencyPayment):
            sup_kind.append(L.SUP_DEFICIENCY)
            cap_p.append(np.inf if x.cap_per_period is None else x.cap_per_period)
            cap_t.append(np.inf if x.cap_total is None else x.cap_total)
            sup_rate.append(x.reimbursement_rate)
        elif isinstance(x, LiquiditySupport):  # ---- note options
            sup_kind.append(L.SUP_LIQUIDITY_SUPPORT)
            cap_p.append(np.inf)
            cap_t.append(x.limit)
            sup_rate.append(0.0)
        else:
            sup_kind.append(L.SUP_LIQUIDITY)
            cap_p.append(np.inf)
            cap_t.append(x.limit)
            sup_rate.append(x.rate)
        provider.append(obligors.index[x.provider])

    # claims
    claims: dict[str, int] = {}
    claim_kind, claim_index = [], []
    for name, i in fee_index.items():
        claims[name] = len(claim_kind)
        claim_kind.append(L.CLAIM_FEE)
        claim_index.append(i)
    for name, i in tranche_index.items():
        for what, code in (
            ("interest", L.CLAIM_INTEREST),
            ("principal", L.CLAIM_PRINCIPAL),
            ("principal_at_final", L.CLAIM_PRINCIPAL_AT_FINAL),
            ("principal_at_maturity", L.CLAIM_PRINCIPAL_AT_MATURITY),
        ):
            claims[f"{name}.{what}"] = len(claim_kind)
            claim_kind.append(code)
            claim_index.append(i)

    # triggers
    trg: dict[str, list[Any]] = {
        k: []
        for k in (
            *("kind", "group", "account", "consec", "curable", "seq", "trap", "wf", "end", "ob"),
            *("periods", "of", "valuation", "days"),
        )
    }
    thresholds = np.zeros((len(spec.triggers), n))
    projections = np.zeros((len(spec.triggers), n))  # ---- covenants
    contractual = contractual_collections(s_int, s_prin, royalties, collection_grid)
    for i, g in enumerate(spec.triggers):
        trg["kind"].append(L.TRIGGER_CODES[g.kind])
        tested = g.tranches
        if g.kind == "put_unfunded" and not tested:  # ---- note options: every tranche with a put
            tested = [t.name for t in spec.tranches if t.put is not None]
        trg["group"].append(lists.add([tranche_index[x] for x in tested]) if tested else -1)
        trg["account"].append(account_index[g.account] if g.account else -1)
        trg["consec"].append(g.consecutive)
        trg["curable"].append(g.curable)
        trg["seq"].append(g.effect.sequential)
        trg["trap"].append(g.effect.trap)
        trg["wf"].append(waterfall_index[g.effect.waterfall] if g.effect.waterfall else -1)
        trg["end"].append(g.effect.end_revolving)
        if g.obligor is not None:  # its default period follows the support providers' (stop array)
            trg["ob"].append(len(provider))
            provider.append(obligors.index[g.obligor])
        else:
            trg["ob"].append(-1)
        thresholds[i] = _per_period(g.threshold, n)
        # ---- covenants
        trg["periods"].append(g.periods or 1)
        trg["of"].append(L.QUANTITY_CODES[g.of] - L.Q_INTEREST_COLLECTIONS)
        trg["valuation"].append(amounts.add(g.valuation) if g.valuation is not None else -1)
        trg["days"].append(g.days_past_due // 30 - 1)  # ---- delinquency
        if g.kind == "collections_vs_projection":
            if g.projection == "contractual":
                projections[i] = contractual[g.of]
            else:
                projections[i, : min(n, len(g.projection))] = g.projection[:n]

    # ---- hedges: their counterparties' default periods follow in the stop array
    hedges = hedge_arrays(spec, grid, idx, index_ids, amounts, dc)
    hedge_stop = []
    for h in spec.hedges:
        hedge_stop.append(len(provider))
        provider.append(obligors.index[h.counterparty])
    hedge_index = {h.name: i for i, h in enumerate(spec.hedges)}
    # ---- delinquency: the servicer's default period follows too
    adv = spec.servicer_advances
    adv_on = 0 if adv is None else int(adv.interest) + 2 * int(adv.principal)
    adv_stop = -1
    if adv is not None:
        adv_stop = len(provider)
        provider.append(obligors.index[adv.servicer])

    # waterfalls
    ops: list[tuple[int, int, int, int, int]] = []
    pots: list[int] = []
    wf_ptr = [0]
    pot_codes = {"combined": L.POT_COMBINED, "income": L.POT_INCOME, "principal": L.POT_PRINCIPAL}
    steps_of: dict[str, list[tuple[str, Any]]] = {w: [] for w in spec.waterfalls}
    for w, _path, ledger, step in spec.waterfall_steps():
        steps_of[w].append((ledger, step))
    for steps in steps_of.values():
        for ledger, step in steps:
            kind, v = step.kind, step.value
            op = L.STEP_CODES[kind]
            pots.append(pot_codes[ledger])
            if kind == "pay_fee":
                ops.append((op, lists.add([fee_index[x] for x in v]), 0, 0, -1))
            elif kind == "pay_interest":
                ops.append((op, lists.add([tranche_index[x] for x in v]), 0, 0, -1))
            elif kind == "pay_principal":
                amt = amounts.add(v.down_to) if v.down_to is not None else -1
                ops.append(
                    (
                        op,
                        lists.add([tranche_index[x] for x in v.tranches]),
                        1 if v.mode == "pro_rata" else 0,
                        L.LIMIT_CODES[v.limit],
                        amt,
                    )
                )
            elif kind in ("fund_account", "trap_cash"):
                ops.append((op, account_index[v], 0, 0, -1))
            elif kind == "draw":
                is_acc = v.source in account_index
                src = account_index[v.source] if is_acc else support_index[v.source]
                ops.append((op, 0 if is_acc else 1, src, lists.add([claims[c] for c in v.covers]), -1))
            elif kind in ("repay_liquidity", "reimburse"):
                ops.append((op, support_index[v], 0, 0, -1))
            elif kind == "pay_residual":
                ops.append((op, tranche_index[v], 0, 0, -1))
            elif kind == "to_principal":
                if v == "deficiency":
                    ops.append((op, L.TO_PRINCIPAL_DEFICIENCY, -1, 0, -1))
                elif v == "all":
                    ops.append((op, L.TO_PRINCIPAL_ALL, -1, 0, -1))
                else:
                    ops.append((op, L.TO_PRINCIPAL_AMOUNT, amounts.add(v), 0, -1))
            elif kind == "pay_fee_above_cap":
                ops.append((op, lists.add([fee_index[x] for x in v]), 0, 0, -1))
            elif kind == "buy_assets":
                ops.append((op, 0, 0, 0, -1))
            elif kind in ("pay_hedge", "pay_hedge_termination"):  # ---- hedges
                ops.append((op, hedge_index[v], 0, 0, -1))
            else:  # every step kind compiles to one operation
                raise AssertionError(f"no opcode for step kind {kind!r}")
        wf_ptr.append(len(ops))
    normal = waterfall_index.get("normal", 0)
    # a deficiency payer is owed its payments back only when a step reimburses it; a
    # liquidity facility always is
    named = {s.value for *_, s in spec.waterfall_steps() if s.kind == "reimburse"}
    reimbursable = [not isinstance(x, DeficiencyPayment) or x.name in named for x in spec.support]

    pool_balance = float(assets.balance.sum())
    call = spec.clean_up_call

    def i64(x: list[Any]) -> np.ndarray:
        return np.array(x, dtype=np.int64)

    def f64(x: list[Any]) -> np.ndarray:
        return np.array(x, dtype=np.float64)

    ledgers = spec.ledgers
    rec_share = 1.0
    pdl_debits = 0
    if ledgers is not None:
        if isinstance(ledgers.recoveries, str):
            rec_share = 1.0 if ledgers.recoveries == "principal" else 0.0
        else:
            rec_share = float(ledgers.recoveries.principal)
        if "defaults" in ledgers.principal_deficiency_debits:
            pdl_debits |= L.PDL_DEBIT_DEFAULTS
        if "realised_losses" in ledgers.principal_deficiency_debits:
            pdl_debits |= L.PDL_DEBIT_LOSSES
    alloc = spec.loss_allocation
    write_down, wd_group = L.WRITE_DOWN_NONE, -1
    if alloc is not None:
        write_down = L.WRITE_DOWN_AT_DEFAULT if alloc.at == "default" else L.WRITE_DOWN_AT_LIQUIDATION
        order = alloc.order if alloc.order is not None else [t.name for t in reversed(spec.tranches)]
        wd_group = lists.add([tranche_index[x] for x in order])

    rv = compile_revolving(spec, grid, idx)

    arows = amounts.rows
    # amounts and fees that read this period's collections, ledger or tests (the first slots
    # of the waterfall's quantity vector)
    period_quantities = (
        any(r[0] == L.AMT_FORMULA and r[1] >= L.Q_INTEREST_COLLECTIONS for r in arows)
        or any(g.kind == "collections_vs_projection" for g in spec.triggers)
        or any(
            k == L.FEE_RATE and q >= L.Q_INTEREST_COLLECTIONS for k, q in zip(fee_kind, fee_base, strict=True)
        )
    )
    icall = issuer_call_arrays(spec, grid, idx, index_ids)
    put_period, put_share, put_supporter = put_arrays(spec, grid, support_index)
    cd = L.CompiledDeal(
        n_periods=n,
        year_frac=year_frac,
        tr_balance=f64([t.balance for t in spec.tranches]),
        tr_rate=tr_rate,
        tr_defer=i64([t.defer_interest for t in spec.tranches]),
        tr_due_period=i64(due_period),
        tr_schedule=schedules,
        fee_kind=i64(fee_kind),
        fee_amount=f64(fee_amount),
        fee_base=i64(fee_base),
        fee_base_group=i64(fee_group),
        fee_senior=i64([f.rank == "senior" for f in spec.fees]),
        grp_ptr=i64(lists.ptr),
        grp_item=i64(lists.items),
        amt_kind=i64([r[0] for r in arows]),
        amt_quantity=i64([r[1] for r in arows]),
        amt_group=i64([r[2] for r in arows]),
        amt_share=f64([r[3] for r in arows]),
        amt_floor=f64([r[4] for r in arows]),
        amt_cap=f64([r[5] for r in arows]),
        amt_value=np.array([r[6] for r in arows], dtype=np.float64).reshape(len(arows), n),
        acc_kind=i64([L.ACC_TRAP if x.kind == "trap" else L.ACC_RESERVE for x in spec.accounts]),
        acc_initial=f64([x.initial for x in spec.accounts]),
        acc_target=i64(acc_target),
        acc_floor=f64([x.floor for x in spec.accounts]),
        acc_release=i64([x.release_excess for x in spec.accounts]),
        sup_kind=i64(sup_kind),
        sup_cap_period=f64(cap_p),
        sup_cap_total=f64(cap_t),
        sup_rate=f64(sup_rate),
        claim_kind=i64(claim_kind),
        claim_index=i64(claim_index),
        trg_kind=i64(trg["kind"]),
        trg_threshold=thresholds,
        trg_group=i64(trg["group"]),
        trg_account=i64(trg["account"]),
        trg_consecutive=i64(trg["consec"]),
        trg_curable=i64(trg["curable"]),
        trg_sequential=i64(trg["seq"]),
        trg_trap=f64(trg["trap"]),
        trg_waterfall=i64(trg["wf"]),
        wf_ptr=i64(wf_ptr),
        normal_waterfall=normal,
        st_op=i64([o[0] for o in ops]),
        st_a=i64([o[1] for o in ops]),
        st_b=i64([o[2] for o in ops]),
        st_c=i64([o[3] for o in ops]),
        st_d=i64([o[4] for o in ops]),
        call_threshold=-1.0 if call is None else float(call.threshold),
        call_price=1.0 if call is None else float(call.price),
        original_pool_balance=pool_balance,
        st_pot=i64(pots),
        fee_cap_year=f64([np.inf if f.cap_per_year is None else f.cap_per_year for f in spec.fees]),
        year_id=deal_years(info.closing_date, dates),
        acc_to_principal=i64([x.releases_to == "principal" for x in spec.accounts]),
        rec_principal_share=rec_share,
        pdl_debits=pdl_debits,
        write_down=write_down,
        write_down_group=wd_group,
        period_quantities=int(period_quantities),
        spread_read=int(period_quantities or any(g.kind == "excess_spread" for g in spec.triggers)),
        rv_last=rv.last_period,
        rv_price=rv.price,
        rv_share=rv.share,
        rv_loan_size=rv.loan_size,
        rv_max_share=rv.max_share,
        rv_eligible=rv.eligible,
        rv_int=rv.unit_interest,
        rv_prin=rv.unit_principal,
        rv_bal=rv.unit_balance,
        trg_end_revolving=i64(trg["end"]),
        trg_obligor=i64(trg["ob"]),
        sup_reimbursable=i64(reimbursable),
        icall_period=icall[0],
        icall_factor=icall[1],
        icall_price=icall[2],
        icall_refinance=icall[3],
        icall_rate=icall[4],
        tr_put_period=put_period,
        tr_put_share=put_share,
        tr_put_supporter=put_supporter,
        put_any=int(bool((put_period >= 0).any())),
        # ---- covenants
        trg_periods=i64(trg["periods"]),
        trg_of=i64(trg["of"]),
        trg_projection=projections,
        trg_valuation=i64(trg["valuation"]),
        amt_horizon=np.array(amounts.horizons, dtype=np.int64).reshape(len(arows), n),
        acc_keep=i64([x.after_switch == "keep_funded" for x in spec.accounts]),
        hg_notional=i64(hedges["notional"]),
        hg_pay_rate=hedges["pay"],
        hg_recv_rate=hedges["receive"],
        hg_year_frac=hedges["year_frac"],
        hg_discount=hedges["discount"],
        hg_live=hedges["live"],
        hg_stop=i64(hedge_stop),
        hg_on_switch=i64([h.terminate_on_switch for h in spec.hedges]),
        hg_recovery=f64([h.termination_recovery for h in spec.hedges]),
        trg_days=i64(trg["days"]),
        adv_on=adv_on,
        adv_stop=adv_stop,
    )
    return CompiledModel(
        deal=loaded,
        cd=cd,
        grid=grid,
        assets=assets,
        royalties=royalties,
        obligors=obligors,
        sched_interest=s_int,
        sched_principal=s_prin,
        sched_balance=s_bal,
        support_provider=i64(provider),
        tranche_names=list(tranche_index),
        fee_names=list(fee_index),
        account_names=list(account_index),
        support_names=list(support_index),
        trigger_names=[g.name for g in spec.triggers],
        waterfall_names=list(waterfall_index),
        pool_names=[p.name for p in spec.pools],
        cover=_loss_cover(spec, assets, obligors, dates),
        cover_names=[c.name for c in spec.loss_cover],
        collection_grid=collection_grid,
        hedge_names=list(hedge_index),
    )


def _loss_cover(spec: Deal, assets: AssetArrays, obligors: Obligors, dates: list[Any]) -> L.CoverArrays:
    """The ``loss_cover`` section as arrays: which cover each asset has, and the payers."""
    pools = [p.name for p in spec.pools]
    a_cover = np.full(len(assets), -1, dtype=np.int64)
    kinds, lags, ptr = [], [], [0]
    p_obligor, p_share, p_year, p_total = [], [], [], []
    for c, cover in enumerate(spec.loss_cover):
        targets = set(cover.covers)
        for a in range(len(assets)):
            if (
                pools[int(assets.pool[a])] in targets
                or assets.id[a] in targets
                or obligors.names[int(assets.obligor[a])] in targets
            ):
                a_cover[a] = c
        if isinstance(cover, GuaranteeInsurance):
            kinds.append(L.COVER_INSURANCE)
            lags.append(cover.waiting_months)
            payers = [(cover.insurer, cover.share, None, cover.cap_total)]
        else:
            realised = cover.basis == "realised_loss"
            kinds.append(L.COVER_REALISED_LOSS if realised else L.COVER_DEFAULTED_PRINCIPAL)
            lags.append(cover.lag_months)
            payers = [(p.obligor, p.share, p.cap_per_year, p.cap_total) for p in cover.payers]
        for name, share, cap_year, cap_total in payers:
            p_obligor.append(obligors.index[name])
            p_share.append(share)
            p_year.append(np.inf if cap_year is None else cap_year)
            p_total.append(np.inf if cap_total is None else cap_total)
        ptr.append(len(p_obligor))
    # a payment date in (closing + 12k months, closing + 12(k+1) months] is in deal year k
    closing = spec.deal.closing_date
    year = []
    for d in dates:
        k = 0
        while add_months(closing, 12 * (k + 1)) < d:
            k += 1
        year.append(k)
    return L.CoverArrays(
        a_cover=a_cover,
        cv_kind=np.array(kinds, dtype=np.int64),
        cv_lag_months=np.array(lags, dtype=np.int64),
        cv_payer_ptr=np.array(ptr, dtype=np.int64),
        py_obligor=np.array(p_obligor, dtype=np.int64),
        py_share=np.array(p_share, dtype=np.float64),
        py_cap_year=np.array(p_year, dtype=np.float64),
        py_cap_total=np.array(p_total, dtype=np.float64),
        period_year=np.array(year, dtype=np.int64),
    )


# ---- hedges -------------------------------------------------------------------------------


def hedge_arrays(
    spec: Deal,
    grid: np.ndarray,
    idx: tuple[np.ndarray, np.ndarray, np.ndarray],
    index_ids: dict[str, int],
    amounts: _Amounts,
    deal_day_count: int,
) -> dict[str, Any]:
    """The ``hedges`` section as arrays: per hedge its notional (an amount index) and, per
    period, the annual rates of the trust's and the counterparty's legs, the year fraction, the
    discount factor from closing to the payment date and whether the hedge settles the period.

    The index of a period is its level on the period's first day (reset in advance). The
    discount factor to payment date ``t`` is ``prod_{u<=t} 1 / (1 + r_u x yf_u)`` on the
    hedge's index ``r_u`` and year fractions ``yf_u`` (see docs/hedges.md).

    Returns
    -------
    dict
        ``notional`` (list of amount indices, one per hedge, added to ``amounts``), and arrays
        of shape (H, T): ``pay``, ``receive``, ``year_frac``, ``discount`` and ``live``.
    """
    n = len(grid) - 1
    h_count = len(spec.hedges)
    pay, receive = np.zeros((h_count, n)), np.zeros((h_count, n))
    year_frac, discount = np.zeros((h_count, n)), np.ones((h_count, n))
    live = np.zeros((h_count, n), dtype=np.int64)
    notional = []
    ptr, days, rates = idx
    for i, h in enumerate(spec.hedges):
        dc = deal_day_count if h.day_count is None else DAY_COUNTS[h.day_count]
        yf = np.array([year_fraction(int(grid[t]), int(grid[t + 1]), dc) for t in range(n)])
        level = np.array([index_rate(int(grid[t]), index_ids[h.index], ptr, days, rates) for t in range(n)])
        if isinstance(h, InterestRateSwap):
            fixed = np.full(n, float(h.fixed_rate))
            floating = level + h.spread
            pay[i], receive[i] = (fixed, floating) if h.trust_pays == "fixed" else (floating, fixed)
        else:
            pay[i] = h.premium_rate
            receive[i] = np.maximum(level - h.strike, 0.0)
        year_frac[i] = yf
        discount[i] = np.cumprod(1.0 / (1.0 + level * yf))
        start = grid[0] if h.start_date is None else to_day(h.start_date)
        end = grid[-1] if h.end_date is None else to_day(h.end_date)
        live[i] = (grid[:-1] >= start) & (grid[1:] <= end)
        notional.append(amounts.add(h.notional))
    return {
        "notional": notional,
        "pay": pay,
        "receive": receive,
        "year_frac": year_frac,
        "discount": discount,
        "live": live,
    }
