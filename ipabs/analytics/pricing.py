"""Pricing a tranche of a deterministic run: price, yield and spread; accrued interest;
duration and convexity at the yield; WAL and principal window; the par coupon; price-yield
tables over scenarios.

Conventions (``docs/pricing.md`` states them for users):

- Cash flows are the tranche's payments (interest, principal and residual) on payment dates
  strictly after the settlement date (default: the closing date).
- Time is ACT/365 (fixed) years from the settlement date, as for every yield ipabs reports.
- Yields are annual effective rates: the dirty price is ``sum(c_i / (1 + y)^t_i)``.
- Prices are percentages of the tranche's current balance: the balance outstanding on the
  settlement date (after the payments on or before it); at closing that is the original balance.
- Accrued interest is the current balance times the coupon of the period the settlement date
  falls in, over the deal's note day count from the period's start; clean = dirty - accrued.
- Spreads: the Z-spread ``s`` is added to the curve's annual zero rate,
  ``sum(c_i / (1 + z(t_i) + s)^t_i) = dirty``; over a flat rate it is the yield minus the rate.
  The I-spread is the yield minus the curve's zero rate at the WAL.
- Macaulay duration ``sum(t c v^t) / P``, modified duration ``D_mac / (1 + y)`` and convexity
  ``sum(t (t + 1) c v^(t+2)) / P`` with ``v = 1 / (1 + y)``, all at the yield.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ipabs.analytics.curve import Curve
from ipabs.cluster import accepts_client
from ipabs.dates import DAY_COUNTS, from_day, to_day, year_fraction
from ipabs.deal.assumptions import DefaultAssumption, PrepaymentAssumption
from ipabs.deal.curve import CurveSpec, load_curve
from ipabs.deal.load import LoadedDeal
from ipabs.engine import layout as L
from ipabs.engine.compile import CompiledModel, scenario_deal
from ipabs.engine.metrics_numba_fns import yield_at_price
from ipabs.errors import IpabsError
from ipabs.io import json_value

CurveLike = Curve | CurveSpec | float | str | Path | None
"""A discount curve: a flat annual rate, a curve file, a loaded curve file or a :class:`Curve`."""

_TOL = 1e-13


# --------------------------------------------------------------------------- cash flows


@dataclass(frozen=True)
class TrancheFlows:
    """One tranche's payments in one deterministic run, with what pricing needs.

    Attributes
    ----------
    tranche, scenario : str
    closing : date
    dates : list of date, length T
        Payment dates.
    period_start : list of date, length T
        Start of each interest period (the closing date, then the previous payment date).
    interest, principal, residual, balance_start : ndarray, shape (T,)
    coupon : ndarray, shape (T,)
        Annual coupon of each period.
    original_balance, loss : float
        Loss is principal and interest unpaid at the legal final date.
    day_count : str
        The deal's note day count.
    """

    tranche: str
    scenario: str
    closing: dt.date
    dates: list[dt.date]
    period_start: list[dt.date]
    interest: np.ndarray
    principal: np.ndarray
    residual: np.ndarray
    balance_start: np.ndarray
    coupon: np.ndarray
    original_balance: float
    loss: float
    day_count: str

    @property
    def cash(self) -> np.ndarray:
        """Everything the tranche receives each period."""
        return self.interest + self.principal + self.residual


def _tranche_index(model: CompiledModel, tranche: str) -> int:
    """Index of ``tranche``; an unknown name is a located error at the deal's tranches."""
    if tranche not in model.tranche_names:
        from ipabs.deal.validate import suggest
        from ipabs.errors import DealError, Issue

        src = model.deal.source
        line, column = src.locate(("tranches",))
        hint = suggest(tranche, model.tranche_names)
        raise DealError(
            [
                Issue(
                    src.file,
                    line,
                    column,
                    "tranches",
                    f"no tranche {tranche!r}; the deal's tranches: {', '.join(model.tranche_names)}",
                    hint or "give one of the deal's tranche names",
                )
            ]
        )
    return model.tranche_names.index(tranche)


def _run_tables(
    model: CompiledModel, scenario: str | None, cd: L.CompiledDeal | None = None
) -> L.WaterfallTables:
    """The waterfall tables of ``scenario`` (optionally with changed liabilities ``cd``)."""
    from ipabs.api import collections
    from ipabs.engine.waterfall_numba_fns import run_waterfall
    from ipabs.risk.scenario import scenario_inputs

    inputs = scenario_inputs(model, scenario)
    coll = collections(model, inputs=inputs)
    if cd is None:
        cd = scenario_deal(model, scenario) if scenario in model.spec.scenarios else model.cd
    tables = L.allocate_tables(cd)
    run_waterfall(cd, coll.sum(axis=0), inputs.support_stop, tables, inputs.revolving)
    return tables


def _flows(model: CompiledModel, k: int, scenario: str, tables: L.WaterfallTables) -> TrancheFlows:
    tr = tables.tranche
    grid = [from_day(int(d)) for d in model.grid]
    return TrancheFlows(
        tranche=model.tranche_names[k],
        scenario=scenario,
        closing=grid[0],
        dates=grid[1:],
        period_start=grid[:-1],
        interest=tr[:, k, L.TR_INTEREST_PAID].copy(),
        principal=tr[:, k, L.TR_PRINCIPAL_PAID].copy(),
        residual=tr[:, k, L.TR_RESIDUAL_PAID].copy(),
        balance_start=tr[:, k, L.TR_BALANCE_START].copy(),
        coupon=_scenario_rates(model, scenario)[k].copy(),
        original_balance=float(model.cd.tr_balance[k]),
        loss=float(
            tr[-1, k, L.TR_BALANCE_END] + tr[-1, k, L.TR_WRITTEN_DOWN] + tr[-1, k, L.TR_INTEREST_ARREARS]
        ),
        day_count=model.spec.deal.day_count,
    )


def _scenario_rates(model: CompiledModel, scenario: str) -> np.ndarray:
    """The coupons a scenario's notes pay (a scenario may reset a put's coupon)."""
    return (scenario_deal(model, scenario) if scenario in model.spec.scenarios else model.cd).tr_rate


def tranche_flows(
    deal: LoadedDeal | CompiledModel | str | Path, tranche: str, scenario: str | None = None
) -> TrancheFlows:
    """A tranche's payments under a deterministic scenario.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
    tranche : str
    scenario : str, optional
        A scenario name (default the deal's first) or an override such as ``"cdr=2%,cpr=10%"``
        (see :func:`scenario_model`).

    Returns
    -------
    TrancheFlows
    """
    from ipabs.api import _model

    model, name = scenario_model(_model(deal), scenario)
    k = _tranche_index(model, tranche)
    return _flows(model, k, name, _run_tables(model, name))


# --------------------------------------------------------------------------- scenarios

_OVERRIDE_KEYS = ("cdr", "cpr", "sda", "psa")


def scenario_model(model: CompiledModel, scenario: str | None) -> tuple[CompiledModel, str]:
    """Resolve a scenario given by name or as default/prepayment speeds.

    ``"cdr=2%,cpr=10%"`` (keys ``cdr``, ``sda``, ``cpr``, ``psa``) is the deal's first scenario
    with its default and prepayment assumptions replaced by those given (one not given is
    zero); recoveries and royalty assumptions stay the first scenario's.

    Returns
    -------
    (CompiledModel, str)
        A model whose scenarios include it, and its name.

    Raises
    ------
    IpabsError
        For an unknown scenario name or a malformed override.
    """
    names = list(model.spec.scenarios)
    if scenario is None:
        return model, names[0]
    if scenario in model.spec.scenarios:
        return model, scenario
    if "=" not in scenario:
        from ipabs.deal.validate import suggest

        hint = suggest(scenario, names)
        raise IpabsError(
            f"{model.deal.source.file}: no scenario {scenario!r}; known scenarios: {', '.join(names)}"
            + (f" ({hint})" if hint else "")
            + "; or give speeds such as cdr=2%,cpr=10%"
        )
    values: dict[str, str] = {}
    for part in scenario.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in _OVERRIDE_KEYS or key in values or not value.strip():
            raise IpabsError(
                f"scenario {scenario!r}: {part.strip()!r} is not a speed; write key=value pairs separated "
                f"by commas, keys {', '.join(_OVERRIDE_KEYS)} each at most once (e.g. cdr=2%,cpr=10%)"
            )
        values[key] = value.strip()
    from pydantic import ValidationError

    try:
        defaults = DefaultAssumption.model_validate({k: values[k] for k in ("cdr", "sda") if k in values})
        prepay = PrepaymentAssumption.model_validate({k: values[k] for k in ("cpr", "psa") if k in values})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err["loc"])
        raise IpabsError(f"scenario {scenario!r}: {where}: {err['msg']}") from None
    first = model.spec.scenarios[names[0]]
    new = first.model_copy(update={"defaults": defaults, "prepayment": prepay, "overrides": []})
    spec = model.spec.model_copy(update={"scenarios": {**model.spec.scenarios, scenario: new}})
    deal = dataclasses.replace(model.deal, spec=spec)
    return dataclasses.replace(model, deal=deal), scenario


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PriceResult:
    """A tranche priced on a settlement date (conventions in :mod:`ipabs.analytics.pricing`).

    Prices are percentages of ``current_balance``; rates and spreads are annual decimals;
    durations and WAL in years from the settlement date. Spreads are nan without a curve;
    ``par_coupon`` is nan without a curve and for floating-rate tranches.
    """

    deal: str
    scenario: str
    tranche: str
    settlement_date: dt.date
    curve: str | None
    current_balance: float
    factor: float
    price: float
    dirty_price: float
    accrued_interest: float
    accrued_amount: float
    yield_: float
    z_spread: float
    i_spread: float
    macaulay_duration: float
    modified_duration: float
    convexity: float
    wal_years: float
    first_principal_date: dt.date | None
    last_principal_date: dt.date | None
    loss: float
    loss_pct: float
    coupon: float
    par_coupon: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``yield`` without the trailing underscore)."""
        out = {}
        for f in dataclasses.fields(self):
            key = "yield" if f.name == "yield_" else f.name
            out[key] = json_value(getattr(self, f.name))
        return out


def _curve(curve: CurveLike, settle: dt.date) -> Curve | None:
    if curve is None or isinstance(curve, Curve):
        return curve
    if isinstance(curve, (int, float)) and not isinstance(curve, bool):
        return Curve.flat(float(curve))
    spec = curve if isinstance(curve, CurveSpec) else load_curve(curve)  # type: ignore[arg-type]
    try:
        return Curve.from_spec(spec, settle)
    except ValueError as exc:
        raise IpabsError(str(exc)) from None


def _settle_state(fl: TrancheFlows, settle: dt.date) -> tuple[int, float, float]:
    """(first period paid after ``settle``, current balance, accrued interest amount)."""
    t0 = next((t for t, d in enumerate(fl.dates) if d > settle), None)
    if settle < fl.closing or t0 is None:
        raise IpabsError(
            f"settlement date {settle} must lie from the closing date {fl.closing} to before the last "
            f"payment date {fl.dates[-1]}"
        )
    balance = float(fl.balance_start[t0])
    start = max(fl.period_start[t0], fl.closing)
    accrued = (
        balance
        * float(fl.coupon[t0])
        * year_fraction(to_day(start), to_day(settle), DAY_COUNTS[fl.day_count])
    )
    return t0, balance, accrued


def _times(dates: list[dt.date], settle: dt.date) -> np.ndarray:
    return np.array([(d - settle).days / 365.0 for d in dates])


def _yield(times: np.ndarray, cash: np.ndarray, dirty_amount: float, guess: float) -> float:
    return float(yield_at_price(times, cash, dirty_amount, guess))


def risk_measures(times: np.ndarray, cash: np.ndarray, y: float) -> tuple[float, float, float, float]:
    """Present value, Macaulay duration, modified duration and convexity at the annual effective
    yield ``y``.

    Parameters
    ----------
    times : ndarray
        Years from settlement of each cash flow.
    cash : ndarray
        The cash flows.
    y : float
        Annual effective yield.

    Returns
    -------
    (pv, macaulay, modified, convexity) : tuple of float
    """
    v = (1.0 + y) ** (-times)
    pv = float(np.sum(cash * v))
    if pv <= 0.0:
        return pv, math.nan, math.nan, math.nan
    mac = float(np.sum(times * cash * v)) / pv
    conv = float(np.sum(times * (times + 1.0) * cash * v)) / ((1.0 + y) ** 2 * pv)
    return pv, mac, mac / (1.0 + y), conv


def z_spread(times: np.ndarray, cash: np.ndarray, dirty_amount: float, curve: Curve) -> float:
    """The spread ``s`` added to the curve's annual zero rates at which ``cash`` is worth
    ``dirty_amount`` (nan when no spread in (-100%, 1000%) does)."""
    from scipy.optimize import brentq

    zero = curve.zero(times)

    def err(s: float) -> float:
        return float(np.sum(cash * (1.0 + zero + s) ** (-times))) - dirty_amount

    lo = -1.0 - float(np.min(zero)) + 1e-9 if len(zero) else -0.99
    hi = 10.0
    try:
        if err(lo) * err(hi) > 0:
            return math.nan
    except (OverflowError, FloatingPointError):
        return math.nan
    return float(brentq(err, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def _price_flows(
    fl: TrancheFlows,
    settle: dt.date,
    curve: Curve | None,
    *,
    price: float | None,
    yld: float | None,
    spread: float | None,
) -> dict[str, Any]:
    """Price, yield and spreads of one run's flows, given exactly one of them."""
    t0, balance, accrued = _settle_state(fl, settle)
    if balance <= 0.0:
        raise IpabsError(f"tranche {fl.tranche!r} has no balance outstanding on {settle}: nothing to price")
    dates = fl.dates[t0:]
    cash = fl.cash[t0:]
    principal = fl.principal[t0:]
    times = _times(dates, settle)
    guess = float(fl.coupon[t0])
    if price is not None:
        dirty_amount = price / 100.0 * balance + accrued
        y = _yield(times, cash, dirty_amount, guess)
    elif yld is not None:
        y = float(yld)
        dirty_amount = float(np.sum(cash * (1.0 + y) ** (-times)))
    else:
        assert spread is not None and curve is not None
        dirty_amount = float(np.sum(cash * curve.discount(times, spread)))
        y = _yield(times, cash, dirty_amount, guess)
    _, mac, mod, conv = risk_measures(times, cash, y)
    paid = np.nonzero(principal > 1e-9)[0]
    wal = float(np.sum(times * principal) / np.sum(principal)) if len(paid) else math.nan
    if curve is None:
        zs = isp = math.nan
    else:
        zs = float(spread) if spread is not None else z_spread(times, cash, dirty_amount, curve)
        isp = y - float(curve.zero(wal)) if wal == wal else math.nan
    return {
        "current_balance": balance,
        "factor": balance / fl.original_balance,
        "price": 100.0 * (dirty_amount - accrued) / balance,
        "dirty_price": 100.0 * dirty_amount / balance,
        "accrued_interest": 100.0 * accrued / balance,
        "accrued_amount": accrued,
        "yield_": y,
        "z_spread": zs,
        "i_spread": isp,
        "macaulay_duration": mac,
        "modified_duration": mod,
        "convexity": conv,
        "wal_years": wal,
        "first_principal_date": dates[paid[0]] if len(paid) else None,
        "last_principal_date": dates[paid[-1]] if len(paid) else None,
        "loss": fl.loss,
        "loss_pct": fl.loss / fl.original_balance if fl.original_balance > 0 else 0.0,
        "coupon": float(fl.coupon[t0]),
    }


def _check_quote(price: float | None, yld: float | None, spread: float | None, curve: Any) -> None:
    given = [k for k, v in (("price", price), ("yield", yld), ("spread", spread)) if v is not None]
    if len(given) != 1:
        raise IpabsError("give exactly one of a price, a yield or a spread")
    if price is not None and not (price > 0 and math.isfinite(price)):
        raise IpabsError(
            f"price {price:g} must be a positive number (a percentage of the balance, e.g. 99.5)"
        )
    if yld is not None and not (yld > -1 and math.isfinite(yld)):
        raise IpabsError(f"yield {yld:g} must be above -100%")
    if spread is not None and curve is None:
        raise IpabsError("a spread needs a curve: give a curve file or a flat rate")


PAR_COUPON_STEP = 0.005
"""Step of the scan for the par coupon (annual)."""

PAR_COUPON_MAX = 0.5
"""Highest coupon the par-coupon scan tries."""


def par_coupon(
    model: CompiledModel,
    tranche: str,
    spread: float,
    curve: Curve,
    *,
    scenario: str | None = None,
    settle: dt.date | None = None,
) -> float:
    """The fixed coupon at which the tranche's clean price is 100 at ``spread`` over ``curve``.

    The waterfall is rerun for each trial coupon (interest paid changes what the other
    tranches and the residual receive, and can change this tranche's losses).

    Returns
    -------
    float
        The lowest annual coupon in [0, :data:`PAR_COUPON_MAX`] at which the clean price
        crosses 100; nan for a floating-rate tranche, one whose coupon changes by date (a
        coupon schedule or a put's reset coupon), or when none does (e.g. a residual
        tranche whose payments do not depend on its coupon).
    """
    from scipy.optimize import brentq

    model, name = scenario_model(model, scenario)
    k = _tranche_index(model, tranche)
    spec_k = model.spec.tranches[k]
    if not isinstance(spec_k.coupon, float) or (
        spec_k.put is not None and spec_k.put.reset_coupon is not None
    ):
        return math.nan  # floating, or a coupon that changes (schedule, put reset): no one par coupon
    settle = settle or from_day(int(model.grid[0]))

    def err(c: float) -> float:
        rate = model.cd.tr_rate.copy()
        rate[k, :] = c
        trial = dataclasses.replace(model, cd=model.cd._replace(tr_rate=rate))
        fl = _flows(trial, k, name, _run_tables(trial, name, trial.cd))
        return _price_flows(fl, settle, curve, price=None, yld=None, spread=spread)["price"] - 100.0

    # the price need not rise with the coupon all the way (interest paid can take cash from
    # principal, and a high coupon may not be paid in full): take the lowest coupon at which the
    # clean price crosses par, scanning up in steps of PAR_COUPON_STEP
    lo, e_lo = 0.0, err(0.0)
    if e_lo == 0.0:
        return 0.0
    for i in range(1, round(PAR_COUPON_MAX / PAR_COUPON_STEP) + 1):
        hi = i * PAR_COUPON_STEP
        e_hi = err(hi)
        if e_lo < 0.0 <= e_hi:
            return float(brentq(err, lo, hi, xtol=1e-14, maxiter=200))
        lo, e_lo = hi, e_hi
    return math.nan


def price(
    deal: LoadedDeal | CompiledModel | str | Path,
    tranche: str,
    *,
    price: float | None = None,
    yld: float | None = None,
    spread: float | None = None,
    curve: CurveLike = None,
    scenario: str | None = None,
    settle: dt.date | str | None = None,
) -> PriceResult:
    """Price a tranche under a deterministic scenario from one of price, yield or spread.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
    tranche : str
        Tranche name.
    price : float, optional
        Clean price, percent of the current balance (``99.5``).
    yld : float, optional
        Annual effective yield (``0.045``).
    spread : float, optional
        Z-spread over ``curve`` (``0.012``); needs a curve.
    curve : float, str, Path, CurveSpec or Curve, optional
        A flat annual effective rate or a curve file (YAML/CSV); spreads need one.
    scenario : str, optional
        Scenario name (default the deal's first) or speeds such as ``"cdr=2%,cpr=10%"``.
    settle : date or str, optional
        Settlement date (default the closing date).

    Returns
    -------
    PriceResult

    Raises
    ------
    IpabsError
        Unknown tranche or scenario, a price not above 0, a spread without a curve, a
        settlement date outside the deal's life. Curve files raise located ``DealError``.

    Examples
    --------
    >>> import ipabs
    >>> r = ipabs.price("scenarios/caohejing_ip_pledge.yaml", "senior", price=100.0)  # doctest: +SKIP
    >>> r.yield_, r.modified_duration  # doctest: +SKIP
    """
    from ipabs.api import _model

    _check_quote(price, yld, spread, curve)
    model, name = scenario_model(_model(deal), scenario)
    k = _tranche_index(model, tranche)
    fl = _flows(model, k, name, _run_tables(model, name))
    settle_date = _settle_date(settle, fl.closing)
    c = _curve(curve, settle_date)
    out = _price_flows(fl, settle_date, c, price=price, yld=yld, spread=spread)
    pc = math.nan
    if c is not None and out["z_spread"] == out["z_spread"]:
        pc = par_coupon(model, tranche, out["z_spread"], c, scenario=name, settle=settle_date)
    return PriceResult(
        deal=model.spec.deal.name,
        scenario=name,
        tranche=tranche,
        settlement_date=settle_date,
        curve=None if c is None else c.name,
        par_coupon=pc,
        **out,
    )


def _settle_date(settle: dt.date | str | None, closing: dt.date) -> dt.date:
    if settle is None:
        return closing
    if isinstance(settle, dt.date):
        return settle
    try:
        return dt.date.fromisoformat(str(settle))
    except ValueError:
        raise IpabsError(f"settlement date {settle!r} is not a date: write YYYY-MM-DD") from None


# --------------------------------------------------------------------------- tables

TABLE_COLUMNS = (
    "scenario",
    "price",
    "spread",
    "yield",
    "z_spread",
    "wal_years",
    "modified_duration",
    "macaulay_duration",
    "convexity",
    "loss_pct",
    "first_principal_date",
    "last_principal_date",
)


def price_table(
    deal: LoadedDeal | CompiledModel | str | Path,
    tranche: str,
    *,
    prices: list[float] | None = None,
    spreads: list[float] | None = None,
    scenarios: list[str] | None = None,
    curve: CurveLike = None,
    settle: dt.date | str | None = None,
) -> pd.DataFrame:
    """A price-yield table: for each scenario (columns) and price or spread (rows), the yield,
    spread, WAL, durations and loss.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
    tranche : str
    prices : list of float, optional
        Clean prices, percent of the current balance.
    spreads : list of float, optional
        Z-spreads over ``curve`` (instead of prices).
    scenarios : list of str, optional
        Scenario names or speeds such as ``"cdr=2%,cpr=10%"`` (default every named scenario).
    curve : float, str, Path, CurveSpec or Curve, optional
        Needed for spreads; with prices it adds the Z-spread column.
    settle : date or str, optional
        Settlement date (default the closing date).

    Returns
    -------
    DataFrame
        Tidy, one row per (scenario, price or spread), columns :data:`TABLE_COLUMNS`
        (``price`` is the clean price; ``spread`` the quoted spread, nan when prices are given).

    Examples
    --------
    >>> deal = "scenarios/caohejing_ip_pledge.yaml"
    >>> t = price_table(deal, "senior", prices=[99, 100, 101])  # doctest: +SKIP
    >>> print(format_price_table(t))  # doctest: +SKIP
    """
    from ipabs.api import _model

    if (prices is None) == (spreads is None) or not (prices or spreads):
        raise IpabsError("give a list of prices or a list of spreads (one of them)")
    quotes = prices if prices is not None else spreads
    assert quotes is not None
    for q in quotes:
        _check_quote(q if prices is not None else None, None, q if spreads is not None else None, curve)
    base = _model(deal)
    _tranche_index(base, tranche)
    names = scenarios or list(base.spec.scenarios)
    rows = []
    for sc in names:
        model, name = scenario_model(base, sc)
        k = _tranche_index(model, tranche)
        fl = _flows(model, k, name, _run_tables(model, name))
        settle_date = _settle_date(settle, fl.closing)
        c = _curve(curve, settle_date)
        for q in quotes:
            r = _price_flows(
                fl,
                settle_date,
                c,
                price=q if prices is not None else None,
                yld=None,
                spread=q if spreads is not None else None,
            )
            rows.append(
                {
                    "scenario": name,
                    "price": r["price"],
                    "spread": q if spreads is not None else math.nan,
                    "yield": r["yield_"],
                    **{col: r[col] for col in TABLE_COLUMNS[4:]},
                }
            )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def format_price_table(table: pd.DataFrame) -> str:
    """A price-yield table as text: yields and modified durations by price (or spread) and
    scenario, then each scenario's WAL, principal window and loss."""
    from ipabs.format import number, pct

    by_spread = table["spread"].notna().all()
    key = "spread" if by_spread else "price"
    scenarios = list(dict.fromkeys(table["scenario"]))
    quotes = list(dict.fromkeys(round(float(q), 10) for q in table[key]))
    headers = [key, *scenarios]

    def block(title: str, column: str, fmt: Any) -> list[list[str]]:
        rows = [[title, *[""] * len(scenarios)]]
        for q in quotes:
            cells = []
            for sc in scenarios:
                sel = table[(table["scenario"] == sc) & (np.round(table[key], 10) == round(q, 10))]
                cells.append(fmt(float(sel[column].iloc[0])) if len(sel) else "-")
            rows.append([pct(q) if by_spread else f"{q:.3f}", *cells])
        return rows

    def per_scenario(title: str, fmt: Any) -> list[str]:
        return [title, *[fmt(table[table["scenario"] == sc].iloc[0]) for sc in scenarios]]

    rows = block("yield", "yield", pct)
    rows += block("modified duration", "modified_duration", lambda x: number(x))
    if not by_spread and table["z_spread"].notna().any():
        rows += block("z-spread", "z_spread", pct)
    if by_spread:
        rows += block("price", "price", lambda x: f"{x:.3f}")
    rows.append(per_scenario("WAL (y)", lambda r: number(r["wal_years"])))
    rows.append(per_scenario("first principal", lambda r: str(r["first_principal_date"] or "-")))
    rows.append(per_scenario("last principal", lambda r: str(r["last_principal_date"] or "-")))
    rows.append(per_scenario("loss", lambda r: pct(r["loss_pct"])))
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- Monte Carlo

YIELD_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
"""Levels of the per-path yield distribution reported by :func:`mc_price`."""


@dataclass(frozen=True)
class MonteCarloPrice:
    """Expected price and the yield distribution of a tranche over Monte Carlo paths.

    Attributes
    ----------
    tranche, curve : str
    spread : float
        Added to the curve's annual zero rates.
    paths, seed : int
    expected_price, expected_price_se : float
        ``E[PV of the cash received]`` at the curve plus spread, percent of the original
        balance, settled at the closing date, with its standard error.
    mean_yield, mean_yield_se : float
        Mean per-path yield at par (annual effective), over the paths with cash.
    yield_quantiles : dict
        Level -> (quantile of the per-path yield, its standard error).
    per_path_price : ndarray, shape (paths,)
        Each path's price (percent of the original balance).
    per_path_yield : ndarray, shape (paths,)
        Each path's yield at par.
    weights : ndarray, shape (paths,)
        Likelihood-ratio weight of each path (ones under plain sampling).
    """

    tranche: str
    curve: str
    spread: float
    paths: int
    seed: int
    expected_price: float
    expected_price_se: float
    mean_yield: float
    mean_yield_se: float
    yield_quantiles: dict[float, tuple[float, float]]
    per_path_price: np.ndarray
    per_path_yield: np.ndarray
    weights: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-path arrays)."""
        return {
            "tranche": self.tranche,
            "curve": self.curve,
            "spread": self.spread,
            "paths": self.paths,
            "seed": self.seed,
            "expected_price": json_value(self.expected_price),
            "expected_price_se": json_value(self.expected_price_se),
            "mean_yield": json_value(self.mean_yield),
            "mean_yield_se": json_value(self.mean_yield_se),
            "yield_quantiles": {
                f"{q:g}": {"value": json_value(v), "se": json_value(se)}
                for q, (v, se) in self.yield_quantiles.items()
            },
        }


@accepts_client
def mc_price(
    deal: LoadedDeal | CompiledModel | str | Path,
    tranche: str,
    curve: CurveLike,
    *,
    spread: float = 0.0,
    paths: int = 10_000,
    seed: int = 0,
    risk: Any = None,
    threads: int | None = None,
    sampling: Any = None,
) -> MonteCarloPrice:
    """Expected price of a tranche at a discount curve over Monte Carlo paths, and the
    distribution of its per-path yield, each with standard errors.

    Each path's cash received is discounted at the curve plus ``spread`` inside the Monte
    Carlo kernel (its present-value outcome, given these discount factors instead of the
    coupon's), so nothing per period is kept. Path *i* is the same path as in
    :func:`ipabs.simulate` with the same ``seed`` and ``sampling``. Settlement is the closing
    date; prices are percentages of the original balance.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
    tranche : str
    curve : float, str, Path, CurveSpec or Curve
        A flat annual effective rate or a curve file.
    spread : float
        Added to the curve's annual zero rates.
    paths, seed, risk, threads
        As for :func:`ipabs.simulate`.
    sampling : Sampling, optional
        Reuse an earlier run's sampling (``result.sampling``), e.g. importance sampling;
        default plain sampling. Estimates are weighted by the paths' likelihood ratios.
    client : distributed.Client, optional
        Run the Monte Carlo paths on this Dask cluster (docs/cluster.md); results are the
        same, bit for bit.

    Returns
    -------
    MonteCarloPrice
    """
    from ipabs.analytics.importance import Sampling
    from ipabs.analytics.metrics import conditional_mean, mean, quantile
    from ipabs.api import _model
    from ipabs.montecarlo import _run_paths, _thread_count
    from ipabs.risk.model import compile_risk
    from ipabs.risk.montecarlo_numba_fns import O_PV_RECEIVED, O_YIELD, P_WEIGHT

    if paths < 1:
        raise IpabsError(f"paths must be at least 1, got {paths}")
    if curve is None:
        raise IpabsError("an expected price needs a curve: give a curve file or a flat rate")
    model = _model(deal)
    k = _tranche_index(model, tranche)
    closing = from_day(int(model.grid[0]))
    c = _curve(curve, closing)
    assert c is not None
    arrays = compile_risk(model, risk)
    # the kernel discounts each tranche's cash with these factors (times from closing)
    discount = np.ascontiguousarray(
        np.broadcast_to(c.discount(arrays.times, spread), arrays.tr_discount.shape), dtype=np.float64
    )
    arrays = arrays._replace(tr_discount=discount)
    if sampling is None:
        sampling = Sampling("plain", np.zeros(arrays.n_factors))
    tr, pool, _, _ = _run_paths(model, arrays, seed, 0, paths, sampling, _thread_count(threads))
    orig = float(model.cd.tr_balance[k])
    w = pool[:, P_WEIGHT]
    prices = 100.0 * tr[:, k, O_PV_RECEIVED] / orig
    yields = tr[:, k, O_YIELD].copy()
    ep = mean(prices, w)
    my = conditional_mean(yields, w)
    ok = ~np.isnan(yields)
    qs = {}
    for q in YIELD_QUANTILES:
        est = quantile(yields[ok], q, w[ok])
        qs[q] = (est.value, est.se)
    return MonteCarloPrice(
        tranche=tranche,
        curve=c.name,
        spread=float(spread),
        paths=paths,
        seed=seed,
        expected_price=ep.value,
        expected_price_se=ep.se,
        mean_yield=my.value,
        mean_yield_se=my.se,
        yield_quantiles=qs,
        per_path_price=prices,
        per_path_yield=yields,
        weights=w,
    )
