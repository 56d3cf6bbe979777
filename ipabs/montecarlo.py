"""Monte Carlo of a deal: ``ipabs.simulate(deal, paths=..., seed=...)``."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ipabs.analytics.accumulate import (
    BLOCK,
    Accumulator,
    DiskQuantiles,
    MemoryQuantiles,
    RunSums,
    block_of_sums,
    metric_rows,
    pool_summary,
    quantile_column_values,
    quantile_columns,
    tranche_summary,
)
from ipabs.analytics.importance import (
    Sampling,
    choose_sampling,
    posterior_sampling,
    run_checked,
    target_tranche,
)
from ipabs.analytics.selection import DiskColumns
from ipabs.analytics.weights import Diagnostics
from ipabs.api import _model
from ipabs.cluster import active_client, block_bounds, using, worker_count
from ipabs.console import ProgressBar
from ipabs.deal.load import LoadedDeal
from ipabs.deal.risk import RiskModel
from ipabs.engine.compile import CompiledModel
from ipabs.engine.layout import allocate_tables
from ipabs.errors import IpabsError
from ipabs.io import available_memory, check_memory, json_value, write_tables
from ipabs.risk.model import RiskArrays, compile_risk
from ipabs.risk.montecarlo_numba_fns import (
    P_WEIGHT,
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
    allocate_scratch,
    set_sampling,
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
    tranche_outcomes : ndarray, shape (paths, N, len(TRANCHE_OUTCOMES)), or None
    pool_outcomes : ndarray, shape (paths, len(POOL_OUTCOMES)), or None
        Per-path outcomes; None when the run streamed its paths (``outcomes="stream"``, or
        ``"auto"`` beyond memory): it then kept only its summaries, in bounded memory.
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
    sums : RunSums
        The merged sums every summary comes from (:mod:`ipabs.analytics.accumulate`).
    """

    deal_name: str
    tranche_names: list[str]
    paths: int
    seed: int
    tranche_outcomes: np.ndarray | None
    pool_outcomes: np.ndarray | None
    tranche_summary: list[dict[str, Any]]
    pool_summary: dict[str, Any]
    kept: dict[int, RunResult] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    sampling: Sampling | None = None
    original_balances: np.ndarray | None = None
    sums: RunSums | None = None
    metric_table: list[dict[str, Any]] | None = None  # a streamed run's metrics, computed as it ended
    written: tuple[Path, ...] = ()  # the files simulate(out=...) wrote

    @property
    def streamed(self) -> bool:
        """True when the run kept no per-path outcomes (only its summaries)."""
        return self.pool_outcomes is None

    def per_path(self, what: str = "this") -> tuple[np.ndarray, np.ndarray]:
        """The per-path tranche and pool outcomes (``what``: what needs them, for the message).

        Raises
        ------
        IpabsError
            When the run streamed its paths without keeping them, saying what to do.
        """
        if self.tranche_outcomes is None or self.pool_outcomes is None:
            raise IpabsError(
                f"{what} needs the per-path outcomes, which this run of {self.paths:,} paths streamed "
                "without keeping (outcomes='stream', or 'auto' beyond memory): run fewer paths with "
                "outcomes='keep', or give out= to write them to disk as the run goes"
            )
        return self.tranche_outcomes, self.pool_outcomes

    @property
    def plot(self) -> SimulationPlots:
        """Charts of this run (matplotlib figures; see docs/charts.md), e.g.
        ``result.plot.loss_distribution()``."""
        from ipabs.report.charts import SimulationPlots

        return SimulationPlots(self)

    @property
    def weights(self) -> np.ndarray:
        """Likelihood-ratio weight of each path (all ones under plain sampling)."""
        return self.per_path("the paths' weights")[1][:, P_WEIGHT]

    @property
    def warnings(self) -> list[str]:
        """Every estimate that cannot be trusted as printed, and every fallback of the sampling,
        in words (empty when all checks passed; see :mod:`ipabs.analytics.weights`)."""
        out = [] if self.sampling is None else list(self.sampling.fallbacks)
        for row in self.tranche_summary:
            if row.get("diagnostics"):
                out.append(f"{row['tranche']}: {row['diagnostics']}")
            p, se = row["probability_of_loss"], row["probability_of_loss_se"]
            if p > 1.0:  # mean(w x) with weights whose sample mean is above 1
                out.append(
                    f"{row['tranche']}: its loss probability reads {100 * p:.2f}% ± {100 * se:.2f}%, above "
                    "100%: the paths' weights average more than 1 on this sample (pool.mean_weight); "
                    "read it as 100% within its standard error, or run more paths"
                )
        return out

    def metrics(self) -> pd.DataFrame:
        """Every tranche and pool metric with its standard error and 95% interval; see
        :func:`ipabs.analytics.tables.risk_metrics` (the same figures, from the run's sums)."""
        return self._metric_frame.copy()

    @cached_property
    def _metric_frame(self) -> pd.DataFrame:
        import pandas as pd

        from ipabs.analytics.tables import risk_metrics

        if self.metric_table is not None:
            rows = self.metric_table
        elif self.sums is not None and self.tranche_outcomes is not None and self.pool_outcomes is not None:
            source = MemoryQuantiles(self.tranche_outcomes, self.pool_outcomes)
            rows = metric_rows(self.sums, source, self.tranche_names, self._balances)
        else:
            return risk_metrics(self)
        frame = pd.DataFrame(rows)
        frame["diagnostics"] = frame["diagnostics"].fillna("")
        return frame

    @property
    def _balances(self) -> np.ndarray:
        return np.asarray(self.original_balances, dtype=np.float64)

    def default_count_distribution(self) -> pd.DataFrame:
        """``P(N = k)`` for each number of defaults; see
        :func:`ipabs.analytics.tables.default_count_distribution`."""
        import pandas as pd

        from ipabs.analytics.tables import default_count_distribution

        if self.sums is None:
            return default_count_distribution(self)
        return pd.DataFrame(
            self.sums.default_count_rows(), columns=["defaults", "probability", "se", "ci_low", "ci_high"]
        )

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

        tr, pool = self.per_path("the per-path table")
        return pd.DataFrame(path_columns(self.tranche_names, 0, tr, pool))

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
        when the run is interrupted (see :func:`ipabs.io.write_tables`). A streamed run has no
        per-path outcomes left to write: give ``out=`` to :func:`simulate` instead, which
        writes ``paths.parquet`` a block at a time as the paths come."""
        return write_tables(out_dir, self._files())

    def _files(self) -> dict[str, Any]:
        files: dict[str, Any] = {} if self.streamed else {"paths.parquet": self.path_frame()}
        files |= {
            "tranches.csv": self.tranches.reset_index(),
            "pool.csv": self.pool,
            "metrics.csv": self.metrics(),
        }
        for i, result in self.kept.items():
            files.update({f"path_{i}/{name}": frame for name, frame in result.files().items()})
        return files


def path_columns(names: list[str], first: int, tr: np.ndarray, pool: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of the per-path table (``paths.parquet``) for paths ``first ..``."""
    cols: dict[str, np.ndarray] = {"path": np.arange(first, first + len(pool), dtype=np.int64)}
    for i, name in enumerate(POOL_OUTCOMES):
        cols[f"pool.{name}"] = pool[:, i]
    for k, tranche in enumerate(names):
        for i, name in enumerate(TRANCHE_OUTCOMES):
            cols[f"{tranche}.{name}"] = tr[:, k, i]
    return cols


ESTIMATORS = {
    "expected_loss": "mean(w x) over all paths (unbiased; so are probability_of_loss and pool means)",
    "mean_yield": "sum(w x) / sum(w) over paths with a yield (self-normalised)",
    "expected_wal_years": "sum(w x) / sum(w) over paths that repay principal (self-normalised)",
    "note": "under importance sampling the two families differ by the factor mean(w) "
    "(pool.mean_weight, one within pool.mean_weight_se); under plain sampling w = 1",
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
    shift = np.ascontiguousarray(sampling.shift, dtype=np.float64)
    tilt = np.ascontiguousarray(sampling.group_tilt(arrays.g_threshold.shape[0]), dtype=np.float64)
    set_sampling(scratch, shift, tilt, float(sampling.twist), float(sampling.alpha))
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
    outcomes: str = "keep",
    out: str | Path | None = None,
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
    outcomes : {"keep", "stream", "auto"}
        ``"keep"``: keep every path's outcomes in memory (refused before it starts when they
        cannot fit). ``"stream"``: keep only the summaries, merged a block of paths at a time,
        in memory that does not grow with the paths (the quantiles' few columns go to a
        temporary folder); the figures are those a kept run gives, to the last few bits
        (docs/scale.md). ``"auto"``: keep when the outcomes take under half the memory
        available, else stream.
    out : str or Path, optional
        Also write the run's files into this folder (as :meth:`SimulationResult.write`); a
        streamed run writes ``paths.parquet`` a block at a time as the paths come.

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
            outcomes=outcomes,
            out=out,
        )


OUTCOMES = ("keep", "stream", "auto")
KEEP_SHARE = 0.5  # "auto" keeps per-path outcomes that take at most this share of free memory
STREAM_WINDOW = 2  # blocks in flight per thread when streaming


def outcome_mode(model: CompiledModel, paths: int, outcomes: str, what: str, *, writing: bool = False) -> str:
    """``"keep"`` or ``"stream"`` for a run asked for with ``outcomes`` (see :func:`simulate`),
    checked before it starts: kept outcomes must fit in memory, streamed columns on disk.

    Raises
    ------
    IpabsError
        For an unknown choice, or a run that cannot fit, saying what to do.
    """
    if outcomes not in OUTCOMES:
        raise IpabsError(f"outcomes must be one of {', '.join(OUTCOMES)}; got {outcomes!r}")
    mode = outcomes
    if outcomes == "auto":
        available = available_memory()
        fits = available is None or outcome_bytes(model, paths, writing=writing) <= KEEP_SHARE * available
        mode = "keep" if fits else "stream"
    if mode == "keep":
        check_outcomes_fit(model, paths, what, writing=writing, streamable=True)
    else:
        check_stream_fits(model, paths, what, writing=writing)
    return mode


def stream_bytes(model: CompiledModel, n_threads: int) -> float:
    """Memory a streamed run holds whatever its number of paths: the blocks in flight
    (outcomes, factors and their per-path table) and the per-block sums."""
    outcomes = len(model.tranche_names) * len(TRANCHE_OUTCOMES) + len(POOL_OUTCOMES)
    per_path = 8.0 * (3 * outcomes + 16)
    return STREAM_WINDOW * max(n_threads, 1) * BLOCK * per_path


def check_stream_fits(model: CompiledModel, paths: int, what: str, *, writing: bool = False) -> None:
    """Refuse a streamed run whose quantile columns (and, when ``writing``, its per-path table,
    counted uncompressed) cannot fit in the temporary folder."""
    import shutil
    import tempfile

    need = DiskColumns.bytes_needed(len(quantile_columns(len(model.tranche_names))), paths)
    what_goes = "quantile columns"
    if writing:
        need += 8.0 * (1 + len(POOL_OUTCOMES) + len(model.tranche_names) * len(TRANCHE_OUTCOMES)) * paths
        what_goes = "quantile columns and per-path table"
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if need > free:
        raise IpabsError(
            f"{what} streams {need / 1e9:,.1f} GB of {what_goes} to the temporary folder "
            f"{tempfile.gettempdir()}, which has {free / 1e9:,.1f} GB free: give fewer paths, or set "
            "TMPDIR to a folder with more room"
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


def check_outcomes_fit(
    model: CompiledModel, paths: int, what: str, *, writing: bool = False, streamable: bool = False
) -> None:
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
        "give fewer paths"
        + (
            ", or stream them with outcomes='stream' (--outcomes stream), which keeps only the summaries"
            if streamable
            else ""
        )
        + "; the standard errors shrink with the square root of the number of paths",
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
    outcomes: str,
    out: str | Path | None,
) -> SimulationResult:
    if paths < 1:
        raise IpabsError(f"paths must be at least 1, got {paths}")
    if not 0 <= seed < 2**63:
        raise IpabsError(f"seed must lie in [0, 2^63), got {seed}")
    if batch_size is not None and batch_size < 1:
        raise IpabsError(f"batch_size must be at least 1, got {batch_size}")
    model = _model(deal)
    mode = outcome_mode(model, paths, outcomes, f"paths={paths:,}", writing=out is not None)
    arrays = compile_risk(model, risk)
    keep = sorted(set(int(i) for i in keep))
    bad = [i for i in keep if not 0 <= i < paths]
    if bad:
        raise IpabsError(f"paths to keep must lie in [0, {paths}), got {bad}")
    n_threads = _thread_count(threads)
    start = time.perf_counter()
    chosen = sampling is None
    if sampling is None and arrays.posterior == 1 and importance_sampling is not True:
        # ---- surveillance: the history moved the factors; draw them where it says they are
        name = model.tranche_names[target_tranche(model, importance_tranche)]
        sampling = posterior_sampling(arrays, name)
    elif sampling is None:
        sampling = choose_sampling(
            model, arrays, seed, importance_sampling, importance_tranche, n_threads, _run_paths
        )
    elif len(sampling.shift) != arrays.n_factors:
        raise IpabsError(
            f"the sampling given has {len(sampling.shift)} factors; this risk model has {arrays.n_factors}"
        )
    k = target_tranche(model, sampling.tranche)
    balances = model.balances.copy()
    streams: list[_Stream] = []

    def main_run(how: Sampling) -> tuple[Any, Diagnostics]:
        with ProgressBar(paths, progress_stream, progress, what="paths", description="Monte Carlo") as bar:
            if mode == "keep":
                tr, pool, _, _ = _run_paths(
                    model, arrays, seed, 0, paths, how, n_threads, batch_size, bar.update
                )
                sums = sums_of(balances, tr, pool, n_threads)
                outcome: Any = (tr, pool, sums)
            else:
                for old in streams:  # a fallback's rerun replaces the run before it
                    old.close()
                stream = _Stream(model, paths, out is not None)
                streams.append(stream)
                _stream_paths(model, arrays, seed, paths, how, n_threads, bar.update, stream)
                sums = stream.accumulator.result()
                outcome = (None, None, sums)
        return outcome, sums.diagnose(k, False, f"losses of {model.tranche_names[k]}")

    try:
        if chosen and sampling.method == "importance":
            # a sampling chosen here falls back to a simpler one when its weights fail on the
            # main run; one given by the caller is kept (its runs share random numbers) and only
            # diagnosed
            sampling, (tr, pool, sums) = run_checked(sampling, main_run)
        else:
            (tr, pool, sums), _ = main_run(sampling)
        elapsed = time.perf_counter() - start
        names = list(model.tranche_names)
        if mode == "keep":
            source: Any = MemoryQuantiles(tr, pool)
            table = None
        else:
            source = DiskQuantiles(streams[-1].columns, not sums.unit_weights)
            table = metric_rows(sums, source, names, balances)
        result = SimulationResult(
            deal_name=model.spec.deal.name,
            tranche_names=names,
            paths=paths,
            seed=seed,
            tranche_outcomes=tr,
            pool_outcomes=pool,
            tranche_summary=tranche_summary(sums, names, balances),
            pool_summary=pool_summary(sums, source),
            kept={i: run_path(model, arrays, seed, i, sampling) for i in keep},
            elapsed_seconds=elapsed,
            sampling=sampling,
            original_balances=balances,
            sums=sums,
            metric_table=table,
        )
        if out is not None:
            files = result._files()
            if mode == "stream":
                files["paths.parquet"] = streams[-1].paths_file.move_to
            result = replace(result, written=tuple(write_tables(out, files)))
        return result
    finally:
        for stream in streams:
            stream.close()


def sums_of(balances: np.ndarray, tr: np.ndarray, pool: np.ndarray, n_threads: int = 1) -> RunSums:
    """The merged sums of per-path outcomes in memory (blocks reduced on ``n_threads``)."""
    acc = Accumulator(balances)
    bounds = [(lo, min(lo + BLOCK, len(pool))) for lo in range(0, len(pool), BLOCK)]
    if n_threads > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(max_workers=n_threads) as executor:
            list(executor.map(lambda b: acc.add(b[0], tr[b[0] : b[1]], pool[b[0] : b[1]]), bounds))
    else:
        for lo, hi in bounds:
            acc.add(lo, tr[lo:hi], pool[lo:hi])
    return acc.result()


class _ParquetChunks:
    """``paths.parquet`` written a block at a time, in path order, into a temporary file that
    :meth:`move_to` puts in place (or :meth:`close` removes)."""

    def __init__(self, names: list[str]) -> None:
        import tempfile
        import threading

        fd, name = tempfile.mkstemp(prefix="ipabs-paths-", suffix=".parquet")
        os.close(fd)
        self.path = Path(name)
        self.names = names
        self.writer: Any = None
        self.next = 0
        self.pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.lock = threading.Lock()

    def add(self, first: int, tr: np.ndarray, pool: np.ndarray) -> None:
        """Paths ``first ..``: written now if they come next, else when the paths before them do."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self.lock:
            self.pending[first] = (tr, pool)
            while self.next in self.pending:
                tr, pool = self.pending.pop(self.next)
                table = pa.table(path_columns(self.names, self.next, tr, pool))
                if self.writer is None:
                    self.writer = pq.ParquetWriter(self.path, table.schema)
                self.writer.write_table(table)
                self.next += len(pool)

    def move_to(self, target: Path) -> None:
        """Finish the file and move it to ``target`` (a writer of :func:`ipabs.io.write_tables`)."""
        import shutil

        if self.writer is not None:
            self.writer.close()
            self.writer = None
        shutil.move(str(self.path), str(target))

    def close(self) -> None:
        """Drop the file (when it was not moved into place)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.path.unlink(missing_ok=True)


class _Stream:
    """Where a streamed run's blocks go: the sums, the quantile columns and, when writing,
    the per-path table."""

    def __init__(self, model: CompiledModel, paths: int, writing: bool) -> None:
        names = list(model.tranche_names)
        self.accumulator = Accumulator(model.balances)
        self.columns = DiskColumns(quantile_columns(len(names)), paths)
        self.paths_file = _ParquetChunks(names) if writing else None

    def take(self, first: int, reduced: tuple[Any, ...]) -> None:
        """A block of paths from ``first`` (a multiple of :data:`BLOCK`), as
        :func:`_reduce_block` returns it, from any thread."""
        sums, columns, tr, pool = reduced
        self.accumulator.put(first, sums)
        for name, values in columns.items():
            self.columns.write(name, first, values)
        if self.paths_file is not None:
            self.paths_file.add(first, tr, pool)

    def close(self) -> None:
        """Remove the temporary files."""
        self.columns.close()
        if self.paths_file is not None:
            self.paths_file.close()


def _stream_paths(
    model: CompiledModel,
    arrays: RiskArrays,
    seed: int,
    paths: int,
    sampling: Sampling,
    n_threads: int,
    on_progress: Callable[[int], None] | None,
    sink: _Stream,
) -> None:
    """Paths 0 .. paths - 1 into ``sink`` a block at a time, with at most
    :data:`STREAM_WINDOW` blocks per thread in flight (so memory does not grow with paths)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    shift = np.ascontiguousarray(sampling.shift, dtype=np.float64)
    tilt = np.ascontiguousarray(sampling.group_tilt(arrays.g_threshold.shape[0]), dtype=np.float64)
    args = (seed, 0, shift, tilt, sampling.twist, sampling.alpha, 0)
    bounds = [(lo, min(lo + BLOCK, paths)) for lo in range(0, paths, BLOCK)]
    # a worker reduces its block to sums and the quantile columns (and ships the outcomes only
    # when the per-path table is written)
    reduce = partial(_reduce_block, balances=model.balances, full=sink.paths_file is not None)
    client = active_client()
    if client is not None:  # ---- on a Dask cluster
        _run_on_cluster(client, model, arrays, args, bounds, sink.take, on_progress, work=reduce)
        return

    def block(lo: int, hi: int) -> int:
        first, *reduced = reduce(model.cd, arrays, args, lo, hi)
        sink.take(first, tuple(reduced))
        return hi - lo

    queue = iter(bounds)
    done = 0
    with ThreadPoolExecutor(max_workers=n_threads) as executor:
        running = {executor.submit(block, lo, hi) for lo, hi in _take(queue, STREAM_WINDOW * n_threads)}
        try:
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    done += future.result()
                    if on_progress is not None:
                        on_progress(done)
                running |= {executor.submit(block, lo, hi) for lo, hi in _take(queue, len(finished))}
        except BaseException:
            for future in running:
                future.cancel()
            raise


def _reduce_block(
    cd: Any, arrays: RiskArrays, args: tuple[Any, ...], lo: int, hi: int, *, balances: np.ndarray, full: bool
) -> tuple[Any, ...]:
    """Paths ``lo .. hi - 1`` (one block of sums) reduced where they ran: ``(lo, sums, quantile
    columns, tranche outcomes, pool outcomes)``, the outcomes only when ``full``."""
    _, tr, pool, _, _ = _block(cd, arrays, args, lo, hi)
    sums = block_of_sums(tr, pool, Accumulator(balances).scale)
    columns = quantile_column_values(tr, pool)
    return (lo, sums, columns, tr, pool) if full else (lo, sums, columns, None, None)


def _take(queue: Any, n: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        item = next(queue, None)
        if item is None:
            break
        out.append(item)
    return out


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
        out = (tr, pool, factors, groups)

        def put(lo: int, parts: tuple[np.ndarray, ...]) -> None:
            hi = lo + parts[0].shape[0]
            for target, part in zip(out, parts, strict=True):
                target[lo:hi] = part

        _run_on_cluster(client, model, arrays, args, bounds, put, on_progress)
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
    take: Callable[[int, tuple[Any, ...]], None],
    on_progress: Callable[[int], None] | None,
    work: Callable[..., tuple[Any, ...]] | None = None,
) -> None:
    """Run the blocks on the cluster and hand each one to ``take(first, (tranche outcomes,
    pool outcomes, factors, group counts))`` as it arrives.

    The kernel is compiled here first, so that workers on this machine load it from the
    on-disk cache instead of each compiling it. A block whose worker dies is run again by the
    scheduler (its result is the same: paths depend on (seed, path) only); each block is
    written once, at its own rows.
    """
    from distributed import as_completed as arrived

    _block(model.cd, arrays, args, 0, 1)  # compile (or load) the kernel in this process
    # a list scatters each item whole, under keys of its own (a run never reuses another's)
    cd, ra = client.scatter([model.cd, arrays], broadcast=True, hash=False)
    work = work or _block
    ends = dict(bounds)
    futures = [client.submit(work, cd, ra, args, lo, hi, pure=False) for lo, hi in bounds]
    done = 0
    try:
        for future in arrived(futures):
            lo, *parts = future.result()
            take(lo, tuple(parts))
            future.release()
            done += ends[lo] - lo
            if on_progress is not None:
                on_progress(done)
    finally:  # on an error or an interrupt: the blocks still queued are dropped
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
