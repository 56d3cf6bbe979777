"""Monte Carlo of a deal: ``ipabs.simulate(deal, paths=..., seed=...)``."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ipabs.analytics import metrics
from ipabs.analytics.importance import (
    LOSS_EPS,
    Sampling,
    choose_sampling,
    run_checked,
    target_tranche,
    variance_reduction,
)
from ipabs.analytics.tables import LEVELS as QUANTILES
from ipabs.analytics.weights import diagnose
from ipabs.api import _model
from ipabs.cluster import active_client, block_bounds, using, worker_count
from ipabs.console import ProgressBar
from ipabs.deal.load import LoadedDeal
from ipabs.deal.risk import RiskModel
from ipabs.engine.compile import CompiledModel
from ipabs.engine.layout import allocate_tables
from ipabs.errors import IpabsError
from ipabs.io import check_memory, json_value, write_tables
from ipabs.risk.model import RiskArrays, compile_risk
from ipabs.risk.montecarlo_numba_fns import (
    O_LOSS,
    O_WAL,
    O_YIELD,
    P_DEFAULT_RATE,
    P_DEFAULTS,
    P_LOSS_RATE,
    P_WEIGHT,
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
    allocate_scratch,
    simulate_chunk,
    simulate_path,
)

if TYPE_CHECKING:
    import pandas as pd

    from ipabs.report.charts import SimulationPlots
    from ipabs.results import RunResult


def _thread_count(n: int | None) -> int:
    cores = os.cpu_count() or 1
    if n is None:
        return cores
    if not 1 <= n <= 1024:
        raise IpabsError(f"threads must lie between 1 and 1024, got {n}")
    return n


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of a Monte Carlo run.

    Attributes
    ----------
    deal_name : str
    paths, seed : int
    tranche_outcomes : ndarray, shape (paths, N, len(TRANCHE_OUTCOMES))
    pool_outcomes : ndarray, shape (paths, len(POOL_OUTCOMES))
    tranche_summary : list of dict
        Per tranche: expected loss (share of original balance) with its standard error,
        probability of any loss with its standard error, expected WAL, mean yield (the rows
        of :attr:`tranches`).
    pool_summary : dict
        Expected loss (share of the original pool) with its standard error, loss quantiles,
        expected default rate and number of defaults (the row of :attr:`pool`).
    kept : dict
        Path index -> RunResult (full per-period tables) for the paths asked to keep.
    sampling : Sampling
        Plain or importance sampling, and the factor shift (see
        :mod:`ipabs.analytics.importance`); the likelihood-ratio weight of each path is
        :attr:`weights`, and every summary and metric uses it.
    original_balances : ndarray
        Each tranche's original balance.
    """

    deal_name: str
    tranche_names: list[str]
    paths: int
    seed: int
    tranche_outcomes: np.ndarray
    pool_outcomes: np.ndarray
    tranche_summary: list[dict[str, Any]]
    pool_summary: dict[str, Any]
    kept: dict[int, RunResult] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    sampling: Sampling | None = None
    original_balances: np.ndarray | None = None

    @property
    def plot(self) -> SimulationPlots:
        """Charts of this run (matplotlib figures; see docs/charts.md), e.g.
        ``result.plot.loss_distribution()``."""
        from ipabs.report.charts import SimulationPlots

        return SimulationPlots(self)

    @property
    def weights(self) -> np.ndarray:
        """Likelihood-ratio weight of each path (all ones under plain sampling)."""
        return self.pool_outcomes[:, P_WEIGHT]

    @property
    def warnings(self) -> list[str]:
        """Every estimate that cannot be trusted as printed, and every fallback of the sampling,
        in words (empty when all checks passed; see :mod:`ipabs.analytics.weights`)."""
        out = [] if self.sampling is None else list(self.sampling.fallbacks)
        for row in self.tranche_summary:
            if row.get("diagnostics"):
                out.append(f"{row['tranche']}: {row['diagnostics']}")
        return out

    def metrics(self) -> pd.DataFrame:
        """Every tranche and pool metric with its standard error and 95% interval; see
        :func:`ipabs.analytics.tables.risk_metrics`."""
        from ipabs.analytics.tables import risk_metrics

        return risk_metrics(self)

    def default_count_distribution(self) -> pd.DataFrame:
        """``P(N = k)`` for each number of defaults; see
        :func:`ipabs.analytics.tables.default_count_distribution`."""
        from ipabs.analytics.tables import default_count_distribution

        return default_count_distribution(self)

    @cached_property
    def tranches(self) -> pd.DataFrame:
        """Per-tranche summary, one row per tranche (index ``tranche``)."""
        import pandas as pd

        return pd.DataFrame(self.tranche_summary).set_index("tranche")

    @cached_property
    def pool(self) -> pd.DataFrame:
        """Pool summary, one row."""
        import pandas as pd

        return pd.DataFrame([self.pool_summary])

    def path_frame(self) -> pd.DataFrame:
        """One row per path: pool outcomes, then ``TRANCHE.OUTCOME`` columns."""
        import pandas as pd

        cols: dict[str, Any] = {"path": np.arange(self.paths, dtype=np.int64)}
        for i, name in enumerate(POOL_OUTCOMES):
            cols[f"pool.{name}"] = self.pool_outcomes[:, i]
        for k, tranche in enumerate(self.tranche_names):
            for i, name in enumerate(TRANCHE_OUTCOMES):
                cols[f"{tranche}.{name}"] = self.tranche_outcomes[:, k, i]
        return pd.DataFrame(cols)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``tranches`` (list of objects with ``name``) and ``pool``."""

        tranches = [
            {"name": r["tranche"], **{k: json_value(v) for k, v in r.items() if k != "tranche"}}
            for r in self.tranche_summary
        ]
        pool = {k: json_value(v) for k, v in self.pool_summary.items()}
        metrics_rows = [{k: json_value(v) for k, v in r.items()} for r in self.metrics().to_dict("records")]
        return {
            "deal": self.deal_name,
            "paths": self.paths,
            "seed": self.seed,
            "sampling": self.sampling.to_dict() if self.sampling is not None else None,
            "tranches": tranches,
            "pool": pool,
            "metrics": metrics_rows,
            "estimators": ESTIMATORS,
            "warnings": self.warnings,
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write per-path outcomes (``paths.parquet``) and the summaries (CSV) into ``out_dir``;
        kept paths go to ``path_<i>/``. The files appear all together or not at all, even
        when the run is interrupted (see :func:`ipabs.io.write_tables`)."""
        files: dict[str, Any] = {
            "paths.parquet": self.path_frame(),
            "tranches.csv": self.tranches.reset_index(),
            "pool.csv": self.pool,
            "metrics.csv": self.metrics(),
        }
        for i, result in self.kept.items():
            files.update({f"path_{i}/{name}": frame for name, frame in result.files().items()})
        return write_tables(out_dir, files)


def _summaries(
    model: CompiledModel, tr: np.ndarray, pool: np.ndarray
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    w = pool[:, P_WEIGHT]
    rows = []
    for k, name in enumerate(model.tranche_names):
        orig = float(model.cd.tr_balance[k])
        scale = 1.0 / orig if orig > 0 else math.nan
        loss = tr[:, k, O_LOSS] * scale
        hit = (tr[:, k, O_LOSS] > LOSS_EPS).astype(np.float64)
        el = metrics.mean(loss, w)
        pl = metrics.mean(hit, w)
        ew = metrics.conditional_mean(tr[:, k, O_WAL], w)
        my = metrics.conditional_mean(tr[:, k, O_YIELD], w)
        rows.append(
            {
                "tranche": name,
                "original_balance": orig,
                "expected_loss": el.value,
                "expected_loss_se": el.se,
                "probability_of_loss": pl.value,
                "probability_of_loss_se": pl.se,
                "expected_wal_years": ew.value,
                "expected_wal_se": ew.se,
                "mean_yield": my.value,
                "mean_yield_se": my.se,
                "expected_loss_vrf": variance_reduction(loss, w),
                **_diagnostic_columns(loss, hit, w),
            }
        )
    loss = pool[:, P_LOSS_RATE]
    el = metrics.mean(loss, w)
    row = {"expected_loss": el.value, "expected_loss_se": el.se}
    if np.all(w == 1.0):  # order does not matter to plain estimates: sort once, not six times
        loss, w = np.sort(loss), None
    for q in QUANTILES:
        row[f"loss_q{q * 100:g}"] = metrics.quantile(loss, q, w).value
    for q in QUANTILES:
        row[f"expected_shortfall_{q * 100:g}"] = metrics.expected_shortfall(loss, q, w).value
    w = pool[:, P_WEIGHT]
    mw = metrics.mean(np.ones(len(w)), w)  # the weights' own mean: one, within its error
    row.update({"mean_weight": mw.value, "mean_weight_se": mw.se})
    dr = metrics.mean(pool[:, P_DEFAULT_RATE], w)
    nd = metrics.mean(pool[:, P_DEFAULTS], w)
    row.update(
        {
            "expected_default_rate": dr.value,
            "expected_default_rate_se": dr.se,
            "expected_defaults": nd.value,
            "expected_defaults_se": nd.se,
        }
    )
    return rows, row


ESTIMATORS = {
    "expected_loss": "mean(w x) over all paths (unbiased; so are probability_of_loss and pool means)",
    "mean_yield": "sum(w x) / sum(w) over paths with a yield (self-normalised)",
    "expected_wal_years": "sum(w x) / sum(w) over paths that repay principal (self-normalised)",
    "note": "under importance sampling the two families differ by the factor mean(w) "
    "(pool.mean_weight, one within pool.mean_weight_se); under plain sampling w = 1",
}


def _diagnostic_columns(loss: np.ndarray, hit: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """How far a tranche's expected loss and loss probability can be trusted (see
    :mod:`ipabs.analytics.weights`): the expected loss's diagnostics, and every problem of
    either estimate in words (empty when none)."""
    el = diagnose(np.nan_to_num(loss), w, "its expected loss")
    pl = diagnose(hit, w, "its loss probability")
    problems = list(dict.fromkeys(el.problems + pl.problems))
    return {
        "loss_paths": el.hits,
        "hit_ess": el.hit_ess,
        "max_weight_share": el.max_share,
        "se_vs_plain": el.se_vs_plain,
        "reliable": not problems,
        "diagnostics": "; ".join(problems),
    }


def run_path(
    model: CompiledModel, arrays: RiskArrays, seed: int, path: int, sampling: Sampling | None = None
) -> RunResult:
    """Full per-period tables of one Monte Carlo path (bit-identical to its part of a run made
    with ``sampling``, default plain)."""
    from ipabs.results import build_result

    if sampling is None:
        sampling = Sampling("plain", np.zeros(arrays.n_factors))
    scratch = allocate_scratch(model.cd, arrays)
    scratch.shift[:] = sampling.shift
    scratch.g_tilt[:] = sampling.group_tilt(arrays.g_threshold.shape[0])
    scratch.sampling[0] = sampling.twist
    scratch.sampling[1] = sampling.alpha
    tables = allocate_tables(model.cd)
    simulate_path(model.cd, arrays, seed, 0, path, scratch, tables, True)
    return build_result(model, f"path {path} (seed {seed})", scratch.coll_pool.copy(), tables)


def simulate(
    deal: LoadedDeal | CompiledModel | str | Path,
    paths: int = 10_000,
    seed: int = 0,
    *,
    threads: int | None = None,
    risk: RiskModel | None = None,
    keep: Iterable[int] = (),
    batch_size: int | None = None,
    progress: bool | None = False,
    progress_stream: TextIO | None = None,
    importance_sampling: bool | str = False,
    importance_tranche: str | None = None,
    sampling: Sampling | None = None,
    client: Any = None,
) -> SimulationResult:
    """Monte Carlo of a deal's waterfall under its risk model.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
    paths : int
        Number of paths.
    seed : int
        Path *i* is a pure function of (seed, i): results do not depend on ``threads`` or
        ``batch_size``.
    threads : int, optional
        Threads to use (default: one per core).
    risk : RiskModel, optional
        Replaces the deal's ``risk`` section.
    keep : iterable of int
        Path indices whose full per-period tables to keep (``result.kept``).
    batch_size : int, optional
        Paths per kernel call (progress is reported between calls).
    progress : bool or None
        Show a progress bar with the time left (None: only when the stream is a terminal).
    progress_stream : text stream, optional
        Where to draw it (default standard error).
    importance_sampling : bool or "auto"
        Shift the systematic factors' mean towards the losses of ``importance_tranche`` and
        weight each path by its likelihood ratio (see :mod:`ipabs.analytics.importance`).
        ``"auto"``: only when a pilot run of plain sampling sees too few of its losses.
    importance_tranche : str, optional
        The tranche whose losses importance sampling aims at (default: the most senior).
    sampling : Sampling, optional
        Reuse the sampling of an earlier run (``result.sampling``) instead of choosing one:
        runs of changed structures then share their random numbers path by path.
    client : distributed.Client, optional
        Run the paths on this Dask cluster (default: the one made active by
        :func:`ipabs.cluster.connect`, else this process). The result is the same, bit for
        bit (docs/cluster.md).

    Returns
    -------
    SimulationResult

    Examples
    --------
    >>> import ipabs
    >>> result = ipabs.simulate("scenarios/caohejing_ip_pledge.yaml", paths=20_000, seed=1)  # doctest: +SKIP
    >>> result.tranches[["expected_loss", "expected_loss_se", "probability_of_loss"]]  # doctest: +SKIP
    """
    with using(client) if client is not None else nullcontext():
        return _simulate(
            deal,
            paths,
            seed,
            threads=threads,
            risk=risk,
            keep=keep,
            batch_size=batch_size,
            progress=progress,
            progress_stream=progress_stream,
            importance_sampling=importance_sampling,
            importance_tranche=importance_tranche,
            sampling=sampling,
        )


def outcome_bytes(model: CompiledModel, paths: int, *, writing: bool = False) -> float:
    """Bytes a run of ``paths`` paths keeps: each tranche's outcomes, the pool's outcomes and
    the systematic factors of every path, a few transient columns for the summaries, and with
    ``writing`` the per-path table and its Parquet copy."""
    industries = {x for x in model.obligors.industry if x}
    regions = {x for x in model.obligors.region if x}
    outcomes = len(model.tranche_names) * len(TRANCHE_OUTCOMES) + len(POOL_OUTCOMES)
    columns = outcomes + 1 + len(industries) + len(regions) + 3
    if writing:
        columns += 2 * (outcomes + 1)
    return 8.0 * columns * paths


def check_outcomes_fit(model: CompiledModel, paths: int, what: str, *, writing: bool = False) -> None:
    """Refuse, before it starts, a run whose per-path outcomes cannot fit in the memory
    available (:func:`outcome_bytes`).

    Raises
    ------
    IpabsError
        Saying how much memory the run needs, how much there is, and what to do.
    """
    check_memory(
        outcome_bytes(model, paths, writing=writing),
        what,
        "give fewer paths; the standard errors shrink with the square root of the number of paths",
    )


def _simulate(
    deal: LoadedDeal | CompiledModel | str | Path,
    paths: int,
    seed: int,
    *,
    threads: int | None,
    risk: RiskModel | None,
    keep: Iterable[int],
    batch_size: int | None,
    progress: bool | None,
    progress_stream: TextIO | None,
    importance_sampling: bool | str,
    importance_tranche: str | None,
    sampling: Sampling | None,
) -> SimulationResult:
    if paths < 1:
        raise IpabsError(f"paths must be at least 1, got {paths}")
    if not 0 <= seed < 2**63:
        raise IpabsError(f"seed must lie in [0, 2^63), got {seed}")
    if batch_size is not None and batch_size < 1:
        raise IpabsError(f"batch_size must be at least 1, got {batch_size}")
    model = _model(deal)
    check_outcomes_fit(model, paths, f"paths={paths:,}")
    arrays = compile_risk(model, risk)
    keep = sorted(set(int(i) for i in keep))
    bad = [i for i in keep if not 0 <= i < paths]
    if bad:
        raise IpabsError(f"paths to keep must lie in [0, {paths}), got {bad}")
    n_threads = _thread_count(threads)
    start = time.perf_counter()
    chosen = sampling is None
    if sampling is None:
        sampling = choose_sampling(
            model, arrays, seed, importance_sampling, importance_tranche, n_threads, _run_paths
        )
    elif len(sampling.shift) != arrays.n_factors:
        raise IpabsError(
            f"the sampling given has {len(sampling.shift)} factors; this risk model has {arrays.n_factors}"
        )

    def main_run(how: Sampling) -> tuple[np.ndarray, np.ndarray]:
        with ProgressBar(paths, progress_stream, progress, what="paths", description="Monte Carlo") as bar:
            tr, pool, _, _ = _run_paths(model, arrays, seed, 0, paths, how, n_threads, batch_size, bar.update)
        return tr, pool

    if chosen and sampling.method == "importance":
        # a sampling chosen here falls back to a simpler one when its weights fail on the
        # main run; one given by the caller is kept (its runs share random numbers) and only
        # diagnosed
        k = target_tranche(model, sampling.tranche)
        sampling, tr, pool = run_checked(sampling, main_run, k, model.tranche_names[k])
    else:
        tr, pool = main_run(sampling)
    elapsed = time.perf_counter() - start
    tranche_summary, pool_summary = _summaries(model, tr, pool)
    kept = {i: run_path(model, arrays, seed, i, sampling) for i in keep}
    return SimulationResult(
        deal_name=model.spec.deal.name,
        tranche_names=list(model.tranche_names),
        paths=paths,
        seed=seed,
        tranche_outcomes=tr,
        pool_outcomes=pool,
        tranche_summary=tranche_summary,
        pool_summary=pool_summary,
        kept=kept,
        elapsed_seconds=elapsed,
        sampling=sampling,
        original_balances=model.cd.tr_balance.copy(),
    )


def _run_paths(
    model: CompiledModel,
    arrays: RiskArrays,
    seed: int,
    stream: int,
    paths: int,
    sampling: Sampling,
    n_threads: int,
    batch_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    group_defaults: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paths 0 .. paths - 1 of (seed, stream) under ``sampling``: tranche outcomes, pool
    outcomes, each path's systematic factors and (with ``group_defaults``) each obligor
    group's number of defaulters by the horizon and conditional default probability."""
    n_tr = len(model.tranche_names)
    tr = np.empty((paths, n_tr, len(TRANCHE_OUTCOMES)))
    pool = np.empty((paths, len(POOL_OUTCOMES)))
    factors = np.empty((paths, arrays.n_factors))
    groups = np.empty((paths, 2 * arrays.g_threshold.shape[0] if group_defaults else 0))
    shift = np.ascontiguousarray(sampling.shift, dtype=np.float64)
    tilt = np.ascontiguousarray(sampling.group_tilt(arrays.g_threshold.shape[0]), dtype=np.float64)
    client = active_client()
    if client is not None:  # ---- on a Dask cluster
        args = (seed, stream, shift, tilt, sampling.twist, sampling.alpha, groups.shape[1])
        bounds = block_bounds(paths, worker_count(client), batch_size)
        _run_on_cluster(client, model, arrays, args, bounds, (tr, pool, factors, groups), on_progress)
        return tr, pool, factors, groups
    # at least twenty chunks (four per thread on larger machines) for progress and balance,
    # none under a thousand paths
    size = batch_size or max(1_000, math.ceil(paths / max(20, 4 * n_threads)))

    def chunk(lo: int, hi: int) -> None:
        simulate_chunk(
            model.cd,
            arrays,
            seed,
            stream,
            lo,
            shift,
            tilt,
            sampling.twist,
            sampling.alpha,
            tr[lo:hi],
            pool[lo:hi],
            factors[lo:hi],
            groups[lo:hi],
        )

    # every chunk is queued at once, so no thread waits for another between batches; each
    # writes its own rows, so the order in which they finish does not matter
    bounds = [(lo, min(lo + size, paths)) for lo in range(0, paths, size)]
    with ThreadPoolExecutor(max_workers=n_threads) as executor:
        futures = {executor.submit(chunk, lo, hi): hi - lo for lo, hi in bounds}
        done = 0
        try:
            for future in as_completed(futures):
                future.result()
                done += futures[future]
                if on_progress is not None:
                    on_progress(done)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return tr, pool, factors, groups


# ---- on a Dask cluster (docs/cluster.md)


def _block(
    cd: Any, arrays: RiskArrays, args: tuple[Any, ...], lo: int, hi: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paths ``lo .. hi - 1`` on a worker: the rows of :func:`_run_paths`'s four arrays."""
    seed, stream, shift, tilt, twist, alpha, group_columns = args
    n = hi - lo
    tr = np.empty((n, cd.tr_balance.shape[0], len(TRANCHE_OUTCOMES)))
    pool = np.empty((n, len(POOL_OUTCOMES)))
    factors = np.empty((n, arrays.n_factors))
    groups = np.empty((n, group_columns))
    simulate_chunk(cd, arrays, seed, stream, lo, shift, tilt, twist, alpha, tr, pool, factors, groups)
    return lo, tr, pool, factors, groups


def _run_on_cluster(
    client: Any,
    model: CompiledModel,
    arrays: RiskArrays,
    args: tuple[Any, ...],
    bounds: list[tuple[int, int]],
    out: tuple[np.ndarray, ...],
    on_progress: Callable[[int], None] | None,
) -> None:
    """Run the blocks on the cluster and write each one's rows into ``out`` as it arrives.

    The kernel is compiled here first, so that workers on this machine load it from the
    on-disk cache instead of each compiling it. A block whose worker dies is run again by the
    scheduler (its result is the same: paths depend on (seed, path) only); each block is
    written once, at its own rows.
    """
    from distributed import as_completed as arrived

    _block(model.cd, arrays, args, 0, 1)  # compile (or load) the kernel in this process
    # a list scatters each item whole, under keys of its own (a run never reuses another's)
    cd, ra = client.scatter([model.cd, arrays], broadcast=True, hash=False)
    futures = [client.submit(_block, cd, ra, args, lo, hi, pure=False) for lo, hi in bounds]
    done = 0
    try:
        for future in arrived(futures):
            lo, *parts = future.result()
            hi = lo + parts[0].shape[0]
            for target, part in zip(out, parts, strict=True):
                target[lo:hi] = part
            future.release()
            done += hi - lo
            if on_progress is not None:
                on_progress(done)
    finally:  # on an error or an interrupt: the blocks still queued are dropped
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
