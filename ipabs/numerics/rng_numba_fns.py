"""Counter-keyed random numbers for kernels: xoshiro256** seeded by SplitMix64 from
(seed, path, stream).

Path *i* of a run with seed *s* draws only from the generator keyed by (s, i), so its numbers
do not depend on threads, batch sizes or which worker ran it. No global state: the generator
state is a 4-element uint64 array owned by the caller.
"""

from __future__ import annotations

import math

import numpy as np

from ipabs._jit import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO52 = 1.0 / 4503599627370496.0


@njit(leaf=True)
def splitmix64(x: np.uint64) -> tuple[np.uint64, np.uint64]:
    """One SplitMix64 step: (new state, output)."""
    x = x + _GOLDEN
    z = x
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return x, z ^ (z >> np.uint64(31))


@njit(leaf=True)
def seed_state(state: np.ndarray, seed: int, path: int, stream: int) -> None:
    """Key ``state`` (uint64[4]) by (seed, path, stream).

    Each integer is folded into a SplitMix64 hash of the previous ones, so neighbouring seeds
    and paths get unrelated states; the state is then filled from SplitMix64 as its authors
    recommend.
    """
    # Hash, not just step: keys must differ in all bits, or seed s and s' would merely
    # permute each other's paths (same summary statistics).
    _, x = splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    _, x = splitmix64(x ^ np.uint64(path))
    _, x = splitmix64(x ^ np.uint64(stream))
    for i in range(4):
        x, z = splitmix64(x)
        state[i] = z


@njit(leaf=True)
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(leaf=True)
def xoshiro_step(
    s0: np.uint64, s1: np.uint64, s2: np.uint64, s3: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64, np.uint64]:
    """One xoshiro256** step (Blackman and Vigna) on a state held in four scalars:
    (64 random bits, new state). Hot loops keep the state in registers this way."""
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(leaf=True)
def bits_to_uniform(bits: np.uint64) -> float:
    """A uniform strictly inside (0, 1) from 64 random bits: the top 52 plus a half, all
    exact in a double."""
    return ((bits >> np.uint64(12)) + 0.5) * _TWO52


@njit(leaf=True)
def next_u64(s: np.ndarray) -> np.uint64:
    """Next 64 random bits of xoshiro256** from the state array ``s`` (uint64[4])."""
    result, s[0], s[1], s[2], s[3] = xoshiro_step(s[0], s[1], s[2], s[3])
    return result


@njit(leaf=True)
def uniform(s: np.ndarray) -> float:
    """A uniform strictly inside (0, 1): 52 random bits plus a half, all exact in a double."""
    return bits_to_uniform(next_u64(s))


@njit(leaf=True)
def normal(s: np.ndarray) -> float:
    """A standard normal (Box-Muller, one of the pair; simple and stateless)."""
    u1 = uniform(s)
    u2 = uniform(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(leaf=True)
def gamma(s: np.ndarray, shape: float) -> float:
    """A Gamma(shape, 1) variate (Marsaglia and Tsang; boosted for shape < 1)."""
    if shape < 1.0:
        return gamma(s, shape + 1.0) * uniform(s) ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = normal(s)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform(s)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v


@njit(leaf=True)
def chi_square(s: np.ndarray, dof: float) -> float:
    """A chi-square variate with ``dof`` degrees of freedom."""
    return 2.0 * gamma(s, 0.5 * dof)


@njit(leaf=True)
def beta(s: np.ndarray, a: float, b: float) -> float:
    """A Beta(a, b) variate."""
    x = gamma(s, a)
    y = gamma(s, b)
    return x / (x + y)
