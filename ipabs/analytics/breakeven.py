"""Breakeven default rates (BDR): per stress scenario, the highest pool cumulative default rate
a tranche survives without loss, found by scanning and bisection on deterministic runs.

The BDR is a share of the original pool balance. A tranche *loses* when its loss at legal
final (principal balance plus interest arrears) exceeds the loss tolerance. The solver scans
``scan`` evenly spaced rates up to the largest feasible one, then bisects between the last
surviving and the first losing rate until they are within ``rtol`` of each other (relative);
the BDR is the surviving end, so the tranche survives it and loses just above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ipabs.analytics.stress import (
    DEFAULT_STRESSES,
    RECOVERY_SOURCES,
    Stress,
    StressCase,
    risk_recovery_basis,
)
from ipabs.console import ProgressBar
from ipabs.errors import IpabsError

if TYPE_CHECKING:
    import pandas as pd

    from ipabs.deal.load import LoadedDeal
    from ipabs.engine.compile import CompiledModel

COLUMNS = (
    "stress",
    "timing",
    "recovery_haircut",
    "recovery_lag_months",
    "rate_shock",
    "max_default_rate",
    "bdr",
    "multiple",
    "loss_at_bdr",
    "default_rate_above",
    "loss_above",
    "survives_max",
    "loses_at_zero",
    "runs",
)
"""Columns of :attr:`BreakevenResult.table` (one row per stress)."""


@dataclass(frozen=True)
class BreakevenResult:
    """Breakeven default rates of one tranche under a set of stresses.

    Attributes
    ----------
    deal_name, tranche, scenario : str
        The deal, the tranche and the base scenario the stresses start from.
    base_rate : float
        The base-case pool cumulative default rate (when 0, the multiples are NaN).
    base_basis : str
        Where ``base_rate`` comes from.
    loss_tolerance : float
        Tranche loss (currency units) up to which the tranche counts as unhurt.
    table : DataFrame
        One row per stress, columns :data:`COLUMNS`.
    notes : tuple of str
        Stresses that cannot bite on this deal (no recoveries to cut, no index curves to shift),
        and a warning when the stresses and the base case rest on different assumptions.
    recovery : str
        Where the stresses took their recoveries from: ``risk`` or ``scenario``.
    recovery_basis : str
        Those recoveries in words.
    """

    deal_name: str
    tranche: str
    scenario: str
    base_rate: float
    base_basis: str
    loss_tolerance: float
    table: pd.DataFrame
    notes: tuple[str, ...] = ()
    recovery: str = "scenario"
    recovery_basis: str = ""

    @property
    def minimum(self) -> dict[str, Any]:
        """The lowest BDR over the stresses: ``stress``, ``bdr``, ``multiple``."""
        row = self.table.loc[self.table["bdr"].idxmin()]
        return {"stress": str(row["stress"]), "bdr": float(row["bdr"]), "multiple": float(row["multiple"])}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: deal, tranche, scenario, base_case, loss_tolerance, stresses, minimum."""
        from ipabs.io import json_value

        rows = [{k: json_value(v) for k, v in row.items()} for row in self.table.to_dict("records")]
        for row in rows:
            for flag in ("survives_max", "loses_at_zero"):
                row[flag] = bool(row[flag])
        return {
            "deal": self.deal_name,
            "tranche": self.tranche,
            "scenario": self.scenario,
            "base_case": {"default_rate": json_value(self.base_rate), "basis": self.base_basis},
            "recovery": {"source": self.recovery, "basis": self.recovery_basis},
            "loss_tolerance": self.loss_tolerance,
            "stresses": rows,
            "minimum": {k: json_value(v) for k, v in self.minimum.items()},
            "notes": list(self.notes),
        }


def _as_model(deal: LoadedDeal | CompiledModel | str | Path) -> CompiledModel:
    from ipabs.deal.load import LoadedDeal, load_deal
    from ipabs.engine.compile import CompiledModel, compile_deal

    if isinstance(deal, CompiledModel):
        return deal
    if not isinstance(deal, LoadedDeal):
        deal = load_deal(deal)
    return compile_deal(deal)


def base_default_rate(model: CompiledModel, scenario: str | None = None) -> tuple[float, str]:
    """The base-case pool cumulative default rate and where it comes from.

    With a ``risk`` section: the expected defaulted balance by legal final over the original
    pool balance, each obligor defaulting by its PD (``pd``, ``pd_curve``, grade or
    ``default_pd``, times ``pd_multiplier``) on the base scenario's prepaying balance — the
    balance-weighted cumulative PD, where a loan that amortises or matures defaults on what
    is left. Without one (or with obligors lacking a PD): the base scenario's realised defaults.

    Returns
    -------
    (rate, basis)
    """
    from ipabs.api import collections
    from ipabs.engine.layout import C_DEFAULT
    from ipabs.risk.model import _obligor_pds, cumulative_pd

    case = StressCase.build(model, Stress(name="base_case"), scenario)
    b0 = float(model.cd.original_pool_balance)
    risk = model.spec.risk
    note = ""
    if risk is not None:
        try:
            pds = _obligor_pds(model, risk)
        except IpabsError as exc:
            note = f" (risk section not used: {exc})"
        else:
            cgrid = model.collection_grid  # the default clock starts at the cut-off, as in the Monte Carlo
            times = (cgrid[1:] - cgrid[0]) / 365.0
            mult = float(getattr(risk, "pd_multiplier", 1.0))
            hazard = np.zeros((len(pds), model.n_periods))
            for o, (annual, curve) in enumerate(pds):
                cum = np.clip(cumulative_pd(annual, curve, times) * mult, 0.0, 1.0)
                prev = np.concatenate(([0.0], cum[:-1]))
                # default in period t given survival to its start
                hazard[o] = np.where(prev < 1.0, 1.0 - (1.0 - cum) / np.maximum(1.0 - prev, 1e-300), 1.0)
            mdr = np.ascontiguousarray(hazard[case.model.assets.obligor])
            inputs = _replace(case.inputs, mdr=np.clip(mdr, 0.0, 1.0))
            rate = float(collections(case.model, inputs=inputs)[:, :, C_DEFAULT].sum()) / b0
            return rate, (
                "risk section: expected defaults by legal final (balance-weighted obligor PDs) "
                f"over the original pool balance, prepayment of scenario {case.scenario!r}"
            )
    coll = collections(model, case.scenario)
    rate = float(coll[:, :, C_DEFAULT].sum()) / b0
    return rate, f"scenario {case.scenario!r}: realised defaults over the original pool balance{note}"


def _replace(obj: Any, **kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **kw)


def solve(
    case: StressCase, index: int, tolerance: float, rtol: float = 1e-6, scan: int = 8
) -> dict[str, Any]:
    """The breakeven default rate of tranche ``index`` under one prepared stress.

    Returns
    -------
    dict
        ``bdr``, ``loss_at_bdr``, ``default_rate_above``, ``loss_above``, ``survives_max``,
        ``loses_at_zero``, ``runs`` (deterministic runs used).
    """
    runs = 0

    def loss(rate: float) -> float:
        nonlocal runs
        runs += 1
        return float(case.losses(rate)[index])

    top = case.max_rate
    at_zero = loss(0.0)
    if at_zero > tolerance:
        return _found(0.0, at_zero, 0.0, at_zero, False, True, runs)
    lo, lo_loss = 0.0, at_zero
    hi = hi_loss = math.nan
    for k in range(1, scan + 1):
        rate = top * k / scan
        value = loss(rate)
        if value > tolerance:
            hi, hi_loss = rate, value
            break
        lo, lo_loss = rate, value
    if math.isnan(hi):
        return _found(top, lo_loss, math.nan, math.nan, True, False, runs)
    # a floor on the width: a BDR of 0 (the tranche loses at any positive rate) ends the search
    while hi - lo > rtol * hi and hi > 1e-14:
        mid = 0.5 * (lo + hi)
        value = loss(mid)
        if value > tolerance:
            hi, hi_loss = mid, value
        else:
            lo, lo_loss = mid, value
    return _found(lo, lo_loss, hi, hi_loss, False, False, runs)


def _found(
    bdr: float, at: float, above_rate: float, above: float, survives: bool, at_zero: bool, runs: int
) -> dict[str, Any]:
    return {
        "bdr": bdr,
        "loss_at_bdr": at,
        "default_rate_above": above_rate,
        "loss_above": above,
        "survives_max": survives,
        "loses_at_zero": at_zero,
        "runs": runs,
    }


def tranche_index(model: CompiledModel, tranche: str) -> int:
    """Index of ``tranche``; an unknown name is an error listing the known ones."""
    if tranche not in model.tranche_names:
        from ipabs.deal.validate import suggest

        hint = suggest(tranche, model.tranche_names)
        raise IpabsError(
            f"{model.spec.deal.name}: no tranche {tranche!r}; known tranches: "
            + ", ".join(model.tranche_names)
            + (f" ({hint})" if hint else "")
        )
    return model.tranche_names.index(tranche)


def breakeven(
    model: LoadedDeal | CompiledModel | str | Path,
    tranche: str,
    stresses: Sequence[Stress] | None = None,
    *,
    scenario: str | None = None,
    rtol: float = 1e-6,
    loss_tolerance: float | None = None,
    scan: int = 8,
    recovery: str | None = None,
    progress: bool | None = False,
) -> BreakevenResult:
    """Breakeven default rates of one tranche under each stress scenario.

    Parameters
    ----------
    model : LoadedDeal, CompiledModel, str or Path
        The deal (a compiled model is reused).
    tranche : str
        Tranche name.
    stresses : sequence of Stress, optional
        Default: :data:`ipabs.analytics.stress.DEFAULT_STRESSES`.
    scenario : str, optional
        Base scenario giving prepayment, recovery and royalty assumptions (default: the first).
    rtol : float
        Relative width of the final bracket: the tranche survives the BDR and loses at a rate at
        most ``rtol`` above it.
    loss_tolerance : float, optional
        Loss (currency units) up to which the tranche counts as unhurt; default
        ``min(0.01, 1e-9 x the tranche's original balance)``.
    scan : int
        Evenly spaced rates tried before bisecting (guards against a loss that is not monotone
        in the default rate, e.g. when a trigger switches the waterfall).
    recovery : {"risk", "scenario"}, optional
        Where the stresses take their recoveries from (before the stress's haircut and extra
        lag). Default: ``"risk"`` when the deal has a ``risk`` section, as the base-case default
        rate then comes from it too (so the multiples compare a BDR and a base case under the
        same assumptions); otherwise ``"scenario"``, the base scenario's recoveries.
    progress : bool or None
        Show a progress bar with the time left on standard error (None: only on a terminal).

    Returns
    -------
    BreakevenResult
        ``table`` (one row per stress), ``minimum`` and ``to_dict()``.

    Raises
    ------
    IpabsError
        Unknown tranche or scenario, a tranche without balance, a deal without loans or leases.

    Examples
    --------
    >>> from ipabs.analytics.breakeven import breakeven
    >>> res = breakeven("scenarios/caohejing_ip_pledge.yaml", "senior")  # doctest: +SKIP
    >>> res.table[["stress", "bdr", "multiple"]]  # doctest: +SKIP
    """
    import pandas as pd

    m = _as_model(model)
    k = tranche_index(m, tranche)
    balance = float(m.cd.tr_balance[k])
    if balance <= 0.0:
        raise IpabsError(f"tranche {tranche!r} has no balance: it cannot lose, so it has no breakeven")
    tol = min(0.01, 1e-9 * balance) if loss_tolerance is None else float(loss_tolerance)
    chosen = list(DEFAULT_STRESSES if stresses is None else stresses)
    if not chosen:
        raise IpabsError("no stress scenarios given")
    source = recovery if recovery is not None else ("risk" if m.spec.risk is not None else "scenario")
    if source not in RECOVERY_SOURCES:
        raise IpabsError(f"recovery must be one of {', '.join(RECOVERY_SOURCES)}, got {recovery!r}")
    if source == "risk" and m.spec.risk is None:
        raise IpabsError(f"{m.spec.deal.name}: no `risk` section to take recoveries from; use the scenario's")
    base_rate, basis = base_default_rate(m, scenario)
    rows = []
    name = scenario
    with ProgressBar(len(chosen), None, progress, what="stresses", description=f"breakeven {tranche}") as bar:
        for done, stress in enumerate(chosen, 1):
            case = StressCase.build(m, stress, scenario, recovery=source)
            name = case.scenario
            found = solve(case, k, tol, rtol, scan)
            bar.update(done)
            rows.append(
                {
                    "stress": stress.name,
                    "timing": stress.timing_label,
                    "recovery_haircut": stress.recovery_haircut,
                    "recovery_lag_months": stress.recovery_lag_months,
                    "rate_shock": stress.rate_shock,
                    "max_default_rate": case.max_rate,
                    **found,
                    "multiple": found["bdr"] / base_rate if base_rate > 0.0 else math.nan,
                }
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    notes = []
    sc = m.spec.scenarios[name]
    if source == "risk":
        recovery_basis = risk_recovery_basis(m.spec.risk, bool(np.isnan(m.assets.appraised_value).any()))
        none = _no_risk_recovery(m.spec.risk.recovery)  # type: ignore[union-attr]
        where = "the risk section assumes"
    else:
        recovery_basis = _scenario_recovery_basis(str(name), sc)
        none = _no_recovery(sc)
        where = f"scenario {name!r} assumes"
    if any(s.recovery_haircut > 0 or s.recovery_lag_months > 0 for s in chosen) and none:
        notes.append(
            f"{where} no recoveries, so recovery haircuts and lags change nothing"
            + ("; choose a base scenario that has recoveries" if source == "scenario" else "")
        )
    if source == "scenario" and basis.startswith("risk section"):
        notes.append(
            "the base-case default rate comes from the risk section while the stresses use the "
            f"recoveries of scenario {name!r}: each multiple divides a BDR by a base case made under "
            "other assumptions"
        )
    if any(s.rate_shock != 0.0 for s in chosen) and not m.spec.indices:
        notes.append("the deal has no index curves, so rate shocks change nothing")
    return BreakevenResult(
        deal_name=m.spec.deal.name,
        tranche=tranche,
        scenario=str(name),
        base_rate=base_rate,
        base_basis=basis,
        loss_tolerance=tol,
        table=table,
        notes=tuple(notes),
        recovery=source,
        recovery_basis=recovery_basis,
    )


def _no_risk_recovery(rec: Any) -> bool:
    if rec.model == "constant":
        return bool(rec.rate <= 0.0)
    return bool(rec.rate <= 0.0 and rec.value_mean - rec.disposal_cost <= 0.0)


def _scenario_recovery_basis(name: str, sc: Any) -> str:
    from ipabs.format import pct

    r = sc.recovery
    what = (
        "defaulted balance" if r.basis == "balance" else "appraised IP value (at most the defaulted balance)"
    )
    when = f"{r.lag_months} months after default"
    if r.timing is not None:
        when = "in instalments " + ", ".join(f"{pct(x.share)} after {x.months} months" for x in r.timing)
    text = f"scenario {name!r}: {pct(r.rate)} of the {what}, {when}"
    if any(ov.recovery is not None for ov in sc.overrides):
        text += "; other rates where the scenario overrides them"
    return text


def _no_recovery(sc: Any) -> bool:
    rates = [sc.recovery.rate] + [ov.recovery.rate for ov in sc.overrides if ov.recovery is not None]
    return max(rates) <= 0.0
