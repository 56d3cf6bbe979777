"""Importance sampling for rare tranche losses: a shift of the systematic factors, a twist of
the conditional default probabilities and per-group tilts of the default odds.

Under the risk model the systematic factors ``Z`` are independent standard normals. Drawing
them from ``N(mu, I)`` instead and weighting each path by the likelihood ratio
``exp(-mu.Z + mu.mu / 2)`` leaves every expectation unchanged (Glasserman and Li, 2005) while
sending many more paths into the bad states where a senior tranche loses.

In a small pool the factors alone leave much of the variance: which obligors default is
idiosyncratic. Given its factors, each path's conditional default probability ``p_g`` of
obligor group ``g`` can be twisted to odds ``p_g / (1 - p_g)`` times ``exp(t + tilt_g)``: ``t >= 0``
set per path so that the expected number of defaulters reaches a target (the count twist), and
``tilt_g`` fixed per group (singling out, say, a guarantee company whose own default is what
the senior fears). The path's weight gains the factor
``prod_g exp(-theta_g d_g) (1 + p_g (e^theta_g - 1))^n_g`` for ``d_g`` defaulters among ``n_g``
obligors, ``theta_g = t + tilt_g``. A defaulter's period is drawn from the model's distribution
given default, so timing is not distorted.

Every importance-sampled run is a defensive mixture (Hesterberg, 1995): a share ``alpha`` of
the paths comes from the model itself, which bounds every weight by ``1 / alpha``.

The settings are chosen by the cross-entropy method on small pilot runs: starting from ``mu = 0``,
each pilot keeps its worst paths (those where the target tranche loses, else those with the
largest note losses, else the largest pool losses) and moves ``mu`` to their likelihood-weighted
mean factor, until enough pilot paths make the target tranche lose. The shift used is the
likelihood-weighted mean factor over every pilot path where the target lost (an estimate of
``E[Z | tranche loss]``, the cross-entropy optimal mean); the count target is their weighted
median number of defaulters; each group's tilt is the log-odds change from its mean
conditional default probability to its default frequency on those paths. A last pilot per
option (shift; shift and count twist; shift and tilts) estimates the variance reduction and the
best is used; below :data:`MIN_GAIN` the run falls back to plain sampling.

Pilot paths come from their own random streams, so the main run's path *i* is still a pure
function of (seed, i, sampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ipabs.engine.waterfall_numba_fns import EPS as LOSS_EPS  # rounding dust, not a loss
from ipabs.errors import IpabsError

if TYPE_CHECKING:
    from ipabs.engine.compile import CompiledModel
    from ipabs.risk.model import RiskArrays

PILOT_PATHS = 2_000  # paths per pilot run
MIN_HITS = 20  # "auto": plain sampling when a pilot sees at least this many target losses
ELITE_SHARE = 0.1  # share of a pilot's paths kept as the elite of a cross-entropy step
MAX_ITERATIONS = 8
DEFENSIVE_SHARE = 0.1  # share of paths drawn from the model itself: weights stay below 10
MIN_GAIN = 1.5  # use the shift only if a pilot shows at least this variance reduction


@dataclass(frozen=True)
class Sampling:
    """How a Monte Carlo run sampled its paths.

    Attributes
    ----------
    method : {"plain", "importance"}
    shift : ndarray
        Mean of the systematic factors (zeros for plain sampling).
    tranche : str or None
        Tranche importance sampling aimed at.
    twist : float
        Expected number of defaulters the conditional default probabilities are twisted
        towards (0: no twist).
    alpha : float
        Share of paths drawn from the model itself (the defensive mixture; 0 for plain
        sampling).
    tilt : ndarray or None
        Per obligor group, a fixed change of the log-odds of default (None: none).
    pilot_paths : int
        Paths spent on pilot runs (not part of the estimates).
    reason : str
        Why this method was used.
    """

    method: str
    shift: np.ndarray
    tranche: str | None = None
    pilot_paths: int = 0
    reason: str = "plain sampling requested"
    pilot_hits: list[int] = field(default_factory=list)
    twist: float = 0.0
    alpha: float = 0.0
    tilt: np.ndarray | None = None

    def group_tilt(self, n_groups: int) -> np.ndarray:
        """The per-group log-odds tilt (zeros when none)."""
        return np.zeros(n_groups) if self.tilt is None else np.asarray(self.tilt, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "method": self.method,
            "shift": [float(x) for x in self.shift],
            "twist_defaulters": self.twist,
            "defensive_share": self.alpha,
            "group_tilt": None if self.tilt is None else [float(x) for x in self.tilt],
            "tranche": self.tranche,
            "pilot_paths": self.pilot_paths,
            "reason": self.reason,
        }


RunPaths = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def target_tranche(model: CompiledModel, name: str | None) -> int:
    """Index of the tranche to aim at: ``name``, or the most senior with a balance."""
    names = list(model.tranche_names)
    if name is not None:
        if name not in names:
            raise IpabsError(f"importance sampling: no tranche {name!r}; tranches: {', '.join(names)}")
        return names.index(name)
    for k, balance in enumerate(model.cd.tr_balance):
        if balance > 0.0:
            return k
    return 0


def choose_sampling(
    model: CompiledModel,
    arrays: RiskArrays,
    seed: int,
    mode: bool | str,
    tranche: str | None,
    n_threads: int,
    run_paths: RunPaths,
) -> Sampling:
    """Decide plain or importance sampling and find the factor shift.

    Parameters
    ----------
    model, arrays
        The compiled deal and risk model.
    seed : int
        The run's seed (pilots use streams 1, 2, ... of it).
    mode : bool or "auto"
        False: plain; True: importance sampling; "auto": importance sampling only when a plain
        pilot of :data:`PILOT_PATHS` paths sees fewer than :data:`MIN_HITS` losses of the
        target tranche.
    tranche : str, optional
        Target tranche (default: the most senior with a balance).
    n_threads : int
    run_paths : callable
        ``run_paths(model, arrays, seed, stream, paths, sampling, n_threads, group_defaults=...)``
        returning tranche outcomes, pool outcomes, factors and defaulters per group.

    Returns
    -------
    Sampling
    """
    from ipabs.risk.montecarlo_numba_fns import O_LOSS, P_DEFAULTS, P_LOSS_RATE, P_WEIGHT

    zero = np.zeros(arrays.n_factors)
    if mode not in (True, False, "auto"):
        raise IpabsError(f"importance_sampling must be True, False or 'auto', got {mode!r}")
    if mode is False:
        return Sampling("plain", zero)
    k = target_tranche(model, tranche)
    name = model.tranche_names[k]
    n_groups = arrays.g_threshold.shape[0]
    group_size = np.bincount(arrays.ob_group, minlength=n_groups).astype(np.float64)
    shift = zero.copy()
    hits_seen: list[int] = []
    # every pilot path where the target lost: factors, weight, defaulters, defaulters per group
    hit_z: list[np.ndarray] = []
    hit_w: list[np.ndarray] = []
    hit_d: list[np.ndarray] = []
    hit_g: list[np.ndarray] = []
    stream = 1
    for iteration in range(MAX_ITERATIONS):
        pilot = Sampling("importance", shift, alpha=DEFENSIVE_SHARE if iteration else 0.0)
        tr, pool, z, groups = run_paths(
            model, arrays, seed, stream, PILOT_PATHS, pilot, n_threads, group_defaults=True
        )
        stream += 1
        loss = tr[:, k, O_LOSS]
        hit = loss > LOSS_EPS
        hits = int(hit.sum())
        hits_seen.append(hits)
        if iteration == 0 and mode == "auto" and hits >= MIN_HITS:
            return Sampling(
                "plain",
                zero,
                name,
                PILOT_PATHS,
                f"a plain pilot of {PILOT_PATHS:,} paths saw {hits} losses of {name}",
                hits_seen,
            )
        w = pool[:, P_WEIGHT]
        hit_z.append(z[hit])
        hit_w.append(w[hit])
        hit_d.append(pool[hit, P_DEFAULTS])
        hit_g.append(groups[hit])
        if hits >= ELITE_SHARE * PILOT_PATHS:
            break
        # not enough losses yet: move to the elite of this pilot, ordered by the target's loss,
        # then all notes' losses, then the pool's loss
        note_loss = tr[:, :, O_LOSS].sum(axis=1)
        order = np.lexsort((pool[:, P_LOSS_RATE], note_loss, loss))
        elite = order[-max(1, math.ceil(ELITE_SHARE * PILOT_PATHS)) :]
        if note_loss[elite].max() <= LOSS_EPS and pool[elite, P_LOSS_RATE].max() <= 0.0:
            break  # no path loses anything: the factors cannot push losses up
        new_shift = _weighted_mean(z[elite], w[elite])
        if np.allclose(new_shift, shift, atol=1e-3):
            break
        shift = new_shift
    spent = PILOT_PATHS * len(hits_seen)
    if sum(len(x) for x in hit_z) < MIN_HITS:
        return Sampling(
            "plain",
            zero,
            name,
            spent,
            f"pilot runs found too few losses of {name} to aim at; plain sampling",
            hits_seen,
        )
    hw = np.concatenate(hit_w)
    # every pilot estimates E[Z | loss] under the model once weighted: pool them
    candidate = _weighted_mean(np.concatenate(hit_z), hw)
    # the count twist aims at the typical number of defaulters on the paths where the target
    # lost; the group tilt moves each group's default odds from its conditional probability
    # given the factors to its frequency on those paths: defaults the factors explain get
    # no tilt, an idiosyncratic one that matters (a guarantor's, say) gets a large one
    twist = _weighted_median(np.concatenate(hit_d), hw)
    tilt = _group_tilt(np.concatenate(hit_g), hw, group_size)
    options = [
        ("a factor shift", Sampling("importance", candidate, alpha=DEFENSIVE_SHARE)),
        (
            f"a factor shift and default odds twisted towards {twist:.1f} defaulters",
            Sampling("importance", candidate, twist=twist, alpha=DEFENSIVE_SHARE),
        ),
        (
            "a factor shift and per-group default odds",
            Sampling("importance", candidate, alpha=DEFENSIVE_SHARE, tilt=tilt),
        ),
    ]
    best: tuple[float, str, Sampling | None] = (1.0, "", None)
    for how, option in options:
        tr, pool, _, _ = run_paths(model, arrays, seed, stream, PILOT_PATHS, option, n_threads)
        stream += 1
        spent += PILOT_PATHS
        gain = variance_reduction(tr[:, k, O_LOSS], pool[:, P_WEIGHT])
        if gain > best[0]:
            best = (gain, how, option)
    gain, how, chosen = best
    if chosen is None or not gain >= MIN_GAIN:
        return Sampling(
            "plain",
            zero,
            name,
            spent,
            f"importance sampling would not reduce the variance of {name}'s loss enough "
            f"(pilot estimate {gain:.2f}x); plain sampling",
            hits_seen,
        )
    return Sampling(
        "importance",
        chosen.shift,
        name,
        spent,
        f"{how} aimed at losses of {name} (cross-entropy over {len(hits_seen)} pilot runs; "
        f"pilot variance reduction {gain:.1f}x)",
        hits_seen,
        chosen.twist,
        chosen.alpha,
        chosen.tilt,
    )


def _group_tilt(hit_groups: np.ndarray, hit_w: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Per group, the log-odds change from its mean conditional default probability to its
    default frequency on the pilot paths where the target lost (both weighted back to the
    model), bounded to [0, 6]."""
    n = len(size)
    total = hit_w.sum()
    if not total > 0:
        return np.zeros(n)
    freq = (hit_w[:, None] * hit_groups[:, :n]).sum(axis=0) / (total * np.maximum(size, 1.0))
    cond = (hit_w[:, None] * hit_groups[:, n:]).sum(axis=0) / total
    freq = np.clip(freq, 1e-9, 1.0 - 1e-9)
    cond = np.clip(cond, 1e-9, 1.0 - 1e-9)
    return np.clip(np.log(freq / (1.0 - freq)) - np.log(cond / (1.0 - cond)), 0.0, 6.0)


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    return float(x[order[int(np.searchsorted(cum, 0.5 * cum[-1]))]])


def _weighted_mean(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum()
    if not total > 0.0:
        return z.mean(axis=0)
    return (w[:, None] * z).sum(axis=0) / total


def variance_reduction(x: np.ndarray, w: np.ndarray) -> float:
    """Variance of ``x`` under plain sampling divided by the variance of ``w x`` under the
    sampling that produced it: how many plain paths one weighted path is worth.

    Both variances are estimated from the weighted sample: ``Var_plain(x) = E[w x^2] - m^2``
    and ``Var(w x) = E[w^2 x^2] - m^2`` with ``m = E[w x]``. Returns 1.0 when all weights are
    one and nan when the weighted sample has no variance.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if np.all(w == 1.0):
        return 1.0
    m = float(np.mean(w * x))
    plain = float(np.mean(w * x * x)) - m * m
    weighted = float(np.mean((w * x) ** 2)) - m * m
    if not weighted > 0.0:
        return math.nan
    return plain / weighted
