"""How a defaulter's period is placed: the inverse normal taken region by region and the
bucketed search of the thresholds give the same periods as the plain definitions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ipabs
from ipabs.engine.compile import compile_deal
from ipabs.numerics.normal_numba_fns import ACKLAM_TAIL, acklam_centre, norm_ppf_fast, norm_ppf_tails
from ipabs.numerics.rng_numba_fns import bits_to_uniform, seed_state
from ipabs.risk.model import PeriodSearch, compile_risk, period_search, sampling_lists
from ipabs.risk.montecarlo_numba_fns import allocate_scratch, draw_defaults
from ipabs.risk.search_numba_fns import extra_steps, search_period

ROOT = Path(__file__).resolve().parents[1]


def count_at_or_below(thresholds: np.ndarray, y: float) -> int:
    """The definition: how many of the periods' thresholds (all but the last) are <= y."""
    return min(int(np.sum(thresholds[:-1] <= y)), len(thresholds) - 1)


def threshold_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """Three groups of ``n`` rising thresholds: plain, with ties, with leading -inf (periods
    with no cumulative PD yet)."""
    plain = np.sort(rng.normal(-2.0, 0.7, n))
    ties = np.sort(np.round(rng.normal(-2.0, 0.7, n), 1))
    leading = np.sort(rng.normal(-2.0, 0.7, n))
    leading[: n // 3] = -np.inf
    return np.vstack([plain, ties, leading])


def searched(rows: np.ndarray, **kw: int) -> tuple[PeriodSearch, Callable[[int, float], int]]:
    """The search tables of ``rows`` and the kernel's period of group g at latent variable y."""
    n = rows.shape[1]
    table = period_search(rows, **kw)
    extra = extra_steps(table.rows.shape[1], n)
    assert extra == max(table.steps, 3) - 3

    def period(g: int, y: float) -> int:
        return search_period(table.rows[g], table.start[g], table.bucket[g], extra, y, n - 1)

    return table, period


def probes(row: np.ndarray, rng: np.random.Generator) -> list[float]:
    finite = row[np.isfinite(row)]
    values = [
        *row,  # exactly on a threshold: "at or below" counts it
        *np.nextafter(row, -np.inf),
        *np.nextafter(row, np.inf),
        *(0.5 * (finite[1:] + finite[:-1])),
        *rng.normal(-2.0, 1.0, 50),
        -np.inf,
        np.inf,
        -50.0,
        50.0,
        0.0,
        -0.0,
        1e300,
        -1e300,
    ]
    return [float(v) for v in values]


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 12, 60, 64, 65, 100, 513])
def test_search_period_counts_the_thresholds_at_or_below(n: int) -> None:
    rng = np.random.default_rng(n)
    rows = threshold_rows(n, rng)
    _, period = searched(rows)
    for g, row in enumerate(rows):
        for y in probes(row, rng):
            assert period(g, y) == count_at_or_below(row, y), (n, g, y)


def test_a_smooth_curve_needs_three_steps_and_few_buckets() -> None:
    rows = threshold_rows(60, np.random.default_rng(3))[:1]
    table, _ = searched(rows)
    assert table.steps <= 3 and table.start.shape[1] <= 64
    assert np.all(np.diff(table.start[0]) >= 0) and table.start[0, 0] == 0


def test_crowded_buckets_take_more_steps_and_still_count_right() -> None:
    """Twenty equal thresholds (a stretch of periods with no marginal PD) cannot be split by
    any bucket: the search takes extra bisection steps."""
    n = 61
    row = np.sort(np.random.default_rng(4).normal(-2.0, 0.5, n))
    row[20:40] = row[20]
    rows = np.vstack([row, np.full(n, -np.inf), np.full(n, -1.5)])  # no PD; one value
    assert searched(rows[:1])[0].steps == 5  # 20 in one bucket: 2^5 > 20
    table, period = searched(rows)
    assert table.steps == 6  # the 60 thresholds of one value share a bucket: 2^6 > 60
    for g in range(3):
        for y in probes(rows[g], np.random.default_rng(g)):
            assert period(g, y) == count_at_or_below(rows[g], y), (g, y)


def test_bucket_tables_are_capped_for_many_groups() -> None:
    rows = threshold_rows(60, np.random.default_rng(5))
    table, period = searched(rows, max_entries=3 * 16)
    assert table.start.shape[1] <= 16
    for g, row in enumerate(rows):
        for y in probes(row, np.random.default_rng(g)):
            assert period(g, y) == count_at_or_below(row, y), (g, y)


def uniforms(rng: np.random.Generator) -> np.ndarray:
    tails = [
        rng.uniform(0.0, ACKLAM_TAIL, 2000),
        1.0 - rng.uniform(0.0, ACKLAM_TAIL, 2000),
        10.0 ** rng.uniform(-300, -2, 500),
        [0.0, 1.0, 5e-324, 2.0**-53, np.nextafter(ACKLAM_TAIL, 0.0), np.nextafter(1.0, 0.0)],
        [1.0 - ACKLAM_TAIL, np.nextafter(1.0 - ACKLAM_TAIL, 1.0)],  # 1 - (1 - tail) < tail
    ]
    return np.concatenate([np.asarray(t, dtype=np.float64) for t in tails])


def test_norm_ppf_tails_equals_norm_ppf_fast_bit_for_bit() -> None:
    for u in uniforms(np.random.default_rng(1)):
        u = float(u)
        assert min(u, 1.0 - u) < ACKLAM_TAIL
        want, got = norm_ppf_fast(u), norm_ppf_tails(u)
        assert np.float64(got).view(np.int64) == np.float64(want).view(np.int64), u


def test_acklam_centre_equals_norm_ppf_fast_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    centre = [*rng.uniform(ACKLAM_TAIL, 1.0 - ACKLAM_TAIL, 5000), ACKLAM_TAIL, 0.5, 0.25, 0.75]
    centre += [np.nextafter(0.5, 0.0), np.nextafter(0.5, 1.0)]
    for u in centre:
        u = float(u)
        assert min(u, 1.0 - u) >= ACKLAM_TAIL
        want, got = norm_ppf_fast(u), acklam_centre(u - 0.5)
        assert np.float64(got).view(np.int64) == np.float64(want).view(np.int64), u


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("twist", [0.0, 4.0])
def test_drawn_periods_follow_the_definition(twist: float, skip: bool) -> None:
    """Each defaulter drawn by the kernel: the period from its own random bits by the plain
    definition (norm_ppf_fast, then a count of thresholds), with and without the importance
    sampling twist of the default probabilities, one uniform per obligor or every group
    drawn by skipping."""
    model = compile_deal(ipabs.load_deal(ROOT / "scenarios" / "caohejing_ip_pledge.yaml"))
    ra = compile_risk(model)
    assert not ra.g_skip.any()  # a small deal: one uniform per obligor
    if skip:
        ra = ra._replace(**sampling_lists(ra.ob_group, ra.g_threshold.shape[0], 1))
    sc = allocate_scratch(model.cd, ra)
    sc.sampling[0] = twist  # expected defaulters targeted; alpha 0: every path twisted
    n_t = ra.n_periods
    checked = 0
    twisted = 0
    for path in range(3000):
        seed_state(sc.state, 9, path, 0)
        n_d = draw_defaults(ra, sc)
        listed = sc.d_obligor[:n_d]
        assert np.all(np.diff(listed) > 0), "defaulters are listed in obligor order"
        others = np.setdiff1d(np.arange(len(ra.ob_group)), listed)
        assert np.all(sc.ob_period[others] == n_t)
        twisted += bool(np.any(sc.g_twisted != sc.g_horizon))
        for i in range(n_d):
            o = sc.d_obligor[i]
            g = ra.ob_group[o]
            u = bits_to_uniform(sc.ob_bits[o]) * (sc.g_horizon[g] / sc.g_twisted[g])
            y = norm_ppf_fast(u) * ra.g_idio[g] + sc.g_mean[g]
            assert sc.ob_period[o] == count_at_or_below(ra.g_threshold[g], y), (path, o)
            checked += 1
    assert checked > 500
    assert (twisted > 0) == (twist > 0)
