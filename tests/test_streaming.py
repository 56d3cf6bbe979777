"""Streamed Monte Carlo: summaries from mergeable sums, exact quantiles from columns on disk.

The oracle is the per-path estimators of :mod:`ipabs.analytics.metrics` and
:mod:`ipabs.analytics.tables` (numpy on whole columns in memory): the sums merged block by
block, and the radix selection over columns read in chunks, must give their figures.
"""

from __future__ import annotations

import json
import math
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ipabs import montecarlo as mc
from ipabs.analytics import accumulate, metrics, selection, tables
from ipabs.cli import EXIT_INVALID, EXIT_OK, main
from ipabs.errors import IpabsError
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
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
)

ROOT = Path(__file__).resolve().parents[1]
DEAL = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"


class _Outcomes:
    """What :func:`ipabs.analytics.tables.risk_metrics` reads of a result."""

    def __init__(self, tr: np.ndarray, pool: np.ndarray, balances: np.ndarray) -> None:
        self.tranche_names = [f"t{k}" for k in range(tr.shape[1])]
        self.tranche_outcomes = tr
        self.pool_outcomes = pool
        self.original_balances = balances


def _fake_run(seed: int, n: int, weighted: bool) -> _Outcomes:
    """Outcomes with the awkward parts of real ones: many exact zeros, nan WALs and yields, a
    constant duration, a tranche of no balance, integer default counts."""
    rng = np.random.default_rng(seed)
    balances = np.array([100.0, 40.0, 0.0])
    tr = np.zeros((n, 3, len(TRANCHE_OUTCOMES)))
    for k, balance in enumerate(balances):
        loss = np.where(rng.random(n) < 0.08 * (k + 1), rng.random(n) * (balance or 1.0), 0.0)
        tr[:, k, O_LOSS] = loss
        tr[:, k, O_DISCOUNTED_LOSS] = 0.93 * loss
        tr[:, k, O_WAL] = np.where(rng.random(n) < 0.05, np.nan, 3.0 + 1e-4 * rng.normal(size=n))
        tr[:, k, O_YIELD] = np.where(rng.random(n) < 0.05, np.nan, 0.04 + 0.02 * rng.normal(size=n))
        tr[:, k, O_DURATION] = 2.5
    pool = np.zeros((n, len(POOL_OUTCOMES)))
    pool[:, P_LOSS_RATE] = np.where(rng.random(n) < 0.3, 0.1 * rng.random(n), 0.0)
    pool[:, P_DEFAULT_RATE] = 1.4 * pool[:, P_LOSS_RATE]
    pool[:, P_DEFAULTS] = rng.poisson(1.5, n)
    pool[:, P_WEIGHT] = rng.lognormal(0.0, 0.5, n) if weighted else 1.0
    return _Outcomes(tr, pool, balances)


def _close(a: pd.Series, b: pd.Series, rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=rtol, atol=1e-15, equal_nan=True)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block", [7, 256])
def test_merged_block_sums_give_the_per_path_estimators(
    weighted: bool, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accumulate, "BLOCK", block)
    run = _fake_run(3, 2_000, weighted)
    acc = accumulate.Accumulator(run.original_balances)
    # blocks arrive out of order, several at a time, as threads finish them
    starts = list(range(0, 2_000, 3 * block))[::-1]
    for lo in starts:
        acc.add(lo, run.tranche_outcomes[lo : lo + 3 * block], run.pool_outcomes[lo : lo + 3 * block])
    sums = acc.result()
    assert sums.paths == 2_000 and sums.unit_weights is not weighted
    expected = tables.risk_metrics(run)
    got = pd.DataFrame(
        accumulate.metric_rows(
            sums,
            accumulate.MemoryQuantiles(run.tranche_outcomes, run.pool_outcomes),
            run.tranche_names,
            run.original_balances,
        )
    )
    assert list(got.metric) == list(expected.metric)
    for column in ("estimate", "se", "ci_low", "ci_high"):
        _close(got[column], expected[column])
    assert list(got.diagnostics.fillna("")) == list(expected.diagnostics)
    counts = pd.DataFrame(sums.default_count_rows())
    reference = tables.default_count_distribution(run)
    assert list(counts.defaults) == list(reference.defaults)
    for column in ("probability", "se"):
        _close(counts[column], reference[column])
    # the variance reduction and the diagnostics of the summaries
    for k in range(2):
        scale = 1.0 / run.original_balances[k]
        loss = run.tranche_outcomes[:, k, O_LOSS] * scale
        w = run.pool_outcomes[:, P_WEIGHT]
        from ipabs.analytics.importance import variance_reduction
        from ipabs.analytics.weights import diagnose

        assert math.isclose(
            sums.variance_reduction(k, run.original_balances[k]), variance_reduction(loss, w), rel_tol=1e-9
        )
        d, e = sums.diagnose(k, False, "x"), diagnose(loss, w, "x")
        assert (d.hits, d.problems) == (e.hits, e.problems)
        assert np.allclose(
            [d.hit_ess, d.max_share, d.ess, d.weight_z, d.se_vs_plain],
            [e.hit_ess, e.max_share, e.ess, e.weight_z, e.se_vs_plain],
            rtol=1e-9,
        )


def _adversarial(kind: int, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(1, 2_500))
    if kind == 0:  # mostly exact zeros: the tail quantiles sit among the ties
        return np.where(rng.random(n) < 0.95, 0.0, rng.random(n))
    if kind == 1:  # a few distinct values
        return rng.integers(0, 4, n).astype(np.float64)
    if kind == 2:  # signs, -0.0 and a wide range
        x = rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n)
        x[rng.random(n) < 0.1] = -0.0
        return x
    return np.where(rng.random(n) < 0.2, np.nan, rng.random(n))  # undefined values dropped


@pytest.mark.parametrize("kind", range(4))
def test_radix_selection_from_disk_gives_numpys_quantiles(kind: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # a tiny chunk and candidate limit force every pass of the selection down to the whole key
    monkeypatch.setattr(selection, "CHUNK", 37)
    monkeypatch.setattr(selection, "COLLECT", 20)
    rng = np.random.default_rng(kind)
    for _ in range(6):
        x = _adversarial(kind, rng)
        w = rng.exponential(size=len(x))
        columns = selection.DiskColumns(["x", "w"], len(x))
        try:
            columns.write("x", 0, x)
            columns.write("w", 0, w)
            ok = ~np.isnan(x)
            for weighted in (False, True):
                sample = selection.Sample(columns, "x", "w" if weighted else None, drop_nan=True)
                ww = w[ok] if weighted else None
                for q in (0.05, 0.5, 0.95, 0.99, 0.999):
                    got, want = selection.quantile(sample, q, weighted), metrics.quantile(x[ok], q, ww)
                    assert np.allclose(
                        [got.value, got.se, got.ci_low, got.ci_high],
                        [want.value, want.se, want.ci_low, want.ci_high],
                        rtol=1e-12,
                        equal_nan=True,
                    ), (q, weighted, got, want)
                    got, want = (
                        selection.expected_shortfall(sample, q, weighted),
                        metrics.expected_shortfall(x[ok], q, ww),
                    )
                    assert np.allclose([got.value, got.se], [want.value, want.se], rtol=1e-9, equal_nan=True)
        finally:
            columns.close()
        assert not columns.folder.exists()


def test_a_streamed_run_gives_the_kept_runs_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the columns go
    for module in (accumulate, mc):
        monkeypatch.setattr(module, "BLOCK", 2_048)
    for importance in (False, True):
        kept = mc.simulate(DEAL, paths=9_000, seed=4, importance_sampling=importance, keep=[7])
        streamed = mc.simulate(
            DEAL, paths=9_000, seed=4, importance_sampling=importance, keep=[7], outcomes="stream"
        )
        assert streamed.streamed and streamed.tranche_outcomes is None and not kept.streamed
        assert streamed.sampling.to_dict() == kept.sampling.to_dict()
        # the same blocks of sums, merged in the same order: the moments agree to the bit
        assert streamed.tranche_summary == kept.tranche_summary
        for key, value in kept.pool_summary.items():
            assert math.isclose(streamed.pool_summary[key], value, rel_tol=1e-12), key
        a, b = kept.metrics(), streamed.metrics()
        for column in ("estimate", "se", "ci_low", "ci_high"):
            _close(a[column], b[column], rtol=1e-12)
        pd.testing.assert_frame_equal(
            kept.default_count_distribution(), streamed.default_count_distribution()
        )
        assert json.dumps(kept.kept[7].to_dict(), default=str) == json.dumps(
            streamed.kept[7].to_dict(), default=str
        )
        # and the kept run's summaries are numpy's over its arrays
        _close(a.estimate, tables.risk_metrics(kept).estimate)
    with pytest.raises(IpabsError, match="streamed"):
        streamed.path_frame()
    # what needs every path says so, and what to do, instead of failing on a missing array
    with pytest.raises(IpabsError, match="loss distribution chart needs the per-path outcomes"):
        streamed.plot.loss_distribution()
    with pytest.raises(IpabsError, match="outcomes='keep'"):
        _ = streamed.weights
    assert list(tmp_path.iterdir()) == []  # the columns were removed


def test_a_streamed_run_does_not_depend_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (accumulate, mc):
        monkeypatch.setattr(module, "BLOCK", 1_024)
    one = mc.simulate(DEAL, paths=5_000, seed=8, threads=1, outcomes="stream")
    two = mc.simulate(DEAL, paths=5_000, seed=8, threads=2, outcomes="stream")
    assert json.dumps(one.to_dict(), sort_keys=True) == json.dumps(two.to_dict(), sort_keys=True)


def test_out_writes_paths_parquet_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    for module in (accumulate, mc):
        monkeypatch.setattr(module, "BLOCK", 1_024)
    kept = mc.simulate(DEAL, paths=5_000, seed=2)
    streamed = mc.simulate(DEAL, paths=5_000, seed=2, outcomes="stream", out=tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["metrics.csv", "paths.parquet", "pool.csv", "tranches.csv"]
    assert sorted(p.name for p in streamed.written) == files
    table = pq.ParquetFile(tmp_path / "run" / "paths.parquet")
    assert table.metadata.num_row_groups == 5  # one per block
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "run" / "paths.parquet"), kept.path_frame())


def test_memory_of_a_streamed_run_does_not_grow_with_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    # the bound is a few blocks in flight, a chunk of a column and the candidates a quantile
    # sorts in memory: all small here, so that growth with the paths would show
    for module in (accumulate, mc):
        monkeypatch.setattr(module, "BLOCK", 1_024)
    monkeypatch.setattr(selection, "CHUNK", 4_096)
    monkeypatch.setattr(selection, "COLLECT", 2_048)

    def peak(paths: int, outcomes: str) -> int:
        mc.simulate(DEAL, paths=2_000, seed=1, threads=1, outcomes=outcomes)  # warm every cache
        tracemalloc.start()
        try:
            mc.simulate(DEAL, paths=paths, seed=1, threads=1, outcomes=outcomes)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(8_000, "stream"), peak(64_000, "stream")
    assert large < 1.5 * small, (small, large)
    # while kept outcomes grow with the paths (the check can fail)
    assert peak(64_000, "keep") > 4 * peak(8_000, "keep")


def test_auto_streams_what_memory_cannot_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    model = mc._model(str(DEAL))
    need = mc.outcome_bytes(model, 50_000)
    monkeypatch.setattr(mc, "available_memory", lambda: int(need))
    assert mc.outcome_mode(model, 50_000, "auto", "x") == "stream"
    assert mc.outcome_mode(model, 1_000, "auto", "x") == "keep"
    with pytest.raises(IpabsError, match="outcomes must be one of"):
        mc.outcome_mode(model, 10, "lots", "x")


def test_a_stream_the_disk_cannot_hold_is_refused_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    real = shutil.disk_usage

    def tiny(path: Any) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.used, 1_000_000)

    monkeypatch.setattr(shutil, "disk_usage", tiny)
    with pytest.raises(IpabsError, match="TMPDIR"):
        mc.simulate(DEAL, paths=1_000_000, outcomes="stream")
    code = main(["mc", str(DEAL), "--paths", "1000000", "--outcomes", "stream", "--quiet"])
    assert code == EXIT_INVALID
    assert "GB free" in capsys.readouterr().err


def test_mc_streams_on_request_with_the_kept_figures(capsys: pytest.CaptureFixture[str]) -> None:
    docs = []
    for outcomes in ("keep", "stream"):
        assert (
            main(["mc", str(DEAL), "--paths", "4000", "--outcomes", outcomes, "--json", "--quiet"]) == EXIT_OK
        )
        docs.append(json.loads(capsys.readouterr().out))
    kept, streamed = docs
    for a, b in zip(kept["metrics"], streamed["metrics"], strict=True):
        assert (a["subject"], a["metric"]) == (b["subject"], b["metric"])
        if a["estimate"] is None:
            assert b["estimate"] is None
        else:
            assert math.isclose(a["estimate"], b["estimate"], rel_tol=1e-12), a
