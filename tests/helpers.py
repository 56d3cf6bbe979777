"""Helpers shared by the cash-flow tests: run a deal given as YAML text and read its tables.

Imported by the test modules as ``from helpers import ...`` (pytest puts ``tests/`` on the
path because the folder is not a package).
"""

from __future__ import annotations

import numpy as np

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.engine.compile import CompiledModel, compile_deal
from ipabs.engine.layout import COLLECTION_COLUMNS
from ipabs.results import RunResult, conservation_residual

CENT = 0.005
"""Half a cent: hand-computed waterfalls must agree to the cent."""


def compile_text(text: str) -> CompiledModel:
    """Parse, validate and compile a deal given as YAML text."""
    return compile_deal(parse_deal(text))


def run_text(text: str, scenario: str | None = None) -> RunResult:
    """Run a deal given as YAML text under one scenario (default: its first)."""
    return api.run(compile_text(text), scenario)


def collections_of(model: CompiledModel, scenario: str | None = None) -> dict[str, np.ndarray]:
    """Asset cash flows summed over pools, one (T,) array per collection column."""
    coll = api.collections(model, scenario).sum(axis=0)
    return {name: coll[:, i] for i, name in enumerate(COLLECTION_COLUMNS)}


def col(result: RunResult, name: str) -> np.ndarray:
    """A column of ``result.periods`` as floats (``senior.interest_paid``, ``pool.interest``...)."""
    return result.periods[name].to_numpy(dtype=np.float64)


def assert_cents(actual: np.ndarray, expected: list[float] | np.ndarray, what: str) -> None:
    """Every period of ``actual`` equals ``expected`` to half a cent."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape}"
    bad = np.nonzero(np.abs(a - e) > CENT)[0]
    assert len(bad) == 0, (
        f"{what}: period(s) {[int(i) + 1 for i in bad]} got {a[bad].tolist()}, expected {e[bad].tolist()}"
    )


def assert_conserved(result: RunResult, scale: float = 1.0) -> None:
    """Cash conservation holds in every period (to 1e-9 of ``scale``, at least a micro-cent)."""
    res = conservation_residual(result.tables)
    assert np.all(np.abs(res) <= max(1e-9 * scale, 1e-8)), f"conservation residuals {res}"
