"""The compiled kernels and their pure-Python twin (NUMBA_DISABLE_JIT=1) agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ipabs
from ipabs.api import run

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

TWIN_SCRIPT = """
import sys, numpy as np, numba
assert numba.config.DISABLE_JIT
import ipabs
from ipabs.api import run
deal = ipabs.load_deal(sys.argv[1])
out = {}
for name in deal.spec.scenarios:
    r = run(deal, name)
    for field, arr in r.tables._asdict().items():
        out[f"{name}/{field}"] = arr
    out[f"{name}/collections"] = r.collections
np.savez(sys.argv[2], **out)
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_python_twin_matches_compiled(path: Path, tmp_path: Path) -> None:
    target = tmp_path / "twin.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error"}
    subprocess.run([sys.executable, "-c", TWIN_SCRIPT, str(path), str(target)], check=True, env=env, cwd=ROOT)
    twin = np.load(target)
    deal = ipabs.load_deal(path)
    for name in deal.spec.scenarios:
        r = run(deal, name)
        arrays = {**r.tables._asdict(), "collections": r.collections}
        for field, arr in arrays.items():
            # the same arithmetic in the same order: equal to rounding noise
            np.testing.assert_allclose(
                arr, twin[f"{name}/{field}"], rtol=1e-12, atol=1e-7, err_msg=f"{name}/{field}"
            )


def test_scenarios_are_shipped() -> None:
    assert len(SCENARIOS) >= 5, "the project ships at least five scenario deals"
