"""Per-tranche and pool risk metrics of a Monte Carlo run, each with its standard error and 95%
interval (see :mod:`ipabs.analytics.metrics` for the estimators).

Tranche metrics (shares of the tranche's original balance unless stated):

- ``expected_loss``, ``discounted_expected_loss`` (the loss discounted from legal final at the
  coupon), ``probability_of_loss`` (any loss above rounding dust), ``loss_given_loss``
  (``E[loss] / P(loss)``);
- ``expected_wal_years`` and WAL quantiles (over paths that repay principal);
- ``mean_yield`` and yield quantiles (annual effective; -1 for a total loss);
- ``mean_duration_years`` (Macaulay duration of the cash received, discounted at the coupon).

Diagnostics of the loss estimates (see :mod:`ipabs.analytics.weights`): a ``diagnostics`` column
holds, on the ``expected_loss`` and ``probability_of_loss`` rows, every reason the estimate
cannot be taken as printed (empty when none); the rows ``loss_paths`` (paths with a loss),
``loss_effective_paths`` (effective paths among them), ``loss_max_weight_share`` and
``*_se_vs_plain`` (standard error over plain sampling's at the same number of paths) carry the
figures behind them, without standard errors.

Pool metrics (shares of the original pool balance): ``expected_loss``, loss quantiles and
expected shortfall at 95 / 99 / 99.9%, ``expected_default_rate`` and the number of defaults
(mean and quantiles); :func:`default_count_distribution` gives ``P(N = k)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ipabs.analytics import metrics as m
from ipabs.analytics.importance import LOSS_EPS
from ipabs.analytics.weights import Diagnostics, diagnose
from ipabs.risk.montecarlo_numba_fns import (
    O_DISCOUNTED_LOSS,
    O_DURATION,
    O_LOSS,
    O_WAL,
    O_YIELD,
    P_DEFAULT_RATE,
    P_DEFAULTS,
    P_LOSS_RATE,
    P_WEIGHT,
)

if TYPE_CHECKING:
    import pandas as pd


class SimulationResult(Protocol):
    """What the tables read of a Monte Carlo result (:class:`ipabs.montecarlo.SimulationResult`,
    which sits above this module)."""

    tranche_names: list[str]
    tranche_outcomes: np.ndarray
    pool_outcomes: np.ndarray
    original_balances: np.ndarray


LEVELS = (0.95, 0.99, 0.999)
DISTRIBUTION_QUANTILES = (0.05, 0.5, 0.95)


def metric_row(subject: str, metric: str, e: m.Estimate) -> dict[str, Any]:
    """One row of :func:`risk_metrics`."""
    return {
        "subject": subject,
        "metric": metric,
        "estimate": e.value,
        "se": e.se,
        "ci_low": e.ci_low,
        "ci_high": e.ci_high,
    }


def label(level: float) -> str:
    """A level as metric names spell it (0.999 -> "99.9")."""
    return f"{level * 100:g}"


def tranche_rows(result: SimulationResult, k: int) -> list[dict[str, Any]]:
    """Metric rows of tranche ``k`` (see the module notes)."""
    name = result.tranche_names[k]
    tr = result.tranche_outcomes[:, k, :]
    w = result.pool_outcomes[:, P_WEIGHT]
    orig = float(result.original_balances[k])
    scale = 1.0 / orig if orig > 0 else np.nan
    loss = tr[:, O_LOSS] * scale
    hit = (tr[:, O_LOSS] > LOSS_EPS).astype(np.float64)
    rows = [
        metric_row(name, "expected_loss", m.mean(loss, w)),
        metric_row(name, "discounted_expected_loss", m.mean(tr[:, O_DISCOUNTED_LOSS] * scale, w)),
        metric_row(name, "probability_of_loss", m.mean(hit, w)),
        metric_row(name, "loss_given_loss", m.ratio(loss, hit, w)),
        metric_row(name, "expected_wal_years", m.conditional_mean(tr[:, O_WAL], w)),
    ]
    rows += _distribution(name, "wal_years", tr[:, O_WAL], w)
    rows.append(metric_row(name, "mean_yield", m.conditional_mean(tr[:, O_YIELD], w)))
    rows += _distribution(name, "yield", tr[:, O_YIELD], w)
    rows.append(metric_row(name, "mean_duration_years", m.conditional_mean(tr[:, O_DURATION], w)))
    # how far the loss estimates can be trusted (ipabs.analytics.weights): the problems in
    # words on the two loss rows, and the figures behind them as rows of their own
    el = diagnose(np.nan_to_num(loss), w, "its expected loss")
    pl = diagnose(hit, w, "its loss probability")
    return rows + diagnostic_rows(name, rows, el, pl)


def diagnostic_rows(
    name: str, rows: list[dict[str, Any]], el: Diagnostics, pl: Diagnostics
) -> list[dict[str, Any]]:
    """Put the loss estimates' problems in words on their rows (``rows[0]``, the expected loss,
    and ``rows[2]``, the loss probability) and return the figures behind them as rows."""
    rows[0]["diagnostics"] = "; ".join(el.problems)
    rows[2]["diagnostics"] = "; ".join(pl.problems)
    out = []
    for metric, value in (
        ("loss_paths", float(el.hits)),
        ("loss_effective_paths", el.hit_ess),
        ("loss_max_weight_share", el.max_share),
        ("expected_loss_se_vs_plain", el.se_vs_plain),
        ("probability_of_loss_se_vs_plain", pl.se_vs_plain),
    ):
        out.append(metric_row(name, metric, m.Estimate(value, np.nan, np.nan, np.nan)))
    return out


def _distribution(name: str, metric: str, x: np.ndarray, w: np.ndarray) -> list[dict[str, Any]]:
    ok = ~np.isnan(x)
    return [
        metric_row(name, f"{metric}_q{label(q)}", m.quantile(x[ok], q, w[ok])) for q in DISTRIBUTION_QUANTILES
    ]


def pool_rows(result: SimulationResult) -> list[dict[str, Any]]:
    """Metric rows of the pool (see the module notes)."""
    pool = result.pool_outcomes
    w = pool[:, P_WEIGHT]
    loss = pool[:, P_LOSS_RATE]
    rows = [metric_row("pool", "expected_loss", m.mean(loss, w))]
    rows += [metric_row("pool", f"loss_q{label(a)}", m.quantile(loss, a, w)) for a in LEVELS]
    rows += [
        metric_row("pool", f"expected_shortfall_{label(a)}", m.expected_shortfall(loss, a, w)) for a in LEVELS
    ]
    rows.append(metric_row("pool", "expected_default_rate", m.mean(pool[:, P_DEFAULT_RATE], w)))
    rows.append(metric_row("pool", "expected_defaults", m.mean(pool[:, P_DEFAULTS], w)))
    rows += [
        metric_row("pool", f"defaults_q{label(q)}", m.quantile(pool[:, P_DEFAULTS], q, w)) for q in LEVELS
    ]
    return rows


def risk_metrics(result: SimulationResult) -> pd.DataFrame:
    """Every tranche and pool metric of ``result``: one row per (subject, metric) with
    ``estimate``, ``se``, ``ci_low`` and ``ci_high``.

    Examples
    --------
    >>> import ipabs
    >>> result = ipabs.simulate("scenarios/caohejing_ip_pledge.yaml", paths=20_000, seed=1)  # doctest: +SKIP
    >>> table = result.metrics()  # doctest: +SKIP
    >>> table.set_index(["subject", "metric"]).loc["senior"]  # doctest: +SKIP
    """
    import pandas as pd

    rows = []
    for k in range(len(result.tranche_names)):
        rows += tranche_rows(result, k)
    rows += pool_rows(result)
    frame = pd.DataFrame(rows)
    frame["diagnostics"] = frame["diagnostics"].fillna("") if "diagnostics" in frame else ""
    return frame


def default_count_distribution(result: SimulationResult) -> pd.DataFrame:
    """``P(N = k)`` for each number of defaults ``k`` seen, with standard errors and 95%
    intervals (columns ``defaults``, ``probability``, ``se``, ``ci_low``, ``ci_high``)."""
    import pandas as pd

    n = result.pool_outcomes[:, P_DEFAULTS]
    w = result.pool_outcomes[:, P_WEIGHT]
    rows = []
    for k in np.unique(n):
        e = m.mean((n == k).astype(np.float64), w)
        rows.append(
            {"defaults": int(k), "probability": e.value, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high}
        )
    return pd.DataFrame(rows)
