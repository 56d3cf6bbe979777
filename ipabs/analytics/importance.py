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

The settings are chosen by multi-level cross-entropy on small pilot runs: starting from
``mu = 0``, each pilot keeps its worst paths (those where the target tranche loses, else those
with the largest note losses, the largest pool losses, the most defaults) and moves ``mu`` to
their likelihood-weighted mean factor, until enough pilot paths make the target tranche lose.
The shift used is the likelihood-weighted mean factor over every pilot path where the target
lost (an estimate of ``E[Z | tranche loss]``, the cross-entropy optimal mean); the count target
is their weighted median number of defaulters. Group tilts are fitted only as far as the pilot
supports them (:func:`_group_tilt`: shrunk towards the model, at most one tilt per
:data:`HITS_PER_TILT` effective pilot losses), except for the groups of guarantors and support
providers, whose default gates a loss and which are tilted from the first step.

A last pilot per candidate (shift; with the count twist; with the tilts; with both) is judged
before use (:func:`_judge_pilot`): enough effective losses, no dominant path, weights averaging
one, a precise estimate, and agreement with every simpler accepted candidate. The accepted
candidate with the largest variance reduction is used; with none, or below :data:`MIN_GAIN`,
plain sampling. The main run is diagnosed again (:func:`run_checked`) and falls back to a
simpler sampling when its weights fail (see :mod:`ipabs.analytics.weights`).

Pilot paths come from their own random streams, so the main run's path *i* is still a pure
function of (seed, i, sampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ipabs.analytics.weights import (
    MAX_WEIGHT_SHARE,
    MIN_HIT_ESS,
    SE_RATIO_LIMIT,
    WEIGHT_Z,
    Diagnostics,
    diagnose,
    kish_ess,
)
from ipabs.engine.waterfall_numba_fns import EPS as LOSS_EPS  # rounding dust, not a loss
from ipabs.errors import IpabsError

if TYPE_CHECKING:
    from ipabs.engine.compile import CompiledModel
    from ipabs.risk.model import RiskArrays

PILOT_PATHS = 2_000  # paths per pilot run
MIN_HITS = 20  # "auto": plain sampling when a pilot sees at least this many target losses
ELITE_SHARE = 0.1  # share of a pilot's paths kept as the elite of a cross-entropy step
MAX_ITERATIONS = 8
MIN_CE_HITS = 3  # pilot losses from which the cross-entropy steps start tilting groups
DEFENSIVE_SHARE = 0.1  # share of paths drawn from the model itself: weights stay below 10
MIN_GAIN = 1.5  # use the shift only if a pilot shows at least this variance reduction
# a pilot must show the checks of ipabs.analytics.weights, and also:
PILOT_MAX_RELATIVE_SE = 0.25  # a pilot's own estimate must be this precise to judge its variance
AGREE_Z = 3.0  # two pilots' estimates of the same expectation must agree within this many errors
HITS_PER_TILT = 20.0  # effective pilot losses needed per fitted group tilt
TILT_PRIOR = 20.0  # pseudo-observations shrinking a group's default frequency to the model's


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
    fallbacks: tuple[str, ...] = ()
    pilots: tuple[dict[str, Any], ...] = ()
    hit_rate: float = math.nan  # share of the chosen pilot's paths where the target lost

    def simpler(self) -> Sampling | None:
        """The next simpler sampling to fall back to: without the group tilts, then without
        the count twist, then plain (None once plain)."""
        if self.method != "importance":
            return None
        if self.tilt is not None and np.any(np.asarray(self.tilt) != 0.0):
            return replace(self, tilt=None)
        if self.twist > 0.0:
            return replace(self, twist=0.0)
        return replace(self, method="plain", shift=np.zeros_like(self.shift), alpha=0.0)

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
            "pilot_hit_rate": None if math.isnan(self.hit_rate) else self.hit_rate,
            "fallbacks": list(self.fallbacks),
            "pilots": [dict(p) for p in self.pilots],
        }


RunPaths = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def posterior_sampling(arrays: RiskArrays, tranche: str | None = None) -> Sampling:
    """Sampling for a run from a report date whose history updates the factors: draw them
    around their posterior mean (``arrays.posterior_mean``, :func:`ipabs.risk.model.history_posterior`)
    in the defensive mixture, so that the paths follow the posterior rather than the prior and
    the history's likelihood weights vary less. Each path's weight is the mixture's likelihood
    ratio times the history's likelihood at its factors (divided by its prior mean): the
    estimates are those of the posterior either way, with smaller standard errors when the
    history is informative (docs/surveillance.md)."""
    shift = np.asarray(arrays.posterior_mean, dtype=np.float64)
    return Sampling(
        "importance",
        shift.copy(),
        tranche=tranche,
        alpha=DEFENSIVE_SHARE,
        reason="a run from a report date: the factors drawn around their mean given the history "
        f"(shift {', '.join(f'{x:+.3f}' for x in shift)})",
    )


def target_tranche(model: CompiledModel, name: str | None) -> int:
    """Index of the tranche to aim at: ``name``, or the most senior with a balance."""
    names = list(model.tranche_names)
    if name is not None:
        if name not in names:
            raise IpabsError(f"importance sampling: no tranche {name!r}; tranches: {', '.join(names)}")
        return names.index(name)
    for k, balance in enumerate(model.balances):
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
    from ipabs.risk.montecarlo_numba_fns import (
        O_LOSS,
        P_DEFAULT_RATE,
        P_DEFAULTS,
        P_LOSS_RATE,
        P_WEIGHT,
    )

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
    tilt: np.ndarray | None = None
    gates = _gate_groups(arrays)
    for iteration in range(MAX_ITERATIONS):
        pilot = Sampling("importance", shift, alpha=DEFENSIVE_SHARE if iteration else 0.0, tilt=tilt)
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
        if iteration == 0 and len(gates):
            # a guarantor's or support provider's default gates the losses it covers: from the
            # first step on, draw it about half the time (its odds tilted to about even), so the
            # pilots see the losses behind the gate; the weights undo the tilt
            p_gate = np.clip(groups[:, n_groups + gates].mean(axis=0), 1e-9, 0.5)
            tilt = np.zeros(n_groups)
            tilt[gates] = np.clip(-np.log(p_gate / (1.0 - p_gate)), 0.0, 6.0)
        hit_z.append(z[hit])
        hit_w.append(w[hit])
        hit_d.append(pool[hit, P_DEFAULTS])
        hit_g.append(groups[hit])
        if hits >= ELITE_SHARE * PILOT_PATHS:
            break
        # not enough losses yet: move to the elite of this pilot, ordered by the target's loss,
        # then all notes' losses, then the pool's loss, then the pool's defaults (which still
        # rise with the factors when guarantees or support leave no loss to rank by)
        note_loss = tr[:, :, O_LOSS].sum(axis=1)
        order = np.lexsort((pool[:, P_DEFAULT_RATE], pool[:, P_LOSS_RATE], note_loss, loss))
        elite = order[-max(1, math.ceil(ELITE_SHARE * PILOT_PATHS)) :]
        if note_loss[elite].max() <= LOSS_EPS and pool[elite, P_DEFAULT_RATE].max() <= 0.0:
            break  # no path defaults at all: the factors cannot push losses up
        new_shift = _weighted_mean(z[elite], w[elite])
        # the losses seen so far also say which groups' defaults they need (a guarantor's, say):
        # tilt those, shrunk to the model, so that the next pilot sees more of them
        new_tilt = tilt
        if sum(len(x) for x in hit_w) >= MIN_CE_HITS:
            fitted = _group_tilt(np.concatenate(hit_g), np.concatenate(hit_w), group_size, gates)
            new_tilt = fitted if np.any(fitted != 0.0) else tilt
        same_tilt = (new_tilt is None and tilt is None) or (
            new_tilt is not None and tilt is not None and np.allclose(new_tilt, tilt, atol=1e-2)
        )
        if np.allclose(new_shift, shift, atol=1e-3) and same_tilt:
            break
        shift, tilt = new_shift, new_tilt
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
    # lost; the group tilts move a group's default odds from its conditional probability given
    # the factors towards its frequency on those paths, shrunk to the model and fitted only for
    # as many groups as the pilot's losses can support (see _group_tilt)
    twist = _weighted_median(np.concatenate(hit_d), hw)
    tilt = _group_tilt(np.concatenate(hit_g), hw, group_size, gates)
    options = [
        ("a factor shift", Sampling("importance", candidate, alpha=DEFENSIVE_SHARE)),
        (
            f"a factor shift and default odds twisted towards {twist:.1f} defaulters",
            Sampling("importance", candidate, twist=twist, alpha=DEFENSIVE_SHARE),
        ),
    ]
    if np.any(tilt != 0.0):
        tilted = f"default odds tilted for {int(np.count_nonzero(tilt))} obligor group(s)"
        options.append(
            (
                f"a factor shift and {tilted}",
                Sampling("importance", candidate, alpha=DEFENSIVE_SHARE, tilt=tilt),
            )
        )
        options.append(
            (
                f"a factor shift, default odds twisted towards {twist:.1f} defaulters and {tilted}",
                Sampling("importance", candidate, twist=twist, alpha=DEFENSIVE_SHARE, tilt=tilt),
            )
        )
    trials: list[_Pilot] = []
    for how, option in options:
        tr, pool, _, _ = run_paths(model, arrays, seed, stream, PILOT_PATHS, option, n_threads)
        stream += 1
        spent += PILOT_PATHS
        trials.append(_judge_pilot(how, option, tr[:, k, O_LOSS], pool[:, P_WEIGHT], trials, name))
    pilots = tuple(t.record() for t in trials)
    usable = [t for t in trials if t.accepted]
    best = max(usable, key=lambda t: t.gain, default=None)
    if best is None or not best.gain >= MIN_GAIN:
        why = (
            f"no importance sampling passed its pilot checks for {name} ({trials[0].verdict})"
            if best is None
            else f"importance sampling would not reduce the variance of {name}'s loss enough "
            f"(pilot estimate {best.gain:.2f}x)"
        )
        return Sampling("plain", zero, name, spent, f"{why}; plain sampling", hits_seen, pilots=pilots)
    chosen = best.sampling
    return Sampling(
        "importance",
        chosen.shift,
        name,
        spent,
        f"{best.how} aimed at losses of {name} (cross-entropy over {len(hits_seen)} pilot runs; "
        f"pilot variance reduction {best.gain:.3g}x)",
        hits_seen,
        chosen.twist,
        chosen.alpha,
        chosen.tilt,
        pilots=pilots,
        hit_rate=best.diagnostics.hits / PILOT_PATHS,
    )


@dataclass
class _Pilot:
    """One candidate sampling's pilot: its estimate of the target's expected loss, how much it
    reduced the variance, and whether it can be believed."""

    how: str
    sampling: Sampling
    mean: float
    se: float
    gain: float
    diagnostics: Diagnostics
    accepted: bool
    verdict: str

    def record(self) -> dict[str, Any]:
        return {
            "sampling": self.how,
            "expected_loss": self.mean,
            "expected_loss_se": self.se,
            "variance_reduction": self.gain if math.isfinite(self.gain) else None,
            "accepted": self.accepted,
            "verdict": self.verdict,
            "hit_ess": self.diagnostics.hit_ess,
            "max_weight_share": self.diagnostics.max_share,
        }


def _judge_pilot(
    how: str, sampling: Sampling, loss: np.ndarray, w: np.ndarray, simpler: list[_Pilot], name: str
) -> _Pilot:
    """Accept a candidate only if its pilot estimate is credible by itself (enough effective
    losses, no dominant path, weights averaging one, a precise estimate) and agrees with every
    simpler candidate that was credible: a proposal that misses part of the loss region looks
    precise and reports a huge variance reduction while its estimate sits far below the truth,
    and only a comparison with another proposal shows it."""
    n = len(loss)
    y = w * loss
    m = float(y.mean())
    se = float(y.std(ddof=1) / math.sqrt(n))
    diag = diagnose(loss, w, f"losses of {name}")
    gain = variance_reduction(loss, w)
    verdict = "accepted"
    if diag.hits < MIN_HIT_ESS or diag.hit_ess < MIN_HIT_ESS:
        verdict = f"{diag.hit_ess:.1f} effective pilot paths with a loss (needs {MIN_HIT_ESS:g})"
    elif diag.max_share > MAX_WEIGHT_SHARE:
        verdict = f"one pilot path carries {100 * diag.max_share:.0f}% of the estimate"
    elif abs(diag.weight_z) > WEIGHT_Z:
        verdict = f"pilot weights average {float(w.mean()):.4g}, not 1"
    elif not se <= PILOT_MAX_RELATIVE_SE * m:
        verdict = f"pilot relative error {se / m if m > 0 else math.inf:.2f} too large to judge it"
    else:
        for other in simpler:
            if other.accepted and abs(m - other.mean) > AGREE_Z * math.hypot(se, other.se):
                verdict = (
                    f"its pilot estimate {m:.4g} ± {se:.2g} disagrees with {other.how}'s "
                    f"{other.mean:.4g} ± {other.se:.2g}"
                )
                break
    return _Pilot(how, sampling, m, se, gain, diag, verdict == "accepted", verdict)


def _gate_groups(arrays: RiskArrays) -> np.ndarray:
    """Obligor groups of loan guarantors and support providers (deficiency payers, liquidity
    providers): one default of theirs decides whether losses reach the notes."""
    guarantors = arrays.a_guarantor[arrays.a_guarantor >= 0]
    gate_obligors = np.unique(np.concatenate([guarantors, arrays.support_obligor]).astype(np.int64))
    gate_obligors = gate_obligors[gate_obligors >= 0]
    return np.unique(arrays.ob_group[gate_obligors])


def _group_tilt(
    hit_groups: np.ndarray, hit_w: np.ndarray, size: np.ndarray, gates: np.ndarray | None = None
) -> np.ndarray:
    """Per group, the log-odds change from its mean conditional default probability to its
    default frequency on the pilot paths where the target lost (both weighted back to the
    model), bounded to [0, 6].

    The pilot holds little information: ``h`` effective loss paths. Each group's frequency is
    shrunk towards its conditional probability with :data:`TILT_PRIOR` pseudo-observations, and
    only the ``h / HITS_PER_TILT`` groups with the strongest evidence keep a tilt: a pool with a
    group per obligor and a few dozen pilot losses gets a tilt for the guarantor those losses
    share, not a thousand tilts fitted to noise. The ``gates`` (groups of guarantors and support
    providers, a handful at most) are always fitted: a loss that needs one of their defaults is
    what the tilt is for.
    """
    n = len(size)
    total = hit_w.sum()
    if not total > 0:
        return np.zeros(n)
    h = kish_ess(hit_w)  # effective number of pilot loss paths
    budget = int(h // HITS_PER_TILT)
    gates = np.zeros(0, dtype=np.int64) if gates is None else gates
    if budget < 1 and len(gates) == 0:
        return np.zeros(n)
    freq = (hit_w[:, None] * hit_groups[:, :n]).sum(axis=0) / (total * np.maximum(size, 1.0))
    cond = (hit_w[:, None] * hit_groups[:, n:]).sum(axis=0) / total
    cond = np.clip(cond, 1e-9, 1.0 - 1e-9)
    trials = h * np.maximum(size, 1.0)  # obligor-paths behind each group's frequency
    freq = np.clip((freq * trials + TILT_PRIOR * cond) / (trials + TILT_PRIOR), 1e-9, 1.0 - 1e-9)
    tilt = np.clip(np.log(freq / (1.0 - freq)) - np.log(cond / (1.0 - cond)), 0.0, 6.0)
    # evidence: the tilt times the square root of the obligor-paths behind it
    evidence = tilt * np.sqrt(trials)
    evidence[gates] = -np.inf  # gates are fitted besides the budget, not within it
    keep = np.argsort(-evidence, kind="stable")[:budget]
    out = np.zeros(n)
    out[keep] = tilt[keep]
    out[gates] = tilt[gates]
    return out


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


def describe(sampling: Sampling) -> str:
    """A sampling in a few words ("plain sampling", "a factor shift and a count twist", ...)."""
    if sampling.method != "importance":
        return "plain sampling"
    parts = ["a factor shift"]
    if sampling.twist > 0.0:
        parts.append(f"a count twist towards {sampling.twist:.1f} defaulters")
    if sampling.tilt is not None and np.any(np.asarray(sampling.tilt) != 0.0):
        parts.append(f"tilts of {int(np.count_nonzero(sampling.tilt))} obligor group(s)")
    return " and ".join(parts)


RunMain = Callable[[Sampling], tuple[Any, Diagnostics]]


def run_checked(sampling: Sampling, run: RunMain) -> tuple[Sampling, Any]:
    """Run the main paths under ``sampling`` and check the weights on the target tranche's
    losses; while they are degenerate (see :attr:`Diagnostics.degenerate`) or make the target's
    estimate less precise than plain sampling would, run again under the next simpler sampling
    (:meth:`Sampling.simpler`) and record why in ``fallbacks``.

    Parameters
    ----------
    sampling : Sampling
    run : callable
        ``run(sampling)`` returning the main run's outcomes (whatever the caller keeps) and the
        diagnostics of the target tranche's losses on them (:func:`diagnose`).

    Returns
    -------
    (Sampling, outcomes)
        The sampling finally used (with its fallbacks) and its run's outcomes.
    """
    outcome, diag = run(sampling)
    # below a pilot's size the checks judge the number of paths, not the sampling: report only
    while sampling.method == "importance" and diag.paths >= PILOT_PATHS:
        worse = diag.hits > 0 and diag.se_vs_plain > SE_RATIO_LIMIT
        # no loss where the pilot promised at least ten (P(none) < 5e-5 if the promise held)
        missed = diag.hits == 0 and diag.paths * sampling.hit_rate >= 10.0
        if not (diag.degenerate or worse or missed):
            break
        simpler = sampling.simpler()
        if simpler is None:
            break
        problems = "; ".join(diag.problems)
        note = f"{describe(sampling)} failed on the main run ({problems}): ran again with {describe(simpler)}"
        sampling = replace(
            simpler, fallbacks=(*sampling.fallbacks, note), reason=f"{sampling.reason}; {note}"
        )
        outcome, diag = run(sampling)
    return sampling, outcome
