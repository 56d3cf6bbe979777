"""Deterministic default stresses for breakeven analysis: a stress scenario (default timing,
recovery haircut and lag, index rate shock), the default set, stress files, and the default
curve that makes a pool default a given cumulative rate along the timing profile.

A stress at cumulative default rate ``D`` (a share of the original pool balance ``B0``) sets
one per-period default rate ``MDR_t`` for every asset. With the base scenario's performing
balance ``S_t`` (no defaults, the base prepayment) and ``c_t = B0 w_t / S_t`` for the timing
weights ``w`` (summing to 1), the survival before period ``t`` is ``s_t = 1 - D sum_{u<t} c_u``
and ``MDR_t = D c_t / s_t``: the pool then defaults exactly ``D B0 w_t`` in period ``t``. The
largest feasible rate is ``1 / sum_t c_t``, where the last weighted period defaults in full.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from ipabs.deal.assumptions import recovery_pieces
from ipabs.deal.base import Model
from ipabs.deal.types import Name, NonNegative, Rate, Share
from ipabs.errors import DealError, IpabsError, Issue

if TYPE_CHECKING:  # the engine (numba) loads only when a stress runs
    from ipabs.engine.compile import CompiledModel
    from ipabs.engine.layout import WaterfallTables
    from ipabs.risk.scenario import DriverInputs

PROFILES = ("front", "even", "back")
"""Named default timing profiles (linear over the default horizon)."""

RECOVERY_SOURCES = ("risk", "scenario")
"""Where a stress takes its recoveries from: the deal's ``risk`` section (in its deterministic
form, see :func:`risk_recovery_basis`) or the base scenario."""


class Stress(Model):
    """One deterministic stress scenario of a breakeven analysis."""

    name: Name = Field(description="Stress name (unique in a stress set).")
    description: str = Field("", description="What the stress represents.")
    timing: Annotated[
        Literal["front", "even", "back"] | list[NonNegative], Field(union_mode="left_to_right")
    ] = Field(
        "even",
        description="Default timing: front (linearly falling over the horizon), even, back "
        "(linearly rising), or a list of weights per year (or per period with `per: period`) "
        "from closing; weights are normalised to sum to 1.",
    )
    per: Literal["year", "period"] = Field("year", description="Unit of a list of timing weights.")
    horizon: Annotated[
        Literal["wal", "life"] | Annotated[int, Field(ge=1)], Field(union_mode="left_to_right")
    ] = Field(
        "wal",
        description="Periods a named timing profile spans: `wal` (periods starting before the "
        "pool's weighted-average life), `life` (every period with a performing balance) or a "
        "number of months from closing.",
    )
    recovery_haircut: Share = Field(0.0, description="Share cut from the base scenario's recovery rate.")
    recovery_lag_months: int = Field(0, ge=0, description="Months added to the base recovery lag.")
    rate_shock: Rate = Field(0.0, description="Added to every index curve (e.g. 2% or -1%).")

    @model_validator(mode="after")
    def _consistent(self) -> Stress:
        if isinstance(self.timing, list):
            if not self.timing or sum(self.timing) <= 0.0:
                raise ValueError("timing weights must include a positive weight")
            if "horizon" in self.model_fields_set:
                raise ValueError("`horizon` applies to a named timing profile, not to a list of weights")
        elif "per" in self.model_fields_set:
            raise ValueError("`per` applies to a list of timing weights, not to a named profile")
        return self

    @property
    def timing_label(self) -> str:
        """Short text for tables: ``even``, ``front/life``, ``[0.5, 0.3, 0.2]/year``."""
        if isinstance(self.timing, list):
            return "[" + ", ".join(f"{w:g}" for w in self.timing) + f"]/{self.per}"
        return self.timing if self.horizon == "wal" else f"{self.timing}/{self.horizon}"


class StressFile(Model):
    """A stress file: a mapping with one key, ``stresses``, a list of :class:`Stress`."""

    stresses: list[Stress] = Field(min_length=1, description="The stress scenarios.")


def _defaults() -> tuple[Stress, ...]:
    out = []
    for recovery in ("base", "haircut"):
        for timing in ("even", "front", "back"):
            hair = recovery == "haircut"
            out.append(
                Stress(
                    name=timing if not hair else f"{timing}_haircut",
                    description=f"{timing} default timing over the pool's WAL, "
                    + ("recovery rate cut by 50% and 6 months later" if hair else "base recovery"),
                    timing=timing,  # type: ignore[arg-type]
                    recovery_haircut=0.5 if hair else 0.0,
                    recovery_lag_months=6 if hair else 0,
                )
            )
    for sign, label in ((1.0, "up"), (-1.0, "down")):
        out.append(
            Stress(
                name=f"rates_{label}",
                description=f"even timing, base recovery, every index curve {label} 2%",
                rate_shock=sign * 0.02,
            )
        )
    return tuple(out)


DEFAULT_STRESSES: tuple[Stress, ...] = _defaults()
"""The default stress set: even, front and back timing with the base recovery and with a 50%
recovery haircut plus 6 months' extra lag; even timing with every index 2% up and 2% down."""


def parse_stresses(text: str, file: str = "<string>") -> list[Stress]:
    """Validate a stress file given as YAML text (see :func:`load_stresses`)."""
    from ipabs.deal.source import parse_yaml

    data, smap = parse_yaml(text, file)
    return _validate(data, smap)


def load_stresses(path: str | Path) -> list[Stress]:
    """Read a stress file: a YAML mapping with one key, ``stresses``, a list of stresses.

    Returns
    -------
    list of Stress

    Raises
    ------
    DealError
        With every problem located as ``file:line:column`` and its field path.
    """
    from ipabs.deal.source import read_yaml

    data, smap = read_yaml(path)
    return _validate(data, smap)


def _validate(data: Any, smap: Any) -> list[Stress]:
    from ipabs.deal.validate import translate

    if not isinstance(data, dict) or "stresses" not in data:
        line, col = smap.locate(())
        raise DealError(
            [
                Issue(
                    smap.file,
                    line,
                    col,
                    "",
                    "a stress file is a mapping with the key `stresses`",
                    "write `stresses:` followed by a list of stresses, each with a `name`",
                )
            ]
        )
    try:
        stresses = StressFile.model_validate(data).stresses
    except ValidationError as exc:
        raise DealError(translate(exc, data, smap, StressFile)) from None
    issues, seen = [], {}
    for i, s in enumerate(stresses):
        if s.name in seen:
            line, col = smap.locate(("stresses", i, "name"))
            issues.append(
                Issue(
                    smap.file,
                    line,
                    col,
                    f"stresses[{i}].name",
                    f"duplicate stress name {s.name!r} (first at stresses[{seen[s.name]}])",
                    "give each stress its own name",
                )
            )
        seen.setdefault(s.name, i)
    if issues:
        raise DealError(issues)
    return stresses


# --------------------------------------------------------------------------- stressed runs


def _stressed_spec(model: CompiledModel, scenario: str, stress: Stress) -> Any:
    """The deal spec whose scenario ``scenario`` carries the stress: no default assumption
    (the stress curve replaces them, named obligor defaults included), recovery cut and
    delayed in the scenario and each override, index curves shifted."""
    from ipabs.deal.assumptions import DefaultAssumption

    spec = model.spec
    keep = 1.0 - stress.recovery_haircut

    def recovery(r: Any) -> Any:
        update = {"rate": r.rate * keep, "lag_months": r.lag_months + stress.recovery_lag_months}
        if r.timing is not None:  # every instalment is delayed
            update["timing"] = [
                x.model_copy(update={"months": x.months + stress.recovery_lag_months}) for x in r.timing
            ]
        return r.model_copy(update=update)

    sc = spec.scenarios[scenario]
    overrides = [
        ov.model_copy(
            update={"defaults": None, "recovery": None if ov.recovery is None else recovery(ov.recovery)}
        )
        for ov in sc.overrides
    ]
    stressed = sc.model_copy(
        update={"defaults": DefaultAssumption(), "recovery": recovery(sc.recovery), "overrides": overrides}
    )
    update: dict[str, Any] = {"scenarios": {scenario: stressed}}
    if stress.rate_shock != 0.0 and spec.indices:
        update["indices"] = {
            name: [p.model_copy(update={"rate": p.rate + stress.rate_shock}) for p in curve]
            if isinstance(curve, list)
            else float(curve) + stress.rate_shock
            for name, curve in spec.indices.items()
        }
    return spec.model_copy(update=update)


@dataclasses.dataclass
class StressCase:
    """A stress applied to one deal: runs the deal at any cumulative default rate.

    Build it with :meth:`build`. Attributes: ``model`` (recompiled when the rate shock moves
    an index curve), ``inputs`` (the base scenario's drivers with the stressed recoveries and
    no defaults), ``performing`` (``S_t``), ``weights`` (``w_t``), ``max_rate`` (the largest
    feasible cumulative default rate).
    """

    stress: Stress
    scenario: str
    model: CompiledModel
    inputs: DriverInputs
    performing: np.ndarray
    weights: np.ndarray
    coef: np.ndarray
    max_rate: float
    _tables: WaterfallTables | None = None

    @classmethod
    def build(
        cls, model: CompiledModel, stress: Stress, scenario: str | None = None, recovery: str = "scenario"
    ) -> StressCase:
        """Prepare ``stress`` on ``model`` over base scenario ``scenario`` (default: the first).

        ``recovery`` is ``"scenario"`` (the base scenario's recoveries) or ``"risk"`` (the
        deal's ``risk`` section's, see :func:`risk_recovery_basis`); the stress's haircut and
        extra lag apply to either.

        Raises
        ------
        IpabsError
            If the scenario is unknown, the deal has no loans or leases (original pool balance
            0), or a list of timing weights puts weight where the pool has no performing balance.
        """
        from ipabs.api import collections
        from ipabs.engine.compile import compile_deal
        from ipabs.engine.layout import C_BALANCE_START
        from ipabs.risk.scenario import scenario_inputs

        names = list(model.spec.scenarios)
        name = scenario if scenario is not None else names[0]
        if name not in model.spec.scenarios:
            raise IpabsError(f"no scenario {name!r} in {model.deal.source.file}; known: {', '.join(names)}")
        b0 = float(model.cd.original_pool_balance)
        if b0 <= 0.0:
            raise IpabsError(
                f"{model.spec.deal.name}: the pools hold no loans or leases (original pool balance 0); "
                "a breakeven default rate is a share of that balance, so royalty-only deals are "
                "stressed through their scenarios instead"
            )
        if model.spec.revolving is not None:
            # a stress shapes the pool's defaults; purchased assets would keep the scenario's rates
            # and the breakeven would come out too high
            raise IpabsError(
                f"{model.spec.deal.name}: breakeven stresses do not reach the assets a revolving period "
                "buys yet; size a revolving deal with the Monte Carlo (ipabs size, ipabs mc) or with "
                "scenarios whose defaults apply to purchases too"
            )
        spec = _stressed_spec(model, name, stress)
        deal = dataclasses.replace(model.deal, spec=spec)
        # index curves enter asset schedules and note coupons: recompile only when they move
        stressed = (
            compile_deal(deal)
            if spec.indices != model.spec.indices
            else dataclasses.replace(model, deal=deal)
        )
        inputs = scenario_inputs(stressed, name)
        if recovery == "risk":
            inputs = _risk_recoveries(stressed, inputs, stress)
        elif recovery != "scenario":
            raise IpabsError(f"recovery must be one of {', '.join(RECOVERY_SOURCES)}, got {recovery!r}")
        n = stressed.n_periods
        # the stress replaces named obligor defaults too: guarantors and providers keep paying
        inputs = dataclasses.replace(
            inputs,
            guarantee_stop=np.full_like(inputs.guarantee_stop, n),
            support_stop=np.full_like(inputs.support_stop, n),
            cover_stop=np.full_like(inputs.cover_stop, n),
        )
        clean = collections(stressed, inputs=inputs).sum(axis=0)
        performing = clean[:, C_BALANCE_START].copy()
        weights = timing_weights(stressed, stress, clean)
        coef = np.zeros(n)
        on = weights > 0.0
        coef[on] = b0 * weights[on] / performing[on]
        case = cls(stress, name, stressed, inputs, performing, weights, coef, float(1.0 / coef.sum()))
        # Without prepayments 1 / sum(coef) is the largest feasible rate exactly. Prepayments take
        # SMM x (start balance less its expected amortisation) whatever defaults, so defaults
        # shrink later balances faster and the largest feasible rate can only be lower: bisect.
        if case._default_path(case.max_rate)[1] > 1.0 + 1e-12:
            lo, hi = 0.0, case.max_rate
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mid <= lo or mid >= hi:
                    break
                if case._default_path(mid)[1] <= 1.0:
                    lo = mid
                else:
                    hi = mid
            case.max_rate = lo
        return case

    def _default_path(self, rate: float) -> tuple[np.ndarray, float]:
        """The per-period default rate (T,) defaulting ``rate x B0 x w_t`` in each period under
        the collections' order (SIFMA: new defaults on the start balance, prepayments on the
        start balance less its expected amortisation), and the largest rate it needs (above 1:
        ``rate`` is not feasible; the rates returned are capped at 1)."""
        model = self.model
        target = rate * float(model.cd.original_pool_balance) * self.weights
        smm = self.inputs.smm
        q = np.ones(len(model.assets))  # performing / scheduled balance of each asset
        prev = model.assets.balance.astype(np.float64)
        out = np.zeros(len(target))
        worst = 0.0
        for t in range(len(target)):
            if target[t] > 0.0:
                start = float(q @ prev)
                need = target[t] / start if start > 0.0 else np.inf
                worst = max(worst, need)
                out[t] = min(need, 1.0)
            # sifma_period: the performing share left after defaults, amortisation and prepayments
            q = q * np.maximum(1.0 - out[t] - smm[:, t], 0.0)
            prev = model.sched_balance[:, t]
        return out, worst

    def mdr(self, rate: float) -> np.ndarray:
        """Per-period default rate (T,) that defaults ``rate x B0`` along the timing weights."""
        if rate < 0.0 or rate > self.max_rate * (1.0 + 1e-12):
            raise IpabsError(
                f"stress {self.stress.name!r}: cumulative default rate {rate:.6g} is outside "
                f"[0, {self.max_rate:.6g}] (the largest feasible for this timing)"
            )
        return self._default_path(rate)[0]

    def driver_inputs(self, rate: float) -> DriverInputs:
        """The drivers of a run at cumulative default rate ``rate``: the same MDR on every asset."""
        a = len(self.model.assets)
        mdr = np.ascontiguousarray(np.tile(self.mdr(rate), (a, 1)))
        return dataclasses.replace(self.inputs, mdr=mdr)

    def collections(self, rate: float) -> np.ndarray:
        """Asset cash flows per pool (P, T, C) at cumulative default rate ``rate``."""
        from ipabs.api import collections

        return collections(self.model, inputs=self.driver_inputs(rate))

    def losses(self, rate: float) -> np.ndarray:
        """Every tranche's loss (balance plus interest arrears at legal final) at ``rate``."""
        from ipabs.engine import layout as L
        from ipabs.engine.waterfall_numba_fns import run_waterfall

        if self._tables is None:
            self._tables = L.allocate_tables(self.model.cd)
        tables = self._tables
        coll = self.collections(rate).sum(axis=0)
        run_waterfall(self.model.cd, coll, self.inputs.support_stop, tables, self.inputs.revolving)
        last = tables.tranche[-1]
        return last[:, L.TR_BALANCE_END] + last[:, L.TR_WRITTEN_DOWN] + last[:, L.TR_INTEREST_ARREARS]

    def run(self, rate: float) -> Any:
        """A full :class:`ipabs.results.RunResult` at cumulative default rate ``rate``."""
        from ipabs.engine.layout import allocate_tables
        from ipabs.engine.waterfall_numba_fns import run_waterfall
        from ipabs.results import build_result

        coll = self.collections(rate)
        tables = allocate_tables(self.model.cd)
        run_waterfall(
            self.model.cd, coll.sum(axis=0), self.inputs.support_stop, tables, self.inputs.revolving
        )
        return build_result(
            self.model, f"{self.scenario} + stress {self.stress.name} at {rate:.6%}", coll, tables
        )


def risk_recovery_basis(risk: Any, unvalued: bool = True) -> str:
    """The deterministic form of a ``risk`` section's recovery model, in words.

    ``constant``: ``rate`` x the defaulted balance not covered by a guarantee. ``lognormal`` /
    ``beta``: ``min(exposure, appraised value x (value_mean - disposal_cost))``, the Monte
    Carlo's recovery at the mean value factor (assets without pledged IP: ``rate`` x exposure).
    Both after ``lag_months``. ``unvalued``: whether some asset has no pledged IP (only then
    is its rule stated).
    """
    from ipabs.format import pct_given as pct

    rec = risk.recovery
    lag = f"{rec.lag_months} months after default"
    if rec.timing is not None:
        lag = "in instalments " + ", ".join(f"{pct(x.share)} after {x.months} months" for x in rec.timing)
    if rec.model == "constant":
        return f"risk section: {pct(rec.rate)} of the defaulted balance, {lag}"
    value = max(rec.value_mean - rec.disposal_cost, 0.0)
    text = (
        f"risk section ({rec.model} value factor at its mean): min(defaulted balance, "
        f"{pct(value)} of the appraised IP value), value_mean {rec.value_mean:g} less disposal cost "
        f"{rec.disposal_cost:g}; "
    )
    if unvalued:
        text += f"{pct(rec.rate)} of the defaulted balance without pledged IP; "
    return text + lag


def _risk_recoveries(model: CompiledModel, inputs: DriverInputs, stress: Stress) -> DriverInputs:
    """``inputs`` with the recoveries of the risk section (see :func:`risk_recovery_basis`),
    cut and delayed by the stress."""
    from ipabs.risk.deterministic import lag_table
    from ipabs.risk.scenario import cover_periods

    if model.spec.risk is None:
        raise IpabsError(
            f"{model.spec.deal.name}: the deal has no `risk` section to take recoveries from; "
            "use the base scenario's recoveries"
        )
    rec = model.spec.risk.recovery
    keep = 1.0 - stress.recovery_haircut
    appraisal = np.asarray(model.assets.appraised_value, dtype=np.float64)
    rate = np.full(len(appraisal), rec.rate * keep)
    cap = np.full(len(appraisal), np.inf)
    if rec.model != "constant":
        # as the Monte Carlo: min(exposure, appraisal x (V - cost)) at the mean of V; the
        # collections kernel scales the cap with the share of the obligors defaulting
        valued = ~np.isnan(appraisal)
        rate[valued] = 1.0
        cap[valued] = appraisal[valued] * max(rec.value_mean - rec.disposal_cost, 0.0) * keep
    pieces = [(m + stress.recovery_lag_months, w) for m, w in recovery_pieces(rec)]
    lag = max(m for m, _ in pieces)  # the last instalment: the loss is realised then
    g_lag = [int(x) for x in model.assets.guarantee_lag_months.tolist()]
    lags = sorted({0, lag, *g_lag, *(m for m, _ in pieces)})
    index = {x: i for i, x in enumerate(lags)}
    n_assets = len(appraisal)
    return dataclasses.replace(
        inputs,
        recovery_rate=rate,
        recovery_cap=cap,
        recovery_lag=np.full(n_assets, index[lag], dtype=np.int64),
        guarantee_lag=np.array([index[x] for x in g_lag], dtype=np.int64),
        lag_period=lag_table(model.collection_grid, lags),
        cover_period=cover_periods(model, np.full(n_assets, lag, dtype=np.int64)),
        rec_piece_ptr=np.arange(n_assets + 1, dtype=np.int64) * len(pieces),
        rec_piece_lag=np.tile(np.array([index[m] for m, _ in pieces], dtype=np.int64), n_assets),
        rec_piece_share=np.tile(np.array([w for _, w in pieces], dtype=np.float64), n_assets),
    )


def timing_weights(model: CompiledModel, stress: Stress, clean: np.ndarray) -> np.ndarray:
    """Share of the cumulative defaults falling in each period (T,), summing to 1.

    Parameters
    ----------
    model : CompiledModel
    stress : Stress
    clean : ndarray, shape (T, C)
        Pool cash flows without defaults under the base prepayment (collection columns).

    Returns
    -------
    ndarray
        Zero wherever the pool has no performing balance at the start of the period.

    Raises
    ------
    IpabsError
        If weights fall where the pool has no performing balance, or the pool has none at all.
    """
    from ipabs.engine.layout import C_BALANCE_START, C_PREPAYMENT, C_SCHED_PRINCIPAL
    from ipabs.risk.deterministic import period_months

    n = model.n_periods
    b0 = float(model.cd.original_pool_balance)
    alive = clean[:, C_BALANCE_START] > 1e-12 * b0
    cgrid = model.collection_grid  # defaults fall in collection periods
    starts = (cgrid[:-1] - cgrid[0]) / 365.0
    month0 = np.concatenate(([0], np.cumsum(period_months(cgrid))[:-1]))
    label = f"stress {stress.name!r}"
    last = np.nonzero(alive)[0]
    runoff = (
        f" (its performing balance runs off in period {last[-1] + 1}, {model.payment_dates[last[-1]]}); "
        "shorten the weights or use a named profile"
        if len(last)
        else ""
    )
    if not alive.any():
        raise IpabsError(f"{label}: the pool has no performing balance in any period")
    w = np.zeros(n)
    if isinstance(stress.timing, list):
        given = np.asarray(stress.timing, dtype=np.float64)
        if stress.per == "period":
            if np.any(given[n:] > 0.0):
                raise IpabsError(f"{label}: timing weights beyond the deal's {n} periods")
            w[: min(n, len(given))] = given[:n]
            bad = np.nonzero((w > 0.0) & ~alive)[0]
            if len(bad):
                raise IpabsError(
                    f"{label}: timing weight on period {bad[0] + 1}, where the pool has no performing "
                    f"balance{runoff}"
                )
        else:
            year = month0 // 12
            for y, wy in enumerate(given):
                if wy <= 0.0:
                    continue
                cells = np.nonzero((year == y) & alive)[0]
                if not len(cells):
                    raise IpabsError(
                        f"{label}: timing weight on year {y + 1}, where the pool has no performing "
                        f"balance{runoff}"
                    )
                w[cells] += wy / len(cells)
    else:
        if stress.horizon == "life":
            span = alive
        elif stress.horizon == "wal":
            principal = clean[:, C_SCHED_PRINCIPAL] + clean[:, C_PREPAYMENT]
            times = (cgrid[1:] - cgrid[0]) / 365.0
            total = principal.sum()
            wal = float((times * principal).sum() / total) if total > 0.0 else np.inf
            span = alive & (starts < wal - 1e-9)
            if not span.any():
                span = alive
        else:
            span = alive & (month0 < int(stress.horizon))
            if not span.any():
                raise IpabsError(f"{label}: no period with a performing balance starts within the horizon")
        idx = np.nonzero(span)[0]
        k = np.arange(len(idx), dtype=np.float64)
        shape = {"even": np.ones(len(idx)), "front": len(idx) - k, "back": k + 1.0}[stress.timing]
        w[idx] = shape
    return w / w.sum()
