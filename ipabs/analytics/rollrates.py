"""Monthly roll and cure rates estimated from a history of reports (``ipabs roll-rates``).

Consecutive state files of a deal (docs/surveillance.md) show each loan's status on each
report date. Read as a Markov chain on the months between them, with the states of the risk
model's delinquency chain (docs/delinquency.md)::

    current -> 1 behind -> 2 behind -> 3 behind (90+) -> defaulted

plus a sudden default of a current loan (``d0``: a loan current on one report and defaulted on
the next, too soon to have passed through the buckets; the copula's PDs cover these), every
month a loan current falls behind with ``roll[0]`` or defaults with ``d0``; a loan ``k``
buckets behind rolls on with ``roll[k]`` (from 90+ into default), cures to current with
``cure[k - 1]`` or stays. Over ``D`` months between two reports the chain moves by ``P^D``,
and the rates are those that maximise the likelihood of the observed moves
``sum_loans log (P^D)[from, to]`` (L-BFGS-B on each state's exit logits). Standard errors come
from the inverse of the observed information (a numerical Hessian of the log-likelihood in the
logits, mapped to the rates by the delta method). A rate at its bound (no such move seen) or
with no loans to inform it has no trustworthy standard error and is flagged.

Statuses map to buckets as for a run from a state: ``dpd_1_30`` 1, ``dpd_31_60`` 2,
``dpd_61_90`` and ``dpd_90_plus`` 3. A loan repaid by the later report, or defaulted by the
earlier one, adds no move (repayment censors it).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ipabs.errors import IpabsError

if TYPE_CHECKING:
    from ipabs.deal.state import LoadedState

STATES = ("current", "1 behind", "2 behind", "3 behind", "defaulted")
BUCKET = {"current": 0, "dpd_1_30": 1, "dpd_31_60": 2, "dpd_61_90": 3, "dpd_90_plus": 3, "defaulted": 4}
RATES = ("roll_0", "sudden_default", "roll_1", "cure_0", "roll_2", "cure_1", "roll_3", "cure_2")
"""The estimated monthly rates, in order: current -> 1 behind, current -> defaulted; then per
bucket k = 1, 2, 3 its roll on and its cure (``roll_k``, ``cure_{k-1}``), as the risk model's
``roll_rates`` and ``cure_rates`` index them."""
LOGIT_BOUND = 12.0  # |logit| at which a rate counts as at its bound (below about 6e-6)
MIN_MOVES = 10  # a state left by fewer observed loans is flagged as thinly informed


@dataclass(frozen=True)
class RollRateEstimate:
    """Estimated monthly rates of the delinquency chain.

    Attributes
    ----------
    rates : dict
        Rate name (:data:`RATES`) -> estimate.
    se : dict
        Rate name -> standard error (nan when it cannot be trusted: see ``flags``).
    flags : dict
        Rate name -> why its estimate or error cannot be taken as printed ("" when it can).
    moves : ndarray, shape (5, 5)
        Observed loans by status on a report (rows, :data:`STATES`) and on the next (columns).
    months : list of int
        Months between consecutive reports.
    log_likelihood : float
    reports : list of str
        The report dates, in order.
    """

    rates: dict[str, float]
    se: dict[str, float]
    flags: dict[str, str]
    moves: np.ndarray
    months: list[int]
    log_likelihood: float
    reports: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def roll_rates(self) -> list[float]:
        """The risk model's ``roll_rates`` (current -> 30, 30 -> 60, 60 -> 90+, 90+ -> default)."""
        return [self.rates[f"roll_{k}"] for k in range(4)]

    @property
    def cure_rates(self) -> list[float]:
        """The risk model's ``cure_rates`` (30, 60, 90+ -> current)."""
        return [self.rates[f"cure_{k}"] for k in range(3)]

    def risk_yaml(self) -> str:
        """The ``delinquency`` block of a risk section with these rates."""
        roll = ", ".join(f"{x:.6g}" for x in self.roll_rates)
        cure = ", ".join(f"{x:.6g}" for x in self.cure_rates)
        return f"delinquency:\n  roll_rates: [{roll}]\n  cure_rates: [{cure}]\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        from ipabs.io import json_value

        return {
            "reports": self.reports,
            "months_between_reports": self.months,
            "rates": [
                {"rate": k, "estimate": self.rates[k], "se": json_value(self.se[k]), "flag": self.flags[k]}
                for k in RATES
            ],
            "roll_rates": self.roll_rates,
            "cure_rates": self.cure_rates,
            "moves": {"states": list(STATES), "counts": self.moves.astype(int).tolist()},
            "log_likelihood": self.log_likelihood,
            "warnings": list(self.warnings),
        }


def months_between(a: dt.date, b: dt.date) -> int:
    """Whole months from ``a`` to ``b`` (a day difference beyond half a month rounds)."""
    months = (b.year - a.year) * 12 + (b.month - a.month)
    months += 1 if b.day - a.day > 15 else 0
    months -= 1 if b.day - a.day < -15 else 0
    return months


def observed_moves(
    states: Sequence[LoadedState],
) -> tuple[list[tuple[int, np.ndarray]], np.ndarray, list[int]]:
    """Per pair of consecutive reports, its months apart and its (5, 5) counts of loans by
    bucket on each; and the counts summed over pairs."""
    if len(states) < 2:
        raise IpabsError("roll rates need at least two reports of the deal, in date order")
    pairs = []
    total = np.zeros((5, 5))
    months = []
    for before, after in itertools.pairwise(states):
        d0, d1 = before.spec.report_date, after.spec.report_date
        m = months_between(d0, d1)
        if m < 1:
            raise IpabsError(
                f"reports of {d0} and {d1} are less than a month apart or out of order: give the "
                "state files in date order, at least a month apart"
            )
        later = {loan.id: loan.status for loan in after.spec.loans}
        counts = np.zeros((5, 5))
        for loan in before.spec.loans:
            if loan.status in ("repaid", "defaulted") or later.get(loan.id, "repaid") == "repaid":
                continue
            counts[BUCKET[loan.status], BUCKET[later[loan.id]]] += 1
        pairs.append((m, counts))
        total += counts
        months.append(m)
    return pairs, total, months


def _chain(logits: np.ndarray) -> np.ndarray:
    """The monthly transition matrix from the exit logits (each state's 'stay' logit is 0)."""
    p = np.zeros((5, 5))
    targets = [(1, 4), (2, 0), (3, 0), (4, 0)]  # current: roll, sudden default; k: roll on, cure
    for s, (a, b) in enumerate(targets):
        e = np.exp(logits[2 * s : 2 * s + 2])
        z = 1.0 + e.sum()
        p[s, a] += e[0] / z
        p[s, b] += e[1] / z
        p[s, s] += 1.0 / z
    p[4, 4] = 1.0
    return p


def _rates(logits: np.ndarray) -> np.ndarray:
    p = _chain(logits)
    return np.array([p[0, 1], p[0, 4], p[1, 2], p[1, 0], p[2, 3], p[2, 0], p[3, 4], p[3, 0]])


def _log_likelihood(logits: np.ndarray, pairs: list[tuple[int, np.ndarray]]) -> float:
    p = _chain(logits)
    out = 0.0
    for m, counts in pairs:
        pm = np.linalg.matrix_power(p, m)
        seen = counts > 0
        with np.errstate(divide="ignore"):
            out += float((counts[seen] * np.log(pm[seen])).sum())
    return out


def estimate_roll_rates(states: Sequence[LoadedState]) -> RollRateEstimate:
    """Maximum-likelihood monthly roll and cure rates from consecutive reports (see the module).

    Parameters
    ----------
    states : sequence of LoadedState
        Two or more states of one deal, in date order.

    Returns
    -------
    RollRateEstimate
    """
    pairs, _, _ = observed_moves(states)
    return fit_roll_rates(pairs, [s.spec.report_date.isoformat() for s in states])


def fit_roll_rates(pairs: Sequence[tuple[int, np.ndarray]], reports: Sequence[str] = ()) -> RollRateEstimate:
    """:func:`estimate_roll_rates` from the moves themselves: per pair of reports, its months
    apart and its (5, 5) counts of loans by state on each (:data:`STATES`)."""
    from scipy.optimize import minimize

    pairs = [(int(m), np.asarray(c, dtype=np.float64)) for m, c in pairs]
    moves = sum((c for _, c in pairs), np.zeros((5, 5)))
    months = [m for m, _ in pairs]
    if moves.sum() == 0:
        raise IpabsError("the reports have no loan performing on one report and listed on the next")

    def nll(x: np.ndarray) -> float:
        value = -_log_likelihood(x, pairs)
        return value if math.isfinite(value) else 1e300

    start = np.full(8, -2.0)
    bounds = [(-LOGIT_BOUND, LOGIT_BOUND)] * 8
    fit = minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    x = fit.x
    rates = _rates(x)
    at_bound = np.abs(x) >= LOGIT_BOUND - 1e-6
    # observed information in the logits (central differences), mapped to the rates
    h = 1e-4
    n = len(x)
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            e_i, e_j = np.eye(n)[i] * h, np.eye(n)[j] * h
            f = (nll(x + e_i + e_j) - nll(x + e_i - e_j) - nll(x - e_i + e_j) + nll(x - e_i - e_j)) / (
                4.0 * h * h
            )
            hess[i, j] = hess[j, i] = f
    jac = np.zeros((n, n))
    for i in range(n):
        e = np.eye(n)[i] * h
        jac[:, i] = (_rates(x + e) - _rates(x - e)) / (2.0 * h)
    free = ~at_bound
    se = np.full(n, math.nan)
    if free.any():
        sub = hess[np.ix_(free, free)]
        try:
            cov = np.linalg.inv(sub)
            if np.all(np.diag(cov) > 0.0):
                j = jac[:, free]
                var = np.einsum("ij,jk,ik->i", j, cov, j)
                se = np.sqrt(np.maximum(var, 0.0))
        except np.linalg.LinAlgError:
            se[:] = math.nan  # singular information: no error is printed (flagged below)
    left = moves.sum(axis=1)  # loans observed leaving each state (or staying)
    owner = [0, 0, 1, 1, 2, 2, 3, 3]  # the state each rate leaves
    flags: dict[str, str] = {}
    for i, name in enumerate(RATES):
        s = owner[i]
        if left[s] == 0:
            flags[name] = f"no loan was {STATES[s]} on a report: set by the other moves alone, if at all"
        elif at_bound[i]:
            flags[name] = "at its bound: the reports show no such move; the estimate is 0, its error unknown"
        elif not math.isfinite(se[i]):
            flags[name] = "its standard error cannot be computed (the information is singular)"
        elif left[s] < MIN_MOVES:
            flags[name] = f"only {int(left[s])} loan(s) {STATES[s]} on a report: a thin estimate"
        else:
            flags[name] = ""
        if flags[name] and not flags[name].startswith("only"):
            se[i] = math.nan
    warnings = []
    flagged = [k for k in RATES if flags[k]]
    if flagged:
        warnings.append(
            f"{len(flagged)} of {len(RATES)} rates cannot be taken as printed ({', '.join(flagged)}): "
            "see their flags; more reports, or a longer history, narrow them"
        )
    return RollRateEstimate(
        rates={k: float(v) for k, v in zip(RATES, rates, strict=True)},
        se={k: float(v) for k, v in zip(RATES, se, strict=True)},
        flags=flags,
        moves=moves,
        months=months,
        log_likelihood=float(-fit.fun),
        reports=list(reports),
        warnings=warnings,
    )
