"""Income-approach valuation of pledged IP: relief from royalty or multi-period excess earnings,
risk-adjusted for technology maturity, legal status and market prospects, with the value's
volatility from revenue volatility and the binary legal and technical risks.

Every formula is in docs/ip-valuation.md with its source. In short, for an asset valued on
(or revalued at) date ``a`` with forecast years ``t = 1..N`` (year t runs over ``[t-1, t]``
years after the valuation date on an ACT/365 clock):

- income of year t's part after ``a`` and before expiry, of length ``l_t`` years:
  relief from royalty ``R_t x l_t x royalty x (1 - tax)``; excess earnings
  ``R_t x l_t x (margin x (1 - tax) - sum of contributory charges)`` (after-tax charges as
  shares of revenue);
- present value ``PV = sum_t income_t x (1 + r)^-s_t``, ``s_t`` the part's middle (or end)
  in years after ``a``; ``r`` = risk-free + premia + market premium + the asset's premium;
- value ``q x PV x TAB`` with ``q`` = P(technical success | TRL) x P(the right survives | legal
  status) and ``TAB = 1 / (1 - tax / n x sum_{k=1..n} (1 + r)^-(k - 1/2))`` (or ``^-k``);
- revenue ``R_t x exp(sigma W(u_t) - sigma^2 u_t / 2)`` with a Brownian motion W and ``u_t``
  the part's middle: ``E[PV^2] = sum_s sum_t c_s c_t exp(sigma^2 min(u_s, u_t))`` exactly, so
  ``Var(value) = q E[PV^2] TAB^2 - value^2``; the volatility is the log-sd of the lognormal of
  the same mean and variance, ``sqrt(log(1 + Var / value^2))``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ipabs.deal.valuation import (
    LEGAL_SURVIVAL,
    MARKET_PREMIUM,
    TRL_SUCCESS,
    Event,
    IPAsset,
    IPValuationFile,
    ValuationSettings,
    years_between,
)

FACTORS = ("trl", "legal", "market", "expiry", "licence", "tax_amortisation")
"""The factors whose effect is reported: the value with all factors minus the value with this
one neutral (TRL: success certain; legal: the right survives; market: no premium; expiry: cash
to the forecast's end; licence: no revenue lost to terminated licences; TAB: none)."""


@dataclass(frozen=True)
class AssetState:
    """An asset's state on a date after its events: legal status, the share of its revenue
    kept after terminated licences, and the events applied (described)."""

    legal_status: str
    revenue_kept: float = 1.0
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssetValue:
    """The valuation of one asset on a date.

    Attributes
    ----------
    value : float
        Appraised value: the expected risk-adjusted present value (with the TAB when asked).
    value_sd : float
        Standard deviation of the value (revenue volatility and the binary risks).
    value_volatility : float
        ``sqrt(log(1 + (value_sd / value)^2))``: the log-sd of the lognormal with the same mean
        and variance (0 when the value is 0), what ``pledged_ip.value_volatility`` takes.
    discount_rate : float
        The asset's discount rate; ``build_up`` gives its components.
    remaining_life_years : float
        Years from the date to the expiry (inf: none or renewable).
    effects : dict
        Factor -> value with every factor minus value with that factor neutral (see FACTORS).
    flows : list of dict
        The yearly pieces: year, start and end (years after the valuation date), revenue,
        after-tax income, discount time, discount factor, present value.
    """

    id: str
    loan: str | None
    kind: str
    count: int
    method: str
    legal_status: str
    trl: int | None
    market: str
    value: float
    value_sd: float
    value_volatility: float
    pv_before_risk: float
    discount_rate: float
    build_up: dict[str, float]
    remaining_life_years: float
    success_probability: float
    survival_probability: float
    tab_factor: float
    revenue_kept: float
    effects: dict[str, float]
    events: tuple[str, ...] = ()
    flows: list[dict[str, float]] = field(default_factory=list)


def apply_events(asset: IPAsset, events: list[Event], as_of: dt.date) -> AssetState:
    """The asset's state on ``as_of`` after its events dated on or before it, in date order
    (a later event of the same day follows the file's order).

    ``patent_invalidated`` and ``litigation_resolved`` with ``outcome: invalidated`` make the
    status ``invalidated`` (value 0 from then on); ``challenge_filed`` makes a clear right
    ``challenged``; ``litigation_started`` makes it ``in_litigation``; ``litigation_resolved``
    with ``outcome: upheld`` makes it ``clear``; ``licence_terminated`` keeps ``1 -
    revenue_lost`` of the revenue (terminations multiply)."""
    status = asset.legal_status
    kept = 1.0
    done: list[str] = []
    mine = sorted(
        (e for e in events if e.asset == asset.id and e.date <= as_of), key=lambda e: e.date
    )  # sorted() is stable: same-day events keep the file's order
    for e in mine:
        if status == "invalidated":
            done.append(f"{e.date} {e.kind} (ignored: the right was invalidated)")
            continue
        if e.kind == "patent_invalidated" or (e.kind == "litigation_resolved" and e.outcome == "invalidated"):
            status = "invalidated"
        elif e.kind == "challenge_filed" and status == "clear":
            status = "challenged"
        elif e.kind == "litigation_started":
            status = "in_litigation"
        elif e.kind == "litigation_resolved":
            status = "clear"
        elif e.kind == "licence_terminated":
            kept *= 1.0 - e.revenue_lost
        note = f" ({e.outcome})" if e.outcome else ""
        if e.kind == "licence_terminated":
            note = f" ({e.revenue_lost:.0%} of the revenue lost)"
        done.append(f"{e.date} {e.kind}{note}")
    return AssetState(status, kept, tuple(done))


def revenue_forecast(asset: IPAsset) -> np.ndarray:
    """Revenue of each forecast year: the list given, or ``base x (1 + growth)^(t-1)``."""
    rev = asset.revenue
    if isinstance(rev, list):
        return np.array(rev, dtype=np.float64)
    return rev.base * (1.0 + rev.growth) ** np.arange(rev.years, dtype=np.float64)


def income_share(asset: IPAsset, tax_rate: float) -> float:
    """After-tax income per unit of revenue: ``royalty x (1 - tax)`` (relief from royalty) or
    ``margin x (1 - tax) - sum of contributory charges`` (excess earnings)."""
    if asset.method == "relief_from_royalty":
        return float(asset.royalty_rate or 0.0) * (1.0 - tax_rate)
    charges = sum(c.rate for c in asset.contributory_charges)
    return float(asset.operating_margin or 0.0) * (1.0 - tax_rate) - charges


def tab_factor(tax_rate: float, rate: float, years: int, mid_year: bool) -> float:
    """Tax amortisation benefit factor ``1 / (1 - tax / n x sum_{k=1..n} (1 + r)^-(k - 1/2))``
    (mid-year; ``^-k`` at year ends): the value of the IP with the tax saved by amortising it
    straight-line over ``n`` years, per unit of its value without (IVS 210; Reilly & Schweihs)."""
    k = np.arange(1, years + 1, dtype=np.float64) - (0.5 if mid_year else 0.0)
    annuity = float(((1.0 + rate) ** -k).sum()) / years
    return 1.0 / (1.0 - tax_rate * annuity)


def discount_build_up(asset: IPAsset, settings: ValuationSettings) -> dict[str, float]:
    """Components of the asset's discount rate: ``risk_free``, each named premium, ``market``
    (by its prospects, from the table or the asset's override) and ``asset`` (its own premium)."""
    d = settings.discount_rate
    out = {"risk_free": d.risk_free, **{f"premium_{k}": v for k, v in d.premia.items()}}
    table = {**MARKET_PREMIUM, **settings.market_premium}
    out["market"] = asset.market_premium if asset.market_premium is not None else table[asset.market]
    out["asset"] = asset.extra_premium
    return out


def _pieces(
    asset: IPAsset, settings: ValuationSettings, as_of: dt.date, *, cut_at_expiry: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(years, lo, hi, revenue, shock time) of each forecast year's part after ``as_of`` and
    before the end of legal life; lo and hi in years after the valuation date."""
    rev = revenue_forecast(asset)
    n = len(rev)
    a0 = years_between(settings.valuation_date, as_of)
    end = float(n)
    if cut_at_expiry and asset.expiry_date is not None and not asset.renewable:
        end = min(end, years_between(settings.valuation_date, asset.expiry_date))
    t = np.arange(1, n + 1, dtype=np.float64)
    lo = np.maximum(t - 1.0, a0)
    hi = np.minimum(t, end)
    length = np.maximum(hi - lo, 0.0)
    keep = length > 0.0
    return t[keep], lo[keep], hi[keep], rev[keep] * length[keep], 0.5 * (lo[keep] + hi[keep]) - a0


def _present_value(
    asset: IPAsset,
    settings: ValuationSettings,
    as_of: dt.date,
    state: AssetState,
    neutral: frozenset[str] = frozenset(),
) -> tuple[float, float, np.ndarray, np.ndarray, dict[str, Any]]:
    """(risk-adjusted value, q = P(success) x P(survival), c_t, u_t, details) with the
    factors in ``neutral`` switched off; ``c_t`` are the present values of the yearly incomes
    times the TAB factor (before q)."""
    build = discount_build_up(asset, settings)
    if "market" in neutral:
        build["market"] = 0.0
    r = sum(build.values())
    years, lo, hi, revenue, shock_time = _pieces(
        asset, settings, as_of, cut_at_expiry="expiry" not in neutral
    )
    kept = 1.0 if "licence" in neutral else state.revenue_kept
    revenue = revenue * kept
    income = revenue * income_share(asset, settings.tax_rate)
    a0 = years_between(settings.valuation_date, as_of)
    when = (0.5 * (lo + hi) if settings.mid_year else hi) - a0
    df = (1.0 + r) ** -when
    tab = 1.0
    if settings.tax_amortisation is not None and "tax_amortisation" not in neutral:
        tab = tab_factor(settings.tax_rate, r, settings.tax_amortisation.years, settings.mid_year)
    success = 1.0
    if asset.success_probability is not None:
        success = asset.success_probability
    elif asset.trl is not None:
        success = {**TRL_SUCCESS, **settings.trl_success}[asset.trl]
    if "trl" in neutral:
        success = 1.0
    table = {**LEGAL_SURVIVAL, **settings.legal_survival}
    survival = table[state.legal_status]
    if asset.survival_probability is not None and state.legal_status == asset.legal_status:
        survival = asset.survival_probability  # the asset's own view of its initial status
    if state.legal_status == "invalidated":
        survival = 0.0
    if "legal" in neutral:
        survival = 1.0
    c = income * df * tab
    q = success * survival
    details = {
        "rate": r,
        "build_up": build,
        "tab": tab,
        "success": success,
        "survival": survival,
        "flows": [
            {
                "year": int(y),
                "start_years": float(a),
                "end_years": float(b),
                "revenue": float(v),
                "income_after_tax": float(i),
                "discount_years": float(w),
                "discount_factor": float(f),
                "present_value": float(i * f),
            }
            for y, a, b, v, i, w, f in zip(years, lo, hi, revenue, income, when, df, strict=True)
        ],
    }
    return q * float(c.sum()), q, c, shock_time, details


def value_moments(c: np.ndarray, shock_time: np.ndarray, sigma: float, q: float) -> tuple[float, float]:
    """Mean and standard deviation of ``B x sum_t c_t exp(sigma W(u_t) - sigma^2 u_t / 2)``,
    ``B`` Bernoulli(``q``) independent of the Brownian motion ``W``:
    ``E = q sum c``, ``E[X^2] = q sum_s sum_t c_s c_t exp(sigma^2 min(u_s, u_t))`` (as
    ``E[exp(sigma W(s) + sigma W(t))] = exp(sigma^2 (s + t + 2 min(s, t)) / 2)``).

    Returns
    -------
    tuple of float
        Mean and standard deviation.
    """
    mean = q * float(c.sum())
    if len(c) == 0 or q == 0.0:
        return mean, 0.0
    u = np.minimum.outer(shock_time, shock_time)
    # Var = q (E[PV^2] - (sum c)^2) + q (1 - q) (sum c)^2, written with expm1 so that it is
    # exactly 0 without revenue volatility and binary risk
    total = float(c.sum())
    var = q * float(c @ np.expm1(sigma * sigma * u) @ c) + q * (1.0 - q) * total * total
    return mean, math.sqrt(max(var, 0.0))


def lognormal_volatility(mean: float, sd: float) -> float:
    """Log-sd of the lognormal with this mean and sd: ``sqrt(log(1 + (sd / mean)^2))`` (0 when
    the mean is not positive)."""
    if mean <= 0.0:
        return 0.0
    return math.sqrt(math.log1p((sd / mean) ** 2))


def value_asset(
    asset: IPAsset,
    settings: ValuationSettings,
    as_of: dt.date | None = None,
    events: list[Event] | None = None,
) -> AssetValue:
    """Value one asset on ``as_of`` (default: the valuation date) after ``events``.

    Parameters
    ----------
    asset : IPAsset
        The asset's inputs.
    settings : ValuationSettings
        The file's shared settings.
    as_of : datetime.date, optional
        Revaluation date, on or after the valuation date: cash before it is no longer counted
        and discounting starts from it.
    events : list of Event, optional
        Events of the file; those of this asset dated on or before ``as_of`` apply.

    Returns
    -------
    AssetValue
    """
    as_of = settings.valuation_date if as_of is None else as_of
    state = apply_events(asset, events or [], as_of)
    value, q, c, u, det = _present_value(asset, settings, as_of, state)
    mean, sd = value_moments(c, u, asset.revenue_volatility, q)
    effects = {}
    for f in FACTORS:
        without = _present_value(asset, settings, as_of, state, frozenset({f}))[0]
        effects[f] = value - without
    life = math.inf
    if asset.expiry_date is not None and not asset.renewable:
        life = max(years_between(as_of, asset.expiry_date), 0.0)
    return AssetValue(
        id=asset.id,
        loan=asset.loan,
        kind=asset.kind,
        count=asset.count,
        method=asset.method,
        legal_status=state.legal_status,
        trl=asset.trl,
        market=asset.market,
        value=mean,
        value_sd=sd,
        value_volatility=lognormal_volatility(mean, sd),
        pv_before_risk=float(c.sum()),
        discount_rate=det["rate"],
        build_up=det["build_up"],
        remaining_life_years=life,
        success_probability=det["success"],
        survival_probability=det["survival"],
        tab_factor=det["tab"],
        revenue_kept=state.revenue_kept,
        effects=effects,
        events=state.events,
        flows=det["flows"],
    )


@dataclass(frozen=True)
class LoanValue:
    """The pledged IP of one loan: the sum of its assets' values; the sd is the sum of their
    sds (the assets' values taken as moving together: an upper bound)."""

    loan_id: str
    kind: str
    count: int
    appraised_value: float
    value_sd: float
    value_volatility: float
    assets: tuple[str, ...]


def by_loan(values: list[AssetValue]) -> list[LoanValue]:
    """Group asset values by their ``loan`` (assets without one are left out), in first-seen order."""
    groups: dict[str, list[AssetValue]] = {}
    for v in values:
        if v.loan is not None:
            groups.setdefault(v.loan, []).append(v)
    out = []
    for loan, vs in groups.items():
        total = sum(v.value for v in vs)
        sd = sum(v.value_sd for v in vs)
        kinds = {v.kind for v in vs}
        out.append(
            LoanValue(
                loan_id=loan,
                kind=kinds.pop() if len(kinds) == 1 else "mixed",
                count=sum(v.count for v in vs),
                appraised_value=total,
                value_sd=sd,
                value_volatility=lognormal_volatility(total, sd),
                assets=tuple(v.id for v in vs),
            )
        )
    return out


def value_file(
    spec: IPValuationFile, as_of: dt.date | None = None, events: list[Event] | None = None
) -> list[AssetValue]:
    """Value every asset of a valuation file on ``as_of`` after the file's events and ``events``.

    Returns
    -------
    list of AssetValue
        In the file's order.
    """
    every = [*spec.events, *(events or [])]
    return [value_asset(a, spec.valuation, as_of, every) for a in spec.assets]
