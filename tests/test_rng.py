"""The kernels' random numbers (SplitMix64-seeded xoshiro256**) and normal distribution
functions, against pure-Python references, published values, moments and SciPy.

Moment checks use fixed keys and a tolerance of four standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from ipabs.numerics.normal_numba_fns import norm_cdf, norm_ppf, norm_ppf_array
from ipabs.numerics.rng_numba_fns import (
    beta,
    chi_square,
    gamma,
    next_u64,
    normal,
    seed_state,
    splitmix64,
    uniform,
)

MASK = (1 << 64) - 1
K_SE = 4.0
N = 200_000

# --------------------------------------------------------------------------- pure-Python reference


def py_splitmix64(x: int) -> tuple[int, int]:
    """One SplitMix64 step (Vigna): (new state, output)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return x, z ^ (z >> 31)


def py_rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK


def py_xoshiro256ss(s: list[int]) -> int:
    """One xoshiro256** step (Blackman and Vigna), updating ``s`` in place."""
    result = (py_rotl((s[1] * 5) & MASK, 7) * 9) & MASK
    t = (s[1] << 17) & MASK
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = py_rotl(s[3], 45)
    return result


def py_seed_state(seed: int, path: int, stream: int) -> list[int]:
    """The documented keying: hash seed, fold in path and stream, then fill from SplitMix64."""
    _, x = py_splitmix64(seed & MASK)
    _, x = py_splitmix64(x ^ path)
    _, x = py_splitmix64(x ^ stream)
    state = []
    for _ in range(4):
        x, z = py_splitmix64(x)
        state.append(z)
    return state


def py_uniform(u64: int) -> float:
    """52 random bits, offset by half a step: strictly inside (0, 1), every value exact."""
    return ((u64 >> 12) + 0.5) / 2.0**52


def keyed(seed: int, path: int = 0, stream: int = 0) -> np.ndarray:
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, seed, path, stream)
    return state


def draws(fn, n: int, *args: float, seed: int = 2024, path: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    state = keyed(seed, path)
    return np.array([fn(state, *args) for _ in range(n)])


def assert_within(value: float, expected: float, se: float, what: str) -> None:
    assert abs(value - expected) <= K_SE * se, (
        f"{what}: {value:.6g}, expected {expected:.6g} ({(value - expected) / se:+.2f} SE)"
    )


def assert_mean_var(x: np.ndarray, mean: float, var: float, what: str) -> None:
    """Sample mean and variance within 4 standard errors (the variance's SE from the sample)."""
    n = len(x)
    assert_within(float(x.mean()), mean, math.sqrt(var / n), f"{what} mean")
    sq = (x - x.mean()) ** 2
    assert_within(float(x.var(ddof=1)), var, float(sq.std(ddof=1) / math.sqrt(n)), f"{what} variance")


# --------------------------------------------------------------------------- exact outputs


def test_splitmix64_matches_the_published_first_output() -> None:
    # SplitMix64 seeded with 0: first output 0xE220A8397B1DCDAF (reference implementation)
    _, z = py_splitmix64(0)
    assert z == 0xE220A8397B1DCDAF
    py = 0
    for _ in range(100):
        x, z = splitmix64(np.uint64(py))
        py, pz = py_splitmix64(py)
        assert int(x) == py and int(z) == pz


def test_xoshiro256starstar_known_outputs() -> None:
    # state {1, 2, 3, 4}: rotl(2 * 5, 7) * 9 = 11520, then rotl(0, 7) * 9 = 0, ...
    ref = [1, 2, 3, 4]
    first = [py_xoshiro256ss(ref) for _ in range(4)]
    assert first == [11520, 0, 1509978240, 1215971899390074240]
    state = np.array([1, 2, 3, 4], dtype=np.uint64)
    py = [1, 2, 3, 4]
    out = [int(next_u64(state)) for _ in range(1000)]
    assert out == [py_xoshiro256ss(py) for _ in range(1000)]
    assert [int(v) for v in state] == py


@pytest.mark.parametrize(
    ("seed", "path", "stream"), [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (2**63 - 1, 123_456_789, 7)]
)
def test_seed_state_and_uniform_match_the_reference(seed: int, path: int, stream: int) -> None:
    state = keyed(seed, path, stream)
    py = py_seed_state(seed, path, stream)
    assert [int(v) for v in state] == py
    for _ in range(200):
        assert uniform(state) == py_uniform(py_xoshiro256ss(py))


def state_with_first_output(value: int) -> np.ndarray:
    """A xoshiro256** state whose next output is ``value``: invert ``rotl(s1 * 5, 7) * 9``."""
    r = (value * pow(9, -1, 1 << 64)) & MASK
    s1 = ((r >> 7) | (r << 57)) & MASK  # rotate right by 7
    s1 = (s1 * pow(5, -1, 1 << 64)) & MASK
    state = np.array([0, s1, 0, 0], dtype=np.uint64)
    assert py_xoshiro256ss([0, s1, 0, 0]) == value
    return state


@pytest.mark.parametrize("bits", [0, 1 << 11, MASK - (1 << 11), MASK])
def test_uniform_stays_inside_the_open_unit_interval(bits: int) -> None:
    """Also for the smallest and largest 64-bit outputs: never 0, never 1."""
    u = uniform(state_with_first_output(bits))
    assert 0.0 < u < 1.0, f"uniform of 0x{bits:016x} = {u!r}"


# --------------------------------------------------------------------------- streams


def test_streams_keyed_by_seed_path_and_stream_are_distinct() -> None:
    firsts = {}
    for seed in range(4):
        for path in range(500):
            for stream in range(3):
                firsts[(seed, path, stream)] = int(next_u64(keyed(seed, path, stream)))
    assert len(set(firsts.values())) == len(firsts)
    # the same key gives the same numbers
    assert int(next_u64(keyed(3, 499, 2))) == firsts[(3, 499, 2)]
    # neighbouring paths are uncorrelated
    a = draws(uniform, 20_000, path=10)
    b = draws(uniform, 20_000, path=11)
    assert abs(np.corrcoef(a, b)[0, 1]) <= K_SE / math.sqrt(len(a))


def test_neighbouring_seeds_do_not_permute_each_others_paths() -> None:
    one = {int(next_u64(keyed(5, p))) for p in range(2000)}
    two = {int(next_u64(keyed(6, p))) for p in range(2000)}
    assert not one & two


def test_generator_has_no_shared_state() -> None:
    a, b = keyed(1), keyed(1)
    first = [uniform(a) for _ in range(10)]
    _ = [normal(keyed(99)) for _ in range(10)]  # other states in between
    assert [uniform(b) for _ in range(10)] == first


# --------------------------------------------------------------------------- distributions


def test_uniform_moments_and_range() -> None:
    u = draws(uniform, N)
    assert u.min() > 0.0 and u.max() < 1.0
    assert_mean_var(u, 0.5, 1.0 / 12.0, "uniform")
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_moments() -> None:
    z = draws(normal, N)
    assert_mean_var(z, 0.0, 1.0, "normal")
    assert_within(float(stats.skew(z)), 0.0, math.sqrt(6.0 / N), "normal skewness")
    assert_within(float(stats.kurtosis(z, fisher=False)), 3.0, math.sqrt(24.0 / N), "normal kurtosis")
    assert stats.kstest(z, "norm").pvalue > 1e-3


@pytest.mark.parametrize("dof", [1.0, 3.0, 4.0, 7.5])
def test_chi_square_mean_and_variance(dof: float) -> None:
    x = draws(chi_square, 100_000, dof)
    assert x.min() > 0.0
    assert_mean_var(x, dof, 2.0 * dof, f"chi2({dof})")
    assert stats.kstest(x, "chi2", args=(dof,)).pvalue > 1e-3


@pytest.mark.parametrize("shape", [0.3, 1.0, 2.5])
def test_gamma_mean_and_variance(shape: float) -> None:
    x = draws(gamma, 100_000, shape)
    assert_mean_var(x, shape, shape, f"gamma({shape})")


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.5), (2.0, 5.0), (0.3, 3.0), (8.0, 2.0)])
def test_beta_mean_and_variance(a: float, b: float) -> None:
    x = draws(beta, 100_000, a, b)
    assert x.min() >= 0.0 and x.max() <= 1.0
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1.0))
    assert_mean_var(x, mean, var, f"beta({a}, {b})")
    assert stats.kstest(x, "beta", args=(a, b)).pvalue > 1e-3


# --------------------------------------------------------------------------- normal CDF and inverse


def test_norm_cdf_matches_scipy() -> None:
    x = np.concatenate([np.linspace(-37.5, 9.0, 4001), [-1e-300, 0.0, 1e-300]])
    got = np.array([norm_cdf(v) for v in x])
    want = special.ndtr(x)
    # in the far left tail the rounding of x alone moves Phi by about x^2 x 1e-16 (relative)
    tol = 2e-15 * np.maximum(1.0, x * x) * np.abs(want)
    bad = np.nonzero(np.abs(got - want) > np.maximum(tol, 1e-300))[0]
    assert len(bad) == 0, f"x = {x[bad][:5]}: {got[bad][:5]} vs {want[bad][:5]}"
    assert norm_cdf(-math.inf) == 0.0 and norm_cdf(math.inf) == 1.0
    assert norm_cdf(0.0) == 0.5


def ppf_error(p: np.ndarray) -> np.ndarray:
    """|norm_ppf - SciPy| relative to max(1, |x|)."""
    want = special.ndtri(p)
    got = np.array([norm_ppf(v) for v in p])
    return np.abs(got - want) / np.maximum(1.0, np.abs(want))


def test_norm_ppf_matches_scipy_in_the_lower_half() -> None:
    p = np.concatenate([np.geomspace(1e-300, 0.02425, 2000), np.linspace(0.02425, 0.5, 2000)])
    err = ppf_error(p)
    assert err.max() < 1e-14, f"worst at p = {p[err.argmax()]}: {err.max():.3g}"


def test_norm_ppf_matches_scipy_in_the_upper_half() -> None:
    """About 1e-15 relative, as documented, also close to 1 (1 - p is exact for p >= 0.5)."""
    p = np.concatenate([np.linspace(0.5, 0.97575, 2000), 1.0 - np.geomspace(0.02425, 1e-16, 2000)])
    err = ppf_error(p)
    assert err.max() < 1e-14, f"worst at p = {p[err.argmax()]!r}: {err.max():.3g}"


def test_norm_ppf_edges() -> None:
    assert norm_ppf(0.0) == -math.inf
    assert norm_ppf(1.0) == math.inf
    assert norm_ppf(-0.5) == -math.inf
    assert norm_ppf(1.5) == math.inf
    assert norm_ppf(0.5) == 0.0


@pytest.mark.parametrize("p", [1e-310, 1e-320, 5e-324])
def test_norm_ppf_of_subnormal_probabilities_is_finite(p: float) -> None:
    # below the smallest normal double the refinement step cannot be evaluated; the rational
    # approximation alone is good to about 1e-9 there (a PD of 1e-310 is never a real input)
    x = norm_ppf(p)
    assert math.isfinite(x), f"norm_ppf({p!r}) = {x}"
    assert x == pytest.approx(float(special.ndtri(p)), rel=1e-8)


def test_norm_cdf_inverts_norm_ppf() -> None:
    p = np.geomspace(1e-250, 0.5, 1000)
    x = np.array([norm_ppf(v) for v in p])
    back = np.array([norm_cdf(v) for v in x])
    assert np.all(np.abs(back - p) <= 2e-15 * np.maximum(1.0, x * x) * p)


def test_norm_ppf_array_is_elementwise() -> None:
    p = np.linspace(0.0, 1.0, 21).reshape(3, 7)
    out = norm_ppf_array(p)
    assert out.shape == p.shape
    assert [norm_ppf(v) for v in p.ravel()] == out.ravel().tolist()
